/**
 * Address-space arithmetic of the IPAM ring, on offsets from the range's first address (numbers:
 * the ring is IPv4, so at most 2^32 addresses). Pure functions over a peer's owned ranges
 * (half-open [start, end) offsets) and the offsets it has taken (allocated or reserved).
 *
 *  - `firstFree`: lowest free offset in owned space (first-fit, lowest address first);
 *  - `freeIn`: free addresses of one range;
 *  - `largestFreeBlock`: the largest CIDR-aligned block (2^k addresses starting at a multiple of
 *    2^k, so a real prefix since the range itself is a prefix) entirely free and inside one owned
 *    range, at most `limit` addresses; among equals the highest one, so a donor keeps its low
 *    addresses (where its own first-fit allocation packs).
 */

/** A half-open range of offsets [start, end). */
export type OffsetRange = readonly [start: number, end: number];

/** Lowest offset in `ranges` (sorted or not) that `taken` does not hold, or undefined. */
export function firstFree(ranges: readonly OffsetRange[], taken: ReadonlySet<number>): number | undefined {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  for (const [start, end] of sorted) {
    for (let o = start; o < end; o++) if (!taken.has(o)) return o;
  }
  return undefined;
}

/** Number of offsets of [start, end) that `taken` does not hold. */
export function freeIn(range: OffsetRange, taken: ReadonlySet<number>): number {
  let used = 0;
  for (const o of taken) if (o >= range[0] && o < range[1]) used++;
  return range[1] - range[0] - used;
}

/** Free sub-intervals of [start, end), ascending. */
export function freeIntervals(range: OffsetRange, taken: ReadonlySet<number>): OffsetRange[] {
  const cuts = [...taken].filter((o) => o >= range[0] && o < range[1]).sort((a, b) => a - b);
  const out: OffsetRange[] = [];
  let at = range[0];
  for (const c of cuts) {
    if (c > at) out.push([at, c]);
    at = c + 1;
  }
  if (at < range[1]) out.push([at, range[1]]);
  return out;
}

/** Largest power of two <= n (n >= 1). */
export function floorPow2(n: number): number {
  return n < 1 ? 0 : 2 ** Math.floor(Math.log2(n));
}

/**
 * The largest free CIDR-aligned block inside one of `ranges`, of at most `limit` addresses
 * (limit >= 1), or undefined when nothing is free. Among blocks of the largest size, the highest.
 */
export function largestFreeBlock(ranges: readonly OffsetRange[], taken: ReadonlySet<number>, limit: number): OffsetRange | undefined {
  let best: OffsetRange | undefined;
  const cap = floorPow2(limit);
  if (cap < 1) return undefined;
  for (const range of ranges) {
    for (const [a, b] of freeIntervals(range, taken)) {
      for (let size = Math.min(cap, floorPow2(b - a)); size >= 1; size /= 2) {
        // The highest aligned block of this size inside [a, b).
        const start = Math.floor((b - size) / size) * size;
        if (start >= a) {
          const bestSize = best ? best[1] - best[0] : 0;
          if (size > bestSize || (size === bestSize && best !== undefined && start > best[0])) best = [start, start + size];
          break;
        }
      }
    }
  }
  return best;
}

/**
 * The initial split: `members` (sorted by the caller) get CIDR-aligned shares of a range of `size`
 * addresses (a power of two) by recursive halving: the range is halved until there are at least as
 * many blocks as members (or blocks of one address), member i takes block i, and the blocks left
 * over go to the first members in order — so every share is aligned and shares differ at most by
 * one block. Returns [start offset, member] pairs sorted by start, one per block.
 */
export function splitRange(size: number, members: readonly string[]): Array<[number, string]> {
  if (members.length === 0) return [];
  let blocks = 1;
  while (blocks < members.length && blocks < size) blocks *= 2;
  const blockSize = size / blocks;
  const out: Array<[number, string]> = [];
  for (let i = 0; i < blocks; i++) out.push([i * blockSize, members[i % members.length]!]);
  return out;
}
