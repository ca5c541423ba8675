/**
 * @cnikit/calico — a Calico-like backend: Calico's projectcalico.org/v3 resources unchanged,
 * block IPAM in the Datastore, BGP between agents (bgp-utils-free over ctx.peers), IPIP / VXLAN
 * (Always or CrossSubnet), routed /32 pods with proxy ARP, natOutgoing and NetworkPolicy.
 * See DESIGN.md.
 */
import { defineBackend } from "@cnikit/core";
import type { Encapsulation, NetworkSummary, TopologyNeeds } from "@cnikit/core";
import { CalicoAgent, HOLD_TIME, RESTART_TIME } from "./agent.ts";
import { parseCalicoConfig } from "./config.ts";
import type { CalicoConfig } from "./config.ts";
import { usedEncaps } from "./plan.ts";

/** Virtual time within which a join or a clean leave reaches every node (store watch + BGP session up and one UPDATE, with connect-retry margin). */
export const CALICO_CONVERGENCE_MS = 30_000;

/**
 * What a Calico config promises: pods inside the enabled IPv4 pools, masquerade when a pool has
 * natOutgoing, the encapsulations the pools use (plus native routes for CrossSubnet), joins within
 * 30 s, a crashed node withdrawn after the hold time (plus graceful-restart time and margin).
 * Pure.
 */
export function summarizeCalico(config: CalicoConfig): NetworkSummary {
  const e = usedEncaps(config);
  const always = config.pools.every((p) => p.disabled || p.ipipMode === "Always" || p.vxlanMode === "Always");
  const encapsulations: Encapsulation[] = [...(e.ipip ? (["ipip"] as const) : []), ...(e.vxlan ? (["vxlan"] as const) : []), ...(always ? [] : (["none"] as const))];
  return {
    podRanges: config.pools.filter((p) => p.family === 4 && !p.disabled).map((p) => p.cidr),
    natOutgoing: config.pools.some((p) => p.natOutgoing && !p.disabled),
    encapsulations,
    convergenceMs: CALICO_CONVERGENCE_MS,
    crashDetectionMs: (HOLD_TIME + RESTART_TIME) * 1000 + CALICO_CONVERGENCE_MS,
  };
}

/**
 * What a Calico config needs of the underlay: without any encapsulation the pods' routes are only
 * known to BGP speakers, so the underlay router between subnets cannot forward them: such configs
 * need one L2 subnet. IPIP or VXLAN (Always or CrossSubnet) cross routers. Pure.
 */
export function calicoTopologyNeeds(config: CalicoConfig): TopologyNeeds {
  const e = usedEncaps(config);
  return { singleSubnet: !e.ipip && !e.vxlan };
}

/** The Calico backend: Calico resources in, one `CalicoAgent` per node. Nothing registers on import. */
export const calico = defineBackend<CalicoConfig>({
  name: "calico",
  capabilities: { networkPolicy: true, encryption: false, encapsulations: ["none", "ipip", "vxlan"], families: [4] },
  parseConfig: parseCalicoConfig,
  summarize: summarizeCalico,
  topologyNeeds: calicoTopologyNeeds,
  createAgent: (ctx) => new CalicoAgent(ctx),
});

// The public surface: the backend, its config format and summary, the store layout other tools
// read (Calico's etcd key prefixes and the route-reflector annotation: an interop contract), the
// device names and timers DESIGN.md documents, and the fixtures. The agent, the planner, block
// IPAM and the selector engine are not exported (see ./internal.ts for cnikit's own tests).
export { RR_CLUSTER_ID_ANNOTATION, NODE_PREFIX, ENDPOINT_PREFIX, POLICY_PREFIX, NAMESPACE_PREFIX, HOLD_TIME, RESTART_TIME, RESYNC_MS } from "./agent.ts";
export { IPIP_DEVICE, VXLAN_DEVICE, VXLAN_VNI, VXLAN_PORT } from "./plan.ts";
export { parseCalicoConfig, CALICO_DEFAULTS, EncapMode } from "./config.ts";
export type { CalicoConfig, IpPool, BgpConfiguration, BgpPeer, NodeBgp, IpamConfig } from "./config.ts";
export { BLOCK_PREFIX, HOST_PREFIX, HANDLE_PREFIX, POOL_PREFIX } from "./ipam.ts";
export { calicoFixtures, conformance, ipPool, withRouteReflectors } from "./fixtures.ts";
