/**
 * The class-based reachability analysis must agree exactly with brute force (one send() per pair)
 * on small random clusters whose dataplanes mix every feature and every kind of breakage:
 * bridges and routed pods, host-gw routes, vxlan with missing neighbour/FDB entries and wrong MACs,
 * ipip, more-specific /32 routes, blackholes, unresolvable next hops, forwarding off, NAT rules,
 * ingress and egress filters.
 */
import { seededRandom } from "@cnikit/core";
import { emptyDataplane, type FilterPolicy, type NodeDataplane, type NodeInfo, type PodInterface, type Protocol } from "@cnikit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SimFabric, defaultTopology, singleSubnetTopology, type Endpoint } from "../src/index.ts";
import { mac } from "./builders.ts";

interface Random {
  f: () => number;
  chance(p: number): boolean;
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
}

function rnd(seed: number): Random {
  const f = seededRandom(seed);
  return {
    f,
    chance: (p) => f() < p,
    int: (n) => Math.floor(f() * n),
    pick: (xs) => xs[Math.floor(f() * xs.length)]!,
  };
}

const vtep = (n: number): string => mac(n, 0xfe);

function randomPolicy(r: Random, key: string, direction: "ingress" | "egress", prefixes: string[]): FilterPolicy {
  const rules = [];
  const count = r.int(4);
  for (let i = 0; i < count; i++) {
    const rule: FilterPolicy["rules"][number] = { id: `rule-${key}-${direction}-${i}`, action: r.chance(0.6) ? "accept" : "drop" };
    if (r.chance(0.7)) {
      const cidr = r.pick(prefixes);
      rule.peers = [{ cidrs: [cidr], ...(r.chance(0.3) ? { except: [r.pick(prefixes)] } : {}) }];
    }
    if (r.chance(0.4)) rule.protocol = r.pick(["tcp", "udp"] as const);
    if (r.chance(0.4)) rule.ports = [r.chance(0.5) ? { from: 80, to: 80 } : { from: 1000, to: 2000 }];
    rules.push(rule);
  }
  return { pod: key, direction, rules, defaultAction: r.chance(0.5) ? "drop" : "accept" };
}

