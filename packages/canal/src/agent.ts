/**
 * Canal's agent: flannel's agent (`createFlannelAgent`, its composition point) with
 * @cnikit/netpol's `PolicyComponent` composed into it. Nothing of either is copied here:
 *
 *  - flannel owns the network: the subnet lease, the VXLAN / host-gw dataplane, the pods' IPAM,
 *    the CNI verbs, STATUS and GC; it tells the component the node's store lease and every pod
 *    added (ADD, or restored at start) and removed (DEL, GC), starts it once the lease is held and
 *    stops it with the agent;
 *  - the policy component publishes the node's pods under Canal's own prefix
 *    (`/cnikit/canal/pods/<node>/<cid>/<if>`) attached to flannel's lease, so a crashed node's pods
 *    leave the directory with its subnet, and mirrors policies, namespaces and the other nodes' pods
 *    into a snapshot; a change re-plans;
 *  - flannel's pure plan asks the policy part of its input for the filters of the node's pods on
 *    every plan (`planPolicy` over the snapshot): the plan owns the filters.
 */
import type { AgentContext, NodeAgent } from "@cnikit/core";
import { createFlannelAgent } from "@cnikit/flannel";
import type { FlannelConfig, FlannelPod } from "@cnikit/flannel";
import { PolicyComponent, directoryPodOf, planPolicy, podDirectoryPrefix, publishedPodDirectory } from "@cnikit/netpol";

/** The backend's name: log prefix, and the folder of its pod directory. */
export const CANAL = "canal";

/**
 * Where Canal publishes every node's pods for the other nodes' policy (`<prefix><node>/<cid>/<if>`,
 * netpol's published record), `/cnikit/canal/pods/`: its own, so Canal and another backend sharing
 * a store never select each other's pods.
 */
export const CANAL_POD_PREFIX = podDirectoryPrefix(CANAL);

/** A node's agent: flannel's, with the policy component composed in. Does no I/O until `start()`. */
export function createCanalAgent(ctx: AgentContext<FlannelConfig>): NodeAgent {
  const node = ctx.node.name;
  const policy = new PolicyComponent({
    store: ctx.store,
    clock: ctx.clock,
    log: ctx.log,
    node,
    directory: publishedPodDirectory(CANAL_POD_PREFIX),
    component: CANAL,
  });
  return createFlannelAgent(ctx, {
    components: [policy],
    policy: () => planPolicy(policy.snapshot(), (pod: FlannelPod) => directoryPodOf(node, pod)),
  });
}
