/**
 * One etcd watch as an async iterator: a `/v3/watch` stream with `prev_kv` and progress
 * notifications, re-opened from the next revision whenever it breaks (etcd restarting, a dropped
 * connection), so the consumer sees every event exactly once and in revision order.
 *
 * `nextRev` is the first revision not yet received: it advances past each received response's
 * events (etcd never splits one revision across responses) and on progress notifications. A
 * reconnect asks for `start_revision = nextRev`; if etcd compacted it meanwhile the watch ends
 * with `CompactedError` after the events already received.
 */

import { CompactedError, TryAgainError, type WatchEvent } from "@cnikit/core";
import { int, type KeySpace, type RawEvent, type RawHeader } from "./codec.ts";
import { ExchangeError, type Gateway, type StreamHandle } from "./gateway.ts";

/** What a watch needs from its store. */
export interface WatchHost {
  readonly keys: KeySpace;
  readonly gateway: Gateway;
  note(header: RawHeader | undefined): number;
  forget(w: EtcdWatch): void;
}

interface WatchResponse {
  header?: RawHeader;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: string;
  cancel_reason?: string;
  events?: RawEvent[];
}

/** Events buffered before the stream is paused (etcd then holds events back), and resumed below. */
const HIGH_WATER = 10_000;
const LOW_WATER = 1_000;
const MAX_BACKOFF_MS = 1_000;

type Waiter = { resolve: (r: IteratorResult<WatchEvent>) => void; reject: (e: unknown) => void };

export class EtcdWatch implements AsyncIterator<WatchEvent> {
  private readonly host: WatchHost;
  private readonly prefix: string;
  private readonly signal: AbortSignal | undefined;
  private readonly queue: WatchEvent[] = [];
  private head = 0;
  private readonly waiters: Waiter[] = [];
  private error: Error | undefined;
  private done = false;
  /** First revision not yet received; undefined until etcd's "now" is known (no start given). */
  private nextRev: number | undefined;
  private stream: StreamHandle | undefined;
  private established = false;
  private readonly firstDeadline: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private delay = 25;
  private paused = false;
  private clusterId: string | undefined;
  private readonly onAbort = (): void => this.end();

  /** Whether the watch has ended (it then holds no connection). */
  get finished(): boolean {
    return this.done;
  }

  constructor(init: { host: WatchHost; prefix: string; fromRevision: number | undefined; signal: AbortSignal | undefined; error: Error | undefined }) {
    this.host = init.host;
    this.prefix = init.prefix;
    this.signal = init.signal;
    this.nextRev = init.fromRevision === undefined ? undefined : init.fromRevision + 1;
    this.firstDeadline = Date.now() + init.host.gateway.retryWindowMs;
    if (init.error) {
      this.fail(init.error);
      return;
    }
    if (this.signal?.aborted) {
      this.end();
      return;
    }
    this.signal?.addEventListener("abort", this.onAbort, { once: true });
    this.connect();
  }

  private connect(): void {
    this.timer = undefined;
    if (this.done) return;
    const range = this.host.keys.range(this.prefix);
    this.stream = this.host.gateway.stream(
      "/v3/watch",
      {
        create_request: {
          ...range,
          ...(this.nextRev === undefined ? {} : { start_revision: String(this.nextRev) }),
          prev_kv: true,
          progress_notify: true,
        },
      },
      { onMessage: (m) => this.onMessage(m as WatchResponse), onEnd: (e) => this.onEnd(e) },
    );
    if (this.paused) this.stream.pause();
  }

