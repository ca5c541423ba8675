/**
 * The decision process of RFC 4271 §9.1.2, with the route-reflection tie-breakers of RFC 4456 §9.
 * Candidates are removed in rounds, exactly in the order the RFC lists, which matters for MED:
 * (c) compares MED only between routes from the same neighbouring AS, so it is not a total order
 * and cannot be done as one pairwise sort.
 *
 * Locally originated routes are preferred over every learned route (like a higher protocol
 * preference in BIRD, or weight in other implementations); among learned routes:
 *   degree of preference (LOCAL_PREF, 100 when absent) → (a) shortest AS_PATH (an AS_SET counts 1)
 *   → (b) lowest ORIGIN → (c) lowest MED among routes from the same neighbour AS (missing = 0)
 *   → (d) eBGP over iBGP → (e) lowest IGP cost to the next hop → (f) lowest BGP Identifier
 *   (ORIGINATOR_ID when present) → (f') shortest CLUSTER_LIST → (g) lowest peer address.
 * Stale routes (graceful restart) lose to non-stale ones before all of that (RFC 4724 §4.2 keeps
 * them only until replaced).
 */
import { parseAddressBytes, parseIpv4 } from "./codec/address.ts";
import { asPathLength, neighborAs } from "./codec/update.ts";
import type { Route } from "./rib.ts";

/** Inputs the decision process needs besides the candidates. */
export interface DecisionContext {
  /** LOCAL_PREF assumed when a route has none. */
  defaultLocalPref: number;
  /** IGP cost to a next hop, or undefined when it cannot be resolved (§9.1.2.1). Default: 0 for all. */
  igpCost?: (nextHop: string) => number | undefined;
}

function keepMin<T>(list: T[], score: (r: T) => number): T[] {
  if (list.length < 2) return list;
  let best = Infinity;
  for (const r of list) {
    const s = score(r);
    if (s < best) best = s;
  }
  return list.filter((r) => score(r) === best);
}

function addressScore(text: string): number {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return v4;
  const b = parseAddressBytes(text);
  if (!b) return Number.MAX_SAFE_INTEGER;
  // Order IPv6 after every IPv4 address, by the first 6 octets (enough to break real ties).
  let n = 0;
  for (let i = 0; i < 6; i++) n = n * 256 + b[i]!;
  return 2 ** 32 + n;
}

/**
 * Picks the best of `routes` (§9.1.2), or undefined when none is eligible. Pure; the result does
 * not depend on the order of `routes`.
 */
export function selectBest(routes: readonly Route[], ctx: DecisionContext): Route | undefined {
  if (routes.length === 1) {
    // One candidate (most prefixes): no candidate arrays.
    const r = routes[0]!;
    return r.ineligible === undefined && resolvable(r, ctx) ? r : undefined;
  }
  let c = routes.filter((r) => r.ineligible === undefined);
  if (c.length === 0) return undefined;
  if (c.length === 1) return resolvable(c[0]!, ctx) ? c[0] : undefined;
  c = c.filter((r) => resolvable(r, ctx));
  if (c.length <= 1) return c[0];
  const local = c.filter((r) => r.source.kind === "local");
  if (local.length > 0) c = local;
  c = keepMin(c, (r) => (r.stale ? 1 : 0));
  c = keepMin(c, (r) => -(r.attributes.localPref ?? ctx.defaultLocalPref));
  c = keepMin(c, (r) => asPathLength(r.attributes.asPath));
  c = keepMin(c, (r) => r.attributes.origin);
  if (c.length > 1) {
    // (c) per neighbour AS: drop routes whose MED is higher than the lowest of their group.
    const lowest = new Map<number, number>();
    // A route with an empty path (from inside our AS) has no neighbour AS; those form one group.
    const nas = (r: Route): number => neighborAs(r.attributes.asPath) ?? -1;
    for (const r of c) {
      const k = nas(r);
      const m = r.attributes.med ?? 0;
      const cur = lowest.get(k);
      if (cur === undefined || m < cur) lowest.set(k, m);
    }
    c = c.filter((r) => (r.attributes.med ?? 0) === lowest.get(nas(r)));
  }
  c = keepMin(c, (r) => (r.source.kind === "peer" && !r.source.ibgp ? 0 : 1));
  if (ctx.igpCost) c = keepMin(c, (r) => ctx.igpCost!(r.attributes.nextHop) ?? Infinity);
  c = keepMin(c, (r) => parseIpv4(r.attributes.originatorId ?? r.source.routerId) ?? 0);
  c = keepMin(c, (r) => r.attributes.clusterList?.length ?? 0);
  c = keepMin(c, (r) => addressScore(r.source.address));
  c = keepMin(c, (r) => r.pathId);
  return c[0];
}

function resolvable(r: Route, ctx: DecisionContext): boolean {
  if (!ctx.igpCost || r.source.kind === "local") return true;
  return ctx.igpCost(r.attributes.nextHop) !== undefined;
}
