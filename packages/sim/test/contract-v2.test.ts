/**
 * Contract v2 proven in the simulator with two tiny backends written here:
 *
 *  - `test-mesh`: store-less. Each node's pod /24 is derived from its name; peers come only from
 *    `ctx.members` (one route per member via its underlay address — or via the secondary address
 *    the fabric gave it, so a member's `updated` event and the node answering on a secondary
 *    address are exercised too).
 *  - `test-vnet`: a cluster-level controller assigns each member a pod /24 (a record in the store)
 *    and routes it on the fabric to the node; agents plan no route to any peer at all. Routers
 *    carry pod traffic between nodes, as a cloud VNet does.
 *
 * Both run with a node joining and one leaving; pods on different nodes must reach each other.
 */
import {
  NotReadyError,
  defineBackend,
  emptyDataplane,
  fnv1a32,
  podKey,
  type AgentContext,
  type AgentStatus,
  type AttachResult,
  type ClusterController,
  type ControllerContext,
  type NodeAgent,
  type NodeDataplane,
  type PodAttachment,
  type PodInterface,
  type PodRef,
  type RouteEntry,
} from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { SimCluster, clusterTopologyOf, defaultTopology, singleSubnetTopology, type SimPod } from "../src/index.ts";

interface RangeConfig {
  /** First two octets of the pod range, e.g. "10.50". */
  net: string;
}

/** A bridge of pods on one /24 (index `i` of the config's /16); what both test backends share. */
abstract class BridgeAgent implements NodeAgent {
  protected readonly pods = new Map<string, PodInterface>();
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();
  protected running = false;

  constructor(protected readonly ctx: AgentContext<RangeConfig>) {}

  /** This node's /24 index, once known. */
  protected abstract index(): number | undefined;
  /** Routes to other nodes' pods. */
  protected abstract peerRoutes(): RouteEntry[];

  abstract start(): Promise<void>;

  async stop(): Promise<void> {
    this.running = false;
  }

  protected emit(): void {
    const dp = this.dataplane();
    for (const l of this.listeners) l(dp);
  }

  async attach(pod: PodAttachment): Promise<AttachResult> {
    const i = this.index();
    if (!this.running || i === undefined) throw new NotReadyError(`[test] node ${this.ctx.node.name} has no pod range yet`);
    const key = podKey(pod);
    let p = this.pods.get(key);
    if (!p) {
      const host = this.pods.size + 2;
      const hex = (n: number): string => n.toString(16).padStart(2, "0");
      p = {
        key,
        containerId: pod.containerId,
        ifName: pod.ifName,
        netns: pod.netns,
        hostIf: `veth${host}`,
        bridge: "cni0",
        mac: `02:bb:00:00:${hex(i)}:${hex(host)}`,
        mtu: 1500,
        addresses: [`${this.ctx.config.net}.${i}.${host}/24`],
        gateways: [`${this.ctx.config.net}.${i}.1`],
        routes: [{ dst: "0.0.0.0/0", via: `${this.ctx.config.net}.${i}.1` }],
      };
      this.pods.set(key, p);
      this.emit();
    }
    return { interfaces: [{ name: p.ifName, mac: p.mac, mtu: p.mtu, sandbox: pod.netns }], ips: [{ address: p.addresses[0]!, gateway: p.gateways![0]!, interface: 0 }], routes: [] };
  }

  async detach(pod: PodRef): Promise<void> {
    if (this.pods.delete(podKey(pod))) this.emit();
  }

  async check(): Promise<void> {}
  async gc(): Promise<void> {}

  status(): AgentStatus {
    return this.running && this.index() !== undefined ? { ready: true } : { ready: false, code: 50, reason: "no pod range yet" };
  }

  dataplane(): NodeDataplane {
    const dp = emptyDataplane(this.ctx.node.name);
    const i = this.index();
    if (i === undefined) return dp;
    dp.links.push({ kind: "bridge", name: "cni0", mac: `02:01:00:00:00:${i.toString(16).padStart(2, "0")}` });
    dp.addresses.push({ dev: "cni0", cidr: `${this.ctx.config.net}.${i}.1/24` });
    dp.sysctls = { ipv4Forwarding: true };
    dp.pods = [...this.pods.values()];
    dp.routes.push(...this.peerRoutes());
    return dp;
  }

