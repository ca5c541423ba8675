/**
 * Section F: NetworkPolicy, for backends that claim it.
 *
 * `policy.matrix` builds the upstream e2e model in a simulated cluster — namespaces x, y, z
 * written to the store at the contract's `KUBE_PREFIX` (labels `ns: <name>` and
 * `kubernetes.io/metadata.name`), pods a, b, c in each (labels `pod: <name>`, the upstream named
 * container ports, attached through the agents and spread over the nodes) — then, for each of
 * @cnikit/netpol's `e2eCases`, writes the case's NetworkPolicies to the store, lets the cluster
 * settle for the backend's convergence bound, and compares the simulator's full pod-to-pod matrix
 * (TCP and UDP on 80 and 81, plus, for every port range a case's policies name, a port inside the
 * range past its first port, its last port and the port just past it; walked through the agents'
 * dataplanes) with netpol's evaluator over the same cluster. Each case also probes every pod from
 * its own node and the node from the pod on the same ports: NetworkPolicy always allows traffic
 * between a pod and the node it runs on, whatever the policies (the API's own rule; the evaluator
 * models pods only). Policies
 * are deleted between cases. The evaluator is the spec, not a backend.
 */
import { Prefix, kubeNamespaceKey, kubeNamespaceValue, kubeNetworkPolicyKey } from "@cnikit/core";
import { E2E_NAMESPACES, E2E_PODS, E2E_PORTS, PolicyEvaluator, e2eCases, e2eNamespaceLabels, e2ePodLabels, explainVerdict, parsePolicyObject } from "@cnikit/netpol";
import type { ClusterNamespace, ClusterPod, ContainerPort, E2eCase, E2eEnv, NetworkPolicy, NetworkPolicyObject, PolicyProtocol } from "@cnikit/netpol";
import type { SimPod } from "@cnikit/sim";
import { SOURCES, fail, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import { describePod, nodeEndpoint, podEndpoint, settle, startMetrics } from "../harness.ts";
import type { Harness } from "../harness.ts";
import type { CheckContext, SubResult } from "../types.ts";

interface PolicyProbe {
  protocol: PolicyProtocol;
  port: number;
}

/** The probes of every matrix: TCP and UDP on ports 80 and 81. */
export const POLICY_PROBES: readonly PolicyProbe[] = [
  { protocol: "TCP", port: 80 },
  { protocol: "TCP", port: 81 },
  { protocol: "UDP", port: 80 },
  { protocol: "UDP", port: 81 },
];

/** Protocols the simulator probes (SCTP is not simulated). */
const PROBED_PROTOCOLS: readonly PolicyProtocol[] = ["TCP", "UDP"];

/**
 * The probes for a set of policies: `POLICY_PROBES`, plus for every numeric port range
 * (`port`..`endPort`) of their rules a port inside it past its first port, its last port and the
 * port just past its end — a range honoured only at its first port, or one port too far, answers
 * differently there. No duplicates; order is stable.
 */
export function probesFor(policies: readonly NetworkPolicy[]): PolicyProbe[] {
  const out: PolicyProbe[] = [...POLICY_PROBES];
  const add = (protocol: PolicyProtocol, port: number): void => {
    if (port < 1 || port > 65535 || !PROBED_PROTOCOLS.includes(protocol)) return;
    if (!out.some((p) => p.protocol === protocol && p.port === port)) out.push({ protocol, port });
  };
  for (const policy of policies) {
    for (const rule of [...policy.ingress, ...policy.egress]) {
      for (const p of rule.ports) {
        if (typeof p.port !== "number" || p.endPort === undefined || p.endPort <= p.port) continue;
        add(p.protocol, p.port + 1);
        add(p.protocol, p.endPort);
        add(p.protocol, p.endPort + 1);
      }
    }
  }
  return out;
}

/** Nodes the model's pods are spread over (fewer when the run has fewer). */
const MODEL_NODES = 3;

interface Model {
  /** Pod id `ns/name` -> the sim's pod. */
  pods: Map<string, SimPod>;
  ports: Map<string, ContainerPort[]>;
  namespaces: ClusterNamespace[];
}

/** The first wrong cell of a matrix, or undefined when the matrices agree. */
function firstWrongCell(h: Harness, model: Model, policies: NetworkPolicy[]): string | undefined {
  const clusterPods: ClusterPod[] = [...model.pods].map(([id, p]) => ({
    namespace: p.namespace,
    name: p.name,
    labels: p.labels,
    ips: p.addresses,
    ports: model.ports.get(id) ?? [],
  }));
  const ev = new PolicyEvaluator({ namespaces: model.namespaces, pods: clusterPods, policies });
  const byKey = new Map([...model.pods].map(([id, p]) => [p.key, { id, pod: p }]));
  const eps = [...model.pods.values()].map(podEndpoint);
  for (const probe of probesFor(policies)) {
    const protocol = probe.protocol === "TCP" ? "tcp" : "udp";
    const outcomes = h.cluster.reachabilityPairs({ from: eps, to: eps, protocol, port: probe.port });
    let seen = 0;
    for (const o of outcomes) {
      if (o.from.kind !== "pod" || o.to.kind !== "pod") continue;
      const from = byKey.get(o.from.key);
      const to = byKey.get(o.to.key);
      if (!from || !to || from === to) continue;
      seen++;
      const verdict = ev.verdict({ from: from.id, to: to.id, ...probe });
      if (verdict.allowed === o.delivered) continue;
      const got = o.delivered ? "delivered" : `dropped (${o.reason ?? "no reason given"})`;
      return (
        `${from.id} -> ${to.id} ${probe.protocol}/${probe.port}: expected ${verdict.allowed ? "allowed" : "denied"}, got ${got}; ` +
        `${describePod(from.pod)} -> ${describePod(to.pod)}. netpol: ${explainVerdict(verdict).replace(/\n\s*/g, " | ")}`
      );
    }
    const want = model.pods.size * (model.pods.size - 1);
    if (seen !== want) return `${probe.protocol}/${probe.port}: the simulator answered ${seen} of ${want} pod pairs`;
    const own = ownNodeProblem(h, model, probe);
    if (own) return own;
  }
  return undefined;
}

/**
 * Every pod probed from the node it runs on (its host network namespace), and the node from the
 * pod: always delivered, whatever the policies ("traffic to and from the node where a Pod is
 * running is always allowed"). The first pair that is not, or undefined.
 */
function ownNodeProblem(h: Harness, model: Model, probe: PolicyProbe): string | undefined {
  const protocol = probe.protocol === "TCP" ? "tcp" : "udp";
  const pods = [...model.pods.values()];
  const nodes = [...new Set(pods.map((p) => p.node))].map(nodeEndpoint);
  const byKey = new Map([...model.pods].map(([id, p]) => [p.key, { id, pod: p }]));
  const rule = "traffic between a pod and its own node is always allowed, whatever the policies";
  for (const direction of ["node to pod", "pod to node"] as const) {
    const toPod = direction === "node to pod";
    const outcomes = h.cluster.reachabilityPairs({ from: toPod ? nodes : pods.map(podEndpoint), to: toPod ? pods.map(podEndpoint) : nodes, protocol, port: probe.port });
    const answered = new Set<string>();
    for (const o of outcomes) {
      const podEp = toPod ? o.to : o.from;
      const nodeEp = toPod ? o.from : o.to;
      if (podEp.kind !== "pod" || nodeEp.kind !== "node") continue;
      const pod = byKey.get(podEp.key);
      if (!pod || pod.pod.node !== nodeEp.name) continue;
      answered.add(pod.id);
      if (o.delivered) continue;
      const pair = toPod ? `node ${nodeEp.name} -> ${pod.id}` : `${pod.id} -> node ${nodeEp.name}`;
      const described = toPod ? `node ${nodeEp.name} -> ${describePod(pod.pod)}` : `${describePod(pod.pod)} -> its node ${nodeEp.name}`;
      return `${pair} ${probe.protocol}/${probe.port}: expected delivered (${rule}), got dropped (${o.reason ?? "no reason given"}); ${described}`;
    }
    const missing = [...model.pods.keys()].filter((id) => !answered.has(id));
    if (missing.length > 0) return `${probe.protocol}/${probe.port}: the simulator did not answer the ${direction} probe for ${missing.join(", ")}`;
  }
  return undefined;
}

async function buildModel(h: Harness, ctx: CheckContext): Promise<Model> {
  const nodes = await h.cluster.addNodes(Math.max(1, Math.min(MODEL_NODES, ctx.nodes)));
  const namespaces = E2E_NAMESPACES.map((name) => ({ name, labels: e2eNamespaceLabels(name) }));
  for (const ns of namespaces) await h.store.put(kubeNamespaceKey(ns.name), kubeNamespaceValue(ns));
  // Every case's extra named ports are on the pods from the start (ports come only with the ADD).
  const extra = new Map<string, ContainerPort[]>();
  for (const c of e2eCases) for (const [id, ports] of Object.entries(c.extraPorts ?? {})) extra.set(id, [...(extra.get(id) ?? []), ...ports]);
  const pods = new Map<string, SimPod>();
  const ports = new Map<string, ContainerPort[]>();
  let i = 0;
  for (const ns of E2E_NAMESPACES) {
    for (const name of E2E_PODS) {
      const id = `${ns}/${name}`;
      const own = [...E2E_PORTS, ...(extra.get(id) ?? [])];
      const node = nodes[i++ % nodes.length]!.name;
      pods.set(
        id,
        await h.cluster.addPod(node, {
          name,
          namespace: ns,
          labels: e2ePodLabels(name),
          ports: own.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), containerPort: p.containerPort, protocol: p.protocol })),
        }),
      );
      ports.set(id, own);
    }
  }
  await settle(h, ctx);
  return { pods, ports, namespaces };
}

