/**
 * All-pairs reachability by classes, not by pairs.
 *
 * Senders are grouped into classes of pods that would be treated alike by every table on the way:
 * same node, same pod-side configuration (routes, connected prefixes, bridge, MTU), same egress
 * policy content, same proxy-ARP setting, and the same membership in every NAT source list of the
 * cluster. One symbolic walk per (class, family) runs over the whole sorted run of destination
 * addresses; it splits the run only where a decision changes (an LPM interval boundary, a local
 * address, a filter or NAT prefix) and memoises sub-walks per (node, destination run, source key),
 * so that walks from different classes that meet at a node share the rest of the work. Ingress
 * policies whose verdict depends on the individual sender are left in the result and evaluated per
 * member when counting. Pairs are counted by multiplying class sizes with the size of runs.
 */
import type { Family, Protocol } from "@cnikit/core";
import { fmt, numbersOf } from "./addr.ts";
import { evalPolicy, type CNode, type CPod } from "./compile.ts";
import type { CExternal } from "./topology.ts";
import type { Endpoint, PairOutcome } from "./types.ts";
import { Walker, fillReason, ingressReason, type DstCtx, type Leaf } from "./walk.ts";
import type { World } from "./world.ts";

/** An endpoint resolved against a World. */
export interface REndpoint {
  ep: Endpoint;
  id: string;
  /** Addresses in preference order (first = the one used as destination). */
  addrs: { family: Family; value: bigint }[];
  pod?: CPod;
  node?: CNode;
  ext?: CExternal;
  /** Set when the endpoint cannot take part (e.g. a pod no dataplane knows). */
  missing?: string;
}

export function endpointId(ep: Endpoint): string {
  return ep.kind === "pod" ? `pod:${ep.key}` : ep.kind === "node" ? `node:${ep.name}` : `external:${ep.name}`;
}

export function describeId(id: string): string {
  const i = id.indexOf(":");
  return `${id.slice(0, i)} ${id.slice(i + 1)}`;
}

export function misdeliveryReason(into: string, intended: string): string {
  return `delivered to ${describeId(into)} instead of ${describeId(intended)} (address conflict)`;
}

interface Member {
  r: REndpoint;
  /** Own address in the family being walked (undefined when it has none). */
  addr: bigint | undefined;
  /**
   * Indices in the destination context of the member's own addresses (pods only): a pod's packet
   * to one of its own addresses never leaves it, so those pairs are the self pair or, with a
   * duplicate address, a delivery into the sender instead of the target.
   */
  own: number[];
}

export interface ReachCounts {
  pairs: number;
  delivered: number;
  natted: number;
}

export interface AnalysisOptions {
  world: World;
  from: REndpoint[];
  to: REndpoint[];
  proto: Protocol;
  port: number;
  /** Called for failing pairs in a deterministic order until it returns false. */
  onFailure?: (from: REndpoint, to: REndpoint) => boolean;
  /** Called for every pair (tests): expensive, enumerates the whole matrix. */
  onPair?: (o: PairOutcome) => void;
}

