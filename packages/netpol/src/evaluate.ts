/**
 * The reference evaluator: networking.k8s.io/v1 semantics over a cluster view, with explanations.
 *
 * A connection from A to B on (protocol, port) is allowed when A's egress allows it and B's
 * ingress allows it. A pod is isolated for a direction only when some policy in its namespace
 * selects it and lists that direction in its effective policyTypes; an isolated pod allows what
 * the union of the rules of those policies allows; a pod not isolated allows everything. A peer is
 * an ipBlock (the other side's address inside `cidr` and outside every `except`), or selectors (a
 * pod: podSelector alone means the policy's namespace, namespaceSelector alone every pod of the
 * selected namespaces, both together the selected pods of the selected namespaces). Ports: an
 * empty list means every port of every protocol; a port without number every port of its
 * protocol; a number (with `endPort` a range); a name resolves against the destination pod's
 * container ports of that protocol. Endpoints that are not pods (plain addresses) are never
 * isolated and match only ipBlock peers. A pod's traffic to itself is loopback and always passes
 * (it never reaches any filter); replies of an allowed connection always pass.
 */
import { ConfigError, Prefix, parseAddress, type Family } from "@cnikit/core";
import { NAMESPACE_NAME_LABEL } from "./parse.ts";
import type { ClusterNamespace, ClusterPod, NetworkPolicy, PolicyModel, PolicyPeer, PolicyPort, PolicyProtocol, PolicyRule, PolicyType } from "./types.ts";
import { COMPONENT, checkProbe, selectorMatches, selectorText } from "./validate.ts";

export type Direction = "ingress" | "egress";

/** A probe of the reachability matrix. */
export interface Probe {
  protocol: PolicyProtocol;
  port: number;
}

/** The rule (and the peer and port inside it) that allowed a direction. */
export interface RuleRef {
  /** `namespace/name` of the policy. */
  policy: string;
  direction: Direction;
  rule: number;
  /** Index of the matching peer; undefined when the rule lists no peers (all peers). */
  peer?: number;
  /** Index of the matching port; undefined when the rule lists no ports (all ports). */
  port?: number;
  /** `x/allow ingress[0] from[1] (namespaceSelector ns=y) ports[0] (TCP 80)` */
  text: string;
}

export interface DirectionVerdict {
  direction: Direction;
  /** Whether this side is a pod of the cluster (addresses outside it are never isolated). */
  pod: string | undefined;
  isolated: boolean;
  /** Policies that select the pod and have this direction in their effective policyTypes. */
  isolatedBy: string[];
  /** Policies that select the pod but not for this direction (they do not isolate it here). */
  selectedBy: string[];
  allowed: boolean;
  /** Every rule that allows the connection (empty when not isolated or denied). */
  allowedBy: RuleRef[];
}

