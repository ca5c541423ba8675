/**
 * The controller's pure address arithmetic (no I/O, no clock): which addresses of a subnet Azure
 * reserves, the lowest free addresses or blocks of a prefix, and the fair split of a short supply
 * among the nodes that ask (water-filling). Used by controller.ts; tested through it and directly.
 *
 *  - `isAzureReserved`: Azure keeps 5 addresses of every subnet (sizing.ts counts them): the
 *    network address, the first three hosts (gateway and two DNS) and the broadcast address.
 *  - `lowestFreeAddresses(pool, taken, count)`: the `count` lowest addresses of `pool` that are not
 *    reserved and not in `taken` (numbers), in address order.
 *  - `lowestFreeBlocks(pool, length, taken, count, eligible)`: the same for sub-prefixes.
 *  - `fairShares(asks, supply)`: how many of `supply` addresses each asker gets: max-min fair (the
 *    one holding fewest is served first, up to what it asks), ties by name order.
 */
import { Prefix, parseAddress } from "@cnikit/core";
import { usableAddresses } from "./sizing.ts";

/** Whether `value` (an address of `pool`'s family, as a number) is one Azure reserves in `pool`. */
export function isAzureReserved(pool: Prefix, value: bigint): boolean {
  const off = value - pool.base;
  return (off >= 0n && off <= 3n) || value === pool.last;
}

/** The number of an address (its family's integer value). */
export function addressValue(address: string): bigint {
  return parseAddress(address).value;
}

/**
 * The `count` lowest addresses of `pool` that are neither Azure-reserved nor in `taken` (address
 * numbers), in address order. Fewer when the pool has fewer. Cost: O(taken + count) set lookups.
 */
export function lowestFreeAddresses(pool: Prefix, taken: ReadonlySet<bigint>, count: number): string[] {
  const out: string[] = [];
  if (count <= 0) return out;
  for (let v = pool.base + 4n; v < pool.last && out.length < count; v++) {
    if (!taken.has(v)) out.push(pool.nth(v - pool.base));
  }
  return out;
}

/** How many addresses of `pool` are neither Azure-reserved nor in `taken` (numbers inside `pool`). */
export function freeAddressCount(pool: Prefix, taken: ReadonlySet<bigint>): number {
  let inside = 0;
  for (const v of taken) if (pool.contains(v) && !isAzureReserved(pool, v)) inside++;
  return usableAddresses(pool) - inside;
}

/**
 * The `count` lowest sub-prefixes of `length` in `pool` that `eligible` accepts and `taken`
 * (canonical CIDRs) does not hold, in address order. Fewer when the pool has fewer.
 */
export function lowestFreeBlocks(pool: Prefix, length: number, taken: ReadonlySet<string>, count: number, eligible: (block: Prefix) => boolean): string[] {
  const out: string[] = [];
  if (count <= 0) return out;
  for (const block of pool.subnets(length)) {
    if (out.length >= count) break;
    const cidr = block.toString();
    if (!taken.has(cidr) && eligible(block)) out.push(cidr);
  }
  return out;
}

/** One node's ask: it holds `have` and wants `want` more. */
export interface FairAsk {
  name: string;
  have: number;
  want: number;
}

/**
 * Splits `supply` among `asks` max-min fairly: the node holding fewest is raised first, never past
 * `have + want`; a level that cannot be reached by all goes one each in name order. Returns the
 * grant per name (0 included); the grants sum to min(supply, Σ want).
 */
export function fairShares(asks: readonly FairAsk[], supply: number): Map<string, number> {
  const grants = new Map<string, number>(asks.map((a) => [a.name, 0]));
  const total = asks.reduce((s, a) => s + Math.max(0, a.want), 0);
  if (total <= supply) {
    for (const a of asks) grants.set(a.name, Math.max(0, a.want));
    return grants;
  }
  if (supply <= 0) return grants;
  const upTo = (level: number): number => asks.reduce((s, a) => s + Math.max(0, Math.min(a.have + a.want, level) - a.have), 0);
  // Largest level L with upTo(L) ≤ supply (upTo grows with L).
  let lo = 0;
  let hi = Math.max(...asks.map((a) => a.have + a.want));
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (upTo(mid) <= supply) lo = mid;
    else hi = mid - 1;
  }
  let left = supply;
  for (const a of asks) {
    const g = Math.max(0, Math.min(a.have + a.want, lo) - a.have);
    grants.set(a.name, g);
    left -= g;
  }
  const sorted = [...asks].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const a of sorted) {
    if (left <= 0) break;
    const g = grants.get(a.name) ?? 0;
    if (a.have + g <= lo && g < a.want) {
      grants.set(a.name, g + 1);
      left--;
    }
  }
  return grants;
}
