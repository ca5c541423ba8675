// One list of CNI versions: SUPPORTED_VERSIONS (src/protocol.ts) is the truth; the package's
// description, its README, cnikitd --help and the plugin's --help say the same. (Both shims'
// VERSION answers are checked against it in executable.test.ts.)
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { daemonMain } from "../src/daemon-main.ts";
import { CNI_PLUGIN_JS } from "../src/paths.ts";
import { PLUGIN_VERSION, SUPPORTED_VERSIONS } from "../src/protocol.ts";

const LINE = `CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}`;

describe("supported CNI versions", () => {
  it("the package description names the range and the spec version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { description: string };
    expect(pkg.description).toContain(`spec ${PLUGIN_VERSION}; every version from ${SUPPORTED_VERSIONS[0]} to ${SUPPORTED_VERSIONS.at(-1)}`);
  });

  it("the README lists them", () => {
    expect(readFileSync(new URL("../README.md", import.meta.url), "utf8")).toContain(LINE);
  });

  it("cnikitd --help lists them, on stdout, exit 0", async () => {
    const out: string[] = [];
    const err: string[] = [];
    expect(await daemonMain(["--help"], { out: (l) => out.push(l), err: (l) => err.push(l), onSignal: () => undefined })).toBe(0);
    expect(out.join("\n")).toContain(LINE);
    expect(err).toEqual([]);
  });

  it("cnikit-cni --help lists them on stdout, exit 0; another argument exits 2", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const env = { ...process.env };
        delete env["CNI_COMMAND"];
        execFile(process.execPath, [CNI_PLUGIN_JS, ...args], { env }, (e, stdout, stderr) => resolve({ code: e === null ? 0 : Number(e.code), stdout, stderr }));
      });
    const help = await run(["--help"]);
    expect(help).toMatchObject({ code: 0, stderr: "" });
    expect(help.stdout).toContain(LINE);
    const bad = await run(["--version"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^cnikit-cni: unknown option --version; known options: --help \(-h\)/);
  });
});
