/**
 * Gossip cost: in a converged full mesh, one change (a link between two peers goes away: two
 * records change, one removed connection each) costs each peer at most two flushes of
 * ⌈2·log2 N⌉ topology messages, each carrying the two deltas — O(1) bytes a message, O(log N) a
 * peer, O(N log N) in all — where Weave would push the whole O(N²) topology in every message.
 */
import { describe, expect, it } from "vitest";
import { topologyMessageSize } from "../src/mesh/codec.ts";
import type { RecordDelta } from "../src/mesh/codec.ts";
import { FULL_EXCHANGE_MS } from "../src/mesh/mesh.ts";
import { Harness } from "./mesh-harness.ts";

async function measure(n: number): Promise<{ perNode: number; bound: number; weavePerMessage: number; oursPerMessage: number; requests: number }> {
  const h = new Harness({ n, seed: 7 + n });
  await h.startAll();
  await h.until(() => h.fullyConnected() && h.converged(), 60_000, 250);
  // Act just after a periodic digest exchange, so the window holds only the change's own gossip.
  await h.clock.advance(FULL_EXCHANGE_MS - (h.clock.now() % FULL_EXCHANGE_MS) + 2_000);
  const before = h.peers.map((p) => p.mesh.gossipCounters());
  const [a, b] = [h.peers[0]!, h.peers[1]!];
  a.members.remove(b.node);
  b.members.remove(a.node);
  await h.until(() => !a.mesh.connections().some((c) => c.node === b.node) && h.converged(), 10_000, 50);
  await h.clock.advance(3_000);
  let topologyBytes = 0;
  let requests = 0;
  h.peers.forEach((p, i) => {
    const now = p.mesh.gossipCounters();
    topologyBytes += now.topology.bytes - before[i]!.topology.bytes;
    requests += now.request.messages - before[i]!.request.messages;
  });
  // The rule: 2 changed records, each a delta with one removed connection; ≤ 2 flushes per peer
  // (the two deltas may arrive in different coalescing windows), each to ⌈2·log2 N⌉ neighbours.
  const delta = (name: string, gone: string): RecordDelta => ({ name, uid: "0".repeat(16), base: 1_000, version: 1_001, shortId: 4_095, set: [], removed: [gone] });
  const oursPerMessage = topologyMessageSize([], [delta(a.mesh.self.name, b.mesh.self.name), delta(b.mesh.self.name, a.mesh.self.name)]);
  const fanout = Math.ceil(2 * Math.log2(n));
  const bound = 2 * fanout * oursPerMessage;
  const records = h.peers.map((p) => ({
    ...p.mesh.self,
    connections: p.mesh
      .peers()
      .find((q) => q.identity.name === p.mesh.self.name)!
      .connections.map((c) => ({ ...c, outbound: true })),
  }));
  const weavePerMessage = topologyMessageSize(records);
  await h.stopAll();
  return { perNode: topologyBytes / n, bound, weavePerMessage, oursPerMessage, requests };
}

describe("mesh: gossip message size", () => {
  it("one change in a converged full mesh costs O(log N) bytes per peer, not O(N²)", async () => {
    const results = [];
    for (const n of [8, 16, 32]) {
      const r = await measure(n);
      results.push({ n, ...r });
      expect(r.perNode).toBeGreaterThan(0);
      expect(r.perNode).toBeLessThanOrEqual(r.bound);
      expect(r.requests).toBe(0);
      // A full-topology message grows with N², ours does not grow with N at all.
      expect(r.weavePerMessage).toBeGreaterThan(n * (n - 1) * 7);
    }
    expect(new Set(results.map((r) => r.oursPerMessage)).size).toBe(1);
    const [small, large] = [results[0]!, results[2]!];
    // N grew 4×: per-peer bytes may grow with log N (fan-out), far from the 16× of N².
    expect(large.perNode / small.perNode).toBeLessThan((Math.log2(large.n) / Math.log2(small.n)) * 1.5 + 0.5);
  }, 120_000);
});
