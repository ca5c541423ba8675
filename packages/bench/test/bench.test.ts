import { describe, expect, it } from "vitest";
import { reference } from "@cnikit/reference";
import { SCENARIO_IDS, runBench, renderMarkdown, stat } from "../src/index.ts";
import type { BenchReport } from "../src/index.ts";
import { tiny, tinyNeverWithdraws, tinyReleasesOnRestart } from "./tiny-backend.ts";

/** bgp-session for a backend without BGP sessions: "not applicable", no runs, no figures. */
function expectNoBgp(report: BenchReport, r: BenchReport["results"][number]): void {
  expect(r.notRun).toBe(`not applicable: ${report.backend} exposes no BGP sessions (NodeAgent.bgpSessions)`);
  expect({ runs: r.runs, converged: r.convergedRuns, virtualMs: r.virtualMs, bgp: r.bgp }).toEqual({ runs: [], converged: 0, virtualMs: undefined, bgp: undefined });
}

function expectAllConverged(report: BenchReport): void {
  expect(report.results.map((r) => r.scenario)).toEqual([...SCENARIO_IDS]);
  for (const r of report.results) {
    if (r.scenario === "bgp-session") {
      expectNoBgp(report, r);
      continue;
    }
    expect({ scenario: r.scenario, converged: r.convergedRuns, reason: r.runs[0]!.reason }).toEqual({ scenario: r.scenario, converged: 1, reason: undefined });
    expect(r.virtualMs!.median).toBeLessThanOrEqual(r.bound.ms);
    expect(r.lowerBound.messages).toBeGreaterThanOrEqual(0);
    // The convergence check's own wall time is measured per run and is part of the run's wall time.
    const run = r.runs[0]!;
    expect(run.checkWallMs).toBeGreaterThanOrEqual(0);
    expect(run.checkWallMs!).toBeLessThanOrEqual(run.wallMs + 1);
    expect(r.checkWallMs!.median).toBe(run.checkWallMs);
    // The backend's own wall time to the convergence point: within the run's, less the check's.
    expect(run.convergedWallMs).toBeGreaterThanOrEqual(0);
    expect(run.convergedWallMs!).toBeLessThanOrEqual(run.wallMs - run.checkWallMs! + 1);
    expect(r.convergedWallMs!.median).toBe(run.convergedWallMs);
  }
}

describe("runBench", () => {
  it("every scenario converges for the reference backend, with figures a person can check", async () => {
    const report = await runBench({ backend: reference, config: {}, nodes: [3], runs: 1 });
    expectAllConverged(report);
    const by = (id: string) => report.results.find((r) => r.scenario === id)!;
    // A crash and a silent node are detected by the lease TTL, not at once.
    expect(by("crash").virtualMs!.median).toBeGreaterThan(1_000);
    expect(by("silent").virtualMs!.median).toBeGreaterThan(1_000);
    // The flap's outages (3 × 1 s, 2 s between) are inside the span from t0.
    expect(by("flap").virtualMs!.median).toBeGreaterThanOrEqual(5_000);
    // A join in a full mesh: 2(N−1) announcements at least; the store-based reference delivers them as watch events.
    expect(by("join").lowerBound.messages).toBe(4);
    expect(by("join").deliveries.median).toBeGreaterThanOrEqual(4);
    expect(by("pod-churn").storeOps.median).toBeGreaterThan(0);
    expect(report.timers).toMatchObject({ convergenceMs: 2_000, crashDetectionMs: 60_000 });
    expect(report.peakHeapBytes).toBeGreaterThan(0);
    // Plain data (a not-applicable result's empty statistics are NaN, null in JSON: no figure).
    const measured = { ...report, results: report.results.filter((r) => r.notRun === undefined) };
    expect(JSON.parse(JSON.stringify(measured))).toEqual(measured);
    const md = renderMarkdown([report]);
    for (const id of SCENARIO_IDS) expect(md).toContain(`## ${id}:`);
    expect(md).toMatch(/\| reference\/default \| \d[\d,]* ms virt/);
    expect(md).toContain("| reference/default | not applicable: reference exposes no BGP sessions (NodeAgent.bgpSessions) |");
  }, 120_000);

  it("every scenario converges for a third-party backend written against the public contract", async () => {
    const report = await runBench({ backend: tiny, config: {}, nodes: [2, 3], runs: 1, seed: 7 });
    expect(report.results).toHaveLength(SCENARIO_IDS.length * 2);
    for (const r of report.results) {
      if (r.scenario === "bgp-session") expectNoBgp(report, r);
      else expect({ id: r.scenario, n: r.nodes, converged: r.convergedRuns, reason: r.runs[0]!.reason }).toEqual({ id: r.scenario, n: r.nodes, converged: 1, reason: undefined });
    }
    // A lower bound that does not depend on N is said once; one that does, once per N.
    const bounds = renderMarkdown([report])
      .split("\n")
      .filter((l) => l.startsWith("Lower bound: "));
    const gr = report.results.find((r) => r.scenario === "graceful-restart")!.lowerBound.rule;
    expect(bounds.find((l) => l.includes(gr))?.split(gr).length).toBe(2);
    const join = bounds.find((l) => l.includes("the newcomer's route"));
    expect(join).toContain("2(2−1)");
    expect(join).toContain("2(3−1)");
  }, 120_000);

  it("reports 'did not converge' for a backend that never withdraws a departed node's routes", async () => {
    const report = await runBench({ backend: tinyNeverWithdraws, config: {}, nodes: [3], runs: 1, scenarios: ["join", "leave"] });
    const [join, leave] = report.results;
    expect(join!.convergedRuns).toBe(1);
    expect(leave!.convergedRuns).toBe(0);
    expect(leave!.virtualMs).toBeUndefined();
    expect(leave!.runs[0]!.reason).toMatch(/did not converge within 2000 ms \(convergenceMs\): .*still routes .* departed node/);
    expect(renderMarkdown([report])).toContain("did not converge (0/1)");
  }, 60_000);

  it("reports 'did not converge' for a backend whose agent restart withdraws its routes from the others", async () => {
    const ok = await runBench({ backend: tiny, config: {}, nodes: [3], runs: 1, scenarios: ["graceful-restart"] });
    expect(ok.results[0]!.convergedRuns).toBe(1);
    const report = await runBench({ backend: tinyReleasesOnRestart, config: {}, nodes: [3], runs: 1, scenarios: ["graceful-restart"] });
    expect(report.results[0]!.convergedRuns).toBe(0);
    expect(report.results[0]!.runs[0]!.reason).toMatch(
      /did not converge within 2000 ms \(convergenceMs\): route loss while the agent of node-3 restarted: node node-\d( lost its route\(s\) to|'s dataplane changed)/,
    );
  }, 60_000);

  it("refuses bad options naming the field", async () => {
    await expect(runBench({ backend: reference, config: {}, nodes: [1] })).rejects.toMatchObject({ code: 7, message: expect.stringContaining("nodes[0]") });
    await expect(runBench({ backend: reference, config: {}, nodes: [3], runs: 0 })).rejects.toMatchObject({ code: 7, message: expect.stringContaining("runs") });
    await expect(runBench({ backend: reference, config: {}, nodes: [3], scenarios: ["nope" as never] })).rejects.toMatchObject({ code: 7, message: expect.stringContaining("scenarios[0]") });
  });

  it("stat gives median, min and max", () => {
    expect(stat([5, 1, 3])).toEqual({ median: 3, min: 1, max: 5 });
    expect(stat([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4 });
  });
});
