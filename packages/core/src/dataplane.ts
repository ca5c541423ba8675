/**
 * NodeDataplane: the desired forwarding state of one node, as plain JSON-able data.
 *
 * A backend's plan computes it; renderers consume it: the simulator walks packets through it, the
 * Linux renderer turns it into `ip -batch` and `nft -f` input inside a network namespace. Nothing
 * here refers to a kernel object by handle; everything is named, so two dataplanes can be diffed.
 *
 * Naming conventions:
 *  - addresses are canonical strings (`10.244.1.0`, `fd00::1`); prefixes are canonical CIDR strings
 *    with zero host bits (`10.244.1.0/24`); an interface address is CIDR with host bits
 *    (`10.244.1.1/24`).
 *  - `dev` names a link in `links`, a pod's host-side interface in `pods[].hostIf`, or the node's
 *    underlay interface (`NodeInfo.underlay[].iface`), which the renderer owns and the dataplane
 *    only refers to.
 *
 * The node's underlay (its physical interface, connected subnet and default gateway) is not part
 * of the dataplane: the renderer (sim topology, lab) provides it. The dataplane holds only what the
 * backend adds on top.
 */
import { Prefix } from "./ip/prefix.ts";
import { fnv1a32, fnv1a32Hex } from "./random.ts";

export type Family = 4 | 6;

/** A link the backend creates in the node's host namespace. */
export type Link = BridgeLink | VxlanLink | IpipLink | SleeveLink | DummyLink;

interface LinkBase {
  name: string;
  /** MTU; absent = the renderer's default for the kind (bridge: smallest port; tunnels: underlay − overhead). */
  mtu?: number;
  /** Fixed MAC (stable across agent restarts); absent = renderer chooses. */
  mac?: string;
  /** Bridge this link is a port of. */
  master?: string;
}

/** A Linux bridge (flannel `cni0`, Weave `weave`). */
export interface BridgeLink extends LinkBase {
  kind: "bridge";
}

/** A VXLAN device. With `learning: false` the FDB is entirely what `fdb` says. */
export interface VxlanLink extends LinkBase {
  kind: "vxlan";
  vni: number;
  /** UDP destination port (flannel 8472, IANA 4789, Weave fastdp 6784). */
  port: number;
  /** Local underlay address used as the outer source. */
  local: string;
  /** Underlay interface the tunnel is bound to. */
  underlayDev?: string;
  learning: boolean;
  /** Group-based policy extension (flannel GBP). */
  gbp?: boolean;
}

/** IP-in-IP (Calico tunl0). The kernel here lacks ipip: the Linux renderer refuses it clearly. */
export interface IpipLink extends LinkBase {
  kind: "ipip";
  local?: string;
}

/**
 * A userspace UDP tunnel (Weave "sleeve"): frames to a peer MAC are sent to that peer's underlay
 * address on `port`, optionally encrypted. Peers are given by `fdb` entries on this link.
 */
export interface SleeveLink extends LinkBase {
  kind: "sleeve";
  port: number;
  /** Whether payloads are encrypted between peers (NaCl-style, shared secret). */
  encrypted: boolean;
}

/** A dummy interface (holds addresses, e.g. a Calico-style node address for BGP). */
export interface DummyLink extends LinkBase {
  kind: "dummy";
}

/** An address on a link (or on the underlay interface). */
export interface AddressEntry {
  dev: string;
  /** Interface address with prefix length, e.g. `10.244.1.0/32` or `10.244.1.1/24`. */
  cidr: string;
}

export type RouteType = "unicast" | "blackhole" | "unreachable" | "local";

export interface RouteEntry {
  /** Destination prefix; `0.0.0.0/0` / `::/0` for default. */
  dst: string;
  type?: RouteType;
  /** Next hop address. */
  via?: string;
  /** Output device. Required for `onlink`; optional when `via` resolves on a connected subnet. */
  dev?: string;
  /** Treat `via` as directly reachable on `dev` even though no address covers it (flannel vxlan). */
  onlink?: boolean;
  /** Preferred source address for locally originated packets. */
  src?: string;
  metric?: number;
  /** Routing table (main when absent). */
  table?: number;
  /** Per-route MTU (Calico uses it for tunnel routes). */
  mtu?: number;
  /** Who asked for the route (e.g. `bgp`, `lease:10.244.3.0/24`), for explanations only. */
  origin?: string;
}

/** A neighbour (ARP / NDP) entry. */
export interface NeighbourEntry {
  dev: string;
  ip: string;
  mac: string;
  /** Permanent entries never age; `false` = reachable/stale, learned. */
  permanent: boolean;
}

