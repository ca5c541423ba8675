/**
 * The nftables form of a node's policies: one table of our own, `table inet cnikit-netpol`.
 *
 * Layout (names are positions in the sorted policy list, so they depend on policies only):
 *
 *   chain forward-out  hook forward priority 0:  ct state established,related accept; iifname vmap @out-pods
 *   chain forward-in   hook forward priority 10: ct state established,related accept; oifname vmap @in-pods
 *   map out-pods / in-pods   ifname : verdict    one element per local pod isolated in that direction
 *                                               ("vethX" : goto out-policies)
 *   chain out-policies / in-policies            per policy of that type: iifname/oifname @pN-sel jump pN-out/pN-in;
 *                                               then drop
 *   set pN-sel         ifname                    the local pods policy N selects
 *   chain pN-out / pN-in                         one accept rule per (rule, family, protocol) of the policy
 *   set pN-inR-a4 / -a6   ipv4_addr / ipv6_addr (interval): the rule's peers: selected pods' addresses
 *                                               and ipBlocks minus their excepts, merged into disjoint intervals
 *   set pN-inR-tcp     inet_service (interval)  the rule's numeric ports and endPort ranges per protocol
 *   set pN-inR-tcp-named   ifname . inet_service        ingress named ports resolved per local pod
 *   set pN-outR-tcp-named4 ipv4_addr . inet_service     egress named ports resolved per destination pod
 *
 * A packet is forwarded only when both base chains accept it (an accept ends one base chain; a drop
 * ends the hook), so the sender's egress and the receiver's ingress must both allow a new
 * connection, while conntrack lets established and related packets (replies) through. Traffic to
 * and from the node itself never crosses the forward hook and is not filtered, as Kubernetes wants.
 *
 * Everything that depends on pods (membership, addresses, named-port resolutions) lives in set and
 * map elements; chains and set declarations depend on the policies only. So a pod added, removed or
 * relabelled changes elements only, and `nftUpdate` emits element adds and deletes; a policy change
 * replaces the table in one atomic transaction. The text is deterministic (sorted everywhere).
 */
import { formatAddress, intervalText, mergeIntervals, parseAddress, subtractIntervals, type Family } from "@cnikit/core";
import {
  hostIfOf,
  indexPod,
  indexPolicies,
  localPods,
  lowerProto,
  namespaceMap,
  peerHas,
  resolveNamed,
  resolvePolicy,
  selectorPeerMatches,
  sortPolicies,
  type IndexedPod,
  type NodeCompileInput,
  type PolicyIndex,
  type ResolvedPolicy,
  type ResolvedRule,
} from "./compile.ts";
import { selectorMatches } from "./validate.ts";
import type { NetworkPolicy, PolicyModel, PolicyProtocol } from "./types.ts";

/** Our table: `table inet cnikit-netpol`; nothing else in the ruleset is touched. */
export const NFT_TABLE = "cnikit-netpol";
/** The table family (both IPv4 and IPv6 in one table). */
export const NFT_FAMILY = "inet";

export interface NftElement {
  /** Key text as nft writes it (`"veth1"`, `10.0.0.0/24`, `80-90`, `10.0.0.1 . 80`). */
  key: string;
  /** Map value (verdict), for maps. */
  value?: string;
}

export interface NftSet {
  name: string;
  kind: "set" | "map";
  /** `ipv4_addr`, `ifname . inet_service`, `ifname : verdict`, ... */
  type: string;
  interval: boolean;
  elements: NftElement[];
}

export interface NftChain {
  name: string;
  /** Base chains: hook and priority (policy accept). */
  hook?: { hook: "forward"; priority: number };
  rules: string[];
}

export interface NftRuleset {
  sets: NftSet[];
  chains: NftChain[];
}

/** Options of the nftables compilation. */
export interface NftCompileInput extends NodeCompileInput {
  /** Address families the ruleset handles (default both). Pods' addresses of other families are ignored. */
  families?: Family[];
}

type Interval = [bigint, bigint];

