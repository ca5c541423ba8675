/**
 * `mirrorPrefix`: the agent kit's `Informer` (agent/informer.ts) for callers that only want a
 * per-key callback — list a prefix, watch it from the listing's revision, re-list after any watch
 * failure (and every `resyncMs` when given) and report the difference, so the caller sees every
 * key's latest state exactly as if nothing had gone wrong.
 */
import { Informer } from "../agent/informer.ts";
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
export function mirrorPrefix(options: MirrorPrefixOptions): Promise<void> {
  const { apply } = options;
  return new Informer<KeyValue>({
    store: options.store,
    prefix: options.prefix,
    clock: options.clock,
    signal: options.signal,
    onEvent: (ev) => apply(ev.key, ev.type === "delete" ? undefined : ev.kv),
    ...(options.onError ? { onError: options.onError } : {}),
    ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
    ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
  }).start();
}
