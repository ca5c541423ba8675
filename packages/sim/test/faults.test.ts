/**
 * Scenario primitives: a node at a given underlay address, a node replaced by a fresh incarnation
 * of the same identity, one node cut off from the store, watches that lose events, a compaction
 * between a listing and its watch, and underlays whose MTU is not 1500 (DF packets too large for
 * the path are dropped with a reason).
 */
import { CompactedError, MemoryDatastore, TryAgainError, VirtualClock, defineBackend, emptyDataplane, type AgentContext, type NodeAgent, type WatchEvent } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { COMPACTION_MARKER_KEY, SandboxStore, SimCluster, SimFabric, defaultTopology, withUnderlayMtu } from "../src/index.ts";
import { bridgeNode, mac } from "./builders.ts";

/** The contexts handed to agents, newest last, per node name. */
const contexts = new Map<string, AgentContext<unknown>[]>();

/** A tiny agent: keeps a MAC in `ctx.local` (made from `ctx.random` when absent), nothing else. */
class MacAgent implements NodeAgent {
  mac = "";
  constructor(private readonly ctx: AgentContext<unknown>) {
    contexts.set(ctx.node.name, [...(contexts.get(ctx.node.name) ?? []), ctx]);
  }
  async start(): Promise<void> {
    const saved = await this.ctx.local.get("mac");
    if (saved) this.mac = saved.value;
    else {
      this.mac = Array.from({ length: 6 }, () =>
        Math.floor(this.ctx.random() * 256)
          .toString(16)
          .padStart(2, "0"),
      ).join(":");
      await this.ctx.local.put("mac", this.mac);
    }
    await this.ctx.store.put(`/nodes/${this.ctx.node.name}`, this.mac);
  }
  async stop(): Promise<void> {}
  async attach(): Promise<never> {
    throw new Error("not used");
  }
  async detach(): Promise<void> {}
  async check(): Promise<void> {}
  async gc(): Promise<void> {}
  status() {
    return { ready: true };
  }
  dataplane() {
    return emptyDataplane(this.ctx.node.name);
  }
  onDataplaneChange(): () => void {
    return () => {};
  }
}

const macBackend = defineBackend<unknown>({
  name: "test-mac",
  capabilities: { families: [4], encapsulations: [], networkPolicy: false, encryption: false },
  parseConfig: (x) => x,
  summarize: () => ({ podRanges: ["10.244.0.0/16"], natOutgoing: false, encapsulations: [], convergenceMs: 1000, crashDetectionMs: 1000 }),
  createAgent: (ctx) => new MacAgent(ctx),
});

function cluster(seed = 1) {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  return { clock, store, sim: SimCluster.create<unknown>({ backend: macBackend, config: {}, clock, store, seed }) };
}

function collect(it: AsyncIterable<WatchEvent>): { events: WatchEvent[]; error: unknown; ended: boolean } {
  const out = { events: [] as WatchEvent[], error: undefined as unknown, ended: false };
  void (async () => {
    try {
      for await (const ev of it) out.events.push(ev);
      out.ended = true;
    } catch (err) {
      out.error = err;
    }
  })();
  return out;
}

describe("addNode({ address })", () => {
  it("gives the node that underlay address with its subnet's prefix, gateway and MTU", async () => {
    const { sim } = cluster();
    const n = await sim.addNode({ name: "n1", address: "203.0.113.77" });
    expect(n.info.underlay[0]).toEqual({ iface: "eth0", address: "203.0.113.77", prefixLength: 24, gateway: "203.0.113.1", mtu: 1500 });
    const next = await sim.addNode({ name: "n2" });
    expect(next.info.underlay[0]!.address).not.toBe("203.0.113.77");
  });

  it("refuses an address outside the node subnets, a router's, a taken one, or one of another subnet than asked", async () => {
    const { sim } = cluster();
    await sim.addNode({ name: "n1", address: "198.51.100.20" });
    await expect(sim.addNode({ name: "x1", address: "10.9.9.9" })).rejects.toMatchObject({ code: 7, field: "address" });
    await expect(sim.addNode({ name: "x2", address: "198.51.100.1" })).rejects.toMatchObject({ code: 7, field: "address" });
    await expect(sim.addNode({ name: "x3", address: "198.51.100.20" })).rejects.toMatchObject({ code: 7, field: "address" });
    await expect(sim.addNode({ name: "x4", address: "198.51.100.21", subnet: "b" })).rejects.toMatchObject({ code: 7, field: "address" });
    expect(sim.nodes().map((n) => n.name)).toEqual(["n1"]);
  });
});

