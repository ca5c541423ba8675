/**
 * runLinuxBench: route convergence on the real kernel. Each run builds a fresh lab (@cnikit/lab:
 * nodes as network namespaces, etcd, the underlay the config needs) of N ≤ 8 nodes without
 * daemons, then brings the nodes' routing up and down as the scenario says — the backend's
 * cnikitd per node (pods through the cnikit-cni executable), or BIRD in a Calico-like full mesh
 * (target `bird-mesh`) — and times convergence from the kernel FIB of every node, in wall time:
 *
 *  - the bound: the scenario's (from the config's `summarize`) plus `LINUX_START_ALLOWANCE_MS`;
 *  - t0: `Date.now()` as the trigger is applied (daemon spawns for a cold start or a join, the Node
 *    object deleted and SIGTERM for a leave, SIGKILL for a crash);
 *  - per-node convergence: the node's FIB holds exactly the expected pod-network routes with the
 *    expected next hops (linux-fib.ts `fibProblems`), judged by reading every live node's FIB on
 *    each route event and at least every 250 ms;
 *  - the time of a converged state is the last pod-range route event on a live node since t0, as
 *    `ip -ts monitor route` timestamped it when the netlink notification reached it (events, not
 *    polling); network convergence is reported only when no further route event comes for
 *    `LINUX_QUIET_MS` and the FIB still holds; past the scenario's bound, "did not converge".
 *
 * Scenarios here: cold-start, join, leave, crash. The others are reported "not run on linux" with
 * the reason; so is a scenario whose bound exceeds `boundCapMs` (flannel's 24 h lease for a crash),
 * and every scenario of a config the kernel cannot build ("kernel lacks ipip: ...", the lab's
 * KernelLacksError). Messages, bytes and store operations are not counted on the kernel (0).
 */
import { cpus } from "node:os";
import { ConfigError, kubeNodeKey, Prefix } from "@cnikit/core";
import type { Backend, NetworkSummary } from "@cnikit/core";
import { checkTools, labEtcd, requireKernel, resolveBackendMode, startLab } from "@cnikit/lab";
import type { Lab, LabBackendModule } from "@cnikit/lab";
import { requireBinary } from "bgp-utils-free/testing";
import { BirdMeshTarget, birdMeshPool, requireBird } from "./linux-bird.ts";
import { FibMonitor, fibProblems, readFib } from "./linux-fib.ts";
import { DEFAULT_RUNS, DEFAULT_SEED, figureStats, stat } from "./run.ts";
import type { BenchProgress, BenchReport, RunFigures, ScenarioResult } from "./run.ts";
import { SCENARIO_IDS, scenarioById } from "./scenarios.ts";
import type { ScenarioId } from "./scenarios.ts";

const COMPONENT = "bench";
/** The largest lab a kernel run builds (this machine kind: 2 CPUs). */
export const LINUX_MAX_NODES = 8;
/** Scenarios measured on the kernel. */
export const LINUX_SCENARIOS = ["cold-start", "join", "leave", "crash"] as const satisfies readonly ScenarioId[];
/** Wall ms without a pod-range route event that proves a converged FIB settled (> BIRD's 2 s kernel scan). */
export const LINUX_QUIET_MS = 3_000;
/**
 * Wall ms a kernel run adds to the scenario's bound (a promise about the backend's timers): the
 * daemons' process start, the renderer and netlink on a loaded 2-CPU machine.
 */
export const LINUX_START_ALLOWANCE_MS = 60_000;
/** Default cap on a scenario's bound on the kernel: a longer bound is reported "not run on linux". */
export const LINUX_BOUND_CAP_MS = 300_000;