/** A forwarding database entry: where frames to `mac` are sent on an overlay link. */
export interface FdbEntry {
  dev: string;
  /** Destination MAC; `00:00:00:00:00:00` = the flood (all-zero) entry for BUM traffic. */
  mac: string;
  /** Underlay address of the remote tunnel end point. */
  dst: string;
  /** VNI override, when not the link's. */
  vni?: number;
  permanent: boolean;
}

/** Well-known sysctls the renderer sets (only these keys are honoured). */
export interface Sysctls {
  /** net.ipv4.ip_forward / net.ipv6.conf.all.forwarding */
  ipv4Forwarding?: boolean;
  ipv6Forwarding?: boolean;
  /** Per-interface proxy ARP (Calico workload interfaces answer ARP for the gateway). */
  proxyArp?: string[];
  /** net.bridge.bridge-nf-call-iptables: bridged traffic goes through the filter rules. */
  bridgeNfCall?: boolean;
}

/**
 * Source NAT. `masquerade`: a packet whose source is inside one of `sources`, whose destination is
 * inside none of `exceptDestinations`, and that leaves through `outDev` (any device when absent) gets
 * the source address of the interface it leaves through. `snat` uses `toAddress` instead.
 */
export interface NatRule {
  id: string;
  kind: "masquerade" | "snat";
  sources: string[];
  exceptDestinations: string[];
  outDev?: string;
  toAddress?: string;
  /** flannel uses --random-fully; recorded for the renderer. */
  randomFully?: boolean;
}

export type Protocol = "tcp" | "udp" | "sctp" | "icmp";

/** A port range, inclusive; a single port has from === to. */
export interface PortRange {
  from: number;
  to: number;
}

/** One peer clause of a filter rule: addresses in any of `cidrs` but in none of `except`. */
export interface PeerMatch {
  cidrs: string[];
  except?: string[];
}

/**
 * Per-pod stateful filtering: the shape NetworkPolicy compiles into.
 *
 * For each local pod and direction there is an ordered rule list. `ingress` rules see packets that
 * are about to be delivered to `pod`; `egress` rules see packets that `pod` sends. The first rule
 * whose match covers the packet decides. When a pod has a `FilterPolicy` for a direction and no rule
 * matched, the policy's `defaultAction` decides (NetworkPolicy isolation: `drop`); a pod with no
 * policy for the direction is not filtered in it. Replies of connections that were allowed are
 * always allowed (connection tracking), in both renderers.
 */
export interface FilterRule {
  /** Stable id, named in drop explanations (e.g. `np/default/allow-frontend/ingress/0/peer/1`). */
  id: string;
  /** An empty list (or absent) = any address. */
  peers?: PeerMatch[];
  /** Absent = any protocol. */
  protocol?: Protocol;
  /** Destination ports; absent or empty = any port. Ignored for icmp. */
  ports?: PortRange[];
  action: "accept" | "drop";
  /** Human-readable source of the rule (e.g. the policy names it came from). */
  comment?: string;
}

export interface FilterPolicy {
  /** The pod this applies to, by its key (`containerId/ifName`). */
  pod: string;
  direction: "ingress" | "egress";
  rules: FilterRule[];
  defaultAction: "accept" | "drop";
}

/** A route inside the pod's own namespace. */
export interface PodRoute {
  dst: string;
  via?: string;
  /** Scope link routes (e.g. the gateway /32 of a Calico-style point-to-point pod). */
  scopeLink?: boolean;
  /**
   * Metric in the pod's namespace. Absent: `podRouteMetric`'s rule (the container's first
   * interface gets the kernel's default, each further interface of the same container a higher one).
   */
  metric?: number;
}

/** One pod interface: the container side, and the host side that the node's tables point at. */
/** An attachment's identity and Kubernetes metadata, as a backend keeps it and a `PodInterface` repeats it. */
export interface PodIdentity {
  containerId: string;
  ifName: string;
  /** Kubernetes identity when known (for policy and reports). */
  namespace?: string;
  podName?: string;
  labels?: Record<string, string>;
  /** Network namespace path handed over by the runtime. */
  netns?: string;
}

export interface PodInterface extends PodIdentity {
  /** `containerId/ifName`, the attachment's identity. */
  key: string;
  /** Host side of the veth. */
  hostIf: string;
  /** Bridge the host side is enslaved to (flannel, Weave); absent = routed (Calico, Azure transparent). */
  bridge?: string;
  /** MAC of the container-side interface. */
  mac: string;
  mtu: number;
  /** Container interface addresses with prefix length, e.g. `10.244.1.2/24`. */
  addresses: string[];
  /** Default gateway per family, as the pod sees it. */
  gateways?: string[];
  /** Routes inside the pod namespace (the default route included). */
  routes: PodRoute[];
}

