/**
 * Pure planning: cluster view in, NodeDataplane out. No I/O, no clock.
 *
 * One node's plan:
 *  - every local pod: a routed veth (`cali` + hash), the pod's /32, default route via 169.254.1.1
 *    (on-link), a host route `<ip>/32 dev <hostIf>` and proxy ARP on the host side;
 *  - a blackhole route for every block affine to this node (traffic to unallocated local
 *    addresses dies here);
 *  - every learned route (a remote block, or a /32 of a borrowed address): via the peer's underlay
 *    address on the underlay device, or through `tunl0` (IPIP) / `vxlan.calico` (VXLAN) when the
 *    pool's mode is Always, or CrossSubnet and the peer's address is outside this node's underlay
 *    subnet (Calico's exact rule);
 *  - tunnel devices when a pool uses them (tunl0 MTU underlay−20, vxlan.calico VNI 4096 port 4789
 *    MTU underlay−50), each with the node's tunnel address;
 *  - natOutgoing: masquerade from natOutgoing pools to destinations outside every pool;
 *  - IPv4 forwarding; the NetworkPolicy filters of the local pods, compiled here from the input's
 *    policy snapshot (`input.policy`, the kit's `PlanPolicy`).
 *
 * The input is the kit's one plan-input shape (`PlanInput` of @cnikit/core: config, this node's
 * `NodeInfo`, its pods, its peers — the node records it knows — and the policy), plus what BGP and
 * block IPAM gave this node: its affine blocks, the learned routes and its tunnel addresses.
 */
import { ENCAP_OVERHEAD, Prefix, ROUTED_POD_GATEWAY, canonicalDataplane, emptyDataplane, fnv1a32Hex, podKey, routedPodInterface } from "@cnikit/core";
import type { FdbEntry, Link, NatRule, NeighbourEntry, NodeDataplane, NodeInfo, PlanInput as KitPlanInput, PodInterface, PodPort, RouteEntry, UnderlayInterface, AddressEntry } from "@cnikit/core";
import type { CalicoConfig, IpPool } from "./config.ts";

export const IPIP_DEVICE = "tunl0";
export const VXLAN_DEVICE = "vxlan.calico";
export const VXLAN_VNI = 4096;
export const VXLAN_PORT = 4789;
/** The pods' gateway: a link-local address that the host side answers by proxy ARP. */
export const POD_GATEWAY = ROUTED_POD_GATEWAY;
export const NAT_RULE_ID = "calico/nat-outgoing";

/** Another node as published in the store. */
export interface NodeRecord {
  name: string;
  /** Underlay IPv4 address (BGP next hop, tunnel end point). */
  address: string;
  prefixLength: number;
  labels: Record<string, string>;
  /** Set when the node is a route reflector (Node resource or node annotation). */
  routeReflectorClusterID?: string;
  ipipTunnelAddr?: string;
  vxlanTunnelAddr?: string;
  vxlanMac?: string;
}

/** A route learned over BGP. */
export interface LearnedRoute {
  prefix: string;
  nextHop: string;
}

/** A local pod. */
export interface PodRecord {
  containerId: string;
  ifName: string;
  address: string;
  handle: string;
  netns?: string;
  namespace?: string;
  podName?: string;
  labels?: Record<string, string>;
  /** Container ports from the ADD (named ports in NetworkPolicies resolve against these). */
  ports?: PodPort[];
}

/**
 * The kit's plan input (`peers`: the node records this node knows, its own included or not — VXLAN
 * end points are looked up there by underlay address) plus this node's share of BGP and IPAM.
 */
export type PlanInput = KitPlanInput<CalicoConfig, NodeRecord, PodRecord> & {
  /** Blocks affine to this node. */
  blocks: readonly string[];
  /** Routes learned over BGP. */
  learned: readonly LearnedRoute[];
  /** This node's tunnel addresses and VXLAN MAC (its own node record's). */
  ipipTunnelAddr?: string;
  vxlanTunnelAddr?: string;
  vxlanMac?: string;
};

