// A minimal virtual clock for tests (this package does not depend on @cnikit/core, whose
// VirtualClock would fit too). Timers fire in time order; between timers pending microtasks and
// immediates run, so memory-transport traffic settles.
import type { BgpClock, BgpTimerHandle } from "../../src/clock.ts";

/** Lets every pending microtask chain and a few rounds of immediates run. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class TestClock implements BgpClock {
  private t = 0;
  private seq = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): BgpTimerHandle {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: ++this.seq, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Number of live timers. */
  pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, firing due timers in order and settling traffic after each. */
  async advance(ms: number): Promise<void> {
    const until = this.t + ms;
    await settle();
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
      await settle();
    }
    this.t = until;
    await settle();
  }
}
