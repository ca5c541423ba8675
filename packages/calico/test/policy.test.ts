// NetworkPolicy through the backend: policies and namespaces written to the store (at the
// KUBE_PREFIX keys every NetworkPolicy backend reads) are compiled by every calico
// agent into its dataplane's filters; the simulator's pod-to-pod matrix (walked through those
// filters, across nodes and encapsulations) must equal @cnikit/netpol's evaluator, cell by cell.
import { describe, expect, it } from "vitest";
import { kubeNamespaceKey, kubeNamespaceValue, kubeNetworkPolicyKey } from "@cnikit/core";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import { PolicyEvaluator } from "@cnikit/netpol";
import type { ClusterPod, NetworkPolicy } from "@cnikit/netpol";
import { parsePolicyObject } from "@cnikit/netpol";
import { ENDPOINT_PREFIX } from "../src/endpoints.ts";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";
import { drive } from "./helpers.ts";

const POLICIES = [
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny-all", namespace: "x" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } },
  {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "allow-a-from-y", namespace: "x" },
    spec: { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }], ports: [{ protocol: "TCP", port: 80 }] }] },
  },
  {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "b-egress-only-x", namespace: "y" },
    spec: { podSelector: { matchLabels: { app: "b" } }, policyTypes: ["Egress"], egress: [{ to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "x" } } }] }] },
  },
];

describe.each(["ipip-crosssubnet", "vxlan-crosssubnet"])("%s: policy matrix through the calico agents", (label) => {
  it("equals the evaluator's on tcp/80 and tcp/81, before and after a policy is deleted", async () => {
    const config = calico.parseConfig(calicoFixtures.configs.find((c) => c.label === label)!.config);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 5 });
    try {
      const nodes = await drive(cluster.clock, cluster.addNodes(3));
      let i = 0;
      for (const ns of ["x", "y"]) for (const app of ["a", "b", "c"]) await cluster.addPod(nodes[i++ % 3]!.name, { name: `${app}`, namespace: ns, labels: { app } });
      const namespaces = [
        { name: "x", labels: { "kubernetes.io/metadata.name": "x", team: "red" } },
        { name: "y", labels: { "kubernetes.io/metadata.name": "y", team: "blue" } },
      ];
      for (const ns of namespaces) await cluster.store.put(kubeNamespaceKey(ns.name), kubeNamespaceValue(ns));
      const policies: NetworkPolicy[] = [];
      for (const p of POLICIES) {
        await cluster.store.put(kubeNetworkPolicyKey(p.metadata.namespace, p.metadata.name), JSON.stringify(p));
        policies.push(parsePolicyObject(p));
      }
      await cluster.settle({ limitMs: 30_000 });
      const compare = (active: NetworkPolicy[]) => {
        const pods: ClusterPod[] = cluster.pods().map((p) => ({ namespace: p.namespace, name: p.name, labels: p.labels, ips: p.addresses, ports: [] }));
        const ev = new PolicyEvaluator({ namespaces, pods, policies: active });
        let denied = 0;
        for (const port of [80, 81]) {
          for (const from of cluster.pods()) {
            for (const to of cluster.pods()) {
              if (from.key === to.key) continue;
              const want = ev.verdict({ from: `${from.namespace}/${from.name}`, to: `${to.namespace}/${to.name}`, protocol: "TCP", port }).allowed;
              const got = cluster.send({ kind: "pod", key: from.key }, { kind: "pod", key: to.key }, { protocol: "tcp", port });
              expect(got.delivered, `${from.namespace}/${from.name} -> ${to.namespace}/${to.name}:${port} (${got.reason ?? "delivered"})`).toBe(want);
              if (!want) denied++;
            }
          }
        }
        return denied;
      };
      expect(compare(policies)).toBeGreaterThan(0);
      expect(cluster.dataplane(nodes[0]!.name).filters.length + cluster.dataplane(nodes[1]!.name).filters.length + cluster.dataplane(nodes[2]!.name).filters.length).toBeGreaterThan(0);
      await cluster.store.delete(kubeNetworkPolicyKey("x", "deny-all"));
      await cluster.settle({ limitMs: 30_000 });
      compare(policies.filter((p) => p.name !== "deny-all"));
    } finally {
      await cluster.close();
    }
  });
});

describe("an unreadable workload endpoint", () => {
  it("is left out of the pod directory: the other endpoints still resolve and the policy is enforced", async () => {
    const config = calico.parseConfig(calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!.config);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 5 });
    try {
      const [n1, n2] = await drive(cluster.clock, cluster.addNodes(2));
      const a = await cluster.addPod(n1!.name, { name: "a", namespace: "x", labels: { app: "a" } });
      const b = await cluster.addPod(n2!.name, { name: "b", namespace: "x", labels: { app: "b" } });
      const ghost = { node: "ghost", key: "c9/eth0", namespace: "x", name: "ghost", labels: { app: "b" }, ips: ["10.244.300.1"], ports: [], hostIf: "cali0" };
      await cluster.store.put(`${ENDPOINT_PREFIX}ghost/c9/eth0`, JSON.stringify(ghost));
      const allowB = {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "a-from-b", namespace: "x" },
        spec: { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: "b" } } }] }] },
      };
      await cluster.store.put(kubeNetworkPolicyKey("x", "a-from-b"), JSON.stringify(allowB));
      await cluster.settle({ limitMs: 30_000 });
      expect(cluster.dataplane(n1!.name).filters.length).toBeGreaterThan(0);
      expect(cluster.send({ kind: "pod", key: b.key }, { kind: "pod", key: a.key }).delivered).toBe(true);
      expect(cluster.send({ kind: "pod", key: a.key }, { kind: "pod", key: b.key }).delivered).toBe(false);
    } finally {
      await cluster.close();
    }
  });
});
