// Route reflectors through a cluster's life, 10 nodes of which node-1 and node-2 reflect (the shared
// suite runs reflectors too, test/conformance-rr.test.ts; here they are named Node resources).
// sim.test.ts covers joining, a client crash and a client restart with reflectors; here the
// reflectors themselves restart and crash, and clients join and leave while only one is left.
import { describe, expect, it } from "vitest";
import { ConfigError, canonicalDataplane } from "@cnikit/core";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import { RR_CLUSTER_ID_ANNOTATION } from "../src/agent.ts";
import { calicoFixtures, withRouteReflectors } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";
import { checkIpam } from "../src/ipam.ts";
import type { CalicoAgent } from "../src/agent.ts";
import { drive } from "./helpers.ts";

const REFLECTORS = ["node-1", "node-2"];
const cases = ["ipip-crosssubnet", "vxlan-crosssubnet"].map((label) => ({ label, raw: withRouteReflectors(calicoFixtures.configs.find((c) => c.label === label)!.config, REFLECTORS) as unknown }));

describe.each(cases)("$label, 2 route reflectors among 10 nodes", ({ raw }) => {
  it("clients peer only with the reflectors; reflector restart and crash, client join and leave", async () => {
    const config = calico.parseConfig(raw);
    const summary = calico.summarize(config);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 7 });
    const bgpOf = (name: string) => (cluster.node(name).agent as CalicoAgent).bgp!;
    const ipOf = (name: string) => cluster.node(name).info.underlay[0]!.address;
    const alive = () =>
      cluster
        .nodes()
        .filter((n) => n.alive)
        .map((n) => n.name);
    const fullyReachable = () => {
      const r = cluster.reachability({ maxFailures: 5 });
      expect(r.failures.map((f) => f.result.reason)).toEqual([]);
      expect(r.delivered).toBe(r.pairs);
    };
    /** Every alive node has a BGP route to a block of every other alive node. */
    const everyBlockRouted = () => {
      for (const name of alive()) {
        const vias = new Set(
          cluster
            .dataplane(name)
            .routes.filter((r) => r.origin === "bgp")
            .map((r) => r.via),
        );
        const fdbs = new Set(cluster.dataplane(name).fdb.map((f) => f.dst));
        for (const other of alive()) if (other !== name) expect(vias.has(ipOf(other)) || fdbs.has(ipOf(other)), `${name} -> ${other}`).toBe(true);
      }
    };
    try {
      const nodes = await drive(cluster.clock, cluster.addNodes(10));
      for (const n of nodes) await cluster.addPod(n.name, { name: `p-${n.name}` });
      await cluster.settle({ limitMs: summary.convergenceMs });
      expect(nodes.slice(0, 2).map((n) => n.name)).toEqual(REFLECTORS);
      // Topology: a client has exactly the two reflectors as peers; a reflector has every other node.
      const rrIps = REFLECTORS.map(ipOf).sort();
      for (const n of nodes.slice(2))
        expect(
          bgpOf(n.name)
            .peerStatus()
            .map((p) => p.address)
            .sort(),
          n.name,
        ).toEqual(rrIps);
      for (const r of REFLECTORS) {
        const st = bgpOf(r).peerStatus();
        expect(st.length, r).toBe(9);
        expect(
          st.every((p) => p.state === "Established"),
          r,
        ).toBe(true);
      }
      everyBlockRouted();
      fullyReachable();

      // A reflector's agent restarts: once settled, every dataplane is what it was.
      const before = new Map(alive().map((n) => [n, JSON.stringify(canonicalDataplane(cluster.dataplane(n)))]));
      await drive(cluster.clock, cluster.restartAgent("node-2"));
      await cluster.settle({ limitMs: summary.convergenceMs });
      for (const [name, dp] of before) expect(JSON.stringify(canonicalDataplane(cluster.dataplane(name))), name).toBe(dp);
      expect(
        bgpOf("node-2")
          .peerStatus()
          .every((p) => p.state === "Established"),
      ).toBe(true);

      // The other reflector crashes: node-2 alone keeps every client's routes (its own block is gone).
      const crashedIp = ipOf("node-1");
      await cluster.removeNode("node-1", { mode: "crash" });
      await cluster.settle({ limitMs: summary.crashDetectionMs });
      for (const name of alive()) expect(cluster.dataplane(name).routes.some((r) => r.via === crashedIp) || cluster.dataplane(name).fdb.some((f) => f.dst === crashedIp), name).toBe(false);
      everyBlockRouted();
      fullyReachable();

      // A client joins with one reflector left: it learns every block and every node learns its own.
      const late = await drive(cluster.clock, cluster.addNode());
      await cluster.addPod(late.name, { name: `p-${late.name}` });
      await cluster.settle({ limitMs: summary.convergenceMs });
      expect(
        bgpOf(late.name)
          .peerStatus()
          .filter((p) => p.state === "Established")
          .map((p) => p.address),
      ).toEqual([ipOf("node-2")]);
      everyBlockRouted();
      fullyReachable();

      // A client leaves cleanly: its routes go everywhere, its addresses return to the pool.
      const leaver = nodes[6]!.name;
      const leaverIp = ipOf(leaver);
      await drive(cluster.clock, cluster.removeNode(leaver, { mode: "clean" }));
      await cluster.settle({ limitMs: summary.convergenceMs });
      for (const name of alive()) expect(cluster.dataplane(name).routes.some((r) => r.via === leaverIp) || cluster.dataplane(name).fdb.some((f) => f.dst === leaverIp), name).toBe(false);
      everyBlockRouted();
      fullyReachable();
      expect(await checkIpam(cluster.store, config.pools)).toEqual([]);
    } finally {
      await cluster.close();
    }
  });
});

