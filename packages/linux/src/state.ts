/**
 * The kernel objects the renderer owns, in one normalized shape used for both sides of the diff:
 * what the kernel holds (read with `ip -j`, or remembered from the last apply) and what a
 * NodeDataplane asks for (`desiredState`). Everything is keyed the way the kernel identifies it, so
 * the diff is map lookups.
 */
import {
  ConfigError,
  Prefix,
  canonicalAddress,
  parseInterfaceAddress,
  podInterfaceRanks,
  podRouteClash,
  podRouteMetric,
  type Family,
  type NodeDataplane,
  type PodInterface,
  type RouteType,
} from "@cnikit/core";
import { renderNftTable } from "./nft.ts";
import { deriveMac, hash32, normalizeMac, sortByKey } from "./util.ts";

/** Kinds of links the renderer creates (ipip and sleeve are refused by feature detection). */
export type OwnedLinkKind = "bridge" | "vxlan" | "dummy" | "ipip";

/** VXLAN parameters that cannot change without recreating the device. */
export interface VxlanState {
  vni: number;
  port: number;
  local: string;
  /** Underlay device; undefined in a desired state = not bound (or not compared). */
  dev?: string;
  learning: boolean;
  gbp: boolean;
}

/** A link the renderer owns (alias `cnikit:<owner>`). */
export interface LinkState {
  name: string;
  kind: string;
  mac: string;
  /** Desired: absent = the kernel's default, not compared. Observed: always set. */
  mtu?: number;
  master?: string;
  up: boolean;
  /** Bridges: per-bridge nf_call_iptables/ip6tables (bridged traffic through the filter rules). */
  nfCall?: boolean;
  vxlan?: VxlanState;
}

/** A pod's host-side veth (alias `cnikit:<owner>:pod:<hash>`). */
export interface PodState {
  hostIf: string;
  /** Hash of the pod's configuration (both ends); a different hash = recreate the veth. */
  hash: string;
  hostMac: string;
  master?: string;
  up: boolean;
  /** The pod, in a desired state (and in the cache after it was applied). */
  spec?: PodInterface;
  /** Its rank among its container's interfaces (`podInterfaceRanks`): 0 = the routes at the kernel's default metric. */
  rank?: number;
}

/** An address on a link (owned links, or recorded on links the renderer does not own). */
export interface AddrState {
  dev: string;
  /** Canonical interface address `10.244.1.1/24`. */
  cidr: string;
  family: Family;
}

/** A route with the renderer's protocol, normalized as `ip -j` shows it. */
export interface RouteState {
  /** `table dst metric`: what the kernel identifies a route by (for `replace` and `del`). */
  key: string;
  table: number;
  family: Family;
  dst: string;
  /** Normalized: IPv6 metric 0 is 1024, as the kernel stores it. */
  metric: number;
  type: RouteType;
  via?: string;
  dev?: string;
  onlink: boolean;
  src?: string;
  mtu?: number;
}

/** A permanent neighbour with the renderer's protocol. */
export interface NeighState {
  dev: string;
  ip: string;
  mac: string;
}

/** A VXLAN FDB remote on an owned vxlan link. */
export interface FdbState {
  dev: string;
  mac: string;
  dst: string;
  vni?: number;
}

/** Everything the renderer owns in one namespace. */
export interface KernelState {
  links: Map<string, LinkState>;
  /** By host interface name. */
  pods: Map<string, PodState>;
  /** By `dev cidr`. */
  addrs: Map<string, AddrState>;
  /** By `RouteState.key`. */
  routes: Map<string, RouteState>;
  /** By `dev ip`. */
  neigh: Map<string, NeighState>;
  /** By `dev mac dst vni`. */
  fdb: Map<string, FdbState>;
  /** `/proc/sys`-relative path (`net/ipv4/ip_forward`) -> value. */
  sysctls: Map<string, string>;
  /** Hash of our nft table; undefined = no table; `""` = a table whose content is unknown. */
  nft: string | undefined;
}

