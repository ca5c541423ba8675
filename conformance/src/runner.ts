/**
 * The conformance runner: runs the checks against one backend and config and returns the report.
 * It does not import vitest (the CLI and scripts use it directly; `defineConformanceSuite` wraps
 * it for vitest).
 */
import { ConfigError } from "@cnikit/core";
import type { Backend, Encapsulation, NetworkSummary } from "@cnikit/core";
import { SimCluster } from "@cnikit/sim";
import type { CheckDefinition, CheckEnv, Fixture } from "./check.ts";
import { ALL_CHECKS, buildFixture } from "./checks/index.ts";
import { familiesOf } from "./checks/claims.ts";
import { createHarness, describeError, summaryFor } from "./harness.ts";
import type { Harness, HarnessOptions } from "./harness.ts";
import type { BoundName, CheckContext, CheckOutcome, CheckResult, ClaimsCoverage, ConformanceOptions, ConformanceReport } from "./types.ts";
import { EXTERNAL_STORE_GATES, IoPacedClock, emptyStore } from "./external-store.ts";

/** Default wall-clock budget of one check. */
export const DEFAULT_BUDGET_MS = 60_000;
export const DEFAULT_NODES = 4;
export const DEFAULT_SEED = 1;
export const DEFAULT_PROPERTY_RUNS = 50;

/** Wall time the shared cluster may take to build, per node: the first check that uses it pays for it. */
export const FIXTURE_BUDGET_PER_NODE_MS = 1_000;

/**
 * A check's wall-time budget in a run with `nodes` nodes: its own budget (default 60 s) plus time to
 * build the shared cluster, which grows with the cluster (a 100-node calico cluster takes tens of
 * seconds on a loaded 2-core machine) and is paid by whichever check first asks for it.
 */
export function checkBudgetMs(check: { budgetMs?: number }, nodes: number): number {
  return (check.budgetMs ?? DEFAULT_BUDGET_MS) + nodes * FIXTURE_BUDGET_PER_NODE_MS;
}

/**
 * The declared bound each dynamics and fault check's measured virtual time is held to, for checks
 * that do not name it in their outcome (`CheckOutcome.bound`, which new checks should set).
 */
export const CHECK_BOUNDS: Readonly<Record<string, BoundName>> = Object.freeze({
  "dyn.join": "convergenceMs",
  "dyn.join-concurrent": "convergenceMs",
  "dyn.leave": "convergenceMs",
  "dyn.crash": "crashDetectionMs",
  "dyn.restart": "convergenceMs",
  "dyn.order-independent": "convergenceMs",
  "dyn.node-replaced": "crashDetectionMs+convergenceMs",
  "dyn.join-during-partition": "crashDetectionMs+convergenceMs",
  "dyn.crash-window-paths": "crashDetectionMs",
  "fault.message-loss": "crashDetectionMs+convergenceMs",
  "fault.partition-heal": "crashDetectionMs+convergenceMs",
  "fault.store-unavailable": "crashDetectionMs+convergenceMs",
  "fault.store-cutoff": "crashDetectionMs+convergenceMs",
  "fault.lost-watch-events": "crashDetectionMs+convergenceMs",
  "fault.compaction": "convergenceMs",
});

/** The value of a declared bound for a summary. */
export function boundMs(summary: NetworkSummary, name: BoundName): number {
  return name === "crashDetectionMs+convergenceMs" ? summary.crashDetectionMs + summary.convergenceMs : summary[name];
}

/** What the backend claims next to what `summary` (one config) exercises. */
export function claimsCoverage(backend: Backend<unknown>, summary: NetworkSummary): ClaimsCoverage {
  const caps = backend.capabilities;
  return {
    families: { claimed: [...(caps.families ?? [])].sort(), exercised: familiesOf(summary) },
    encapsulations: { claimed: [...(caps.encapsulations ?? [])], exercised: [...new Set<Encapsulation>(summary.encapsulations ?? [])] },
  };
}

/** Every check definition (id, section, rule, source, required), in report order. */
export function listChecks(): readonly CheckDefinition[] {
  return ALL_CHECKS;
}

/**
 * Picks the checks to run. Throws `ConfigError` (field `checks`) naming unknown ids. An id may also
 * be a section letter (`A`) or a prefix ending in `.` or `*` (`dyn.`, `cni.*`).
 */
