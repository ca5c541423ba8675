import { seededRandom } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  AddressInUseError,
  CheckFailedError,
  CompactedError,
  MemoryDatastore,
  NotReadyError,
  PoolExhaustedError,
  UnknownContainerError,
  VirtualClock,
  canonicalDataplane,
  memoryLogger,
} from "@cnikit/core";
import type { Datastore, NodeDataplane, NodeInfo, WatchEvent } from "@cnikit/core";
import { FlannelAgent, LOCAL_KEYS, REPLAN_MIN_INTERVAL_MS, RESYNC_MS } from "../src/agent.ts";
import { parseFlannelConfig } from "../src/config.ts";
import { SUBNET_PREFIX } from "../src/leases.ts";
import { deriveVtepMac } from "../src/plan.ts";
import type { FlannelConfig } from "../src/config.ts";
import { agentContext, drive, hookedStore, nodeInfo } from "./helpers.ts";

const VX = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } });
const HG = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "host-gw" } });

class Cluster {
  readonly clock = new VirtualClock();
  readonly inner = new MemoryDatastore({ clock: this.clock });
  readonly agents = new Map<string, FlannelAgent>();
  readonly locals = new Map<string, Datastore>();
  constructor(
    readonly config: FlannelConfig = VX,
    readonly storeFor: (name: string, inner: Datastore) => Datastore = (_n, s) => s,
  ) {}

  async add(node: NodeInfo, options: { local?: Datastore; log?: ReturnType<typeof memoryLogger>["logger"] } = {}): Promise<FlannelAgent> {
    const local = options.local ?? this.locals.get(node.name) ?? new MemoryDatastore({ clock: this.clock });
    this.locals.set(node.name, local);
    const ctx = agentContext({
      config: this.config,
      node,
      store: this.storeFor(node.name, this.inner),
      clock: this.clock,
      local,
      random: seededRandom(node.name.length * 31 + node.name.charCodeAt(node.name.length - 1)),
      ...(options.log ? { log: options.log } : {}),
    });
    const agent = new FlannelAgent(ctx);
    await drive(this.clock, agent.start());
    this.agents.set(node.name, agent);
    await this.settle();
    return agent;
  }

  /** Lets re-plans that wait for REPLAN_MIN_INTERVAL_MS happen. */
  async settle(): Promise<void> {
    await this.clock.advance(REPLAN_MIN_INTERVAL_MS);
  }

  agent(name: string): FlannelAgent {
    const a = this.agents.get(name);
    if (!a) throw new Error(`no agent ${name}`);
    return a;
  }

  async stopAll(): Promise<void> {
    for (const a of this.agents.values()) await a.stop();
  }
}

function routeDsts(dp: NodeDataplane): string[] {
  return dp.routes.map((r) => r.dst).sort();
}