/** Runs one case: apply, compare, (relabel, compare, restore labels), delete. */
async function runCase(x: { h: Harness; ctx: CheckContext; model: Model; c: E2eCase; env: E2eEnv }): Promise<SubResult> {
  const { h, ctx, model, c, env } = x;
  const objects: NetworkPolicyObject[] = c.policies(env);
  const policies = objects.map((o, i) => parsePolicyObject(o, `${c.name}#${i}`));
  const label = `${c.name} [${c.covers}]`;
  try {
    for (const o of objects) await h.store.put(kubeNetworkPolicyKey(o.metadata.namespace, o.metadata.name), JSON.stringify(o));
    await settle(h, ctx);
    const wrong = firstWrongCell(h, model, policies);
    if (wrong) return { label, status: "failed", reason: `with the policies applied: ${wrong}` };
    if (c.relabelNamespaces) {
      const before = model.namespaces;
      model.namespaces = before.map((ns) => ({ name: ns.name, labels: { ...ns.labels, ...(c.relabelNamespaces?.[ns.name] ?? {}) } }));
      try {
        for (const ns of model.namespaces) if (c.relabelNamespaces[ns.name]) await h.store.put(kubeNamespaceKey(ns.name), kubeNamespaceValue(ns));
        await settle(h, ctx);
        const after = firstWrongCell(h, model, policies);
        if (after) return { label, status: "failed", reason: `after relabelling namespace(s) ${Object.keys(c.relabelNamespaces).join(", ")}: ${after}` };
      } finally {
        model.namespaces = before;
        for (const ns of before) if (c.relabelNamespaces[ns.name]) await h.store.put(kubeNamespaceKey(ns.name), kubeNamespaceValue(ns));
      }
    }
    return { label, status: "passed" };
  } finally {
    for (const o of objects) await h.store.delete(kubeNetworkPolicyKey(o.metadata.namespace, o.metadata.name));
    await settle(h, ctx);
  }
}

