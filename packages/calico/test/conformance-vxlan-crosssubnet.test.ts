// The shared conformance suite in the simulator, calico's "vxlan-crosssubnet" config, at 2, 10 and 100 nodes on
// two underlay subnets (one file per config so that vitest runs them in parallel).
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";

const { config } = calicoFixtures.configs.find((c) => c.label === "vxlan-crosssubnet")!;
for (const nodes of [2, 10, 100]) {
  describe(`vxlan-crosssubnet, ${nodes} nodes`, () => {
    defineConformanceSuite(calico, { config, configLabel: "vxlan-crosssubnet", nodes, invalidConfigs: calicoFixtures.invalidConfigs });
  });
}
