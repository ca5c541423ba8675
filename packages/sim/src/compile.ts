/**
 * Compiles one node (its NodeInfo underlay plus its NodeDataplane) into the lookup structures the
 * packet walk uses: per-family interval maps for routes, maps for local addresses, neighbours, FDB,
 * pods and devices. Built once per dataplane change; never mutated afterwards.
 */
import {
  ConfigError,
  ENCAP_OVERHEAD,
  type FdbEntry,
  type Family,
  type FilterPolicy,
  type Link,
  type NatRule,
  type NodeDataplane,
  type NodeInfo,
  type PodInterface,
  type Protocol,
  type RouteEntry,
  type UnderlayInterface,
  podInterfaceRanks,
  podRouteClash,
  podRouteMetric,
} from "@cnikit/core";
import { IntervalMap, addr, bitsOf, fakeMac, fkey, fmt, ifaceAddr, normMac, range, type Range } from "./addr.ts";
import type { CSubnet, CompiledTopology } from "./topology.ts";

const COMPONENT = "sim";

export type DevKind = "underlay" | "bridge" | "vxlan" | "ipip" | "sleeve" | "dummy" | "pod";

export interface CDev {
  name: string;
  kind: DevKind;
  link?: Link;
  pod?: CPod;
  mac: string;
  mtu: number;
  master?: string;
  subnet?: CSubnet;
  iface?: UnderlayInterface;
  /** Parsed `local` of a vxlan/ipip link. */
  local?: bigint;
  /** Addresses on the device, per family, in configuration order. */
  addrs: Map<Family, bigint[]>;
}

export interface CRoute {
  dst: Range;
  type: "unicast" | "blackhole" | "unreachable" | "local";
  via?: bigint;
  dev?: string;
  onlink: boolean;
  src?: bigint;
  metric: number;
  mtu?: number;
  /** Human-readable form for explanations, e.g. `10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink`. */
  label: string;
}

export interface CRule {
  id: string;
  /** undefined = any peer. */
  peers?: { cidrs: Range[]; except: Range[] }[];
  protocol?: Protocol;
  ports?: { from: number; to: number }[];
  action: "accept" | "drop";
}

export interface CPolicy {
  /** Interned content id: equal rules + default share one id. */
  id: number;
  direction: "ingress" | "egress";
  rules: CRule[];
  defaultAction: "accept" | "drop";
}

export interface CPodRoute {
  dst: Range;
  via?: bigint;
  label: string;
  /** Its metric in the pod's namespace (`podRouteMetric`). */
  metric: number;
  /**
   * The interface of the same container whose route this is, when not the sender's own: the
   * interfaces of a container share one namespace and one routing table (see `podInterfaceRanks`).
   */
  owner?: CPod;
}

export interface CPodFamily {
  addrs: bigint[];
  table: IntervalMap<CPodRoute>;
  links: IntervalMap<CPodRoute>;
}

export interface CPod {
  id: string;
  key: string;
  node: string;
  pif: PodInterface;
  mac: string;
  fam: Map<Family, CPodFamily>;
  /** Every address of the pod, any family (family-tagged keys). */
  all: Set<bigint>;
  ingress?: CPolicy;
  egress?: CPolicy;
  /** Canonical text of what influences how this pod sends (for grouping senders into classes). */
  sendSignature: string;
  /**
   * Set when a routed pod with proxy ARP has routes for more than its own addresses through its
   * hostIf: it is then a class of its own and proxy ARP is decided with its concrete hostIf.
   */
  hostIfShared?: boolean;
}

export interface CFdb {
  entry: FdbEntry;
  dst: bigint;
  family: Family;
}

export interface CNat {
  rule: NatRule;
  sources: Range[];
  sourcesId: number;
  /** `|sourcesId|`, as found in a sender's NAT signature. */
  probe: string;
  except: Range[];
  toAddress?: bigint;
}

export interface CNodeFamily {
  routes: IntervalMap<CRoute>;
  links: IntervalMap<CRoute>;
  /** Sorted local addresses of the family. */
  local: bigint[];
  localRanges: Range[];
  forwarding: boolean;
}