/** The node's IPv4 underlay interface (BGP router id, next hop, tunnel end point), if it has one. */
export function calicoUnderlay(node: NodeInfo): UnderlayInterface | undefined {
  return node.underlay.find((u) => !u.address.includes(":"));
}

/** Host-side veth name: `cali` + 11 hex digits of a hash of the attachment key (≤ 15 bytes). */
export function hostIfName(ref: { containerId: string; ifName: string }): string {
  return `cali${fnv1a32Hex(podKey(ref))}${fnv1a32Hex(`x${podKey(ref)}`).slice(0, 3)}`;
}

/** A locally administered MAC derived from a name (stable across restarts). */
export function macFor(text: string): string {
  const h = fnv1a32Hex(text) + fnv1a32Hex(`m${text}`);
  return `ee:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}`;
}

/** Encapsulations any pool of the config uses. */
export function usedEncaps(config: CalicoConfig): { ipip: boolean; vxlan: boolean } {
  return { ipip: config.pools.some((p) => p.ipipMode !== "Never" && !p.disabled), vxlan: config.pools.some((p) => p.vxlanMode !== "Never" && !p.disabled) };
}

/** Pod MTU: underlay MTU less the largest overhead over the enabled encapsulations (Calico's rule). */
export function podMtu(config: CalicoConfig, underlayMtu: number): number {
  const e = usedEncaps(config);
  return underlayMtu - Math.max(e.vxlan ? ENCAP_OVERHEAD.vxlan : 0, e.ipip ? ENCAP_OVERHEAD.ipip : 0);
}

/** The pool a prefix lies in (most specific). */
export function poolOf(config: CalicoConfig, prefix: string): IpPool | undefined {
  const p = Prefix.parse(prefix);
  let best: IpPool | undefined;
  for (const pool of config.pools) {
    const pp = Prefix.parse(pool.cidr);
    if (pp.family === p.family && pp.contains(p) && (!best || Prefix.parse(best.cidr).length < pp.length)) best = pool;
  }
  return best;
}

/** The pod interface of a local pod. */
export function podInterface(pod: PodRecord, mtu: number): PodInterface {
  return routedPodInterface(pod, { hostIf: hostIfName(pod), mac: macFor(`pod/${podKey(pod)}`), mtu, address: pod.address });
}

/** How a learned route is reached: `native`, `ipip` or `vxlan`. Calico's CrossSubnet rule, exactly. */
export function encapFor(pool: IpPool | undefined, localSubnet: Prefix, nextHop: string): "native" | "ipip" | "vxlan" {
  if (!pool) return "native";
  const cross = !localSubnet.contains(nextHop);
  if (pool.ipipMode === "Always" || (pool.ipipMode === "CrossSubnet" && cross)) return "ipip";
  if (pool.vxlanMode === "Always" || (pool.vxlanMode === "CrossSubnet" && cross)) return "vxlan";
  return "native";
}

/**
 * Computes the desired dataplane of one node. Pure and deterministic (canonical output for any
 * order of the inputs). Learned routes for prefixes inside this node's own blocks that name this
 * node's address, and routes whose VXLAN peer is unknown, are left out. A node without an IPv4
 * underlay plans nothing (the agent refuses to start on one).
 */
