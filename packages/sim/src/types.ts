/** Public result types of the packet walk and the reachability analysis. */
import type { Family, Protocol } from "@cnikit/core";

export type Endpoint =
  | { kind: "pod"; key: string }
  /** The node's host network namespace. */
  | { kind: "node"; name: string }
  /** An external host of the topology. */
  | { kind: "external"; name: string };

export interface Hop {
  /** Node, router or external name. */
  node: string;
  /** e.g. "pod-egress", "route", "vxlan-encap", "underlay", "bridge", "deliver". */
  stage: string;
  detail: string;
  /**
   * Only on hops that cross the underlay (stage "underlay"): whether the payload was visible on
   * the wire. Also spelled out in `detail` ("plaintext" / "encrypted").
   */
  payload?: "plaintext" | "encrypted";
}

export interface PacketResult {
  delivered: boolean;
  /** Source address the receiver sees (after any NAT). */
  seenSource?: string;
  /** Destination address used. */
  destination: string;
  path: Hop[];
  /** Why it was dropped ("no route to 10.1.2.3 at node n3", "filtered by rule np/x/y at node n2", "loop: ..."). */
  reason?: string;
  drop?: { node: string; stage: string; rule?: string };
  /** Whether the reply made it back (conntrack: allowed through filters, NAT reversed). Set when delivered. */
  replyDelivered?: boolean;
  /** Path of the reply, when one was walked. */
  replyPath?: Hop[];
  /** Why the reply was dropped. */
  replyReason?: string;
  /** Whether a NAT rule rewrote the source on the way. */
  natted?: boolean;
  /** Smallest MTU along the path (inner packet; tunnels count as underlay MTU minus overhead). */
  pathMtu?: number;
  /** Set when a packet of the sender's interface MTU would not fit `pathMtu`, saying where and why. */
  mtuProblem?: string;
}

export interface ReachabilityReport {
  pairs: number;
  delivered: number;
  /** Pairs that arrived with a source address different from the sender's own (NAT). */
  natted: number;
  /** Capped at `maxFailures` (default 20); each result comes from `send()` for the full path. */
  failures: { from: Endpoint; to: Endpoint; result: PacketResult }[];
  /** Number of failed pairs in total (not capped). */
  failed: number;
  /** The family probed when `ReachabilityOptions.family` was given (absent: each target's first address). */
  family?: Family;
  /**
   * Endpoints left out of every pair because they have no address of `family` (a pod without one,
   * a node with neither an underlay address nor a host-side dataplane address of it, an external
   * host of the other family): listed here, never counted as pairs, failed or delivered. Empty
   * when no family was asked for.
   */
  skipped: { endpoint: Endpoint; reason: string }[];
  wallMs: number;
}

export interface SendOptions {
  /** Default "tcp". */
  protocol?: Protocol;
  /** Destination port (ignored for icmp). Default 80. */
  port?: number;
  /**
   * Address family to use (default: the family of the destination's first address). A node without
   * an underlay address of it is addressed at its host-side dataplane address of it, as in
   * `ReachabilityOptions.family`.
   */
  family?: Family;
  /**
   * Size in bytes of the (inner) IP packet, sent with DF (don't fragment): when it exceeds the
   * smallest MTU on the path (the sender's interface, a link, a route MTU, a tunnel's underlay MTU
   * minus its overhead, an underlay subnet) the packet is dropped (stage "mtu") with a reason
   * naming that MTU and where it is. Absent = no size check (only `mtuProblem` is reported).
   * Honoured by `send`; the class-based `reachability` does not look at sizes.
   */
  size?: number;
}

export interface ReachabilityOptions {
  protocol?: Protocol;
  port?: number;
  /** Senders (default every pod). */
  from?: Endpoint[];
  /** Receivers (default every pod). */
  to?: Endpoint[];
  /** How many failures to report with a full `send()` result (default 20). */
  maxFailures?: number;
  /**
   * Probe this address family: each pod at its address of the family, each node at its underlay
   * address of the family or else the first address of the family its dataplane puts on the host
   * side (`addresses`), each external host if it is of the family. Endpoints without one are left
   * out and listed in `skipped`. Absent: each target at its first address (a pod's first, a node's
   * first underlay address), senders at their own address of that target's family.
   */
  family?: Family;
}

/** One pair's outcome as the class-based analysis computed it (for tests and tools). */
export interface PairOutcome {
  from: Endpoint;
  to: Endpoint;
  delivered: boolean;
  seenSource?: string;
  natted: boolean;
  reason?: string;
}
