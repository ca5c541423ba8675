// The shared conformance suite in the simulator, flannel's vxlan config, at 2, 10 and 100 nodes on two
// underlay subnets. DirectRouting and host-gw have their own files so that vitest runs them in parallel.
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { flannelFixtures } from "../src/fixtures.ts";
import { flannel } from "../src/index.ts";

const { config } = flannelFixtures.configs.find((c) => c.label === "vxlan")!;
for (const nodes of [2, 10, 100]) {
  describe(`vxlan, ${nodes} nodes`, () => {
    defineConformanceSuite(flannel, { config, configLabel: "vxlan", nodes, invalidConfigs: flannelFixtures.invalidConfigs });
  });
}
