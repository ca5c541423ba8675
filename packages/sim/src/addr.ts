/**
 * Address helpers for the packet walk: addresses as bigint (both families share one code path),
 * prefixes as inclusive [base, last] ranges, and a flat interval map that answers longest-prefix
 * lookups by binary search and splits sorted address runs where the winning prefix changes.
 */
import { ConfigError, Prefix, fnv1a32, formatAddress, parseAddress, type Family } from "@cnikit/core";

const COMPONENT = "sim";

export interface Addr {
  family: Family;
  value: bigint;
}

const addrCache = new Map<string, Addr>();

/** Fast path for canonical dotted quads (no leading zeros); undefined = use the full parser. */
function quickV4(text: string): bigint | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  let lead = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return undefined;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 0) lead = c === 48;
      else if (lead) return undefined;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return BigInt(value * 256 + part);
}

/** A field path for an error message, or a function that spells it out when an error needs it. */
export type FieldName = string | (() => string);

function fieldText(field: FieldName): string {
  return typeof field === "string" ? field : field();
}

/** Parses a plain address (IPv4 fast path, others cached). Throws `ConfigError` naming `field` for bad input. */
export function addr(text: string, field: FieldName = "address"): Addr {
  // Cached by text: a 1000-node mesh names each peer's addresses in every other node's tables, and
  // one shared value is both faster than parsing again and one bigint instead of a thousand.
  const hit = addrCache.get(text);
  if (hit) return hit;
  let parsed: Addr | undefined;
  if (typeof text === "string") {
    const v4 = quickV4(text);
    if (v4 !== undefined) parsed = { family: 4, value: v4 };
  }
  parsed ??= parseAddress(text, { field: fieldText(field), component: COMPONENT });
  if (addrCache.size > 100_000) addrCache.clear();
  addrCache.set(text, parsed);
  return parsed;
}

/** Formats an address value of a family canonically. */
export function fmt(value: bigint, family: Family): string {
  return formatAddress(value, family);
}

/** A prefix as an inclusive numeric range. */
export interface Range {
  family: Family;
  base: bigint;
  last: bigint;
  length: number;
  text: string;
}

const rangeCache = new Map<string, Range>();

/** Parses a CIDR (host bits must be zero). Throws `ConfigError` naming `field`. */
export function range(text: string, field: FieldName = "prefix"): Range {
  const cached = rangeCache.get(text);
  if (cached) return cached;
  if (typeof text === "string") {
    const slash = text.indexOf("/");
    if (slash > 0) {
      const v4 = quickV4(text.slice(0, slash));
      const lenText = text.slice(slash + 1);
      if (v4 !== undefined && /^(?:[0-9]|[12][0-9]|3[0-2])$/.test(lenText)) {
        const length = Number(lenText);
        const size = 1n << BigInt(32 - length);
        if (v4 % size === 0n) {
          const r: Range = { family: 4, base: v4, last: v4 + size - 1n, length, text };
          if (rangeCache.size > 200_000) rangeCache.clear();
          rangeCache.set(text, r);
          return r;
        }
      }
    }
  }
  const p = Prefix.parse(text, { field: fieldText(field), component: COMPONENT });
  const r: Range = { family: p.family, base: p.base, last: p.last, length: p.length, text: p.toString() };
  if (rangeCache.size > 200_000) rangeCache.clear();
  rangeCache.set(text, r);
  return r;
}

/** Parses an interface address `10.1.2.3/24` into the address and its connected range. */
export function ifaceAddr(text: string, field = "cidr"): { address: Addr; net: Range } {
  if (typeof text !== "string" || !text.includes("/")) {
    throw new ConfigError({ component: COMPONENT, field, rule: "must be an interface address with prefix length, e.g. 10.244.1.1/24", value: text });
  }
  const slash = text.indexOf("/");
  const address = addr(text.slice(0, slash), field);
  const lenText = text.slice(slash + 1);
  if (address.family === 4 && /^(?:[0-9]|[12][0-9]|3[0-2])$/.test(lenText)) {
    const length = Number(lenText);
    const size = 1n << BigInt(32 - length);
    const base = address.value - (address.value % size);
    return { address, net: { family: 4, base, last: base + size - 1n, length, text: `${fmt(base, 4)}/${length}` } };
  }
  const p = Prefix.parse(text, { field, component: COMPONENT, allowHostBits: true });
  return { address, net: { family: p.family, base: p.base, last: p.last, length: p.length, text: p.toString() } };
}

