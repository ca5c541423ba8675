import { afterEach, describe, expect, it, vi } from "vitest";
import { RealClock, VirtualClock, flushAsync } from "../src/index.ts";

describe("VirtualClock ordering", () => {
  it("fires by time, then by creation order", async () => {
    const clock = new VirtualClock(1000);
    const log: string[] = [];
    clock.setTimeout(() => log.push("a@10"), 10);
    clock.setTimeout(() => log.push("b@5"), 5);
    clock.setTimeout(() => log.push("c@10"), 10);
    clock.setTimeout(() => log.push("d@0"), 0);
    clock.setTimeout(() => log.push("e@5"), 5);
    clock.setTimeout(() => log.push("f@neg"), -3);
    await clock.advance(10);
    expect(log).toEqual(["d@0", "f@neg", "b@5", "e@5", "a@10", "c@10"]);
    expect(clock.now()).toBe(1010);
  });

  it("a timer set from a callback for the same instant fires after those already due", async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimeout(() => {
      log.push("a");
      clock.setTimeout(() => log.push("a-child"), 0);
    }, 5);
    clock.setTimeout(() => log.push("b"), 5);
    await clock.advance(5);
    expect(log).toEqual(["a", "b", "a-child"]);
  });

  it("each timer sees now() equal to its due time", async () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    for (const ms of [30, 10, 20]) clock.setTimeout(() => seen.push(clock.now()), ms);
    await clock.advance(100);
    expect(seen).toEqual([10, 20, 30]);
    expect(clock.now()).toBe(100);
  });

  it("advance stops at the target: later timers stay pending", async () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(1), 10);
    clock.setTimeout(() => fired.push(2), 11);
    await clock.advance(10);
    expect(fired).toEqual([1]);
    expect(clock.pending()).toBe(1);
    expect(clock.nextAt()).toBe(11);
    await clock.advance(1);
    expect(fired).toEqual([1, 2]);
    expect(clock.pending()).toBe(0);
    expect(clock.nextAt()).toBeUndefined();
  });

  it("advance(0) fires timers due now", async () => {
    const clock = new VirtualClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), 0);
    await clock.advance(0);
    expect(fired).toBe(true);
  });

  it("refuses negative, NaN and infinite arguments", async () => {
    const clock = new VirtualClock();
    await expect(clock.advance(-1)).rejects.toThrow(RangeError);
    await expect(clock.advance(Number.NaN)).rejects.toThrow(RangeError);
    expect(() => clock.setInterval(() => {}, 0)).toThrow(RangeError);
    expect(() => clock.setInterval(() => {}, Number.NaN)).toThrow(RangeError);
    expect(() => clock.setInterval(() => {}, Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => clock.setTimeout(() => {}, Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(clock.pending()).toBe(0);
  });

  it("a NaN delay means 0, not a timer that corrupts the order", async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimeout(() => log.push("later"), 5);
    clock.setTimeout(() => log.push("nan"), Number.NaN);
    expect(clock.nextAt()).toBe(0);
    await clock.advance(5);
    expect(log).toEqual(["nan", "later"]);
  });
});

describe("VirtualClock and async code", () => {
  it("lets an async chain started by one timer settle before the next timer fires", async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimeout(() => {
      void (async () => {
        await Promise.resolve();
        await new Promise<void>((r) => setImmediate(r));
        await Promise.resolve();
        log.push("first done");
      })();
    }, 10);
    clock.setTimeout(() => log.push("second"), 10);
    await clock.advance(10);
    expect(log).toEqual(["first done", "second"]);
  });

  it("timers set by async code after a timer fired are honoured within the same advance", async () => {
    const clock = new VirtualClock();
    const log: number[] = [];
    const loop = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        await clock.sleep(100);
        log.push(clock.now());
      }
    };
    const done = loop();
    await clock.advance(350);
    expect(log).toEqual([100, 200, 300]);
    await clock.advance(1000);
    expect(log).toEqual([100, 200, 300, 400, 500]);
    await done;
  });

  it("flushAsync drains promise chains", async () => {
    let value = 0;
    void Promise.resolve()
      .then(() => value++)
      .then(() => value++)
      .then(() => value++);
    await flushAsync(1);
    expect(value).toBe(3);
  });
});

