import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { canonicalDataplane } from "@cnikit/core";
import type { NodeInfo } from "@cnikit/core";
import { parseFlannelConfig } from "../src/config.ts";
import { subnetKey } from "../src/leases.ts";
import { PeerTable, createPlanCache, deriveVtepMac, planDataplane, planWithDiagnostics, podMtu } from "../src/plan.ts";
import type { LeaseAttrs, SubnetLease } from "../src/leases.ts";
import type { PlanInput } from "../src/plan.ts";

const VX = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } });
const DR = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: true } });
const HG = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "host-gw" } });
const DUAL = parseFlannelConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan" } });

const NODE_A: NodeInfo = { name: "a1", underlay: [{ iface: "eth0", address: "198.51.100.10", prefixLength: 24, gateway: "198.51.100.1" }] };

let revision = 10;
function lease(options: { node: string; subnet?: string; ipv6Subnet?: string; ip?: string; ip6?: string; type?: string; vni?: number; createRevision?: number; noName?: boolean }): SubnetLease {
  const attrs: LeaseAttrs = { BackendType: options.type ?? "vxlan" };
  if (!options.noName) attrs.NodeName = options.node;
  if (options.ip) attrs.PublicIP = options.ip;
  if (options.ip6) attrs.PublicIPv6 = options.ip6;
  if (attrs.BackendType === "vxlan") {
    if (options.ip) attrs.BackendData = { VNI: options.vni ?? 1, VtepMAC: deriveVtepMac(options.node, 4) };
    if (options.ip6) attrs.BackendV6Data = { VNI: options.vni ?? 1, VtepMAC: deriveVtepMac(options.node, 6) };
  }
  const subnets: { subnet?: string; ipv6Subnet?: string } = {};
  if (options.subnet) subnets.subnet = options.subnet;
  if (options.ipv6Subnet) subnets.ipv6Subnet = options.ipv6Subnet;
  const rev = options.createRevision ?? ++revision;
  return { key: subnetKey(subnets), ...subnets, attrs, createRevision: rev, modRevision: rev, storeLease: `l${rev}` };
}

const OWN = lease({ node: "a1", subnet: "10.244.1.0/24", ip: "198.51.100.10", createRevision: 1 });
const SAME_SUBNET_PEER = lease({ node: "a2", subnet: "10.244.7.0/24", ip: "198.51.100.11", createRevision: 2 });
const OTHER_SUBNET_PEER = lease({ node: "b1", subnet: "10.244.9.0/24", ip: "203.0.113.20", createRevision: 3 });

function input(config: PlanInput["config"], leases: SubnetLease[], extra: Partial<PlanInput> = {}): PlanInput {
  return {
    config,
    node: NODE_A,
    lease: { subnet: "10.244.1.0/24", key: OWN.key },
    vtepMacs: { v4: deriveVtepMac("a1", 4) },
    peers: [OWN, ...leases],
    pods: [],
    ...extra,
  };
}

