/**
 * SimFabric: the forwarding side of the simulator without any agents — a topology plus, per node,
 * its NodeInfo and NodeDataplane. `send()` walks one packet; `reachability()` answers all pairs by
 * classes. SimCluster keeps one of these in step with its agents; tests and tools can build
 * dataplanes by hand and use it directly.
 */
import { ConfigError, emptyDataplane, type Family, type NodeDataplane, type NodeInfo, type Protocol } from "@cnikit/core";
import { addr, fkey, fmt, ifaceAddr } from "./addr.ts";
import { Interner, compileNode, type CNode } from "./compile.ts";
import { analyse, describeId, endpointId, misdeliveryReason, type REndpoint } from "./reachability.ts";
import { compileTopology, defaultTopology, withFabricRoutes, type CompiledTopology, type FabricRouteEntry, type SimTopology } from "./topology.ts";
import type { Endpoint, PacketResult, PairOutcome, ReachabilityOptions, ReachabilityReport, SendOptions } from "./types.ts";
import { Walker, fillReason, type DstCtx, type Leaf, type Pkt } from "./walk.ts";
import { World } from "./world.ts";

const COMPONENT = "sim";
const PROTOCOLS: readonly Protocol[] = ["tcp", "udp", "sctp", "icmp"];

interface NodeEntry {
  info: NodeInfo;
  dp: NodeDataplane;
  compiled: CNode | undefined;
}

function checkProtoPort(protocol: unknown, port: unknown): { proto: Protocol; port: number } {
  const proto = (protocol ?? "tcp") as Protocol;
  if (!PROTOCOLS.includes(proto)) throw new ConfigError({ component: COMPONENT, field: "protocol", rule: "must be tcp, udp, sctp or icmp", value: protocol });
  const p = port ?? 80;
  if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p > 65535) throw new ConfigError({ component: COMPONENT, field: "port", rule: "must be an integer from 0 to 65535", value: port });
  return { proto, port: p };
}

export class SimFabric {
  readonly topology: SimTopology;
  private readonly topo: CompiledTopology;
  private readonly entries = new Map<string, NodeEntry>();
  /**
   * Underlay addresses in use (family-tagged keys of every node's primary and secondary addresses,
   * with how many nodes hold each) and which node holds each primary address text: kept in step
   * with `entries` so that adding a node costs O(1) lookups instead of a scan of every node.
   */
  private readonly underlayUse = new Map<bigint, number>();
  private readonly primaryOwner = new Map<string, string>();
  /** What each node contributed to the two maps above when it was set. */
  private readonly underlayOf = new Map<string, { keys: bigint[]; primaries: string[] }>();
  private readonly interner = new Interner();
  private world: World | undefined;
  private fabricRoutes: FabricRouteEntry[] = [];
  private routeSource: (() => readonly FabricRouteEntry[]) | undefined;
  private routesStale = false;

  /** Throws `ConfigError` naming the topology field when the topology is invalid. */
  constructor(topology: SimTopology = defaultTopology()) {
    this.topo = compileTopology(topology);
    this.topology = topology;
  }

  /** Names of the subnets nodes go on by default (those without external hosts). */
  nodeSubnets(): string[] {
    return [...this.topo.nodeSubnets];
  }

  /**
   * The next free underlay address on a subnet, counting from .10 (skipping routers, externals and
   * nodes). Throws `ConfigError` for an unknown subnet and `ConfigError` when the subnet is full.
   */
  nextUnderlay(subnet: string, extraUsed: ReadonlySet<string> = new Set()): { address: string; prefixLength: number; gateway?: string; mtu: number } {
    const sub = this.topo.subnets.get(subnet);
    if (!sub) throw new ConfigError({ component: COMPONENT, field: "subnet", rule: `must name a subnet of the topology (${[...this.topo.subnets.keys()].join(", ")})`, value: subnet });
    const extra = new Set<bigint>();
    for (const t of extraUsed) {
      const a = addr(t);
      extra.add(fkey(a.family, a.value));
    }
    for (let v = sub.range.base + 10n; v < sub.range.last; v++) {
      const k = fkey(sub.range.family, v);
      if (this.underlayUse.has(k) || extra.has(k) || sub.fixed.has(k) || v === sub.gateway) continue;
      return {
        address: fmt(v, sub.range.family),
        prefixLength: sub.range.length,
        ...(sub.gateway !== undefined ? { gateway: fmt(sub.gateway, sub.range.family) } : {}),
        mtu: sub.mtu,
      };
    }
    throw new ConfigError({ component: COMPONENT, field: "subnet", rule: `subnet ${subnet} (${sub.range.text}) has no free address left from .10 upward`, value: subnet });
  }

