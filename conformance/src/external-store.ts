/**
 * Running the suite on an external cluster store (etcd) instead of the in-memory one.
 *
 * The simulator runs on a virtual clock; an external store answers over real I/O and runs its
 * leases on wall time. Three things follow, handled here:
 *
 *  1. Virtual time must not run ahead of the store. `IoPacedClock` fires timers in small batches and,
 *     before each, waits until the store is quiet (no call in flight, no write or watch event for a
 *     few ms), so an agent waiting on etcd is not overtaken by its own back-offs. While the cluster
 *     is steady (its timers only read) the batches grow, so days of virtual time stay affordable.
 *  2. Wall time must not run ahead of virtual time either: an alive node's lease on etcd would
 *     expire while the checks inspect the cluster and nobody steps the clock. So the clock also
 *     moves by itself at wall speed whenever nobody steps it: keep-alive timers fire at least as
 *     often in wall time as the backend asked.
 *  3. A check that needs a lease to *expire* (crash detection) would have to wait for it in wall
 *     time (flannel: 24 h), and the store-outage check needs the in-memory store's availability
 *     switch. Those are reported "not run" with the reason (`EXTERNAL_STORE_GATES`); the etcd
 *     package's own fault test stops and kills a real etcd instead.
 */
import { VirtualClock, type Datastore, type RunUntilIdleOptions, type WatchEvent, type WatchOptions } from "@cnikit/core";

/** Makes the cluster store of each simulated cluster the suite builds. */
export interface StoreProvider {
  /** Shown in the report and the CLI's banner, e.g. `etcd://127.0.0.1:2379`. */
  label: string;
  /**
   * A fresh, empty store for one cluster; `name` is unique within the run (use it as a key prefix).
   * Synchronous because clusters are built synchronously: connect lazily. The suite empties it
   * (revokes its leases, deletes its keys) and closes it when the cluster is done.
   */
  create(name: string): Datastore;
}

/** Checks that cannot run on an external store, with the reason. */
export const EXTERNAL_STORE_GATES: Record<string, string> = {
  "dyn.crash":
    "needs a virtual-clock store: crash detection waits for the crashed node's leases to expire, and an external store's leases expire on wall time (the backend's crash bound), which the simulator's virtual clock cannot advance",
  "fault.store-unavailable":
    "needs the in-memory store's availability switch to take the store away; an external store's outages are exercised by @cnikit/etcd's fault test (etcd stopped and killed under load)",
};

const MIN_WINDOW_MS = 10;
const MAX_WINDOW_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Counts a store's calls in flight and remembers when anything that changes the cluster last happened. */
export class IoTracker {
  private inflight = 0;
  private last = performance.now();
  /** Bumped by every write and every delivered watch event (reads leave it alone). */
  epoch = 0;

  private touch(): void {
    this.last = performance.now();
    this.epoch++;
  }

  /** Runs `call` counted as in flight; `write` marks calls whose effects other nodes will see. */
  track<T>(call: () => Promise<T>, write: boolean): Promise<T> {
    this.inflight++;
    if (write) this.touch();
    let p: Promise<T>;
    try {
      p = call();
    } catch (e) {
      this.inflight--;
      return Promise.reject(e);
    }
    return p.finally(() => {
      this.inflight--;
      if (write) this.touch();
    });
  }

  /**
   * Resolves once no call is in flight and no write completed nor watch event arrived for `idleMs`
   * (the events a write causes reach other nodes' watches a moment after its answer), or after
   * `maxWaitMs` (a call retrying against an unreachable store must not hang the suite).
   */
  async quiet(idleMs = 8, maxWaitMs = 30_000): Promise<void> {
    const deadline = performance.now() + maxWaitMs;
    for (;;) {
      const idle = performance.now() - this.last;
      if (this.inflight === 0 && idle >= idleMs) return;
      if (performance.now() >= deadline) return;
      await sleep(this.inflight === 0 ? Math.max(1, idleMs - idle) : 1);
    }
  }

  /** A view of `store` whose calls and watch deliveries are tracked. */
  wrap(store: Datastore): Datastore {
    const t = this;
    return {
      get: (key) => t.track(() => store.get(key), false),
      put: (key, value, options) => t.track(() => store.put(key, value, options), true),
      delete: (key, options) => t.track(() => store.delete(key, options), true),
      list: (prefix) => t.track(() => store.list(prefix), false),
      txn: (compares, success) => t.track(() => store.txn(compares, success), true),
      grantLease: (ttl) => t.track(() => store.grantLease(ttl), true),
      keepAlive: (lease) => t.track(() => store.keepAlive(lease), false),
      revokeLease: (lease) => t.track(() => store.revokeLease(lease), true),
      leaseInfo: (lease) => t.track(() => store.leaseInfo(lease), false),
      revision: () => t.track(() => store.revision(), false),
      close: () => store.close(),
      watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> {
        const inner = store.watch(prefix, options);
        return {
          [Symbol.asyncIterator]: () => {
            const it = inner[Symbol.asyncIterator]();
            return {
              next: async () => {
                const r = await it.next();
                t.touch();
                return r;
              },
              return: async () => (it.return ? it.return() : { value: undefined, done: true as const }),
            };
          },
        };
      },
    };
  }
}

