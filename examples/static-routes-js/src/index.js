// @ts-check
/**
 * static-routes: every node takes a subnet of `network` under a store lease, pods sit on a bridge,
 * and every node routes to the others' subnets via their underlay addresses. No overlay, so every
 * node must share one L2 subnet. A cnikit backend on the agent kit, as small as one gets.
 */
import { defineBackend } from "@cnikit/core";
import { RESYNC_MS, StaticRoutesAgent, TTL_SECONDS } from "./agent.js";
import { NAME, parseConfig } from "./config.js";

/** @type {import("@cnikit/core").Backend<import("./config.js").StaticRoutesConfig>} */
export const staticRoutes = defineBackend({
  name: NAME,
  capabilities: { networkPolicy: true, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig,
  summarize: (config) => ({
    podRanges: [config.network],
    natOutgoing: true,
    encapsulations: ["none"],
    convergenceMs: 2_000,
    crashDetectionMs: TTL_SECONDS * 1000 + RESYNC_MS,
  }),
  topologyNeeds: () => ({ singleSubnet: true }),
  createAgent: (ctx) => new StaticRoutesAgent(ctx),
});

export { parseConfig } from "./config.js";
export { conformance } from "./fixtures.js";
