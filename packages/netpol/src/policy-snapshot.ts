/**
 * What a node's plan needs to enforce NetworkPolicy, as plain data: the policies in force, the
 * namespaces, and the pods of the other nodes (a `PolicySnapshot`), and the pure compilation of one
 * node's filters from it plus the node's own pods (`compileNodeFilters`).
 *
 * The agent's policy component (agent-policy.ts) keeps a snapshot up to date from the store; the
 * backend's pure `plan()` takes the snapshot and calls `compileNodeFilters`, so the plan owns all
 * desired state, filters included, and the same snapshot always gives the same filters.
 */
import { ConfigError } from "@cnikit/core";
import type { FilterPolicy } from "@cnikit/core";
import { compileFilters } from "./compile.ts";
import { NAMESPACE_NAME_LABEL } from "./parse.ts";
import type { ClusterNamespace, ClusterPod, NetworkPolicy } from "./types.ts";

/**
 * The policy-relevant cluster state one node sees. Immutable (arrays frozen): a new object after
 * every change, so a plan may keep it and compare by identity.
 */
export interface PolicySnapshot {
  /** The node this snapshot is for (its own pods are not in `remotePods`). */
  readonly node: string;
  /** The NetworkPolicies in force, sorted by namespace/name. */
  readonly policies: readonly NetworkPolicy[];
  /** The namespaces in the store (each with its `kubernetes.io/metadata.name` label), sorted by name. */
  readonly namespaces: readonly ClusterNamespace[];
  /** The pods of every other node (each with `node` and `key` set), sorted by store key. */
  readonly remotePods: readonly ClusterPod[];
}

/** An empty snapshot for `node` (nothing known yet: no policy, nothing filtered). Pure. */
export function emptyPolicySnapshot(node: string): PolicySnapshot {
  return Object.freeze({ node, policies: Object.freeze([]), namespaces: Object.freeze([]), remotePods: Object.freeze([]) });
}

/**
 * Every namespace a compilation needs: those of `known`, plus one with only its name label for each
 * namespace that a pod or policy names but the store does not hold. Sorted by name. Pure.
 */
export function namespacesFor(input: { known: readonly ClusterNamespace[]; pods: readonly ClusterPod[]; policies: readonly NetworkPolicy[] }): ClusterNamespace[] {
  const byName = new Map(input.known.map((ns) => [ns.name, ns]));
  const names = new Set([...byName.keys(), ...input.pods.map((p) => p.namespace), ...input.policies.map((p) => p.namespace)]);
  return [...names].sort().map((n) => byName.get(n) ?? { name: n, labels: { [NAMESPACE_NAME_LABEL]: n } });
}

/** Input of `compileNodeFilters`. */
export interface NodeFiltersInput {
  /** The cluster state (the component's `snapshot()`). */
  snapshot: PolicySnapshot;
  /**
   * The node's own pods as the agent holds them now (the store's copy may lag behind a publish).
   * Their `node` is taken to be `snapshot.node` whatever it says.
   */
  local: readonly ClusterPod[];
  /** The node's own addresses: always allowed to and from its pods (kubelet probes). */
  nodeAddresses: readonly string[];
}

/**
 * The FilterPolicies of the node's local pods under the snapshot's policies: empty when no policy
 * is in force. Pure: the same input always gives the same output.
 * Throws `ConfigError` only for an invalid pod address.
 */
export function compileNodeFilters(input: NodeFiltersInput): FilterPolicy[] {
  const { snapshot } = input;
  if (snapshot.policies.length === 0) return [];
  const local = input.local.map((p) => ({ ...p, node: snapshot.node }));
  const pods = [...snapshot.remotePods.filter((p) => p.node !== snapshot.node), ...local];
  const policies = [...snapshot.policies];
  const namespaces = namespacesFor({ known: snapshot.namespaces, pods, policies });
  return compileFilters({ model: { namespaces, pods, policies }, node: snapshot.node, nodeAddresses: [...input.nodeAddresses] });
}

/** NetworkPolicy as a plan input takes it (the shape of core's `PlanPolicy<R>`): filters for the plan's own pod records. */
export interface SnapshotPlanPolicy<R> {
  /** The snapshot it compiles against. */
  readonly snapshot: PolicySnapshot;
  /**
   * `compileNodeFilters` over the snapshot with `pods` (mapped by `podOf`) as the local pods. Pure.
   * Throws `ConfigError` when `node` is not the snapshot's node, or for an invalid pod address.
   */
  filtersFor(input: { node: string; pods: readonly R[]; nodeAddresses: readonly string[] }): FilterPolicy[];
}

/**
 * The plan-input policy over `snapshot`: the backend's pure plan calls `filtersFor` with its own
 * pod records, which `podOf` turns into `ClusterPod`s (e.g. with `directoryPodOf`). Pure.
 */
export function planPolicy<R>(snapshot: PolicySnapshot, podOf: (record: R) => ClusterPod): SnapshotPlanPolicy<R> {
  return {
    snapshot,
    filtersFor(input) {
      if (input.node !== snapshot.node) {
        throw new ConfigError({ component: "netpol", field: "node", rule: `must be the node the policy snapshot is for (${snapshot.node})`, value: input.node });
      }
      return compileNodeFilters({ snapshot, local: input.pods.map(podOf), nodeAddresses: input.nodeAddresses });
    },
  };
}