describe("replaceNode", () => {
  it("brings up the same name and address with fresh node-local state and a new random stream", async () => {
    const { sim, store } = cluster(7);
    await sim.addNode({ name: "r1" });
    const before = sim.node("r1");
    const oldMac = (await sim.localStore("r1").get("mac"))!.value;
    await sim.localStore("r1").put("host-local/10.244.1.5", "c1");
    const after = await sim.replaceNode("r1", { mode: "crash" });
    expect(after).not.toBe(before);
    expect(before.alive).toBe(false);
    expect(after.alive).toBe(true);
    expect(after.info).toEqual(before.info);
    expect(sim.incarnation("r1")).toBe(1);
    const newMac = (await sim.localStore("r1").get("mac"))!.value;
    expect(newMac).not.toBe(oldMac);
    expect(await sim.localStore("r1").get("host-local/10.244.1.5")).toBeUndefined();
    expect((await store.get("/nodes/r1"))!.value).toBe(newMac);
    // The old incarnation's sandbox is dead: its store handle refuses calls.
    const ctxs = contexts.get("r1")!;
    await expect(ctxs[ctxs.length - 2]!.store.get("/nodes/r1")).rejects.toMatchObject({ code: expect.any(Number) });
    await sim.replaceNode("r1", { mode: "clean" });
    expect(sim.incarnation("r1")).toBe(2);
    expect(sim.nodes().map((n) => n.name)).toEqual(["r1"]);
  });

  it("is deterministic for a seed", async () => {
    const macs: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { sim } = cluster(11);
      await sim.addNode({ name: "r1" });
      await sim.replaceNode("r1", { mode: "crash" });
      macs.push((await sim.localStore("r1").get("mac"))!.value);
    }
    expect(macs[0]).toBe(macs[1]);
  });
});

describe("store cut-off of one node", () => {
  it("throws code 11 on that node only, ends its watches, lets its leases lapse, and comes back", async () => {
    const { sim, store, clock } = cluster();
    await sim.addNode({ name: "a" });
    await sim.addNode({ name: "b" });
    const a = contexts.get("a")!.at(-1)!.store;
    const b = contexts.get("b")!.at(-1)!.store;
    const lease = await a.grantLease(5);
    await a.put("/leased", "x", { lease });
    const w = collect(a.watch("/k"));
    sim.setStoreCutOff("a", true);
    expect(sim.storeFaults("a").cutOff).toBe(true);
    await clock.advance(0);
    expect(w.ended).toBe(true);
    const err = await a.put("/k", "v").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TryAgainError);
    expect((err as TryAgainError).code).toBe(11);
    await expect(a.keepAlive(lease)).rejects.toMatchObject({ code: 11 });
    const again = collect(a.watch("/k"));
    await clock.advance(0);
    expect((again.error as { code?: number }).code).toBe(11);
    await b.put("/k", "from-b");
    await clock.advance(6_000);
    expect(await store.get("/leased")).toBeUndefined();
    sim.setStoreCutOff("a", false);
    expect((await a.get("/k"))!.value).toBe("from-b");
  });
});

describe("lost watch events", () => {
  it("drops events silently while on; the watch stays open and later events flow", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const sb = new SandboxStore(store, "n1");
    const w = collect(sb.watch("/k/"));
    await store.put("/k/1", "a");
    await clock.advance(0);
    sb.setLosingEvents(true);
    await store.put("/k/2", "b");
    await store.delete("/k/1");
    await clock.advance(0);
    sb.setLosingEvents(false);
    await store.put("/k/3", "c");
    await clock.advance(0);
    expect(w.events.map((e) => (e.type === "put" ? e.kv.key : `-${e.key}`))).toEqual(["/k/1", "/k/3"]);
    expect(w.ended).toBe(false);
    expect(w.error).toBeUndefined();
    expect(sb.lost).toBe(2);
    // A listing still tells the truth.
    expect((await sb.list("/k/")).items.map((kv) => kv.key)).toEqual(["/k/2", "/k/3"]);
  });
});

