/**
 * The Azure-like agent against the weaknesses of Azure CNI (DESIGN.md "Weaknesses of Azure CNI"), each test named
 * after the weakness it beats, in the simulator (virtual time) with the real controller.
 */
import { describe, expect, it } from "vitest";
import { MemoryDatastore, MemoryMembership, MemoryNetwork, VirtualClock, memoryLogger } from "@cnikit/core";
import type { AgentContext, Datastore, NodeInfo } from "@cnikit/core";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import type { SimTopology } from "@cnikit/sim";
import { AzureAgent, azure, encodeNncStatus, nncSpecKey, nncStatusKey, decodeNncSpec, parseAzureConfig } from "../src/index.ts";
import type { AzureConfig, NncStatus } from "../src/index.ts";

function cluster(profile: Record<string, unknown>, topology: SimTopology = defaultTopology()): SimCluster<AzureConfig> {
  return SimCluster.create({ backend: azure, config: azure.parseConfig(profile), topology, seed: 1 });
}

/** The virtual time the last ADD of the latest `burst` settled at. */
let lastSettledAt = 0;

/** Starts `count` ADDs on `node` at once and lets virtual time run (100 ms steps) until all have settled. */
async function burst(c: SimCluster<AzureConfig>, node: string, count: number): Promise<PromiseSettledResult<{ addresses: string[] }>[]> {
  const adds = Array.from({ length: count }, (_, i) =>
    c.addPod(node, { name: `burst-${i}` }).finally(() => {
      lastSettledAt = Math.max(lastSettledAt, c.clock.now());
    }),
  );
  lastSettledAt = 0;
  const all = Promise.allSettled(adds);
  let done = false;
  void all.then(() => (done = true));
  for (let i = 0; i < 2_000 && !done; i++) await c.settle({ limitMs: 100 });
  return all;
}

const DYNAMIC = { podIpAllocationMode: "DynamicIndividual", podSubnet: "10.241.0.0/16" };

