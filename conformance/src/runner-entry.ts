/**
 * `@cnikit/conformance/runner`: everything but the vitest suite (safe to import from scripts and
 * the CLI, which must not load vitest).
 */
export {
  runConformance,
  ConformanceSession,
  listChecks,
  selectChecks,
  hasRequiredFailure,
  isRequiredNotPassed,
  checkTopology,
  claimsCoverage,
  CHECK_BOUNDS,
  boundMs,
  DEFAULT_NODES,
  DEFAULT_SEED,
  DEFAULT_PROPERTY_RUNS,
  DEFAULT_BUDGET_MS,
} from "./runner.ts";
export { familiesOf } from "./checks/claims.ts";
export { renderTable, tally, headline, requiredCounts, UNMEASURED } from "./table.ts";
export type { RenderOptions } from "./table.ts";
export { Section, SECTION_TITLES, CheckStatus, CONFORMANCE_EXPORT } from "./types.ts";
export type {
  AnchorConfigCase,
  BackendConformanceTables,
  BoundName,
  ClaimsCoverage,
  DeclaredBounds,
  CheckContext,
  CheckMetrics,
  CheckOutcome,
  CheckResult,
  ConformanceOptions,
  ConformanceReport,
  InvalidConfigCase,
  SubResult,
} from "./types.ts";
export type { CheckDefinition, CheckEnv, CheckIdentity, Fixture } from "./check.ts";
export { SOURCES } from "./check.ts";
export {
  CONCURRENT_IPAM_CHECK,
  DATAPLANE_CHECKS,
  addressProblems,
  overheadOf,
  rangeReserved,
  reservePodInterface,
  simDataplane,
  type ChurnCluster,
  type ChurnDriver,
  type DataplaneCheck,
  type DpEndpoint,
  type EgressDelivery,
  type ModelDataplane,
  type NattedPair,
  type NodeMtus,
  type ReachFailure,
} from "./driver.ts";
export { drive } from "./harness.ts";
/** The harness pieces a convergence measure needs (used by @cnikit/bench: one definition of convergence). */
export {
  addPods,
  converge,
  createHarness,
  fullReachProblems,
  ipamProblems,
  livePods,
  nodeEndpoint,
  podEndpoint,
  quietPeriodMs,
  reachProblems,
  startMetrics,
  summarizeProblems,
  summaryFor,
  topologyFor,
  type ConvergeResult,
  type Harness,
} from "./harness.ts";
export { departedOf, staleProblems, type Departed } from "./stale.ts";
export { CLUSTER_STORE_LABEL, simLifecycleDriver, type LifecycleDriver, type LifecycleDriverFactory, type StatusView, type StoreSnapshot } from "./lifecycle-driver.ts";
export { LIFECYCLE_CHECKS, runLifecycleCheck, type LifecycleCheck, type LifecycleContext } from "./checks/lifecycle.ts";
export { EXTERNAL_STORE_GATES, IoPacedClock, IoTracker, emptyStore } from "./external-store.ts";
export type { StoreProvider } from "./external-store.ts";
