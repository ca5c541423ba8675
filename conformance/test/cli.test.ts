import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadLinuxDriver, main } from "../src/cli.ts";
import type { ConformanceReport } from "../src/runner-entry.ts";

const here = dirname(fileURLToPath(import.meta.url));
const cliPath = resolve(here, "../src/cli.ts");
const brokenPath = resolve(here, "broken/index.ts");

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "cnikit-conformance-cli-"));
}

function io(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), cwd } };
}

describe("loading the kernel driver for --dataplane linux", () => {
  it("names the package to install when @cnikit/lab resolves neither from the project nor next to the suite", async () => {
    const dir = tempDir();
    const importer = async (s: string): Promise<unknown> => {
      throw new Error(`Cannot find package '${s}'`);
    };
    await expect(loadLinuxDriver(dir, importer)).rejects.toThrow(/--dataplane linux needs the package @cnikit\/lab .*npm install --save-dev @cnikit\/lab/);
  });

  it("refuses a package without runLinuxConformance, and takes one that has it (from the project first)", async () => {
    const dir = tempDir();
    await expect(loadLinuxDriver(dir, async () => ({}))).rejects.toThrow(/@cnikit\/lab was found but has no runLinuxConformance/);
    const seen: string[] = [];
    const driver = { runLinuxConformance: async () => ({}) };
    await expect(
      loadLinuxDriver(dir, async (s) => {
        seen.push(s);
        return driver;
      }),
    ).resolves.toBe(driver);
    // The temp dir has no node_modules: the bare specifier (next to the suite) was the one tried.
    expect(seen).toEqual(["@cnikit/lab"]);
  });

  it("resolves the workspace's @cnikit/lab from a directory inside the workspace", async () => {
    const driver = await loadLinuxDriver(resolve(here, ".."));
    expect(typeof driver.runLinuxConformance).toBe("function");
  });
});

