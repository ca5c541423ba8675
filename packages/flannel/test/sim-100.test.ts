// 100 nodes in the packet simulator (the conformance runner stops at 64): join at once on two
// underlay subnets (one for host-gw), full pod-to-pod reachability, a crash withdrawn when the
// crashed node's 24 h lease expires on the virtual clock, and an agent restart that changes no
// node's dataplane.
import { describe, expect, it } from "vitest";
import { canonicalDataplane, fixtureConfig } from "@cnikit/core";
import { SimCluster, defaultTopology, singleSubnetTopology } from "@cnikit/sim";
import { RESYNC_MS } from "../src/agent.ts";
import { flannelFixtures } from "../src/fixtures.ts";
import { flannel } from "../src/index.ts";
import { LEASE_TTL_SECONDS } from "../src/leases.ts";
import { drive } from "./helpers.ts";

const NODES = 100;

// The single-family modes over the default IPv4 underlay (one route per peer is counted below).
const SINGLE_FAMILY = ["vxlan", "vxlan-directrouting", "host-gw"].map((label) => ({ label, config: fixtureConfig(flannelFixtures.configs, label) }));

describe.each(SINGLE_FAMILY)("$label: 100 nodes in the simulator", ({ label, config: raw }) => {
  it("join at once, reach, crash, restart", async () => {
    const config = flannel.parseConfig(raw);
    const summary = flannel.summarize(config);
    const cluster = SimCluster.create({
      backend: flannel,
      config,
      topology: flannel.topologyNeeds?.(config).singleSubnet ? singleSubnetTopology() : defaultTopology(),
      seed: 7,
    });
    try {
      // Join at once. Lease races back off on the clock, so time must pass while they start.
      const nodes = await drive(cluster.clock, cluster.addNodes(NODES), { stepMs: 100 });
      expect(nodes).toHaveLength(NODES);
      await cluster.settle({ limitMs: summary.convergenceMs });
      const subnets = new Set(nodes.map((n) => n.agent.dataplane().addresses.find((a) => a.dev === "cni0")?.cidr));
      expect(subnets.size).toBe(NODES);
      for (const n of nodes) expect(n.agent.dataplane().routes).toHaveLength(NODES - 1);
      if (label !== "host-gw") expect(new Set(nodes.map((n) => n.info.underlay[0]!.address.split(".").slice(0, 3).join("."))).size).toBe(2);

      for (const n of nodes) await cluster.addPod(n.name, { name: `p-${n.name}` });
      await cluster.settle({ limitMs: summary.convergenceMs });
      const all = cluster.reachability({ maxFailures: 5 });
      expect(all.failures.map((f) => f.result.reason)).toEqual([]);
      expect(all.failed).toBe(0);
      expect(all.natted).toBe(0);
      expect(all.delivered).toBe(all.pairs);

      // Crash: no goodbye. Routes stay until the lease expires (24 h), then vanish everywhere.
      const victim = nodes[17]!;
      const victimIp = victim.info.underlay[0]!.address;
      await cluster.removeNode(victim.name, { mode: "crash" });
      const pointsAtVictim = () =>
        cluster
          .nodes()
          .filter((n) => n.alive)
          .filter((n) => {
            const dp = cluster.dataplane(n.name);
            return dp.routes.some((r) => r.via === victimIp) || dp.fdb.some((f) => f.dst === victimIp);
          }).length;
      await cluster.settle({ limitMs: 23 * 3_600_000 });
      expect(pointsAtVictim()).toBe(NODES - 1);
      await cluster.settle({ limitMs: LEASE_TTL_SECONDS * 1000 - 23 * 3_600_000 + RESYNC_MS });
      expect(pointsAtVictim()).toBe(0);
      const after = cluster.reachability({ maxFailures: 5 });
      expect(after.failures.map((f) => f.result.reason)).toEqual([]);
      expect(after.delivered).toBe(after.pairs);

      // Restart one agent: its lease, pods and every node's dataplane stay the same.
      const survivor = cluster.nodes().find((n) => n.alive && n.name !== victim.name)!;
      const before = new Map(cluster.nodes().map((n) => [n.name, JSON.stringify(canonicalDataplane(cluster.dataplane(n.name)))]));
      await drive(cluster.clock, cluster.restartAgent(survivor.name), { stepMs: 100 });
      await cluster.settle({ limitMs: summary.convergenceMs });
      for (const n of cluster.nodes()) expect(JSON.stringify(canonicalDataplane(cluster.dataplane(n.name))), n.name).toBe(before.get(n.name));
    } finally {
      await cluster.close();
    }
    // 100 agents through 24 h of virtual time: ~20 s of CPU, minutes of wall time on a loaded machine.
  }, 600_000);
});
