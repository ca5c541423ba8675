/**
 * `watchWithResync`: core's `Informer` (the agent kit's one list-then-watch loop) as an async
 * iterator of events, for consumers that apply events one by one.
 *
 * A plain `watch` throws `CompactedError` when it has to resume from a revision the store no
 * longer keeps (etcd compacted while the watch was disconnected, or the consumer asked for an old
 * revision). The informer then lists again and turns the difference between what it had delivered
 * and the new listing into events, so a consumer ends up exactly at the store's state: no change is
 * lost and none is delivered twice (changes made while history was lost arrive collapsed: one event
 * per key that differs, marked `resynced`).
 */

import { Informer, RealClock, type Datastore, type KeyValue, type TryAgainError, type WatchEvent } from "@cnikit/core";

/** The listing the stream starts with. */
export interface ResyncSnapshot {
  type: "snapshot";
  items: KeyValue[];
  revision: number;
}

/** A watch event; `resynced` marks one made up from a re-listing (its `revision` is the listing's). */
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

function codeOf(err: unknown): number | undefined {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === "number" ? code : undefined;
}

/**
 * Lists `prefix` (yielding one `snapshot`), then yields every later event under it. On
 * `CompactedError` (or a watch that failed otherwise) it lists again and yields the differences as
 * `resynced` events; on `TryAgainError` it waits (backing off) and tries again, for as long as it
 * runs. Ends when the signal aborts or the store is closed. Other errors (`ConfigError`, ...) are
 * thrown from the iterator. Keeps one `KeyValue` per key under the prefix.
 */
export async function* watchWithResync(store: Datastore, prefix: string, options: WatchWithResyncOptions = {}): AsyncGenerator<ResyncEvent> {
  const maxBackoff = options.maxBackoffMs ?? 1000;
  const clock = new RealClock();
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const out: ResyncEvent[] = [];
  let pending: WatchEvent[] = [];
  let failure: { err: unknown } | undefined;
  let ended = false;
  let compactRevision = 0;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    wake?.();
    wake = undefined;
  };
  stop.signal.addEventListener("abort", notify, { once: true });
  const onError = (err: unknown): void => {
    const code = codeOf(err);
    if (code === 11) options.onUnavailable?.(err as TryAgainError);
    else if (code === 105) compactRevision = (err as { compactRevision?: number }).compactRevision ?? compactRevision;
    else if (code === 107) ended = true;
    else failure = { err };
    if (code !== 11 && code !== 105) {
      stop.abort();
      notify();
    }
  };
  const make = (): Informer<KeyValue> =>
    new Informer<KeyValue>({
      store,
      prefix,
      clock,
      signal: stop.signal,
      retryMs: Math.min(25, maxBackoff),
      maxRetryMs: maxBackoff,
      onError,
      onEvent: (ev) => {
        if (ev.type === "delete") pending.push({ type: "delete", key: ev.key, prev: ev.prev, revision: 0 });
        else pending.push(ev.type === "update" ? { type: "put", kv: ev.kv, prev: ev.prev, revision: 0 } : { type: "put", kv: ev.kv, revision: 0 });
      },
      onBatch: ({ reason, revision, changed }) => {
        const batch = pending;
        pending = [];
        if (reason === "start") return;
        const resynced = reason !== "watch";
        for (const ev of batch) out.push(resynced ? { ...ev, revision, resynced: true } : { ...ev, revision });
        if (reason === "compacted") options.onResync?.({ compactRevision, revision, changes: changed });
        notify();
      },
    });
  let informer = make();
  try {
    // The first listing: wait out an unavailable store.
    let backoff = 25;
    for (;;) {
      if (stop.signal.aborted) return;
      try {
        await informer.start();
        break;
      } catch (err) {
        if (codeOf(err) !== 11) throw err;
        options.onUnavailable?.(err as TryAgainError);
        await clock.sleep(backoff, stop.signal).catch(() => undefined);
        backoff = Math.min(backoff * 2, maxBackoff);
        informer = make();
      }
    }
    yield { type: "snapshot", items: informer.keys().map((k) => informer.getKv(k)!), revision: informer.revision };
    for (;;) {
      while (out.length > 0) yield out.shift()!;
      if (failure) throw failure.err;
      if (ended || stop.signal.aborted) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    stop.abort();
  }
}
