/**
 * @cnikit/reference — the reference backend: every node claims a subnet of `network` in the
 * cluster store (CAS + lease), and every other node routes to it with a static route via the
 * node's underlay address. No overlay, no peers. NetworkPolicy is compiled by @cnikit/netpol from
 * the policies and namespaces at the contract's `KUBE_PREFIX` and the pods every agent publishes.
 * It is the conformance suite's yardstick: small enough to be obviously right.
 */
import { defineBackend } from "@cnikit/core";
import type { NetworkSummary } from "@cnikit/core";
import { ReferenceAgent, LEASE_TTL_SECONDS, RESYNC_MS } from "./agent.ts";
import { parseReferenceConfig } from "./config.ts";
import type { ReferenceConfig } from "./config.ts";

/** Virtual time within which a join or a clean leave reaches every node (watch delivery, with margin). */
export const REFERENCE_CONVERGENCE_MS = 2_000;

/**
 * What a reference config promises: pods inside `network`, NAT as `natOutgoing` says, no
 * encapsulation, joins and clean leaves within 2 s, crashes detected within lease TTL + one resync.
 * Pure.
 */
export function summarizeReference(config: ReferenceConfig): NetworkSummary {
  return {
    podRanges: [config.network],
    natOutgoing: config.natOutgoing,
    encapsulations: ["none"],
    convergenceMs: REFERENCE_CONVERGENCE_MS,
    crashDetectionMs: LEASE_TTL_SECONDS * 1000 + RESYNC_MS,
    requiresSingleSubnet: true,
  };
}

export const reference = defineBackend<ReferenceConfig>({
  name: "reference",
  capabilities: { networkPolicy: true, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: parseReferenceConfig,
  summarize: summarizeReference,
  createAgent: (ctx) => new ReferenceAgent(ctx),
});

export { ReferenceAgent, SUBNET_PREFIX, LEASE_TTL_SECONDS, KEEPALIVE_MS, RESYNC_MS, subnetKey } from "./agent.ts";
export { parseReferenceConfig, REFERENCE_DEFAULTS } from "./config.ts";
export { POD_PREFIX, PolicyView, containerPorts, publishedPodKey } from "./policy.ts";
export type { PublishedPod } from "./policy.ts";
export type { ReferenceConfig } from "./config.ts";
export { planDataplane, planWithDiagnostics, gatewayOf, macFor, hostIfName, BRIDGE, MASQ_RULE_ID } from "./plan.ts";
export type { PlanInput, PeerSubnet, PodRecord } from "./plan.ts";
export { anchorReferenceConfigs, conformance, invalidReferenceConfigs } from "./invalid-configs.ts";
export type { InvalidReferenceConfig } from "./invalid-configs.ts";
