/**
 * Calico's fixtures (`@cnikit/calico/fixtures`), in the shape every backend's fixtures share
 * (`BackendFixtures` of @cnikit/core): lists of Calico resources exactly as `calicoctl apply -f`
 * takes them, one config per mode the backend is run with (bgp, ipip-always, ipip-crosssubnet,
 * vxlan-crosssubnet; `withRouteReflectors` turns any of them into its route-reflector variant), and
 * the table of invalid configs: one per validation rule, each with the field its ConfigError names
 * and the rule (a part of the error's rule text). Used by this package's tests, the registry
 * (@cnikit/backends), the main job, the benches and the conformance CLI (the `conformance` export).
 */
import { conformanceTables } from "@cnikit/core";
import type { BackendFixtures } from "@cnikit/core";

const V3 = "projectcalico.org/v3";

/** An IPPool resource. */
export function ipPool(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: V3, kind: "IPPool", metadata: { name }, spec };
}

const pool = (spec: Record<string, unknown>) => ipPool("default-ipv4-ippool", { cidr: "10.244.0.0/16", natOutgoing: true, ...spec });

/**
 * Route-reflector topology on top of `base`: nodes `node-1` and `node-2` (the simulator's first two
 * names) get `routeReflectorClusterID` and the label `route-reflector: "true"`; every node peers
 * with them; the node-to-node mesh is off (Calico's recipe).
 */
export function withRouteReflectors(base: Record<string, unknown>[], reflectors: string[] = ["node-1", "node-2"]): Record<string, unknown>[] {
  return [
    ...base,
    { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { nodeToNodeMeshEnabled: false, asNumber: 64512 } },
    { apiVersion: V3, kind: "BGPPeer", metadata: { name: "peer-with-route-reflectors" }, spec: { nodeSelector: "all()", peerSelector: "route-reflector == 'true'" } },
    ...reflectors.map((name) => ({
      apiVersion: V3,
      kind: "Node",
      metadata: { name, labels: { "route-reflector": "true" } },
      spec: { bgp: { routeReflectorClusterID: "244.0.0.1" } },
    })),
  ];
}

/**
 * The modes (`configs`), the invalid configs (`invalidConfigs`) and the configs just inside each
 * documented range boundary (`anchorConfigs`, each must be accepted).
 */
