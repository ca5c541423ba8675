import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ScalerSettings } from "../src/config.ts";
import { IpState, NodeIpState } from "../src/ipstate.ts";
import { nodeTarget } from "../src/pool.ts";

const ips = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `10.240.0.${from + i}`);

/** A node holding `n` programmed addresses 10.240.0.4.. at status version 1. */
function ready(n = 4): NodeIpState {
  const s = new NodeIpState();
  s.applyStatus(ips(4, n), 1);
  s.programmed(1);
  return s;
}

describe("NodeIpState: status and programming", () => {
  it("new addresses wait for programming, then become Available", () => {
    const s = new NodeIpState();
    expect(s.applyStatus(ips(4, 2), 1).added).toEqual(["10.240.0.4", "10.240.0.5"]);
    expect(s.counts()).toEqual({ pendingProgramming: 2, available: 0, assigned: 0, pendingRelease: 0 });
    expect(s.assign("c1/eth0")).toBeUndefined();
    s.applyStatus(ips(4, 3), 2);
    expect(s.programmed(1)).toEqual(["10.240.0.4", "10.240.0.5"]);
    expect(s.stateOf("10.240.0.6")).toBe(IpState.PendingProgramming);
    expect(s.programmed(2)).toEqual(["10.240.0.6"]);
    expect(s.counts().available).toBe(3);
  });

  it("a status older than the last one applied changes nothing", () => {
    const s = ready(4);
    s.applyStatus(ips(4, 2), 3);
    expect(s.applyStatus(ips(4, 8), 2)).toMatchObject({ stale: true, added: [] });
    expect(s.version).toBe(3);
    expect(s.counts().available).toBe(2);
  });

  it("idle addresses the controller takes off are removed; PendingRelease ones are released", () => {
    const s = ready(4);
    const marked = s.markForRelease(1);
    expect(marked).toEqual(["10.240.0.7"]);
    expect(s.ipsNotInUse()).toEqual(["10.240.0.7"]);
    const change = s.applyStatus(["10.240.0.4", "10.240.0.5"], 2);
    expect(change.released).toEqual(["10.240.0.7"]);
    expect(change.removed).toEqual(["10.240.0.6"]);
    expect(s.ipsNotInUse()).toEqual([]);
  });
});

describe("NodeIpState: assign and release", () => {
  it("is idempotent per pod key and never hands out an address twice", () => {
    const s = ready(2);
    const a = s.assign("c1/eth0");
    expect(s.assign("c1/eth0")).toBe(a);
    const b = s.assign("c2/eth0");
    expect(b).not.toBe(a);
    expect(s.assign("c3/eth0")).toBeUndefined();
    expect(s.ownerOf(a as string)).toBe("c1/eth0");
    expect(s.assignedTo("c2/eth0")).toBe(b);
  });

  it("a requested address must be Available; the error names it and its holder", () => {
    const s = ready(3);
    expect(s.assign("c1/eth0", "10.240.0.5")).toBe("10.240.0.5");
    expect(() => s.assign("c2/eth0", "10.240.0.5")).toThrowError(/10\.240\.0\.5 is Assigned by c1\/eth0/);
    expect(() => s.assign("c2/eth0", "10.240.0.5")).toThrowError(expect.objectContaining({ code: 101 }));
    expect(() => s.assign("c2/eth0", "10.240.9.9")).toThrowError(/10\.240\.9\.9 is not assigned to this node/);
    expect(() => s.assign("c1/eth0", "10.240.0.4")).toThrowError(/already holds 10\.240\.0\.5/);
  });

  it("prefers never-used addresses, then the least recently released", () => {
    const s = ready(3);
    expect(s.assign("a/eth0")).toBe("10.240.0.4");
    expect(s.assign("b/eth0")).toBe("10.240.0.5");
    s.release("a/eth0");
    s.release("b/eth0");
    // .6 was never used; then .4 (freed first), then .5 (freed last)
    expect(s.assign("c/eth0")).toBe("10.240.0.6");
    expect(s.assign("d/eth0")).toBe("10.240.0.4");
    expect(s.assign("e/eth0")).toBe("10.240.0.5");
  });

  it("release of an unknown pod key is harmless (out-of-order or repeated DEL)", () => {
    const s = ready(2);
    const a = s.assign("c1/eth0");
    const before = s.counts();
    expect(s.release("nobody/eth0")).toBeUndefined();
    expect(s.release("c1/eth0")).toBe(a);
    expect(s.release("c1/eth0")).toBeUndefined();
    expect(s.counts()).toEqual({ ...before, assigned: 0, available: 2 });
  });

  it("out-of-order ADD/DEL never double-assigns (DEL before ADD, late DEL of an old sandbox)", () => {
    const s = ready(2);
    expect(s.release("c1/eth0")).toBeUndefined(); // DEL overtook its ADD
    const a = s.assign("c1/eth0") as string;
    const b = s.assign("c2/eth0") as string;
    s.release("c1/eth0");
    s.release("c1/eth0"); // a retried DEL must not free c2's address
    expect(s.ownerOf(b)).toBe("c2/eth0");
    const c = s.assign("c3/eth0");
    expect(c).toBe(a);
    expect(s.assign("c4/eth0")).toBeUndefined();
  });

  it("a re-created sandbox (same pod, new containerId) gets a fresh address; the old DEL gives the old one back", () => {
    const s = ready(3);
    const old = s.assign("sandbox-1/eth0") as string;
    const fresh = s.assign("sandbox-2/eth0") as string;
    expect(fresh).not.toBe(old);
    expect(s.release("sandbox-1/eth0")).toBe(old);
    expect(s.stateOf(old)).toBe(IpState.Available);
    expect(s.assignedTo("sandbox-2/eth0")).toBe(fresh);
  });
});

