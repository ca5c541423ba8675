/**
 * The mesh in virtual time (VirtualClock + MemoryNetwork + per-peer MemoryMembership): connection
 * handshake and duplicate resolution, full and partial meshes, routing, broadcast, failure
 * detection, restarts, back-off and the accept limit.
 */
import { seededRandom } from "@cnikit/core";
import type { PeerConnection } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { ACCEPT_BURST, RECONNECT_CAP_MS, reconnectDelay } from "../src/mesh/connection-maker.ts";
import { HEARTBEAT_MS, HEARTBEATS_MISSED } from "../src/mesh/connection.ts";
import { GossipRejected } from "../src/mesh/gossip.ts";
import { MESH_SERVICE } from "../src/mesh/mesh.ts";
import { Harness, SetChannel } from "./mesh-harness.ts";

const ring = (n: number) => (i: number) => [(i + n - 1) % n, (i + 1) % n];
const line = (n: number) => (i: number) => [i - 1, i + 1].filter((k) => k >= 0 && k < n);

describe("mesh: connections", () => {
  it("two peers dialling each other at once end with one connection, the same on both sides", async () => {
    const h = new Harness({ n: 2 });
    await h.startAll();
    await h.until(() => h.peers.every((p) => p.mesh.connections().some((c) => c.established)), 5_000);
    await h.clock.advance(2_000);
    const [a, b] = [h.peers[0]!, h.peers[1]!];
    expect(a.mesh.targets()[0]!.attempts).toBeGreaterThanOrEqual(1);
    expect(b.mesh.targets()[0]!.attempts).toBeGreaterThanOrEqual(1);
    expect(a.mesh.connections()).toHaveLength(1);
    expect(b.mesh.connections()).toHaveLength(1);
    const ca = a.mesh.connections()[0]!;
    const cb = b.mesh.connections()[0]!;
    expect(ca.outbound).toBe(!cb.outbound);
    expect(ca.remote.name).toBe(b.mesh.self.name);
    expect(cb.remote.uid).toBe(a.mesh.self.uid);
    expect(a.mesh.nextHop(b.mesh.self.name)).toBe(b.mesh.self.name);
    expect(a.mesh.self.name).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(a.mesh.self.nickname).toBe("n0");
    await h.stopAll();
  });

  it("exchanges features in the handshake", async () => {
    const h = new Harness({ n: 2, options: (i) => ({ features: { fastdp: i === 0 ? "1" : "0", mtu: "1376" } }) });
    await h.startAll();
    await h.until(() => h.peers.every((p) => p.mesh.connections().some((c) => c.established)), 5_000);
    expect(h.peers[1]!.mesh.connections()[0]!.features).toEqual({ fastdp: "1", mtu: "1376" });
    expect(h.peers[0]!.mesh.connections()[0]!.features).toEqual({ fastdp: "0", mtu: "1376" });
    await h.stopAll();
  });

  it("refuses a peer that speaks no common protocol version, with the reason on both sides", async () => {
    const h = new Harness({ n: 2, options: (i) => (i === 1 ? { protocolVersions: { min: 3, max: 4 } } : {}) });
    await h.startAll();
    await h.until(() => h.peers.every((p) => p.mesh.targets()[0]!.failures >= 2), 30_000);
    for (const p of h.peers) {
      expect(p.mesh.connections()).toHaveLength(0);
      expect(p.mesh.status().join("\n")).toMatch(/protocol version mismatch: n\d speaks versions \d\.\.\d, we speak \d\.\.\d/);
    }
    await h.stopAll();
  });

  it("keeps the persisted peer name across a restart and gets a new UID; the others see the restart", async () => {
    const h = new Harness({ n: 3 });
    await h.startAll();
    await h.until(() => h.converged(), 10_000);
    const before = h.peers[2]!.mesh.self;
    const fresh = await h.restart(2);
    expect(fresh.mesh.self.name).toBe(before.name);
    expect(fresh.mesh.self.uid).not.toBe(before.uid);
    await h.until(() => h.converged(), 30_000);
    for (const p of h.peers.slice(0, 2)) {
      const seen = p.mesh.peers().find((q) => q.identity.name === before.name)!;
      expect(seen.identity.uid).toBe(fresh.mesh.self.uid);
      expect(seen.identity.version).toBe(fresh.mesh.self.version);
    }
    await h.stopAll();
  });
});

