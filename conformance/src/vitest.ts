/**
 * `@cnikit/conformance/vitest` — the suite inside vitest: `defineConformanceSuite(backend, options)`.
 * The only entry point of this package that loads vitest (an optional peer dependency); the main
 * entry (`@cnikit/conformance`), `./runner` and `./cli` never do, so `runConformance` and the CLI
 * work in a project without vitest.
 */
export { defineConformanceSuite } from "./suite.ts";
export type { SuiteOptions } from "./suite.ts";
