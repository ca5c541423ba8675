/**
 * The one plan-input shape: what every backend's pure `plan(input)` receives. The plan owns all of
 * the node's desired state, filters included: it is given what it needs to compute them (a policy
 * snapshot closed over by `policy.filtersFor`), never filters compiled elsewhere.
 */
import type { NodeInfo } from "../backend.ts";
import type { FilterPolicy } from "../dataplane.ts";

/** NetworkPolicy as the plan sees it: a snapshot of the cluster's policies, namespaces and pods. */
export interface PlanPolicy<R> {
  /**
   * The FilterPolicies of this node's pods (`pods`, as the plan has them) under the policies of
   * the snapshot; `nodeAddresses` (the node's own addresses) are always allowed to and from its
   * pods. Pure over the snapshot. Empty when no policy is in force.
   */
  filtersFor(input: { node: string; pods: readonly R[]; nodeAddresses: readonly string[] }): FilterPolicy[];
}

/**
 * Input of a backend's `plan`: C = the backend's config, P = its view of one peer (a lease, a
 * learned route, a mesh member), R = its record of one local pod.
 */
export interface PlanInput<C, P, R> {
  config: C;
  /** This node: name, underlay interfaces, labels, pod CIDRs. */
  node: NodeInfo;
  /** This node's pod attachments. */
  pods: readonly R[];
  /** The other nodes as this backend sees them. */
  peers: readonly P[];
  /** NetworkPolicy inputs; absent for a backend (or a moment) without policy. */
  policy?: PlanPolicy<R>;
}
