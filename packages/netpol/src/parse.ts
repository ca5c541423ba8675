/**
 * Parsing NetworkPolicy objects and cluster views (namespaces + pods) from YAML or JSON: one or
 * many documents, and List kinds (`List`, `NetworkPolicyList`, `NamespaceList`, `PodList`).
 * Policies are validated with the API server's rules (ValidateNetworkPolicy); every error is a
 * `ConfigError` whose field is the path inside the object (`spec.ingress[0].from[1].ipBlock.except[0]`)
 * and whose component names the document.
 */
import { ConfigError, canonicalAddress, parseAddress } from "@cnikit/core";
import { parseAllDocuments } from "yaml";
import {
  POLICY_TYPES,
  type Cluster,
  type ClusterNamespace,
  type ClusterPod,
  type ContainerPort,
  type IPBlock,
  type NetworkPolicy,
  type PolicyPeer,
  type PolicyPort,
  type PolicyProtocol,
  type PolicyRule,
  type PolicyType,
} from "./types.ts";
import {
  COMPONENT,
  Issues,
  dnsLabelProblem,
  dnsSubdomainProblem,
  isObject,
  parseCidr,
  parseLabels,
  parseSelector,
  portNameProblem,
  portNumberProblem,
  protocolProblem,
  unknownFields,
} from "./validate.ts";

/** The label every namespace carries with its own name (set by the API server). */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

const LIST_KINDS = ["List", "NetworkPolicyList", "NamespaceList", "PodList"];

interface Doc {
  value: unknown;
  where: string;
}

/** A document that could not be read: not YAML/JSON, or a List without a list of items. */
interface DocError {
  where: string;
  /** The List kind, for a malformed list. */
  kind?: string;
  error: ConfigError;
}

/** One entry of a text in document order: an object to validate, or a document that could not be read. */
type DocEntry = { doc: Doc; error?: undefined } | { doc?: undefined; error: DocError };

/**
 * Splits text into documents (YAML stream or JSON), flattening List kinds into their items.
 * @throws ConfigError for YAML syntax errors (naming the document and line) and malformed lists.
 */
export function readDocuments(text: string, source = "input"): Doc[] {
  const entries = splitDocuments(text, source);
  const bad = entries.find((e) => e.error !== undefined);
  if (bad?.error) throw bad.error.error;
  return entries.flatMap((e) => (e.doc ? [e.doc] : []));
}