/** A desired state: the owned objects plus the nft table text. */
export interface DesiredState extends KernelState {
  /** The full `table inet cnikit-<owner> { ... }` text, when a table is needed. */
  nftText?: string;
}

/** An empty state (a fresh namespace, as far as owned objects go). */
export function emptyState(): KernelState {
  return { links: new Map(), pods: new Map(), addrs: new Map(), routes: new Map(), neigh: new Map(), fdb: new Map(), sysctls: new Map(), nft: undefined };
}

/** A deep-enough copy (maps and entries) of a state. */
export function cloneState(s: KernelState): KernelState {
  const copy = <V extends object>(m: Map<string, V>) => new Map([...m].map(([k, v]) => [k, { ...v }]));
  return {
    links: new Map([...s.links].map(([k, v]) => [k, { ...v, ...(v.vxlan ? { vxlan: { ...v.vxlan } } : {}) }])),
    pods: copy(s.pods),
    addrs: copy(s.addrs),
    routes: copy(s.routes),
    neigh: copy(s.neigh),
    fdb: copy(s.fdb),
    sysctls: new Map(s.sysctls),
    nft: s.nft,
  };
}

/** Route identity as the kernel sees it. */
export function routeKey(table: number, dst: string, metric: number): string {
  return `${table} ${dst} ${metric}`;
}

/** The metric the kernel stores for a route of `family` asked with `metric` (IPv6: 0 -> 1024). */
export function kernelMetric(family: Family, metric: number | undefined): number {
  const m = metric ?? 0;
  return family === 6 && m === 0 ? 1024 : m;
}

/** `/proc/sys`-relative path of an interface's proxy_arp switch. */
export function proxyArpKey(ifname: string): string {
  return `net/ipv4/conf/${ifname}/proxy_arp`;
}

/** The alias that marks a link as owned. */
export function linkAlias(owner: string): string {
  return `cnikit:${owner}`;
}

/** The alias that marks a pod's host veth as owned, with the pod's configuration hash. */
export function podAlias(owner: string, hash: string): string {
  return `cnikit:${owner}:pod:${hash}`;
}

/** The MAC the renderer gives a pod's host veth (stable: derived from its name). */
export function hostVethMac(hostIf: string): string {
  return deriveMac(`cnikit-host-veth/${hostIf}`);
}

/**
 * Hash of what a pod's veth pair is made of; any change means the pair is rebuilt. The metrics
 * count only where they are not the kernel's default (a route's own metric, a rank above 0), so
 * the hash of a container's only interface is what it always was.
 */
export function podHash(pod: PodInterface, rank = 0): string {
  const addresses = [...pod.addresses].map((a) => canonicalIfaceAddr(a)).sort();
  const routes = sortByKey(pod.routes, (r) => `${r.dst} ${r.via ?? ""} ${r.scopeLink ? 1 : 0}`).map((r) => {
    const base = [Prefix.parse(r.dst).toString(), r.via ?? "", r.scopeLink === true];
    return r.metric !== undefined || rank > 0
      ? [...base, podRouteMetric({ family: Prefix.parse(r.dst).family, rank, connected: false, ...(r.metric !== undefined ? { metric: r.metric } : {}) })]
      : base;
  });
  const parts: unknown[] = [pod.ifName, normalizeMac(pod.mac), pod.mtu, addresses, routes, pod.bridge ?? ""];
  if (rank > 0) parts.push(rank);
  return hash32(JSON.stringify(parts));
}

function canonicalIfaceAddr(text: string): string {
  const a = parseInterfaceAddress(text);
  return `${a.address}/${a.prefix.length}`;
}

/** Owner names: used in link aliases and the nft table name. */
export const OWNER_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const IFNAME_RE = /^[^\s/:"'\\]{1,15}$/;

/** Renderer options a desired state depends on. */
export interface StateContext {
  owner: string;
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: "linux", field, rule } : { component: "linux", field, rule, value });
}

