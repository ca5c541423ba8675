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

/** Longest delay Node's timers take; longer ones would fire after 1 ms (TimeoutOverflowWarning). */
const MAX_NODE_DELAY = 2_147_483_647;

/** A delay as timers take it: negative and NaN mean 0; infinite is refused. */
function checkDelay(ms: number, what: string): number {
  if (ms === Number.POSITIVE_INFINITY) throw new RangeError(`${what}: ms must be finite, got ${ms}`);
  return ms > 0 ? ms : 0;
}

/** Wall time and Node's timers. Timers are unref'd: they never keep the process alive. */
export class RealClock implements Clock {
  private readonly origin = performance.timeOrigin;

  /** Wall-clock milliseconds (performance.timeOrigin + performance.now(), so monotonic). */
  now(): number {
    return this.origin + performance.now();
  }

  /**
   * Calls `fn` once after `ms`. Delays longer than Node's limit (about 24.8 days) are split into
   * several timers instead of firing at once. Throws RangeError for an infinite delay.
   */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    let left = checkDelay(ms, "setTimeout");
    let t: ReturnType<typeof setTimeout>;
    const arm = (): void => {
      if (left > MAX_NODE_DELAY) {
        left -= MAX_NODE_DELAY;
        t = setTimeout(arm, MAX_NODE_DELAY);
      } else {
        t = setTimeout(fn, left);
      }
      t.unref?.();
    };
    arm();
    return { cancel: () => clearTimeout(t) };
  }

  /** Calls `fn` every `ms` (0 < ms <= 2147483647, else RangeError) until cancelled. */
  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0) || ms > MAX_NODE_DELAY) throw new RangeError(`setInterval: ms must be > 0 and <= ${MAX_NODE_DELAY}, got ${ms}`);
    const t = setInterval(fn, ms);
    t.unref?.();
    return { cancel: () => clearInterval(t) };
  }

  /** Resolves after `ms`; rejects with `signal.reason` when aborted (at once if already aborted). */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

/**
 * `sleep` for any Clock: resolves after `ms` of that clock's time (through its `setTimeout`), rejects
 * with `signal.reason` when aborted (at once if already aborted). For Clock implementations.
 */
export function sleepOn(clock: Pick<Clock, "setTimeout">, ms: number, signal?: AbortSignal): Promise<void> {
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
  /** Min-heap on (at, id); entries of cancelled timers are skipped lazily and compacted in bulk. */
  private heap: HeapEntry[] = [];
  /** Heap entries whose timer was cancelled (so they are garbage). */
  private stale = 0;

  /** Starts at virtual time `start` (ms). Not safe for concurrent `advance`/`runUntilIdle` calls. */
  constructor(start = 0) {
    this.t = start;
  }

  /** Current virtual time. */
  now(): number {
    return this.t;
  }

  /** Schedules `fn` at now + ms (negative or NaN ms = 0). Throws RangeError for an infinite delay. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, checkDelay(ms, "setTimeout"), 0);
  }

  /** Schedules `fn` every `ms` (finite, > 0, else RangeError), first at now + ms. */
  setInterval(fn: () => void, ms: number): TimerHandle {
    if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError(`setInterval: ms must be finite and > 0, got ${ms}`);
    return this.add(fn, ms, ms);
  }

  /** Resolves when virtual time reaches now + ms; rejects with `signal.reason` when aborted. */
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
   * passed. With periodic timers pending, pass `limitMs`: when a timer is still pending past the
   * limit, the clock ends exactly at now + limitMs (as `advance(limitMs)` would), so calling this in
   * a loop always makes progress. When `maxTimers` stops it, time stays at the last timer fired.
   */
  async runUntilIdle(options: RunUntilIdleOptions = {}): Promise<number> {
    const start = this.t;
    const until = options.limitMs === undefined ? Number.POSITIVE_INFINITY : this.t + options.limitMs;
    const maxTimers = options.maxTimers ?? 1_000_000;
    let fired = 0;
    await flushAsync();
    for (;;) {
      const next = this.popDue(until);
      if (!next) {
        if (this.nextAt() !== undefined && until !== Number.POSITIVE_INFINITY) this.t = Math.max(this.t, until);
        break;
      }
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
        if (timer.cancelled || !this.timers.delete(timer.id)) return;
        timer.cancelled = true;
        this.stale++;
        this.compactIfMostlyStale();
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

  /** Removes heap entries at the top whose timer was cancelled or re-armed under another id. */
  private dropStale(): void {
    for (;;) {
      const top = this.heap[0];
      if (!top || (top.timer.id === top.id && !top.timer.cancelled)) return;
      if (top.timer.cancelled) this.stale--;
      this.pop();
    }
  }

  /**
   * Rebuilds the heap without cancelled entries once they are the majority, so code that keeps
   * re-arming a far-off timeout (a lease deadline pushed back on every renewal) uses bounded memory.
   */
  private compactIfMostlyStale(): void {
    if (this.stale < 64 || this.stale * 2 < this.heap.length) return;
    const live = this.heap.filter((e) => !e.timer.cancelled && e.timer.id === e.id);
    live.sort((a, b) => (VirtualClock.before(a, b) ? -1 : 1));
    this.heap = live; // a sorted array is a valid min-heap
    this.stale = 0;
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