/** `readDocuments` that keeps going: the objects and one error per unreadable document, in document order. */
function splitDocuments(text: string, source: string): DocEntry[] {
  const out: DocEntry[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((d, n) => {
    const where = `${source}#${n + 1}`;
    if (d.errors.length > 0) {
      out.push({ error: { where, error: new ConfigError({ component: `${COMPONENT} ${where}`, field: "(document)", rule: `is not valid YAML/JSON: ${d.errors[0]!.message.split("\n")[0]}` }) } });
      return;
    }
    const value: unknown = d.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    flatten(value, where, out);
  });
  return out;
}

function flatten(value: unknown, where: string, out: DocEntry[]): void {
  if (isObject(value) && typeof value.kind === "string" && LIST_KINDS.includes(value.kind)) {
    if (!Array.isArray(value.items)) {
      out.push({ error: { where, kind: value.kind, error: new ConfigError({ component: `${COMPONENT} ${where}`, field: "items", rule: `must be a list (kind ${value.kind})`, value: value.items }) } });
      return;
    }
    value.items.forEach((item, i) => flatten(item, `${where} items[${i}]`, out));
    return;
  }
  out.push({ doc: { value, where } });
}

/**
 * Parses every NetworkPolicy in `text` (YAML or JSON; one or many documents; List kinds). Other
 * kinds are refused. Returns them in document order.
 * @throws ConfigError naming the document, the field path and the rule, for the first invalid object.
 */
export function parsePolicies(text: string, source = "policies"): NetworkPolicy[] {
  const out: NetworkPolicy[] = [];
  const seen = new Set<string>();
  for (const doc of readDocuments(text, source)) {
    const p = parsePolicyObject(doc.value, doc.where);
    const dup = duplicateIssue(p, seen);
    if (dup) dup.throwIfAny(doc.where);
    out.push(p);
  }
  return out;
}

/** The issue of a policy whose namespace/name was seen before (else records it in `seen`). */
function duplicateIssue(p: NetworkPolicy, seen: Set<string>): Issues | undefined {
  const id = `${p.namespace}/${p.name}`;
  if (!seen.has(id)) {
    seen.add(id);
    return undefined;
  }
  const issues = new Issues();
  issues.add("metadata.name", `a NetworkPolicy named ${id} appears twice (names are unique per namespace)`, p.name);
  return issues;
}

/** One object of a batch that was refused (see `parsePolicyBatch`). */
export interface ObjectError {
  /**
   * The object's `kind` as written (`NetworkPolicy`, or e.g. `Pod` when a wrong kind was given; a
   * List kind for a List without `items`); `(no kind)` for an object without one; `(document)` for a
   * document that is not YAML/JSON or not an object.
   */
  kind: string;
  /** `metadata.namespace` as written, `default` when absent; undefined when unreadable, and for a Namespace. */
  namespace?: string;
  /** `metadata.name` as written; undefined when absent or unreadable. */
  name?: string;
  /** The document (and List item): `policies.yaml#2 items[0]`. */
  source: string;
  /** The path of the first broken field inside the object (`spec.ingress[0].ports[0].port`). */
  field: string;
  /** The API server's wording of the rule (further issues of the same object appended). */
  rule: string;
  /** The whole message, as the `ConfigError` the strict parser throws would carry it. */
  message: string;
}

/** What `parsePolicyBatch` returns: the valid policies and one error per invalid object. */
export interface PolicyBatch {
  /** Every valid NetworkPolicy, in document order (the first of two with the same namespace/name). */
  policies: NetworkPolicy[];
  /** Every refused object or document, in document order. */
  errors: ObjectError[];
}

/**
 * `parsePolicies` that does not fail the batch: every valid NetworkPolicy of `text` is returned,
 * and each invalid object (or unreadable document, or second object with the same namespace/name)
 * is reported in `errors` with its kind, namespace, name, document, field and rule. Never throws
 * for bad input.
 */
export function parsePolicyBatch(text: string, source = "policies"): PolicyBatch {
  const batch: PolicyBatch = { policies: [], errors: [] };
  const seen = new Set<string>();
  for (const entry of splitDocuments(text, source)) {
    if (entry.error) {
      batch.errors.push(objectError(entry.error.error, entry.error.kind ?? "(document)", undefined, entry.error.where));
      continue;
    }
    const doc = entry.doc;
    const c = checkPolicyObject(doc.value, doc.where);
    const dup = c.issues.list.length === 0 ? duplicateIssue(c.policy, seen) : undefined;
    const err = c.issues.error(c.label) ?? dup?.error(doc.where);
    if (!err) {
      batch.policies.push(c.policy);
      continue;
    }
    const kind = isObject(doc.value) ? (typeof doc.value.kind === "string" ? doc.value.kind : "(no kind)") : "(document)";
    batch.errors.push(objectError(err, kind, isObject(doc.value) ? identOf(doc.value) : undefined, doc.where));
  }
  return batch;
}

/** The namespace and name of an object as written (for an `ObjectError`). */
interface Ident {
  namespace?: string;
  name?: string;
}

/** `metadata.namespace` (`default` when absent; none for a Namespace, which is cluster-scoped) and `metadata.name`, as written. */
function identOf(v: Record<string, unknown>): Ident {
  const meta = isObject(v.metadata) ? v.metadata : {};
  const name = typeof meta.name === "string" && meta.name !== "" ? { name: meta.name } : {};
  if (v.kind === "Namespace") return name;
  return { namespace: typeof meta.namespace === "string" && meta.namespace !== "" ? meta.namespace : "default", ...name };
}

function objectError(err: ConfigError, kind: string, ident: Ident | undefined, where: string): ObjectError {
  return { kind, ...(ident ?? {}), source: where, field: err.field, rule: err.rule, message: err.message };
}

/**
 * Validates and normalises one NetworkPolicy object (already decoded from YAML/JSON). The
 * namespace defaults to `default` as with kubectl; protocols default to TCP; policyTypes are
 * defaulted by the API server's rule (Ingress, plus Egress when egress rules are present).
 * @throws ConfigError naming `where`, the field path and the rule.
 */
export function parsePolicyObject(obj: unknown, where = "policy"): NetworkPolicy {
  const c = checkPolicyObject(obj, where);
  c.issues.throwIfAny(c.label);
  return c.policy;
}

/**
 * The validation of `parsePolicyObject` without throwing: the policy as far as it could be read,
 * every issue, and the component label errors carry (`where`, plus the policy's namespace/name
 * once the spec was read).
 */
function checkPolicyObject(obj: unknown, where: string): { policy: NetworkPolicy; issues: Issues; label: string } {
  const issues = new Issues();
  if (!isObject(obj)) {
    issues.add("(document)", "must be a NetworkPolicy object", obj);
    const empty = { matchLabels: {}, matchExpressions: [] };
    return { policy: { name: "", namespace: "default", podSelector: empty, ingress: [], egress: [], policyTypes: ["Ingress"], policyTypesDefaulted: true, source: where }, issues, label: where };
  }
  unknownFields(obj, ["apiVersion", "kind", "metadata", "spec", "status"], "", issues);
  if (obj.kind !== "NetworkPolicy") issues.add("kind", 'must be "NetworkPolicy"', obj.kind);
  if (obj.apiVersion !== "networking.k8s.io/v1") issues.add("apiVersion", 'must be "networking.k8s.io/v1"', obj.apiVersion);
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  if (!isObject(obj.metadata)) issues.add("metadata", "Required value: must be an object with name (and namespace)", obj.metadata);
  let name = "";
  if (typeof meta.name !== "string" || meta.name === "") issues.add("metadata.name", "Required value: name is required", meta.name);
  else {
    name = meta.name;
    const pr = dnsSubdomainProblem(name);
    if (pr !== undefined) issues.add("metadata.name", pr, name);
  }
  let namespace = "default";
  if (meta.namespace !== undefined && meta.namespace !== null) {
    if (typeof meta.namespace !== "string" || meta.namespace === "") issues.add("metadata.namespace", "must be a non-empty string", meta.namespace);
    else {
      namespace = meta.namespace;
      const pr = dnsLabelProblem(namespace);
      if (pr !== undefined) issues.add("metadata.namespace", pr, namespace);
    }
  }
  if (meta.labels !== undefined) parseLabels(meta.labels, "metadata.labels", issues);
  const spec = obj.spec;
  const policy: NetworkPolicy = {
    name,
    namespace,
    podSelector: { matchLabels: {}, matchExpressions: [] },
    ingress: [],
    egress: [],
    policyTypes: ["Ingress"],
    policyTypesDefaulted: true,
    source: where,
  };
  if (!isObject(spec)) {
    issues.add("spec", "Required value: must be an object", spec);
    return { policy, issues, label: where };
  }
  unknownFields(spec, ["podSelector", "ingress", "egress", "policyTypes"], "spec", issues);
  policy.podSelector = parseSelector(spec.podSelector, "spec.podSelector", issues);
  policy.ingress = parseRules(spec.ingress, "spec.ingress", "from", issues);
  policy.egress = parseRules(spec.egress, "spec.egress", "to", issues);
  if (spec.policyTypes === undefined || spec.policyTypes === null) {
    policy.policyTypes = policy.egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
  } else if (!Array.isArray(spec.policyTypes)) {
    issues.add("spec.policyTypes", "must be a list", spec.policyTypes);
  } else {
    const types: PolicyType[] = [];
    if (spec.policyTypes.length > POLICY_TYPES.length) issues.add("spec.policyTypes", "may not specify more than two policyTypes", spec.policyTypes);
    spec.policyTypes.forEach((t, i) => {
      if (typeof t !== "string" || !(POLICY_TYPES as readonly string[]).includes(t)) {
        issues.add(`spec.policyTypes[${i}]`, 'Unsupported value: supported values: "Ingress", "Egress"', t);
      } else if (!types.includes(t as PolicyType)) types.push(t as PolicyType);
    });
    // An empty written list is defaulted like an absent one (the API server defaults when len == 0).
    policy.policyTypes = spec.policyTypes.length === 0 ? (policy.egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"]) : POLICY_TYPES.filter((t) => types.includes(t));
    policy.policyTypesDefaulted = spec.policyTypes.length === 0;
  }
  return { policy, issues, label: `${where} (NetworkPolicy ${namespace}/${name || "?"})` };
}

function parseRules(v: unknown, path: string, peersKey: "from" | "to", issues: Issues): PolicyRule[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    issues.add(path, "must be a list of rules", v);
    return [];
  }
  return v.map((r, i) => {
    const p = `${path}[${i}]`;
    const rule: PolicyRule = { peers: [], ports: [] };
    if (r === null) return rule;
    if (!isObject(r)) {
      issues.add(p, `must be an object with ${peersKey} and ports`, r);
      return rule;
    }
    unknownFields(r, [peersKey, "ports"], p, issues);
    const peers = r[peersKey];
    if (peers !== undefined && peers !== null) {
      if (!Array.isArray(peers)) issues.add(`${p}.${peersKey}`, "must be a list of peers", peers);
      else rule.peers = peers.map((peer, k) => parsePeer(peer, `${p}.${peersKey}[${k}]`, issues));
    }
    const ports = r.ports;
    if (ports !== undefined && ports !== null) {
      if (!Array.isArray(ports)) issues.add(`${p}.ports`, "must be a list of ports", ports);
      else rule.ports = ports.map((port, k) => parsePort(port, `${p}.ports[${k}]`, issues));
    }
    return rule;
  });
}

function parsePeer(v: unknown, path: string, issues: Issues): PolicyPeer {
  const peer: PolicyPeer = {};
  if (!isObject(v)) {
    issues.add(path, "Required value: must specify a peer", v);
    return peer;
  }
  unknownFields(v, ["podSelector", "namespaceSelector", "ipBlock"], path, issues);
  let count = 0;
  if (v.podSelector !== undefined && v.podSelector !== null) {
    count++;
    peer.podSelector = parseSelector(v.podSelector, `${path}.podSelector`, issues);
  }
  if (v.namespaceSelector !== undefined && v.namespaceSelector !== null) {
    count++;
    peer.namespaceSelector = parseSelector(v.namespaceSelector, `${path}.namespaceSelector`, issues);
  }
  if (v.ipBlock !== undefined && v.ipBlock !== null) {
    count++;
    const b = parseIpBlock(v.ipBlock, `${path}.ipBlock`, issues);
    if (b) peer.ipBlock = b;
  }
  if (count === 0) issues.add(path, "Required value: must specify a peer");
  else if (count > 1 && v.ipBlock !== undefined && v.ipBlock !== null) issues.add(path, "Forbidden: may not specify both ipBlock and another peer");
  return peer;
}

function parseIpBlock(v: unknown, path: string, issues: Issues): IPBlock | undefined {
  if (!isObject(v)) {
    issues.add(path, "must be an object with cidr and except", v);
    return undefined;
  }
  unknownFields(v, ["cidr", "except"], path, issues);
  const cidr = parseCidr(v.cidr, `${path}.cidr`, issues);
  const except: string[] = [];
  if (v.except !== undefined && v.except !== null) {
    if (!Array.isArray(v.except)) issues.add(`${path}.except`, "must be a list of CIDRs", v.except);
    else
      v.except.forEach((e, i) => {
        const ep = parseCidr(e, `${path}.except[${i}]`, issues);
        if (!ep || !cidr) return;
        if (ep.family !== cidr.family || !cidr.contains(ep) || ep.length <= cidr.length) {
          issues.add(`${path}.except[${i}]`, "must be a strict subset of `cidr`", e);
          return;
        }
        except.push(e as string);
      });
  }
  return cidr ? { cidr: v.cidr as string, except } : undefined;
}

function parsePort(v: unknown, path: string, issues: Issues): PolicyPort {
  const out: PolicyPort = { protocol: "TCP" };
  if (!isObject(v)) {
    issues.add(path, "must be an object with protocol, port and endPort", v);
    return out;
  }
  unknownFields(v, ["protocol", "port", "endPort"], path, issues);
  if (v.protocol !== undefined && v.protocol !== null) {
    const pr = protocolProblem(v.protocol);
    if (pr !== undefined) issues.add(`${path}.protocol`, pr, v.protocol);
    else out.protocol = v.protocol as PolicyProtocol;
  }
  const port = v.port;
  let numeric: number | undefined;
  if (port !== undefined && port !== null) {
    if (typeof port === "number") {
      const pr = portNumberProblem(port);
      if (pr !== undefined) issues.add(`${path}.port`, pr, port);
      else {
        out.port = port;
        numeric = port;
      }
    } else if (typeof port === "string") {
      const pr = portNameProblem(port);
      if (pr !== undefined) issues.add(`${path}.port`, pr, port);
      else out.port = port;
    } else issues.add(`${path}.port`, "must be a port number or a port name", port);
  }
  const end = v.endPort;
  if (end !== undefined && end !== null) {
    const pr = portNumberProblem(end);
    if (pr !== undefined || typeof end !== "number") {
      issues.add(`${path}.endPort`, pr ?? "must be a number", end);
    } else if (port === undefined || port === null) {
      issues.add(`${path}.port`, "Required value: must be specified when endPort is specified");
    } else if (typeof port === "string") {
      issues.add(`${path}.endPort`, "Forbidden: may not be specified when `port` is non-numeric", end);
    } else if (numeric !== undefined && end < numeric) {
      issues.add(`${path}.endPort`, "must be greater than or equal to `port`", end);
    } else if (numeric !== undefined) out.endPort = end;
  }
  return out;
}

// ------------------------------------------------------------------ cluster

/** Options of `parseCluster` and `parseClusterBatch`. */
export interface ParseClusterOptions {
  /**
   * Pod IPs by `namespace/name`, for pods whose document carries none (Pod manifests as applied
   * have no `status`). An entry replaces whatever the document says for that pod; an entry that
   * names no pod of the cluster, or a pod left out of it (see `IgnoredPod`), is refused (field
   * `podIPs["ns/name"]`).
   */
  podIPs?: Readonly<Record<string, readonly string[]>>;
}

/** Why a Pod of the input is not part of the cluster view (see `IgnoredPod`). */
export type IgnoredPodReason = "hostNetwork" | "Succeeded" | "Failed";

/**
 * A Pod object that `parseCluster` read but left out of the cluster view, because it is not a pod of
 * the pod network:
 * - `hostNetwork` (`spec.hostNetwork: true`): it runs in its node's network namespace with its node's
 *   address. NetworkPolicy does not apply to it, and as a peer its traffic is the node's: it is not
 *   selected or matched by selectors, and its address is not a pod IP (an ipBlock can match it, as
 *   any non-pod address). Kubernetes leaves this to the implementation and names this choice the
 *   most common one: https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-and-hostnetwork-pods
 * - `Succeeded`/`Failed` (`status.phase`): a finished pod runs nothing and holds no address, though
 *   its status keeps the IP it had, which the network may already have given to a new pod
 *   (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-phase,
 *   https://github.com/kubernetes/kubernetes/issues/92697). It is not part of the network.
 */
export interface IgnoredPod {
  namespace: string;
  name: string;
  reason: IgnoredPodReason;
  /** The addresses its status gives, as written (the node's for hostNetwork; possibly reused since for a finished pod). */
  ips: string[];
  /** `spec.nodeName`, when set. */
  node?: string;
  /** The document (and List item): `pods.yaml#1 items[3]`. */
  source: string;
  /** One line for people: `kube-system/kube-proxy-x (pods.yaml#1 items[0]) left out: hostNetwork: ...`. */
  message: string;
}

/** What `parseCluster` returns: the cluster view, and the Pods of the input it left out (with the reason). */
export interface ParsedCluster extends Cluster {
  /** Every Pod object left out of the view (hostNetwork or finished), in document order. */
  ignored: IgnoredPod[];
}

/** What `parseClusterBatch` returns: the view of every valid object, the Pods left out, one error per refused object. */
export interface ClusterBatch extends ParsedCluster {
  /** Every refused object or document (and every refused `podIPs` entry, kind `(options)`), in input order. */
  errors: ObjectError[];
}

/**
 * Parses a cluster view: namespaces and pods, either in the compact form
 * `{ namespaces: [{ name, labels }], pods: [{ namespace, name, labels, ips, ports: [{ name, port, protocol }], node, key, hostIf }] }`
 * or as Kubernetes `Namespace` and `Pod` objects (labels, `spec.nodeName`, container ports,
 * `status.podIPs` or else `status.podIP`), in one or many documents or List kinds (`List`,
 * `PodList`, `NamespaceList`: what `kubectl get pods -A -o yaml` and `kubectl get ns -o yaml`
 * print). Every namespace gets the label `kubernetes.io/metadata.name`; a pod's namespace must be
 * declared, except `default` (a Pod without `metadata.namespace` is in it), which every cluster has.
 *
 * Pods that are not part of the pod network are left out and listed in `ignored` with the reason:
 * `spec.hostNetwork: true` (the node's address; NetworkPolicy does not apply), and `status.phase`
 * `Succeeded` or `Failed` (a finished pod holds no IP; its old one may be another pod's). The
 * duplicate-IP check applies to the pods that remain. See `IgnoredPod`.
 *
 * A pod's IPs are `options.podIPs["namespace/name"]` when given, else those of its document; a pod
 * may have none (a Pod manifest as applied, or a Pending pod). A pod without an IP is selected by
 * policies and matched by selector peers like any other, but no ipBlock matches it and, as a peer,
 * it adds no address to compiled filters or nftables sets.
 * @throws ConfigError naming the document, field and rule, for the first invalid object: invalid
 *   labels, addresses or phases, a pod in an undeclared namespace, duplicate namespaces or pods, two
 *   pods with one IP (both named), a `podIPs` entry naming no pod (or a pod left out).
 */
export function parseCluster(text: string, source = "cluster", options: ParseClusterOptions = {}): ParsedCluster {
  return collectCluster(text, source, options, (err) => {
    throw err;
  });
}

/**
 * `parseCluster` that does not fail on the first invalid object: every valid Namespace and Pod is
 * in the view, and each refused object (or unreadable document, compact-form entry, second pod
 * with the same namespace/name, second pod with an IP already taken, pod in an undeclared or
 * refused namespace, refused `podIPs` entry) is reported in `errors` as by `parsePolicyBatch`.
 * Never throws for bad input.
 */
export function parseClusterBatch(text: string, source = "cluster", options: ParseClusterOptions = {}): ClusterBatch {
  const errors: ObjectError[] = [];
  const parsed = collectCluster(text, source, options, (err, kind, ident, where) => errors.push(objectError(err, kind, ident, where)));
  return { ...parsed, errors };
}

/**
 * Checks a cluster view built in code and fills `kubernetes.io/metadata.name`: unique namespaces,
 * pods in declared namespaces, unique pod names and IPs, canonical IPs. Returns a new object. The
 * namespace `default` exists in every cluster: when a pod is in it and the view does not declare
 * it, it is added (with only its name label) after the declared ones.
 * @throws ConfigError naming the field and the rule.
 */
export function buildCluster(cluster: Cluster, source = "cluster"): Cluster {
  const issues = new Issues();
  const out = checkCluster(
    cluster.namespaces.map((value, i) => ({ value, where: source, fields: listFields(`namespaces[${i}].`) })),
    cluster.pods.map((value, i) => ({ value, where: source, fields: listFields(`pods[${i}].`) })),
    (_item, _kind, field, rule, value) => issues.add(field, rule, value),
  );
  issues.throwIfAny(source);
  return out;
}

/** Where a refused object goes: `parseCluster` throws, `parseClusterBatch` collects. */
type Refuse = (err: ConfigError, kind: string, ident: Ident | undefined, where: string) => void;

/** A namespace or pod of the input, with its document and the paths of its fields in it. */
interface Placed<T> {
  value: T;
  where: string;
  fields: { name: string; namespace: string; ips: string };
}

const OBJECT_FIELDS = { name: "metadata.name", namespace: "metadata.namespace", ips: "status.podIPs" };
function listFields(prefix: string): Placed<unknown>["fields"] {
  return { name: `${prefix}name`, namespace: `${prefix}namespace`, ips: `${prefix}ips` };
}

/** The component label of a placed object's errors: its document, and its kind and name. */
function labelOf(where: string, kind: string, id: string): string {
  return `${where} (${kind} ${id || "?"})`;
}

function collectCluster(text: string, source: string, options: ParseClusterOptions, refuse: Refuse): ParsedCluster {
  const entries = splitDocuments(text, source);
  // Like readDocuments: an unreadable document is reported before any object is validated.
  for (const e of entries) if (e.error) refuse(e.error.error, e.error.kind ?? "(document)", undefined, e.error.where);
  const namespaces: Placed<ClusterNamespace>[] = [];
  const pods: Placed<ClusterPod>[] = [];
  const ignored: IgnoredPod[] = [];
  /** namespace/name of every Pod read, kept or refused (a podIPs entry for a refused pod is not a second error). */
  const named = new Set<string>();
  for (const entry of entries) {
    if (!entry.doc) continue;
    const { value: v, where } = entry.doc;
    const issues = new Issues();
    if (isObject(v) && v.kind === "Namespace") {
      const ns = namespaceFromObject(v, "", issues);
      const err = issues.error(labelOf(where, "Namespace", ns.name));
      if (err) refuse(err, "Namespace", identOf(v), where);
      else namespaces.push({ value: ns, where, fields: OBJECT_FIELDS });
    } else if (isObject(v) && v.kind === "Pod") {
      const { pod, left } = podFromObject(v, "", issues);
      const id = `${pod.namespace}/${pod.name}`;
      if (pod.name !== "") named.add(id);
      const err = issues.error(labelOf(where, "Pod", pod.name === "" ? "" : id));
      if (err) refuse(err, "Pod", identOf(v), where);
      else if (left) ignored.push(ignoredPod(pod, left, where));
      else pods.push({ value: pod, where, fields: OBJECT_FIELDS });
    } else if (isObject(v) && (v.namespaces !== undefined || v.pods !== undefined) && v.kind === undefined) {
      unknownFields(v, ["namespaces", "pods"], "", issues);
      const nsList = listOf(v.namespaces, "namespaces", issues);
      const podList = listOf(v.pods, "pods", issues);
      const err = issues.error(where);
      if (err) {
        refuse(err, "(no kind)", undefined, where);
        continue;
      }
      nsList.forEach((n, i) => {
        const own = new Issues();
        const ns = compactNamespace(n, `namespaces[${i}]`, own);
        const e = own.error(where);
        if (e) refuse(e, "Namespace", ns.name === "" ? undefined : { name: ns.name }, where);
        else namespaces.push({ value: ns, where, fields: listFields(`namespaces[${i}].`) });
      });
      podList.forEach((p, i) => {
        const own = new Issues();
        const pod = compactPod(p, `pods[${i}]`, own);
        if (pod.name !== "" && pod.namespace !== "") named.add(`${pod.namespace}/${pod.name}`);
        const e = own.error(where);
        if (e) refuse(e, "Pod", pod.name === "" ? undefined : { namespace: pod.namespace || "default", name: pod.name }, where);
        else pods.push({ value: pod, where, fields: listFields(`pods[${i}].`) });
      });
    } else {
      issues.add("kind", "must be a Namespace or Pod object, a List of them, or a compact {namespaces, pods} document", isObject(v) ? v.kind : v);
      refuse(issues.error(where)!, isObject(v) ? (typeof v.kind === "string" ? v.kind : "(no kind)") : "(document)", isObject(v) ? identOf(v) : undefined, where);
    }
  }
  applyPodIPs(options, pods, named, ignored, source, refuse);
  const cluster = checkCluster(namespaces, pods, (item, kind, field, rule, value) => {
    const issues = new Issues();
    issues.add(field, rule, value);
    const id = kind === "Pod" ? `${(item.value as ClusterPod).namespace}/${item.value.name}` : item.value.name;
    const ident = kind === "Pod" ? { namespace: (item.value as ClusterPod).namespace, name: item.value.name } : { name: item.value.name };
    refuse(issues.error(labelOf(item.where, kind, id))!, kind, ident, item.where);
  });
  return { ...cluster, ignored };
}

/** Checks `options.podIPs` (each entry names a pod of the view, and holds addresses) and gives the pods their IPs. */
function applyPodIPs(options: ParseClusterOptions, pods: Placed<ClusterPod>[], named: Set<string>, ignored: IgnoredPod[], source: string, refuse: Refuse): void {
  const given = options.podIPs ?? {};
  const byId = new Map(pods.map((p) => [`${p.value.namespace}/${p.value.name}`, p]));
  const where = `${source} (options)`;
  for (const [id, list] of Object.entries(given)) {
    const issues = new Issues();
    const field = `podIPs["${id}"]`;
    const left = ignored.find((p) => `${p.namespace}/${p.name}` === id);
    if (left) issues.add(field, `names pod ${id}, which is left out of the cluster view (${left.reason}): ${ignoreRule(left.reason)}`, id);
    else if (!named.has(id)) {
      const ids = [...byId.keys()];
      issues.add(field, `names no pod of the cluster (keys are namespace/name; pods: ${ids.slice(0, 8).join(", ") || "none"}${ids.length > 8 ? ", ..." : ""})`, id);
    } else if (!Array.isArray(list)) issues.add(field, "must be a list of IP address strings", list);
    else
      list.forEach((ip: unknown, k) => {
        try {
          parseAddress(ip, { field: `${field}[${k}]` });
        } catch (err) {
          issues.add(`${field}[${k}]`, typeof (err as { rule?: unknown }).rule === "string" ? (err as { rule: string }).rule : "must be an IP address", ip);
        }
      });
    const err = issues.error(where);
    if (err) {
      refuse(err, "(options)", undefined, where);
      continue;
    }
    const pod = byId.get(id);
    if (pod) {
      pod.value = { ...pod.value, ips: [...list] };
      pod.fields = { ...pod.fields, ips: field };
    }
  }
}

/**
 * The checks across objects, for `buildCluster` and the parsers: unique valid namespaces, pods in
 * declared namespaces, unique pod names and IPs (the error names both pods), canonical IPs. An
 * object with a problem is `report`ed and left out of the result.
 */
function checkCluster(
  namespaces: readonly Placed<ClusterNamespace>[],
  pods: readonly Placed<ClusterPod>[],
  report: (item: Placed<ClusterNamespace | ClusterPod>, kind: "Namespace" | "Pod", field: string, rule: string, value?: unknown) => void,
): Cluster {
  const nsNames = new Set<string>();
  const outNs: ClusterNamespace[] = [];
  for (const item of namespaces) {
    const n = item.value;
    const pr = dnsLabelProblem(n.name);
    if (nsNames.has(n.name)) report(item, "Namespace", item.fields.name, "must be unique among namespaces", n.name);
    else if (pr !== undefined) report(item, "Namespace", item.fields.name, pr, n.name);
    else {
      nsNames.add(n.name);
      outNs.push({ name: n.name, labels: { ...n.labels, [NAMESPACE_NAME_LABEL]: n.name } });
    }
  }
  if (!nsNames.has("default") && pods.some((p) => p.value.namespace === "default")) {
    outNs.push({ name: "default", labels: { [NAMESPACE_NAME_LABEL]: "default" } });
    nsNames.add("default");
  }
  const podNames = new Set<string>();
  const owners = new Map<string, Placed<ClusterPod>>();
  const outPods: ClusterPod[] = [];
  for (const item of pods) {
    const p = item.value;
    const id = `${p.namespace}/${p.name}`;
    if (!nsNames.has(p.namespace)) {
      report(item, "Pod", item.fields.namespace, `names namespace ${p.namespace}, which the cluster does not declare`, p.namespace);
      continue;
    }
    if (podNames.has(id)) {
      report(item, "Pod", item.fields.name, `pod ${id} appears twice`, p.name);
      continue;
    }
    const canon: string[] = [];
    let bad = false;
    p.ips.forEach((ip, k) => {
      try {
        canon.push(canonicalAddress(ip, { field: `${item.fields.ips}[${k}]` }));
      } catch (err) {
        report(item, "Pod", `${item.fields.ips}[${k}]`, typeof (err as { rule?: unknown }).rule === "string" ? (err as { rule: string }).rule : "must be an IP address", ip);
        bad = true;
      }
    });
    if (bad) continue;
    const taken = canon.map((ip) => ({ ip, other: owners.get(ip) })).find((t) => t.other !== undefined && t.other !== item);
    if (taken?.other) {
      const o = taken.other;
      const at = o.where === item.where ? "" : ` (${o.where})`;
      report(
        item,
        "Pod",
        item.fields.ips,
        `address ${taken.ip} of pod ${id} is also pod ${o.value.namespace}/${o.value.name}'s${at}: a pod IP belongs to one pod (hostNetwork and finished pods are left out)`,
        taken.ip,
      );
      continue;
    }
    podNames.add(id);
    for (const ip of canon) owners.set(ip, item);
    outPods.push({ ...p, labels: { ...p.labels }, ips: canon, ports: p.ports.map((c) => ({ ...c })) });
  }
  return { namespaces: outNs, pods: outPods };
}

function ignoreRule(reason: IgnoredPodReason): string {
  return reason === "hostNetwork"
    ? "spec.hostNetwork: it uses its node's network namespace and address; NetworkPolicy does not apply to it, and as a peer its traffic is the node's (matched by ipBlock only)"
    : `status.phase ${reason}: a finished pod holds no IP (the address in its status may be another pod's by now); it is not part of the network`;
}

function ignoredPod(pod: ClusterPod, reason: IgnoredPodReason, where: string): IgnoredPod {
  const id = `${pod.namespace}/${pod.name}`;
  return {
    namespace: pod.namespace,
    name: pod.name,
    reason,
    ips: [...pod.ips],
    ...(pod.node !== undefined ? { node: pod.node } : {}),
    source: where,
    message: `${id} (${where}) left out: ${ignoreRule(reason)}`,
  };
}

function listOf(v: unknown, path: string, issues: Issues): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    issues.add(path, "must be a list", v);
    return [];
  }
  return v;
}

