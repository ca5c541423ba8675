/**
 * The packet walk. One engine serves both `send()` (one concrete packet, path recorded) and the
 * class-based reachability analysis (one walk per sender class over a sorted run of destination
 * addresses, memoised): every decision that depends on the destination splits the run where the
 * decision changes (longest-prefix match over interval maps, local addresses, filter and NAT
 * prefixes), and every per-destination step (ARP, delivery) handles one address.
 *
 * Model (what a Linux host would do with the same tables):
 *  - A node is a host network namespace: its underlay interface(s) (connected route, default via
 *    the subnet gateway) plus the dataplane's links, addresses, routes, neighbours, FDB, NAT and
 *    filters. A pod is its own namespace with one interface whose peer is `hostIf` on the node.
 *  - Only the main routing table is used (no policy rules exist). A route's `via` must be covered
 *    by a scope-link route (connected or dev-only) of its device, unless `onlink`; otherwise the
 *    kernel would refuse the route, which the walk reports as a drop naming the route.
 *  - A fabric secondary address of a node is local unless the main table holds a host route for
 *    exactly it (then it is forwarded, e.g. to the pod that holds it; on a kernel the lab's policy
 *    rules do this, see `UnderlayInterface.secondaryAddresses`); the node answers ARP for it on the
 *    underlay either way.
 *  - Forwarding (not local delivery, not locally originated) needs `sysctls.ipv4Forwarding` /
 *    `ipv6Forwarding`, decrements the TTL (64 at the sender; expiry is reported as a loop with the
 *    cycle), and is done by nodes and routers, never by pods.
 *  - ARP: a host answers for every local address on any interface (arp_ignore=0) and, with proxy
 *    ARP on the asking interface, for targets it routes through another device.
 *  - Source NAT happens when leaving a node through a device (POSTROUTING); conntrack reverses it
 *    for the reply. Filters: the sender pod's egress policy when it sends, the receiver pod's
 *    ingress policy when a packet is delivered into it; replies pass (established).
 */
import { ENCAP_OVERHEAD, type Family, type Protocol, type SleeveLink, type VxlanLink } from "@cnikit/core";
import { fkey, fmt, inRanges, lowerBound, numbersOf, type Range } from "./addr.ts";
import { evalPolicy, isLocal, selectSource, vxlanKey, type CDev, type CNat, type CNode, type CPod, type CPolicy, type CRoute } from "./compile.ts";
import type { CExternal, CRouter, CSubnet } from "./topology.ts";
import type { Hop } from "./types.ts";
import { proxyAnswers, type World } from "./world.ts";

/** The sorted destination addresses a walk is about, and the endpoint each one belongs to. */
export interface DstCtx {
  family: Family;
  addrs: bigint[];
  /** Endpoint id of the single target holding each address (undefined when none or several). */
  owner: (string | undefined)[];
  /** IPv4: `addrs` as numbers (`numbersOf`), for searches without bigints; optional. */
  nums?: Float64Array;
}

/** A run `addrs[i..j)` of a DstCtx. */
export interface DSet {
  c: DstCtx;
  i: number;
  j: number;
}

/** The outcome of a walk for a run of destinations. */
export interface Leaf {
  i: number;
  j: number;
  ok: boolean;
  /** Endpoint the packet was delivered into, when it is not `owner[i]` (or no owner is known). */
  into?: string;
  /** Source the receiver saw, when it is not the (symbolic) sender's own address. */
  seen?: bigint;
  natted: boolean;
  /** Ingress policy still to evaluate per sender (symbolic senders only). */
  ingress?: { node: string; policy: CPolicy };
  /** Drop explanation; `{dst}` stands for the destination address. */
  reason?: string;
  drop?: { node: string; stage: string; rule?: string };
}

interface Trace {
  name: string;
  prev: Trace | undefined;
}

export interface Pkt {
  family: Family;
  /** Source address (for symbolic senders: the class representative's, used for nothing that differs per member). */
  src: bigint;
  /** False for a locally originated packet before routing chose its source. */
  srcSet: boolean;
  /** The source is "the sending class member's own address". */
  symbolic: boolean;
  /** For symbolic sources: which NAT source lists the members match (`World.natSignature`). */
  natSig: string;
  natted: boolean;
  ttl: number;
  trace: Trace | undefined;
  /** Encapsulation nesting: 0 for the packet the user sent. */
  depth: number;
  /** An encapsulating (outer) packet. */
  outer: boolean;
  payload: "plaintext" | "encrypted";
  /** Protocol/port text for hop details. */
  label: string;
  /** Cached source key for memo lookups (cleared whenever the source changes). */
  key?: string | undefined;
}

export interface NatEvent {
  node: string;
  family: Family;
  natAddr: bigint;
  orig: bigint;
}

export interface WalkOptions {
  proto: Protocol;
  port: number;
  /** Record hops, MTU and NAT events (send mode). */
  record: boolean;
  /** Walking a reply: filters pass, no new NAT, conntrack reverses `natEvents`. */
  reply: boolean;
  natEvents?: NatEvent[];
  /** Memoise sub-walks of this context (class mode). */
  memoCtx?: DstCtx;
}

const MAX_TUNNEL_DEPTH = 4;
export const INITIAL_TTL = 64;

function sameLeaf(a: Leaf, b: Leaf): boolean {
  return (
    a.ok === b.ok &&
    a.into === b.into &&
    a.seen === b.seen &&
    a.natted === b.natted &&
    a.reason === b.reason &&
    a.ingress?.node === b.ingress?.node &&
    a.ingress?.policy.id === b.ingress?.policy.id &&
    a.drop?.node === b.drop?.node &&
    a.drop?.stage === b.drop?.stage &&
    a.drop?.rule === b.drop?.rule
  );
}

/** Appends leaves, merging a leaf into the previous one when they are contiguous and alike. */
export function concat(out: Leaf[], more: readonly Leaf[]): void {
  if (more.length === 0) return;
  if (out.length === 0 && more.length === 1) {
    out.push(more[0]!);
    return;
  }
  for (const l of more) {
    const last = out[out.length - 1];
    if (last && last.j === l.i && sameLeaf(last, l)) out[out.length - 1] = { ...last, j: l.j };
    else out.push(l);
  }
}

/**
 * Fills a leaf's reason template: `{dst}` stands for the destination address, `{pod}` for the
 * sending pod's key (reasons about the sender are shared by every member of a sender class).
 */
export function fillReason(reason: string, dst: string, pod?: string): string {
  let out = reason.includes("{dst}") ? reason.split("{dst}").join(dst) : reason;
  if (pod !== undefined && out.includes("{pod}")) out = out.split("{pod}").join(pod);
  return out;
}

export function loopReason(at: string, trace: Trace): string {
  const seq: string[] = [];
  let t: Trace | undefined = trace;
  let found = false;
  for (let n = 0; t && n < INITIAL_TTL + 2; n++, t = t.prev) {
    seq.push(t.name);
    if (n > 0 && t.name === trace.name) {
      found = true;
      break;
    }
  }
  return found ? `loop: TTL exceeded at ${at} (cycle ${seq.reverse().join(" → ")})` : `loop: TTL exceeded at ${at}`;
}

export function ingressReason(rule: string | undefined, pod: string, node: string): string {
  return rule !== undefined ? `filtered by rule ${rule} at node ${node} (ingress of pod ${pod})` : `filtered by the default drop of pod ${pod}'s ingress policy at node ${node}`;
}