export interface Verdict {
  allowed: boolean;
  from: string;
  to: string;
  /** Addresses used for the connection; undefined for a pod without an IP (matched by selectors only). */
  src: string | undefined;
  dst: string | undefined;
  probe: Probe;
  /** A pod's connection to itself: never filtered. */
  loopback: boolean;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

/** A reachability matrix: `allowed[i][j]` is from `pods[i]` to `pods[j]`. */
export interface Matrix {
  probe: Probe;
  pods: string[];
  allowed: boolean[][];
}

interface PodEntry {
  id: string;
  pod: ClusterPod;
  ns: ClusterNamespace;
  /** family -> numeric addresses */
  addrs: Addr[];
}

interface Addr {
  family: Family;
  value: bigint;
  text: string;
}

/** One side of a connection: a pod (possibly without an IP) and/or an address. */
interface Endpoint {
  pod?: PodEntry;
  /** Undefined only for a pod without an IP (or without one of the other side's family). */
  addr?: Addr;
}

interface CompiledPeer {
  peer: PolicyPeer;
  cidr?: Prefix;
  except: Prefix[];
}

interface CompiledPolicy {
  policy: NetworkPolicy;
  id: string;
  ingress: CompiledPeer[][];
  egress: CompiledPeer[][];
}

function policyId(p: NetworkPolicy): string {
  return `${p.namespace}/${p.name}`;
}

function inPrefix(p: Prefix, family: Family, v: bigint): boolean {
  return p.family === family && v >= p.base && v <= p.last;
}

/** Text of a peer for explanations. */
export function peerText(peer: PolicyPeer): string {
  if (peer.ipBlock) return `ipBlock ${peer.ipBlock.cidr}${peer.ipBlock.except.length > 0 ? ` except ${peer.ipBlock.except.join(", ")}` : ""}`;
  const parts: string[] = [];
  if (peer.namespaceSelector) parts.push(`namespaceSelector ${selectorText(peer.namespaceSelector)}`);
  if (peer.podSelector) parts.push(`podSelector ${selectorText(peer.podSelector)}`);
  return parts.join(" + ");
}

/** Text of a port entry for explanations. */
export function portText(p: PolicyPort): string {
  if (p.port === undefined) return `${p.protocol} any port`;
  if (p.endPort !== undefined) return `${p.protocol} ${p.port}-${p.endPort}`;
  return `${p.protocol} ${p.port}`;
}

/**
 * Evaluates connections and matrices over one cluster view and policy set. Immutable after
 * construction (build a new one after a change); safe to share.
 */
export class PolicyEvaluator {
  readonly model: PolicyModel;
  private readonly pods = new Map<string, PodEntry>();
  private readonly byAddr = new Map<string, PodEntry>();
  private readonly namespaces = new Map<string, ClusterNamespace>();
  private readonly policies: CompiledPolicy[];

  /**
   * Indexes the model. Namespaces get `kubernetes.io/metadata.name` when missing.
   * @throws ConfigError for a pod in an unknown namespace or an invalid pod IP.
   */
  constructor(model: PolicyModel) {
    this.model = model;
    for (const n of model.namespaces) this.namespaces.set(n.name, { name: n.name, labels: { [NAMESPACE_NAME_LABEL]: n.name, ...n.labels } });
    model.pods.forEach((pod, i) => {
      const ns = this.namespaces.get(pod.namespace);
      if (!ns) throw new ConfigError({ component: COMPONENT, field: `pods[${i}].namespace`, rule: `names namespace ${pod.namespace}, which the cluster does not declare`, value: pod.namespace });
      const addrs = pod.ips.map((ip, k) => {
        const a = parseAddress(ip, { field: `pods[${i}].ips[${k}]`, component: COMPONENT });
        return { ...a, text: ip };
      });
      const e: PodEntry = { id: `${pod.namespace}/${pod.name}`, pod, ns, addrs };
      this.pods.set(e.id, e);
      for (const a of addrs) this.byAddr.set(`${a.family}|${a.value}`, e);
    });
    this.policies = [...model.policies]
      .sort((a, b) => (policyId(a) < policyId(b) ? -1 : policyId(a) > policyId(b) ? 1 : 0))
      .map((policy) => {
        const compileRules = (rules: PolicyRule[]) =>
          rules.map((r) =>
            r.peers.map((peer) => {
              const c: CompiledPeer = { peer, except: [] };
              if (peer.ipBlock) {
                c.cidr = Prefix.parse(peer.ipBlock.cidr, { allowHostBits: true });
                c.except = peer.ipBlock.except.map((e) => Prefix.parse(e, { allowHostBits: true }));
              }
              return c;
            }),
          );
        return { policy, id: policyId(policy), ingress: compileRules(policy.ingress), egress: compileRules(policy.egress) };
      });
  }

  /** Pod ids (`namespace/name`) in model order. */
  podIds(): string[] {
    return [...this.pods.keys()];
  }

  /** The pod owning `ip` (canonical or not), if any. */
  podByAddress(ip: string): ClusterPod | undefined {
    const a = parseAddress(ip);
    return this.byAddr.get(`${a.family}|${a.value}`)?.pod;
  }

