// Canal as composed: flannel's config and promises with networkPolicy claimed, and on a simulated
// cluster the policy component inside flannel's agent — pods published under Canal's own prefix on
// the node's subnet lease, a NetworkPolicy enforced by the filters flannel's plan now carries, and a
// crashed node's pods leaving the directory when its subnet lease expires.
import { describe, expect, it } from "vitest";
import { kubeNamespaceKey, kubeNamespaceValue, kubeNetworkPolicyKey } from "@cnikit/core";
import type { KeyValue } from "@cnikit/core";
import { LEASE_TTL_SECONDS, SUBNET_PREFIX, flannel } from "@cnikit/flannel";
import { flannelFixtures } from "@cnikit/flannel/fixtures";
import { SimCluster } from "@cnikit/sim";
import type { SimPod } from "@cnikit/sim";
import { canalFixtures, conformance } from "../src/fixtures.ts";
import { CANAL_POD_PREFIX, canal } from "../src/index.ts";

describe("canal: flannel's config and promises, plus NetworkPolicy", () => {
  it("parses every flannel mode as flannel does, promises what flannel promises, and claims networkPolicy on top of flannel's capabilities", () => {
    expect(canal.name).toBe("canal");
    expect(canal.capabilities).toEqual({ ...flannel.capabilities, networkPolicy: true });
    expect(flannel.capabilities.networkPolicy).toBe(false);
    for (const { label, config } of canalFixtures.configs) {
      const parsed = canal.parseConfig(structuredClone(config));
      expect(parsed, label).toEqual(flannel.parseConfig(structuredClone(config)));
      expect(canal.summarize(parsed), label).toEqual(flannel.summarize(parsed));
    }
  });

  it("takes a stock kube-flannel net-conf.json as it is, and refuses what flannel refuses, naming the same field with the same rule", () => {
    // kube-flannel.yml's ConfigMap, key net-conf.json, as shipped.
    const netConf: unknown = JSON.parse('{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}');
    expect(canal.parseConfig(netConf)).toEqual(flannel.parseConfig(netConf));
    for (const row of canalFixtures.invalidConfigs.filter((r) => r.refusedAt !== "start")) {
      let err: unknown;
      try {
        canal.parseConfig(structuredClone(row.config));
      } catch (e) {
        err = e;
      }
      expect(err, row.label).toMatchObject({ code: 7, field: row.field });
      expect((err as { rule: string }).rule, row.label).toContain(row.rule);
    }
  });

  it("its fixtures are flannel's, the same objects (re-exported, not copied), and its section-C tables are them", () => {
    expect(canalFixtures).toBe(flannelFixtures);
    expect(conformance.invalidConfigs).toBe(flannelFixtures.invalidConfigs);
    expect(conformance.anchorConfigs).toBe(flannelFixtures.anchorConfigs);
  });
});

/** The store lease of the subnet key `node` holds (flannel's lease: PublicIP is the node's underlay). */
function subnetLeaseOf(subnets: KeyValue[], address: string): KeyValue {
  const found = subnets.filter((kv) => (JSON.parse(kv.value) as { PublicIP?: string }).PublicIP === address);
  expect(found, `one subnet lease for ${address}`).toHaveLength(1);
  return found[0]!;
}