function egressReason(rule: string | undefined, pod: string, node: string): string {
  return rule !== undefined ? `filtered by rule ${rule} at node ${node} (egress of pod ${pod})` : `filtered by the default drop of pod ${pod}'s egress policy at node ${node}`;
}

const policyRangeCache = new WeakMap<CPolicy, Range[]>();

/** Every prefix a policy's peer clauses mention. */
function policyRanges(policy: CPolicy): Range[] {
  let r = policyRangeCache.get(policy);
  if (!r) {
    r = policy.rules.flatMap((rule) => (rule.peers ?? []).flatMap((p) => [...p.cidrs, ...p.except]));
    policyRangeCache.set(policy, r);
  }
  return r;
}

interface MemoEntry {
  leaves: Leaf[];
  /** TTL the deepest branch used. */
  used: number;
  /** Still being computed (a loop came back to it). */
  running: boolean;
}

/** An encapsulating packet as a node sends it. */
function outerPacket(family: Family, src: bigint, depth: number, payload: Pkt["payload"], label: string): Pkt {
  return { family, src, srcSet: true, symbolic: false, natSig: "", natted: false, ttl: INITIAL_TTL, trace: undefined, depth, outer: true, payload, label };
}

interface OuterRun {
  family: Family;
  src: bigint;
  payload: Pkt["payload"];
  depth: number;
  /** The walk's leaf for each endpoint index. */
  leafAt: Leaf[];
}

type TunnelResult = { leaf: Leaf } | { kind: "vxlan" | "sleeve"; remote: CNode; rdev: CDev };

type Locus = { kind: "node"; node: CNode } | { kind: "router"; router: CRouter } | { kind: "external"; ext: CExternal };

function locusName(l: Locus): string {
  return l.kind === "node" ? l.node.name : l.kind === "router" ? l.router.name : l.ext.name;
}

export class Walker {
  readonly hops: Hop[] = [];
  /** Smallest MTU seen (record mode) and where. */
  mtu = Number.POSITIVE_INFINITY;
  mtuAt = "";
  /** Key of the sending pod (record mode), for `{pod}` in hop details. */
  senderPod: string | undefined;
  /** First MTU noted: the sender's interface. */
  firstMtu: number | undefined;
  readonly natEvents: NatEvent[] = [];
  private ttlDrops = 0;
  private minTtl = INITIAL_TTL;
  /**
   * Class-mode memo: source key -> node -> destination run -> result, one map for packets a node
   * originates and one for packets it receives (keyed by `Pkt.key` itself, whose hash V8 keeps).
   */
  private readonly memoOrigin = new Map<string, Map<CNode, Map<number, MemoEntry>>>();
  private readonly memoForward = new Map<string, Map<CNode, Map<number, MemoEntry>>>();
  /** Source NAT rules a class's packets can match leaving a node through a device: node -> device -> NAT signature. */
  private readonly natMemo = new Map<CNode, Map<string, Map<string, { cands: CNat[]; except: Range[] } | null>>>();
  private readonly tunnelMemo = new Map<CDev, Map<string, TunnelResult>>();
  private readonly tunnelEnds = new Map<CDev, TunnelResult>();
  /** Outer packets after an underlay hop: variant (ttl, depth, payload) -> subnet -> next hop -> destination. */
  private readonly underlayMemo = new Map<number, Map<CSubnet, Map<bigint, Map<bigint, Leaf[]>>>>();
  /** The same for runs of the tunnel-endpoint contexts: variant -> subnet -> next hop -> run. */
  private readonly underlayRunMemo = new Map<number, Map<CSubnet, Map<bigint, Map<bigint, Leaf[]>>>>();
  /** Counts decisions made on a concrete packet source (a pod's ingress policy), so memos that assume none can tell. */
  private srcDeps = 0;
  /**
   * Class walks: a node's outer packets walked once over every tunnel endpoint of the world (one
   * per node and outer source, family, payload and depth), giving the leaf of each endpoint.
   */
  private readonly outerRuns = new Map<CNode, OuterRun[]>();
  /** Per family: every tunnel endpoint of the world as one destination context. */
  private readonly endpointCtx = new Map<Family, { c: DstCtx; index: Map<bigint, number>; entries: Map<CNode, number> }>();
  private readonly w: World;
  private readonly o: WalkOptions;
  private readonly rec: boolean;

  constructor(world: World, options: WalkOptions) {
    this.w = world;
    this.o = options;
    this.rec = options.record;
  }

  /** A fresh packet. */
  packet(init: { family: Family; src?: bigint; symbolic?: boolean; natSig?: string }): Pkt {
    return {
      family: init.family,
      src: init.src ?? 0n,
      srcSet: init.src !== undefined,
      symbolic: init.symbolic ?? false,
      natSig: init.natSig ?? "",
      natted: false,
      ttl: INITIAL_TTL,
      trace: undefined,
      depth: 0,
      outer: false,
      payload: "plaintext",
      label: this.o.proto === "icmp" ? "icmp" : `${this.o.proto}/${this.o.port}`,
    };
  }

  // ---------------------------------------------------------------- helpers

  private hop(node: string, stage: string, detail: string, payload?: "plaintext" | "encrypted"): void {
    this.hops.push(payload === undefined ? { node, stage, detail } : { node, stage, detail, payload });
  }

  private noteMtu(mtu: number | undefined, where: string): void {
    if (!this.rec || mtu === undefined || !(mtu > 0)) return;
    if (this.firstMtu === undefined) this.firstMtu = mtu;
    if (mtu < this.mtu) {
      this.mtu = mtu;
      this.mtuAt = where;
    }
  }

  private dstText(S: DSet): string {
    return S.j - S.i === 1 ? fmt(S.c.addrs[S.i]!, S.c.family) : "{dst}";
  }

  private drop(S: DSet, node: string, stage: string, reason: string, rule?: string): Leaf[] {
    if (this.rec) this.hop(node, stage, `drop: ${fillReason(reason, this.dstText(S), this.senderPod)}`);
    return [{ i: S.i, j: S.j, ok: false, natted: false, reason, drop: rule === undefined ? { node, stage } : { node, stage, rule } }];
  }

  private deliver(S: DSet, into: string, pkt: Pkt, ingress?: { node: string; policy: CPolicy }): Leaf[] {
    const out: Leaf[] = [];
    for (let k = S.i; k < S.j; k++) {
      const leaf: Leaf = { i: k, j: k + 1, ok: true, natted: pkt.natted };
      if (S.c.owner[k] !== into) leaf.into = into;
      if (!pkt.symbolic) leaf.seen = pkt.src;
      if (ingress) leaf.ingress = ingress;
      concat(out, [leaf]);
    }
    return out;
  }

  private runs<K>(S: DSet, keyOf: (k: number) => K, fn: (S1: DSet, key: K) => Leaf[]): Leaf[] {
    const out: Leaf[] = [];
    let k = S.i;
    let key = k < S.j ? keyOf(k) : (undefined as K);
    while (k < S.j) {
      let m = k + 1;
      let next = key;
      while (m < S.j) {
        next = keyOf(m);
        if (next !== key) break;
        m++;
      }
      concat(out, fn({ c: S.c, i: k, j: m }, key));
      k = m;
      key = next;
    }
    return out;
  }