  /** Whether `policy` selects `pod` (same namespace and podSelector matches). */
  selects(policy: NetworkPolicy, pod: ClusterPod): boolean {
    return policy.namespace === pod.namespace && selectorMatches(policy.podSelector, pod.labels);
  }

  /**
   * Policies selecting `podId`, split by whether they isolate it for `direction`.
   * @throws ConfigError for an unknown pod.
   */
  selecting(podId: string, direction: Direction): { isolatedBy: NetworkPolicy[]; selectedBy: NetworkPolicy[] } {
    const e = this.entry(podId, "pod");
    const type: PolicyType = direction === "ingress" ? "Ingress" : "Egress";
    const isolatedBy: NetworkPolicy[] = [];
    const selectedBy: NetworkPolicy[] = [];
    for (const c of this.policies) {
      if (!this.selects(c.policy, e.pod)) continue;
      (c.policy.policyTypes.includes(type) ? isolatedBy : selectedBy).push(c.policy);
    }
    return { isolatedBy, selectedBy };
  }

  private entry(id: string, field: string): PodEntry {
    const e = this.pods.get(id);
    if (!e)
      throw new ConfigError({
        component: COMPONENT,
        field,
        rule: `must name a pod of the cluster as namespace/name (known: ${[...this.pods.keys()].slice(0, 12).join(", ")}${this.pods.size > 12 ? ", ..." : ""})`,
        value: id,
      });
    return e;
  }

  /**
   * One side named by pod id or address. A pod uses its first address of `family` (the other
   * side's; without it, its first address). A pod without any IP is a side without an address
   * (selectors still match it, ipBlocks never); a pod whose addresses are all of another family
   * than the other side's cannot reach it (ConfigError).
   */
  private endpoint(text: unknown, field: string, family?: Family): Endpoint {
    if (typeof text !== "string" || text === "") throw new ConfigError({ component: COMPONENT, field, rule: "must be a pod as namespace/name or an IP address", value: text });
    const e = this.pods.get(text);
    if (e) {
      if (e.addrs.length === 0) return { pod: e };
      const a = family === undefined ? e.addrs[0] : e.addrs.find((x) => x.family === family);
      if (!a) throw new ConfigError({ component: COMPONENT, field, rule: `names a pod without an IPv${family} address`, value: text });
      return { pod: e, addr: a };
    }
    if (!/^[0-9a-fA-F:.]+$/.test(text)) this.entry(text, field);
    const a = parseAddress(text, { field, component: COMPONENT });
    if (family !== undefined && a.family !== family) throw new ConfigError({ component: COMPONENT, field, rule: `must be an IPv${family} address like the other side`, value: text });
    const pod = this.byAddr.get(`${a.family}|${a.value}`);
    return pod ? { pod, addr: pod.addrs.find((x) => x.value === a.value && x.family === a.family)! } : { addr: { ...a, text } };
  }

  /**
   * The verdict for a connection from `from` to `to` (each a pod `namespace/name` or an IP
   * address; an address that belongs to a pod is that pod) on `probe`, with the policies and
   * rules that decided each direction. Pure. A pod without an IP takes part by identity: selector
   * peers match it, ipBlocks never do, and its address in the verdict is undefined.
   * @throws ConfigError naming the field and the rule: `protocol` not exactly "TCP", "UDP" or
   *   "SCTP"; `port` not an integer 1..65535; an unknown pod, an invalid address, or sides of
   *   different families (`from`/`to`).
   */
  verdict(query: { from: string; to: string; protocol: PolicyProtocol; port: number }): Verdict {
    const probe: Probe = checkProbe(query, "");
    return this.decide(query.from, query.to, probe);
  }