describe("NodeIpState: release marking and revocation", () => {
  it("markForRelease never picks an Assigned address, picks unprogrammed ones first", () => {
    const s = ready(4);
    s.assign("a/eth0", "10.240.0.7");
    s.applyStatus(ips(4, 5), 2); // .8 arrives, not yet programmed
    expect(s.markForRelease(10)).toEqual(["10.240.0.8", "10.240.0.6", "10.240.0.5", "10.240.0.4"]);
    expect(s.stateOf("10.240.0.7")).toBe(IpState.Assigned);
    expect(s.markForRelease(1)).toEqual([]);
    expect(s.assign("b/eth0")).toBeUndefined(); // PendingRelease is not handed out
  });

  it("a status that drops an Assigned address reports it revoked instead of losing it", () => {
    const s = ready(3);
    const a = s.assign("a/eth0") as string;
    const change = s.applyStatus(ips(5, 2), 2);
    expect(change.revoked).toEqual([{ podKey: "a/eth0", address: a }]);
    expect(s.assignedTo("a/eth0")).toBe(a);
    expect(s.revoked()).toEqual([{ podKey: "a/eth0", address: a }]);
    expect(s.applyStatus(ips(5, 2), 3).revoked).toEqual([]); // reported once
    // If the status brings it back, it is confirmed; if the pod goes, it is dropped, not made Available.
    expect(s.applyStatus(ips(4, 3), 4).confirmed).toEqual([a]);
    s.applyStatus(ips(5, 2), 5);
    expect(s.release("a/eth0")).toBe(a);
    expect(s.stateOf(a)).toBeUndefined();
  });

  it("restore keeps a saved reservation until a status confirms or revokes it", () => {
    const s = new NodeIpState();
    s.restore("a/eth0", "10.240.0.9");
    s.restore("a/eth0", "10.240.0.9"); // idempotent
    expect(() => s.restore("a/eth0", "10.240.0.4")).toThrowError(/already holds 10\.240\.0\.9/);
    expect(() => s.restore("b/eth0", "10.240.0.9")).toThrowError(/Assigned by a\/eth0/);
    expect(s.counts()).toEqual({ pendingProgramming: 0, available: 0, assigned: 1, pendingRelease: 0 });
    const change = s.applyStatus(["10.240.0.8", "10.240.0.9"], 1);
    expect(change.confirmed).toEqual(["10.240.0.9"]);
    expect(change.added).toEqual(["10.240.0.8"]);
    expect(s.stateOf("10.240.0.9")).toBe(IpState.Assigned);
    expect(s.assign("b/eth0")).toBeUndefined(); // .8 still PendingProgramming, .9 is a's

    const t = new NodeIpState();
    t.restore("a/eth0", "10.240.0.9");
    expect(t.applyStatus(["10.240.0.8"], 1).revoked).toEqual([{ podKey: "a/eth0", address: "10.240.0.9" }]);
  });
});

describe("NodeIpState with nodeTarget (the agent's loop, the controller played by hand)", () => {
  const scaler: ScalerSettings = { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150, maxIPCount: 250 };

  function step(s: NodeIpState, exhausted: boolean, reclaimIdle: boolean, waiting = 0): { requestedIPCount: number; marked: string[] } {
    const c = s.counts();
    const t = nodeTarget({
      scaler,
      monitor: "v2",
      reclaimIdle,
      exhausted,
      requested: 0,
      assigned: c.pendingProgramming + c.available + c.assigned + c.pendingRelease,
      pendingRelease: c.pendingRelease,
      inUse: c.assigned,
      waiting,
    });
    return { requestedIPCount: t.requestedIPCount, marked: s.markForRelease(t.release) };
  }

  it("under collapse with reclaimIdle the node gives back every idle address but one in one round trip, keeping the pods'", () => {
    const s = new NodeIpState();
    s.applyStatus(ips(4, 48), 1);
    s.programmed(1);
    const pods = Array.from({ length: 20 }, (_, i) => s.assign(`p${i}/eth0`) as string);
    const { requestedIPCount, marked } = step(s, true, true);
    expect(requestedIPCount).toBe(21);
    expect(marked).toHaveLength(27);
    for (const a of pods) expect(marked).not.toContain(a);
    // The controller takes the released addresses off the status.
    const kept = ips(4, 48).filter((a) => !marked.includes(a));
    const change = s.applyStatus(kept, 2);
    expect(change.released).toHaveLength(27);
    expect(change.revoked).toEqual([]);
    expect(s.counts()).toEqual({ pendingProgramming: 0, available: 1, assigned: 20, pendingRelease: 0 });
    expect(step(s, true, true).marked).toEqual([]);
  });

  it("without reclaimIdle the same node gives back one collapsed batch (1 address) per call", () => {
    const s = new NodeIpState();
    s.applyStatus(ips(4, 48), 1);
    s.programmed(1);
    for (let i = 0; i < 20; i++) s.assign(`p${i}/eth0`);
    expect(step(s, true, false).marked).toEqual(["10.240.0.51"]);
    expect(step(s, true, false).marked).toEqual(["10.240.0.50"]);
  });
});