  /**
   * Like `runs`, for a key that depends on the destination only through membership in `ranges`:
   * evaluates it once per stretch between range boundaries instead of once per address.
   */
  private rangeRuns<K>(S: DSet, ranges: readonly Range[], keyOf: (k: number) => K, fn: (S1: DSet, key: K) => Leaf[]): Leaf[] {
    if (S.j - S.i <= 2) return this.runs(S, keyOf, fn);
    const addrs = S.c.addrs;
    const lo = addrs[S.i]!;
    const hi = addrs[S.j - 1]!;
    let uniform = true;
    for (const r of ranges) {
      if (r.family !== S.c.family) continue;
      if ((r.base <= lo && r.last >= hi) || r.last < lo || r.base > hi) continue;
      uniform = false;
      break;
    }
    if (uniform) return fn(S, keyOf(S.i));
    const cuts = [S.i, S.j];
    for (const r of ranges) {
      if (r.family !== S.c.family) continue;
      cuts.push(lowerBound(addrs, r.base, S.i, S.j), lowerBound(addrs, r.last + 1n, S.i, S.j));
    }
    cuts.sort((a, b) => a - b);
    const out: Leaf[] = [];
    let start = S.i;
    let key: K | undefined;
    let have = false;
    for (let n = 0; n < cuts.length; n++) {
      const a = cuts[n]!;
      const b = n + 1 < cuts.length ? cuts[n + 1]! : S.j;
      if (b <= a) continue;
      const k = keyOf(a);
      if (have && k !== key) {
        concat(out, fn({ c: S.c, i: start, j: a }, key as K));
        start = a;
      }
      key = k;
      have = true;
    }
    if (have) concat(out, fn({ c: S.c, i: start, j: S.j }, key as K));
    return out;
  }

  /** Calls `fn` once with `via` for the whole run, or once per destination when there is no via. */
  private forTargets(S: DSet, via: bigint | undefined, fn: (target: bigint, S1: DSet) => Leaf[]): Leaf[] {
    if (via !== undefined) return fn(via, S);
    const out: Leaf[] = [];
    for (let k = S.i; k < S.j; k++) concat(out, fn(S.c.addrs[k]!, { c: S.c, i: k, j: k + 1 }));
    return out;
  }

  private a(family: Family, v: bigint): string {
    return fmt(v, family);
  }

  // ---------------------------------------------------------------- senders

  /** A pod sends (its namespace: own addresses, routes, ARP on its interface, egress filter). */
  fromPod(pod: CPod, pkt: Pkt, S: DSet): Leaf[] {
    const node = this.w.nodes.get(pod.node)!;
    const family = pkt.family;
    const pf = pod.fam.get(family);
    if (this.rec && !this.o.reply) this.senderPod = pod.key;
    if (this.rec) this.hop(node.name, "pod", `pod ${pod.key} sends ${pkt.symbolic ? "" : this.a(family, pkt.src)} → ${this.dstText(S)} ${pkt.label}`);
    if (this.rec) this.noteMtu(pod.pif.mtu, `pod ${pod.key} interface`);
    if (!pf || pf.addrs.length === 0) return this.drop(S, node.name, "pod-route", `pod {pod} has no IPv${family} address`);
    if (!pkt.symbolic) {
      return this.runs(
        S,
        (k) => pod.all.has(fkey(family, S.c.addrs[k]!)),
        (S1, own) => (own ? this.deliver(S1, pod.id, pkt) : this.podRoute(node, pod, pkt, S1)),
      );
    }
    return this.podRoute(node, pod, pkt, S);
  }

  private podRoute(node: CNode, pod: CPod, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    const pf = pod.fam.get(family)!;
    const out: Leaf[] = [];
    pf.table.partition(
      S.c.addrs,
      S.i,
      S.j,
      (i, j, r) => {
        const S1 = { c: S.c, i, j };
        if (!r) {
          concat(out, this.drop(S1, node.name, "pod-route", `no route to {dst} in pod {pod}`));
        } else if (r.via !== undefined) {
          const via = r.via;
          // The route may be another interface's of the same container (one namespace, one table).
          const out1 = r.owner ?? pod;
          const links = out1.fam.get(family)?.links ?? pf.links;
          if (out1.all.has(fkey(family, via))) {
            concat(out, this.drop(S1, node.name, "pod-route", `pod {pod}: route ${r.label} has the pod's own address as nexthop (the kernel refuses this route)`));
          } else if (!links.lookup(via)) {
            concat(out, this.drop(S1, node.name, "pod-route", `pod {pod}: nexthop ${this.a(family, via)} of route ${r.label} is not on a connected subnet (the kernel refuses this route)`));
          } else {
            if (this.rec) this.hop(node.name, "pod-route", `${this.dstText(S1)} matches ${r.label}`);
            concat(out, this.podArp(node, out1, via, pkt, S1));
          }
        } else {
          const out1 = r.owner ?? pod;
          if (this.rec) this.hop(node.name, "pod-route", `${this.dstText(S1)} matches ${r.label}`);
          concat(
            out,
            this.forTargets(S1, undefined, (t, S2) => this.podArp(node, out1, t, pkt, S2)),
          );
        }
      },
      S.c.nums,
    );
    return out;
  }

  private podArp(node: CNode, pod: CPod, target: bigint, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    const bridge = pod.pif.bridge;
    let mac: string | undefined;
    if (bridge !== undefined) {
      const bdev = node.devs.get(bridge);
      if (!bdev || bdev.kind !== "bridge") return this.drop(S, node.name, "pod-arp", `pod {pod}'s bridge ${bridge} does not exist at node ${node.name}`);
      mac = this.bridgeResponder(node, bdev, target, family, false);
    } else {
      const hostIf = node.devs.get(pod.pif.hostIf)!;
      // For a sender class, "the asking interface" is each member's own hostIf; the class
      // signature guarantees only the member's own addresses are routed out of it (self pairs).
      const proxied = pkt.symbolic && !pod.hostIfShared ? proxyAnswers(node, hostIf.name, family, target, true) : proxyAnswers(node, hostIf.name, family, target);
      if (isLocal(node, target, family) || proxied) mac = hostIf.mac;
    }
    if (mac === undefined) {
      return this.drop(S, node.name, "pod-arp", `no neighbour: nobody answers ARP for ${this.a(family, target)} on pod {pod}'s interface${bridge !== undefined ? ` (bridge ${bridge})` : ""}`);
    }
    if (this.rec) this.hop(node.name, "pod-arp", `${this.a(family, target)} is at ${mac}`);
    const next = (S1: DSet): Leaf[] => (bridge !== undefined ? this.bridgeL2(node, node.devs.get(bridge)!, mac, pkt, S1, "pod") : this.hostInput(node, pod.pif.hostIf, pkt, S1));
    if (!pod.egress || this.o.reply) return next(S);
    const policy = pod.egress;
    return this.rangeRuns(
      S,
      policyRanges(policy),
      (k) => {
        const v = evalPolicy(policy, S.c.addrs[k]!, family, this.o.proto, this.o.port);
        return v.accept ? "" : `d${v.rule ?? ""}`;
      },
      (S1, verdict) => {
        if (verdict === "") {
          if (this.rec) this.hop(node.name, "pod-egress", `allowed by pod ${pod.key}'s egress policy`);
          return next(S1);
        }
        const rule = verdict.length > 1 ? verdict.slice(1) : undefined;
        return this.drop(S1, node.name, "pod-egress", egressReason(rule, "{pod}", node.name), rule);
      },
    );
  }

