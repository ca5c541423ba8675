/**
 * BGP over TCP (RFC 4271 §8: port 179). Nagle is turned off (`setNoDelay(true)`): the session
 * already coalesces everything it builds in one tick into one write, and the stream what it is
 * given in one event-loop turn (cork until setImmediate), so small UPDATEs never wait ~40 ms behind
 * a delayed ACK the way BIRD's do.
 */
import net from "node:net";
import type { BgpStream, BgpTransport, ConnectTarget } from "./types.ts";

/** The IANA BGP port. */
export const BGP_PORT = 179;

class TcpStream implements BgpStream {
  readonly localAddress: string;
  readonly remoteAddress: string;
  private closeHandler: ((reason: string) => void) | undefined;
  private closedReason: string | undefined;
  private lastError: string | undefined;
  private corked = false;

  constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    this.localAddress = normalize(socket.localAddress ?? "");
    this.remoteAddress = normalize(socket.remoteAddress ?? "");
    socket.on("error", (e: NodeJS.ErrnoException) => {
      this.lastError = e.code ?? e.message;
    });
    socket.on("close", () => {
      this.closedReason = this.lastError ? `connection failed: ${this.lastError}` : "connection closed";
      this.closeHandler?.(this.closedReason);
    });
  }

  write(data: Uint8Array): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    // Writes of one event-loop turn leave in one system call at its end: a reflector that hears
    // many clients in one turn writes each peer once, not once per client it heard.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(data);
  }

  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  onData(handler: (chunk: Uint8Array) => void): void {
    this.socket.removeAllListeners("data");
    this.socket.on("data", handler);
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    if (this.closedReason !== undefined) {
      const r = this.closedReason;
      queueMicrotask(() => handler(r));
    }
  }
}

/** IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as plain IPv4, so peers match their configuration. */
function normalize(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** Options of `tcpTransport`. */
export interface TcpTransportOptions {
  /** Address to listen on (default `0.0.0.0`); give the speaker's own address to listen only there. */
  listenAddress?: string;
  /** Port to listen on (default 179; 0 picks a free port, see `boundPort`). */
  listenPort?: number;
  /** Backlog of the listening socket. */
  backlog?: number;
}

/** A TCP transport plus the port it actually listens on (useful with `listenPort: 0`). */
export interface TcpTransport extends BgpTransport {
  /** The bound port once `listen` resolved; undefined before. */
  boundPort(): number | undefined;
}

/**
 * Creates a TCP transport. `listen` binds `listenAddress:listenPort`; `connect` dials the target,
 * binding `target.localAddress` when given. Errors: `listen` rejects with the socket error
 * (EADDRINUSE, EACCES), `connect` with the connect error (ECONNREFUSED, ...).
 */
export function tcpTransport(options: TcpTransportOptions = {}): TcpTransport {
  let bound: number | undefined;
  return {
    boundPort: () => bound,
    listen(onStream: (stream: BgpStream) => void): Promise<() => Promise<void>> {
      return new Promise((resolve, reject) => {
        const server = net.createServer({ noDelay: true }, (socket) => {
          onStream(new TcpStream(socket));
        });
        server.once("error", reject);
        server.listen({ host: options.listenAddress ?? "0.0.0.0", port: options.listenPort ?? BGP_PORT, backlog: options.backlog ?? 511 }, () => {
          server.off("error", reject);
          server.on("error", () => undefined);
          const addr = server.address();
          bound = typeof addr === "object" && addr ? addr.port : undefined;
          resolve(
            () =>
              new Promise<void>((done) => {
                server.close(() => done());
              }),
          );
        });
      });
    },
    connect(target: ConnectTarget): Promise<BgpStream> {
      return new Promise((resolve, reject) => {
        const opts: net.NetConnectOpts = { host: target.address, port: target.port, noDelay: true };
        if (target.localAddress !== undefined) opts.localAddress = target.localAddress;
        const socket = net.connect(opts);
        const onError = (e: Error): void => {
          socket.destroy();
          reject(e);
        };
        socket.once("error", onError);
        socket.once("connect", () => {
          socket.off("error", onError);
          resolve(new TcpStream(socket));
        });
      });
    },
  };
}
