/**
 * `keepLeaseAlive`: refreshes a lease on a timer until stopped, riding out store outages (etcd
 * restarting), and says when the lease is lost for good so the owner can grant a new one and
 * re-register its keys. Works on any `Datastore`.
 */

import { ConfigError, NotFoundError, RealClock, type Clock, type Datastore, type LeaseId, type TimerHandle } from "@cnikit/core";

export interface KeepLeaseAliveOptions {
  /** The lease's TTL in seconds (what `grantLease` was asked for). */
  ttlSeconds: number;
  /** Refresh period. Default a third of the TTL, so two refreshes may fail before it lapses. */
  intervalMs?: number;
  /** Clock for the timer. Default `RealClock` (etcd's leases run on wall time). */
  clock?: Clock;
  /** Stops the keeper. */
  signal?: AbortSignal;
  /** A refresh failed for a passing reason (e.g. `TryAgainError` while etcd restarts); retried soon. */
  onError?: (error: unknown) => void;
}

/** A running keeper. */
export interface LeaseKeeper {
  /** Stops refreshing (the lease then lapses after its TTL unless revoked). Idempotent. */
  stop(): void;
  /** Resolves with the `NotFoundError` when the lease is gone (expired or revoked), or undefined when stopped. */
  readonly lost: Promise<NotFoundError | undefined>;
  /** Successful refreshes so far. */
  readonly refreshes: number;
}

/**
 * Keeps `lease` alive with `store.keepAlive` every `intervalMs` (retrying failed refreshes after a
 * fifth of the period) until stopped, aborted, or the store answers `NotFoundError` (then `lost`
 * resolves with it and refreshing stops). Throws `ConfigError` naming `ttlSeconds` / `intervalMs`.
 */
export function keepLeaseAlive(store: Datastore, lease: LeaseId, options: KeepLeaseAliveOptions): LeaseKeeper {
  const ttl = options.ttlSeconds;
  if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 1) {
    throw new ConfigError({ field: "ttlSeconds", rule: "must be an integer >= 1 (the lease's TTL)", value: ttl });
  }
  const interval = options.intervalMs ?? Math.max(1, Math.floor((ttl * 1000) / 3));
  if (!Number.isSafeInteger(interval) || interval < 1 || interval >= ttl * 1000) {
    throw new ConfigError({ field: "intervalMs", rule: `must be an integer from 1 to below the TTL (${ttl * 1000} ms)`, value: interval });
  }
  const clock = options.clock ?? new RealClock();
  let timer: TimerHandle | undefined;
  let stopped = false;
  let refreshes = 0;
  let settle!: (e: NotFoundError | undefined) => void;
  const lost = new Promise<NotFoundError | undefined>((r) => (settle = r));

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    timer?.cancel();
    options.signal?.removeEventListener("abort", stop);
    settle(undefined);
  };
  const schedule = (ms: number): void => {
    if (!stopped) timer = clock.setTimeout(tick, ms);
  };
  const tick = (): void => {
    if (stopped) return;
    store.keepAlive(lease).then(
      () => {
        refreshes++;
        schedule(interval);
      },
      (e: unknown) => {
        if (stopped) return;
        if (e instanceof NotFoundError) {
          stopped = true;
          options.signal?.removeEventListener("abort", stop);
          settle(e);
          return;
        }
        options.onError?.(e);
        schedule(Math.max(1, Math.floor(interval / 5)));
      },
    );
  };

  if (options.signal?.aborted) stop();
  else {
    options.signal?.addEventListener("abort", stop, { once: true });
    schedule(interval);
  }
  return {
    stop,
    lost,
    get refreshes() {
      return refreshes;
    },
  };
}
