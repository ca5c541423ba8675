// The suite through the cnikit-conformance CLI, as a real process: green over static-routes (sections
// A and C), red over the forgetful variant, with the failing check and its reason in the report.
// In the workspace the CLI runs from source through tsx; an outside project runs `npx cnikit-conformance`.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

// A run takes 5-30 s; the bound is wide so that a loaded machine slows the test down, never fails it.
const RUN_MS = 300_000;
const here = resolve(fileURLToPath(import.meta.url), "../..");
const suite = join(here, "node_modules/@cnikit/conformance");
const dir = await mkdtemp(join(tmpdir(), "static-routes-js-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * Runs the CLI in this package's folder; resolves with its exit code, output and the JSON report's results.
 * @param {string[]} args
 * @returns {Promise<{ code: number, stdout: string, stderr: string, results: import("@cnikit/conformance").CheckResult[] }>}
 */
function cli(args) {
  const report = join(dir, `report-${args.join("_").replace(/[^a-z0-9]+/gi, "-")}.json`);
  const argv = ["--conditions=source", join(suite, "src/cli.ts"), ...args, "--config", "config.json", "--report", report];
  return new Promise((done) => {
    execFile(join(suite, "node_modules/.bin/tsx"), argv, { cwd: here, timeout: RUN_MS }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      readFile(report, "utf8").then(
        (text) => done({ code, stdout, stderr, results: JSON.parse(text).results }),
        () => done({ code, stdout, stderr, results: [] }),
      );
    });
  });
}

describe("cnikit-conformance over the example", () => {
  it(
    "passes sections A and C over static-routes, with section C's tables from the module's `conformance` export",
    async () => {
      const run = await cli(["--backend", "./src/index.js", "--checks", "A,C"]);
      expect(run.code, run.stderr + run.stdout).toBe(0);
      expect(run.stderr).toContain("section C uses the 8 invalid configs of ./src/index.js's export conformance");
      const results = run.results;
      expect(results.map((r) => r.id)).toEqual(expect.arrayContaining(["reach.pod-to-pod.cross-node", "config.invalid-refused", "ipam.concurrent-unique"]));
      expect(results.filter((r) => r.status !== "passed")).toEqual([]);
    },
    RUN_MS + 10_000,
  );

  it(
    "fails the forgetful variant (no routes to peers) with exit 1, naming the check and the drop",
    async () => {
      const run = await cli(["--backend", "./test/forgetful.js", "--checks", "reach.pod-to-pod.cross-node,reach.pod-to-pod.same-node"]);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain("1 REQUIRED CHECK(S) NOT PASSED");
      const resultOf = (/** @type {string} */ id) => run.results.find((r) => r.id === id);
      expect(resultOf("reach.pod-to-pod.same-node")?.status).toBe("passed");
      expect(resultOf("reach.pod-to-pod.cross-node")?.status).toBe("failed");
      expect(resultOf("reach.pod-to-pod.cross-node")?.reason).toMatch(/on node node-\d -> pod .* on node node-\d: dropped at/);
    },
    RUN_MS + 10_000,
  );
});
