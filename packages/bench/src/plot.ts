/**
 * SVG plots of bench reports, drawn by Vega-Lite (compiled to a Vega spec, rendered headless with
 * `renderer: "none"` and `toSVG()`: no browser, no canvas, no native build).
 *
 *  - `convergence-<scenario>.svg`: the median virtual ms to convergence against N, one line per
 *    backend/config (min–max over the runs as a bar), log scale when the values span more than a
 *    factor of 20; runs that did not converge are named under the title.
 *  - `messages-<scenario>.svg`: per N, each backend/config's median peer messages and store watch
 *    events (stacked) beside the scenario's lower bound LB (a red rule).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "@cnikit/core";
import { View, parse } from "vega";
import { compile } from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import type { BenchReport, ScenarioResult } from "./run.ts";
import { SCENARIO_IDS } from "./scenarios.ts";
import type { ScenarioId } from "./scenarios.ts";

const COMPONENT = "bench plot";
const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
/** Values spanning more than this factor get a log scale. */
const LOG_RATIO = 20;

export type PlotKind = "convergence" | "messages";

export interface BenchPlot {
  kind: PlotKind;
  scenario: ScenarioId;
  /** `convergence-join.svg`, `messages-join.svg`. */
  file: string;
  title: string;
  /** One sentence: what the plot shows. */
  description: string;
  svg: string;
}

const seriesOf = (r: BenchReport): string => `${r.backend}/${r.configLabel}`;

function checkReports(reports: readonly BenchReport[]): void {
  if (!Array.isArray(reports) || reports.length === 0 || !reports.some((r) => Array.isArray(r?.results) && r.results.length > 0)) {
    throw new ConfigError({
      component: COMPONENT,
      field: "reports",
      rule: "must hold at least one report with results (run the bench first)",
      value: Array.isArray(reports) ? `${reports.length} report(s)` : reports,
    });
  }
}

function resultsFor(reports: readonly BenchReport[], scenario: ScenarioId): { series: string; backend: string; result: ScenarioResult }[] {
  const rows = reports.flatMap((r) => r.results.filter((x) => x.scenario === scenario && measured(x)).map((result) => ({ series: seriesOf(r), backend: r.backend, result })));
  if (rows.length === 0) {
    const present = measuredScenarios(reports);
    throw new ConfigError({ component: COMPONENT, field: "scenario", rule: `must be one the reports measured (${present.join(", ")})`, value: scenario });
  }
  return rows;
}

/** A result with runs to plot: not one reported "not applicable" or "not run" (no runs, no figures). */
function measured(result: ScenarioResult): boolean {
  return result.notRun === undefined && result.runs.length > 0;
}

function measuredScenarios(reports: readonly BenchReport[]): ScenarioId[] {
  return SCENARIO_IDS.filter((id) => reports.some((r) => r.results.some((x) => x.scenario === id && measured(x))));
}

function titleOf(reports: readonly BenchReport[], scenario: ScenarioId): string {
  return reports.flatMap((r) => r.results).find((x) => x.scenario === scenario)!.title;
}

function nodeValues(rows: readonly { result: ScenarioResult }[]): number[] {
  return [...new Set(rows.map((r) => r.result.nodes))].sort((a, b) => a - b);
}

/** Log when every value is positive and they span more than LOG_RATIO; symlog when wide but some are 0. */
function yScale(values: readonly number[]): { type: "linear" | "log" | "symlog" } {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { type: "linear" };
  const max = Math.max(...finite);
  const positive = finite.filter((v) => v > 0);
  const min = positive.length > 0 ? Math.min(...positive) : max;
  if (max <= 0 || max / min <= LOG_RATIO) return { type: "linear" };
  return { type: positive.length === finite.length ? "log" : "symlog" };
}

const FONT = { font: "Helvetica, Arial, sans-serif" };
const CONFIG = {
  ...FONT,
  title: { fontSize: 15, subtitleFontSize: 11, anchor: "start" as const, subtitleColor: "#444" },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: "#e4e4e4" },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  view: { stroke: "#bbb" },
};

