// 100 nodes in the simulator beyond the conformance suite (whose dynamics checks use a few nodes of
// their own): IPIP CrossSubnet in full mesh and VXLAN CrossSubnet with two route reflectors, on two
// underlay subnets — join at once, full
// reachability, a crash withdrawn after the hold timer, an agent restart that changes nothing.
import { describe, expect, it } from "vitest";
import { canonicalDataplane } from "@cnikit/core";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import { HOLD_TIME, RESTART_TIME } from "../src/agent.ts";
import { calicoFixtures, withRouteReflectors } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";
import { checkIpam } from "../src/ipam.ts";
import { drive } from "./helpers.ts";

const cases = [
  { label: "ipip-crosssubnet mesh", raw: calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!.config as unknown },
  { label: "vxlan-crosssubnet rr", raw: withRouteReflectors(calicoFixtures.configs.find((c) => c.label === "vxlan-crosssubnet")!.config) as unknown },
];

describe.each(cases)("$label: 100 nodes", ({ raw }) => {
  it("join at once, reach, crash, restart", async () => {
    const config = calico.parseConfig(raw);
    const summary = calico.summarize(config);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 11 });
    try {
      const nodes = await drive(cluster.clock, cluster.addNodes(100));
      for (const n of nodes) await cluster.addPod(n.name, { name: `p-${n.name}` });
      await cluster.settle({ limitMs: summary.convergenceMs });
      const all = cluster.reachability({ maxFailures: 5 });
      expect(all.failures.map((f) => f.result.reason)).toEqual([]);
      expect(all.delivered).toBe(all.pairs);
      expect(await checkIpam(cluster.store, config.pools)).toEqual([]);

      const victim = nodes[42]!;
      const ip = victim.info.underlay[0]!.address;
      await cluster.removeNode(victim.name, { mode: "crash" });
      await cluster.settle({ limitMs: (HOLD_TIME + RESTART_TIME) * 1000 + summary.convergenceMs });
      for (const n of cluster.nodes().filter((x) => x.alive)) {
        const dp = cluster.dataplane(n.name);
        expect(dp.routes.some((r) => r.via === ip) || dp.fdb.some((f) => f.dst === ip), n.name).toBe(false);
      }
      const after = cluster.reachability({ maxFailures: 5 });
      expect(after.delivered).toBe(after.pairs);

      const survivor = nodes[7]!;
      const before = new Map(
        cluster
          .nodes()
          .filter((n) => n.alive)
          .map((n) => [n.name, JSON.stringify(canonicalDataplane(cluster.dataplane(n.name)))]),
      );
      await drive(cluster.clock, cluster.restartAgent(survivor.name));
      await cluster.settle({ limitMs: summary.convergenceMs });
      for (const [name, dp] of before) expect(JSON.stringify(canonicalDataplane(cluster.dataplane(name))), name).toBe(dp);
    } finally {
      await cluster.close();
    }
  }, 300_000);
});
