/**
 * What the BGP scenarios learn of BGP sessions, through the contract only: the optional
 * `NodeAgent.bgpSessions()` (@cnikit/core), never a backend's internals. Times are the agents'
 * clock (the simulator's virtual clock), taken from t0.
 *
 *  - `bgp-session`: every session of a cold start, from t0 to Established and to the peer's
 *    End-of-RIB (RFC 4724 §2: the peer's initial table is complete).
 *  - `graceful-restart` of a BGP backend: the sessions of the other nodes with the restarting one,
 *    from t0 to Established again and to its End-of-RIB, which flushes the routes they kept stale.
 */
import type { BgpSessionStatus } from "@cnikit/core";
import type { Harness } from "@cnikit/conformance/runner";

/** Why a BGP scenario does not apply to a backend (completed by the runner with its name). */
export const NO_BGP_SESSIONS = "exposes no BGP sessions (NodeAgent.bgpSessions)";

/** One run's BGP figures: over the sessions measured, ms from t0. */
export interface BgpFigures {
  /** Sessions measured, each as one node reports it (a full mesh of N: N(N−1)). */
  sessions: number;
  /** The last session to reach Established. */
  establishedMs: number;
  /** The last End-of-RIB received: every measured peer's table complete (stale routes flushed). */
  endOfRibMs: number;
}

/** The node's BGP sessions, or undefined when its agent exposes none (not a BGP backend). */
export function sessionsOf(h: Harness, node: string): BgpSessionStatus[] | undefined {
  const agent = h.cluster.node(node).agent;
  return typeof agent.bgpSessions === "function" ? agent.bgpSessions() : undefined;
}

/** Whether the agents of `nodes` speak BGP (they expose `bgpSessions`). */
export function speaksBgp(h: Harness, nodes: readonly string[]): boolean {
  return nodes.length > 0 && nodes.every((n) => sessionsOf(h, n) !== undefined);
}

/** A session as `node` reports it, with the node's name. */
export interface NodeSession extends BgpSessionStatus {
  node: string;
}

/**
 * What keeps a session from being complete since t0: not Established, no End-of-RIB since t0, or
 * routes still kept stale. Undefined when it is complete.
 */
export function incomplete(s: NodeSession, t0: number): string | undefined {
  if (s.state !== "Established") return `${s.node}'s BGP session with ${s.peer} is ${s.state}`;
  if (s.endOfRibReceivedAt === undefined || s.endOfRibReceivedAt < t0) return `${s.node} has no End-of-RIB from ${s.peer} yet`;
  if (s.staleRoutes > 0) return `${s.node} still keeps ${s.staleRoutes} stale route(s) of ${s.peer}`;
  return undefined;
}

/** The figures of complete sessions (every one has its End-of-RIB since t0). */
export function figuresOf(sessions: readonly NodeSession[], t0: number): BgpFigures {
  return {
    sessions: sessions.length,
    establishedMs: Math.max(0, ...sessions.map((s) => (s.establishedAt ?? t0) - t0)),
    endOfRibMs: Math.max(0, ...sessions.map((s) => (s.endOfRibReceivedAt ?? t0) - t0)),
  };
}

/** Every session of every node in `nodes`, as the nodes report them. */
export function allSessions(h: Harness, nodes: readonly string[]): NodeSession[] {
  return nodes.flatMap((node) => (sessionsOf(h, node) ?? []).map((s) => ({ ...s, node })));
}
