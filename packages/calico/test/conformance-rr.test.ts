// The shared conformance suite in the simulator with route reflectors instead of the full mesh,
// set up the way Calico documents it for Kubernetes nodes: the mesh is off, a BGPPeer makes every
// node peer with `route-reflector == 'true'`, and the first two nodes of every cluster the suite
// builds carry that label and the `projectcalico.org/RouteReflectorClusterID` annotation. Crash
// and restart checks hit the reflectors too, since they are the suite's first nodes.
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";
import { RR_NODE_METADATA, reflectorConfig } from "./helpers.ts";

// 100 nodes: test/conformance-100.test.ts.
for (const label of ["bgp", "ipip-always", "ipip-crosssubnet", "vxlan-crosssubnet"]) {
  const config = reflectorConfig(label);
  for (const nodes of [2, 10]) {
    describe(`${label} with 2 route reflectors, ${nodes} nodes`, () => {
      defineConformanceSuite(calico, { config, configLabel: `${label}-rr`, nodes, invalidConfigs: calicoFixtures.invalidConfigs, nodeMetadata: RR_NODE_METADATA });
    });
  }
}
