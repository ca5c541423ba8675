/**
 * A key-range mirror (what Kubernetes calls an informer): list a prefix, then watch it from the
 * listing's revision, and after any watch failure (a dropped stream, a compacted revision, a store
 * that was away) wait, re-list and report the difference, so the caller sees every key's latest
 * state exactly as if nothing had gone wrong. With `resyncMs` it also re-lists on that period, as
 * informers do: a watch that silently lost events (a broken proxy, a missed event) tells nobody,
 * and only a listing repairs it.
 */
import type { Clock } from "../clock.ts";
import type { Datastore, KeyValue } from "../datastore.ts";

export interface MirrorPrefixOptions {
  store: Datastore;
  prefix: string;
  clock: Clock;
  /** Ends the mirror; no `apply` call happens after it aborts. */
  signal: AbortSignal;
  /** Called for every key that appears or changes (with its value) and disappears (undefined). */
  apply: (key: string, kv: KeyValue | undefined) => void;
  /** Called when the watch failed and the mirror is about to re-list. */
  onError?: (err: unknown) => void;
  /** Wait before re-listing after a failure (default 1000 ms on `clock`). */
  retryMs?: number;
  /**
   * Re-list every `resyncMs` on `clock` even when the watch looks healthy, reporting what changed
   * (absent: only after failures). Watch events the listing already covered are skipped.
   */
  resyncMs?: number;
}

/**
 * Starts mirroring. Resolves once the first listing has been applied (so the caller starts from a
 * complete view); rejects if that first listing fails. Afterwards it runs until `signal` aborts,
 * re-listing after failures and calling `apply` for keys that vanished meanwhile.
 */
export async function mirrorPrefix(options: MirrorPrefixOptions): Promise<void> {
  const { store, prefix, clock, signal, apply } = options;
  const retryMs = options.retryMs ?? 1_000;
  const known = new Set<string>();
  /** Revision of the newest listing applied: watch events at or below it are already in the view. */
  let listed = 0;
  const relist = async (): Promise<number> => {
    const listing = await store.list(prefix);
    if (signal.aborted || listing.revision < listed) return listing.revision;
    listed = listing.revision;
    const now = new Set(listing.items.map((kv) => kv.key));
    for (const k of known) if (!now.has(k)) apply(k, undefined);
    known.clear();
    for (const kv of listing.items) {
      known.add(kv.key);
      apply(kv.key, kv);
    }
    return listing.revision;
  };
  let from = await relist();
  if (options.resyncMs !== undefined && options.resyncMs > 0) {
    let running = false;
    const timer = clock.setInterval(() => {
      if (running || signal.aborted) return;
      running = true;
      relist()
        .catch((err: unknown) => {
          if (!signal.aborted) options.onError?.(err);
        })
        .finally(() => (running = false));
    }, options.resyncMs);
    signal.addEventListener("abort", () => timer.cancel(), { once: true });
  }
  const loop = async (): Promise<void> => {
    while (!signal.aborted) {
      try {
        for await (const ev of store.watch(prefix, { fromRevision: from, signal })) {
          from = ev.revision;
          if (ev.revision <= listed) continue;
          if (ev.type === "put") {
            known.add(ev.kv.key);
            apply(ev.kv.key, ev.kv);
          } else {
            known.delete(ev.key);
            apply(ev.key, undefined);
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        options.onError?.(err);
      }
      if (signal.aborted) return;
      try {
        await clock.sleep(retryMs, signal);
        from = await relist();
      } catch {
        if (signal.aborted) return;
      }
    }
  };
  void loop();
}
