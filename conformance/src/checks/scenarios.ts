/**
 * Scenarios real bugs hide in that the other checks never build (issue 12): a node replaced by a
 * fresh incarnation of itself, a join during a partition, the paths taken during a crash window,
 * underlays whose MTU is not 1500, one node cut off from the store, watches that lose events, and a
 * compaction between a listing and its watch.
 */
import { ENCAP_OVERHEAD } from "@cnikit/core";
import type { Encapsulation } from "@cnikit/core";
import { withUnderlayMtu } from "@cnikit/sim";
import type { Hop, SimPod } from "@cnikit/sim";
import { SOURCES, fail, notApplicable, notRun, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import { addPods, converge, createHarness, describeError, describePod, errorCode, ipamProblems, livePods, startMetrics, summarizeProblems, thrown, topologyFor } from "../harness.ts";
import type { Harness } from "../harness.ts";
import { departedOf, staleProblems } from "../stale.ts";
import type { Departed } from "../stale.ts";
import type { CheckMetrics } from "../types.ts";
import { clamp, healthProblem, populate, withConvergence } from "./dynamics.ts";

/** The bound for recovery after a fault: a crash bound (sessions and leases re-form) plus convergence. */
function recoveryBound(summary: { convergenceMs: number; crashDetectionMs: number }): number {
  return summary.crashDetectionMs + summary.convergenceMs;
}

/** Resolves with what `op` threw (undefined when it succeeded); never rejects. */
function outcome(op: Promise<unknown>): Promise<unknown> {
  return op.then(
    () => undefined,
    (err: unknown) => err ?? new Error("undefined was thrown"),
  );
}

/** A gate: "not run" on an external store (its leases expire on wall time; it has no compact switch). */
function virtualStoreOnly(why: string): NonNullable<CheckDefinition["gate"]> {
  return (ctx) => (ctx.store ? { status: "not run", reason: `needs the in-memory, virtual-clock store: ${why}` } : undefined);
}

/** Health (section A) plus what is still stale of each departed node; undefined when all is well. */
function healthAndStale(h: Harness, env: CheckEnv, gone: Departed[]): string | undefined {
  const problems = gone.flatMap((g) => staleProblems(h, g));
  const health = healthProblem(h, env);
  if (health) problems.push(health);
  return problems.length > 0 ? summarizeProblems(problems) : undefined;
}

/** Peer messages exchanged so far by the cluster. */
function messagesSoFar(h: Harness): number {
  return h.cluster.network.stats().messages;
}

/** The cluster nodes a packet's path went through (routers and external hosts are not nodes). */
function nodesOnPath(path: Hop[], nodeNames: Set<string>): string[] {
  const out: string[] = [];
  for (const hop of path) if (nodeNames.has(hop.node) && out[out.length - 1] !== hop.node) out.push(hop.node);
  return out;
}

/** The largest encapsulation overhead the config uses (0 when it encapsulates nothing). */
function maxOverhead(encapsulations: readonly Encapsulation[]): { bytes: number; kind: string } {
  let best = { bytes: 0, kind: "none" };
  for (const e of encapsulations) {
    const bytes = (ENCAP_OVERHEAD as Record<string, number | undefined>)[e];
    if (bytes !== undefined && bytes > best.bytes) best = { bytes, kind: e };
  }
  return best;
}

/** One underlay MTU: the problems found, or the agent's refusal of a config MTU the underlay cannot carry. */
async function underlayMtuCase(env: CheckEnv, mtu: number): Promise<{ problems: string[]; refused?: string }> {
  const base = topologyFor(env);
  // The underlay is the subject here, not the store: an in-memory store whatever the run uses.
  const h = createHarness({ ...env, topology: withUnderlayMtu(base, mtu), store: undefined }, `mtu.underlay-non-1500#${mtu}`);
  try {
    const problems: string[] = [];
    let names: string[] = [];
    const err = await thrown(async () => {
      names = await populate(h, env, 3, 2, `u${mtu}`);
    });
    if (err) {
      // Refusing a configured MTU the underlay cannot carry, with code 7 naming it, fragments nothing.
      if (errorCode(err) === 7 && /mtu/i.test(`${String((err as { field?: unknown }).field ?? "")} ${err instanceof Error ? err.message : ""}`)) {
        return { problems: [], refused: `on a ${mtu}-byte underlay the agent refused its config: ${describeError(err)}` };
      }
      return { problems: [`on a ${mtu}-byte underlay a node failed to join: ${describeError(err)}`] };
    }
    const health = healthProblem(h, env);
    if (health) return { problems: [`on a ${mtu}-byte underlay: ${health}`] };
    const overhead = maxOverhead(env.summary.encapsulations);
    const pods = livePods(h);
    const mtuOf = new Map<string, number>();
    for (const name of names) {
      const info = h.cluster.node(name).info.underlay[0];
      if (info?.mtu !== mtu) problems.push(`node ${name}'s NodeInfo says underlay MTU ${String(info?.mtu)}, the topology ${mtu}`);
      for (const p of h.cluster.dataplane(name).pods) {
        mtuOf.set(p.key, p.mtu);
        if (p.mtu + overhead.bytes > mtu) {
          const pod = pods.find((x) => x.key === p.key);
          problems.push(
            `on a ${mtu}-byte underlay, ${pod ? describePod(pod) : `pod ${p.key} on node ${name}`} has MTU ${p.mtu}: with ${overhead.kind} (${overhead.bytes} bytes) that is ${p.mtu + overhead.bytes} > ${mtu}`,
          );
        }
      }
    }
    // A full-size packet (the sender's own MTU, DF set) crosses to every pod on another node.
    for (const from of pods) {
      const size = mtuOf.get(from.key);
      if (size === undefined) continue;
      for (const to of pods) {
        if (to.node === from.node) continue;
        const r = h.cluster.send({ kind: "pod", key: from.key }, { kind: "pod", key: to.key }, { size });
        if (!r.delivered) problems.push(`on a ${mtu}-byte underlay, a ${size}-byte packet (DF) from ${describePod(from)} to ${describePod(to)} is dropped: ${r.reason ?? "no reason given"}`);
      }
    }
    return { problems };
  } finally {
    await h.cluster.close();
  }
}

export const scenarioChecks: CheckDefinition[] = [
  {
    id: "dyn.node-replaced",
    section: "D",
    rule: "A node replaced by a fresh incarnation (same name and address, empty node-local state) after a crash or a clean leave leaves no state of the old one on any survivor (VTEP MAC, old subnet, old pods), and everything reaches everything, within the crash bound plus convergence (after a crash) or the convergence bound (after a clean leave).",
    source: `${SOURCES.dynamics}; a node re-created with the same name (Kubernetes node object reused)`,
    required: true,
    gate: virtualStoreOnly("the old incarnation dies without a goodbye, and what it left expires with its leases, on wall time on an external store"),
    async run(env) {
      const h = env.harness("dyn.node-replaced");
      const names = await populate(h, env, clamp(env.nodes, 3, 6), 2, "rp");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the replacement: ${baseline}`);
      const m = startMetrics(h);
      // First a clean leave, then a crash (the old incarnation dies without a goodbye), each followed
      // at once by a new incarnation of the same identity with empty node-local state.
      const rounds = [
        { victim: names[2]!, mode: "clean" as const, bound: env.summary.convergenceMs },
        { victim: names[1]!, mode: "crash" as const, bound: recoveryBound(env.summary) },
      ];
      let metrics: CheckMetrics | undefined;
      for (const { victim, mode, bound } of rounds) {
        const gone = departedOf(h, victim);
        const what = `node ${victim} (${gone.address}) was replaced by a fresh incarnation after ${mode === "crash" ? "a crash" : "a clean leave"}`;
        const err = await thrown(() => h.drive(h.sim.replaceNode(victim, { mode })));
        if (err) return fail(`${what}: the new incarnation failed to start: ${describeError(err)}`, { metrics: m.stop() });
        const added = await thrown(() => addPods(h, [victim, names[0]!], 2, `after-${mode}-replace`));
        if (added) return fail(`${what}: ADD failed: ${describeError(added)}`, { metrics: m.stop() });
        const from = h.clock.now();
        const conv = await converge(h, bound, () => healthAndStale(h, env, [gone]));
        // The figure reported is the last round's (the crash), held to the crash bound plus convergence.
        metrics = withConvergence(m, conv, from);
        if (!conv.converged) return fail(`${bound} ms after ${what}: ${conv.problem}`, { metrics, bound: mode === "crash" ? "crashDetectionMs+convergenceMs" : "convergenceMs" });
      }
      return pass(metrics ? { metrics, bound: "crashDetectionMs+convergenceMs" } : {});
    },
  },
  {
    id: "dyn.join-during-partition",
    section: "D",
    rule: "A node that joins while the peer network is partitioned (and gets pods) is reached by every pod and node within the recovery bound after the heal, and section A holds.",
    source: `${SOURCES.dynamics}; ${SOURCES.faults}`,
    required: true,
    async run(env) {
      const h = env.harness("dyn.join-during-partition");
      const names = await populate(h, env, 4, 2, "jp");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the partition: ${baseline}`);
      const m = startMetrics(h);
      const joiner = "jp-new";
      h.cluster.network.partition([
        [names[0]!, names[1]!, joiner],
        [names[2]!, names[3]!],
      ]);
      // The join may complete, wait, or fail with code 11 while the peers are cut in two.
      const join = outcome(h.sim.addNode({ name: joiner }));
      await h.cluster.settle({ limitMs: env.summary.convergenceMs });
      const problems: string[] = [];
      const during = ipamProblems(h, env.summary.podRanges);
      if (during.length > 0) problems.push(`during the partition: ${summarizeProblems(during.map((p) => p.text))}`);
      h.cluster.network.heal();
      const joinErr = await h.drive(join);
      if (joinErr) {
        if (errorCode(joinErr) !== 11) return fail(`node ${joiner} joining during the partition threw ${describeError(joinErr)}; expected success, waiting, or code 11`, { metrics: m.stop() });
        const again = await thrown(() => h.cluster.addNode({ name: joiner }));
        if (again) return fail(`node ${joiner} failed to join with code 11 during the partition and again after the heal: ${describeError(again)}`, { metrics: m.stop() });
      }
      const added = await thrown(() => addPods(h, [joiner, names[3]!], 2, "jp-after"));
      if (added) problems.push(`ADD after the heal failed: ${describeError(added)}`);
      const bound = recoveryBound(env.summary);
      const from = h.clock.now();
      const conv = await converge(h, bound, () => healthProblem(h, env));
      const metrics = withConvergence(m, conv, from);
      if (!conv.converged) problems.push(`${bound} ms after the partition healed (node ${joiner} joined during it): ${conv.problem}`);
      if (problems.length > 0) return fail(summarizeProblems(problems), { metrics });
      if (messagesSoFar(h) === 0) {
        return notApplicable("the backend exchanged no peer messages (store-only): a partition of the peer network could not affect the join", { metrics });
      }
      return pass({ metrics });
    },
  },
  {
    id: "dyn.crash-window-paths",
    section: "D",
    rule: "Between a node's crash and its detection, traffic among the surviving nodes is still delivered and takes a direct path: never through a third node, never through the dead one.",
    source: `${SOURCES.k8sModel}; ${SOURCES.dynamics}`,
    required: true,
    gate: virtualStoreOnly("the window lasts until the crashed node's leases expire, on wall time on an external store"),
    async run(env) {
      const h = env.harness("dyn.crash-window-paths");
      const names = await populate(h, env, clamp(env.nodes, 4, 6), 2, "cw");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the crash: ${baseline}`);
      const victim = names[1]!;
      const nodeNames = new Set(names);
      const m = startMetrics(h);
      await h.cluster.removeNode(victim, { mode: "crash" });
      const window = env.summary.crashDetectionMs;
      const samples = 4;
      const problems: string[] = [];
      for (let i = 0; i < samples && problems.length === 0; i++) {
        const at = Math.round((window * i) / samples);
        const t = h.clock.now() - m.startedAt;
        if (at > t) await h.cluster.settle({ limitMs: at - t });
        const pods = livePods(h);
        const survivors = (p: SimPod) => p.node !== victim;
        const when = `${h.clock.now() - m.startedAt} ms after node ${victim} crashed (crash bound ${window} ms)`;
        for (const from of pods.filter(survivors)) {
          for (const to of pods.filter(survivors)) {
            if (from.node === to.node) continue;
            const r = h.cluster.send({ kind: "pod", key: from.key }, { kind: "pod", key: to.key });
            if (!r.delivered) {
              problems.push(`${when}: ${describePod(from)} -> ${describePod(to)} is dropped: ${r.reason ?? "no reason given"}`);
              continue;
            }
            const allowed = new Set([from.node, to.node]);
            const there = nodesOnPath(r.path, nodeNames).filter((n) => !allowed.has(n));
            const back = nodesOnPath(r.replyPath ?? [], nodeNames).filter((n) => !allowed.has(n));
            if (there.length > 0) problems.push(`${when}: ${describePod(from)} -> ${describePod(to)} goes through node ${there.join(", ")}${there.includes(victim) ? " (the crashed node)" : ""}`);
            else if (back.length > 0)
              problems.push(`${when}: the reply ${describePod(to)} -> ${describePod(from)} goes through node ${back.join(", ")}${back.includes(victim) ? " (the crashed node)" : ""}`);
          }
        }
      }
      const metrics = m.stop();
      return problems.length > 0 ? fail(summarizeProblems(problems), { metrics }) : pass({ metrics });
    },
  },
  {
    id: "mtu.underlay-non-1500",
    section: "A",
    rule: "On underlays of MTU 9000 and 1400 the pod MTU leaves room for the encapsulation (pod MTU + overhead <= underlay MTU) and a full-size packet at the pod MTU (DF) crosses nodes.",
    source: `${SOURCES.mtu}; flannel and Calico derive the pod MTU from the underlay interface`,
    required: true,
    budgetMs: 120_000,
    async run(env) {
      const problems: string[] = [];
      const refused: string[] = [];
      for (const mtu of [9000, 1400]) {
        const r = await underlayMtuCase(env, mtu);
        problems.push(...r.problems);
        if (r.refused) refused.push(r.refused);
      }
      if (problems.length > 0) return fail(summarizeProblems(problems));
      if (refused.length === 2) return notApplicable(`the backend ran on neither underlay: ${refused.join("; ")}`);
      return refused.length > 0 ? pass({ reason: `passed where it ran; ${refused.join("; ")}` }) : pass();
    },
  },
  {
    id: "fault.store-cutoff",
    section: "E",
    rule: "A node cut off from the store (the others keep it) for longer than its lease: its ADD and DEL succeed, wait, or fail with code 11; afterwards the cluster converges, nothing is double-allocated and section A holds.",
    source: SOURCES.faults,
    required: true,
    gate: virtualStoreOnly("the cut-off node's leases must lapse during the cut, on wall time on an external store"),
    async run(env) {
      const h = env.harness("fault.store-cutoff");
      const names = await populate(h, env, clamp(env.nodes, 3, 4), 2, "sc");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the cut-off: ${baseline}`);
      const victim = names[1]!;
      const m = startMetrics(h);
      h.sim.setStoreCutOff(victim, true);
      const problems: string[] = [];
      const ops: { what: string; op: Promise<unknown>; retry: () => Promise<unknown> }[] = [];
      ops.push({ what: `ADD on node ${victim}`, op: outcome(h.sim.addPod(victim, { name: "during-cutoff" })), retry: () => h.cluster.addPod(victim, { name: "during-cutoff" }) });
      const pod = h.cluster.pods().find((p) => p.node === victim);
      if (pod) ops.push({ what: `DEL of ${describePod(pod)}`, op: outcome(h.sim.removePod(pod)), retry: () => h.cluster.removePod(pod) });
      const s = h.cluster.node(victim).agent.status();
      if (typeof s?.ready !== "boolean") problems.push(`STATUS on node ${victim} while cut off returned ${JSON.stringify(s)}`);
      // Longer than any lease: the node's leases lapse while the others carry on.
      await h.cluster.settle({ limitMs: env.summary.crashDetectionMs });
      h.sim.setStoreCutOff(victim, false);
      for (const { what, op, retry } of ops) {
        const err = await h.drive(op);
        if (!err) continue;
        if (errorCode(err) !== 11) {
          problems.push(`${what} while cut off from the store threw ${describeError(err)}; expected success, waiting, or code 11`);
          continue;
        }
        const again = await thrown(() => h.drive(retry()));
        if (again) problems.push(`${what} failed with code 11 while cut off and still fails after: ${describeError(again)}`);
      }
      const added = await thrown(() => addPods(h, [victim, names[0]!], 1, "after-cutoff"));
      if (added) problems.push(`ADD after the cut-off failed: ${describeError(added)}`);
      const bound = recoveryBound(env.summary);
      const from = h.clock.now();
      const conv = await converge(h, bound, () => healthProblem(h, env));
      const metrics = withConvergence(m, conv, from);
      if (!conv.converged) problems.push(`${bound} ms after node ${victim} was back on the store: ${conv.problem}`);
      return problems.length > 0 ? fail(summarizeProblems(problems), { metrics }) : pass({ metrics });
    },
  },
  {
    id: "fault.lost-watch-events",
    section: "E",
    rule: "A node whose store watches silently lose events for a while (peers join and leave meanwhile) converges after the loss stops, within the recovery bound (a backend must re-list periodically or on a gap).",
    source: `${SOURCES.faults}; Kubernetes informers' periodic re-list`,
    required: true,
    async run(env) {
      const h = env.harness("fault.lost-watch-events");
      const names = await populate(h, env, clamp(env.nodes, 4, 5), 2, "lw");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the loss: ${baseline}`);
      const victim = names[0]!;
      const leaver = names[2]!;
      const gone = departedOf(h, leaver);
      const m = startMetrics(h);
      h.sim.setLosingWatchEvents(victim, true);
      const joined = await h.cluster.addNode({ name: "lw-new" });
      await addPods(h, [joined.name, names[3]!], 2, "lw-during");
      await h.cluster.removeNode(leaver, { mode: "clean" });
      await h.cluster.settle({ limitMs: env.summary.convergenceMs });
      h.sim.setLosingWatchEvents(victim, false);
      const lost = h.sim.storeFaults(victim).lostEvents;
      const bound = recoveryBound(env.summary);
      const from = h.clock.now();
      const conv = await converge(h, bound, () => healthAndStale(h, env, [gone]));
      const metrics = withConvergence(m, conv, from);
      if (!conv.converged) {
        return fail(`${bound} ms after node ${victim}'s watches stopped losing events (${lost} lost while node ${joined.name} joined and node ${leaver} left): ${conv.problem}`, { metrics });
      }
      if (lost === 0) return notApplicable(`node ${victim}'s agent had no store watch open that could lose an event`, { metrics });
      return pass({ metrics });
    },
  },
  {
    id: "fault.compaction",
    section: "E",
    rule: "When the store compacts past the revision an agent listed at before its watch starts (code 105), the agent re-lists and converges within the convergence bound, missing nothing that happened meanwhile.",
    source: `${SOURCES.faults}; etcd v3 watch compaction (ErrCompacted)`,
    required: true,
    gate: virtualStoreOnly("the compaction is made with the in-memory store's compact()"),
    async run(env) {
      const h = env.harness("fault.compaction");
      const memory = h.memory;
      const names = await populate(h, env, 3, 2, "cq");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the compaction: ${baseline}`);
      const joiner = "cq-new";
      const stallMs = Math.max(1_000, Math.floor(env.summary.convergenceMs / 2));
      const compact = memory ? (r: number) => memory.compact(r) : undefined;
      if (!compact) return notRun("needs the in-memory store's compact()");
      h.sim.armCompaction(joiner, { compact, delayMs: stallMs, clock: h.clock });
      const m = startMetrics(h);
      await h.cluster.addNode({ name: joiner });
      // While the joiner's first watches stall, the cluster changes: a node joins, another leaves, pods come.
      const leaver = names[2]!;
      const gone = departedOf(h, leaver);
      await h.cluster.addNode({ name: "cq-other" });
      await addPods(h, ["cq-other", names[0]!, joiner], 1, "cq-during");
      await h.cluster.removeNode(leaver, { mode: "clean" });
      const t0 = h.clock.now();
      while (h.sim.storeFaults(joiner).compactedWatches === 0 && h.clock.now() - t0 < stallMs * 2 && h.clock.nextAt() !== undefined) {
        await h.cluster.settle({ limitMs: Math.max(10, Math.floor(stallMs / 10)) });
      }
      const compacted = h.sim.storeFaults(joiner).compactedWatches;
      const bound = env.summary.convergenceMs;
      const from = h.clock.now();
      const conv = await converge(h, bound, () => healthAndStale(h, env, [gone]));
      const metrics = withConvergence(m, conv, from);
      if (!conv.converged) {
        return fail(`${bound} ms after ${compacted} watch(es) of node ${joiner} hit a compaction past its listing (node cq-other joined and node ${leaver} left meanwhile): ${conv.problem}`, {
          metrics,
        });
      }
      if (compacted === 0) return notApplicable(`node ${joiner}'s agent opened no store watch from a listing revision`, { metrics });
      return pass({ metrics });
    },
  },
];
