/**
 * The one shape of a backend's `fixtures` module (`@cnikit/<backend>/fixtures`): the configs it is
 * run with, one per mode, and its table of invalid configs, all in the anchor's own format (what a
 * user writes, unparsed). The backend's tests, the registry (@cnikit/backends), the main job and
 * the conformance CLI read the same module, so a mode or a validation rule is written once.
 */
import type { Family } from "./dataplane.ts";

/** A config in the anchor's own format, unparsed, with a short label (a mode name, or the case). */
export interface FixtureConfig<Raw = unknown> {
  label: string;
  config: Raw;
  /**
   * The address family of the underlay this config needs (default 4). An IPv6-only config is run
   * over an IPv6 underlay; the registry turns this into a topology (backends know none).
   */
  underlayFamily?: Family;
}

/** A config the backend must refuse with a ConfigError (code 7) naming `field`. */
export interface InvalidConfigFixture<Raw = unknown> {
  label: string;
  config: Raw;
  /** The field path the ConfigError must name. */
  field: string;
  /** The rule the config breaks: a part of the error's `rule` (its text without values that vary). */
  rule: string;
  /**
   * Where it is refused: by `parseConfig` (the default), or — a config valid on its own — by a
   * node's `start()` on the suite's underlay (IPv4 only, MTU 1500), e.g. a family or an MTU that
   * underlay cannot carry.
   */
  refusedAt?: "parse" | "start";
}

/** What every backend's `fixtures` module exports as `<backend>Fixtures`. */
export interface BackendFixtures<Raw = unknown> {
  /** One config per mode the backend is run with (the main job's columns), e.g. `vxlan`, `host-gw`. */
  configs: FixtureConfig<Raw>[];
  /** One config per validation rule, and just outside each documented range boundary. */
  invalidConfigs: InvalidConfigFixture<Raw>[];
  /** Just inside each documented range boundary: each must be accepted. */
  anchorConfigs: FixtureConfig<Raw>[];
}

/**
 * The section-C tables of a backend's fixtures in the form the conformance suite reads from a
 * backend's module under the export name `conformance` (`{ invalidConfigs, anchorConfigs }`).
 */
export function conformanceTables<Raw>(fixtures: BackendFixtures<Raw>): { invalidConfigs: InvalidConfigFixture<Raw>[]; anchorConfigs: FixtureConfig<Raw>[] } {
  return { invalidConfigs: fixtures.invalidConfigs, anchorConfigs: fixtures.anchorConfigs };
}

/** The config of the entry labelled `label`; a TypeError listing the known labels when none is. */
export function fixtureConfig<Raw>(configs: readonly FixtureConfig<Raw>[], label: string): Raw {
  const found = configs.find((c) => c.label === label);
  if (!found) throw new TypeError(`no fixture config labelled ${JSON.stringify(label)}; known: ${configs.map((c) => c.label).join(", ")}`);
  return found.config;
}
