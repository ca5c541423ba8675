// The shared conformance suite in the simulator over azure, every section, in each mode of the
// fixtures (classic, dynamic, static-block, overlay) at 2, 10 and 100 nodes (the sizes).
// Classic takes 1 + maxPods addresses of a node's own subnet per node, so at 100 nodes it runs on
// an underlay of two /20 node subnets (the default /24s hold 7 nodes each at maxPods 30 with a surge
// node: the sizing refusal, which `prealloc.refused-join` exercises on a cut-down subnet).
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { fixtureConfig } from "@cnikit/core";
import type { SimTopology } from "@cnikit/sim";
import { azureFixtures } from "../src/fixtures.ts";
import { azure } from "../src/index.ts";

/** Two /20 node subnets joined by a router, and the suite's external host. */
export function largeTopology(): SimTopology {
  return {
    subnets: [
      { name: "a", cidr: "198.18.0.0/20", gateway: "198.18.0.1", mtu: 1500 },
      { name: "b", cidr: "198.18.16.0/20", gateway: "198.18.16.1", mtu: 1500 },
      { name: "ext", cidr: "192.0.2.0/24", gateway: "192.0.2.1", mtu: 1500 },
    ],
    routers: [
      {
        name: "r1",
        interfaces: [
          { subnet: "a", address: "198.18.0.1" },
          { subnet: "b", address: "198.18.16.1" },
          { subnet: "ext", address: "192.0.2.1" },
        ],
      },
    ],
    externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }],
  };
}

const MODES = ["classic", "dynamic", "static-block", "overlay"] as const;
const runs: [label: (typeof MODES)[number], seed: number, nodes: number][] = [];
for (const [i, label] of MODES.entries()) runs.push([label, 1 + i, 2], [label, 11 + i, 10], [label, 21 + i, 100]);

for (const [label, seed, nodes] of runs) {
  describe(`${label}, seed ${seed}, ${nodes} nodes`, () => {
    defineConformanceSuite(azure, {
      config: fixtureConfig(azureFixtures.configs, label),
      configLabel: label,
      seed,
      nodes,
      invalidConfigs: azureFixtures.invalidConfigs,
      anchorConfigs: azureFixtures.anchorConfigs,
      ...(nodes > 10 ? { topology: largeTopology() } : {}),
    });
  });
}