describe("agent: join, leave, crash, restart", () => {
  it("starts: holds a lease, plans cni0 + flannel.1, reports ready", async () => {
    const c = new Cluster();
    const a = await c.add(nodeInfo("a1", "a", 10));
    expect(a.status()).toEqual({ ready: true });
    const dp = a.dataplane();
    expect(dp.links.map((l) => l.name).sort()).toEqual(["cni0", "flannel.1"]);
    expect(dp.links.find((l) => l.name === "flannel.1")?.mac).toBe(deriveVtepMac("a1", 4));
    expect(dp.addresses).toContainEqual({ dev: "flannel.1", cidr: `${a.lease()!.subnet!.split("/")[0]}/32` });
    await c.stopAll();
  });

  it("peers see each other; a newcomer is routed to at once; a clean leave withdraws its entries", async () => {
    const c = new Cluster();
    const a = await c.add(nodeInfo("a1", "a", 10));
    const b = await c.add(nodeInfo("b1", "b", 10));
    await c.settle();
    expect(routeDsts(a.dataplane())).toEqual([b.lease()!.subnet]);
    expect(routeDsts(b.dataplane())).toEqual([a.lease()!.subnet]);
    const n = await c.add(nodeInfo("a2", "a", 11));
    await c.settle();
    expect(routeDsts(a.dataplane())).toEqual([b.lease()!.subnet, n.lease()!.subnet].sort());
    expect(a.dataplane().fdb).toContainEqual({ dev: "flannel.1", mac: deriveVtepMac("a2", 4), dst: "198.51.100.11", permanent: true });
    await n.stop({ release: true });
    await c.settle();
    expect(routeDsts(a.dataplane())).toEqual([b.lease()!.subnet]);
    expect(a.dataplane().fdb.map((f) => f.dst)).toEqual(["203.0.113.10"]);
    expect(a.dataplane().neighbours).toHaveLength(1);
    await c.stopAll();
  });

  it("a crashed node (no renewals) disappears when its 24 h lease expires; a live one renews and stays", async () => {
    const c = new Cluster();
    const a = await c.add(nodeInfo("a1", "a", 10));
    const b = await c.add(nodeInfo("b1", "b", 10));
    const dead = await c.add(nodeInfo("a2", "a", 11));
    await c.settle();
    await dead.stop(); // no release: like a crash, the lease simply stops being renewed
    await c.clock.advance(23 * 3_600_000);
    expect(routeDsts(a.dataplane())).toContain(dead.lease()!.subnet);
    await c.clock.advance(3_600_000 + RESYNC_MS);
    expect(routeDsts(a.dataplane())).toEqual([b.lease()!.subnet]);
    expect(routeDsts(b.dataplane())).toEqual([a.lease()!.subnet]);
    // the live ones renewed at expiry − 60 min and are still there a day later
    await c.clock.advance(26 * 3_600_000);
    // 50 h after it was granted, a's 24 h store lease lives only if it was kept alive twice
    expect((await c.inner.leaseInfo(a.lease()!.storeLease!))?.remainingSeconds).toBeGreaterThan(0);
    expect((await c.inner.list(SUBNET_PREFIX)).items).toHaveLength(2);
    await c.stopAll();
  });

  it("an agent restart keeps the lease, the pods and renders the same dataplane", async () => {
    const c = new Cluster();
    const a = await c.add(nodeInfo("a1", "a", 10));
    await c.add(nodeInfo("b1", "b", 10));
    await drive(c.clock, a.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/c1" }));
    await drive(c.clock, a.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/c2" }));
    await drive(c.clock, a.detach({ containerId: "c1", ifName: "eth0" }));
    await c.settle();
    const before = JSON.stringify(canonicalDataplane(a.dataplane()));
    const lease = a.lease()!;
    await a.stop();
    const again = await c.add(nodeInfo("a1", "a", 10));
    await c.settle();
    expect(again.lease()).toMatchObject({ key: lease.key, storeLease: lease.storeLease, source: "own" });
    expect(JSON.stringify(canonicalDataplane(again.dataplane()))).toBe(before);
    // round-robin continues after the last reserved address (.3), it does not restart at .2
    const r = await drive(c.clock, again.attach({ containerId: "c3", ifName: "eth0", netns: "/ns/c3" }));
    const base = lease.subnet!.split(".").slice(0, 3).join(".");
    expect(r.ips[0]!.address).toBe(`${base}.4/24`);
    await c.stopAll();
  });

  it("weakness: stale VTEP MAC after restart — the MAC is persisted, and derived from the name if local state is lost", async () => {
    const c = new Cluster();
    const a = await c.add(nodeInfo("a1", "a", 10));
    const b = await c.add(nodeInfo("b1", "b", 10));
    await c.settle();
    const neighbourOfB = JSON.stringify(a.dataplane().neighbours);
    const macB = b.dataplane().links.find((l) => l.kind === "vxlan")?.mac;
    expect(await c.locals.get("b1")!.get(LOCAL_KEYS.vtepMac(4))).toMatchObject({ value: macB });
    await b.stop();
    const b2 = await c.add(nodeInfo("b1", "b", 10));
    expect(b2.dataplane().links.find((l) => l.kind === "vxlan")?.mac).toBe(macB);
    await b2.stop();
    // the node is rebuilt: node-local state gone, same name
    const b3 = await c.add(nodeInfo("b1", "b", 10), { local: new MemoryDatastore({ clock: c.clock }) });
    await c.settle();
    expect(b3.dataplane().links.find((l) => l.kind === "vxlan")?.mac).toBe(macB);
    expect(JSON.stringify(a.dataplane().neighbours)).toBe(neighbourOfB);
    // a changed MAC (other hardware, operator edit) is published and peers follow it
    await b3.stop();
    const local = new MemoryDatastore({ clock: c.clock });
    await local.put(LOCAL_KEYS.vtepMac(4), "02:aa:bb:cc:dd:ee");
    await c.add(nodeInfo("b1", "b", 10), { local });
    await c.settle();
    expect(a.dataplane().neighbours.map((n) => n.mac)).toEqual(["02:aa:bb:cc:dd:ee"]);
    expect(a.dataplane().fdb.map((f) => f.mac)).toEqual(["02:aa:bb:cc:dd:ee"]);
    await c.stopAll();
  });
});

describe("agent: watch trouble", () => {
  it("weakness: missed events leave stale routes — the periodic resync repairs them", async () => {
    let dropping = false;
    const dropped: WatchEvent[] = [];
    const c = new Cluster(VX, (name, inner) =>
      name === "a1"
        ? hookedStore(inner, {
            deliver: (ev) => {
              if (dropping) dropped.push(ev);
              return !dropping;
            },
          })
        : inner,
    );
    const a = await c.add(nodeInfo("a1", "a", 10));
    const b = await c.add(nodeInfo("b1", "b", 10));
    await c.settle();
    expect(routeDsts(a.dataplane())).toEqual([b.lease()!.subnet]);
    dropping = true;
    await b.stop({ release: true }); // a1 never hears of it
    const n = await c.add(nodeInfo("b2", "b", 11)); // nor of this
    await c.settle();
    expect(dropped.length).toBeGreaterThanOrEqual(2);
    expect(routeDsts(a.dataplane())).toEqual([b.lease()!.subnet]); // stale, as flannel would stay
    dropping = false;
    await c.clock.advance(RESYNC_MS);
    expect(routeDsts(a.dataplane())).toEqual([n.lease()!.subnet]);
    expect(a.stats().relists).toBeGreaterThanOrEqual(2);
    await c.stopAll();
  });

  it("a compacted watch re-lists and carries on", async () => {
    let compactOnce = true;
    const c = new Cluster(VX, (name, inner) =>
      name === "a1"
        ? {
            ...inner,
            get: (k) => inner.get(k),
            put: (k, v, o) => inner.put(k, v, o),
            delete: (k, o) => inner.delete(k, o),
            list: (p) => inner.list(p),
            txn: (x, y) => inner.txn(x, y),
            grantLease: (t) => inner.grantLease(t),
            keepAlive: (l) => inner.keepAlive(l),
            revokeLease: (l) => inner.revokeLease(l),
            leaseInfo: (l) => inner.leaseInfo(l),
            revision: () => inner.revision(),
            close: () => inner.close(),
            watch(prefix, options) {
              if (compactOnce) {
                compactOnce = false;
                return {
                  [Symbol.asyncIterator]: () => ({
                    next: () => Promise.reject(new CompactedError(99, "compacted")),
                  }),
                };
              }
              return inner.watch(prefix, options);
            },
          }
        : inner,
    );
    const a = await c.add(nodeInfo("a1", "a", 10));
    await c.settle();
    const b = await c.add(nodeInfo("b1", "b", 10));
    await c.settle();
    expect(compactOnce).toBe(false);
    expect(routeDsts(a.dataplane())).toEqual([b.lease()!.subnet]);
    expect(a.stats().relists).toBeGreaterThanOrEqual(2);
    await c.stopAll();
  });

  it("weakness: a deleted lease shuts the daemon down — the agent writes it back for the same subnet", async () => {
    const c = new Cluster();
    const { logger, records } = memoryLogger();
    const a = await c.add(nodeInfo("a1", "a", 10), { log: logger });
    const key = a.lease()!.key;
    await c.inner.delete(key);
    await c.settle();
    await c.settle();
    const kv = await c.inner.get(key);
    expect(kv).toBeDefined();
    expect(JSON.parse(kv!.value).NodeName).toBe("a1");
    expect(a.status().ready).toBe(true);
    expect(records.some((r) => r.level === "warn" && r.msg.includes("re-created"))).toBe(true);
    // if another node took it meanwhile, the agent says it is impaired (51) instead of exiting
    await a.stop();
    const b = await c.add(nodeInfo("a1", "a", 10));
    await c.inner.delete(key);
    await c.inner.put(key, JSON.stringify({ PublicIP: "198.51.100.99", BackendType: "vxlan", NodeName: "intruder" }));
    await c.settle();
    await c.settle();
    expect(b.status()).toMatchObject({ ready: false, code: 51 });
    await c.stopAll();
  });
});

describe("agent: host-gw across subnets", () => {
  it("omits the unreachable peer, logs it, and names it in status", async () => {
    const c = new Cluster(HG);
    const { logger, records } = memoryLogger();
    const a = await c.add(nodeInfo("a1", "a", 10), { log: logger });
    const same = await c.add(nodeInfo("a2", "a", 11));
    await c.add(nodeInfo("b1", "b", 10));
    await c.settle();
    expect(a.dataplane().routes).toEqual([expect.objectContaining({ dst: same.lease()!.subnet, via: "198.51.100.11", dev: "eth0" })]);
    expect(a.skippedPeers().map((s) => s.node)).toEqual(["b1"]);
    const status = a.status();
    expect(status.ready).toBe(true);
    expect(status.reason).toContain("b1");
    expect(status.reason).toContain("L2 subnet");
    expect(records.filter((r) => r.level === "warn" && r.msg.includes("b1"))).toHaveLength(1);
    await c.stopAll();
  });

  it("refuses to start on a node without an address of an enabled family (ConfigError)", async () => {
    const c = new Cluster(parseFlannelConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", Backend: { Type: "host-gw" } }));
    await expect(c.add(nodeInfo("a1", "a", 10))).rejects.toThrow(/host-gw with EnableIPv6 needs an IPv6 underlay/);
  });

  it("refuses an underlay MTU that leaves pods below the minimum", async () => {
    const c = new Cluster();
    await expect(c.add(nodeInfo("a1", "a", 10, 600))).rejects.toThrow(/MTU 550, below the minimum 576/);
  });
});

describe("agent: pods (host-local-like IPAM in the node subnet)", () => {
  it("round-robin, never network/gateway/broadcast, idempotent ADD, DEL releases, exhaustion leaves nothing", async () => {
    const c = new Cluster(parseFlannelConfig({ Network: "10.244.0.0/16", SubnetLen: 29 }));
    const a = await c.add(nodeInfo("a1", "a", 10));
    const subnet = a.lease()!.subnet!;
    const [o1, o2, o3, o4] = subnet.split("/")[0]!.split(".").map(Number) as [number, number, number, number];
    const addr = (i: number) => `${o1}.${o2}.${o3}.${o4 + i}`;
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await drive(c.clock, a.attach({ containerId: `c${i}`, ifName: "eth0", netns: `/ns/${i}` }));
      got.push(r.ips[0]!.address);
      expect(r.ips[0]!.gateway).toBe(addr(1));
      expect(r.interfaces.map((x) => x.name)).toEqual(["cni0", expect.stringMatching(/^veth[0-9a-f]{8}$/), "eth0"]);
      expect(r.interfaces[2]!.mtu).toBe(1450);
      expect(r.routes).toEqual([
        { dst: "10.244.0.0/16", gw: addr(1) },
        { dst: "0.0.0.0/0", gw: addr(1) },
      ]);
    }
    expect(got).toEqual([2, 3, 4, 5, 6].map((i) => `${addr(i)}/29`));
    const again = await drive(c.clock, a.attach({ containerId: "c0", ifName: "eth0", netns: "/ns/0" }));
    expect(again.ips[0]!.address).toBe(got[0]);
    await expect(drive(c.clock, a.attach({ containerId: "cx", ifName: "eth0", netns: "/ns/x" }))).rejects.toBeInstanceOf(PoolExhaustedError);
    expect((await c.locals.get("a1")!.list(LOCAL_KEYS.pods)).items).toHaveLength(5);
    await drive(c.clock, a.detach({ containerId: "c1", ifName: "eth0" }));
    await drive(c.clock, a.detach({ containerId: "c1", ifName: "eth0" }));
    await drive(c.clock, a.detach({ containerId: "never", ifName: "eth0" }));
    const next = await drive(c.clock, a.attach({ containerId: "c9", ifName: "eth0", netns: "/ns/9" }));
    expect(next.ips[0]!.address).toBe(`${addr(3)}/29`);
    expect(
      a
        .dataplane()
        .pods.map((p) => p.key)
        .sort(),
    ).toEqual(["c0/eth0", "c2/eth0", "c3/eth0", "c4/eth0", "c9/eth0"]);
    await c.stopAll();
  });

  it("requested addresses, CHECK, GC, NotReady before start", async () => {
    const c = new Cluster();
    const early = new FlannelAgent(agentContext({ config: VX, node: nodeInfo("z", "a", 9), store: c.inner, clock: c.clock }));
    await expect(early.attach({ containerId: "c", ifName: "eth0", netns: "/ns" })).rejects.toBeInstanceOf(NotReadyError);
    expect(early.status()).toMatchObject({ ready: false, code: 50 });
    const a = await c.add(nodeInfo("a1", "a", 10));
    const base = a.lease()!.subnet!.split(".").slice(0, 3).join(".");
    const r = await drive(c.clock, a.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/1", requestedIps: [`${base}.77`] }));
    expect(r.ips[0]!.address).toBe(`${base}.77/24`);
    await expect(drive(c.clock, a.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/2", requestedIps: [`${base}.77`] }))).rejects.toBeInstanceOf(AddressInUseError);
    await expect(drive(c.clock, a.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/2", requestedIps: [`${base}.1`] }))).rejects.toBeInstanceOf(AddressInUseError);
    await expect(drive(c.clock, a.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/2", requestedIps: ["10.9.9.9"] }))).rejects.toBeInstanceOf(AddressInUseError);
    await drive(c.clock, a.check({ containerId: "c1", ifName: "eth0" }));
    await expect(drive(c.clock, a.check({ containerId: "c2", ifName: "eth0" }))).rejects.toBeInstanceOf(UnknownContainerError);
    await c.locals.get("a1")!.delete(`${LOCAL_KEYS.pods}c1/eth0`);
    await expect(drive(c.clock, a.check({ containerId: "c1", ifName: "eth0" }))).rejects.toBeInstanceOf(CheckFailedError);
    await drive(c.clock, a.attach({ containerId: "c3", ifName: "eth0", netns: "/ns/3" }));
    await drive(c.clock, a.attach({ containerId: "c4", ifName: "eth0", netns: "/ns/4" }));
    await drive(c.clock, a.gc([{ containerId: "c3", ifName: "eth0" }]));
    expect(a.dataplane().pods.map((p) => p.key)).toEqual(["c3/eth0"]);
    expect((await c.locals.get("a1")!.list(LOCAL_KEYS.pods)).items.map((kv) => kv.key)).toEqual([`${LOCAL_KEYS.pods}c3/eth0`]);
    await c.stopAll();
  });

  it("a failed write of the reservation leaves nothing reserved", async () => {
    const c = new Cluster();
    const local = new MemoryDatastore({ clock: c.clock });
    const a = await c.add(nodeInfo("a1", "a", 10), { local });
    local.setAvailable(false);
    await expect(drive(c.clock, a.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/1" }))).rejects.toMatchObject({ code: 11 });
    local.setAvailable(true);
    const r = await drive(c.clock, a.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/2" }));
    expect(r.ips[0]!.address.endsWith(".2/24")).toBe(true);
    expect(a.dataplane().pods.map((p) => p.key)).toEqual(["c2/eth0"]);
    await c.stopAll();
  });
});

describe("state sequence: events in any order end in the same dataplane", () => {
  type Ev = { kind: "join"; node: string } | { kind: "leave"; node: string } | { kind: "pod"; id: number } | { kind: "unpod"; id: number };
  const NODES: Record<string, { info: NodeInfo; subnet: string }> = {
    b1: { info: nodeInfo("b1", "b", 10), subnet: "10.244.21.0/24" },
    a2: { info: nodeInfo("a2", "a", 11), subnet: "10.244.22.0/24" },
    b2: { info: nodeInfo("b2", "b", 11), subnet: "10.244.23.0/24" },
    a3: { info: nodeInfo("a3", "a", 12), subnet: "10.244.24.0/24" },
  };
  const FORWARD: Ev[] = [
    { kind: "join", node: "b1" },
    { kind: "pod", id: 1 },
    { kind: "join", node: "a2" },
    { kind: "pod", id: 2 },
    { kind: "join", node: "b2" },
    { kind: "leave", node: "a2" },
    { kind: "pod", id: 3 },
    { kind: "unpod", id: 2 },
    { kind: "join", node: "a3" },
  ];
  /** What FORWARD squashes to: only the final state. */
  const SQUASHED: Ev[] = [
    { kind: "join", node: "b1" },
    { kind: "join", node: "b2" },
    { kind: "join", node: "a3" },
    { kind: "pod", id: 1 },
    { kind: "pod", id: 3 },
  ];

  async function runWith(events: Ev[], config: FlannelConfig): Promise<Record<string, string>> {
    const c = new Cluster(config);
    for (const [name, n] of Object.entries({ a1: { info: nodeInfo("a1", "a", 10), subnet: "10.244.20.0/24" }, ...NODES })) {
      const local = new MemoryDatastore({ clock: c.clock });
      await local.put(LOCAL_KEYS.lease, JSON.stringify({ subnet: n.subnet }));
      c.locals.set(name, local);
    }
    const a = await c.add(nodeInfo("a1", "a", 10));
    for (const ev of events) {
      if (ev.kind === "join") await c.add(NODES[ev.node]!.info);
      else if (ev.kind === "leave") {
        await c.agent(ev.node).stop({ release: true });
        c.agents.delete(ev.node);
      } else if (ev.kind === "pod") await drive(c.clock, a.attach({ containerId: `p${ev.id}`, ifName: "eth0", netns: `/ns/${ev.id}`, requestedIps: [`10.244.20.${10 + ev.id}`] }));
      else await drive(c.clock, a.detach({ containerId: `p${ev.id}`, ifName: "eth0" }));
    }
    await c.clock.advance(RESYNC_MS);
    const out: Record<string, string> = {};
    for (const [name, agent] of [...c.agents].sort()) out[name] = JSON.stringify(canonicalDataplane(agent.dataplane()));
    await c.stopAll();
    return out;
  }

  const DIRECT = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: true } });
  it.each([
    ["vxlan", VX],
    ["vxlan-directrouting", DIRECT],
  ] as const)("%s: forward, squashed and any valid reordering agree (nodes pinned to their underlay subnets)", async (_label, config) => {
    const run = (events: Ev[]) => runWith(events, config);
    const reference = await run(FORWARD);
    expect(Object.keys(reference)).toEqual(["a1", "a3", "b1", "b2"]);
    expect(JSON.parse(reference.a1!).routes).toHaveLength(3);
    if (config === DIRECT) expect(JSON.parse(reference.a1!).fdb).toHaveLength(2); // a3 direct, b1 and b2 via vxlan
    expect(await run(SQUASHED)).toEqual(reference);
    await fc.assert(
      fc.asyncProperty(fc.shuffledSubarray(FORWARD, { minLength: FORWARD.length }), async (order) => {
        // keep each leave after its join and each unpod after its pod
        const fixed = [...order];
        const idx = (p: (e: Ev) => boolean) => fixed.findIndex(p);
        const li = idx((e) => e.kind === "leave");
        const ji = idx((e) => e.kind === "join" && e.node === "a2");
        if (li < ji) [fixed[li], fixed[ji]] = [fixed[ji]!, fixed[li]!];
        const ui = idx((e) => e.kind === "unpod");
        const pi = idx((e) => e.kind === "pod" && e.id === 2);
        if (ui < pi) [fixed[ui], fixed[pi]] = [fixed[pi]!, fixed[ui]!];
        expect(await run(fixed)).toEqual(reference);
      }),
      { numRuns: 8 },
    );
  });
});
