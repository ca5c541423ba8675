// The calico agents in the simulator: every fixture config on two underlay subnets (one for the
// no-encap "bgp" config), full mesh and route reflectors, pod-to-pod reachability, the encapsulation
// CrossSubnet picks, MTUs, natOutgoing, crash (hold timer) and agent restart.
import { describe, expect, it } from "vitest";
import { canonicalDataplane } from "@cnikit/core";
import { SimCluster, defaultTopology, singleSubnetTopology } from "@cnikit/sim";
import { HOLD_TIME, RESTART_TIME } from "../src/agent.ts";
import { calicoFixtures, withRouteReflectors } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";
import { checkIpam } from "../src/ipam.ts";
import type { CalicoAgent } from "../src/agent.ts";
import { drive } from "./helpers.ts";

const variants = calicoFixtures.configs.flatMap((f) => [
  { label: `${f.label} mesh`, base: f.label, raw: f.config as unknown },
  { label: `${f.label} rr`, base: f.label, raw: withRouteReflectors(f.config) as unknown },
]);

describe.each(variants)("$label, 10 nodes", ({ base, raw }) => {
  it("joins, reaches every pod, crashes, restarts", async () => {
    const config = calico.parseConfig(raw);
    const summary = calico.summarize(config);
    const cluster = SimCluster.create({ backend: calico, config, topology: calico.topologyNeeds?.(config).singleSubnet ? singleSubnetTopology() : defaultTopology(), seed: 3 });
    try {
      const nodes = await drive(cluster.clock, cluster.addNodes(10));
      await cluster.settle({ limitMs: summary.convergenceMs });
      for (const n of nodes) for (let i = 0; i < 2; i++) await cluster.addPod(n.name, { name: `p-${n.name}-${i}` });
      await cluster.settle({ limitMs: summary.convergenceMs });
      const r = cluster.reachability({ maxFailures: 5 });
      expect(r.failures.map((f) => f.result.reason)).toEqual([]);
      expect(r.delivered).toBe(r.pairs);
      expect(r.natted).toBe(0);
      expect(await checkIpam(cluster.store, config.pools)).toEqual([]);

      const dp = cluster.dataplane(nodes[0]!.name);
      const pod = dp.pods[0]!;
      expect(pod.addresses[0]).toMatch(/\/32$/);
      expect(dp.sysctls.proxyArp).toContain(pod.hostIf);
      expect(pod.mtu).toBe(base.startsWith("ipip") ? 1480 : base.startsWith("vxlan") ? 1450 : 1500);
      // A node on the other subnet: encapsulated; one on the same subnet: native unless Always.
      const routesVia = (dev: string) => dp.routes.filter((x) => x.origin === "bgp" && x.dev === dev).length;
      if (base === "ipip-always") expect(routesVia("eth0")).toBe(0);
      if (base === "ipip-crosssubnet") {
        expect(routesVia("tunl0")).toBeGreaterThan(0);
        expect(routesVia("eth0")).toBeGreaterThan(0);
      }
      if (base === "vxlan-crosssubnet") {
        expect(routesVia("vxlan.calico")).toBeGreaterThan(0);
        expect(routesVia("eth0")).toBeGreaterThan(0);
      }
      expect(dp.routes.filter((x) => x.type === "blackhole").length).toBeGreaterThan(0);

      // Crash a non-reflector node: every other node withdraws its block after the hold timer.
      const victim = nodes[5]!;
      const victimIp = victim.info.underlay[0]!.address;
      const pointsAtVictim = () =>
        cluster
          .nodes()
          .filter(
            (n) =>
              n.alive &&
              cluster.dataplane(n.name).routes.some((x) => x.via === victimIp || (x.origin === "bgp" && x.via !== undefined && cluster.dataplane(n.name).fdb.some((f) => f.dst === victimIp))),
          ).length;
      expect(pointsAtVictim()).toBe(9);
      await cluster.removeNode(victim.name, { mode: "crash" });
      await cluster.settle({ limitMs: (HOLD_TIME + RESTART_TIME) * 1000 + summary.convergenceMs });
      expect(pointsAtVictim()).toBe(0);
      const after = cluster.reachability({ maxFailures: 5 });
      expect(after.failures.map((f) => f.result.reason)).toEqual([]);

      // Restart an agent: same dataplane everywhere once settled.
      const before = new Map(
        cluster
          .nodes()
          .filter((n) => n.alive)
          .map((n) => [n.name, JSON.stringify(canonicalDataplane(cluster.dataplane(n.name)))]),
      );
      await drive(cluster.clock, cluster.restartAgent(nodes[3]!.name));
      await cluster.settle({ limitMs: summary.convergenceMs });
      for (const [name, dp0] of before) expect(JSON.stringify(canonicalDataplane(cluster.dataplane(name))), name).toBe(dp0);
      expect(
        (cluster.node(nodes[3]!.name).agent as CalicoAgent).bgp
          ?.peerStatus()
          .filter((p) => p.address !== victimIp)
          .every((p) => p.state === "Established"),
      ).toBe(true);
    } finally {
      await cluster.close();
    }
  });
});
