// cnikitd's and cnikit-controller's arguments, in process: core's CLI plumbing (--help exits 0 on
// stdout, unknown flags exit 2 with the known ones) and the rules between their flags.
import { describe, expect, it } from "vitest";
import { controllerMain } from "../src/controller-main.ts";
import { daemonMain } from "../src/daemon-main.ts";

function collect() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l), onSignal: () => undefined } };
}

describe.each([
  ["cnikitd", daemonMain, "--config, --check, --wait-ready, --timeout, --help (-h)"],
  ["cnikit-controller", controllerMain, "--config, --check, --help (-h)"],
] as const)("%s arguments", (name, main, known) => {
  it("--help and -h exit 0 with the usage on stdout", async () => {
    for (const flag of ["--help", "-h"]) {
      const c = collect();
      expect(await main([flag], c.io)).toBe(0);
      expect(c.out.join("\n")).toMatch(new RegExp(`^Usage: ${name} --config <file>`));
      expect(c.err).toEqual([]);
    }
  });

  it.each([
    [["--frob"], `unknown option --frob; known options: ${known}`],
    [["--config"], "--config needs a value"],
    [[], "--config <file> is required"],
    [["--config", "a.json", "b.json"], 'unexpected argument "b.json"'],
  ])("%j exits 2 naming the problem", async (argv, message) => {
    const c = collect();
    expect(await main([...argv], c.io)).toBe(2);
    expect(c.err.join("\n")).toContain(`${name}: ${message}`);
    expect(c.out).toEqual([]);
  });

  it("a config file that cannot be read exits 2 naming it", async () => {
    const c = collect();
    expect(await main(["--config", "/nonexistent/cnikit.json", "--check"], c.io)).toBe(2);
    expect(c.err.join("\n")).toContain(`${name}: /nonexistent/cnikit.json:`);
  });
});

describe("cnikitd --wait-ready and --timeout", () => {
  it.each([
    [["--config", "c.json", "--timeout", "3"], "--timeout goes with --wait-ready"],
    [["--config", "c.json", "--wait-ready", "--timeout", "soon"], "--timeout must be a number of seconds above 0 (got soon)"],
    [["--config", "c.json", "--wait-ready", "--timeout", "0"], "--timeout must be a number of seconds above 0 (got 0)"],
    [["--config", "c.json", "--wait-ready", "--check"], "--check and --wait-ready do not go together"],
  ])("%j exits 2", async (argv, message) => {
    const c = collect();
    expect(await daemonMain([...argv], c.io)).toBe(2);
    expect(c.err.join("\n")).toContain(`cnikitd: ${message}`);
  });
});
