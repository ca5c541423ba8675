/**
 * Section H: the suite checks itself. The reference backend passes every required check; each
 * deliberately broken variant — on the reference (bridge + lease), flannel (vxlan + FDB) and calico
 * (routed + BGP) shapes — fails the checks that target it, while its unbroken base backend, run
 * once per (base, config), passes every target of every variant of that base, and unrelated control
 * checks stay green on the variant (it is broken in one place, not everywhere).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { e2eCases } from "@cnikit/netpol";
import { reference } from "@cnikit/reference";
import { referenceFixtures } from "@cnikit/reference/fixtures";
import { listChecks, runConformance } from "@cnikit/conformance/runner";
import type { CheckResult, ConformanceReport } from "@cnikit/conformance/runner";
import { REFERENCE_SELF_CHECK_CONFIG, brokenVariants, knownGaps } from "./broken/index.ts";
import type { BrokenVariant } from "./broken/index.ts";

const config = REFERENCE_SELF_CHECK_CONFIG;
/** Seed and cluster size of every run here; random schedules are kept few (this runs in `npm test`). */
const RUN = { nodes: 4, seed: 7, propertyRuns: 20 } as const;
const SHAPES = ["bridge+lease", "vxlan+fdb", "routed+bgp"] as const;

function statusOf(report: ConformanceReport, id: string): CheckResult {
  const r = report.results.find((x) => x.id === id);
  if (!r) throw new Error(`check ${id} missing from the report of ${report.backend}`);
  return r;
}

/** The variants of one base run: same base backend, same config (and table of invalid configs). */
interface BaseGroup {
  title: string;
  variants: BrokenVariant[];
}

/**
 * Groups by base label, base backend and config: variants written in different files may give one
 * label to two configs, and each config needs its own base run.
 */
function groupsOf(variants: BrokenVariant[]): BaseGroup[] {
  const groups = new Map<string, BaseGroup>();
  const labelConfigs = new Map<string, Set<string>>();
  for (const v of variants) {
    const config = JSON.stringify(v.config);
    labelConfigs.set(v.baseLabel, (labelConfigs.get(v.baseLabel) ?? new Set()).add(config));
  }
  for (const v of variants) {
    const config = JSON.stringify(v.config);
    const key = JSON.stringify([v.baseLabel, v.base.name, config, v.invalidConfigs ?? null]);
    const title = labelConfigs.get(v.baseLabel)!.size > 1 ? `${v.baseLabel} ${config}` : v.baseLabel;
    const g = groups.get(key) ?? { title, variants: [] };
    g.variants.push(v);
    groups.set(key, g);
  }
  return [...groups.values()];
}

const groups = groupsOf(brokenVariants);

