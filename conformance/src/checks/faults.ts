/**
 * Section E: faults. Message loss, duplication, reordering and delay between peers; a partition
 * and its heal; the datastore unavailable for a while. Operations fail with code 11 or wait; no
 * state is corrupted; after the fault heals the cluster converges and every section-A invariant
 * holds.
 */
import type { SimPod } from "@cnikit/sim";
import { SOURCES, fail, notApplicable, notRun, pass } from "../check.ts";
import type { CheckDefinition } from "../check.ts";
import { addPods, converge, describeError, errorCode, ipamProblems, startMetrics, summarizeProblems, thrown } from "../harness.ts";
import { healthProblem, populate } from "./dynamics.ts";

/** Resolves with what `op` threw (undefined when it succeeded); never rejects. */
function outcome(op: Promise<unknown>): Promise<unknown> {
  return op.then(
    () => undefined,
    (err: unknown) => err ?? new Error("undefined was thrown"),
  );
}

/** Why a peer-network fault proves nothing for a backend that never talks to its peers. */
const NO_PEER_MESSAGES = "the run exchanged no peer messages (a store-only backend): faults of the peer network could not touch it";

/** The bound for recovery after a fault: a crash bound (sessions and leases re-form) plus convergence. */
function recoveryBound(summary: { convergenceMs: number; crashDetectionMs: number }): number {
  return summary.crashDetectionMs + summary.convergenceMs;
}