  /**
   * The underlay settings of a given address: its subnet's name, prefix length, gateway and MTU.
   * Throws `ConfigError` when the address does not parse, lies outside every subnet, is the
   * address of a router or external host, or is already a node's.
   */
  underlayAt(address: string): { subnet: string; address: string; prefixLength: number; gateway?: string; mtu: number } {
    const a = addr(address, "address");
    const sub = this.topo.subnetList.find((s) => s.range.family === a.family && a.value >= s.range.base && a.value <= s.range.last);
    if (!sub) throw new ConfigError({ component: COMPONENT, field: "address", rule: "must lie inside a subnet of the topology", value: address });
    if (sub.fixed.has(fkey(a.family, a.value)) || a.value === sub.gateway)
      throw new ConfigError({ component: COMPONENT, field: "address", rule: "is the address of a router or external host", value: address });
    if (a.value === sub.range.base || (a.family === 4 && a.value === sub.range.last))
      throw new ConfigError({ component: COMPONENT, field: "address", rule: `must not be the network or broadcast address of ${sub.range.text}`, value: address });
    const canonical = fmt(a.value, a.family);
    for (const [name, e] of this.entries) {
      if (e.info.underlay.some((u) => u.address === canonical || (u.secondaryAddresses ?? []).includes(canonical)))
        throw new ConfigError({ component: COMPONENT, field: "address", rule: `is already used by node ${name}`, value: address });
    }
    return { subnet: sub.name, address: canonical, prefixLength: sub.range.length, ...(sub.gateway !== undefined ? { gateway: fmt(sub.gateway, sub.range.family) } : {}), mtu: sub.mtu };
  }