export interface CNode {
  name: string;
  /** Endpoint id `node:<name>` (one string, shared by every leaf that delivers to the node). */
  id: string;
  info: NodeInfo;
  dp: NodeDataplane;
  fam: Map<Family, CNodeFamily>;
  /** Local address (family-tagged key, see `fkey`) -> device it is on. */
  local: Map<bigint, string>;
  devs: Map<string, CDev>;
  /** dev -> family-tagged address -> MAC. */
  neigh: Map<string, Map<bigint, string>>;
  fdb: Map<string, Map<string, CFdb>>;
  flood: Map<string, CFdb[]>;
  pods: Map<string, CPod>;
  /** bridge -> pods on it by family-tagged address and by MAC. */
  bridgePods: Map<string, { byAddr: Map<bigint, CPod>; byMac: Map<string, CPod> }>;
  /** Tunnel devices (vxlan, sleeve) enslaved to each bridge, sorted by name. */
  bridgeTunnels: Map<string, CDev[]>;
  /** vxlan devices by `vxlanKey(vni, port)`. */
  vxlan: Map<number, CDev>;
  sleeve: Map<number, CDev>;
  ipip: CDev[];
  nat: CNat[];
  proxyArp: Set<string>;
  /** Underlay devices by subnet name. */
  underlayBySubnet: Map<string, CDev>;
}

/** Interns content keys to small numbers, shared by every node of one fabric. */
export class Interner {
  private readonly ids = new Map<string, number>();
  id(key: string): number {
    let v = this.ids.get(key);
    if (v === undefined) this.ids.set(key, (v = this.ids.size + 1));
    return v;
  }
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: COMPONENT, field, rule } : { component: COMPONENT, field, rule, value });
}

function famMap<T>(make: () => T): Map<Family, T> {
  const m = new Map<Family, T>();
  m.set(4, make());
  m.set(6, make());
  return m;
}

/**
 * A dataplane route as the walk sees it. Its `label` (text for hops and drop reasons) is made from
 * the route entry when first read: a 1000-node dataplane holds a thousand routes, of which a walk
 * explains a few.
 */
class DpRoute implements CRoute {
  readonly dst: Range;
  readonly type: CRoute["type"];
  readonly onlink: boolean;
  readonly metric: number;
  declare via?: bigint;
  declare dev?: string;
  declare src?: bigint;
  declare mtu?: number;
  private readonly entry: RouteEntry;
  private text: string | undefined;

  constructor(entry: RouteEntry, dst: Range, type: CRoute["type"]) {
    this.dst = dst;
    this.type = type;
    this.onlink = entry.onlink === true;
    this.metric = entry.metric ?? 0;
    this.entry = entry;
  }

  get label(): string {
    return (this.text ??= routeLabel(this.entry));
  }
}

const ROUTE_TYPES: ReadonlySet<string> = new Set(["unicast", "blackhole", "unreachable", "local"]);

export function routeLabel(r: { dst: string; type?: string; via?: string; dev?: string; onlink?: boolean; metric?: number }): string {
  const parts = [r.type && r.type !== "unicast" ? `${r.type} ${r.dst}` : r.dst];
  if (r.via) parts.push(`via ${r.via}`);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (r.onlink) parts.push("onlink");
  if (r.metric) parts.push(`metric ${r.metric}`);
  return parts.join(" ");
}

