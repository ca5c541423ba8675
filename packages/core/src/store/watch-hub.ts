/**
 * Watch fan-out shared by the memory and file datastores: a bounded history of published events
 * (for `watch({fromRevision})`) and one unbounded buffer per watcher, so a slow consumer loses
 * nothing. Publishing is synchronous and appends to the history and to every watcher in one step,
 * so a watcher that catches up from the history and then follows live events neither misses nor
 * repeats an event.
 */

import type { WatchEvent } from "../datastore.ts";
import { CompactedError } from "../errors.ts";

function eventKey(ev: WatchEvent): string {
  return ev.type === "put" ? ev.kv.key : ev.key;
}

export class WatchHub {
  private history: WatchEvent[] = [];
  private head = 0;
  /** Events with a revision <= this are no longer kept. */
  compactRevision = 0;
  /** Revision of the newest published event (or of the state the hub was reset to). */
  published = 0;
  /** While paused, watchers buffer but deliver nothing. */
  paused = false;
  private closed = false;
  private readonly watchers = new Set<Watcher>();

  constructor(private readonly historyLimit: number) {}

  /** Number of events kept for `fromRevision` catch-up. */
  get historySize(): number {
    return this.history.length - this.head;
  }

  /** Starts from a loaded state: nothing before `revision` is available. */
  reset(revision: number): void {
    this.history = [];
    this.head = 0;
    this.compactRevision = revision;
    this.published = revision;
  }

  /** Appends events (in revision order) to the history and every matching watcher. */
  publish(events: readonly WatchEvent[]): void {
    if (events.length === 0) return;
    for (const ev of events) {
      this.history.push(ev);
      for (const w of this.watchers) w.offer(ev);
    }
    this.published = events[events.length - 1]!.revision;
    this.trim();
  }

  /** Forgets history up to and including `revision` (whole revisions only). */
  compact(revision: number): void {
    while (this.head < this.history.length && this.history[this.head]!.revision <= revision) this.head++;
    if (revision > this.compactRevision) this.compactRevision = revision;
    this.shrink();
  }

  private trim(): void {
    while (this.history.length - this.head > this.historyLimit) {
      const r = this.history[this.head]!.revision;
      while (this.head < this.history.length && this.history[this.head]!.revision === r) this.head++;
      this.compactRevision = r;
    }
    this.shrink();
  }

  private shrink(): void {
    if (this.head > 1024 && this.head * 2 > this.history.length) {
      this.history = this.history.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * A watcher for keys under `prefix` with events after `fromRevision`. `error` (or a closed hub, or
   * a compacted start revision) makes the watcher's first `next()` reject with it.
   */
  open(prefix: string, fromRevision: number, signal: AbortSignal | undefined, error: Error | undefined): Watcher {
    const w = new Watcher(this, prefix, signal);
    if (error) {
      w.fail(error);
      return w;
    }
    if (fromRevision < this.compactRevision) {
      w.fail(
        new CompactedError(
          this.compactRevision,
          `[datastore] watch from revision ${fromRevision}: history up to revision ${this.compactRevision} was compacted; list again and watch from the listing's revision`,
        ),
      );
      return w;
    }
    if (signal?.aborted) {
      w.end();
      return w;
    }
    // Catch up from the history (binary search for the first event after fromRevision).
    let lo = this.head;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.history[mid]!.revision <= fromRevision) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.history.length; i++) w.offer(this.history[i]!);
    if (!this.closed) this.watchers.add(w);
    else w.end();
    return w;
  }

  /** Pauses or resumes delivery to every watcher (buffers keep filling). */
  setPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) for (const w of this.watchers) w.wake();
  }

  /** Ends every watcher; later `open` calls give ended watchers. */
  close(): void {
    this.closed = true;
    for (const w of [...this.watchers]) w.end();
  }

  /** Forgets an ended watcher (called by the watcher itself). */
  remove(w: Watcher): void {
    this.watchers.delete(w);
  }

  /** Number of open watchers. */
  get watcherCount(): number {
    return this.watchers.size;
  }
}

type Waiter = { resolve: (r: IteratorResult<WatchEvent>) => void; reject: (e: unknown) => void };

/** One watch: an async iterator over its own buffer. */
export class Watcher implements AsyncIterableIterator<WatchEvent> {
  private queue: WatchEvent[] = [];
  private qhead = 0;
  private readonly waiters: Waiter[] = [];
  private ended = false;
  private error: Error | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly hub: WatchHub,
    private readonly prefix: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    if (signal) {
      this.onAbort = () => this.end();
      signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  /** Buffers `ev` when its key is under the prefix. */
  offer(ev: WatchEvent): void {
    if (this.ended || !eventKey(ev).startsWith(this.prefix)) return;
    this.queue.push(ev);
    this.wake();
  }

  /** Hands buffered events to waiting `next()` calls (unless the hub is paused). */
  wake(): void {
    while (this.waiters.length > 0 && !this.hub.paused && this.qhead < this.queue.length) {
      this.waiters.shift()!.resolve({ value: this.take(), done: false });
    }
  }

  /** Makes the next `next()` reject with `error`, then end. */
  fail(error: Error): void {
    this.error = error;
    const w = this.waiters.shift();
    if (w) {
      this.error = undefined;
      w.reject(error);
      this.end();
    }
  }

  /** Ends the iteration: pending and later `next()` calls return done. Idempotent. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    this.qhead = 0;
    this.hub.remove(this);
    if (this.signal && this.onAbort) this.signal.removeEventListener("abort", this.onAbort);
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  private take(): WatchEvent {
    const ev = this.queue[this.qhead++]!;
    if (this.qhead === this.queue.length) {
      this.queue = [];
      this.qhead = 0;
    } else if (this.qhead > 1024 && this.qhead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qhead);
      this.qhead = 0;
    }
    return ev;
  }

  /** The next buffered event; waits while none is buffered or the hub is paused. */
  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.error) {
      const e = this.error;
      this.error = undefined;
      this.end();
      return Promise.reject(e);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    if (!this.hub.paused && this.qhead < this.queue.length) return Promise.resolve({ value: this.take(), done: false });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Ends the watch (called by `for await` on break). */
  return(): Promise<IteratorResult<WatchEvent>> {
    this.error = undefined;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** The watcher is its own iterator. */
  [Symbol.asyncIterator](): this {
    return this;
  }
}
