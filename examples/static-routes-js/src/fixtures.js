// @ts-check
/**
 * Section C's tables, exported next to the backend as `conformance` (the CLI reads them from there):
 * configs the parser must refuse, naming `field` (both sides of every documented boundary), and
 * configs just inside each boundary that it must accept.
 */
export const conformance = {
  invalidConfigs: [
    { label: "not an object", config: "10.244.0.0/16", field: "config" },
    { label: "unknown field (typo)", config: { netwrok: "10.244.0.0/16" }, field: "netwrok" },
    { label: "network not a CIDR", config: { network: "10.244.0.0" }, field: "network" },
    { label: "network with host bits", config: { network: "10.244.1.0/16" }, field: "network" },
    { label: "IPv6 network", config: { network: "fd00::/48", nodeSubnetLength: 64 }, field: "network" },
    { label: "nodeSubnetLength as text", config: { nodeSubnetLength: "24" }, field: "nodeSubnetLength" },
    { label: "nodeSubnetLength = the network's /16", config: { network: "10.244.0.0/16", nodeSubnetLength: 16 }, field: "nodeSubnetLength" },
    { label: "nodeSubnetLength 31 (max 30)", config: { nodeSubnetLength: 31 }, field: "nodeSubnetLength" },
  ],
  anchorConfigs: [
    { label: "defaults", config: {} },
    { label: "nodeSubnetLength one longer than the network", config: { network: "10.244.0.0/16", nodeSubnetLength: 17 } },
    { label: "nodeSubnetLength 30 (the maximum)", config: { nodeSubnetLength: 30 } },
  ],
};
