/**
 * A compiled snapshot of the whole simulated network: the topology, every node compiled, and the
 * cross-node indexes the walk needs (who owns an underlay address, who answers ARP on a subnet,
 * which remote VTEP owns a MAC). Immutable once built; lookups that depend on several nodes are
 * cached inside it, so a new World is built whenever anything changes.
 */
import type { Family } from "@cnikit/core";
import { fkey, inRanges, type Range } from "./addr.ts";
import { isLocal, vxlanKey, type CDev, type CNode, type CPod } from "./compile.ts";
import type { CExternal, CRouter, CSubnet, CompiledTopology } from "./topology.ts";

export type Responder = { kind: "node"; node: CNode; dev: CDev } | { kind: "router"; router: CRouter } | { kind: "external"; ext: CExternal };

export interface TunnelPeer {
  /** Underlay address of the remote end. */
  dst: bigint;
  family: Family;
  vni: number;
  node: CNode;
  dev: CDev;
}

export interface FloodIndex {
  /** Family-tagged address -> MAC of whoever answers ARP for it behind the flood entries. */
  byAddr: Map<bigint, string>;
  /** MAC -> the flood destination that owns it. */
  byMac: Map<string, TunnelPeer>;
}

interface SubnetIndex {
  underlay: Map<bigint, { node: CNode; dev: CDev }>;
  anyLocal: Map<bigint, { node: CNode; dev: CDev }>;
  proxy: { node: CNode; dev: CDev }[];
}

/** Every underlay address some tunnel device (vxlan, sleeve) of some node sends to, sorted. */
export interface TunnelEndpoints {
  addrs: bigint[];
  /** Address -> its index in `addrs`. */
  index: Map<bigint, number>;
  /** FDB and flood entries per node (all its tunnel devices together, any family). */
  entries: Map<CNode, number>;
}

export class World {
  readonly topo: CompiledTopology;
  readonly nodes: Map<string, CNode>;
  /** Family-tagged local address -> node (first node in name order wins). */
  readonly nodeByLocal = new Map<bigint, CNode>();
  readonly pods = new Map<string, CPod>();
  /** Nodes by endpoint id (`node:<name>`). */
  readonly nodeById = new Map<string, CNode>();
  /** NAT source lists by interned id, for grouping senders. */
  readonly natSources = new Map<number, Range[]>();
  private readonly subnets = new Map<string, SubnetIndex>();
  private readonly respCache = new Map<string, Map<bigint, Responder | null>>();
  private readonly floodCache = new Map<string, FloodIndex>();
  private readonly endpointCache = new Map<Family, TunnelEndpoints>();

  constructor(topo: CompiledTopology, nodes: Map<string, CNode>) {
    this.topo = topo;
    this.nodes = nodes;
    for (const s of topo.subnetList) this.subnets.set(s.name, { underlay: new Map(), anyLocal: new Map(), proxy: [] });
    const sorted = [...nodes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const n of sorted) {
      this.nodeById.set(n.id, n);
      for (const k of n.local.keys()) if (!this.nodeByLocal.has(k)) this.nodeByLocal.set(k, n);
      for (const p of n.pods.values()) if (!this.pods.has(p.key)) this.pods.set(p.key, p);
      for (const r of n.nat) this.natSources.set(r.sourcesId, r.sources);
      for (const [sn, dev] of n.underlayBySubnet) {
        const idx = this.subnets.get(sn)!;
        for (const [family, list] of dev.addrs) for (const a of list) if (!idx.underlay.has(fkey(family, a))) idx.underlay.set(fkey(family, a), { node: n, dev });
        for (const k of n.local.keys()) if (!idx.anyLocal.has(k)) idx.anyLocal.set(k, { node: n, dev });
        if (n.proxyArp.has(dev.name)) idx.proxy.push({ node: n, dev });
      }
    }
  }

  /** Node owning an underlay/local address. */
  nodeOwning(family: Family, value: bigint): CNode | undefined {
    return this.nodeByLocal.get(fkey(family, value));
  }

  /** The `|id|id|` signature of which NAT source lists contain `value`. */
  natSignature(family: Family, value: bigint): string {
    let sig = "|";
    for (const [id, ranges] of this.natSources) if (inRanges(value, family, ranges)) sig += `${id}|`;
    return sig;
  }

  /**
   * Who answers ARP/NDP for `target` on an underlay subnet: the owner of the address (node
   * underlay address, primary or secondary — a secondary one also while the node routes it to a
   * pod —, router interface, external host), else a node holding it on any interface
   * (Linux answers for every local address by default), else a node that proxy-ARPs for it (proxy
   * ARP on its underlay interface, forwarding on, and a route to it through another device).
   */
  subnetResponder(subnet: CSubnet, family: Family, target: bigint): Responder | undefined {
    let cache = this.respCache.get(subnet.name);
    if (!cache) this.respCache.set(subnet.name, (cache = new Map()));
    const key = fkey(family, target);
    const hit = cache.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const r = this.computeResponder(subnet, family, target, key);
    cache.set(key, r ?? null);
    return r;
  }