export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

export function hostRange(a: Addr): Range {
  return { family: a.family, base: a.value, last: a.value, length: bitsOf(a.family), text: `${fmt(a.value, a.family)}/${bitsOf(a.family)}` };
}

export function inRanges(value: bigint, family: Family, ranges: readonly Range[]): boolean {
  for (const r of ranges) if (r.family === family && value >= r.base && value <= r.last) return true;
  return false;
}

/** Index of the first element of sorted `arr` in [lo, hi) that is >= value. */
export function lowerBound(arr: readonly bigint[], value: bigint, lo = 0, hi = arr.length): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Disjoint intervals covering one family's whole address space, each carrying the value of the
 * most specific prefix that covers it (or undefined). Built once per dataplane change.
 */
export class IntervalMap<T> {
  private readonly starts: bigint[];
  private readonly values: (T | undefined)[];
  /**
   * IPv4: the starts as numbers (exact below 2^53), so that searches compare doubles in a flat
   * array instead of chasing one heap bigint per probe.
   */
  private readonly nums: Float64Array | undefined;

  private constructor(starts: bigint[], values: (T | undefined)[], family: Family) {
    this.starts = starts;
    this.values = values;
    // (not for the few intervals of a pod's table: a typed array per map costs more than it saves)
    this.nums = family === 4 && starts.length >= 16 ? numbersOf(starts) : undefined;
  }

  /**
   * Builds the map. `entries` must have distinct prefixes (callers resolve duplicates first); a
   * more specific prefix wins inside a less specific one.
   */
  static build<T>(family: Family, entries: readonly { range: Range; value: T }[]): IntervalMap<T> {
    const sorted = [...entries].sort((a, b) => (a.range.base < b.range.base ? -1 : a.range.base > b.range.base ? 1 : a.range.length - b.range.length));
    const starts: bigint[] = [];
    const values: (T | undefined)[] = [];
    const end = (1n << BigInt(bitsOf(family))) - 1n;
    let cursor = 0n;
    const stack: { range: Range; value: T }[] = [];
    const emit = (upTo: bigint): void => {
      // interval [cursor, upTo) with the value on top of the stack
      if (upTo <= cursor) return;
      const v = stack.length > 0 ? stack[stack.length - 1]!.value : undefined;
      if (values.length > 0 && values[values.length - 1] === v) {
        cursor = upTo;
        return;
      }
      starts.push(cursor);
      values.push(v);
      cursor = upTo;
    };
    for (const e of sorted) {
      while (stack.length > 0 && stack[stack.length - 1]!.range.last < e.range.base) {
        emit(stack[stack.length - 1]!.range.last + 1n);
        stack.pop();
      }
      emit(e.range.base);
      stack.push(e);
    }
    while (stack.length > 0) {
      emit(stack[stack.length - 1]!.range.last + 1n);
      stack.pop();
    }
    emit(end + 1n);
    if (starts.length === 0) {
      starts.push(0n);
      values.push(undefined);
    }
    return new IntervalMap(starts, values, family);
  }

  private indexOf(value: bigint): number {
    // last start <= value
    if (this.nums !== undefined) return lastAtMostNum(this.nums, Number(value), 0);
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= value) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The value of the most specific prefix covering `value`. */
  lookup(value: bigint): T | undefined {
    return this.values[this.indexOf(value)];
  }

  /**
   * Splits the sorted run `addrs[i..j)` into maximal sub-runs that share one value, calling `fn`
   * for each in address order.
   */
  partition(addrs: readonly bigint[], i: number, j: number, fn: (i: number, j: number, value: T | undefined) => void, nums?: Float64Array): void {
    // Both sides are sorted: each step searches forward from where the last one ended (galloping),
    // so a run over a thousand prefixes costs a few comparisons per prefix, not two binary searches.
    // `nums`: the same run as numbers (IPv4), searched without bigints when this map has them too.
    const starts = this.starts;
    const ns = this.nums;
    if (ns !== undefined && nums !== undefined) {
      let k = i;
      let idx = -1;
      while (k < j) {
        const v = nums[k]!;
        idx = lastAtMostNum(ns, v, idx < 0 ? 0 : idx);
        const m = idx + 1 < ns.length ? gallopLowerBoundNum(nums, ns[idx + 1]!, k + 1, j) : j;
        fn(k, m, this.values[idx]);
        k = m;
      }
      return;
    }
    let k = i;
    let idx = -1;
    while (k < j) {
      idx = idx < 0 ? this.indexOf(addrs[k]!) : lastAtMostFrom(starts, addrs[k]!, idx);
      const next = starts[idx + 1];
      const m = next === undefined ? j : gallopLowerBound(addrs, next, k + 1, j);
      fn(k, m, this.values[idx]);
      k = m;
    }
  }
}

