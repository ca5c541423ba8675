/**
 * runBench: every scenario at every N, `runs` times, each run on a fresh simulated cluster; the
 * figures of each run and their median/min/max, as plain JSON-serialisable data.
 */
import { cpus } from "node:os";
import { ConfigError } from "@cnikit/core";
import type { Backend, NetworkSummary } from "@cnikit/core";
import {
  converge,
  createHarness,
  ipamProblems,
  livePods,
  nodeEndpoint,
  podEndpoint,
  quietPeriodMs,
  reachProblems,
  staleProblems,
  startMetrics,
  summarizeProblems,
  summaryFor,
  topologyFor,
} from "@cnikit/conformance/runner";
import type { CheckContext, Harness } from "@cnikit/conformance/runner";
import type { NodeMetadata, SimTopology } from "@cnikit/sim";
import { ConvergenceChecker } from "./check.ts";
import { SCENARIO_IDS, scenarioById } from "./scenarios.ts";
import type { LowerBound, Scenario, ScenarioEnv, ScenarioId, Triggered } from "./scenarios.ts";
import type { BgpFigures } from "./bgp.ts";

const COMPONENT = "bench";
export const DEFAULT_RUNS = 3;
export const DEFAULT_SEED = 1;
/** Scenarios a run does when none are named: all of them. */
export const DEFAULT_SCENARIOS: readonly ScenarioId[] = SCENARIO_IDS;

export interface BenchOptions<C = unknown> {
  backend: Backend<C>;
  /** The backend's config in its own format (parsed with `backend.parseConfig`). */
  config: unknown;
  /** A name for the config in tables (e.g. `vxlan`); default `default`. */
  configLabel?: string;
  /** Cluster sizes N, each at least 2. */
  nodes: number[];
  /** Default: every scenario (`SCENARIO_IDS`). */
  scenarios?: ScenarioId[];
  /** Runs per scenario and N (default 3); run r uses seed `seed + r`. */
  runs?: number;
  /** Default 1. */
  seed?: number;
  /** The simulated underlay (default: what the conformance suite builds for the config). */
  topology?: SimTopology;
  /** Labels and annotations of the n-th node (e.g. Calico route reflectors). */
  nodeMetadata?: NodeMetadata;
  /** Called after each run (progress). */
  onRun?: (progress: BenchProgress) => void;
}

export interface BenchProgress {
  scenario: ScenarioId;
  nodes: number;
  run: number;
  done: number;
  total: number;
}

/** What a run measures over its span from t0. */
export interface Measured {
  /** Virtual ms from t0 to convergence (to when the harness gave up, when not converged). */
  virtualMs: number;
  /** Wall ms of the measured span (trigger + convergence + the quiet period that proves it). */
  wallMs: number;
  /** Peer messages (stream messages and datagrams) the simulator's peer network carried. */
  messages: number;
  /** Their payload bytes. */
  bytes: number;
  /** Cluster store operations (get, put, delete, list, txn, watch, lease calls). */
  storeOps: number;
  /** Store watch events delivered to the agents' watches (how store-based backends announce). */
  watchEvents: number;
  /**
   * How many times the live nodes' desired state changed while convergence was watched (after the
   * trigger returned; 0 for a flap that moved no route once it ended).
   */
  stateChanges: number;
  /**
   * Simulator runs: wall ms of `wallMs` spent in the bench's own convergence check (all-pairs
   * reachability, IPAM and stale-route checks, evaluated every 1/20 of the bound and when the state
   * looks settled), not in the backend: at hundreds of nodes it is a large share of the wall time.
   */
  checkWallMs?: number;
  /**
   * Simulator runs, when converged: wall ms from t0 until the state the run converged to was first
   * seen (the first look at the nodes' dataplanes at the virtual convergence point), less the
   * bench's own check time before then: how long the backend took in wall time. Not when the check
   * finished (the quiet period and the final full check come after it).
   */
  convergedWallMs?: number;
}