describe("plan: vxlan (flannel.<VNI>, neighbour + FDB + onlink route per peer)", () => {
  it("before the lease is held the plan is empty", () => {
    const { lease: _held, ...withoutLease } = input(VX, [SAME_SUBNET_PEER]);
    const dp = planDataplane(withoutLease);
    expect(dp.links).toEqual([]);
    expect(dp.routes).toEqual([]);
  });

  it("programs the device, its /32, and three entries per peer", () => {
    const dp = planDataplane(input(VX, [SAME_SUBNET_PEER, OTHER_SUBNET_PEER]));
    expect(dp.links).toContainEqual({
      kind: "vxlan",
      name: "flannel.1",
      vni: 1,
      port: 8472,
      local: "198.51.100.10",
      underlayDev: "eth0",
      learning: false,
      mtu: 1450,
      mac: deriveVtepMac("a1", 4),
    });
    expect(dp.addresses).toContainEqual({ dev: "flannel.1", cidr: "10.244.1.0/32" });
    expect(dp.addresses).toContainEqual({ dev: "cni0", cidr: "10.244.1.1/24" });
    for (const [peer, name, ip] of [
      [SAME_SUBNET_PEER, "a2", "198.51.100.11"],
      [OTHER_SUBNET_PEER, "b1", "203.0.113.20"],
    ] as const) {
      const net = peer.subnet!.split("/")[0]!;
      expect(dp.neighbours).toContainEqual({ dev: "flannel.1", ip: net, mac: deriveVtepMac(name, 4), permanent: true });
      expect(dp.fdb).toContainEqual({ dev: "flannel.1", mac: deriveVtepMac(name, 4), dst: ip, permanent: true });
      expect(dp.routes).toContainEqual(expect.objectContaining({ dst: peer.subnet, via: net, dev: "flannel.1", onlink: true }));
    }
    expect(dp.routes).toHaveLength(2);
    expect(dp.neighbours).toHaveLength(2);
    expect(dp.fdb).toHaveLength(2);
  });

  it("VNI, Port, GBP and Learning reach the link; MTU = Backend.MTU − 50", () => {
    const c = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 42, Port: 4789, GBP: true, Learning: true, MTU: 9000 } });
    const dp = planDataplane(input(c, [SAME_SUBNET_PEER]));
    const link = dp.links.find((l) => l.kind === "vxlan");
    expect(link).toMatchObject({ name: "flannel.42", vni: 42, port: 4789, gbp: true, learning: true, mtu: 8950 });
    expect(dp.pods).toEqual([]);
    expect(dp.links.find((l) => l.name === "cni0")?.mtu).toBe(8950);
    // a peer published VNI 1: not reachable through VNI 42
    expect(planWithDiagnostics(input(c, [SAME_SUBNET_PEER])).skipped[0]?.reason).toMatch(/VNI 1 differs/);
  });

  it("DirectRouting: a route via the peer's underlay address for peers on this L2 subnet, vxlan for the rest", () => {
    const dp = planDataplane(input(DR, [SAME_SUBNET_PEER, OTHER_SUBNET_PEER]));
    expect(dp.routes).toContainEqual(expect.objectContaining({ dst: "10.244.7.0/24", via: "198.51.100.11", dev: "eth0" }));
    expect(dp.routes.find((r) => r.dst === "10.244.7.0/24")?.onlink).toBeUndefined();
    expect(dp.neighbours.map((n) => n.ip)).toEqual(["10.244.9.0"]);
    expect(dp.fdb.map((f) => f.dst)).toEqual(["203.0.113.20"]);
    expect(dp.routes).toContainEqual(expect.objectContaining({ dst: "10.244.9.0/24", via: "10.244.9.0", dev: "flannel.1", onlink: true }));
  });

  it("skips its own lease (by NodeName), leases of another backend type, and the younger of two overlapping leases", () => {
    const stale = lease({ node: "a1", subnet: "10.244.3.0/24", ip: "198.51.100.10", createRevision: 4 });
    const hostgw = lease({ node: "c1", subnet: "10.244.4.0/24", ip: "198.51.100.30", type: "host-gw", createRevision: 5 });
    const older = lease({ node: "d1", subnet: "10.244.5.0/24", ip: "198.51.100.40", createRevision: 6 });
    const younger = lease({ node: "d2", subnet: "10.244.5.0/24", ip: "198.51.100.41", createRevision: 7 });
    const { dataplane, skipped } = planWithDiagnostics(input(VX, [younger, stale, hostgw, older]));
    expect(dataplane.routes.map((r) => r.dst)).toEqual(["10.244.5.0/24"]);
    expect(dataplane.fdb.map((f) => f.dst)).toEqual(["198.51.100.40"]);
    expect(skipped.map((s) => s.node).sort()).toEqual(["c1", "d2"]);
  });
});

describe("plan: host-gw", () => {
  it("routes via the peer's PublicIP on the same L2 subnet; a peer elsewhere is skipped with a clear reason", () => {
    const peerA = lease({ node: "a2", subnet: "10.244.7.0/24", ip: "198.51.100.11", type: "host-gw" });
    const peerB = lease({ node: "b1", subnet: "10.244.9.0/24", ip: "203.0.113.20", type: "host-gw" });
    const { dataplane, skipped } = planWithDiagnostics(input(HG, [peerA, peerB]));
    expect(dataplane.links.map((l) => l.name)).toEqual(["cni0"]);
    expect(dataplane.routes).toEqual([{ dst: "10.244.7.0/24", via: "198.51.100.11", dev: "eth0", origin: expect.any(String) }]);
    expect(dataplane.neighbours).toEqual([]);
    expect(dataplane.fdb).toEqual([]);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ node: "b1" });
    expect(skipped[0]!.reason).toContain("not on this node's L2 subnet 198.51.100.0/24");
    expect(podMtu(HG, NODE_A)).toBe(1500);
  });
});