/**
 * A virtual clock for clusters on an external store (see the module comment): steps timer by timer
 * waiting for the store to be quiet, and moves at wall speed on its own whenever nobody steps it.
 * Call `stop()` when the cluster is done.
 */
export class IoPacedClock extends VirtualClock {
  private readonly io: IoTracker;
  private lock: Promise<unknown> = Promise.resolve();
  private locked = 0;
  private lastStep = Date.now();
  private window = MIN_WINDOW_MS;
  private readonly pump: ReturnType<typeof setInterval>;

  constructor(io: IoTracker, paceMs = 100) {
    super();
    this.io = io;
    this.pump = setInterval(() => {
      if (this.locked > 0) return;
      const lag = Date.now() - this.lastStep;
      if (lag >= paceMs) void this.advance(lag).catch(() => undefined);
    }, paceMs);
    this.pump.unref?.();
  }

  /** Waits until the store is quiet (no call in flight, nothing delivered for a few ms). */
  quiet(): Promise<void> {
    return this.io.quiet();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.locked++;
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run.finally(() => {
      this.locked--;
      this.lastStep = Date.now();
    });
  }

  /**
   * Fires the timers due up to `until`, waiting for the store to be quiet before each batch. A
   * batch is every timer due within `window` ms of the next one: 10 ms while the cluster is busy,
   * doubling (up to 30 s) while batches cause no write and no watch event — a steady cluster whose
   * timers only re-read the store (flannel re-lists every 10 s) would otherwise cost one round trip
   * per timer over days of virtual time — and back to 10 ms as soon as anything changes.
   */
  private async stepTo(until: number, maxTimers = Number.POSITIVE_INFINITY): Promise<void> {
    let fired = 0;
    for (;;) {
      await this.io.quiet();
      const next = this.nextAt();
      if (next === undefined || next > until) return;
      const epoch = this.io.epoch;
      const end = Math.min(until, next + this.window - 1);
      await super.advance(Math.max(0, end - this.now()));
      await this.io.quiet();
      this.window = this.io.epoch === epoch ? Math.min(this.window * 2, MAX_WINDOW_MS) : MIN_WINDOW_MS;
      if (++fired >= maxTimers) return;
    }
  }

  /** Like `VirtualClock.advance`, paced by the store. */
  override advance(ms: number): Promise<void> {
    if (!(ms >= 0)) return Promise.reject(new RangeError(`advance: ms must be >= 0, got ${ms}`));
    return this.exclusive(async () => {
      const until = this.now() + ms;
      await this.stepTo(until);
      await super.advance(Math.max(0, until - this.now()));
    });
  }

  /** Like `VirtualClock.runUntilIdle`, paced by the store. */
  override runUntilIdle(options: RunUntilIdleOptions = {}): Promise<number> {
    return this.exclusive(async () => {
      const start = this.now();
      const until = options.limitMs === undefined ? Number.POSITIVE_INFINITY : start + options.limitMs;
      await this.stepTo(until, options.maxTimers ?? 1_000_000);
      if (this.nextAt() !== undefined && until !== Number.POSITIVE_INFINITY && this.now() < until) await super.advance(until - this.now());
      return this.now() - start;
    });
  }

  /** Stops the wall-speed pacing. Idempotent. */
  stop(): void {
    clearInterval(this.pump);
  }
}

/**
 * Empties a store through the contract: revokes every lease its keys hold, then deletes the keys
 * left (leases outlive the run otherwise — flannel's last a day). Errors are ignored: clean-up is
 * best effort.
 */
export async function emptyStore(store: Datastore): Promise<void> {
  try {
    const listing = await store.list("");
    const leases = new Set(listing.items.flatMap((kv) => (kv.lease ? [kv.lease] : [])));
    for (const lease of leases) await store.revokeLease(lease).catch(() => undefined);
    const left = (await store.list("")).items.map((kv) => kv.key);
    for (let i = 0; i < left.length; i += 100) {
      await store
        .txn(
          [],
          left.slice(i, i + 100).map((key) => ({ op: "delete" as const, key })),
        )
        .catch(() => undefined);
    }
  } catch {
    // best effort
  }
}
