/**
 * Section A: the Kubernetes networking model, for every backend.
 */
import type { SimPod } from "@cnikit/sim";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import { DATAPLANE_CHECKS, concurrentIpamOnSimulator, simFixtureDataplane } from "../driver.ts";
import type { DataplaneCheck } from "../driver.ts";
import { addPods, livePods } from "../harness.ts";
import type { Harness } from "../harness.ts";

/** A dataplane check of driver.ts, run on the simulator's view of the shared fixture. */
function onSimulator(c: DataplaneCheck): CheckDefinition {
  return { id: c.id, section: c.section, rule: c.rule, source: c.source, required: c.required, run: async (env) => c.judge(await simFixtureDataplane(env), env.summary) };
}

const dataplaneCheck = (id: string): CheckDefinition => onSimulator(DATAPLANE_CHECKS.find((c) => c.id === id)!);

/**
 * Section A checks, each written once in driver.ts (`DATAPLANE_CHECKS` over a ModelDataplane,
 * `CONCURRENT_IPAM_CHECK` over a ChurnDriver) and run here on the simulator's drivers; the kernel
 * run (@cnikit/lab) runs the same definitions on its own drivers.
 */
export const modelChecks: CheckDefinition[] = [
  dataplaneCheck("ipam.in-range"),
  dataplaneCheck("ipam.unique"),
  dataplaneCheck("ipam.reserved"),
  concurrentIpamOnSimulator(),
  ...DATAPLANE_CHECKS.filter((c) => !c.id.startsWith("ipam.")).map(onSimulator),
];

/** Builds the shared fixture: `nodes` nodes joined one after another, 3 pods each, settled. */
export async function buildFixture(env: Pick<CheckEnv, "harness" | "nodes" | "summary">): Promise<{ h: Harness; pods: SimPod[] }> {
  const h = env.harness("fixture");
  for (let i = 0; i < env.nodes; i++) await h.cluster.addNode({ name: `node-${i + 1}` });
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  await addPods(
    h,
    h.cluster.nodes().map((n) => n.name),
    3,
  );
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  return { h, pods: livePods(h) };
}
