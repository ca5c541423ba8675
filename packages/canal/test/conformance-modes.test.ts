// Canal's other flannel modes in the simulator, the sections where the mode changes what policy
// meets: host-gw (no encapsulation, one L2 subnet) and dual stack (IPv6 pods through flannel.<VNI>)
// — section A, the claims (every claimed family and encapsulation exercised) and section F's policy
// matrix. Seed 1, 4 nodes; every mode runs whole in the main job.
import { describe } from "vitest";
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { fixtureConfig } from "@cnikit/core";
import { canalFixtures } from "../src/fixtures.ts";
import { canal } from "../src/index.ts";

for (const label of ["host-gw", "vxlan-dualstack"]) {
  describe(label, () => {
    defineConformanceSuite(canal, { config: fixtureConfig(canalFixtures.configs, label), configLabel: label, checks: ["A", "claims.families", "claims.encapsulations", "F"] });
  });
}
