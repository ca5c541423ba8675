/**
 * Section B on the built-in backends: every lifecycle check passes on every built-in backend config
 * (reference, flannel, calico) at 4 nodes, and each release leg catches the leak it is for. That
 * each lifecycle broken variant turns its targets red, its base stays green and its controls stay
 * green is proven once, by self-check.test.ts (it runs every variant list, lifecycleVariants
 * included).
 */
import { describe, expect, it } from "vitest";
import { calico, calicoFixtures } from "@cnikit/calico";
import type { Backend } from "@cnikit/core";
import { flannel, flannelFixtures } from "@cnikit/flannel";
import { reference } from "@cnikit/reference";
import { runConformance } from "@cnikit/conformance/runner";
import type { CheckResult, ConformanceReport } from "@cnikit/conformance/runner";
import { lifecycleVariants } from "./broken/variants-lifecycle.ts";

const LIFECYCLE_IDS = [
  "cni.add-result",
  "cni.add-idempotent",
  "cni.del-idempotent",
  "cni.del-unknown",
  "cni.del-restores-dataplane",
  "cni.del-releases",
  "cni.failed-add-leaks-nothing",
  "cni.check-after-add",
  "cni.check-detects-missing",
  "cni.gc",
  "cni.status",
  "cni.error-codes",
  "cni.sandbox-recreate",
  "cni.del-after-reuse",
  "cni.multi-interface",
];

function statusOf(report: ConformanceReport, id: string): CheckResult {
  const r = report.results.find((x) => x.id === id);
  if (!r) throw new Error(`check ${id} missing from the report of ${report.backend}`);
  return r;
}

const asUnknown = <C>(b: Backend<C>) => b as Backend<unknown>;

const builtins: { label: string; backend: Backend<unknown>; config: unknown; seed: number }[] = [
  { label: "reference minimal", backend: asUnknown(reference), config: { network: "10.250.0.0/16" }, seed: 1 },
  { label: "reference default", backend: asUnknown(reference), config: { network: "10.250.0.0/16", nodeSubnetLength: 24, natOutgoing: true }, seed: 2 },
  // Every flannel mode that runs on the suite's IPv4 underlay (vxlan-dualstack: two addresses per
  // pod); the IPv6-only mode needs an IPv6 underlay (packages/backends runs it over one).
  ...flannelFixtures.configs.filter((c) => c.underlayFamily !== 6).map((c, i) => ({ label: `flannel ${c.label}`, backend: asUnknown(flannel), config: c.config as unknown, seed: 3 + i })),
  ...calicoFixtures.configs.map((c, i) => ({ label: `calico ${c.label}`, backend: asUnknown(calico), config: c.config as unknown, seed: 11 + i })),
];

describe("section B on every built-in backend config, 4 nodes", () => {
  for (const b of builtins) {
    it(`${b.label} (seed ${b.seed}) passes every lifecycle check`, async () => {
      const report = await runConformance({ backend: b.backend, config: b.config, configLabel: b.label, nodes: 4, seed: b.seed, checks: LIFECYCLE_IDS });
      const bad = report.results.filter((r) => r.status !== "passed").map((r) => `${r.id}: ${r.status}: ${r.reason ?? ""}`);
      expect(bad).toEqual([]);
      // The release checks observed release some way on every backend: at least one leg ran and passed.
      for (const id of ["cni.del-releases", "cni.gc"]) {
        const legs = statusOf(report, id).subResults ?? [];
        expect(
          legs.some((s) => s.status === "passed"),
          `${id} legs: ${JSON.stringify(legs)}`,
        ).toBe(true);
        expect(legs.some((s) => s.status === "failed")).toBe(false);
      }
    }, 300_000);
  }
});

describe("section H for section B: the lifecycle variants cover the three shapes, and each release leg catches the leak it is for", () => {
  it("spreads the variants over the three shapes", () => {
    expect(new Set(lifecycleVariants.map((v) => v.shape))).toEqual(new Set(["bridge+lease", "vxlan+fdb", "routed+bgp"]));
    const targeted = new Set(lifecycleVariants.flatMap((v) => v.targets));
    for (const id of ["cni.del-releases", "cni.gc", "cni.sandbox-recreate", "cni.del-after-reuse", "cni.multi-interface", "cni.failed-add-leaks-nothing", "cni.add-result"]) {
      expect(targeted.has(id), id).toBe(true);
    }
  });

  it("a leak kept only in memory is caught by the exhaustion leg, an orphan ordinal on a whole-pool share by the trace leg, an anonymous one by the churn leg", async () => {
    const legs = async (label: string, id: string) => {
      const v = lifecycleVariants.find((x) => x.label.startsWith(label));
      if (!v) throw new Error(`no variant ${label}`);
      const report = await runConformance({ backend: v.backend, config: v.config, nodes: 4, seed: 7, checks: [id] });
      return Object.fromEntries((statusOf(report, id).subResults ?? []).map((s) => [s.label.split(":")[0], s.status]));
    };
    expect(await legs("flannel: every DEL and GC leaks", "cni.del-releases")).toMatchObject({ trace: "passed", "requested IP": "not applicable", exhaustion: "failed" });
    expect(await legs("calico: DEL and GC leave the block ordinal", "cni.del-releases")).toMatchObject({ trace: "failed", "requested IP": "not applicable", exhaustion: "not applicable" });
    expect(await legs("calico: DEL and GC quarantine the block ordinal", "cni.del-releases")).toEqual({
      trace: "passed",
      "requested IP": "not applicable",
      exhaustion: "not applicable",
      churn: "failed",
    });
  }, 300_000);
});