describe("mesh: restarts in a partial mesh", () => {
  it("a peer two hops away replaces the old incarnation's record with the new one", async () => {
    const h = new Harness({ n: 4, neighbours: line(4) });
    await h.startAll();
    await h.until(() => h.converged(), 20_000);
    const old = h.peers[3]!.mesh.self;
    const fresh = await h.restart(3);
    await h.until(() => h.converged(), 40_000);
    const seen = h.peers[0]!.mesh.knows(old.name)!;
    expect(seen.uid).toBe(fresh.mesh.self.uid);
    expect(fresh.mesh.self.version).toBeGreaterThan(old.version);
    await h.stopAll();
  });
});

describe("mesh: full meshes converge", () => {
  for (const n of [10, 50]) {
    it(`${n} peers: every peer knows every peer and every link`, async () => {
      const h = new Harness({ n, seed: n });
      await h.startAll();
      const took = await h.until(() => h.fullyConnected() && h.converged(), 60_000, 250);
      for (const p of h.peers) {
        expect(p.mesh.connections().filter((c) => c.established)).toHaveLength(n - 1);
        for (const rec of p.mesh.peers()) expect(rec.connections.filter((c) => c.established)).toHaveLength(n - 1);
      }
      expect(took).toBeLessThan(60_000);
      await h.stopAll();
    }, 120_000);
  }
});

describe("mesh: partial meshes relay", () => {
  it("a line of 8: topology, channel gossip and unicast cross every hop", async () => {
    const n = 8;
    const h = new Harness({ n, neighbours: line(n) });
    const chans = h.peers.map((p) => {
      const c = new SetChannel();
      return { handler: c, channel: p.mesh.channel("set", c) };
    });
    await h.startAll();
    await h.until(() => h.converged(), 30_000);
    const [first, last] = [h.peers[0]!.mesh, h.peers[n - 1]!.mesh];
    expect(first.nextHop(last.self.name)).toBe(h.peers[1]!.mesh.self.name);
    expect(first.connections()).toHaveLength(1);
    chans[0]!.handler.items.add("from-n0");
    chans[0]!.channel.gossip(SetChannel.encode(["from-n0"]));
    await h.until(() => chans.every((c) => c.handler.items.has("from-n0")), 15_000);
    expect(chans[0]!.channel.gossipUnicast(last.self.name, new TextEncoder().encode("hello n7"))).toBe(true);
    await h.until(() => chans[n - 1]!.handler.unicasts.length > 0, 5_000);
    expect(chans[n - 1]!.handler.unicasts).toEqual([{ source: first.self.name, text: "hello n7" }]);
    for (const c of chans.slice(1, n - 1)) expect(c.handler.unicasts).toEqual([]);
    await h.stopAll();
  });

  it("a newcomer joining late gets the channels' complete state", async () => {
    const h = new Harness({ n: 4, neighbours: line(4) });
    const chans = h.peers.map((p) => {
      const c = new SetChannel();
      p.mesh.channel("set", c);
      return c;
    });
    for (const p of h.peers.slice(0, 3)) await p.mesh.start();
    chans[0]!.items.add("old-news");
    await h.clock.advance(5_000);
    await h.peers[3]!.mesh.start();
    await h.until(() => chans[3]!.items.has("old-news"), 40_000);
    await h.stopAll();
  });

  it("a channel registered after start hands its complete state to the neighbours at once", async () => {
    const h = new Harness({ n: 3 });
    await h.startAll();
    await h.until(() => h.fullyConnected() && h.converged(), 10_000);
    const late = h.peers.map(() => new SetChannel());
    late[1]!.items.add("early");
    h.peers.forEach((p, i) => p.mesh.channel("late", late[i]!));
    await h.until(() => late.every((c) => c.items.has("early")), 2_000, 10);
    expect(h.peers[0]!.mesh.peerNames().sort()).toEqual(h.peers.map((p) => p.mesh.self.name).sort());
    await h.stopAll();
  });

  for (const [label, n, neighbours] of [
    ["a ring of 9", 9, ring(9)],
    ["a full mesh of 10", 10, undefined],
  ] as const) {
    it(`broadcast reaches each peer exactly once (${label})`, async () => {
      const h = new Harness({ n, ...(neighbours ? { neighbours } : {}) });
      const chans = h.peers.map((p) => {
        const c = new SetChannel();
        return { handler: c, channel: p.mesh.channel("set", c) };
      });
      await h.startAll();
      await h.until(() => h.converged(), 30_000);
      for (const [k, src] of [0, 4].entries()) chans[src]!.channel.gossipBroadcast(new TextEncoder().encode(`b${k}`));
      await h.clock.advance(3_000);
      h.peers.forEach((p, i) => {
        const got = chans[i]!.handler.broadcasts.map((b) => b.text).sort();
        expect(got).toEqual([...(i === 0 ? [] : ["b0"]), ...(i === 4 ? [] : ["b1"])]);
      });
      expect(chans[1]!.handler.broadcasts.find((b) => b.text === "b0")!.source).toBe(h.peers[0]!.mesh.self.name);
      await h.stopAll();
    });
  }
});

