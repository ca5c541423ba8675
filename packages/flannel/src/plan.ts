/**
 * Pure planning: the cluster as this node sees it (its lease, every other lease, its pods) in, the
 * node's NodeDataplane out. No I/O, no clock; the same input in any order gives the same
 * (canonical) output, which is what the state-sequence tests rely on.
 *
 * vxlan (flannel's pkg/backend/vxlan):
 *  - device `flannel.<VNI>` (learning off, no L2/L3 miss), MTU = underlay MTU − 50, fixed VTEP MAC,
 *    carrying the node subnet's network address as /32;
 *  - per remote lease, in flannel's order: a permanent neighbour (remote subnet network address →
 *    remote VTEP MAC), a permanent FDB entry (remote VTEP MAC → remote PublicIP) and an onlink route
 *    `remote subnet via remote network address dev flannel.<VNI>`;
 *  - DirectRouting: a peer on this node's own underlay subnet gets `remote subnet via PublicIP dev
 *    <underlay>` instead (decided on every plan, so it follows underlay changes);
 *  - IPv6: over `flannel-v6.<VNI>` (outer IPv6, overhead 70) when the node has an IPv6 underlay and
 *    the peer published BackendV6Data; otherwise inner IPv6 rides `flannel.<VNI>` over IPv4.
 * host-gw: `remote subnet via PublicIP dev <underlay>` per peer on the same L2 subnet; a peer on
 * another subnet cannot be reached that way: it gets no route and is reported in `skipped`.
 * Pods: bridge `cni0` with the gateway (.1) of the node subnet, one veth per pod, default route and
 * a route to the whole Network via the gateway (flannel's CNI delegate config), MTU from the backend.
 * ipMasq: masquerade from Network to anything outside Network and outside multicast.
 */
import { ENCAP_OVERHEAD, Prefix, emptyDataplane, fdbOrderKey, fnv1a32, neighbourOrderKey, parseAddress, podInterfaceOf, podMac, routeOrderKey, vethName } from "@cnikit/core";
import type {
  AddressEntry,
  FdbEntry,
  Family,
  Link,
  NatRule,
  NeighbourEntry,
  NodeDataplane,
  NodeInfo,
  PlanInput as KitPlanInput,
  PodInterface,
  PodPort,
  PodRoute,
  RouteEntry,
  UnderlayInterface,
} from "@cnikit/core";
import type { FlannelConfig } from "./config.ts";
import type { LeaseSubnets, SubnetLease } from "./leases.ts";

/** The bridge pods hang off (flannel's CNI plugin delegates to `bridge` with this name). */
export const BRIDGE = "cni0";
/** vxlan overhead with an IPv6 outer header (40 instead of 20). */
export const VXLAN6_OVERHEAD = 70;
/** Underlay MTU assumed when neither the config nor the node says. */
export const DEFAULT_UNDERLAY_MTU = 1500;

/** One pod reservation on this node (kept in node-local state). */
export interface PodRecord {
  containerId: string;
  ifName: string;
  /** Plain addresses, one per enabled family, inside the node subnets. */
  addresses: string[];
  netns?: string;
  namespace?: string;
  podName?: string;
  labels?: Record<string, string>;
  /** The ADD's container ports (NetworkPolicy named ports, for composed components). */
  ports?: PodPort[];
}

/** The VTEP MACs of this node's vxlan devices. */
export interface VtepMacs {
  v4?: string;
  v6?: string;
}

/**
 * The cluster as one node sees it: the kit's plan input (`peers` = every lease in the store, this
 * node's own included: it is skipped; `policy`: a composed component's NetworkPolicy, e.g.
 * Canal's) plus what is flannel's own: the node's lease and its VTEP MACs.
 */
export interface PlanInput extends KitPlanInput<FlannelConfig, SubnetLease, PodRecord> {
  /** This node's lease; absent before it is acquired (the plan is then empty). */
  lease?: LeaseSubnets & { key?: string };
  /** MACs of this node's vxlan devices (see `localDevices`). */
  vtepMacs: VtepMacs;
}

/** A lease the plan made no entries for, and why. */
export interface SkippedPeer {
  key: string;
  node?: string;
  reason: string;
}

/** A plan and the leases it made no entries for. */
export interface PlanResult {
  dataplane: NodeDataplane;
  skipped: SkippedPeer[];
}

/** The node's underlay interface of a family, if any. */
export function underlayOf(node: NodeInfo, family: Family): UnderlayInterface | undefined {
  return node.underlay.find((u) => Prefix.host(u.address).family === family);
}

/** Which vxlan devices a node runs for a config. */
export interface LocalDevices {
  /** `flannel.<VNI>` over the IPv4 underlay (carries IPv4, and IPv6 when there is no v6 device). */
  v4?: { name: string; underlay: UnderlayInterface };
  /** `flannel-v6.<VNI>` over the IPv6 underlay. */
  v6?: { name: string; underlay: UnderlayInterface };
}

/**
 * The vxlan devices this node needs: `flannel.<VNI>` when IPv4 is enabled, or IPv6 is enabled and
 * the node has no IPv6 underlay; `flannel-v6.<VNI>` when IPv6 is enabled and the node has an IPv6
 * underlay. A device whose underlay family is missing is left out (the agent refuses to start).
 */
export function localDevices(config: FlannelConfig, node: NodeInfo): LocalDevices {
  if (config.backend.type !== "vxlan") return {};
  const vni = config.backend.vni;
  const u4 = underlayOf(node, 4);
  const u6 = underlayOf(node, 6);
  const out: LocalDevices = {};
  if (config.enableIPv6 && u6) out.v6 = { name: `flannel-v6.${vni}`, underlay: u6 };
  if ((config.enableIPv4 || (config.enableIPv6 && !u6)) && u4) out.v4 = { name: `flannel.${vni}`, underlay: u4 };
  return out;
}

