/**
 * Address intervals `[lo, hi]` (inclusive, as bigints): the shape nftables interval sets take, and
 * what "these CIDRs except those" becomes. Shared by @cnikit/netpol's and @cnikit/linux's nft
 * compilers.
 */
import { formatAddress } from "./prefix.ts";

/** A closed interval of addresses `[lo, hi]`. */
export type Interval = readonly [bigint, bigint];

const BITS: Record<4 | 6, number> = { 4: 32, 6: 128 };

/** Sorted, disjoint, non-adjacent union of `list`. Pure. */
export function mergeIntervals(list: readonly Interval[]): [bigint, bigint][] {
  const sorted = [...list].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) {
      if (hi > last[1]) last[1] = hi;
    } else out.push([lo, hi]);
  }
  return out;
}

/** `[lo, hi]` minus the sorted, merged intervals `cut`. Pure. */
export function subtractIntervals(lo: bigint, hi: bigint, cut: readonly Interval[]): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  let start = lo;
  for (const [a, b] of cut) {
    if (b < start || a > hi) continue;
    if (a > start) out.push([start, a - 1n]);
    start = b + 1n;
    if (start > hi) return out;
  }
  if (start <= hi) out.push([start, hi]);
  return out;
}

/** Text of an address interval: one address, a prefix when aligned, else `lo-hi` (nft syntax). */
export function intervalText(lo: bigint, hi: bigint, family: 4 | 6): string {
  if (lo === hi) return formatAddress(lo, family);
  const size = hi - lo + 1n;
  if ((size & (size - 1n)) === 0n && lo % size === 0n) {
    let len = BITS[family];
    for (let s = size; s > 1n; s >>= 1n) len--;
    return `${formatAddress(lo, family)}/${len}`;
  }
  return `${formatAddress(lo, family)}-${formatAddress(hi, family)}`;
}
