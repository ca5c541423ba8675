/**
 * The reference backend's table of invalid configs for the conformance suite (section C): each
 * must be refused with a ConfigError (code 7) naming `field`.
 */
export interface InvalidReferenceConfig {
  label: string;
  config: unknown;
  field: string;
}

export const invalidReferenceConfigs: InvalidReferenceConfig[] = [
  { label: "not an object", config: "10.250.0.0/16", field: "config" },
  { label: "unknown key (typo)", config: { netwrok: "10.250.0.0/16" }, field: "netwrok" },
  { label: "network with host bits", config: { network: "10.250.1.0/16" }, field: "network" },
  { label: "network not a CIDR", config: { network: "10.250.0.0" }, field: "network" },
  { label: "IPv6 network", config: { network: "fd00::/48", nodeSubnetLength: 64 }, field: "network" },
  { label: "nodeSubnetLength not longer than the network", config: { network: "10.250.0.0/16", nodeSubnetLength: 16 }, field: "nodeSubnetLength" },
  { label: "nodeSubnetLength 31", config: { nodeSubnetLength: 31 }, field: "nodeSubnetLength" },
  { label: "nodeSubnetLength not an integer", config: { nodeSubnetLength: "24" }, field: "nodeSubnetLength" },
  { label: "natOutgoing not a boolean", config: { natOutgoing: "yes" }, field: "natOutgoing" },
  { label: "mtu too small", config: { mtu: 500 }, field: "mtu" },
  { label: "mtu too large", config: { mtu: 10000 }, field: "mtu" },
  // Just outside each documented boundary (anchorReferenceConfigs holds the side just inside).
  { label: "nodeSubnetLength 31 with a /16 network (max 30)", config: { network: "10.250.0.0/16", nodeSubnetLength: 31 }, field: "nodeSubnetLength" },
  { label: "nodeSubnetLength equal to a /20 network's length", config: { network: "10.250.0.0/20", nodeSubnetLength: 20 }, field: "nodeSubnetLength" },
  { label: "mtu 575 (one below 576)", config: { mtu: 575 }, field: "mtu" },
  { label: "mtu 9217 (one above 9216)", config: { mtu: 9217 }, field: "mtu" },
  { label: "mtu not an integer", config: { mtu: 1400.5 }, field: "mtu" },
  // Valid as a config, refused when a node starts: the underlay in the suite has MTU 1500.
  { label: "mtu above the underlay's 1500 (refused at node start)", config: { mtu: 9000 }, field: "mtu" },
];

/** Configs just inside each documented boundary of the reference format: each must be accepted. */
export const anchorReferenceConfigs: { label: string; config: unknown }[] = [
  { label: "defaults (empty object)", config: {} },
  { label: "nodeSubnetLength 30 (the maximum)", config: { network: "10.250.0.0/16", nodeSubnetLength: 30 } },
  { label: "nodeSubnetLength one longer than the network", config: { network: "10.250.0.0/20", nodeSubnetLength: 21 } },
  { label: "mtu 576 (the minimum)", config: { mtu: 576 } },
  { label: "mtu 9216 (the maximum)", config: { mtu: 9216 } },
  { label: "natOutgoing false", config: { natOutgoing: false } },
];

/**
 * The reference backend's section-C tables, under the export name the conformance CLI looks for
 * (`conformance`, next to the backend in the package's main module).
 */
export const conformance = { invalidConfigs: invalidReferenceConfigs, anchorConfigs: anchorReferenceConfigs };
