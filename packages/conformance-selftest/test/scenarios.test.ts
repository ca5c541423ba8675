/**
 * The scenario checks (checks/scenarios.ts) and stale-state detection (stale.ts) prove what they
 * claim: each broken variant of variants-scenarios.ts turns its own check red while its unbroken
 * base stays green and unrelated controls stay green on the variant; stale detection sees a
 * departed node through its subnet and VTEP (flannel's `via <subnet>.0 onlink`), not only its
 * underlay address; a legitimate change (a replacement's new VTEP MAC, correctly propagated) is
 * not stale; and peer-network faults on a store-only backend are "not applicable", never passed.
 */
import { describe, expect, it } from "vitest";
import type { Backend, NodeAgent, NodeDataplane, RouteEntry } from "@cnikit/core";
import { flannel, flannelFixtures } from "@cnikit/flannel";
import { reference } from "@cnikit/reference";
import { runConformance } from "@cnikit/conformance/runner";
import type { CheckResult, ConformanceReport } from "@cnikit/conformance/runner";
import { randomVtepMac } from "./broken/stale-vtep-mac-after-replace.ts";
import { scenarioVariants } from "./broken/variants-scenarios.ts";
import { WrappedAgent, wrapBackend } from "./broken/wrap.ts";

const RUN = { nodes: 4, seed: 7 } as const;
const FLANNEL_VXLAN = flannelFixtures.configs.find((c) => c.label === "vxlan")!.config;

function result(report: ConformanceReport, id: string): CheckResult {
  const r = report.results.find((x) => x.id === id);
  if (!r) throw new Error(`check ${id} missing from the report of ${report.backend}`);
  return r;
}

function show(r: CheckResult): string {
  return `${r.id}: ${r.status}${r.reason ? ` (${r.reason.slice(0, 300)})` : ""}`;
}

describe("scenario variants: each turns its own check red, its base stays green", () => {
  for (const v of scenarioVariants) {
    it(
      v.label,
      async () => {
        const broken = await runConformance({ backend: v.backend, config: v.config, checks: [...v.targets, ...v.controls], ...RUN });
        const base = await runConformance({ backend: v.base, config: v.config, checks: v.targets, ...RUN });
        for (const id of v.targets) {
          expect(result(broken, id).status, show(result(broken, id))).toBe("failed");
          expect(result(base, id).status, `base ${v.baseLabel}: ${show(result(base, id))}`).toBe("passed");
        }
        for (const id of v.controls) expect(result(broken, id).status, `control ${show(result(broken, id))}`).toBe("passed");
      },
      300_000,
    );
  }

  it("covers every new check and all three shapes", () => {
    const targets = new Set(scenarioVariants.flatMap((v) => v.targets));
    for (const id of ["dyn.node-replaced", "dyn.join-during-partition", "dyn.crash-window-paths", "mtu.underlay-non-1500", "fault.store-cutoff", "fault.lost-watch-events", "fault.compaction"]) {
      expect(targets.has(id), id).toBe(true);
    }
    expect(new Set(scenarioVariants.map((v) => v.shape))).toEqual(new Set(["bridge+lease", "vxlan+fdb", "routed+bgp"]));
  });
});

/** Keeps every `onlink` route it ever planned (neighbour and FDB entries still go with the peer). */
class OnlinkHoarder extends WrappedAgent {
  private readonly kept = new Map<string, RouteEntry>();
  constructor(inner: NodeAgent) {
    super(inner);
  }
  protected override transform(dp: NodeDataplane): NodeDataplane {
    for (const r of dp.routes) if (r.onlink) this.kept.set(r.dst, r);
    const now = new Set(dp.routes.map((r) => r.dst));
    const stale = [...this.kept.values()].filter((r) => !now.has(r.dst));
    return stale.length === 0 ? dp : { ...dp, routes: [...dp.routes, ...stale] };
  }
}

describe("stale state derived from the departed node", () => {
  it("sees a departed VTEP's 'via <subnet>.0 onlink' route, whose next hop is not the node's address", async () => {
    const hoarder = wrapBackend(flannel, "test-flannel-stale-onlink", { agent: (inner) => new OnlinkHoarder(inner) }) as Backend<unknown>;
    const report = await runConformance({ backend: hoarder, config: FLANNEL_VXLAN, checks: ["dyn.leave"], ...RUN });
    const r = result(report, "dyn.leave");
    expect(r.status, show(r)).toBe("failed");
    expect(r.reason).toMatch(/still routes 10\.244\.\d+\.0\/24 via 10\.244\.\d+\.0 onlink dev flannel\.1, an address of departed node/);
  }, 120_000);

  it("a replacement's new VTEP MAC, propagated to every peer, is not stale", async () => {
    const fresh = wrapBackend(flannel, "test-flannel-random-vtep-mac", {
      context: (ctx) => ({ ...ctx, local: randomVtepMac(ctx.local, ctx.random) }),
    }) as Backend<unknown>;
    for (const seed of [7, 8]) {
      const report = await runConformance({ backend: fresh, config: FLANNEL_VXLAN, checks: ["dyn.node-replaced"], nodes: 4, seed });
      const r = result(report, "dyn.node-replaced");
      expect(r.status, show(r)).toBe("passed");
    }
  }, 120_000);
});

describe("peer-network faults on a store-only backend", () => {
  it("are not applicable (no peer message was exchanged), never passed", async () => {
    const report = await runConformance({ backend: reference, config: {}, checks: ["fault.message-loss", "fault.partition-heal", "dyn.join-during-partition"], ...RUN });
    for (const id of ["fault.message-loss", "fault.partition-heal", "dyn.join-during-partition"]) {
      const r = result(report, id);
      expect(r.status, show(r)).toBe("not applicable");
      expect(r.reason).toMatch(/no peer messages/);
    }
  }, 120_000);
});
