/**
 * Runs BGP over a message-oriented peer transport (such as cnikit's PeerTransport, which agents
 * use to reach each other by name). The types below are structural: any object of this shape fits,
 * so this package keeps no dependency on cnikit. Each message carries a chunk of the BGP byte
 * stream; sessions reassemble BGP messages themselves, as over TCP.
 */
import type { BgpStream, BgpTransport, ConnectTarget } from "./types.ts";

/** A connection of a message transport (the shape of cnikit's PeerConnection). */
export interface PeerConnectionLike {
  readonly remote: string;
  send(message: Uint8Array): void;
  onMessage(handler: (message: Uint8Array) => void): void;
  onClose(handler: (reason: string) => void): void;
  close(reason?: string): void;
  readonly closed: boolean;
}

/** A message transport (the shape of cnikit's PeerTransport). */
export interface PeerTransportLike {
  readonly self: string;
  listen(service: string, onConnection: (connection: PeerConnectionLike) => void): () => void;
  connect(peer: string, service: string): Promise<PeerConnectionLike>;
}

/** Options of `peerTransportAdapter`. */
export interface PeerTransportAdapterOptions {
  /** Service name to listen on and connect to (default `bgp`). */
  service?: string;
  /** Maps a configured peer address (an IP) to the agent name to dial. Default: the address itself. */
  nameOf?: (address: string) => string;
  /** Maps an agent name to the address its BGP peer entry uses. Default: the name itself. */
  addressOf?: (name: string) => string;
  /** Our own address as the speaker should see it (default: addressOf(self)). */
  localAddress?: string;
}

class MessageStream implements BgpStream {
  constructor(
    private readonly conn: PeerConnectionLike,
    readonly localAddress: string,
    readonly remoteAddress: string,
  ) {}

  write(data: Uint8Array): void {
    if (!this.conn.closed) this.conn.send(data);
  }

  end(): void {
    // Messages already sent are delivered before the close on an ordered transport.
    this.conn.close("closed");
  }

  destroy(): void {
    this.conn.close("reset");
  }

  onData(handler: (chunk: Uint8Array) => void): void {
    this.conn.onMessage(handler);
  }

  onClose(handler: (reason: string) => void): void {
    this.conn.onClose(handler);
  }
}

/** Adapts a message transport to a BgpTransport. `listen` never rejects; `connect` rejects as the transport does. */
export function peerTransportAdapter(transport: PeerTransportLike, options: PeerTransportAdapterOptions = {}): BgpTransport {
  const service = options.service ?? "bgp";
  const nameOf = options.nameOf ?? ((a: string) => a);
  const addressOf = options.addressOf ?? ((n: string) => n);
  const local = options.localAddress ?? addressOf(transport.self);
  return {
    async listen(onStream) {
      const stop = transport.listen(service, (conn) => onStream(new MessageStream(conn, local, addressOf(conn.remote))));
      return async () => stop();
    },
    async connect(target: ConnectTarget) {
      const conn = await transport.connect(nameOf(target.address), service);
      return new MessageStream(conn, local, target.address);
    },
  };
}