export function selectChecks(ids: string[] | undefined): CheckDefinition[] {
  if (!ids || ids.length === 0) return [...ALL_CHECKS];
  const picked = new Set<CheckDefinition>();
  for (const raw of ids) {
    const id = raw.trim();
    const matches = ALL_CHECKS.filter((c) => (id.endsWith("*") || id.endsWith(".") ? c.id.startsWith(id.replace(/\*$/, "")) : /^[A-I]$/.test(id) ? c.section === id : c.id === id));
    if (matches.length === 0) {
      throw new ConfigError({ component: "conformance", field: "checks", rule: `unknown check id; known ids: ${ALL_CHECKS.map((c) => c.id).join(", ")}`, value: id });
    }
    for (const m of matches) picked.add(m);
  }
  return ALL_CHECKS.filter((c) => picked.has(c));
}

/**
 * One run against one backend and config: owns the shared fixture and every cluster the checks
 * create, and closes them. Use `runConformance` unless you need the checks one at a time (the
 * vitest suite does).
 */
export class ConformanceSession {
  readonly ctx: CheckContext;
  private fixturePromise: Promise<Fixture> | undefined;
  private fixtureHarness: Harness | undefined;
  private closed = false;

  private constructor(ctx: CheckContext) {
    this.ctx = ctx;
  }

  /**
   * Parses the config with the backend (throws its `ConfigError` when the run's own config is
   * invalid) and prepares a session. Throws `ConfigError` for nodes < 2 or a non-integer seed.
   */
  static create<C>(options: ConformanceOptions<C>): ConformanceSession {
    const nodes = options.nodes ?? DEFAULT_NODES;
    if (!Number.isInteger(nodes) || nodes < 2 || nodes > 1000) {
      throw new ConfigError({ component: "conformance", field: "nodes", rule: "must be an integer from 2 to 1000", value: nodes });
    }
    const seed = options.seed ?? DEFAULT_SEED;
    if (!Number.isSafeInteger(seed)) throw new ConfigError({ component: "conformance", field: "seed", rule: "must be an integer", value: seed });
    const propertyRuns = options.propertyRuns ?? DEFAULT_PROPERTY_RUNS;
    if (!Number.isInteger(propertyRuns) || propertyRuns < 1) {
      throw new ConfigError({ component: "conformance", field: "propertyRuns", rule: "must be an integer >= 1", value: propertyRuns });
    }
    const backend = options.backend as Backend<unknown>;
    const config = backend.parseConfig(options.config);
    if (options.topology !== undefined) checkTopology(backend, config, options.topology);
    const summary = summaryFor({ backend, config, topology: options.topology });
    return new ConformanceSession({
      backend,
      config,
      rawConfig: options.config,
      summary,
      nodes,
      seed,
      propertyRuns,
      invalidConfigs: options.invalidConfigs,
      anchorConfigs: options.anchorConfigs,
      store: options.store,
      nodeMetadata: options.nodeMetadata,
      topology: options.topology,
    });
  }

  /**
   * The check's static gate ("not claimed" / "not run" before running), including the checks an
   * external store cannot run (`EXTERNAL_STORE_GATES`), or undefined when it runs.
   */
  gateOf(check: CheckDefinition): { status: "not claimed" | "not run"; reason: string } | undefined {
    const gated = check.gate?.(this.ctx);
    if (gated) return gated;
    const reason = this.ctx.store ? EXTERNAL_STORE_GATES[check.id] : undefined;
    return reason ? { status: "not run", reason: `${reason} (store ${this.ctx.store!.label})` } : undefined;
  }

  /** Runs one check: gate, budget, clean-up. Never throws: a throwing check is status "error". */
  async run(check: CheckDefinition): Promise<CheckResult> {
    const head = { id: check.id, section: check.section, rule: check.rule, source: check.source, required: check.required };
    const gated = this.gateOf(check);
    if (gated) return { ...head, status: gated.status, reason: gated.reason };
    const harnesses: Harness[] = [];
    const env: CheckEnv = {
      ...this.ctx,
      harness: (salt = check.id, options: HarnessOptions = {}) => {
        const h = createHarness(this.ctx, salt, options);
        harnesses.push(h);
        return h;
      },
      fixture: () => this.fixture(),
    };
    const budget = checkBudgetMs(check, this.ctx.nodes);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let outcome: CheckOutcome;
    try {
      outcome = await Promise.race([
        check.run(env),
        new Promise<CheckOutcome>((resolve) => {
          timer = setTimeout(() => resolve({ status: "error", reason: `did not finish within its budget of ${Math.round(budget / 1000)} s of wall time` }), budget);
        }),
      ]);
    } catch (err) {
      outcome = { status: "error", reason: `threw ${describeError(err)}` };
    } finally {
      if (timer) clearTimeout(timer);
      await Promise.all(harnesses.map((h) => closeHarness(h)));
    }
    const result: CheckResult = { ...head, status: outcome.status };
    if (outcome.reason !== undefined) result.reason = outcome.reason;
    // Only wall time is measured for every check; the other figures are absent unless the check measured them.
    result.metrics = outcome.metrics ?? { wallMs: Math.round(performance.now() - started) };
    const bound = outcome.bound ?? CHECK_BOUNDS[check.id];
    if (bound !== undefined) result.bound = { name: bound, ms: boundMs(this.ctx.summary, bound) };
    if (outcome.subResults) result.subResults = outcome.subResults;
    return result;
  }

