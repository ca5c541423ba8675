/**
 * Per-node sandboxes for agents in the simulator: a clock view, a store and a peer transport that
 * can all be killed at once, the way a process dies. After `kill()` no timer of the node fires
 * again, every store call rejects with `ClosedError` (so lease keep-alives stop and the leases run
 * out), open watches end, and the transport is reset as its peers see a crash.
 */
import {
  ClosedError,
  TryAgainError,
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

/**
 * Arms a compaction between a node's listing and the watch that follows it: each watch the node
 * opens from a revision (one per prefix, from the moment it is armed) first waits `delayMs` on the
 * clock (the cluster keeps changing meanwhile), then the store compacts past everything written so
 * far and the watch throws `CompactedError` (code 105), as etcd does when the agent's listing
 * revision fell out of the kept history.
 */
export interface CompactionFault {
  /** Compacts the shared store up to and including `revision` (e.g. `MemoryDatastore.compact`). */
  compact(revision: number): Promise<void>;
  /** Virtual ms the watch stalls before the compaction (default 0). */
  delayMs?: number;
  /** The clock the delay runs on (required when `delayMs` > 0). */
  clock?: Clock;
}

/** Key written (and deleted) to move the revision past a listing when nothing else was written. */
export const COMPACTION_MARKER_KEY = "/cnikit-sim/compaction-marker";

/**
 * A node's handle on a shared Datastore that can be killed (every later call rejects), cut off
 * from the store for a while (every call throws `TryAgainError`, code 11, and open watches end),
 * made to lose watch events silently, or armed with a compaction between a listing and the watch
 * that follows it.
 */
export class SandboxStore implements Datastore {
  private readonly inner: Datastore;
  private readonly label: string;
  private readonly watches = new Set<AbortController>();
  private dead = false;
  private cut = false;
  private losing = false;
  private lostEvents = 0;
  private compaction: { fault: CompactionFault; done: Set<string> } | undefined;
  private compactions = 0;

  constructor(inner: Datastore, label: string) {
    this.inner = inner;
    this.label = label;
  }

  private check(): void {
    if (this.dead) throw new ClosedError(`[sim] ${this.label}: the node is down; its store handle is closed`);
    if (this.cut) throw new TryAgainError(`[sim] ${this.label}: the node is cut off from the cluster store; try again later`);
  }

  get killed(): boolean {
    return this.dead;
  }

  /** Whether the handle is cut off from the store (see `setCutOff`). */
  get cutOff(): boolean {
    return this.cut;
  }

  /** Watch events dropped so far while losing events (see `setLosingEvents`). */
  get lost(): number {
    return this.lostEvents;
  }

  /** Watches that were compacted under this node (see `armCompaction`). */
  get compacted(): number {
    return this.compactions;
  }

  /** Closes this handle: later calls reject with `ClosedError`, open watches end. Idempotent. */
  kill(): void {
    this.dead = true;
    for (const ac of this.watches) ac.abort(new ClosedError(`[sim] ${this.label}: the node is down`));
    this.watches.clear();
  }

  /**
   * Cuts this node off from the store (others keep it): while cut, every call throws
   * `TryAgainError` (code 11) and writes nothing, open watches end (the agent sees its stream
   * close), and new watches fail with `TryAgainError`. Nothing is kept alive meanwhile, so the
   * node's leases run out on the store's clock. Idempotent.
   */
  setCutOff(cut: boolean): void {
    this.cut = cut;
    if (cut) {
      for (const ac of this.watches) ac.abort(new TryAgainError(`[sim] ${this.label}: cut off from the store`));
      this.watches.clear();
    }
  }

  /**
   * While on, the node's open and new watches silently drop every event (a broken watch proxy, a
   * missed informer event); the watches stay open and later events flow again once it is off.
   */
  setLosingEvents(losing: boolean): void {
    this.losing = losing;
  }

  /** See `CompactionFault`; `undefined` disarms. */
  armCompaction(fault: CompactionFault | undefined): void {
    this.compaction = fault ? { fault, done: new Set() } : undefined;
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

  /** The compaction armed for a watch of `prefix` from `fromRevision`, consumed (undefined when none applies). */
  private takeCompaction(prefix: string, fromRevision: number | undefined): CompactionFault | undefined {
    const c = this.compaction;
    if (!c || fromRevision === undefined || c.done.has(prefix)) return undefined;
    c.done.add(prefix);
    return c.fault;
  }

  /** Stalls, then compacts the shared store past `fromRevision` and past everything written so far. */
  private async compactPast(fault: CompactionFault, fromRevision: number, signal: AbortSignal): Promise<void> {
    const delay = fault.delayMs ?? 0;
    if (delay > 0) {
      if (!fault.clock) throw new TypeError("[sim] armCompaction: delayMs needs a clock");
      await sleepOn(fault.clock, delay, signal).catch(() => undefined);
    }
    if (signal.aborted) return;
    if ((await this.inner.revision()) <= fromRevision) {
      await this.inner.put(COMPACTION_MARKER_KEY, String(fromRevision));
      await this.inner.delete(COMPACTION_MARKER_KEY);
    }
    await fault.compact(await this.inner.revision());
    this.compactions++;
  }

  /**
   * Watches the shared store; the iteration ends when the caller's signal aborts, the node dies or
   * is cut off. Events are dropped while losing events; an armed compaction makes the first
   * `next()` throw `CompactedError`.
   */
  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    const self = this;
    return {
      [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
        try {
          self.check();
        } catch (err) {
          return { next: () => Promise.reject(err) };
        }
        const ac = new AbortController();
        self.watches.add(ac);
        const outer = options.signal;
        const onAbort = (): void => ac.abort(outer?.reason);
        if (outer?.aborted) ac.abort(outer.reason);
        else outer?.addEventListener("abort", onAbort, { once: true });
        const fault = self.takeCompaction(prefix, options.fromRevision);
        let opened: AsyncIterator<WatchEvent> | undefined;
        const open = async (): Promise<AsyncIterator<WatchEvent>> => {
          if (!opened) {
            if (fault) await self.compactPast(fault, options.fromRevision!, ac.signal);
            opened = self.inner.watch(prefix, { ...options, signal: ac.signal })[Symbol.asyncIterator]();
          }
          return opened;
        };
        const cleanup = (): void => {
          self.watches.delete(ac);
          outer?.removeEventListener("abort", onAbort);
        };
        return {
          next: async () => {
            const it = await open();
            for (;;) {
              const r = await it.next();
              if (r.done) {
                cleanup();
                return r;
              }
              if (!self.losing) return r;
              self.lostEvents++;
            }
          },
          return: async (value?: unknown) => {
            cleanup();
            ac.abort();
            if (opened?.return) return opened.return(value);
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
