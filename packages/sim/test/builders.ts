/**
 * Hand-built dataplanes for the tests: small builders in the shape the backends produce
 * (bridge + host-local pods, routed pods, flannel-style vxlan, host-gw, ipip, Weave-style L2 mesh).
 */
import { emptyDataplane, type NodeDataplane, type NodeInfo, type PodInterface } from "@cnikit/core";
import { SimFabric, type SimTopology } from "../src/index.ts";

export function mac(n: number, kind = 0xaa): string {
  const b = [0x02, kind, (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** A pod on bridge `cni0` with an address of a /24 and a default route via the bridge address. */
export function bridgedPod(node: number, index: number, options: { subnet?: string; bridge?: string; mtu?: number } = {}): PodInterface {
  const subnet = options.subnet ?? `10.244.${node}`;
  const key = `c-${node}-${index}/eth0`;
  return {
    key,
    containerId: `c-${node}-${index}`,
    ifName: "eth0",
    hostIf: `veth${node}x${index}`,
    bridge: options.bridge ?? "cni0",
    mac: mac(node * 1000 + index, 0xbb),
    mtu: options.mtu ?? 1500,
    addresses: [`${subnet}.${index + 2}/24`],
    gateways: [`${subnet}.1`],
    routes: [{ dst: "0.0.0.0/0", via: `${subnet}.1` }],
  };
}

/** A routed (Calico-style) pod: /32 address, default via 169.254.1.1 scope link, proxy ARP on the host side. */
export function routedPod(node: number, index: number, options: { mtu?: number } = {}): PodInterface {
  return {
    key: `r-${node}-${index}/eth0`,
    containerId: `r-${node}-${index}`,
    ifName: "eth0",
    hostIf: `cali${node}x${index}`,
    mac: mac(node * 1000 + index, 0xcc),
    mtu: options.mtu ?? 1480,
    addresses: [`10.96.${node}.${index + 1}/32`],
    routes: [
      { dst: "169.254.1.1/32", scopeLink: true },
      { dst: "0.0.0.0/0", via: "169.254.1.1" },
    ],
  };
}

/** Node n's bridge dataplane: cni0 10.244.n.1/24, pods, forwarding on. */
export function bridgeNode(name: string, n: number, pods: number, options: { mtu?: number } = {}): NodeDataplane {
  const dp = emptyDataplane(name);
  dp.links.push({ kind: "bridge", name: "cni0", mac: mac(n, 0x01) });
  dp.addresses.push({ dev: "cni0", cidr: `10.244.${n}.1/24` });
  dp.sysctls = { ipv4Forwarding: true };
  for (let i = 0; i < pods; i++) dp.pods.push(bridgedPod(n, i, options.mtu !== undefined ? { mtu: options.mtu } : {}));
  return dp;
}

export interface Built {
  fabric: SimFabric;
  infos: NodeInfo[];
  dps: NodeDataplane[];
}

/** host-gw: every node routes every other node's /24 via that node's underlay address. */
export function hostGw(count: number, pods: number, topology?: SimTopology): Built {
  const fabric = new SimFabric(topology);
  const infos: NodeInfo[] = [];
  for (let i = 1; i <= count; i++) infos.push(fabric.addNode({ name: `node-${i}`, subnet: "a" }));
  const dps = infos.map((info, k) => {
    const n = k + 1;
    const dp = bridgeNode(info.name, n, pods);
    infos.forEach((peer, m) => {
      if (m !== k) dp.routes.push({ dst: `10.244.${m + 1}.0/24`, via: peer.underlay[0]!.address, origin: `peer ${peer.name}` });
    });
    return dp;
  });
  dps.forEach((dp, k) => fabric.setDataplane(infos[k]!.name, dp));
  return { fabric, infos, dps };
}

/** flannel-style vxlan (VNI 1, port 8472): neighbour + FDB + onlink route per peer, across subnets. */
export function flannelVxlan(count: number, pods: number, options: { masquerade?: boolean; podMtu?: number } = {}): Built {
  const fabric = new SimFabric();
  const infos: NodeInfo[] = [];
  for (let i = 1; i <= count; i++) infos.push(fabric.addNode({ name: `node-${i}` }));
  const vtep = (n: number): string => mac(n, 0xfe);
  const dps = infos.map((info, k) => {
    const n = k + 1;
    const dp = bridgeNode(info.name, n, pods, { mtu: options.podMtu ?? 1450 });
    dp.links.push({ kind: "vxlan", name: "flannel.1", vni: 1, port: 8472, local: info.underlay[0]!.address, learning: false, mac: vtep(n) });
    dp.addresses.push({ dev: "flannel.1", cidr: `10.244.${n}.0/32` });
    infos.forEach((peer, m) => {
      if (m === k) return;
      const pn = m + 1;
      dp.neighbours.push({ dev: "flannel.1", ip: `10.244.${pn}.0`, mac: vtep(pn), permanent: true });
      dp.fdb.push({ dev: "flannel.1", mac: vtep(pn), dst: peer.underlay[0]!.address, permanent: true });
      dp.routes.push({ dst: `10.244.${pn}.0/24`, via: `10.244.${pn}.0`, dev: "flannel.1", onlink: true });
    });
    if (options.masquerade) {
      dp.nat.push({ id: "flannel-masq", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: ["10.244.0.0/16"], randomFully: true });
    }
    return dp;
  });
  dps.forEach((dp, k) => fabric.setDataplane(infos[k]!.name, dp));
  return { fabric, infos, dps };
}

export const pod = (key: string) => ({ kind: "pod" as const, key });
export const node = (name: string) => ({ kind: "node" as const, name });
export const external = (name: string) => ({ kind: "external" as const, name });

/** Applies `fn` to node k's (0-based) dataplane and pushes it into the fabric. */
export function mutate(b: Built, k: number, fn: (dp: NodeDataplane) => void): Built {
  fn(b.dps[k]!);
  b.fabric.setDataplane(b.infos[k]!.name, b.dps[k]!);
  return b;
}

/**
 * Weave-style L2 mesh: bridge `weave` on every node with a tunnel port (vxlan "fastdp" or
 * "sleeve"), all-zero flood FDB entries to every peer, pods in 10.32.0.0/12 with the range's
 * netmask (so pods ARP for each other across nodes).
 */
export function weaveMesh(count: number, pods: number, options: { tunnel: "vxlan" | "sleeve"; encrypted?: boolean; podMtu?: number }): Built {
  const fabric = new SimFabric();
  const infos: NodeInfo[] = [];
  for (let i = 1; i <= count; i++) infos.push(fabric.addNode({ name: `node-${i}` }));
  const dps = infos.map((info, k) => {
    const n = k + 1;
    const dp = emptyDataplane(info.name);
    dp.sysctls = { ipv4Forwarding: true };
    dp.links.push({ kind: "bridge", name: "weave", mac: mac(n, 0x0e) });
    dp.addresses.push({ dev: "weave", cidr: `10.32.${n}.1/12` });
    if (options.tunnel === "vxlan") {
      dp.links.push({ kind: "vxlan", name: "vxlan-6784", vni: 42, port: 6784, local: info.underlay[0]!.address, learning: true, master: "weave", mac: mac(n, 0x0d) });
    } else {
      dp.links.push({ kind: "sleeve", name: "sleeve", port: 6783, encrypted: options.encrypted ?? false, master: "weave", mac: mac(n, 0x0d) });
    }
    const dev = options.tunnel === "vxlan" ? "vxlan-6784" : "sleeve";
    infos.forEach((peer, m) => {
      if (m !== k) dp.fdb.push({ dev, mac: "00:00:00:00:00:00", dst: peer.underlay[0]!.address, permanent: true });
    });
    for (let i = 0; i < pods; i++) {
      dp.pods.push({
        key: `w-${n}-${i}/eth0`,
        containerId: `w-${n}-${i}`,
        ifName: "eth0",
        hostIf: `vethwe${i}`,
        bridge: "weave",
        mac: mac(n * 1000 + i, 0xdd),
        mtu: options.podMtu ?? 1376,
        addresses: [`10.32.${n}.${i + 2}/12`],
        routes: [{ dst: "0.0.0.0/0", via: `10.32.${n}.1` }],
      });
    }
    return dp;
  });
  dps.forEach((dp, k) => fabric.setDataplane(infos[k]!.name, dp));
  return { fabric, infos, dps };
}

/** Calico-style routed pods: /32 host routes via cali*, proxy ARP, node blocks routed via peers (host-gw style). */
export function routedCluster(count: number, pods: number, options: { proxyArp?: boolean; topology?: SimTopology } = {}): Built {
  const fabric = new SimFabric(options.topology ?? singleSubnet());
  const infos: NodeInfo[] = [];
  for (let i = 1; i <= count; i++) infos.push(fabric.addNode({ name: `node-${i}` }));
  const dps = infos.map((info, k) => {
    const n = k + 1;
    const dp = emptyDataplane(info.name);
    dp.sysctls = { ipv4Forwarding: true, proxyArp: [] };
    for (let i = 0; i < pods; i++) {
      const p = routedPod(n, i);
      dp.pods.push(p);
      dp.routes.push({ dst: p.addresses[0]!, dev: p.hostIf });
      if (options.proxyArp ?? true) dp.sysctls.proxyArp!.push(p.hostIf);
    }
    dp.routes.push({ dst: `10.96.${n}.0/24`, type: "blackhole" });
    infos.forEach((peer, m) => {
      if (m !== k) dp.routes.push({ dst: `10.96.${m + 1}.0/24`, via: peer.underlay[0]!.address });
    });
    return dp;
  });
  dps.forEach((dp, k) => fabric.setDataplane(infos[k]!.name, dp));
  return { fabric, infos, dps };
}

function singleSubnet(): SimTopology {
  return {
    subnets: [
      { name: "a", cidr: "198.51.100.0/24", gateway: "198.51.100.1" },
      { name: "ext", cidr: "192.0.2.0/24", gateway: "192.0.2.1" },
    ],
    routers: [
      {
        name: "r1",
        interfaces: [
          { subnet: "a", address: "198.51.100.1" },
          { subnet: "ext", address: "192.0.2.1" },
        ],
      },
    ],
    externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }],
  };
}