/** Why the other scenarios do not run on the kernel. */
const NOT_ON_LINUX: Partial<Record<ScenarioId, string>> = {
  silent: "needs a node cut from peers and store without a reset; the lab has no such fault yet",
  flap: "needs the simulator's isolate/rejoin of a node (peers and store); the lab has no such fault yet",
  "partition-heal": "needs a partition of the underlay and the store; the lab has no such fault yet",
  "pod-churn": "100 ADD+DEL per node are real namespaces and plugin runs here (minutes per node); run it in the simulator",
  "graceful-restart": "compares every other node's desired dataplane at each virtual timer step; wall time has no such steps",
  "bgp-session": "reads the agents' BGP sessions (NodeAgent.bgpSessions) in the simulator's process; the lab's agents run in cnikitd processes",
};

/** How a kernel run brings the nodes' routing up and down: the backend's cnikitd, or BIRD. */
export interface KernelTarget {
  /** Starts routing on `nodes` (for an agent: its cnikitd and one pod); `members` are the cluster's nodes after. */
  start(nodes: readonly string[], members: readonly string[]): Promise<void>;
  /** `node` leaves cleanly; `members` are the nodes that stay. */
  leave(node: string, members: readonly string[]): Promise<void>;
  /** `node`'s routing process dies with SIGKILL (no goodbye). */
  crash(node: string): Promise<void>;
  /** Stops what it started (the lab's own teardown follows). */
  close(): Promise<void>;
}

/** The backend's own agents: one cnikitd per node, one pod each through the cnikit-cni executable. */
class AgentTarget implements KernelTarget {
  constructor(private readonly lab: Lab) {}

  async start(nodes: readonly string[]): Promise<void> {
    await Promise.all(
      nodes.map(async (n) => {
        await this.lab.startDaemon(n);
        await this.lab.addPod(n);
      }),
    );
  }

  /**
   * The Node object is deleted (the cluster learns it left), then cnikitd stops with SIGTERM.
   * A cnikitd whose Node object is gone stops its agent with `release` (as the simulator's leave
   * does), so the node's lease or blocks go and survivors drop its routes at once.
   */
  async leave(node: string): Promise<void> {
    await labEtcd(this.lab, { del: kubeNodeKey(node) });
    await this.lab.killDaemon(node, "SIGTERM");
  }

  async crash(node: string): Promise<void> {
    await this.lab.killDaemon(node, "SIGKILL");
  }

  async close(): Promise<void> {}
}

export interface LinuxBenchOptions {
  /** A built-in backend's name or a Backend object (one that is not built in needs `backendModule`). */
  backend: string | Backend<unknown>;
  /** The module every cnikitd loads a backend from that is not built in (see @cnikit/lab). */
  backendModule?: LabBackendModule;
  /** The backend's own config; default the fixture of `mode` (default: the first fixture). */
  config?: unknown;
  /** A fixture's label (`vxlan`, `bgp`, ...), or the label of `config`. */
  mode?: string;
  /** A name for the config in tables; default the mode. */
  configLabel?: string;
  /** `agents` (default): the backend's cnikitd. `bird-mesh`: BIRD in Calico's full mesh, for a calico config without encapsulation. */
  target?: "agents" | "bird-mesh";
  /** Cluster sizes, each from 2 to `LINUX_MAX_NODES`. */
  nodes: number[];
  /** Default: `LINUX_SCENARIOS`; other ids are reported "not run on linux". */
  scenarios?: ScenarioId[];
  /** Runs per scenario and N (default 3), each on a fresh lab. */
  runs?: number;
  /** A bound longer than this is not waited for (default `LINUX_BOUND_CAP_MS`). */
  boundCapMs?: number;
  /** Progress lines of the labs. */
  log?: (line: string) => void;
  onRun?: (progress: BenchProgress) => void;
  /** Called with the target after each run closed it (tests check BIRD's PIDs are gone). */
  onTargetClosed?: (target: KernelTarget) => void;
}

/**
 * Throws when a kernel run cannot start here: not root, a lab tool missing (naming its Debian
 * package), or BIRD missing for `bird-mesh`. Checks only; creates nothing.
 */
