import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ScalerSettings } from "../src/config.ts";
import { clampScaler, collapsedScaler, compareAddresses, maxFree, minFree, nodeTarget, releasePick, v1Step, v2Target, type NodeTargetInput } from "../src/pool.ts";

const AZURE_DEFAULT: ScalerSettings = { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150, maxIPCount: 250 };

describe("clampScaler (Azure v1's clamps)", () => {
  it.each([
    ["defaults untouched", AZURE_DEFAULT, AZURE_DEFAULT],
    ["batch 0 → 1", { ...AZURE_DEFAULT, batchSize: 0 }, { ...AZURE_DEFAULT, batchSize: 1 }],
    ["batch above max → max", { ...AZURE_DEFAULT, batchSize: 300, maxIPCount: 30 }, { ...AZURE_DEFAULT, batchSize: 30, maxIPCount: 30 }],
    ["max 0 → 250", { ...AZURE_DEFAULT, maxIPCount: 0 }, AZURE_DEFAULT],
    [
      "request 0 % → 1 %, release lifted to 101 %",
      { ...AZURE_DEFAULT, requestThresholdPercent: 0, releaseThresholdPercent: 0 },
      { ...AZURE_DEFAULT, requestThresholdPercent: 1, releaseThresholdPercent: 101 },
    ],
    ["request 180 % → 100 %", { ...AZURE_DEFAULT, requestThresholdPercent: 180, releaseThresholdPercent: 250 }, { ...AZURE_DEFAULT, requestThresholdPercent: 100, releaseThresholdPercent: 250 }],
    ["release below request + 100 lifted", { ...AZURE_DEFAULT, releaseThresholdPercent: 120 }, { ...AZURE_DEFAULT, releaseThresholdPercent: 150 }],
  ])("%s", (_name, input, want) => {
    expect(clampScaler(input)).toEqual(want);
  });
});

describe("minFree / maxFree (batch × percent / 100, halves rounded up)", () => {
  it.each([
    [16, 50, 150, 8, 24],
    [1, 50, 150, 1, 2], // 0.5 → 1, 1.5 → 2: Azure's "+ .5"
    [15, 50, 150, 8, 23], // 7.5 → 8, 22.5 → 23
    [10, 33, 133, 3, 13], // 3.3 → 3, 13.3 → 13
    [1, 100, 200, 1, 2],
  ])("batch %i, %i %% / %i %% → %i / %i", (batchSize, req, rel, lo, hi) => {
    const s = { batchSize, requestThresholdPercent: req, releaseThresholdPercent: rel, maxIPCount: 250 };
    expect(minFree(s)).toBe(lo);
    expect(maxFree(s)).toBe(hi);
  });

  it("the collapsed scaler is batch 1, minFree 1, maxFree 2, the cap kept", () => {
    const c = collapsedScaler({ ...AZURE_DEFAULT, maxIPCount: 64 });
    expect(c.batchSize).toBe(1);
    expect(c.maxIPCount).toBe(64);
    expect([minFree(c), maxFree(c)]).toEqual([1, 2]);
    expect(clampScaler(c)).toEqual(c);
  });
});

describe("v1Step (Azure's reactive monitor)", () => {
  it.each([
    // name, requested, assigned, inUse, pendingRelease, want
    ["fresh node asks for one batch", 0, 0, 0, 0, { requested: 16, release: 0 }],
    ["8 free of 16: steady", 16, 16, 8, 0, { requested: 16, release: 0 }],
    ["7 free of 16: one more batch", 16, 16, 9, 0, { requested: 32, release: 0 }],
    ["unaligned request rounds up to the next batch multiple", 20, 20, 15, 0, { requested: 32, release: 0 }],
    ["at the cap: nothing", 250, 250, 245, 0, { requested: 250, release: 0 }],
    ["near the cap: capped", 240, 240, 235, 0, { requested: 250, release: 0 }],
    ["24 idle (≥ maxFree): one batch back", 32, 32, 8, 0, { requested: 16, release: 16 }],
    ["23 idle: steady", 32, 32, 9, 0, { requested: 32, release: 0 }],
    ["unaligned request: back to the batch multiple below", 40, 40, 10, 0, { requested: 32, release: 8 }],
    ["pending releases are not idle", 32, 48, 8, 16, { requested: 16, release: 16 }],
    ["pending releases do not count twice", 16, 32, 0, 16, { requested: 16, release: 0 }],
  ])("%s", (_name, requested, assigned, inUse, pendingRelease, want) => {
    expect(v1Step({ scaler: AZURE_DEFAULT, requested, assigned, inUse, pendingRelease })).toEqual(want);
  });

  it("takes one batch per step, so a burst needs one round trip per batch", () => {
    let requested = 16;
    let steps = 0;
    while (requested - 100 < minFree(AZURE_DEFAULT)) {
      requested = v1Step({ scaler: AZURE_DEFAULT, requested, assigned: requested, inUse: 100 }).requested;
      steps++;
    }
    expect(requested).toBe(112);
    expect(steps).toBe(6);
  });
});