  /**
   * Adds a node with the next free underlay address on `subnet` (default: alternate between node
   * subnets) and an empty (or the given) dataplane. Returns its NodeInfo. Throws `ConfigError`
   * for a duplicate name or unknown subnet.
   */
  addNode(options: { name: string; subnet?: string; labels?: Record<string, string>; podCIDRs?: string[]; dataplane?: NodeDataplane }): NodeInfo {
    const subnets = this.topo.nodeSubnets;
    const subnet = options.subnet ?? subnets[this.entries.size % subnets.length]!;
    const u = this.nextUnderlay(subnet);
    const info: NodeInfo = {
      name: options.name,
      underlay: [{ iface: "eth0", address: u.address, prefixLength: u.prefixLength, ...(u.gateway !== undefined ? { gateway: u.gateway } : {}), mtu: u.mtu }],
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.podCIDRs ? { podCIDRs: options.podCIDRs } : {}),
    };
    this.setNode(info, options.dataplane);
    return info;
  }

  /**
   * Adds or replaces a node. Throws `ConfigError` when an underlay address lies outside every
   * subnet, collides with a router, external host or another node, or the dataplane does not
   * compile; nothing changes then.
   */
  setNode(info: NodeInfo, dataplane?: NodeDataplane): void {
    if (typeof info?.name !== "string" || info.name === "") throw new ConfigError({ component: COMPONENT, field: "node.name", rule: "must be a non-empty string", value: info?.name });
    if (!Array.isArray(info.underlay) || info.underlay.length === 0)
      throw new ConfigError({ component: COMPONENT, field: `node(${info.name}).underlay`, rule: "must list at least one underlay interface" });
    info.underlay.forEach((u, i) => {
      const field = `node(${info.name}).underlay[${i}]`;
      const a = addr(u.address, `${field}.address`);
      const sub = this.topo.subnetList.find((s) => s.range.family === a.family && a.value >= s.range.base && a.value <= s.range.last);
      if (!sub) throw new ConfigError({ component: COMPONENT, field: `${field}.address`, rule: "must lie inside a subnet of the topology", value: u.address });
      if (sub.fixed.has(fkey(a.family, a.value))) throw new ConfigError({ component: COMPONENT, field: `${field}.address`, rule: "is the address of a router or external host", value: u.address });
      const owner = this.primaryOwner.get(u.address);
      if (owner !== undefined && owner !== info.name) throw new ConfigError({ component: COMPONENT, field: `${field}.address`, rule: `is already used by node ${owner}`, value: u.address });
    });
    const dp = dataplane ?? this.entries.get(info.name)?.dp ?? emptyDataplane(info.name);
    const compiled = compileNode({ info, dp, topology: this.topo, interner: this.interner });
    this.entries.set(info.name, { info, dp, compiled });
    this.forgetUnderlay(info.name);
    const mine = { keys: [] as bigint[], primaries: [] as string[] };
    for (const u of info.underlay) {
      mine.primaries.push(u.address);
      if (!this.primaryOwner.has(u.address)) this.primaryOwner.set(u.address, info.name);
      for (const text of [u.address, ...(u.secondaryAddresses ?? [])]) {
        const a = addr(text);
        const k = fkey(a.family, a.value);
        mine.keys.push(k);
        this.underlayUse.set(k, (this.underlayUse.get(k) ?? 0) + 1);
      }
    }
    this.underlayOf.set(info.name, mine);
    this.world = undefined;
  }

  /** Takes a node's underlay addresses out of the in-use maps. */
  private forgetUnderlay(name: string): void {
    const old = this.underlayOf.get(name);
    if (!old) return;
    this.underlayOf.delete(name);
    for (const text of old.primaries) if (this.primaryOwner.get(text) === name) this.primaryOwner.delete(text);
    for (const k of old.keys) {
      const n = (this.underlayUse.get(k) ?? 0) - 1;
      if (n > 0) this.underlayUse.set(k, n);
      else this.underlayUse.delete(k);
    }
  }

  /**
   * Replaces a node's dataplane. Compiles it at once: throws `ConfigError` naming the field of a
   * dataplane that does not parse (the previous dataplane stays), or when the node is unknown.
   */
  setDataplane(name: string, dataplane: NodeDataplane): void {
    const e = this.entry(name);
    const compiled = compileNode({ info: e.info, dp: dataplane, topology: this.topo, interner: this.interner });
    this.entries.set(name, { info: e.info, dp: dataplane, compiled });
    this.world = undefined;
  }

  /** Removes a node (no-op when unknown). */
  removeNode(name: string): void {
    if (!this.entries.delete(name)) return;
    this.forgetUnderlay(name);
    this.world = undefined;
  }

  /**
   * Replaces the fabric's routes (the "VNet" route table, programmed by a cluster-level controller
   * through the fabric port): every router carries `dst` to the node at underlay address `via`
   * (see `withFabricRoutes`). Throws `ConfigError` naming `fabric.routes[i]` for a bad entry (the
   * previous routes stay).
   */
  setFabricRoutes(routes: readonly FabricRouteEntry[]): void {
    withFabricRoutes(this.topo, routes);
    this.fabricRoutes = routes.map((r) => ({ ...r }));
    this.world = undefined;
  }

  /**
   * Makes `source` the fabric's route table, read when the routes are next needed (a packet walk,
   * `routes()`) instead of on every change: a controller that programs thousands of routes one at
   * a time (an Azure-like dynamic pool's /32s) costs one rebuild per walk, not one per route.
   * `source` must return entries it has validated (the fabric port's `FabricTable` does); call
   * `fabricRoutesChanged()` after each change.
   */
  setFabricRouteSource(source: () => readonly FabricRouteEntry[]): void {
    this.routeSource = source;
    this.fabricRoutesChanged();
  }

  /** The route source's table changed: the next walk reads it again. */
  fabricRoutesChanged(): void {
    this.routesStale = true;
    this.world = undefined;
  }

  private freshRoutes(): void {
    if (!this.routesStale || !this.routeSource) return;
    this.routesStale = false;
    this.fabricRoutes = this.routeSource().map((r) => ({ ...r }));
  }

  /** The fabric routes in force (see `setFabricRoutes`). */
  routes(): FabricRouteEntry[] {
    this.freshRoutes();
    return this.fabricRoutes.map((r) => ({ ...r }));
  }

  hasNode(name: string): boolean {
    return this.entries.has(name);
  }

  /** Throws `ConfigError` (field `node`) for an unknown node. */
  nodeInfo(name: string): NodeInfo {
    return this.entry(name).info;
  }

  /** The dataplane currently used for a node. Throws `ConfigError` for an unknown node. */
  dataplane(name: string): NodeDataplane {
    return this.entry(name).dp;
  }

  nodeNames(): string[] {
    return [...this.entries.keys()];
  }

  /** Every pod interface in any node's dataplane. */
  pods(): { key: string; node: string; addresses: string[] }[] {
    const out: { key: string; node: string; addresses: string[] }[] = [];
    for (const [name, e] of this.entries) for (const p of e.dp.pods) out.push({ key: p.key, node: name, addresses: p.addresses.map((c) => c.split("/")[0]!) });
    return out;
  }

  private entry(name: string): NodeEntry {
    const e = this.entries.get(name);
    if (!e) throw new ConfigError({ component: COMPONENT, field: "node", rule: "must name a node of the simulation", value: name });
    return e;
  }

  private getWorld(): World {
    this.freshRoutes();
    if (!this.world) {
      const nodes = new Map<string, CNode>();
      for (const [name, e] of this.entries) nodes.set(name, e.compiled!);
      this.world = new World(withFabricRoutes(this.topo, this.fabricRoutes), nodes);
    }
    return this.world;
  }

  /** Resolves an endpoint; throws `ConfigError` for an unknown node or external host. */
  private resolve(world: World, ep: Endpoint, field: string): REndpoint {
    const id = endpointId(ep);
    if (ep?.kind === "pod") {
      const pod = world.pods.get(ep.key);
      if (!pod) return { ep, id, addrs: [], missing: `pod ${ep.key} has no interface in any node's dataplane` };
      const addrs = pod.pif.addresses.map((c) => ifaceAddr(c).address);
      return { ep, id, addrs, pod };
    }
    if (ep?.kind === "node") {
      const node = world.nodes.get(ep.name);
      if (!node) throw new ConfigError({ component: COMPONENT, field: `${field}.name`, rule: "must name a node of the simulation", value: ep.name });
      return { ep, id, addrs: node.info.underlay.map((u) => addr(u.address)), node };
    }
    if (ep?.kind === "external") {
      const ext = world.topo.externals.get(ep.name);
      if (!ext) throw new ConfigError({ component: COMPONENT, field: `${field}.name`, rule: "must name an external host of the topology", value: ep.name });
      return { ep, id, addrs: [{ family: ext.family, value: ext.address }], ext };
    }
    throw new ConfigError({ component: COMPONENT, field: `${field}.kind`, rule: 'must be "pod", "node" or "external"', value: (ep as { kind?: unknown })?.kind });
  }

  /**
   * Walks one packet from `from` to `to` (default tcp/80) and, when it arrives, its reply.
   * Pure: changes nothing. Throws `ConfigError` for an unknown node/external endpoint or a bad
   * protocol/port, or when a dataplane does not compile.
   */
  send(from: Endpoint, to: Endpoint, options: SendOptions = {}): PacketResult {
    const { proto, port } = checkProtoPort(options.protocol, options.port);
    const world = this.getWorld();
    const family = checkFamily(options.family);
    let f = this.resolve(world, from, "from");
    let t = this.resolve(world, to, "to");
    if (family !== undefined) {
      // A node is addressed in the asked family as `reachability` does (its host-side address of it).
      const nf = narrow(f, family);
      const nt = narrow(t, family);
      if (typeof nf !== "string") f = nf;
      if (typeof nt !== "string") t = nt;
    }
    if (options.size !== undefined && (typeof options.size !== "number" || !Number.isInteger(options.size) || options.size < 20 || options.size > 65535)) {
      throw new ConfigError({ component: COMPONENT, field: "size", rule: "must be an integer from 20 to 65535", value: options.size });
    }
    return sendResolved({ world, from: f, to: t, proto, port, ...(options.family !== undefined ? { family: options.family } : {}), ...(options.size !== undefined ? { size: options.size } : {}) });
  }

  /**
   * All-pairs reachability between `from` and `to` (default: every pod to every pod; a pair of an
   * endpoint with itself is not counted), reasoned by sender classes and destination runs. The
   * first `maxFailures` failures come with the full `send()` result. Throws like `send`.
   */
  reachability(options: ReachabilityOptions = {}): ReachabilityReport {
    const started = performance.now();
    const { proto, port } = checkProtoPort(options.protocol, options.port);
    const family = checkFamily(options.family);
    const world = this.getWorld();
    const { from, to, skipped } = this.resolveAll(world, options, family);
    const max = options.maxFailures ?? 20;
    const sampled: { f: REndpoint; t: REndpoint }[] = [];
    const counts = analyse({
      world,
      from,
      to,
      proto,
      port,
      onFailure: (f, t) => {
        if (sampled.length < max) sampled.push({ f, t });
        return sampled.length < max;
      },
    });
    const fam = family !== undefined ? { family } : {};
    const failures = sampled.map(({ f, t }) => ({ from: f.ep, to: t.ep, result: sendResolved({ world, from: f, to: t, proto, port, ...fam }) }));
    return {
      pairs: counts.pairs,
      delivered: counts.delivered,
      natted: counts.natted,
      failures,
      failed: counts.pairs - counts.delivered,
      ...fam,
      skipped,
      wallMs: performance.now() - started,
    };
  }

  /**
   * The outcome of every pair as the class analysis computed it (no `send()`), for tests that
   * compare it with brute force and for tools that want the whole matrix. O(pairs). With `family`,
   * pairs with an endpoint that has no address of it are left out (see `reachability`).
   */
  reachabilityPairs(options: Omit<ReachabilityOptions, "maxFailures"> = {}): PairOutcome[] {
    const { proto, port } = checkProtoPort(options.protocol, options.port);
    const family = checkFamily(options.family);
    const world = this.getWorld();
    const { from, to } = this.resolveAll(world, options, family);
    const out: PairOutcome[] = [];
    analyse({ world, from, to, proto, port, onPair: (o) => out.push(o) });
    return out;
  }

  /** Resolves both lists; with a family, narrows each endpoint to its address of it (or skips it). */
  private resolveAll(
    world: World,
    options: { from?: Endpoint[]; to?: Endpoint[] },
    family: Family | undefined,
  ): { from: REndpoint[]; to: REndpoint[]; skipped: { endpoint: Endpoint; reason: string }[] } {
    const all = [...world.pods.keys()].map((key) => ({ kind: "pod", key }) as Endpoint);
    const from = (options.from ?? all).map((e, i) => this.resolve(world, e, `from[${i}]`));
    const to = (options.to ?? all).map((e, i) => this.resolve(world, e, `to[${i}]`));
    if (family === undefined) return { from, to, skipped: [] };
    const skipped: { endpoint: Endpoint; reason: string }[] = [];
    const seen = new Set<string>();
    const narrowAll = (list: REndpoint[]): REndpoint[] => {
      const out: REndpoint[] = [];
      for (const r of list) {
        const n = narrow(r, family);
        if (typeof n !== "string") out.push(n);
        else if (!seen.has(r.id)) {
          seen.add(r.id);
          skipped.push({ endpoint: r.ep, reason: n });
        }
      }
      return out;
    };
    return { from: narrowAll(from), to: narrowAll(to), skipped };
  }
}

