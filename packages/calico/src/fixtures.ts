/**
 * The configs the conformance suite and the benchmarks run, and the table of invalid configs (one
 * per validation rule, each with the field its ConfigError names). Configs are lists of Calico
 * resources exactly as `calicoctl apply -f` takes them.
 */

/** A config of the fixture tables: a label and Calico resources as a user writes them. */
export interface CalicoFixtureConfig {
  label: string;
  config: Record<string, unknown>[];
}

/** An invalid config and the field path its error must name. */
export interface CalicoInvalidFixture extends CalicoFixtureConfig {
  field: string;
}

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

export const calicoFixtures: { configs: CalicoFixtureConfig[]; invalidConfigs: CalicoInvalidFixture[] } = {
  configs: [
    { label: "bgp", config: [pool({})] },
    { label: "ipip-always", config: [pool({ ipipMode: "Always" })] },
    { label: "ipip-crosssubnet", config: [pool({ ipipMode: "CrossSubnet" })] },
    { label: "vxlan-crosssubnet", config: [pool({ vxlanMode: "CrossSubnet" })] },
  ],
  invalidConfigs: [
    { label: "IPIP and VXLAN both on", config: [pool({ ipipMode: "Always", vxlanMode: "CrossSubnet" })], field: "IPPool/default-ipv4-ippool.spec.vxlanMode" },
    { label: "IPIP on an IPv6 pool", config: [ipPool("v6", { cidr: "fd00:10::/64", ipipMode: "Always" })], field: "IPPool/v6.spec.ipipMode" },
    { label: "blockSize 33", config: [pool({ blockSize: 33 })], field: "IPPool/default-ipv4-ippool.spec.blockSize" },
    { label: "pool smaller than a block", config: [pool({ cidr: "10.244.0.0/27" })], field: "IPPool/default-ipv4-ippool.spec.cidr" },
    { label: "CIDR with host bits", config: [pool({ cidr: "10.244.0.1/16" })], field: "IPPool/default-ipv4-ippool.spec.cidr" },
    { label: "CIDR unparsable", config: [pool({ cidr: "10.244.0.0/33" })], field: "IPPool/default-ipv4-ippool.spec.cidr" },
    { label: "cidr missing", config: [ipPool("nocidr", {})], field: "IPPool/nocidr.spec.cidr" },
    { label: "overlapping pools", config: [pool({}), ipPool("second", { cidr: "10.244.128.0/17" })], field: "IPPool/second.spec.cidr" },
    { label: "bad asNumber", config: [pool({}), { apiVersion: V3, kind: "BGPConfiguration", metadata: { name: "default" }, spec: { asNumber: 0 } }], field: "BGPConfiguration/default.spec.asNumber" },
  ],
};
