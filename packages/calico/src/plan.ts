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
import {
  ENCAP_OVERHEAD,
  KeyedSortedList,
  Prefix,
  ROUTED_POD_GATEWAY,
  canonicalDataplane,
  emptyDataplane,
  fdbOrderKey,
  fnv1a32Hex,
  neighbourOrderKey,
  podKey,
  routeOrderKey,
  routedPodInterface,
} from "@cnikit/core";
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

/** What a learned route's entries depend on besides the route itself. */
export interface LearnedContext {
  config: CalicoConfig;
  underlay: UnderlayInterface;
  /** The underlay's subnet. */
  local: Prefix;
  /** This node's affine blocks. */
  blocks: ReadonlySet<string>;
  /** The /32s of this node's pods. */
  localDsts: ReadonlySet<string>;
  /** The node record holding an underlay address (VXLAN end points). */
  peerAt: (address: string) => NodeRecord | undefined;
}

/** A VXLAN end point a learned route goes through: its neighbour and FDB entries. */
export interface VxlanPeerEntries {
  name: string;
  neighbour: NeighbourEntry;
  fdb: FdbEntry;
}

/**
 * What one learned route contributes to the plan: undefined when it is not this node's to route
 * (its next hop is this node, or it is one of this node's pods or blocks); else the route (none when
 * its VXLAN end point is unknown, or its next hop is off the subnet without a gateway) and the VXLAN
 * end point it goes through. The prefix is claimed either way: another route for it is not used.
 */
export function learnedEntry(lc: LearnedContext, r: LearnedRoute): { route?: RouteEntry; peer?: VxlanPeerEntries } | undefined {
  const { underlay, local } = lc;
  if (r.nextHop === underlay.address || lc.localDsts.has(r.prefix) || lc.blocks.has(r.prefix)) return undefined;
  const pool = poolOf(lc.config, r.prefix);
  const how = encapFor(pool, local, r.nextHop);
  if (how === "ipip") return { route: { dst: r.prefix, via: r.nextHop, dev: IPIP_DEVICE, onlink: true, origin: "bgp" } };
  if (how === "vxlan") {
    const peer = lc.peerAt(r.nextHop);
    if (!peer?.vxlanTunnelAddr || !peer.vxlanMac) return {};
    return {
      route: { dst: r.prefix, via: peer.vxlanTunnelAddr, dev: VXLAN_DEVICE, onlink: true, origin: "bgp" },
      peer: {
        name: peer.name,
        neighbour: { dev: VXLAN_DEVICE, ip: peer.vxlanTunnelAddr, mac: peer.vxlanMac, permanent: true },
        fdb: { dev: VXLAN_DEVICE, mac: peer.vxlanMac, dst: peer.address, permanent: true },
      },
    };
  }
  if (local.contains(r.nextHop)) return { route: { dst: r.prefix, via: r.nextHop, dev: underlay.iface, origin: "bgp" } };
  // BIRD resolves a next hop off the local subnet recursively, through the default gateway, which
  // knows no pod routes unless it is itself peered: kept, to show the same failure.
  if (underlay.gateway) return { route: { dst: r.prefix, via: underlay.gateway, dev: underlay.iface, origin: "bgp (recursive)" } };
  return {};
}

/**
 * Computes the desired dataplane of one node. Pure and deterministic (canonical output for any
 * order of the inputs). Learned routes for prefixes inside this node's own blocks that name this
 * node's address, and routes whose VXLAN peer is unknown, are left out. A node without an IPv4
 * underlay plans nothing (the agent refuses to start on one).
 */
export function planDataplane(input: PlanInput): NodeDataplane {
  return planWith(input);
}

/**
 * `planDataplane` with the learned routes kept in `table` (`input.learned` is ignored, and
 * `input.peers` is consulted only through `peerAt`, the VXLAN end points): the same plan, at a cost
 * of O(routes changed since the last plan) for the learned part, plus O(local routes). The plan's
 * learned entries are shared with the previous plan's, so `sameJson` compares them at once.
 */
export function planIncremental(input: Omit<PlanInput, "learned">, table: LearnedTable, peerAt: (address: string) => NodeRecord | undefined): NodeDataplane {
  return planWith({ ...input, learned: [] }, { table, peerAt });
}