export const faultChecks: CheckDefinition[] = [
  {
    id: "fault.message-loss",
    section: "E",
    rule: "With 20% loss, duplication, reordering and delay between peers the cluster forms; after the faults clear it converges and section A holds.",
    source: SOURCES.faults,
    required: true,
    async run(env) {
      const h = env.harness("fault.message-loss");
      h.cluster.network.setFaults({ lossRate: 0.2, duplicateRate: 0.1, reorderRate: 0.2, delayMs: { min: 1, max: 40 } });
      const m = startMetrics(h);
      await populate(h, env, Math.max(3, Math.min(5, env.nodes)), 2, "m");
      await h.cluster.settle({ limitMs: recoveryBound(env.summary) });
      const during = ipamProblems(h, env.summary.podRanges);
      if (during.length > 0) return fail(`while messages were lost: ${summarizeProblems(during.map((p) => p.text))}`, { metrics: m.stop() });
      h.cluster.network.clearFaults();
      const conv = await converge(h, recoveryBound(env.summary), () => healthProblem(h, env));
      const metrics = { ...m.stop(), virtualMs: conv.virtualMs, wallMs: conv.wallMs };
      if (!conv.converged) return fail(`${recoveryBound(env.summary)} ms after the message faults cleared: ${conv.problem}`, { metrics });
      if (h.cluster.network.stats().messages === 0) return notApplicable(NO_PEER_MESSAGES, { metrics });
      return pass({ metrics });
    },
  },
  {
    id: "fault.partition-heal",
    section: "E",
    rule: "During a partition between two halves of the nodes ADDs succeed or fail with code 11; after it heals the cluster converges and section A holds.",
    source: SOURCES.faults,
    required: true,
    async run(env) {
      const h = env.harness("fault.partition-heal");
      const names = await populate(h, env, 4, 2, "p");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the partition: ${baseline}`);
      const m = startMetrics(h);
      h.cluster.network.partition([names.slice(0, 2), names.slice(2)]);
      const problems: string[] = [];
      // ADDs during the partition may complete, fail with code 11, or wait: started now, judged after the heal.
      const adds = [names[0]!, names[2]!].map((node) => ({ node, op: outcome(h.sim.addPod(node, { name: `during-partition-${node}` })) }));
      await h.cluster.settle({ limitMs: env.summary.crashDetectionMs });
      const during = ipamProblems(h, env.summary.podRanges);
      if (during.length > 0) problems.push(`during the partition: ${summarizeProblems(during.map((p) => p.text))}`);
      h.cluster.network.heal();
      for (const { node, op } of adds) {
        const err = await h.drive(op);
        if (err && errorCode(err) !== 11) problems.push(`ADD on node ${node} during the partition threw ${describeError(err)}; expected success, waiting, or code 11`);
      }
      const conv = await converge(h, recoveryBound(env.summary), () => healthProblem(h, env));
      const metrics = { ...m.stop(), virtualMs: conv.virtualMs, wallMs: conv.wallMs };
      if (!conv.converged) problems.push(`${recoveryBound(env.summary)} ms after the partition healed: ${conv.problem}`);
      if (problems.length > 0) return fail(summarizeProblems(problems), { metrics });
      if (h.cluster.network.stats().messages === 0) return notApplicable(NO_PEER_MESSAGES, { metrics });
      return pass({ metrics });
    },
  },
  {
    id: "fault.store-unavailable",
    section: "E",
    rule: "While the datastore is unavailable ADD and DEL succeed or fail with code 11; afterwards the cluster converges, section A holds and a new node can join.",
    source: SOURCES.faults,
    required: true,
    async run(env) {
      const h = env.harness("fault.store-unavailable");
      // The outage is injected with the in-memory store's switch (an external store is gated off before this).
      const memory = h.memory;
      if (!memory) return notRun("needs the in-memory store's availability switch");
      const names = await populate(h, env, 3, 2, "s");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the outage: ${baseline}`);
      const m = startMetrics(h);
      memory.setAvailable(false);
      const problems: string[] = [];
      // Operations during the outage may complete, fail with code 11, or wait until the store is back.
      const ops: { what: string; op: Promise<unknown>; retry: () => Promise<unknown> }[] = [];
      for (const node of names) {
        const name = `during-outage-${node}`;
        ops.push({ what: `ADD on node ${node}`, op: outcome(h.sim.addPod(node, { name })), retry: () => h.cluster.addPod(node, { name }) });
        const s = h.cluster.node(node).agent.status();
        if (typeof s?.ready !== "boolean") problems.push(`STATUS on node ${node} while the store was down returned ${JSON.stringify(s)}`);
      }
      const victim: SimPod | undefined = h.cluster.pods().find((p) => p.node === names[0]);
      if (victim) ops.push({ what: `DEL of ${victim.key}`, op: outcome(h.sim.removePod(victim)), retry: () => h.cluster.removePod(victim) });
      // Longer than any lease: the store must come back without the cluster falling apart.
      await h.cluster.settle({ limitMs: env.summary.crashDetectionMs });
      memory.setAvailable(true);
      for (const { what, op, retry } of ops) {
        const err = await h.drive(op);
        if (!err) continue;
        if (errorCode(err) !== 11) {
          problems.push(`${what} while the store was down threw ${describeError(err)}; expected success, waiting, or code 11`);
          continue;
        }
        const again = await thrown(retry);
        if (again) problems.push(`${what} failed with code 11 during the outage and still fails after it: ${describeError(again)}`);
      }
      const conv = await converge(h, recoveryBound(env.summary), () => healthProblem(h, env));
      const metrics = { ...m.stop(), virtualMs: conv.virtualMs, wallMs: conv.wallMs };
      if (!conv.converged) problems.push(`${recoveryBound(env.summary)} ms after the store came back: ${conv.problem}`);
      else {
        const joined = await thrown(async () => {
          const n = await h.cluster.addNode({ name: "s-after" });
          await addPods(h, [n.name], 2, "after-outage");
        });
        if (joined) problems.push(`a node joining after the outage failed: ${describeError(joined)}`);
        else {
          const healed = await converge(h, env.summary.convergenceMs, () => healthProblem(h, env));
          if (!healed.converged) problems.push(`after the outage, a new node s-after: ${healed.problem}`);
        }
      }
      return problems.length > 0 ? fail(summarizeProblems(problems), { metrics }) : pass({ metrics });
    },
  },
];