export const calicoFixtures: BackendFixtures<Record<string, unknown>[]> = {
  configs: [
    { label: "bgp", config: [pool({})] },
    { label: "ipip-always", config: [pool({ ipipMode: "Always" })] },
    { label: "ipip-crosssubnet", config: [pool({ ipipMode: "CrossSubnet" })] },
    { label: "vxlan-crosssubnet", config: [pool({ vxlanMode: "CrossSubnet" })] },
  ],
  invalidConfigs: [
    {
      label: "IPIP and VXLAN both on",
      config: [pool({ ipipMode: "Always", vxlanMode: "CrossSubnet" })],
      field: "IPPool/default-ipv4-ippool.spec.vxlanMode",
      rule: "IPIP (ipipMode Always) and VXLAN cannot both be enabled on one pool",
    },
    { label: "IPIP on an IPv6 pool", config: [ipPool("v6", { cidr: "fd00:10::/64", ipipMode: "Always" })], field: "IPPool/v6.spec.ipipMode", rule: "IPIP is not supported on an IPv6 pool" },
    { label: "blockSize 33", config: [pool({ blockSize: 33 })], field: "IPPool/default-ipv4-ippool.spec.blockSize", rule: "must be an integer from 20 to 32" },
    {
      label: "pool smaller than a block",
      config: [pool({ cidr: "10.244.0.0/27" })],
      field: "IPPool/default-ipv4-ippool.spec.cidr",
      rule: "IP pool size is too small for use with Calico IPAM: /27 is smaller than one /26 block",
    },
    { label: "CIDR with host bits", config: [pool({ cidr: "10.244.0.1/16" })], field: "IPPool/default-ipv4-ippool.spec.cidr", rule: "host bits must be zero" },
    { label: "CIDR unparsable", config: [pool({ cidr: "10.244.0.0/33" })], field: "IPPool/default-ipv4-ippool.spec.cidr", rule: "prefix length must be an integer from 0 to 32 without leading zeros" },
    { label: "cidr missing", config: [ipPool("nocidr", {})], field: "IPPool/nocidr.spec.cidr", rule: "must be a CIDR string such as 10.244.0.0/16" },
    { label: "overlapping pools", config: [pool({}), ipPool("second", { cidr: "10.244.128.0/17" })], field: "IPPool/second.spec.cidr", rule: "overlaps IPPool default-ipv4-ippool" },
    {
      label: "bad asNumber",
      config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { asNumber: 0 } }],
      field: "BGPConfiguration/default.spec.asNumber",
      rule: "must be an integer from 1 to 4294967295",
    },
    // Just outside each documented range boundary (anchorConfigs holds the side just inside).
    { label: "blockSize 19 (v4 range 20-32)", config: [pool({ blockSize: 19 })], field: "IPPool/default-ipv4-ippool.spec.blockSize", rule: "must be an integer from 20 to 32" },
    {
      label: "v6 blockSize 115 (v6 range 116-128)",
      config: [pool({}), ipPool("v6", { cidr: "fd00:10::/48", blockSize: 115 })],
      field: "IPPool/v6.spec.blockSize",
      rule: "must be an integer from 116 to 128",
    },
    { label: "v6 blockSize 129", config: [pool({}), ipPool("v6", { cidr: "fd00:10::/48", blockSize: 129 })], field: "IPPool/v6.spec.blockSize", rule: "must be an integer from 116 to 128" },
    { label: "v4 blockSize 116 (a v6 size on a v4 pool)", config: [pool({ blockSize: 116 })], field: "IPPool/default-ipv4-ippool.spec.blockSize", rule: "must be an integer from 20 to 32" },
    {
      label: "pool one bit smaller than its block",
      config: [pool({ cidr: "10.244.0.0/25", blockSize: 24 })],
      field: "IPPool/default-ipv4-ippool.spec.cidr",
      rule: "IP pool size is too small for use with Calico IPAM: /25 is smaller than one /24 block",
    },
    {
      label: "CIDR overlapping link-local 169.254.0.0/16",
      config: [pool({ cidr: "169.254.0.0/16" })],
      field: "IPPool/default-ipv4-ippool.spec.cidr",
      rule: "must not overlap the link-local range 169.254.0.0/16 or fe80::/10",
    },
    { label: "CIDR not a string", config: [pool({ cidr: 10 })], field: "IPPool/default-ipv4-ippool.spec.cidr", rule: "must be a CIDR string such as 10.244.0.0/16" },
    { label: "ipipMode in lower case", config: [pool({ ipipMode: "always" })], field: "IPPool/default-ipv4-ippool.spec.ipipMode", rule: "must be Always, CrossSubnet or Never" },
    { label: "vxlanMode Sometimes", config: [pool({ vxlanMode: "Sometimes" })], field: "IPPool/default-ipv4-ippool.spec.vxlanMode", rule: "must be Always, CrossSubnet or Never" },
    {
      label: "IPIP CrossSubnet and VXLAN Always",
      config: [pool({ ipipMode: "CrossSubnet", vxlanMode: "Always" })],
      field: "IPPool/default-ipv4-ippool.spec.vxlanMode",
      rule: "IPIP (ipipMode CrossSubnet) and VXLAN cannot both be enabled on one pool",
    },
    {
      label: "asNumber 4294967296 (one above 32 bits)",
      config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { asNumber: 4_294_967_296 } }],
      field: "BGPConfiguration/default.spec.asNumber",
      rule: "must be an integer from 1 to 4294967295",
    },
    {
      label: "asNumber 65536.0 in dotted form (one above 32 bits)",
      config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { asNumber: "65536.0" } }],
      field: "BGPConfiguration/default.spec.asNumber",
      rule: "must be an integer from 1 to 4294967295",
    },
    {
      label: "listenPort 0",
      config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { listenPort: 0 } }],
      field: "BGPConfiguration/default.spec.listenPort",
      rule: "must be an integer from 1 to 65535",
    },
    {
      label: "listenPort 65536",
      config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { listenPort: 65_536 } }],
      field: "BGPConfiguration/default.spec.listenPort",
      rule: "must be an integer from 1 to 65535",
    },
    {
      label: "maxBlocksPerHost 1000001",
      config: [pool({}), { apiVersion: V3, kind: "IPAMConfig", metadata: { name: "default" }, spec: { strictAffinity: true, maxBlocksPerHost: 1_000_001 } }],
      field: "IPAMConfig/default.spec.maxBlocksPerHost",
      rule: "must be an integer from 0 to 1000000",
    },
  ],
  // Just inside each documented range boundary: each must be accepted (config.accepts-anchor-format).
  anchorConfigs: [
    { label: "the default IPv4 pool as calicoctl writes it", config: [pool({})] },
    { label: "blockSize 20 (v4 minimum)", config: [pool({ blockSize: 20 })] },
    { label: "blockSize 32 (v4 maximum)", config: [pool({ blockSize: 32 })] },
    { label: "v6 blockSize 116 (v6 minimum)", config: [pool({}), ipPool("v6", { cidr: "fd00:10::/48", blockSize: 116 })] },
    { label: "v6 blockSize 128 (v6 maximum)", config: [pool({}), ipPool("v6", { cidr: "fd00:10::/48", blockSize: 128 })] },
    { label: "pool exactly one block", config: [pool({ cidr: "10.244.0.0/26" })] },
    { label: "CIDR just below link-local", config: [pool({ cidr: "169.253.0.0/16" })] },
    { label: "ipipMode Never with vxlanMode Always", config: [pool({ ipipMode: "Never", vxlanMode: "Always" })] },
    { label: "ipipMode and vxlanMode empty (Never)", config: [pool({ ipipMode: "", vxlanMode: "" })] },
    { label: "asNumber 1", config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { asNumber: 1 } }] },
    { label: "asNumber 4294967295 (32-bit maximum)", config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { asNumber: 4_294_967_295 } }] },
    { label: "asNumber 65535.65535 in dotted form", config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { asNumber: "65535.65535" } }] },
    { label: "listenPort 1 (minimum)", config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { listenPort: 1 } }] },
    { label: "listenPort 65535 (maximum)", config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { listenPort: 65_535 } }] },
    {
      label: "maxBlocksPerHost 1000000 with strictAffinity",
      config: [pool({}), { apiVersion: V3, kind: "IPAMConfig", metadata: { name: "default" }, spec: { strictAffinity: true, maxBlocksPerHost: 1_000_000 } }],
    },
  ],
};

/**
 * Calico's section-C tables under the export name the conformance CLI looks for in a backend's
 * module (`conformance`): found without --invalid-configs.
 */
export const conformance = conformanceTables(calicoFixtures);
