/**
 * The Kubernetes objects the cluster mirrors into the cluster store, and their key layout. In a
 * real cluster these come from the Kubernetes API; in cnikit the cluster store stands in for it, so
 * every backend that claims `capabilities.networkPolicy` reads them from the same place:
 *
 *  - `/cnikit/kube/namespaces/<name>` = `{"metadata": {"name": <name>, "labels": {...}}}`
 *  - `/cnikit/kube/networkpolicies/<namespace>/<name>` = the networking.k8s.io/v1 NetworkPolicy
 *    object as JSON (apiVersion, kind, metadata, spec), exactly as `kubectl get -o json` gives it.
 *  - `/cnikit/kube/nodes/<name>` = the core/v1 Node as JSON, the fields membership needs:
 *    `metadata.{name, labels, annotations}`, `spec.podCIDRs`, `status.addresses` (`InternalIP`
 *    entries are the underlay addresses). Kubernetes knows a node's addresses, not its subnets: the
 *    annotation `cnikit.io/underlay` (JSON array of `UnderlayInterface`) adds interface names,
 *    prefix lengths, gateways and MTUs; without it each InternalIP is an `eth0` with a host-length
 *    prefix (the node's subnet unknown: treat it as off-link). Read by `watchStoreMembership`.
 *
 * Pods are not mirrored: their namespace, name, labels and container ports come with the CNI ADD
 * (`PodAttachment`), and a backend shares what other nodes need to know about its pods its own way.
 */
import type { NodeInfo, UnderlayInterface } from "./backend.ts";
import { ConfigError } from "./errors.ts";
import { canonicalAddress, parseAddress } from "./ip/prefix.ts";

/** Key prefixes of the mirrored Kubernetes objects (each ends with `/`). */
export const KUBE_PREFIX = {
  namespaces: "/cnikit/kube/namespaces/",
  networkPolicies: "/cnikit/kube/networkpolicies/",
  nodes: "/cnikit/kube/nodes/",
} as const;

/** The annotation of a mirrored Node that carries its underlay interfaces (see the module comment). */
export const UNDERLAY_ANNOTATION = "cnikit.io/underlay";

/** The namespace object as mirrored: only what NetworkPolicy needs. */
export interface KubeNamespace {
  name: string;
  labels: Record<string, string>;
}

function checkName(field: string, value: string): void {
  if (value === "" || value.includes("/")) {
    throw new ConfigError({ component: "kube", field, rule: "must be a non-empty Kubernetes object name without '/'", value });
  }
}

/**
 * The store key of a namespace. Pure.
 * @throws ConfigError for an empty name or one containing `/`.
 */
export function kubeNamespaceKey(name: string): string {
  checkName("metadata.name", name);
  return `${KUBE_PREFIX.namespaces}${name}`;
}

/**
 * The store key of a NetworkPolicy. Pure.
 * @throws ConfigError for an empty namespace or name, or one containing `/`.
 */
export function kubeNetworkPolicyKey(namespace: string, name: string): string {
  checkName("metadata.namespace", namespace);
  checkName("metadata.name", name);
  return `${KUBE_PREFIX.networkPolicies}${namespace}/${name}`;
}

/**
 * The store value of a namespace: `{"metadata": {"name", "labels"}}`. Pure.
 * @throws ConfigError for an invalid name.
 */
export function kubeNamespaceValue(ns: KubeNamespace): string {
  checkName("metadata.name", ns.name);
  return JSON.stringify({ metadata: { name: ns.name, labels: { ...ns.labels } } });
}

/**
 * Reads a mirrored namespace from its key and value. The name comes from the key (the value's
 * `metadata.name`, when present, must agree); absent labels are `{}`. Pure.
 * @throws ConfigError naming the field when the key is not under `KUBE_PREFIX.namespaces`, the
 * value is not JSON, the names disagree, or a label value is not a string.
 */
