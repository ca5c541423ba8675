/**
 * `watchWithResync`: a list-then-watch loop over any `Datastore` that survives compaction.
 *
 * A plain `watch` throws `CompactedError` when it has to resume from a revision the store no
 * longer keeps (etcd compacted while the watch was disconnected, or the consumer asked for an old
 * revision). This helper then lists again and turns the difference between what it had delivered
 * and the new listing into events, so a consumer that applies events one by one ends up exactly
 * at the store's state: no change is lost and none is delivered twice (changes made while history
 * was lost arrive collapsed: one event per key that differs, marked `resynced`).
 */

import { CompactedError, TryAgainError, type Datastore, type KeyValue, type WatchEvent } from "@cnikit/core";

/** The listing the stream starts with. */
export interface ResyncSnapshot {
  type: "snapshot";
  items: KeyValue[];
  revision: number;
}

/** A watch event; `resynced` marks one made up from a re-listing after compaction (its `revision` is the listing's). */
export type ResyncEvent = ResyncSnapshot | (WatchEvent & { resynced?: true });

export interface WatchWithResyncOptions {
  /** Ends the stream (the iterator returns normally). */
  signal?: AbortSignal;
  /** Called after each re-listing forced by compaction. */
  onResync?: (info: { compactRevision: number; revision: number; changes: number }) => void;
  /** Called when the store is unavailable (`TryAgainError`) before the next attempt. */
  onUnavailable?: (error: TryAgainError) => void;
  /** Longest back-off between attempts while the store is unavailable. Default 1000 ms. */
  maxBackoffMs?: number;
}

function keyOf(ev: WatchEvent): string {
  return ev.type === "put" ? ev.kv.key : ev.key;
}

function abortable(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Lists `prefix` (yielding one `snapshot`), then yields every later event under it. On
 * `CompactedError` it lists again and yields the differences as `resynced` events; on
 * `TryAgainError` it waits (backing off) and tries again, for as long as it runs. Ends when the
 * signal aborts or the store's watch ends (store closed). Other errors (`ConfigError`,
 * `ClosedError`, ...) are thrown from the iterator. Keeps one `KeyValue` per key under the prefix.
 */
export async function* watchWithResync(store: Datastore, prefix: string, options: WatchWithResyncOptions = {}): AsyncGenerator<ResyncEvent> {
  const signal = options.signal;
  const maxBackoff = options.maxBackoffMs ?? 1000;
  let backoff = 25;
  const unavailable = async (e: unknown): Promise<void> => {
    if (!(e instanceof TryAgainError)) throw e;
    options.onUnavailable?.(e);
    await abortable(backoff, signal);
    backoff = Math.min(backoff * 2, maxBackoff);
  };

  const known = new Map<string, KeyValue>();
  let revision = -1;
  while (revision < 0) {
    if (signal?.aborted) return;
    try {
      const listing = await store.list(prefix);
      for (const kv of listing.items) known.set(kv.key, kv);
      revision = listing.revision;
      backoff = 25;
      yield { type: "snapshot", items: listing.items, revision };
    } catch (e) {
      await unavailable(e);
    }
  }

  for (;;) {
    if (signal?.aborted) return;
    let compacted: CompactedError | undefined;
    try {
      const watchOptions: { fromRevision: number; signal?: AbortSignal } = { fromRevision: revision };
      if (signal) watchOptions.signal = signal;
      for await (const ev of store.watch(prefix, watchOptions)) {
        backoff = 25;
        if (ev.type === "put") known.set(ev.kv.key, ev.kv);
        else known.delete(keyOf(ev));
        revision = ev.revision;
        yield ev;
      }
      return;
    } catch (e) {
      if (e instanceof CompactedError) compacted = e;
      else await unavailable(e);
    }
    if (!compacted) continue;
    // History is gone: list again and deliver what changed meanwhile, once per key.
    for (;;) {
      if (signal?.aborted) return;
      try {
        const listing = await store.list(prefix);
        const next = new Map(listing.items.map((kv) => [kv.key, kv]));
        const changes: (WatchEvent & { resynced: true })[] = [];
        for (const [key, old] of known) {
          if (!next.has(key)) changes.push({ type: "delete", key, prev: old, revision: listing.revision, resynced: true });
        }
        for (const kv of listing.items) {
          const old = known.get(kv.key);
          if (!old) changes.push({ type: "put", kv, revision: listing.revision, resynced: true });
          else if (old.modRevision !== kv.modRevision) changes.push({ type: "put", kv, prev: old, revision: listing.revision, resynced: true });
        }
        known.clear();
        for (const [k, v] of next) known.set(k, v);
        revision = listing.revision;
        backoff = 25;
        options.onResync?.({ compactRevision: compacted.compactRevision, revision, changes: changes.length });
        for (const c of changes) yield c;
        break;
      } catch (e) {
        await unavailable(e);
      }
    }
  }
}
