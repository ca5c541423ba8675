// The shared conformance suite, flannel's host-gw config (one L2 underlay subnet: the suite builds
// it because topologyNeeds(config) says singleSubnet), at 2, 10 and 100 nodes.
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { flannelFixtures } from "../src/fixtures.ts";
import { flannel } from "../src/index.ts";

const { config } = flannelFixtures.configs.find((c) => c.label === "host-gw")!;
for (const nodes of [2, 10, 100]) {
  describe(`host-gw, ${nodes} nodes`, () => {
    defineConformanceSuite(flannel, { config, configLabel: "host-gw", nodes, invalidConfigs: flannelFixtures.invalidConfigs });
  });
}
