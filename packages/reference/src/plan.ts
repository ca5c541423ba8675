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
 *  - the NetworkPolicy filters of the local pods, compiled here from the input's policy snapshot.
 */
import { ConfigError, Prefix, canonicalDataplane, emptyDataplane, podInterfaceOf, podMac, vethName } from "@cnikit/core";
import type { NatRule, NodeDataplane, NodeInfo, PlanInput as KitPlanInput, PodInterface, PodPort, RouteEntry, UnderlayInterface } from "@cnikit/core";
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

/** The kit's plan input, plus this node's subnet (canonical CIDR; absent before the claim: the plan is then empty). */
export type PlanInput = KitPlanInput<ReferenceConfig, PeerSubnet, PodRecord> & { subnet?: string };

/** The node's IPv4 underlay interface. Throws `ConfigError` (field `node.underlay`) when there is none. */
export function ipv4Underlay(node: NodeInfo): UnderlayInterface {
  const found = node.underlay.find((u) => !u.address.includes(":"));
  if (!found) {
    throw new ConfigError({ component: "reference", field: "node.underlay", rule: "the reference backend needs an IPv4 underlay interface", value: node.underlay });
  }
  return found;
}

/** The gateway address (first host) of a node subnet. */
export function gatewayOf(subnet: string): string {
  return Prefix.parse(subnet).nth(1);
}

/** A locally administered, deterministic MAC from an IPv4 address: `0a:58:` + the four octets (core's `podMac`). */
export const macFor = podMac;

/** Host-side veth name of an attachment: `veth` + 8 hex digits of a hash of its key (core's `vethName`). */
export const hostIfName = vethName;

/** The pod interface a reservation renders to. */
export function podInterface(config: ReferenceConfig, subnet: string, pod: PodRecord): PodInterface {
  const gateway = gatewayOf(subnet);
  return podInterfaceOf(pod, {
    hostIf: hostIfName(pod),
    bridge: BRIDGE,
    mac: macFor(pod.address),
    mtu: config.mtu,
    addresses: [`${pod.address}/${Prefix.parse(subnet).length}`],
    gateways: [gateway],
    routes: [{ dst: "0.0.0.0/0", via: gateway }],
  });
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
  const { config, subnet } = input;
  const node = input.node.name;
  const unroutablePeers: PeerSubnet[] = [];
  if (subnet === undefined) return { dataplane: emptyDataplane(node), unroutablePeers };
  const underlay = ipv4Underlay(input.node);
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

  const nat: NatRule[] = config.natOutgoing ? [{ id: MASQ_RULE_ID, kind: "masquerade", sources: [config.network], exceptDestinations: [config.network] }] : [];

  const dataplane: NodeDataplane = {
    node,
    links: [{ kind: "bridge", name: BRIDGE, mtu: config.mtu, mac: macFor(gateway) }],
    addresses: [{ dev: BRIDGE, cidr: `${gateway}/${own.length}` }],
    routes,
    neighbours: [],
    fdb: [],
    sysctls: { ipv4Forwarding: true },
    nat,
    filters: input.policy?.filtersFor({ node, pods: input.pods, nodeAddresses: [underlay.address, gateway] }) ?? [],
    pods: input.pods.map((p) => podInterface(config, subnet, p)),
  };
  return { dataplane: canonicalDataplane(dataplane), unroutablePeers };
}
