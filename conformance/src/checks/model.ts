/**
 * Section A: the Kubernetes networking model, for every backend.
 */
import fc from "fast-check";
import { ENCAP_OVERHEAD, Prefix } from "@cnikit/core";
import type { SimPod } from "@cnikit/sim";
import { SOURCES, fail, notRun, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import {
  addPods,
  describePacket,
  describePod,
  ipamProblems,
  livePods,
  nodeEndpoint,
  nodeOfEndpoint,
  podEndpoint,
  reachProblems,
  summarizeProblems,
} from "../harness.ts";
import type { Harness, IpamProblemKind } from "../harness.ts";

function ipamCheck(id: string, kinds: IpamProblemKind[], rule: string): CheckDefinition {
  return {
    id,
    section: "A",
    rule,
    source: SOURCES.k8sIpam,
    required: true,
    async run(env: CheckEnv) {
      const { h, pods } = await env.fixture();
      const problems = ipamProblems(h, env.summary.podRanges, pods).filter((p) => kinds.includes(p.kind));
      if (problems.length > 0) return fail(summarizeProblems(problems.map((p) => p.text)));
      return pass();
    },
  };
}

/** Encapsulation overhead of one encapsulation name (none = 0; wireguard over IPv4 = 60). */
function overheadOf(encap: string): number {
  if (encap === "vxlan") return ENCAP_OVERHEAD.vxlan;
  if (encap === "ipip") return ENCAP_OVERHEAD.ipip;
  if (encap === "sleeve") return ENCAP_OVERHEAD.sleeve;
  if (encap === "wireguard") return 60;
  return 0;
}

function underlayMtu(h: Harness, node: string): number {
  const info = h.cluster.node(node).info;
  const u = info.underlay[0];
  if (u?.mtu !== undefined) return u.mtu;
  const subnet = h.cluster.topology.subnets.find((s) => u && Prefix.parse(s.cidr).contains(u.address));
  return subnet?.mtu ?? 1500;
}

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

/** Section A checks. */
export const modelChecks: CheckDefinition[] = [
  ipamCheck("ipam.in-range", ["missing", "range"], "Every pod gets an address inside the configured pod range(s)."),
  ipamCheck("ipam.unique", ["duplicate"], "No two live pods hold the same address, on one node or across nodes."),
  ipamCheck("ipam.reserved", ["reserved"], "No pod gets a reserved address (network, broadcast, gateway, a node's own)."),
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
  {
    id: "reach.pod-to-pod.same-node",
    section: "A",
    rule: "Every pod reaches every other pod on the same node.",
    source: SOURCES.k8sModel,
    required: true,
    async run(env) {
      const { h, pods } = await env.fixture();
      const eps = pods.map(podEndpoint);
      const problems = reachProblems(h, eps, eps, (a, b) => nodeOfEndpoint(h, a) === nodeOfEndpoint(h, b));
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "reach.pod-to-pod.cross-node",
    section: "A",
    rule: "Every pod reaches every pod on every other node.",
    source: SOURCES.k8sModel,
    required: true,
    async run(env) {
      const { h, pods } = await env.fixture();
      const eps = pods.map(podEndpoint);
      const problems = reachProblems(h, eps, eps, (a, b) => nodeOfEndpoint(h, a) !== nodeOfEndpoint(h, b));
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "reach.no-nat-between-pods",
    section: "A",
    rule: "A pod receiving from another pod sees the sender's own pod address (no NAT between pods).",
    source: SOURCES.k8sModel,
    required: true,
    async run(env) {
      const { h, pods } = await env.fixture();
      const eps = pods.map(podEndpoint);
      const all = h.cluster.reachability({ from: eps, to: eps, maxFailures: 0 });
      if (all.natted === 0) return pass();
      // Name a few of the NATed pairs, walking packets until enough are found.
      const problems: string[] = [];
      for (const a of pods) {
        for (const b of pods) {
          if (a.key === b.key || problems.length >= 3) continue;
          const r = h.cluster.send(podEndpoint(a), podEndpoint(b), { protocol: "tcp", port: 80 });
          if (r.delivered && r.seenSource !== undefined && !a.addresses.includes(r.seenSource)) {
            problems.push(`${describePod(a)} -> ${describePod(b)}: the receiver saw source ${r.seenSource} instead of ${a.addresses.join(", ")}`);
          }
        }
      }
      return fail(`${all.natted} of ${all.pairs} pod pairs arrive NATed: ${problems.join("; ")}`);
    },
  },
  {
    id: "reach.node-to-pod",
    section: "A",
    rule: "Every node (its host network namespace) reaches every pod.",
    source: SOURCES.k8sModel,
    required: true,
    async run(env) {
      const { h, pods } = await env.fixture();
      const nodes = h.cluster.nodes().map((n) => nodeEndpoint(n.name));
      const problems = reachProblems(h, nodes, pods.map(podEndpoint));
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "reach.pod-to-node",
    section: "A",
    rule: "Every pod reaches every node's host address.",
    source: SOURCES.k8sModel,
    required: true,
    async run(env) {
      const { h, pods } = await env.fixture();
      const nodes = h.cluster.nodes().map((n) => nodeEndpoint(n.name));
      const problems = reachProblems(h, pods.map(podEndpoint), nodes);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "nat.outgoing",
    section: "A",
    rule: "Pod traffic to an address outside every pod range is masqueraded to the node's address exactly when the config says so.",
    source: `${SOURCES.k8sModel}; the backend's NetworkSummary.natOutgoing`,
    required: true,
    async run(env) {
      const { h, pods } = await env.fixture();
      const external = h.cluster.topology.externals?.[0];
      if (!external) return notRun("the simulated topology has no external host to send to");
      const problems: string[] = [];
      const perNode = new Map<string, SimPod>();
      for (const p of pods) if (!perNode.has(p.node)) perNode.set(p.node, p);
      for (const pod of perNode.values()) {
        const nodeAddr = h.cluster.node(pod.node).info.underlay[0]?.address;
        const r = h.cluster.send(podEndpoint(pod), { kind: "external", name: external.name }, { protocol: "tcp", port: 443 });
        if (!r.delivered) {
          problems.push(`${describePod(pod)} -> ${external.name} (${external.address}): ${describePacket(r)}`);
          continue;
        }
        if (env.summary.natOutgoing) {
          if (r.seenSource !== nodeAddr) {
            problems.push(`${describePod(pod)} -> ${external.name}: natOutgoing is on, but the receiver saw source ${r.seenSource ?? "?"} instead of node address ${nodeAddr ?? "?"}`);
          } else if (r.replyDelivered === false) {
            problems.push(`${describePod(pod)} -> ${external.name}: masqueraded, but the reply did not make it back (NAT not reversed?)`);
          }
        } else if (r.seenSource !== undefined && !pod.addresses.includes(r.seenSource)) {
          problems.push(`${describePod(pod)} -> ${external.name}: natOutgoing is off, but the receiver saw source ${r.seenSource}`);
        }
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "mtu.encap-headroom",
    section: "A",
    rule: "Pod interface MTUs (and tunnel MTUs) leave room for the backend's encapsulation on the underlay MTU.",
    source: SOURCES.mtu,
    required: true,
    async run(env) {
      const { h } = await env.fixture();
      const overhead = Math.max(0, ...env.summary.encapsulations.map(overheadOf));
      const problems: string[] = [];
      for (const node of h.cluster.nodes()) {
        const dp = h.cluster.dataplane(node.name);
        const mtu = underlayMtu(h, node.name);
        for (const pod of dp.pods) {
          if (!(pod.mtu > 0) || pod.mtu > mtu - overhead) {
            const known = h.cluster.pods().find((p) => p.key === pod.key);
            problems.push(`${known ? describePod(known) : `pod ${pod.key} on node ${node.name}`} has MTU ${pod.mtu}; the underlay MTU is ${mtu} and the encapsulation (${env.summary.encapsulations.join(", ")}) needs ${overhead} bytes, so at most ${mtu - overhead}`);
          }
        }
        for (const link of dp.links) {
          if (link.mtu === undefined) continue;
          const o = link.kind === "vxlan" || link.kind === "ipip" || link.kind === "sleeve" ? overheadOf(link.kind) : 0;
          if (o > 0 && link.mtu > mtu - o) {
            problems.push(`${link.kind} link ${link.name} on node ${node.name} has MTU ${link.mtu}; at most ${mtu - o} fits the underlay MTU ${mtu}`);
          }
        }
      }
      // And the packet walk agrees: a full-size packet from each pod fits the path to a pod on another node.
      const { pods } = await env.fixture();
      for (const a of pods) {
        const b = pods.find((p) => p.node !== a.node);
        if (!b) break;
        const r = h.cluster.send(podEndpoint(a), podEndpoint(b), { protocol: "udp", port: 53 });
        if (r.mtuProblem) problems.push(`${describePod(a)} -> ${describePod(b)}: ${r.mtuProblem}`);
      }
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
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