/** Section F checks. */
/**
 * One CIDR holding every pod address, for the e2e cases that name "the pod network": the IPv4 pod
 * range, or the smallest prefix covering every IPv4 range when there are several (an Azure-like
 * classic backend's pods live in every node subnet); IPv6 ranges only when there is no IPv4 one.
 */
export function podNetworkOf(podRanges: readonly string[]): string {
  const v4 = podRanges.filter((r) => !r.includes(":"));
  const ranges = (v4.length > 0 ? v4 : podRanges).map((r) => Prefix.parse(r));
  let net = ranges[0]!;
  for (let len = net.length; len >= 0; len--) {
    const candidate = Prefix.parse(`${net.network}/${len}`, { allowHostBits: true });
    if (ranges.every((r) => candidate.contains(r))) {
      net = candidate;
      break;
    }
  }
  return net.toString();
}

export const policyChecks: CheckDefinition[] = [
  {
    id: "policy.matrix",
    section: "F",
    rule: "NetworkPolicy (networking.k8s.io/v1) gives exactly the evaluator's reachability matrix over the upstream e2e model (TCP/UDP 80/81 and around every port range), enforced in the dataplane, and never cuts a pod off from its own node.",
    source: SOURCES.policy,
    required: true,
    budgetMs: 240_000,
    gate: (ctx) => (ctx.backend.capabilities.networkPolicy ? undefined : { status: "not claimed", reason: "capabilities.networkPolicy is false" }),
    async run(env: CheckEnv) {
      const h = env.harness("policy.matrix");
      const model = await buildModel(h, env);
      const metrics = startMetrics(h);
      const podNetwork = podNetworkOf(env.summary.podRanges);
      const caseEnv: E2eEnv = {
        podIp: (id) => {
          const addr = model.pods.get(id)?.addresses[0];
          if (addr === undefined) throw new Error(`the model has no pod ${id} with an address`);
          return addr;
        },
        podNetwork,
      };
      const subResults: SubResult[] = [];
      const none = firstWrongCell(h, model, []);
      subResults.push(none ? { label: "no policies: everything is allowed", status: "failed", reason: none } : { label: "no policies: everything is allowed", status: "passed" });
      for (const c of e2eCases) subResults.push(await runCase({ h, ctx: env, model, c, env: caseEnv }));
      const cleared = firstWrongCell(h, model, []);
      subResults.push(
        cleared ? { label: "every policy deleted: everything is allowed again", status: "failed", reason: cleared } : { label: "every policy deleted: everything is allowed again", status: "passed" },
      );
      const failed = subResults.filter((s) => s.status !== "passed");
      const m = metrics.stop();
      if (failed.length > 0) {
        const first = failed[0]!;
        return fail(`${failed.length} of ${subResults.length} cases differ from the evaluator; first: ${first.label}: ${first.reason ?? ""}`, { subResults, metrics: m });
      }
      return pass({ subResults, metrics: m });
    },
  },
];
