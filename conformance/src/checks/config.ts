/**
 * Section C: config. The anchor's own format is accepted unchanged; every invalid config in the
 * backend's table is refused with code 7 naming the field, before anything is allocated.
 */
import { Prefix } from "@cnikit/core";
import { SOURCES, fail, pass } from "../check.ts";
import type { CheckDefinition } from "../check.ts";
import { describeError, errorCode, summarizeProblems, summaryFor, thrown } from "../harness.ts";
import type { SubResult } from "../types.ts";

function stable(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** Why an error is not the expected refusal, or undefined when it is. */
function refusalProblem(err: unknown, field: string): string | undefined {
  if (!err) return "was accepted";
  const code = errorCode(err);
  const got = (err as { field?: unknown }).field;
  if (code !== 7) return `was refused with ${describeError(err)}; expected a ConfigError with code 7`;
  if (got !== field) return `was refused with code 7 but names field ${JSON.stringify(got)}; expected ${JSON.stringify(field)} (${describeError(err)})`;
  return undefined;
}

export const configChecks: CheckDefinition[] = [
  {
    id: "config.accepts-anchor-format",
    section: "C",
    rule: "The anchor's own config format is accepted unchanged, deterministically, without mutating the input, with ranges that parse.",
    source: SOURCES.config,
    required: true,
    async run(env) {
      const problems: string[] = [];
      const cases = [{ label: "the run's config", config: env.rawConfig }, ...(env.anchorConfigs ?? [])];
      for (const c of cases) {
        const before = stable(c.config);
        let first: unknown;
        try {
          first = env.backend.parseConfig(c.config);
        } catch (err) {
          problems.push(`${c.label} was refused: ${describeError(err)}`);
          continue;
        }
        if (stable(c.config) !== before) problems.push(`parsing ${c.label} changed the input object`);
        const again = env.backend.parseConfig(JSON.parse(JSON.stringify(c.config)) as unknown);
        if (stable(again) !== stable(first)) problems.push(`${c.label} parses differently after a JSON round trip (or parseConfig is not deterministic)`);
        const summary = summaryFor({ backend: env.backend, config: first, topology: env.topology });
        if (summary.podRanges.length === 0) problems.push(`${c.label}: summarize() names no pod range`);
        for (const r of summary.podRanges) {
          const err = await thrown(() => Prefix.parse(r));
          if (err) problems.push(`${c.label}: summarize() pod range ${JSON.stringify(r)} is not a CIDR`);
        }
        if (!(summary.convergenceMs > 0) || !(summary.crashDetectionMs > 0)) {
          problems.push(`${c.label}: summarize() must give positive convergenceMs and crashDetectionMs (got ${summary.convergenceMs}, ${summary.crashDetectionMs})`);
        }
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "config.invalid-refused",
    section: "C",
    rule: "Every invalid config in the backend's table is refused with CNI code 7 naming the field, before anything is allocated.",
    source: SOURCES.config,
    required: true,
    gate: (ctx) =>
      ctx.invalidConfigs && ctx.invalidConfigs.length > 0
        ? undefined
        : {
            status: "not run",
            reason:
              "the backend provides no table of invalid configs: export `conformance = { invalidConfigs: [{ label, config, field }] }` from the backend's module (the CLI loads it), or pass the option invalidConfigs / --invalid-configs <file>",
          },
    async run(env) {
      const cases = env.invalidConfigs ?? [];
      const subResults: SubResult[] = [];
      // A running cluster whose store must not move while invalid configs are parsed.
      const h = env.harness("config.invalid-refused");
      await h.cluster.addNode({ name: "c-1" });
      await h.cluster.addNode({ name: "c-2" });
      await h.cluster.settle({ limitMs: env.summary.convergenceMs });
      for (const [i, c] of cases.entries()) {
        const revisionBefore = await h.store.revision();
        let parsed: unknown;
        let parseError: unknown;
        try {
          parsed = env.backend.parseConfig(c.config);
        } catch (err) {
          parseError = err ?? new Error("undefined was thrown");
        }
        if (parseError) {
          const problem = refusalProblem(parseError, c.field);
          const revisionAfter = await h.store.revision();
          if (problem) subResults.push({ label: c.label, status: "failed", reason: `${c.label}: ${problem}` });
          else if (revisionAfter !== revisionBefore)
            subResults.push({ label: c.label, status: "failed", reason: `${c.label}: refused, but the store revision moved from ${revisionBefore} to ${revisionAfter}` });
          else subResults.push({ label: c.label, status: "passed" });
          continue;
        }
        // Accepted by parseConfig: it may still be refused when a node starts with it (e.g. a
        // mode the topology cannot carry) — but then before anything is written to the store.
        const fresh = env.harness(`config.invalid-refused#${i}`, { config: parsed });
        const before = await fresh.store.revision();
        const err = await thrown(() => fresh.cluster.addNode({ name: "c-invalid" }));
        const after = await fresh.store.revision();
        const problem = refusalProblem(err, c.field);
        if (problem)
          subResults.push({
            label: c.label,
            status: "failed",
            reason: `${c.label}: ${problem === "was accepted" ? "was accepted by parseConfig and by a starting node" : `was accepted by parseConfig, and a starting node ${problem.replace(/^was /, "")}`}`,
          });
        else if (after !== before)
          subResults.push({ label: c.label, status: "failed", reason: `${c.label}: refused at node start, but only after writing to the store (revision ${before} -> ${after})` });
        else subResults.push({ label: c.label, status: "passed" });
      }
      const failed = subResults.filter((s) => s.status !== "passed");
      if (failed.length > 0) return fail(`${failed.length} of ${cases.length} invalid configs not refused properly: ${summarizeProblems(failed.map((f) => f.reason ?? f.label))}`, { subResults });
      return pass({ subResults });
    },
  },
];
