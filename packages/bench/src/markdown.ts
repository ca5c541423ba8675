/**
 * The Markdown report: one table per scenario, a row per backend/config, a column per N, each cell
 * the median virtual ms to convergence, the median wall ms, and the median peer messages against
 * the scenario's lower bound.
 */
import type { BenchReport, ScenarioResult } from "./run.ts";
import { SCENARIO_IDS } from "./scenarios.ts";

const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—");

/** One cell: "1,234 ms virt · 56 ms wall (9 ms checking) · 18 msg + 0 ev (LB 18) · 20 store ops", or "did not converge (0/3) · ...". */
export function cell(r: ScenarioResult): string {
  if (r.notRun !== undefined) return r.notRun;
  const runs = r.runs.length;
  if (r.kernelMs !== undefined || r.runs.some((f) => f.kernelMs !== undefined)) {
    // A kernel run: wall time to the FIB convergence point; messages are not counted there.
    if (!r.kernelMs) return `did not converge (0/${runs}) · LB ${int(r.lowerBound.messages)} msg`;
    const partial = r.convergedRuns < runs ? ` (${r.convergedRuns}/${runs} converged)` : "";
    return `${int(r.kernelMs.median)} ms kernel FIB${partial} · ${int(r.wallMs.median)} ms wall · LB ${int(r.lowerBound.messages)} msg`;
  }
  const msgs = `${int(r.messages.median)} msg + ${int(r.watchEvents.median)} ev (LB ${int(r.lowerBound.messages)})`;
  if (!r.virtualMs) return `did not converge (0/${runs}) · ${msgs}`;
  const partial = r.convergedRuns < runs ? ` (${r.convergedRuns}/${runs} converged)` : "";
  const bgp = r.bgp ? ` · ${int(r.bgp.sessions.median)} BGP sessions: last Established ${int(r.bgp.establishedMs.median)} ms, last End-of-RIB ${int(r.bgp.endOfRibMs.median)} ms` : "";
  const converged = r.convergedWallMs ? `converged after ${int(r.convergedWallMs.median)} ms, ` : "";
  const check = r.checkWallMs ? ` (${converged}${int(r.checkWallMs.median)} ms checking)` : "";
  return `${int(r.virtualMs.median)} ms virt${partial} · ${int(r.wallMs.median)} ms wall${check} · ${msgs} · ${int(r.storeOps.median)} store ops${bgp}`;
}

/** `backend/config`, with ` (linux)` for a kernel run so one table can hold both dataplanes. */
function label(r: BenchReport): string {
  return `${r.backend}/${r.configLabel}${r.dataplane === "linux" ? " (linux)" : ""}`;
}

function escape(text: string): string {
  return text.replace(/\|/g, "\\|");
}

/** The reports (one per backend/config) as Markdown: a heading and a table per scenario. */
export function renderMarkdown(reports: readonly BenchReport[]): string {
  const where = [...new Set(reports.map((r) => (r.dataplane === "linux" ? "kernel" : "simulator")))].join(" and ") || "simulator";
  const out: string[] = [`# cnikit-bench: route convergence (${where})`, ""];
  if (reports.length === 0) return `${out.join("\n")}No reports.\n`;
  const first = reports[0]!;
  out.push(
    `Node ${first.machine.node}, ${first.machine.platform}/${first.machine.arch}, ${first.machine.cpus} CPUs; ${first.runsPerPoint} run(s) per point, seed ${first.seed}; medians over runs (min/max in the JSON).`,
    `Virtual ms: t0 to the last change of the desired state after which every live node's pods reach every other's and no survivor routes to a departed node, held for a quiet period (${first.timers.quietPeriod}).`,
    `msg: peer messages the simulator carried; ev: store watch events delivered to agents; their sum beside the scenario's lower bound (LB) of per-route announcements in a full mesh (RFC 7747; see the README); a store listing carries many routes in one response (counted in store ops, not as events), so a store-based backend's newcomer can learn its initial table below LB. Peak heap of the process: ${int(Math.max(...reports.map((r) => r.peakHeapBytes)) / 1_048_576)} MiB.`,
    ...(reports.some((r) => r.dataplane === "linux")
      ? [
          `Kernel runs (linux): a fresh lab of network namespaces per run; "ms kernel FIB" is the wall time from t0 to the last pod-network route change on a live node (timestamped by \`ip -ts monitor route\`) after which every live node's FIB held exactly the expected routes — each other live node's pod ranges via an address of that node, nothing else — held for the quiet period; the bound is the scenario's plus 60 s for process start; messages are not counted on the kernel.`,
        ]
      : []),
    "",
    "| backend/config | convergence bound | crash bound | topology |",
    "|---|---:|---:|---|",
    ...reports.map(
      (r) =>
        `| ${escape(label(r))} | ${int(r.timers.convergenceMs)} ms | ${int(r.timers.crashDetectionMs)} ms | ${r.topology.subnets.map((s) => s.cidr).join(", ")} (${r.topology.routers} router(s)) |`,
    ),
    "",
  );
  const ids = SCENARIO_IDS.filter((id) => reports.some((r) => r.results.some((x) => x.scenario === id)));
  for (const id of ids) {
    const any = reports.flatMap((r) => r.results).find((x) => x.scenario === id)!;
    const ns = [...new Set(reports.flatMap((r) => r.results.filter((x) => x.scenario === id).map((x) => x.nodes)))].sort((a, b) => a - b);
    out.push(`## ${id}: ${any.title}`, "");
    // One rule per N, each said once (a bound that does not depend on N reads the same at every N).
    const rules = [...new Set(ns.map((n) => reports.flatMap((r) => r.results).find((x) => x.scenario === id && x.nodes === n)!.lowerBound.rule))];
    out.push(`Lower bound: ${rules.join("; ")}.`, "");
    out.push(`| backend/config | ${ns.map((n) => `N = ${n}`).join(" | ")} |`, `|---|${ns.map(() => "---").join("|")}|`);
    for (const r of reports) {
      const cells = ns.map((n) => {
        const x = r.results.find((y) => y.scenario === id && y.nodes === n);
        return x ? escape(cell(x)) : "not run";
      });
      out.push(`| ${escape(label(r))} | ${cells.join(" | ")} |`);
    }
    const reasons = reports.flatMap((r) =>
      r.results
        .filter((x) => x.scenario === id)
        .flatMap((x) =>
          x.runs
            .filter((f) => !f.converged)
            .slice(0, 1)
            .map((f) => `${r.backend}/${r.configLabel} N=${x.nodes}: ${f.reason ?? "did not converge"}`),
        ),
    );
    if (reasons.length > 0) out.push("", ...reasons.map((t) => `- ${escape(t.length > 400 ? `${t.slice(0, 397)}...` : t)}`));
    out.push("");
  }
  return out.join("\n");
}