export function linuxPreflight(target: "agents" | "bird-mesh" = "agents"): void {
  checkTools((bin) => {
    try {
      requireBinary(bin, "");
      return true;
    } catch {
      return false;
    }
  });
  if (target === "bird-mesh") requireBird();
}

function checkLinuxOptions(options: LinuxBenchOptions): { runs: number; scenarios: ScenarioId[]; cap: number } {
  if (!Array.isArray(options.nodes) || options.nodes.length === 0)
    throw new ConfigError({ component: COMPONENT, field: "nodes", rule: "must be a non-empty list of cluster sizes", value: options.nodes });
  options.nodes.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 2 || n > LINUX_MAX_NODES)
      throw new ConfigError({
        component: COMPONENT,
        field: `nodes[${i}]`,
        rule: `must be an integer from 2 to ${LINUX_MAX_NODES} on the kernel (a lab of network namespaces on this machine)`,
        value: n,
      });
  });
  const runs = options.runs ?? DEFAULT_RUNS;
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new ConfigError({ component: COMPONENT, field: "runs", rule: "must be an integer from 1 to 100", value: runs });
  const scenarios = options.scenarios ?? [...LINUX_SCENARIOS];
  if (!Array.isArray(scenarios) || scenarios.length === 0)
    throw new ConfigError({ component: COMPONENT, field: "scenarios", rule: `must be a non-empty list of ${SCENARIO_IDS.join(", ")}`, value: scenarios });
  scenarios.forEach((id, i) => {
    if (!(SCENARIO_IDS as readonly string[]).includes(id)) throw new ConfigError({ component: COMPONENT, field: `scenarios[${i}]`, rule: `must be one of ${SCENARIO_IDS.join(", ")}`, value: id });
  });
  const cap = options.boundCapMs ?? LINUX_BOUND_CAP_MS;
  if (!Number.isInteger(cap) || cap < 1_000) throw new ConfigError({ component: COMPONENT, field: "boundCapMs", rule: "must be an integer of at least 1000 ms", value: cap });
  const target = options.target ?? "agents";
  if (target !== "agents" && target !== "bird-mesh") throw new ConfigError({ component: COMPONENT, field: "target", rule: 'must be "agents" or "bird-mesh"', value: target });
  return { runs, scenarios, cap };
}

/** What a wait for convergence found. */
interface Settled {
  converged: boolean;
  /** Wall ms (epoch) of the converged state: the last route event since t0 (t0 when none). */
  at: number;
  /** Pod-range route events on live nodes since t0. */
  events: number;
  problem?: string;
}

/**
 * Waits until the live nodes' FIBs hold exactly the expected routes and no route event follows
 * for `LINUX_QUIET_MS`, or the bound passes.
 */
async function settle(init: { lab: Lab; monitor: FibMonitor; live: readonly string[]; podRanges: readonly Prefix[]; t0: number; boundMs: number }): Promise<Settled> {
  const { lab, monitor, t0 } = init;
  const live = new Set(init.live);
  const nodes = lab.nodes.filter((n) => live.has(n.name));
  const deadline = t0 + init.boundMs;
  const count = (): number => monitor.events.filter((e) => e.at >= t0 && live.has(e.node)).length;
  let problem = "no FIB read yet";
  for (;;) {
    const views = await Promise.all(nodes.map((n) => readFib(n.name, n.ns)));
    const problems = fibProblems(views, init.podRanges);
    if (problems.length === 0) {
      const at = Math.max(t0, monitor.lastEvent(live, t0)?.at ?? t0);
      // Quiet period: no pod-range route event on a live node for LINUX_QUIET_MS after `at`.
      let last = at;
      for (;;) {
        const remaining = last + LINUX_QUIET_MS - Date.now();
        if (remaining <= 0) break;
        await monitor.next(remaining);
        last = Math.max(t0, monitor.lastEvent(live, t0)?.at ?? t0);
      }
      if (last === at) {
        const again = fibProblems(await Promise.all(nodes.map((n) => readFib(n.name, n.ns))), init.podRanges);
        if (again.length === 0) return { converged: at <= deadline, at, events: count(), ...(at > deadline ? { problem: "the last route change came after the bound" } : {}) };
        problem = summarize(again);
      }
      continue;
    }
    problem = summarize(problems);
    if (Date.now() > deadline) return { converged: false, at: Date.now(), events: count(), problem };
    await monitor.next(250);
  }
}

