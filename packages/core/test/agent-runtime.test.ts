import { describe, expect, it } from "vitest";
import { AgentRuntime, AddressPool, MemoryDatastore, TryAgainError, VirtualClock, MemoryMembership, MemoryNetwork, emptyDataplane, flushAsync, podKey, silentLogger } from "../src/index.ts";
import type { AgentContext, AttachResult, NodeDataplane, PodAttachment, PodRef } from "../src/index.ts";

interface Rec extends PodRef {
  address: string;
}

/** A minimal backend on the kit: one pool, records in ctx.local, one route per pod. */
class TinyAgent extends AgentRuntime<{ range: string }, Rec> {
  readonly pool: AddressPool;
  /** Held before the local write of this container id completes (to interleave calls). */
  gates = new Map<string, Promise<void>>();
  failRelease = new Set<string>();
  joined = 0;
  released = 0;

  constructor(ctx: AgentContext<{ range: string }>) {
    super(ctx, { component: "tiny", minReplanIntervalMs: 100 });
    this.pool = new AddressPool({ range: ctx.config.range, name: "tiny", component: "tiny" });
  }
  protected async join(): Promise<void> {
    this.joined++;
    for (const kv of (await this.ctx.local.list("/pods/")).items) {
      const rec = JSON.parse(kv.value) as Rec;
      this.pool.allocateSpecific(rec.address, podKey(rec));
      this.restore(rec);
    }
  }
  protected override async releaseShare(): Promise<void> {
    this.released++;
  }
  protected async reserve(pod: PodAttachment): Promise<Rec> {
    const address = this.pool.allocate(podKey(pod));
    await this.gates.get(pod.containerId);
    const rec = { containerId: pod.containerId, ifName: pod.ifName, address };
    await this.ctx.local.put(`/pods/${podKey(pod)}`, JSON.stringify(rec));
    return rec;
  }
  protected async unreserve(ref: PodRef, rec: Rec | undefined): Promise<void> {
    if (this.failRelease.has(ref.containerId)) throw new TryAgainError(`cannot record the release of ${podKey(ref)}`);
    await this.ctx.local.delete(`/pods/${podKey(ref)}`);
    if (rec) this.pool.release(rec.address);
  }
  protected result(rec: Rec): AttachResult {
    return { interfaces: [{ name: rec.ifName }], ips: [{ address: `${rec.address}/24` }], routes: [] };
  }
  protected plan(): NodeDataplane {
    const dp = emptyDataplane(this.ctx.node.name);
    const pods = [...this.attachments.values()].sort((a, b) => (a.address < b.address ? -1 : 1));
    dp.routes = pods.map((p) => ({ dst: `${p.address}/32`, dev: "eth0" }));
    dp.pods = pods.map((p) => ({
      key: podKey(p),
      containerId: p.containerId,
      ifName: p.ifName,
      hostIf: `h${p.containerId}`,
      mac: "02:00:00:00:00:01",
      mtu: 1500,
      addresses: [`${p.address}/24`],
      routes: [],
    }));
    return dp;
  }
  protected override async persistedRefs(): Promise<PodRef[]> {
    return (await this.ctx.local.list("/pods/")).items.map((kv) => JSON.parse(kv.value) as Rec);
  }
}

function setup(local = new MemoryDatastore()) {
  const clock = new VirtualClock();
  const node = { name: "n1", underlay: [{ iface: "eth0", address: "192.0.2.1", prefixLength: 24 }] };
  const ctx: AgentContext<{ range: string }> = {
    config: { range: "10.1.0.0/24" },
    node,
    members: new MemoryMembership({ clock, nodes: [node] }),
    store: new MemoryDatastore({ clock }),
    local,
    peers: new MemoryNetwork({ clock }).transport("n1"),
    clock,
    log: silentLogger,
    random: () => 0.5,
  };
  return { clock, ctx, agent: new TinyAgent(ctx) };
}

const pod = (id: string): PodAttachment => ({ containerId: id, ifName: "eth0", netns: `/ns/${id}` });