function ifname(value: unknown, field: string): string {
  if (typeof value !== "string" || !IFNAME_RE.test(value) || value === "." || value === "..") {
    fail(field, "must be an interface name of 1-15 characters without spaces, '/', ':' or quotes", value);
  }
  return value;
}

function mac(value: unknown, field: string): string {
  const m = typeof value === "string" ? normalizeMac(value) : undefined;
  if (m === undefined) fail(field, "must be a MAC address aa:bb:cc:dd:ee:ff", value);
  return m;
}

function unicastMac(value: unknown, field: string): string {
  const m = mac(value, field);
  if ((parseInt(m.slice(0, 2), 16) & 1) === 1 || m === "00:00:00:00:00:00") fail(field, "must be a unicast MAC (first octet even, not all zeros)", value);
  return m;
}

function intIn(value: unknown, lo: number, hi: number, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < lo || value > hi) fail(field, `must be an integer from ${lo} to ${hi}`, value);
  return value;
}

function addr(value: unknown, field: string): { text: string; family: Family } {
  const text = canonicalAddress(value as string, { field, component: "linux" });
  return { text, family: text.includes(":") ? 6 : 4 };
}

function prefix(value: unknown, field: string): Prefix {
  return Prefix.parse(value, { field, component: "linux" });
}

