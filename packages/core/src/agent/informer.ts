/**
 * The one informer: list a prefix, watch it from the listing's revision, and re-list — on a period
 * (`resyncMs`: a watch that silently lost events tells nobody, only a listing repairs it), at once
 * after a compacted start revision, and after a watch that failed or ended while the informer runs
 * (backing off on `clock` from `retryMs` up to `maxRetryMs`). A re-listing is turned into the events that tell
 * the difference from the cache (one per key that changed, keys that vanished deleted), so a
 * consumer that applies events one by one always ends at the store's state: nothing lost, nothing
 * applied twice (watch events at or below the newest listing's revision are skipped).
 *
 * Values are decoded once per change (`decode`; a key whose value it rejects is treated as absent).
 * Everything stops when `signal` aborts: no callback runs after that.
 */
import type { Clock, TimerHandle } from "../clock.ts";
import type { Datastore, KeyValue } from "../datastore.ts";

/** One change of the cache. `prev` is the value before it (absent for an add). */
export type InformerEvent<T> = { type: "add"; key: string; value: T; kv: KeyValue } | { type: "update"; key: string; value: T; prev: T; kv: KeyValue } | { type: "delete"; key: string; prev: T };

/** Why the informer re-listed. */
export type RelistReason = "start" | "resync" | "compacted" | "watch-failed" | "manual";

export interface InformerOptions<T> {
  store: Datastore;
  prefix: string;
  clock: Clock;
  /** Stops the informer (watch, timers); no callback runs after it aborts. */
  signal: AbortSignal;
  /** Value of a key; `undefined` = ignore the key (as if absent). Default: the KeyValue itself. */
  decode?: (kv: KeyValue) => T | undefined;
  /** Every change of the cache, in order. */
  onEvent?: (event: InformerEvent<T>) => void;
  /**
   * After each batch: one watch event, or one whole listing (`changed` = how many events it
   * produced). The place to replan once per batch.
   */
  onBatch?: (info: { reason: RelistReason | "watch"; changed: number; revision: number }) => void;
  /** A watch or a re-listing failed; the informer backs off and re-lists. */
  onError?: (err: unknown) => void;
  /** First wait before re-listing after a failure (default 1000 ms); doubles per failure. */
  retryMs?: number;
  /** Longest wait between attempts (default `retryMs`: no growth). */
  maxRetryMs?: number;
  /** Re-list on this period even when the watch looks healthy (absent or 0: only after failures). */
  resyncMs?: number;
}

function isCode(err: unknown, code: number): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}

/** List + watch + resync over one prefix with a decoded cache; see the module comment. */
export class Informer<T = KeyValue> {
  private readonly cache = new Map<string, { value: T; kv: KeyValue }>();
  /** Revision of the newest listing applied. */
  private listed = 0;
  /** Revision the watch resumes after. */
  private from = 0;
  private started: Promise<void> | undefined;
  private relisting: Promise<number> | undefined;
  private resyncTimer: TimerHandle | undefined;
  private readonly decode: (kv: KeyValue) => T | undefined;

  constructor(private readonly options: InformerOptions<T>) {
    this.decode = options.decode ?? ((kv) => kv as unknown as T);
  }

  /**
   * Lists the prefix and starts watching. Resolves once the first listing is in the cache; rejects
   * with the store's error if that listing fails (then nothing keeps running). A second call
   * returns the first call's promise.
   */
  start(): Promise<void> {
    this.started ??= this.run();
    return this.started;
  }

  private async run(): Promise<void> {
    const { signal, clock } = this.options;
    await this.relist("start");
    if (signal.aborted) return;
    const resyncMs = this.options.resyncMs ?? 0;
    if (resyncMs > 0) {
      this.resyncTimer = clock.setInterval(() => {
        if (this.relisting || signal.aborted) return;
        this.relist("resync").catch((err: unknown) => {
          if (!signal.aborted) this.options.onError?.(err);
        });
      }, resyncMs);
    }
    signal.addEventListener("abort", () => this.resyncTimer?.cancel(), { once: true });
    void this.watchLoop();
  }

  /** The decoded value of a key, if present. */
  get(key: string): T | undefined {
    return this.cache.get(key)?.value;
  }