/** fe80::/10 and 169.254.0.0/16: an interface's own, not an address other nodes' pods can reach. */
function isLinkLocal(a: { family: Family; value: bigint }): boolean {
  return a.family === 6 ? a.value >> 118n === 0x3fan : a.value >> 16n === 0xa9fen;
}

function checkFamily(family: unknown): Family | undefined {
  if (family === undefined || family === 4 || family === 6) return family;
  throw new ConfigError({ component: COMPONENT, field: "family", rule: "must be 4 or 6", value: family });
}

/**
 * The endpoint probed in one family: a pod at its addresses of the family (link-local ones left
 * out); a node at its underlay address of the family, else at the first address of the family its
 * dataplane puts on the host side (a bridge gateway, a tunnel device's address; never a link-local
 * one), the address a pod would use to reach that node in that family; an external host only in
 * its own family. A string says why it is skipped. An endpoint that cannot take part at all
 * (`missing`) is kept so that its pairs fail as before.
 */
function narrow(r: REndpoint, family: Family): REndpoint | string {
  if (r.missing !== undefined) return r;
  const addrs = r.addrs.filter((a) => a.family === family && (r.ext !== undefined || !isLinkLocal(a)));
  if (r.node && addrs.length === 0) {
    for (const a of r.node.dp.addresses) {
      const v = ifaceAddr(a.cidr).address;
      if (v.family === family && !isLinkLocal(v)) {
        addrs.push(v);
        break;
      }
    }
    if (addrs.length === 0) return `${describeId(r.id)} has no IPv${family} address (none on its underlay, none on its host side)`;
  }
  if (addrs.length === 0) return `${describeId(r.id)} has no IPv${family} address`;
  return { ...r, addrs };
}

