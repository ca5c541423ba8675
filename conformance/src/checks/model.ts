/**
 * Section A: the Kubernetes networking model, for every backend.
 */
import fc from "fast-check";
import type { SimPod } from "@cnikit/sim";
import { SOURCES, fail, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import { DATAPLANE_CHECKS, simFixtureDataplane } from "../driver.ts";
import type { DataplaneCheck } from "../driver.ts";
import { addPods, ipamProblems, livePods, summarizeProblems } from "../harness.ts";
import type { Harness } from "../harness.ts";

/** One random schedule of concurrent ADDs and DELs across nodes. */
interface Wave {
  adds: number[];
  dels: number[];
}

const waveArb = fc.record({
  adds: fc.array(fc.nat({ max: 2 }), { minLength: 1, maxLength: 6 }),
  dels: fc.array(fc.nat({ max: 1000 }), { maxLength: 3 }),
});

async function runSchedule(env: CheckEnv, waves: Wave[], run: number): Promise<string | undefined> {
  const h = env.harness(`ipam.concurrent-unique#${run}`);
  try {
    const nodes = await h.cluster.addNodes(3);
    const names = nodes.map((n) => n.name);
    let serial = 0;
    for (const [w, wave] of waves.entries()) {
      const live = h.cluster.pods();
      const victims = [...new Set(wave.dels.map((d) => (live.length === 0 ? -1 : d % live.length)))].filter((i) => i >= 0).map((i) => live[i]!);
      const ops: Promise<unknown>[] = [
        ...wave.adds.map((n) => h.sim.addPod(names[n % names.length]!, { name: `q${serial++}` })),
        ...victims.map((pod) => h.sim.removePod(pod)),
      ];
      const settled = await h.drive(Promise.allSettled(ops));
      const rejected = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (rejected) {
        const err = rejected.reason as { code?: unknown; message?: unknown };
        // Exhaustion and "try again" are legitimate answers under load; anything else is not.
        if (err?.code !== 100 && err?.code !== 11) return `wave ${w}: an operation failed: ${String(err?.message ?? err)}`;
      }
      const problems = ipamProblems(h, env.summary.podRanges);
      if (problems.length > 0) return `after wave ${w} (${wave.adds.length} concurrent ADDs, ${victims.length} DELs): ${summarizeProblems(problems.map((p) => p.text), 2)}`;
    }
    return undefined;
  } finally {
    await h.cluster.close().catch(() => undefined);
  }
}

/** A dataplane check of driver.ts, run on the simulator's view of the shared fixture. */
function onSimulator(c: DataplaneCheck): CheckDefinition {
  return { id: c.id, section: c.section, rule: c.rule, source: c.source, required: c.required, run: async (env) => c.judge(await simFixtureDataplane(env), env.summary) };
}

const dataplaneCheck = (id: string): CheckDefinition => onSimulator(DATAPLANE_CHECKS.find((c) => c.id === id)!);

/**
 * Section A checks. Every one but ipam.concurrent-unique is written once in driver.ts
 * (`DATAPLANE_CHECKS`) and runs here on the simulator's driver; the kernel run (@cnikit/lab) runs
 * the same definitions on its own driver.
 */
export const modelChecks: CheckDefinition[] = [
  dataplaneCheck("ipam.in-range"),
  dataplaneCheck("ipam.unique"),
  dataplaneCheck("ipam.reserved"),
  {
    id: "ipam.concurrent-unique",
    section: "A",
    rule: "Under concurrent ADDs and DELs on many nodes (random schedules) addresses stay unique, in range and unreserved.",
    source: SOURCES.k8sIpam,
    required: true,
    budgetMs: 240_000,
    async run(env) {
      let schedules = 0;
      const started = performance.now();
      const result = await fc.check(
        fc.asyncProperty(fc.array(waveArb, { minLength: 1, maxLength: 5 }), async (waves) => {
          const problem = await runSchedule(env, waves, schedules++);
          if (problem) throw new Error(problem);
        }),
        { seed: env.seed, numRuns: env.propertyRuns, endOnFailure: true },
      );
      const metrics = { wallMs: Math.round(performance.now() - started) };
      if (result.failed) {
        const why = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
        return fail(`schedule ${result.numRuns} of ${env.propertyRuns} (seed ${env.seed}): ${why}`, { metrics });
      }
      return pass({ metrics });
    },
  },
  ...DATAPLANE_CHECKS.filter((c) => !c.id.startsWith("ipam.")).map(onSimulator),
];

/** Builds the shared fixture: `nodes` nodes joined one after another, 3 pods each, settled. */
export async function buildFixture(env: Pick<CheckEnv, "harness" | "nodes" | "summary">): Promise<{ h: Harness; pods: SimPod[] }> {
  const h = env.harness("fixture");
  for (let i = 0; i < env.nodes; i++) await h.cluster.addNode({ name: `node-${i + 1}` });
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  const pods = await addPods(h, h.cluster.nodes().map((n) => n.name), 3);
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  return { h, pods: livePods(h) };
}
