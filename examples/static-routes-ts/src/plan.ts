/**
 * The plan: a pure function of the kit's plan input (config, this node, its pods, its peers, the
 * policy) to the node's desired dataplane. No I/O, no clock: tested and reasoned about alone.
 */
import { ConfigError, Prefix, canonicalDataplane, emptyDataplane, fnv1a32Hex, podKey } from "@cnikit/core";
import type { NodeDataplane, NodeInfo, PlanInput, PodAttachment, PodInterface, UnderlayInterface } from "@cnikit/core";
import { NAME } from "./config.ts";
import type { StaticRoutesConfig } from "./config.ts";

/** Another node as this node sees it: its subnet (from the store) and underlay address (from membership). */
export interface Peer {
  node: string;
  subnet: string;
  address: string;
}

/** One pod on this node: what the ADD asked for, plus the address it got. */
export type Pod = PodAttachment & { address: string };

export type StaticRoutesPlanInput = PlanInput<StaticRoutesConfig, Peer, Pod> & { subnet: string | undefined };

export const BRIDGE = "pods0";

/** The node's IPv4 underlay interface; ConfigError naming `node.underlay` when it has none. */
export function ipv4Underlay(node: NodeInfo): UnderlayInterface {
  const found = node.underlay.find((u) => !u.address.includes(":"));
  if (found) return found;
  throw new ConfigError({ component: NAME, field: "node.underlay", rule: `node ${node.name} needs an IPv4 underlay address` });
}

export const gatewayOf = (subnet: string): string => Prefix.parse(subnet).nth(1);
export const hostIfOf = (pod: Pod): string => `veth${fnv1a32Hex(podKey(pod))}`;
/** A locally administered MAC made of the IPv4 address: 0a:58:a.b.c.d in hex. */
export const macOf = (address: string): string =>
  `0a:58:${address
    .split(".")
    .map((o) => Number(o).toString(16).padStart(2, "0"))
    .join(":")}`;

function podInterface(pod: Pod, subnet: string, mtu: number): PodInterface {
  const gateway = gatewayOf(subnet);
  return {
    key: podKey(pod),
    containerId: pod.containerId,
    ifName: pod.ifName,
    netns: pod.netns,
    ...(pod.namespace !== undefined && { namespace: pod.namespace }),
    ...(pod.podName !== undefined && { podName: pod.podName }),
    ...(pod.labels !== undefined && { labels: pod.labels }),
    hostIf: hostIfOf(pod),
    bridge: BRIDGE,
    mac: macOf(pod.address),
    mtu,
    addresses: [`${pod.address}/${Prefix.parse(subnet).length}`],
    gateways: [gateway],
    routes: [{ dst: "0.0.0.0/0", via: gateway }],
  };
}

/**
 * A bridge with the subnet's gateway, the pods on it, one route per peer on this node's L2 subnet
 * (`<their subnet> via <their address>`), forwarding on, masquerade for traffic leaving the pod
 * network, and the policy's filters. Empty until the node holds a subnet.
 */
export function plan(input: StaticRoutesPlanInput): NodeDataplane {
  const { config, node, subnet } = input;
  if (subnet === undefined) return emptyDataplane(node.name);
  const underlay = ipv4Underlay(node);
  const mtu = underlay.mtu ?? 1500;
  const gateway = gatewayOf(subnet);
  const connected = Prefix.parse(`${underlay.address}/${underlay.prefixLength}`, { allowHostBits: true });
  const peers = input.peers.filter((p) => p.node !== node.name && connected.contains(p.address));
  return canonicalDataplane({
    node: node.name,
    links: [{ kind: "bridge", name: BRIDGE, mtu, mac: macOf(gateway) }],
    addresses: [{ dev: BRIDGE, cidr: `${gateway}/${Prefix.parse(subnet).length}` }],
    routes: peers.map((p) => ({ dst: p.subnet, via: p.address, dev: underlay.iface })),
    neighbours: [],
    fdb: [],
    sysctls: { ipv4Forwarding: true },
    nat: [{ id: `${NAME}/masquerade`, kind: "masquerade", sources: [config.network], exceptDestinations: [config.network] }],
    filters: input.policy?.filtersFor({ node: node.name, pods: input.pods, nodeAddresses: [underlay.address, gateway] }) ?? [],
    pods: input.pods.map((pod) => podInterface(pod, subnet, mtu)),
  });
}
