/**
 * The simulated underlay: L2 subnets joined by routers, plus external hosts. Validated and compiled
 * once (routers get routes to every subnet by BFS over routers, plus their static routes).
 */
import { ConfigError, type ClusterTopology, type Family, type NodeInfo } from "@cnikit/core";
import { IntervalMap, addr, fkey, fmt, range, type Range } from "./addr.ts";

const COMPONENT = "sim";

/** Underlay: subnets joined by routers, plus "external" hosts (the internet stand-in). */
export interface SimTopology {
  subnets: { name: string; cidr: string; gateway?: string /* router address on it */; mtu?: number }[];
  /**
   * Each router has one address per subnet it joins; routers forward between their subnets and to
   * each other's subnets (routes computed by BFS over routers). Routers know NO pod routes unless
   * given `staticRoutes`.
   */
  routers?: { name: string; interfaces: { subnet: string; address: string }[]; staticRoutes?: { dst: string; via: string }[] }[];
  /** Hosts outside the cluster, e.g. { name: "internet", address: "192.0.2.200", subnet: "ext" }. */
  externals?: { name: string; address: string; subnet: string }[];
}

/**
 * Default topology: two node subnets 198.51.100.0/24 ("a", gw .1) and 203.0.113.0/24 ("b", gw .1)
 * joined by router "r1"; an "ext" subnet 192.0.2.0/24 with external host "internet" 192.0.2.200
 * reachable through r1.
 */
export function defaultTopology(): SimTopology {
  return {
    subnets: [
      { name: "a", cidr: "198.51.100.0/24", gateway: "198.51.100.1", mtu: 1500 },
      { name: "b", cidr: "203.0.113.0/24", gateway: "203.0.113.1", mtu: 1500 },
      { name: "ext", cidr: "192.0.2.0/24", gateway: "192.0.2.1", mtu: 1500 },
    ],
    routers: [
      {
        name: "r1",
        interfaces: [
          { subnet: "a", address: "198.51.100.1" },
          { subnet: "b", address: "203.0.113.1" },
          { subnet: "ext", address: "192.0.2.1" },
        ],
      },
    ],
    externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }],
  };
}

/** Single L2 subnet variant (for host-gw-like backends): only subnet "a" + router + ext. */
export function singleSubnetTopology(): SimTopology {
  return {
    subnets: [
      { name: "a", cidr: "198.51.100.0/24", gateway: "198.51.100.1", mtu: 1500 },
      { name: "ext", cidr: "192.0.2.0/24", gateway: "192.0.2.1", mtu: 1500 },
    ],
    routers: [
      {
        name: "r1",
        interfaces: [
          { subnet: "a", address: "198.51.100.1" },
          { subnet: "ext", address: "192.0.2.1" },
        ],
      },
    ],
    externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }],
  };
}

/**
 * A copy of `topology` whose subnets all have the given MTU (e.g. 9000 for jumbo frames, 1400 for
 * a cloud underlay whose overlay eats into 1500): nodes' NodeInfo carry it, the fabric uses it as
 * the underlay MTU of every subnet.
 */
export function withUnderlayMtu(topology: SimTopology, mtu: number): SimTopology {
  return { ...topology, subnets: topology.subnets.map((s) => ({ ...s, mtu })) };
}

export interface CSubnet {
  name: string;
  range: Range;
  gateway?: bigint;
  mtu: number;
  /** Addresses (family-tagged keys) of routers and externals on this subnet. */
  fixed: Map<bigint, { kind: "router" | "external"; name: string }>;
}

export interface CRouterRoute {
  dst: Range;
  subnet: string;
  via?: bigint;
  label: string;
}

export interface CRouter {
  name: string;
  /** Interface address per subnet name. */
  ifaces: Map<string, bigint>;
  /** Family-tagged keys of the router's addresses. */
  addrs: Set<bigint>;
  table: Map<Family, IntervalMap<CRouterRoute>>;
  /** The entries `table` was built from (so fabric routes can be added: `withFabricRoutes`). */
  entries: Map<Family, { range: Range; value: CRouterRoute }[]>;
}

