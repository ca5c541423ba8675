import { describe, expect, it } from "vitest";
import { renderTable } from "../src/table.ts";
import type { CheckResult, ConformanceReport } from "../src/types.ts";

function result(id: string, status: CheckResult["status"], reason?: string): CheckResult {
  return {
    id,
    section: "A",
    rule: `rule of ${id}`,
    source: "test",
    required: true,
    status,
    ...(reason === undefined ? {} : { reason }),
    metrics: { virtualMs: 1200, wallMs: 3.5, messages: 7, bytes: 512, storeOps: 9 },
  };
}

function report(backend: string, results: CheckResult[]): ConformanceReport {
  return { backend, config: "c.json", nodes: 4, seed: 1, started: "2026-01-01T00:00:00.000Z", durationMs: 1500, results };
}

const longReason = `pod default/a (10.0.0.2) on node n1 -> pod default/b (10.0.1.2) on node n2: ${"x".repeat(300)} END`;

describe("renderTable", () => {
  const cases: { label: string; reports: ConformanceReport[]; expect: (text: string) => void }[] = [
    {
      label: "a single report: one row per check with figures, the truncated reason, and the full reason below",
      reports: [report("ref", [result("ipam.unique", "passed"), result("reach.x", "failed", longReason)])],
      expect: (text) => {
        expect(text).toMatch(/^ref \(c\.json\), 4 nodes, seed 1: 1 passed, 1 failed, 0 errors/);
        expect(text).toMatch(/REQUIRED CHECK\(S\) NOT PASSED/);
        expect(text).toMatch(/A\s+ipam\.unique\s+yes\s+passed\s+1200\s+4\s+7\s+512\s+9/);
        expect(text).toMatch(/reach\.x\s+yes\s+failed.*\.\.\./);
        expect(text).toMatch(/Failures:\nreach\.x failed: .* END/);
      },
    },
    {
      label: "several reports: a check × report matrix with a legend and the reasons",
      reports: [report("ref", [result("ipam.unique", "passed"), result("reach.x", "not claimed", "no")]), report("fl", [result("ipam.unique", "error", "threw"), result("reach.x", "not run", "no")])],
      expect: (text) => {
        expect(text).toMatch(/\[1\] ref \(c\.json\)/);
        expect(text).toMatch(/\[2\] fl \(c\.json\)/);
        expect(text).toMatch(/ipam\.unique\s+pass\s+ERROR/);
        expect(text).toMatch(/reach\.x\s+n\/claimed\s+not run/);
        expect(text).toMatch(/\[2\] ipam\.unique error: threw/);
      },
    },
    { label: "no report", reports: [], expect: (text) => expect(text).toBe("(no conformance reports)") },
  ];
  for (const c of cases) it(c.label, () => c.expect(renderTable(c.reports)));
});