function summarize(problems: readonly string[]): string {
  return `${problems.slice(0, 3).join("; ")}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ""}`;
}

let labCounter = 0;
function labName(): string {
  return `bl${process.pid % 100_000}x${++labCounter}`.slice(0, 20);
}

/** One run of a scenario on a fresh lab of `n` nodes. */
async function runOnce(init: {
  options: LinuxBenchOptions;
  resolved: ReturnType<typeof resolveBackendMode>;
  scenario: ScenarioId;
  n: number;
  seed: number;
  boundMs: number;
  podRanges: Prefix[];
  pool: Prefix | undefined;
}): Promise<RunFigures> {
  const { options, resolved, scenario, n, boundMs, podRanges } = init;
  const base = { seed: init.seed, virtualMs: 0, messages: 0, bytes: 0, storeOps: 0, watchEvents: 0 };
  const failed = (reason: string, m: { wallMs?: number; kernelMs?: number; stateChanges?: number } = {}): RunFigures => ({
    ...base,
    converged: false,
    reason,
    wallMs: m.wallMs ?? 0,
    kernelMs: m.kernelMs ?? 0,
    stateChanges: m.stateChanges ?? 0,
    heapUsedBytes: process.memoryUsage().heapUsed,
  });
  const lab = await startLab({
    name: labName(),
    backend: options.backend,
    ...(options.backendModule ? { backendModule: options.backendModule } : {}),
    mode: resolved.mode,
    backendConfig: resolved.config,
    topology: resolved.topology,
    nodes: n,
    daemons: false,
    ...(options.log ? { log: options.log } : {}),
  });
  let monitor: FibMonitor | undefined;
  const target: KernelTarget = init.pool ? new BirdMeshTarget(lab, init.pool) : new AgentTarget(lab);
  try {
    monitor = await FibMonitor.start(lab.nodes, podRanges);
    const names = lab.nodes.map((x) => x.name);
    const last = names[names.length - 1]!;
    const others = names.slice(0, -1);
    if (scenario !== "cold-start") {
      const first = scenario === "join" ? others : names;
      const t = Date.now();
      await target.start(first, first);
      const s = await settle({ lab, monitor, live: first, podRanges, t0: t, boundMs });
      if (!s.converged) return failed(`before t0 the cluster of ${first.length} did not converge: ${s.problem ?? "unknown"}`);
    }
    const t0 = Date.now();
    if (scenario === "cold-start") await target.start(names, names);
    else if (scenario === "join") await target.start([last], names);
    else if (scenario === "leave") await target.leave(last, others);
    else await target.crash(last);
    const live = scenario === "leave" || scenario === "crash" ? others : names;
    const s = await settle({ lab, monitor, live, podRanges, t0, boundMs });
    const measured = { wallMs: Date.now() - t0, kernelMs: s.at - t0, stateChanges: s.events };
    if (!s.converged) return failed(`did not converge within ${boundMs} ms: ${s.problem ?? "unknown"}`, measured);
    return { ...base, converged: true, ...measured, heapUsedBytes: process.memoryUsage().heapUsed };
  } catch (err) {
    return failed(`the run failed: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  } finally {
    await monitor?.stop();
    await target.close();
    options.onTargetClosed?.(target);
    await lab.down();
  }
}

/**
 * Runs the kernel benchmark (see the module comment) and returns a report of the same shape as
 * `runBench`'s, `dataplane: "linux"`. Throws `ConfigError` for bad options (naming the field) or a
 * config the backend refuses, and the lab's errors when it cannot run here (not root, a tool
 * missing). A config the kernel cannot build yields "not run on linux: kernel lacks ..." results.
 */
export async function runLinuxBench(options: LinuxBenchOptions): Promise<BenchReport> {
  const { runs, scenarios, cap } = checkLinuxOptions(options);
  const target = options.target ?? "agents";
  const resolved = resolveBackendMode({
    backend: options.backend,
    ...(options.backendModule ? { backendModule: options.backendModule } : {}),
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
    ...(options.config !== undefined ? { backendConfig: options.config } : {}),
  });
  const summary: NetworkSummary = resolved.summary;
  const pool = target === "bird-mesh" ? birdMeshPool(resolved.backend, summary) : undefined;
  linuxPreflight(target);
  const podRanges = summary.podRanges.map((r) => Prefix.parse(r));
  let kernelLacks: string | undefined;
  try {
    await requireKernel(summary.encapsulations, `${resolved.backend} mode ${resolved.mode}`);
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code !== 104) throw err;
    kernelLacks = (err as Error).message;
  }
  const started = performance.now();
  const startedAt = new Date().toISOString();
  let peakHeap = process.memoryUsage().heapUsed;
  const results: ScenarioResult[] = [];
  const total = scenarios.length * options.nodes.length * runs;
  let done = 0;
  for (const id of scenarios) {
    const scenario = scenarioById(id);
    const boundMs = scenario.boundMs(summary) + LINUX_START_ALLOWANCE_MS;
    for (const n of options.nodes) {
      const notRun =
        kernelLacks ??
        NOT_ON_LINUX[id] ??
        (boundMs > cap
          ? `its bound (${scenario.boundName} ${scenario.boundMs(summary)} ms + ${LINUX_START_ALLOWANCE_MS} ms for process start) is longer than the kernel run waits (${cap} ms)`
          : undefined);
      const figures: RunFigures[] = [];
      if (notRun === undefined) {
        for (let r = 0; r < runs; r++) {
          const f = await runOnce({ options, resolved, scenario: id, n, seed: DEFAULT_SEED + r, boundMs, podRanges, pool });
          figures.push(f);
          peakHeap = Math.max(peakHeap, f.heapUsedBytes);
          options.onRun?.({ scenario: id, nodes: n, run: r + 1, done: ++done, total });
        }
      } else done += runs;
      const ok = figures.filter((f) => f.converged);
      results.push({
        scenario: id,
        title: scenario.title,
        nodes: n,
        bound: { name: scenario.boundName, ms: boundMs },
        quietMs: LINUX_QUIET_MS,
        lowerBound: scenario.lowerBound(n),
        runs: figures,
        convergedRuns: ok.length,
        ...(ok.length > 0 ? { kernelMs: stat(ok.map((f) => f.kernelMs ?? 0)) } : {}),
        ...(notRun !== undefined ? { notRun: `not run on linux: ${notRun}` } : {}),
        ...figureStats(figures),
      });
    }
  }
  return {
    tool: "cnikit-bench",
    dataplane: "linux",
    backend: target === "bird-mesh" ? "bird-mesh" : resolved.backend,
    configLabel: options.configLabel ?? resolved.mode,
    seed: DEFAULT_SEED,
    runsPerPoint: runs,
    timers: {
      convergenceMs: summary.convergenceMs,
      crashDetectionMs: summary.crashDetectionMs,
      quietPeriod: `${LINUX_QUIET_MS} wall ms without a pod-range route event on a live node (kernel runs)`,
    },
    topology: { subnets: resolved.topology.subnets.map((s) => ({ name: s.name, cidr: s.cidr })), routers: resolved.topology.routers?.length ?? 0 },
    machine: { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length },
    peakHeapBytes: peakHeap,
    results,
    startedAt,
    wallMs: Math.round(performance.now() - started),
  };
}