function str(v: unknown, path: string, issues: Issues): string {
  if (typeof v !== "string" || v === "") {
    issues.add(path, "Required value: must be a non-empty string", v);
    return "";
  }
  return v;
}

function compactNamespace(v: unknown, path: string, issues: Issues): ClusterNamespace {
  if (!isObject(v)) {
    issues.add(path, "must be an object with name and labels", v);
    return { name: "", labels: {} };
  }
  unknownFields(v, ["name", "labels"], path, issues);
  return { name: str(v.name, `${path}.name`, issues), labels: parseLabels(v.labels, `${path}.labels`, issues) };
}

function compactPod(v: unknown, path: string, issues: Issues): ClusterPod {
  if (!isObject(v)) {
    issues.add(path, "must be an object with namespace, name, labels, ips and ports", v);
    return { namespace: "", name: "", labels: {}, ips: [], ports: [] };
  }
  unknownFields(v, ["namespace", "name", "labels", "ips", "ip", "ports", "node", "key", "hostIf"], path, issues);
  const ips: string[] = [];
  if (typeof v.ip === "string") ips.push(v.ip);
  listOf(v.ips, `${path}.ips`, issues).forEach((ip, k) => {
    if (typeof ip !== "string") issues.add(`${path}.ips[${k}]`, "must be an IP address string", ip);
    else ips.push(ip);
  });
  const pod: ClusterPod = {
    namespace: str(v.namespace, `${path}.namespace`, issues),
    name: str(v.name, `${path}.name`, issues),
    labels: parseLabels(v.labels, `${path}.labels`, issues),
    ips,
    ports: listOf(v.ports, `${path}.ports`, issues).map((c, k) => containerPort(c, `${path}.ports[${k}]`, issues, "port")),
  };
  if (v.node !== undefined) pod.node = str(v.node, `${path}.node`, issues);
  if (v.key !== undefined) pod.key = str(v.key, `${path}.key`, issues);
  if (v.hostIf !== undefined) {
    pod.hostIf = str(v.hostIf, `${path}.hostIf`, issues);
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(pod.hostIf)) issues.add(`${path}.hostIf`, "must be an interface name of 1 to 15 characters (letters, digits, _ . -)", pod.hostIf);
  }
  return pod;
}

