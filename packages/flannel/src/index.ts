/**
 * @cnikit/flannel — a flannel-like backend: flannel's net-conf.json, one subnet lease per node in
 * the Datastore (flannel's etcd key layout, CAS + 24 h TTL), vxlan (`flannel.<VNI>`, neighbour +
 * FDB + onlink route per peer, optional DirectRouting) or host-gw routes, and pods on a `cni0`
 * bridge with host-local-like IPAM. See DESIGN.md for the invariants and where it departs from
 * flannel.
 */
import { defineBackend } from "@cnikit/core";
import type { Encapsulation, NetworkSummary, TopologyNeeds } from "@cnikit/core";
import { FlannelAgent, RESYNC_MS } from "./agent.ts";
import { familyRanges, parseFlannelConfig } from "./config.ts";
import type { FlannelConfig } from "./config.ts";
import { LEASE_TTL_SECONDS } from "./leases.ts";

/**
 * Virtual time within which a join or a clean leave reaches every node: watch delivery is
 * immediate; the bound covers lease acquisition back-off under contention and one resync.
 */
export const FLANNEL_CONVERGENCE_MS = 30_000;

/**
 * What a flannel config promises: pods inside Network / IPv6Network, masquerade as IPMasq says,
 * vxlan (plus direct routes with DirectRouting) or none (host-gw), joins within 30 s, crashes
 * detected when the 24 h lease expires (plus one resync). Pure.
 */
export function summarizeFlannel(config: FlannelConfig): NetworkSummary {
  const encapsulations: Encapsulation[] = config.backend.type === "host-gw" ? ["none"] : config.backend.directRouting ? ["vxlan", "none"] : ["vxlan"];
  return {
    podRanges: familyRanges(config).map((r) => r.network),
    natOutgoing: config.ipMasq,
    encapsulations,
    convergenceMs: FLANNEL_CONVERGENCE_MS,
    crashDetectionMs: LEASE_TTL_SECONDS * 1000 + RESYNC_MS,
  };
}

/**
 * What a flannel config needs of the underlay: host-gw needs one L2 subnet (its routes' next hops
 * are the peers' underlay addresses); vxlan, with or without DirectRouting, crosses routers. Pure.
 */
export function flannelTopologyNeeds(config: FlannelConfig): TopologyNeeds {
  return { singleSubnet: config.backend.type === "host-gw" };
}

/**
 * The flannel backend: parses net-conf.json, summarizes what it promises, and creates one
 * `FlannelAgent` per node. Nothing is registered on import.
 */
export const flannel = defineBackend<FlannelConfig>({
  name: "flannel",
  capabilities: { networkPolicy: false, encryption: false, encapsulations: ["vxlan", "none"], families: [4, 6] },
  parseConfig: parseFlannelConfig,
  summarize: summarizeFlannel,
  topologyNeeds: flannelTopologyNeeds,
  createAgent: (ctx) => new FlannelAgent(ctx),
});

// The public surface: the backend, its config format and summary, the store layout other tools
// read (flannel's etcd lease keys and TTL: an interop contract), documented constants, and the
// fixtures. Agent, plan and lease internals are not exported (see ./internal.ts for cnikit's own
// tests and benches).
export { RESYNC_MS, createFlannelAgent } from "./agent.ts"; // createFlannelAgent(ctx, { components, policy }): the composition point (Canal)
export type { FlannelAgentComponent, FlannelAgentOptions, FlannelPod } from "./components.ts";
export { parseFlannelConfig, FLANNEL_DEFAULTS, UNSUPPORTED_BACKENDS, NET_CONF_KEYS, MIN_POD_MTU, MAX_MTU, MAX_VNI } from "./config.ts";
export type { FlannelConfig, FamilyRange, FlannelBackendConfig, VxlanBackendConfig, HostGwBackendConfig } from "./config.ts";
export { SUBNET_PREFIX, LEASE_TTL_SECONDS } from "./leases.ts";
export type { LeaseAttrs, VxlanBackendData } from "./leases.ts";
export { flannelFixtures, conformance } from "./fixtures.ts";
