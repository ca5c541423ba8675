/**
 * @cnikit/bench — route-convergence benchmarks for any cnikit backend, in the simulator.
 *
 *  - `runBench(options)` runs the scenarios and returns a JSON-serialisable `BenchReport`.
 *  - `renderMarkdown(reports)` renders reports as one table per scenario.
 *  - The `cnikit-bench` CLI (src/cli.ts) does both for a backend module or the built-in backends.
 */
export { runBench, stat, convergenceProblem, DEFAULT_RUNS, DEFAULT_SEED, DEFAULT_SCENARIOS } from "./run.ts";
export type { BenchOptions, BenchProgress, BenchReport, Measured, RunFigures, ScenarioResult, Stat } from "./run.ts";
export { SCENARIOS, SCENARIO_IDS, scenarioById, CHURN_PER_NODE, FLAP_COUNT, FLAP_OUTAGE_MS, PODS_PER_NODE } from "./scenarios.ts";
export type { LowerBound, Scenario, ScenarioId, ScenarioEnv, Triggered } from "./scenarios.ts";
export { renderMarkdown, cell } from "./markdown.ts";
export { renderPlots, writePlots, convergenceSpec, messagesSpec, specToSvg } from "./plot.ts";
export type { BenchPlot, PlotKind } from "./plot.ts";
