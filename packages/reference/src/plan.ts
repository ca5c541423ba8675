/**
 * Pure planning for the reference backend: cluster view in, NodeDataplane out. No I/O, no clock.
 *
 * The plan of one node is:
 *  - a bridge `cbr0` with the node subnet's gateway (`.1/<len>`) on it; every pod's host veth is a
 *    port of it, and the pod's default route points at the gateway;
 *  - one route per other node: `<their subnet> via <their underlay address> dev <underlay iface>`
 *    (static routes, no overlay: every node must share one L2 underlay subnet);
 *  - IPv4 forwarding on;
 *  - when `natOutgoing`, one masquerade rule for traffic from the pod network to anything outside it;
 *  - the NetworkPolicy filters of the local pods, as given (compiled by the agent).
 */
import { Prefix, canonicalDataplane, podKey } from "@cnikit/core";
import type { FilterPolicy, NatRule, NodeDataplane, PodInterface, PodPort, RouteEntry, UnderlayInterface } from "@cnikit/core";
import type { ReferenceConfig } from "./config.ts";

/** Name of the bridge every pod hangs off. */
export const BRIDGE = "cbr0";
/** Id of the masquerade rule. */
export const MASQ_RULE_ID = "reference/masquerade";

/** Another node's claimed subnet, as read from the store. */
export interface PeerSubnet {
  node: string;
  /** The node subnet, canonical CIDR. */
  subnet: string;
  /** The node's underlay address (next hop for its subnet). */
  address: string;
}

/** One pod reservation on this node. */
export interface PodRecord {
  containerId: string;
  ifName: string;
  /** Plain address inside the node subnet. */
  address: string;
  netns?: string;
  namespace?: string;
  podName?: string;
  labels?: Record<string, string>;
  /** Container ports from the ADD (named ports in NetworkPolicies resolve against these). */
  ports?: PodPort[];
}

export interface PlanInput {
  config: ReferenceConfig;
  node: string;
  underlay: UnderlayInterface;
  /** This node's subnet, canonical CIDR; absent before the claim (the plan is then empty). */
  subnet?: string;
  peers: PeerSubnet[];
  pods: PodRecord[];
  /** The local pods' NetworkPolicy filters (compiled by the agent with @cnikit/netpol). */
  filters?: FilterPolicy[];
}

/** The gateway address (first host) of a node subnet. */
export function gatewayOf(subnet: string): string {
  return Prefix.parse(subnet).nth(1);
}

/** A locally administered, deterministic MAC from an IPv4 address: `0a:58:` + the four octets. */
export function macFor(address: string): string {
  return `0a:58:${address
    .split(".")
    .map((o) => Number(o).toString(16).padStart(2, "0"))
    .join(":")}`;
}

/** FNV-1a 32-bit hash, hex; stable names for host-side interfaces. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** Host-side veth name of an attachment: `veth` + 8 hex digits of a hash of its key (≤ 15 bytes). */
export function hostIfName(ref: { containerId: string; ifName: string }): string {
  return `veth${fnv1a(podKey(ref))}`;
}

/** The pod interface a reservation renders to. */
export function podInterface(config: ReferenceConfig, subnet: string, pod: PodRecord): PodInterface {
  const gateway = gatewayOf(subnet);
  const length = Prefix.parse(subnet).length;
  const out: PodInterface = {
    key: podKey(pod),
    containerId: pod.containerId,
    ifName: pod.ifName,
    hostIf: hostIfName(pod),
    bridge: BRIDGE,
    mac: macFor(pod.address),
    mtu: config.mtu,
    addresses: [`${pod.address}/${length}`],
    gateways: [gateway],
    routes: [{ dst: "0.0.0.0/0", via: gateway }],
  };
  if (pod.namespace !== undefined) out.namespace = pod.namespace;
  if (pod.podName !== undefined) out.podName = pod.podName;
  if (pod.labels !== undefined) out.labels = { ...pod.labels };
  if (pod.netns !== undefined) out.netns = pod.netns;
  return out;
}

/**
 * Computes the desired dataplane of one node. Pure and deterministic: the same input (in any
 * order of peers and pods) gives the same canonical output. Peers that name this node, that have
 * no usable subnet, or whose underlay address is not on this node's connected subnet (no direct
 * route possible without an overlay) get no route; `unroutablePeers` reports the last kind.
 */
export function planDataplane(input: PlanInput): NodeDataplane {
  return planWithDiagnostics(input).dataplane;
}

/** `planDataplane` plus the peers that could not be routed (not on this node's L2 subnet). */
export function planWithDiagnostics(input: PlanInput): { dataplane: NodeDataplane; unroutablePeers: PeerSubnet[] } {
  const { config, node, underlay, subnet } = input;
  const unroutablePeers: PeerSubnet[] = [];
  if (subnet === undefined) {
    return {
      dataplane: { node, links: [], addresses: [], routes: [], neighbours: [], fdb: [], sysctls: {}, nat: [], filters: [], pods: [] },
      unroutablePeers,
    };
  }
  const own = Prefix.parse(subnet);
  const gateway = own.nth(1);
  const connected = Prefix.of(4, Prefix.host(underlay.address).base, underlay.prefixLength);

  const routes: RouteEntry[] = [];
  const seen = new Set<string>();
  for (const peer of [...input.peers].sort((a, b) => (a.subnet < b.subnet ? -1 : a.subnet > b.subnet ? 1 : 0))) {
    if (peer.node === node || peer.subnet === own.toString() || seen.has(peer.subnet)) continue;
    if (!connected.contains(peer.address)) {
      unroutablePeers.push(peer);
      continue;
    }
    seen.add(peer.subnet);
    routes.push({ dst: peer.subnet, via: peer.address, dev: underlay.iface, origin: `subnet:${peer.subnet}@${peer.node}` });
  }

  const nat: NatRule[] = config.natOutgoing
    ? [{ id: MASQ_RULE_ID, kind: "masquerade", sources: [config.network], exceptDestinations: [config.network] }]
    : [];

  const dataplane: NodeDataplane = {
    node,
    links: [{ kind: "bridge", name: BRIDGE, mtu: config.mtu, mac: macFor(gateway) }],
    addresses: [{ dev: BRIDGE, cidr: `${gateway}/${own.length}` }],
    routes,
    neighbours: [],
    fdb: [],
    sysctls: { ipv4Forwarding: true },
    nat,
    filters: (input.filters ?? []).map((f) => ({ ...f, rules: [...f.rules] })),
    pods: input.pods.map((p) => podInterface(config, subnet, p)),
  };
  return { dataplane: canonicalDataplane(dataplane), unroutablePeers };
}
