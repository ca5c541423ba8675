/**
 * The mesh's extension point, in the shape of weaveworks/mesh's Gossiper: a component (the IPAM
 * ring, the pod-address directory) registers a named channel and the mesh carries its state.
 *
 *  - `gossip()` is the component's complete state, sent to a newcomer and on the periodic full
 *    exchange; `onGossip(update)` merges a state (complete or delta) received from a neighbour and
 *    returns only what was new to this peer (the delta the mesh relays further), or undefined when
 *    nothing was new — so a round never relays what everyone already has;
 *  - `gossipBroadcast` is sent down this peer's broadcast tree (every peer receives it exactly once
 *    while the tree holds), `onGossipBroadcast(source, update)` merges it;
 *  - `gossipUnicast(peer, message)` is routed hop by hop to one peer (next hop by BFS), delivered to
 *    its `onGossipUnicast(source, message)`.
 *
 * Payloads are opaque bytes: the component owns its encoding. Handlers throw a `GossipRejected`
 * (code "GOSSIP_REJECTED") to refuse an update (an incompatible ring): the mesh logs the reason and
 * drops the connection it came on, as Weave does.
 */

/** What a component gives the mesh. */
export interface GossipHandler {
  /** The component's complete state (the newcomer's and the periodic full exchange's message). */
  gossip(): Uint8Array | undefined;
  /** Merges a received state; returns what was new here (to relay), undefined when nothing was. */
  onGossip(update: Uint8Array): Uint8Array | undefined;
  /** Merges a broadcast from `source` (a peer name). */
  onGossipBroadcast(source: string, update: Uint8Array): void;
  /** A message routed to this peer from `source`. */
  onGossipUnicast(source: string, message: Uint8Array): void;
}

/** What the mesh gives a component for one channel. */
export interface GossipChannel {
  /** Queues `update` for gossip to neighbours (coalesced with other pending updates ≤ 1 s). */
  gossip(update: Uint8Array): void;
  /** Sends `update` down this peer's broadcast tree. */
  gossipBroadcast(update: Uint8Array): void;
  /** Routes `message` to peer `name`; false when no route is known (the peer is unreachable). */
  gossipUnicast(name: string, message: Uint8Array): boolean;
}

/** A handler's refusal of an update: the mesh drops the connection it arrived on. */
export class GossipRejected extends Error {
  readonly code = "GOSSIP_REJECTED";
  constructor(message: string) {
    super(message);
    this.name = "GossipRejected";
  }
}