  /** A locally originated packet of a node's host namespace. */
  fromNode(node: CNode, pkt: Pkt, S: DSet): Leaf[] {
    if (this.rec) this.hop(node.name, "host", `node ${node.name} sends to ${this.dstText(S)} ${pkt.label}`);
    return this.hostInput(node, undefined, pkt, S);
  }

  /** An external host sends: its own subnet on-link, anything else via the subnet gateway. */
  fromExternal(ext: CExternal, pkt: Pkt, S: DSet): Leaf[] {
    const subnet = this.w.topo.subnets.get(ext.subnet)!;
    if (this.rec) this.hop(ext.name, "host", `external ${ext.name} sends to ${this.dstText(S)} ${pkt.label}`);
    if (this.rec) this.noteMtu(subnet.mtu, `subnet ${subnet.name}`);
    const family = pkt.family;
    return this.runs(
      S,
      (k) => {
        const v = S.c.addrs[k]!;
        if (family === ext.family && v === ext.address) return 0;
        if (family === subnet.range.family && v >= subnet.range.base && v <= subnet.range.last) return 1;
        return 2;
      },
      (S1, kind) => {
        if (kind === 0) return this.deliver(S1, `external:${ext.name}`, pkt);
        if (kind === 1) return this.forTargets(S1, undefined, (t, S2) => this.underlayOut({ kind: "external", ext }, subnet, t, pkt, S2));
        if (subnet.gateway === undefined || family !== subnet.range.family) return this.drop(S1, ext.name, "route", `external host ${ext.name} has no route to {dst}`);
        return this.underlayOut({ kind: "external", ext }, subnet, subnet.gateway, pkt, S1);
      },
    );
  }

  // ---------------------------------------------------------------- node IP stack

  private srcKey(pkt: Pkt): string {
    if (pkt.key === undefined) pkt.key = pkt.symbolic ? `m${pkt.natSig}` : `${pkt.srcSet ? "a" : "u"}${pkt.src}${pkt.natted ? "n" : ""}`;
    return pkt.key;
  }

  /**
   * A packet enters a node's IP stack from `inDev` (undefined: originated by the node itself).
   * Memoised in class mode per (node, origin, destination run, source key), valid for any TTL that
   * lets the deepest branch through.
   */
  hostInput(node: CNode, inDev: string | undefined, pkt: Pkt, S: DSet): Leaf[] {
    if (this.o.memoCtx === undefined || S.c !== this.o.memoCtx || pkt.outer) return this.hostInputInner(node, inDev, pkt, S);
    const sk = this.srcKey(pkt);
    const memo = inDev === undefined ? this.memoOrigin : this.memoForward;
    let bySrc = memo.get(sk);
    if (!bySrc) memo.set(sk, (bySrc = new Map()));
    let byNode = bySrc.get(node);
    if (!byNode) bySrc.set(node, (byNode = new Map()));
    const key = S.i * (S.c.addrs.length + 1) + S.j;
    const hit = byNode.get(key);
    if (hit && !hit.running && pkt.ttl - hit.used >= 1) {
      if (pkt.ttl - hit.used < this.minTtl) this.minTtl = pkt.ttl - hit.used;
      return hit.leaves;
    }
    if (hit?.running) return this.hostInputInner(node, inDev, pkt, S);
    const savedMin = this.minTtl;
    const savedDrops = this.ttlDrops;
    this.minTtl = pkt.ttl;
    const entry: MemoEntry = { leaves: [], used: 0, running: true };
    byNode.set(key, entry);
    const leaves = this.hostInputInner(node, inDev, pkt, S);
    if (this.ttlDrops === savedDrops) {
      entry.leaves = leaves;
      entry.used = pkt.ttl - this.minTtl;
      entry.running = false;
    } else byNode.delete(key);
    this.minTtl = Math.min(savedMin, this.minTtl);
    return leaves;
  }

  private hostInputInner(node: CNode, inDev: string | undefined, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    const fam = node.fam.get(family)!;
    if (this.o.reply && S.j - S.i === 1 && this.o.natEvents) {
      const dst = S.c.addrs[S.i]!;
      const ev = this.o.natEvents.find((e) => e.node === node.name && e.family === family && e.natAddr === dst);
      if (ev) {
        if (this.rec) this.hop(node.name, "conntrack", `reply: destination ${this.a(family, dst)} → ${this.a(family, ev.orig)} (NAT reversed)`);
        const c2: DstCtx = { family, addrs: [ev.orig], owner: [S.c.owner[S.i]] };
        const text = this.a(family, ev.orig);
        return this.forward(node, inDev ?? "conntrack", pkt, { c: c2, i: 0, j: 1 }).map((l) => {
          const m: Leaf = { ...l, i: S.i, j: S.j };
          if (l.reason !== undefined) m.reason = fillReason(l.reason, text);
          if (l.into === undefined && l.ok) m.into = c2.owner[0] ?? `unknown`;
          return m;
        });
      }
    }
    const out: Leaf[] = [];
    const addrs = S.c.addrs;
    if (fam.localRanges.length > 0) {
      return this.runs(
        S,
        (k) => isLocal(node, addrs[k]!, family),
        (S1, local) => (local ? this.onLocal(node, pkt, S1) : this.forward(node, inDev, pkt, S1)),
      );
    }
    const L = fam.local;
    let k = S.i;
    let li = L.length > 0 ? lowerBound(L, addrs[k]!) : 0;
    while (k < S.j) {
      const v = addrs[k]!;
      while (li < L.length && L[li]! < v) li++;
      if (li < L.length && L[li] === v) {
        concat(out, this.onLocal(node, pkt, { c: S.c, i: k, j: k + 1 }));
        k++;
        li++;
        continue;
      }
      const stop = li < L.length ? lowerBound(addrs, L[li]!, k + 1, S.j) : S.j;
      concat(out, this.forward(node, inDev, pkt, { c: S.c, i: k, j: stop }));
      k = stop;
    }
    return out;
  }

  /** Delivery to the node's own stack (a method, not a closure per `hostInputInner` call). */
  private onLocal(node: CNode, pkt: Pkt, S1: DSet): Leaf[] {
    if (this.rec) this.hop(node.name, "deliver", `local delivery at node ${node.name}`);
    if (pkt.srcSet) return this.deliver(S1, node.id, pkt);
    const res: Leaf[] = [];
    for (let k = S1.i; k < S1.j; k++) concat(res, this.deliver({ c: S1.c, i: k, j: k + 1 }, node.id, { ...pkt, src: S1.c.addrs[k]!, srcSet: true }));
    return res;
  }

  private forward(node: CNode, inDev: string | undefined, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    const fam = node.fam.get(family)!;
    let p = pkt;
    if (inDev !== undefined) {
      if (!fam.forwarding) {
        return this.drop(S, node.name, "forward", `IPv${family} forwarding is disabled at node ${node.name} (sysctls.ipv${family}Forwarding is not set)`);
      }
      const trace: Trace = { name: node.name, prev: pkt.trace };
      const ttl = pkt.ttl - 1;
      if (ttl < this.minTtl) this.minTtl = ttl;
      if (ttl <= 0) {
        this.ttlDrops++;
        return this.drop(S, node.name, "forward", loopReason(node.name, trace));
      }
      p = { ...pkt, ttl, trace };
    }
    const out: Leaf[] = [];
    fam.routes.partition(
      S.c.addrs,
      S.i,
      S.j,
      (i, j, r) => {
        const S1 = { c: S.c, i, j };
        if (!r) concat(out, this.drop(S1, node.name, "route", `no route to {dst} at node ${node.name}`));
        else concat(out, this.routeOut(node, r, p, S1));
      },
      S.c.nums,
    );
    return out;
  }