/** One run's figures. Virtual ms are from t0 to the network's convergence point. */
export interface RunFigures extends Measured {
  seed: number;
  converged: boolean;
  /** Why not ("did not converge: ..."), when not converged. */
  reason?: string;
  /** The process's heap in use after the run (process.memoryUsage().heapUsed). */
  heapUsedBytes: number;
  /** BGP backends (`bgp-session`, `graceful-restart`): the sessions' figures from t0, when converged. */
  bgp?: BgpFigures;
  /** Why the scenario does not apply to the backend (then the result has `notRun` and no runs). */
  notApplicable?: string;
  /** Kernel runs (dataplane linux): wall ms from t0 to the FIB convergence point (virtualMs is 0 there). */
  kernelMs?: number;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export interface ScenarioResult {
  scenario: ScenarioId;
  title: string;
  nodes: number;
  /** The bound past which a run did not converge, its name and value. */
  bound: { name: Scenario["boundName"]; ms: number };
  /** Virtual ms the state must stay unchanged to count as settled. */
  quietMs: number;
  lowerBound: LowerBound;
  runs: RunFigures[];
  /** Runs that converged. */
  convergedRuns: number;
  /** Over the converged runs; absent when none converged (and on linux, which has no virtual time). */
  virtualMs?: Stat;
  /** Kernel runs: wall ms from t0 to the FIB convergence point, over the converged runs. */
  kernelMs?: Stat;
  /** Why the scenario was not run ("not run on linux: ..."); `runs` is empty then. */
  notRun?: string;
  /** BGP backends: over the converged runs, the sessions measured and the last Established and End-of-RIB (ms from t0). */
  bgp?: { sessions: Stat; establishedMs: Stat; endOfRibMs: Stat };
  wallMs: Stat;
  /** Simulator runs: the part of `wallMs` spent in the bench's convergence check (see `Measured.checkWallMs`). */
  checkWallMs?: Stat;
  /** Simulator runs: wall ms from t0 to the convergence point, without the check (see `Measured.convergedWallMs`), over the converged runs. */
  convergedWallMs?: Stat;
  messages: Stat;
  bytes: Stat;
  storeOps: Stat;
  watchEvents: Stat;
  /** Peer messages plus watch events: the deliveries compared with the lower bound. */
  deliveries: Stat;
}

export interface BenchReport {
  tool: "cnikit-bench";
  dataplane: "sim" | "linux";
  backend: string;
  configLabel: string;
  seed: number;
  runsPerPoint: number;
  /** The config's promises (the bounds the scenarios use). */
  timers: { convergenceMs: number; crashDetectionMs: number; quietPeriod: string };
  topology: { subnets: { name: string; cidr: string }[]; routers: number };
  machine: { node: string; platform: string; arch: string; cpus: number };
  /** The largest heapUsed seen between runs: the whole process's, not the cluster's alone. */
  peakHeapBytes: number;
  results: ScenarioResult[];
  startedAt: string;
  wallMs: number;
}

/** Median/min/max over runs of the figures every run has (the sim's and the kernel's alike). */
export function figureStats(figures: readonly RunFigures[]): Pick<ScenarioResult, "wallMs" | "messages" | "bytes" | "storeOps" | "watchEvents" | "deliveries"> {
  return {
    wallMs: stat(figures.map((f) => f.wallMs)),
    messages: stat(figures.map((f) => f.messages)),
    bytes: stat(figures.map((f) => f.bytes)),
    storeOps: stat(figures.map((f) => f.storeOps)),
    watchEvents: stat(figures.map((f) => f.watchEvents)),
    deliveries: stat(figures.map((f) => f.messages + f.watchEvents)),
  };
}

export function stat(values: readonly number[]): Stat {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/**
 * Problems of the expected state: every live node (but the excluded) and its pods reach every
 * other's pods, addresses are unique and in range, and no survivor still routes to a departed node.
 */
export function convergenceProblem(h: Harness, summary: NetworkSummary, t: Triggered): string | undefined {
  const problems = stateProblems(h, summary, t);
  const own = t.problem?.();
  if (own !== undefined) problems.unshift(own);
  return problems.length > 0 ? summarizeProblems(problems) : undefined;
}

/** `convergenceProblem` without the scenario's own condition: what depends on the cluster's state alone. */
function stateProblems(h: Harness, summary: NetworkSummary, t: Triggered): string[] {
  const excluded = new Set(t.excluded);
  const pods = livePods(h).filter((p) => !excluded.has(p.node));
  const podEps = pods.map(podEndpoint);
  const nodeEps = h.cluster
    .nodes()
    .filter((n) => n.alive && !excluded.has(n.name))
    .map((n) => nodeEndpoint(n.name));
  const problems = [...ipamProblems(h, summary.podRanges, pods).map((p) => p.text), ...reachProblems(h, podEps, podEps), ...reachProblems(h, nodeEps, podEps), ...reachProblems(h, podEps, nodeEps)];
  const view = excluded.size > 0 ? withoutNodes(h, excluded) : h;
  for (const gone of t.departed) problems.push(...staleProblems(view, gone));
  return problems;
}

/**
 * The convergence condition of one `converge` call as the bench evaluates it (check.ts): the
 * answer of `convergenceProblem`, reused while the state is unchanged and found by probing the nodes
 * that changed first. Every evaluation is full for a backend with a cluster-level controller.
 */
export function checkerFor(h: Harness, ctx: CheckContext, t: Triggered): ConvergenceChecker {
  return new ConvergenceChecker(h, {
    full: () => {
      const problems = stateProblems(h, ctx.summary, t);
      return problems.length > 0 ? summarizeProblems(problems) : undefined;
    },
    ...(t.problem ? { own: t.problem } : {}),
    excluded: t.excluded,
    memo: ctx.backend.createController === undefined,
  });
}

/**
 * The harness as it would look if the `excluded` nodes were down: a silent node still runs in the
 * simulator (it owns its addresses there), but for the survivors it is gone, and what still points
 * at it is stale.
 */
function withoutNodes(h: Harness, excluded: ReadonlySet<string>): Harness {
  const cluster = new Proxy(h.cluster, {
    get(target, prop, receiver) {
      if (prop === "nodes") return () => target.nodes().map((n) => (excluded.has(n.name) ? { ...n, alive: false } : n));
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { ...h, cluster };
}

function checkOptions(options: BenchOptions): { runs: number; seed: number; scenarios: Scenario[] } {
  if (!options || typeof options.backend?.createAgent !== "function") throw new ConfigError({ component: COMPONENT, field: "backend", rule: "must be a Backend (with createAgent)" });
  if (!Array.isArray(options.nodes) || options.nodes.length === 0)
    throw new ConfigError({ component: COMPONENT, field: "nodes", rule: "must be a non-empty list of cluster sizes", value: options.nodes });
  options.nodes.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 2 || n > 5000) throw new ConfigError({ component: COMPONENT, field: `nodes[${i}]`, rule: "must be an integer from 2 to 5000", value: n });
  });
  const runs = options.runs ?? DEFAULT_RUNS;
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new ConfigError({ component: COMPONENT, field: "runs", rule: "must be an integer from 1 to 100", value: runs });
  const seed = options.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(seed)) throw new ConfigError({ component: COMPONENT, field: "seed", rule: "must be an integer", value: seed });
  const ids = options.scenarios ?? [...DEFAULT_SCENARIOS];
  if (!Array.isArray(ids) || ids.length === 0) throw new ConfigError({ component: COMPONENT, field: "scenarios", rule: `must be a non-empty list of ${SCENARIO_IDS.join(", ")}`, value: ids });
  const scenarios = ids.map((id, i) => {
    if (!(SCENARIO_IDS as readonly string[]).includes(id)) throw new ConfigError({ component: COMPONENT, field: `scenarios[${i}]`, rule: `must be one of ${SCENARIO_IDS.join(", ")}`, value: id });
    return scenarioById(id);
  });
  return { runs, seed, scenarios };
}

/**
 * The harness as `converge` sees it, noting when it first looked at the dataplanes at each virtual
 * time (converge looks at every live node's dataplane after each step of the clock): `wallAt(v)` is
 * that wall time for virtual time v (or the next look after it), less the check time spent by then.
 */
function seenAt(h: Harness, checkMs: () => number): { h: Harness; wallAt(virtual: number): number } {
  const looks: { v: number; wall: number }[] = [];
  const look = (): void => {
    const v = h.clock.now();
    if (looks.length === 0 || looks[looks.length - 1]!.v !== v) looks.push({ v, wall: performance.now() - checkMs() });
  };
  const cluster = new Proxy(h.cluster, {
    get(target, prop, receiver) {
      if (prop === "dataplane")
        return (name: string) => {
          look();
          return target.dataplane(name);
        };
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    h: { ...h, cluster },
    wallAt: (virtual) => (looks.find((l) => l.v >= virtual) ?? looks[looks.length - 1] ?? { wall: performance.now() - checkMs() }).wall,
  };
}

/**
 * Counts the watch events the cluster store delivers to the agents' watches: wraps the harness's
 * counting store's `watch` on this instance (the simulator holds the same object). Call before
 * the first node starts.
 */
function countWatchEvents(h: Harness): { readonly count: number } {
  const counter = { count: 0 };
  const store = h.store;
  const watch = store.watch.bind(store);
  store.watch = (prefix, options) => {
    const source = watch(prefix, options);
    return {
      async *[Symbol.asyncIterator]() {
        for await (const event of source) {
          counter.count++;
          yield event;
        }
      },
    };
  };
  return counter;
}

/** One run of one scenario at N on a fresh cluster. */
async function runOnce(ctx: CheckContext, scenario: Scenario, n: number, seed: number): Promise<RunFigures> {
  const h = createHarness({ ...ctx, seed }, `bench|${scenario.id}|${n}`);
  const env: ScenarioEnv = { h, summary: ctx.summary, nodes: n };
  const bound = scenario.boundMs(ctx.summary);
  const events = countWatchEvents(h);
  const failed = (reason: string, m?: Measured): RunFigures => ({
    seed,
    converged: false,
    reason,
    virtualMs: m?.virtualMs ?? 0,
    wallMs: m?.wallMs ?? 0,
    messages: m?.messages ?? 0,
    bytes: m?.bytes ?? 0,
    storeOps: m?.storeOps ?? 0,
    watchEvents: m?.watchEvents ?? 0,
    stateChanges: m?.stateChanges ?? 0,
    ...(m?.checkWallMs !== undefined ? { checkWallMs: m.checkWallMs } : {}),
    heapUsedBytes: process.memoryUsage().heapUsed,
  });
  try {
    const names = await scenario.setup(env);
    if (names.length > 0) {
      const checker = checkerFor(h, ctx, { departed: [], excluded: [] });
      const base = await converge(h, ctx.summary.convergenceMs, () => checker.problem()).finally(() => checker.close());
      if (!base.converged) return failed(`before t0 the cluster of ${names.length} did not converge: ${base.problem ?? "unknown"}`);
    }
    if (scenario.beforeT0) await scenario.beforeT0(env, names);
    const m = { ...startMetrics(h), startedWall: performance.now() };
    const events0 = events.count;
    const triggered = await scenario.trigger(env, names);
    if (triggered.notApplicable !== undefined) {
      const why = `not applicable: ${ctx.backend.name} ${triggered.notApplicable}`;
      return { ...failed(why), notApplicable: why };
    }
    let checkWallMs = 0;
    const checker = checkerFor(h, ctx, triggered);
    const seen = seenAt(h, () => checkWallMs);
    const conv = await converge(seen.h, bound, () => {
      const c0 = performance.now();
      try {
        return checker.problem();
      } finally {
        checkWallMs += performance.now() - c0;
      }
    }).finally(() => checker.close());
    const figures = m.stop();
    const measured: Measured = {
      watchEvents: events.count - events0,
      stateChanges: conv.changes,
      checkWallMs: Math.round(checkWallMs),
      ...(conv.converged ? { convergedWallMs: Math.round(seen.wallAt(conv.settledAt) - m.startedWall) } : {}),
      virtualMs: conv.settledAt - m.startedAt,
      wallMs: Math.round(figures.wallMs),
      messages: figures.messages ?? 0,
      bytes: figures.bytes ?? 0,
      storeOps: figures.storeOps ?? 0,
    };
    if (!conv.converged) return failed(`did not converge within ${bound} ms (${scenario.boundName}): ${conv.problem ?? "unknown"}`, measured);
    return { seed, converged: true, ...measured, ...(triggered.bgp ? { bgp: triggered.bgp() } : {}), heapUsedBytes: process.memoryUsage().heapUsed };
  } catch (err) {
    return failed(`the run failed: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  } finally {
    await h.cluster.close();
  }
}

/**
 * Runs the benchmark. Throws `ConfigError` for bad options (naming the field) or a config the
 * backend refuses (its own ConfigError). A run that does not converge, or throws, is recorded as
 * "did not converge" with the reason; the call itself still resolves.
 */
export async function runBench<C>(options: BenchOptions<C>): Promise<BenchReport> {
  const { runs, seed, scenarios } = checkOptions(options as BenchOptions);
  const backend = options.backend as Backend<unknown>;
  const config = backend.parseConfig(options.config);
  const topology = topologyFor({ backend, config, topology: options.topology });
  const summary = summaryFor({ backend, config, topology });
  const ctx: CheckContext = {
    backend,
    config,
    rawConfig: options.config,
    summary,
    nodes: Math.max(...options.nodes),
    seed,
    propertyRuns: 0,
    invalidConfigs: undefined,
    anchorConfigs: undefined,
    store: undefined,
    nodeMetadata: options.nodeMetadata,
    topology,
  };
  const started = performance.now();
  const startedAt = new Date().toISOString();
  let peakHeap = process.memoryUsage().heapUsed;
  const total = scenarios.length * options.nodes.length * runs;
  let done = 0;
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    for (const n of options.nodes) {
      const figures: RunFigures[] = [];
      for (let r = 0; r < runs; r++) {
        const f = await runOnce(ctx, scenario, n, seed + r);
        figures.push(f);
        peakHeap = Math.max(peakHeap, f.heapUsedBytes);
        options.onRun?.({ scenario: scenario.id, nodes: n, run: r + 1, done: ++done, total });
        if (f.notApplicable !== undefined) {
          done += runs - r - 1;
          break;
        }
      }
      const notApplicable = figures.find((f) => f.notApplicable !== undefined)?.notApplicable;
      if (notApplicable !== undefined) figures.length = 0;
      const ok = figures.filter((f) => f.converged);
      const bgp = ok.flatMap((f) => (f.bgp ? [f.bgp] : []));
      const bound = scenario.boundMs(summary);
      results.push({
        scenario: scenario.id,
        title: scenario.title,
        nodes: n,
        bound: { name: scenario.boundName, ms: bound },
        quietMs: quietPeriodMs(bound),
        lowerBound: scenario.lowerBound(n),
        runs: figures,
        convergedRuns: ok.length,
        ...(ok.length > 0 ? { virtualMs: stat(ok.map((f) => f.virtualMs)) } : {}),
        ...figureStats(figures),
        ...(figures.some((f) => f.checkWallMs !== undefined) ? { checkWallMs: stat(figures.map((f) => f.checkWallMs ?? 0)) } : {}),
        ...(ok.some((f) => f.convergedWallMs !== undefined) ? { convergedWallMs: stat(ok.map((f) => f.convergedWallMs ?? 0)) } : {}),
        ...(notApplicable !== undefined ? { notRun: notApplicable } : {}),
        ...(bgp.length > 0 ? { bgp: { sessions: stat(bgp.map((b) => b.sessions)), establishedMs: stat(bgp.map((b) => b.establishedMs)), endOfRibMs: stat(bgp.map((b) => b.endOfRibMs)) } } : {}),
      });
    }
  }
  return {
    tool: "cnikit-bench",
    dataplane: "sim",
    backend: backend.name,
    configLabel: options.configLabel ?? "default",
    seed,
    runsPerPoint: runs,
    timers: {
      convergenceMs: summary.convergenceMs,
      crashDetectionMs: summary.crashDetectionMs,
      quietPeriod: "a quarter of the scenario's bound, from 1 000 to 60 000 virtual ms (the conformance suite's quietPeriodMs)",
    },
    topology: { subnets: topology.subnets.map((s) => ({ name: s.name, cidr: s.cidr })), routers: topology.routers?.length ?? 0 },
    machine: { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length },
    peakHeapBytes: peakHeap,
    results,
    startedAt,
    wallMs: Math.round(performance.now() - started),
  };
}