  /** The stored KeyValue of a key, if present (and accepted by `decode`). */
  getKv(key: string): KeyValue | undefined {
    return this.cache.get(key)?.kv;
  }

  /** Every decoded value, by key order of insertion. */
  values(): T[] {
    return [...this.cache.values()].map((e) => e.value);
  }

  /** Keys in the cache. */
  keys(): string[] {
    return [...this.cache.keys()];
  }

  get size(): number {
    return this.cache.size;
  }

  /** The newest revision reflected in the cache. */
  get revision(): number {
    return Math.max(this.listed, this.from);
  }

  /**
   * Re-lists now and applies the difference (concurrent calls share one listing). Resolves with
   * the listing's revision; rejects with the store's error.
   */
  resync(): Promise<number> {
    return this.relist("manual");
  }

  private relist(reason: RelistReason): Promise<number> {
    this.relisting ??= this.doRelist(reason).finally(() => (this.relisting = undefined));
    return this.relisting;
  }

  private async doRelist(reason: RelistReason): Promise<number> {
    const { store, prefix, signal } = this.options;
    const listing = await store.list(prefix);
    if (signal.aborted || listing.revision < this.listed) return listing.revision;
    this.listed = listing.revision;
    if (this.from < listing.revision) this.from = listing.revision;
    const seen = new Set<string>();
    let changed = 0;
    for (const kv of listing.items) {
      const old = this.cache.get(kv.key);
      // The version the cache holds: decoded (and accepted) already.
      if (old && old.kv.modRevision === kv.modRevision && old.kv.lease === kv.lease) {
        seen.add(kv.key);
        continue;
      }
      const value = this.decode(kv);
      if (value === undefined) continue;
      seen.add(kv.key);
      this.cache.set(kv.key, { value, kv });
      changed++;
      this.options.onEvent?.(old ? { type: "update", key: kv.key, value, prev: old.value, kv } : { type: "add", key: kv.key, value, kv });
    }
    for (const [key, old] of [...this.cache]) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      changed++;
      this.options.onEvent?.({ type: "delete", key, prev: old.value });
    }
    this.options.onBatch?.({ reason, changed, revision: listing.revision });
    return listing.revision;
  }

  private apply(key: string, kv: KeyValue | undefined, revision: number): void {
    const old = this.cache.get(key);
    const value = kv ? this.decode(kv) : undefined;
    if (kv && value !== undefined) {
      this.cache.set(key, { value, kv });
      this.options.onEvent?.(old ? { type: "update", key, value, prev: old.value, kv } : { type: "add", key, value, kv });
    } else if (old) {
      this.cache.delete(key);
      this.options.onEvent?.({ type: "delete", key, prev: old.value });
    } else {
      return;
    }
    this.options.onBatch?.({ reason: "watch", changed: 1, revision });
  }

  private async watchLoop(): Promise<void> {
    const { store, prefix, clock, signal } = this.options;
    const retryMs = this.options.retryMs ?? 1_000;
    const maxRetryMs = Math.max(retryMs, this.options.maxRetryMs ?? retryMs);
    let delay = retryMs;
    while (!signal.aborted) {
      let reason: RelistReason = "watch-failed";
      try {
        for await (const ev of store.watch(prefix, { fromRevision: this.from, signal })) {
          if (signal.aborted) return;
          delay = retryMs;
          this.from = ev.revision;
          if (ev.revision <= this.listed) continue;
          this.apply(ev.type === "put" ? ev.kv.key : ev.key, ev.type === "put" ? ev.kv : undefined, ev.revision);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (isCode(err, 105)) reason = "compacted";
        this.options.onError?.(err);
      }
      if (signal.aborted) return;
      // Lost history is no store fault: re-list at once; after a failure, back off first.
      let wait = reason !== "compacted";
      for (;;) {
        if (wait) {
          try {
            await clock.sleep(delay, signal);
          } catch {
            return;
          }
          delay = Math.min(delay * 2, maxRetryMs);
        }
        wait = true;
        try {
          await this.relist(reason);
          break;
        } catch (err) {
          if (signal.aborted) return;
          this.options.onError?.(err);
          // A closed store never comes back.
          if (isCode(err, 107)) return;
        }
      }
    }
  }
}
