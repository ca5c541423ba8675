/**
 * The Kubernetes objects the cluster mirrors into the cluster store, and their key layout. In a
 * real cluster these come from the Kubernetes API; in cnikit the cluster store stands in for it, so
 * every backend that claims `capabilities.networkPolicy` reads them from the same place:
 *
 *  - `/cnikit/kube/namespaces/<name>` = `{"metadata": {"name": <name>, "labels": {...}}}`
 *  - `/cnikit/kube/networkpolicies/<namespace>/<name>` = the networking.k8s.io/v1 NetworkPolicy
 *    object as JSON (apiVersion, kind, metadata, spec), exactly as `kubectl get -o json` gives it.
 *
 * Pods are not mirrored: their namespace, name, labels and container ports come with the CNI ADD
 * (`PodAttachment`), and a backend shares what other nodes need to know about its pods its own way.
 */
import { ConfigError } from "./errors.ts";

/** Key prefixes of the mirrored Kubernetes objects (each ends with `/`). */
export const KUBE_PREFIX = {
  namespaces: "/cnikit/kube/namespaces/",
  networkPolicies: "/cnikit/kube/networkpolicies/",
} as const;

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
