/**
 * The one explicit list of cnikit's built-in backends, with the configurations the main job (the
 * conformance run over every built-in backend) uses for each, and each backend's own table of
 * invalid configs. Nothing registers itself on import: a backend is built in when it is listed here,
 * and a test fails when a backend package of this repo is missing.
 */
import type { Backend } from "@cnikit/core";
import { calico, calicoFixtures } from "@cnikit/calico";
import { flannel, flannelFixtures } from "@cnikit/flannel";
import { anchorReferenceConfigs, invalidReferenceConfigs, reference } from "@cnikit/reference";

/**
 * A simulated underlay (the shape of `@cnikit/sim`'s SimTopology, kept structural so this registry
 * does not depend on the simulator): subnets joined by routers, plus external hosts.
 */
export interface UnderlayTopology {
  subnets: { name: string; cidr: string; gateway?: string; mtu?: number }[];
  routers?: { name: string; interfaces: { subnet: string; address: string }[]; staticRoutes?: { dst: string; via: string }[] }[];
  externals?: { name: string; address: string; subnet: string }[];
}

/** One configuration the main job runs a backend with. */
export interface BuiltinConfig {
  /** Short label shown in the report's column header, e.g. `vxlan`, `host-gw`. */
  label: string;
  /** The anchor's own config format, unparsed (what a user would write). */
  config: unknown;
  /** The underlay the main job's clusters use for this config (default: the suite's). */
  topology?: UnderlayTopology;
}

/**
 * An IPv6-only underlay: the default topology's shape (two node subnets and an external subnet
 * joined by one router) in 2001:db8::/32.
 */
export function ipv6UnderlayTopology(): UnderlayTopology {
  return {
    subnets: [
      { name: "a", cidr: "2001:db8:a::/64", gateway: "2001:db8:a::1", mtu: 1500 },
      { name: "b", cidr: "2001:db8:b::/64", gateway: "2001:db8:b::1", mtu: 1500 },
      { name: "ext", cidr: "2001:db8:e::/64", gateway: "2001:db8:e::1", mtu: 1500 },
    ],
    routers: [
      {
        name: "r1",
        interfaces: [
          { subnet: "a", address: "2001:db8:a::1" },
          { subnet: "b", address: "2001:db8:b::1" },
          { subnet: "ext", address: "2001:db8:e::1" },
        ],
      },
    ],
    externals: [{ name: "internet", address: "2001:db8:e::200", subnet: "ext" }],
  };
}

/** An invalid config that must be refused with code 7 naming `field`. */
export interface InvalidConfig {
  label: string;
  config: unknown;
  field: string;
}

export interface BuiltinBackend {
  /** npm package name that exports the backend. */
  package: string;
  /** Config-type-erased: the main job only feeds it the entry's own configs, through parseConfig. */
  backend: Backend<unknown>;
  configs: BuiltinConfig[];
  invalidConfigs: InvalidConfig[];
  /** Configs just inside each documented boundary of the anchor's format: each must be accepted. */
  anchorConfigs: BuiltinConfig[];
}

/**
 * flannel claims IPv6 (`capabilities.families` [4, 6]): this dual-stack net-conf.json makes the main
 * job exercise it through every section. vxlan carries IPv6 pods over the simulator's IPv4 underlay
 * (flannel.<VNI> with the peer's IPv4 VTEP, flannel/DESIGN.md "IPv6"). Kept out of
 * `flannelFixtures.configs`, whose 100-node test counts one route per peer (one family).
 */
export const FLANNEL_DUAL_STACK: BuiltinConfig = {
  label: "vxlan-dualstack",
  config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan" } },
};

/**
 * IPv6 only over an IPv6 underlay: flannel's own IPv6 path (`flannel-v6.<VNI>`, the node's IPv6
 * address as VTEP, 70 bytes of overhead), which the dual-stack config over IPv4 does not take.
 */
export const FLANNEL_IPV6_ONLY: BuiltinConfig = {
  label: "vxlan-ipv6-only",
  config: { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan" } },
  topology: ipv6UnderlayTopology(),
};

function entry<C>(init: { package: string; backend: Backend<C>; configs: BuiltinConfig[]; invalidConfigs: InvalidConfig[]; anchorConfigs: BuiltinConfig[] }): BuiltinBackend {
  return { ...init, backend: init.backend as Backend<unknown> };
}

export const builtinBackends: readonly BuiltinBackend[] = [
  entry({
    package: "@cnikit/reference",
    backend: reference,
    configs: [{ label: "default", config: { network: "10.250.0.0/16", nodeSubnetLength: 24, natOutgoing: true } }],
    invalidConfigs: invalidReferenceConfigs,
    anchorConfigs: anchorReferenceConfigs,
  }),
  entry({
    package: "@cnikit/flannel",
    backend: flannel,
    configs: [...flannelFixtures.configs, FLANNEL_DUAL_STACK, FLANNEL_IPV6_ONLY],
    invalidConfigs: flannelFixtures.invalidConfigs,
    anchorConfigs: flannelFixtures.anchorConfigs,
  }),
  entry({
    package: "@cnikit/calico",
    backend: calico,
    configs: calicoFixtures.configs,
    invalidConfigs: calicoFixtures.invalidConfigs,
    anchorConfigs: calicoFixtures.anchorConfigs,
  }),
];

/** The entry of a backend by name; throws a TypeError listing the known names. */
export function builtinBackend(name: string): BuiltinBackend {
  const found = builtinBackends.find((b) => b.backend.name === name);
  if (!found) {
    throw new TypeError(`unknown built-in backend ${JSON.stringify(name)}; known: ${builtinBackends.map((b) => b.backend.name).join(", ")}`);
  }
  return found;
}