/** Index of the last element of sorted `arr` that is <= value, given that `arr[from] <= value`. */
function lastAtMostFrom(arr: readonly bigint[], value: bigint, from: number): number {
  const n = arr.length;
  let lo = from;
  let hi = from + 1;
  let step = 1;
  while (hi < n && arr[hi]! <= value) {
    lo = hi;
    hi = lo + step;
    step *= 2;
  }
  let h = Math.min(hi, n) - 1;
  while (lo < h) {
    const mid = (lo + h + 1) >>> 1;
    if (arr[mid]! <= value) lo = mid;
    else h = mid - 1;
  }
  return lo;
}

/** `lowerBound` searching forward from `lo` in growing steps (cheap when the answer is near `lo`). */
function gallopLowerBound(arr: readonly bigint[], value: bigint, lo: number, hi: number): number {
  let from = lo;
  let probe = lo;
  let step = 1;
  while (probe < hi && arr[probe]! < value) {
    from = probe + 1;
    probe += step;
    step *= 2;
  }
  return lowerBound(arr, value, from, Math.min(probe, hi));
}

/** IPv4 values as numbers (for `IntervalMap.partition`'s `nums` and the map's own starts). */
export function numbersOf(values: readonly bigint[]): Float64Array {
  const out = new Float64Array(values.length);
  for (let k = 0; k < values.length; k++) out[k] = Number(values[k]!);
  return out;
}

/**
 * Index of the last element of sorted `arr` that is <= value, given that `arr[from] <= value` (or from = 0).
 * The Float64Array twin of `lastAtMostFrom` (and `gallopLowerBoundNum` of `gallopLowerBound`): one
 * generic over `bigint | number` would see both element kinds at one call site, and V8 then keeps
 * neither comparison fast — these searches are the reachability walk's innermost loop.
 */
function lastAtMostNum(arr: Float64Array, value: number, from: number): number {
  const n = arr.length;
  let lo = from;
  let hi = from + 1;
  let step = 1;
  while (hi < n && arr[hi]! <= value) {
    lo = hi;
    hi = lo + step;
    step *= 2;
  }
  let h = Math.min(hi, n) - 1;
  while (lo < h) {
    const mid = (lo + h + 1) >>> 1;
    if (arr[mid]! <= value) lo = mid;
    else h = mid - 1;
  }
  return lo;
}

/** First index in [lo, hi) of sorted `arr` whose element is >= value, searching forward from `lo` in growing steps. */
function gallopLowerBoundNum(arr: Float64Array, value: number, lo: number, hi: number): number {
  let from = lo;
  let probe = lo;
  let step = 1;
  while (probe < hi && arr[probe]! < value) {
    from = probe + 1;
    probe += step;
    step *= 2;
  }
  let h = Math.min(probe, hi);
  while (from < h) {
    const mid = (from + h) >>> 1;
    if (arr[mid]! < value) from = mid + 1;
    else h = mid;
  }
  return from;
}

/** Two lower-case hex digits per byte value. */
const HEX: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** Stable, locally administered fake MAC derived from a name (for links whose MAC is not given). */
export function fakeMac(seed: string): string {
  // Two independent hashes: FNV-1a, and the same walk from another basis with another multiplier.
  const h1 = fnv1a32(seed);
  const h2 = fnv1a32(seed, 0x01000193, 0x5bd1e995);
  return `02:${HEX[h1 & 0xff]}:${HEX[(h1 >>> 8) & 0xff]}:${HEX[(h1 >>> 16) & 0xff]}:${HEX[h2 & 0xff]}:${HEX[(h2 >>> 8) & 0xff]}`;
}

const V6_TAG = 1n << 128n;

/**
 * Map key of an address that keeps the families apart (an IPv6 value never equals an IPv4 one).
 */
export function fkey(family: Family, value: bigint): bigint {
  return family === 4 ? value : value + V6_TAG;
}

/** Lower-case MAC text for comparisons. */
export function normMac(mac: string): string {
  return mac.toLowerCase();
}