export function parseKubeNamespace(key: string, value: string): KubeNamespace {
  if (!key.startsWith(KUBE_PREFIX.namespaces)) {
    throw new ConfigError({ component: "kube", field: "key", rule: `must start with ${KUBE_PREFIX.namespaces}`, value: key });
  }
  const name = key.slice(KUBE_PREFIX.namespaces.length);
  checkName("metadata.name", name);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new ConfigError({ component: "kube", field: `namespace ${name}`, rule: "must be a JSON object", value, cause: err });
  }
  const meta = (parsed !== null && typeof parsed === "object" ? (parsed as { metadata?: unknown }).metadata : undefined) ?? {};
  if (meta === null || typeof meta !== "object") throw new ConfigError({ component: "kube", field: "metadata", rule: "must be an object", value: meta });
  const m = meta as { name?: unknown; labels?: unknown };
  if (m.name !== undefined && m.name !== name) {
    throw new ConfigError({ component: "kube", field: "metadata.name", rule: `must equal the name in the key (${name})`, value: m.name });
  }
  const labels: Record<string, string> = {};
  if (m.labels !== undefined && m.labels !== null) {
    if (typeof m.labels !== "object") throw new ConfigError({ component: "kube", field: "metadata.labels", rule: "must be an object of strings", value: m.labels });
    for (const [k, v] of Object.entries(m.labels as Record<string, unknown>)) {
      if (typeof v !== "string") throw new ConfigError({ component: "kube", field: `metadata.labels.${k}`, rule: "must be a string", value: v });
      labels[k] = v;
    }
  }
  return { name, labels };
}

/**
 * The store key of a Node. Pure.
 * @throws ConfigError for an empty name or one containing `/`.
 */
export function kubeNodeKey(name: string): string {
  checkName("metadata.name", name);
  return `${KUBE_PREFIX.nodes}${name}`;
}

/**
 * The store value of a Node: metadata (name, labels, annotations with `cnikit.io/underlay`),
 * `spec.podCIDRs`, `status.addresses` (one InternalIP per underlay address). Pure; the result
 * parses back (`parseKubeNode`) to the same NodeInfo.
 * @throws ConfigError for an invalid name or underlay (see `parseKubeNode`).
 */
export function kubeNodeValue(node: NodeInfo): string {
  checkName("metadata.name", node.name);
  const underlay = node.underlay.map((u, i) => checkUnderlay(u, `underlay[${i}]`));
  const annotations = { ...(node.annotations ?? {}), [UNDERLAY_ANNOTATION]: JSON.stringify(underlay) };
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: node.name, labels: { ...(node.labels ?? {}) }, annotations },
    spec: node.podCIDRs ? { podCIDRs: [...node.podCIDRs] } : {},
    status: { addresses: underlay.map((u) => ({ type: "InternalIP", address: u.address })) },
  });
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: "kube", field, rule } : { component: "kube", field, rule, value });
}

function stringMap(field: string, value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === undefined || value === null) return out;
  if (typeof value !== "object" || Array.isArray(value)) fail(field, "must be an object of strings", value);
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") fail(`${field}.${k}`, "must be a string", v);
    out[k] = v;
  }
  return out;
}

/** Validates one underlay interface and returns its canonical form (strict: unknown fields refused). */
function checkUnderlay(u: unknown, field: string): UnderlayInterface {
  if (u === null || typeof u !== "object" || Array.isArray(u)) fail(field, "must be an object {iface, address, prefixLength}", u);
  const o = u as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!["iface", "address", "prefixLength", "gateway", "mtu", "secondaryAddresses"].includes(k)) fail(`${field}.${k}`, "is not a field of an underlay interface", o[k]);
  }
  if (typeof o.iface !== "string" || o.iface === "") fail(`${field}.iface`, "must be a non-empty interface name", o.iface);
  const a = parseAddress(o.address, { component: "kube", field: `${field}.address` });
  const bits = a.family === 4 ? 32 : 128;
  if (typeof o.prefixLength !== "number" || !Number.isInteger(o.prefixLength) || o.prefixLength < 0 || o.prefixLength > bits) {
    fail(`${field}.prefixLength`, `must be an integer from 0 to ${bits}`, o.prefixLength);
  }
  const out: UnderlayInterface = { iface: o.iface, address: canonicalAddress(o.address as string), prefixLength: o.prefixLength };
  if (o.gateway !== undefined) {
    const g = parseAddress(o.gateway, { component: "kube", field: `${field}.gateway` });
    if (g.family !== a.family) fail(`${field}.gateway`, `must be an IPv${a.family} address like the interface's`, o.gateway);
    out.gateway = canonicalAddress(o.gateway as string);
  }
  if (o.mtu !== undefined) {
    if (typeof o.mtu !== "number" || !Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535) fail(`${field}.mtu`, "must be an integer from 68 to 65535", o.mtu);
    out.mtu = o.mtu;
  }
  if (o.secondaryAddresses !== undefined) {
    if (!Array.isArray(o.secondaryAddresses)) fail(`${field}.secondaryAddresses`, "must be an array of addresses", o.secondaryAddresses);
    const list = o.secondaryAddresses.map((x, i) => {
      const s = parseAddress(x, { component: "kube", field: `${field}.secondaryAddresses[${i}]` });
      if (s.family !== a.family) fail(`${field}.secondaryAddresses[${i}]`, `must be an IPv${a.family} address like the interface's`, x);
      return canonicalAddress(x as string);
    });
    if (list.length > 0) out.secondaryAddresses = [...new Set(list)].sort();
  }
  return out;
}

