/**
 * `@cnikit/calico/internal` — NOT a public API and not covered by semver: pieces of Calico's
 * planner and block IPAM that cnikit's own private packages need and cannot rebuild from the
 * public surface without copying them. It changes whenever they do. Each export says who uses it.
 */

/**
 * The planner: @cnikit/linux's kernel tests render the dataplanes calico really plans
 * (packages/linux/test/dataplanes.ts, features.integration.test.ts).
 */
export { planDataplane } from "./plan.ts";
export type { PlanInput, NodeRecord } from "./plan.ts";

/**
 * Block IPAM's keys, records and release: the self-test's broken variants
 * (packages/conformance-selftest) keep an ordinal a DEL should free, or release by a remembered
 * address, exactly as the agent's IPAM writes them.
 */
export { blockKey, handleKey, podHandle, readIpam, releaseHandle } from "./ipam.ts";
export type { BlockRecord, HandleRecord } from "./ipam.ts";