function portIntervals(ranges: { from: number; to: number }[]): string[] {
  const merged = mergeIntervals(ranges.map((r) => [BigInt(r.from), BigInt(r.to)] as Interval));
  return merged.map(([a, b]) => (a === b ? String(a) : `${a}-${b}`));
}

const PROTOS: readonly PolicyProtocol[] = ["TCP", "UDP", "SCTP"];

function quote(ifname: string): string {
  return `"${ifname}"`;
}

function comment(text: string): string {
  const t = text.replace(/["\\]/g, "").slice(0, 120);
  return `comment "${t}"`;
}

function cmpKeys(a: NftElement, b: NftElement): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** What one policy contributes to a node's ruleset. */
interface PolicyPart {
  sets: NftSet[];
  chains: NftChain[];
  outCheck?: string;
  inCheck?: string;
  outPods: IndexedPod[];
  inPods: IndexedPod[];
}

function familiesOf(input: NftCompileInput): Family[] {
  return [...new Set<Family>(input.families ?? [4, 6])].sort((a, b) => a - b);
}

function policyPart(rp: ResolvedPolicy, families: Family[], local: readonly IndexedPod[], pods: readonly IndexedPod[]): PolicyPart {
  const p = `p${rp.n}`;
  const mine = local.filter((pod) => rp.selectedIds.has(pod.id));
  const part: PolicyPart = { sets: [], chains: [], outPods: [], inPods: [] };
  const addrSet = (name: string, family: Family, intervals: Interval[]): void => {
    part.sets.push({ name, kind: "set", type: family === 4 ? "ipv4_addr" : "ipv6_addr", interval: true, elements: mergeIntervals(intervals).map(([a, b]) => ({ key: intervalText(a, b, family) })) });
  };
  part.sets.push({ name: `${p}-sel`, kind: "set", type: "ifname", interval: false, elements: mine.map((pod) => ({ key: quote(hostIfOf(pod.pod)) })).sort(cmpKeys) });
  for (const direction of ["egress", "ingress"] as const) {
    const type = direction === "ingress" ? "Ingress" : "Egress";
    if (!rp.policy.policyTypes.includes(type)) continue;
    const d = direction === "ingress" ? "in" : "out";
    const chain = `${p}-${d}`;
    const check = `${direction === "ingress" ? "oifname" : "iifname"} @${p}-sel jump ${chain} ${comment(rp.id)}`;
    if (direction === "ingress") {
      part.inCheck = check;
      part.inPods = mine;
    } else {
      part.outCheck = check;
      part.outPods = mine;
    }
    const rules: string[] = [];
    for (const rr of rp[direction]) rules.push(...ruleLines({ rr, p, d, direction, families, pods, local: mine, sets: part.sets, addrSet, label: `${rp.id} ${direction}[${rr.index}]` }));
    part.chains.push({ name: chain, rules });
  }
  return part;
}

function assemble(parts: readonly PolicyPart[]): NftRuleset {
  const dispatch = (name: string, pods: Set<IndexedPod>, target: string): NftSet => ({
    name,
    kind: "map",
    type: "ifname : verdict",
    interval: false,
    elements: [...new Set([...pods].map((pod) => quote(hostIfOf(pod.pod))))].sort().map((key) => ({ key, value: `goto ${target}` })),
  });
  const outPods = new Set(parts.flatMap((x) => x.outPods));
  const inPods = new Set(parts.flatMap((x) => x.inPods));
  const chains: NftChain[] = [
    ...parts.flatMap((x) => x.chains),
    { name: "out-policies", rules: [...parts.flatMap((x) => (x.outCheck ? [x.outCheck] : [])), `drop ${comment("egress of an isolated pod: no policy allows it")}`] },
    { name: "in-policies", rules: [...parts.flatMap((x) => (x.inCheck ? [x.inCheck] : [])), `drop ${comment("ingress of an isolated pod: no policy allows it")}`] },
    { name: "forward-out", hook: { hook: "forward", priority: 0 }, rules: ["ct state established,related accept", "iifname vmap @out-pods"] },
    { name: "forward-in", hook: { hook: "forward", priority: 10 }, rules: ["ct state established,related accept", "oifname vmap @in-pods"] },
  ];
  return { sets: [...parts.flatMap((x) => x.sets), dispatch("out-pods", outPods, "out-policies"), dispatch("in-pods", inPods, "in-policies")], chains };
}

/**
 * Compiles the policies for one node into the ruleset model. Pure and deterministic: the same
 * input gives the same model and text.
 * @throws ConfigError for invalid addresses in the model.
 */
export function compileNft(input: NftCompileInput, index: PolicyIndex = indexPolicies(input.model)): NftRuleset {
  const families = familiesOf(input);
  const local = localPods(index, input.node);
  return assemble(index.policies.map((rp) => policyPart(rp, families, local, index.pods)));
}

function ruleLines(x: {
  rr: ResolvedRule;
  p: string;
  d: "in" | "out";
  direction: "ingress" | "egress";
  families: Family[];
  pods: readonly IndexedPod[];
  local: IndexedPod[];
  sets: NftSet[];
  addrSet: (name: string, family: Family, intervals: Interval[]) => void;
  label: string;
}): string[] {
  const { rr, p, d, direction, families } = x;
  const base = `${p}-${d}${rr.index}`;
  const c = comment(x.label);
  const dirKw = direction === "ingress" ? "saddr" : "daddr";
  // Peer address matches, one per family (or one empty match = any peer).
  let frags: string[] = [""];
  if (rr.peers) {
    frags = [];
    for (const family of families) {
      const hasSelector = rr.peers.some((pe) => !pe.block);
      const hasBlock = rr.peers.some((pe) => pe.block?.cidr.family === family);
      if (!hasSelector && !hasBlock) continue;
      const intervals: Interval[] = [];
      for (const pe of rr.peers) {
        if (pe.block) {
          if (pe.block.cidr.family !== family) continue;
          const cut = mergeIntervals(pe.block.except.map((e) => [e.base, e.last] as Interval));
          intervals.push(...subtractIntervals(pe.block.cidr.base, pe.block.cidr.last, cut));
        } else for (const pod of pe.pods) for (const a of pod.addrs) if (a.family === family) intervals.push([a.value, a.value]);
      }
      const name = `${base}-a${family}`;
      x.addrSet(name, family, intervals);
      frags.push(`${family === 4 ? "ip" : "ip6"} ${dirKw} @${name} `);
    }
  }
  const lines: string[] = [];
  if (rr.rule.ports.length === 0) {
    for (const f of frags) lines.push(`${f}accept ${c}`);
    return lines;
  }
  for (const proto of PROTOS) {
    const entries = rr.rule.ports.filter((pp) => pp.protocol === proto && typeof pp.port !== "string");
    if (entries.length === 0) continue;
    const l4 = `meta l4proto ${lowerProto(proto)} `;
    if (entries.some((e) => e.port === undefined)) {
      for (const f of frags) lines.push(`${f}${l4}accept ${c}`);
      continue;
    }
    const name = `${base}-${lowerProto(proto)}`;
    x.sets.push({
      name,
      kind: "set",
      type: "inet_service",
      interval: true,
      elements: portIntervals(entries.map((e) => ({ from: e.port as number, to: e.endPort ?? (e.port as number) }))).map((key) => ({ key })),
    });
    for (const f of frags) lines.push(`${f}${l4}th dport @${name} accept ${c}`);
  }
  for (const proto of PROTOS) {
    const named = rr.rule.ports.filter((pp) => pp.protocol === proto && typeof pp.port === "string");
    if (named.length === 0) continue;
    const l4 = `meta l4proto ${lowerProto(proto)} `;
    if (direction === "ingress") {
      const name = `${base}-${lowerProto(proto)}-named`;
      const elements: NftElement[] = [];
      for (const pod of x.local) {
        const nums = [...new Set(named.flatMap((pp) => resolveNamed(pp, pod.pod)))].sort((a, b) => a - b);
        for (const n of nums) elements.push({ key: `${quote(hostIfOf(pod.pod))} . ${n}` });
      }
      x.sets.push({ name, kind: "set", type: "ifname . inet_service", interval: false, elements: elements.sort(cmpKeys) });
      for (const f of frags) lines.push(`${f}${l4}oifname . th dport @${name} accept ${c}`);
      continue;
    }
    for (const family of families) {
      const name = `${base}-${lowerProto(proto)}-named${family}`;
      const elements: { v: bigint; n: number }[] = [];
      for (const dest of x.pods) {
        const nums = [...new Set(named.flatMap((pp) => resolveNamed(pp, dest.pod)))];
        if (nums.length === 0) continue;
        for (const a of dest.addrs) {
          if (a.family !== family) continue;
          if (rr.peers && !rr.peers.some((pe) => peerHas(pe, a))) continue;
          for (const n of nums) elements.push({ v: a.value, n });
        }
      }
      elements.sort((a, b) => (a.v < b.v ? -1 : a.v > b.v ? 1 : a.n - b.n));
      x.sets.push({
        name,
        kind: "set",
        type: `${family === 4 ? "ipv4_addr" : "ipv6_addr"} . inet_service`,
        interval: false,
        elements: elements.map((e) => ({ key: `${formatAddress(e.v, family)} . ${e.n}` })),
      });
      lines.push(`${l4}${family === 4 ? "ip" : "ip6"} daddr . th dport @${name} accept ${c}`);
    }
  }
  return lines;
}

function elementText(e: NftElement): string {
  return e.value === undefined ? e.key : `${e.key} : ${e.value}`;
}

function renderSet(s: NftSet, withElements: boolean): string[] {
  const out = [`\t${s.kind} ${s.name} {`, `\t\ttype ${s.type}`];
  if (s.interval) out.push("\t\tflags interval");
  if (withElements && s.elements.length > 0) out.push(`\t\telements = { ${s.elements.map(elementText).join(", ")} }`);
  out.push("\t}");
  return out;
}

function renderChain(c: NftChain): string[] {
  const out = [`\tchain ${c.name} {`];
  if (c.hook) out.push(`\t\ttype filter hook ${c.hook.hook} priority ${c.hook.priority}; policy accept;`);
  for (const r of c.rules) out.push(`\t\t${r}`);
  out.push("\t}");
  return out;
}

function render(rs: NftRuleset, withElements: boolean): string {
  const lines = [`table ${NFT_FAMILY} ${NFT_TABLE} {`];
  // Plain sets first, then chains (jump targets before their users), then the dispatch maps
  // (whose verdicts name chains), then the base chains that use them.
  for (const s of rs.sets) if (s.kind === "set") lines.push(...renderSet(s, withElements));
  for (const c of rs.chains) if (!c.hook) lines.push(...renderChain(c));
  for (const s of rs.sets) if (s.kind === "map") lines.push(...renderSet(s, withElements));
  for (const c of rs.chains) if (c.hook) lines.push(...renderChain(c));
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** The ruleset as `nft -f` input (deterministic). Loading it into a namespace without our table creates it. */
export function renderNft(rs: NftRuleset): string {
  return render(rs, true);
}

/** An `nft -f` script that replaces our table atomically (creates it when absent). */
export function replaceTableScript(rs: NftRuleset): string {
  return `add table ${NFT_FAMILY} ${NFT_TABLE}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n${renderNft(rs)}`;
}

/** An `nft -f` script that removes our table (a no-op when absent). */
export function deleteTableScript(): string {
  return `add table ${NFT_FAMILY} ${NFT_TABLE}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`;
}

/** Counts of a ruleset: rules, sets and maps, set and map elements. */
export function nftStats(rs: NftRuleset): { rules: number; sets: number; elements: number } {
  return { rules: rs.chains.reduce((n, c) => n + c.rules.length, 0), sets: rs.sets.length, elements: rs.sets.reduce((n, s) => n + s.elements.length, 0) };
}

export interface NftUpdate {
  /** `none`: nothing changed; `elements`: only set/map elements; `full`: the table is replaced. */
  kind: "none" | "elements" | "full";
  /** nft commands, one per line, to be applied as one `nft -f` transaction. */
  commands: string[];
}

/**
 * The nft commands that move a node from ruleset `from` to ruleset `to`: element deletes then
 * adds when only memberships changed (pods added, removed, relabelled, readdressed), otherwise an
 * atomic table replacement. Deterministic; applying `commands` to a kernel holding `from` leaves
 * exactly `to`. Pure.
 */
export function nftUpdate(from: NftRuleset, to: NftRuleset): NftUpdate {
  if (render(from, false) !== render(to, false)) return { kind: "full", commands: replaceTableScript(to).trimEnd().split("\n") };
  const dels: string[] = [];
  const adds: string[] = [];
  const old = new Map(from.sets.map((s) => [s.name, s]));
  for (const s of to.sets) elementCommands(old.get(s.name)!, s, dels, adds);
  const commands = [...dels, ...adds];
  return { kind: commands.length === 0 ? "none" : "elements", commands };
}

/** Appends the element deletes and adds that turn set `o` into `s` (same name and type). */
function elementCommands(o: NftSet, s: NftSet, dels: string[], adds: string[]): void {
  const before = new Map(o.elements.map((e) => [e.key, e.value]));
  const after = new Map(s.elements.map((e) => [e.key, e.value]));
  const gone = o.elements.filter((e) => !after.has(e.key) || after.get(e.key) !== e.value);
  const come = s.elements.filter((e) => !before.has(e.key) || before.get(e.key) !== e.value);
  if (gone.length > 0) dels.push(`delete element ${NFT_FAMILY} ${NFT_TABLE} ${s.name} { ${gone.map((e) => e.key).join(", ")} }`);
  if (come.length > 0) adds.push(`add element ${NFT_FAMILY} ${NFT_TABLE} ${s.name} { ${come.map(elementText).join(", ")} }`);
}

/**
 * Keeps one node's ruleset and moves it with the cluster: `update` recomputes only the policies a
 * change can touch and returns the nft commands for the kernel. After a pod or namespace change
 * (added, removed, relabelled, readdressed) those are element commands for the touched policies'
 * sets and the dispatch maps; after a policy change, what `nftUpdate` gives (usually a table
 * replacement). `ruleset` always equals `compileNft` of the latest input. Not safe for concurrent
 * `update` calls (it is synchronous; call it from one place).
 */
export class NftNodeCompiler {
  private readonly node: string;
  private readonly families: Family[];
  private current!: NftRuleset;
  private policies!: NetworkPolicy[];
  private policiesKey = "";
  private policiesRef: readonly NetworkPolicy[] | undefined;
  private nsKey = new Map<string, string>();
  private podKey = new Map<string, string>();
  private pods!: IndexedPod[];
  private byId = new Map<string, IndexedPod>();
  private resolved!: ResolvedPolicy[];
  private parts!: PolicyPart[];

  /** Compiles `input` once. @throws ConfigError for invalid addresses in the model. */
  constructor(input: NftCompileInput) {
    this.node = input.node;
    this.families = familiesOf(input);
    this.full(input.model);
  }

  /** The ruleset for the latest model. */
  get ruleset(): NftRuleset {
    return this.current;
  }

  private full(model: PolicyModel): void {
    const nsMap = namespaceMap(model.namespaces);
    this.pods = model.pods.map((pod) => indexPod(pod, nsMap));
    this.policies = sortPolicies(model.policies);
    this.policiesRef = model.policies;
    this.policiesKey = JSON.stringify(this.policies.map(policyKey));
    this.nsKey = new Map([...nsMap].map(([k, v]) => [k, JSON.stringify(v.labels)]));
    this.podKey = new Map(this.pods.map((p) => [p.id, JSON.stringify(p.pod)]));
    this.byId = new Map(this.pods.map((p) => [p.id, p]));
    this.resolved = this.policies.map((policy, n) => resolvePolicy(policy, n, this.pods));
    const local = this.pods.filter((p) => p.pod.node === this.node);
    this.parts = this.resolved.map((rp) => policyPart(rp, this.families, local, this.pods));
    this.current = assemble(this.parts);
  }

  /**
   * Moves to `model` and returns the commands that move the kernel from the previous ruleset to
   * the new one (one `nft -f` transaction). Idempotent: the same model again gives `none`.
   * @throws ConfigError for invalid addresses in the model (the state is left unchanged).
   */
  update(model: PolicyModel): NftUpdate {
    const before = this.current;
    const samePolicies = model.policies === this.policiesRef || JSON.stringify(sortPolicies(model.policies).map(policyKey)) === this.policiesKey;
    if (!samePolicies) {
      const saved = this.snapshot();
      try {
        this.full(model);
      } catch (err) {
        this.restore(saved);
        throw err;
      }
      return nftUpdate(before, this.current);
    }
    const nsMap = namespaceMap(model.namespaces);
    const nsKey = new Map([...nsMap].map(([k, v]) => [k, JSON.stringify(v.labels)]));
    const changedNs = new Set<string>();
    for (const [k, v] of nsKey) if (this.nsKey.get(k) !== v) changedNs.add(k);
    for (const k of this.nsKey.keys()) if (!nsKey.has(k)) changedNs.add(k);
    const podKey = new Map<string, string>();
    // Changed pods as (old, new) pairs; `moved`: something other than labels changed (addresses,
    // ports, node, interface), so every set that holds the pod changes even if every match stays.
    const changed: { old?: IndexedPod; fresh?: IndexedPod; moved: boolean }[] = [];
    // Whether some pod appeared, disappeared or changed addresses or ports (named egress ports of
    // rules without peers depend on exactly that).
    let shapeChanged = false;
    const shape = (p: IndexedPod["pod"]) => JSON.stringify([p.ips, p.ports]);
    const placing = (p: IndexedPod["pod"]) => JSON.stringify([p.ips, p.ports, p.node ?? "", p.hostIf ?? "", p.key ?? ""]);
    const pods = model.pods.map((pod) => {
      const id = `${pod.namespace}/${pod.name}`;
      const key = JSON.stringify(pod);
      podKey.set(id, key);
      const old = this.byId.get(id);
      if (old && this.podKey.get(id) === key && !changedNs.has(pod.namespace)) return old;
      const fresh = indexPod(pod, nsMap);
      if (old) {
        changed.push({ old, fresh, moved: placing(old.pod) !== placing(pod) });
        if (shape(old.pod) !== shape(pod)) shapeChanged = true;
      } else {
        changed.push({ fresh, moved: true });
        shapeChanged = true;
      }
      return fresh;
    });
    for (const [id, old] of this.byId) {
      if (podKey.has(id)) continue;
      changed.push({ old, moved: true });
      shapeChanged = true;
    }
    if (changed.length === 0) {
      this.nsKey = nsKey;
      return { kind: "none", commands: [] };
    }
    const touched: number[] = [];
    const differs = (test: (p: IndexedPod) => boolean): boolean =>
      changed.some((c) => {
        const a = c.old !== undefined && test(c.old);
        const b = c.fresh !== undefined && test(c.fresh);
        return a !== b || ((a || b) && c.moved);
      });
    this.resolved.forEach((rp, k) => {
      const policy = rp.policy;
      const rules = [...policy.ingress, ...policy.egress];
      const hit =
        (shapeChanged && policy.egress.some((r) => r.ports.some((pp) => typeof pp.port === "string"))) ||
        differs((v) => v.pod.namespace === policy.namespace && selectorMatches(policy.podSelector, v.pod.labels)) ||
        rules.some((r) => r.peers.some((pe) => !pe.ipBlock && differs((v) => selectorPeerMatches(policy, pe, v))));
      if (hit) touched.push(k);
    });
    const local = pods.filter((p) => p.pod.node === this.node);
    const parts = [...this.parts];
    const resolved = [...this.resolved];
    for (const k of touched) {
      resolved[k] = resolvePolicy(this.policies[k]!, k, pods);
      parts[k] = policyPart(resolved[k]!, this.families, local, pods);
    }
    const next = assemble(parts);
    const dels: string[] = [];
    const adds: string[] = [];
    for (const k of touched) parts[k]!.sets.forEach((s, i) => elementCommands(this.parts[k]!.sets[i]!, s, dels, adds));
    const nOld = before.sets.length;
    const nNew = next.sets.length;
    for (let i = 2; i >= 1; i--) elementCommands(before.sets[nOld - i]!, next.sets[nNew - i]!, dels, adds);
    this.pods = pods;
    this.byId = new Map(pods.map((p) => [p.id, p]));
    this.podKey = podKey;
    this.nsKey = nsKey;
    this.resolved = resolved;
    this.parts = parts;
    this.current = next;
    const commands = [...dels, ...adds];
    return { kind: commands.length === 0 ? "none" : "elements", commands };
  }

  private snapshot(): unknown[] {
    return [this.current, this.policies, this.policiesKey, this.policiesRef, this.nsKey, this.podKey, this.pods, this.byId, this.resolved, this.parts];
  }

  private restore(s: unknown[]): void {
    [this.current, this.policies, this.policiesKey, this.policiesRef, this.nsKey, this.podKey, this.pods, this.byId, this.resolved, this.parts] = s as [
      NftRuleset,
      NetworkPolicy[],
      string,
      readonly NetworkPolicy[] | undefined,
      Map<string, string>,
      Map<string, string>,
      IndexedPod[],
      Map<string, IndexedPod>,
      ResolvedPolicy[],
      PolicyPart[],
    ];
  }
}

function policyKey(p: NetworkPolicy): string {
  const { source: _source, ...rest } = p;
  return JSON.stringify(rest);
}

/**
 * Convenience: compiles both inputs for the same node and returns `nftUpdate` of the two.
 * @throws ConfigError for invalid addresses in either model.
 */
export function nftUpdateFor(from: NftCompileInput, to: NftCompileInput): NftUpdate {
  return nftUpdate(compileNft(from), compileNft(to));
}

/**
 * Applies element commands of `nftUpdate` to a ruleset model (what the kernel does with them);
 * used to check that the commands lead exactly to the target. Throws Error on a command it does
 * not understand or an element it cannot delete (what nft would refuse).
 */
export function applyElementCommands(rs: NftRuleset, commands: string[]): NftRuleset {
  const sets = rs.sets.map((s) => ({ ...s, elements: [...s.elements] }));
  const byName = new Map(sets.map((s) => [s.name, s]));
  for (const cmd of commands) {
    const m = /^(add|delete) element inet cnikit-netpol (\S+) \{ (.*) \}$/.exec(cmd);
    if (!m) throw new Error(`not an element command: ${cmd}`);
    const s = byName.get(m[2]!);
    if (!s) throw new Error(`no set ${m[2]}`);
    const items = splitElements(m[3]!);
    for (const item of items) {
      const [key, value] = item.includes(" : ") ? (item.split(" : ") as [string, string]) : [item, undefined];
      const at = s.elements.findIndex((e) => e.key === key);
      if (m[1] === "delete") {
        if (at < 0) throw new Error(`delete of a missing element ${key} in ${s.name}`);
        s.elements.splice(at, 1);
      } else {
        if (at >= 0) throw new Error(`add of an existing element ${key} in ${s.name}`);
        s.elements.push(value === undefined ? { key } : { key, value });
      }
    }
    s.elements.sort(
      s.type.includes("addr") && !s.type.includes(".")
        ? (a, b) => addrOrder(a.key, b.key)
        : s.type.startsWith("ipv")
          ? (a, b) => concatOrder(a.key, b.key)
          : s.type === "inet_service"
            ? (a, b) => Number.parseInt(a.key, 10) - Number.parseInt(b.key, 10)
            : cmpKeys,
    );
  }
  return { sets, chains: rs.chains.map((c) => ({ ...c, rules: [...c.rules] })) };
}

function splitElements(text: string): string[] {
  return text.split(", ");
}

function addrValue(key: string): bigint {
  const first = key.split(/[-/]/)[0]!;
  return parseAddress(first).value;
}

function addrOrder(a: string, b: string): number {
  const x = addrValue(a);
  const y = addrValue(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function concatOrder(a: string, b: string): number {
  const [aa, ap] = a.split(" . ") as [string, string];
  const [ba, bp] = b.split(" . ") as [string, string];
  const c = addrOrder(aa, ba);
  return c !== 0 ? c : Number(ap) - Number(bp);
}
