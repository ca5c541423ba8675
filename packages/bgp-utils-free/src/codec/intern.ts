/**
 * Interning of what UPDATEs decode to, shared by every session of the process (issue 19: a route
 * reflector writes the same attribute bytes to every client, so a process with many speakers, or
 * one speaker with many peers, receives the same attribute block over and over).
 *
 * - Path attribute blocks: one decoded, deeply frozen `PathAttribute[]` per distinct (4-octet AS
 *   flag, attribute bytes), for error-free blocks without MP_REACH/MP_UNREACH (those carry NLRI)
 *   or unknown attributes. The table holds its entries weakly: an entry lives while a message or a
 *   route derived from it (see `retain`) is reachable, and its key goes when it is collected.
 * - Values derived from an interned block (the `RouteAttributes` of `routesFromUpdate`, a speaker's
 *   imported attributes) are cached against it with `derived`, and keep it alive with `retain`.
 * - IPv4 prefixes: one string per (address, length), in a bounded table.
 *
 * Everything handed out is frozen: callers share it and must copy to change it.
 */
import type { PathAttribute } from "./types.ts";

/** Attribute blocks longer than this are decoded every time (their key would cost more than it saves). */
const MAX_BLOCK = 1024;

const blocks = new Map<string, WeakRef<readonly PathAttribute[]>>();
const registry = new FinalizationRegistry<string>((key) => {
  const ref = blocks.get(key);
  if (ref !== undefined && ref.deref() === undefined) blocks.delete(key);
});
const retained = new WeakMap<object, object>();

/** The intern key of `bytes[start, end)` decoded with `fourOctetAs`, or undefined when the block is not interned. */
export function blockKey(bytes: Uint8Array, start: number, end: number, fourOctetAs: boolean): string | undefined {
  if (end - start > MAX_BLOCK || end <= start) return undefined;
  return (fourOctetAs ? "4" : "2") + Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString("latin1");
}

/** The interned decoding of the block with this key, if it is live. */
export function internedBlock(key: string): PathAttribute[] | undefined {
  return blocks.get(key)?.deref() as PathAttribute[] | undefined;
}

/**
 * Interns `attributes`, the error-free decoding of the block with this key, when it qualifies;
 * returns what the caller should use (the same array, frozen, or unchanged when it does not qualify).
 */
export function internBlock(key: string, attributes: PathAttribute[]): PathAttribute[] {
  for (const a of attributes) if (a.type === "mp-reach" || a.type === "mp-unreach" || a.type === "unknown") return attributes;
  freezeDeep(attributes);
  interned.add(attributes);
  blocks.set(key, new WeakRef(attributes));
  registry.register(attributes, key);
  return attributes;
}

const interned = new WeakSet<object>();

/** True when `value` came out of the intern table or `derived` (so values derived from it may be cached against it). */
export function isInterned(value: object): boolean {
  return interned.has(value);
}

/** A cache of values derived from interned ones (one per kind of derivation; see `derived`). */
export type DerivedCache<T extends object> = WeakMap<object, T>;

const named = new Map<string, DerivedCache<object>>();

/** The process-wide cache of the derivation named `name` (the name must say everything the derivation depends on besides its source). */
export function derivedCache<T extends object>(name: string): DerivedCache<T> {
  let c = named.get(name);
  if (c === undefined) {
    c = new WeakMap();
    named.set(name, c);
  }
  return c as DerivedCache<T>;
}

/**
 * The value derived from `source` (an interned block, or a value derived from one) in `cache`:
 * computed once by `make`, frozen, and keeping `source` alive while it is reachable.
 */
export function derived<T extends object>(cache: DerivedCache<T>, source: object, make: () => T): T {
  let v = cache.get(source);
  if (v === undefined) {
    v = make();
    freezeDeep(v);
    interned.add(v);
    cache.set(source, v);
    retain(v, source);
  }
  return v;
}

/** Keeps `source` (an interned block or something derived from one) alive while `holder` is. */
export function retain(holder: object, source: object): void {
  if (holder !== source) retained.set(holder, source);
}

/** Number of interned attribute blocks (live or not yet swept), for tests and benchmarks. */
export function internedBlockCount(): number {
  return blocks.size;
}

function freezeDeep(v: unknown): void {
  if (typeof v !== "object" || v === null || ArrayBuffer.isView(v) || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v as Record<string, unknown>)) freezeDeep(x);
}

// ---------------------------------------------------------------- IPv4 prefixes

/** Interned IPv4 prefixes, one map per length keyed by the prefix's significant bits. */
const v4 = Array.from({ length: 33 }, () => new Map<number, string>());
let v4Count = 0;
/** Past this many prefixes the table starts over (it is a cache: dropping it only costs re-formatting). */
const MAX_V4 = 1 << 20;

/**
 * The canonical text of the IPv4 prefix of length `len` whose (already masked) octets are
 * `bytes[at, at + ⌈len/8⌉)`; `format` builds it on a miss.
 */
export function internPrefix4(bytes: Uint8Array, at: number, len: number, format: () => string): string {
  const n = (len + 7) >> 3;
  let addr = 0;
  for (let k = 0; k < 4; k++) addr = addr * 256 + (k < n ? bytes[at + k]! : 0);
  const key = len === 0 ? 0 : Math.floor(addr / 2 ** (32 - len));
  const m = v4[len]!;
  let s = m.get(key);
  if (s === undefined) {
    if (v4Count >= MAX_V4) {
      for (const t of v4) t.clear();
      v4Count = 0;
    }
    s = format();
    m.set(key, s);
    v4Count++;
  }
  return s;
}
