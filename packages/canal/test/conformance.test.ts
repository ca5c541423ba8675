// The shared conformance suite in the simulator over canal, flannel's vxlan mode from the fixtures,
// every section (F: the NetworkPolicy matrix, which canal claims), 4 nodes, seeds 1 and 2. The
// other modes run in the main job (scripts/conformance-all.ts, through the registry).
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { fixtureConfig } from "@cnikit/core";
import { canalFixtures } from "../src/fixtures.ts";
import { canal } from "../src/index.ts";

const config = fixtureConfig(canalFixtures.configs, "vxlan");
for (const seed of [1, 2]) {
  describe(`vxlan, seed ${seed}`, () => {
    defineConformanceSuite(canal, { config, configLabel: "vxlan", seed, invalidConfigs: canalFixtures.invalidConfigs, anchorConfigs: canalFixtures.anchorConfigs });
  });
}