function compilePolicy(p: FilterPolicy, field: string, interner: Interner): CPolicy {
  if (p.direction !== "ingress" && p.direction !== "egress") fail(`${field}.direction`, 'must be "ingress" or "egress"', p.direction);
  if (p.defaultAction !== "accept" && p.defaultAction !== "drop") fail(`${field}.defaultAction`, 'must be "accept" or "drop"', p.defaultAction);
  if (!Array.isArray(p.rules)) fail(`${field}.rules`, "must be an array");
  const rules: CRule[] = p.rules.map((r, i) => {
    const f = `${field}.rules[${i}]`;
    if (r.action !== "accept" && r.action !== "drop") fail(`${f}.action`, 'must be "accept" or "drop"', r.action);
    const rule: CRule = { id: r.id, action: r.action };
    if (r.peers && r.peers.length > 0) {
      rule.peers = r.peers.map((pm, k) => ({
        cidrs: pm.cidrs.map((c, n) => range(c, `${f}.peers[${k}].cidrs[${n}]`)),
        except: (pm.except ?? []).map((c, n) => range(c, `${f}.peers[${k}].except[${n}]`)),
      }));
    }
    if (r.protocol !== undefined) rule.protocol = r.protocol;
    if (r.ports && r.ports.length > 0) {
      r.ports.forEach((pr, k) => {
        if (!Number.isInteger(pr.from) || !Number.isInteger(pr.to) || pr.from < 0 || pr.to > 65535 || pr.from > pr.to) {
          fail(`${f}.ports[${k}]`, "must be a range of integers 0..65535 with from <= to", pr);
        }
      });
      rule.ports = r.ports.map((pr) => ({ from: pr.from, to: pr.to }));
    }
    return rule;
  });
  const content = JSON.stringify([
    p.direction,
    p.defaultAction,
    rules.map((r) => [r.id, r.action, r.protocol ?? "", r.ports ?? [], (r.peers ?? []).map((pm) => [pm.cidrs.map((c) => c.text), pm.except.map((c) => c.text)])]),
  ]);
  return { id: interner.id(content), direction: p.direction, rules, defaultAction: p.defaultAction };
}

/** First rule of `policy` matching a packet with peer address `peer`; undefined = default action. */
export function evalPolicy(policy: CPolicy, peer: bigint, family: Family, proto: Protocol, port: number): { accept: boolean; rule?: string } {
  for (const r of policy.rules) {
    if (r.protocol !== undefined && r.protocol !== proto) continue;
    if (r.ports && proto !== "icmp" && !r.ports.some((p) => port >= p.from && port <= p.to)) continue;
    if (r.peers) {
      const hit = r.peers.some(
        (pm) => pm.cidrs.some((c) => c.family === family && peer >= c.base && peer <= c.last) && !pm.except.some((c) => c.family === family && peer >= c.base && peer <= c.last),
      );
      if (!hit) continue;
    }
    return { accept: r.action === "accept", rule: r.id };
  }
  return { accept: policy.defaultAction === "accept" };
}

function linkDefaultMtu(link: Link, underlayMtu: number): number | undefined {
  switch (link.kind) {
    case "vxlan":
      return underlayMtu - ENCAP_OVERHEAD.vxlan;
    case "ipip":
      return underlayMtu - ENCAP_OVERHEAD.ipip;
    case "sleeve":
      return underlayMtu - ENCAP_OVERHEAD.sleeve;
    case "dummy":
      return 1500;
    case "bridge":
      return undefined;
  }
}

/**
 * Compiles a node. Throws `ConfigError` naming `dataplane(<node>).<field>` when the dataplane
 * holds something unparseable (bad CIDR, unknown link kind, a pod without addresses...).
 */
