import { defineConformanceSuite } from "@cnikit/conformance";
import { invalidReferenceConfigs, reference } from "../src/index.ts";

defineConformanceSuite(reference, { config: { network: "10.250.0.0/16" }, nodes: 4, invalidConfigs: invalidReferenceConfigs });
