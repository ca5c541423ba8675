// @cnikit/conformance loads without vitest (issue 18): the main entry, ./runner and ./cli never
// import it; only ./vitest (defineConformanceSuite) does. Each entry is imported by name in a child
// process in which resolving vitest throws (a module resolution hook).
import { execFile } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const hooks = resolve(pkg, "test/fixtures/no-vitest.mjs");

/** Imports `specifier` in a child process without vitest; resolves with its exports' names, or the error text. */
async function importWithoutVitest(specifier: string): Promise<{ ok: boolean; text: string }> {
  const code = `import(${JSON.stringify(specifier)}).then((m) => console.log(Object.keys(m).sort().join(",")))`;
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--conditions=source", "--import", "tsx", "--import", hooks, "--input-type=module", "-e", code], { cwd: pkg });
    return { ok: true, text: stdout.trim() };
  } catch (err) {
    return { ok: false, text: String((err as { stderr?: string }).stderr ?? err) };
  }
}

describe("entry points without vitest", () => {
  it("the main entry loads and exports the runner (runConformance, renderTable), not defineConformanceSuite", async () => {
    const r = await importWithoutVitest("@cnikit/conformance");
    expect(r.text).not.toMatch(/vitest is not installed/);
    expect(r.ok).toBe(true);
    const names = r.text.split(",");
    expect(names).toContain("runConformance");
    expect(names).toContain("renderTable");
    expect(names).not.toContain("defineConformanceSuite");
  });

  it("./runner and ./cli load too", async () => {
    const runner = await importWithoutVitest("@cnikit/conformance/runner");
    expect(runner.ok, runner.text).toBe(true);
    expect(runner.text.split(",")).toContain("runConformance");
    const cli = await importWithoutVitest("@cnikit/conformance/cli");
    expect(cli.ok, cli.text).toBe(true);
    expect(cli.text.split(",")).toContain("main");
  });

  it("./vitest is the entry that needs vitest: there the same child process fails, naming it", async () => {
    const r = await importWithoutVitest("@cnikit/conformance/vitest");
    expect(r.ok).toBe(false);
    expect(r.text).toMatch(/vitest is not installed here: "vitest" imported by .*suite\.ts/);
  });
});