/** Runs the class analysis; returns the counts. */
export function analyse(options: AnalysisOptions): ReachCounts {
  const { world, from, to, proto, port } = options;
  const counts: ReachCounts = { pairs: 0, delivered: 0, natted: 0 };
  let wantFailures = options.onFailure !== undefined;
  const fail = (f: REndpoint, t: REndpoint, reason: string): void => {
    if (options.onPair) options.onPair({ from: f.ep, to: t.ep, delivered: false, natted: false, reason });
    if (wantFailures && options.onFailure) wantFailures = options.onFailure(f, t);
  };
  const toIds = new Set(to.map((t) => t.id));
  const fromIds = new Set(from.map((f) => f.id));
  let self = 0;
  for (const id of fromIds) if (toIds.has(id)) self++;
  // duplicates in the lists count as listed
  counts.pairs = from.length * to.length - countSelfPairs(from, to, self);

  // Targets per family.
  const byFamily = new Map<Family, { t: REndpoint; value: bigint }[]>();
  const unusable: REndpoint[] = [];
  for (const t of to) {
    const a = t.addrs[0];
    if (t.missing !== undefined || !a) {
      unusable.push(t);
      continue;
    }
    let list = byFamily.get(a.family);
    if (!list) byFamily.set(a.family, (list = []));
    list.push({ t, value: a.value });
  }
  // Pairs with an unusable target or sender fail outright.
  for (const t of unusable) {
    for (const f of from) {
      if (f.id === t.id) continue;
      fail(f, t, t.missing ?? `${describeId(t.id)} has no address`);
    }
  }
  const senders = from.filter((f) => f.missing === undefined);
  for (const f of from) {
    if (f.missing === undefined) continue;
    for (const [, list] of byFamily) for (const { t } of list) if (t.id !== f.id) fail(f, t, f.missing);
  }

  for (const [family, list] of byFamily) {
    list.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    const addrs: bigint[] = [];
    const targetsAt: REndpoint[][] = [];
    for (const { t, value } of list) {
      if (addrs.length > 0 && addrs[addrs.length - 1] === value) targetsAt[targetsAt.length - 1]!.push(t);
      else {
        addrs.push(value);
        targetsAt.push([t]);
      }
    }
    const owner = targetsAt.map((ts) => (ts.length === 1 ? ts[0]!.id : undefined));
    const ctx: DstCtx = { family, addrs, owner };
    if (family === 4) ctx.nums = numbersOf(addrs);
    const indexOfTarget = new Map<string, number>();
    targetsAt.forEach((ts, k) => {
      for (const t of ts) indexOfTarget.set(t.id, k);
    });
    const walker = new Walker(world, { proto, port, record: false, reply: false, memoCtx: ctx });

    // Classes.
    const classes = new Map<string, Member[]>();
    for (const f of senders) {
      const own = f.addrs.find((a) => a.family === family)?.value;
      let key: string;
      if (f.pod) key = `p|${f.pod.sendSignature}|${own === undefined ? "-" : world.natSignature(family, own)}`;
      else key = `${f.id}`;
      let members = classes.get(key);
      if (!members) classes.set(key, (members = []));
      const ownIdx: number[] = [];
      if (f.pod) {
        for (const a of f.addrs) {
          if (a.family !== family) continue;
          const k = lowerBig(addrs, a.value);
          if (k < addrs.length && addrs[k] === a.value && !ownIdx.includes(k)) ownIdx.push(k);
        }
      } else {
        const k = indexOfTarget.get(f.id);
        if (k !== undefined) ownIdx.push(k);
      }
      members.push({ r: f, addr: own, own: ownIdx.sort((a, b) => a - b) });
    }

    for (const members of classes.values()) {
      const rep = members[0]!;
      const S = { c: ctx, i: 0, j: addrs.length };
      let leaves: Leaf[];
      if (rep.r.pod) {
        const pkt = walker.packet({
          family,
          src: rep.addr ?? 0n,
          symbolic: true,
          natSig: rep.addr === undefined ? "|" : world.natSignature(family, rep.addr),
        });
        leaves = walker.fromPod(rep.r.pod, pkt, S);
      } else if (rep.r.node) {
        leaves = walker.fromNode(rep.r.node, walker.packet({ family }), S);
      } else {
        const ext = rep.r.ext!;
        leaves = walker.fromExternal(ext, walker.packet({ family, ...(ext.family === family ? { src: ext.address } : {}) }), S);
      }
      const ownSorted = members.flatMap((m) => m.own).sort((a, b) => a - b);
      const selfIn = (i: number, j: number): number => lowerIdx(ownSorted, j) - lowerIdx(ownSorted, i);
      // A pod's own addresses: the self pair, or (duplicate address) delivered into the sender.
      for (const m of members) {
        if (!m.r.pod) continue;
        for (const k of m.own) {
          for (const t of targetsAt[k]!) {
            if (t.id === m.r.id) continue;
            if (options.onPair) options.onPair({ from: m.r.ep, to: t.ep, delivered: false, natted: false, reason: misdeliveryReason(m.r.id, t.id) });
            if (wantFailures && options.onFailure) wantFailures = options.onFailure(m.r, t);
          }
        }
      }
      for (const leaf of leaves) {
        expandLeaf({ leaf, members, selfIn, ctx, targetsAt, proto, port, family, counts, fail, enumerate: () => wantFailures || options.onPair !== undefined, onPair: options.onPair });
      }
    }
  }
  return counts;
}

