/**
 * `TcpPeerTransport`: the `PeerTransport` contract (peers.ts) over real sockets, for agents on
 * real hosts (cnikitd). One TCP listener per agent carries every service; datagrams go over UDP on
 * the same address and port number.
 *
 * Streams. A connection is one TCP connection. Everything on it is a frame:
 *
 *     u32 length (big endian, counts the type byte and the payload) | u8 type | payload
 *
 * Types: 1 HELLO (JSON `{"v":1,"from":<name>,"service":<service>}`, first frame from the dialling
 * side), 2 WELCOME (JSON `{"v":1,"from":<name>}`, the listener accepts), 3 REFUSED (UTF-8 reason:
 * nobody listens on that service; the dialler's `connect` rejects with `TryAgainError`), 4 DATA
 * (one message), 5 CLOSE (UTF-8 reason, sent before a graceful FIN so the far end's `onClose` gets
 * the reason). A connection reset or a FIN without CLOSE reaches `onClose` as `"reset: <why>"` /
 * `"closed"`. The remote name is what the dialler says in HELLO: there is no authentication (the
 * same trust as calico's and flannel's unauthenticated peerings on the underlay).
 *
 * Datagrams. One UDP packet per datagram, `u8 version (1) | u8 len | from | u8 len | service |
 * payload`, at most `MAX_DATAGRAM_BYTES` of payload (the rest of a UDP packet's 65507 bytes). They
 * are unreliable and unordered as the contract says; a datagram to a peer whose address cannot be
 * resolved, or that nobody handles, is dropped silently.
 *
 * Peers are found by name through `resolve` (cnikitd reads `/cnikit/daemons/<node>` from the
 * cluster store). Nothing is retried here: `connect` rejects with `TryAgainError` (11) when the peer
 * cannot be resolved, refuses, does not answer within `connectTimeoutMs`, or resets; protocols
 * (BGP's ConnectRetry) dial again themselves.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { isIPv6 } from "node:net";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { AddressInUseError, ClosedError, ConfigError, TryAgainError } from "../errors.ts";
import type { PeerConnection, PeerTransport } from "../peers.ts";

const COMPONENT = "tcp-peers";

/** Largest message `send` takes (the frame length field allows more; this bounds memory per frame). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Largest datagram payload (a UDP packet carries 65507 bytes; the header takes the rest). */
export const MAX_DATAGRAM_BYTES = 65_000;

const FrameType = { hello: 1, welcome: 2, refused: 3, data: 4, close: 5 } as const;
type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Where a peer listens. */
export interface PeerAddress {
  host: string;
  port: number;
}

export interface TcpPeerTransportOptions {
  /** This agent's name (sent in HELLO, named as `from` in datagrams). */
  self: string;
  /** Address to listen on (port 0 = any free port; `start()` tells which). */
  listen: PeerAddress;
  /** Finds a peer's address by name. Rejections make `connect` reject with `TryAgainError`. */
  resolve: (peer: string) => Promise<PeerAddress>;
  /** Bound for dial + HELLO/WELCOME (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Bound for an accepted socket to send its HELLO (default 10000 ms). */
  helloTimeoutMs?: number;
  /** Whether to bind UDP for datagrams (default true). */
  datagrams?: boolean;
}

function checkName(value: unknown, field: string): asserts value is string {
  if (typeof value !== "string" || value.length === 0 || Buffer.byteLength(value) > 255) {
    throw new ConfigError({ component: COMPONENT, field, rule: "must be a non-empty string of at most 255 bytes", value });
  }
}

function checkMessage(value: unknown, max: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new ConfigError({ component: COMPONENT, field: "message", rule: "must be a Uint8Array", value: typeof value });
  if (value.byteLength > max) throw new ConfigError({ component: COMPONENT, field: "message", rule: `must be at most ${max} bytes`, value: value.byteLength });
}

function checkAddress(addr: unknown, field: string): asserts addr is PeerAddress {
  const a = addr as Partial<PeerAddress> | null;
  if (typeof a !== "object" || a === null || typeof a.host !== "string" || a.host === "") {
    throw new ConfigError({ component: COMPONENT, field: `${field}.host`, rule: "must be a host name or IP address", value: a?.host });
  }
  if (typeof a.port !== "number" || !Number.isInteger(a.port) || a.port < 0 || a.port > 65535) {
    throw new ConfigError({ component: COMPONENT, field: `${field}.port`, rule: "must be an integer port 0-65535", value: a.port });
  }
}

