// `pnpm bench`: runs the micro-benchmarks under scripts/bench/ and the route-convergence benchmark of
// every built-in backend, and prints one table per entry. Figures are wall-clock measurements on this
// machine (and virtual time for convergence); nothing here asserts a speed (tests never time things).
// Usage: pnpm bench [name-filter ...]   e.g. `pnpm bench allocator datastore`, `pnpm bench convergence`
// The conformance false-red sweep runs only when named: `pnpm bench conformance-sweep`.
//
// Convergence is measured by one tool only: @cnikit/bench (`cnikit-bench`), whose `runBench` this
// driver calls in-process (the library, not the CLI as a child process: its report is structured
// data to turn into figures, the same object the CLI renders, with no JSON file to hand over, and it
// runs from source under this script's `--conditions=source` without a build). Each
// `convergence-<backend>` entry runs cnikit-bench's scenarios (cold start, join, leave, crash,
// silent node, flap, partition-heal, pod churn, graceful restart) for the backend's main fixture
// mode and prints, per scenario and N, the median figures with their yardsticks: the reference
// backend's figure in the same run (same N, scenarios, runs and seeds) and the scenario's lower
// bound of announcements (RFC 7747; packages/bench/README.md). Defaults keep each entry to a few minutes on 2 cores (N = 10,
// one run); bigger runs through the environment:
//   CONVERGENCE_BENCH_RUNS=3            runs per point (medians over them; default 1)
//   CONVERGENCE_BENCH_SCENARIOS=join,crash   a subset of the scenarios (default all)
//   CONVERGENCE_BENCH_MODES=all         every fixture mode of each backend (default: its main mode)
//   REFERENCE_BENCH_N, FLANNEL_BENCH_N, CALICO_BENCH_N, CANAL_BENCH_N, WEAVE_BENCH_N, AZURE_BENCH_N
//                                       cluster sizes, e.g. 10,100 (default 10; flannel's crash and
//                                       silent scenarios wait out its 24 h lease TTL in virtual time:
//                                       ~50 s of wall time each at N = 10)
//   CALICO_BENCH_RR=0                   no route-reflector run (default on: 2 reflectors,
//   CALICO_BENCH_RR_N=10                at these sizes)
// The same figures as tables, for any backend: `cnikit-bench --backend <name|module> --nodes 10,100`.
import { ConfigError } from "@cnikit/core";
import { builtinBackend } from "@cnikit/backends";
import type { BuiltinConfig } from "@cnikit/backends";
import { SCENARIO_IDS, runBench } from "@cnikit/bench";
import type { BenchReport, ScenarioId, ScenarioResult } from "@cnikit/bench";
import { withRouteReflectors } from "../packages/calico/src/fixtures.ts";
import { benchAllocator } from "./bench/allocator.ts";
import { benchAzure } from "./bench/azure.ts";
import { benchBgp } from "./bench/bgp.ts";
import { benchCalico } from "./bench/calico.ts";
import { benchCni } from "./bench/cni.ts";
import { benchConformanceSweep } from "./bench/conformance-sweep.ts";
import { benchDatastore } from "./bench/datastore.ts";
import { benchEtcd } from "./bench/etcd.ts";
import { benchFlannel } from "./bench/flannel.ts";
import { benchNetpol } from "./bench/netpol.ts";
import { benchSimReachability } from "./bench/sim-reachability.ts";
import { benchWeaveTraffic } from "./bench/weave-convergence.ts";
import { formatFigures, type Figure } from "./bench/figures.ts";

const COMPONENT = "bench";

/** A comma-separated list of integers from an environment variable (`fallback` when unset). */
function sizesFrom(variable: string, fallback: string): number[] {
  const raw = process.env[variable] ?? fallback;
  return raw.split(",").map((part) => {
    const n = Number(part.trim());
    if (!/^\s*\d+\s*$/.test(part) || n < 2 || n > 5000)
      throw new ConfigError({ component: COMPONENT, field: variable, rule: "must be a comma-separated list of cluster sizes, integers from 2 to 5000", value: raw });
    return n;
  });
}

function runsFrom(variable: string): number {
  const raw = process.env[variable] ?? "1";
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 100) throw new ConfigError({ component: COMPONENT, field: variable, rule: "must be an integer from 1 to 100", value: raw });
  return Number(raw);
}

function scenariosFrom(variable: string): ScenarioId[] {
  const raw = process.env[variable];
  if (raw === undefined) return [...SCENARIO_IDS];
  return raw.split(",").map((part) => {
    const id = part.trim();
    if (!(SCENARIO_IDS as readonly string[]).includes(id))
      throw new ConfigError({ component: COMPONENT, field: variable, rule: `must be a comma-separated list of ${SCENARIO_IDS.join(", ")}`, value: raw });
    return id as ScenarioId;
  });
}

/** One backend config to benchmark. */
interface ConvergenceTarget {
  backend: string;
  label: string;
  config: unknown;
  topology?: BuiltinConfig["topology"];
  nodes: number[];
}

