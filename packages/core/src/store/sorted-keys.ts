/**
 * A sorted set of keys (etcd byte order) as a list of small sorted chunks: insert and delete cost
 * O(log n + chunk size), and a prefix scan starts with a binary search instead of visiting every
 * key. Used by the in-memory state so `list(prefix)` stays cheap with a million keys.
 *
 * Internally keys are held in a "sortable" form whose UTF-16 order (JS `<`, native and fast) is
 * the UTF-8 byte order: units U+E000..U+FFFF move down below the surrogates. The mapping is per
 * code unit, so it keeps lengths and prefixes; keys without such units (nearly all) are unchanged.
 */
import { lowerBound } from "../sorted-search.ts";

const CHUNK = 512;
const HIGH = /[\ud800-\uffff]/;

function sortable(key: string): string {
  if (!HIGH.test(key)) return key;
  let out = "";
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    out += String.fromCharCode(c >= 0xe000 ? c - 0x800 : c >= 0xd800 ? c + 0x2000 : c);
  }
  return out;
}

function original(s: string): string {
  if (!HIGH.test(s)) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += String.fromCharCode(c >= 0xf800 ? c - 0x2000 : c >= 0xd800 ? c + 0x800 : c);
  }
  return out;
}

export class SortedKeys {
  private readonly chunks: string[][] = [];
  /** Last (largest) key of each chunk, for the binary search over chunks. */
  private readonly lasts: string[] = [];
  private count = 0;

  /** Number of keys held. */
  get size(): number {
    return this.count;
  }

  /** Index of the first chunk whose last key is >= key (chunks.length when none). */
  private chunkIndex(key: string): number {
    return lowerBound(this.lasts, key);
  }

  /** Adds `key`; returns false when it was already present. */
  add(k: string): boolean {
    const key = sortable(k);
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.lasts.push(key);
      this.count = 1;
      return true;
    }
    let ci = this.chunkIndex(key);
    if (ci === this.chunks.length) ci--; // larger than every key: append to the last chunk
    const chunk = this.chunks[ci]!;
    const i = lowerBound(chunk, key);
    if (i < chunk.length && chunk[i] === key) return false;
    chunk.splice(i, 0, key);
    if (i === chunk.length - 1) this.lasts[ci] = key;
    this.count++;
    if (chunk.length > 2 * CHUNK) {
      const tail = chunk.splice(CHUNK);
      this.chunks.splice(ci + 1, 0, tail);
      this.lasts.splice(ci, 1, chunk[chunk.length - 1]!, tail[tail.length - 1]!);
    }
    return true;
  }

  /** Removes `key`; returns false when it was not present. */
  delete(k: string): boolean {
    const key = sortable(k);
    const ci = this.chunkIndex(key);
    const chunk = this.chunks[ci];
    if (!chunk) return false;
    const i = lowerBound(chunk, key);
    if (i >= chunk.length || chunk[i] !== key) return false;
    chunk.splice(i, 1);
    this.count--;
    if (chunk.length === 0) {
      this.chunks.splice(ci, 1);
      this.lasts.splice(ci, 1);
      return true;
    }
    if (i === chunk.length) this.lasts[ci] = chunk[chunk.length - 1]!;
    // Merge a small chunk into its successor so the chunk count tracks the key count.
    const next = this.chunks[ci + 1];
    if (chunk.length < CHUNK / 4 && next && chunk.length + next.length <= 2 * CHUNK) {
      next.unshift(...chunk);
      this.chunks.splice(ci, 1);
      this.lasts.splice(ci, 1);
    }
    return true;
  }

  /** Whether `key` is present. */
  has(k: string): boolean {
    const key = sortable(k);
    const chunk = this.chunks[this.chunkIndex(key)];
    if (!chunk) return false;
    const i = lowerBound(chunk, key);
    return i < chunk.length && chunk[i] === key;
  }

  /** Calls `fn` for every key starting with `prefix`, in order ("" visits every key). */
  forEachWithPrefix(p: string, fn: (key: string) => void): void {
    const prefix = sortable(p);
    let ci = prefix === "" ? 0 : this.chunkIndex(prefix);
    let i = ci < this.chunks.length && prefix !== "" ? lowerBound(this.chunks[ci]!, prefix) : 0;
    for (; ci < this.chunks.length; ci++, i = 0) {
      const chunk = this.chunks[ci]!;
      for (; i < chunk.length; i++) {
        const key = chunk[i]!;
        if (!key.startsWith(prefix)) return;
        fn(original(key));
      }
    }
  }

  /** Every key, in order. */
  keys(): string[] {
    const out: string[] = [];
    for (const chunk of this.chunks) for (const k of chunk) out.push(original(k));
    return out;
  }
}
