/**
 * Property tests of the VNet allocator: random sequences of joins, leaves, requests, give-backs and
 * one-shot fabric failures (each healed by the retry). After every step that the controller has
 * settled: nothing is assigned to two nodes, nothing reserved or a node's own is assigned, only
 * members hold anything, and what the statuses say is what the fabric holds (routes or secondary
 * addresses) — and a classic node holds exactly maxPods or nothing, never past the AKS formula.
 */
import { Prefix } from "@cnikit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RETRY_MS } from "../src/controller.ts";
import { fairShares, isAzureReserved } from "../src/controller-alloc.ts";
import { harness, node, type FabricFault, type Harness } from "./controller-harness.ts";

const GW = "198.51.100.1";
const NAMES = ["n0", "n1", "n2", "n3", "n4", "n5"];
const nodeOf = (i: number): ReturnType<typeof node> => node(NAMES[i]!, `198.51.100.${20 + i}`, 24, GW);

type Step =
  | { kind: "join"; i: number }
  | { kind: "leave"; i: number }
  | { kind: "request"; i: number; count: number }
  | { kind: "giveBack"; i: number; count: number }
  | { kind: "fault"; method: FabricFault["method"]; after: number };

const step = (methods: FabricFault["method"][]): fc.Arbitrary<Step> =>
  fc.oneof(
    fc.record({ kind: fc.constant("join" as const), i: fc.nat({ max: 5 }) }),
    fc.record({ kind: fc.constant("leave" as const), i: fc.nat({ max: 5 }) }),
    fc.record({ kind: fc.constant("request" as const), i: fc.nat({ max: 5 }), count: fc.nat({ max: 40 }) }),
    fc.record({ kind: fc.constant("giveBack" as const), i: fc.nat({ max: 5 }), count: fc.nat({ max: 20 }) }),
    fc.record({ kind: fc.constant("fault" as const), method: fc.constantFrom(...methods), after: fc.nat({ max: 12 }) }),
  );

async function apply(h: Harness, s: Step): Promise<void> {
  const name = "i" in s ? NAMES[s.i]! : "";
  switch (s.kind) {
    case "join":
      h.members.set(nodeOf(s.i));
      break;
    case "leave":
      h.members.remove(name);
      break;
    case "request":
      if (h.members.get(name)) await h.writeSpec(name, { requestedIPCount: s.count });
      break;
    case "giveBack": {
      const held = (await h.statuses()).get(name)?.assignedIPs ?? [];
      const back = held.slice(Math.max(0, held.length - s.count));
      if (h.members.get(name)) await h.writeSpec(name, { requestedIPCount: held.length - back.length, ipsNotInUse: back });
      break;
    }
    case "fault":
      h.fabric.arm({ method: s.method, after: s.after });
      break;
  }
  await h.settle();
  // A one-shot failure heals with the retry.
  if (!h.controller.status().ready) await h.settle(RETRY_MS);
  expect(h.controller.status()).toEqual({ ready: true });
}

const nodeAddresses = (h: Harness): Set<string> => new Set(h.members.list().flatMap((m) => m.underlay.flatMap((u) => [u.address, ...(u.gateway ? [u.gateway] : [])])));

