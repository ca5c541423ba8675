// The shared conformance suite in the simulator, calico's "ipip-crosssubnet" config, at 2, 10 and 100 nodes on
// two underlay subnets (one file per config so that vitest runs them in parallel).
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";

const { config } = calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!;
for (const nodes of [2, 10, 100]) {
  describe(`ipip-crosssubnet, ${nodes} nodes`, () => {
    defineConformanceSuite(calico, { config, configLabel: "ipip-crosssubnet", nodes, invalidConfigs: calicoFixtures.invalidConfigs });
  });
}