/** The backend's main fixture mode (`main`), or every mode with CONVERGENCE_BENCH_MODES=all. */
function builtinTargets(backend: string, main: string, nodes: number[]): ConvergenceTarget[] {
  const modes = process.env.CONVERGENCE_BENCH_MODES ?? "main";
  if (modes !== "main" && modes !== "all") throw new ConfigError({ component: COMPONENT, field: "CONVERGENCE_BENCH_MODES", rule: "must be main or all", value: modes });
  const configs = builtinBackend(backend).configs.filter((c) => modes === "all" || c.label === main);
  if (configs.length === 0) throw new Error(`bench: ${backend} has no fixture mode ${main}`);
  return configs.map((c) => ({ backend, label: c.label, config: c.config, ...(c.topology ? { topology: c.topology } : {}), nodes }));
}

/** Calico: its main mode in full mesh, and (unless CALICO_BENCH_RR=0) with two route reflectors. */
function calicoTargets(): ConvergenceTarget[] {
  const mesh = builtinTargets("calico", "ipip-crosssubnet", sizesFrom("CALICO_BENCH_N", "10"));
  if (process.env.CALICO_BENCH_RR === "0") return mesh;
  const rr = mesh.map((t) => ({ ...t, label: `${t.label}-rr`, config: withRouteReflectors(t.config as Record<string, unknown>[]), nodes: sizesFrom("CALICO_BENCH_RR_N", "10") }));
  return [...mesh, ...rr];
}

/** Reports already run in this process, by backend/label/N/scenarios/runs (the reference is shared by every entry). */
const reports = new Map<string, Promise<BenchReport>>();

function bench(target: ConvergenceTarget, n: number, scenarios: ScenarioId[], runs: number): Promise<BenchReport> {
  const key = `${target.backend}/${target.label}|${n}|${scenarios.join(",")}|${runs}`;
  let report = reports.get(key);
  if (!report) {
    const { backend } = builtinBackend(target.backend);
    report = runBench({
      backend,
      config: target.config,
      configLabel: target.label,
      nodes: [n],
      scenarios,
      runs,
      ...(target.topology ? { topology: target.topology } : {}),
      onRun: (p) => process.stderr.write(`  [convergence] ${target.backend}/${target.label} ${p.scenario} N=${p.nodes} run ${p.run} (${p.done}/${p.total})\n`),
    });
    reports.set(key, report);
  }
  return report;
}

/** The yardstick: the reference backend in its one fixture mode. */
const REFERENCE: ConvergenceTarget = { backend: "reference", label: "default", config: builtinBackend("reference").configs.find((c) => c.label === "default")!.config, nodes: [] };

const ratio = (value: number, yardstick: number | undefined): number | undefined => (yardstick !== undefined && yardstick > 0 && Number.isFinite(value) ? value / yardstick : undefined);

/** One scenario at one N as figures, each beside its yardstick (the reference's figure, the lower bound). */
function scenarioFigures(tag: string, r: ScenarioResult, ref: ScenarioResult | undefined): Figure[] {
  const out: Figure[] = [];
  const name = `${tag} ${r.scenario} N=${r.nodes}`;
  const runs = r.runs.length;
  const refName = ref === undefined ? undefined : "reference";
  if (r.convergedRuns < runs) {
    const reason = r.runs.find((f) => !f.converged)?.reason ?? "did not converge";
    out.push({ name: `${name}: runs converged (${reason.length > 160 ? `${reason.slice(0, 157)}...` : reason})`, value: r.convergedRuns, unit: `of ${runs}` });
  }
  if (r.virtualMs) {
    out.push({ name: `${name}: virtual time to convergence (bound ${r.bound.name} ${r.bound.ms} ms)`, value: r.virtualMs.median, unit: "ms (virtual)" });
    const x = ratio(r.virtualMs.median, ref?.virtualMs?.median);
    if (x !== undefined) out.push({ name: `${name}: virtual time / ${refName}'s (${ref!.virtualMs!.median} ms)`, value: x, unit: "×" });
  }
  out.push({ name: `${name}: wall time (trigger + convergence + quiet period)`, value: r.wallMs.median, unit: "ms" });
  if (r.checkWallMs) out.push({ name: `${name}: of which the bench's convergence check`, value: r.checkWallMs.median, unit: "ms" });
  if (r.convergedWallMs) out.push({ name: `${name}: wall time from t0 to the convergence point, without the check`, value: r.convergedWallMs.median, unit: "ms" });
  const wall = ratio(r.wallMs.median, ref?.wallMs.median);
  if (wall !== undefined) out.push({ name: `${name}: wall time / ${refName}'s (${ref!.wallMs.median} ms)`, value: wall, unit: "×" });
  const lb = r.lowerBound.messages;
  out.push({ name: `${name}: peer messages + store watch events (LB ${lb})`, value: r.deliveries.median, unit: "deliveries" });
  const overLb = ratio(r.deliveries.median, lb);
  if (overLb !== undefined) out.push({ name: `${name}: deliveries / LB`, value: overLb, unit: "×" });
  out.push({ name: `${name}: peer bytes`, value: r.bytes.median, unit: "bytes" });
  out.push({ name: `${name}: store operations`, value: r.storeOps.median, unit: "ops" });
  const ops = ratio(r.storeOps.median, ref?.storeOps.median);
  if (ops !== undefined) out.push({ name: `${name}: store operations / ${refName}'s (${ref!.storeOps.median})`, value: ops, unit: "×" });
  return out;
}

