/**
 * The Datastore behaviour shared by `MemoryDatastore` and `FileDatastore`: input validation, the
 * state machine, lease timers on the injected clock, watches, availability fault injection and
 * close. Subclasses decide only what "commit" means (memory: publish at once; file: log, fsync,
 * then publish) through `persist` and `readBarrier`.
 */

import { RealClock, type Clock, type TimerHandle } from "../clock.ts";
import type {
  Datastore,
  DeleteOptions,
  DeleteResult,
  KeyValue,
  LeaseId,
  LeaseInfo,
  ListResult,
  PutOptions,
  TxnCompare,
  TxnOp,
  TxnResult,
  WatchEvent,
  WatchOptions,
  WriteResult,
} from "../datastore.ts";
import { ClosedError, ConfigError, TryAgainError } from "../errors.ts";
import { StoreState, type Mutation } from "./state.ts";
import { validateKey, validateLeaseId, validatePrefix, validateRevision, validateTtl, validateTxn, validateValue } from "./validate.ts";
import { WatchHub } from "./watch-hub.ts";

/** Options every state-machine datastore takes. */
export interface StateDatastoreOptions {
  /** Clock for lease TTLs. Default `RealClock`. */
  clock?: Clock;
  /** Watch events kept for `watch({fromRevision})`, in events (whole revisions are dropped). Default 10 000. */
  historyLimit?: number;
}

export const DEFAULT_HISTORY_LIMIT = 10_000;

/**
 * Base class of the in-process datastores. Not exported from the package index: use
 * `MemoryDatastore` or `FileDatastore`.
 */
export abstract class StateDatastore implements Datastore {
  protected readonly state = new StoreState();
  protected readonly hub: WatchHub;
  protected readonly clock: Clock;
  private readonly timers = new Map<LeaseId, TimerHandle>();
  private available = true;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Name used at the start of error messages. */
  protected abstract readonly label: string;