/** The desired dataplane of one node. */
export interface NodeDataplane {
  node: string;
  links: Link[];
  addresses: AddressEntry[];
  routes: RouteEntry[];
  neighbours: NeighbourEntry[];
  fdb: FdbEntry[];
  sysctls: Sysctls;
  nat: NatRule[];
  filters: FilterPolicy[];
  pods: PodInterface[];
}

/** A dataplane with nothing in it (a node whose agent has not started). */
export function emptyDataplane(node: string): NodeDataplane {
  return { node, links: [], addresses: [], routes: [], neighbours: [], fdb: [], sysctls: {}, nat: [], filters: [], pods: [] };
}

/** Encapsulation overhead in bytes, per link kind (outer IPv4 header included). */
export const ENCAP_OVERHEAD = {
  /** 14 inner Ethernet + 8 VXLAN + 8 UDP + 20 IPv4. */
  vxlan: 50,
  /** 20 outer IPv4. */
  ipip: 20,
  /** Weave sleeve: UDP + its own framing; encrypted adds the NaCl overhead. */
  sleeve: 82,
} as const;

/**
 * `canonicalDataplane`'s sort key of a route (compared with `<`): a planner that keeps its lists in
 * canonical order between plans (an incremental plan) sorts by the same key.
 */
export function routeOrderKey(r: RouteEntry): string {
  return `${r.table ?? 254} ${r.dst} ${r.metric ?? 0} ${r.via ?? ""} ${r.dev ?? ""}`;
}

/** `canonicalDataplane`'s sort key of a neighbour entry (see `routeOrderKey`). */
export function neighbourOrderKey(n: NeighbourEntry): string {
  return `${n.dev} ${n.ip}`;
}

/** `canonicalDataplane`'s sort key of an FDB entry (see `routeOrderKey`). */
export function fdbOrderKey(f: FdbEntry): string {
  return `${f.dev} ${f.mac} ${f.dst}`;
}

/**
 * Canonical form: every list sorted by a stable key, so that two dataplanes that mean the same
 * compare equal with a deep-equality check or `JSON.stringify`. Used by the state-sequence tests
 * ("events in any order end in the same dataplane") and by the renderers' diff.
 */
export function canonicalDataplane(dp: NodeDataplane): NodeDataplane {
  const by =
    <T>(key: (x: T) => string) =>
    (a: T, b: T) => {
      const ka = key(a);
      const kb = key(b);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    };
  return {
    node: dp.node,
    links: [...dp.links].sort(by((l) => l.name)),
    addresses: [...dp.addresses].sort(by((a) => `${a.dev} ${a.cidr}`)),
    routes: [...dp.routes].sort(by(routeOrderKey)),
    neighbours: [...dp.neighbours].sort(by(neighbourOrderKey)),
    fdb: [...dp.fdb].sort(by(fdbOrderKey)),
    sysctls: {
      ...dp.sysctls,
      ...(dp.sysctls.proxyArp ? { proxyArp: [...dp.sysctls.proxyArp].sort() } : {}),
    },
    nat: [...dp.nat].sort(by((n) => n.id)),
    filters: [...dp.filters].sort(by((f) => `${f.pod} ${f.direction}`)),
    pods: [...dp.pods].sort(by((p) => p.key)),
  };
}

/** The attachment key used in `PodInterface.key` and `FilterPolicy.pod`. */
export function podKey(ref: { containerId: string; ifName: string }): string {
  return `${ref.containerId}/${ref.ifName}`;
}

/** The part of a `PodInterface` a plan renders (everything but the attachment's identity). */
export type RenderedPodInterface = Omit<PodInterface, keyof PodIdentity | "key">;

/**
 * A pod interface: the attachment's identity from its record (the optional metadata only when
 * set, labels copied) plus what the plan rendered. Pure.
 */
export function podInterfaceOf(pod: PodIdentity, rendered: RenderedPodInterface): PodInterface {
  const out: PodInterface = { key: podKey(pod), containerId: pod.containerId, ifName: pod.ifName, ...rendered };
  if (pod.namespace !== undefined) out.namespace = pod.namespace;
  if (pod.podName !== undefined) out.podName = pod.podName;
  if (pod.labels !== undefined) out.labels = { ...pod.labels };
  if (pod.netns !== undefined) out.netns = pod.netns;
  return out;
}

/**
 * The gateway routed pods see (Calico, Azure CNI transparent mode): a link-local address nobody
 * holds, which the host side of the veth answers by proxy ARP; the pod's only routes are the
 * gateway's /32 on-link and the default route via it.
 */
export const ROUTED_POD_GATEWAY = "169.254.1.1";

/**
 * A routed IPv4 pod's interface (no bridge): its address as a /32, the default route via
 * `ROUTED_POD_GATEWAY` (scope link). The node's plan adds the host route `<address>/32 dev <hostIf>`
 * and proxy ARP on `hostIf`. Pure.
 */
