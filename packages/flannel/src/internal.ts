/**
 * `@cnikit/flannel/internal` — NOT a public API and not covered by semver: pieces of flannel's
 * agent and planner that cnikit's own private packages need and cannot rebuild from the public
 * surface without copying them. It changes whenever the agent does. Each export says who uses it.
 */

/**
 * The planner, and the VTEP MAC a node derives: @cnikit/linux's kernel tests render the dataplanes
 * flannel really plans (packages/linux/test/dataplanes.ts).
 */
export { planDataplane, deriveVtepMac } from "./plan.ts";
export type { PlanInput } from "./plan.ts";

/**
 * The agent's node-local state keys: the self-test's broken variants (packages/conformance-selftest)
 * corrupt or drop exactly that state (a leaked reservation, a stale VTEP MAC).
 */
export { LOCAL_KEYS } from "./agent.ts";

/**
 * The lease decoder (key → subnets, value → attrs, TTL): the self-test's broken variants list the
 * VTEPs a one-time store listing names, as flannel's agent reads them.
 */
export { decodeLease } from "./leases.ts";
export type { SubnetLease } from "./leases.ts";
