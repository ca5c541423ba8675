// Crash detection by the BGP hold timer: a node that goes silent (a power-off: no FIN, no RST) is
// withdrawn by its peers only when their hold timers expire — not before HOLD_TIME minus one
// keepalive interval after the cut (the last keepalive may have arrived up to hold/3 before it), and
// no later than HOLD_TIME after it — and once it is reachable again its sessions come back and its
// routes return. Full mesh and route reflectors (the victim a client), on the virtual clock.
//
// The silence is a one-hour delay on everything the victim sends or receives: `network.isolate`
// would not do, because the simulator's TCP resets a connection whose messages a partition has
// held for 30 s (MemoryNetwork `resetAfterMs`), which a peer sees before its 90 s hold timer; a
// real kernel retransmits for minutes (tcp_retries2) and the hold timer decides.
import { describe, expect, it } from "vitest";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import { HOLD_TIME } from "../src/agent.ts";
import { calicoFixtures, withRouteReflectors } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";
import type { CalicoAgent } from "../src/agent.ts";
import { drive } from "./helpers.ts";

const base = calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!.config;
const cases = [
  { label: "mesh", raw: base as unknown },
  { label: "route reflectors", raw: withRouteReflectors(base) as unknown },
];
const STEP_MS = 250;
const SILENT = { delayMs: { min: 3_600_000, max: 3_600_000 } };

describe.each(cases)("$label, 6 nodes", ({ raw }) => {
  it("a silent node is withdrawn by the hold timer, then comes back", async () => {
    const config = calico.parseConfig(raw);
    const summary = calico.summarize(config);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 5 });
    try {
      const nodes = await drive(cluster.clock, cluster.addNodes(6));
      for (const n of nodes) await cluster.addPod(n.name, { name: `p-${n.name}` });
      await cluster.settle({ limitMs: summary.convergenceMs });
      // Keepalives run: let a few go by so that the cut falls at an arbitrary point of their cycle.
      await cluster.clock.advance(47_000);
      const victim = nodes[4]!;
      const ip = victim.info.underlay[0]!.address;
      const others = nodes.filter((n) => n !== victim);
      const routesToVictim = (name: string) => cluster.dataplane(name).routes.filter((r) => r.via === ip).length;
      for (const n of others) expect(routesToVictim(n.name), n.name).toBeGreaterThan(0);

      const cut = cluster.clock.now();
      cluster.network.setFaults(SILENT, { from: victim.name });
      cluster.network.setFaults(SILENT, { to: victim.name });
      const withdrawnAt = new Map<string, number>();
      while (withdrawnAt.size < others.length && cluster.clock.now() - cut <= (HOLD_TIME + 10) * 1000) {
        await cluster.clock.advance(STEP_MS);
        for (const n of others) if (!withdrawnAt.has(n.name) && routesToVictim(n.name) === 0) withdrawnAt.set(n.name, cluster.clock.now() - cut);
      }
      expect([...withdrawnAt.keys()].sort()).toEqual(others.map((n) => n.name).sort());
      for (const [name, ms] of withdrawnAt) {
        expect(ms, `${name} withdrew before the hold timer could expire`).toBeGreaterThanOrEqual(((HOLD_TIME * 2) / 3) * 1000);
        expect(ms, `${name} withdrew later than the hold time`).toBeLessThanOrEqual(HOLD_TIME * 1000 + STEP_MS);
      }
      // It was the hold timer: the peers of the victim say so.
      const peersOfVictim = others.filter((n) => (n.agent as CalicoAgent).bgp?.peerStatus().some((p) => p.address === ip));
      expect(peersOfVictim.length).toBeGreaterThan(0);
      for (const n of peersOfVictim) {
        const st = (cluster.node(n.name).agent as CalicoAgent).bgp!.peerStatus().find((p) => p.address === ip)!;
        expect(st.state, n.name).not.toBe("Established");
        expect(st.lastError, n.name).toMatch(/hold timer expired/);
      }
      const cutOff = cluster.reachability({ maxFailures: 1 });
      expect(cutOff.delivered).toBeLessThan(cutOff.pairs);

      // Reachable again: sessions re-establish (ConnectRetry 5 s) and the routes return.
      cluster.network.clearFaults();
      await cluster.settle({ limitMs: 30_000 });
      for (const n of others) expect(routesToVictim(n.name), n.name).toBeGreaterThan(0);
      for (const n of peersOfVictim) {
        const st = (cluster.node(n.name).agent as CalicoAgent).bgp!.peerStatus().find((p) => p.address === ip)!;
        expect(st.state, n.name).toBe("Established");
      }
      const back = cluster.reachability({ maxFailures: 5 });
      expect(back.failures.map((f) => f.result.reason)).toEqual([]);
      expect(back.delivered).toBe(back.pairs);
    } finally {
      await cluster.close();
    }
  });
});
