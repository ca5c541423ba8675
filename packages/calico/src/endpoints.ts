/**
 * Calico's workload endpoints: one record per local pod at
 * `/calico/workloadendpoints/<node>/<containerId>/<ifName>` (namespace, name, labels, address,
 * container ports, host interface), written by the pod's agent on ADD and deleted on DEL. They are
 * the cluster's pod directory for NetworkPolicy: every agent's policy component reads them
 * (`externalPodDirectory`), since their JSON is netpol's `DirectoryPod`.
 */
import { parseAddress, podKey } from "@cnikit/core";
import type { PodRef } from "@cnikit/core";
import { decodeDirectoryPod, directoryPodOf } from "@cnikit/netpol";
import type { DirectoryPod } from "@cnikit/netpol";
import { hostIfName } from "./plan.ts";
import type { PodRecord } from "./plan.ts";

export const ENDPOINT_PREFIX = "/calico/workloadendpoints/";

/** The store key of a pod's workload endpoint. */
export function endpointKey(node: string, ref: PodRef): string {
  return `${ENDPOINT_PREFIX}${node}/${podKey(ref)}`;
}

/**
 * A workload endpoint as the policy component's pod directory holds it (the endpoint JSON is a
 * `DirectoryPod`). Its addresses are checked here, so one bad record is ignored (with a warning
 * naming its key) instead of failing the compilation of every filter.
 */
export function decodeEndpoint(key: string, value: string): DirectoryPod {
  const pod = decodeDirectoryPod(key, value);
  pod.ips.forEach((ip, i) => parseAddress(ip, { component: "calico", field: `${key}: ips[${i}]` }));
  return pod;
}

/** A local pod as its workload endpoint (and the policy compilation) sees it. Pure. */
export function endpointOf(node: string, pod: PodRecord): DirectoryPod {
  return directoryPodOf(node, { ...pod, ips: [pod.address], hostIf: hostIfName(pod) });
}