describe("plan: pods, bridge, NAT, sysctls", () => {
  it("bridge cni0 holds the gateway; pods get the subnet mask, the gateway, a Network route and a default route", () => {
    const dp = planDataplane(
      input(VX, [], {
        pods: [{ containerId: "c1", ifName: "eth0", addresses: ["10.244.1.2"], netns: "/var/run/netns/c1", namespace: "default", podName: "p1" }],
      }),
    );
    expect(dp.links).toContainEqual(expect.objectContaining({ kind: "bridge", name: "cni0", mtu: 1450 }));
    expect(dp.pods).toEqual([
      expect.objectContaining({
        key: "c1/eth0",
        bridge: "cni0",
        mtu: 1450,
        addresses: ["10.244.1.2/24"],
        gateways: ["10.244.1.1"],
        routes: [
          { dst: "10.244.0.0/16", via: "10.244.1.1" },
          { dst: "0.0.0.0/0", via: "10.244.1.1" },
        ],
        namespace: "default",
        podName: "p1",
      }),
    ]);
    expect(dp.sysctls).toEqual({ ipv4Forwarding: true, bridgeNfCall: true });
  });

  it("ipMasq: masquerade from Network to outside Network and multicast; none when IPMasq is false", () => {
    expect(planDataplane(input(VX, [])).nat).toEqual([
      { id: "flannel/ip-masq-v4", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: ["10.244.0.0/16", "224.0.0.0/4"], randomFully: true },
    ]);
    const off = parseFlannelConfig({ Network: "10.244.0.0/16", IPMasq: false });
    expect(planDataplane(input(off, [])).nat).toEqual([]);
  });
});

describe("plan: dual stack", () => {
  const peer = lease({ node: "b1", subnet: "10.244.9.0/24", ipv6Subnet: "fd00:10:244:9::/64", ip: "203.0.113.20" });
  const own = { subnet: "10.244.1.0/24", ipv6Subnet: "fd00:10:244:1::/64" };

  it("over an IPv4-only underlay both families ride flannel.<VNI>", () => {
    const dp = planDataplane({ config: DUAL, node: NODE_A, lease: own, vtepMacs: { v4: deriveVtepMac("a1", 4) }, peers: [peer], pods: [] });
    expect(dp.links.filter((l) => l.kind === "vxlan").map((l) => l.name)).toEqual(["flannel.1"]);
    expect(dp.addresses).toContainEqual({ dev: "flannel.1", cidr: "fd00:10:244:1::/128" });
    expect(dp.routes).toContainEqual(expect.objectContaining({ dst: "fd00:10:244:9::/64", via: "fd00:10:244:9::", dev: "flannel.1", onlink: true }));
    expect(dp.neighbours).toContainEqual({ dev: "flannel.1", ip: "fd00:10:244:9::", mac: deriveVtepMac("b1", 4), permanent: true });
    expect(dp.fdb).toHaveLength(1);
    expect(dp.sysctls.ipv6Forwarding).toBe(true);
    expect(dp.nat.map((n) => n.id)).toEqual(["flannel/ip-masq-v4", "flannel/ip-masq-v6"]);
  });

  it("with IPv6 underlays on both ends IPv6 uses flannel-v6.<VNI> (MTU − 70)", () => {
    const node: NodeInfo = { name: "a1", underlay: [...NODE_A.underlay, { iface: "eth0", address: "2001:db8::10", prefixLength: 64 }] };
    const peer6 = lease({ node: "b1", subnet: "10.244.9.0/24", ipv6Subnet: "fd00:10:244:9::/64", ip: "203.0.113.20", ip6: "2001:db8:1::20" });
    const dp = planDataplane({ config: DUAL, node, lease: own, vtepMacs: { v4: deriveVtepMac("a1", 4), v6: deriveVtepMac("a1", 6) }, peers: [peer6], pods: [] });
    expect(dp.links.find((l) => l.name === "flannel-v6.1")).toMatchObject({ local: "2001:db8::10", mtu: 1430, mac: deriveVtepMac("a1", 6) });
    expect(dp.fdb).toContainEqual({ dev: "flannel-v6.1", mac: deriveVtepMac("b1", 6), dst: "2001:db8:1::20", permanent: true });
    expect(dp.routes).toContainEqual(expect.objectContaining({ dst: "fd00:10:244:9::/64", dev: "flannel-v6.1" }));
    expect(dp.links.find((l) => l.name === "cni0")?.mtu).toBe(1430);
  });

  it("a peer without the IPv6 half of a dual-stack lease is skipped", () => {
    const v4only = lease({ node: "c1", subnet: "10.244.10.0/24", ip: "203.0.113.21" });
    const { skipped } = planWithDiagnostics({ config: DUAL, node: NODE_A, lease: own, vtepMacs: {}, peers: [v4only], pods: [] });
    expect(skipped[0]?.reason).toContain("lacks a subnet");
  });
});