function containerPort(v: unknown, path: string, issues: Issues, numberKey: "port" | "containerPort"): ContainerPort {
  const out: ContainerPort = { containerPort: 0, protocol: "TCP" };
  if (!isObject(v)) {
    issues.add(path, "must be an object with name, port and protocol", v);
    return out;
  }
  const num = v[numberKey] ?? v.containerPort ?? v.port;
  const np = portNumberProblem(num);
  if (np !== undefined) issues.add(`${path}.${numberKey}`, np, num);
  else out.containerPort = num as number;
  if (v.protocol !== undefined) {
    const pr = protocolProblem(v.protocol);
    if (pr !== undefined) issues.add(`${path}.protocol`, pr, v.protocol);
    else out.protocol = v.protocol as PolicyProtocol;
  }
  if (v.name !== undefined) {
    if (typeof v.name !== "string") issues.add(`${path}.name`, "must be a string", v.name);
    else {
      const pr = portNameProblem(v.name);
      if (pr !== undefined) issues.add(`${path}.name`, pr, v.name);
      out.name = v.name;
    }
  }
  return out;
}

function namespaceFromObject(v: Record<string, unknown>, path: string, issues: Issues): ClusterNamespace {
  const meta = isObject(v.metadata) ? v.metadata : {};
  return { name: str(meta.name, `${path}metadata.name`, issues), labels: parseLabels(meta.labels, `${path}metadata.labels`, issues) };
}

