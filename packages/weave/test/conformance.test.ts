// The shared conformance suite in the simulator over weave, every section, each mode of the
// fixtures (fastdp, sleeve, encrypted): at 4 nodes (seed 1, and seed 2 for fastdp), 2 and 10 nodes.
// 100 nodes is a benchmark-sized run (minutes per mode): `npx tsx --conditions=source
// scripts/conformance-all.ts --only weave --nodes 100`. The main job runs the modes through the registry.
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { fixtureConfig } from "@cnikit/core";
import { weaveFixtures } from "../src/fixtures.ts";
import { weave } from "../src/index.ts";

const runs: [label: string, seed: number, nodes: number][] = [
  ["fastdp", 1, 4],
  ["fastdp", 2, 4],
  ["sleeve", 1, 4],
  ["encrypted", 1, 4],
];
for (const label of ["fastdp", "sleeve", "encrypted"]) runs.push([label, 3, 2], [label, 4, 10]);
for (const [label, seed, nodes] of runs) {
  describe(`${label}, seed ${seed}, ${nodes} nodes`, () => {
    defineConformanceSuite(weave, {
      config: fixtureConfig(weaveFixtures.configs, label),
      configLabel: label,
      seed,
      nodes,
      invalidConfigs: weaveFixtures.invalidConfigs,
      anchorConfigs: weaveFixtures.anchorConfigs,
    });
  });
}
