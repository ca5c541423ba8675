/**
 * Compiling policies for one node: the local pods' filters in the NodeDataplane shape (which the
 * simulator enforces) and an nftables ruleset (see nft.ts) built from the same per-rule analysis.
 *
 * Per policy and rule the analysis resolves what depends on the cluster: the pods each selector
 * peer selects (as host prefixes), ipBlocks with their excepts, and named ports (against the local
 * pod for ingress, against each destination pod for egress). A FilterRule matches one protocol,
 * so a NetworkPolicy rule becomes one FilterRule per protocol it names (or one without protocol
 * when it lists no ports), plus, for named egress ports, one FilterRule per destination pod that
 * has the port (the port number may differ per destination). All rules accept; an isolated pod's
 * policy ends in `drop`; a pod not isolated in a direction gets no FilterPolicy for it.
 */
import { Prefix, fnv1a32Hex, parseAddress, type FilterPolicy, type FilterRule, type Family, type PeerMatch, type PortRange, type Protocol } from "@cnikit/core";
import { NAMESPACE_NAME_LABEL } from "./parse.ts";
import type { Cluster, ClusterNamespace, ClusterPod, NetworkPolicy, PolicyModel, PolicyPeer, PolicyPort, PolicyProtocol, PolicyRule } from "./types.ts";
import { selectorMatches } from "./validate.ts";

export type Direction = "ingress" | "egress";

/** Input of a compilation for one node. */
export interface NodeCompileInput {
  /** Namespaces, every pod of the cluster (peers may be anywhere) and the policies. */
  model: PolicyModel;
  /** The node: its pods are those with `pod.node === node`. */
  node: string;
  /**
   * The node's own addresses: traffic between a pod and its node is always allowed (kubelet
   * probes). Given, they head every FilterPolicy as an accepting peer (the nftables ruleset
   * filters only forwarded traffic, which never includes the node's own).
   */
  nodeAddresses?: string[];
}

/** The attachment key of a pod (`pod.key`, default `namespace/name`). */
export function podKeyOf(pod: ClusterPod): string {
  return pod.key ?? `${pod.namespace}/${pod.name}`;
}

/** The host-side interface of a pod (`pod.hostIf`, default `np` + 8 hex digits of a hash of its key). */
export function hostIfOf(pod: ClusterPod): string {
  if (pod.hostIf !== undefined) return pod.hostIf;
  return `np${fnv1a32Hex(podKeyOf(pod))}`;
}

/** `namespace/name` of a policy (its identity, and the sort key that numbers it). */
export function policyId(p: NetworkPolicy): string {
  return `${p.namespace}/${p.name}`;
}