function planWith(input: PlanInput, incremental?: { table: LearnedTable; peerAt: (address: string) => NodeRecord | undefined }): NodeDataplane {
  const { config } = input;
  const node = input.node.name;
  const underlay = calicoUnderlay(input.node);
  if (!underlay) return emptyDataplane(node);
  const nodesByAddress = new Map(incremental ? [] : input.peers.map((p) => [p.address, p]));
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
  const lc: LearnedContext = { config, underlay, local, blocks: new Set(input.blocks), localDsts, peerAt: incremental?.peerAt ?? ((a) => nodesByAddress.get(a)) };
  for (const r of [...input.learned].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : a.nextHop < b.nextHop ? -1 : 1))) {
    if (seen.has(r.prefix)) continue;
    const e = learnedEntry(lc, r);
    if (!e) continue;
    seen.add(r.prefix);
    if (!e.route) continue;
    routes.push(e.route);
    if (e.peer && !vxlanPeers.has(e.peer.name)) {
      vxlanPeers.add(e.peer.name);
      neighbours.push(e.peer.neighbour);
      fdb.push(e.peer.fdb);
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
  if (!incremental) return canonicalDataplane(dataplane);
  const learned = incremental.table.lists(lc);
  const own = canonicalDataplane(dataplane);
  // canonicalDataplane's order (stable: the local routes, pushed first, win ties).
  return { ...own, routes: mergeSorted(own.routes, learned.routes, learned.routeKeys), neighbours: learned.neighbours, fdb: learned.fdb };
}

/** Local routes and learned routes (with their keys), each sorted by `routeOrderKey`, merged into one list; local first on equal keys. */
function mergeSorted(a: readonly RouteEntry[], b: readonly RouteEntry[], bKeys: readonly string[]): RouteEntry[] {
  if (a.length === 0) return [...b];
  const out: RouteEntry[] = [];
  let j = 0;
  for (const x of a) {
    const k = routeOrderKey(x);
    while (j < b.length && bKeys[j]! < k) out.push(b[j++]!);
    out.push(x);
  }
  while (j < b.length) out.push(b[j++]!);
  return out;
}

/** A VXLAN end point's identity: its node and its entries (a changed record is another end point). */
const peerKey = (p: VxlanPeerEntries): string => `${p.name} ${p.neighbour.ip} ${p.neighbour.mac} ${p.fdb.dst}`;

/** Above this many changed routes (and an eighth of the table), the lists are rebuilt in one sort. */
const REBUILD_ABOVE = 64;

/**
 * The routes a node learned over BGP, with their plan entries kept between plans: a changed route
 * costs O(log N) (plus a move within the sorted list), not a replan of every route. The entries
 * depend on the node's context (underlay, blocks, local pods): when that changes, every entry is
 * recomputed. They depend on other nodes' records through `peerAt` (VXLAN end points): call
 * `touch(address)` when the record at an underlay address changed or stopped counting.
 */
export class LearnedTable {
  private readonly routes = new Map<string, LearnedRoute>();
  /** Prefixes by next hop (what `touch` recomputes). */
  private readonly byNextHop = new Map<string, string | Set<string>>();
  private readonly pending = new Set<string>();
  private readonly entries = new Map<string, { route?: RouteEntry; peer?: VxlanPeerEntries }>();
  private readonly sorted = new KeyedSortedList<RouteEntry>(routeOrderKey);
  /** VXLAN end points by node and entries (`peerKey`): how many routes use each, and its entries. */
  private readonly peers = new Map<string, { count: number; entries: VxlanPeerEntries }>();
  private readonly neighbours = new KeyedSortedList<NeighbourEntry>(neighbourOrderKey);
  private readonly fdb = new KeyedSortedList<FdbEntry>(fdbOrderKey);
  private context: string | undefined;

  /** A route was learned (or its next hop changed). */
  set(route: LearnedRoute): void {
    const old = this.routes.get(route.prefix);
    if (old && old.nextHop === route.nextHop) return;
    if (old) this.unlink(old);
    this.routes.set(route.prefix, route);
    const held = this.byNextHop.get(route.nextHop);
    if (held === undefined) this.byNextHop.set(route.nextHop, route.prefix);
    else if (typeof held === "string") this.byNextHop.set(route.nextHop, new Set([held, route.prefix]));
    else held.add(route.prefix);
    this.pending.add(route.prefix);
  }

  /** Forgets `route` in `byNextHop` (one prefix per next hop is held as a string: most next hops have one). */
  private unlink(route: LearnedRoute): void {
    const held = this.byNextHop.get(route.nextHop);
    if (held === route.prefix) this.byNextHop.delete(route.nextHop);
    else if (typeof held === "object") {
      held.delete(route.prefix);
      if (held.size === 1) this.byNextHop.set(route.nextHop, held.values().next().value!);
    }
  }

  /** A route was withdrawn. */
  delete(prefix: string): void {
    const old = this.routes.get(prefix);
    if (!old) return;
    this.routes.delete(prefix);
    this.unlink(old);
    this.pending.add(prefix);
  }

  /** The node record at `address` changed (or appeared, left, departed): its routes are recomputed. */
  touch(address: string): void {
    const held = this.byNextHop.get(address);
    if (typeof held === "string") this.pending.add(held);
    else for (const prefix of held ?? []) this.pending.add(prefix);
  }

  /** The learned routes, in no particular order. */
  values(): LearnedRoute[] {
    return [...this.routes.values()];
  }

  get size(): number {
    return this.routes.size;
  }

  /** The learned routes' plan entries under `lc`, each list sorted as canonicalDataplane sorts it (`routes` and `routeKeys` are live views: read them at once). */
  lists(lc: LearnedContext): { routes: readonly RouteEntry[]; routeKeys: readonly string[]; neighbours: NeighbourEntry[]; fdb: FdbEntry[] } {
    const u = lc.underlay;
    const context = `${u.address}/${u.prefixLength} ${u.iface} ${u.gateway ?? ""}|${[...lc.blocks].sort().join(",")}|${[...lc.localDsts].sort().join(",")}`;
    if (context !== this.context) {
      this.context = context;
      this.entries.clear();
      this.peers.clear();
      for (const prefix of this.routes.keys()) this.pending.add(prefix);
      this.apply(lc, true);
    } else if (this.pending.size > 0) this.apply(lc, this.pending.size > Math.max(REBUILD_ABOVE, this.routes.size / 8));
    const routes = this.sorted.view();
    return { routes: routes.values, routeKeys: routes.keys, neighbours: this.neighbours.values(), fdb: this.fdb.values() };
  }

  /** Recomputes the pending routes' entries; `rebuild`: and the lists in one sort each. */
  private apply(lc: LearnedContext, rebuild: boolean): void {
    for (const prefix of this.pending) {
      const old = this.entries.get(prefix);
      if (old) {
        this.entries.delete(prefix);
        if (old.route && !rebuild) this.sorted.remove(old.route);
        if (old.peer) this.release(old.peer, rebuild);
      }
      const r = this.routes.get(prefix);
      const e = r && learnedEntry(lc, r);
      if (!e?.route) continue;
      this.entries.set(prefix, e);
      if (!rebuild) this.sorted.add(e.route);
      if (e.peer) this.hold(e.peer, rebuild);
    }
    this.pending.clear();
    if (!rebuild) return;
    const routes: RouteEntry[] = [];
    for (const e of this.entries.values()) if (e.route) routes.push(e.route);
    this.sorted.reset(routes);
    const peers = [...this.peers.values()].map((p) => p.entries);
    this.neighbours.reset(peers.map((p) => p.neighbour));
    this.fdb.reset(peers.map((p) => p.fdb));
  }

  private hold(peer: VxlanPeerEntries, rebuild: boolean): void {
    const key = peerKey(peer);
    const held = this.peers.get(key);
    if (held) {
      held.count++;
      return;
    }
    this.peers.set(key, { count: 1, entries: peer });
    if (rebuild) return;
    this.neighbours.add(peer.neighbour);
    this.fdb.add(peer.fdb);
  }

  private release(peer: VxlanPeerEntries, rebuild: boolean): void {
    const key = peerKey(peer);
    const held = this.peers.get(key);
    if (!held) return;
    if (--held.count > 0) return;
    this.peers.delete(key);
    if (rebuild) return;
    this.neighbours.remove(held.entries.neighbour);
    this.fdb.remove(held.entries.fdb);
  }
}
