import { describe, expect, it } from "vitest";
import { MemoryDatastore, MemoryMembership, MemoryNetwork, VirtualClock, silentLogger } from "@cnikit/core";
import type { AgentContext, Datastore, NodeAgent } from "@cnikit/core";
import { SUBNET_PREFIX, LEASE_TTL_SECONDS } from "../src/agent.ts";
import { reference } from "../src/index.ts";
import type { ReferenceConfig } from "../src/config.ts";

interface World {
  clock: VirtualClock;
  store: MemoryDatastore;
  network: MemoryNetwork;
  locals: Map<string, Datastore>;
}

function world(): World {
  const clock = new VirtualClock();
  return { clock, store: new MemoryDatastore({ clock }), network: new MemoryNetwork({ clock }), locals: new Map() };
}

let transports = 0;

function agent(w: World, name: string, index: number, config: ReferenceConfig = reference.parseConfig({})): NodeAgent {
  let local = w.locals.get(name);
  if (!local) {
    local = new MemoryDatastore({ clock: w.clock });
    w.locals.set(name, local);
  }
  let seed = index + 1;
  const ctx: AgentContext<ReferenceConfig> = {
    config,
    node: { name, underlay: [{ iface: "eth0", address: `198.51.100.${10 + index}`, prefixLength: 24, gateway: "198.51.100.1" }] },
    store: w.store,
    local,
    peers: w.network.transport(`${name}-${++transports}`),
    clock: w.clock,
    log: silentLogger,
    members: new MemoryMembership({ clock: w.clock }),
    random: () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    },
  };
  return reference.createAgent(ctx);
}

async function flush(w: World, ms = 100): Promise<void> {
  await w.clock.advance(ms);
}

describe("reference agent", () => {
  it("gives concurrently starting nodes distinct subnets and routes to each other", async () => {
    const w = world();
    const agents = [0, 1, 2, 3].map((i) => agent(w, `n${i}`, i));
    await Promise.all(agents.map((a) => a.start()));
    await flush(w);
    const listing = await w.store.list(SUBNET_PREFIX);
    expect(listing.items).toHaveLength(4);
    for (const a of agents) {
      expect(a.status().ready).toBe(true);
      expect(a.dataplane().routes).toHaveLength(3);
    }
    const gateways = agents.map((a) => a.dataplane().addresses[0]!.cidr);
    expect(new Set(gateways).size).toBe(4);
  });

  it("keeps its subnet, lease and pods across a restart", async () => {
    const w = world();
    const a = agent(w, "n0", 0);
    await a.start();
    const r1 = await a.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/c1" });
    const before = JSON.stringify(a.dataplane());
    await a.stop();
    const b = agent(w, "n0", 0);
    await b.start();
    await flush(w);
    expect(JSON.stringify(b.dataplane())).toBe(before);
    await expect(b.check({ containerId: "c1", ifName: "eth0" })).resolves.toBeUndefined();
    const again = await b.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/c1" });
    expect(again.ips).toEqual(r1.ips);
    const other = await b.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/c2" });
    expect(other.ips[0]!.address).not.toBe(r1.ips[0]!.address);
  });

  it("withdraws a crashed node's route once its lease expires, and a clean leave at once", async () => {
    const w = world();
    const [a, b, c] = [agent(w, "a", 0), agent(w, "b", 1), agent(w, "c", 2)];
    await a.start();
    await b.start();
    await c.start();
    await flush(w);
    expect(a.dataplane().routes).toHaveLength(2);
    // b "crashes": its timers stop (stop without release), nobody revokes its lease.
    await b.stop();
    await flush(w, (LEASE_TTL_SECONDS - 5) * 1000);
    expect(a.dataplane().routes).toHaveLength(2);
    await flush(w, 10_000);
    expect(a.dataplane().routes.map((r) => r.via)).toEqual(["198.51.100.12"]);
    await c.stop({ release: true });
    await flush(w);
    expect(a.dataplane().routes).toEqual([]);
  });

  it("releases on DEL, is idempotent, and GC keeps exactly the listed attachments", async () => {
    const w = world();
    const a = agent(w, "n0", 0);
    await a.start();
    const ref = (id: string) => ({ containerId: id, ifName: "eth0" });
    const r1 = await a.attach({ ...ref("x"), netns: "/ns/x" });
    await a.detach(ref("x"));
    await a.detach(ref("x"));
    await a.detach(ref("never"));
    const wanted = r1.ips[0]!.address.split("/")[0]!;
    const r2 = await a.attach({ ...ref("y"), netns: "/ns/y", requestedIps: [wanted] });
    expect(r2.ips[0]!.address).toBe(r1.ips[0]!.address);
    await a.attach({ ...ref("z"), netns: "/ns/z" });
    await a.gc([ref("z")]);
    await expect(a.check(ref("y"))).rejects.toMatchObject({ code: 3 });
    await expect(a.check(ref("z"))).resolves.toBeUndefined();
    expect(a.dataplane().pods.map((p) => p.containerId)).toEqual(["z"]);
  });

  it("refuses an MTU above the underlay's and ADD before start", async () => {
    const w = world();
    const a = agent(w, "n0", 0, reference.parseConfig({ mtu: 9000 }));
    await expect(a.start()).rejects.toMatchObject({ code: 7, field: "mtu" });
    const b = agent(w, "n1", 1);
    await expect(b.attach({ containerId: "c", ifName: "eth0", netns: "/ns/c" })).rejects.toMatchObject({ code: 50 });
    expect(b.status()).toMatchObject({ ready: false, code: 50 });
    expect((await w.store.list(SUBNET_PREFIX)).items).toHaveLength(0);
  });

  it("reports exhaustion of node subnets with code 100", async () => {
    const w = world();
    const config = reference.parseConfig({ network: "10.0.0.0/29", nodeSubnetLength: 30 });
    await agent(w, "a", 0, config).start();
    await agent(w, "b", 1, config).start();
    await expect(agent(w, "c", 2, config).start()).rejects.toMatchObject({ code: 100 });
  });
});