describe("canal on a simulated cluster", () => {
  it("publishes each pod under /cnikit/canal/pods/<node>/ on its node's subnet lease; a policy isolates a pod across nodes; a crashed node's pods go with its lease", async () => {
    const config = canal.parseConfig(flannelFixtures.configs.find((c) => c.label === "vxlan")!.config);
    const cluster = SimCluster.create({ backend: canal, config, seed: 3 });
    try {
      const [n1, n2] = await cluster.addNodes(2);
      await cluster.store.put(kubeNamespaceKey("default"), kubeNamespaceValue({ name: "default", labels: {} }));
      const server = await cluster.addPod(n1!.name, { name: "server", labels: { app: "server" } });
      const client = await cluster.addPod(n2!.name, { name: "client", labels: { role: "client" } });
      const other = await cluster.addPod(n2!.name, { name: "other", labels: { role: "other" } });
      await cluster.settle();

      // The directory: one record per pod, under its node, attached to that node's subnet lease.
      expect(CANAL_POD_PREFIX).toBe("/cnikit/canal/pods/");
      const subnets = (await cluster.store.list(SUBNET_PREFIX)).items;
      const records = (await cluster.store.list(CANAL_POD_PREFIX)).items;
      const recordOf = (pod: SimPod): KeyValue => records.find((kv) => kv.key === `${CANAL_POD_PREFIX}${pod.node}/${pod.key}`)!;
      expect(records.map((kv) => kv.key).sort()).toEqual([server, client, other].map((p) => `${CANAL_POD_PREFIX}${p.node}/${p.key}`).sort());
      for (const pod of [server, client, other]) {
        const lease = subnetLeaseOf(subnets, cluster.node(pod.node).info.underlay[0]!.address).lease;
        expect(lease, pod.name).toBeDefined();
        expect(recordOf(pod).lease, pod.name).toBe(lease);
        expect(JSON.parse(recordOf(pod).value), pod.name).toMatchObject({ namespace: "default", labels: pod.labels, ips: pod.addresses });
      }

      // No policy: everything reaches the server.
      const toServer = (from: SimPod) => cluster.send({ kind: "pod", key: from.key }, { kind: "pod", key: server.key }, { protocol: "tcp", port: 8080 });
      expect(toServer(client).delivered).toBe(true);
      expect(toServer(other).delivered).toBe(true);
      expect(cluster.dataplane(n1!.name).filters).toEqual([]);

      // Ingress to app=server only from role=client pods: the other node's "other" pod is dropped at the server's node.
      const policy = {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "server-from-clients", namespace: "default" },
        spec: { podSelector: { matchLabels: { app: "server" } }, policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: { matchLabels: { role: "client" } } }] }] },
      };
      await cluster.store.put(kubeNetworkPolicyKey("default", "server-from-clients"), JSON.stringify(policy));
      await cluster.settle();
      expect(cluster.dataplane(n1!.name).filters.map((f) => [f.pod, f.direction, f.defaultAction])).toEqual([[server.key, "ingress", "drop"]]);
      expect(toServer(client).delivered).toBe(true);
      const dropped = toServer(other);
      expect(dropped.delivered).toBe(false);
      expect(dropped.drop?.node).toBe(n1!.name);

      // node-2 crashes: its subnet and its pods share one store lease, which nobody renews now; they
      // stay until it expires and then go together; the server's filter no longer admits the
      // client's address (nothing is left to select).
      await cluster.removeNode(n2!.name, { mode: "crash" });
      const n2Lease = subnetLeaseOf(subnets, n2!.info.underlay[0]!.address).lease!;
      const info = (await cluster.store.leaseInfo(n2Lease))!;
      expect(info.ttlSeconds).toBe(LEASE_TTL_SECONDS);
      expect([...info.keys].sort()).toEqual([subnetLeaseOf(subnets, n2!.info.underlay[0]!.address).key, recordOf(client).key, recordOf(other).key].sort());
      await cluster.clock.advance((info.remainingSeconds - 1) * 1000);
      expect((await cluster.store.list(`${CANAL_POD_PREFIX}${n2!.name}/`)).items).toHaveLength(2);
      await cluster.clock.advance(2_000);
      await cluster.settle();
      expect(await cluster.store.leaseInfo(n2Lease)).toBeUndefined();
      expect((await cluster.store.list(`${CANAL_POD_PREFIX}${n2!.name}/`)).items).toEqual([]);
      expect((await cluster.store.list(SUBNET_PREFIX)).items.map((kv) => (JSON.parse(kv.value) as { PublicIP: string }).PublicIP)).toEqual([n1!.info.underlay[0]!.address]);
      expect((await cluster.store.list(`${CANAL_POD_PREFIX}${n1!.name}/`)).items.map((kv) => kv.key)).toEqual([`${CANAL_POD_PREFIX}${n1!.name}/${server.key}`]);
      const serverFilter = cluster.dataplane(n1!.name).filters.find((f) => f.pod === server.key)!;
      expect(JSON.stringify(serverFilter)).not.toContain(client.addresses[0]!);
    } finally {
      await cluster.close();
    }
  }, 120_000);
});