describe("AgentRuntime", () => {
  it("phases and STATUS: 50 before start and after stop, start once, stop idempotent with one release", async () => {
    const { agent } = setup();
    expect(agent.status()).toMatchObject({ ready: false, code: 50 });
    await expect(agent.attach(pod("a"))).rejects.toMatchObject({ code: 50 });
    const p1 = agent.start();
    expect(agent.start()).toBe(p1);
    await p1;
    expect(agent.joined).toBe(1);
    expect(agent.status()).toEqual({ ready: true });
    await agent.stop({ release: true });
    await agent.stop({ release: true });
    expect(agent.released).toBe(1);
    expect(agent.status()).toMatchObject({ ready: false, code: 50, reason: expect.stringContaining("stopped") });
    await expect(agent.check(pod("a"))).rejects.toMatchObject({ code: 50 });
  });

  it("serialises calls per attachment and runs different attachments concurrently", async () => {
    const { agent } = setup();
    await agent.start();
    let open!: () => void;
    agent.gates.set("slow", new Promise<void>((r) => (open = r)));
    const slow1 = agent.attach(pod("slow"));
    const slow2 = agent.attach(pod("slow")); // same attachment: waits, then returns the first result
    const fast = await agent.attach(pod("fast")); // another attachment: not blocked by "slow"
    expect(fast.ips[0]?.address).toBeDefined();
    const del = agent.detach(pod("slow")); // queued behind both ADDs
    open();
    const [r1, r2] = await Promise.all([slow1, slow2]);
    expect(r2).toEqual(r1);
    await del;
    expect(agent.pool.ownerOf(r1.ips[0]!.address.split("/")[0]!)).toBeUndefined();
    expect(agent.dataplane().pods.map((p) => p.key)).toEqual(["fast/eth0"]);
  });

  it("never serves a stale plan while notifications are coalesced on ctx.clock", async () => {
    const { agent, clock } = setup();
    await agent.start();
    const told: NodeDataplane[] = [];
    agent.onDataplaneChange((dp) => told.push(dp));
    await agent.attach(pod("a"));
    expect(told).toHaveLength(1);
    await agent.attach(pod("b"));
    expect(agent.dataplane().pods).toHaveLength(2); // new plan at once
    expect(told).toHaveLength(1); // listeners hear of it after the interval
    await clock.advance(100);
    expect(told.map((d) => d.pods.length)).toEqual([1, 2]);
    // A change still waiting for its notification at stop: the plan keeps it, nobody is told, no timer stays.
    await agent.attach(pod("c"));
    await agent.stop();
    expect(agent.dataplane().pods).toHaveLength(3);
    expect(told).toHaveLength(2);
    expect(clock.pending()).toBe(0);
  });

  it("CHECK: unknown attachment is code 3; DEL of an unknown attachment succeeds", async () => {
    const { agent } = setup();
    await agent.start();
    await expect(agent.check(pod("nope"))).rejects.toMatchObject({ code: 3 });
    await agent.detach(pod("nope"));
    await agent.attach(pod("a"));
    await agent.check(pod("a"));
  });

  it("GC releases everything not valid (also what only persistent state knows), continues past failures and reports them together", async () => {
    const local = new MemoryDatastore();
    await local.put("/pods/orphan/eth0", JSON.stringify({ containerId: "orphan", ifName: "eth0", address: "10.1.0.99" }));
    const { agent } = setup(local);
    await agent.start();
    await agent.attach(pod("keep"));
    await agent.attach(pod("bad"));
    await agent.attach(pod("drop"));
    agent.failRelease.add("bad");
    const err = await agent.gc([pod("keep")]).then(
      () => undefined,
      (e: unknown) => e as TryAgainError,
    );
    expect(err).toMatchObject({ code: 11 });
    expect(err?.details).toContain("bad/eth0");
    expect(err?.details).not.toContain("drop/eth0");
    expect([...(await local.list("/pods/")).items.map((kv) => kv.key)].sort()).toEqual(["/pods/bad/eth0", "/pods/keep/eth0"]);
    expect(
      agent
        .dataplane()
        .pods.map((p) => p.key)
        .sort(),
    ).toEqual(["bad/eth0", "keep/eth0"]);
  });

  it("a restarted agent on the same local store keeps its pods and renders the same dataplane", async () => {
    const local = new MemoryDatastore();
    const first = setup(local);
    await first.agent.start();
    const r = await first.agent.attach(pod("a"));
    const before = first.agent.dataplane();
    await first.agent.stop();
    const second = setup(local);
    await second.agent.start();
    expect(await second.agent.attach(pod("a"))).toEqual(r);
    await flushAsync();
    expect(second.agent.dataplane()).toEqual(before);
  });
});
