/**
 * @cnikit/reference — the reference backend: every node claims a subnet of `network` in the
 * cluster store (CAS + lease), and every other node routes to it with a static route via the
 * node's underlay address. No overlay, no peers. NetworkPolicy is compiled by @cnikit/netpol from
 * the policies and namespaces at the contract's `KUBE_PREFIX` and the pods every agent publishes.
 * It is the conformance suite's yardstick: small enough to be obviously right.
 */
import { defineBackend } from "@cnikit/core";
import type { NetworkSummary, TopologyNeeds } from "@cnikit/core";
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
  };
}

/**
 * What every reference config needs of the underlay: one L2 subnet (the static routes' next hops
 * are the peers' underlay addresses; a peer on another subnet gets no route). Pure.
 */
export function referenceTopologyNeeds(_config: ReferenceConfig): TopologyNeeds {
  return { singleSubnet: true };
}

export const reference = defineBackend<ReferenceConfig>({
  name: "reference",
  capabilities: { networkPolicy: true, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: parseReferenceConfig,
  summarize: summarizeReference,
  topologyNeeds: referenceTopologyNeeds,
  createAgent: (ctx) => new ReferenceAgent(ctx),
});

// The public surface: the backend, its config format and summary, the store layout other tools
// read (the node-subnet lease keys and their TTL), documented timers, and the fixtures. The agent,
// the planner and the policy view are not exported.
export { SUBNET_PREFIX, LEASE_TTL_SECONDS, KEEPALIVE_MS, RESYNC_MS } from "./agent.ts";
export { parseReferenceConfig, REFERENCE_DEFAULTS } from "./config.ts";
export type { ReferenceConfig } from "./config.ts";
export { referenceFixtures, conformance } from "./fixtures.ts";
