// The false-red sweep: the conformance suite's seed-dependent checks over seeds × every built-in
// backend config × node counts. The built-in backends are correct, so every check that does not
// pass there (failed or error) is a false red — a check that would turn a good backend red for an
// unlucky seed. Prints the count and lists each one (backend/config seed nodes check: reason).
//
// Seed-dependent checks: every check of sections A, B, D, E and F (each builds simulated clusters
// whose addresses, container ids, MACs, back-off jitter, message faults and event orders come from
// the seed), whatever their ids — new checks in those sections join the sweep without a change
// here. Sections C (config tables), G and I (placeholders outside the simulator) do not depend on it.
//
// Defaults: seeds 1-1000 at 4 nodes, seeds 1-50 at 16 and 64 nodes, every built-in config.
// Flags: --seeds 1-100[,200-210]  (one range list for every node count)
//        --nodes 4[,16]           --only flannel[,calico/bgp]  (backend, or backend/config label)
//        --checks dyn.,fault.*    (ids, prefixes, section letters, as the CLI's --checks)
//        --jobs N                 (worker processes; default: every core)
// One unit (backend, config, nodes, seed) runs in one worker process at a time, the checks one
// after another in one ConformanceSession; workers are child processes (child_process.fork), so
// the sweep uses every core. Progress goes to stderr. A benchmark: never part of the test command.
//
// Run alone: pnpm exec tsx --conditions=source scripts/bench/conformance-sweep.ts --seeds 1-150 --nodes 4
// In `pnpm bench conformance-sweep` the flags come from CONFORMANCE_SWEEP_ARGS (default: the full sweep).
import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { builtinBackends } from "@cnikit/backends";
import { ConformanceSession, listChecks, selectChecks } from "@cnikit/conformance/runner";
import type { CheckStatus } from "@cnikit/conformance/runner";
import { formatFigures, type Figure } from "./figures.ts";

/** Sections whose checks run on seeded simulated clusters. */
export const SEED_DEPENDENT_SECTIONS: readonly string[] = ["A", "B", "D", "E", "F"];

/** Node counts and the seeds each runs by default. */
export const DEFAULT_PLAN: readonly { nodes: number; seeds: string }[] = [
  { nodes: 4, seeds: "1-1000" },
  { nodes: 16, seeds: "1-50" },
  { nodes: 64, seeds: "1-50" },
];

export interface SweepOptions {
  /** Node counts, each with its seeds. */
  plan: { nodes: number; seeds: number[] }[];
  /** Backend names or backend/config labels to keep (default: every built-in config). */
  only?: string[];
  /** Check ids (as `selectChecks` takes them); default: every check of SEED_DEPENDENT_SECTIONS. */
  checks: string[];
  jobs: number;
}

/** One run of the checks: a backend config at one node count and one seed. */
interface Unit {
  backend: string;
  config: string;
  nodes: number;
  seed: number;
}

interface CheckRun {
  id: string;
  required: boolean;
  status: CheckStatus;
  reason?: string;
  ms: number;
}

interface UnitResult {
  unit: Unit;
  checks: CheckRun[];
  /** Set when the unit could not run at all (a config the backend refuses, a crash of the worker). */
  error?: string;
}

export interface FalseRed {
  unit: Unit;
  check: string;
  status: CheckStatus;
  reason: string;
}

export interface SweepSummary {
  units: number;
  checkRuns: number;
  falseReds: FalseRed[];
  /** Statuses other than passed / failed / error, per check id (e.g. "not claimed" × 150). */
  others: Map<string, Map<string, number>>;
  /** Wall ms spent per check id, and how many runs. */
  wall: Map<string, { ms: number; runs: number }>;
  wallMs: number;
}

/** "1-5,9" -> [1,2,3,4,5,9]. Throws a TypeError naming the flag on anything else. */
export function parseRanges(flag: string, text: string): number[] {
  const out: number[] = [];
  for (const part of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new TypeError(`--${flag}: ${JSON.stringify(part)} is not a number or a range a-b`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new TypeError(`--${flag}: range ${part} runs backwards`);
    for (let n = lo; n <= hi; n++) out.push(n);
  }
  if (out.length === 0) throw new TypeError(`--${flag}: no value given`);
  return out;
}

/** Parses the sweep's flags (see the header). Throws a TypeError naming the bad flag. */
export function parseSweepArgs(argv: string[]): SweepOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      seeds: { type: "string" },
      nodes: { type: "string" },
      only: { type: "string" },
      checks: { type: "string" },
      jobs: { type: "string" },
    },
  });
  const nodeCounts = values.nodes === undefined ? undefined : parseRanges("nodes", values.nodes);
  const plan =
    values.seeds !== undefined
      ? (nodeCounts ?? [DEFAULT_PLAN[0]!.nodes]).map((nodes) => ({ nodes, seeds: parseRanges("seeds", values.seeds!) }))
      : DEFAULT_PLAN.filter((p) => !nodeCounts || nodeCounts.includes(p.nodes))
          .map((p) => ({ nodes: p.nodes, seeds: parseRanges("seeds", p.seeds) }))
          .concat((nodeCounts ?? []).filter((n) => !DEFAULT_PLAN.some((p) => p.nodes === n)).map((nodes) => ({ nodes, seeds: parseRanges("seeds", "1-50") })));
  for (const p of plan) if (p.nodes < 2) throw new TypeError(`--nodes: ${p.nodes} is below the suite's minimum of 2`);
  const checks =
    values.checks
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean) ?? defaultChecks();
  selectChecks(checks); // throws ConfigError naming an unknown id now, not in every worker
  const jobs = values.jobs === undefined ? availableParallelism() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new TypeError(`--jobs must be a positive integer, got ${JSON.stringify(values.jobs)}`);
  const only = values.only
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return { plan, checks, jobs, ...(only ? { only } : {}) };
}

