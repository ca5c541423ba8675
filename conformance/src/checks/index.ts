/** Every check of the suite, in report order. */
import type { CheckDefinition } from "../check.ts";
import { claimsChecks } from "./claims.ts";
import { configChecks } from "./config.ts";
import { dynamicsChecks } from "./dynamics.ts";
import { encryptionChecks } from "./encryption.ts";
import { faultChecks } from "./faults.ts";
import { lifecycleChecks } from "./lifecycle.ts";
import { modelChecks } from "./model.ts";
import { placeholderChecks } from "./placeholders.ts";
import { policyChecks } from "./policy.ts";
import { preallocChecks } from "./prealloc.ts";
import { scenarioChecks } from "./scenarios.ts";

export const ALL_CHECKS: readonly CheckDefinition[] = Object.freeze([
  ...modelChecks,
  ...lifecycleChecks,
  ...configChecks,
  ...claimsChecks,
  ...dynamicsChecks,
  ...preallocChecks,
  ...faultChecks,
  ...scenarioChecks,
  ...policyChecks,
  ...encryptionChecks,
  ...placeholderChecks,
]);

export { buildFixture } from "./model.ts";