describe("plan: order never matters (property)", () => {
  it("any permutation of leases and pods gives the same dataplane", () => {
    const leases = Array.from({ length: 12 }, (_, i) =>
      lease({ node: `n${i}`, subnet: `10.244.${10 + i}.0/24`, ip: i % 2 === 0 ? `198.51.100.${20 + i}` : `203.0.113.${20 + i}`, createRevision: 100 + i }),
    );
    const pods = Array.from({ length: 5 }, (_, i) => ({ containerId: `c${i}`, ifName: "eth0", addresses: [`10.244.1.${2 + i}`] }));
    for (const config of [VX, DR, HG]) {
      const ref = JSON.stringify(planDataplane(input(config, leases, { pods })));
      fc.assert(
        fc.property(fc.shuffledSubarray(leases, { minLength: leases.length }), fc.shuffledSubarray(pods, { minLength: pods.length }), (ls, ps) => {
          expect(JSON.stringify(planDataplane(input(config, ls, { pods: ps })))).toBe(ref);
        }),
        { numRuns: 50 },
      );
    }
  });
});

describe("plan: canonical output, cache-independent", () => {
  it("is already in canonicalDataplane's order, and a plan cache never changes the result (property)", () => {
    const arbLease = fc.record({
      third: fc.integer({ min: 2, max: 250 }),
      onA: fc.boolean(),
      host: fc.integer({ min: 2, max: 250 }),
      type: fc.constantFrom("vxlan", "vxlan", "host-gw"),
      rev: fc.integer({ min: 2, max: 1000 }),
    });
    for (const config of [VX, DR, HG]) {
      const cache = createPlanCache();
      fc.assert(
        fc.property(fc.array(arbLease, { maxLength: 30 }), fc.array(fc.integer({ min: 2, max: 254 }), { maxLength: 6 }), (specs, podHosts) => {
          const leases = specs.map((x, i) =>
            lease({
              node: `p${i}`,
              subnet: `10.244.${x.third}.0/24`,
              ip: x.onA ? `198.51.100.${x.host}` : `203.0.113.${x.host}`,
              type: config.backend.type === "host-gw" && x.type === "vxlan" ? "host-gw" : x.type,
              createRevision: x.rev,
            }),
          );
          const pods = [...new Set(podHosts)].map((h) => ({ containerId: `c${h}`, ifName: "eth0", addresses: [`10.244.1.${h}`] }));
          const plain = planWithDiagnostics(input(config, leases, { pods }));
          expect(JSON.stringify(canonicalDataplane(plain.dataplane))).toBe(JSON.stringify(plain.dataplane));
          const cached = planWithDiagnostics(input(config, leases, { pods }), cache);
          expect(cached).toEqual(plain);
          const again = planWithDiagnostics(input(config, leases, { pods }), cache);
          expect(again).toEqual(plain);
        }),
        { numRuns: 60 },
      );
    }
  });
});