  protected constructor(options: StateDatastoreOptions) {
    const limit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new ConfigError({ field: "historyLimit", rule: "must be an integer >= 0 (events kept for watch catch-up)", value: limit });
    }
    this.hub = new WatchHub(limit);
    this.clock = options.clock ?? new RealClock();
  }

  /**
   * Makes a mutation durable (as the subclass understands it) and publishes its events to
   * watchers. Called right after the mutation was applied to `state`.
   */
  protected abstract persist(m: Mutation, events: WatchEvent[]): Promise<void> | void;
  /** Resolves once everything applied so far is durable (so reads never return undurable data). */
  protected abstract readBarrier(): Promise<void> | void;
  /** Releases the subclass's resources during `close()`. */
  protected abstract closeResources(): Promise<void>;
  /** An error that makes every call fail (e.g. a failed log write), or undefined. */
  protected brokenError(): Error | undefined {
    return undefined;
  }

  /** Throws `ClosedError` after close, the broken error, or `TryAgainError` while unavailable. */
  protected checkUsable(): void {
    if (this.closed) throw new ClosedError(`${this.label} the store is closed; open a new one`);
    const broken = this.brokenError();
    if (broken) throw broken;
    if (!this.available) throw new TryAgainError(`${this.label} the store is unavailable; nothing was written, retry later`);
  }

  /** Applies, arms lease timers and persists a mutation. */
  protected commit(m: Mutation): Promise<void> | void {
    const events = this.state.apply(m);
    if (m.t === "g" || m.t === "k") this.armLease(m.id, m.exp);
    else if (m.t === "x") this.disarmLease(m.id);
    return this.persist(m, events);
  }

  /** Arms expiry timers for every lease in the state (after loading one). */
  protected armAllLeases(): void {
    for (const lease of this.state.leases.values()) this.armLease(lease.id, lease.exp);
  }

  private armLease(id: LeaseId, exp: number): void {
    this.timers.get(id)?.cancel();
    this.timers.set(
      id,
      this.clock.setTimeout(() => this.onLeaseTimer(id), Math.max(0, exp - this.clock.now())),
    );
  }

  private disarmLease(id: LeaseId): void {
    this.timers.get(id)?.cancel();
    this.timers.delete(id);
  }

  private onLeaseTimer(id: LeaseId): void {
    this.timers.delete(id);
    if (this.closed || this.brokenError()) return;
    const lease = this.state.leases.get(id);
    if (!lease) return;
    if (this.clock.now() < lease.exp) {
      this.armLease(id, lease.exp);
      return;
    }
    // While unavailable, expiry waits: leases are refreshed when the store comes back.
    if (!this.available) return;
    const m = this.state.planRevoke(id);
    if (m) void Promise.resolve(this.commit(m)).catch(() => undefined);
  }

  /**
   * Fault injection: while unavailable every call throws `TryAgainError` (code 11) and writes
   * nothing, watches stall (they keep their buffers) and leases do not expire. When the store comes
   * back, every lease is refreshed to a full TTL (as etcd does when a new leader takes over) and
   * watches resume without loss. Idempotent.
   */
  setAvailable(available: boolean): void {
    if (available === this.available || this.closed) {
      this.available = available;
      return;
    }
    this.available = available;
    if (available) {
      const now = this.clock.now();
      for (const lease of [...this.state.leases.values()]) {
        void Promise.resolve(this.commit({ t: "k", id: lease.id, exp: now + lease.ttl * 1000 })).catch(() => undefined);
      }
    }
    this.hub.setPaused(!available);
  }

  /** Whether the store is available (see `setAvailable`). */
  isAvailable(): boolean {
    return this.available;
  }

  /**
   * Forgets watch history up to and including `revision` (etcd's compact): a later watch from an
   * older revision throws `CompactedError`. Throws `ConfigError` for a revision that is not an
   * integer from 0 to the current revision.
   */
  async compact(revision: number): Promise<void> {
    this.checkUsable();
    validateRevision(revision, "revision");
    if (revision > this.state.revision) {
      throw new ConfigError({ field: "revision", rule: `must not exceed the current revision ${this.state.revision}`, value: revision });
    }
    await this.readBarrier();
    this.hub.compact(revision);
  }

  /** The contract: {@link Datastore.get}. Throws `ConfigError` for a bad key, `ClosedError`, `TryAgainError`. */
  async get(key: string): Promise<KeyValue | undefined> {
    this.checkUsable();
    validateKey(key);
    const kv = this.state.get(key);
    await this.readBarrier();
    return kv;
  }

  /**
   * The contract: {@link Datastore.put}. Atomic: input is validated and the compare checked before anything
   * changes. Throws `ConfigError` (key/value/ifRevision/lease), `ConflictError`, `NotFoundError`,
   * `TryAgainError`, `ClosedError`.
   */
  async put(key: string, value: string, options: PutOptions = {}): Promise<WriteResult> {
    this.checkUsable();
    validateKey(key);
    validateValue(value);
    if (options.ifRevision !== undefined) validateRevision(options.ifRevision, "ifRevision");
    if (options.lease !== undefined) validateLeaseId(options.lease);
    const m = this.state.planPut(key, value, options.ifRevision, options.lease);
    await this.commit(m);
    return { revision: m.r };
  }

  /** The contract: {@link Datastore.delete}. Throws `ConfigError`, `ConflictError`, `TryAgainError`, `ClosedError`. */
  async delete(key: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    this.checkUsable();
    validateKey(key);
    if (options.ifRevision !== undefined) validateRevision(options.ifRevision, "ifRevision");
    const plan = this.state.planDelete(key, options.ifRevision);
    if (!plan) {
      const revision = this.state.revision;
      await this.readBarrier();
      return { revision, deleted: false };
    }
    await this.commit(plan.mutation);
    return { revision: plan.mutation.r, deleted: true, prev: plan.prev };
  }

  /** The contract: {@link Datastore.list}. Throws `ConfigError` for a bad prefix, `TryAgainError`, `ClosedError`. */
  async list(prefix: string): Promise<ListResult> {
    this.checkUsable();
    validatePrefix(prefix);
    const items = this.state.list(prefix);
    const revision = this.state.revision;
    await this.readBarrier();
    return { items, revision };
  }

  /**
   * The contract: {@link Datastore.txn}. Every compare and op is validated first (fields
   * `compares[i].key`, `success[i].value`, ...); a key may appear at most once among the ops (as in
   * etcd). Throws `ConfigError`, `NotFoundError` (unknown lease, nothing written), `TryAgainError`,
   * `ClosedError`.
   */
  async txn(compares: TxnCompare[], success: TxnOp[]): Promise<TxnResult> {
    this.checkUsable();
    validateTxn(compares, success);
    const plan = this.state.planTxn(compares, success);
    if (!plan.mutation) {
      const revision = this.state.revision;
      await this.readBarrier();
      return { succeeded: plan.succeeded, revision };
    }
    const m = plan.mutation;
    await this.commit(m);
    return { succeeded: true, revision: m.r };
  }

  /**
   * The contract: {@link Datastore.watch}. The start revision is taken when `watch` is called (absent =
   * the revision watchers have seen so far); each iteration of the returned iterable is one
   * independent watch with its own buffer. Errors (`ConfigError`, `CompactedError`,
   * `TryAgainError`, `ClosedError`) reject the first `next()`.
   */
  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    const from = options.fromRevision ?? this.hub.published;
    const signal = options.signal;
    return {
      [Symbol.asyncIterator]: () => {
        let error: Error | undefined;
        try {
          this.checkUsable();
          validatePrefix(prefix);
          validateRevision(from, "fromRevision");
        } catch (e) {
          error = e as Error;
        }
        return this.hub.open(prefix, from, signal, error);
      },
    };
  }

  /** The contract: {@link Datastore.grantLease}. Throws `ConfigError` naming `ttlSeconds`, `TryAgainError`, `ClosedError`. */
  async grantLease(ttlSeconds: number): Promise<LeaseId> {
    this.checkUsable();
    validateTtl(ttlSeconds);
    const m = this.state.planGrant(ttlSeconds, this.clock.now());
    await this.commit(m);
    return m.id;
  }

  /** The contract: {@link Datastore.keepAlive}. Throws `NotFoundError`, `ConfigError`, `TryAgainError`, `ClosedError`. */
  async keepAlive(lease: LeaseId): Promise<number> {
    this.checkUsable();
    validateLeaseId(lease);
    const m = this.state.planKeepAlive(lease, this.clock.now());
    const ttl = this.state.leases.get(lease)!.ttl;
    await this.commit(m);
    return ttl;
  }

  /**
   * The contract: {@link Datastore.revokeLease}. The lease's keys are deleted under one revision (one delete
   * event each). Idempotent. Throws `ConfigError`, `TryAgainError`, `ClosedError`.
   */
  async revokeLease(lease: LeaseId): Promise<void> {
    this.checkUsable();
    validateLeaseId(lease);
    const m = this.state.planRevoke(lease);
    if (m) await this.commit(m);
    else await this.readBarrier();
  }

  /** The contract: {@link Datastore.leaseInfo}. Throws `ConfigError`, `TryAgainError`, `ClosedError`. */
  async leaseInfo(lease: LeaseId): Promise<LeaseInfo | undefined> {
    this.checkUsable();
    validateLeaseId(lease);
    const info = this.state.leaseInfo(lease, this.clock.now());
    await this.readBarrier();
    return info;
  }

  /** The contract: {@link Datastore.revision}. Throws `TryAgainError`, `ClosedError`. */
  async revision(): Promise<number> {
    this.checkUsable();
    const revision = this.state.revision;
    await this.readBarrier();
    return revision;
  }

  /**
   * The contract: {@link Datastore.close}. Writes already accepted still complete; open watches end at
   * once; lease timers stop. Idempotent (a second call waits for the first).
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      for (const t of this.timers.values()) t.cancel();
      this.timers.clear();
      this.hub.close();
      this.closing = this.closeResources();
    }
    return this.closing;
  }
}
