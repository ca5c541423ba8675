// The shared conformance suite in the simulator, calico's "ipip-always" config, at 2 and 10 nodes (one
// file per config so that vitest runs them in parallel; 100 nodes: test/conformance-100.test.ts).
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";

const { config } = calicoFixtures.configs.find((c) => c.label === "ipip-always")!;
for (const nodes of [2, 10]) {
  describe(`ipip-always, ${nodes} nodes`, () => {
    defineConformanceSuite(calico, { config, configLabel: "ipip-always", nodes, invalidConfigs: calicoFixtures.invalidConfigs });
  });
}
