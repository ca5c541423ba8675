/**
 * SimCluster with a tiny host-gw backend written here: node subnets leased in the store by CAS
 * with a TTL lease kept alive on the node's clock, peers learned by watching the leases, pods on a
 * bridge with addresses kept in the node-local store, one route per peer via its underlay address.
 */
import {
  ClosedError,
  ConflictError,
  NotReadyError,
  canonicalDataplane,
  defineBackend,
  emptyDataplane,
  podKey,
  type AgentContext,
  type AgentStatus,
  type AttachResult,
  type NodeAgent,
  type NodeDataplane,
  type PodAttachment,
  type PodInterface,
  type PodRef,
  type TimerHandle,
} from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { SimCluster, defaultTopology, singleSubnetTopology, type SimPod } from "../src/index.ts";

interface HgConfig {
  failOn?: string;
}

/** Calls to keepAlive per node name, and the contexts handed to agents (for the tests). */
const keepAlives = new Map<string, number>();
const contexts = new Map<string, AgentContext<HgConfig>>();

function mac(n: number, kind: number): string {
  return [0x02, kind, 0, 0, (n >> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

class HostGwAgent implements NodeAgent {
  private readonly ctx: AgentContext<HgConfig>;
  private index: number | undefined;
  private lease: string | undefined;
  private readonly peers = new Map<number, { node: string; address: string }>();
  private readonly pods = new Map<string, PodInterface>();
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();
  private readonly abort = new AbortController();
  private keep: TimerHandle | undefined;
  private started = false;

  constructor(ctx: AgentContext<HgConfig>) {
    this.ctx = ctx;
    contexts.set(ctx.node.name, ctx);
  }

  async start(): Promise<void> {
    const { ctx } = this;
    if (ctx.config.failOn === ctx.node.name) throw new NotReadyError(`[test-hostgw] ${ctx.node.name} refuses to start`);
    const me = JSON.stringify({ node: ctx.node.name, address: ctx.node.underlay[0]!.address });
    const saved = await ctx.local.get("subnet");
    if (saved) {
      const { index, lease } = JSON.parse(saved.value) as { index: number; lease: string };
      if (await ctx.store.leaseInfo(lease)) {
        this.index = index;
        this.lease = lease;
      }
    }
    if (this.index === undefined) {
      const lease = await ctx.store.grantLease(30);
      for (let i = 1; i < 255 && this.index === undefined; i++) {
        try {
          await ctx.store.put(`hg/subnets/${i}`, me, { ifRevision: 0, lease });
          this.index = i;
        } catch (err) {
          if (!(err instanceof ConflictError)) throw err;
        }
      }
      this.lease = lease;
      await ctx.local.put("subnet", JSON.stringify({ index: this.index, lease }));
    }
    for (const kv of (await ctx.local.list("pods/")).items) {
      const p = JSON.parse(kv.value) as PodInterface;
      this.pods.set(p.key, p);
    }
    this.keep = ctx.clock.setInterval(() => {
      keepAlives.set(ctx.node.name, (keepAlives.get(ctx.node.name) ?? 0) + 1);
      ctx.store.keepAlive(this.lease!).catch(() => {});
    }, 10_000);
    const listing = await ctx.store.list("hg/subnets/");
    for (const kv of listing.items) this.apply(kv.key, kv.value);
    void (async () => {
      for await (const ev of ctx.store.watch("hg/subnets/", { fromRevision: listing.revision, signal: this.abort.signal })) {
        if (ev.type === "put") this.apply(ev.kv.key, ev.kv.value);
        else this.peers.delete(Number(ev.key.split("/").pop()));
        this.emit();
      }
    })().catch(() => {});
    this.started = true;
    this.emit();
  }

  private apply(key: string, value: string): void {
    const i = Number(key.split("/").pop());
    if (i !== this.index) this.peers.set(i, JSON.parse(value) as { node: string; address: string });
  }

  private emit(): void {
    const dp = this.dataplane();
    for (const l of this.listeners) l(dp);
  }

  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.abort.abort();
    this.keep?.cancel();
    this.started = false;
    if (options.release && this.lease) {
      await this.ctx.store.revokeLease(this.lease);
      await this.ctx.local.delete("subnet");
    }
  }

  async attach(pod: PodAttachment): Promise<AttachResult> {
    if (!this.started || this.index === undefined) throw new NotReadyError("[test-hostgw] not started");
    const key = podKey(pod);
    let p = this.pods.get(key);
    if (!p) {
      const used = new Set([...this.pods.values()].map((x) => x.addresses[0]));
      let host = 2;
      while (used.has(`10.244.${this.index}.${host}/24`)) host++;
      p = {
        key,
        containerId: pod.containerId,
        ifName: pod.ifName,
        netns: pod.netns,
        hostIf: `veth${host}`,
        bridge: "cni0",
        mac: mac(this.index * 256 + host, 0xbb),
        mtu: 1500,
        addresses: [`10.244.${this.index}.${host}/24`],
        gateways: [`10.244.${this.index}.1`],
        routes: [{ dst: "0.0.0.0/0", via: `10.244.${this.index}.1` }],
      };
      await this.ctx.local.put(`pods/${key}`, JSON.stringify(p));
      this.pods.set(key, p);
      this.emit();
    }
    return {
      interfaces: [{ name: p.ifName, mac: p.mac, mtu: p.mtu, sandbox: pod.netns }],
      ips: [{ address: p.addresses[0]!, gateway: p.gateways![0]!, interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: p.gateways![0]! }],
    };
  }

  async detach(pod: PodRef): Promise<void> {
    const key = podKey(pod);
    if (this.pods.delete(key)) {
      await this.ctx.local.delete(`pods/${key}`);
      this.emit();
    }
  }

  async check(): Promise<void> {}
  async gc(): Promise<void> {}

  status(): AgentStatus {
    return this.started ? { ready: true } : { ready: false, code: 50, reason: "not started" };
  }

  dataplane(): NodeDataplane {
    const dp = emptyDataplane(this.ctx.node.name);
    if (this.index === undefined) return dp;
    dp.links.push({ kind: "bridge", name: "cni0", mac: mac(this.index, 0x01) });
    dp.addresses.push({ dev: "cni0", cidr: `10.244.${this.index}.1/24` });
    dp.sysctls = { ipv4Forwarding: true };
    dp.pods = [...this.pods.values()];
    for (const [i, peer] of [...this.peers].sort((a, b) => a[0] - b[0])) dp.routes.push({ dst: `10.244.${i}.0/24`, via: peer.address, origin: `lease:${peer.node}` });
    return dp;
  }

  onDataplaneChange(listener: (dp: NodeDataplane) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const hostgw = defineBackend<HgConfig>({
  name: "test-hostgw",
  capabilities: { networkPolicy: false, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: (input) => (input ?? {}) as HgConfig,
  summarize: () => ({ podRanges: ["10.244.0.0/16"], natOutgoing: false, encapsulations: ["none"], convergenceMs: 1000, crashDetectionMs: 40_000 }),
  createAgent: (ctx) => new HostGwAgent(ctx),
});

function cluster(seed = 7, config: HgConfig = {}): SimCluster<HgConfig> {
  return SimCluster.create({ backend: hostgw, config, topology: singleSubnetTopology(), seed });
}

async function populate(c: SimCluster<HgConfig>, nodes: number, pods: number): Promise<SimPod[]> {
  await c.addNodes(nodes);
  await c.settle({ limitMs: 2000 });
  const out: SimPod[] = [];
  for (const n of c.nodes()) for (let i = 0; i < pods; i++) out.push(await c.addPod(n.name));
  await c.settle({ limitMs: 2000 });
  return out;
}

describe("SimCluster", () => {
  it("names nodes node-1.., gives underlay addresses from .10 and alternates node subnets", async () => {
    const c = SimCluster.create({ backend: hostgw, config: {}, topology: defaultTopology(), seed: 1 });
    const nodes = await c.addNodes(4);
    expect(nodes.map((n) => n.name)).toEqual(["node-1", "node-2", "node-3", "node-4"]);
    expect(nodes.map((n) => n.info.underlay[0]!.address)).toEqual(["198.51.100.10", "203.0.113.10", "198.51.100.11", "203.0.113.11"]);
    expect(nodes[1]!.info.underlay[0]!.gateway).toBe("203.0.113.1");
    const named = await c.addNode({ name: "edge", subnet: "a", labels: { role: "edge" } });
    expect(named.info.underlay[0]!.address).toBe("198.51.100.12");
    expect(named.info.labels).toEqual({ role: "edge" });
    await expect(c.addNode({ name: "edge" })).rejects.toThrow(/unique/);
    await expect(c.addNode({ subnet: "nope" })).rejects.toThrow(/subnet/);
    await c.close();
  });

  it("adds nodes and pods through the agents; every pod reaches every other pod", async () => {
    const c = cluster();
    const pods = await populate(c, 3, 2);
    expect(pods.map((p) => p.addresses[0])).toEqual(["10.244.1.2", "10.244.1.3", "10.244.2.2", "10.244.2.3", "10.244.3.2", "10.244.3.3"]);
    expect(pods[0]!.name).toBe("pod-1");
    expect(pods[0]!.namespace).toBe("default");
    expect(pods[0]!.containerId).toMatch(/^[0-9a-f]{64}$/);
    const report = c.reachability();
    expect(report).toMatchObject({ pairs: 30, delivered: 30, natted: 0, failed: 0 });
    const matrix = c.reachabilityPairs({ protocol: "udp", port: 53 });
    expect(matrix).toHaveLength(30);
    expect(matrix.every((o) => o.delivered && o.seenSource === c.pods().find((p) => p.key === (o.from as { key: string }).key)!.addresses[0])).toBe(true);
    const r = c.send({ kind: "pod", key: pods[0]!.key }, { kind: "pod", key: pods[5]!.key });
    expect(r.delivered).toBe(true);
    expect(r.seenSource).toBe("10.244.1.2");
    expect(c.send({ kind: "pod", key: pods[0]!.key }, { kind: "node", name: "node-3" }).delivered).toBe(true);
    // No NAT in this backend: the internet sees the pod address and cannot answer.
    const out = c.send({ kind: "pod", key: pods[0]!.key }, { kind: "external", name: "internet" });
    expect(out.delivered).toBe(true);
    expect(out.replyDelivered).toBe(false);
    await c.close();
  });

  it("a crashed node's timers stop, its store handle is closed, and peers withdraw its routes after the lease expires", async () => {
    const c = cluster();
    const pods = await populate(c, 3, 1);
    expect(c.pendingTimers("node-3")).toBeGreaterThan(0);
    await c.settle({ limitMs: 25_000 });
    const before = keepAlives.get("node-3") ?? 0;
    expect(before).toBeGreaterThan(0);
    const ctx3 = contexts.get("node-3")!;
    await c.removeNode("node-3", { mode: "crash" });
    expect(c.pendingTimers("node-3")).toBe(0);
    expect(c.nodes().map((n) => n.name)).toEqual(["node-1", "node-2"]);
    expect(c.pods().map((p) => p.node)).toEqual(["node-1", "node-2"]);
    await expect(ctx3.store.get("hg/subnets/3")).rejects.toBeInstanceOf(ClosedError);
    // Right after the crash the peers still route to it (no goodbye).
    expect(c.dataplane("node-1").routes.map((r) => r.dst)).toContain("10.244.3.0/24");
    await c.settle({ limitMs: 45_000 });
    expect(keepAlives.get("node-3") ?? 0).toBe(before);
    expect(c.dataplane("node-1").routes.map((r) => r.dst)).not.toContain("10.244.3.0/24");
    expect(c.reachability()).toMatchObject({ pairs: 2, delivered: 2 });
    expect(c.send({ kind: "pod", key: pods[0]!.key }, { kind: "pod", key: pods[2]!.key }).reason).toBe(`pod ${pods[2]!.key} has no interface in any node's dataplane`);
    await c.close();
  });

  it("a crashed node stays a member and keeps its underlay address: a node added after it gets another", async () => {
    const c = cluster();
    await populate(c, 3, 1);
    const crashed = c.node("node-3").info.underlay[0]!.address;
    await c.removeNode("node-3", { mode: "crash" });
    expect(c.members.get("node-3")?.underlay[0]?.address).toBe(crashed);
    const n = await c.addNode({ subnet: c.clusterTopology().subnets.find((s) => s.cidr.startsWith(crashed.split(".").slice(0, 3).join(".")))?.name ?? "a" });
    expect(n.info.underlay[0]!.address).not.toBe(crashed);
    await c.close();
  });

  it("a clean removal releases the lease at once", async () => {
    const c = cluster();
    await populate(c, 3, 1);
    await c.removeNode("node-2", { mode: "clean" });
    await c.settle({ limitMs: 100 });
    expect(c.dataplane("node-1").routes.map((r) => r.dst)).toEqual(["10.244.3.0/24"]);
    expect(c.reachability()).toMatchObject({ pairs: 2, delivered: 2 });
    // The freed subnet and address go to the next node.
    const n = await c.addNode();
    await c.settle({ limitMs: 100 });
    expect(n.name).toBe("node-4");
    expect(c.dataplane("node-4").addresses[0]!.cidr).toBe("10.244.2.1/24");
    await c.close();
  });

  it("restartAgent keeps the node-local state, the pods and the dataplane", async () => {
    const c = cluster();
    const pods = await populate(c, 2, 2);
    const before = canonicalDataplane(c.dataplane("node-1"));
    const firstAgent = c.node("node-1").agent;
    await c.restartAgent("node-1");
    await c.settle({ limitMs: 2000 });
    expect(c.node("node-1").agent).not.toBe(firstAgent);
    expect(canonicalDataplane(c.dataplane("node-1"))).toEqual(before);
    expect(c.pods()).toEqual(pods);
    expect(c.reachability()).toMatchObject({ pairs: 12, delivered: 12 });
    // The old agent's timers are gone; the new one keeps the lease alive.
    const k = keepAlives.get("node-1") ?? 0;
    await c.settle({ limitMs: 60_000 });
    expect(keepAlives.get("node-1")! - k).toBe(6);
    expect(c.dataplane("node-2").routes.map((r) => r.dst)).toEqual(["10.244.1.0/24"]);
    await c.close();
  });

  it("removePod deletes through the agent", async () => {
    const c = cluster();
    const pods = await populate(c, 2, 2);
    await c.removePod(pods[1]!);
    await c.removePod("unknown/eth0");
    expect(c.pods().length).toBe(3);
    expect(c.dataplane("node-1").pods.map((p) => p.key)).toEqual([pods[0]!.key]);
    expect(c.reachability()).toMatchObject({ pairs: 6, delivered: 6 });
    await c.close();
  });

  it("is deterministic for a seed", async () => {
    const a = await populate(cluster(42), 2, 2);
    const b = await populate(cluster(42), 2, 2);
    const c = await populate(cluster(43), 2, 2);
    expect(a.map((p) => p.containerId)).toEqual(b.map((p) => p.containerId));
    expect(a.map((p) => p.containerId)).not.toEqual(c.map((p) => p.containerId));
    const ra = contexts.get("node-1")!.random();
    expect(ra).toBeGreaterThanOrEqual(0);
    expect(ra).toBeLessThan(1);
  });

  it("a node whose agent fails to start is not kept, and its address is reused", async () => {
    const c = cluster(7, { failOn: "node-2" });
    await c.addNode();
    await expect(c.addNode()).rejects.toBeInstanceOf(NotReadyError);
    expect(c.nodes().map((n) => n.name)).toEqual(["node-1"]);
    const n3 = await c.addNode();
    expect(n3.name).toBe("node-3");
    expect(n3.info.underlay[0]!.address).toBe("198.51.100.11");
    await expect(c.addNodes(2)).resolves.toHaveLength(2);
    expect(() => c.node("node-2")).toThrow(/not in the cluster/);
    await c.close();
    await c.close();
  });
});
