/**
 * The byte-stream contract sessions run over. TCP sockets, in-memory pipes and cnikit PeerTransport
 * connections are all adapted to it, so the same session code runs on each.
 */

/** One ordered, reliable byte stream (one BGP connection). */
export interface BgpStream {
  /** Our address on this connection (an IP address for TCP; any name for other transports). */
  readonly localAddress: string;
  /** The remote end's address; the speaker matches it against its configured peers. */
  readonly remoteAddress: string;
  /** Queues bytes for sending. Ignored after the stream closed. Never blocks. */
  write(data: Uint8Array): void;
  /** Closes after the queued bytes are sent (TCP FIN). Idempotent. */
  end(): void;
  /** Closes at once, dropping queued bytes (TCP RST). Idempotent. */
  destroy(): void;
  /** Registers the receiver of incoming bytes (one; a second call replaces it). */
  onData(handler: (chunk: Uint8Array) => void): void;
  /** Called once when the stream is closed by either side or fails. */
  onClose(handler: (reason: string) => void): void;
}

/** Where a speaker dials a peer. */
export interface ConnectTarget {
  /** The peer's address as configured. */
  address: string;
  /** TCP port (179 unless configured). Ignored by transports without ports. */
  port: number;
  /** Local address to bind, when configured. */
  localAddress?: string;
}

/** Opens and accepts BGP connections. */
export interface BgpTransport {
  /**
   * Starts accepting connections; `onStream` gets each new one. Resolves, once listening, to a
   * function that stops listening (open streams stay open). Rejects when the address is taken.
   */
  listen(onStream: (stream: BgpStream) => void): Promise<() => Promise<void>>;
  /** Opens a connection; rejects when the peer cannot be reached. */
  connect(target: ConnectTarget): Promise<BgpStream>;
}