describe("azure agent: Azure CNI's weaknesses, beaten", () => {
  it("slow pod start under bursts / store-lock timeouts: 200 parallel ADDs on one node all complete, in one request round trip (demand-driven sizing, no global lock)", async () => {
    const c = cluster({ ...DYNAMIC, maxPods: 250 });
    try {
      await c.addNode({ name: "node-1" });
      await c.settle();
      const specWritesBefore = (await c.store.get(nncSpecKey("node-1")))!.version;
      const t0 = c.clock.now();
      const results = await burst(c, "node-1", 200);
      const failed = results.filter((r) => r.status === "rejected");
      expect(failed).toEqual([]);
      const addresses = results.map((r) => (r as PromiseFulfilledResult<{ addresses: string[] }>).value.addresses[0]!);
      expect(new Set(addresses).size).toBe(200);
      for (const a of addresses) expect(a.startsWith("10.241.")).toBe(true);
      // One step: the spec asks for B × ceil(mf + 200/B) = 16 × 13 = 208 at once, not a batch per round trip.
      const kv = (await c.store.get(nncSpecKey("node-1")))!;
      expect(decodeNncSpec(kv.value)!.requestedIPCount).toBe(208);
      // Written at join (16), once for the burst (208), and once when the programmed version moved.
      expect(kv.version - specWritesBefore).toBeLessThanOrEqual(2);
      expect(lastSettledAt - t0).toBeLessThan(1_000);
    } finally {
      await c.close();
    }
  });

  it("burst on Azure's v1 monitor (poolMonitor: v1) still completes, one batch per 1 s tick: the side-by-side the benchmark prints", async () => {
    const c = cluster({ ...DYNAMIC, maxPods: 250, poolMonitor: "v1", reclaimIdle: false });
    try {
      await c.addNode({ name: "node-1" });
      await c.settle();
      const t0 = c.clock.now();
      const results = await burst(c, "node-1", 40);
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      // 40 pods at 16 per step from 16: at least two more batches, one tick each.
      expect(lastSettledAt - t0).toBeGreaterThanOrEqual(1_000);
    } finally {
      await c.close();
    }
  });

  it("'No available addresses' with free space in the subnet / batch over-reservation: idle batches are reclaimed under scarcity, so a node that needs addresses gets them while the subnet has any", async () => {
    // A /27 pod subnet: 32 − 5 reserved = 27 usable, less than the two first batches (2 × 16).
    const c = cluster({ podIpAllocationMode: "DynamicIndividual", podSubnet: "10.241.0.0/27", maxPods: 30 });
    try {
      await c.addNode({ name: "node-1" });
      await c.addNode({ name: "node-2" });
      await c.settle({ limitMs: 10_000 });
      const results = await burst(c, "node-1", 26);
      expect(results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      // node-2 keeps one idle address (the collapsed maxFree's hysteresis): the subnet is now full.
      const status = JSON.parse((await c.store.get(nncStatusKey("node-2")))!.value) as NncStatus;
      expect(status.assignedIPs.length).toBe(1);
      expect(status.subnetExhausted).toBe(true);
      // The next ADD has nowhere to go: refused with the numbers, not hung.
      await expect(burst(c, "node-1", 1).then((r) => r[0])).resolves.toMatchObject({ status: "rejected", reason: expect.objectContaining({ code: 100 }) });
    } finally {
      await c.close();
    }
  });

  it("the same scarcity on Azure's behaviour (v1, reclaimIdle false): the other node gives back one address per 1 s tick, so the burst waits seconds where ours waits none — the yardstick for the test above", async () => {
    const waitFor = async (profile: Record<string, unknown>): Promise<number> => {
      const c = cluster({ podIpAllocationMode: "DynamicIndividual", podSubnet: "10.241.0.0/27", maxPods: 30, ...profile });
      try {
        await c.addNode({ name: "node-1" });
        await c.addNode({ name: "node-2" });
        await c.settle({ limitMs: 10_000 });
        const t0 = c.clock.now();
        const results = await burst(c, "node-1", 20);
        expect(results.filter((r) => r.status === "rejected")).toEqual([]);
        return lastSettledAt - t0;
      } finally {
        await c.close();
      }
    };
    const ours = await waitFor({});
    const azureLike = await waitFor({ poolMonitor: "v1", reclaimIdle: false });
    expect(ours).toBeLessThan(1_000);
    expect(azureLike).toBeGreaterThanOrEqual(5_000);
  });

  it("IP leak on sandbox re-creation: the same pod re-created with a new container id gets a fresh address, and the old sandbox's late DEL returns only its own", async () => {
    const c = cluster({ maxPods: 10 });
    try {
      await c.addNode({ name: "node-1" });
      await c.settle();
      const old = await c.addPod("node-1", { name: "web", containerId: "sandbox-1" });
      const fresh = await c.addPod("node-1", { name: "web", containerId: "sandbox-2" });
      expect(fresh.addresses[0]).not.toBe(old.addresses[0]);
      await c.removePod(old);
      await c.settle();
      // The new sandbox keeps its address and a third pod cannot take it.
      const third = await c.addPod("node-1", { name: "other" });
      expect(third.addresses[0]).not.toBe(fresh.addresses[0]);
      await expect(c.node("node-1").agent.check({ containerId: "sandbox-2", ifName: "eth0" })).resolves.toBeUndefined();
    } finally {
      await c.close();
    }
  });

  it("IP leak on out-of-order ADD/DEL: a DEL that arrives before its ADD is harmless, and never releases another pod's address", async () => {
    const c = cluster({ maxPods: 10 });
    try {
      await c.addNode({ name: "node-1" });
      await c.settle();
      const agent = c.node("node-1").agent;
      await agent.detach({ containerId: "late", ifName: "eth0" });
      const a = await c.addPod("node-1", { name: "a", containerId: "late" });
      const b = await c.addPod("node-1", { name: "b", containerId: "other" });
      await agent.detach({ containerId: "never-added", ifName: "eth0" });
      await expect(agent.check({ containerId: "late", ifName: "eth0" })).resolves.toBeUndefined();
      await expect(agent.check({ containerId: "other", ifName: "eth0" })).resolves.toBeUndefined();
      expect(a.addresses[0]).not.toBe(b.addresses[0]);
    } finally {
      await c.close();
    }
  });

  it("exhaustion in classic mode is per node and exact: maxPods ADDs succeed, the next is 'No available addresses' naming the node and maxPods", async () => {
    const c = cluster({ maxPods: 10 });
    try {
      await c.addNode({ name: "node-1" });
      await c.settle();
      const results = await burst(c, "node-1", 11);
      expect(results.filter((r) => r.status === "fulfilled").length).toBe(10);
      const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(refused.reason).toMatchObject({ code: 100 });
      expect(String(refused.reason.message)).toMatch(/No available addresses: node node-1 holds 10 addresses \(classic, maxPods 10\)/);
    } finally {
      await c.close();
    }
  });
});

/** One agent over a store whose NNC status the test writes itself (no controller). */
function lone(config: AzureConfig, clock = new VirtualClock(), store: Datastore = new MemoryDatastore({ clock })) {
  const node: NodeInfo = { name: "node-1", underlay: [{ iface: "eth0", address: "198.51.100.10", prefixLength: 24, gateway: "198.51.100.1" }] };
  const members = new MemoryMembership({ clock, nodes: [node] });
  const net = new MemoryNetwork({ clock });
  const log = memoryLogger({ clock });
  const local = new MemoryDatastore({ clock });
  const ctx: AgentContext<AzureConfig> = { config, node, store, local, peers: net.transport(node.name), clock, log: log.logger, random: () => 0.5, members };
  return { agent: new AzureAgent(ctx), clock, local, log, store };
}

function status(ips: string[], version: number, extra: Partial<NncStatus> = {}): string {
  const config = parseAzureConfig(DYNAMIC);
  return encodeNncStatus({ mode: "dynamic", state: "Updated", version, assignedIPs: ips, blocks: [], scaler: config.scaler, subnet: "10.241.0.0/16", subnetExhausted: false, ...extra });
}

describe("azure agent on its own (the NodeNetworkConfig written by hand)", () => {
  it("node IPAM not ready at boot: STATUS 50 until the pool has a programmed address, then ready", async () => {
    const config = parseAzureConfig(DYNAMIC);
    const { agent, clock, store } = lone(config);
    await store.put(nncStatusKey("node-1"), status([], 1));
    await agent.start();
    expect(agent.status()).toMatchObject({ ready: false, code: 50, reason: expect.stringMatching(/has no address yet \(requested 16, assigned 0\)/) });
    const spec = decodeNncSpec((await store.get(nncSpecKey("node-1")))!.value)!;
    expect(spec).toMatchObject({ requestedIPCount: 16, demand: 0 });
    await store.put(nncStatusKey("node-1"), status(["10.241.0.4", "10.241.0.5"], 2));
    await clock.advance(0);
    await clock.advance(0);
    expect(agent.status()).toEqual({ ready: true });
    const dp = agent.dataplane();
    expect(dp.routes.filter((r) => r.type === "unreachable").map((r) => r.dst)).toEqual(["10.241.0.4/32", "10.241.0.5/32"]);
    await agent.stop();
  });

  it("IP leak on a failed ADD: when the node-local record cannot be written the address goes back, and the next ADD gets it", async () => {
    const config = parseAzureConfig(DYNAMIC);
    const { agent, clock, local, store } = lone(config);
    await store.put(nncStatusKey("node-1"), status(["10.241.0.4"], 1));
    await agent.start();
    await clock.advance(0);
    await clock.advance(0);
    const put = local.put.bind(local);
    local.put = async () => {
      throw new Error("disk full");
    };
    await expect(agent.attach({ containerId: "c1", ifName: "eth0", netns: "/x" })).rejects.toMatchObject({ code: 11 });
    local.put = put;
    const r = await agent.attach({ containerId: "c2", ifName: "eth0", netns: "/y" });
    expect(r.ips[0]!.address).toBe("10.241.0.4/32");
    await agent.stop();
  });

  it("a refused join fails start() with the controller's reason (PoolExhaustedError) and writes nothing but its request", async () => {
    const config = parseAzureConfig({ maxPods: 30 });
    const { agent, store } = lone(config);
    const reason = "Pre-allocated IPs 279 exceeds IPs available 251: (n + 1) × (maxPods + 1) = (8 + 1) × (30 + 1) = 279";
    await store.put(
      nncStatusKey("node-1"),
      encodeNncStatus({ mode: "classic", state: "Error", reason, version: 0, assignedIPs: [], blocks: [], scaler: config.scaler, subnet: "198.51.100.0/24", subnetExhausted: false }),
    );
    await expect(agent.start()).rejects.toMatchObject({ code: 100, message: expect.stringContaining("Pre-allocated IPs 279 exceeds IPs available 251") });
    expect((await store.list("/cnikit/azure/")).items.map((kv) => kv.key).sort()).toEqual([nncSpecKey("node-1"), nncStatusKey("node-1")].sort());
  });
});