export function planDataplane(input: PlanInput): NodeDataplane {
  const { config } = input;
  const node = input.node.name;
  const underlay = calicoUnderlay(input.node);
  if (!underlay) return emptyDataplane(node);
  const nodesByAddress = new Map(input.peers.map((p) => [p.address, p]));
  const mtu = underlay.mtu ?? 1500;
  const local = Prefix.of(4, Prefix.host(underlay.address).base, underlay.prefixLength);
  const encaps = usedEncaps(config);
  const links: Link[] = [];
  const addresses: AddressEntry[] = [];
  const routes: RouteEntry[] = [];
  const neighbours: NeighbourEntry[] = [];
  const fdb: FdbEntry[] = [];
  if (encaps.ipip) {
    links.push({ kind: "ipip", name: IPIP_DEVICE, mtu: mtu - ENCAP_OVERHEAD.ipip });
    if (input.ipipTunnelAddr) addresses.push({ dev: IPIP_DEVICE, cidr: `${input.ipipTunnelAddr}/32` });
  }
  if (encaps.vxlan) {
    links.push({
      kind: "vxlan",
      name: VXLAN_DEVICE,
      vni: VXLAN_VNI,
      port: VXLAN_PORT,
      local: underlay.address,
      underlayDev: underlay.iface,
      learning: false,
      mtu: mtu - ENCAP_OVERHEAD.vxlan,
      ...(input.vxlanMac ? { mac: input.vxlanMac } : {}),
    });
    if (input.vxlanTunnelAddr) addresses.push({ dev: VXLAN_DEVICE, cidr: `${input.vxlanTunnelAddr}/32` });
  }
  for (const b of [...new Set(input.blocks)]) {
    if (Prefix.parse(b).length < 32) routes.push({ dst: b, type: "blackhole", origin: `block:${b}` });
  }
  const podMtuValue = podMtu(config, mtu);
  const pods = input.pods.map((p) => podInterface(p, podMtuValue));
  const localDsts = new Set<string>();
  for (const p of pods) {
    const dst = p.addresses[0]!.replace(/\/\d+$/, "/32");
    localDsts.add(dst);
    routes.push({ dst, dev: p.hostIf, origin: `pod:${p.key}` });
  }
  const vxlanPeers = new Set<string>();
  const seen = new Set<string>();
  for (const r of [...input.learned].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : a.nextHop < b.nextHop ? -1 : 1))) {
    if (r.nextHop === underlay.address || localDsts.has(r.prefix) || seen.has(r.prefix)) continue;
    if (input.blocks.includes(r.prefix)) continue;
    seen.add(r.prefix);
    const pool = poolOf(config, r.prefix);
    const how = encapFor(pool, local, r.nextHop);
    if (how === "ipip") {
      routes.push({ dst: r.prefix, via: r.nextHop, dev: IPIP_DEVICE, onlink: true, origin: "bgp" });
    } else if (how === "vxlan") {
      const peer = nodesByAddress.get(r.nextHop);
      if (!peer?.vxlanTunnelAddr || !peer.vxlanMac) continue;
      routes.push({ dst: r.prefix, via: peer.vxlanTunnelAddr, dev: VXLAN_DEVICE, onlink: true, origin: "bgp" });
      if (!vxlanPeers.has(peer.name)) {
        vxlanPeers.add(peer.name);
        neighbours.push({ dev: VXLAN_DEVICE, ip: peer.vxlanTunnelAddr, mac: peer.vxlanMac, permanent: true });
        fdb.push({ dev: VXLAN_DEVICE, mac: peer.vxlanMac, dst: peer.address, permanent: true });
      }
    } else if (local.contains(r.nextHop)) {
      routes.push({ dst: r.prefix, via: r.nextHop, dev: underlay.iface, origin: "bgp" });
    } else if (underlay.gateway) {
      // BIRD resolves a next hop off the local subnet recursively, through the default gateway,
      // which knows no pod routes unless it is itself peered: kept, to show the same failure.
      routes.push({ dst: r.prefix, via: underlay.gateway, dev: underlay.iface, origin: "bgp (recursive)" });
    }
  }
  const masq = config.pools.filter((p) => p.natOutgoing && p.family === 4);
  const nat: NatRule[] =
    masq.length > 0 ? [{ id: NAT_RULE_ID, kind: "masquerade", sources: masq.map((p) => p.cidr), exceptDestinations: config.pools.filter((p) => p.family === 4).map((p) => p.cidr) }] : [];
  const dataplane: NodeDataplane = {
    node,
    links,
    addresses,
    routes,
    neighbours,
    fdb,
    sysctls: { ipv4Forwarding: true, proxyArp: pods.map((p) => p.hostIf) },
    nat,
    filters: input.policy?.filtersFor({ node, pods: input.pods, nodeAddresses: [underlay.address] }) ?? [],
    pods,
  };
  return canonicalDataplane(dataplane);
}
