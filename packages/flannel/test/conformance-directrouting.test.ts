// The shared conformance suite, flannel's vxlan config with DirectRouting, at 2, 10 and 100 nodes, on
// two underlay subnets (direct routes inside a subnet, vxlan across).

import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { flannelFixtures } from "../src/fixtures.ts";
import { flannel } from "../src/index.ts";

const { config } = flannelFixtures.configs.find((c) => c.label === "vxlan-directrouting")!;
for (const nodes of [2, 10, 100]) {
  describe(`vxlan-directrouting, ${nodes} nodes`, () => {
    defineConformanceSuite(flannel, { config, configLabel: "vxlan-directrouting", nodes, invalidConfigs: flannelFixtures.invalidConfigs });
  });
}