  private computeResponder(subnet: CSubnet, family: Family, target: bigint, key: bigint): Responder | undefined {
    const fixed = subnet.fixed.get(key);
    if (fixed?.kind === "router") return { kind: "router", router: this.topo.routers.get(fixed.name)! };
    if (fixed?.kind === "external") return { kind: "external", ext: this.topo.externals.get(fixed.name)! };
    const idx = this.subnets.get(subnet.name)!;
    const u = idx.underlay.get(key) ?? idx.anyLocal.get(key);
    if (u) return { kind: "node", node: u.node, dev: u.dev };
    for (const p of idx.proxy) if (proxyAnswers(p.node, p.dev.name, family, target)) return { kind: "node", node: p.node, dev: p.dev };
    return undefined;
  }

  /**
   * The underlay addresses of one family that FDB and flood entries point to, over every node:
   * class walks send outer packets to all of them from a node in one walk (see `Walker`).
   */
  tunnelEndpoints(family: Family): TunnelEndpoints {
    const hit = this.endpointCache.get(family);
    if (hit) return hit;
    const seen = new Set<bigint>();
    const entries = new Map<CNode, number>();
    for (const n of this.nodes.values()) {
      let count = 0;
      for (const m of n.fdb.values()) {
        for (const e of m.values()) if (e.family === family) seen.add(e.dst);
        count += m.size;
      }
      for (const l of n.flood.values()) {
        for (const e of l) if (e.family === family) seen.add(e.dst);
        count += l.length;
      }
      entries.set(n, count);
    }
    const addrs = [...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const index = new Map<bigint, number>();
    addrs.forEach((a, k) => index.set(a, k));
    const r: TunnelEndpoints = { addrs, index, entries };
    this.endpointCache.set(family, r);
    return r;
  }

  /** The remote end behind one flood/FDB destination of tunnel device `dev` on `node`. */
  tunnelPeer(node: CNode, dev: CDev, d: { family: Family; value: bigint }, vniOverride: number | undefined): TunnelPeer | undefined {
    const remote = this.nodeOwning(d.family, d.value);
    if (!remote) return undefined;
    const link = dev.link!;
    let rdev: CDev | undefined;
    let vni = 0;
    if (link.kind === "vxlan") {
      vni = vniOverride ?? link.vni;
      rdev = remote.vxlan.get(vxlanKey(vni, link.port));
    } else if (link.kind === "sleeve") {
      rdev = remote.sleeve.get(link.port);
    }
    if (!rdev) return undefined;
    return { dst: d.value, family: d.family, vni, node: remote, dev: rdev };
  }

  /**
   * What is reachable behind the all-zero (flood) FDB entries of a tunnel device: who answers
   * ARP there (remote hosts for their local addresses, pods on a bridge the remote tunnel device
   * is a port of) and which flood destination owns each MAC. First flood entry wins.
   */
  floodIndex(node: CNode, dev: CDev): FloodIndex {
    const key = `${node.name}|${dev.name}`;
    const hit = this.floodCache.get(key);
    if (hit) return hit;
    const idx: FloodIndex = { byAddr: new Map(), byMac: new Map() };
    for (const e of node.flood.get(dev.name) ?? []) {
      const peer = this.tunnelPeer(node, dev, { family: e.family, value: e.dst }, e.entry.vni);
      if (!peer) continue;
      const m = peer.node;
      if (peer.dev.master !== undefined) {
        const bridge = m.devs.get(peer.dev.master);
        if (bridge) {
          for (const k of m.local.keys()) if (!idx.byAddr.has(k)) idx.byAddr.set(k, bridge.mac);
          if (!idx.byMac.has(bridge.mac)) idx.byMac.set(bridge.mac, peer);
        }
        const bp = m.bridgePods.get(peer.dev.master);
        if (bp) {
          for (const [k, pod] of bp.byAddr) if (!idx.byAddr.has(k)) idx.byAddr.set(k, pod.mac);
          for (const mac of bp.byMac.keys()) if (!idx.byMac.has(mac)) idx.byMac.set(mac, peer);
        }
      } else {
        for (const k of m.local.keys()) if (!idx.byAddr.has(k)) idx.byAddr.set(k, peer.dev.mac);
        if (!idx.byMac.has(peer.dev.mac)) idx.byMac.set(peer.dev.mac, peer);
      }
    }
    this.floodCache.set(key, idx);
    return idx;
  }
}

/** The device a route of `node` sends through (its dev, or the device its nexthop is connected on). */
export function routeDev(node: CNode, family: Family, value: bigint): { dev?: string; unicast: boolean } {
  const f = node.fam.get(family)!;
  const r = f.routes.lookup(value);
  if (!r) return { unicast: false };
  if (r.type !== "unicast") return { unicast: false };
  if (r.dev !== undefined) return { dev: r.dev, unicast: true };
  if (r.via !== undefined) {
    const c = f.links.lookup(r.via);
    if (c?.dev !== undefined) return { dev: c.dev, unicast: true };
  }
  return { unicast: true };
}

/**
 * Linux proxy ARP: the interface has proxy_arp set, forwarding is on (route input for a foreign
 * address needs it), and the node routes the target out of another device. `anyOtherDev`: the
 * asking interface stands for "each sender's own" (class walks), so any device counts.
 */
export function proxyAnswers(node: CNode, inDev: string, family: Family, target: bigint, anyOtherDev = false): boolean {
  if (!node.proxyArp.has(inDev)) return false;
  if (!node.fam.get(family)!.forwarding) return false;
  if (isLocal(node, target, family)) return true;
  const r = routeDev(node, family, target);
  return r.unicast && r.dev !== undefined && (anyOtherDev || r.dev !== inDev);
}