  private routeOut(node: CNode, r: CRoute, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    const fam = node.fam.get(family)!;
    if (r.type === "blackhole") return this.drop(S, node.name, "route", `blackhole route ${r.label} at node ${node.name} drops {dst}`);
    if (r.type === "unreachable") return this.drop(S, node.name, "route", `unreachable route ${r.label} at node ${node.name} rejects {dst}`);
    let devName = r.dev;
    if (r.via !== undefined) {
      if (isLocal(node, r.via, family)) {
        return this.drop(S, node.name, "route", `nexthop ${this.a(family, r.via)} of route ${r.label} at node ${node.name} is a local address (the kernel refuses this route)`);
      }
      if (!r.onlink) {
        const c = fam.links.lookup(r.via);
        if (!c || (r.dev !== undefined && c.dev !== r.dev)) {
          return this.drop(
            S,
            node.name,
            "route",
            `nexthop ${this.a(family, r.via)} of route ${r.label} at node ${node.name} is not on a connected subnet${r.dev !== undefined ? ` of ${r.dev}` : ""} (the kernel refuses this route)`,
          );
        }
        devName = r.dev ?? c.dev;
      } else if (r.dev === undefined) {
        return this.drop(S, node.name, "route", `onlink route ${r.label} at node ${node.name} names no device (the kernel refuses this route)`);
      }
    } else if (devName === undefined) {
      return this.drop(S, node.name, "route", `route ${r.label} at node ${node.name} has neither via nor dev`);
    }
    const dev = node.devs.get(devName!);
    if (!dev) return this.drop(S, node.name, "route", `route ${r.label} at node ${node.name} uses device ${devName}, which does not exist`);
    let p = pkt;
    if (!pkt.srcSet) {
      const s = r.src ?? selectSource(node, dev, family);
      if (s === undefined) return this.drop(S, node.name, "route", `node ${node.name} has no IPv${family} address to send from`);
      p = { ...pkt, src: s, srcSet: true, key: undefined };
    }
    if (this.rec) this.hop(node.name, "route", `${this.dstText(S)} matches ${r.label}`);
    if (this.rec) this.noteMtu(dev.mtu, `${dev.name} at node ${node.name}`);
    if (this.rec) this.noteMtu(r.mtu, `route ${r.label} at node ${node.name}`);
    if (node.nat.length === 0 || this.o.reply) return this.viaDev(node, dev, r, p, S);
    return this.nat(node, dev, p, S, (p2, S2) => this.viaDev(node, dev, r, p2, S2));
  }

  /** POSTROUTING source NAT: the first rule whose source, outDev and destination match. */
  private nat(node: CNode, dev: CDev, pkt: Pkt, S: DSet, next: (p: Pkt, S: DSet) => Leaf[]): Leaf[] {
    const family = pkt.family;
    const found = this.natCandidates(node, dev, pkt);
    if (found === null) return next(pkt, S);
    const cands = found.cands;
    return this.rangeRuns(
      S,
      found.except,
      (k) => {
        const d = S.c.addrs[k]!;
        for (let n = 0; n < cands.length; n++) if (!inRanges(d, family, cands[n]!.except)) return n;
        return -1;
      },
      (S1, n) => {
        if (n < 0) return next(pkt, S1);
        const rule = cands[n]!;
        const to = rule.rule.kind === "snat" ? rule.toAddress : selectSource(node, dev, family);
        if (to === undefined) return next(pkt, S1);
        if (this.rec) {
          this.hop(node.name, "nat", `${rule.rule.id}: source ${this.a(family, pkt.src)} → ${this.a(family, to)} (${rule.rule.kind} out ${dev.name})`);
          this.natEvents.push({ node: node.name, family, natAddr: to, orig: pkt.src });
        }
        const natted = pkt.natted || pkt.symbolic || to !== pkt.src;
        return next({ ...pkt, src: to, srcSet: true, symbolic: false, natted, key: undefined }, S1);
      },
    );
  }

  /** The NAT rules whose source and outDev match, and their destination exceptions (null: none). */
  private natCandidates(node: CNode, dev: CDev, pkt: Pkt): { cands: CNat[]; except: Range[] } | null {
    // A class's symbolic packets match by their NAT signature: the same for every destination.
    let byDev: Map<string, Map<string, { cands: CNat[]; except: Range[] } | null>> | undefined;
    let bySig: Map<string, { cands: CNat[]; except: Range[] } | null> | undefined;
    if (pkt.symbolic) {
      byDev = this.natMemo.get(node);
      if (!byDev) this.natMemo.set(node, (byDev = new Map()));
      bySig = byDev.get(dev.name);
      if (!bySig) byDev.set(dev.name, (bySig = new Map()));
      const hit = bySig.get(pkt.natSig);
      if (hit !== undefined) return hit;
    }
    let cands: CNat[] | undefined;
    for (const n of node.nat) {
      if (n.rule.outDev !== undefined && n.rule.outDev !== dev.name) continue;
      if (pkt.symbolic ? !pkt.natSig.includes(n.probe) : !inRanges(pkt.src, pkt.family, n.sources)) continue;
      (cands ??= []).push(n);
    }
    const found = cands === undefined ? null : { cands, except: cands.flatMap((c) => c.except) };
    if (bySig) bySig.set(pkt.natSig, found);
    return found;
  }

  private viaDev(node: CNode, dev: CDev, r: CRoute, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    switch (dev.kind) {
      case "pod":
        return this.forTargets(S, r.via, (t, S1) => {
          const q = dev.pod!;
          const n = node.neigh.get(dev.name)?.get(fkey(family, t));
          if (n !== undefined && n !== q.mac) {
            return this.drop(S1, node.name, "neighbour", `neighbour entry for ${this.a(family, t)} on ${dev.name} at node ${node.name} has MAC ${n}, but pod ${q.key} has ${q.mac}`);
          }
          if (n === undefined && !q.all.has(fkey(family, t))) {
            return this.drop(S1, node.name, "neighbour", `no neighbour: pod ${q.key} behind ${dev.name} at node ${node.name} does not answer ARP for ${this.a(family, t)}`);
          }
          return this.toPod(node, q, pkt, S1);
        });
      case "bridge":
        return this.forTargets(S, r.via, (t, S1) => {
          const mac = this.bridgeResponder(node, dev, t, family, true);
          if (mac === undefined) return this.drop(S1, node.name, "neighbour", `no neighbour: nobody on bridge ${dev.name} at node ${node.name} answers ARP for ${this.a(family, t)}`);
          return this.bridgeL2(node, dev, mac, pkt, S1, "host");
        });
      case "vxlan":
      case "sleeve":
        return this.forTargets(S, r.via, (t, S1) => {
          const mac = node.neigh.get(dev.name)?.get(fkey(family, t)) ?? this.w.floodIndex(node, dev).byAddr.get(fkey(family, t));
          if (mac === undefined) return this.drop(S1, node.name, "neighbour", `no neighbour entry for ${this.a(family, t)} on ${dev.name} at node ${node.name}`);
          if (this.rec) this.hop(node.name, "neighbour", `${this.a(family, t)} on ${dev.name} is at ${mac}`);
          return this.tunnelOut(node, dev, mac, pkt, S1);
        });
      case "ipip":
        return this.forTargets(S, r.via, (t, S1) => this.ipipOut(node, dev, family, t, pkt, S1));
      case "underlay":
        return this.forTargets(S, r.via, (t, S1) => this.underlayOut({ kind: "node", node }, dev.subnet!, t, pkt, S1));
      case "dummy":
        return this.drop(S, node.name, "route", `route ${r.label} at node ${node.name} sends {dst} into dummy device ${dev.name}`);
    }
  }

