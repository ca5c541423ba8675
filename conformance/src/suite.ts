/**
 * `defineConformanceSuite(backend, options)`: the suite inside vitest. One `describe` per section,
 * one `it` per check that can run, failing with the check's reason. Checks decided before running
 * ("not claimed" by capabilities, "not run" here) get no `it` of their own; one `it` per section
 * asserts that they are reported as such and never as passed. With `strict`, a required check that
 * is "not run" or "not applicable" fails its test instead of being skipped.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { Backend } from "@cnikit/core";
import { ConformanceSession, checkBudgetMs, isRequiredNotPassed, selectChecks } from "./runner.ts";
import type { CheckDefinition } from "./check.ts";
import { SECTION_TITLES } from "./types.ts";
import type { CheckResult, ConformanceOptions, Section } from "./types.ts";

/** Options of `defineConformanceSuite`: the runner's, less the backend. */
export type SuiteOptions<C = unknown> = Omit<ConformanceOptions<C>, "backend" | "onResult">;

/** Renders a non-passing result as an error message a person can act on. */
function failure(result: CheckResult): Error {
  const subs = (result.subResults ?? []).filter((s) => s.status !== "passed").map((s) => `\n  - ${s.label}: ${s.reason ?? s.status}`);
  return new Error(`[${result.id}] ${result.status}: ${result.reason ?? "(no reason)"}${subs.join("")}\nrule: ${result.rule}\nsource: ${result.source}`);
}

/**
 * Registers the conformance suite for `backend` in the current vitest file. Call it at the top level
 * of a test file. Throws (at collection time) the backend's ConfigError for an invalid
 * `options.config`, and ConfigError for unknown check ids.
 */
export function defineConformanceSuite<C>(backend: Backend<C>, options: SuiteOptions<C>): void {
  const checks = selectChecks(options.checks);
  const session = ConformanceSession.create({ ...options, backend });
  const results = new Map<string, Promise<CheckResult>>();
  const resultOf = (check: CheckDefinition): Promise<CheckResult> => {
    let r = results.get(check.id);
    if (!r) {
      r = session.run(check);
      results.set(check.id, r);
    }
    return r;
  };

  describe(`conformance: ${backend.name}`, () => {
    afterAll(() => session.close());
    const sections = [...new Set(checks.map((c) => c.section))] as Section[];
    for (const section of sections) {
      describe(`${section}. ${SECTION_TITLES[section]}`, () => {
        const inSection = checks.filter((c) => c.section === section);
        const gated = inSection.filter((c) => session.gateOf(c) !== undefined);
        for (const check of inSection.filter((c) => !gated.includes(c))) {
          // The runner's own budget for the check, plus room for the runner to report that it ran out.
          const budget = checkBudgetMs(check, session.ctx.nodes) + 30_000;
          it(
            `${check.id}: ${check.rule}`,
            async (context) => {
              const result = await resultOf(check);
              if (result.status === "failed" || result.status === "error") throw failure(result);
              // Strict: a required check that could not prove its rule is a failure, not a skip.
              if (isRequiredNotPassed(result, options.strict ?? false)) throw failure(result);
              // Decided while running (e.g. a feature the backend lacks): shown as skipped, never passed.
              if (result.status !== "passed") context.skip(`${result.status}: ${result.reason ?? ""}`);
              expect(result.status).toBe("passed");
            },
            budget,
          );
        }
        if (gated.length > 0) {
          it(`reports ${gated.map((c) => c.id).join(", ")} as not claimed / not run, never passed`, async () => {
            for (const check of gated) {
              const result = await resultOf(check);
              expect(result.status, `${check.id}: ${result.reason ?? ""}`).toMatch(/^not (claimed|run)$/);
              expect(result.reason ?? "").not.toBe("");
              if (isRequiredNotPassed(result, options.strict ?? false)) throw failure(result);
            }
          });
        }
      });
    }
  });
}