describe("mesh: failures", () => {
  it("a crashed peer is declared dead after missed heartbeats and the topology drops it", async () => {
    const h = new Harness({ n: 5, resetAfterMs: 3_600_000 });
    await h.startAll();
    await h.until(() => h.converged(), 10_000);
    const dead = h.peers[4]!;
    const name = dead.mesh.self.name;
    h.network.isolate(dead.node);
    const alive = h.peers.slice(0, 4);
    await h.clock.advance(HEARTBEATS_MISSED * HEARTBEAT_MS - HEARTBEAT_MS);
    // Streams are stalled, not reset: only heartbeats can tell; 50 s in nobody has given up yet.
    for (const p of alive) expect(p.mesh.connections().some((c) => c.node === dead.node)).toBe(true);
    const took = await h.until(() => alive.every((p) => !p.mesh.reachable(name) && !p.mesh.peers().some((q) => q.identity.name === name)), 30_000);
    expect(took).toBeLessThanOrEqual(2 * HEARTBEAT_MS + 5_000);
    for (const p of alive) expect(p.mesh.connections().map((c) => c.node)).not.toContain(dead.node);
    expect(h.converged(alive)).toBe(true);
    await h.stopAll();
  });

  it("a handler's GossipRejected drops the connection the update came on", async () => {
    const h = new Harness({ n: 2 });
    const a = new SetChannel();
    const b = new SetChannel();
    const ca = h.peers[0]!.mesh.channel("ring", a);
    h.peers[1]!.mesh.channel("ring", b);
    await h.startAll();
    await h.until(() => h.converged(), 10_000);
    b.rejectWith = new GossipRejected("incompatible ring");
    ca.gossip(SetChannel.encode(["x"]));
    await h.until(() => h.peers[1]!.mesh.connections().length === 0 || h.peers[1]!.mesh.connections()[0]!.state !== "established", 5_000, 10);
    await h.stopAll();
  });
});