const POD_PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

/** A Pod object as a cluster pod, and the reason it is left out of the view (hostNetwork, finished), if any. */
function podFromObject(v: Record<string, unknown>, path: string, issues: Issues): { pod: ClusterPod; left?: IgnoredPodReason } {
  const meta = isObject(v.metadata) ? v.metadata : {};
  const spec = isObject(v.spec) ? v.spec : {};
  const status = isObject(v.status) ? v.status : {};
  const ips: string[] = [];
  listOf(status.podIPs, `${path}status.podIPs`, issues).forEach((e, k) => {
    if (isObject(e) && typeof e.ip === "string") ips.push(e.ip);
    else issues.add(`${path}status.podIPs[${k}].ip`, "must be an IP address string", e);
  });
  if (ips.length === 0 && status.podIP !== undefined && status.podIP !== null) {
    if (typeof status.podIP === "string") ips.push(status.podIP);
    else issues.add(`${path}status.podIP`, "must be an IP address string", status.podIP);
  }
  const ports: ContainerPort[] = [];
  listOf(spec.containers, `${path}spec.containers`, issues).forEach((c, i) => {
    if (!isObject(c)) return;
    listOf(c.ports, `${path}spec.containers[${i}].ports`, issues).forEach((p, k) => ports.push(containerPort(p, `${path}spec.containers[${i}].ports[${k}]`, issues, "containerPort")));
  });
  const pod: ClusterPod = {
    namespace: typeof meta.namespace === "string" && meta.namespace !== "" ? meta.namespace : "default",
    name: str(meta.name, `${path}metadata.name`, issues),
    labels: parseLabels(meta.labels, `${path}metadata.labels`, issues),
    ips,
    ports,
  };
  if (typeof spec.nodeName === "string" && spec.nodeName !== "") pod.node = spec.nodeName;
  const hostNetwork = spec.hostNetwork ?? false;
  if (typeof hostNetwork !== "boolean") issues.add(`${path}spec.hostNetwork`, "must be a boolean", hostNetwork);
  const phase = status.phase;
  if (phase !== undefined && phase !== null && (typeof phase !== "string" || !POD_PHASES.includes(phase))) {
    issues.add(`${path}status.phase`, `Unsupported value: supported values: ${POD_PHASES.map((p) => `"${p}"`).join(", ")}`, phase);
  }
  if (hostNetwork === true) return { pod, left: "hostNetwork" };
  if (phase === "Succeeded" || phase === "Failed") return { pod, left: phase };
  return { pod };
}

/** Parses an address and reports its family (helper for callers taking user-given peer IPs). */
export function addressOf(text: string, field: string): { family: 4 | 6; value: bigint; text: string } {
  const a = parseAddress(text, { field, component: COMPONENT });
  return { ...a, text: canonicalAddress(text) };
}