describe("compaction between list and watch", () => {
  it("compacts past the listing after a stall, so the watch from the listing throws code 105; once per prefix", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const sb = new SandboxStore(store, "n1");
    await store.put("/k/1", "a");
    const listing = await sb.list("/k/");
    sb.armCompaction({ compact: (r) => store.compact(r), delayMs: 1_000, clock });
    const w = collect(sb.watch("/k/", { fromRevision: listing.revision }));
    await clock.advance(500);
    expect(w.error).toBeUndefined();
    await store.put("/k/2", "written while the watch stalled");
    await clock.advance(600);
    await clock.advance(0);
    expect(w.error).toBeInstanceOf(CompactedError);
    expect((w.error as CompactedError).code).toBe(105);
    expect(sb.compacted).toBe(1);
    // Re-listing and watching again works: the fault hit that prefix once.
    const again = await sb.list("/k/");
    const w2 = collect(sb.watch("/k/", { fromRevision: again.revision }));
    await store.put("/k/3", "c");
    await clock.advance(0);
    expect(w2.error).toBeUndefined();
    expect(w2.events.length).toBe(1);
  });

  it("moves the revision past a listing nothing was written after (the marker key does not stay)", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const sb = new SandboxStore(store, "n1");
    const listing = await sb.list("/k/");
    sb.armCompaction({ compact: (r) => store.compact(r) });
    const w = collect(sb.watch("/k/", { fromRevision: listing.revision }));
    await clock.advance(0);
    await clock.advance(0);
    expect((w.error as { code?: number }).code).toBe(105);
    expect(await store.get(COMPACTION_MARKER_KEY)).toBeUndefined();
  });

  it("can be armed for a node before it joins, so its first list-then-watch is hit", async () => {
    const { sim, store } = cluster();
    sim.armCompaction("late", { compact: (r) => store.compact(r) });
    await sim.addNode({ name: "late" });
    const ctx = contexts.get("late")!.at(-1)!;
    const listing = await ctx.store.list("/nodes/");
    const w = collect(ctx.store.watch("/nodes/", { fromRevision: listing.revision }));
    await sim.settle({ limitMs: 10 });
    await sim.settle({ limitMs: 10 });
    expect((w.error as { code?: number }).code).toBe(105);
    expect(sim.storeFaults("late").compactedWatches).toBe(1);
  });
});

describe("underlay MTU other than 1500", () => {
  it("nodes carry the subnet MTU", async () => {
    const clock = new VirtualClock();
    const sim = SimCluster.create<unknown>({ backend: macBackend, config: {}, clock, topology: withUnderlayMtu(defaultTopology(), 9000) });
    const n = await sim.addNode({ name: "j1" });
    expect(n.info.underlay[0]!.mtu).toBe(9000);
  });

  it("drops a DF packet larger than the path MTU with a reason naming where; a fitting one passes", () => {
    const fabric = new SimFabric(withUnderlayMtu(defaultTopology(), 1400));
    // flannel-style vxlan pods with MTU 1350 on a 1400 underlay: 1350 + 50 fits exactly.
    const infos = [fabric.addNode({ name: "node-1", subnet: "a" }), fabric.addNode({ name: "node-2", subnet: "b" })];
    expect(infos[0]!.underlay[0]!.mtu).toBe(1400);
    infos.forEach((info, k) => {
      const n = k + 1;
      const dp = bridgeNode(info.name, n, 1, { mtu: 1350 });
      dp.links.push({ kind: "vxlan", name: "flannel.1", vni: 1, port: 8472, local: info.underlay[0]!.address, learning: false, mac: mac(n, 0xfe) });
      dp.addresses.push({ dev: "flannel.1", cidr: `10.244.${n}.0/32` });
      const m = 2 - k;
      dp.neighbours.push({ dev: "flannel.1", ip: `10.244.${m}.0`, mac: mac(m, 0xfe), permanent: true });
      dp.fdb.push({ dev: "flannel.1", mac: mac(m, 0xfe), dst: infos[m - 1]!.underlay[0]!.address, permanent: true });
      dp.routes.push({ dst: `10.244.${m}.0/24`, via: `10.244.${m}.0`, dev: "flannel.1", onlink: true });
      fabric.setDataplane(info.name, dp);
    });
    const from = { kind: "pod", key: "c-1-0/eth0" } as const;
    const to = { kind: "pod", key: "c-2-0/eth0" } as const;
    const ok = fabric.send(from, to, { size: 1350 });
    expect(ok.delivered).toBe(true);
    expect(ok.pathMtu).toBe(1350);
    const big = fabric.send(from, to, { size: 1351 });
    expect(big.delivered).toBe(false);
    expect(big.drop?.stage).toBe("mtu");
    expect(big.reason).toMatch(/1351 bytes with DF set does not fit the MTU 1350/);
    expect(() => fabric.send(from, to, { size: 5 })).toThrow(/size/);
  });
});