describe("VirtualClock intervals", () => {
  it("re-arm from the time they fired", async () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setInterval(() => seen.push(clock.now()), 30);
    await clock.advance(100);
    expect(seen).toEqual([30, 60, 90]);
    expect(clock.nextAt()).toBe(120);
    expect(clock.pending()).toBe(1);
  });

  it("can be cancelled from inside their own callback", async () => {
    const clock = new VirtualClock();
    let count = 0;
    const handle = clock.setInterval(() => {
      count++;
      if (count === 3) handle.cancel();
    }, 10);
    await clock.advance(1000);
    expect(count).toBe(3);
    expect(clock.pending()).toBe(0);
    expect(clock.nextAt()).toBeUndefined();
  });

  it("count as created when they re-arm, so they do not starve a timeout due at the same instant", async () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setInterval(() => log.push(`tick@${clock.now()}`), 10);
    clock.setTimeout(() => log.push(`once@${clock.now()}`), 20);
    clock.setInterval(() => log.push(`fast@${clock.now()}`), 5);
    await clock.advance(20);
    // At 20: the timeout (created at 0) before the ticks re-armed at 10 and 15.
    expect(log).toEqual(["fast@5", "tick@10", "fast@10", "fast@15", "once@20", "tick@20", "fast@20"]);
  });

  it("cancel is idempotent, also after a timeout fired", async () => {
    const clock = new VirtualClock();
    let n = 0;
    const h = clock.setTimeout(() => n++, 1);
    await clock.advance(1);
    h.cancel();
    h.cancel();
    const h2 = clock.setTimeout(() => n++, 1);
    h2.cancel();
    h2.cancel();
    await clock.advance(10);
    expect(n).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it("many cancelled far-off timers are not kept around, and the live ones still fire in order", async () => {
    const clock = new VirtualClock();
    const log: number[] = [];
    for (let i = 0; i < 1000; i++) {
      clock.setTimeout(() => log.push(-1), 1_000_000 + i).cancel();
      if (i % 100 === 0) clock.setTimeout(() => log.push(i), 1_000_000 - i);
    }
    expect(clock.pending()).toBe(10);
    // Peek at the private heap: the cancelled entries must have been compacted away.
    expect((clock as unknown as { heap: unknown[] }).heap.length).toBeLessThan(200);
    await clock.runUntilIdle();
    expect(log).toEqual([900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  });
});

describe("VirtualClock.runUntilIdle", () => {
  it("fires everything pending, including timers set along the way, and returns the time passed", async () => {
    const clock = new VirtualClock(50);
    const log: number[] = [];
    clock.setTimeout(() => {
      log.push(clock.now());
      clock.setTimeout(() => log.push(clock.now()), 500);
    }, 100);
    const passed = await clock.runUntilIdle();
    expect(log).toEqual([150, 650]);
    expect(passed).toBe(600);
    expect(clock.now()).toBe(650);
    expect(clock.pending()).toBe(0);
  });

  it("with limitMs stops at the limit when periodic timers are pending", async () => {
    const clock = new VirtualClock();
    let ticks = 0;
    clock.setInterval(() => ticks++, 1000);
    const passed = await clock.runUntilIdle({ limitMs: 2500 });
    expect(ticks).toBe(2);
    expect(passed).toBe(2500);
    expect(clock.now()).toBe(2500);
    expect(clock.nextAt()).toBe(3000);
    // Called in a loop it keeps making progress.
    await clock.runUntilIdle({ limitMs: 2500 });
    expect(ticks).toBe(5);
    expect(clock.now()).toBe(5000);
  });

  it("with limitMs and only a far timer moves to the limit without firing it", async () => {
    const clock = new VirtualClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), 10_000);
    expect(await clock.runUntilIdle({ limitMs: 100 })).toBe(100);
    expect(fired).toBe(false);
    expect(clock.now()).toBe(100);
  });

  it("with limitMs and nothing left stays at the last timer", async () => {
    const clock = new VirtualClock();
    clock.setTimeout(() => {}, 10);
    expect(await clock.runUntilIdle({ limitMs: 100 })).toBe(10);
    expect(clock.now()).toBe(10);
  });

  it("maxTimers stops a runaway loop", async () => {
    const clock = new VirtualClock();
    let ticks = 0;
    clock.setInterval(() => ticks++, 1);
    await clock.runUntilIdle({ maxTimers: 50 });
    expect(ticks).toBe(50);
    expect(clock.now()).toBe(50);
  });
});

describe("sleep", () => {
  it("resolves when virtual time reaches the deadline", async () => {
    const clock = new VirtualClock();
    let done = false;
    const p = clock.sleep(100).then(() => (done = true));
    await clock.advance(99);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);
    await p;
  });

  it("rejects with the signal's reason when aborted, and cancels its timer", async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    const p = clock.sleep(100, ac.signal);
    expect(clock.pending()).toBe(1);
    const reason = new Error("stop");
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    expect(clock.pending()).toBe(0);
  });

  it("rejects at once when the signal is already aborted", async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    ac.abort("gone");
    await expect(clock.sleep(100, ac.signal)).rejects.toBe("gone");
    expect(clock.pending()).toBe(0);
  });

  it("aborting after it resolved changes nothing", async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    const p = clock.sleep(10, ac.signal);
    await clock.advance(10);
    await expect(p).resolves.toBeUndefined();
    ac.abort();
    expect(clock.pending()).toBe(0);
  });
});

describe("RealClock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("now() is close to Date.now() and never goes backwards", () => {
    const clock = new RealClock();
    const a = clock.now();
    const b = clock.now();
    expect(b).toBeGreaterThanOrEqual(a);
    expect(Math.abs(a - Date.now())).toBeLessThan(60_000);
  });

  it("sleep(0) resolves and an aborted sleep rejects", async () => {
    const clock = new RealClock();
    await expect(clock.sleep(0)).resolves.toBeUndefined();
    const ac = new AbortController();
    const p = clock.sleep(60_000, ac.signal);
    ac.abort(new Error("bye"));
    await expect(p).rejects.toThrow("bye");
  });

  it("a delay beyond Node's 2^31-1 ms limit does not fire early", () => {
    // Node (and its fake timers) fire such a timer after 1 ms; the clock must split it.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const clock = new RealClock();
    const month = 30 * 24 * 3600 * 1000;
    let fired = false;
    clock.setTimeout(() => (fired = true), month);
    vi.advanceTimersByTime(month - 1);
    expect(fired).toBe(false);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(true);
  });

  it("a long timeout can be cancelled between its parts", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const clock = new RealClock();
    let fired = false;
    const h = clock.setTimeout(() => (fired = true), 3_000_000_000);
    vi.advanceTimersByTime(2_500_000_000);
    h.cancel();
    vi.advanceTimersByTime(1_000_000_000);
    expect(fired).toBe(false);
  });

  it("refuses intervals it cannot honour", () => {
    const clock = new RealClock();
    expect(() => clock.setInterval(() => {}, 0)).toThrow(RangeError);
    expect(() => clock.setInterval(() => {}, 2 ** 31)).toThrow(RangeError);
    expect(() => clock.setTimeout(() => {}, Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});
