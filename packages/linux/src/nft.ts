/**
 * The nftables half of a NodeDataplane: NAT rules and per-pod filter policies as one table per
 * owner, `table inet cnikit-<owner>`, replaced atomically whenever its text changes. The table's
 * comment carries a hash of its text, so a restarted renderer knows whether the kernel holds what
 * it would load without parsing rules back.
 *
 * Layout:
 *
 *   chain pod-<n>-egress / pod-<n>-ingress    the pod's rules in order: accept = `return` (the base
 *                                             chain goes on to the other direction), drop = `drop`;
 *                                             a `drop` at the end when the default action is drop
 *   chain filter-forward  hook forward:       ct state established,related accept; then the egress
 *                                             dispatch (sender pod), then the ingress dispatch (receiver)
 *   chain filter-input    hook input:         ct state established,related accept; the egress dispatch
 *                                             (a pod talking to its own node is still its egress)
 *   chain nat-postrouting hook postrouting:   the NAT rules in order (first match wins)
 *
 * Dispatch: a routed pod (no bridge) is recognised by its host veth (`iifname` / `oifname`), which
 * it cannot spoof; a pod on a bridge by its addresses (`ip saddr` / `ip daddr`), because with
 * br_netfilter the inet hooks see the bridge, not the port, as the interface. Bridged traffic
 * reaches these hooks through br_netfilter: the renderer turns on `nf_call_iptables` on every owned
 * bridge that carries a filtered pod. Traffic from a node to its own pods is not filtered (kubelet
 * probes), as in @cnikit/netpol's ruleset; the simulator never sends from a node.
 */
import { ConfigError, Prefix, canonicalAddress, type Family, type FilterPolicy, type FilterRule, type NatRule, type NodeDataplane, type PodInterface } from "@cnikit/core";
import { hash32, intervalText, mergeIntervals, subtractIntervals, type Interval } from "./util.ts";

/** The table family: IPv4 and IPv6 in one table. */
export const NFT_FAMILY = "inet";

/** Name of an owner's table. */
export function nftTableName(owner: string): string {
  return `cnikit-${owner}`;
}

/** An `nft -f` script that replaces the owner's table with `text` atomically (creates it when absent). */
export function replaceTableScript(owner: string, text: string): string {
  const t = nftTableName(owner);
  return `add table ${NFT_FAMILY} ${t}\ndelete table ${NFT_FAMILY} ${t}\n${text}`;
}

/** An `nft -f` script that removes the owner's table (a no-op when absent). */
export function deleteTableScript(owner: string): string {
  const t = nftTableName(owner);
  return `add table ${NFT_FAMILY} ${t}\ndelete table ${NFT_FAMILY} ${t}\n`;
}

/** The hash in the comment of a listed table (`nft list table`), undefined when there is none. */
export function parseTableHash(listing: string, owner: string): string | undefined {
  const m = new RegExp(`^\\s*comment "cnikit:${owner} ([0-9a-f]+)"`, "m").exec(listing);
  return m?.[1];
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: "linux", field, rule } : { component: "linux", field, rule, value });
}

function comment(text: string): string {
  return `comment "${text.replace(/["\\\n\r]/g, "").slice(0, 120)}"`;
}

function kw(family: Family): string {
  return family === 4 ? "ip" : "ip6";
}

/** Prefixes of one family as merged nft set elements. */
function prefixElements(prefixes: readonly Prefix[], family: Family): string[] {
  const ivs: Interval[] = prefixes.filter((p) => p.family === family).map((p) => [p.base, p.last] as Interval);
  return mergeIntervals(ivs).map(([a, b]) => intervalText(a, b, family));
}

function set(elements: readonly string[]): string {
  return `{ ${elements.join(", ")} }`;
}

