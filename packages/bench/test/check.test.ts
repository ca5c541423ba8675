import { describe, expect, it } from "vitest";
import { reference } from "@cnikit/reference";
import { calico } from "@cnikit/calico";
import { calicoFixtures } from "@cnikit/calico/fixtures";
import { converge, createHarness, departedOf, fullReachProblems, summaryFor, topologyFor } from "@cnikit/conformance/runner";
import type { CheckContext, Harness } from "@cnikit/conformance/runner";
import { checkerFor, convergenceProblem } from "../src/run.ts";
import type { Triggered } from "../src/index.ts";

function context(nodes: number, backend = reference as CheckContext["backend"], raw: unknown = {}): CheckContext {
  const config = backend.parseConfig(raw);
  const topology = topologyFor({ backend, config });
  return {
    backend,
    config,
    rawConfig: raw,
    summary: summaryFor({ backend, config, topology }),
    nodes,
    seed: 3,
    propertyRuns: 0,
    invalidConfigs: undefined,
    anchorConfigs: undefined,
    store: undefined,
    nodeMetadata: undefined,
    topology,
  };
}

/**
 * Converges with the checker, asking the full condition (`convergenceProblem`) beside it at every
 * evaluation: both must agree on "converged or not" every time, and a failure the checker reports
 * must be one the full check finds too (its first problem is among the full check's, or the same text).
 */
async function convergeBoth(
  h: Harness,
  ctx: CheckContext,
  t: Triggered,
  boundMs = ctx.summary.convergenceMs,
): Promise<{ converged: boolean; answers: { checker?: string; full?: string }[]; stats: ReturnType<typeof checkerFor>["stats"] }> {
  const checker = checkerFor(h, ctx, t);
  const answers: { checker?: string; full?: string }[] = [];
  const result = await converge(h, boundMs, () => {
    const a = checker.problem();
    const b = convergenceProblem(h, ctx.summary, t);
    if (a !== undefined && a !== b) expect(fullReachProblems(h)).toContain(a.split("; ")[0]!);
    answers.push({ ...(a !== undefined ? { checker: a } : {}), ...(b !== undefined ? { full: b } : {}) });
    return a;
  });
  checker.close();
  return { converged: result.converged, answers, stats: checker.stats };
}

describe("ConvergenceChecker (the bench's convergence check)", () => {
  it("answers as the full check at every evaluation of a cold start, a join and a crash (reference), reusing answers on an unchanged state", async () => {
    const ctx = context(5);
    const h = createHarness(ctx, "bench|check");
    try {
      const none: Triggered = { departed: [], excluded: [] };
      const nodes = await h.cluster.addNodes(4);
      for (const n of nodes) await h.cluster.addPod(n.name, { name: `p-${n.name}` });
      const cold = await convergeBoth(h, ctx, none);
      const joined = await h.cluster.addNode();
      await h.cluster.addPod(joined.name, { name: "new" });
      const join = await convergeBoth(h, ctx, none);
      const victim = nodes[1]!.name;
      const gone = departedOf(h, victim);
      await h.cluster.removeNode(victim, { mode: "crash" });
      const crash = await convergeBoth(h, ctx, { departed: [gone], excluded: [] }, ctx.summary.crashDetectionMs);
      for (const run of [cold, join, crash]) {
        expect({ converged: run.converged, last: run.answers[run.answers.length - 1] }).toEqual({ converged: true, last: {} });
        for (const a of run.answers) expect(a.checker === undefined).toBe(a.full === undefined);
        expect(run.stats.evaluations).toBe(run.answers.length);
        // One full evaluation at most per state the cluster passed through; the rest reused.
        expect(run.stats.full).toBeGreaterThanOrEqual(1);
        expect(run.stats.reused).toBeGreaterThan(0);
      }
      // The crash is detected by the lease TTL: until then the state is unchanged and failing (stale
      // routes), and the failing answer is reused.
      expect(crash.answers.filter((a) => a.full !== undefined).length).toBeGreaterThan(1);
      expect(crash.stats.full).toBeLessThan(crash.answers.filter((a) => a.full !== undefined).length);
    } finally {
      await h.cluster.close();
    }
  }, 120_000);

  it("says 'not converged' from a probe of the nodes that moved while BGP still carries a join (calico), as the full check does", async () => {
    const raw = calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!.config;
    const ctx = context(5, calico as CheckContext["backend"], raw);
    const h = createHarness(ctx, "bench|check|calico");
    try {
      const none: Triggered = { departed: [], excluded: [] };
      const nodes = await h.cluster.addNodes(4);
      for (const n of nodes) await h.cluster.addPod(n.name, { name: `p-${n.name}` });
      expect((await convergeBoth(h, ctx, none)).converged).toBe(true);
      const joined = await h.cluster.addNode();
      await h.cluster.addPod(joined.name, { name: "new" });
      const join = await convergeBoth(h, ctx, none);
      expect(join.converged).toBe(true);
      for (const a of join.answers) expect(a.checker === undefined).toBe(a.full === undefined);
      expect(join.answers[0]!.checker).toBeDefined();
      expect(join.stats.probedFailures).toBeGreaterThan(0);
      expect(join.stats.full).toBe(1);
    } finally {
      await h.cluster.close();
    }
  }, 120_000);

  it("re-evaluates when a pod changes on an unchanged set of dataplanes (a reused pass would hide a pod without an address)", async () => {
    const ctx = context(3);
    const h = createHarness(ctx, "bench|check|pods");
    try {
      const none: Triggered = { departed: [], excluded: [] };
      const nodes = await h.cluster.addNodes(3);
      for (const n of nodes) await h.cluster.addPod(n.name, { name: `p-${n.name}` });
      const first = await convergeBoth(h, ctx, none);
      expect(first.converged).toBe(true);
      const checker = checkerFor(h, ctx, none);
      expect(checker.problem()).toBeUndefined();
      const pod = h.cluster.pods()[0]!;
      await h.cluster.removePod(pod);
      // The same cluster without that pod: the checker asks again (not reused) and agrees with the full check.
      const again = checker.problem();
      expect(again === undefined).toBe(convergenceProblem(h, ctx.summary, none) === undefined);
      expect(checker.stats.reused).toBe(0);
      checker.close();
    } finally {
      await h.cluster.close();
    }
  }, 60_000);
});
