/**
 * Section H: the suite checks itself. The reference backend passes every required check; each
 * deliberately broken variant fails exactly the checks that target it (and the reference passes
 * those), while unrelated control checks stay green on it.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { e2eCases } from "@cnikit/netpol";
import { invalidReferenceConfigs, reference } from "@cnikit/reference";
import { runConformance } from "../src/runner-entry.ts";
import type { CheckResult, ConformanceReport } from "../src/runner-entry.ts";
import { brokenVariants } from "./broken/index.ts";

const config = { network: "10.250.0.0/16" };

function statusOf(report: ConformanceReport, id: string): CheckResult {
  const r = report.results.find((x) => x.id === id);
  if (!r) throw new Error(`check ${id} missing from the report of ${report.backend}`);
  return r;
}

describe("section H: the suite checks itself", () => {
  let referenceReport: ConformanceReport;

  beforeAll(async () => {
    referenceReport = await runConformance({ backend: reference, config, configLabel: "self-check", invalidConfigs: invalidReferenceConfigs, nodes: 4, seed: 7 });
  }, 600_000);

  it("the reference backend passes every required check the suite can run", () => {
    const bad = referenceReport.results.filter((r) => r.required && r.status !== "passed" && r.status !== "not run" && r.status !== "not claimed");
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
    expect(r.subResults?.map((s) => s.label)).toEqual(invalidReferenceConfigs.map((c) => c.label));
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

  for (const variant of brokenVariants) {
    it(`turns red on the broken variant "${variant.label}" exactly where it is broken`, async () => {
      const report = await runConformance({
        backend: variant.backend,
        config,
        configLabel: "self-check",
        invalidConfigs: invalidReferenceConfigs,
        nodes: 4,
        seed: 7,
        propertyRuns: 20,
        checks: [...variant.targets, ...variant.controls],
      });
      for (const id of variant.targets) {
        const r = statusOf(report, id);
        expect(r.status, `${variant.label}: ${id} must fail; got ${r.status} ${r.reason ?? ""}`).toBe("failed");
        expect(r.reason ?? "").not.toBe("");
        expect(statusOf(referenceReport, id).status, `the reference must pass ${id}`).toBe("passed");
      }
      for (const id of variant.controls) {
        const r = statusOf(report, id);
        expect(r.status, `${variant.label}: control ${id} must pass; got ${r.status} ${r.reason ?? ""}`).toBe("passed");
      }
    }, 300_000);
  }
});