describe("plan: one cache shared by many nodes (the process's, as every agent uses it)", () => {
  const node = (name: string, address: string): NodeInfo => ({ name, underlay: [{ iface: "eth0", address, prefixLength: 24, gateway: address.replace(/\.\d+$/, ".1") }] });
  const nodes = [node("a1", "198.51.100.10"), node("a2", "198.51.100.11"), node("b1", "203.0.113.20")];
  // Each node's own lease and three peers, of the backend type of the config planned.
  const leasesOf = (type: string): SubnetLease[] => [
    lease({ node: "a1", subnet: "10.244.1.0/24", ip: "198.51.100.10", type, createRevision: 1 }),
    lease({ node: "a2", subnet: "10.244.2.0/24", ip: "198.51.100.11", type, createRevision: 4 }),
    lease({ node: "b1", subnet: "10.244.3.0/24", ip: "203.0.113.20", type, createRevision: 5 }),
    lease({ node: "p1", subnet: "10.244.7.0/24", ip: "198.51.100.21", type, createRevision: 2 }),
    lease({ node: "p2", subnet: "10.244.9.0/24", ip: "203.0.113.30", type, createRevision: 3 }),
    lease({ node: "c1", subnet: "10.244.12.0/24", ip: "198.51.100.30", type, createRevision: 6 }),
  ];
  const byType = { vxlan: leasesOf("vxlan"), "host-gw": leasesOf("host-gw") };
  const all = (config: PlanInput["config"]): SubnetLease[] => byType[config.backend.type];
  const inputOf = (config: PlanInput["config"], i: number): Omit<PlanInput, "peers"> => ({
    config,
    node: nodes[i]!,
    lease: { subnet: all(config)[i]!.subnet!, key: all(config)[i]!.key },
    vtepMacs: { v4: deriveVtepMac(nodes[i]!.name, 4) },
    pods: [],
  });

  it.each([
    ["vxlan", VX],
    ["vxlan + DirectRouting", DR],
    ["host-gw", HG],
  ] as const)("%s: every node's plan is the uncached planner's", (_name, config) => {
    const cache = createPlanCache();
    for (let i = 0; i < nodes.length; i++) {
      const table = new PeerTable(cache);
      for (const l of all(config)) table.set(l);
      const plain = planWithDiagnostics({ ...inputOf(config, i), peers: all(config) });
      expect(plain.dataplane.routes.length).toBeGreaterThan(0);
      expect(table.plan(inputOf(config, i))).toEqual(plain);
    }
  });

  it("vxlan nodes share one peer's entries whatever their address; host-gw nodes only within one L2 subnet", () => {
    const entryOf = (config: PlanInput["config"], i: number, cache: ReturnType<typeof createPlanCache>) => {
      const table = new PeerTable(cache);
      for (const l of all(config)) table.set(l);
      return table.plan(inputOf(config, i)).dataplane.routes.find((r) => r.dst === "10.244.12.0/24");
    };
    const vx = createPlanCache();
    const [a1, a2, b1] = [0, 1, 2].map((i) => entryOf(VX, i, vx));
    expect(a1).toBeDefined();
    expect(a2).toBe(a1);
    expect(b1).toBe(a1);
    expect(Object.isFrozen(a1)).toBe(true);
    const hg = createPlanCache();
    const [h1, h2, h3] = [0, 1, 2].map((i) => entryOf(HG, i, hg));
    expect(h1).toBeDefined();
    expect(h2).toBe(h1);
    expect(h3).toBeUndefined(); // 198.51.100.30 is not on b1's L2 subnet
  });

  it("a table reading its leases from a view (an informer's cache) plans as one keeping its own", () => {
    const view = new Map<string, SubnetLease>();
    const viewed = new PeerTable(createPlanCache(), {
      get: (k) => view.get(k),
      keys: () => view.keys(),
      values: () => view.values(),
      get size() {
        return view.size;
      },
    });
    const owning = new PeerTable(createPlanCache());
    const [, , , p1, p2, c1] = all(VX);
    const steps: [string, SubnetLease | undefined][] = [
      [p1!.key, p1],
      [p2!.key, p2],
      [p1!.key, undefined],
      [c1!.key, c1],
    ];
    for (const [key, l] of steps) {
      if (l) {
        view.set(key, l);
        viewed.set(l);
        owning.set(l);
      } else {
        view.delete(key);
        viewed.delete(key);
        owning.delete(key);
      }
      expect(viewed.plan(inputOf(VX, 0))).toEqual(owning.plan(inputOf(VX, 0)));
    }
    expect(viewed.plan(inputOf(VX, 0)).dataplane.routes.map((r) => r.dst)).toContain("10.244.12.0/24");
  });
});

