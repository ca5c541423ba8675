/**
 * @cnikit/bench — route-convergence benchmarks for any cnikit backend, in the simulator or on the kernel.
 *
 *  - `runBench(options)` runs the scenarios and returns a JSON-serialisable `BenchReport`.
 *  - `renderMarkdown(reports)` renders reports as one table per scenario.
 *  - `runLinuxBench(options)` measures on the kernel (a lab per run, FIB of every node), also BIRD's mesh.
 *  - The `cnikit-bench` CLI (src/cli.ts) does both for a backend module or the built-in backends.
 */
export { runBench, stat, convergenceProblem, DEFAULT_RUNS, DEFAULT_SEED, DEFAULT_SCENARIOS } from "./run.ts";
export type { BenchOptions, BenchProgress, BenchReport, Measured, RunFigures, ScenarioResult, Stat } from "./run.ts";
export { SCENARIOS, SCENARIO_IDS, scenarioById, CHURN_PER_NODE, FLAP_COUNT, FLAP_OUTAGE_MS, PODS_PER_NODE } from "./scenarios.ts";
export type { LowerBound, Scenario, ScenarioId, ScenarioEnv, Triggered } from "./scenarios.ts";
export { renderMarkdown, cell } from "./markdown.ts";
export { renderPlots, writePlots, convergenceSpec, messagesSpec, specToSvg } from "./plot.ts";
export type { BenchPlot, PlotKind } from "./plot.ts";
export { runLinuxBench, linuxPreflight, LINUX_MAX_NODES, LINUX_SCENARIOS, LINUX_QUIET_MS, LINUX_BOUND_CAP_MS, LINUX_START_ALLOWANCE_MS } from "./linux.ts";
export type { KernelTarget, LinuxBenchOptions } from "./linux.ts";
export { renderBirdComparison } from "./linux-cli.ts";
export { BirdMeshTarget, calicoBirdConfig, CALICO_AS, CALICO_BLOCK_LENGTH } from "./linux-bird.ts";
export { fibProblems, ownedBy, readFib, FibMonitor, parseRouteEvent } from "./linux-fib.ts";
export type { FibRoute, FibView, RouteEvent } from "./linux-fib.ts";