  // ---------------------------------------------------------------- L2: bridges and tunnels

  /** Who answers ARP for `target` on a bridge: static neighbour (host asking), the host, local pods, then across tunnel ports. */
  private bridgeResponder(node: CNode, bdev: CDev, target: bigint, family: Family, fromHost: boolean): string | undefined {
    const key = fkey(family, target);
    if (fromHost) {
      const n = node.neigh.get(bdev.name)?.get(key);
      if (n !== undefined) return n;
    } else if (isLocal(node, target, family) || proxyAnswers(node, bdev.name, family, target)) {
      return bdev.mac;
    }
    const p = node.bridgePods.get(bdev.name)?.byAddr.get(key);
    if (p) return p.mac;
    for (const t of node.bridgeTunnels.get(bdev.name) ?? []) {
      const mac = this.w.floodIndex(node, t).byAddr.get(key);
      if (mac !== undefined) return mac;
    }
    return undefined;
  }

  private bridgeL2(node: CNode, bdev: CDev, mac: string, pkt: Pkt, S: DSet, from: "pod" | "host" | "tunnel"): Leaf[] {
    if (this.rec) this.hop(node.name, "bridge", `${bdev.name}: frame to ${mac}`);
    if (this.rec) this.noteMtu(bdev.mtu, `${bdev.name} at node ${node.name}`);
    if (mac === bdev.mac) {
      if (from === "host") return this.drop(S, node.name, "bridge", `bridge ${bdev.name} at node ${node.name}: the host sent a frame to its own MAC`);
      return this.hostInput(node, bdev.name, pkt, S);
    }
    const p = node.bridgePods.get(bdev.name)?.byMac.get(mac);
    if (p) return this.toPod(node, p, pkt, S);
    if (from !== "tunnel") {
      for (const t of node.bridgeTunnels.get(bdev.name) ?? []) {
        if (node.fdb.get(t.name)?.has(mac) || this.w.floodIndex(node, t).byMac.has(mac)) return this.tunnelOut(node, t, mac, pkt, S);
      }
    }
    return this.drop(S, node.name, "bridge", `no port of bridge ${bdev.name} at node ${node.name} has MAC ${mac}`);
  }

  /** Sends an inner frame to `mac` through a vxlan or sleeve device: FDB, encapsulation, underlay, decapsulation. */
  private tunnelOut(node: CNode, dev: CDev, mac: string, pkt: Pkt, S: DSet): Leaf[] {
    let r: TunnelResult | undefined;
    if (!this.rec && pkt.depth === 0 && pkt.payload === "plaintext") {
      let m = this.tunnelMemo.get(dev);
      if (!m) this.tunnelMemo.set(dev, (m = new Map()));
      r = m.get(mac);
      if (!r) m.set(mac, (r = this.tunnelResolve(node, dev, mac, pkt)));
    } else r = this.tunnelResolve(node, dev, mac, pkt);
    if ("leaf" in r) return [this.propagate(S, r.leaf)];
    const { remote, rdev } = r;
    if (rdev.master !== undefined) {
      const b = remote.devs.get(rdev.master);
      if (!b || b.kind !== "bridge") return this.drop(S, remote.name, `${r.kind}-decap`, `${rdev.name} at node ${remote.name} is a port of ${rdev.master}, which is not a bridge`);
      return this.bridgeL2(remote, b, mac, pkt, S, "tunnel");
    }
    if (mac !== rdev.mac) {
      return this.drop(S, remote.name, `${r.kind}-decap`, `inner destination MAC ${mac} is not the MAC of ${rdev.name} (${rdev.mac}) at node ${remote.name}`);
    }
    return this.hostInput(remote, rdev.name, pkt, S);
  }

  /** FDB lookup, encapsulation, the outer packet's walk and the remote device: a drop, or where to decapsulate. */
  private tunnelResolve(node: CNode, dev: CDev, mac: string, pkt: Pkt): TunnelResult {
    const link = dev.link as VxlanLink | SleeveLink;
    const kind = link.kind;
    let dst: bigint;
    let dstFamily: Family;
    let vni = 0;
    const e = node.fdb.get(dev.name)?.get(mac);
    if (e) {
      dst = e.dst;
      dstFamily = e.family;
      if (link.kind === "vxlan") vni = e.entry.vni ?? link.vni;
    } else {
      const peer = this.w.floodIndex(node, dev).byMac.get(mac);
      if (!peer) {
        const flooded = (node.flood.get(dev.name) ?? []).length;
        return this.tunnelDrop(node.name, "fdb", `no FDB entry for ${mac} on ${dev.name} at node ${node.name}${flooded > 0 ? ` (none of ${flooded} flood destinations owns it)` : ""}`);
      }
      dst = peer.dst;
      dstFamily = peer.family;
      vni = peer.vni;
    }
    if (pkt.depth + 1 > MAX_TUNNEL_DEPTH) return this.tunnelDrop(node.name, `${kind}-encap`, `loop: tunnels nested more than ${MAX_TUNNEL_DEPTH} deep at node ${node.name}`);
    const src = dev.local ?? this.outerSource(node, dstFamily, dst);
    if (src === undefined) return this.tunnelDrop(node.name, `${kind}-encap`, `node ${node.name} has no IPv${dstFamily} address to reach tunnel endpoint ${this.a(dstFamily, dst)}`);
    const encrypted = link.kind === "sleeve" && link.encrypted;
    const payload = encrypted || pkt.payload === "encrypted" ? "encrypted" : "plaintext";
    let leaf = this.rec ? undefined : this.outerLeaf(node, dstFamily, src, payload, pkt.depth + 1, dst, kind);
    if (leaf === undefined) {
      const o = outerPacket(dstFamily, src, pkt.depth + 1, payload, this.rec ? `udp/${link.port} ${kind}${kind === "vxlan" ? ` vni ${vni}` : ""}` : kind);
      if (this.rec) this.hop(node.name, `${kind}-encap`, `${dev.name}: frame to ${mac} in ${o.label} ${this.a(dstFamily, src)} → ${this.a(dstFamily, dst)}${encrypted ? " (encrypted)" : ""}`);
      const t = this.transit(node, o, dst);
      if (this.rec) this.noteMtu(t.mtu - ENCAP_OVERHEAD[kind], `${kind} over the underlay (${t.mtu} − ${ENCAP_OVERHEAD[kind]}) from node ${node.name}`);
      leaf = t.leaf;
    }
    if (!leaf.ok) return { leaf };
    const into = leaf.into ?? "";
    const remote = this.w.nodeById.get(into);
    if (!remote) return this.tunnelDrop(node.name, `${kind}-encap`, `${kind} packet for ${this.a(dstFamily, dst)} arrived at ${into}, which is not a node`);
    const rdev = kind === "vxlan" ? remote.vxlan.get(vxlanKey(vni, link.port)) : remote.sleeve.get(link.port);
    if (!rdev) {
      return this.tunnelDrop(
        remote.name,
        `${kind}-decap`,
        kind === "vxlan" ? `no vxlan device for VNI ${vni} port ${link.port} at node ${remote.name}` : `no sleeve device on port ${link.port} at node ${remote.name}`,
      );
    }
    if (link.kind === "sleeve") {
      const theirs = (rdev.link as SleeveLink).encrypted;
      if (theirs !== link.encrypted) {
        return this.tunnelDrop(
          remote.name,
          "sleeve-decap",
          `sleeve encryption mismatch: ${dev.name} at node ${node.name} is ${link.encrypted ? "encrypted" : "plaintext"}, ${rdev.name} at node ${remote.name} is ${theirs ? "encrypted" : "plaintext"}`,
        );
      }
    }
    if (this.rec) this.hop(remote.name, `${kind}-decap`, `${rdev.name} receives the inner frame for ${mac}`);
    // one result per remote device, shared by every (device, MAC) that resolves to it
    let end = this.tunnelEnds.get(rdev);
    if (!end) this.tunnelEnds.set(rdev, (end = { kind, remote, rdev }));
    return end;
  }