/** Every check id of the seed-dependent sections. */
export function defaultChecks(): string[] {
  return listChecks()
    .filter((c) => SEED_DEPENDENT_SECTIONS.includes(c.section))
    .map((c) => c.id);
}

/** The built-in configs the sweep covers: `backend/label` for each, filtered by `only`. */
export function sweepConfigs(only?: string[]): { backend: string; config: string }[] {
  const all = builtinBackends.flatMap((b) => b.configs.map((c) => ({ backend: b.backend.name, config: c.label })));
  const kept = all.filter((c) => !only || only.some((o) => o === c.backend || o === `${c.backend}/${c.config}`));
  if (kept.length === 0) throw new TypeError(`--only ${only?.join(",")}: no built-in config matches; known: ${all.map((c) => `${c.backend}/${c.config}`).join(", ")}`);
  return kept;
}

/** Runs one unit in this process. Never throws: a unit that cannot run comes back with `error`. */
async function runUnit(unit: Unit, checkIds: string[]): Promise<UnitResult> {
  const entry = builtinBackends.find((b) => b.backend.name === unit.backend);
  const config = entry?.configs.find((c) => c.label === unit.config);
  if (!entry || !config) return { unit, checks: [], error: `no built-in config ${unit.backend}/${unit.config}` };
  let session: ConformanceSession;
  try {
    session = ConformanceSession.create({
      backend: entry.backend,
      config: config.config,
      configLabel: config.label,
      invalidConfigs: entry.invalidConfigs,
      anchorConfigs: entry.anchorConfigs,
      // A config that needs its own underlay (IPv6-only flannel) runs on it, as in the main job.
      ...(config.topology ? { topology: config.topology } : {}),
      nodes: unit.nodes,
      seed: unit.seed,
    });
  } catch (err) {
    return { unit, checks: [], error: `the session could not start: ${err instanceof Error ? err.message : String(err)}` };
  }
  const checks: CheckRun[] = [];
  try {
    for (const check of selectChecks(checkIds)) {
      const started = performance.now();
      const r = await session.run(check);
      checks.push({ id: r.id, required: r.required, status: r.status, ms: performance.now() - started, ...(r.reason === undefined ? {} : { reason: r.reason }) });
    }
  } finally {
    await session.close();
  }
  return { unit, checks };
}

/** Worker side: answers each unit sent over IPC with its result. */
function serveUnits(): void {
  process.on("message", (msg: { unit: Unit; checks: string[] }) => {
    void runUnit(msg.unit, msg.checks).then((result) => process.send!(result));
  });
  // The sweep stopped (or died): nothing will read the results.
  process.on("disconnect", () => process.exit(0));
  process.send!({ ready: true });
}

/** Units a worker runs before it is replaced (bounds what one process accumulates). */
const UNITS_PER_WORKER = 200;

/**
 * Runs the sweep over `jobs` worker processes. `progress` gets a line every few seconds and each
 * false red as it is found.
 */
