import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DataplanePublisher, KeyedSerializer, VirtualClock, emptyDataplane, flushAsync, sameJson } from "../src/index.ts";
import type { NodeDataplane } from "../src/index.ts";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("KeyedSerializer", () => {
  it("runs calls with the same key one after another, in call order, past failures", async () => {
    const s = new KeyedSerializer();
    const gate = deferred();
    const log: string[] = [];
    const first = s.run("a", async () => {
      log.push("a1 start");
      await gate.promise;
      log.push("a1 end");
      throw new Error("a1 failed");
    });
    const second = s.run("a", async () => {
      log.push("a2");
      return 2;
    });
    await flushAsync();
    expect(log).toEqual(["a1 start"]);
    gate.resolve();
    await expect(first).rejects.toThrow("a1 failed");
    await expect(second).resolves.toBe(2);
    expect(log).toEqual(["a1 start", "a1 end", "a2"]);
    await flushAsync();
    expect(s.busy).toBe(0);
  });

  it("runs calls with different keys concurrently", async () => {
    const s = new KeyedSerializer();
    const gate = deferred();
    const log: string[] = [];
    const a = s.run("a", async () => {
      await gate.promise;
      log.push("a");
    });
    const b = s.run("b", async () => {
      log.push("b");
    });
    await b;
    expect(log).toEqual(["b"]);
    gate.resolve();
    await a;
    expect(log).toEqual(["b", "a"]);
  });
});

function planOf(n: number): NodeDataplane {
  return { ...emptyDataplane("n1"), sysctls: { ipv4Forwarding: n > 0 }, routes: n > 0 ? [{ dst: `10.0.${n}.0/24`, via: "192.0.2.1", dev: "eth0" }] : [] };
}

describe("DataplanePublisher", () => {
  function setup(minIntervalMs: number, equal?: (a: NodeDataplane, b: NodeDataplane) => boolean) {
    const clock = new VirtualClock();
    let state = 0;
    let computed = 0;
    const told: NodeDataplane[] = [];
    const pub = new DataplanePublisher({
      clock,
      initial: emptyDataplane("n1"),
      compute: () => {
        computed++;
        return planOf(state);
      },
      minIntervalMs,
      ...(equal ? { equal } : {}),
    });
    pub.subscribe((dp) => told.push(dp));
    return { clock, pub, told, set: (n: number) => (state = n), computed: () => computed };
  }

  it("equal: sameJson tells exactly what the JSON comparison tells, and keeps the last plan object while equal ones come", async () => {
    const json = setup(300);
    const objects = setup(300, sameJson);
    for (const step of [1, 1, 2, 2, 3, 1, 1, 4, 4, 4, 5]) {
      for (const t of [json, objects]) {
        t.set(step);
        t.pub.invalidate();
        await t.clock.advance(step * 100);
      }
    }
    expect(objects.told.length).toBeGreaterThan(2);
    expect(objects.told).toEqual(json.told);
    const kept = objects.pub.current();
    objects.set(5);
    objects.pub.invalidate();
    expect(objects.pub.current()).toBe(kept);
  });

  it("sameJson(a, b) is JSON.stringify(a) === JSON.stringify(b) (property)", () => {
    const value = fc.oneof(fc.jsonValue(), fc.constant(undefined), fc.constant(Number.NaN), fc.constant(Number.POSITIVE_INFINITY), fc.constant(-0));
    const tree = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, value, fc.array(tie("node"), { maxLength: 4 }), fc.dictionary(fc.constantFrom("a", "b", "c"), tie("node"), { maxKeys: 3 })),
    })).node;
    fc.assert(
      fc.property(tree, tree, (a, b) => {
        expect(sameJson(a, b)).toBe(JSON.stringify(a) === JSON.stringify(b));
        expect(sameJson(a, structuredClone(a))).toBe(true);
      }),
      { numRuns: 500 },
    );
    expect(sameJson({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(false);
    expect(sameJson({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(sameJson([undefined], [null])).toBe(true);
  });

  it("never serves a stale plan: current() after a change returns the new plan before the coalesced notification", async () => {
    const t = setup(1_000);
    t.set(1);
    t.pub.invalidate(); // leading edge: told at once
    expect(t.told).toHaveLength(1);
    t.set(2);
    t.pub.invalidate(); // inside the interval: coalesced
    expect(t.told).toHaveLength(1);
    expect(t.pub.current()).toEqual(planOf(2));
    await t.clock.advance(999);
    expect(t.told).toHaveLength(1);
    await t.clock.advance(1);
    expect(t.told).toEqual([planOf(1), planOf(2)]);
  });

  it("coalesces a burst into one notification per interval and tells only real changes", async () => {
    const t = setup(500);
    t.set(1);
    t.pub.invalidate();
    for (let i = 2; i <= 20; i++) {
      t.set(i);
      t.pub.invalidate();
    }
    await t.clock.advance(500);
    expect(t.told.map((d) => d.routes[0]?.dst)).toEqual(["10.0.1.0/24", "10.0.20.0/24"]);
    // Back to a plan equal to the last one told: nobody hears of it.
    t.set(7);
    t.pub.invalidate();
    t.set(20);
    t.pub.invalidate();
    await t.clock.advance(2_000);
    expect(t.told).toHaveLength(2);
    // A quiet spell, then a change: told at once (leading edge).
    t.set(3);
    t.pub.invalidate();
    expect(t.told).toHaveLength(3);
    expect(t.clock.pending()).toBe(0);
  });

  it("defer: a burst in one instant costs one plan and one notification on a 0 ms timer; current() is fresh; a plain invalidate tells at once", async () => {
    const t = setup(0);
    for (let i = 1; i <= 10; i++) {
      t.set(i);
      t.pub.invalidate({ defer: true });
    }
    expect(t.told).toHaveLength(0);
    expect(t.computed()).toBe(0);
    expect(t.clock.pending()).toBe(1);
    await t.clock.advance(0);
    expect(t.told).toEqual([planOf(10)]);
    expect(t.computed()).toBe(1);
    t.set(11);
    t.pub.invalidate({ defer: true });
    expect(t.pub.current()).toEqual(planOf(11));
    t.set(12);
    t.pub.invalidate();
    expect(t.told).toEqual([planOf(10), planOf(12)]);
    expect(t.clock.pending()).toBe(0);
  });

  it("stop() cancels the pending notification and freezes the plan", async () => {
    const t = setup(1_000);
    t.set(1);
    t.pub.invalidate();
    t.set(2);
    t.pub.invalidate();
    t.pub.stop();
    expect(t.clock.pending()).toBe(0);
    t.set(3);
    t.pub.invalidate();
    await t.clock.advance(5_000);
    expect(t.told).toEqual([planOf(1)]);
    expect(t.pub.current()).toEqual(planOf(2));
  });

  it("keeps the previous plan and reports it when compute throws; a throwing listener does not stop the others", () => {
    const clock = new VirtualClock();
    const errors: string[] = [];
    let fail = false;
    const pub = new DataplanePublisher({
      clock,
      initial: emptyDataplane("n1"),
      compute: () => {
        if (fail) throw new Error("boom");
        return planOf(1);
      },
      onError: (msg) => errors.push(msg),
    });
    const told: NodeDataplane[] = [];
    pub.subscribe(() => {
      throw new Error("bad listener");
    });
    pub.subscribe((dp) => told.push(dp));
    pub.invalidate();
    expect(told).toEqual([planOf(1)]);
    fail = true;
    pub.invalidate();
    expect(pub.current()).toEqual(planOf(1));
    expect(errors).toEqual(["a dataplane listener threw", "planning failed; keeping the previous dataplane"]);
  });
});
