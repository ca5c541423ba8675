/**
 * Random dataplanes over a small fixed universe (so successive ones overlap): a bridge, maybe a
 * vxlan device with a peer, up to four pods (bridged flannel-style or routed calico-style, in
 * given netns paths), a handful of routes of every type, NAT, per-pod filters, sysctls.
 */
import fc from "fast-check";
import type { FilterPolicy, Link, NatRule, NodeDataplane, PodInterface, RouteEntry } from "@cnikit/core";

/** Where the generated dataplanes live. */
export interface GenOptions {
  node: string;
  /** Netns paths of the pod slots (one pod per slot at most). */
  podNetns: readonly string[];
  /** The node's underlay interface, holding 192.168.50.1/24. */
  underlayDev: string;
}

interface PodChoice {
  present: boolean;
  routed: boolean;
  mtu: number;
  filtered: boolean;
}

const ROUTES: RouteEntry[] = [
  { dst: "10.50.0.0/16", type: "blackhole" },
  { dst: "10.51.0.0/16", via: "192.168.50.2" },
  { dst: "10.52.0.0/16", via: "192.168.50.3", metric: 10 },
  { dst: "fd00:52::/64", type: "unreachable" },
  { dst: "10.53.0.0/24", dev: "cni0", src: "10.244.1.1", mtu: 1300 },
  { dst: "10.54.0.0/16", via: "192.168.50.4", table: 100 },
];

function pod(i: number, c: PodChoice, netns: string): PodInterface {
  const key = `c${i}/eth0`;
  if (c.routed) {
    return {
      key,
      containerId: `c${i}`,
      ifName: "eth0",
      netns,
      hostIf: `ckr${i}`,
      mac: `ee:00:00:00:01:0${i}`,
      mtu: c.mtu,
      addresses: [`10.245.0.${10 + i}/32`],
      gateways: ["169.254.1.1"],
      routes: [
        { dst: "169.254.1.1/32", scopeLink: true },
        { dst: "0.0.0.0/0", via: "169.254.1.1" },
      ],
    };
  }
  return {
    key,
    containerId: `c${i}`,
    ifName: "eth0",
    netns,
    hostIf: `ckb${i}`,
    bridge: "cni0",
    mac: `0a:58:0a:f4:01:${(10 + i).toString(16)}`,
    mtu: c.mtu,
    addresses: [`10.244.1.${10 + i}/24`],
    gateways: ["10.244.1.1"],
    routes: [{ dst: "0.0.0.0/0", via: "10.244.1.1" }],
  };
}

/** An arbitrary NodeDataplane over the fixed universe. */
export function dataplaneArb(o: GenOptions): fc.Arbitrary<NodeDataplane> {
  const podArb = fc.record({ present: fc.boolean(), routed: fc.boolean(), mtu: fc.constantFrom(1400, 1450), filtered: fc.boolean() });
  return fc
    .record({
      vxlan: fc.boolean(),
      bridgeMtu: fc.constantFrom(1400, 1450),
      pods: fc.tuple(...o.podNetns.map(() => podArb)),
      routes: fc.subarray(ROUTES),
      nat: fc.boolean(),
      forwarding: fc.boolean(),
    })
    .map((g) => {
      const links: Link[] = [{ kind: "bridge", name: "cni0", mtu: g.bridgeMtu, mac: "0a:58:0a:f4:01:01" }];
      const routes: RouteEntry[] = [...g.routes];
      const dp: NodeDataplane = { node: o.node, links, addresses: [{ dev: "cni0", cidr: "10.244.1.1/24" }], routes, neighbours: [], fdb: [], sysctls: {}, nat: [], filters: [], pods: [] };
      if (g.vxlan) {
        links.push({ kind: "vxlan", name: "flannel.1", vni: 1, port: 8472, local: "192.168.50.1", underlayDev: o.underlayDev, learning: false, mtu: 1450, mac: "02:00:00:00:00:01" });
        dp.addresses.push({ dev: "flannel.1", cidr: "10.244.1.0/32" });
        routes.push({ dst: "10.244.2.0/24", via: "10.244.2.0", dev: "flannel.1", onlink: true });
        dp.neighbours.push({ dev: "flannel.1", ip: "10.244.2.0", mac: "02:00:00:00:00:02", permanent: true });
        dp.fdb.push({ dev: "flannel.1", mac: "02:00:00:00:00:02", dst: "192.168.50.2", permanent: true });
      }
      const proxyArp: string[] = [];
      const filters: FilterPolicy[] = [];
      g.pods.forEach((c, i) => {
        if (!c.present) return;
        const p = pod(i, c, o.podNetns[i]!);
        dp.pods.push(p);
        if (c.routed) {
          routes.push({ dst: p.addresses[0]!, dev: p.hostIf });
          proxyArp.push(p.hostIf);
        }
        if (c.filtered) {
          filters.push({ pod: p.key, direction: "ingress", defaultAction: "drop", rules: [{ id: `allow-80-${i}`, action: "accept", protocol: "tcp", ports: [{ from: 80, to: 80 }] }] });
        }
      });
      dp.sysctls.ipv4Forwarding = g.forwarding;
      if (proxyArp.length > 0) dp.sysctls.proxyArp = proxyArp;
      if (g.nat) {
        const rule: NatRule = { id: "masq", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: ["10.244.0.0/16"], outDev: o.underlayDev };
        dp.nat.push(rule);
      }
      dp.filters = filters;
      return dp;
    });
}
