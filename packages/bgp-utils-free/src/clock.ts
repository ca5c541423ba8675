/**
 * Time for the FSM and timers comes in through this small interface, so tests run the session on a
 * virtual clock. `@cnikit/core`'s Clock (RealClock, VirtualClock) satisfies it structurally; this
 * package does not depend on it.
 */

/** A pending timer. */
export interface BgpTimerHandle {
  /** Cancels the timer; calling it twice, or after it fired, does nothing. */
  cancel(): void;
}

/** The part of a clock the speaker uses. Times are milliseconds. */
export interface BgpClock {
  /** Milliseconds since an arbitrary epoch; never goes backwards. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): BgpTimerHandle;
}

/** Wall time and Node's timers; timers are unref'd so they never keep the process alive on their own. */
export const systemClock: BgpClock = {
  now: () => performance.now(),
  setTimeout(fn: () => void, ms: number): BgpTimerHandle {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};