function encodeFrame(type: FrameType, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.byteLength);
  out.writeUInt32BE(payload.byteLength + 1, 0);
  out.writeUInt8(type, 4);
  out.set(payload, 5);
  return out;
}

/** Cuts frames out of a byte stream. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrame: number) {}

  /** Appends `chunk` and returns every complete frame. Throws a plain Error for an oversized frame. */
  push(chunk: Buffer): { type: number; payload: Buffer }[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: { type: number; payload: Buffer }[] = [];
    let off = 0;
    while (this.buf.length - off >= 4) {
      const len = this.buf.readUInt32BE(off);
      if (len < 1 || len > this.maxFrame + 1) throw new Error(`frame of ${len} bytes is outside 1..${this.maxFrame + 1}`);
      if (this.buf.length - off - 4 < len) break;
      const type = this.buf.readUInt8(off + 4);
      // Copy: the payload handed to a handler must not alias a buffer we keep reading into.
      out.push({ type, payload: Buffer.from(this.buf.subarray(off + 5, off + 4 + len)) });
      off += 4 + len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return out;
  }
}

/** One end of a TCP peer connection. */
class TcpConnection implements PeerConnection {
  readonly remote: string;
  readonly service: string;
  private messageHandler: ((m: Uint8Array) => void) | undefined;
  private closeHandler: ((reason: string) => void) | undefined;
  private inbox: Uint8Array[] = [];
  private isClosed = false;
  private closeReason = "closed";
  private notified = false;
  private draining = false;

  constructor(
    private readonly owner: TcpPeerTransport,
    private readonly socket: Socket,
    init: { remote: string; service: string },
  ) {
    this.remote = init.remote;
    this.service = init.service;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Queues one message (copied into the frame). Throws `ClosedError` after close, `ConfigError` for a non-Uint8Array or one over `MAX_FRAME_BYTES`. */
  send(message: Uint8Array): void {
    if (this.isClosed) throw new ClosedError(`[${COMPONENT}] send on the connection ${this.owner.self} -> ${this.remote} (${this.service}): it is closed (${this.closeReason})`);
    checkMessage(message, MAX_FRAME_BYTES);
    this.socket.write(encodeFrame(FrameType.data, message));
  }

  /** Sets the message handler; messages that arrived before are handed over first, in order, from a later tick. */
  onMessage(handler: (message: Uint8Array) => void): void {
    this.messageHandler = handler;
    if (this.inbox.length > 0) setImmediate(() => this.drain());
  }

  /** Sets the close handler; called once with the reason, also when registered after the close. */
  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    if (this.isClosed) this.notify();
  }

  /** Graceful close: sends CLOSE(reason) and a FIN after what was already queued. Idempotent. */
  close(reason = "closed"): void {
    if (this.isClosed) return;
    this.markClosed(reason);
    this.inbox = [];
    if (!this.socket.destroyed) {
      this.socket.end(encodeFrame(FrameType.close, Buffer.from(reason, "utf8")));
      // A peer that never reads would keep the socket forever: cut it after a while.
      setTimeout(() => this.socket.destroy(), 10_000).unref();
    }
  }

  /** Abortive close (no CLOSE frame): the far end sees a reset. */
  reset(reason: string): void {
    if (this.isClosed) return;
    this.markClosed(reason);
    this.inbox = [];
    this.socket.destroy();
  }

  /** A DATA frame arrived. */
  receive(message: Uint8Array): void {
    if (this.isClosed) return;
    if (this.messageHandler && this.inbox.length === 0 && !this.draining) {
      this.messageHandler(message);
      return;
    }
    this.inbox.push(message);
    if (this.messageHandler && !this.draining) setImmediate(() => this.drain());
  }

  /** The far end closed (CLOSE frame, FIN or error): deliver what is buffered, then close. */
  remoteClosed(reason: string): void {
    if (this.isClosed) return;
    this.drain();
    this.inbox = [];
    this.markClosed(reason);
    if (!this.socket.destroyed) this.socket.end();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.inbox.length > 0 && !this.isClosed && this.messageHandler) this.messageHandler(this.inbox.shift()!);
    } finally {
      this.draining = false;
    }
  }

  private markClosed(reason: string): void {
    this.isClosed = true;
    this.closeReason = reason;
    this.owner.forget(this);
    this.notify();
  }

  private notify(): void {
    if (this.notified || !this.closeHandler) return;
    this.notified = true;
    const handler = this.closeHandler;
    const reason = this.closeReason;
    setImmediate(() => handler(reason));
  }
}

