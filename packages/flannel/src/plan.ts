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
import { ENCAP_OVERHEAD, Prefix, canonicalDataplane, podKey } from "@cnikit/core";
import type {
  AddressEntry,
  FdbEntry,
  Family,
  Link,
  NatRule,
  NeighbourEntry,
  NodeDataplane,
  NodeInfo,
  PodInterface,
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
}

/** The VTEP MACs of this node's vxlan devices. */
export interface VtepMacs {
  v4?: string;
  v6?: string;
}

export interface PlanInput {
  config: FlannelConfig;
  node: NodeInfo;
  /** This node's lease; absent before it is acquired (the plan is then empty). */
  lease?: LeaseSubnets & { key?: string };
  /** MACs of this node's vxlan devices (see `localDevices`). */
  vtepMacs: VtepMacs;
  /** Every lease in the store, this node's own included (it is skipped). */
  leases: readonly SubnetLease[];
  pods: readonly PodRecord[];
}

/** A lease the plan made no entries for, and why. */
export interface SkippedPeer {
  key: string;
  node?: string;
  reason: string;
}

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

/** FNV-1a 32-bit over a string. */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * A VTEP MAC derived from the node name (locally administered, unicast): the same name always
 * gives the same MAC, so even a node whose local state was wiped comes back with it.
 */
