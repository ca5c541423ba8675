/**
 * @cnikit/conformance — the conformance suite for cnikit backends.
 *
 *  - `defineConformanceSuite(backend, options)` registers the suite inside a vitest file.
 *  - `runConformance(options)` runs it and returns a JSON-able report (no vitest needed; also
 *    importable alone from `@cnikit/conformance/runner`).
 *  - `renderTable(reports)` renders reports for people; the `cnikit-conformance` CLI uses both.
 */
export { defineConformanceSuite } from "./suite.ts";
export type { SuiteOptions } from "./suite.ts";
export * from "./runner-entry.ts";
