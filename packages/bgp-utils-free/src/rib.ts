/**
 * Route and RIB types (RFC 4271 §3.2): each peer's Adj-RIB-In holds the routes it sent (after the
 * import policy), the Loc-RIB holds every candidate per prefix and the one the decision process
 * picked, and each peer's Adj-RIB-Out holds what we advertised to it.
 */
import type { RouteAttributes } from "./codec/update.ts";

/** Where a route came from. Shared by all routes of one peer session (or all local routes). */
export interface RouteSource {
  /** `local` for routes this speaker originates, `peer` for learned ones. */
  kind: "local" | "peer";
  /** The peer's address (its key), or `local`. */
  address: string;
  /** The peer's AS (ours for local routes). */
  asn: number;
  /** The peer's BGP Identifier (ours for local routes). */
  routerId: string;
  /** Learned over iBGP. */
  ibgp: boolean;
  /** The peer is one of our route-reflector clients (RFC 4456). */
  rrClient: boolean;
}

/** One path to a prefix. Immutable except `stale`. */
export interface Route {
  readonly prefix: string;
  readonly afi: number;
  readonly safi: number;
  /** ADD-PATH path identifier as received (0 without ADD-PATH). */
  readonly pathId: number;
  readonly attributes: RouteAttributes;
  readonly source: RouteSource;
  /** Time (clock ms) the route arrived; used for nothing in selection, shown in the CLI. */
  readonly receivedAt: number;
  /** Kept from a session that went down under graceful restart, or during an enhanced route refresh. */
  stale: boolean;
  /** Why the route cannot be selected (AS loop, ORIGINATOR_ID/CLUSTER_LIST loop, unresolvable next hop); undefined when it can. */
  readonly ineligible?: string;
  /** For local routes: the next hop was given explicitly (else each peer gets our session address). */
  readonly explicitNextHop?: boolean;
}

/** All candidates for one prefix and the selected one. */
export interface PrefixEntry {
  readonly prefix: string;
  readonly afi: number;
  readonly safi: number;
  routes: Route[];
  best: Route | undefined;
}

/** A Loc-RIB change, as the event API reports it. */
export interface RouteEvent {
  type: "added" | "changed" | "withdrawn";
  prefix: string;
  /** The selected route now (absent for `withdrawn`). */
  route?: Route;
  /** The selected route before (absent for `added`). */
  previous?: Route;
}