/**
 * The PeerTransport of one agent over TCP (streams) and UDP (datagrams). Create it, `listen` on
 * services (before or after `start`), `await start()` to bind; `close()` when done. See the module
 * comment for the wire format.
 */
export class TcpPeerTransport implements PeerTransport {
  readonly self: string;
  private readonly options: TcpPeerTransportOptions;
  private readonly listeners = new Map<string, (c: PeerConnection) => void>();
  private readonly datagramHandlers = new Map<string, Set<(from: string, m: Uint8Array) => void>>();
  private readonly connections = new Set<TcpConnection>();
  private readonly pending = new Set<Socket>();
  private server: Server | undefined;
  private udp: UdpSocket | undefined;
  private bound: PeerAddress | undefined;
  private isClosed = false;

  /** Throws `ConfigError` naming the field for an empty `self`, a bad `listen` address or a missing `resolve`. */
  constructor(options: TcpPeerTransportOptions) {
    checkName(options?.self, "self");
    checkAddress(options.listen, "listen");
    if (typeof options.resolve !== "function") throw new ConfigError({ component: COMPONENT, field: "resolve", rule: "must be a function peer -> Promise<{host, port}>" });
    this.self = options.self;
    this.options = options;
  }

  /** The bound address after `start()`, else undefined. */
  address(): PeerAddress | undefined {
    return this.bound;
  }