  onDataplaneChange(listener: (dp: NodeDataplane) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The mesh's /24 index of a node: derived from its name alone (1..250). */
function meshIndex(name: string): number {
  return (fnv1a32(name) % 250) + 1;
}

class MeshAgent extends BridgeAgent {
  private off: (() => void) | undefined;

  protected index(): number {
    return meshIndex(this.ctx.node.name);
  }

  protected peerRoutes(): RouteEntry[] {
    return this.ctx.members
      .list()
      .filter((m) => m.name !== this.ctx.node.name)
      .map((m) => {
        const u = m.underlay[0]!;
        return { dst: `${this.ctx.config.net}.${meshIndex(m.name)}.0/24`, via: u.secondaryAddresses?.[0] ?? u.address, origin: `member:${m.name}` };
      });
  }

  async start(): Promise<void> {
    this.off = this.ctx.members.onChange(() => this.emit());
    this.running = true;
    this.emit();
  }

  override async stop(): Promise<void> {
    this.off?.();
    await super.stop();
  }
}

const mesh = defineBackend<RangeConfig>({
  name: "test-mesh",
  capabilities: { networkPolicy: false, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: (input) => ({ net: "10.50", ...(input as object) }),
  summarize: (config) => ({ podRanges: [`${config.net}.0.0/16`], natOutgoing: false, encapsulations: ["none"], convergenceMs: 1000, crashDetectionMs: 40_000 }),
  topologyNeeds: () => ({ singleSubnet: true }),
  createAgent: (ctx) => new MeshAgent(ctx),
});

const RANGES = "/test-vnet/ranges/";

class VnetController implements ClusterController {
  private off: (() => void) | undefined;
  private ready = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: ControllerContext<RangeConfig>) {}

  /** Gives a member a /24 (lowest free) and routes it to the node; frees a departed member's. */
  private async reconcile(name: string): Promise<void> {
    const { store, fabric, members, config } = this.ctx;
    const key = `${RANGES}${name}`;
    const have = await store.get(key);
    if (!members.get(name)) {
      if (have) {
        await fabric.deleteRoute(have.value);
        await store.delete(key);
      }
      return;
    }
    let range = have?.value;
    if (!range) {
      const used = new Set((await store.list(RANGES)).items.map((kv) => kv.value));
      let i = 1;
      while (used.has(`${config.net}.${i}.0/24`)) i++;
      range = `${config.net}.${i}.0/24`;
      await store.put(key, range, { ifRevision: 0 });
    }
    await fabric.setRoute({ dst: range, node: name });
  }

  private enqueue(name: string): Promise<void> {
    this.queue = this.queue.then(() => this.reconcile(name)).catch((err: unknown) => this.ctx.log.warn("reconcile failed", { node: name, error: err }));
    return this.queue;
  }

  async start(): Promise<void> {
    this.off = this.ctx.members.onChange((e) => void this.enqueue(e.node.name));
    for (const m of this.ctx.members.list()) await this.enqueue(m.name);
    this.ready = true;
  }

  async stop(): Promise<void> {
    this.off?.();
    this.ready = false;
  }

  status() {
    return this.ready ? { ready: true } : { ready: false, reason: "not started" };
  }
}

class VnetAgent extends BridgeAgent {
  private i: number | undefined;
  private readonly abort = new AbortController();

  protected index(): number | undefined {
    return this.i;
  }

  /** The fabric carries pod traffic: no route to any peer. */
  protected peerRoutes(): RouteEntry[] {
    return [];
  }

  private take(value: string | undefined): void {
    const i = value === undefined ? undefined : Number(value.split(".")[2]);
    if (i === this.i) return;
    this.i = i;
    this.emit();
  }

  async start(): Promise<void> {
    const key = `${RANGES}${this.ctx.node.name}`;
    const got = await this.ctx.store.get(key);
    this.take(got?.value);
    void (async () => {
      for await (const ev of this.ctx.store.watch(key, { fromRevision: got?.modRevision ?? 0, signal: this.abort.signal })) {
        if (ev.type === "put" && ev.kv.key === key) this.take(ev.kv.value);
      }
    })().catch(() => undefined);
    this.running = true;
  }

  override async stop(): Promise<void> {
    this.abort.abort();
    await super.stop();
  }
}

const vnet = defineBackend<RangeConfig>({
  name: "test-vnet",
  capabilities: { networkPolicy: false, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: (input) => ({ net: "10.60", ...(input as object) }),
  summarize: (config, cluster) => ({
    podRanges: [`${config.net}.0.0/16`],
    natOutgoing: false,
    encapsulations: ["none"],
    // Promises may depend on the topology: a bigger cluster takes longer to reconcile.
    convergenceMs: 1000 + 10 * (cluster?.nodes.length ?? 0),
    crashDetectionMs: 40_000,
  }),
  topologyNeeds: () => ({ singleSubnet: false }),
  createAgent: (ctx) => new VnetAgent(ctx),
  createController: (ctx) => new VnetController(ctx),
});

async function podsOnEveryNode<C>(c: SimCluster<C>): Promise<SimPod[]> {
  await c.settle({ limitMs: 2000 });
  const pods: SimPod[] = [];
  for (const n of c.nodes()) pods.push(await c.addPod(n.name));
  await c.settle({ limitMs: 2000 });
  return pods;
}

function expectAllReach<C>(c: SimCluster<C>): void {
  const r = c.reachability();
  expect(r.failures.map((f) => f.result.reason)).toEqual([]);
  expect(r.pairs).toBeGreaterThan(0);
  expect(r.delivered).toBe(r.pairs);
}

describe("membership in the simulator", () => {
  it("nodes join and a clean leave removes the member; a crash keeps it until deleteNode", async () => {
    const c = SimCluster.create({ backend: mesh, config: mesh.parseConfig({}), topology: singleSubnetTopology(), seed: 3 });
    const events: string[] = [];
    c.members.onChange((e) => events.push(`${e.type} ${e.node.name}`));
    await c.addNodes(3);
    await c.settle({ limitMs: 100 });
    expect(c.members.list().map((n) => n.name)).toEqual(["node-1", "node-2", "node-3"]);
    await c.removeNode("node-1", { mode: "clean" });
    await c.removeNode("node-2", { mode: "crash" });
    await c.settle({ limitMs: 100 });
    expect(c.members.list().map((n) => n.name)).toEqual(["node-2", "node-3"]);
    expect(() => c.deleteNode("node-3")).toThrow(/removeNode/);
    c.deleteNode("node-2");
    expect(() => c.deleteNode("node-2")).toThrow(/not a member/);
    await c.settle({ limitMs: 100 });
    expect(events).toEqual(["joined node-1", "joined node-2", "joined node-3", "left node-1", "left node-2"]);
    // The next generated name skips names still held by members.
    await c.addNode();
    expect(c.members.list().map((n) => n.name)).toEqual(["node-3", "node-4"]);
    await c.close();
  });

  it("summarize(config, cluster) gets the node subnets and the members", () => {
    const t = clusterTopologyOf(defaultTopology());
    expect(t).toEqual({
      subnets: [
        { name: "a", cidr: "198.51.100.0/24" },
        { name: "b", cidr: "203.0.113.0/24" },
      ],
      nodes: [],
    });
    expect(vnet.summarize(vnet.parseConfig({}), t).convergenceMs).toBe(1000);
  });
});

describe("a store-less backend learns its peers only through membership", () => {
  it("pods on different nodes reach each other, with a node joining and one leaving", async () => {
    const c = SimCluster.create({ backend: mesh, config: mesh.parseConfig({}), topology: singleSubnetTopology(), seed: 5 });
    await c.addNodes(3);
    const names = ["node-1", "node-2", "node-3", "node-4"];
    expect(new Set(names.map(meshIndex)).size).toBe(names.length);
    await podsOnEveryNode(c);
    expectAllReach(c);

    await c.addNode();
    await c.settle({ limitMs: 2000 });
    await c.addPod("node-4");
    await c.settle({ limitMs: 2000 });
    expectAllReach(c);
    expect(c.dataplane("node-1").routes.map((r) => r.origin)).toContain("member:node-4");

    await c.removeNode("node-2", { mode: "clean" });
    await c.settle({ limitMs: 2000 });
    expect(c.dataplane("node-1").routes.map((r) => r.origin)).not.toContain("member:node-2");
    expectAllReach(c);
    // Nothing went through the cluster store.
    expect((await c.store.list("")).items).toEqual([]);
    await c.close();
  });

  it("a secondary address the fabric gives a node reaches the others as an update, and the node answers on it", async () => {
    const c = SimCluster.create({ backend: mesh, config: mesh.parseConfig({}), topology: singleSubnetTopology(), seed: 6 });
    await c.addNodes(2);
    await podsOnEveryNode(c);
    await c.fabricPort.addSecondaryAddress({ node: "node-2", address: "198.51.100.200" });
    await c.settle({ limitMs: 2000 });
    expect(c.members.get("node-2")?.underlay[0]?.secondaryAddresses).toEqual(["198.51.100.200"]);
    expect(c.node("node-2").info.underlay[0]?.secondaryAddresses).toEqual(["198.51.100.200"]);
    expect(c.dataplane("node-1").routes.find((r) => r.origin === "member:node-2")?.via).toBe("198.51.100.200");
    expectAllReach(c);
    await expect(c.fabricPort.addSecondaryAddress({ node: "node-1", address: "198.51.100.200" })).rejects.toMatchObject({ code: 7, field: "address" });
    await expect(c.fabricPort.addSecondaryAddress({ node: "node-1", address: "198.51.100.1" })).rejects.toMatchObject({ code: 7, field: "address" });
    await expect(c.fabricPort.addSecondaryAddress({ node: "node-1", address: "203.0.113.9" })).rejects.toMatchObject({ code: 7, field: "address" });
    // A new node never gets an address the fabric gave away.
    const n3 = await c.addNode();
    expect(n3.info.underlay[0]?.address).not.toBe("198.51.100.200");

    await c.fabricPort.removeSecondaryAddress({ node: "node-2", address: "198.51.100.200" });
    await c.settle({ limitMs: 2000 });
    expect(c.dataplane("node-1").routes.find((r) => r.origin === "member:node-2")?.via).toBe(c.node("node-2").info.underlay[0]?.address);
    expectAllReach(c);
    await c.close();
  });
});

describe("a cluster-level controller programs the fabric", () => {
  it("routes each node's pod range on the VNet: pods reach each other across subnets with no per-node routes to peers", async () => {
    const c = SimCluster.create({ backend: vnet, config: vnet.parseConfig({}), topology: defaultTopology(), seed: 7 });
    expect(c.controllerStatus()).toBeUndefined();
    await c.addNodes(3);
    expect(c.controllerStatus()).toEqual({ ready: true });
    await podsOnEveryNode(c);
    expect(await c.fabricPort.routes()).toEqual([
      { dst: "10.60.1.0/24", node: "node-1" },
      { dst: "10.60.2.0/24", node: "node-2" },
      { dst: "10.60.3.0/24", node: "node-3" },
    ]);
    for (const n of c.nodes()) expect(c.dataplane(n.name).routes).toEqual([]);
    expectAllReach(c);
    const path = c.send({ kind: "pod", key: c.pods()[0]!.key }, { kind: "pod", key: c.pods()[1]!.key });
    expect(path.path.map((h) => h.detail).join("\n")).toMatch(/fabric route to node node-2/);

    await c.addNode();
    await c.settle({ limitMs: 2000 });
    await c.addPod("node-4");
    await c.settle({ limitMs: 2000 });
    expectAllReach(c);

    await c.removeNode("node-2", { mode: "clean" });
    await c.settle({ limitMs: 2000 });
    expect((await c.fabricPort.routes()).map((r) => r.node)).toEqual(["node-1", "node-3", "node-4"]);
    expectAllReach(c);
    // The freed range goes to the next node that joins.
    await c.addNode();
    await c.settle({ limitMs: 2000 });
    expect((await c.fabricPort.routes()).find((r) => r.node === "node-5")?.dst).toBe("10.60.2.0/24");
    await c.close();
  });

  it("without the fabric routes the same agents cannot reach each other (the routes are what carries them)", async () => {
    const c = SimCluster.create({ backend: vnet, config: vnet.parseConfig({}), topology: defaultTopology(), seed: 8 });
    await c.addNodes(2);
    await podsOnEveryNode(c);
    await c.fabricPort.deleteRoute("10.60.2.0/24");
    const r = c.reachability();
    expect(r.delivered).toBeLessThan(r.pairs);
    expect(r.failures[0]?.result.reason).toMatch(/no route/);
    await c.close();
  });
});
