/**
 * Weave's plan: a pure function of the kit's plan input (config, this node, its pods, the peers
 * the mesh has an established connection with, the policy) plus the address the ring gave the
 * node's bridge, to the node's desired dataplane. No I/O, no clock.
 *
 * The shape is Weave Net's flat L2 overlay:
 *  - one bridge `weave` per node holding an address of the default subnet (Weave's "expose": the
 *    host's own address on the pod network, the pods' gateway); every pod hangs off it with an
 *    address of the default subnet and the subnet's whole netmask, so pods of every node share one
 *    L2 segment and find each other by ARP;
 *  - fast datapath: a kernel vxlan port on the bridge (UDP 6784) with one flood entry (all-zero
 *    MAC) per fastdp peer — unknown and broadcast frames are flooded to every peer, the vxlan
 *    device and the bridge learn the rest (Weave learns from flow misses);
 *  - sleeve: a userspace UDP port on the bridge (6783), one flood entry per sleeve peer, optionally
 *    encrypted (a password always takes the sleeve here: this kernel has no xfrm for fastdp's ESP);
 *  - no per-node routes: there is nothing to converge but the peer list;
 *  - masquerade for traffic leaving the pod network, and the policy's filters (weave-npc:
 *    only traffic entering a local pod is policed — the filters of this node's pods).
 *
 * The pod MTU is the underlay's minus the real overhead of the datapath the mode uses (vxlan 50,
 * sleeve 82), or WEAVE_MTU when set and the underlay carries it — never a fixed 1376 (Weave's
 * figure for a 1460-byte GCE underlay with ESP) when the underlay says otherwise.
 */
import { ConfigError, ENCAP_OVERHEAD, Prefix, canonicalDataplane, emptyDataplane, fnv1a32, podInterfaceOf, podMac, vethName } from "@cnikit/core";
import type { FdbEntry, Link, NodeDataplane, NodeInfo, PlanInput, PodAttachment, PodInterface, UnderlayInterface } from "@cnikit/core";
import { WEAVE } from "./config.ts";
import type { WeaveConfig } from "./config.ts";

export const BRIDGE = "weave";
/** The fast datapath's vxlan port on the bridge (Weave: UDP 6784). */
export const VXLAN_DEV = "vxlan-6784";
export const FASTDP_PORT = 6784;
/** One VNI for the whole flat segment (Weave puts 12-bit source and destination short ids in it; one segment needs one). */
export const VNI = 1;
/** The sleeve's port on the bridge (Weave: UDP 6783). */
export const SLEEVE_DEV = "sleeve-6783";
export const SLEEVE_PORT = 6783;
const FLOOD_MAC = "00:00:00:00:00:00";

export type Datapath = "fastdp" | "sleeve";

/** A peer this node has an established mesh connection with, and the datapath the connection uses. */
export interface WeavePeer {
  node: string;
  /** The peer's underlay IPv4 address (from membership). */
  address: string;
  datapath: Datapath;
}

/** One pod on this node: what the ADD asked for, plus the address the ring gave it. */
export type WeavePod = PodAttachment & { address: string };

export type WeavePlanInput = PlanInput<WeaveConfig, WeavePeer, WeavePod> & {
  /** The node's own address on the pod network (the bridge's, the pods' gateway); undefined until the ring gave one. */
  bridgeAddress: string | undefined;
};

/** The node's IPv4 underlay interface; ConfigError naming `node.underlay` when it has none (Weave is IPv4 only). */
export function ipv4Underlay(node: NodeInfo): UnderlayInterface {
  const found = node.underlay.find((u) => !u.address.includes(":"));
  if (found) return found;
  throw new ConfigError({ component: WEAVE, field: "node.underlay", rule: `node ${node.name} needs an IPv4 underlay address (Weave Net is IPv4 only)` });
}

/** Whether the config's connections are encrypted (a password on every peer). */
export const encrypted = (config: WeaveConfig): boolean => config.password !== undefined;

/** The datapath a connection prefers: fastdp unless WEAVE_NO_FASTDP or a password (encryption rides the sleeve here). */
export const preferredDatapath = (config: WeaveConfig): Datapath => (config.fastdp && !encrypted(config) ? "fastdp" : "sleeve");