/**
 * Reads a mirrored Node from its key and value into a `NodeInfo`. The name comes from the key (the
 * value's `metadata.name`, when present, must agree). The underlay comes from the
 * `cnikit.io/underlay` annotation (which is then left out of `annotations`), else from the
 * `InternalIP` entries of `status.addresses`. Pure.
 * @throws ConfigError naming the field when the key is not under `KUBE_PREFIX.nodes`, the value is
 * not a JSON object, the names disagree, a label or annotation is not a string, the underlay
 * annotation or an address does not parse, or the node has no underlay address at all.
 */
export function parseKubeNode(key: string, value: string): NodeInfo {
  if (!key.startsWith(KUBE_PREFIX.nodes)) fail("key", `must start with ${KUBE_PREFIX.nodes}`, key);
  const name = key.slice(KUBE_PREFIX.nodes.length);
  checkName("metadata.name", name);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new ConfigError({ component: "kube", field: `node ${name}`, rule: "must be a JSON object", value, cause: err });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail(`node ${name}`, "must be a JSON object", parsed);
  const obj = parsed as { metadata?: unknown; spec?: unknown; status?: unknown };
  const meta = obj.metadata ?? {};
  if (meta === null || typeof meta !== "object") fail("metadata", "must be an object", meta);
  const m = meta as { name?: unknown; labels?: unknown; annotations?: unknown };
  if (m.name !== undefined && m.name !== name) fail("metadata.name", `must equal the name in the key (${name})`, m.name);
  const labels = stringMap("metadata.labels", m.labels);
  const annotations = stringMap("metadata.annotations", m.annotations);
  const spec = (obj.spec ?? {}) as { podCIDRs?: unknown };
  if (spec === null || typeof spec !== "object") fail("spec", "must be an object", spec);
  let podCIDRs: string[] | undefined;
  if (spec.podCIDRs !== undefined) {
    if (!Array.isArray(spec.podCIDRs) || spec.podCIDRs.some((c) => typeof c !== "string")) fail("spec.podCIDRs", "must be an array of CIDR strings", spec.podCIDRs);
    podCIDRs = [...(spec.podCIDRs as string[])];
  }
  let underlay: UnderlayInterface[];
  const raw = annotations[UNDERLAY_ANNOTATION];
  if (raw !== undefined) {
    delete annotations[UNDERLAY_ANNOTATION];
    let list: unknown;
    try {
      list = JSON.parse(raw);
    } catch (err) {
      throw new ConfigError({ component: "kube", field: `metadata.annotations.${UNDERLAY_ANNOTATION}`, rule: "must be a JSON array of underlay interfaces", value: raw, cause: err });
    }
    if (!Array.isArray(list)) fail(`metadata.annotations.${UNDERLAY_ANNOTATION}`, "must be a JSON array of underlay interfaces", list);
    underlay = list.map((u, i) => checkUnderlay(u, `metadata.annotations.${UNDERLAY_ANNOTATION}[${i}]`));
  } else {
    const status = (obj.status ?? {}) as { addresses?: unknown };
    const addrs = status.addresses ?? [];
    if (!Array.isArray(addrs)) fail("status.addresses", "must be an array of {type, address}", addrs);
    underlay = [];
    addrs.forEach((e: unknown, i) => {
      const entry = (e ?? {}) as { type?: unknown; address?: unknown };
      if (entry.type !== "InternalIP") return;
      const a = parseAddress(entry.address, { component: "kube", field: `status.addresses[${i}].address` });
      underlay.push({ iface: "eth0", address: canonicalAddress(entry.address as string), prefixLength: a.family === 4 ? 32 : 128 });
    });
  }
  if (underlay.length === 0) fail("status.addresses", `must list an InternalIP (or give metadata.annotations.${UNDERLAY_ANNOTATION})`);
  return {
    name,
    underlay,
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    ...(podCIDRs ? { podCIDRs } : {}),
  };
}