/** Builds a random cluster; returns the fabric. */
function randomCluster(seed: number): SimFabric {
  const r = rnd(seed);
  const fabric = new SimFabric(r.chance(0.5) ? defaultTopology() : singleSubnetTopology());
  const count = 2 + r.int(3);
  const infos: NodeInfo[] = [];
  for (let n = 1; n <= count; n++) infos.push(fabric.addNode({ name: `n${n}` }));
  const prefixes = ["10.244.0.0/16", "10.244.1.0/24", "10.244.2.0/24", "10.244.2.2/32", "10.96.0.0/16", "192.0.2.0/24", "198.51.100.0/24", "0.0.0.0/0"];
  const mode = r.pick(["hostgw", "vxlan", "ipip", "mixed", "weave", "azure"] as const);
  if (mode === "weave") return weaveCluster(r, fabric, infos, prefixes);
  if (mode === "azure") return azureCluster(r, fabric, infos, prefixes);
  const dps: NodeDataplane[] = infos.map((info, k) => {
    const n = k + 1;
    const dp = emptyDataplane(info.name);
    dp.sysctls = { ipv4Forwarding: r.chance(0.9) };
    const bridged = r.chance(0.7);
    const pods = r.int(4);
    if (bridged) {
      dp.links.push({ kind: "bridge", name: "cni0", mac: mac(n, 0x01) });
      dp.addresses.push({ dev: "cni0", cidr: `10.244.${n}.1/24` });
    }
    const proxy: string[] = [];
    for (let i = 0; i < pods; i++) {
      const key = `p${n}-${i}/eth0`;
      let p: PodInterface;
      if (bridged) {
        p = {
          key,
          containerId: `p${n}-${i}`,
          ifName: "eth0",
          hostIf: `veth${i}`,
          bridge: "cni0",
          mac: mac(n * 100 + i, 0xbb),
          mtu: r.pick([1500, 1450]),
          addresses: [`10.244.${n}.${i + 2}/24`],
          routes: r.chance(0.9) ? [{ dst: "0.0.0.0/0", via: r.chance(0.9) ? `10.244.${n}.1` : `10.99.0.1` }] : [],
        };
      } else {
        p = {
          key,
          containerId: `p${n}-${i}`,
          ifName: "eth0",
          hostIf: `cali${i}`,
          mac: mac(n * 100 + i, 0xcc),
          mtu: 1480,
          addresses: [`10.244.${n}.${i + 2}/32`],
          routes: [
            { dst: "169.254.1.1/32", scopeLink: true },
            { dst: "0.0.0.0/0", via: "169.254.1.1" },
          ],
        };
        if (r.chance(0.9)) proxy.push(`cali${i}`);
        if (r.chance(0.9)) dp.routes.push({ dst: `10.244.${n}.${i + 2}/32`, dev: `cali${i}` });
      }
      dp.pods.push(p);
      if (r.chance(0.25)) dp.filters.push(randomPolicy(r, key, "ingress", prefixes));
      if (r.chance(0.2)) dp.filters.push(randomPolicy(r, key, "egress", prefixes));
    }
    if (proxy.length > 0) dp.sysctls.proxyArp = proxy;
    if (!bridged && r.chance(0.8)) dp.routes.push({ dst: `10.244.${n}.0/24`, type: "blackhole" });
    const useVxlan = mode === "vxlan" || (mode === "mixed" && r.chance(0.5));
    const useIpip = mode === "ipip" || (mode === "mixed" && r.chance(0.3));
    if (useVxlan) {
      dp.links.push({ kind: "vxlan", name: "flannel.1", vni: 1, port: 8472, local: info.underlay[0]!.address, learning: false, ...(r.chance(0.9) ? { mac: vtep(n) } : {}) });
      dp.addresses.push({ dev: "flannel.1", cidr: `10.244.${n}.0/32` });
    }
    if (useIpip) {
      dp.links.push({ kind: "ipip", name: "tunl0" });
    }
    infos.forEach((peer, m) => {
      if (m === k) return;
      const pn = m + 1;
      const how = useVxlan && r.chance(0.8) ? "vxlan" : useIpip && r.chance(0.8) ? "ipip" : "hostgw";
      if (r.chance(0.1)) return; // forgotten peer
      if (how === "vxlan") {
        if (r.chance(0.9)) dp.neighbours.push({ dev: "flannel.1", ip: `10.244.${pn}.0`, mac: r.chance(0.95) ? vtep(pn) : vtep(99), permanent: true });
        if (r.chance(0.9)) dp.fdb.push({ dev: "flannel.1", mac: vtep(pn), dst: peer.underlay[0]!.address, permanent: true });
        dp.routes.push({ dst: `10.244.${pn}.0/24`, via: `10.244.${pn}.0`, dev: "flannel.1", onlink: true });
      } else if (how === "ipip") {
        dp.routes.push({ dst: `10.244.${pn}.0/24`, via: peer.underlay[0]!.address, dev: "tunl0", onlink: true });
      } else {
        dp.routes.push({ dst: `10.244.${pn}.0/24`, via: peer.underlay[0]!.address });
      }
    });
    // Oddities.
    if (r.chance(0.3)) dp.routes.push({ dst: `10.244.${1 + r.int(count)}.${2 + r.int(3)}/32`, via: r.pick(infos).underlay[0]!.address });
    if (r.chance(0.15)) dp.routes.push({ dst: `10.244.${1 + r.int(count)}.${2 + r.int(3)}/32`, type: r.pick(["blackhole", "unreachable"] as const) });
    if (r.chance(0.15)) dp.routes.push({ dst: `10.244.${1 + r.int(count)}.0/25`, via: "10.77.0.1" });
    if (r.chance(0.1)) dp.routes.push({ dst: "192.0.2.0/25", via: r.pick(infos).underlay[0]!.address });
    if (r.chance(0.5)) {
      dp.nat.push({
        id: `masq-${n}`,
        kind: "masquerade",
        sources: [r.pick(["10.244.0.0/16", `10.244.${n}.0/24`, "10.244.1.0/24"])],
        exceptDestinations: r.chance(0.8) ? ["10.244.0.0/16"] : [],
        ...(r.chance(0.3) ? { outDev: "eth0" } : {}),
      });
    }
    if (r.chance(0.15)) dp.routes.push({ dst: "10.244.9.0/24", via: r.pick(infos).underlay[0]!.address });
    if (r.chance(0.05) && dp.pods.length > 0) dp.pods[0]!.addresses = [`10.244.${1 + r.int(count)}.${2 + r.int(3)}/24`];
    if (r.chance(0.1)) dp.nat.push({ id: `snat-${n}`, kind: "snat", sources: ["10.244.0.0/16"], exceptDestinations: [], toAddress: info.underlay[0]!.address });
    return dp;
  });
  dps.forEach((dp, k) => fabric.setDataplane(infos[k]!.name, dp));
  return fabric;
}

