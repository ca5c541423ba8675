// The shared conformance suite at 100 nodes for the configs whose own files stop at 10: no encap and
// IPIP Always in full mesh, and every mode with two route reflectors (ipip-crosssubnet and
// vxlan-crosssubnet in full mesh run at 100 in their own files). Two underlay subnets unless the
// mode needs one (no encap across a router cannot work without the router peering).
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { calicoFixtures } from "../src/fixtures.ts";
import { calico } from "../src/index.ts";
import { RR_NODE_METADATA, reflectorConfig } from "./helpers.ts";

const nodes = 100;
for (const label of ["bgp", "ipip-always"]) {
  const { config } = calicoFixtures.configs.find((c) => c.label === label)!;
  describe(`${label}, ${nodes} nodes`, () => {
    defineConformanceSuite(calico, { config, configLabel: label, nodes, invalidConfigs: calicoFixtures.invalidConfigs });
  });
}
for (const label of ["bgp", "ipip-always", "ipip-crosssubnet", "vxlan-crosssubnet"]) {
  describe(`${label} with 2 route reflectors, ${nodes} nodes`, () => {
    defineConformanceSuite(calico, { config: reflectorConfig(label), configLabel: `${label}-rr`, nodes, invalidConfigs: calicoFixtures.invalidConfigs, nodeMetadata: RR_NODE_METADATA });
  });
}