describe("azure controller properties", () => {
  it("fairShares: hands out min(supply, Σ want), never more than asked, and max-min fair", () => {
    const ask = fc.record({ have: fc.nat({ max: 60 }), want: fc.nat({ max: 60 }) });
    fc.assert(
      fc.property(fc.array(ask, { maxLength: 8 }), fc.nat({ max: 300 }), (raw, supply) => {
        const asks = raw.map((a, i) => ({ name: `n${i}`, ...a }));
        const grants = fairShares(asks, supply);
        const total = asks.reduce((n, a) => n + a.want, 0);
        expect([...grants.values()].reduce((n, g) => n + g, 0)).toBe(Math.min(supply, total));
        for (const a of asks) {
          const g = grants.get(a.name)!;
          expect(g).toBeGreaterThanOrEqual(0);
          expect(g).toBeLessThanOrEqual(a.want);
        }
        // Max-min: a node left short ends at least as high as anyone who got something, less one.
        for (const a of asks) {
          if (grants.get(a.name)! >= a.want) continue;
          for (const b of asks) {
            if (grants.get(b.name)! === 0) continue;
            expect(a.have + grants.get(a.name)!).toBeGreaterThanOrEqual(b.have + grants.get(b.name)! - 1);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("dynamic: no address in two statuses, none reserved or a node's, statuses and /32 routes agree", async () => {
    const pool = Prefix.parse("10.1.0.0/26");
    await fc.assert(
      fc.asyncProperty(fc.array(step(["setRoute", "deleteRoute"]), { minLength: 1, maxLength: 25 }), async (steps) => {
        const h = harness({ podSubnet: pool.toString() }, []);
        await h.start();
        for (const s of steps) {
          await apply(h, s);
          const statuses = await h.statuses();
          const owner = new Map<string, string>();
          const taboo = nodeAddresses(h);
          for (const [name, st] of statuses) {
            expect(h.members.get(name)).toBeDefined();
            for (const a of st.assignedIPs) {
              expect(owner.has(a)).toBe(false);
              owner.set(a, name);
              expect(pool.contains(a)).toBe(true);
              expect(isAzureReserved(pool, Prefix.host(a).base)).toBe(false);
              expect(taboo.has(a)).toBe(false);
            }
          }
          const routes = await h.fabric.routes();
          expect(new Map(routes.map((r) => [r.dst.replace("/32", ""), r.node]))).toEqual(owner);
        }
        await h.controller.stop();
      }),
      { numRuns: 40 },
    );
  });

  it("classic: a node holds exactly maxPods of its subnet or nothing, holders never exceed the formula, a refused join allocates nothing", async () => {
    // A /26: 59 usable; at maxPods 10 and surge 1, (n + 1) × 11 ≤ 59 ⇒ at most 4 nodes hold.
    await fc.assert(
      fc.asyncProperty(fc.array(step(["addSecondaryAddress", "removeSecondaryAddress"]), { minLength: 1, maxLength: 25 }), async (steps) => {
        const h = harness({ maxPods: 10 }, []);
        await h.start();
        // Primaries at the top of the subnet: the cloud gives a new VM no address that is already a
        // secondary one, and the allocator hands out the lowest addresses first.
        const sub = (i: number): ReturnType<typeof node> => node(NAMES[i]!, `198.51.100.${50 + i}`, 26, GW);
        for (const s of steps) {
          if (s.kind === "join") {
            h.members.set(sub(s.i));
            await h.settle();
            if (!h.controller.status().ready) await h.settle(RETRY_MS);
          } else await apply(h, s);
          const statuses = await h.statuses();
          const held = await h.fabric.secondaryAddresses();
          const taboo = nodeAddresses(h);
          const pool = Prefix.parse("198.51.100.0/26");
          let holders = 0;
          for (const m of h.members.list()) {
            const mine = held
              .filter((a) => a.node === m.name)
              .map((a) => a.address)
              .sort();
            const st = statuses.get(m.name)!;
            expect([0, 10]).toContain(mine.length);
            expect([...st.assignedIPs].sort()).toEqual(mine);
            expect(st.state).toBe(mine.length === 10 ? "Updated" : "Error");
            if (mine.length === 10) holders++;
            else expect(st.reason).toMatch(/^Pre-allocated IPs \d+ exceeds IPs available \d+/);
            for (const a of mine) {
              expect(isAzureReserved(pool, Prefix.host(a).base)).toBe(false);
              expect(taboo.has(a)).toBe(false);
            }
          }
          expect(held.every((a) => h.members.get(a.node))).toBe(true);
          expect(new Set(held.map((a) => a.address)).size).toBe(held.length);
          expect((holders + 1) * 11).toBeLessThanOrEqual(59);
        }
        await h.controller.stop();
      }),
      { numRuns: 40 },
    );
  });
});