describe("mesh: reconnect back-off and accept limit", () => {
  it("reconnectDelay: 2 s × 1.5 per failure, ±50 % jitter, capped at 6 min", () => {
    expect(reconnectDelay(1, () => 0.5)).toBe(2_000);
    expect(reconnectDelay(2, () => 0.5)).toBe(3_000);
    expect(reconnectDelay(3, () => 0.5)).toBe(4_500);
    expect(reconnectDelay(1, () => 0)).toBe(1_000);
    expect(reconnectDelay(1, () => 0.999999)).toBeCloseTo(3_000, 0);
    expect(reconnectDelay(40, () => 0.5)).toBe(RECONNECT_CAP_MS);
    expect(reconnectDelay(40, () => 0.999)).toBe(RECONNECT_CAP_MS);
    const rnd = seededRandom(3);
    const draws = Array.from({ length: 50 }, () => reconnectDelay(4, rnd));
    expect(new Set(draws).size).toBeGreaterThan(40);
    for (const d of draws) expect(d).toBeGreaterThanOrEqual(0.5 * 2_000 * 1.5 ** 3);
  });

  it("retries an unreachable member with growing, jittered gaps and resets after a minute up", async () => {
    const h = new Harness({ n: 2 });
    const a = h.peers[0]!;
    await a.mesh.start();
    const times: number[] = [];
    let seen = 0;
    while (times.length < 7) {
      await h.clock.advance(100);
      const t = a.mesh.targets()[0]!;
      if (t.attempts > seen) {
        seen = t.attempts;
        times.push(h.clock.now());
      }
    }
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    gaps.forEach((g, i) => {
      const base = 2_000 * 1.5 ** i;
      expect(g).toBeGreaterThanOrEqual(0.5 * base - 100);
      expect(g).toBeLessThanOrEqual(1.5 * base + 200);
    });
    expect(gaps[5]!).toBeGreaterThan(gaps[0]!);
    expect(a.mesh.targets()[0]!.failures).toBe(7);
    await h.peers[1]!.mesh.start();
    await h.until(() => a.mesh.connections().some((c) => c.established), 60_000);
    await h.clock.advance(61_000);
    h.network.disconnect("n1");
    await h.clock.advance(10);
    expect(a.mesh.targets()[0]!.failures).toBe(0);
    await h.until(() => a.mesh.connections().some((c) => c.established), 10_000);
    await h.stopAll();
  }, 30_000);

  it("accepts a burst of 20 connections, then one per 50 ms", async () => {
    const h = new Harness({ n: 1 });
    await h.peers[0]!.mesh.start();
    const clients = Array.from({ length: 30 }, (_, i) => h.network.transport(`c${i}`));
    const closed: string[] = [];
    const pending = clients.map(async (t) => {
      const pc: PeerConnection = await t.connect("n0", MESH_SERVICE);
      pc.onClose((r) => closed.push(r));
      return pc;
    });
    await h.clock.advance(10);
    const conns = await Promise.all(pending);
    await h.clock.advance(10);
    expect(conns).toHaveLength(30);
    expect(closed.filter((r) => r.startsWith("accept rate limit"))).toHaveLength(30 - ACCEPT_BURST);
    const laterP = clients[0]!.connect("n0", MESH_SERVICE);
    await h.clock.advance(1);
    const later = await laterP;
    let laterClosed = "";
    later.onClose((r) => (laterClosed = r));
    await h.clock.advance(10);
    expect(laterClosed).toMatch(/^accept rate limit/);
    await h.clock.advance(60);
    const againP = clients[1]!.connect("n0", MESH_SERVICE);
    await h.clock.advance(1);
    const again = await againP;
    let againClosed = "";
    again.onClose((r) => (againClosed = r));
    await h.clock.advance(10);
    expect(againClosed).not.toMatch(/^accept rate limit/);
    await h.stopAll();
  });

  it("CONN_LIMIT bounds a peer's connections", async () => {
    const h = new Harness({ n: 6, options: (i) => (i === 0 ? { connLimit: 2 } : {}) });
    await h.startAll();
    await h.clock.advance(10_000);
    expect(h.peers[0]!.mesh.connections().length).toBeLessThanOrEqual(2);
    expect(h.peers[0]!.mesh.connections().filter((c) => c.established)).toHaveLength(2);
    // The others still reach n0's peer through its two neighbours.
    await h.until(() => h.peers.every((p) => p.mesh.reachable(h.peers[0]!.mesh.self.name)), 20_000);
    await h.stopAll();
  });
});