function natLines(rules: readonly NatRule[], F: string): string[] {
  const lines: string[] = [];
  rules.forEach((n, i) => {
    const f = `${F}.nat[${i}]`;
    if (n.kind !== "masquerade" && n.kind !== "snat") fail(`${f}.kind`, 'must be "masquerade" or "snat"', n.kind);
    if (!Array.isArray(n.sources) || !Array.isArray(n.exceptDestinations)) fail(f, "must have sources and exceptDestinations arrays");
    const sources = n.sources.map((s, k) => Prefix.parse(s, { field: `${f}.sources[${k}]`, component: "linux" }));
    const except = n.exceptDestinations.map((s, k) => Prefix.parse(s, { field: `${f}.exceptDestinations[${k}]`, component: "linux" }));
    let to: { text: string; family: Family } | undefined;
    if (n.kind === "snat") {
      if (n.toAddress === undefined) fail(`${f}.toAddress`, "is required for snat");
      const text = canonicalAddress(n.toAddress, { field: `${f}.toAddress`, component: "linux" });
      to = { text, family: text.includes(":") ? 6 : 4 };
    }
    if (n.outDev !== undefined && !/^[^\s/:"'\\]{1,15}$/.test(n.outDev)) fail(`${f}.outDev`, "must be an interface name", n.outDev);
    for (const family of [4, 6] as const) {
      const src = prefixElements(sources, family);
      if (src.length === 0) continue;
      if (to && to.family !== family) continue;
      const ex = prefixElements(except, family);
      const parts = [`${kw(family)} saddr ${set(src)}`];
      if (ex.length > 0) parts.push(`${kw(family)} daddr != ${set(ex)}`);
      if (n.outDev !== undefined) parts.push(`oifname "${n.outDev}"`);
      parts.push(to ? `snat ${kw(family)} to ${to.text}` : `masquerade${n.randomFully ? " fully-random" : ""}`);
      parts.push(comment(n.id));
      lines.push(parts.join(" "));
    }
  });
  return lines;
}

const PROTOS = ["tcp", "udp", "sctp", "icmp"];

/** The lines of one filter rule (empty when its peers match nothing). */
function ruleLines(r: FilterRule, direction: "ingress" | "egress", f: string): string[] {
  if (r.action !== "accept" && r.action !== "drop") fail(`${f}.action`, 'must be "accept" or "drop"', r.action);
  if (r.protocol !== undefined && !PROTOS.includes(r.protocol)) fail(`${f}.protocol`, "must be tcp, udp, sctp or icmp", r.protocol);
  const verdict = r.action === "accept" ? "return" : "drop";
  const dirKw = direction === "ingress" ? "saddr" : "daddr";
  let peers: string[] = [""];
  if (r.peers && r.peers.length > 0) {
    peers = [];
    for (const family of [4, 6] as const) {
      const ivs: Interval[] = [];
      r.peers.forEach((pm, k) => {
        const cidrs = pm.cidrs.map((c, n) => Prefix.parse(c, { field: `${f}.peers[${k}].cidrs[${n}]`, component: "linux" }));
        const except = (pm.except ?? []).map((c, n) => Prefix.parse(c, { field: `${f}.peers[${k}].except[${n}]`, component: "linux" }));
        const cut = mergeIntervals(except.filter((e) => e.family === family).map((e) => [e.base, e.last] as Interval));
        for (const c of cidrs) if (c.family === family) ivs.push(...subtractIntervals(c.base, c.last, cut));
      });
      const merged = mergeIntervals(ivs);
      if (merged.length > 0) peers.push(`${kw(family)} ${dirKw} ${set(merged.map(([a, b]) => intervalText(a, b, family)))} `);
    }
    if (peers.length === 0) return [];
  }
  let ports: string | undefined;
  if (r.ports && r.ports.length > 0) {
    r.ports.forEach((p, k) => {
      if (!Number.isInteger(p.from) || !Number.isInteger(p.to) || p.from < 0 || p.to > 65535 || p.from > p.to) {
        fail(`${f}.ports[${k}]`, "must be a range of integers 0..65535 with from <= to", p);
      }
    });
    ports = set(mergeIntervals(r.ports.map((p) => [BigInt(p.from), BigInt(p.to)] as Interval)).map(([a, b]) => (a === b ? String(a) : `${a}-${b}`)));
  }
  let l4: string[];
  if (r.protocol === "icmp") l4 = ["meta l4proto { icmp, ipv6-icmp } "];
  else if (r.protocol !== undefined) l4 = [`meta l4proto ${r.protocol} ${ports ? `th dport ${ports} ` : ""}`];
  else if (ports) l4 = [`meta l4proto { tcp, udp, sctp } th dport ${ports} `, "meta l4proto { icmp, ipv6-icmp } "];
  else l4 = [""];
  const out: string[] = [];
  for (const p of peers) for (const l of l4) out.push(`${p}${l}${verdict} ${comment(r.id)}`);
  return out;
}

interface PodChain {
  pod: PodInterface;
  direction: "ingress" | "egress";
  name: string;
  lines: string[];
}

function podAddresses(pod: PodInterface, family: Family): string[] {
  return pod.addresses
    .map((a) => a.split("/")[0]!)
    .filter((a) => (a.includes(":") ? 6 : 4) === family)
    .map((a) => canonicalAddress(a));
}

function dispatch(chains: readonly PodChain[], direction: "ingress" | "egress"): string[] {
  const mine = chains.filter((c) => c.direction === direction);
  const lines: string[] = [];
  const byIf = mine.filter((c) => c.pod.bridge === undefined).map((c) => `"${c.pod.hostIf}" : jump ${c.name}`);
  if (byIf.length > 0) lines.push(`${direction === "egress" ? "iifname" : "oifname"} vmap ${set(byIf)}`);
  for (const family of [4, 6] as const) {
    const seen = new Set<string>();
    const els: string[] = [];
    for (const c of mine) {
      if (c.pod.bridge === undefined) continue;
      for (const a of podAddresses(c.pod, family)) {
        if (seen.has(a)) continue;
        seen.add(a);
        els.push(`${a} : jump ${c.name}`);
      }
    }
    if (els.length > 0) lines.push(`${kw(family)} ${direction === "egress" ? "saddr" : "daddr"} vmap ${set(els)}`);
  }
  return lines;
}

/**
 * The owner's table for `dp` (NAT rules and the filters of pods present in `dp`; filters of pods
 * that are not are ignored: they have nothing to filter), with its hash; undefined when the
 * dataplane needs no table. Deterministic text. Pure.
 * @throws ConfigError naming `<field>.nat[i]...` / `<field>.filters[i]...` for bad rules, and for
 *   two policies of one pod and direction.
 */
export function renderNftTable(input: { owner: string; dp: NodeDataplane; field?: string }): { text: string; hash: string } | undefined {
  const { owner, dp } = input;
  const F = input.field ?? `dataplane(${dp.node})`;
  const nat = natLines(dp.nat, F);
  const pods = new Map(dp.pods.map((p) => [p.key, p]));
  const order = [...dp.pods].map((p) => p.key).sort();
  const index = new Map(order.map((k, i) => [k, i]));
  const seen = new Set<string>();
  const chains: PodChain[] = [];
  dp.filters.forEach((p: FilterPolicy, i) => {
    const f = `${F}.filters[${i}]`;
    if (p.direction !== "ingress" && p.direction !== "egress") fail(`${f}.direction`, 'must be "ingress" or "egress"', p.direction);
    if (p.defaultAction !== "accept" && p.defaultAction !== "drop") fail(`${f}.defaultAction`, 'must be "accept" or "drop"', p.defaultAction);
    if (!Array.isArray(p.rules)) fail(`${f}.rules`, "must be an array");
    const id = `${p.pod} ${p.direction}`;
    if (seen.has(id)) fail(f, `pod ${p.pod} has two ${p.direction} policies`, p.pod);
    seen.add(id);
    const lines = p.rules.flatMap((r, k) => ruleLines(r, p.direction, `${f}.rules[${k}]`));
    const pod = pods.get(p.pod);
    if (!pod) return;
    if (p.defaultAction === "drop") lines.push(`drop ${comment(`${p.pod} ${p.direction} default`)}`);
    chains.push({ pod, direction: p.direction, name: `pod-${index.get(p.pod)!}-${p.direction}`, lines });
  });
  if (nat.length === 0 && chains.length === 0 && dp.nat.length === 0) return undefined;
  chains.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const body: string[] = [];
  for (const c of chains) {
    body.push(`\tchain ${c.name} {`, `\t\t${comment(`${c.pod.key} ${c.direction}`)}`, ...c.lines.map((l) => `\t\t${l}`), "\t}");
  }
  if (chains.length > 0) {
    body.push("\tchain filter-forward {", "\t\ttype filter hook forward priority filter; policy accept;", "\t\tct state established,related accept");
    body.push(...dispatch(chains, "egress").map((l) => `\t\t${l}`), ...dispatch(chains, "ingress").map((l) => `\t\t${l}`), "\t}");
    const egress = dispatch(chains, "egress");
    if (egress.length > 0) {
      body.push("\tchain filter-input {", "\t\ttype filter hook input priority filter; policy accept;", "\t\tct state established,related accept");
      body.push(...egress.map((l) => `\t\t${l}`), "\t}");
    }
  }
  if (dp.nat.length > 0) {
    body.push("\tchain nat-postrouting {", "\t\ttype nat hook postrouting priority srcnat; policy accept;", ...nat.map((l) => `\t\t${l}`), "\t}");
  }
  const inner = body.join("\n");
  const hash = hash32(`${owner}\n${inner}`) + hash32(`${inner}\n${owner}`);
  const text = `table ${NFT_FAMILY} ${nftTableName(owner)} {\n\tcomment "cnikit:${owner} ${hash}"\n${inner}\n}\n`;
  return { text, hash };
}