  private onMessage(m: WatchResponse): void {
    if (this.done) return;
    const cluster = m.header?.cluster_id;
    if (cluster !== undefined) {
      if (this.clusterId !== undefined && cluster !== this.clusterId) {
        // A different etcd cluster answers now: its revisions say nothing about ours.
        this.fail(new CompactedError(int(m.header?.revision), `[etcd-datastore] the etcd cluster changed (id ${this.clusterId} -> ${cluster}); re-list and watch again`));
        return;
      }
      this.clusterId = cluster;
    }
    const headerRev = this.host.note(m.header);
    if (m.canceled) {
      const compact = int(m.compact_revision);
      if (compact > 0) {
        // etcd's compact revision is the first one kept; the contract names the last one forgotten.
        this.fail(new CompactedError(compact - 1, `[etcd-datastore] watch from revision ${(this.nextRev ?? 1) - 1}: etcd compacted history up to revision ${compact - 1}; re-list and watch again`));
        return;
      }
      // Canceled for another reason (e.g. the member is shutting down): open it again.
      this.stream?.destroy();
      this.retry();
      return;
    }
    if (m.created) {
      this.established = true;
      this.delay = 25;
      // Started at etcd's "now": later reconnects continue after the revision it was created at.
      if (this.nextRev === undefined) this.nextRev = headerRev + 1;
    }
    const events = m.events ?? [];
    if (events.length === 0) {
      // A progress notification: every event up to the header's revision has been sent.
      if (!m.created && this.nextRev !== undefined && headerRev >= this.nextRev) this.nextRev = headerRev + 1;
      return;
    }
    let max = 0;
    for (const ev of events) {
      const out = this.map(ev);
      if (out) this.push(out);
      const r = int(ev.kv?.mod_revision);
      if (r > max) max = r;
    }
    if (this.nextRev === undefined || max >= this.nextRev) this.nextRev = max + 1;
  }

  private map(ev: RawEvent): WatchEvent | undefined {
    const revision = int(ev.kv?.mod_revision);
    const prev = this.host.keys.kv(ev.prev_kv);
    if (ev.type === "DELETE") {
      const key = this.host.keys.strip(ev.kv?.key);
      if (key === undefined) return undefined;
      return prev ? { type: "delete", key, prev, revision } : { type: "delete", key, revision };
    }
    const kv = this.host.keys.kv(ev.kv);
    if (!kv) return undefined;
    return prev ? { type: "put", kv, prev, revision } : { type: "put", kv, revision };
  }

  private push(ev: WatchEvent): void {
    const w = this.waiters.shift();
    if (w) {
      w.resolve({ value: ev, done: false });
      return;
    }
    this.queue.push(ev);
    if (!this.paused && this.queue.length - this.head > HIGH_WATER) {
      this.paused = true;
      this.stream?.pause();
    }
  }

  private onEnd(err: ExchangeError | undefined): void {
    this.stream = undefined;
    if (this.done) return;
    if (err && err.kind === "server" && !this.established) {
      this.fail(new TryAgainError(`[etcd-datastore] could not open a watch: ${err.message}`, { cause: err }));
      return;
    }
    if (!this.established && Date.now() >= this.firstDeadline) {
      this.fail(
        new TryAgainError(`[etcd-datastore] could not open a watch within ${this.host.gateway.retryWindowMs} ms${err ? `: ${err.message}` : ""}; retry later`, {
          cause: err,
        }),
      );
      return;
    }
    this.retry();
  }

  /** Re-opens the stream from `nextRev` after a back-off. */
  private retry(): void {
    if (this.done || this.timer) return;
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, MAX_BACKOFF_MS);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  /** Ends with an error, delivered after the events already buffered (waiters exist only when none are). */
  private fail(e: Error): void {
    if (this.done) return;
    this.stop();
    if (this.waiters.length > 0) for (const w of this.waiters.splice(0)) w.reject(e);
    else this.error = e;
  }

  private stop(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.stream?.destroy();
    this.stream = undefined;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.host.forget(this);
  }

  /** Ends the watch now (abort, `return`, store close): pending and later `next()` calls are done. */
  end(): void {
    const wasDone = this.done;
    this.error = undefined;
    this.queue.length = 0;
    this.head = 0;
    if (!wasDone) this.stop();
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  /** The next event; rejects once with the watch's error, then reports done. */
  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.head < this.queue.length) {
      const ev = this.queue[this.head++]!;
      if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      if (this.paused && this.queue.length - this.head < LOW_WATER) {
        this.paused = false;
        this.stream?.resume();
      }
      return Promise.resolve({ value: ev, done: false });
    }
    if (this.error) {
      const e = this.error;
      this.error = undefined;
      return Promise.reject(e);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
    });
  }

  /** Ends the watch (for `break` in `for await`). */
  return(): Promise<IteratorResult<WatchEvent>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }
}