export interface CExternal {
  name: string;
  address: bigint;
  family: Family;
  subnet: string;
}

export interface CompiledTopology {
  source: SimTopology;
  subnets: Map<string, CSubnet>;
  subnetList: CSubnet[];
  routers: Map<string, CRouter>;
  externals: Map<string, CExternal>;
  /** Subnets that host nodes by default (those without external hosts). */
  nodeSubnets: string[];
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: COMPONENT, field, rule } : { component: COMPONENT, field, rule, value });
}

/** Validates and compiles a topology. Throws `ConfigError` naming the field and the rule. */
export function compileTopology(topology: SimTopology): CompiledTopology {
  if (typeof topology !== "object" || topology === null || !Array.isArray(topology.subnets)) {
    fail("topology.subnets", "must be an array of subnets", topology);
  }
  if (topology.subnets.length === 0) fail("topology.subnets", "must list at least one subnet");
  const subnets = new Map<string, CSubnet>();
  const used = new Map<string, string>();
  const claim = (family: Family, value: bigint, who: string, field: string): void => {
    const key = `${family}|${value}`;
    const prev = used.get(key);
    if (prev !== undefined) fail(field, `address ${fmt(value, family)} is already used by ${prev}`);
    used.set(key, who);
  };
  topology.subnets.forEach((s, i) => {
    const field = `topology.subnets[${i}]`;
    if (typeof s.name !== "string" || s.name === "") fail(`${field}.name`, "must be a non-empty string", s.name);
    if (subnets.has(s.name)) fail(`${field}.name`, "must be unique among subnets", s.name);
    const r = range(s.cidr, `${field}.cidr`);
    for (const other of subnets.values()) {
      if (other.range.family === r.family && other.range.base <= r.last && r.base <= other.range.last) {
        fail(`${field}.cidr`, `must not overlap subnet ${other.name} (${other.range.text})`, s.cidr);
      }
    }
    const mtu = s.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) fail(`${field}.mtu`, "must be an integer from 576 to 65535", s.mtu);
    const sub: CSubnet = { name: s.name, range: r, mtu, fixed: new Map() };
    if (s.gateway !== undefined) {
      const g = addr(s.gateway, `${field}.gateway`);
      if (g.family !== r.family || g.value < r.base || g.value > r.last) fail(`${field}.gateway`, `must lie inside ${r.text}`, s.gateway);
      sub.gateway = g.value;
    }
    subnets.set(s.name, sub);
  });
  const routers = new Map<string, CRouter>();
  const routerStatics = new Map<string, { dst: Range; via: bigint; field: string }[]>();
  (topology.routers ?? []).forEach((r, i) => {
    const field = `topology.routers[${i}]`;
    if (typeof r.name !== "string" || r.name === "") fail(`${field}.name`, "must be a non-empty string", r.name);
    if (routers.has(r.name)) fail(`${field}.name`, "must be unique among routers", r.name);
    if (!Array.isArray(r.interfaces) || r.interfaces.length === 0) fail(`${field}.interfaces`, "must list at least one interface");
    const router: CRouter = { name: r.name, ifaces: new Map(), addrs: new Set(), table: new Map(), entries: new Map() };
    r.interfaces.forEach((itf, k) => {
      const f = `${field}.interfaces[${k}]`;
      const sub = subnets.get(itf.subnet);
      if (!sub) fail(`${f}.subnet`, "must name a subnet of the topology", itf.subnet);
      if (router.ifaces.has(itf.subnet)) fail(`${f}.subnet`, "a router has at most one interface per subnet", itf.subnet);
      const a = addr(itf.address, `${f}.address`);
      if (a.family !== sub.range.family || a.value < sub.range.base || a.value > sub.range.last) {
        fail(`${f}.address`, `must lie inside subnet ${sub.name} (${sub.range.text})`, itf.address);
      }
      claim(a.family, a.value, `router ${r.name}`, `${f}.address`);
      router.ifaces.set(itf.subnet, a.value);
      router.addrs.add(fkey(a.family, a.value));
      sub.fixed.set(fkey(a.family, a.value), { kind: "router", name: r.name });
    });
    routerStatics.set(
      r.name,
      (r.staticRoutes ?? []).map((sr, k) => {
        const f = `${field}.staticRoutes[${k}]`;
        const dst = range(sr.dst, `${f}.dst`);
        const via = addr(sr.via, `${f}.via`);
        const onLink = [...router.ifaces.keys()].some((sn) => {
          const sub = subnets.get(sn)!;
          return sub.range.family === via.family && via.value >= sub.range.base && via.value <= sub.range.last;
        });
        if (!onLink) fail(`${f}.via`, `must lie on a subnet router ${r.name} is attached to`, sr.via);
        return { dst, via: via.value, field: f };
      }),
    );
    routers.set(r.name, router);
  });
  for (const sub of subnets.values()) {
    if (sub.gateway !== undefined && sub.fixed.get(fkey(sub.range.family, sub.gateway))?.kind !== "router") {
      fail(`topology.subnets[${topology.subnets.findIndex((s) => s.name === sub.name)}].gateway`, "must be the address of a router interface on that subnet", fmt(sub.gateway, sub.range.family));
    }
  }
  const externals = new Map<string, CExternal>();
  (topology.externals ?? []).forEach((e, i) => {
    const field = `topology.externals[${i}]`;
    if (typeof e.name !== "string" || e.name === "") fail(`${field}.name`, "must be a non-empty string", e.name);
    if (externals.has(e.name) || routers.has(e.name) || subnets.has(e.name)) fail(`${field}.name`, "must be unique among externals and routers", e.name);
    const sub = subnets.get(e.subnet);
    if (!sub) fail(`${field}.subnet`, "must name a subnet of the topology", e.subnet);
    const a = addr(e.address, `${field}.address`);
    if (a.family !== sub.range.family || a.value < sub.range.base || a.value > sub.range.last) {
      fail(`${field}.address`, `must lie inside subnet ${sub.name} (${sub.range.text})`, e.address);
    }
    claim(a.family, a.value, `external ${e.name}`, `${field}.address`);
    sub.fixed.set(fkey(a.family, a.value), { kind: "external", name: e.name });
    externals.set(e.name, { name: e.name, address: a.value, family: a.family, subnet: e.subnet });
  });

  // Router routes: connected subnets, then BFS over routers for the others, then static routes.
  for (const router of routers.values()) {
    const entries = new Map<Family, Map<string, { range: Range; value: CRouterRoute }>>();
    const put = (r: CRouterRoute, override: boolean): void => {
      let m = entries.get(r.dst.family);
      if (!m) entries.set(r.dst.family, (m = new Map()));
      if (!override && m.has(r.dst.text)) return;
      m.set(r.dst.text, { range: r.dst, value: r });
    };
    for (const sn of router.ifaces.keys()) {
      const sub = subnets.get(sn)!;
      put({ dst: sub.range, subnet: sn, label: `${sub.range.text} connected (${sn})` }, true);
    }
    // BFS: state = router; edges = shared subnets.
    const firstHop = new Map<string, { subnet: string; via: bigint }>(); // subnet name -> first hop
    const seenRouters = new Set<string>([router.name]);
    let frontier: { r: CRouter; hop: { subnet: string; via: bigint } | undefined }[] = [{ r: router, hop: undefined }];
    const reached = new Set<string>(router.ifaces.keys());
    while (frontier.length > 0) {
      const next: typeof frontier = [];
      for (const { r, hop } of frontier) {
        for (const sn of r.ifaces.keys()) {
          for (const other of routers.values()) {
            if (seenRouters.has(other.name) || !other.ifaces.has(sn)) continue;
            seenRouters.add(other.name);
            const h = hop ?? { subnet: sn, via: other.ifaces.get(sn)! };
            for (const osn of other.ifaces.keys()) {
              if (!reached.has(osn)) {
                reached.add(osn);
                firstHop.set(osn, h);
              }
            }
            next.push({ r: other, hop: h });
          }
        }
      }
      frontier = next;
    }
    for (const [sn, hop] of firstHop) {
      const sub = subnets.get(sn)!;
      put({ dst: sub.range, subnet: hop.subnet, via: hop.via, label: `${sub.range.text} via ${fmt(hop.via, sub.range.family)}` }, false);
    }
    for (const sr of routerStatics.get(router.name) ?? []) {
      const sn = [...router.ifaces.keys()].find((n) => {
        const s = subnets.get(n)!;
        return s.range.family === sr.dst.family && sr.via >= s.range.base && sr.via <= s.range.last;
      })!;
      put({ dst: sr.dst, subnet: sn, via: sr.via, label: `${sr.dst.text} via ${fmt(sr.via, sr.dst.family)} (static)` }, true);
    }
    for (const [family, m] of entries) {
      router.entries.set(family, [...m.values()]);
      router.table.set(family, IntervalMap.build(family, [...m.values()]));
    }
  }
  const nodeSubnets = [...subnets.values()].filter((s) => ![...s.fixed.values()].some((f) => f.kind === "external")).map((s) => s.name);
  return { source: topology, subnets, subnetList: [...subnets.values()], routers, externals, nodeSubnets: nodeSubnets.length > 0 ? nodeSubnets : [...subnets.keys()] };
}