/** The underlay MTU the config or the node gives (config `Backend.MTU` wins). */
export function underlayMtu(config: FlannelConfig, underlay: UnderlayInterface | undefined): number {
  if (config.backend.type === "vxlan" && config.backend.mtu !== undefined) return config.backend.mtu;
  return underlay?.mtu ?? DEFAULT_UNDERLAY_MTU;
}

/** MTU of pod interfaces and the bridge: underlay − 50 for vxlan (− 70 over an IPv6 underlay), the underlay's for host-gw. */
export function podMtu(config: FlannelConfig, node: NodeInfo): number {
  if (config.backend.type === "host-gw") {
    const mtus = node.underlay.map((u) => u.mtu ?? DEFAULT_UNDERLAY_MTU);
    return mtus.length === 0 ? DEFAULT_UNDERLAY_MTU : Math.min(...mtus);
  }
  const devs = localDevices(config, node);
  const mtus: number[] = [];
  if (devs.v4) mtus.push(underlayMtu(config, devs.v4.underlay) - ENCAP_OVERHEAD.vxlan);
  if (devs.v6) mtus.push(underlayMtu(config, devs.v6.underlay) - VXLAN6_OVERHEAD);
  return mtus.length === 0 ? DEFAULT_UNDERLAY_MTU - ENCAP_OVERHEAD.vxlan : Math.min(...mtus);
}

/**
 * A VTEP MAC derived from the node name (locally administered, unicast): the same name always
 * gives the same MAC, so even a node whose local state was wiped comes back with it.
 */