function byText<T>(key: (x: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}

export interface PodAddr {
  family: Family;
  value: bigint;
  text: string;
}

export interface IndexedPod {
  pod: ClusterPod;
  id: string;
  ns: ClusterNamespace;
  addrs: PodAddr[];
}

/** A peer resolved against the cluster. */
export interface ResolvedPeer {
  peer: PolicyPeer;
  /** ipBlock: the block (host bits cleared) and its excepts. */
  block?: { cidr: Prefix; except: Prefix[] };
  /** Selector peers: the selected pods (cluster order). */
  pods: IndexedPod[];
}

/** A rule resolved against the cluster. */
export interface ResolvedRule {
  index: number;
  rule: PolicyRule;
  /** Undefined = any peer (the rule lists none). */
  peers?: ResolvedPeer[];
}

export interface ResolvedPolicy {
  policy: NetworkPolicy;
  id: string;
  /** Position in the sorted policy list (names the nftables chains and sets). */
  n: number;
  /** Every pod of the cluster the policy selects. */
  selected: IndexedPod[];
  /** Ids of `selected`. */
  selectedIds: Set<string>;
  ingress: ResolvedRule[];
  egress: ResolvedRule[];
}

/** The cluster-dependent analysis shared by the FilterPolicy and nftables compilers. */
export interface PolicyIndex {
  pods: IndexedPod[];
  policies: ResolvedPolicy[];
}

/**
 * Resolves selectors, ipBlocks and the selected pods of every policy (sorted by namespace/name).
 * Pure; O(policies × rules × pods).
 * @throws ConfigError for an invalid pod IP or ipBlock CIDR (parsed policies never have one).
 */
export function indexPolicies(model: PolicyModel): PolicyIndex {
  const nsMap = namespaceMap(model.namespaces);
  const pods = model.pods.map((pod) => indexPod(pod, nsMap));
  const sorted = sortPolicies(model.policies);
  return { pods, policies: sorted.map((policy, n) => resolvePolicy(policy, n, pods)) };
}

/** Namespaces by name, each with `kubernetes.io/metadata.name`. */
export function namespaceMap(namespaces: readonly ClusterNamespace[]): Map<string, ClusterNamespace> {
  const nsMap = new Map<string, ClusterNamespace>();
  for (const n of namespaces) nsMap.set(n.name, { name: n.name, labels: { [NAMESPACE_NAME_LABEL]: n.name, ...n.labels } });
  return nsMap;
}

/** A pod with its namespace and parsed addresses. @throws ConfigError for an invalid IP. */
export function indexPod(pod: ClusterPod, nsMap: ReadonlyMap<string, ClusterNamespace>): IndexedPod {
  return {
    pod,
    id: `${pod.namespace}/${pod.name}`,
    ns: nsMap.get(pod.namespace) ?? { name: pod.namespace, labels: { [NAMESPACE_NAME_LABEL]: pod.namespace } },
    addrs: pod.ips.map((ip) => ({ ...parseAddress(ip), text: ip })),
  };
}

/** Policies sorted by namespace/name (the order that numbers them). */
export function sortPolicies(policies: readonly NetworkPolicy[]): NetworkPolicy[] {
  return [...policies].sort(byText(policyId));
}

/** Whether a selector peer of `policy` selects `p`. */
export function selectorPeerMatches(policy: NetworkPolicy, peer: PolicyPeer, p: IndexedPod): boolean {
  if (peer.ipBlock) return false;
  if (peer.namespaceSelector) {
    if (!selectorMatches(peer.namespaceSelector, p.ns.labels)) return false;
  } else if (p.pod.namespace !== policy.namespace) return false;
  return peer.podSelector ? selectorMatches(peer.podSelector, p.pod.labels) : true;
}

/** Resolves one policy (number `n` in the sorted list) against `pods`. */
export function resolvePolicy(policy: NetworkPolicy, n: number, pods: readonly IndexedPod[]): ResolvedPolicy {
  const selected = pods.filter((p) => p.pod.namespace === policy.namespace && selectorMatches(policy.podSelector, p.pod.labels));
  const resolve = (rules: PolicyRule[]): ResolvedRule[] =>
    rules.map((rule, index) => {
      const out: ResolvedRule = { index, rule };
      if (rule.peers.length > 0) {
        out.peers = rule.peers.map((peer) => {
          if (peer.ipBlock) {
            return {
              peer,
              block: { cidr: Prefix.parse(peer.ipBlock.cidr, { allowHostBits: true }), except: peer.ipBlock.except.map((e) => Prefix.parse(e, { allowHostBits: true })) },
              pods: [],
            };
          }
          return { peer, pods: pods.filter((p) => selectorPeerMatches(policy, peer, p)) };
        });
      }
      return out;
    });
  return { policy, id: policyId(policy), n, selected, selectedIds: new Set(selected.map((p) => p.id)), ingress: resolve(policy.ingress), egress: resolve(policy.egress) };
}

/** Whether a resolved peer matches an address. */
export function peerHas(peer: ResolvedPeer, a: PodAddr): boolean {
  if (peer.block) {
    const inside = (p: Prefix) => p.family === a.family && a.value >= p.base && a.value <= p.last;
    return inside(peer.block.cidr) && !peer.block.except.some(inside);
  }
  return peer.pods.some((p) => p.addrs.some((x) => x.family === a.family && x.value === a.value));
}

/** Lower-case protocol of the dataplane shape. */
export function lowerProto(p: PolicyProtocol): Protocol {
  return p === "TCP" ? "tcp" : p === "UDP" ? "udp" : "sctp";
}

/** The container ports of `pod` a named policy port resolves to. */
export function resolveNamed(port: PolicyPort, pod: ClusterPod): number[] {
  return [...new Set(pod.ports.filter((c) => c.name === port.port && c.protocol === port.protocol).map((c) => c.containerPort))].sort((a, b) => a - b);
}

function hostCidr(a: PodAddr): string {
  return `${a.text}/${a.family === 4 ? 32 : 128}`;
}

function peerMatch(p: ResolvedPeer): PeerMatch | undefined {
  if (p.block) {
    const m: PeerMatch = { cidrs: [p.block.cidr.toString()] };
    if (p.block.except.length > 0) m.except = p.block.except.map((e) => e.toString());
    return m;
  }
  const cidrs = p.pods.flatMap((pod) => pod.addrs.map(hostCidr));
  return cidrs.length > 0 ? { cidrs } : undefined;
}

/** Ports of one protocol from the numeric or port-less entries: undefined = every port. */
function numericRanges(ports: PolicyPort[]): Map<PolicyProtocol, PortRange[] | undefined> {
  const out = new Map<PolicyProtocol, PortRange[] | undefined>();
  for (const p of ports) {
    if (typeof p.port === "string") continue;
    if (p.port === undefined) {
      out.set(p.protocol, undefined);
      continue;
    }
    if (out.has(p.protocol) && out.get(p.protocol) === undefined) continue;
    const list = out.get(p.protocol) ?? [];
    list.push({ from: p.port, to: p.endPort ?? p.port });
    out.set(p.protocol, list);
  }
  return out;
}

const PROTO_ORDER: readonly PolicyProtocol[] = ["TCP", "UDP", "SCTP"];

/** FilterRules of one policy rule for a local pod `self` in `direction`. */
function rulesFor(x: { rp: ResolvedPolicy; rr: ResolvedRule; direction: Direction; self: IndexedPod; index: PolicyIndex }): FilterRule[] {
  const { rp, rr, direction, self } = x;
  const base = `np/${rp.id}/${direction}/${rr.index}`;
  const comment = `${rp.id} ${direction}[${rr.index}]`;
  let peers: PeerMatch[] | undefined;
  if (rr.peers) {
    peers = rr.peers.map(peerMatch).filter((m): m is PeerMatch => m !== undefined);
    if (peers.length === 0) return []; // every peer selects nothing: the rule matches nothing
  }
  const withPeers = (r: FilterRule): FilterRule => (peers ? { ...r, peers } : r);
  if (rr.rule.ports.length === 0) return [withPeers({ id: base, action: "accept", comment })];
  const out: FilterRule[] = [];
  const numeric = numericRanges(rr.rule.ports);
  for (const proto of PROTO_ORDER) {
    if (!numeric.has(proto)) continue;
    const ranges = numeric.get(proto);
    const r: FilterRule = { id: `${base}/${proto.toLowerCase()}`, protocol: lowerProto(proto), action: "accept", comment };
    if (ranges) r.ports = ranges;
    out.push(withPeers(r));
  }
  const named = rr.rule.ports.filter((p) => typeof p.port === "string");
  if (named.length === 0) return out;
  for (const proto of PROTO_ORDER) {
    const ofProto = named.filter((p) => p.protocol === proto);
    if (ofProto.length === 0) continue;
    if (direction === "ingress") {
      const nums = [...new Set(ofProto.flatMap((p) => resolveNamed(p, self.pod)))].sort((a, b) => a - b);
      if (nums.length > 0) out.push(withPeers({ id: `${base}/${proto.toLowerCase()}/named`, protocol: lowerProto(proto), ports: nums.map((n) => ({ from: n, to: n })), action: "accept", comment }));
      continue;
    }
    // Egress: the port number depends on the destination pod.
    for (const dest of x.index.pods) {
      const nums = [...new Set(ofProto.flatMap((p) => resolveNamed(p, dest.pod)))].sort((a, b) => a - b);
      if (nums.length === 0) continue;
      const addrs = dest.addrs.filter((a) => !rr.peers || rr.peers.some((p) => peerHas(p, a)));
      if (addrs.length === 0) continue;
      out.push({
        id: `${base}/${proto.toLowerCase()}/named/${dest.id}`,
        peers: [{ cidrs: addrs.map(hostCidr) }],
        protocol: lowerProto(proto),
        ports: nums.map((n) => ({ from: n, to: n })),
        action: "accept",
        comment,
      });
    }
  }
  return out;
}

/** A compilation ran, but enforces nothing where the caller probably expected it to. */
export interface CompileWarning {
  /** `node-without-pods`: no pod of the model runs on the node (its `node`), so nothing is enforced there. */
  code: "node-without-pods";
  node: string;
  message: string;
}

/**
 * The warnings of compiling `model` for `node` (`compileNode` returns them with its result): today
 * one, when no pod of the model names the node (a typo, or pods without `spec.nodeName`). Pure.
 */
export function compileWarnings(input: { model: Cluster; node: string }): CompileWarning[] {
  const { model, node } = input;
  if (model.pods.some((p) => p.node === node)) return [];
  const nodes = [...new Set(model.pods.flatMap((p) => (p.node === undefined ? [] : [p.node])))].sort();
  const known = nodes.length > 0 ? `pods run on ${nodes.slice(0, 8).join(", ")}${nodes.length > 8 ? ", ..." : ""}` : "no pod names a node: give Pods spec.nodeName, or pods of the compact form node";
  return [{ code: "node-without-pods", node, message: `no pod of the cluster runs on node ${node}, so nothing is enforced there (${known})` }];
}

/** The local pods of a node, in cluster order. */
export function localPods(index: PolicyIndex, node: string): IndexedPod[] {
  return index.pods.filter((p) => p.pod.node === node);
}

/**
 * The FilterPolicies of the node's pods: one per local pod and direction it is isolated in,
 * accepting what the union of its selecting policies' rules allows and dropping the rest.
 * Sorted by pod key and direction (canonical). Pure and deterministic.
 * @throws ConfigError for an invalid address in the model or `nodeAddresses`.
 */
export function compileFilters(input: NodeCompileInput, index: PolicyIndex = indexPolicies(input.model)): FilterPolicy[] {
  const out: FilterPolicy[] = [];
  const nodeRule: FilterRule | undefined =
    input.nodeAddresses && input.nodeAddresses.length > 0
      ? {
          id: "np/node-local",
          peers: [{ cidrs: input.nodeAddresses.map((a) => hostCidr({ ...parseAddress(a), text: a })) }],
          action: "accept",
          comment: "traffic between a pod and its node is always allowed",
        }
      : undefined;
  for (const self of localPods(index, input.node)) {
    for (const direction of ["egress", "ingress"] as const) {
      const type = direction === "ingress" ? "Ingress" : "Egress";
      const isolating = index.policies.filter((rp) => rp.policy.policyTypes.includes(type) && rp.selectedIds.has(self.id));
      if (isolating.length === 0) continue;
      const rules: FilterRule[] = nodeRule ? [nodeRule] : [];
      for (const rp of isolating) for (const rr of rp[direction]) rules.push(...rulesFor({ rp, rr, direction, self, index }));
      out.push({ pod: podKeyOf(self.pod), direction, rules, defaultAction: "drop" });
    }
  }
  return out.sort(byText((f) => `${f.pod} ${f.direction}`));
}
