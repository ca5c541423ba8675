/**
 * Stale state: what surviving nodes still hold that points at a departed (or replaced) node.
 *
 * A node is known by more than its underlay address. Before it goes, `departedOf` records every
 * identifier of it that a peer's dataplane can point at, from two sides:
 *  - its own last dataplane: its underlay addresses, the addresses on its links (a VTEP or tunnel
 *    address, a bridge gateway) and the prefixes they sit in (its pod subnet), its blackhole /
 *    unreachable routes (Calico-style blocks it owns), its link MACs (the VTEP MAC), its pods'
 *    addresses and MACs;
 *  - what its peers programmed for it: an FDB entry to its underlay address names its VTEP MAC, a
 *    neighbour with that MAC names its VTEP address, a route via its underlay or VTEP address
 *    names its pod subnet (host-gw, DirectRouting, BGP, IPIP, flannel's `via <subnet>.0 onlink`).
 * `staleProblems` then flags, on every surviving node, each route, neighbour, FDB entry and filter
 * peer that points at one of those identifiers — unless a live node owns that identifier now
 * (a replacement keeps its name and address, may keep its subnet, and a later pod may get a freed
 * address): what a live node owns is never stale.
 */
import { Prefix } from "@cnikit/core";
import type { NodeDataplane } from "@cnikit/core";
import { summarizeProblems } from "./harness.ts";
import type { Harness } from "./harness.ts";

export interface Departed {
  name: string;
  /** Its first underlay address ("" when it had none). */
  address: string;
  /** Its pods' addresses. */
  podAddresses: string[];
  /** Every address of it: underlay, link addresses (VTEP / tunnel / gateway), pods, peer-derived. */
  addresses: string[];
  /** Its MACs: link MACs (VTEP), pod MACs, and the MACs its peers' FDB entries sent to it. */
  macs: string[];
  /** Its address space: pod subnet / blocks (from its own addresses and blackholes, and its peers' routes to it). */
  ranges: string[];
}

const ZERO_MAC = "00:00:00:00:00:00";

function hostOf(cidr: string): string {
  return cidr.split("/")[0]!;
}

function prefixOf(cidr: string): Prefix | undefined {
  try {
    return Prefix.parse(cidr, { allowHostBits: true });
  } catch {
    return undefined;
  }
}

function normMac(mac: string): string {
  return mac.toLowerCase();
}

/** What a node says about itself in its own dataplane (and its NodeInfo). */
function ownIdentifiers(dp: NodeDataplane, underlay: string[]): { addresses: Set<string>; macs: Set<string>; ranges: Set<string>; pods: Set<string> } {
  const addresses = new Set(underlay);
  const macs = new Set<string>();
  const ranges = new Set<string>();
  const pods = new Set<string>();
  for (const a of dp.addresses) {
    addresses.add(hostOf(a.cidr));
    const p = prefixOf(a.cidr);
    if (p && p.length < p.bits) ranges.add(p.toString());
  }
  for (const l of dp.links) if (l.mac && normMac(l.mac) !== ZERO_MAC) macs.add(normMac(l.mac));
  for (const r of dp.routes) {
    if (r.type === "blackhole" || r.type === "unreachable") {
      const p = prefixOf(r.dst);
      if (p && p.length > 0) ranges.add(p.toString());
    }
  }
  for (const p of dp.pods) {
    if (p.mac && normMac(p.mac) !== ZERO_MAC) macs.add(normMac(p.mac));
    for (const cidr of p.addresses) {
      pods.add(hostOf(cidr));
      addresses.add(hostOf(cidr));
      const pre = prefixOf(cidr);
      if (pre && pre.length < pre.bits) ranges.add(pre.toString());
    }
  }
  return { addresses, macs, ranges, pods };
}

/**
 * Records what identifies node `name` (it must still be in the cluster): call it before the node
 * leaves, crashes or is replaced.
 */
export function departedOf(h: Harness, name: string): Departed {
  const node = h.cluster.node(name);
  const underlay = node.info.underlay.map((u) => u.address);
  const own = ownIdentifiers(h.cluster.dataplane(name), underlay);
  const addresses = new Set(own.addresses);
  const macs = new Set(own.macs);
  const ranges = new Set(own.ranges);
  const peers = h.cluster
    .nodes()
    .filter((n) => n.alive && n.name !== name)
    .map((n) => h.cluster.dataplane(n.name));
  // What peers programmed for it, to a fixed point: FDB dst -> MAC, neighbour MAC -> address, route via -> prefix.
  for (let changed = true; changed;) {
    changed = false;
    const add = <T>(set: Set<T>, v: T): void => {
      if (!set.has(v)) {
        set.add(v);
        changed = true;
      }
    };
    for (const dp of peers) {
      for (const f of dp.fdb) if (addresses.has(f.dst) && normMac(f.mac) !== ZERO_MAC) add(macs, normMac(f.mac));
      for (const n of dp.neighbours) if (macs.has(normMac(n.mac))) add(addresses, n.ip);
      for (const r of dp.routes) {
        if (r.via === undefined || !addresses.has(r.via)) continue;
        const p = prefixOf(r.dst);
        if (p && p.length > 0) add(ranges, p.toString());
      }
    }
  }
  return {
    name,
    address: underlay[0] ?? "",
    podAddresses: [...own.pods],
    addresses: [...addresses],
    macs: [...macs],
    ranges: [...ranges],
  };
}

/**
 * Identifiers some live node owns now (from its own dataplane, its NodeInfo and its pods). A
 * replacement of the departed node is live: what it owns now (its address, maybe its old subnet)
 * is not stale.
 */
