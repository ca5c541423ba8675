/**
 * @cnikit/flannel — a flannel-like backend: flannel's net-conf.json, one subnet lease per node in
 * the Datastore (flannel's etcd key layout, CAS + 24 h TTL), vxlan (`flannel.<VNI>`, neighbour +
 * FDB + onlink route per peer, optional DirectRouting) or host-gw routes, and pods on a `cni0`
 * bridge with host-local-like IPAM. See DESIGN.md for the invariants and where it departs from
 * flannel.
 */
import { defineBackend } from "@cnikit/core";
import type { Encapsulation, NetworkSummary } from "@cnikit/core";
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
 * detected when the 24 h lease expires (plus one resync), host-gw on one L2 subnet. Pure.
 */
export function summarizeFlannel(config: FlannelConfig): NetworkSummary {
  const encapsulations: Encapsulation[] =
    config.backend.type === "host-gw" ? ["none"] : config.backend.directRouting ? ["vxlan", "none"] : ["vxlan"];
  return {
    podRanges: familyRanges(config).map((r) => r.network),
    natOutgoing: config.ipMasq,
    encapsulations,
    convergenceMs: FLANNEL_CONVERGENCE_MS,
    crashDetectionMs: LEASE_TTL_SECONDS * 1000 + RESYNC_MS,
    requiresSingleSubnet: config.backend.type === "host-gw",
  };
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
  createAgent: (ctx) => new FlannelAgent(ctx),
});

/** A config of the fixture tables: a label and net-conf.json as a user writes it. */
export interface FlannelFixtureConfig {
  label: string;
  config: Record<string, unknown>;
}

/** An invalid config and the field path its error must name. */
export interface FlannelInvalidFixture extends FlannelFixtureConfig {
  field: string;
}

/**
 * The configs the conformance suite runs (vxlan, vxlan with DirectRouting, host-gw) and the table
 * of invalid configs: one per validation rule, each with the field its ConfigError names. Entries
 * whose field starts with `node.` parse, and are refused by a node's `start()` on an IPv4-only
 * underlay.
 */