  private decide(from: string, to: string, probe: Probe): Verdict {
    const dst = this.endpoint(to, "to");
    const src = this.endpoint(from, "from", dst.addr?.family);
    const fromId = src.pod?.id ?? src.addr!.text;
    const toId = dst.pod?.id ?? dst.addr!.text;
    const loopback = src.pod !== undefined && src.pod === dst.pod;
    const egress = loopback ? this.openSide("egress", src.pod) : this.side({ direction: "egress", self: src.pod, peer: dst, dest: dst.pod, probe });
    const ingress = loopback ? this.openSide("ingress", dst.pod) : this.side({ direction: "ingress", self: dst.pod, peer: src, dest: dst.pod, probe });
    return { allowed: egress.allowed && ingress.allowed, from: fromId, to: toId, src: src.addr?.text, dst: dst.addr?.text, probe, loopback, egress, ingress };
  }

  private openSide(direction: Direction, pod: PodEntry | undefined): DirectionVerdict {
    return { direction, pod: pod?.id, isolated: false, isolatedBy: [], selectedBy: [], allowed: true, allowedBy: [] };
  }

  private side(x: { direction: Direction; self: PodEntry | undefined; peer: Endpoint; dest: PodEntry | undefined; probe: Probe }): DirectionVerdict {
    const { direction, self } = x;
    if (!self) return this.openSide(direction, undefined);
    const type: PolicyType = direction === "ingress" ? "Ingress" : "Egress";
    const isolatedBy: string[] = [];
    const selectedBy: string[] = [];
    const allowedBy: RuleRef[] = [];
    for (const c of this.policies) {
      if (!this.selects(c.policy, self.pod)) continue;
      if (!c.policy.policyTypes.includes(type)) {
        selectedBy.push(c.id);
        continue;
      }
      isolatedBy.push(c.id);
      const rules = direction === "ingress" ? c.policy.ingress : c.policy.egress;
      const peers = direction === "ingress" ? c.ingress : c.egress;
      rules.forEach((rule, ri) => {
        const pi = rule.peers.length === 0 ? -1 : peers[ri]!.findIndex((cp) => this.peerMatches(c.policy, cp, x.peer));
        if (rule.peers.length > 0 && pi < 0) return;
        const ki = rule.ports.length === 0 ? -1 : rule.ports.findIndex((p) => portAdmits(p, x.probe, x.dest?.pod));
        if (rule.ports.length > 0 && ki < 0) return;
        const ref: RuleRef = { policy: c.id, direction, rule: ri, text: "" };
        if (pi >= 0) ref.peer = pi;
        if (ki >= 0) ref.port = ki;
        const key = direction === "ingress" ? "from" : "to";
        ref.text = `${c.id} ${direction}[${ri}] ${pi >= 0 ? `${key}[${pi}] (${peerText(rule.peers[pi]!)})` : `(any peer)`} ${ki >= 0 ? `ports[${ki}] (${portText(rule.ports[ki]!)})` : "(any port)"}`;
        allowedBy.push(ref);
      });
    }
    const isolated = isolatedBy.length > 0;
    return { direction, pod: self.id, isolated, isolatedBy, selectedBy, allowed: !isolated || allowedBy.length > 0, allowedBy };
  }

  private peerMatches(policy: NetworkPolicy, cp: CompiledPeer, other: Endpoint): boolean {
    if (cp.cidr) {
      const a = other.addr;
      return a !== undefined && inPrefix(cp.cidr, a.family, a.value) && !cp.except.some((e) => inPrefix(e, a.family, a.value));
    }
    const pod = other.pod;
    if (!pod) return false;
    if (cp.peer.namespaceSelector) {
      if (!selectorMatches(cp.peer.namespaceSelector, pod.ns.labels)) return false;
    } else if (pod.pod.namespace !== policy.namespace) return false;
    return cp.peer.podSelector ? selectorMatches(cp.peer.podSelector, pod.pod.labels) : true;
  }