  /**
   * Binds the TCP listener (and the UDP socket on the same port unless `datagrams: false`) and
   * resolves with the address. Rejects with `AddressInUseError` when the port is taken,
   * `ClosedError` after close. Idempotent once bound.
   */
  async start(): Promise<PeerAddress> {
    if (this.isClosed) throw new ClosedError(`[${COMPONENT}] start: the transport of ${this.self} is closed`);
    if (this.bound) return this.bound;
    const { host, port } = this.options.listen;
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off("error", reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new AddressInUseError(`${host}:${port}`, `[${COMPONENT}] cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
    });
    server.on("error", () => undefined);
    const addr = server.address();
    const boundPort = typeof addr === "object" && addr !== null ? addr.port : port;
    this.server = server;
    if (this.options.datagrams !== false) {
      const udp = createSocket({ type: isIPv6(host) ? "udp6" : "udp4" });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once("error", reject);
          udp.bind({ address: host, port: boundPort, exclusive: true }, () => {
            udp.off("error", reject);
            resolve();
          });
        });
      } catch (err) {
        server.close();
        this.server = undefined;
        throw new AddressInUseError(`${host}:${boundPort}/udp`, `[${COMPONENT}] cannot bind UDP ${host}:${boundPort} for datagrams: ${(err as Error).message}`, { cause: err });
      }
      udp.on("error", () => undefined);
      udp.on("message", (msg) => this.receiveDatagram(msg));
      this.udp = udp;
    }
    this.bound = { host, port: boundPort };
    return this.bound;
  }

  /**
   * Accepts connections for `service` (works before `start`: connections arrive once bound).
   * Returns an idempotent stop function (open connections stay open). Throws `AddressInUseError`
   * when already listening on `service`, `ClosedError` after close, `ConfigError` for a bad name.
   */
  listen(service: string, onConnection: (connection: PeerConnection) => void): () => void {
    if (this.isClosed) throw new ClosedError(`[${COMPONENT}] listen(${service}): the transport of ${this.self} is closed`);
    checkName(service, "service");
    if (this.listeners.has(service)) {
      throw new AddressInUseError(`${this.self}/${service}`, `[${COMPONENT}] ${this.self} already listens on service ${service}; stop the first listener before listening again`);
    }
    this.listeners.set(service, onConnection);
    return () => {
      if (this.listeners.get(service) === onConnection) this.listeners.delete(service);
    };
  }

  /**
   * Dials `peer` (address from `resolve`) and asks for `service`. Resolves once the peer accepted.
   * Rejects with `TryAgainError` (11) when the peer cannot be resolved, is unreachable, refuses
   * the service, or does not answer within `connectTimeoutMs`; `ClosedError` when this transport
   * is (or gets) closed; `ConfigError` for empty names.
   */
  async connect(peer: string, service: string): Promise<PeerConnection> {
    if (this.isClosed) throw new ClosedError(`[${COMPONENT}] connect(${peer}, ${service}): the transport of ${this.self} is closed`);
    checkName(peer, "peer");
    checkName(service, "service");
    let target: PeerAddress;
    try {
      target = await this.options.resolve(peer);
      checkAddress(target, "resolve(peer)");
    } catch (err) {
      throw new TryAgainError(`[${COMPONENT}] cannot find peer ${peer}: ${(err as Error)?.message ?? String(err)}; retry later`, { cause: err });
    }
    if (this.isClosed) throw new ClosedError(`[${COMPONENT}] connect(${peer}, ${service}): the transport of ${this.self} closed meanwhile`);
    const timeoutMs = this.options.connectTimeoutMs ?? 5000;
    const where = `${peer} (${target.host}:${target.port}) service ${service}`;
    return new Promise<PeerConnection>((resolve, reject) => {
      const socket = netConnect({ host: target.host, port: target.port, noDelay: true });
      this.pending.add(socket);
      const reader = new FrameReader(MAX_FRAME_BYTES);
      let conn: TcpConnection | undefined;
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(socket);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new TryAgainError(`[${COMPONENT}] ${this.self} -> ${where}: no answer within ${timeoutMs} ms; retry later`)), timeoutMs);
      socket.once("connect", () => {
        socket.write(encodeFrame(FrameType.hello, Buffer.from(JSON.stringify({ v: 1, from: this.self, service }))));
      });
      socket.on("data", (chunk: Buffer) => {
        let frames;
        try {
          frames = reader.push(chunk);
        } catch (err) {
          if (conn) conn.reset(`reset: protocol error from ${peer}: ${(err as Error).message}`);
          else fail(new TryAgainError(`[${COMPONENT}] ${this.self} -> ${where}: protocol error: ${(err as Error).message}`));
          return;
        }
        for (const f of frames) {
          if (conn) {
            this.dispatch(conn, f);
            continue;
          }
          if (f.type === FrameType.welcome) {
            settled = true;
            clearTimeout(timer);
            this.pending.delete(socket);
            if (this.isClosed) {
              socket.destroy();
              reject(new ClosedError(`[${COMPONENT}] connect(${peer}, ${service}): the transport of ${this.self} closed meanwhile`));
              return;
            }
            conn = new TcpConnection(this, socket, { remote: peer, service });
            this.connections.add(conn);
            resolve(conn);
          } else if (f.type === FrameType.refused) {
            fail(new TryAgainError(`[${COMPONENT}] ${this.self} -> ${where}: refused: ${f.payload.toString("utf8")}; retry later`));
            return;
          } else {
            fail(new TryAgainError(`[${COMPONENT}] ${this.self} -> ${where}: unexpected frame type ${f.type} before WELCOME`));
            return;
          }
        }
      });
      socket.on("error", (err) => {
        if (conn) conn.remoteClosed(`reset: ${err.message}`);
        else fail(new TryAgainError(`[${COMPONENT}] ${this.self} -> ${where}: ${err.message}; retry later`, { cause: err }));
      });
      socket.on("close", () => {
        if (conn) conn.remoteClosed("reset: connection lost");
        else fail(new TryAgainError(`[${COMPONENT}] ${this.self} -> ${where}: connection closed before WELCOME; retry later`));
      });
      socket.on("end", () => {
        if (conn) conn.remoteClosed("closed");
      });
    });
  }

  private accept(socket: Socket): void {
    if (this.isClosed) {
      socket.destroy();
      return;
    }
    this.pending.add(socket);
    const reader = new FrameReader(MAX_FRAME_BYTES);
    let conn: TcpConnection | undefined;
    const timer = setTimeout(() => {
      this.pending.delete(socket);
      socket.destroy();
    }, this.options.helloTimeoutMs ?? 10_000);
    const drop = (): void => {
      clearTimeout(timer);
      this.pending.delete(socket);
      socket.destroy();
    };
    socket.on("data", (chunk: Buffer) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        if (conn) conn.reset(`reset: protocol error from ${conn.remote}: ${(err as Error).message}`);
        else drop();
        return;
      }
      for (const f of frames) {
        if (conn) {
          this.dispatch(conn, f);
          continue;
        }
        if (f.type !== FrameType.hello) return drop();
        let hello: { from?: unknown; service?: unknown };
        try {
          hello = JSON.parse(f.payload.toString("utf8")) as typeof hello;
        } catch {
          return drop();
        }
        if (typeof hello.from !== "string" || hello.from === "" || typeof hello.service !== "string" || hello.service === "") return drop();
        clearTimeout(timer);
        this.pending.delete(socket);
        const listener = this.listeners.get(hello.service);
        if (!listener || this.isClosed) {
          socket.end(encodeFrame(FrameType.refused, Buffer.from(`${this.self} is not listening on service ${hello.service}`)));
          return;
        }
        socket.write(encodeFrame(FrameType.welcome, Buffer.from(JSON.stringify({ v: 1, from: this.self }))));
        conn = new TcpConnection(this, socket, { remote: hello.from, service: hello.service });
        this.connections.add(conn);
        listener(conn);
      }
    });
    socket.on("error", (err) => {
      if (conn) conn.remoteClosed(`reset: ${err.message}`);
      else drop();
    });
    socket.on("end", () => {
      if (conn) conn.remoteClosed("closed");
    });
    socket.on("close", () => {
      if (conn) conn.remoteClosed("reset: connection lost");
      else drop();
    });
  }

  private dispatch(conn: TcpConnection, frame: { type: number; payload: Buffer }): void {
    if (frame.type === FrameType.data) conn.receive(new Uint8Array(frame.payload.buffer, frame.payload.byteOffset, frame.payload.byteLength));
    else if (frame.type === FrameType.close) conn.remoteClosed(frame.payload.toString("utf8") || "closed");
    else conn.reset(`reset: unexpected frame type ${frame.type} from ${conn.remote}`);
  }

  /** @internal A connection closed: stop tracking it. */
  forget(conn: TcpConnection): void {
    this.connections.delete(conn);
  }

  /**
   * Sends one datagram over UDP to `peer`'s address (resolved first; asynchronous). Lost silently
   * when the peer cannot be resolved, nothing listens, or before `start()`. Throws `ClosedError`
   * after close and `ConfigError` for bad names or a message over `MAX_DATAGRAM_BYTES` minus the
   * header.
   */
  sendDatagram(peer: string, service: string, message: Uint8Array): void {
    if (this.isClosed) throw new ClosedError(`[${COMPONENT}] sendDatagram(${peer}, ${service}): the transport of ${this.self} is closed`);
    checkName(peer, "peer");
    checkName(service, "service");
    const from = Buffer.from(this.self, "utf8");
    const svc = Buffer.from(service, "utf8");
    checkMessage(message, MAX_DATAGRAM_BYTES - from.length - svc.length);
    const packet = Buffer.concat([Buffer.from([1, from.length]), from, Buffer.from([svc.length]), svc, message]);
    const udp = this.udp;
    if (!udp) return;
    this.options.resolve(peer).then(
      (addr) => {
        if (!this.isClosed && this.udp === udp) udp.send(packet, addr.port, addr.host, () => undefined);
      },
      () => undefined,
    );
  }

  private receiveDatagram(msg: Buffer): void {
    if (msg.length < 3 || msg[0] !== 1) return;
    const fromLen = msg[1]!;
    if (msg.length < 3 + fromLen) return;
    const from = msg.subarray(2, 2 + fromLen).toString("utf8");
    const svcLen = msg[2 + fromLen]!;
    const start = 3 + fromLen + svcLen;
    if (msg.length < start) return;
    const service = msg.subarray(3 + fromLen, start).toString("utf8");
    const handlers = this.datagramHandlers.get(service);
    if (!handlers) return;
    for (const h of [...handlers]) h(from, new Uint8Array(msg.subarray(start)));
  }

  /** Adds a datagram handler for `service`; returns an idempotent unsubscribe. Throws `ClosedError` after close. */
  onDatagram(service: string, handler: (from: string, message: Uint8Array) => void): () => void {
    if (this.isClosed) throw new ClosedError(`[${COMPONENT}] onDatagram(${service}): the transport of ${this.self} is closed`);
    checkName(service, "service");
    let set = this.datagramHandlers.get(service);
    if (!set) {
      set = new Set();
      this.datagramHandlers.set(service, set);
    }
    const wrapped = (from: string, m: Uint8Array): void => handler(from, m);
    set.add(wrapped);
    return () => {
      const current = this.datagramHandlers.get(service);
      if (!current?.delete(wrapped)) return;
      if (current.size === 0) this.datagramHandlers.delete(service);
    };
  }

  /**
   * Closes every connection gracefully (peers get `onClose("transport closed")`), stops the
   * listener and the UDP socket, and aborts dials in progress. Idempotent.
   */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.listeners.clear();
    this.datagramHandlers.clear();
    for (const conn of [...this.connections]) conn.close("transport closed");
    for (const socket of this.pending) socket.destroy();
    this.pending.clear();
    this.server?.close();
    this.server = undefined;
    try {
      this.udp?.close();
    } catch {
      // already closed
    }
    this.udp = undefined;
  }
}
