/**
 * The one explicit list of cnikit's built-in backends. Each entry is the backend and its own
 * fixtures module (`@cnikit/<backend>/fixtures`: the configs it runs per mode, the invalid-config
 * table, the anchor configs), so the main job (the conformance run over every built-in backend),
 * the lab and cnikitd run exactly what the backend's tests run. Nothing registers itself on import:
 * a backend is built in when it is listed here, and a test fails when a backend package of this
 * repo is missing.
 */
import type { Backend, BackendFixtures, FixtureConfig, InvalidConfigFixture } from "@cnikit/core";
import { defaultTopology } from "@cnikit/sim";
import type { SimTopology } from "@cnikit/sim";
import { azure } from "@cnikit/azure";
import { azureFixtures } from "@cnikit/azure/fixtures";
import { calico } from "@cnikit/calico";
import { calicoFixtures } from "@cnikit/calico/fixtures";
import { canal } from "@cnikit/canal";
import { canalFixtures } from "@cnikit/canal/fixtures";
import { flannel } from "@cnikit/flannel";
import { flannelFixtures } from "@cnikit/flannel/fixtures";
import { reference } from "@cnikit/reference";
import { referenceFixtures } from "@cnikit/reference/fixtures";
import { weave } from "@cnikit/weave";
import { weaveFixtures } from "@cnikit/weave/fixtures";

/** One configuration the main job runs a backend with: a mode of the backend's fixtures. */
export interface BuiltinConfig {
  /** Short label shown in the report's column header, e.g. `vxlan`, `host-gw`. */
  label: string;
  /** The anchor's own config format, unparsed (what a user would write). */
  config: unknown;
  /** The underlay the main job's clusters use for this config (default: the suite's). */
  topology?: SimTopology;
}

export interface BuiltinBackend {
  /** npm package name that exports the backend (its fixtures are at `<package>/fixtures`). */
  package: string;
  /** Config-type-erased: the main job only feeds it the entry's own configs, through parseConfig. */
  backend: Backend<unknown>;
  /** The backend's fixtures module, as it exports it. */
  fixtures: BackendFixtures;
  /** The fixtures' modes, each with the underlay it needs. */
  configs: BuiltinConfig[];
  /** Configs that must be refused with code 7 naming `field` (the fixtures' table). */
  invalidConfigs: InvalidConfigFixture[];
  /** Configs just inside each documented boundary of the anchor's format: each must be accepted. */
  anchorConfigs: FixtureConfig[];
}

/**
 * The IPv6 twin of the simulator's default topology (`defaultTopology()` of @cnikit/sim: two node
 * subnets and an external subnet joined by one router): subnet `x` becomes 2001:db8:<x's initial>::/64
 * and each address keeps its host number, e.g. the gateway .1 becomes ::1, the external host .200
 * becomes ::200.
 */
export function ipv6UnderlayTopology(): SimTopology {
  const base = defaultTopology();
  const prefixOf = new Map(base.subnets.map((s) => [s.name, `2001:db8:${s.name[0]}::`]));
  const v6 = (subnet: string, address: string): string => `${prefixOf.get(subnet)!}${address.split(".").pop()!}`;
  const subnetOfGateway = (address: string): string => base.subnets.find((s) => s.gateway === address)!.name;
  return {
    subnets: base.subnets.map((s) => ({ ...s, cidr: `${prefixOf.get(s.name)!}/64`, ...(s.gateway ? { gateway: v6(s.name, s.gateway) } : {}) })),
    routers: (base.routers ?? []).map((r) => ({
      ...r,
      interfaces: r.interfaces.map((i) => ({ subnet: i.subnet, address: v6(i.subnet, i.address) })),
      ...(r.staticRoutes ? { staticRoutes: r.staticRoutes.map((route) => ({ dst: route.dst, via: v6(subnetOfGateway(route.via), route.via) })) } : {}),
    })),
    externals: (base.externals ?? []).map((e) => ({ ...e, address: v6(e.subnet, e.address) })),
  };
}

/** The main job's configs of a backend: its fixtures' modes, an IPv6-only one over the IPv6 underlay. */
function builtinConfigs(fixtures: BackendFixtures): BuiltinConfig[] {
  return fixtures.configs.map((c) => ({ label: c.label, config: c.config, ...(c.underlayFamily === 6 ? { topology: ipv6UnderlayTopology() } : {}) }));
}

function entry<C, Raw>(init: { package: string; backend: Backend<C>; fixtures: BackendFixtures<Raw> }): BuiltinBackend {
  const fixtures = init.fixtures as BackendFixtures;
  return {
    package: init.package,
    backend: init.backend as Backend<unknown>,
    fixtures,
    configs: builtinConfigs(fixtures),
    invalidConfigs: fixtures.invalidConfigs,
    anchorConfigs: fixtures.anchorConfigs,
  };
}

export const builtinBackends: readonly BuiltinBackend[] = [
  entry({ package: "@cnikit/reference", backend: reference, fixtures: referenceFixtures }),
  entry({ package: "@cnikit/flannel", backend: flannel, fixtures: flannelFixtures }),
  entry({ package: "@cnikit/calico", backend: calico, fixtures: calicoFixtures }),
  entry({ package: "@cnikit/canal", backend: canal, fixtures: canalFixtures }),
  entry({ package: "@cnikit/weave", backend: weave, fixtures: weaveFixtures }),
  entry({ package: "@cnikit/azure", backend: azure, fixtures: azureFixtures }),
];

/** The entry of a backend by name; throws a TypeError listing the known names. */
export function builtinBackend(name: string): BuiltinBackend {
  const found = builtinBackends.find((b) => b.backend.name === name);
  if (!found) {
    throw new TypeError(`unknown built-in backend ${JSON.stringify(name)}; known: ${builtinBackends.map((b) => b.backend.name).join(", ")}`);
  }
  return found;
}