export const flannelFixtures: { configs: FlannelFixtureConfig[]; invalidConfigs: FlannelInvalidFixture[]; anchorConfigs: FlannelFixtureConfig[] } = {
  configs: [
    { label: "vxlan", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } } },
    { label: "vxlan-directrouting", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: true } } },
    { label: "host-gw", config: { Network: "10.244.0.0/16", Backend: { Type: "host-gw" } } },
  ],
  invalidConfigs: [
    // flannel's CheckNetworkConfig, in its order
    { label: "Network missing", config: { Backend: { Type: "vxlan" } }, field: "Network" },
    { label: "Network 0.0.0.0/0 (Go's empty IP4Net)", config: { Network: "0.0.0.0/0" }, field: "Network" },
    { label: "SubnetLen 31", config: { Network: "10.244.0.0/16", SubnetLen: 31 }, field: "SubnetLen" },
    { label: "SubnetLen leaves fewer than four subnets", config: { Network: "10.244.0.0/16", SubnetLen: 17 }, field: "SubnetLen" },
    { label: "Network smaller than /28 without SubnetLen", config: { Network: "10.244.0.0/29" }, field: "Network" },
    { label: "SubnetMin outside Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.245.1.0" }, field: "SubnetMin" },
    { label: "SubnetMax outside Network", config: { Network: "10.244.0.0/16", SubnetMax: "10.245.255.0" }, field: "SubnetMax" },
    { label: "SubnetMin not on a SubnetLen boundary", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.1.128" }, field: "SubnetMin" },
    { label: "SubnetMax not on a SubnetLen boundary", config: { Network: "10.244.0.0/16", SubnetMax: "10.244.200.7" }, field: "SubnetMax" },
    { label: "IPv6Network missing", config: { Network: "10.244.0.0/16", EnableIPv6: true }, field: "IPv6Network" },
    { label: "IPv6SubnetLen 127", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetLen: 127 }, field: "IPv6SubnetLen" },
    { label: "IPv6SubnetLen leaves fewer than four subnets", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetLen: 49 }, field: "IPv6SubnetLen" },
    { label: "IPv6Network smaller than /124 without IPv6SubnetLen", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/125" }, field: "IPv6Network" },
    { label: "IPv6SubnetMin outside IPv6Network", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd01::" }, field: "IPv6SubnetMin" },
    { label: "IPv6SubnetMax outside IPv6Network", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd01::" }, field: "IPv6SubnetMax" },
    { label: "IPv6SubnetMin not on a boundary", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd00:0:0:1::1" }, field: "IPv6SubnetMin" },
    { label: "IPv6SubnetMax not on a boundary", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd00:0:0:ff::1" }, field: "IPv6SubnetMax" },
    // what flannel lets through
    { label: "typo SubnetLength (unknown key)", config: { Network: "10.244.0.0/16", SubnetLength: 26 }, field: "SubnetLength" },
    { label: "unknown key inside Backend", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Vni: 1, DirectRoute: true } }, field: "Backend.DirectRoute" },
    { label: "SubnetMin above SubnetMax", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.200.0", SubnetMax: "10.244.100.0" }, field: "SubnetMin" },
    { label: "IPv6SubnetMin above IPv6SubnetMax", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd00:0:0:9::", IPv6SubnetMax: "fd00:0:0:2::" }, field: "IPv6SubnetMin" },
    { label: "same key twice in two spellings", config: { Network: "10.244.0.0/16", network: "10.245.0.0/16" }, field: "Network" },
    { label: "neither family enabled", config: { EnableIPv4: false, EnableIPv6: false }, field: "EnableIPv4" },
    { label: "Network is IPv6", config: { Network: "fd00::/48" }, field: "Network" },
    { label: "Network not a CIDR", config: { Network: "10.244.0.0" }, field: "Network" },
    { label: "SubnetLen not a number", config: { Network: "10.244.0.0/16", SubnetLen: "24" }, field: "SubnetLen" },
    { label: "SubnetMin not an address", config: { Network: "10.244.0.0/16", SubnetMin: "ten" }, field: "SubnetMin" },
    { label: "EnableIPv6 not a boolean", config: { Network: "10.244.0.0/16", EnableIPv6: "yes" }, field: "EnableIPv6" },
    { label: "Networks (multi-CIDR) not supported", config: { Networks: ["10.244.0.0/16"] }, field: "Networks" },
    // Backend
    { label: "Backend not an object", config: { Network: "10.244.0.0/16", Backend: "vxlan" }, field: "Backend" },
    { label: "Backend without Type", config: { Network: "10.244.0.0/16", Backend: {} }, field: "Backend.Type" },
    { label: "unknown backend type", config: { Network: "10.244.0.0/16", Backend: { Type: "geneve" } }, field: "Backend.Type" },
    { label: "udp not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "udp" } }, field: "Backend.Type" },
    { label: "ipsec not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "ipsec", PSK: "x".repeat(96) } }, field: "Backend.Type" },
    { label: "wireguard not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "wireguard" } }, field: "Backend.Type" },
    { label: "alloc not supported", config: { Network: "10.244.0.0/16", Backend: { Type: "alloc" } }, field: "Backend.Type" },
    { label: "VNI above 24 bits", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 16777216 } }, field: "Backend.VNI" },
    { label: "Port above 65535", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 70000 } }, field: "Backend.Port" },
    { label: "MTU leaves pods below 576", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 600 } }, field: "Backend.MTU" },
    { label: "DirectRouting not a boolean", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: "true" } }, field: "Backend.DirectRouting" },
    { label: "host-gw takes no VNI", config: { Network: "10.244.0.0/16", Backend: { Type: "host-gw", VNI: 1 } }, field: "Backend.VNI" },
    // cnikit extension keys
    { label: "IPMasq not a boolean", config: { Network: "10.244.0.0/16", IPMasq: "true" }, field: "IPMasq" },
    { label: "SubnetLeaseRenewMargin out of 1..1439", config: { Network: "10.244.0.0/16", SubnetLeaseRenewMargin: 1440 }, field: "SubnetLeaseRenewMargin" },
    // Just outside each documented range boundary (anchorConfigs holds the side just inside).
    { label: "SubnetLen 31 with a /8 Network (max 30)", config: { Network: "10.0.0.0/8", SubnetLen: 31 }, field: "SubnetLen" },
    { label: "SubnetLen one short of Network + 2", config: { Network: "10.244.0.0/20", SubnetLen: 21 }, field: "SubnetLen" },
    { label: "SubnetMin one subnet past the end of Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.245.0.0" }, field: "SubnetMin" },
    { label: "SubnetMin one subnet below Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.243.255.0" }, field: "SubnetMin" },
    { label: "SubnetMax one subnet past the end of Network", config: { Network: "10.244.0.0/16", SubnetMax: "10.245.0.0" }, field: "SubnetMax" },
    { label: "SubnetMin one subnet above SubnetMax", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.11.0", SubnetMax: "10.244.10.0" }, field: "SubnetMin" },
    { label: "IPv6SubnetLen one short of IPv6Network + 2", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/60", IPv6SubnetLen: 61 }, field: "IPv6SubnetLen" },
    { label: "IPv6SubnetMax one subnet past IPv6Network", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd00:0:1::" }, field: "IPv6SubnetMax" },
    { label: "VNI 16777216 (one above 24 bits)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 16_777_216 } }, field: "Backend.VNI" },
    { label: "VNI -1", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: -1 } }, field: "Backend.VNI" },
    { label: "Port 65536 (one above 65535)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 65_536 } }, field: "Backend.Port" },
    { label: "Port -1", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: -1 } }, field: "Backend.Port" },
    { label: "MTU 625 (pods would get 575, below IPv4's 576)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 625 } }, field: "Backend.MTU" },
    { label: "MTU 9217 (one above 9216)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 9217 } }, field: "Backend.MTU" },
    { label: "dual-stack MTU 1329 (pods would get 1279, below IPv6's 1280)", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", Backend: { Type: "vxlan", MTU: 1329 } }, field: "Backend.MTU" },
    { label: "SubnetLeaseRenewMargin 0 (one below 1)", config: { Network: "10.244.0.0/16", SubnetLeaseRenewMargin: 0 }, field: "SubnetLeaseRenewMargin" },
    // Valid as a config, refused when a node starts: the node has no IPv6 underlay address.
    {
      label: "host-gw dual stack on a node without an IPv6 underlay (refused at node start)",
      config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "host-gw" } },
      field: "node.underlay",
    },
  ],
  // Just inside each documented range boundary: each must be accepted (config.accepts-anchor-format).
  anchorConfigs: [
    { label: "stock kube-flannel net-conf.json", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } } },
    { label: "SubnetLen 30 (the maximum)", config: { Network: "10.0.0.0/8", SubnetLen: 30 } },
    { label: "SubnetLen Network + 2 (four subnets)", config: { Network: "10.244.0.0/20", SubnetLen: 22 } },
    { label: "Network /28 without SubnetLen", config: { Network: "10.244.0.0/28" } },
    { label: "SubnetMin at the start of Network", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.0.0" } },
    { label: "SubnetMax the last subnet of Network", config: { Network: "10.244.0.0/16", SubnetMax: "10.244.255.0" } },
    { label: "SubnetMin equal to SubnetMax", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.10.0", SubnetMax: "10.244.10.0" } },
    { label: "IPv6SubnetLen 126 (the maximum)", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetLen: 126 } },
    { label: "IPv6SubnetLen IPv6Network + 2", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/60", IPv6SubnetLen: 62 } },
    { label: "IPv6Network /124 without IPv6SubnetLen", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/124" } },
    { label: "IPv6SubnetMax the last subnet of IPv6Network", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMax: "fd00:0:0:ffff::" } },
    { label: "IPv6 only", config: { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/48" } },
    { label: "VNI 0", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 0 } } },
    { label: "VNI 16777215 (the largest 24-bit value)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: 16_777_215 } } },
    { label: "Port 0 (the kernel default 8472)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 0 } } },
    { label: "Port 65535", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", Port: 65_535 } } },
    { label: "MTU 626 (pods get 576)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 626 } } },
    { label: "MTU 9216 (the maximum)", config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 9216 } } },
    { label: "dual-stack MTU 1330 (pods get 1280)", config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", Backend: { Type: "vxlan", MTU: 1330 } } },
    { label: "SubnetLeaseRenewMargin 1 and keys in Go's case-insensitive spelling", config: { network: "10.244.0.0/16", subnetleaserenewmargin: 1 } },
    { label: "SubnetLeaseRenewMargin 1439 (the maximum)", config: { Network: "10.244.0.0/16", SubnetLeaseRenewMargin: 1439 } },
  ],
};

/**
 * flannel's section-C tables under the export name the conformance CLI looks for in a backend's
 * module (`conformance`): found without --invalid-configs.
 */
export const conformance = { invalidConfigs: flannelFixtures.invalidConfigs, anchorConfigs: flannelFixtures.anchorConfigs };

export { FlannelAgent, RESYNC_MS, LOCAL_KEYS, WATCH_BACKOFF_MS, REPLAN_MIN_INTERVAL_MS } from "./agent.ts";
export type { FlannelAgentStats } from "./agent.ts";
export { parseFlannelConfig, familyRanges, subnetCapacity, FLANNEL_DEFAULTS, UNSUPPORTED_BACKENDS, NET_CONF_KEYS, MIN_POD_MTU, MAX_MTU, MAX_VNI } from "./config.ts";
export type { FlannelConfig, FamilyRange, FlannelBackendConfig, VxlanBackendConfig, HostGwBackendConfig } from "./config.ts";
export {
  SUBNET_PREFIX,
  LEASE_TTL_SECONDS,
  RENEW_RETRY_MS,
  FREE_CANDIDATES,
  IMMEDIATE_REPICKS,
  subnetKey,
  parseSubnetKey,
  decodeLease,
  encodeAttrs,
  leaseFits,
  ownedBy,
  takenRanges,
  firstFreeSubnets,
  pickSubnet,
  acquireLease,
  backoffDelay,
} from "./leases.ts";
export type { LeaseAttrs, SubnetLease, LeaseSubnets, AcquiredLease, AcquireLeaseOptions, LeaseSource, VxlanBackendData } from "./leases.ts";
export {
  BRIDGE,
  VXLAN6_OVERHEAD,
  planDataplane,
  planWithDiagnostics,
  createPlanCache,
  localDevices,
  podMtu,
  underlayMtu,
  deriveVtepMac,
  macForAddress,
  hostIfName,
  gatewayOf,
  masqueradeRules,
} from "./plan.ts";
export type { PlanInput, PlanResult, PlanCache, PodRecord, SkippedPeer, VtepMacs, LocalDevices } from "./plan.ts";
