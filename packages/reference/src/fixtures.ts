/**
 * The reference backend's fixtures (`@cnikit/reference/fixtures`), in the shape every backend's
 * fixtures share (`BackendFixtures` of @cnikit/core): the config it is run with, and the table of
 * invalid configs (section C): each must be refused with a ConfigError (code 7) naming `field`,
 * with its rule (a part of the error's rule text). Used by this package's tests, the registry
 * (@cnikit/backends), the main job and the conformance CLI (the `conformance` export).
 */
import { conformanceTables } from "@cnikit/core";
import type { BackendFixtures } from "@cnikit/core";

/**
 * The modes (`configs`: the reference backend has one), the invalid configs (`invalidConfigs`) and
 * the configs just inside each documented boundary (`anchorConfigs`, each must be accepted).
 */
export const referenceFixtures: BackendFixtures = {
  configs: [{ label: "default", config: { network: "10.250.0.0/16", nodeSubnetLength: 24, natOutgoing: true } }],
  invalidConfigs: [
    { label: "not an object", config: "10.250.0.0/16", field: "config", rule: 'must be a JSON object such as {"network": "10.250.0.0/16"}' },
    { label: "unknown key (typo)", config: { netwrok: "10.250.0.0/16" }, field: "netwrok", rule: "unknown field; the reference config knows only network, nodeSubnetLength, natOutgoing, mtu" },
    { label: "network with host bits", config: { network: "10.250.1.0/16" }, field: "network", rule: "host bits must be zero" },
    { label: "network not a CIDR", config: { network: "10.250.0.0" }, field: "network", rule: "must be in CIDR notation address/length, e.g. 10.244.0.0/16" },
    { label: "IPv6 network", config: { network: "fd00::/48", nodeSubnetLength: 64 }, field: "network", rule: "must be an IPv4 prefix" },
    {
      label: "nodeSubnetLength not longer than the network",
      config: { network: "10.250.0.0/16", nodeSubnetLength: 16 },
      field: "nodeSubnetLength",
      rule: "must be longer than the network's /16 so that nodes get a part of it",
    },
    { label: "nodeSubnetLength 31", config: { nodeSubnetLength: 31 }, field: "nodeSubnetLength", rule: "must be at most 30" },
    { label: "nodeSubnetLength not an integer", config: { nodeSubnetLength: "24" }, field: "nodeSubnetLength", rule: "must be an integer prefix length" },
    { label: "natOutgoing not a boolean", config: { natOutgoing: "yes" }, field: "natOutgoing", rule: "must be true or false" },
    { label: "mtu too small", config: { mtu: 500 }, field: "mtu", rule: "must be an integer from 576 to 9216" },
    { label: "mtu too large", config: { mtu: 10000 }, field: "mtu", rule: "must be an integer from 576 to 9216" },
    // Just outside each documented boundary (anchorConfigs holds the side just inside).
    { label: "nodeSubnetLength 31 with a /16 network (max 30)", config: { network: "10.250.0.0/16", nodeSubnetLength: 31 }, field: "nodeSubnetLength", rule: "must be at most 30" },
    {
      label: "nodeSubnetLength equal to a /20 network's length",
      config: { network: "10.250.0.0/20", nodeSubnetLength: 20 },
      field: "nodeSubnetLength",
      rule: "must be longer than the network's /20 so that nodes get a part of it",
    },
    { label: "mtu 575 (one below 576)", config: { mtu: 575 }, field: "mtu", rule: "must be an integer from 576 to 9216" },
    { label: "mtu 9217 (one above 9216)", config: { mtu: 9217 }, field: "mtu", rule: "must be an integer from 576 to 9216" },
    { label: "mtu not an integer", config: { mtu: 1400.5 }, field: "mtu", rule: "must be an integer from 576 to 9216" },
    // Valid as a config, refused when a node starts: the underlay in the suite has MTU 1500.
    { label: "mtu above the underlay's 1500 (refused at node start)", config: { mtu: 9000 }, field: "mtu", rule: "must not exceed the underlay MTU 1500", refusedAt: "start" },
  ],
  anchorConfigs: [
    { label: "defaults (empty object)", config: {} },
    { label: "nodeSubnetLength 30 (the maximum)", config: { network: "10.250.0.0/16", nodeSubnetLength: 30 } },
    { label: "nodeSubnetLength one longer than the network", config: { network: "10.250.0.0/20", nodeSubnetLength: 21 } },
    { label: "mtu 576 (the minimum)", config: { mtu: 576 } },
    { label: "mtu 9216 (the maximum)", config: { mtu: 9216 } },
    { label: "natOutgoing false", config: { natOutgoing: false } },
  ],
};

/**
 * The reference backend's section-C tables, under the export name the conformance CLI looks for
 * (`conformance`, next to the backend in the package's main module).
 */
export const conformance = conformanceTables(referenceFixtures);
