import { describe, expect, it } from "vitest";
import { KUBE_PREFIX, MemoryDatastore, VirtualClock, flushAsync } from "@cnikit/core";
import { KubePolicyView } from "../src/index.ts";
import type { ClusterPod } from "../src/index.ts";

const pods: ClusterPod[] = [
  { namespace: "prod", name: "web", labels: { app: "web" }, ips: ["10.0.0.2"], ports: [], node: "n1", key: "c1/eth0", hostIf: "veth1" },
  { namespace: "dev", name: "client", labels: { app: "client" }, ips: ["10.0.1.2"], ports: [], node: "n2", key: "c2/eth0", hostIf: "veth2" },
];
const denyFromDev = {
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "only-prod", namespace: "prod" },
  spec: { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: "prod" } } }] }] },
};

async function started(store: MemoryDatastore, clock: VirtualClock) {
  const warnings: string[] = [];
  let changes = 0;
  const view = new KubePolicyView((msg) => warnings.push(msg));
  const abort = new AbortController();
  await view.start({ store, clock, signal: abort.signal, retryMs: 1000, onChange: () => changes++ });
  return { view, warnings, changes: () => changes, stop: () => abort.abort() };
}

describe("KubePolicyView", () => {
  it("mirrors policies and namespace labels from the store and compiles one node's filters", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    await store.put(`${KUBE_PREFIX.namespaces}prod`, JSON.stringify({ metadata: { name: "prod", labels: { env: "prod" } } }));
    const s = await started(store, clock);
    try {
      expect(s.view.hasPolicies()).toBe(false);
      expect(s.view.compile({ node: "n1", pods, nodeAddresses: ["192.0.2.1"] })).toEqual([]);

      await store.put(`${KUBE_PREFIX.networkPolicies}prod/only-prod`, JSON.stringify(denyFromDev));
      await flushAsync();
      expect(s.view.hasPolicies()).toBe(true);
      expect(s.changes()).toBeGreaterThan(0);
      const filters = s.view.compile({ node: "n1", pods, nodeAddresses: ["192.0.2.1"] });
      const ingress = filters.find((f) => f.pod === "c1/eth0" && f.direction === "ingress");
      expect(ingress?.defaultAction).toBe("drop");
      // Only prod (labelled env=prod) is allowed in: dev's pod address is not among the accepted peers.
      const accepted = (ingress?.rules ?? []).filter((r) => r.action === "accept").flatMap((r) => (r.peers ?? []).flatMap((p) => p.cidrs));
      expect(accepted).toContain("10.0.0.2/32");
      expect(accepted).not.toContain("10.0.1.2/32");
      // Only node n1's pod gets filters.
      expect(filters.every((f) => f.pod === "c1/eth0")).toBe(true);

      // Relabelling dev as prod lets its pod in.
      await store.put(`${KUBE_PREFIX.namespaces}dev`, JSON.stringify({ metadata: { name: "dev", labels: { env: "prod" } } }));
      await flushAsync();
      const after = s.view.compile({ node: "n1", pods, nodeAddresses: ["192.0.2.1"] });
      expect(
        after
          .find((f) => f.direction === "ingress")!
          .rules.filter((r) => r.action === "accept")
          .flatMap((r) => (r.peers ?? []).flatMap((p) => p.cidrs)),
      ).toContain("10.0.1.2/32");

      await store.delete(`${KUBE_PREFIX.networkPolicies}prod/only-prod`);
      await flushAsync();
      expect(s.view.hasPolicies()).toBe(false);
      expect(s.view.compile({ node: "n1", pods, nodeAddresses: ["192.0.2.1"] })).toEqual([]);
    } finally {
      s.stop();
    }
  });

  it("ignores an invalid policy or namespace with a warning naming its key", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    await store.put(`${KUBE_PREFIX.networkPolicies}prod/bad`, JSON.stringify({ kind: "NetworkPolicy", metadata: { name: "bad", namespace: "prod" }, spec: { policyTypes: ["Sideways"] } }));
    await store.put(`${KUBE_PREFIX.namespaces}broken`, "{not json");
    const s = await started(store, clock);
    try {
      expect(s.view.hasPolicies()).toBe(false);
      expect(s.warnings.some((w) => w.includes("prod/bad"))).toBe(true);
      expect(s.warnings.some((w) => w.includes("broken"))).toBe(true);
    } finally {
      s.stop();
    }
  });
});