export function compileNode(options: { info: NodeInfo; dp: NodeDataplane; topology: CompiledTopology; interner: Interner }): CNode {
  const { info, dp, topology, interner } = options;
  const F = `dataplane(${info.name})`;
  const devs = new Map<string, CDev>();
  const underlayBySubnet = new Map<string, CDev>();
  const addDev = (d: CDev, field: string): void => {
    if (devs.has(d.name)) fail(field, `device name ${d.name} is used twice on node ${info.name}`, d.name);
    devs.set(d.name, d);
  };
  const local = new Map<bigint, string>();
  const localByFam = famMap<bigint[]>(() => []);
  const localRanges = famMap<Range[]>(() => []);
  // (dst text) -> routes in order, per family, main table only
  const routeEntries = famMap<Map<string, CRoute[]>>(() => new Map());
  const addRoute = (r: CRoute): void => {
    const m = routeEntries.get(r.dst.family)!;
    const list = m.get(r.dst.text);
    if (list) {
      const same = list.findIndex((x) => x.metric === r.metric);
      if (same >= 0)
        list[same] = r; // replace semantics
      else list.push(r);
    } else m.set(r.dst.text, [r]);
  };
  const addLocal = (value: bigint, family: Family, dev: string): void => {
    const k = fkey(family, value);
    if (!local.has(k)) {
      local.set(k, dev);
      localByFam.get(family)!.push(value);
    }
  };
  const secondaries: { value: bigint; family: Family; dev: string }[] = [];
  let underlayMtu = 1500;
  info.underlay.forEach((u, i) => {
    const a = addr(u.address, `node(${info.name}).underlay[${i}].address`);
    const sub = topology.subnetList.find((s) => s.range.family === a.family && a.value >= s.range.base && a.value <= s.range.last);
    if (!sub) fail(`node(${info.name}).underlay[${i}].address`, "must lie inside a subnet of the topology", u.address);
    const mtu = u.mtu ?? sub.mtu;
    if (i === 0) underlayMtu = mtu;
    const dev: CDev = { name: u.iface, kind: "underlay", mac: fakeMac(`${info.name}/${u.iface}`), mtu, subnet: sub, iface: u, addrs: famMap(() => []) };
    dev.addrs.get(a.family)!.push(a.value);
    addDev(dev, `node(${info.name}).underlay[${i}].iface`);
    underlayBySubnet.set(sub.name, dev);
    addLocal(a.value, a.family, u.iface);
    // Secondary addresses (the fabric's): on the device, so the node answers ARP for them on this
    // subnet; local unless the dataplane routes them elsewhere (decided once the routes are known,
    // below). The primary stays the source.
    (u.secondaryAddresses ?? []).forEach((text, k) => {
      const s2 = addr(text, `node(${info.name}).underlay[${i}].secondaryAddresses[${k}]`);
      if (s2.family !== a.family || s2.value < sub.range.base || s2.value > sub.range.last) {
        fail(`node(${info.name}).underlay[${i}].secondaryAddresses[${k}]`, `must lie inside subnet ${sub.name} (${sub.range.text})`, text);
      }
      dev.addrs.get(a.family)!.push(s2.value);
      secondaries.push({ value: s2.value, family: s2.family, dev: u.iface });
    });
    const net = { family: a.family, base: sub.range.base, last: sub.range.last, length: u.prefixLength, text: "" };
    const mask = ((1n << BigInt(bitsOf(a.family))) - 1n) ^ ((1n << BigInt(bitsOf(a.family) - u.prefixLength)) - 1n);
    net.base = a.value & mask;
    net.last = net.base + (1n << BigInt(bitsOf(a.family) - u.prefixLength)) - 1n;
    net.text = `${fmt(net.base, a.family)}/${u.prefixLength}`;
    addRoute({ dst: net, type: "unicast", dev: u.iface, onlink: false, src: a.value, metric: 0, label: `${net.text} dev ${u.iface} (connected)` });
    if (u.gateway !== undefined) {
      const g = addr(u.gateway, `node(${info.name}).underlay[${i}].gateway`);
      const def = range(a.family === 4 ? "0.0.0.0/0" : "::/0");
      addRoute({ dst: def, type: "unicast", via: g.value, dev: u.iface, onlink: false, metric: 0, label: `${def.text} via ${u.gateway} dev ${u.iface} (underlay default)` });
    }
  });
  if (!Array.isArray(dp.links) || !Array.isArray(dp.routes) || !Array.isArray(dp.pods)) fail(F, "must be a NodeDataplane (links, addresses, routes, ... arrays)");
  const linkSeen = new Set<string>();
  dp.links.forEach((l, i) => {
    const f = `${F}.links[${i}]`;
    if (!["bridge", "vxlan", "ipip", "sleeve", "dummy"].includes(l.kind)) fail(`${f}.kind`, "must be bridge, vxlan, ipip, sleeve or dummy", l.kind);
    if (linkSeen.has(l.name)) fail(`${f}.name`, "must be unique among links", l.name);
    linkSeen.add(l.name);
    const dev: CDev = {
      name: l.name,
      kind: l.kind,
      link: l,
      mac: l.mac ? normMac(l.mac) : fakeMac(`${info.name}/${l.name}`),
      mtu: l.mtu ?? linkDefaultMtu(l, underlayMtu) ?? 0,
      addrs: famMap(() => []),
    };
    if (l.master !== undefined) dev.master = l.master;
    if ((l.kind === "vxlan" || l.kind === "ipip") && l.local !== undefined) dev.local = addr(l.local, `${f}.local`).value;
    addDev(dev, `${f}.name`);
  });
  // pods
  const pods = new Map<string, CPod>();
  const filters = new Map<string, { ingress?: CPolicy; egress?: CPolicy }>();
  dp.filters.forEach((p, i) => {
    const f = `${F}.filters[${i}]`;
    const cp = compilePolicy(p, f, interner);
    const entry = filters.get(p.pod) ?? {};
    if (entry[cp.direction]) fail(`${f}`, `pod ${p.pod} has two ${cp.direction} policies`, p.pod);
    entry[cp.direction] = cp;
    filters.set(p.pod, entry);
  });
  const bridgePods = new Map<string, { byAddr: Map<bigint, CPod>; byMac: Map<string, CPod> }>();
  const ranks = podInterfaceRanks(dp.pods);
  /** Each pod's own routes (connected ones included), per family, before a container's interfaces are merged. */
  const ownEntries = new Map<string, Map<Family, Map<string, CPodRoute>>>();
  dp.pods.forEach((p, i) => {
    const f = `${F}.pods[${i}]`;
    if (pods.has(p.key)) fail(`${f}.key`, "must be unique among pods", p.key);
    const fam = new Map<Family, CPodFamily>();
    const all = new Set<bigint>();
    const entries = famMap<Map<string, CPodRoute>>(() => new Map());
    const linkEntries = famMap<Map<string, CPodRoute>>(() => new Map());
    const addrsByFam = famMap<bigint[]>(() => []);
    const rank = ranks.get(p.key) ?? 0;
    const metricText = (m: number, explicit: boolean): string => (rank > 0 || explicit ? ` metric ${m}` : "");
    const netTexts: string[] = [];
    p.addresses.forEach((c, k) => {
      const { address, net } = ifaceAddr(c, `${f}.addresses[${k}]`);
      netTexts.push(net.text);
      addrsByFam.get(address.family)!.push(address.value);
      all.add(fkey(address.family, address.value));
      if (net.length < bitsOf(net.family)) {
        const metric = podRouteMetric({ family: net.family, rank, connected: true });
        const r: CPodRoute = { dst: net, label: `${net.text} dev ${p.ifName}${metricText(metric, false)} (connected)`, metric };
        entries.get(net.family)!.set(net.text, r);
        linkEntries.get(net.family)!.set(net.text, r);
      }
    });
    p.routes.forEach((r, k) => {
      const dst = range(r.dst, `${f}.routes[${k}].dst`);
      if (r.metric !== undefined && (!Number.isInteger(r.metric) || r.metric < 0 || r.metric > 0xffffffff)) fail(`${f}.routes[${k}].metric`, "must be an integer from 0 to 4294967295", r.metric);
      const metric = podRouteMetric({ family: dst.family, rank, connected: false, ...(r.metric !== undefined ? { metric: r.metric } : {}) });
      const cr: CPodRoute = { dst, label: `${routeLabel({ dst: dst.text, ...(r.via ? { via: r.via } : {}), dev: p.ifName })}${metricText(metric, r.metric !== undefined)}`, metric };
      if (r.via !== undefined) {
        const v = addr(r.via, `${f}.routes[${k}].via`);
        cr.via = v.value;
      }
      entries.get(dst.family)!.set(dst.text, cr);
      if (cr.via === undefined) linkEntries.get(dst.family)!.set(dst.text, cr);
    });
    ownEntries.set(p.key, entries);
    for (const family of [4, 6] as const) {
      const list = addrsByFam.get(family)!;
      if (list.length === 0 && entries.get(family)!.size === 0) continue;
      fam.set(family, {
        addrs: list,
        table: IntervalMap.build(
          family,
          [...entries.get(family)!.values()].map((v) => ({ range: v.dst, value: v })),
        ),
        links: IntervalMap.build(
          family,
          [...linkEntries.get(family)!.values()].map((v) => ({ range: v.dst, value: v })),
        ),
      });
    }
    const pol = filters.get(p.key);
    const sig = JSON.stringify([
      info.name,
      p.bridge ?? "",
      p.mtu,
      netTexts,
      p.routes.map((r) => [r.dst, r.via ?? "", r.scopeLink ? 1 : 0]),
      p.routes.some((r) => {
        if (r.via === undefined) return false;
        const v = addr(r.via);
        return all.has(fkey(v.family, v.value));
      })
        ? 1
        : 0,
      pol?.egress?.id ?? 0,
      (dp.sysctls.proxyArp ?? []).includes(p.hostIf) ? 1 : 0,
    ]);
    const pod: CPod = { id: `pod:${p.key}`, key: p.key, node: info.name, pif: p, mac: normMac(p.mac), fam, all, sendSignature: sig };
    if (pol?.ingress) pod.ingress = pol.ingress;
    if (pol?.egress) pod.egress = pol.egress;
    pods.set(p.key, pod);
    const dev: CDev = { name: p.hostIf, kind: "pod", pod, mac: fakeMac(`${info.name}/${p.hostIf}`), mtu: p.mtu, addrs: famMap(() => []) };
    if (p.bridge !== undefined) dev.master = p.bridge;
    addDev(dev, `${f}.hostIf`);
    if (p.bridge !== undefined) {
      let bp = bridgePods.get(p.bridge);
      if (!bp) bridgePods.set(p.bridge, (bp = { byAddr: new Map(), byMac: new Map() }));
      for (const a of all) if (!bp.byAddr.has(a)) bp.byAddr.set(a, pod);
      if (!bp.byMac.has(pod.mac)) bp.byMac.set(pod.mac, pod);
    }
  });
  // The interfaces of one container share its namespace: one routing table, where the kernel keeps
  // one route per (dst, metric) and uses the lowest metric. Each member sends through that table;
  // a route of a sibling takes the packet out of the sibling's interface.
  const clash = podRouteClash(dp.pods);
  if (clash)
    fail(
      `${F}.${clash.b}.metric`,
      `must differ from ${F}.${clash.a}'s: both interfaces of the container would route ${clash.dst} at metric ${clash.metric} in its namespace, and the kernel keeps only one of them`,
    );
  const containers = new Map<string, CPod[]>();
  for (const pod of pods.values()) {
    const list = containers.get(pod.pif.containerId);
    if (list) list.push(pod);
    else containers.set(pod.pif.containerId, [pod]);
  }
  for (const members of containers.values()) {
    if (members.length < 2) continue;
    for (const family of [4, 6] as const) {
      const best = new Map<string, CPodRoute>();
      for (const m of members) {
        for (const r of ownEntries.get(m.key)!.get(family)!.values()) {
          const have = best.get(r.dst.text);
          if (!have || r.metric < have.metric) best.set(r.dst.text, { ...r, owner: m });
        }
      }
      const table = IntervalMap.build(
        family,
        [...best.values()].map((v) => ({ range: v.dst, value: v })),
      );
      for (const m of members) {
        const own = m.fam.get(family);
        if (own) own.table = table;
        else if (best.size > 0) m.fam.set(family, { addrs: [], table, links: IntervalMap.build<CPodRoute>(family, []) });
      }
    }
    for (const m of members) m.sendSignature += `|own:${m.key}`;
  }
  // bridge MTU default: smallest port
  for (const d of devs.values()) {
    if (d.kind === "bridge" && d.mtu === 0) {
      let m = Infinity;
      for (const p of devs.values()) if (p.master === d.name) m = Math.min(m, p.mtu);
      d.mtu = Number.isFinite(m) ? m : 1500;
    }
  }
  // addresses
  dp.addresses.forEach((a, i) => {
    const f = `${F}.addresses[${i}]`;
    const { address, net } = ifaceAddr(a.cidr, `${f}.cidr`);
    const dev = devs.get(a.dev);
    if (dev) dev.addrs.get(address.family)!.push(address.value);
    addLocal(address.value, address.family, a.dev);
    if (net.length < bitsOf(net.family)) {
      addRoute({ dst: net, type: "unicast", dev: a.dev, onlink: false, src: address.value, metric: 0, label: `${net.text} dev ${a.dev} (connected)` });
    }
  });
  // routes (main table only: there are no policy rules that would select another table)
  dp.routes.forEach((r: RouteEntry, i) => {
    // The field path is only spelled out for an error (no named closure per route either: under a
    // loader that keeps function names, each one costs a defineProperty call).
    if (r.table !== undefined && r.table !== 254) return;
    const dst = range(r.dst, () => `${F}.routes[${i}].dst`);
    const type = r.type ?? "unicast";
    if (!ROUTE_TYPES.has(type)) fail(`${F}.routes[${i}].type`, "must be unicast, blackhole, unreachable or local", r.type);
    const cr = new DpRoute(r, dst, type);
    if (r.via !== undefined) {
      const v = addr(r.via, () => `${F}.routes[${i}].via`);
      if (v.family !== dst.family) fail(`${F}.routes[${i}].via`, `must be of the same family as dst ${r.dst}`, r.via);
      cr.via = v.value;
    }
    if (r.dev !== undefined) cr.dev = r.dev;
    if (r.src !== undefined) cr.src = addr(r.src, `${F}.routes[${i}].src`).value;
    if (r.mtu !== undefined) cr.mtu = r.mtu;
    if (type === "local") {
      if (dst.length === bitsOf(dst.family)) addLocal(dst.base, dst.family, r.dev ?? "lo");
      else localRanges.get(dst.family)!.push(dst);
      return;
    }
    addRoute(cr);
  });
  // A secondary address is the node's own unless its main table holds a host route for exactly
  // that address (the best one by metric: unicast, with a device), e.g. to the pod that holds it
  // (Azure CNI's transparent mode): then the node forwards packets for it (see
  // `UnderlayInterface.secondaryAddresses`).
  if (secondaries.length > 0) {
    const hostRouted = new Set<bigint>();
    for (const [family, m] of routeEntries) {
      for (const list of m.values()) {
        if (list[0]!.dst.length !== bitsOf(family)) continue;
        let best = list[0]!;
        for (const r of list) if (r.metric < best.metric) best = r;
        if (best.type === "unicast" && best.dev !== undefined) hostRouted.add(fkey(family, best.dst.base));
      }
    }
    for (const s2 of secondaries) if (!hostRouted.has(fkey(s2.family, s2.value))) addLocal(s2.value, s2.family, s2.dev);
  }
  const fam = new Map<Family, CNodeFamily>();
  const forwarding = { 4: dp.sysctls.ipv4Forwarding === true, 6: dp.sysctls.ipv6Forwarding === true };
  for (const family of [4, 6] as const) {
    const chosen: { range: Range; value: CRoute }[] = [];
    const linkChosen: { range: Range; value: CRoute }[] = [];
    for (const list of routeEntries.get(family)!.values()) {
      let best = list[0]!;
      for (const r of list) if (r.metric < best.metric) best = r;
      chosen.push({ range: best.dst, value: best });
      let b: CRoute | undefined;
      for (const r of list) if (r.type === "unicast" && r.via === undefined && r.dev !== undefined && (b === undefined || r.metric < b.metric)) b = r;
      if (b !== undefined) linkChosen.push({ range: b.dst, value: b });
    }
    fam.set(family, {
      routes: IntervalMap.build(family, chosen),
      links: IntervalMap.build(family, linkChosen),
      local: localByFam.get(family)!.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      localRanges: localRanges.get(family)!,
      forwarding: forwarding[family],
    });
  }
  // A routed pod with proxy ARP: the host answers its ARP for targets routed out of another
  // device. Pods of one sender class are told apart only when some route sends more than the
  // pod's own addresses out of its hostIf (then the answer would differ per member).
  for (const pod of pods.values()) {
    if (pod.pif.bridge !== undefined || !(dp.sysctls.proxyArp ?? []).includes(pod.pif.hostIf)) continue;
    let exclusive = true;
    for (const [family, f] of fam) {
      for (const list of routeEntries.get(family)!.values()) {
        for (const r of list) {
          const dev = r.dev ?? (r.via !== undefined ? f.links.lookup(r.via)?.dev : undefined);
          if (dev !== pod.pif.hostIf) continue;
          if (r.dst.length !== bitsOf(family) || !pod.all.has(fkey(family, r.dst.base))) exclusive = false;
        }
      }
    }
    if (!exclusive) {
      pod.sendSignature += `|own:${pod.key}`;
      pod.hostIfShared = true;
    }
  }
  // neighbours & fdb
  const neigh = new Map<string, Map<bigint, string>>();
  dp.neighbours.forEach((n, i) => {
    const a = addr(n.ip, () => `${F}.neighbours[${i}].ip`);
    let m = neigh.get(n.dev);
    if (!m) neigh.set(n.dev, (m = new Map()));
    m.set(fkey(a.family, a.value), normMac(n.mac));
  });
  const fdb = new Map<string, Map<string, CFdb>>();
  const flood = new Map<string, CFdb[]>();
  dp.fdb.forEach((e, i) => {
    const d = addr(e.dst, () => `${F}.fdb[${i}].dst`);
    const ce: CFdb = { entry: e, dst: d.value, family: d.family };
    const mac = normMac(e.mac);
    if (mac === "00:00:00:00:00:00") {
      let l = flood.get(e.dev);
      if (!l) flood.set(e.dev, (l = []));
      l.push(ce);
    } else {
      let m = fdb.get(e.dev);
      if (!m) fdb.set(e.dev, (m = new Map()));
      m.set(mac, ce);
    }
  });
  const bridgeTunnels = new Map<string, CDev[]>();
  const vxlan = new Map<number, CDev>();
  const sleeve = new Map<number, CDev>();
  const ipip: CDev[] = [];
  for (const d of [...devs.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const l = d.link;
    if (!l) continue;
    if (l.kind === "vxlan") {
      const key = vxlanKey(l.vni, l.port);
      if (!vxlan.has(key)) vxlan.set(key, d);
    } else if (l.kind === "sleeve") {
      if (!sleeve.has(l.port)) sleeve.set(l.port, d);
    } else if (l.kind === "ipip") ipip.push(d);
    if ((l.kind === "vxlan" || l.kind === "sleeve") && l.master !== undefined) {
      let list = bridgeTunnels.get(l.master);
      if (!list) bridgeTunnels.set(l.master, (list = []));
      list.push(d);
    }
  }
  const nat: CNat[] = dp.nat.map((n, i) => {
    const f = `${F}.nat[${i}]`;
    if (n.kind !== "masquerade" && n.kind !== "snat") fail(`${f}.kind`, 'must be "masquerade" or "snat"', n.kind);
    const sources = n.sources.map((s, k) => range(s, `${f}.sources[${k}]`));
    const sourcesId = interner.id(`nat-sources|${sources.map((s) => s.text).join(",")}`);
    const c: CNat = {
      rule: n,
      sources,
      sourcesId,
      probe: `|${sourcesId}|`,
      except: n.exceptDestinations.map((s, k) => range(s, `${f}.exceptDestinations[${k}]`)),
    };
    if (n.kind === "snat") {
      if (n.toAddress === undefined) fail(`${f}.toAddress`, "is required for snat");
      c.toAddress = addr(n.toAddress, `${f}.toAddress`).value;
    }
    return c;
  });
  return {
    name: info.name,
    id: `node:${info.name}`,
    info,
    dp,
    fam,
    local,
    devs,
    neigh,
    fdb,
    flood,
    pods,
    bridgePods,
    bridgeTunnels,
    vxlan,
    sleeve,
    ipip,
    nat,
    proxyArp: new Set(dp.sysctls.proxyArp ?? []),
    underlayBySubnet,
  };
}

/** Map key of a vxlan device: VNI (24 bits) and UDP port (16 bits). */
export function vxlanKey(vni: number, port: number): number {
  return vni * 65536 + port;
}

/** Whether `value` is a local address of the node (addresses or local-type routes). */
export function isLocal(node: CNode, value: bigint, family: Family): boolean {
  if (node.local.has(fkey(family, value))) return true;
  const f = node.fam.get(family)!;
  for (const r of f.localRanges) if (value >= r.base && value <= r.last) return true;
  return false;
}

/** First address of a family on a device, if any. */
export function devAddress(dev: CDev, family: Family): bigint | undefined {
  return dev.addrs.get(family)?.[0];
}

/**
 * Source address the kernel would pick for a packet leaving through `dev`: the device's first
 * address of the family, else the first underlay address, else any local address of the family.
 */
export function selectSource(node: CNode, dev: CDev | undefined, family: Family): bigint | undefined {
  if (dev) {
    const a = devAddress(dev, family);
    if (a !== undefined) return a;
  }
  for (const d of node.devs.values()) if (d.kind === "underlay" && devAddress(d, family) !== undefined) return devAddress(d, family);
  return node.fam.get(family)!.local[0];
}
