/**
 * @cnikit/azure — an Azure-CNI-like backend: pods take first-class VNet addresses with no overlay
 * and no NAT inside the network, reserved per node ahead of time by a cluster-level controller (the
 * VNet allocator) that programs the fabric through the contract's `FabricPort`:
 *  - classic (Node Subnet): a node's join reserves 1 + maxPods addresses of its own subnet as
 *    fabric secondary addresses, or is refused with AKS's "Pre-allocated IPs N exceeds IPs
 *    available M" and the sizing formula;
 *  - dynamic (DynamicIndividual): a NodeNetworkConfig per node in the store, addresses of a
 *    separate pod subnet in batches, sized from demand in one step, each routed to its node;
 *  - static-block (StaticBlock): /28 blocks of the pod subnet per node;
 *  - overlay: a /24 of podCidr per node, routed by the fabric, SNAT to the node outside it.
 * Pods are routed (a host route and proxy ARP per pod, no bridge, no encapsulation);
 * NetworkPolicy through @cnikit/netpol. Config: an AKS-like network profile. See DESIGN.md.
 */
import { ConfigError, defineBackend } from "@cnikit/core";
import type { ClusterTopology, NetworkSummary } from "@cnikit/core";
import { createAzureAgent } from "./agent.ts";
import { AZURE, parseAzureConfig } from "./config.ts";
import type { AzureConfig } from "./config.ts";
import { createAzureController } from "./controller.ts";
import { podRangesOf } from "./plan.ts";

/**
 * A joining node's pods are reachable as soon as they are attached: the controller reserved and
 * routed the node's addresses before its agent finished starting (classic: proxy ARP on the
 * subnet; otherwise fabric routes written before the status). 5 s covers a dynamic pool's first
 * request round trip.
 */
export const CONVERGENCE_MS = 5_000;
/**
 * Nothing on the other nodes names a crashed node (its routes live in the fabric, which keeps them
 * as Azure's does while the Node object exists): the bound only limits how long the suite waits.
 */
export const CRASH_DETECTION_MS = 10_000;

/**
 * What a config promises on `cluster`: pod addresses from the node subnets (classic), the pod
 * subnet (dynamic, static-block) or podCidr (overlay); masquerade to outside the VNet; no
 * encapsulation. Classic without `vnetSubnet` depends on the topology: without `cluster` it
 * throws `ConfigError` naming `cluster`.
 */
export function summarize(config: AzureConfig, cluster?: ClusterTopology): NetworkSummary {
  if (config.mode === "classic" && config.vnetSubnet === undefined && cluster === undefined) {
    throw new ConfigError({ component: AZURE, field: "cluster", rule: "classic mode takes pod addresses from the node subnets: pass the cluster topology (or set vnetSubnet)" });
  }
  return {
    podRanges: podRangesOf(
      config,
      (cluster?.subnets ?? []).map((s) => s.cidr),
    ),
    natOutgoing: config.natOutgoing,
    encapsulations: ["none"],
    convergenceMs: CONVERGENCE_MS,
    crashDetectionMs: CRASH_DETECTION_MS,
  };
}

/** The Azure-like backend. Nothing is registered on import. */
export const azure = defineBackend<AzureConfig>({
  name: AZURE,
  capabilities: { networkPolicy: true, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: parseAzureConfig,
  summarize,
  topologyNeeds: () => ({ singleSubnet: false }),
  createAgent: createAzureAgent,
  createController: createAzureController,
});

export { AZURE, parseAzureConfig } from "./config.ts";
export type { AzureConfig, AzureMode, PodIpAllocationMode, ScalerSettings } from "./config.ts";
export { AzureAgent, createAzureAgent } from "./agent.ts";
export { createAzureController } from "./controller.ts";
export * from "./records.ts";
export * from "./sizing.ts";
export { azureFixtures, conformance } from "./fixtures.ts";