type Op =
  | { kind: "status"; mask: number }
  | { kind: "programmed" }
  | { kind: "assign"; pod: number; requested?: number | undefined }
  | { kind: "release"; pod: number }
  | { kind: "mark"; count: number }
  | { kind: "restore"; pod: number; addr: number };

const UNIVERSE = ips(1, 12);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("status" as const), mask: fc.integer({ min: 0, max: 4095 }) }),
  fc.record({ kind: fc.constant("programmed" as const) }),
  fc.record(
    { kind: fc.constant("assign" as const), pod: fc.integer({ min: 0, max: 9 }), requested: fc.option(fc.integer({ min: 0, max: 11 }), { nil: undefined }) },
    { requiredKeys: ["kind", "pod"] },
  ),
  fc.record({ kind: fc.constant("release" as const), pod: fc.integer({ min: 0, max: 9 }) }),
  fc.record({ kind: fc.constant("mark" as const), count: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ kind: fc.constant("restore" as const), pod: fc.integer({ min: 0, max: 9 }), addr: fc.integer({ min: 0, max: 11 }) }),
);

describe("NodeIpState properties", () => {
  it("over random sequences: one owner per address, counts add up, every pod's address is in the last status or reported revoked (or restored and awaiting its first status)", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
        const s = new NodeIpState();
        let version = 0;
        let lastStatus = new Set<string>();
        const reportedRevoked = new Set<string>();
        const awaitingStatus = new Set<string>(); // restored since the last status, not in it
        const known = new Set<string>();
        for (const op of ops) {
          const before = new Map([...UNIVERSE].map((a) => [a, s.stateOf(a)]));
          switch (op.kind) {
            case "status": {
              version++;
              lastStatus = new Set(UNIVERSE.filter((_, i) => op.mask & (1 << i)));
              const change = s.applyStatus([...lastStatus], version);
              awaitingStatus.clear();
              for (const r of change.revoked) reportedRevoked.add(r.address);
              for (const c of change.confirmed) reportedRevoked.delete(c);
              break;
            }
            case "programmed":
              s.programmed(version);
              break;
            case "assign": {
              const pod = `c${op.pod}/eth0`;
              const held = s.assignedTo(pod);
              const want = op.requested === undefined ? undefined : (UNIVERSE[op.requested] as string);
              let got: string | undefined;
              try {
                got = s.assign(pod, want);
              } catch (err) {
                const code = (err as { code?: number }).code;
                expect([101, 102, 103]).toContain(code);
                break;
              }
              if (got !== undefined && held === undefined) expect(before.get(got)).toBe(IpState.Available);
              if (held !== undefined) expect(got).toBe(held);
              break;
            }
            case "release":
              s.release(`c${op.pod}/eth0`);
              break;
            case "mark":
              for (const a of s.markForRelease(op.count)) expect(before.get(a)).not.toBe(IpState.Assigned);
              break;
            case "restore":
              try {
                s.restore(`c${op.pod}/eth0`, UNIVERSE[op.addr] as string);
                if (!lastStatus.has(UNIVERSE[op.addr] as string)) awaitingStatus.add(UNIVERSE[op.addr] as string);
              } catch (err) {
                expect([101, 102]).toContain((err as { code?: number }).code);
              }
              break;
          }
          // Invariants after every step.
          const pods = s.pods();
          const owners = new Map<string, string>();
          for (const [pod, address] of pods) {
            expect(owners.has(address)).toBe(false);
            owners.set(address, pod);
            expect(s.ownerOf(address)).toBe(pod);
            expect(s.stateOf(address)).toBe(IpState.Assigned);
            expect(lastStatus.has(address) || reportedRevoked.has(address) || awaitingStatus.has(address)).toBe(true);
          }
          known.clear();
          for (const a of UNIVERSE) if (s.stateOf(a) !== undefined) known.add(a);
          const c = s.counts();
          expect(c.pendingProgramming + c.available + c.assigned + c.pendingRelease).toBe(known.size);
          expect(c.assigned).toBe(pods.size);
          for (const a of known) if (s.stateOf(a) !== IpState.Assigned) expect(lastStatus.has(a)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});