describe("v2Target (B × ceil(mf + U / B))", () => {
  it("the reference's example: B = 16, mf = 0.5, U = 25 → 48", () => {
    expect(v2Target({ scaler: AZURE_DEFAULT, demand: 25 })).toBe(48);
  });

  it.each([
    [0, 16],
    [7, 16],
    [8, 16], // 0.5 + 8/16 = 1 exactly: 8 free, not fewer than minFree
    [9, 32],
    [24, 32],
    [25, 48],
    [240, 250], // capped
  ])("U = %i → %i", (demand, want) => {
    expect(v2Target({ scaler: AZURE_DEFAULT, demand })).toBe(want);
  });

  it("agrees with Azure's float formula min(max, B × ceil(p / 100 + U / B)) on clamped scalers", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 100 }), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 250 }), (b, p, u, max) => {
        const scaler = clampScaler({ batchSize: b, requestThresholdPercent: p, releaseThresholdPercent: p + 100, maxIPCount: max });
        const azure = Math.min(scaler.maxIPCount, scaler.batchSize * Math.ceil(p / 100 + u / scaler.batchSize));
        expect(v2Target({ scaler, demand: u })).toBe(azure);
      }),
      { numRuns: 3000 },
    );
  });

  it("collapsed: demand + 1", () => {
    expect(v2Target({ scaler: collapsedScaler(AZURE_DEFAULT), demand: 37 })).toBe(38);
  });
});

describe("releasePick", () => {
  const assigned = ["10.1.0.4", "10.1.0.5", "10.1.0.6", "10.1.0.10", "10.1.0.20"];

  it("never picks an address in use or already pending; highest first", () => {
    expect(releasePick({ assigned, inUse: ["10.1.0.20"], pendingRelease: ["10.1.0.10"], count: 2 })).toEqual(["10.1.0.6", "10.1.0.5"]);
  });

  it("picks unprogrammed addresses first", () => {
    expect(releasePick({ assigned, inUse: [], pendingRelease: [], unprogrammed: ["10.1.0.4"], count: 2 })).toEqual(["10.1.0.4", "10.1.0.20"]);
  });

  it("returns fewer when fewer are idle, none for count ≤ 0", () => {
    expect(releasePick({ assigned, inUse: assigned.slice(1), pendingRelease: [], count: 3 })).toEqual(["10.1.0.4"]);
    expect(releasePick({ assigned, inUse: [], pendingRelease: [], count: 0 })).toEqual([]);
  });

  it("orders numerically, not as text", () => {
    expect(["10.1.0.10", "10.1.0.9", "10.1.0.100"].sort(compareAddresses)).toEqual(["10.1.0.9", "10.1.0.10", "10.1.0.100"]);
  });
});

describe("nodeTarget", () => {
  const base: NodeTargetInput = {
    scaler: AZURE_DEFAULT,
    monitor: "v2",
    reclaimIdle: true,
    exhausted: false,
    requested: 16,
    assigned: 16,
    inUse: 0,
    waiting: 0,
  };

  it("v2: a burst of 100 waiting ADDs is asked for in one step", () => {
    expect(nodeTarget({ ...base, inUse: 10, waiting: 90 })).toEqual({ requestedIPCount: 112, release: 0 });
  });

  it("v1: the same burst gets one batch, the waiting ADDs unseen", () => {
    expect(nodeTarget({ ...base, monitor: "v1", inUse: 10, waiting: 90 })).toEqual({ requestedIPCount: 32, release: 0 });
  });

  it("exhausted with reclaimIdle: every idle address beyond demand + 1 back at once (both monitors)", () => {
    for (const monitor of ["v1", "v2"] as const) {
      expect(nodeTarget({ ...base, monitor, exhausted: true, requested: 64, assigned: 64, inUse: 20, waiting: 2 })).toEqual({ requestedIPCount: 23, release: 41 });
    }
  });

  it("exhausted without reclaimIdle: one (collapsed) batch per call, as Azure", () => {
    expect(nodeTarget({ ...base, monitor: "v1", reclaimIdle: false, exhausted: true, requested: 64, assigned: 64, inUse: 20 })).toEqual({ requestedIPCount: 63, release: 1 });
    expect(nodeTarget({ ...base, monitor: "v2", reclaimIdle: false, exhausted: true, requested: 64, assigned: 64, inUse: 20 })).toEqual({ requestedIPCount: 21, release: 1 });
  });

  it("v2 shrinking without reclaimIdle gives back one batch per call", () => {
    expect(nodeTarget({ ...base, reclaimIdle: false, requested: 96, assigned: 96, inUse: 5 })).toEqual({ requestedIPCount: 16, release: 16 });
  });

  it("a scaler from a status that breaks the rules is clamped (batch 0 behaves as 1)", () => {
    expect(nodeTarget({ ...base, scaler: { ...AZURE_DEFAULT, batchSize: 0 }, assigned: 0, inUse: 3 })).toEqual({ requestedIPCount: 4, release: 0 });
  });
});