function liveOwned(h: Harness): { addresses: Set<string>; macs: Set<string>; prefixes: Prefix[]; points: string[] } {
  const addresses = new Set<string>();
  const macs = new Set<string>();
  const prefixes: Prefix[] = [];
  const points: string[] = [];
  for (const node of h.cluster.nodes()) {
    if (!node.alive) continue;
    const dp = h.cluster.dataplane(node.name);
    const own = ownIdentifiers(
      dp,
      node.info.underlay.map((u) => u.address),
    );
    for (const a of own.addresses) addresses.add(a);
    for (const m of own.macs) macs.add(m);
    for (const r of own.ranges) {
      const p = prefixOf(r);
      if (p) prefixes.push(p);
    }
    // Addresses inside a range make the range live (a pod, a gateway, a VTEP address).
    for (const a of dp.addresses) points.push(hostOf(a.cidr));
    for (const p of dp.pods) for (const c of p.addresses) points.push(hostOf(c));
  }
  for (const p of h.cluster.pods()) if (h.cluster.nodes().some((n) => n.alive && n.name === p.node)) points.push(...p.addresses);
  return { addresses, macs, prefixes, points };
}

/** The identifiers of `gone` that no live node owns now. */
function staleIdentifiers(h: Harness, gone: Departed): { addresses: Set<string>; macs: Set<string>; ranges: Prefix[] } {
  const live = liveOwned(h);
  const addresses = new Set(gone.addresses.filter((a) => !live.addresses.has(a)));
  const macs = new Set(gone.macs.filter((m) => !live.macs.has(m)));
  const ranges: Prefix[] = [];
  for (const r of gone.ranges) {
    const p = prefixOf(r);
    if (!p) continue;
    // Live when a live node declares it (or a range inside it), or a live address sits in it.
    if (live.prefixes.some((q) => q.family === p.family && (p.contains(q) || q.contains(p)))) continue;
    if (live.points.some((a) => p.contains(a))) continue;
    ranges.push(p);
  }
  return { addresses, macs, ranges };
}

function inRanges(ranges: Prefix[], cidrOrAddress: string): Prefix | undefined {
  const p = prefixOf(cidrOrAddress.includes("/") ? cidrOrAddress : `${cidrOrAddress}/${cidrOrAddress.includes(":") ? 128 : 32}`);
  if (!p) return undefined;
  return ranges.find((r) => r.family === p.family && r.contains(p));
}

/**
 * Routes, neighbours, FDB entries and filter peers on surviving nodes that still point at an
 * address, MAC or address range of the departed node `gone` that no live node owns now.
 */
export function staleProblems(h: Harness, gone: Departed): string[] {
  const stale = staleIdentifiers(h, gone);
  const problems: string[] = [];
  const who = `departed node ${gone.name}`;
  for (const node of h.cluster.nodes()) {
    if (!node.alive || node.name === gone.name) continue;
    const dp = h.cluster.dataplane(node.name);
    for (const r of dp.routes) {
      const range = inRanges(stale.ranges, r.dst);
      if (r.via !== undefined && stale.addresses.has(r.via)) {
        problems.push(`node ${node.name} still routes ${r.dst} via ${r.via}${r.onlink ? " onlink" : ""}${r.dev ? ` dev ${r.dev}` : ""}, an address of ${who}`);
      } else if (range) {
        problems.push(`node ${node.name} still has a route to ${r.dst}${r.via ? ` via ${r.via}` : ""}${r.dev ? ` dev ${r.dev}` : ""}, inside ${range.toString()}, the address space of ${who}`);
      } else if (stale.addresses.has(hostOf(r.dst)) && prefixOf(r.dst)?.length === prefixOf(r.dst)?.bits) {
        problems.push(`node ${node.name} still has a host route ${r.dst} to an address of ${who}`);
      } else if (r.via !== undefined && inRanges(stale.ranges, r.via)) {
        problems.push(`node ${node.name} still routes ${r.dst} via ${r.via}, inside the address space of ${who}`);
      }
    }
    for (const n of dp.neighbours) {
      if (stale.macs.has(normMac(n.mac))) problems.push(`node ${node.name} still has neighbour ${n.ip} -> ${n.mac} on ${n.dev}, a MAC of ${who}`);
      else if (stale.addresses.has(n.ip) || inRanges(stale.ranges, n.ip)) problems.push(`node ${node.name} still has neighbour ${n.ip} -> ${n.mac} on ${n.dev}, an address of ${who}`);
    }
    for (const f of dp.fdb) {
      if (stale.addresses.has(f.dst)) problems.push(`node ${node.name} still has FDB entry ${f.mac} on ${f.dev} -> ${f.dst}, an address of ${who}`);
      else if (stale.macs.has(normMac(f.mac))) problems.push(`node ${node.name} still has FDB entry ${f.mac} on ${f.dev} -> ${f.dst}, the MAC of ${who}`);
    }
    for (const pol of dp.filters) {
      for (const rule of pol.rules) {
        for (const peer of rule.peers ?? []) {
          for (const cidr of peer.cidrs) {
            const p = prefixOf(cidr);
            if (p && p.length === p.bits && stale.addresses.has(hostOf(cidr))) {
              problems.push(`node ${node.name} still has filter rule ${rule.id} for pod ${pol.pod} naming ${cidr}, an address of ${who}`);
            }
          }
        }
      }
    }
  }
  return problems;
}

/** staleProblems joined for a converge() condition; undefined when nothing is stale. */
export function staleProblem(h: Harness, gone: Departed): string | undefined {
  const stale = staleProblems(h, gone);
  return stale.length > 0 ? summarizeProblems(stale) : undefined;
}