/** The Vega-Lite spec of convergence vs N for one scenario. */
export function convergenceSpec(reports: readonly BenchReport[], scenario: ScenarioId): TopLevelSpec {
  checkReports(reports);
  const rows = resultsFor(reports, scenario);
  const values = rows
    .filter((r) => r.result.virtualMs !== undefined)
    .map(({ series, backend, result }) => ({
      series,
      backend,
      nodes: result.nodes,
      median: result.virtualMs!.median,
      min: result.virtualMs!.min,
      max: result.virtualMs!.max,
      runs: `${result.convergedRuns}/${result.runs.length}`,
    }));
  const missed = rows.filter((r) => r.result.convergedRuns < r.result.runs.length).map((r) => `${r.series} N=${r.result.nodes} (${r.result.convergedRuns}/${r.result.runs.length})`);
  const scale = yScale(values.flatMap((v) => [v.min, v.max]));
  const allZero = values.every((v) => v.max === 0);
  const runsPerPoint = Math.max(...reports.map((r) => r.runsPerPoint));
  const subtitle = [
    `Median virtual ms from t0 to the last change of the desired state (${scale.type} scale)${runsPerPoint > 1 ? `; bars: min–max over ${runsPerPoint} runs` : `; ${runsPerPoint} run per point`}.`,
    `Bound: ${rows[0]!.result.bound.name}. ${missed.length === 0 ? "Every run converged." : `Did not converge (not drawn): ${missed.join(", ")}.`}`,
  ];
  const x = {
    field: "nodes",
    type: "quantitative" as const,
    title: "cluster size N (nodes)",
    scale: { type: "log" as const, nice: false, padding: 12 },
    axis: { values: nodeValues(rows), format: "d" },
  };
  const color = { field: "series", type: "nominal" as const, title: "backend/config", scale: { scheme: "category20" } };
  return {
    $schema: SCHEMA,
    title: { text: `${scenario}: network convergence vs N`, subtitle: wrap(subtitle) },
    width: 520,
    height: 320,
    data: { values },
    layer: [
      { mark: { type: "rule", strokeWidth: 1.5, opacity: 0.6 }, encoding: { x, y: { field: "min", type: "quantitative" }, y2: { field: "max" }, color } },
      {
        mark: { type: "line", point: { size: 45, filled: true }, strokeWidth: 2 },
        encoding: {
          x,
          y: {
            field: "median",
            type: "quantitative",
            title: "convergence (virtual ms, median)",
            scale: scale.type === "linear" ? { ...scale, nice: true, zero: true, ...(allZero ? { domain: [0, 1] } : {}) } : { ...scale, nice: true },
            axis: {
              ...(scale.type === "linear"
                ? { format: "~s" }
                : {
                    format: ",~r",
                    values: decades(
                      values.flatMap((v) => [v.min, v.max]),
                      scale.type === "symlog",
                    ),
                  }),
            },
          },
          color,
          shape: { field: "backend", type: "nominal", title: "backend" },
        },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/** The Vega-Lite spec of peer messages + watch events vs the lower bound, per N, for one scenario. */
export function messagesSpec(reports: readonly BenchReport[], scenario: ScenarioId): TopLevelSpec {
  checkReports(reports);
  const rows = resultsFor(reports, scenario);
  const values = rows.flatMap(({ series, result }) => [
    { series, nodes: `N = ${result.nodes}`, n: result.nodes, carrier: "peer messages", count: result.messages.median, lb: result.lowerBound.messages },
    { series, nodes: `N = ${result.nodes}`, n: result.nodes, carrier: "store watch events", count: result.watchEvents.median, lb: result.lowerBound.messages },
  ]);
  const bounds = nodeValues(rows).map((n) => ({ n, lb: rows.find((r) => r.result.nodes === n)!.result.lowerBound }));
  const subtitle = [
    "Median deliveries per run: peer messages the simulator carried plus store watch events the agents received (stacked).",
    `Red dashed rule: the lower bound LB of per-route announcements in a full mesh (RFC 7747): ${bounds.map((b) => `${b.lb.messages} at N = ${b.n}`).join(", ")}.`,
    `LB at N = ${bounds[0]!.n}: ${bounds[0]!.lb.rule}.`,
  ];
  return {
    $schema: SCHEMA,
    title: { text: `${scenario}: messages vs the lower bound`, subtitle: wrap(subtitle) },
    data: { values },
    facet: { column: { field: "n", type: "ordinal", title: "cluster size N (nodes)", header: { labelExpr: "'N = ' + datum.value", labelFontSize: 12, titleFontSize: 12 } } },
    resolve: { scale: { x: "independent" } },
    spec: {
      width: 260,
      height: { step: 16 },
      layer: [
        {
          mark: { type: "bar" },
          encoding: {
            y: { field: "series", type: "nominal", title: "backend/config", sort: null, axis: { labelLimit: 260 } },
            x: { field: "count", type: "quantitative", stack: "zero", title: "deliveries per run (median)", axis: { format: "~s" } },
            color: { field: "carrier", type: "nominal", title: "carried as", scale: { domain: ["peer messages", "store watch events"], range: ["#4c78a8", "#72b7b2"] } },
          },
        },
        { mark: { type: "rule", color: "#d62728", strokeWidth: 2, strokeDash: [5, 3] }, encoding: { x: { aggregate: "max", field: "lb", type: "quantitative" } } },
      ],
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Ticks at the powers of ten the values span (and 0 on a symlog scale). */
function decades(values: readonly number[], withZero: boolean): number[] {
  const positive = values.filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...positive)));
  const hi = Math.ceil(Math.log10(Math.max(...positive)));
  const ticks = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  return withZero ? [0, ...ticks] : ticks;
}

/** Breaks long subtitle lines (SVG text does not wrap). */
function wrap(lines: readonly string[], width = 90): string[] {
  const out: string[] = [];
  for (const line of lines) {
    let current = "";
    for (const word of line.split(" ")) {
      if (current !== "" && current.length + word.length + 1 > width) {
        out.push(current);
        current = word;
      } else current = current === "" ? word : `${current} ${word}`;
    }
    if (current !== "") out.push(current);
  }
  return out;
}

/** Renders a Vega-Lite spec to SVG text, headless. */
export async function specToSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Both plots of every scenario the reports measured (or of the `scenarios` named). */
export async function renderPlots(reports: readonly BenchReport[], scenarios?: readonly ScenarioId[]): Promise<BenchPlot[]> {
  checkReports(reports);
  const ids = scenarios ?? measuredScenarios(reports);
  const plots: BenchPlot[] = [];
  for (const scenario of ids) {
    const title = titleOf(reports, scenario).replace(/^./, (c) => c.toUpperCase());
    plots.push({
      kind: "convergence",
      scenario,
      file: `convergence-${scenario}.svg`,
      title: `${scenario}: network convergence vs N`,
      description: `${title} — median virtual ms to network convergence against cluster size N, one line per backend/config.`,
      svg: await specToSvg(convergenceSpec(reports, scenario)),
    });
    plots.push({
      kind: "messages",
      scenario,
      file: `messages-${scenario}.svg`,
      title: `${scenario}: messages vs the lower bound`,
      description: `${title} — median peer messages + store watch events per backend/config at each N, beside the scenario's lower bound LB.`,
      svg: await specToSvg(messagesSpec(reports, scenario)),
    });
  }
  return plots;
}

/** Renders the plots and writes them into `dir` (created if needed); returns the paths written. */
export async function writePlots(reports: readonly BenchReport[], dir: string): Promise<BenchPlot[]> {
  const plots = await renderPlots(reports);
  await mkdir(dir, { recursive: true });
  for (const p of plots) await writeFile(join(dir, p.file), p.svg);
  return plots;
}