const scalerArb = fc.record({
  batchSize: fc.integer({ min: 0, max: 64 }),
  requestThresholdPercent: fc.integer({ min: 0, max: 150 }),
  releaseThresholdPercent: fc.integer({ min: 0, max: 300 }),
  maxIPCount: fc.integer({ min: 1, max: 250 }),
});

const stateArb = scalerArb.chain((scaler) => {
  const max = scaler.maxIPCount;
  return fc.record({
    scaler: fc.constant(scaler),
    monitor: fc.constantFrom("v1" as const, "v2" as const),
    reclaimIdle: fc.boolean(),
    exhausted: fc.boolean(),
    requested: fc.integer({ min: 0, max: max + 20 }),
    inUse: fc.integer({ min: 0, max }),
    extra: fc.integer({ min: 0, max: 64 }),
    pendingRelease: fc.integer({ min: 0, max: 16 }),
    waiting: fc.integer({ min: 0, max: 300 }),
  });
});

type State = typeof stateArb extends fc.Arbitrary<infer T> ? T : never;

/** The state as nodeTarget's input: the node holds its pods' addresses, `extra` idle ones and the pending releases. */
function toInput(s: State): NodeTargetInput {
  const { extra, ...rest } = s;
  return { ...rest, assigned: s.inUse + extra + s.pendingRelease };
}

describe("nodeTarget properties", () => {
  it("the request is never above maxIPCount nor below the addresses in use; no in-use address is released", () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const input = toInput(s);
        const out = nodeTarget(input);
        const max = clampScaler(s.scaler).maxIPCount;
        expect(out.requestedIPCount).toBeLessThanOrEqual(max);
        expect(out.requestedIPCount).toBeGreaterThanOrEqual(s.inUse);
        expect(out.release).toBeGreaterThanOrEqual(0);
        expect(out.release).toBeLessThanOrEqual(s.extra); // the idle ones only
      }),
      { numRuns: 2000 },
    );
  });

  it("v2 holds every waiting ADD in one step (up to the cap)", () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const out = nodeTarget(toInput({ ...s, monitor: "v2" }));
        const max = clampScaler(s.scaler).maxIPCount;
        expect(out.requestedIPCount).toBeGreaterThanOrEqual(Math.min(max, s.inUse + s.waiting));
      }),
      { numRuns: 2000 },
    );
  });

  it("collapse with reclaimIdle leaves at most maxFree(collapsed) idle beyond the demand, in one step", () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const input = toInput({ ...s, exhausted: true, reclaimIdle: true });
        const out = nodeTarget(input);
        const held = input.assigned - s.pendingRelease - out.release;
        expect(held - s.inUse - s.waiting).toBeLessThanOrEqual(maxFree(collapsedScaler(s.scaler)));
      }),
      { numRuns: 2000 },
    );
  });

  it("v2 with reclaimIdle is a fixed point once the controller has caught up", () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const input = toInput({ ...s, monitor: "v2", reclaimIdle: true });
        const first = nodeTarget(input);
        // The controller takes the releases off and tops the node up to the request.
        const held = Math.max(input.assigned - s.pendingRelease - first.release, first.requestedIPCount);
        const again = nodeTarget({ ...input, requested: first.requestedIPCount, assigned: held, pendingRelease: 0 });
        expect(again).toEqual({ requestedIPCount: first.requestedIPCount, release: 0 });
      }),
      { numRuns: 2000 },
    );
  });

  it("v1 moves the request by at most one batch per call", () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const input = toInput({ ...s, monitor: "v1", exhausted: false, requested: Math.min(s.requested, s.scaler.maxIPCount) });
        if (input.requested < s.inUse) return;
        const out = nodeTarget(input);
        expect(Math.abs(out.requestedIPCount - input.requested)).toBeLessThanOrEqual(clampScaler(s.scaler).batchSize);
      }),
      { numRuns: 2000 },
    );
  });
});
