/**
 * @cnikit/conformance — the conformance suite for cnikit backends.
 *
 *  - `runConformance(options)` runs it and returns a JSON-able report (also importable alone from
 *    `@cnikit/conformance/runner`).
 *  - `renderTable(reports)` renders reports for people; the `cnikit-conformance` CLI uses both.
 *  - `defineConformanceSuite(backend, options)`, which registers the suite inside a vitest file, is
 *    on its own entry point, `@cnikit/conformance/vitest`: this entry never imports vitest, so it
 *    loads in a project without it.
 */
export * from "./runner-entry.ts";
