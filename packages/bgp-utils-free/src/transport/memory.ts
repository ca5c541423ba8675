/**
 * An in-memory network of byte streams for tests, simulations and benchmarks. Each speaker gets a
 * transport bound to an address; connections behave like TCP (ordered, reliable, asynchronous
 * delivery) and can be frozen (a SIGSTOP'd peer: bytes stop flowing, the connection stays open),
 * thawed and reset (an abrupt loss of the connection without a NOTIFICATION).
 */
import type { BgpStream, BgpTransport, ConnectTarget } from "./types.ts";

/** Error raised when nobody listens at the dialled address (like ECONNREFUSED). */
export class ConnectionRefusedError extends Error {
  override readonly name = "ConnectionRefusedError";
}

class MemoryStream implements BgpStream {
  peer!: MemoryStream;
  private dataHandler: ((chunk: Uint8Array) => void) | undefined;
  private closeHandler: ((reason: string) => void) | undefined;
  private inbox: Uint8Array[] = [];
  private outbox: Uint8Array[] = [];
  private scheduled = false;
  private ending = false;
  closed = false;
  private closeReason: string | undefined;
  bytesSent = 0;

  constructor(
    readonly localAddress: string,
    readonly remoteAddress: string,
    private readonly network: MemoryNetwork,
  ) {}

  write(data: Uint8Array): void {
    if (this.closed || this.ending) return;
    this.outbox.push(data);
    this.bytesSent += data.length;
    this.schedule();
  }

  end(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    this.schedule();
  }

  destroy(): void {
    this.terminate("connection reset", "connection reset by peer");
  }

  onData(handler: (chunk: Uint8Array) => void): void {
    this.dataHandler = handler;
    if (this.inbox.length > 0) this.schedule();
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    if (this.closed && this.closeReason !== undefined) {
      const r = this.closeReason;
      queueMicrotask(() => handler(r));
    }
  }

  /** Hands queued bytes to the other end and delivers received ones, in one microtask. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.runPump);
  }

  /** The scheduled pump, one function made once (no closure per delivery). */
  private readonly runPump = (): void => {
    this.scheduled = false;
    this.pump();
  };

  pump(): void {
    if (this.closed) return;
    if (!this.network.isFrozen(this.localAddress) && !this.network.isFrozen(this.remoteAddress)) {
      if (this.outbox.length > 0) {
        const out = this.outbox;
        this.outbox = [];
        for (const chunk of out) this.peer.inbox.push(chunk);
        this.peer.schedule();
      }
      if (this.inbox.length > 0 && this.dataHandler && !this.network.isFrozen(this.localAddress)) {
        const inbox = this.inbox;
        this.inbox = [];
        for (const chunk of inbox) {
          if (this.closed) return;
          this.dataHandler(chunk);
        }
      }
      if (this.ending && this.outbox.length === 0) {
        this.terminate("connection closed", "connection closed by peer");
      }
    }
  }

  /** Closes both ends; `mine` and `theirs` are the reasons each side is told. */
  terminate(mine: string, theirs: string): void {
    if (this.closed) return;
    this.markClosed(mine);
    // The other end still reads what it already received, then sees the close.
    const peer = this.peer;
    queueMicrotask(() => {
      peer.pump();
      peer.markClosed(theirs);
    });
  }

  markClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.outbox = [];
    this.network.forget(this);
    const h = this.closeHandler;
    if (h) queueMicrotask(() => h(reason));
  }
}

/**
 * A set of addresses that can connect to each other. Not thread-safe (nothing in Node is); all
 * delivery happens in microtasks, so a virtual clock's flush lets messages settle between timers.
 */
export class MemoryNetwork {
  private readonly listeners = new Map<string, (stream: BgpStream) => void>();
  private readonly frozen = new Set<string>();
  private readonly open = new Set<MemoryStream>();

  /** The transport of the speaker at `address`. */
  transport(address: string): BgpTransport {
    return {
      listen: async (onStream) => {
        if (this.listeners.has(address)) throw new Error(`memory network: ${address} is already listening`);
        this.listeners.set(address, onStream);
        return async () => {
          if (this.listeners.get(address) === onStream) this.listeners.delete(address);
        };
      },
      connect: (target: ConnectTarget) => this.connect(address, target.address),
    };
  }

  /** Opens a connection from `from` to `to`; rejects with ConnectionRefusedError when `to` does not listen. */
  async connect(from: string, to: string): Promise<BgpStream> {
    await Promise.resolve();
    const listener = this.listeners.get(to);
    if (!listener || this.frozen.has(to)) throw new ConnectionRefusedError(`memory network: nobody listens at ${to}`);
    const client = new MemoryStream(from, to, this);
    const server = new MemoryStream(to, from, this);
    client.peer = server;
    server.peer = client;
    this.open.add(client);
    this.open.add(server);
    listener(server);
    return client;
  }

  /** Stops all traffic to and from `address` (like SIGSTOP): connections stay open, bytes wait. */
  freeze(address: string): void {
    this.frozen.add(address);
  }

  /** Lets traffic of `address` flow again, delivering what waited. */
  thaw(address: string): void {
    this.frozen.delete(address);
    for (const s of this.open) if (s.localAddress === address || s.remoteAddress === address) s.schedule();
  }

  /** True while `address` is frozen. */
  isFrozen(address: string): boolean {
    return this.frozen.size > 0 && this.frozen.has(address);
  }

  /** Resets every connection of `address` (both ends see the close; no NOTIFICATION is sent). */
  reset(address: string): void {
    for (const s of [...this.open]) if (s.localAddress === address) s.terminate("connection reset", "connection reset by peer");
  }

  /** Number of open connection ends (two per connection). */
  get openStreams(): number {
    return this.open.size;
  }

  /** @internal */
  forget(stream: MemoryStream): void {
    this.open.delete(stream);
  }
}