describe("cnikit-conformance CLI", () => {
  it("runs the reference backend from a config file: table printed, report written, exit 0", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "reference.json"), JSON.stringify({ network: "10.250.0.0/16", natOutgoing: true }));
    const t = io(dir);
    const code = await main(["--backend", "@cnikit/reference", "--config", "reference.json", "--nodes", "3", "--seed", "5", "--report", "out/report.json", "--checks", "A,cni.del-idempotent,dyn.join"], t.io);
    expect(t.err.join("")).not.toMatch(/internal error/);
    expect(code).toBe(0);
    const table = t.out.join("");
    expect(table).toMatch(/reference \(reference\.json\), 3 nodes, seed 5/);
    expect(table).toMatch(/reach\.pod-to-pod\.cross-node\s+yes\s+passed/);
    const report = JSON.parse(readFileSync(join(dir, "out/report.json"), "utf8")) as ConformanceReport;
    expect(report).toMatchObject({ backend: "reference", config: "reference.json", nodes: 3, seed: 5 });
    expect(report.results.map((r) => r.id)).toContain("dyn.join");
    expect(report.results.every((r) => r.status === "passed")).toBe(true);
    expect(report.results.find((r) => r.id === "dyn.join")!.metrics).toMatchObject({ virtualMs: expect.any(Number), messages: expect.any(Number) });
  });

  it("exits 1 on a broken variant and names the failing check", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "c.json"), "{}");
    const t = io(dir);
    const code = await main(["--backend", `${brokenPath}#nonIdempotentDel`, "--config", "c.json", "--checks", "cni.del-idempotent", "--report", "r.json"], t.io);
    expect(code).toBe(1);
    expect(t.out.join("")).toMatch(/cni\.del-idempotent\s+yes\s+failed.*second DEL/);
    expect(existsSync(join(dir, "r.json"))).toBe(true);
  });

  const usage: { label: string; args: (dir: string) => string[]; message: RegExp }[] = [
    { label: "no --backend", args: () => ["--config", "c.json"], message: /--backend is required/ },
    { label: "no --config", args: () => ["--backend", "@cnikit/reference"], message: /--config is required/ },
    { label: "an unknown flag", args: () => ["--bogus"], message: /Unknown option '--bogus'/ },
    { label: "an unknown --dataplane", args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--dataplane", "ebpf"], message: /--dataplane must be sim or linux, got "ebpf"/ },
    {
      label: "--dataplane linux with a backend cnikitd does not host (or without root)",
      args: () => ["--backend", `${brokenPath}#nonIdempotentDel`, "--config", "c.json", "--dataplane", "linux"],
      message: process.getuid?.() === 0 ? /--dataplane linux: .*built-in backends only/ : /--dataplane linux needs root/,
    },
    { label: "--store etcd:// without a port", args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--store", "etcd://127.0.0.1"], message: /--store etcd:\/\/127\.0\.0\.1: must be etcd:\/\/host:port/ },
    { label: "--store with an unknown kind", args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--store", "redis://x:1"], message: /--store must be memory or etcd:\/\/host:port/ },
    { label: "--nodes 1", args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--nodes", "1"], message: /--nodes must be an integer from 2 to 1000/ },
    { label: "an unknown check id", args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--checks", "ipam.nope"], message: /--checks: .*unknown check id/ },
    { label: "a module without a backend", args: (dir) => ["--backend", join(dir, "c.json"), "--config", "c.json"], message: /cannot load backend module|exports nothing that looks like a Backend/ },
    { label: "a module with several backends", args: () => ["--backend", brokenPath, "--config", "c.json"], message: /exports several backends .*pick one with/ },
    { label: "a missing export", args: () => ["--backend", `${brokenPath}#nope`, "--config", "c.json"], message: /has no backend export named nope/ },
    { label: "an invalid config", args: () => ["--backend", "@cnikit/reference", "--config", "bad.json"], message: /not valid for backend reference: \[reference\] nodeSubnetLength/ },
    { label: "a config that is not JSON", args: () => ["--backend", "@cnikit/reference", "--config", "broken.json"], message: /is not valid JSON/ },
    { label: "a missing config file", args: () => ["--backend", "@cnikit/reference", "--config", "missing.json"], message: /cannot read the config file/ },
  ];
  for (const row of usage) {
    it(`exits 2 with a clear message on ${row.label}`, async () => {
      const dir = tempDir();
      writeFileSync(join(dir, "c.json"), "{}");
      writeFileSync(join(dir, "bad.json"), JSON.stringify({ nodeSubnetLength: 40 }));
      writeFileSync(join(dir, "broken.json"), "{ nope");
      const t = io(dir);
      const code = await main(row.args(dir), t.io);
      expect(code).toBe(2);
      expect(t.err.join("")).toMatch(row.message);
      expect(t.err.join("")).toMatch(/Usage: cnikit-conformance/);
    });
  }

  it("runs as a real process through tsx and exits with the suite's status", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "c.json"), "{}");
    const tsx = resolve(here, "../node_modules/.bin/tsx");
    const run = spawnSync(tsx, ["--conditions=source", cliPath, "--backend", "@cnikit/reference", "--config", join(dir, "c.json"), "--checks", "ipam.in-range,cni.add-result", "--report", join(dir, "r.json")], {
      cwd: resolve(here, ".."),
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/ipam\.in-range\s+yes\s+passed/);
    expect(JSON.parse(readFileSync(join(dir, "r.json"), "utf8"))).toMatchObject({ backend: "reference" });
    // --dataplane linux loads @cnikit/lab from the working directory's project; a backend that
    // cnikitd does not host is a usage error (without root, root is asked for first).
    const bad = spawnSync(tsx, ["--conditions=source", cliPath, "--backend", `${brokenPath}#nonIdempotentDel`, "--config", join(dir, "c.json"), "--dataplane", "linux"], {
      cwd: resolve(here, ".."),
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(process.getuid?.() === 0 ? /built-in backends only/ : /needs root/);
  });
});