  /**
   * The full matrix for `probe` over `pods` (default every pod, model order).
   * @throws ConfigError for an unknown pod, or a probe whose `probe.protocol` or `probe.port` breaks
   *   the rules of `verdict`.
   */
  matrix(probe: Probe, pods: string[] = this.podIds()): Matrix {
    const checked = checkProbe(probe, "probe");
    const allowed = pods.map((from) => pods.map((to) => this.decide(from, to, checked).allowed));
    return { probe: checked, pods: [...pods], allowed };
  }
}

/**
 * Whether a policy port entry admits `probe` towards `dest` (named ports resolve against it).
 * @throws ConfigError when `probe.protocol` is not exactly "TCP", "UDP" or "SCTP" or `probe.port`
 *   is not an integer 1..65535.
 */
export function portMatches(p: PolicyPort, probe: Probe, dest: ClusterPod | undefined): boolean {
  return portAdmits(p, checkProbe(probe, "probe"), dest);
}

function portAdmits(p: PolicyPort, probe: Probe, dest: ClusterPod | undefined): boolean {
  if (p.protocol !== probe.protocol) return false;
  if (p.port === undefined) return true;
  if (typeof p.port === "number") return probe.port >= p.port && probe.port <= (p.endPort ?? p.port);
  if (!dest) return false;
  return dest.ports.some((c) => c.name === p.port && c.protocol === p.protocol && c.containerPort === probe.port);
}

/** A person-readable explanation of a verdict: one paragraph per direction. */
export function explainVerdict(v: Verdict): string {
  const head = `${v.from} (${v.src ?? "no IP"}) → ${v.to} (${v.dst ?? "no IP"}) ${v.probe.protocol}/${v.probe.port}: ${v.allowed ? "ALLOWED" : "DENIED"}`;
  if (v.loopback) return `${head}\n  loopback: a pod's traffic to itself never reaches a policy filter`;
  const side = (d: DirectionVerdict): string => {
    const who = d.pod ?? (d.direction === "egress" ? v.from : v.to);
    const label = d.direction;
    if (d.pod === undefined) return `  ${label}: ${who} is not a pod of the cluster, so no policy applies: allowed`;
    if (!d.isolated) {
      const sel = d.selectedBy.length > 0 ? ` (selected by ${d.selectedBy.join(", ")}, whose policyTypes do not include ${label === "ingress" ? "Ingress" : "Egress"})` : "";
      return `  ${label}: ${who} is not isolated for ${label}: no policy selecting it has ${label === "ingress" ? "Ingress" : "Egress"} in its policyTypes${sel}: allowed`;
    }
    const iso = `  ${label}: ${who} is isolated for ${label} by ${d.isolatedBy.join(", ")}`;
    if (d.allowed) return `${iso}; allowed by ${d.allowedBy.map((r) => r.text).join("; ")}`;
    return `${iso}; no ${label} rule of ${d.isolatedBy.length > 1 ? "these policies" : "this policy"} matches ${label === "egress" ? `${v.to} (${v.dst ?? "no IP"})` : `${v.from} (${v.src ?? "no IP"})`} on ${v.probe.protocol}/${v.probe.port}: denied`;
  };
  return `${head}\n${side(v.egress)}\n${side(v.ingress)}`;
}

/**
 * Prints a matrix as the upstream e2e framework does: a header of destination pods, one row per
 * source pod, `.` for allowed and `X` for denied.
 */
export function formatMatrix(m: Matrix): string {
  const w = Math.max(...m.pods.map((p) => p.length), `${m.probe.protocol}/${m.probe.port}`.length);
  const lines = [[`${m.probe.protocol}/${m.probe.port}`.padEnd(w), ...m.pods.map((p) => p.padStart(Math.max(3, p.length)))].join(" ")];
  m.pods.forEach((from, i) => {
    lines.push([from.padEnd(w), ...m.pods.map((p, j) => (m.allowed[i]![j] ? "." : "X").padStart(Math.max(3, p.length)))].join(" "));
  });
  return lines.join("\n");
}