/** Weave-style L2 mesh with random breakage (missing flood entries, encryption mismatch, no bridge port). */
function weaveCluster(r: Random, fabric: SimFabric, infos: NodeInfo[], prefixes: string[]): SimFabric {
  const tunnel = r.pick(["vxlan", "sleeve"] as const);
  const encrypted = r.chance(0.5);
  infos.forEach((info, k) => {
    const n = k + 1;
    const dp = emptyDataplane(info.name);
    dp.sysctls = { ipv4Forwarding: r.chance(0.9) };
    dp.links.push({ kind: "bridge", name: "weave", mac: mac(n, 0x0e) });
    dp.addresses.push({ dev: "weave", cidr: `10.32.${n}.1/12` });
    const dev = tunnel === "vxlan" ? "vxlan-6784" : "sleeve";
    const master = r.chance(0.9) ? { master: "weave" } : {};
    if (tunnel === "vxlan") dp.links.push({ kind: "vxlan", name: dev, vni: r.chance(0.95) ? 42 : 43, port: 6784, local: info.underlay[0]!.address, learning: true, ...master, mac: mac(n, 0x0d) });
    else dp.links.push({ kind: "sleeve", name: dev, port: 6783, encrypted: r.chance(0.9) ? encrypted : !encrypted, ...master, mac: mac(n, 0x0d) });
    infos.forEach((peer, m) => {
      if (m !== k && r.chance(0.85)) dp.fdb.push({ dev, mac: "00:00:00:00:00:00", dst: peer.underlay[0]!.address, permanent: true });
    });
    const pods = r.int(4);
    for (let i = 0; i < pods; i++) {
      const key = `w${n}-${i}/eth0`;
      dp.pods.push({
        key,
        containerId: `w${n}-${i}`,
        ifName: "eth0",
        hostIf: `vethwe${i}`,
        bridge: "weave",
        mac: mac(n * 100 + i, 0xdd),
        mtu: 1376,
        addresses: [`10.32.${n}.${i + 2}/12`],
        routes: [{ dst: "0.0.0.0/0", via: `10.32.${n}.1` }],
      });
      if (r.chance(0.2)) dp.filters.push(randomPolicy(r, key, "ingress", prefixes));
    }
    if (r.chance(0.5)) dp.nat.push({ id: `weave-masq-${n}`, kind: "masquerade", sources: ["10.32.0.0/12"], exceptDestinations: ["10.32.0.0/12"] });
    fabric.setDataplane(info.name, dp);
  });
  return fabric;
}

/** Azure-style: pods take addresses of the node's underlay subnet, routed hostIf, proxy ARP on eth0. */
function azureCluster(r: Random, fabric: SimFabric, infos: NodeInfo[], prefixes: string[]): SimFabric {
  infos.forEach((info, k) => {
    const n = k + 1;
    const dp = emptyDataplane(info.name);
    dp.sysctls = { ipv4Forwarding: r.chance(0.9), proxyArp: r.chance(0.85) ? ["eth0"] : [] };
    const base = info.underlay[0]!.address.split(".").slice(0, 3).join(".");
    const pods = r.int(4);
    for (let i = 0; i < pods; i++) {
      const key = `z${n}-${i}/eth0`;
      const a = `${base}.${100 + n * 10 + i}`;
      dp.pods.push({
        key,
        containerId: `z${n}-${i}`,
        ifName: "eth0",
        hostIf: `azv${i}`,
        mac: mac(n * 100 + i, 0xaa),
        mtu: 1500,
        addresses: [`${a}/${info.underlay[0]!.prefixLength}`],
        routes: [{ dst: "0.0.0.0/0", via: info.underlay[0]!.gateway ?? "198.51.100.1" }],
      });
      if (r.chance(0.9)) dp.routes.push({ dst: `${a}/32`, dev: `azv${i}` });
      if (r.chance(0.9)) dp.sysctls.proxyArp!.push(`azv${i}`);
      if (r.chance(0.2)) dp.filters.push(randomPolicy(r, key, "egress", prefixes));
    }
    fabric.setDataplane(info.name, dp);
  });
  return fabric;
}

