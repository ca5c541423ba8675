// NetworkPolicy through the reference agents: policies and namespaces written at KUBE_PREFIX, pods
// published by every agent (labels and container ports from the ADD) and compiled into each
// node's filters exactly as @cnikit/netpol compiles the same cluster view; publications follow
// DEL and a clean leave. (The conformance suite's policy.matrix walks these filters in the sim.)
import { describe, expect, it } from "vitest";
import { MemoryDatastore, MemoryMembership, VirtualClock, kubeNamespaceKey, kubeNamespaceValue, kubeNetworkPolicyKey, silentLogger } from "@cnikit/core";
import type { AgentContext, NodeAgent } from "@cnikit/core";
import { compileFilters, parsePolicyObject } from "@cnikit/netpol";
import type { ClusterPod } from "@cnikit/netpol";
import { reference } from "../src/index.ts";
import { hostIfName } from "../src/plan.ts";
import { POD_PREFIX } from "../src/agent.ts";
import type { ReferenceConfig } from "../src/config.ts";

const POLICIES = [
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny-in", namespace: "x" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } },
  {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "web-from-blue", namespace: "x" },
    spec: { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }], ports: [{ port: "web" }] }] },
  },
];

function setup(): { clock: VirtualClock; store: MemoryDatastore; agents: NodeAgent[] } {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  const agents = [0, 1].map((i) => {
    const ctx: AgentContext<ReferenceConfig> = {
      config: reference.parseConfig({}),
      node: { name: `n${i}`, underlay: [{ iface: "eth0", address: `198.51.100.${10 + i}`, prefixLength: 24 }] },
      store,
      local: new MemoryDatastore({ clock }),
      peers: undefined as never,
      clock,
      log: silentLogger,
      members: new MemoryMembership({ clock }),
      random: () => 0.5,
    };
    return reference.createAgent(ctx);
  });
  return { clock, store, agents };
}

describe("reference NetworkPolicy", () => {
  it("compiles the cluster's policies into each node's filters, as netpol does for the same view", async () => {
    const { clock, store, agents } = setup();
    await Promise.all(agents.map((a) => a.start()));
    const pods: ClusterPod[] = [];
    const specs = [
      { node: 0, ns: "x", name: "a", ports: [{ name: "web", containerPort: 8080 }] },
      { node: 1, ns: "x", name: "b", ports: [] },
      { node: 1, ns: "y", name: "a", ports: [] },
    ];
    for (const [i, s] of specs.entries()) {
      const ref = { containerId: `c${i}`, ifName: "eth0" };
      const r = await agents[s.node]!.attach({ ...ref, netns: "/x", namespace: s.ns, podName: s.name, labels: { app: s.name }, ports: s.ports });
      pods.push({
        namespace: s.ns,
        name: s.name,
        labels: { app: s.name },
        ips: [r.ips[0]!.address.split("/")[0]!],
        ports: s.ports.map((p) => ({ ...p, protocol: "TCP" as const })),
        node: `n${s.node}`,
        key: `c${i}/eth0`,
        hostIf: hostIfName(ref),
      });
    }
    for (const [ns, team] of [
      ["x", "red"],
      ["y", "blue"],
    ] as const)
      await store.put(kubeNamespaceKey(ns), kubeNamespaceValue({ name: ns, labels: { team } }));
    for (const p of POLICIES) await store.put(kubeNetworkPolicyKey(p.metadata.namespace, p.metadata.name), JSON.stringify(p));
    await clock.advance(100);
    expect((await store.list(POD_PREFIX)).items).toHaveLength(3);

    const namespaces = [
      { name: "x", labels: { team: "red" } },
      { name: "y", labels: { team: "blue" } },
    ];
    const model = { namespaces, pods, policies: POLICIES.map((p) => parsePolicyObject(p)) };
    for (const [i, a] of agents.entries()) {
      const subnet = a.dataplane().addresses[0]!.cidr.split("/")[0]!;
      const want = compileFilters({ model, node: `n${i}`, nodeAddresses: [`198.51.100.${10 + i}`, subnet] });
      expect(a.dataplane().filters, `node n${i}`).toEqual(want);
    }
    const xa = agents[0]!.dataplane().filters.find((f) => f.pod === "c0/eth0" && f.direction === "ingress")!;
    // The named port resolved against x/a's container port, from y/a's address only.
    expect(xa.rules.some((r) => r.ports?.[0]?.from === 8080 && r.peers?.[0]?.cidrs.includes(`${pods[2]!.ips[0]}/32`))).toBe(true);

    // Relabelling y out of team blue removes the allowance; deleting the policies removes every filter.
    await store.put(kubeNamespaceKey("y"), kubeNamespaceValue({ name: "y", labels: { team: "green" } }));
    await clock.advance(100);
    expect(
      agents[0]!
        .dataplane()
        .filters.find((f) => f.pod === "c0/eth0")!
        .rules.some((r) => r.ports?.[0]?.from === 8080),
    ).toBe(false);
    for (const p of POLICIES) await store.delete(kubeNetworkPolicyKey(p.metadata.namespace, p.metadata.name));
    await clock.advance(100);
    for (const a of agents) expect(a.dataplane().filters).toEqual([]);

    // DEL unpublishes; a clean leave takes the node's publications with its lease.
    await agents[1]!.detach({ containerId: "c2", ifName: "eth0" });
    await clock.advance(100);
    expect((await store.list(POD_PREFIX)).items.map((kv) => kv.key).sort()).toEqual([`${POD_PREFIX}n0/c0/eth0`, `${POD_PREFIX}n1/c1/eth0`]);
    await agents[1]!.stop({ release: true });
    await clock.advance(100);
    expect((await store.list(POD_PREFIX)).items.map((kv) => kv.key)).toEqual([`${POD_PREFIX}n0/c0/eth0`]);
    await agents[0]!.stop({ release: true });
  });
});