/** A fabric route as the routers take it: `dst` is carried to the node at underlay address `via`. */
export interface FabricRouteEntry {
  dst: string;
  node: string;
  via: string;
}

/**
 * `topo` with the fabric's routes in every router's table (the "VNet" route table): a router on
 * the node's subnet sends `dst` straight to the node's underlay address; the others send it the
 * way they reach that address. A fabric route overrides a static or connected route of the same
 * prefix (as a cloud's user-defined route does); longest prefix still wins. Pure; `topo` is not
 * changed. Throws `ConfigError` naming `fabric.routes[i]` for a bad dst or via.
 */
export function withFabricRoutes(topo: CompiledTopology, routes: readonly FabricRouteEntry[]): CompiledTopology {
  if (routes.length === 0) return topo;
  const parsed = routes.map((r, i) => ({ r, dst: range(r.dst, `fabric.routes[${i}].dst`), via: addr(r.via, `fabric.routes[${i}].via`) }));
  const routers = new Map<string, CRouter>();
  for (const router of topo.routers.values()) {
    const entries = new Map<Family, Map<string, { range: Range; value: CRouterRoute }>>();
    for (const [family, list] of router.entries) entries.set(family, new Map(list.map((e) => [e.range.text, e])));
    for (const { r, dst, via } of parsed) {
      if (via.family !== dst.family) continue;
      const toNode = router.table.get(via.family)?.lookup(via.value);
      if (!toNode) continue;
      const value: CRouterRoute = {
        dst,
        subnet: toNode.subnet,
        via: toNode.via ?? via.value,
        label: `${dst.text} via ${fmt(toNode.via ?? via.value, dst.family)} (fabric route to node ${r.node})`,
      };
      let m = entries.get(dst.family);
      if (!m) entries.set(dst.family, (m = new Map()));
      m.set(dst.text, { range: dst, value });
    }
    const table = new Map<Family, IntervalMap<CRouterRoute>>();
    const kept = new Map<Family, { range: Range; value: CRouterRoute }[]>();
    for (const [family, m] of entries) {
      kept.set(family, [...m.values()]);
      table.set(family, IntervalMap.build(family, [...m.values()]));
    }
    routers.set(router.name, { ...router, table, entries: kept });
  }
  return { ...topo, routers };
}

/**
 * The `ClusterTopology` a backend's `summarize(config, cluster)` is given for a simulated cluster:
 * the subnets that host nodes (those without external hosts) and the nodes known so far. Throws
 * `ConfigError` for an invalid topology.
 */
export function clusterTopologyOf(topology: SimTopology, nodes: NodeInfo[] = []): ClusterTopology {
  const c = compileTopology(topology);
  return { subnets: c.nodeSubnets.map((name) => ({ name, cidr: c.subnets.get(name)!.range.text })), nodes: nodes.map((n) => structuredClone(n)) };
}
