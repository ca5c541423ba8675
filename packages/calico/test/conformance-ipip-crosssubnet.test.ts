// The shared conformance suite in the simulator, calico's "ipip-crosssubnet" config, at 2 and 10 nodes (one
// file per config so that vitest runs them in parallel; 100 nodes: test/sim-100.test.ts).
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance";
import { calico, calicoFixtures } from "../src/index.ts";

const { config } = calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!;
for (const nodes of [2, 10]) {
  describe(`ipip-crosssubnet, ${nodes} nodes`, () => {
    defineConformanceSuite(calico, { config, configLabel: "ipip-crosssubnet", nodes, invalidConfigs: calicoFixtures.invalidConfigs });
  });
}