describe("plan: the incremental PeerTable equals the pure planner", () => {
  it("after any sequence of lease puts and deletes, planned in batches of any size (property)", () => {
    // Leases of the configured length, of other lengths (/23, /25: overlaps), dual-stack halves
    // shared between two keys, leases lacking a family, this node's own name, overlapping its own
    // subnet, other backend types and VNIs, several leases of one VTEP.
    // Half the runs stay regular (the incremental lists answer); the rest get irregular leases now
    // and then (the table falls back to the full plan, and comes back when they are deleted).
    const arbSpec = (irregular: boolean, dual: boolean) =>
      fc.record({
        third: fc.integer({ min: 0, max: irregular ? 12 : 60 }),
        len: irregular ? fc.constantFrom(24, 24, 24, 24, 24, 24, 23, 25) : fc.constant(24),
        v6: irregular ? fc.constantFrom("none", "same", "same", "same", "other") : fc.constant(dual ? "same" : "none"),
        v4: fc.constantFrom(true, true, true, false),
        node: fc.integer({ min: 0, max: 9 }),
        onA: fc.boolean(),
        type: fc.constantFrom("vxlan", "vxlan", "host-gw", "udp"),
        vni: fc.constantFrom(1, 1, 1, 2),
        rev: fc.integer({ min: 2, max: 1000 }),
      });
    const arbOps = (dual: boolean) =>
      fc.boolean().chain((irregular) =>
        fc.array(fc.oneof({ weight: 3, arbitrary: arbSpec(irregular, dual).map((spec) => ({ put: spec })) }, { weight: 1, arbitrary: fc.nat(50).map((pick) => ({ del: pick })) }), {
          minLength: 10,
          maxLength: 150,
          size: "max",
        }),
      );
    const dualOwn = { subnet: "10.244.1.0/24", ipv6Subnet: "fd00:10:244:1::/64" };
    const ownKey = (dual: boolean) => subnetKey(dual ? dualOwn : { subnet: "10.244.1.0/24" });
    for (const config of [VX, DR, HG, DUAL]) {
      const dual = config === DUAL;
      const base = { config, node: NODE_A, lease: { ...(dual ? dualOwn : { subnet: "10.244.1.0/24" }), key: ownKey(dual) }, vtepMacs: { v4: deriveVtepMac("a1", 4) } };
      fc.assert(
        fc.property(arbOps(dual), fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 8 }), (ops, batches) => {
          const table = new PeerTable();
          const store = new Map<string, SubnetLease>();
          let next = 0;
          let b = 0;
          while (next < ops.length) {
            const end = Math.min(ops.length, next + batches[b++ % batches.length]!);
            for (; next < end; next++) {
              const op = ops[next]!;
              if ("del" in op) {
                const keys = [...store.keys()];
                if (keys.length === 0) continue;
                const key = keys[op.del % keys.length]!;
                store.delete(key);
                table.delete(key);
                continue;
              }
              const x = op.put;
              const v4 = x.v4 || x.v6 === "none" ? `10.244.${x.third}.0/${x.len}` : undefined;
              const v6 = x.v6 === "none" ? undefined : `fd00:10:244:${x.v6 === "same" ? x.third : x.third + 100}::/64`;
              const l = lease({
                node: x.node === 0 ? "a1" : `p${x.node}`,
                ...(v4 ? { subnet: v4.replace(/^10\.244\.(\d+)\.0\/23$/, (_m, t: string) => `10.244.${Number(t) & ~1}.0/23`) } : {}),
                ...(v6 ? { ipv6Subnet: v6 } : {}),
                ip: x.onA ? `198.51.100.${10 + x.node}` : `203.0.113.${10 + x.node}`,
                type: config.backend.type === "host-gw" && x.type === "vxlan" ? "host-gw" : x.type,
                vni: x.vni,
                createRevision: x.rev,
              });
              store.set(l.key, l);
              table.set(l);
            }
            const want = planWithDiagnostics({ ...base, peers: [...store.values()], pods: [] });
            const got = table.plan({ ...base, pods: [] });
            expect(JSON.stringify(got)).toBe(JSON.stringify(want));
          }
        }),
        { numRuns: 80 },
      );
    }
  });
});

describe("VTEP MAC derivation", () => {
  it("is stable per node name and family, unicast and locally administered", () => {
    expect(deriveVtepMac("node-1", 4)).toBe(deriveVtepMac("node-1", 4));
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), (name) => {
        const mac = deriveVtepMac(name, 4);
        expect(mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        const first = Number.parseInt(mac.slice(0, 2), 16);
        expect(first & 1).toBe(0);
        expect(first & 2).toBe(2);
        expect(deriveVtepMac(name, 6)).not.toBe(mac);
      }),
    );
    const macs = new Set(Array.from({ length: 2000 }, (_, i) => deriveVtepMac(`node-${i}`, 4)));
    expect(macs.size).toBe(2000);
  });
});
