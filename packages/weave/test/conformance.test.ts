// The shared conformance suite in the simulator over weave: every section, 4 nodes, each mode of
// the fixtures (fastdp, sleeve, encrypted) at seed 1, fastdp at seed 2 too. The 10- and 100-node
// runs are in conformance-scale.test.ts; the main job runs the modes through the registry.
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance";
import { fixtureConfig } from "@cnikit/core";
import { weaveFixtures } from "../src/fixtures.ts";
import { weave } from "../src/index.ts";

const runs: [string, number][] = [
  ["fastdp", 1],
  ["fastdp", 2],
  ["sleeve", 1],
  ["encrypted", 1],
];
for (const [label, seed] of runs) {
  describe(`${label}, seed ${seed}`, () => {
    defineConformanceSuite(weave, { config: fixtureConfig(weaveFixtures.configs, label), configLabel: label, seed, invalidConfigs: weaveFixtures.invalidConfigs, anchorConfigs: weaveFixtures.anchorConfigs });
  });
}