function endpoints(fabric: SimFabric): Endpoint[] {
  const eps: Endpoint[] = fabric.pods().map((p) => ({ kind: "pod", key: p.key }));
  for (const n of fabric.nodeNames()) eps.push({ kind: "node", name: n });
  eps.push({ kind: "external", name: "internet" });
  return eps;
}

const key = (ep: Endpoint): string => (ep.kind === "pod" ? `pod:${ep.key}` : `${ep.kind}:${ep.name}`);

/**
 * A flannel-style vxlan mesh over both subnets of the default topology (the router between them),
 * broken in the outer packets' walk, which class walks make once per node over every tunnel
 * endpoint of the world: an FDB entry to an address nobody answers ARP for, one to the external
 * host, a blackhole route for one peer's underlay address, forwarding off at the node a peer's
 * outer packets reach first, and a node with a single FDB entry (walked per entry instead).
 */
function vxlanMesh(): SimFabric {
  const fabric = new SimFabric(defaultTopology());
  const count = 8;
  const infos: NodeInfo[] = [];
  for (let n = 1; n <= count; n++) infos.push(fabric.addNode({ name: `n${n}`, subnet: n % 2 === 0 ? "b" : "a" }));
  infos.forEach((info, k) => {
    const n = k + 1;
    const dp = emptyDataplane(info.name);
    dp.sysctls = { ipv4Forwarding: n !== 6 };
    dp.links.push({ kind: "bridge", name: "cni0", mac: mac(n, 0x01) });
    dp.addresses.push({ dev: "cni0", cidr: `10.244.${n}.1/24` });
    dp.links.push({ kind: "vxlan", name: "flannel.1", vni: 1, port: 8472, local: info.underlay[0]!.address, learning: false, mac: vtep(n) });
    dp.addresses.push({ dev: "flannel.1", cidr: `10.244.${n}.0/32` });
    for (let i = 0; i < 2; i++) {
      dp.pods.push({
        key: `p${n}-${i}`,
        containerId: `p${n}-${i}`,
        ifName: "eth0",
        hostIf: `veth${i}`,
        bridge: "cni0",
        mac: mac(n * 10 + i, 0xbb),
        mtu: 1450,
        addresses: [`10.244.${n}.${i + 2}/24`],
        gateways: [`10.244.${n}.1`],
        routes: [{ dst: "0.0.0.0/0", via: `10.244.${n}.1` }],
      });
    }
    infos.forEach((peer, m) => {
      const pn = m + 1;
      if (pn === n || (n === 5 && pn !== 1)) return;
      let dst = peer.underlay[0]!.address;
      if (n === 3 && pn === 7) dst = "198.51.100.99";
      if (n === 4 && pn === 8) dst = "192.0.2.200";
      dp.neighbours.push({ dev: "flannel.1", ip: `10.244.${pn}.0`, mac: vtep(pn), permanent: true });
      dp.fdb.push({ dev: "flannel.1", mac: vtep(pn), dst, permanent: true });
      dp.routes.push({ dst: `10.244.${pn}.0/24`, via: `10.244.${pn}.0`, dev: "flannel.1", onlink: true });
    });
    if (n === 2) dp.routes.push({ dst: `${infos[4]!.underlay[0]!.address}/32`, type: "blackhole" });
    fabric.setDataplane(info.name, dp);
  });
  return fabric;
}

function compare(seed: number, protocol: Protocol, port: number): void {
  compareFabric(randomCluster(seed), `seed ${seed}`, protocol, port);
}

