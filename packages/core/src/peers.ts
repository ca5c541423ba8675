/**
 * PeerTransport: framed message streams between agents (BGP sessions, gossip). The same agent code
 * runs over the in-memory network (tests, simulator, with fault injection) and over TCP (real hosts).
 *
 * A connection is ordered and reliable while it is open, like TCP: loss, duplication and
 * reordering injected by the memory network apply to the *datagrams* channel and, for streams, show
 * up the way they would on a real network — as delay or as a connection reset — so protocol code
 * sees the failures it would see in production. A partition stalls streams and, after the network's
 * `resetAfterMs`, resets them.
 */

export interface PeerConnection {
  /** The remote agent's name. */
  readonly remote: string;
  /** The service the connection was opened for (e.g. `bgp`, `gossip`). */
  readonly service: string;
  /** Queues one message. Throws `ClosedError` after close. Never blocks. */
  send(message: Uint8Array): void;
  /** Registers the message handler (one per connection; a second call replaces it). */
  onMessage(handler: (message: Uint8Array) => void): void;
  /** Called once when either side closes or the transport resets the connection. */
  onClose(handler: (reason: string) => void): void;
  /** Closes both directions. Idempotent. */
  close(reason?: string): void;
  readonly closed: boolean;
}

export interface PeerTransport {
  /** This agent's name on the network. */
  readonly self: string;
  /**
   * Accepts connections for `service`. Returns a function that stops listening (open connections
   * stay open). Listening twice on one service throws.
   */
  listen(service: string, onConnection: (connection: PeerConnection) => void): () => void;
  /**
   * Opens a connection to `peer`'s `service`. Rejects with `TryAgainError` (code 11) when the peer
   * is unreachable, not listening, or partitioned away.
   */
  connect(peer: string, service: string): Promise<PeerConnection>;
  /** Unreliable, unordered datagrams (gossip heartbeats). Lost silently when unreachable. */
  sendDatagram(peer: string, service: string, message: Uint8Array): void;
  /** Receives datagrams for `service`; returns an unsubscribe function. */
  onDatagram(service: string, handler: (from: string, message: Uint8Array) => void): () => void;
  /** Closes every connection and listener of this agent. Idempotent. */
  close(): void;
}
