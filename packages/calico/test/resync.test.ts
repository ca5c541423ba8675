// A watch that silently loses events (a broken proxy, a missed informer event) is repaired by the
// periodic re-list (RESYNC_MS): without it a node never learns of a peer that joined meanwhile.
import { describe, expect, it } from "vitest";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import { RESYNC_MS } from "../src/agent.ts";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";

describe("calico re-lists on RESYNC_MS", () => {
  it("learns a peer that joined while its node watch lost every event, by the next period", async () => {
    const config = calico.parseConfig(calicoFixtures.configs[0]!.config);
    const cluster = SimCluster.create({ backend: calico, config, topology: defaultTopology(), seed: 5 });
    try {
      await cluster.addNode({ name: "a" });
      await cluster.addNode({ name: "b" });
      await cluster.settle({ limitMs: 5_000 });
      cluster.setLosingWatchEvents("a", true);
      await cluster.addNode({ name: "c" });
      const pc = await cluster.addPod("c");
      const pa = await cluster.addPod("a");
      await cluster.settle({ limitMs: 5_000 });
      cluster.setLosingWatchEvents("a", false);
      expect(cluster.storeFaults("a").lostEvents).toBeGreaterThan(0);
      const reach = () => cluster.send({ kind: "pod", key: pa.key }, { kind: "pod", key: pc.key }).delivered;
      await cluster.settle({ limitMs: RESYNC_MS + 10_000 });
      expect(reach()).toBe(true);
      expect(cluster.send({ kind: "pod", key: pc.key }, { kind: "pod", key: pa.key }).delivered).toBe(true);
    } finally {
      await cluster.close();
    }
  });
});
