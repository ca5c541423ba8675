// Graceful restart and the BGP session introspection (`NodeAgent.bgpSessions`) in the simulator: an
// agent restart keeps every other node's dataplane unchanged at every step (the peers hold the
// restarting node's routes as stale), the restarted speaker re-announces and sends End-of-RIB, and
// the stale routes are gone afterwards; a clean leave (Cease) withdraws at once.
import { describe, expect, it } from "vitest";
import { canonicalDataplane } from "@cnikit/core";
import type { BgpSessionStatus } from "@cnikit/core";
import { SimCluster, singleSubnetTopology } from "@cnikit/sim";
import type { CalicoConfig } from "../src/config.ts";
import { calicoFixtures } from "../src/fixtures.ts";
import { RESTART_TIME } from "../src/agent.ts";
import { calico } from "../src/index.ts";
import { drive } from "./helpers.ts";

const raw = calicoFixtures.configs.find((c) => c.label === "bgp")!.config;

async function cluster4(): Promise<{ cluster: SimCluster<CalicoConfig>; names: string[]; convergenceMs: number }> {
  const config = calico.parseConfig(raw);
  const cluster = SimCluster.create({ backend: calico, config, topology: singleSubnetTopology(), seed: 5 });
  const names = (await drive(cluster.clock, cluster.addNodes(4))).map((n) => n.name);
  const convergenceMs = calico.summarize(config).convergenceMs;
  for (const name of names) await drive(cluster.clock, cluster.addPod(name, { name: `p-${name}` }));
  await cluster.settle({ limitMs: convergenceMs });
  return { cluster, names, convergenceMs };
}

function sessions(cluster: SimCluster<CalicoConfig>, name: string): BgpSessionStatus[] {
  const agent = cluster.node(name).agent;
  expect(agent.bgpSessions, "calico's agent implements bgpSessions").toBeTypeOf("function");
  return agent.bgpSessions!();
}

describe("calico: BGP sessions and graceful restart", () => {
  it("bgpSessions names every mesh peer by node, Established, with graceful restart and the End-of-RIB time", async () => {
    const { cluster, names } = await cluster4();
    try {
      for (const name of names) {
        const s = sessions(cluster, name);
        expect(s.map((x) => x.peer)).toEqual(names.filter((n) => n !== name));
        for (const x of s) {
          expect(x.state).toBe("Established");
          expect(x.gracefulRestart).toBe(true);
          expect(x.staleRoutes).toBe(0);
          expect(x.routesReceived).toBeGreaterThan(0);
          expect(x.endOfRibReceivedAt).toBeGreaterThanOrEqual(x.establishedAt!);
          expect(x.endOfRibReceivedAt).toBeLessThanOrEqual(cluster.clock.now());
        }
      }
    } finally {
      await cluster.close();
    }
  });

  it("an agent restart: no other node's dataplane changes at any step, its routes are stale meanwhile, End-of-RIB ends it", async () => {
    const { cluster, names, convergenceMs } = await cluster4();
    try {
      const victim = names[names.length - 1]!;
      const others = names.filter((n) => n !== victim);
      const view = (n: string) => JSON.stringify(canonicalDataplane(cluster.dataplane(n)));
      const before = new Map(others.map((n) => [n, view(n)]));
      const changed: string[] = [];
      const unsubscribe = others.map((n) => cluster.node(n).agent.onDataplaneChange(() => void (view(n) !== before.get(n) && changed.push(`${n} at ${cluster.clock.now()}`))));
      const toVictim = (n: string) => sessions(cluster, n).find((s) => s.peer === victim)!;
      const t0 = cluster.clock.now();
      let done = false;
      const op = cluster.restartAgent(victim).finally(() => (done = true));
      let staleSeen = 0;
      while (!done) {
        await cluster.clock.advance(50);
        staleSeen = Math.max(staleSeen, ...others.map((n) => toVictim(n).staleRoutes));
      }
      await op;
      await cluster.settle({ limitMs: convergenceMs });
      for (const u of unsubscribe) u();
      expect(changed).toEqual([]);
      for (const n of others) expect(view(n), n).toBe(before.get(n));
      expect(staleSeen).toBeGreaterThan(0);
      for (const n of others) {
        const s = toVictim(n);
        expect(s.state).toBe("Established");
        expect(s.staleRoutes).toBe(0);
        expect(s.endOfRibReceivedAt).toBeGreaterThan(t0);
      }
      // The restarted speaker was Established again with every peer.
      expect(sessions(cluster, victim).map((s) => s.state)).toEqual(others.map(() => "Established"));
    } finally {
      await cluster.close();
    }
  });

  it("a clean leave (Cease) withdraws the node's routes at once: no stale routes kept", async () => {
    const { cluster, names } = await cluster4();
    try {
      const victim = names[names.length - 1]!;
      const ip = cluster.node(victim).info.underlay[0]!.address;
      for (const n of names.slice(0, -1)) expect(sessions(cluster, n).find((s) => s.peer === victim)?.routesReceived, n).toBeGreaterThan(0);
      expect(cluster.dataplane(names[0]!).routes.some((r) => r.via === ip)).toBe(true);
      await drive(cluster.clock, cluster.removeNode(victim, { mode: "clean" }));
      await cluster.clock.advance(100);
      for (const n of names.slice(0, -1)) {
        expect(
          cluster.dataplane(n).routes.some((r) => r.via === ip),
          n,
        ).toBe(false);
        expect(sessions(cluster, n).every((s) => s.staleRoutes === 0)).toBe(true);
      }
    } finally {
      await cluster.close();
    }
  });

  it("a node whose Node object is deleted is de-configured as a peer: its routes go at once, not kept stale for the restart time", async () => {
    const { cluster, names } = await cluster4();
    try {
      const victim = names[names.length - 1]!;
      const others = names.slice(0, -1);
      const ip = cluster.node(victim).info.underlay[0]!.address;
      // A crash (no NOTIFICATION): the survivors keep its routes as graceful-restart stale routes.
      await drive(cluster.clock, cluster.removeNode(victim, { mode: "crash" }));
      await cluster.clock.advance(5_000);
      for (const n of others) {
        expect(
          cluster.dataplane(n).routes.some((r) => r.via === ip),
          `${n} keeps the stale routes`,
        ).toBe(true);
        expect(sessions(cluster, n).find((s) => s.peer === victim)?.staleRoutes, n).toBeGreaterThan(0);
      }
      // Its Node object is deleted (`kubectl delete node`): every survivor drops the peer and its routes.
      const t0 = cluster.clock.now();
      cluster.deleteNode(victim);
      const gone = () => others.every((n) => !cluster.dataplane(n).routes.some((r) => r.via === ip) && !sessions(cluster, n).some((s) => s.peer === victim));
      while (!gone() && cluster.clock.now() - t0 < RESTART_TIME * 1000) await cluster.clock.advance(10);
      const took = cluster.clock.now() - t0;
      expect(gone(), "the deleted node's routes and sessions are gone").toBe(true);
      expect(took).toBeLessThanOrEqual(1_000);
    } finally {
      await cluster.close();
    }
  });
});
