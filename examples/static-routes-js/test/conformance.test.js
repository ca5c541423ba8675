// The whole suite over static-routes in the simulator: every section that applies (F too: it claims NetworkPolicy).
import { defineConformanceSuite } from "@cnikit/conformance/vitest";
import { conformance, staticRoutes } from "../src/index.js";

defineConformanceSuite(staticRoutes, { config: { network: "10.244.0.0/16", nodeSubnetLength: 24 }, nodes: 4, ...conformance });
