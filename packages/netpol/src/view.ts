/**
 * The cluster's NetworkPolicies and namespaces as a node agent sees them: mirrored from the store's
 * Kubernetes prefixes (`KUBE_PREFIX`, the layout every NetworkPolicy backend reads) and compiled,
 * with the pods the backend publishes its own way, into one node's FilterPolicies.
 *
 * Backends differ only in how pods are published (the reference backend under its lease, Calico as
 * workload endpoints); the policy and namespace half is this class, so they cannot drift apart.
 */
import { KUBE_PREFIX, mirrorPrefix, parseKubeNamespace } from "@cnikit/core";
import type { Clock, Datastore, FilterPolicy, KeyValue } from "@cnikit/core";
import { compileFilters } from "./compile.ts";
import { NAMESPACE_NAME_LABEL, parsePolicyObject } from "./parse.ts";
import { namespacesFor } from "./policy-snapshot.ts";
import type { ClusterNamespace, ClusterPod, NetworkPolicy } from "./types.ts";

/**
 * A NetworkPolicy as mirrored at `key` (the object's JSON). Pure.
 * Throws (`ConfigError` naming the field, or a JSON `SyntaxError`) for a value that is not a valid policy.
 */
export function decodeKubePolicy(key: string, value: string): NetworkPolicy {
  return parsePolicyObject(JSON.parse(value), key);
}

/**
 * A namespace as mirrored at `key`, with its `kubernetes.io/metadata.name` label. Pure.
 * Throws `ConfigError` naming the field for an invalid key or value.
 */
export function decodeKubeNamespace(key: string, value: string): ClusterNamespace {
  const ns = parseKubeNamespace(key, value);
  return { name: ns.name, labels: { [NAMESPACE_NAME_LABEL]: ns.name, ...ns.labels } };
}

/** Mirrors NetworkPolicies and namespaces; see the module comment. */
export class KubePolicyView {
  private readonly policies = new Map<string, NetworkPolicy>();
  private readonly namespaces = new Map<string, ClusterNamespace>();

  /** `warn` hears about invalid objects in the store (they are ignored, never fatal). */
  constructor(private readonly warn: (msg: string, err: unknown) => void) {}

  /** Whether any NetworkPolicy is in force (without one, nothing is filtered). */
  hasPolicies(): boolean {
    return this.policies.size > 0;
  }

  /**
   * Lists both prefixes and keeps watching them until `signal` aborts (a failed watch is re-listed
   * after `retryMs`). `onChange` runs after every change that can alter compiled filters. Resolves
   * after the first listing; throws what the store throws on it (e.g. `TryAgainError`).
   */
  async start(options: { store: Datastore; clock: Clock; signal: AbortSignal; retryMs: number; onChange: () => void }): Promise<void> {
    const mirror = (prefix: string, apply: (key: string, kv: KeyValue | undefined) => boolean) =>
      mirrorPrefix({
        store: options.store,
        prefix,
        clock: options.clock,
        signal: options.signal,
        retryMs: options.retryMs,
        apply: (key, kv) => {
          if (apply(key, kv)) options.onChange();
        },
        onError: (err) => this.warn(`watch of ${prefix} failed; re-listing`, err),
      });
    await Promise.all([mirror(KUBE_PREFIX.networkPolicies, (k, kv) => this.applyPolicy(k, kv)), mirror(KUBE_PREFIX.namespaces, (k, kv) => this.applyNamespace(k, kv))]);
  }

  /** Applies one policy key (undefined = deleted). Returns true: a policy change always matters. */
  applyPolicy(key: string, kv: KeyValue | undefined): boolean {
    if (!kv) this.policies.delete(key);
    else {
      try {
        this.policies.set(key, decodeKubePolicy(key, kv.value));
      } catch (err) {
        this.warn(`ignoring invalid NetworkPolicy ${key}`, err);
        this.policies.delete(key);
      }
    }
    return true;
  }

  /** Applies one namespace key. Returns whether compiled filters may change (only with policies). */
  applyNamespace(key: string, kv: KeyValue | undefined): boolean {
    const name = key.slice(KUBE_PREFIX.namespaces.length);
    if (!kv) this.namespaces.delete(name);
    else {
      try {
        this.namespaces.set(name, decodeKubeNamespace(key, kv.value));
      } catch (err) {
        this.warn(`ignoring invalid namespace ${key}`, err);
        this.namespaces.delete(name);
      }
    }
    return this.policies.size > 0;
  }

  /**
   * The FilterPolicies of `node`'s pods given every pod of the cluster (empty when no policy is in
   * force). A namespace named by a pod or policy but absent from the store gets only its name label.
   * `nodeAddresses` (the node's own addresses) are always allowed to and from its pods.
   * Throws `ConfigError` only for an invalid address among the pods.
   */
  compile(input: { node: string; pods: ClusterPod[]; nodeAddresses: string[] }): FilterPolicy[] {
    if (this.policies.size === 0) return [];
    const policies = [...this.policies.values()];
    const namespaces = namespacesFor({ known: [...this.namespaces.values()], pods: input.pods, policies });
    return compileFilters({ model: { namespaces, pods: input.pods, policies }, node: input.node, nodeAddresses: input.nodeAddresses });
  }
}
