/**
 * Time comes in through a `Clock`, so the same agent code runs against wall time on a real host and
 * against a virtual clock in tests, the simulator and benchmarks (where a 24 h lease expires in
 * microseconds of wall time).
 */

export interface TimerHandle {
  /** Cancels the timer; calling it twice, or after it fired, does nothing. */
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since an arbitrary epoch; never goes backwards. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds (0 allowed). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Calls `fn` every `ms` milliseconds (ms > 0) until cancelled. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Resolves after `ms` milliseconds; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export class RealClock implements Clock {
  private readonly origin = performance.timeOrigin;

  now(): number {
    return this.origin + performance.now();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0)) throw new RangeError(`setInterval: ms must be > 0, got ${ms}`);
    const t = setInterval(fn, ms);
    t.unref?.();
    return { cancel: () => clearInterval(t) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      handle.cancel();
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface HeapEntry {
  at: number;
  id: number;
  timer: VirtualTimer;
}

interface VirtualTimer {
  id: number;
  at: number;
  interval: number;
  fn: () => void;
  cancelled: boolean;
}

/** Lets pending promise chains (microtasks and I/O-free macrotasks) run to completion. */
export async function flushAsync(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export interface RunUntilIdleOptions {
  /** Stop before firing any timer later than now + `limitMs` (periodic timers never go idle). */
  limitMs?: number;
  /** Stop after this many timers have fired (a guard against runaway loops). Default 1e6. */
  maxTimers?: number;
}

/**
 * A clock that moves only when told. Timers fire in (time, creation) order; between timers the
 * clock lets pending promise chains settle, so async agent code reacts to each timer before the
 * next one fires.
 */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, VirtualTimer>();
  /** Min-heap on (at, id); entries of cancelled or re-armed timers are skipped lazily. */
  private readonly heap: HeapEntry[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, Math.max(0, ms), 0);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0)) throw new RangeError(`setInterval: ms must be > 0, got ${ms}`);
    return this.add(fn, ms, ms);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Number of timers waiting to fire. */
  pending(): number {
    return this.timers.size;
  }

  /** Time of the next timer, or undefined when none is pending. */
  nextAt(): number | undefined {
    this.dropStale();
    return this.heap[0]?.at;
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance: ms must be >= 0, got ${ms}`);
    const until = this.t + ms;
    await flushAsync();
    for (;;) {
      const next = this.popDue(until);
      if (!next) break;
      this.fire(next);
      await flushAsync();
    }
    this.t = until;
    await flushAsync();
  }

  /**
   * Fires timers until none is pending (or the limits say stop); returns the virtual time that
   * passed. With periodic timers pending, pass `limitMs`.
   */
  async runUntilIdle(options: RunUntilIdleOptions = {}): Promise<number> {
    const start = this.t;
    const until = options.limitMs === undefined ? Number.POSITIVE_INFINITY : this.t + options.limitMs;
    const maxTimers = options.maxTimers ?? 1_000_000;
    let fired = 0;
    await flushAsync();
    for (;;) {
      const next = this.popDue(until);
      if (!next) break;
      this.fire(next);
      await flushAsync();
      if (++fired >= maxTimers) break;
    }
    return this.t - start;
  }

  private add(fn: () => void, ms: number, interval: number): TimerHandle {
    const timer: VirtualTimer = { id: ++this.seq, at: this.t + ms, interval, fn, cancelled: false };
    this.timers.set(timer.id, timer);
    this.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
        this.timers.delete(timer.id);
      },
    };
  }

  private popDue(until: number): VirtualTimer | undefined {
    this.dropStale();
    const top = this.heap[0];
    if (!top || top.at > until) return undefined;
    this.pop();
    return top.timer;
  }

  /** Removes heap entries whose timer was cancelled or re-armed under another id. */
  private dropStale(): void {
    for (;;) {
      const top = this.heap[0];
      if (!top || (top.timer.id === top.id && !top.timer.cancelled)) return;
      this.pop();
    }
  }

  private static before(a: HeapEntry, b: HeapEntry): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id);
  }

  private push(timer: VirtualTimer): void {
    const h = this.heap;
    h.push({ at: timer.at, id: timer.id, timer });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!VirtualClock.before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (h.length === 0 || !last) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && VirtualClock.before(h[l]!, h[m]!)) m = l;
      if (r < h.length && VirtualClock.before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }

  private fire(timer: VirtualTimer): void {
    this.t = Math.max(this.t, timer.at);
    if (timer.interval > 0) {
      // Re-arm under a new id so an interval does not starve timers due at the same instant.
      this.timers.delete(timer.id);
      timer.id = ++this.seq;
      timer.at = this.t + timer.interval;
      this.timers.set(timer.id, timer);
      this.push(timer);
    } else {
      this.timers.delete(timer.id);
    }
    timer.fn();
  }
}