export function routedPodInterface(pod: PodIdentity, rendered: { hostIf: string; mac: string; mtu: number; address: string }): PodInterface {
  return podInterfaceOf(pod, {
    hostIf: rendered.hostIf,
    mac: rendered.mac,
    mtu: rendered.mtu,
    addresses: [`${rendered.address}/32`],
    gateways: [ROUTED_POD_GATEWAY],
    routes: [
      { dst: `${ROUTED_POD_GATEWAY}/32`, scopeLink: true },
      { dst: "0.0.0.0/0", via: ROUTED_POD_GATEWAY },
    ],
  });
}

/** Host-side veth name of an attachment: `veth` + 8 hex digits of a hash of its key (≤ 15 bytes, IFNAMSIZ). */
export function vethName(ref: { containerId: string; ifName: string }): string {
  return `veth${fnv1a32Hex(podKey(ref))}`;
}

/**
 * The container-side MAC of a pod address, the CNI bridge convention: `0a:58:` + the IPv4 address's
 * four octets in hex (locally administered, unicast); for IPv6, `0a:58:` + a 32-bit hash of the address.
 */
export function podMac(address: string): string {
  const p = Prefix.host(address);
  const octets = p.family === 4 ? address.split(".").map(Number) : ((h) => [h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff])(fnv1a32(p.network));
  return `0a:58:${octets.map((x) => x.toString(16).padStart(2, "0")).join(":")}`;
}

/**
 * Metric distance between the interfaces of one container. The interfaces of a container (one
 * containerId: eth0, and net1, net2, ... added by a meta plugin such as Multus) share one network
 * namespace and so one routing table, where the kernel identifies a route by (table, dst, metric):
 * installed at the same metric, net1's default route would REPLACE eth0's. So each further
 * interface installs its routes (its connected ones too) `EXTRA_INTERFACE_METRIC` higher than the
 * one before: the cluster network's eth0 keeps the default route, and net1's takes over only when
 * eth0 is gone.
 */
export const EXTRA_INTERFACE_METRIC = 100;

/**
 * Rank of each pod interface within its container (by `key`): `eth0` (the runtime's default
 * CNI_IFNAME, the cluster network under Multus) first, then the others by interface name. Pure.
 */
export function podInterfaceRanks(pods: readonly PodInterface[]): Map<string, number> {
  const byContainer = new Map<string, PodInterface[]>();
  for (const p of pods) {
    const list = byContainer.get(p.containerId);
    if (list) list.push(p);
    else byContainer.set(p.containerId, [p]);
  }
  const out = new Map<string, number>();
  const order = (p: PodInterface): string => (p.ifName === "eth0" ? "" : p.ifName);
  for (const list of byContainer.values()) {
    list.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
    list.forEach((p, i) => out.set(p.key, i));
  }
  return out;
}

/**
 * The metric a route of a pod interface of `rank` gets in the pod's namespace, as the kernel
 * stores it: the route's own `metric` when set, else the kernel's default for the kind
 * (IPv4 0; IPv6 1024, or 256 for a connected route) plus `EXTRA_INTERFACE_METRIC` per rank. Pure.
 */
export function podRouteMetric(input: { family: Family; rank: number; connected: boolean; metric?: number }): number {
  if (input.metric !== undefined) return input.metric;
  const base = input.family === 4 ? 0 : input.connected ? 256 : 1024;
  return base + EXTRA_INTERFACE_METRIC * input.rank;
}

/**
 * Two routes of one container's namespace that the kernel could not hold both: the same
 * destination at the same metric on two interfaces (only explicit `PodRoute.metric`s can collide;
 * the rank rule never does). `a` and `b` are `pods[i].routes[k]` paths. Undefined when none.
 * Pure; `dst`s must be valid prefixes (throws ConfigError otherwise).
 */
export function podRouteClash(pods: readonly PodInterface[]): { a: string; b: string; dst: string; metric: number } | undefined {
  const ranks = podInterfaceRanks(pods);
  const seen = new Map<string, { path: string; ifName: string }>();
  for (const [i, p] of pods.entries()) {
    for (const [k, r] of p.routes.entries()) {
      const dst = Prefix.parse(r.dst);
      const family = dst.family;
      const prefix = dst.toString();
      const metric = podRouteMetric({ family, rank: ranks.get(p.key) ?? 0, connected: false, ...(r.metric !== undefined ? { metric: r.metric } : {}) });
      const id = `${p.containerId} ${prefix} ${metric}`;
      const path = `pods[${i}].routes[${k}]`;
      const other = seen.get(id);
      if (other && other.ifName !== p.ifName) return { a: other.path, b: path, dst: prefix, metric };
      seen.set(id, { path, ifName: p.ifName });
    }
  }
  return undefined;
}