function compareFabric(fabric: SimFabric, name: string, protocol: Protocol, port: number): void {
  const eps = endpoints(fabric);
  const outcomes = fabric.reachabilityPairs({ from: eps, to: eps, protocol, port });
  const byPair = new Map(outcomes.map((o) => [`${key(o.from)}>${key(o.to)}`, o]));
  let delivered = 0;
  let natted = 0;
  let pairs = 0;
  for (const from of eps) {
    for (const to of eps) {
      if (key(from) === key(to)) continue;
      pairs++;
      const brute = fabric.send(from, to, { protocol, port });
      const o = byPair.get(`${key(from)}>${key(to)}`);
      const label = `${name} ${protocol}/${port} ${key(from)} -> ${key(to)}`;
      expect(o, label).toBeDefined();
      expect({ delivered: o!.delivered, natted: o!.natted, seen: o!.seenSource, reason: o!.reason }, label).toEqual({
        delivered: brute.delivered,
        natted: brute.delivered ? brute.natted : false,
        seen: brute.delivered ? brute.seenSource : undefined,
        reason: brute.delivered ? undefined : brute.reason,
      });
      if (brute.delivered) delivered++;
      if (brute.delivered && brute.natted) natted++;
    }
  }
  expect(outcomes.length).toBe(pairs);
  const report = fabric.reachability({ from: eps, to: eps, protocol, port, maxFailures: 1000 });
  expect({ pairs: report.pairs, delivered: report.delivered, natted: report.natted }, name).toEqual({ pairs, delivered, natted });
  expect(report.failures.length).toBe(pairs - delivered);
  for (const f of report.failures) expect(f.result.delivered, `${name} ${key(f.from)} -> ${key(f.to)}`).toBe(false);
}

describe("reachability() agrees with brute-force send()", () => {
  it("on random clusters (tcp/80, udp/1500, icmp)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.constantFrom<[Protocol, number]>(["tcp", 80], ["udp", 1500], ["icmp", 0]), (seed, [protocol, port]) => {
        compare(seed, protocol, port);
      }),
      { numRuns: Number(process.env.CNIKIT_SIM_PROPERTY_RUNS ?? 300) },
    );
  });

  it.each([["tcp", 80] as const, ["icmp", 0] as const])("on a vxlan mesh across a router with broken outer paths (%s/%i)", (protocol, port) => {
    compareFabric(vxlanMesh(), "vxlan mesh", protocol, port);
    const reasons = vxlanMesh()
      .reachabilityPairs({ protocol, port })
      .flatMap((o) => (o.delivered ? [] : [o.reason!]));
    for (const fragment of ["nobody on subnet a answers ARP for 198.51.100.99", "arrived at external:internet", "blackhole route", "forwarding is disabled at node n6", "no route to"]) {
      expect(
        reasons.some((r) => r.includes(fragment)),
        fragment,
      ).toBe(true);
    }
  });

  // Seeds that once found a difference, kept as regressions.
  it.each([[309221717, "tcp", 80] as const])("regression seed %i %s/%i", (seed, protocol, port) => {
    compare(seed, protocol, port);
  });

  it("produces a mix of outcomes (the generator is not trivially all-pass or all-fail)", () => {
    const reasons = new Set<string>();
    let delivered = 0;
    let failed = 0;
    let natted = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const fabric = randomCluster(seed);
      const eps = endpoints(fabric);
      for (const o of fabric.reachabilityPairs({ from: eps, to: eps })) {
        if (o.delivered) delivered++;
        else {
          failed++;
          reasons.add(
            o
              .reason!.replace(/[0-9a-f]{2}(:[0-9a-f]{2}){5}/g, "MAC")
              .replace(/\d+\.\d+\.\d+\.\d+(\/\d+)?/g, "A")
              .replace(/\bn\d+\b/g, "N")
              .replace(/p\d+-\d+/g, "P")
              .replace(/rule-\S+/g, "R"),
          );
        }
        if (o.natted) natted++;
      }
    }
    expect(delivered).toBeGreaterThan(100);
    expect(failed).toBeGreaterThan(100);
    expect(natted).toBeGreaterThan(10);
    const kinds = [...reasons].join("\n");
    for (const fragment of [
      "no route to",
      "filtered by",
      "blackhole route",
      "no neighbour",
      "forwarding is disabled",
      "has no route to",
      "not on a connected subnet",
      "loop: TTL exceeded",
      "no FDB entry",
      "instead of",
    ]) {
      expect(kinds, fragment).toContain(fragment);
    }
  });
});