describe("route reflectors chosen by Kubernetes node metadata (label + RouteReflectorClusterID annotation)", () => {
  const raw = withRouteReflectors(calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!.config, []);
  const rrMeta = (ordinal: number) => (ordinal < 2 ? { labels: { "route-reflector": "true" }, annotations: { [RR_CLUSTER_ID_ANNOTATION]: "244.0.0.1" } } : {});

  it("the annotated nodes reflect: clients peer with them only, and every block is routed everywhere", async () => {
    const config = calico.parseConfig(raw);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 3, nodeMetadata: rrMeta });
    try {
      const nodes = await drive(cluster.clock, cluster.addNodes(6));
      for (const n of nodes) await cluster.addPod(n.name, { name: `p-${n.name}` });
      await cluster.settle({ limitMs: calico.summarize(config).convergenceMs });
      const ip = (name: string) => cluster.node(name).info.underlay[0]!.address;
      const rrIps = nodes
        .slice(0, 2)
        .map((n) => ip(n.name))
        .sort();
      for (const n of nodes.slice(2))
        expect(
          (cluster.node(n.name).agent as CalicoAgent)
            .bgp!.peerStatus()
            .map((p) => p.address)
            .sort(),
          n.name,
        ).toEqual(rrIps);
      for (const n of nodes) expect(cluster.dataplane(n.name).routes.filter((r) => r.origin === "bgp").length, n.name).toBeGreaterThanOrEqual(nodes.length - 1);
      const r = cluster.reachability({ maxFailures: 3 });
      expect(r.failures.map((f) => f.result.reason)).toEqual([]);
    } finally {
      await cluster.close();
    }
  });

  it("an annotation that is not an IPv4 address is refused with the field named, before anything is allocated", async () => {
    const config = calico.parseConfig(raw);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 3, nodeMetadata: () => ({ annotations: { [RR_CLUSTER_ID_ANNOTATION]: "cluster-a" } }) });
    try {
      const err = await drive(cluster.clock, cluster.addNode()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toContain(RR_CLUSTER_ID_ANNOTATION);
      expect((err as ConfigError).code).toBe(7);
      expect(await checkIpam(cluster.store, config.pools)).toEqual([]);
      expect((await cluster.store.list("/calico/ipam/")).items).toEqual([]);
    } finally {
      await cluster.close();
    }
  });
});
