/**
 * Pure planning for the Azure-like backend: what the node holds in, NodeDataplane out. No I/O, no
 * clock. Pods are routed the way Azure CNI's transparent mode routes them, with no bridge and no
 * encapsulation:
 *
 *  - every local pod: a veth (`azv` + a hash of the attachment), the pod's address as a /32,
 *    default route via 169.254.1.1 on-link (core's `routedPodInterface`), a host route
 *    `<address>/32 dev <hostIf>` and proxy ARP on the host side;
 *  - classic (Node Subnet): pod addresses are the node's fabric secondary addresses on its own
 *    underlay subnet. Proxy ARP on the underlay interface as well: the fabric (and a neighbour on
 *    the subnet) asks for a pod's address there, and the node answers for the pod it routes it to
 *    (core's rule: a secondary address a host route sends elsewhere is forwarded, not taken);
 *  - dynamic: the fabric routes each assigned pod-subnet address to the node as a /32; an
 *    assigned address no pod holds gets an `unreachable` /32, so a packet for it dies here with an
 *    ICMP error instead of bouncing between the node's default route and the fabric until its TTL
 *    runs out (what "programmed" means for an address: see agent.ts);
 *  - static-block and overlay: the node's blocks (its /28s, its /24) are `unreachable` routes,
 *    the pods' /32s more specific (Calico's blackhole-per-affine-block idea);
 *  - natOutgoing: masquerade from the pod ranges to anything outside the network: for classic and
 *    dynamic the VNet (pod ranges and every member's node subnet: pods are first-class VNet
 *    addresses), for overlay only the pod CIDR (Azure SNATs overlay pods to the node's address
 *    for every destination outside the pod CIDR, the VNet included);
 *  - IPv4 forwarding; the NetworkPolicy filters of the local pods from the input's policy snapshot.
 */
import { Prefix, canonicalDataplane, emptyDataplane, fnv1a32Hex, podKey, podMac, routedPodInterface } from "@cnikit/core";
import type { AttachmentFields, NatRule, NodeDataplane, NodeInfo, PlanInput as KitPlanInput, PodInterface, RouteEntry, UnderlayInterface } from "@cnikit/core";
import type { AzureConfig } from "./config.ts";

/** Id of the masquerade rule. */
export const NAT_RULE_ID = "azure/nat-outgoing";

/** One pod on this node, as the agent records it in `ctx.local` (core's `attachmentRecord` + its address). */
export interface PodRecord extends AttachmentFields {
  /** Plain IPv4 address (a VNet address, or one of the node's overlay /24). */
  address: string;
}

/**
 * The kit's plan input (`peers`: the node subnets of the cluster's members, canonical CIDRs — the
 * VNet as the cluster knows it) plus what the controller gave this node.
 */
export type PlanInput = KitPlanInput<AzureConfig, string, PodRecord> & {
  /** Assigned addresses no pod holds yet or any more (dynamic: unreachable /32 each). */
  idle: readonly string[];
  /** The node's blocks (static-block /28s, overlay /24). */
  blocks: readonly string[];
};

/** The node's IPv4 underlay interface, if any. */
export function azureUnderlay(node: NodeInfo): UnderlayInterface | undefined {
  return node.underlay.find((u) => !u.address.includes(":"));
}

/** The connected subnet of an underlay interface, canonical. */
export function underlaySubnet(u: UnderlayInterface): string {
  return Prefix.parse(`${u.address}/${u.prefixLength}`, { allowHostBits: true }).toString();
}

/** Host-side veth name: `azv` + 11 hex digits of hashes of the attachment key (≤ 15 bytes, IFNAMSIZ). */
export function hostIfName(ref: { containerId: string; ifName: string }): string {
  return `azv${fnv1a32Hex(podKey(ref))}${fnv1a32Hex(`x${podKey(ref)}`).slice(0, 3)}`;
}

/** Pod MTU: the config's, else the underlay's (no encapsulation takes anything off). */
export function podMtu(config: AzureConfig, underlay: UnderlayInterface | undefined): number {
  return config.mtu ?? underlay?.mtu ?? 1500;
}

/** The pod interface of a local pod. */
export function podInterface(pod: PodRecord, mtu: number): PodInterface {
  return routedPodInterface(pod, { hostIf: hostIfName(pod), mac: podMac(pod.address), mtu, address: pod.address });
}

/**
 * The ranges pods of this config take addresses from on a cluster whose node subnets are
 * `nodeSubnets`: classic — the node subnets (or `vnetSubnet`); dynamic and static-block — the pod
 * subnet; overlay — the pod CIDR.
 */
export function podRangesOf(config: AzureConfig, nodeSubnets: readonly string[]): string[] {
  switch (config.mode) {
    case "classic":
      return config.vnetSubnet !== undefined ? [config.vnetSubnet] : [...new Set(nodeSubnets)].sort();
    case "dynamic":
    case "static-block":
      return [config.podSubnet!];
    case "overlay":
      return [config.podCidr];
  }
}

/** The node's desired dataplane. Empty without an IPv4 underlay (the agent refuses to start then). */
export function planDataplane(input: PlanInput): NodeDataplane {
  const { config, node } = input;
  const underlay = azureUnderlay(node);
  if (!underlay) return emptyDataplane(node.name);
  const mtu = podMtu(config, underlay);
  const pods = input.pods.map((p) => podInterface(p, mtu));
  const routes: RouteEntry[] = [];
  const held = new Set<string>();
  for (const p of input.pods) {
    held.add(p.address);
    routes.push({ dst: `${p.address}/32`, dev: hostIfName(p), origin: `pod:${podKey(p)}` });
  }
  if (config.mode === "dynamic") {
    for (const a of input.idle) if (!held.has(a)) routes.push({ dst: `${a}/32`, type: "unreachable", origin: "azure:assigned-idle" });
  }
  if (config.mode === "static-block" || config.mode === "overlay") {
    for (const b of input.blocks) routes.push({ dst: b, type: "unreachable", origin: `azure:block ${b}` });
  }
  const ranges = podRangesOf(config, [underlaySubnet(underlay), ...input.peers]);
  const except = config.mode === "overlay" ? ranges : [...new Set([...ranges, underlaySubnet(underlay), ...input.peers])].sort();
  const nat: NatRule[] = config.natOutgoing ? [{ id: NAT_RULE_ID, kind: "masquerade", sources: ranges, exceptDestinations: except }] : [];
  const proxyArp = pods.map((p) => p.hostIf);
  if (config.mode === "classic") proxyArp.push(underlay.iface);
  return canonicalDataplane({
    node: node.name,
    links: [],
    addresses: [],
    routes,
    neighbours: [],
    fdb: [],
    sysctls: { ipv4Forwarding: true, proxyArp },
    nat,
    filters: input.policy?.filtersFor({ node: node.name, pods: input.pods, nodeAddresses: [underlay.address] }) ?? [],
    pods,
  });
}
