/**
 * The composition point of flannel's agent: extra components that run beside flannel's networking
 * in the same agent, without copying it. Canal is flannel plus @cnikit/netpol's `PolicyComponent`:
 *
 *   const policy = new PolicyComponent({ ...ctx, node: ctx.node.name, directory, component: "canal" });
 *   createFlannelAgent(ctx, {
 *     components: [policy],
 *     policy: () => planPolicy(policy.snapshot(), (pod) => directoryPodOf(ctx.node.name, pod)),
 *   });
 *
 * A component is started once the node holds its subnet lease and its pods are restored, before
 * the agent reports ready; it hears every pod added (ADD, or restored at start) and removed (DEL,
 * GC), every change of the store lease the node's subnet lives under, and may ask for a re-plan.
 * `policy` is the NetworkPolicy part of the plan input: the pure plan asks it for the filters of
 * the node's pods on every plan.
 */
import type { LeaseId, PlanPolicy, PodAttachment, PodPort, PodRef } from "@cnikit/core";
import { hostIfName } from "./plan.ts";
import type { PodRecord } from "./plan.ts";

/**
 * One of the node's pods as a component sees it (the shape of netpol's `LocalPolicyPod`): the ADD's
 * identity, metadata and container ports, its addresses (`ips`, one per enabled family) and the
 * host side of its veth (`hostIf`).
 */
export type FlannelPod = PodRef & Pick<PodAttachment, "namespace" | "podName" | "labels"> & { ports?: readonly PodPort[]; ips: readonly string[]; hostIf: string };

/** A component composed into flannel's agent (netpol's `PolicyComponent` is one as it is). */
export interface FlannelAgentComponent {
  /**
   * Starts it; `signal` aborts when the agent stops. Runs during the agent's `start()`, after the
   * lease is held and `setLease` and `podAdded` told it the node's lease and restored pods. A
   * rejection fails the agent's `start()`.
   */
  start(signal: AbortSignal): Promise<void>;
  /** Stops it for good: on every stop of the agent, before a released lease is revoked. Must not throw. */
  stop(): Promise<void>;
  /** The store lease the node's subnet key lives under (at start, and after it was re-created). */
  setLease?(lease: LeaseId | undefined): void;
  /** The component's state changed: the agent re-plans (coalesced). Returns the unsubscribe. */
  onChange?(listener: () => void): () => void;
  /** A pod was attached (CNI ADD) or restored at start. Must not block or throw. */
  podAdded?(pod: FlannelPod): void;
  /** A pod was detached (CNI DEL, GC). Must not block or throw. */
  podRemoved?(ref: PodRef): void;
}

/** What `createFlannelAgent` composes into the agent. */
export interface FlannelAgentOptions {
  /** Extra components, started in order after the lease is held. */
  components?: readonly FlannelAgentComponent[];
  /** NetworkPolicy in the plan input: the filters of the node's pods (none when absent or undefined). */
  policy?: () => PlanPolicy<FlannelPod> | undefined;
}

/** A pod record as components see it. */
export function flannelPodOf(record: PodRecord): FlannelPod {
  const pod: FlannelPod = { containerId: record.containerId, ifName: record.ifName, ips: [...record.addresses], hostIf: hostIfName(record) };
  if (record.namespace !== undefined) pod.namespace = record.namespace;
  if (record.podName !== undefined) pod.podName = record.podName;
  if (record.labels !== undefined) pod.labels = { ...record.labels };
  if (record.ports !== undefined) pod.ports = record.ports.map((p) => ({ ...p }));
  return pod;
}

/** The plan's policy over pod records, from a component's policy over `FlannelPod`s. */
export function recordPolicy(policy: PlanPolicy<FlannelPod>): PlanPolicy<PodRecord> {
  return { filtersFor: (input) => policy.filtersFor({ ...input, pods: input.pods.map(flannelPodOf) }) };
}