  private fixture(): Promise<Fixture> {
    if (this.closed) return Promise.reject(new Error("the conformance session is closed"));
    this.fixturePromise ??= (async () => {
      const harness = (salt = "fixture", options: HarnessOptions = {}) => {
        const h = createHarness(this.ctx, salt, options);
        this.fixtureHarness = h;
        return h;
      };
      try {
        return await buildFixture({ harness, nodes: this.ctx.nodes, summary: this.ctx.summary });
      } catch (err) {
        throw new Error(`could not build the shared ${this.ctx.nodes}-node cluster: ${describeError(err)}`, { cause: err });
      }
    })();
    return this.fixturePromise;
  }

  /** Closes the shared fixture. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.fixtureHarness) await closeHarness(this.fixtureHarness);
    this.fixtureHarness = undefined;
  }
}

/**
 * Refuses a topology the simulator cannot build, before any check runs: throws the simulator's
 * ConfigError, whose field names the place (`topology.subnets[1].mtu`). `config` is the parsed config.
 */
export function checkTopology(backend: Backend<unknown>, config: unknown, topology: unknown): void {
  const probe = SimCluster.create<unknown>({ backend, config, topology: topology as never, seed: 1 });
  void probe.close().catch(() => undefined);
}

async function closeHarness(h: Harness): Promise<void> {
  await h.drive(h.sim.close()).catch(() => undefined);
  await h.memory?.close().catch(() => undefined);
  if (h.external) {
    await emptyStore(h.external);
    await h.external.close().catch(() => undefined);
  }
  if (h.clock instanceof IoPacedClock) h.clock.stop();
}

/**
 * Runs the selected checks (default: all) against one backend and config, one after another, and
 * returns the report. Throws the backend's `ConfigError` when `options.config` itself is invalid,
 * and `ConfigError` for bad options (unknown check ids, nodes, seed). Check failures never throw:
 * they are results.
 */
export async function runConformance<C>(options: ConformanceOptions<C>): Promise<ConformanceReport> {
  const checks = selectChecks(options.checks);
  const session = ConformanceSession.create(options);
  const startedAt = new Date();
  const t0 = performance.now();
  const results: CheckResult[] = [];
  try {
    for (const check of checks) {
      const result = await session.run(check);
      results.push(result);
      options.onResult?.(result);
    }
  } finally {
    await session.close();
  }
  return {
    backend: options.backend.name,
    config: options.configLabel ?? "config",
    nodes: session.ctx.nodes,
    seed: session.ctx.seed,
    ...(options.store ? { store: options.store.label } : {}),
    started: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    bounds: { convergenceMs: session.ctx.summary.convergenceMs, crashDetectionMs: session.ctx.summary.crashDetectionMs },
    claims: claimsCoverage(session.ctx.backend, session.ctx.summary),
    ...(options.strict ? { strict: true } : {}),
    results,
  };
}

/** Whether a result is a required check that did not pass: failed or threw, or (strict) was not run / not applicable. */
export function isRequiredNotPassed(result: CheckResult, strict = false): boolean {
  if (!result.required) return false;
  if (result.status === "failed" || result.status === "error") return true;
  return strict && (result.status === "not run" || result.status === "not applicable");
}

/**
 * Whether a report has a required check that failed or threw (the CLI then exits 1); in a strict
 * run (`report.strict`, set by the option `strict`) also a required check that was not run or not
 * applicable. One parameter, so it can be passed to `reports.filter`.
 */
export function hasRequiredFailure(report: ConformanceReport): boolean {
  return report.results.some((r) => isRequiredNotPassed(r, report.strict ?? false));
}