export function deriveVtepMac(nodeName: string, family: Family): string {
  const a = fnv1a(`flannel-vtep/${family}/${nodeName}`);
  const b = fnv1a(`${nodeName}/${family}/flannel-vtep`, a);
  const bytes = [((a >>> 24) & 0xfe) | 0x02, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff, (b >>> 8) & 0xff, b & 0xff];
  return bytes.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** MAC of the bridge or a pod: `0a:58:` + the IPv4 octets (the CNI convention), else a hash. */
export function macForAddress(address: string): string {
  const p = Prefix.host(address);
  if (p.family === 4) {
    return `0a:58:${address
      .split(".")
      .map((o) => Number(o).toString(16).padStart(2, "0"))
      .join(":")}`;
  }
  const h = fnv1a(p.network);
  return `0a:58:${[h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff].map((x) => x.toString(16).padStart(2, "0")).join(":")}`;
}

/** Host-side veth name of an attachment: `veth` + 8 hex digits of a hash of its key (≤ 15 bytes). */
export function hostIfName(ref: { containerId: string; ifName: string }): string {
  return `veth${fnv1a(podKey(ref)).toString(16).padStart(8, "0")}`;
}

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
  const out: PodInterface = {
    key: podKey(pod),
    containerId: pod.containerId,
    ifName: pod.ifName,
    hostIf: hostIfName(pod),
    bridge: BRIDGE,
    mac: first === undefined ? macForAddress("0.0.0.0") : macForAddress(first),
    mtu: input.mtu,
    addresses,
    gateways,
    routes,
  };
  if (pod.namespace !== undefined) out.namespace = pod.namespace;
  if (pod.podName !== undefined) out.podName = pod.podName;
  if (pod.labels !== undefined) out.labels = { ...pod.labels };
  if (pod.netns !== undefined) out.netns = pod.netns;
  return out;
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

function connected(u: UnderlayInterface): Prefix {
  return Prefix.parse(`${u.address}/${u.prefixLength}`, { allowHostBits: true });
}

/**
 * Drops leases that cannot be planned (own, overlapping the node's own subnets, overlapping an
 * older lease — a transient dual-stack race —, without the subnet of an enabled family) and returns
 * the rest in key order, with the reasons for the dropped ones.
 */
function usablePeers(input: PlanInput): { peers: SubnetLease[]; skipped: SkippedPeer[] } {
  const { config, node, lease } = input;
  const skipped: SkippedPeer[] = [];
  const skip = (l: SubnetLease, reason: string): void => {
    const s: SkippedPeer = { key: l.key, reason };
    if (l.attrs.NodeName !== undefined) s.node = l.attrs.NodeName;
    skipped.push(s);
  };
  const own = [lease?.subnet, lease?.ipv6Subnet].filter((x): x is string => x !== undefined).map((s) => Prefix.parse(s));
  // Oldest first: on overlap the earlier lease wins, whatever order the leases came in.
  const sorted = [...input.leases].sort((a, b) => a.createRevision - b.createRevision || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const kept: { lease: SubnetLease; prefixes: Prefix[] }[] = [];
  for (const l of sorted) {
    if (l.key === lease?.key || l.attrs.NodeName === node.name) continue;
    const prefixes = [l.subnet, l.ipv6Subnet].filter((x): x is string => x !== undefined).map((s) => Prefix.parse(s));
    if (prefixes.some((p) => own.some((o) => o.overlaps(p)))) {
      skip(l, "its subnet overlaps this node's own lease");
      continue;
    }
    const rival = kept.find((k) => k.prefixes.some((kp) => prefixes.some((p) => kp.overlaps(p))));
    if (rival) {
      skip(l, `its subnet overlaps the older lease ${rival.lease.key}`);
      continue;
    }
    if ((config.enableIPv4 && l.subnet === undefined) || (config.enableIPv6 && l.ipv6Subnet === undefined)) {
      skip(l, `it lacks a subnet of an enabled family (${config.enableIPv4 ? "IPv4" : ""}${config.enableIPv4 && config.enableIPv6 ? "+" : ""}${config.enableIPv6 ? "IPv6" : ""})`);
      continue;
    }
    kept.push({ lease: l, prefixes });
  }
  const peers = kept.map((k) => k.lease).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { peers, skipped };
}

/** Computes the desired dataplane of one node (see the module comment). Pure and deterministic. */
export function planDataplane(input: PlanInput): NodeDataplane {
  return planWithDiagnostics(input).dataplane;
}

/** `planDataplane` plus the leases that got no entries and why (host-gw across subnets, wrong backend type, ...). */
export function planWithDiagnostics(input: PlanInput): PlanResult {
  const { config, node, lease } = input;
  const dp: NodeDataplane = { node: node.name, links: [], addresses: [], routes: [], neighbours: [], fdb: [], sysctls: {}, nat: [], filters: [], pods: [] };
  if (lease === undefined || (lease.subnet === undefined && lease.ipv6Subnet === undefined)) {
    return { dataplane: dp, skipped: [] };
  }
  const { peers, skipped } = usablePeers(input);
  const mtu = podMtu(config, node);
  const links: Link[] = [];
  const addresses: AddressEntry[] = [];
  const routes: RouteEntry[] = [];
  const neighbours: NeighbourEntry[] = [];
  const fdb: FdbEntry[] = [];
  const skip = (l: SubnetLease, reason: string): void => {
    const s: SkippedPeer = { key: l.key, reason };
    if (l.attrs.NodeName !== undefined) s.node = l.attrs.NodeName;
    skipped.push(s);
  };

  // The bridge and its gateway addresses.
  const gateways = [lease.subnet, lease.ipv6Subnet].filter((x): x is string => x !== undefined).map((s) => ({ s, p: Prefix.parse(s) }));
  links.push({ kind: "bridge", name: BRIDGE, mtu, mac: macForAddress(gateways[0]!.p.nth(1)) });
  for (const { p } of gateways) addresses.push({ dev: BRIDGE, cidr: `${p.nth(1)}/${p.length}` });

  if (config.backend.type === "vxlan") {
    const be = config.backend;
    const devs = localDevices(config, node);
    if (devs.v4) {
      const link: Link = {
        kind: "vxlan",
        name: devs.v4.name,
        vni: be.vni,
        port: be.port,
        local: devs.v4.underlay.address,
        underlayDev: devs.v4.underlay.iface,
        learning: be.learning,
        mtu: underlayMtu(config, devs.v4.underlay) - ENCAP_OVERHEAD.vxlan,
      };
      if (be.gbp) link.gbp = true;
      if (input.vtepMacs.v4 !== undefined) link.mac = input.vtepMacs.v4;
      links.push(link);
    }
    if (devs.v6) {
      const link: Link = {
        kind: "vxlan",
        name: devs.v6.name,
        vni: be.vni,
        port: be.port,
        local: devs.v6.underlay.address,
        underlayDev: devs.v6.underlay.iface,
        learning: be.learning,
        mtu: underlayMtu(config, devs.v6.underlay) - VXLAN6_OVERHEAD,
      };
      if (be.gbp) link.gbp = true;
      if (input.vtepMacs.v6 !== undefined) link.mac = input.vtepMacs.v6;
      links.push(link);
    }
    // The node subnet's network address on the device carrying that family (flannel's /32, /128).
    if (lease.subnet !== undefined && devs.v4) addresses.push({ dev: devs.v4.name, cidr: `${Prefix.parse(lease.subnet).network}/32` });
    const v6dev = devs.v6 ?? devs.v4;
    if (lease.ipv6Subnet !== undefined && v6dev) addresses.push({ dev: v6dev.name, cidr: `${Prefix.parse(lease.ipv6Subnet).network}/128` });

    const u4 = underlayOf(node, 4);
    const u6 = underlayOf(node, 6);
    const fdbSeen = new Set<string>();
    for (const peer of peers) {
      if (peer.attrs.BackendType !== "vxlan") {
        skip(peer, `backend type ${JSON.stringify(peer.attrs.BackendType)} is not vxlan (flannel ignores such leases too)`);
        continue;
      }
      const origin = `lease:${peer.key.slice(peer.key.lastIndexOf("/") + 1)}${peer.attrs.NodeName ? `@${peer.attrs.NodeName}` : ""}`;
      const planned: { routes: RouteEntry[]; neighbours: NeighbourEntry[]; fdb: FdbEntry[] } = { routes: [], neighbours: [], fdb: [] };
      let problem: string | undefined;
      for (const family of [4, 6] as const) {
        const subnet = family === 4 ? peer.subnet : peer.ipv6Subnet;
        if (subnet === undefined || (family === 4 ? !config.enableIPv4 : !config.enableIPv6)) continue;
        const sp = Prefix.parse(subnet);
        // DirectRouting: the peer's public address of this family is on our own underlay subnet.
        const ul = family === 4 ? u4 : u6;
        const pub = family === 4 ? peer.attrs.PublicIP : peer.attrs.PublicIPv6;
        if (be.directRouting && ul && pub !== undefined && connected(ul).contains(pub)) {
          planned.routes.push({ dst: sp.toString(), via: pub, dev: ul.iface, origin: `${origin} direct` });
          continue;
        }
        // Encapsulate: over flannel-v6 when both ends have it, else over flannel.<VNI> (IPv4 outer).
        let dev: string | undefined;
        let mac: string | undefined;
        let dst: string | undefined;
        if (family === 6 && devs.v6 && peer.attrs.BackendV6Data && peer.attrs.PublicIPv6 !== undefined) {
          dev = devs.v6.name;
          mac = peer.attrs.BackendV6Data.VtepMAC;
          dst = peer.attrs.PublicIPv6;
          if (peer.attrs.BackendV6Data.VNI !== be.vni) problem = `its VNI ${peer.attrs.BackendV6Data.VNI} differs from ours (${be.vni})`;
        } else if (devs.v4 && peer.attrs.BackendData && peer.attrs.PublicIP !== undefined) {
          dev = devs.v4.name;
          mac = peer.attrs.BackendData.VtepMAC;
          dst = peer.attrs.PublicIP;
          if (peer.attrs.BackendData.VNI !== be.vni) problem = `its VNI ${peer.attrs.BackendData.VNI} differs from ours (${be.vni})`;
        } else {
          problem = `it published no VTEP reachable from this node for IPv${family} (PublicIP/BackendData missing)`;
        }
        if (problem !== undefined || dev === undefined || mac === undefined || dst === undefined) break;
        planned.neighbours.push({ dev, ip: sp.network, mac, permanent: true });
        const fdbKey = `${dev} ${mac} ${dst}`;
        if (!fdbSeen.has(fdbKey)) {
          fdbSeen.add(fdbKey);
          planned.fdb.push({ dev, mac, dst, permanent: true });
        }
        planned.routes.push({ dst: sp.toString(), via: sp.network, dev, onlink: true, origin });
      }
      if (problem !== undefined) {
        skip(peer, problem);
        for (const f of planned.fdb) fdbSeen.delete(`${f.dev} ${f.mac} ${f.dst}`);
        continue;
      }
      routes.push(...planned.routes);
      neighbours.push(...planned.neighbours);
      fdb.push(...planned.fdb);
    }
  } else {
    // host-gw: plain routes via the peer's underlay address; L2 adjacency required.
    for (const peer of peers) {
      if (peer.attrs.BackendType !== "host-gw") {
        skip(peer, `backend type ${JSON.stringify(peer.attrs.BackendType)} is not host-gw (flannel ignores such leases too)`);
        continue;
      }
      const origin = `lease:${peer.key.slice(peer.key.lastIndexOf("/") + 1)}${peer.attrs.NodeName ? `@${peer.attrs.NodeName}` : ""}`;
      const planned: RouteEntry[] = [];
      let problem: string | undefined;
      for (const family of [4, 6] as const) {
        const subnet = family === 4 ? peer.subnet : peer.ipv6Subnet;
        if (subnet === undefined || (family === 4 ? !config.enableIPv4 : !config.enableIPv6)) continue;
        const ul = underlayOf(node, family);
        const pub = family === 4 ? peer.attrs.PublicIP : peer.attrs.PublicIPv6;
        if (!ul || pub === undefined) {
          problem = `no IPv${family} underlay address to route via (host-gw needs PublicIP${family === 6 ? "v6" : ""} on both nodes)`;
          break;
        }
        const net = connected(ul);
        if (!net.contains(pub)) {
          problem = `host-gw: its address ${pub} is not on this node's L2 subnet ${net.toString()}; host-gw needs every node on one L2 subnet (use vxlan, or vxlan with DirectRouting)`;
          break;
        }
        planned.push({ dst: Prefix.parse(subnet).toString(), via: pub, dev: ul.iface, origin });
      }
      if (problem !== undefined) {
        skip(peer, problem);
        continue;
      }
      routes.push(...planned);
    }
  }

  dp.links = links;
  dp.addresses = addresses;
  dp.routes = routes;
  dp.neighbours = neighbours;
  dp.fdb = fdb;
  dp.sysctls = { ...(config.enableIPv4 ? { ipv4Forwarding: true } : {}), ...(config.enableIPv6 ? { ipv6Forwarding: true } : {}), bridgeNfCall: true };
  dp.nat = masqueradeRules(config);
  dp.pods = input.pods.map((pod) => podInterface({ config, lease, mtu, pod }));
  skipped.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { dataplane: canonicalDataplane(dp), skipped };
}
