/**
 * Per-node sandboxes for agents in the simulator: a clock view, a store and a peer transport that
 * can all be killed at once, the way a process dies. After `kill()` no timer of the node fires
 * again, every store call rejects with `ClosedError` (so lease keep-alives stop and the leases run
 * out), open watches end, and the transport is reset as its peers see a crash.
 */
import {
  ClosedError,
  sleepOn,
  type Clock,
  type Datastore,
  type DeleteOptions,
  type DeleteResult,
  type KeyValue,
  type LeaseId,
  type LeaseInfo,
  type ListResult,
  type MemoryNetwork,
  type PeerConnection,
  type PeerTransport,
  type PutOptions,
  type TimerHandle,
  type TxnCompare,
  type TxnOp,
  type TxnResult,
  type WatchEvent,
  type WatchOptions,
  type WriteResult,
} from "@cnikit/core";

const NOOP: TimerHandle = { cancel() {} };

/** A node's view of the cluster clock whose timers can all be cancelled at once. */
export class SandboxClock implements Clock {
  private readonly inner: Clock;
  private readonly handles = new Set<TimerHandle>();
  private dead = false;

  constructor(inner: Clock) {
    this.inner = inner;
  }

  now(): number {
    return this.inner.now();
  }

  /** Like `Clock.setTimeout`; after `kill()` returns a handle that never fires. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (this.dead) return NOOP;
    const box: { h?: TimerHandle } = {};
    const h = this.inner.setTimeout(() => {
      if (box.h) this.handles.delete(box.h);
      if (!this.dead) fn();
    }, ms);
    box.h = h;
    this.handles.add(h);
    return {
      cancel: () => {
        h.cancel();
        this.handles.delete(h);
      },
    };
  }

  /** Like `Clock.setInterval` (throws `RangeError` unless ms > 0); never fires after `kill()`. */
  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0)) throw new RangeError(`setInterval: ms must be > 0, got ${ms}`);
    if (this.dead) return NOOP;
    const h = this.inner.setInterval(() => {
      if (!this.dead) fn();
    }, ms);
    this.handles.add(h);
    return {
      cancel: () => {
        h.cancel();
        this.handles.delete(h);
      },
    };
  }

  /** Resolves after `ms` on this clock; after `kill()` it never resolves (the process is gone). */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Timers of this node still waiting to fire. */
  pending(): number {
    return this.handles.size;
  }

  get killed(): boolean {
    return this.dead;
  }

  /** Cancels every timer of the node; later timers never fire. Idempotent. */
  kill(): void {
    this.dead = true;
    for (const h of this.handles) h.cancel();
    this.handles.clear();
  }
}

/** A node's handle on a shared Datastore that can be killed (every later call rejects). */
export class SandboxStore implements Datastore {
  private readonly inner: Datastore;
  private readonly label: string;
  private readonly watches = new Set<AbortController>();
  private dead = false;

  constructor(inner: Datastore, label: string) {
    this.inner = inner;
    this.label = label;
  }

  private check(): void {
    if (this.dead) throw new ClosedError(`[sim] ${this.label}: the node is down; its store handle is closed`);
  }

  get killed(): boolean {
    return this.dead;
  }

  /** Closes this handle: later calls reject with `ClosedError`, open watches end. Idempotent. */
  kill(): void {
    this.dead = true;
    for (const ac of this.watches) ac.abort(new ClosedError(`[sim] ${this.label}: the node is down`));
    this.watches.clear();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.check();
    return this.inner.get(key);
  }
  async put(key: string, value: string, options?: PutOptions): Promise<WriteResult> {
    this.check();
    return this.inner.put(key, value, options);
  }
  async delete(key: string, options?: DeleteOptions): Promise<DeleteResult> {
    this.check();
    return this.inner.delete(key, options);
  }
  async list(prefix: string): Promise<ListResult> {
    this.check();
    return this.inner.list(prefix);
  }
  async txn(compares: TxnCompare[], success: TxnOp[]): Promise<TxnResult> {
    this.check();
    return this.inner.txn(compares, success);
  }
  async grantLease(ttlSeconds: number): Promise<LeaseId> {
    this.check();
    return this.inner.grantLease(ttlSeconds);
  }
  async keepAlive(lease: LeaseId): Promise<number> {
    this.check();
    return this.inner.keepAlive(lease);
  }
  async revokeLease(lease: LeaseId): Promise<void> {
    this.check();
    return this.inner.revokeLease(lease);
  }
  async leaseInfo(lease: LeaseId): Promise<LeaseInfo | undefined> {
    this.check();
    return this.inner.leaseInfo(lease);
  }
  async revision(): Promise<number> {
    this.check();
    return this.inner.revision();
  }
  /** Closes this node's handle only (the shared store stays open). */
  async close(): Promise<void> {
    this.kill();
  }

  /** Watches the shared store; the iteration ends when the caller's signal aborts or the node dies. */
  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    const self = this;
    return {
      [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
        if (self.dead) {
          return {
            next: () => Promise.reject(new ClosedError(`[sim] ${self.label}: the node is down; its store handle is closed`)),
          };
        }
        const ac = new AbortController();
        self.watches.add(ac);
        const outer = options.signal;
        const onAbort = (): void => ac.abort(outer?.reason);
        if (outer?.aborted) ac.abort(outer.reason);
        else outer?.addEventListener("abort", onAbort, { once: true });
        const it = self.inner.watch(prefix, { ...options, signal: ac.signal })[Symbol.asyncIterator]();
        const cleanup = (): void => {
          self.watches.delete(ac);
          outer?.removeEventListener("abort", onAbort);
        };
        return {
          next: async () => {
            const r = await it.next();
            if (r.done) cleanup();
            return r;
          },
          return: async (value?: unknown) => {
            cleanup();
            ac.abort();
            if (it.return) return it.return(value);
            return { done: true, value: undefined };
          },
        };
      },
    };
  }
}

/** A node's peer transport that can be killed (reset as on a crash) or closed. */
export class SandboxTransport implements PeerTransport {
  private readonly inner: PeerTransport;
  private readonly network: MemoryNetwork;
  private dead = false;

  constructor(inner: PeerTransport, network: MemoryNetwork) {
    this.inner = inner;
    this.network = network;
  }

  get self(): string {
    return this.inner.self;
  }

  private check(): void {
    if (this.dead) throw new ClosedError(`[sim] ${this.inner.self}: the node is down; its transport is closed`);
  }

  listen(service: string, onConnection: (connection: PeerConnection) => void): () => void {
    this.check();
    return this.inner.listen(service, onConnection);
  }

  async connect(peer: string, service: string): Promise<PeerConnection> {
    this.check();
    return this.inner.connect(peer, service);
  }

  sendDatagram(peer: string, service: string, message: Uint8Array): void {
    if (this.dead) return;
    this.inner.sendDatagram(peer, service, message);
  }

  onDatagram(service: string, handler: (from: string, message: Uint8Array) => void): () => void {
    this.check();
    return this.inner.onDatagram(service, handler);
  }

  close(): void {
    this.inner.close();
  }

  /**
   * Ends the transport. `crash`: every connection is reset at once, as peers see a dead node;
   * otherwise a graceful close. Idempotent.
   */
  kill(crash: boolean): void {
    if (this.dead) return;
    this.dead = true;
    if (crash) this.network.disconnect(this.inner.self);
    this.inner.close();
  }
}