function countSelfPairs(from: REndpoint[], to: REndpoint[], distinctSelf: number): number {
  if (distinctSelf === 0) return 0;
  const toCount = new Map<string, number>();
  for (const t of to) toCount.set(t.id, (toCount.get(t.id) ?? 0) + 1);
  let n = 0;
  for (const f of from) n += toCount.get(f.id) ?? 0;
  return n;
}

function lowerBig(arr: bigint[], v: bigint): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerIdx(arr: number[], v: number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function expandLeaf(x: {
  leaf: Leaf;
  members: Member[];
  selfIn: (i: number, j: number) => number;
  ctx: DstCtx;
  targetsAt: REndpoint[][];
  proto: Protocol;
  port: number;
  family: Family;
  counts: ReachCounts;
  fail: (f: REndpoint, t: REndpoint, reason: string) => void;
  /** Whether failing pairs still need to be enumerated. */
  enumerate: () => boolean;
  onPair: ((o: PairOutcome) => void) | undefined;
}): void {
  const { leaf, members, ctx, targetsAt, family, counts } = x;
  const dstText = (k: number): string => fmt(ctx.addrs[k]!, family);
  const seenOf = (m: Member): string | undefined => {
    const v = leaf.seen ?? m.addr;
    return v === undefined ? undefined : fmt(v, family);
  };
  const verdict = (m: Member): { accept: boolean; rule?: string } => {
    if (!leaf.ingress) return { accept: true };
    return evalPolicy(leaf.ingress.policy, m.addr ?? 0n, family, x.proto, x.port);
  };
  const podKeyOf = (id: string): string => (id.startsWith("pod:") ? id.slice(4) : id);
  if (!leaf.ok) {
    for (let k = leaf.i; k < leaf.j && x.enumerate(); k++) {
      const reason = fillReason(leaf.reason ?? "dropped", dstText(k));
      for (const t of targetsAt[k]!) {
        for (const m of members) if (m.r.id !== t.id && !m.own.includes(k)) x.fail(m.r, t, m.r.pod ? fillReason(reason, "", m.r.pod.key) : reason);
      }
    }
    return;
  }
  if (leaf.into === undefined) {
    // Each address has exactly one target, which received the packet.
    const n = leaf.j - leaf.i;
    const natted = leaf.natted;
    const simple = !leaf.ingress && !x.onPair;
    if (simple) {
      const delivered = members.length * n - x.selfIn(leaf.i, leaf.j);
      counts.delivered += delivered;
      if (natted) counts.natted += delivered;
      return;
    }
    for (const m of members) {
      const v = verdict(m);
      let self = 0;
      for (const k of m.own) if (k >= leaf.i && k < leaf.j) self++;
      if (v.accept) {
        counts.delivered += n - self;
        if (natted) counts.natted += n - self;
        if (x.onPair) {
          for (let k = leaf.i; k < leaf.j; k++) {
            const t = targetsAt[k]![0]!;
            if (t.id === m.r.id || m.own.includes(k)) continue;
            const seen = seenOf(m);
            x.onPair({ from: m.r.ep, to: t.ep, delivered: true, natted, ...(seen !== undefined ? { seenSource: seen } : {}) });
          }
        }
      } else {
        for (let k = leaf.i; k < leaf.j && x.enumerate(); k++) {
          const t = targetsAt[k]![0]!;
          if (t.id === m.r.id || m.own.includes(k)) continue;
          x.fail(m.r, t, ingressReason(v.rule, podKeyOf(t.id), leaf.ingress!.node));
        }
      }
    }
    return;
  }
  // Delivered into a specific endpoint (single address): only that target got it.
  const into = leaf.into;
  for (let k = leaf.i; k < leaf.j; k++) {
    for (const t of targetsAt[k]!) {
      for (const m of members) {
        if (m.r.id === t.id || m.own.includes(k)) continue;
        const v = verdict(m);
        if (!v.accept) {
          x.fail(m.r, t, ingressReason(v.rule, podKeyOf(into), leaf.ingress!.node));
          continue;
        }
        if (t.id !== into) {
          x.fail(m.r, t, misdeliveryReason(into, t.id));
          continue;
        }
        counts.delivered++;
        if (leaf.natted) counts.natted++;
        if (x.onPair) {
          const seen = seenOf(m);
          x.onPair({ from: m.r.ep, to: t.ep, delivered: true, natted: leaf.natted, ...(seen !== undefined ? { seenSource: seen } : {}) });
        }
      }
    }
  }
}