function startWalk(walker: Walker, from: REndpoint, pkt: Pkt, S: { c: DstCtx; i: number; j: number }): Leaf[] {
  if (from.pod) return walker.fromPod(from.pod, pkt, S);
  if (from.node) return walker.fromNode(from.node, pkt, S);
  return walker.fromExternal(from.ext!, pkt, S);
}

/** One packet (and its reply) between resolved endpoints. */
export function sendResolved(x: { world: World; from: REndpoint; to: REndpoint; proto: Protocol; port: number; family?: Family; size?: number }): PacketResult {
  const { world, from, to, proto, port } = x;
  const fail = (reason: string, destination = ""): PacketResult => ({ delivered: false, destination, path: [], reason });
  if (to.missing !== undefined) return fail(to.missing);
  const family = x.family ?? to.addrs[0]?.family;
  const dst = to.addrs.find((a) => a.family === family);
  if (family === undefined || !dst) return fail(`${describeId(to.id)} has no IPv${family ?? 4} address`);
  const destination = fmt(dst.value, family);
  if (from.missing !== undefined) return fail(from.missing, destination);
  const own = from.addrs.find((a) => a.family === family)?.value;
  const walker = new Walker(world, { proto, port, record: true, reply: false });
  const ctx: DstCtx = { family, addrs: [dst.value], owner: [to.id] };
  const pkt = from.node ? walker.packet({ family }) : walker.packet({ family, ...(own !== undefined ? { src: own } : {}) });
  const leaf = startWalk(walker, from, pkt, { c: ctx, i: 0, j: 1 })[0]!;
  const result: PacketResult = { delivered: false, destination, path: walker.hops };
  if (Number.isFinite(walker.mtu)) {
    result.pathMtu = walker.mtu;
    if (walker.firstMtu !== undefined && walker.firstMtu > walker.mtu) {
      result.mtuProblem = `packets of ${walker.firstMtu} bytes (the sender's interface MTU) do not fit the path MTU ${walker.mtu} (${walker.mtuAt})`;
    }
  }
  if (leaf.ok && x.size !== undefined && Number.isFinite(walker.mtu) && x.size > walker.mtu) {
    // DF set: the first hop whose MTU is too small drops it (ICMP "fragmentation needed").
    const at = /(?:at|from) node (\S+?)\)?$/.exec(walker.mtuAt)?.[1] ?? from.node?.name ?? from.pod?.node ?? describeId(from.id);
    result.reason = `packet of ${x.size} bytes with DF set does not fit the MTU ${walker.mtu} of ${walker.mtuAt}`;
    result.drop = { node: at, stage: "mtu" };
    return result;
  }
  if (!leaf.ok) {
    result.reason = fillReason(leaf.reason ?? "dropped", destination, from.pod?.key);
    if (leaf.drop) result.drop = leaf.drop;
    return result;
  }
  const into = leaf.into ?? ctx.owner[0]!;
  if (into !== to.id) {
    result.reason = misdeliveryReason(into, to.id);
    result.drop = { node: into.slice(into.indexOf(":") + 1), stage: "deliver" };
    return result;
  }
  result.delivered = true;
  const seen = leaf.seen ?? own;
  if (seen !== undefined) result.seenSource = fmt(seen, family);
  result.natted = leaf.natted;
  if (seen !== undefined) {
    // The reply: from the receiver to the source it saw, through conntrack.
    const rw = new Walker(world, { proto, port, record: true, reply: true, natEvents: walker.natEvents });
    const rctx: DstCtx = { family, addrs: [seen], owner: [from.id] };
    const rpkt = rw.packet({ family, src: dst.value });
    const rl = startWalk(rw, to, rpkt, { c: rctx, i: 0, j: 1 })[0]!;
    const rinto = rl.into ?? rctx.owner[0];
    result.replyDelivered = rl.ok && rinto === from.id;
    result.replyPath = rw.hops;
    if (!rl.ok) result.replyReason = fillReason(rl.reason ?? "dropped", fmt(seen, family), to.pod?.key);
    else if (rinto !== from.id) result.replyReason = misdeliveryReason(rinto ?? "unknown:?", from.id);
  }
  return result;
}