  /**
   * Class walks: where an outer packet from `node` to tunnel endpoint `dst` ends, read from one
   * walk of the node's outer packets over every tunnel endpoint of the world (a sorted run, split
   * by the node's routes like any run), made on first use. A mesh node sends to nearly every
   * endpoint, so one run walk replaces a walk per (device, MAC), and the underlay part of the run
   * is shared by every node on the same next hop. Undefined: not an endpoint, or the node holds
   * too few tunnel entries for a walk over all of them to pay (then `transit` walks it alone).
   */
  private outerLeaf(node: CNode, family: Family, src: bigint, payload: Pkt["payload"], depth: number, dst: bigint, label: string): Leaf | undefined {
    let ep = this.endpointCtx.get(family);
    if (!ep) {
      const t = this.w.tunnelEndpoints(family);
      const c: DstCtx = { family, addrs: t.addrs, owner: new Array<string | undefined>(t.addrs.length).fill(undefined) };
      if (family === 4) c.nums = numbersOf(t.addrs);
      ep = { c, index: t.index, entries: t.entries };
      this.endpointCtx.set(family, ep);
    }
    const k = ep.index.get(dst);
    if (k === undefined || (ep.entries.get(node) ?? 0) * 4 < ep.c.addrs.length) return undefined;
    let runs = this.outerRuns.get(node);
    if (!runs) this.outerRuns.set(node, (runs = []));
    let run: OuterRun | undefined;
    for (const r of runs) if (r.family === family && r.src === src && r.payload === payload && r.depth === depth) run = r;
    if (!run) {
      const savedMin = this.minTtl;
      const leaves = this.hostInput(node, undefined, outerPacket(family, src, depth, payload, label), { c: ep.c, i: 0, j: ep.c.addrs.length });
      this.minTtl = savedMin;
      const leafAt = new Array<Leaf>(ep.c.addrs.length);
      for (const l of leaves) for (let m = l.i; m < l.j; m++) leafAt[m] = l;
      runs.push((run = { family, src, payload, depth, leafAt }));
    }
    const l = run.leafAt[k]!;
    if (l.ok && l.into !== undefined) return l;
    const leaf: Leaf = { ...l, i: 0, j: 1 };
    if (l.reason !== undefined) leaf.reason = fillReason(l.reason, this.a(family, dst));
    if (l.ok) leaf.into = "unknown";
    return leaf;
  }

  private tunnelDrop(node: string, stage: string, reason: string): TunnelResult {
    const one: DSet = { c: { family: 4, addrs: [0n], owner: [undefined] }, i: 0, j: 1 };
    return { leaf: this.drop(one, node, stage, reason)[0]! };
  }

  private ipipOut(node: CNode, dev: CDev, family: Family, outerDst: bigint, pkt: Pkt, S: DSet): Leaf[] {
    if (pkt.depth + 1 > MAX_TUNNEL_DEPTH) return this.drop(S, node.name, "ipip-encap", `loop: tunnels nested more than ${MAX_TUNNEL_DEPTH} deep at node ${node.name}`);
    const local = dev.local ?? this.outerSource(node, family, outerDst);
    if (local === undefined) return this.drop(S, node.name, "ipip-encap", `node ${node.name} has no IPv${family} address to reach ${this.a(family, outerDst)}`);
    const outer = outerPacket(family, local, pkt.depth + 1, pkt.payload, "ipip");
    if (this.rec) this.hop(node.name, "ipip-encap", `${dev.name}: IP-in-IP ${this.a(family, local)} → ${this.a(family, outerDst)}`);
    const t = this.transit(node, outer, outerDst);
    if (this.rec) this.noteMtu(t.mtu - ENCAP_OVERHEAD.ipip, `ipip over the underlay (${t.mtu} − ${ENCAP_OVERHEAD.ipip}) from node ${node.name}`);
    if (!t.leaf.ok) return [this.propagate(S, t.leaf)];
    const into = t.leaf.into ?? "";
    const remote = this.w.nodeById.get(into);
    if (!remote) return this.drop(S, node.name, "ipip-encap", `IP-in-IP packet for ${this.a(family, outerDst)} arrived at ${into}, which is not a node`);
    const rdev = remote.ipip.find((d) => d.local === undefined || d.local === outerDst);
    if (!rdev) return this.drop(S, remote.name, "ipip-decap", `no ipip device at node ${remote.name} accepts IP-in-IP for ${this.a(family, outerDst)}`);
    if (this.rec) this.hop(remote.name, "ipip-decap", `${rdev.name} decapsulates`);
    return this.hostInput(remote, rdev.name, pkt, S);
  }

  private outerSource(node: CNode, family: Family, dst: bigint): bigint | undefined {
    const f = node.fam.get(family)!;
    const r = f.routes.lookup(dst);
    if (r?.src !== undefined) return r.src;
    let devName = r?.dev;
    if (devName === undefined && r?.via !== undefined) devName = f.links.lookup(r.via)?.dev;
    return selectSource(node, devName !== undefined ? node.devs.get(devName) : undefined, family);
  }

  /** Maps the single outer leaf onto the inner run, keeping the drop. */
  private propagate(S: DSet, leaf: Leaf): Leaf {
    const out: Leaf = { i: S.i, j: S.j, ok: false, natted: false };
    if (leaf.reason !== undefined) out.reason = leaf.reason;
    if (leaf.drop) out.drop = leaf.drop;
    return out;
  }

