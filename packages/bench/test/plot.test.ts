import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import { convergenceSpec, renderPlots, writePlots } from "../src/plot.ts";
import type { BenchReport, ScenarioResult } from "../src/index.ts";

const s = (median: number, min = median, max = median) => ({ median, min, max });

function result(scenario: "join" | "leave", nodes: number, virtualMs: number | undefined, messages: number, watchEvents: number): ScenarioResult {
  const converged = virtualMs !== undefined;
  return {
    scenario,
    title: scenario === "join" ? "one node joins" : "one node leaves",
    nodes,
    bound: { name: "convergenceMs", ms: 2_000 },
    quietMs: 1_000,
    lowerBound: { messages: scenario === "join" ? 2 * (nodes - 1) : nodes - 1, rule: scenario === "join" ? `2(N−1) = ${2 * (nodes - 1)}` : `N−1 = ${nodes - 1}` },
    runs: [
      {
        seed: 1,
        converged,
        ...(converged ? {} : { reason: "did not converge within 2000 ms" }),
        virtualMs: virtualMs ?? 2_000,
        wallMs: 5,
        messages,
        bytes: messages * 100,
        storeOps: 3,
        watchEvents,
        stateChanges: 1,
        heapUsedBytes: 1,
      },
    ],
    convergedRuns: converged ? 1 : 0,
    ...(converged ? { virtualMs: s(virtualMs) } : {}),
    wallMs: s(5),
    messages: s(messages),
    bytes: s(messages * 100),
    storeOps: s(3),
    watchEvents: s(watchEvents),
    deliveries: s(messages + watchEvents),
  };
}

function report(backend: string, configLabel: string, results: ScenarioResult[]): BenchReport {
  return {
    tool: "cnikit-bench",
    dataplane: "sim",
    backend,
    configLabel,
    seed: 1,
    runsPerPoint: 1,
    timers: { convergenceMs: 2_000, crashDetectionMs: 60_000, quietPeriod: "1000 ms" },
    topology: { subnets: [{ name: "underlay", cidr: "192.168.0.0/24" }], routers: 0 },
    machine: { node: "v20", platform: "linux", arch: "x64", cpus: 2 },
    peakHeapBytes: 1,
    results,
    startedAt: "2026-01-01T00:00:00.000Z",
    wallMs: 10,
  };
}

const reports = [
  report("store-backed", "default", [result("join", 3, 12, 0, 5), result("join", 10, 40, 0, 19), result("leave", 3, 8, 0, 2), result("leave", 10, undefined, 0, 9)]),
  report("meshy", "full-mesh", [result("join", 3, 900, 4, 0), result("join", 10, 1_500, 18, 0), result("leave", 3, 300, 2, 0), result("leave", 10, 350, 9, 0)]),
];

describe("plots", () => {
  it("leaves out results reported not applicable or not run: no plot of a scenario nothing measured, no line for a backend that did not run it", async () => {
    const notApplicable: ScenarioResult = { ...result("leave", 3, 8, 0, 2), runs: [], convergedRuns: 0, notRun: "not applicable: store-backed exposes no BGP sessions" };
    const only = [report("store-backed", "default", [result("join", 3, 12, 0, 5), notApplicable])];
    expect((await renderPlots(only)).map((p) => p.file)).toEqual(["convergence-join.svg", "messages-join.svg"]);
    await expect(renderPlots(only, ["leave"])).rejects.toThrow(/must be one the reports measured \(join\)/);
    const mixed = [...only, report("meshy", "full-mesh", [result("leave", 3, 300, 2, 0)])];
    const leave = (await renderPlots(mixed, ["leave"])).find((p) => p.kind === "convergence");
    expect(leave?.svg).toContain("meshy");
    expect(leave?.svg).not.toContain("store-backed");
  });

  it("renders convergence and messages per scenario as SVG naming the series, axes and lower bound", async () => {
    const plots = await renderPlots(reports);
    expect(plots.map((p) => p.file)).toEqual(["convergence-join.svg", "messages-join.svg", "convergence-leave.svg", "messages-leave.svg"]);
    for (const p of plots) {
      expect(p.svg.startsWith("<svg")).toBe(true);
      expect(p.svg).toContain("store-backed/default");
      expect(p.svg).toContain("meshy/full-mesh");
      expect(p.svg).toContain("cluster size N (nodes)");
    }
    const [convJoin, msgJoin, convLeave] = plots;
    expect(convJoin!.svg).toContain("join: network convergence vs N");
    expect(convJoin!.svg).toContain("convergence (virtual ms, median)");
    expect(convJoin!.svg).toContain("backend/config");
    expect(msgJoin!.svg).toContain("join: messages vs the lower bound");
    expect(msgJoin!.svg).toContain("deliveries per run (median)");
    expect(msgJoin!.svg).toContain("peer messages");
    expect(msgJoin!.svg).toContain("store watch events");
    expect(msgJoin!.svg).toContain("18 at N = 10");
    expect(msgJoin!.svg).toContain("2(N−1) = 4");
    // The run that did not converge is named, not drawn.
    expect(convLeave!.svg).toContain("store-backed/default N=10 (0/1)");
  }, 30_000);

  it("uses a log scale when the values span a wide range, linear otherwise", () => {
    const wide = convergenceSpec(reports, "join") as { layer: { encoding: { y: { scale?: { type: string } } } }[] };
    expect(wide.layer[1]!.encoding.y.scale!.type).toBe("log");
    const narrow = convergenceSpec([reports[1]!], "leave") as typeof wide;
    expect(narrow.layer[1]!.encoding.y.scale!.type).toBe("linear");
  });

  it("writes one file per plot", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bench-plot-"));
    try {
      await writePlots([reports[0]!], dir);
      expect((await readdir(dir)).sort()).toEqual(["convergence-join.svg", "convergence-leave.svg", "messages-join.svg", "messages-leave.svg"]);
      expect(await readFile(join(dir, "messages-leave.svg"), "utf8")).toContain("store-backed/default");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("cnikit-bench --svg <dir> writes the plots of the run", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bench-cli-svg-"));
    try {
      let err = "";
      const io = { stdout: () => undefined, stderr: (t: string) => void (err += t), cwd: join(import.meta.dirname, ".."), isTTY: false, env: {} };
      expect(await main(["--backend", "./test/tiny-backend.ts#tiny", "--config", "./test/tiny-config.json", "--nodes", "2", "--runs", "1", "--scenarios", "leave", "--svg", dir], io)).toBe(0);
      expect(err).toContain(`2 SVG plot(s) written to ${dir}`);
      expect((await readdir(dir)).sort()).toEqual(["convergence-leave.svg", "messages-leave.svg"]);
      expect(await readFile(join(dir, "convergence-leave.svg"), "utf8")).toContain("tiny/tiny-config");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("refuses an empty report list or a scenario not measured, naming the field", async () => {
    await expect(renderPlots([])).rejects.toMatchObject({ code: 7, field: "reports", message: expect.stringMatching(/reports: must hold at least one report with results/) });
    await expect(renderPlots([report("x", "y", [])])).rejects.toMatchObject({ field: "reports" });
    expect(() => convergenceSpec(reports, "crash")).toThrow(/scenario: must be one the reports measured \(join, leave\)/);
  });
});