/**
 * The pod MTU: WEAVE_MTU when set, else the underlay's MTU minus the preferred datapath's overhead.
 * ConfigError naming WEAVE_MTU when the underlay cannot carry it (a start-time refusal: the config is
 * valid on its own).
 */
export function podMtu(config: WeaveConfig, node: NodeInfo): number {
  const underlay = ipv4Underlay(node).mtu ?? 1500;
  const datapath = preferredDatapath(config);
  const overhead = datapath === "fastdp" ? ENCAP_OVERHEAD.vxlan : ENCAP_OVERHEAD.sleeve;
  const most = underlay - overhead;
  if (config.mtu === undefined) return most;
  if (config.mtu > most) {
    throw new ConfigError({
      component: WEAVE,
      field: "WEAVE_MTU",
      rule: `must be at most ${most} on node ${node.name}: its underlay MTU is ${underlay} and the ${datapath === "fastdp" ? "fast datapath (vxlan)" : "sleeve"} needs ${overhead} bytes`,
      value: config.mtu,
    });
  }
  return config.mtu;
}

/** The bridge's MAC: locally administered, from the node name (stable across restarts, distinct per node). */
export function bridgeMac(node: string): string {
  const h = fnv1a32(`${WEAVE}/bridge/${node}`);
  const tail = [h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff].map((x) => x.toString(16).padStart(2, "0"));
  return `0a:57:${tail.join(":")}`;
}

function podInterface(pod: WeavePod, subnetLength: number, gateway: string, mtu: number): PodInterface {
  return podInterfaceOf(pod, {
    hostIf: vethName(pod),
    bridge: BRIDGE,
    mac: podMac(pod.address),
    mtu,
    addresses: [`${pod.address}/${subnetLength}`],
    gateways: [gateway],
    routes: [{ dst: "0.0.0.0/0", via: gateway }],
  });
}

/** The node's dataplane; empty until the ring gave the bridge its address. */
export function plan(input: WeavePlanInput): NodeDataplane {
  const { config, node, bridgeAddress } = input;
  if (bridgeAddress === undefined) return emptyDataplane(node.name);
  const underlay = ipv4Underlay(node);
  const mtu = podMtu(config, node);
  const subnetLength = Prefix.parse(config.defaultSubnet).length;
  const peers = input.peers.filter((p) => p.node !== node.name);
  const wants = (d: Datapath): boolean => preferredDatapath(config) === d || peers.some((p) => p.datapath === d);
  const links: Link[] = [{ kind: "bridge", name: BRIDGE, mtu, mac: bridgeMac(node.name) }];
  const fdb: FdbEntry[] = [];
  if (wants("fastdp")) {
    links.push({ kind: "vxlan", name: VXLAN_DEV, master: BRIDGE, mtu, vni: VNI, port: FASTDP_PORT, local: underlay.address, learning: true });
  }
  if (wants("sleeve")) {
    links.push({ kind: "sleeve", name: SLEEVE_DEV, master: BRIDGE, mtu, port: SLEEVE_PORT, encrypted: encrypted(config) });
  }
  for (const p of peers) {
    fdb.push(p.datapath === "fastdp" ? { dev: VXLAN_DEV, mac: FLOOD_MAC, dst: p.address, vni: VNI, permanent: true } : { dev: SLEEVE_DEV, mac: FLOOD_MAC, dst: p.address, permanent: true });
  }
  return canonicalDataplane({
    node: node.name,
    links,
    addresses: [{ dev: BRIDGE, cidr: `${bridgeAddress}/${subnetLength}` }],
    routes: [],
    neighbours: [],
    fdb,
    sysctls: { ipv4Forwarding: true },
    nat: [{ id: `${WEAVE}/masquerade`, kind: "masquerade", sources: [config.ipallocRange], exceptDestinations: [config.ipallocRange] }],
    filters: input.policy?.filtersFor({ node: node.name, pods: input.pods, nodeAddresses: [underlay.address, bridgeAddress] }) ?? [],
    pods: input.pods.map((pod) => podInterface(pod, subnetLength, bridgeAddress, mtu)),
  });
}