describe("section H: the suite checks itself", () => {
  let referenceReport: ConformanceReport;

  beforeAll(async () => {
    referenceReport = await runConformance({ backend: reference, config, configLabel: "self-check", invalidConfigs: referenceFixtures.invalidConfigs, nodes: 4, seed: 7 });
  }, 600_000);

  it("the reference backend passes every required check the suite can run", () => {
    const unrunnable = new Set(["not run", "not claimed", "not applicable"]);
    const bad = referenceReport.results.filter((r) => r.required && r.status !== "passed" && !unrunnable.has(r.status));
    expect(bad.map((r) => `${r.id}: ${r.status}: ${r.reason ?? ""}`)).toEqual([]);
    const ran = referenceReport.results.filter((r) => r.status === "passed");
    expect(ran.length).toBeGreaterThanOrEqual(30);
  });

  it("reports what it cannot check as not claimed / not run, never passed", () => {
    expect(statusOf(referenceReport, "encryption.no-plaintext").status).toBe("not claimed");
    expect(statusOf(referenceReport, "linux.same-checks").status).toBe("not run");
    expect(statusOf(referenceReport, "cni.result-versions")).toMatchObject({ status: "not run", reason: expect.stringContaining("plugin executable") });
  });

  it("runs section F on the reference (it claims networkPolicy): every e2e case agrees with the evaluator", () => {
    const r = statusOf(referenceReport, "policy.matrix");
    expect(r.status, r.reason ?? "").toBe("passed");
    expect(r.subResults?.length).toBe(e2eCases.length + 2);
    expect(r.subResults?.every((s) => s.status === "passed")).toBe(true);
  });

  it("gives one sub-result per invalid config, all refused properly by the reference", () => {
    const r = statusOf(referenceReport, "config.invalid-refused");
    expect(r.subResults?.map((s) => s.label)).toEqual(referenceFixtures.invalidConfigs.map((c) => c.label));
    expect(r.subResults?.every((s) => s.status === "passed")).toBe(true);
  });

  it("records convergence figures for the dynamics checks", () => {
    for (const id of ["dyn.join", "dyn.leave", "dyn.crash", "dyn.restart"]) {
      const m = statusOf(referenceReport, id).metrics;
      expect(m, id).toBeDefined();
      expect(m!.virtualMs, id).toBeGreaterThanOrEqual(0);
      expect(m!.storeOps, id).toBeGreaterThan(0);
    }
    // A crash is only detected by lease expiry: it must take virtual time, and stay within the bound.
    const crash = statusOf(referenceReport, "dyn.crash").metrics!;
    expect(crash.virtualMs).toBeGreaterThan(0);
    expect(crash.virtualMs).toBeLessThanOrEqual(reference.summarize(reference.parseConfig(config)).crashDetectionMs);
  });

  it("covers every backend shape with variants whose checks exist in the suite", () => {
    const known = new Set(listChecks().map((c) => c.id));
    expect(brokenVariants.length).toBeGreaterThanOrEqual(24);
    for (const shape of SHAPES) expect(brokenVariants.filter((v) => v.shape === shape).length, `variants on the ${shape} shape`).toBeGreaterThan(0);
    const labels = brokenVariants.map((v) => v.label);
    expect(new Set(labels).size, "variant labels are unique").toBe(labels.length);
    for (const v of brokenVariants) {
      expect(v.targets.length, `${v.label} targets some check`).toBeGreaterThan(0);
      expect(v.controls.length, `${v.label} has control checks`).toBeGreaterThan(0);
      for (const id of [...v.targets, ...v.controls]) expect(known.has(id), `${v.label}: check ${id} exists in the suite`).toBe(true);
      expect(
        v.controls.filter((id) => v.targets.includes(id)),
        `${v.label}: a control is not also a target`,
      ).toEqual([]);
      expect(v.backend.name, `${v.label}: the broken backend has its own name`).not.toBe(v.base.name);
      expect(v.backend.capabilities, `${v.label}: claims what its base claims`).toEqual(v.base.capabilities);
    }
    // Known gaps (variants the suite does not catch yet) name a check that exists, and are not run.
    for (const gap of knownGaps) {
      expect(known.has(gap.check), `known gap ${gap.variant.label}: check ${gap.check} exists`).toBe(true);
      expect(gap.why).not.toBe("");
      expect(labels, `known gap ${gap.variant.label} is not also a proven variant`).not.toContain(gap.variant.label);
    }
    // Variants that share a base label share the base backend.
    for (const v of brokenVariants) {
      const first = brokenVariants.find((x) => x.baseLabel === v.baseLabel)!;
      expect(v.base, `${v.label}: same base as ${first.label} (${v.baseLabel})`).toBe(first.base);
    }
  });

  for (const group of groups) {
    describe(`variants of ${group.title}`, () => {
      const first = group.variants[0]!;
      const targets = [...new Set(group.variants.flatMap((v) => v.targets))];
      const invalidConfigs = first.invalidConfigs;
      let baseReport: ConformanceReport;

      beforeAll(async () => {
        baseReport = await runConformance({
          backend: first.base,
          config: first.config,
          configLabel: first.baseLabel,
          ...(invalidConfigs ? { invalidConfigs } : {}),
          ...RUN,
          checks: targets,
        });
      }, 600_000);

      it(`the unbroken ${first.base.name} passes every target of its variants`, () => {
        const bad = targets.map((id) => statusOf(baseReport, id)).filter((r) => r.status !== "passed");
        expect(bad.map((r) => `${r.id}: ${r.status}: ${r.reason ?? ""}`)).toEqual([]);
      });

      for (const variant of group.variants) {
        it(`turns red on the broken variant "${variant.label}" exactly where it is broken`, async () => {
          const report = await runConformance({
            backend: variant.backend,
            config: variant.config,
            configLabel: variant.baseLabel,
            ...(variant.invalidConfigs ? { invalidConfigs: variant.invalidConfigs } : {}),
            ...RUN,
            checks: [...variant.targets, ...variant.controls],
          });
          for (const id of variant.targets) {
            const r = statusOf(report, id);
            expect(r.status, `${variant.label}: ${id} must fail; got ${r.status} ${r.reason ?? ""}`).toBe("failed");
            expect(r.reason ?? "").not.toBe("");
            expect(statusOf(baseReport, id).status, `the unbroken ${variant.base.name} (${variant.baseLabel}) must pass ${id}`).toBe("passed");
          }
          for (const id of variant.controls) {
            const r = statusOf(report, id);
            expect(r.status, `${variant.label}: control ${id} must pass; got ${r.status} ${r.reason ?? ""}`).toBe("passed");
          }
        }, 300_000);
      }
    });
  }
});
