// The shared conformance suite in the simulator with route reflectors instead of the full mesh,
// set up the way Calico documents it for Kubernetes nodes: the mesh is off, a BGPPeer makes every
// node peer with `route-reflector == 'true'`, and the first two nodes of every cluster the suite
// builds carry that label and the `projectcalico.org/RouteReflectorClusterID` annotation. Crash
// and restart checks hit the reflectors too, since they are the suite's first nodes.
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance";
import { RR_CLUSTER_ID_ANNOTATION, calico, calicoFixtures, withRouteReflectors } from "../src/index.ts";

const reflectorMetadata = (ordinal: number) =>
  ordinal < 2 ? { labels: { "route-reflector": "true" }, annotations: { [RR_CLUSTER_ID_ANNOTATION]: "244.0.0.1" } } : {};

const runs = [
  { label: "bgp", sizes: [2, 10] },
  { label: "vxlan-crosssubnet", sizes: [2, 10, 100] },
];
for (const { label, sizes } of runs) {
  // No reflector named: roles come from the node metadata above.
  const config = withRouteReflectors(calicoFixtures.configs.find((c) => c.label === label)!.config, []);
  for (const nodes of sizes) {
    describe(`${label} with 2 route reflectors, ${nodes} nodes`, () => {
      defineConformanceSuite(calico, { config, configLabel: `${label}-rr`, nodes, invalidConfigs: calicoFixtures.invalidConfigs, nodeMetadata: reflectorMetadata });
    });
  }
}