export function deriveVtepMac(nodeName: string, family: Family): string {
  const a = fnv1a32(`flannel-vtep/${family}/${nodeName}`);
  const b = fnv1a32(`${nodeName}/${family}/flannel-vtep`, a);
  const bytes = [((a >>> 24) & 0xfe) | 0x02, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff, (b >>> 8) & 0xff, b & 0xff];
  return bytes.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** MAC of the bridge or a pod: `0a:58:` + the IPv4 octets (the CNI convention), else a hash (core's `podMac`). */
export const macForAddress = podMac;

/** Host-side veth name of an attachment: `veth` + 8 hex digits of a hash of its key (core's `vethName`). */
export const hostIfName = vethName;

/** The gateway (first host) of a node subnet. */
export function gatewayOf(subnet: string): string {
  return Prefix.parse(subnet).nth(1);
}

function defaultRoute(family: Family): string {
  return family === 4 ? "0.0.0.0/0" : "::/0";
}

/** The pod interface a reservation renders to. */
export function podInterface(input: { config: FlannelConfig; lease: LeaseSubnets; mtu: number; pod: PodRecord }): PodInterface {
  const { config, lease, pod } = input;
  const addresses: string[] = [];
  const gateways: string[] = [];
  const routes: PodRoute[] = [];
  for (const address of pod.addresses) {
    const family = Prefix.host(address).family;
    const subnet = family === 4 ? lease.subnet : lease.ipv6Subnet;
    const network = family === 4 ? config.ipv4?.network : config.ipv6?.network;
    if (subnet === undefined || network === undefined) continue;
    const p = Prefix.parse(subnet);
    const gw = p.nth(1);
    addresses.push(`${address}/${p.length}`);
    gateways.push(gw);
    routes.push({ dst: network, via: gw }, { dst: defaultRoute(family), via: gw });
  }
  const first = pod.addresses[0];
  return podInterfaceOf(pod, {
    hostIf: hostIfName(pod),
    bridge: BRIDGE,
    mac: first === undefined ? macForAddress("0.0.0.0") : macForAddress(first),
    mtu: input.mtu,
    addresses,
    gateways,
    routes,
  });
}

/** The masquerade rules of flannel's `--ip-masq` (FLANNEL-POSTRTG), one per enabled family. */
export function masqueradeRules(config: FlannelConfig): NatRule[] {
  if (!config.ipMasq) return [];
  const rules: NatRule[] = [];
  if (config.ipv4) {
    rules.push({
      id: "flannel/ip-masq-v4",
      kind: "masquerade",
      sources: [config.ipv4.network],
      exceptDestinations: [config.ipv4.network, "224.0.0.0/4"],
      randomFully: true,
    });
  }
  if (config.ipv6) {
    rules.push({
      id: "flannel/ip-masq-v6",
      kind: "masquerade",
      sources: [config.ipv6.network],
      exceptDestinations: [config.ipv6.network, "ff00::/8"],
      randomFully: true,
    });
  }
  return rules;
}

/** A parsed prefix with its interval, memoised by text (prefixes are immutable). */
interface Pfx {
  text: string;
  family: Family;
  base: bigint;
  last: bigint;
  length: number;
  network: string;
}

/** Entries a plan cache's parse memos hold before they are cleared. */
const MEMO_LIMIT = 200_000;

/**
 * A memo for successive plans: per-peer plans keyed by the local context they were made under
 * (`LocalContext.id`: only what a peer's entries depend on) and the lease object (a view keeps a
 * lease object until the lease changes, so a re-plan costs only the leases that changed), and
 * parsed prefixes and addresses by text. The output never depends on it. One agent's, or the
 * process's (`sharedPlanCache`): agents of one simulated cluster that read the same lease objects
 * (`readLease`) under the same context then plan each lease once between them.
 */
export interface PlanCache {
  readonly peers: Map<string, WeakMap<SubnetLease, CachedPeer>>;
  readonly prefixes: Map<string, Pfx>;
  readonly addresses: Map<string, { family: Family; value: bigint }>;
}

/** A fresh, empty plan cache. */
export function createPlanCache(): PlanCache {
  return { peers: new Map(), prefixes: new Map(), addresses: new Map() };
}

/** A peer's entries under one context, and what a PeerTable makes of it (computed when first asked). */
interface CachedPeer {
  plan: PeerPlan;
  contribution?: Contribution;
}

/** The process's plan cache (see `PlanCache`); what the agent's PeerTable uses. */
export const sharedPlanCache: PlanCache = createPlanCache();

/**
 * The entries of one peer under `lc`, through the cache when there is one. A cached plan may be
 * shared by many agents' dataplanes: it is frozen, entries included.
 */
function peerPlanOf(cache: PlanCache | undefined, lc: LocalContext, peer: SubnetLease): PeerPlan {
  return cache === undefined ? planPeerOf(lc)(lc, peer) : cachedPeer(cache, lc, peer).plan;
}

function planPeerOf(lc: LocalContext): (lc: LocalContext, peer: SubnetLease) => PeerPlan {
  return lc.config.backend.type === "vxlan" ? planVxlanPeer : planHostGwPeer;
}

function cachedPeer(cache: PlanCache, lc: LocalContext, peer: SubnetLease): CachedPeer {
  let byLease = cache.peers.get(lc.id);
  if (byLease === undefined) {
    if (cache.peers.size >= MEMO_LIMIT) cache.peers.clear();
    byLease = new WeakMap();
    cache.peers.set(lc.id, byLease);
  }
  let hit = byLease.get(peer);
  if (hit === undefined) {
    hit = { plan: freezePeerPlan(planPeerOf(lc)(lc, peer)) };
    byLease.set(peer, hit);
  }
  return hit;
}

function freezePeerPlan(plan: PeerPlan): PeerPlan {
  for (const list of [plan.routes, plan.neighbours, plan.fdb] as Keyed<object>[][]) {
    for (const e of list) Object.freeze(Object.freeze(e).v);
    Object.freeze(list);
  }
  return Object.freeze(plan);
}

/** Parses prefixes and addresses, through the cache's memos when there is one. */
interface Parser {
  pfx(text: string): Pfx;
  contains(net: Pfx, address: string): boolean;
}

function memoised<K, V>(memo: Map<K, V> | undefined, key: K, make: () => V): V {
  let v = memo?.get(key);
  if (v === undefined) {
    v = make();
    if (memo && memo.size >= MEMO_LIMIT) memo.clear();
    memo?.set(key, v);
  }
  return v;
}

function parser(cache: PlanCache | undefined): Parser {
  const pfx = (text: string): Pfx =>
    memoised(cache?.prefixes, text, () => {
      const p = Prefix.parse(text, { allowHostBits: true });
      return { text: p.toString(), family: p.family, base: p.base, last: p.last, length: p.length, network: p.network };
    });
  return {
    pfx,
    contains(net, address) {
      const a = memoised(cache?.addresses, address, () => parseAddress(address));
      return a.family === net.family && a.value >= net.base && a.value <= net.last;
    },
  };
}

function overlap(a: Pfx, b: Pfx): boolean {
  return a.family === b.family && a.base <= b.last && b.base <= a.last;
}

/** An entry with its canonical sort key (the key `canonicalDataplane` sorts by). */
interface Keyed<T> {
  k: string;
  v: T;
}

/** What one remote lease contributes, or why it contributes nothing. */
interface PeerPlan {
  routes: Keyed<RouteEntry>[];
  neighbours: Keyed<NeighbourEntry>[];
  fdb: Keyed<FdbEntry>[];
  problem?: string;
}

/** Everything about this node a peer's entries depend on. */
interface LocalContext {
  config: FlannelConfig;
  parse: Parser;
  devs: LocalDevices;
  u4?: UnderlayInterface;
  u6?: UnderlayInterface;
  net4?: Pfx;
  net6?: Pfx;
  /** Identifies the context in the cache (a cache entry made under another context is stale). */
  id: string;
}

function localContext(config: FlannelConfig, node: NodeInfo, parse: Parser): LocalContext {
  const devs = localDevices(config, node);
  const u4 = underlayOf(node, 4);
  const u6 = underlayOf(node, 6);
  const be = config.backend;
  const out: LocalContext = { config, parse, devs, id: "" };
  if (u4) {
    out.u4 = u4;
    out.net4 = parse.pfx(`${u4.address}/${u4.prefixLength}`);
  }
  if (u6) {
    out.u6 = u6;
    out.net6 = parse.pfx(`${u6.address}/${u6.prefixLength}`);
  }
  // The underlay counts only where a peer's entries depend on it (host-gw, DirectRouting): then by
  // interface and subnet, not address, so nodes on one L2 subnet share a context.
  const underlay = be.type === "host-gw" || be.directRouting;
  const net = (ul: UnderlayInterface | undefined, p: Pfx | undefined): string => (underlay && ul && p ? `${ul.iface} ${p.family}:${p.base}/${p.length}` : "");
  out.id = [
    be.type,
    be.type === "vxlan" ? `${be.vni}/${be.directRouting}` : "",
    config.enableIPv4,
    config.enableIPv6,
    config.ipv4?.subnetLen ?? "",
    config.ipv6?.subnetLen ?? "",
    devs.v4?.name ?? "",
    devs.v6?.name ?? "",
    net(u4, out.net4),
    net(u6, out.net6),
  ].join("|");
  return out;
}

function originOf(peer: SubnetLease): string {
  return `lease:${peer.key.slice(peer.key.lastIndexOf("/") + 1)}${peer.attrs.NodeName ? `@${peer.attrs.NodeName}` : ""}`;
}

/** The entries of one remote lease under vxlan (flannel's order: neighbour, FDB, route). */
function planVxlanPeer(lc: LocalContext, peer: SubnetLease): PeerPlan {
  const out: PeerPlan = { routes: [], neighbours: [], fdb: [] };
  const be = lc.config.backend;
  if (be.type !== "vxlan") return out;
  if (peer.attrs.BackendType !== "vxlan") {
    out.problem = `backend type ${JSON.stringify(peer.attrs.BackendType)} is not vxlan (flannel ignores such leases too)`;
    return out;
  }
  const origin = originOf(peer);
  for (const family of [4, 6] as const) {
    const subnet = family === 4 ? peer.subnet : peer.ipv6Subnet;
    if (subnet === undefined || (family === 4 ? !lc.config.enableIPv4 : !lc.config.enableIPv6)) continue;
    const sp = lc.parse.pfx(subnet);
    // DirectRouting: the peer's public address of this family is on our own underlay subnet.
    const ul = family === 4 ? lc.u4 : lc.u6;
    const net = family === 4 ? lc.net4 : lc.net6;
    const pub = family === 4 ? peer.attrs.PublicIP : peer.attrs.PublicIPv6;
    if (be.directRouting && ul && net && pub !== undefined && lc.parse.contains(net, pub)) {
      const r: RouteEntry = { dst: sp.text, via: pub, dev: ul.iface, origin: `${origin} direct` };
      out.routes.push({ k: routeOrderKey(r), v: r });
      continue;
    }
    // Encapsulate: over flannel-v6 when both ends have it, else over flannel.<VNI> (IPv4 outer).
    let dev: string;
    let mac: string;
    let dst: string;
    if (family === 6 && lc.devs.v6 && peer.attrs.BackendV6Data && peer.attrs.PublicIPv6 !== undefined) {
      if (peer.attrs.BackendV6Data.VNI !== be.vni) {
        out.problem = `its VNI ${peer.attrs.BackendV6Data.VNI} differs from ours (${be.vni})`;
        return out;
      }
      dev = lc.devs.v6.name;
      mac = peer.attrs.BackendV6Data.VtepMAC;
      dst = peer.attrs.PublicIPv6;
    } else if (lc.devs.v4 && peer.attrs.BackendData && peer.attrs.PublicIP !== undefined) {
      if (peer.attrs.BackendData.VNI !== be.vni) {
        out.problem = `its VNI ${peer.attrs.BackendData.VNI} differs from ours (${be.vni})`;
        return out;
      }
      dev = lc.devs.v4.name;
      mac = peer.attrs.BackendData.VtepMAC;
      dst = peer.attrs.PublicIP;
    } else {
      out.problem = `it published no VTEP reachable from this node for IPv${family} (PublicIP/BackendData missing)`;
      return out;
    }
    const n: NeighbourEntry = { dev, ip: sp.network, mac, permanent: true };
    out.neighbours.push({ k: neighbourOrderKey(n), v: n });
    const fdb: FdbEntry = { dev, mac, dst, permanent: true };
    const fdbKey = fdbOrderKey(fdb);
    if (!out.fdb.some((f) => f.k === fdbKey)) out.fdb.push({ k: fdbKey, v: fdb });
    const r: RouteEntry = { dst: sp.text, via: sp.network, dev, onlink: true, origin };
    out.routes.push({ k: routeOrderKey(r), v: r });
  }
  return out;
}

/** The route of one remote lease under host-gw (refused when the peer is not on our L2 subnet). */
function planHostGwPeer(lc: LocalContext, peer: SubnetLease): PeerPlan {
  const out: PeerPlan = { routes: [], neighbours: [], fdb: [] };
  if (peer.attrs.BackendType !== "host-gw") {
    out.problem = `backend type ${JSON.stringify(peer.attrs.BackendType)} is not host-gw (flannel ignores such leases too)`;
    return out;
  }
  const origin = originOf(peer);
  for (const family of [4, 6] as const) {
    const subnet = family === 4 ? peer.subnet : peer.ipv6Subnet;
    if (subnet === undefined || (family === 4 ? !lc.config.enableIPv4 : !lc.config.enableIPv6)) continue;
    const ul = family === 4 ? lc.u4 : lc.u6;
    const net = family === 4 ? lc.net4 : lc.net6;
    const pub = family === 4 ? peer.attrs.PublicIP : peer.attrs.PublicIPv6;
    if (!ul || !net || pub === undefined) {
      out.problem = `no IPv${family} underlay address to route via (host-gw needs PublicIP${family === 6 ? "v6" : ""} on both nodes)`;
      return out;
    }
    if (!lc.parse.contains(net, pub)) {
      out.problem = `host-gw: its address ${pub} is not on this node's L2 subnet ${net.text}; host-gw needs every node on one L2 subnet (use vxlan, or vxlan with DirectRouting)`;
      return out;
    }
    const r: RouteEntry = { dst: lc.parse.pfx(subnet).text, via: pub, dev: ul.iface, origin };
    out.routes.push({ k: routeOrderKey(r), v: r });
  }
  return out;
}

function skippedOf(l: SubnetLease, reason: string): SkippedPeer {
  const s: SkippedPeer = { key: l.key, reason };
  if (l.attrs.NodeName !== undefined) s.node = l.attrs.NodeName;
  return s;
}

/**
 * Drops leases that cannot be planned (own, overlapping the node's own subnets, overlapping an
 * older lease — a transient dual-stack race —, without the subnet of an enabled family) and returns
 * the rest, with the reasons for the dropped ones. O(N log N) for leases of the configured length.
 */
function usablePeers(input: PlanInput, pfx: Parser["pfx"]): { peers: SubnetLease[]; skipped: SkippedPeer[] } {
  const { config, node, lease } = input;
  const skipped: SkippedPeer[] = [];
  const own = [lease?.subnet, lease?.ipv6Subnet].filter((x): x is string => x !== undefined).map(pfx);
  const standard = (p: Pfx): boolean => p.length === (p.family === 4 ? config.ipv4?.subnetLen : config.ipv6?.subnetLen);
  // Oldest first: on overlap the earlier lease wins, whatever order the leases came in.
  const sorted = [...input.peers].sort((a, b) => a.createRevision - b.createRevision || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const keptExact = new Map<string, SubnetLease>();
  const keptOdd: { p: Pfx; lease: SubnetLease }[] = [];
  const peers: SubnetLease[] = [];
  for (const l of sorted) {
    if (l.key === lease?.key || l.attrs.NodeName === node.name) continue;
    const prefixes = [l.subnet, l.ipv6Subnet].filter((x): x is string => x !== undefined).map(pfx);
    if (prefixes.some((p) => own.some((o) => overlap(o, p)))) {
      skipped.push(skippedOf(l, "its subnet overlaps this node's own lease"));
      continue;
    }
    let rival: SubnetLease | undefined;
    for (const p of prefixes) {
      rival ??= standard(p) ? keptExact.get(p.text) : undefined;
      rival ??= keptOdd.find((k) => overlap(k.p, p))?.lease;
      if (rival === undefined && !standard(p)) {
        for (const [text, kl] of keptExact) {
          if (overlap(pfx(text), p)) {
            rival = kl;
            break;
          }
        }
      }
    }
    if (rival) {
      skipped.push(skippedOf(l, `its subnet overlaps the older lease ${rival.key}`));
      continue;
    }
    if ((config.enableIPv4 && l.subnet === undefined) || (config.enableIPv6 && l.ipv6Subnet === undefined)) {
      const fams = [config.enableIPv4 ? "IPv4" : "", config.enableIPv6 ? "IPv6" : ""].filter(Boolean).join("+");
      skipped.push(skippedOf(l, `it lacks a subnet of an enabled family (${fams})`));
      continue;
    }
    for (const p of prefixes) {
      if (standard(p)) keptExact.set(p.text, l);
      else keptOdd.push({ p, lease: l });
    }
    peers.push(l);
  }
  return { peers, skipped };
}

/** Computes the desired dataplane of one node (see the module comment). Pure and deterministic. */
export function planDataplane(input: PlanInput): NodeDataplane {
  return planWithDiagnostics(input).dataplane;
}

function byKey<T>(a: Keyed<T>, b: Keyed<T>): number {
  return a.k < b.k ? -1 : a.k > b.k ? 1 : 0;
}

/** The peers' entries of a plan, each list in canonicalDataplane's order. */
interface PeerEntries {
  routes: RouteEntry[];
  neighbours: NeighbourEntry[];
  fdb: FdbEntry[];
}

/**
 * `planDataplane` plus the leases that got no entries and why (host-gw across subnets, wrong
 * backend type, ...). `cache` (optional) makes successive plans of one node cost only the leases
 * that changed; the result is the same with or without it.
 */
export function planWithDiagnostics(input: PlanInput, cache?: PlanCache): PlanResult {
  const { config, node, lease } = input;
  if (lease === undefined || (lease.subnet === undefined && lease.ipv6Subnet === undefined)) {
    return { dataplane: emptyDataplane(node.name), skipped: [] };
  }
  const parse = parser(cache);
  const { peers, skipped } = usablePeers(input, parse.pfx);
  const lc = localContext(config, node, parse);
  const routes: Keyed<RouteEntry>[] = [];
  const neighbours: Keyed<NeighbourEntry>[] = [];
  const fdb: Keyed<FdbEntry>[] = [];
  for (const peer of peers) {
    const plan = peerPlanOf(cache, lc, peer);
    if (plan.problem !== undefined) {
      skipped.push(skippedOf(peer, plan.problem));
      continue;
    }
    for (const r of plan.routes) routes.push(r);
    for (const n of plan.neighbours) neighbours.push(n);
    for (const f of plan.fdb) fdb.push(f);
  }
  routes.sort(byKey);
  neighbours.sort(byKey);
  fdb.sort(byKey);
  const entries: PeerEntries = {
    routes: routes.map((r) => r.v),
    neighbours: neighbours.map((n) => n.v),
    fdb: fdb.filter((f, i) => i === 0 || fdb[i - 1]!.k !== f.k).map((f) => f.v),
  };
  skipped.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { dataplane: assemble(input, lease, lc, parse, entries), skipped };
}

/** The node's dataplane around the peers' entries: bridge, vxlan devices, addresses, NAT, pods, filters. */
function assemble(input: PlanInput, lease: LeaseSubnets, lc: LocalContext, parse: Parser, entries: PeerEntries): NodeDataplane {
  const { config, node } = input;
  const dp: NodeDataplane = emptyDataplane(node.name);
  const mtu = podMtu(config, node);
  const links: Link[] = [];
  const addresses: AddressEntry[] = [];

  // The bridge and its gateway addresses.
  const own = [lease.subnet, lease.ipv6Subnet].filter((x): x is string => x !== undefined).map((s) => Prefix.parse(s));
  links.push({ kind: "bridge", name: BRIDGE, mtu, mac: macForAddress(own[0]!.nth(1)) });
  for (const p of own) addresses.push({ dev: BRIDGE, cidr: `${p.nth(1)}/${p.length}` });

  if (config.backend.type === "vxlan") {
    const be = config.backend;
    for (const [dev, mac, overhead] of [
      [lc.devs.v4, input.vtepMacs.v4, ENCAP_OVERHEAD.vxlan],
      [lc.devs.v6, input.vtepMacs.v6, VXLAN6_OVERHEAD],
    ] as const) {
      if (!dev) continue;
      const link: Link = {
        kind: "vxlan",
        name: dev.name,
        vni: be.vni,
        port: be.port,
        local: dev.underlay.address,
        underlayDev: dev.underlay.iface,
        learning: be.learning,
        mtu: underlayMtu(config, dev.underlay) - overhead,
      };
      if (be.gbp) link.gbp = true;
      if (mac !== undefined) link.mac = mac;
      links.push(link);
    }
    // The node subnet's network address on the device carrying that family (flannel's /32, /128).
    if (lease.subnet !== undefined && lc.devs.v4) addresses.push({ dev: lc.devs.v4.name, cidr: `${parse.pfx(lease.subnet).network}/32` });
    const v6dev = lc.devs.v6 ?? lc.devs.v4;
    if (lease.ipv6Subnet !== undefined && v6dev) addresses.push({ dev: v6dev.name, cidr: `${parse.pfx(lease.ipv6Subnet).network}/128` });
  }

  // Every list is built in canonicalDataplane's order (same keys), so the result is canonical
  // without a second sort of the large lists.
  dp.links = sortBy(links, (l) => l.name);
  dp.addresses = sortBy(addresses, (a) => `${a.dev} ${a.cidr}`);
  dp.routes = entries.routes;
  dp.neighbours = entries.neighbours;
  dp.fdb = entries.fdb;
  dp.sysctls = { ...(config.enableIPv4 ? { ipv4Forwarding: true } : {}), ...(config.enableIPv6 ? { ipv6Forwarding: true } : {}), bridgeNfCall: true };
  dp.nat = sortBy(masqueradeRules(config), (n) => n.id);
  dp.pods = sortBy(
    input.pods.map((pod) => podInterface({ config, lease, mtu, pod })),
    (p) => p.key,
  );
  if (input.policy) {
    const nodeAddresses = [...node.underlay.map((u) => u.address), ...own.map((p) => p.nth(1))];
    dp.filters = sortBy(input.policy.filtersFor({ node: node.name, pods: input.pods, nodeAddresses }), (f) => `${f.pod} ${f.direction}`);
  }
  return dp;
}

/** Index of the first item whose key is not below `k` (binary search over a list sorted by key). */
function lowerBound<T>(list: readonly Keyed<T>[], k: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.k < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** What one lease adds to a PeerTable's plan (under one local context and own lease). */
interface Contribution {
  /** Its prefixes (parsed). */
  prefixes: readonly Pfx[];
  /** Its prefixes' texts, when it takes part in the overlap rules (not this node's, not overlapping it). */
  texts: readonly string[];
  /** It has a prefix of another length than the config's subnet length (the table then plans in full). */
  odd: boolean;
  skipped?: SkippedPeer;
  plan?: PeerPlan;
}

/** The contribution of this node's own lease. */
const NO_CONTRIBUTION: Contribution = Object.freeze({ prefixes: [], texts: [], odd: false });

/** A lease's contribution when it is not this node's and does not overlap it (frozen: shared by every table under `lc`). */
function sharedContribution(lc: LocalContext, l: SubnetLease, plan: PeerPlan): Contribution {
  const { config, parse } = lc;
  const prefixes = [l.subnet, l.ipv6Subnet].filter((x): x is string => x !== undefined).map(parse.pfx);
  const texts = prefixes.map((p) => p.text);
  const odd = prefixes.some((p) => p.length !== (p.family === 4 ? config.ipv4?.subnetLen : config.ipv6?.subnetLen));
  let c: Contribution;
  if ((config.enableIPv4 && l.subnet === undefined) || (config.enableIPv6 && l.ipv6Subnet === undefined)) {
    const fams = [config.enableIPv4 ? "IPv4" : "", config.enableIPv6 ? "IPv6" : ""].filter(Boolean).join("+");
    c = { prefixes, texts, odd, skipped: skippedOf(l, `it lacks a subnet of an enabled family (${fams})`) };
  } else if (plan.problem !== undefined) c = { prefixes, texts, odd, skipped: skippedOf(l, plan.problem) };
  else c = { prefixes, texts, odd, plan };
  Object.freeze(prefixes);
  Object.freeze(texts);
  Object.freeze(c.skipped);
  return Object.freeze(c);
}

/** The leases a PeerTable reads when it keeps none itself (e.g. core's Informer over the lease prefix). */
export interface LeaseView {
  get(key: string): SubnetLease | undefined;
  keys(): Iterable<string>;
  values(): Iterable<SubnetLease>;
  readonly size: number;
}

/**
 * Changes at once above which a PeerTable rebuilds its lists with one sort instead of inserting
 * one by one: this many, or an eighth of the leases, whichever is more.
 */
const RESORT_ABOVE = 16;

/**
 * One agent's lease view, planned incrementally: `set` and `delete` (one per lease event) record
 * the change; `plan` applies the changes since the last plan — each lease's entries computed once
 * per version, inserted into and removed from sorted route, neighbour and FDB lists — and returns
 * the same result as `planWithDiagnostics` over the same leases. A lease event then costs O(log N)
 * plus one list copy per (coalesced) plan, instead of a re-plan over all N leases.
 *
 * The incremental lists hold while no overlap rule can apply: every lease's prefixes are of the
 * config's subnet length and no two leases share one (flannel's allocator guarantees both). While
 * either fails (a reservation of another length, a transient double lease), `plan` falls back to
 * `planWithDiagnostics` over every lease, so the result is always the pure planner's.
 */
export class PeerTable {
  /** The leases: the table's own map, or the view it was given (`LeaseView`). */
  private readonly leases: LeaseView;
  private readonly own: Map<string, SubnetLease> | undefined;
  private readonly pending = new Set<string>();
  private readonly contributions = new Map<string, Contribution>();
  /** Leases per prefix text (overlap rules apply when one holds more than one). */
  private readonly holders = new Map<string, number>();
  private shared = 0;
  private odd = 0;
  private routes: Keyed<RouteEntry>[] = [];
  private neighbours: Keyed<NeighbourEntry>[] = [];
  /** FDB entries by key, with how many leases contribute each (two leases may share a VTEP). */
  private fdb: Keyed<FdbEntry>[] = [];
  private readonly fdbRefs = new Map<string, number>();
  private readonly skipped = new Map<string, SkippedPeer>();
  /** The local context and own lease the contributions were computed under. */
  private context: string | undefined;
  /** The lists as of the last plan (reused while no lease changed them). */
  private last: PeerEntries | undefined;

  /**
   * `cache`: the plan cache (default: the table's own). `view`: where the leases are kept (an
   * informer's cache, so an agent holds each lease once); then `set` and `delete` only say which
   * key changed, and the view must already show the change when they are called.
   */
  constructor(
    private readonly cache: PlanCache = createPlanCache(),
    view?: LeaseView,
  ) {
    this.own = view === undefined ? new Map() : undefined;
    this.leases = view ?? this.own!;
  }

  /** A lease appeared or changed. */
  set(lease: SubnetLease): void {
    this.own?.set(lease.key, lease);
    this.pending.add(lease.key);
  }

  /** A lease vanished. */
  delete(key: string): void {
    if (this.own !== undefined && !this.own.delete(key)) return;
    this.pending.add(key);
  }

  /** The plan of `input` with this table's leases as its peers (`input.peers` is ignored); see the class comment. */
  plan(input: Omit<PlanInput, "peers">): PlanResult {
    const { config, node, lease } = input;
    if (lease === undefined || (lease.subnet === undefined && lease.ipv6Subnet === undefined)) {
      return { dataplane: emptyDataplane(node.name), skipped: [] };
    }
    const parse = parser(this.cache);
    const lc = localContext(config, node, parse);
    const context = `${lc.id}|${node.name}|${lease.key ?? ""}|${lease.subnet ?? ""}|${lease.ipv6Subnet ?? ""}|${config.ipv4?.subnetLen ?? ""}|${config.ipv6?.subnetLen ?? ""}`;
    if (context !== this.context) {
      this.context = context;
      this.reset();
    }
    this.applyPending(input, lease, lc, parse);
    if (this.shared > 0 || this.odd > 0) return planWithDiagnostics({ ...input, peers: [...this.leases.values()] }, this.cache);
    this.last ??= { routes: this.routes.map((r) => r.v), neighbours: this.neighbours.map((n) => n.v), fdb: this.fdb.map((f) => f.v) };
    const skipped = [...this.skipped.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { dataplane: assemble({ ...input, peers: [] }, lease, lc, parse, this.last), skipped };
  }

  /** Forgets every contribution: the next plan recomputes each lease's. */
  private reset(): void {
    this.contributions.clear();
    this.holders.clear();
    this.shared = 0;
    this.odd = 0;
    this.routes = [];
    this.neighbours = [];
    this.fdb = [];
    this.fdbRefs.clear();
    this.skipped.clear();
    this.last = undefined;
    for (const key of this.leases.keys()) this.pending.add(key);
  }

  private applyPending(input: Omit<PlanInput, "peers">, lease: LeaseSubnets & { key?: string }, lc: LocalContext, parse: Parser): void {
    if (this.pending.size === 0) return;
    this.last = undefined;
    // Many changes at once (a listing): update the contributions, then sort only the entries that
    // came in and merge them into the lists, less the entries that went.
    const lists = this.pending.size <= Math.max(RESORT_ABOVE, this.leases.size / 8);
    const batch: Batch | undefined = lists ? undefined : { routes: [], neighbours: [], fdb: [], gone: new Set(), goneFdb: new Set() };
    const ownPrefixes = [lease.subnet, lease.ipv6Subnet].filter((x): x is string => x !== undefined).map(parse.pfx);
    for (const key of this.pending) {
      const old = this.contributions.get(key);
      if (old) this.remove(key, old, batch);
      const l = this.leases.get(key);
      if (l === undefined) continue;
      const c = this.contribution(input, lease, ownPrefixes, lc, l);
      this.contributions.set(key, c);
      this.add(key, c, batch);
    }
    this.pending.clear();
    if (!batch) return;
    const { gone, goneFdb } = batch;
    this.routes = mergeSorted(gone.size > 0 ? this.routes.filter((r) => !gone.has(r)) : this.routes, batch.routes.sort(byKey));
    this.neighbours = mergeSorted(gone.size > 0 ? this.neighbours.filter((n) => !gone.has(n)) : this.neighbours, batch.neighbours.sort(byKey));
    this.fdb = mergeSorted(goneFdb.size > 0 ? this.fdb.filter((f) => !goneFdb.has(f.k)) : this.fdb, batch.fdb.sort(byKey));
  }

  /**
   * What `usablePeers` and the per-peer planner make of one lease, given that no overlap rule
   * applies. Unless the lease is this node's or overlaps it, that depends on the context alone: the
   * cache's object, shared by every table under the context.
   */
  private contribution(input: Omit<PlanInput, "peers">, own: LeaseSubnets & { key?: string }, ownPrefixes: readonly Pfx[], lc: LocalContext, l: SubnetLease): Contribution {
    if (l.key === own.key || l.attrs.NodeName === input.node.name) return NO_CONTRIBUTION;
    const hit = cachedPeer(this.cache, lc, l);
    const c = (hit.contribution ??= sharedContribution(lc, l, hit.plan));
    if (c.prefixes.some((p) => ownPrefixes.some((o) => overlap(o, p)))) return { prefixes: [], texts: [], odd: false, skipped: skippedOf(l, "its subnet overlaps this node's own lease") };
    return c;
  }

  /** Counts a contribution in; its entries go into the lists, or into `batch` to be merged. */
  private add(key: string, c: Contribution, batch: Batch | undefined): void {
    for (const t of c.texts) {
      const n = (this.holders.get(t) ?? 0) + 1;
      this.holders.set(t, n);
      if (n === 2) this.shared++;
    }
    if (c.odd) this.odd++;
    if (c.skipped) this.skipped.set(key, c.skipped);
    if (!c.plan) return;
    for (const f of c.plan.fdb) {
      const refs = this.fdbRefs.get(f.k) ?? 0;
      this.fdbRefs.set(f.k, refs + 1);
      if (refs > 0) continue;
      if (batch) batch.fdb.push(f);
      else insert(this.fdb, f);
    }
    if (batch) {
      for (const r of c.plan.routes) batch.routes.push(r);
      for (const n of c.plan.neighbours) batch.neighbours.push(n);
      return;
    }
    for (const r of c.plan.routes) insert(this.routes, r);
    for (const n of c.plan.neighbours) insert(this.neighbours, n);
  }

  /** Counts a contribution out; its entries leave the lists, or are marked gone in `batch`. */
  private remove(key: string, c: Contribution, batch: Batch | undefined): void {
    this.contributions.delete(key);
    for (const t of c.texts) {
      const n = this.holders.get(t)! - 1;
      if (n === 0) this.holders.delete(t);
      else this.holders.set(t, n);
      if (n === 1) this.shared--;
    }
    if (c.odd) this.odd--;
    this.skipped.delete(key);
    if (!c.plan) return;
    for (const f of c.plan.fdb) {
      const refs = this.fdbRefs.get(f.k)! - 1;
      if (refs > 0) {
        this.fdbRefs.set(f.k, refs);
        continue;
      }
      this.fdbRefs.delete(f.k);
      // Entries of one key are equal (dev, MAC, destination): drop whichever the list kept.
      if (batch) batch.goneFdb.add(f.k);
      else drop(this.fdb, (x) => x.k === f.k, f.k);
    }
    if (batch) {
      for (const r of c.plan.routes) batch.gone.add(r);
      for (const n of c.plan.neighbours) batch.gone.add(n);
      return;
    }
    for (const r of c.plan.routes) drop(this.routes, (x) => x === r, r.k);
    for (const n of c.plan.neighbours) drop(this.neighbours, (x) => x === n, n.k);
  }
}

/** Entries of a PeerTable update of many leases at once: added (to be sorted and merged), gone. */
interface Batch {
  routes: Keyed<RouteEntry>[];
  neighbours: Keyed<NeighbourEntry>[];
  fdb: Keyed<FdbEntry>[];
  /** Route and neighbour entries (by identity) of contributions counted out. */
  gone: Set<Keyed<unknown>>;
  /** FDB keys no contribution holds any more. */
  goneFdb: Set<string>;
}

/** Two lists sorted by key merged into one (on equal keys, `a`'s entries first, as `insert` places them). */
function mergeSorted<T>(a: Keyed<T>[], b: Keyed<T>[]): Keyed<T>[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: Keyed<T>[] = new Array<Keyed<T>>(a.length + b.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < a.length && j < b.length) out[o++] = b[j]!.k < a[i]!.k ? b[j++]! : a[i++]!;
  while (i < a.length) out[o++] = a[i++]!;
  while (j < b.length) out[o++] = b[j++]!;
  return out;
}

/** Inserts an entry into a list sorted by key (after the entries of an equal key). */
function insert<T>(list: Keyed<T>[], item: Keyed<T>): void {
  let at = lowerBound(list, item.k);
  while (at < list.length && list[at]!.k === item.k) at++;
  list.splice(at, 0, item);
}

/** Removes the first entry of key `k` that `match` accepts from a list sorted by key. */
function drop<T>(list: Keyed<T>[], match: (x: Keyed<T>) => boolean, k: string): void {
  for (let at = lowerBound(list, k); at < list.length && list[at]!.k === k; at++) {
    if (match(list[at]!)) {
      list.splice(at, 1);
      return;
    }
  }
}

/** A sorted copy, comparing precomputed keys with `<` (as canonicalDataplane does). */
function sortBy<T>(items: readonly T[], key: (x: T) => string): T[] {
  return items
    .map((v) => ({ k: key(v), v }))
    .sort(byKey)
    .map((x) => x.v);
}