/** The convergence figures of `targets` (the reference backend's in the same run as the yardstick, unless it is the target). */
async function convergence(targets: ConvergenceTarget[]): Promise<Figure[]> {
  const scenarios = scenariosFrom("CONVERGENCE_BENCH_SCENARIOS");
  const runs = runsFrom("CONVERGENCE_BENCH_RUNS");
  const figures: Figure[] = [];
  for (const target of targets) {
    const tag = `${target.backend}/${target.label}`;
    for (const n of target.nodes) {
      const report = await bench(target, n, scenarios, runs);
      const reference = target.backend === "reference" ? undefined : await bench(REFERENCE, n, scenarios, runs);
      for (const r of report.results)
        figures.push(
          ...scenarioFigures(
            tag,
            r,
            reference?.results.find((x) => x.scenario === r.scenario && x.nodes === r.nodes),
          ),
        );
      figures.push({ name: `${tag} N=${n}: peak heap of the process (${runs} run(s) per scenario)`, value: report.peakHeapBytes / 2 ** 20, unit: "MiB" });
      figures.push({ name: `${tag} N=${n}: wall time of all scenarios`, value: report.wallMs, unit: "ms" });
    }
  }
  return figures;
}

/** `onlyWhenNamed`: left out of a run without filters (it takes hours with its defaults). */
const suites: { name: string; run: () => Promise<Figure[]>; onlyWhenNamed?: boolean }[] = [
  { name: "allocator", run: benchAllocator },
  { name: "datastore", run: benchDatastore },
  { name: "etcd", run: benchEtcd },
  { name: "sim-reachability", run: benchSimReachability },
  // Flannel's subnet-lease throughput (its convergence: convergence-flannel).
  { name: "flannel", run: benchFlannel },
  { name: "bgp", run: benchBgp },
  // Calico's block IPAM throughput (its convergence: convergence-calico).
  { name: "calico", run: benchCalico },
  { name: "netpol", run: benchNetpol },
  { name: "cni", run: benchCni },
  // Weave's gossip traffic by kind, per node (its convergence: convergence-weave).
  { name: "weave-traffic", run: benchWeaveTraffic },
  // Flags from AZURE_BENCH_ARGS (e.g. "--quick" or "--nodes 20 --steps 5"); the default run takes ~3 minutes.
  { name: "azure", run: benchAzure },
  // Route convergence through cnikit-bench (see the file comment for the sizes).
  { name: "convergence-reference", run: () => convergence(builtinTargets("reference", "default", sizesFrom("REFERENCE_BENCH_N", "10"))) },
  { name: "convergence-flannel", run: () => convergence(builtinTargets("flannel", "vxlan", sizesFrom("FLANNEL_BENCH_N", "10"))) },
  { name: "convergence-calico", run: () => convergence(calicoTargets()) },
  { name: "convergence-canal", run: () => convergence(builtinTargets("canal", builtinBackend("canal").configs[0]!.label, sizesFrom("CANAL_BENCH_N", "10"))) },
  { name: "convergence-weave", run: () => convergence(builtinTargets("weave", "fastdp", sizesFrom("WEAVE_BENCH_N", "10"))) },
  { name: "convergence-azure", run: () => convergence(builtinTargets("azure", builtinBackend("azure").configs[0]!.label, sizesFrom("AZURE_BENCH_N", "10"))) },
  // The false-red sweep (hours with its defaults; narrow it with CONFORMANCE_SWEEP_ARGS="--seeds 1-100 --nodes 4").
  { name: "conformance-sweep", run: benchConformanceSweep, onlyWhenNamed: true },
];

const filters = process.argv.slice(2);
const chosen = suites.filter((s) => (filters.length === 0 ? !s.onlyWhenNamed : filters.some((f) => s.name.includes(f))));
if (chosen.length === 0) {
  console.error(`bench: no benchmark matches ${filters.join(", ")}; known: ${suites.map((s) => s.name).join(", ")}`);
  process.exit(2);
}
console.log(`cnikit benchmarks — node ${process.version}, ${process.platform}/${process.arch}, ${new Date().toISOString()}`);
for (const suite of chosen) {
  const started = performance.now();
  const figures = await Promise.resolve()
    .then(suite.run)
    .catch((err: unknown) => {
      // A bad size, run count, scenario or mode in the environment (ConfigError, code 7): say which, exit 2.
      if ((err as { code?: unknown } | null)?.code !== 7) throw err;
      console.error(`bench: ${suite.name}: ${(err as Error).message}`);
      process.exit(2);
    });
  console.log(`\n## ${suite.name} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  console.log(formatFigures(figures));
}