const NETNS_PATH_RE = /^\/[^\s"'\\]*$/;

/**
 * Validates `dp` and computes the state the kernel must hold for it. Pure.
 *
 * @throws ConfigError naming `dataplane(<node>).<field>` and the rule for anything the renderer
 *   cannot render: bad names, addresses, prefixes, MACs or MTUs; duplicate link or pod names; a
 *   pod without a netns path; learned (non-permanent) neighbour or FDB entries (those belong to the
 *   kernel); FDB entries on a device that is not a vxlan link of the dataplane; two policies for
 *   one pod and direction; snat without `toAddress`.
 */
export function desiredState(dp: NodeDataplane, ctx: StateContext): DesiredState {
  const F = `dataplane(${dp.node})`;
  if (!OWNER_RE.test(ctx.owner)) fail("owner", "must be 1-32 lower-case letters, digits, '_' or '-', starting with a letter or digit", ctx.owner);
  for (const k of ["links", "addresses", "routes", "neighbours", "fdb", "nat", "filters", "pods"] as const) {
    if (!Array.isArray(dp[k])) fail(`${F}.${k}`, "must be an array");
  }
  const s: DesiredState = { ...emptyState() };
  const filtered = new Set(dp.filters.map((f) => f.pod));
  const bridgesFiltered = new Set(dp.pods.filter((p) => p.bridge !== undefined && filtered.has(p.key)).map((p) => p.bridge!));
  dp.links.forEach((l, i) => {
    const f = `${F}.links[${i}]`;
    const name = ifname(l.name, `${f}.name`);
    if (s.links.has(name)) fail(`${f}.name`, "must be unique among links", name);
    if (!["bridge", "vxlan", "dummy", "ipip", "sleeve"].includes(l.kind)) fail(`${f}.kind`, "must be bridge, vxlan, ipip, sleeve or dummy", l.kind);
    const link: LinkState = { name, kind: l.kind, mac: l.mac !== undefined ? unicastMac(l.mac, `${f}.mac`) : deriveMac(`${dp.node}/${name}`), up: true };
    if (l.mtu !== undefined) link.mtu = intIn(l.mtu, 68, 65535, `${f}.mtu`);
    if (l.master !== undefined) link.master = ifname(l.master, `${f}.master`);
    if (l.kind === "bridge") link.nfCall = bridgesFiltered.has(name);
    if (l.kind === "vxlan") {
      const vx: VxlanState = {
        vni: intIn(l.vni, 0, 0xffffff, `${f}.vni`),
        port: intIn(l.port, 1, 65535, `${f}.port`),
        local: addr(l.local, `${f}.local`).text,
        learning: l.learning === true,
        gbp: l.gbp === true,
      };
      if (l.underlayDev !== undefined) vx.dev = ifname(l.underlayDev, `${f}.underlayDev`);
      link.vxlan = vx;
    }
    s.links.set(name, link);
  });
  const keys = new Set<string>();
  const ranks = podInterfaceRanks(dp.pods);
  dp.pods.forEach((p, i) => {
    const f = `${F}.pods[${i}]`;
    if (typeof p.key !== "string" || p.key === "") fail(`${f}.key`, "must be a non-empty string", p.key);
    if (keys.has(p.key)) fail(`${f}.key`, "must be unique among pods", p.key);
    keys.add(p.key);
    const hostIf = ifname(p.hostIf, `${f}.hostIf`);
    if (s.links.has(hostIf)) fail(`${f}.hostIf`, "must not be the name of a link of the dataplane", hostIf);
    if (s.pods.has(hostIf)) fail(`${f}.hostIf`, "must be unique among pods", hostIf);
    ifname(p.ifName, `${f}.ifName`);
    if (typeof p.netns !== "string" || !NETNS_PATH_RE.test(p.netns)) {
      fail(`${f}.netns`, "must be the absolute path of the pod's network namespace (CNI_NETNS), without spaces or quotes: the Linux renderer needs it", p.netns);
    }
    unicastMac(p.mac, `${f}.mac`);
    intIn(p.mtu, 68, 65535, `${f}.mtu`);
    if (!Array.isArray(p.addresses) || !Array.isArray(p.routes)) fail(f, "must have addresses and routes arrays");
    p.addresses.forEach((a, k) => parseInterfaceAddress(a, { field: `${f}.addresses[${k}]`, component: "linux" }));
    p.routes.forEach((r, k) => {
      const dst = prefix(r.dst, `${f}.routes[${k}].dst`);
      if (r.via !== undefined && addr(r.via, `${f}.routes[${k}].via`).family !== dst.family) fail(`${f}.routes[${k}].via`, `must be of the same family as dst ${r.dst}`, r.via);
      if (r.metric !== undefined) intIn(r.metric, 0, 0xffffffff, `${f}.routes[${k}].metric`);
    });
    if (p.bridge !== undefined) ifname(p.bridge, `${f}.bridge`);
    const rank = ranks.get(p.key) ?? 0;
    const pod: PodState = { hostIf, hash: podHash(p, rank), hostMac: hostVethMac(hostIf), up: true, spec: p };
    if (rank > 0) pod.rank = rank;
    if (p.bridge !== undefined) pod.master = p.bridge;
    s.pods.set(hostIf, pod);
  });
  const clash = podRouteClash(dp.pods);
  if (clash)
    fail(
      `${F}.${clash.b}.metric`,
      `must differ from ${F}.${clash.a}'s: both interfaces of the container would route ${clash.dst} at metric ${clash.metric} in its namespace, and the kernel keeps only one of them`,
    );
  dp.addresses.forEach((a, i) => {
    const f = `${F}.addresses[${i}]`;
    const dev = ifname(a.dev, `${f}.dev`);
    const ia = parseInterfaceAddress(a.cidr, { field: `${f}.cidr`, component: "linux" });
    const cidr = `${ia.address}/${ia.prefix.length}`;
    s.addrs.set(`${dev} ${cidr}`, { dev, cidr, family: ia.prefix.family });
  });
  dp.routes.forEach((r, i) => {
    const f = `${F}.routes[${i}]`;
    const dst = prefix(r.dst, `${f}.dst`);
    const type = r.type ?? "unicast";
    if (!["unicast", "blackhole", "unreachable", "local"].includes(type)) fail(`${f}.type`, "must be unicast, blackhole, unreachable or local", r.type);
    const table = r.table === undefined ? 254 : intIn(r.table, 1, 0xfffffffe, `${f}.table`);
    if (table === 255 || table === 253) fail(`${f}.table`, "must not be the local (255) or default (253) table", r.table);
    const metric = kernelMetric(dst.family, r.metric === undefined ? 0 : intIn(r.metric, 0, 0xffffffff, `${f}.metric`));
    const route: RouteState = { key: routeKey(table, dst.toString(), metric), table, family: dst.family, dst: dst.toString(), metric, type, onlink: r.onlink === true };
    if (r.via !== undefined) {
      if (type !== "unicast") fail(`${f}.via`, `must be absent for a ${type} route`, r.via);
      const v = addr(r.via, `${f}.via`);
      if (v.family !== dst.family) fail(`${f}.via`, `must be of the same family as dst ${r.dst}`, r.via);
      route.via = v.text;
    }
    if (r.dev !== undefined) route.dev = ifname(r.dev, `${f}.dev`);
    if (type === "local" && route.dev === undefined) route.dev = "lo";
    if (route.onlink && (route.via === undefined || route.dev === undefined)) fail(`${f}.onlink`, "needs both via and dev", r);
    if (type === "unicast" && route.via === undefined && route.dev === undefined) fail(f, "a unicast route needs via or dev", r);
    if (r.src !== undefined) route.src = addr(r.src, `${f}.src`).text;
    if (r.mtu !== undefined) route.mtu = intIn(r.mtu, 68, 65535, `${f}.mtu`);
    s.routes.set(route.key, route);
  });
  dp.neighbours.forEach((n, i) => {
    const f = `${F}.neighbours[${i}]`;
    if (n.permanent !== true) fail(`${f}.permanent`, "must be true: only permanent neighbours are rendered (learned entries belong to the kernel)", n.permanent);
    const dev = ifname(n.dev, `${f}.dev`);
    const ip = addr(n.ip, `${f}.ip`).text;
    s.neigh.set(`${dev} ${ip}`, { dev, ip, mac: mac(n.mac, `${f}.mac`) });
  });
  dp.fdb.forEach((e, i) => {
    const f = `${F}.fdb[${i}]`;
    if (e.permanent !== true) fail(`${f}.permanent`, "must be true: only permanent FDB entries are rendered (learned entries belong to the kernel)", e.permanent);
    const dev = ifname(e.dev, `${f}.dev`);
    const link = s.links.get(dev);
    if (!link || (link.kind !== "vxlan" && link.kind !== "sleeve")) fail(`${f}.dev`, "must name a vxlan link of the dataplane", e.dev);
    const entry: FdbState = { dev, mac: mac(e.mac, `${f}.mac`), dst: addr(e.dst, `${f}.dst`).text };
    if (e.vni !== undefined) entry.vni = intIn(e.vni, 0, 0xffffff, `${f}.vni`);
    s.fdb.set(`${dev} ${entry.mac} ${entry.dst} ${entry.vni ?? ""}`, entry);
  });
  const sys = dp.sysctls ?? {};
  if (sys.ipv4Forwarding !== undefined) s.sysctls.set("net/ipv4/ip_forward", sys.ipv4Forwarding ? "1" : "0");
  if (sys.ipv6Forwarding !== undefined) s.sysctls.set("net/ipv6/conf/all/forwarding", sys.ipv6Forwarding ? "1" : "0");
  if (sys.bridgeNfCall !== undefined) {
    s.sysctls.set("net/bridge/bridge-nf-call-iptables", sys.bridgeNfCall ? "1" : "0");
    s.sysctls.set("net/bridge/bridge-nf-call-ip6tables", sys.bridgeNfCall ? "1" : "0");
  }
  (sys.proxyArp ?? []).forEach((name, i) => s.sysctls.set(proxyArpKey(ifname(name, `${F}.sysctls.proxyArp[${i}]`)), "1"));
  const nft = renderNftTable({ owner: ctx.owner, dp, field: F });
  if (nft !== undefined) {
    s.nft = nft.hash;
    s.nftText = nft.text;
  }
  return s;
}