  /**
   * Walks an encapsulating packet from `node` to `dst` and returns where it ended. (Class walks
   * memoise the encapsulation as a whole per device and MAC, and the underlay part per next hop
   * and destination, so this is not memoised itself.)
   */
  private transit(node: CNode, outer: Pkt, dst: bigint): { leaf: Leaf; mtu: number } {
    const savedMtu = this.mtu;
    const savedAt = this.mtuAt;
    const savedFirst = this.firstMtu;
    const savedMin = this.minTtl;
    this.mtu = Number.POSITIVE_INFINITY;
    this.firstMtu = 0; // keep the sender's first MTU untouched
    const c: DstCtx = { family: outer.family, addrs: [dst], owner: [undefined] };
    const leaves = this.hostInput(node, undefined, outer, { c, i: 0, j: 1 });
    const outerMtu = Number.isFinite(this.mtu) ? this.mtu : 1500;
    this.mtu = savedMtu;
    this.mtuAt = savedAt;
    this.firstMtu = savedFirst;
    this.minTtl = savedMin;
    const l = leaves[0]!;
    const leaf: Leaf = { ...l };
    if (l.reason !== undefined) leaf.reason = fillReason(l.reason, this.a(outer.family, dst));
    if (l.ok && leaf.into === undefined) leaf.into = "unknown";
    return { leaf, mtu: outerMtu };
  }

  // ---------------------------------------------------------------- delivery into pods

  private toPod(node: CNode, q: CPod, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    if (this.rec) this.hop(node.name, "deliver", `into pod ${q.key} via ${q.pif.hostIf}`);
    if (this.rec) this.noteMtu(q.pif.mtu, `pod ${q.key} interface`);
    return this.runs(
      S,
      (k) => q.all.has(fkey(family, S.c.addrs[k]!)),
      (S1, owned) => {
        if (!owned) return this.drop(S1, node.name, "pod-deliver", `pod ${q.key} at node ${node.name} received a packet for {dst}, which it does not own (pods do not forward)`);
        if (q.ingress && !this.o.reply) {
          if (pkt.symbolic) return this.deliver(S1, q.id, pkt, { node: node.name, policy: q.ingress });
          this.srcDeps++;
          const v = evalPolicy(q.ingress, pkt.src, family, this.o.proto, this.o.port);
          if (!v.accept) return this.drop(S1, node.name, "pod-ingress", ingressReason(v.rule, q.key, node.name), v.rule);
          if (this.rec) this.hop(node.name, "pod-ingress", `allowed by pod ${q.key}'s ingress policy${v.rule !== undefined ? ` (rule ${v.rule})` : ""}`);
        }
        return this.deliver(S1, q.id, pkt);
      },
    );
  }

  // ---------------------------------------------------------------- underlay

  private underlayOut(from: Locus, subnet: CSubnet, target: bigint, pkt: Pkt, S: DSet): Leaf[] {
    // Encapsulating packets from many nodes meet here on their way to the same tunnel end: what
    // happens after this L2 hop depends on (next hop, destination), not on who sent it — once the
    // next hop answered ARP (a drop for want of an answer names the asker, so it is not shared),
    // and unless a step behind it judged the packet by its source (then it is not stored).
    if (this.rec || !pkt.outer || pkt.family !== subnet.range.family || !this.w.subnetResponder(subnet, pkt.family, target)) {
      return this.underlayOutInner(from, subnet, target, pkt, S);
    }
    const variant = pkt.ttl * 64 + pkt.depth * 2 + (pkt.payload === "encrypted" ? 1 : 0);
    const runs = this.endpointCtx.get(pkt.family)?.c === S.c;
    if (!runs && (S.j - S.i !== 1 || S.i !== 0)) return this.underlayOutInner(from, subnet, target, pkt, S);
    const memo = runs ? this.underlayRunMemo : this.underlayMemo;
    let bySubnet = memo.get(variant);
    if (!bySubnet) memo.set(variant, (bySubnet = new Map()));
    let byTarget = bySubnet.get(subnet);
    if (!byTarget) bySubnet.set(subnet, (byTarget = new Map()));
    let byDst = byTarget.get(fkey(pkt.family, target));
    if (!byDst) byTarget.set(fkey(pkt.family, target), (byDst = new Map()));
    // a run of the endpoint context by its bounds; a single destination by its address
    const dk = runs ? BigInt(S.i * (S.c.addrs.length + 1) + S.j) : fkey(pkt.family, S.c.addrs[0]!);
    const hit = byDst.get(dk);
    if (hit) return hit;
    const deps = this.srcDeps;
    const leaves = this.underlayOutInner(from, subnet, target, pkt, S);
    if (this.srcDeps === deps) byDst.set(dk, leaves);
    return leaves;
  }

  private underlayOutInner(from: Locus, subnet: CSubnet, target: bigint, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    const name = locusName(from);
    if (family !== subnet.range.family) return this.drop(S, name, "underlay-arp", `subnet ${subnet.name} carries no IPv${family}`);
    const resp = this.w.subnetResponder(subnet, family, target);
    if (!resp) return this.drop(S, name, "underlay-arp", `no neighbour: nobody on subnet ${subnet.name} answers ARP for ${this.a(family, target)} (asked by ${name})`);
    if (this.rec) this.noteMtu(subnet.mtu, `subnet ${subnet.name}`);
    if (this.rec) {
      const to = resp.kind === "node" ? resp.node.name : resp.kind === "router" ? resp.router.name : resp.ext.name;
      this.hop(name, "underlay", `${this.a(family, pkt.src)} → ${this.dstText(S)} ${pkt.label} on subnet ${subnet.name} to ${to} (${pkt.payload})`, pkt.payload);
    }
    switch (resp.kind) {
      case "node":
        return this.hostInput(resp.node, resp.dev.name, pkt, S);
      case "router":
        return this.routerIn(resp.router, pkt, S);
      case "external":
        return this.externalIn(resp.ext, pkt, S);
    }
  }

  private routerIn(router: CRouter, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    return this.runs(
      S,
      (k) => router.addrs.has(fkey(family, S.c.addrs[k]!)),
      (S1, own) => {
        if (own) return this.deliver(S1, `router:${router.name}`, pkt);
        const trace: Trace = { name: router.name, prev: pkt.trace };
        const ttl = pkt.ttl - 1;
        if (ttl < this.minTtl) this.minTtl = ttl;
        if (ttl <= 0) {
          this.ttlDrops++;
          return this.drop(S1, router.name, "router", loopReason(router.name, trace));
        }
        const p = { ...pkt, ttl, trace };
        const table = router.table.get(family);
        if (!table) return this.drop(S1, router.name, "router", `router ${router.name} has no route to {dst}`);
        const out: Leaf[] = [];
        table.partition(
          S1.c.addrs,
          S1.i,
          S1.j,
          (i, j, rr) => {
            const S2 = { c: S1.c, i, j };
            if (!rr) {
              concat(out, this.drop(S2, router.name, "router", `router ${router.name} has no route to {dst}`));
              return;
            }
            if (this.rec) this.hop(router.name, "router", `${this.dstText(S2)} matches ${rr.label}`);
            const subnet = this.w.topo.subnets.get(rr.subnet)!;
            concat(
              out,
              this.forTargets(S2, rr.via, (t, S3) => this.underlayOut({ kind: "router", router }, subnet, t, p, S3)),
            );
          },
          S1.c.nums,
        );
        return out;
      },
    );
  }

  private externalIn(ext: CExternal, pkt: Pkt, S: DSet): Leaf[] {
    const family = pkt.family;
    return this.runs(
      S,
      (k) => family === ext.family && S.c.addrs[k] === ext.address,
      (S1, mine) => {
        if (mine) {
          if (this.rec) this.hop(ext.name, "deliver", `external host ${ext.name} receives`);
          return this.deliver(S1, `external:${ext.name}`, pkt);
        }
        return this.drop(S1, ext.name, "deliver", `external host ${ext.name} does not forward (packet for {dst})`);
      },
    );
  }
}
