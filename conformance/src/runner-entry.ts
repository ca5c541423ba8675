/**
 * `@cnikit/conformance/runner`: everything but the vitest suite (safe to import from scripts and
 * the CLI, which must not load vitest).
 */
export { runConformance, ConformanceSession, listChecks, selectChecks, hasRequiredFailure, DEFAULT_NODES, DEFAULT_SEED, DEFAULT_PROPERTY_RUNS, DEFAULT_BUDGET_MS } from "./runner.ts";
export { renderTable, tally } from "./table.ts";
export type { RenderOptions } from "./table.ts";
export { Section, SECTION_TITLES, CheckStatus } from "./types.ts";
export type {
  CheckContext,
  CheckMetrics,
  CheckOutcome,
  CheckResult,
  ConformanceOptions,
  ConformanceReport,
  InvalidConfigCase,
  SubResult,
} from "./types.ts";
export type { CheckDefinition, CheckEnv, Fixture } from "./check.ts";
export { SOURCES } from "./check.ts";
export { EXTERNAL_STORE_GATES, IoPacedClock, IoTracker, emptyStore } from "./external-store.ts";
export type { StoreProvider } from "./external-store.ts";
