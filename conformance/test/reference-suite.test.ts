// The reference backend through the vitest form of the suite (defineConformanceSuite): every check
// becomes an `it`, and the reference must pass them all. This lives here, not in packages/reference,
// so that the dependency runs one way (conformance tests use the reference; the reference does not
// depend on the suite).
import { reference } from "@cnikit/reference";
import { referenceFixtures } from "@cnikit/reference/fixtures";
import { defineConformanceSuite } from "../src/vitest.ts";

defineConformanceSuite(reference, { config: { network: "10.250.0.0/16" }, nodes: 4, invalidConfigs: referenceFixtures.invalidConfigs });