export async function runSweep(options: SweepOptions, progress: (line: string) => void = () => {}): Promise<SweepSummary> {
  const configs = sweepConfigs(options.only);
  const queue: Unit[] = [];
  for (const p of options.plan) for (const seed of p.seeds) for (const c of configs) queue.push({ ...c, nodes: p.nodes, seed });
  const total = queue.length;
  const summary: SweepSummary = { units: 0, checkRuns: 0, falseReds: [], others: new Map(), wall: new Map(), wallMs: 0 };
  const started = performance.now();
  let lastProgress = 0;
  const record = (r: UnitResult): void => {
    summary.units++;
    if (r.error !== undefined) {
      const red: FalseRed = { unit: r.unit, check: "(unit)", status: "error", reason: r.error };
      summary.falseReds.push(red);
      progress(`false red: ${describeRed(red)}`);
    }
    for (const c of r.checks) {
      summary.checkRuns++;
      const w = summary.wall.get(c.id) ?? { ms: 0, runs: 0 };
      w.ms += c.ms;
      w.runs++;
      summary.wall.set(c.id, w);
      if (c.status === "failed" || c.status === "error") {
        const red: FalseRed = { unit: r.unit, check: c.id, status: c.status, reason: c.reason ?? "(no reason given)" };
        summary.falseReds.push(red);
        progress(`false red: ${describeRed(red)}`);
      } else if (c.status !== "passed") {
        const per = summary.others.get(c.id) ?? new Map<string, number>();
        per.set(c.status, (per.get(c.status) ?? 0) + 1);
        summary.others.set(c.id, per);
      }
    }
    const now = performance.now();
    if (now - lastProgress > 5_000 || summary.units === total) {
      lastProgress = now;
      const rate = summary.units / ((now - started) / 1000);
      const eta = rate > 0 ? (total - summary.units) / rate : 0;
      progress(`${summary.units}/${total} units (${((100 * summary.units) / total).toFixed(1)}%), ${summary.falseReds.length} false reds, ${rate.toFixed(2)} units/s, ETA ${formatDuration(eta)}`);
    }
  };

  const script = fileURLToPath(import.meta.url);
  const work = async (): Promise<void> => {
    while (queue.length > 0) {
      const child = fork(script, ["--worker"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      try {
        await runOnWorker(child, queue, options.checks, record);
      } finally {
        child.kill();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs, Math.max(1, total)) }, () => work()));
  summary.wallMs = performance.now() - started;
  return summary;
}

/** Feeds units to one worker until the queue is empty or the worker has run its share; records each result. */
function runOnWorker(child: ChildProcess, queue: Unit[], checks: string[], record: (r: UnitResult) => void): Promise<void> {
  return new Promise((resolve) => {
    let current: Unit | undefined;
    let ran = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve();
    };
    const next = (): void => {
      current = ran < UNITS_PER_WORKER ? queue.shift() : undefined;
      if (!current) return finish();
      ran++;
      child.send({ unit: current, checks });
    };
    child.on("message", (msg: { ready?: boolean } | UnitResult) => {
      if ("ready" in msg) return next();
      current = undefined;
      record(msg as UnitResult);
      next();
    });
    child.on("exit", (code, signal) => {
      if (current) record({ unit: current, checks: [], error: `the worker process exited (${signal ?? `code ${code}`}) while running this unit` });
      current = undefined;
      finish();
    });
  });
}

function describeRed(r: FalseRed): string {
  return `${r.unit.backend}/${r.unit.config} seed ${r.unit.seed} nodes ${r.unit.nodes} ${r.check} ${r.status}: ${r.reason}`;
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** The summary as text: the count, every false red, statuses other than passed, wall per check. */
export function formatSummary(options: SweepOptions, s: SweepSummary): string {
  const lines: string[] = [];
  const plan = options.plan.map((p) => `${p.nodes} nodes × ${p.seeds.length} seeds`).join(", ");
  lines.push(`conformance sweep: ${sweepConfigs(options.only).length} configs, ${plan}, ${s.units} units, ${s.checkRuns} check runs, ${formatDuration(s.wallMs / 1000)} with ${options.jobs} jobs`);
  lines.push(`false reds: ${s.falseReds.length}`);
  for (const r of s.falseReds) lines.push(`  ${describeRed(r)}`);
  if (s.others.size > 0) {
    lines.push("neither passed nor red (not counted):");
    for (const [id, per] of [...s.others].sort(([a], [b]) => (a < b ? -1 : 1))) {
      lines.push(`  ${id}: ${[...per].map(([status, n]) => `${status} × ${n}`).join(", ")}`);
    }
  }
  return lines.join("\n");
}

/** The figures `pnpm bench` prints: the false-red count and what the sweep cost. */
export function sweepFigures(s: SweepSummary): Figure[] {
  const figures: Figure[] = [
    { name: "false reds", value: s.falseReds.length, unit: "" },
    { name: "units (config × nodes × seed)", value: s.units, unit: "" },
    { name: "check runs", value: s.checkRuns, unit: "" },
    { name: "units per second", value: s.units / Math.max(0.001, s.wallMs / 1000), unit: "units/s" },
  ];
  for (const [id, w] of [...s.wall].sort(([a], [b]) => (a < b ? -1 : 1))) figures.push({ name: `${id} mean wall`, value: w.ms / w.runs, unit: "ms" });
  return figures;
}

/** `pnpm bench conformance-sweep`: flags from CONFORMANCE_SWEEP_ARGS (default: the full sweep). */
export async function benchConformanceSweep(): Promise<Figure[]> {
  const args = (process.env["CONFORMANCE_SWEEP_ARGS"] ?? "").split(/\s+/).filter(Boolean);
  const options = parseSweepArgs(args);
  const s = await runSweep(options, (line) => process.stderr.write(`[sweep] ${line}\n`));
  console.log(formatSummary(options, s));
  return sweepFigures(s);
}

if (process.argv.includes("--worker") && process.send) serveUnits();
else if (import.meta.url === `file://${process.argv[1]}`) {
  let options: SweepOptions;
  try {
    options = parseSweepArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`conformance-sweep: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  }
  const s = await runSweep(options, (line) => process.stderr.write(`[sweep] ${line}\n`));
  console.log(formatSummary(options, s));
  console.log(formatFigures(sweepFigures(s)));
  process.exitCode = s.falseReds.length > 0 ? 1 : 0;
}
