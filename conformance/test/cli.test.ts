import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { loadBackend, loadLinuxDriver, main, parseNodesFile, parseTopologyFile, readDataFile } from "../src/cli.ts";
import type { ConformanceReport } from "../src/runner-entry.ts";

const here = dirname(fileURLToPath(import.meta.url));
const cliPath = resolve(here, "../src/cli.ts");
const brokenPath = resolve(here, "fixtures/two-backends.ts");

/** Scratch directories of this file, removed when it ends. */
const scratchDirs: string[] = [];
afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "cnikit-conformance-cli-"));
  scratchDirs.push(dir);
  return dir;
}

function io(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), cwd } };
}

describe("readDataFile", () => {
  it("reads multi-document YAML (Calico's usual file) as the list of its documents, empty ones skipped", async () => {
    const dir = tempDir();
    const multi = join(dir, "calico.yaml");
    writeFileSync(multi, "---\nkind: IPPool\nmetadata: {name: a}\n---\n---\nkind: BGPConfiguration\nmetadata: {name: default}\n---\n");
    expect(await readDataFile(multi, "config")).toEqual([
      { kind: "IPPool", metadata: { name: "a" } },
      { kind: "BGPConfiguration", metadata: { name: "default" } },
    ]);
    const single = join(dir, "one.yaml");
    writeFileSync(single, "---\nnetwork: 10.250.0.0/16\n");
    expect(await readDataFile(single, "config")).toEqual({ network: "10.250.0.0/16" });
    const json = join(dir, "c.json");
    writeFileSync(json, '[{"a": 1}]');
    expect(await readDataFile(json, "config")).toEqual([{ a: 1 }]);
  });

  it("names the file and the document that is not valid YAML", async () => {
    const dir = tempDir();
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "kind: IPPool\n---\nkind: [unclosed\n");
    await expect(readDataFile(bad, "config")).rejects.toThrow(/the config file .*bad\.yaml is not valid YAML \(document 2\): /);
  });

  it("--help exits 0 with the usage on stdout", async () => {
    for (const flag of ["--help", "-h"]) {
      const t = io(tempDir());
      expect(await main([flag], t.io)).toBe(0);
      expect(t.out.join("")).toMatch(/^Usage: cnikit-conformance --backend/);
      expect(t.err).toEqual([]);
    }
  });
});

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
    const code = await main(
      ["--backend", "@cnikit/reference", "--config", "reference.json", "--nodes", "3", "--seed", "5", "--report", "out/report.json", "--checks", "A,cni.del-idempotent,dyn.join"],
      t.io,
    );
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
    { label: "an unknown flag", args: () => ["--bogus"], message: /unknown option --bogus; known options: --backend, --config, --nodes, .*--list-checks, --help \(-h\)/ },
    { label: "an unknown --dataplane", args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--dataplane", "ebpf"], message: /--dataplane must be sim or linux, got "ebpf"/ },
    {
      // Decided before any lab is built (kernel runs themselves are tested in @cnikit/lab).
      label: "--dataplane linux with --store (or without root)",
      args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--dataplane", "linux", "--store", "memory"],
      message: process.getuid?.() === 0 ? /--store does not apply to --dataplane linux/ : /--dataplane linux needs root/,
    },
    {
      label: "--store etcd:// without a port",
      args: () => ["--backend", "@cnikit/reference", "--config", "c.json", "--store", "etcd://127.0.0.1"],
      message: /--store etcd:\/\/127\.0\.0\.1: must be etcd:\/\/host:port/,
    },
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
    const run = spawnSync(
      tsx,
      ["--conditions=source", cliPath, "--backend", "@cnikit/reference", "--config", join(dir, "c.json"), "--checks", "ipam.in-range,cni.add-result", "--report", join(dir, "r.json")],
      {
        cwd: resolve(here, ".."),
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/ipam\.in-range\s+yes\s+passed/);
    expect(JSON.parse(readFileSync(join(dir, "r.json"), "utf8"))).toMatchObject({ backend: "reference" });
    // A usage error of --dataplane linux is exit 2 from the real process too, before any lab is
    // built (without root, root is asked for first).
    const bad = spawnSync(tsx, ["--conditions=source", cliPath, "--backend", "@cnikit/reference", "--config", join(dir, "c.json"), "--dataplane", "linux", "--invalid-configs", join(dir, "c.json")], {
      cwd: resolve(here, ".."),
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(process.getuid?.() === 0 ? /--invalid-configs does not apply to --dataplane linux/ : /needs root/);
  });
});

const workspace = resolve(here, "../..");
const tsxBin = resolve(here, "../node_modules/.bin/tsx");

/** Copies a workspace package's sources into `<project>/node_modules/<name>` (its own copy). */
function copyPackage(project: string, from: string, name: string, patch?: (dir: string) => void): void {
  const dir = join(project, "node_modules", ...name.split("/"));
  mkdirSync(dir, { recursive: true });
  cpSync(join(workspace, "packages", from, "src"), join(dir, "src"), { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, version: "0.0.0", type: "module", exports: { ".": "./src/index.ts" } }));
  patch?.(dir);
}

describe("cnikit-conformance for a third-party backend author", () => {
  it("resolves --backend from the user's project first; the backend's own copy of @cnikit/core works; section C's table comes from its `conformance` export; nodes and topology come from files", () => {
    // A project whose node_modules holds its own @cnikit/core and @cnikit/netpol, and a package
    // named like the built-in @cnikit/reference (so resolving next to the suite would find the
    // wrong one) that is a renamed copy of the reference backend built against that core.
    const project = tempDir();
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "acme-cni", private: true, type: "module" }));
    copyPackage(project, "core", "@cnikit/core");
    copyPackage(project, "netpol", "@cnikit/netpol");
    symlinkSync(realpathSync(resolve(here, "../node_modules/yaml")), join(project, "node_modules", "yaml"));
    symlinkSync(realpathSync(resolve(workspace, "packages/core/node_modules/ipaddr.js")), join(project, "node_modules", "ipaddr.js"));
    copyPackage(project, "reference", "@cnikit/reference", (dir) => {
      const index = join(dir, "src", "index.ts");
      const text = readFileSync(index, "utf8");
      expect(text).toMatch(/name: "reference"/);
      writeFileSync(index, text.replace(/name: "reference"/, 'name: "acme-reference"'));
    });
    writeFileSync(join(project, "c.json"), JSON.stringify({ network: "10.250.0.0/16", mtu: 1400 }));
    writeFileSync(join(project, "nodes.yaml"), "nodes:\n  - roles: [control-plane]\n    labels: {zone: a}\n  - annotations: {note: second}\n");
    writeFileSync(
      join(project, "topology.json"),
      JSON.stringify({
        subnets: [
          { name: "dc", cidr: "172.31.0.0/24", gateway: "172.31.0.1", mtu: 1450 },
          { name: "out", cidr: "192.0.2.0/24", gateway: "192.0.2.1", mtu: 1500 },
        ],
        routers: [
          {
            name: "gw",
            interfaces: [
              { subnet: "dc", address: "172.31.0.1" },
              { subnet: "out", address: "192.0.2.1" },
            ],
          },
        ],
        externals: [{ name: "internet", address: "192.0.2.200", subnet: "out" }],
      }),
    );
    const run = spawnSync(
      tsxBin,
      [
        "--conditions=source",
        cliPath,
        "--backend",
        "@cnikit/reference",
        "--config",
        "c.json",
        "--nodes",
        "3",
        "--checks",
        "C,ipam.unique,reach.pod-to-pod.cross-node,nat.outgoing,mtu.encap-headroom,cni.del-unknown,cni.error-codes",
        "--nodes-file",
        "nodes.yaml",
        "--topology",
        "topology.json",
        "--report",
        "r.json",
      ],
      { cwd: project, encoding: "utf8", timeout: 240_000 },
    );
    expect(run.stderr).not.toMatch(/internal error|crashed/);
    expect(run.stderr).toMatch(/section C uses the \d+ invalid configs of @cnikit\/reference's export conformance/);
    expect(run.stdout).toMatch(/^acme-reference \(c\.json\), 3 nodes/m);
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    const report = JSON.parse(readFileSync(join(project, "r.json"), "utf8")) as ConformanceReport;
    expect(report.backend).toBe("acme-reference");
    const byId = new Map(report.results.map((r) => [r.id, r]));
    // Refusals thrown by the project's copy of ConfigError are recognised by code and field.
    const invalid = byId.get("config.invalid-refused")!;
    expect(invalid.status).toBe("passed");
    expect(invalid.subResults!.length).toBeGreaterThan(10);
    expect(byId.get("config.accepts-anchor-format")!.status).toBe("passed");
    for (const r of report.results) expect([r.id, r.status]).toEqual([r.id, "passed"]);
  }, 300_000);

  it("names the loader to use for a .ts backend instead of a raw ERR_UNKNOWN_FILE_EXTENSION", async () => {
    const dir = tempDir();
    const importer = async (s: string): Promise<unknown> => {
      throw Object.assign(new TypeError(`Unknown file extension ".ts" for ${s}`), { code: "ERR_UNKNOWN_FILE_EXTENSION" });
    };
    const err = await loadBackend("./my-backend.ts", dir, importer).catch((e: unknown) => e);
    expect(String(err)).toMatch(/my-backend\.ts is a TypeScript file.*node --import tsx .*compile the backend first/);
    expect(String(err)).not.toMatch(/ERR_UNKNOWN_FILE_EXTENSION/);
  });

  it("tries the project's node_modules before the suite's, and says how to install a package found in neither", async () => {
    const project = tempDir();
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "p", private: true }));
    mkdirSync(join(project, "node_modules", "acme-backend"), { recursive: true });
    writeFileSync(join(project, "node_modules", "acme-backend", "package.json"), JSON.stringify({ name: "acme-backend", type: "module", exports: "./index.js" }));
    writeFileSync(join(project, "node_modules", "acme-backend", "index.js"), "export {};\n");
    const seen: string[] = [];
    const importer = async (s: string): Promise<unknown> => {
      seen.push(s);
      throw new Error(`Cannot find module ${s}`);
    };
    await expect(loadBackend("acme-backend", project, importer)).rejects.toThrow(/resolved from .* to .*acme-backend\/index\.js/);
    expect(seen[0]).toMatch(/^file:.*node_modules\/acme-backend\/index\.js$/);
    // An ESM-only package (exports with an "import" condition only, under a scope) resolves as an import would.
    mkdirSync(join(project, "node_modules", "@acme", "esm-only"), { recursive: true });
    writeFileSync(
      join(project, "node_modules", "@acme", "esm-only", "package.json"),
      JSON.stringify({ name: "@acme/esm-only", type: "module", exports: { ".": { types: "./x.d.ts", import: "./esm.js" } } }),
    );
    seen.length = 0;
    await expect(loadBackend("@acme/esm-only", resolve(project, "node_modules"), importer)).rejects.toThrow(/resolved from/);
    expect(seen[0]).toMatch(/^file:.*node_modules\/@acme\/esm-only\/esm\.js$/);
    seen.length = 0;
    await expect(loadBackend("not-installed-anywhere", project, importer)).rejects.toThrow(/install it in your project \(npm install not-installed-anywhere\)/);
    expect(seen).toEqual(["not-installed-anywhere"]);
  });
});

describe("nodes and topology files", () => {
  it("gives the n-th node of every cluster its roles, labels and annotations", () => {
    const meta = parseNodesFile({ nodes: [{ roles: ["control-plane"], labels: { zone: "a" } }, { annotations: { "projectcalico.org/RouteReflectorClusterID": "244.0.0.1" } }] }, "n.json");
    expect(meta(0)).toEqual({ labels: { zone: "a", "node-role.kubernetes.io/control-plane": "" } });
    expect(meta(1)).toEqual({ annotations: { "projectcalico.org/RouteReflectorClusterID": "244.0.0.1" } });
    expect(meta(2)).toEqual({});
    expect(parseNodesFile([{ labels: { a: "b" } }], "n.json")(0)).toEqual({ labels: { a: "b" } });
  });

  const badNodes: { label: string; data: unknown; message: RegExp }[] = [
    { label: "no list", data: { nodes: 3 }, message: /n\.json: nodes must be a list/ },
    { label: "an unknown top-level key", data: { node: [] }, message: /n\.json: node: unknown key/ },
    { label: "an unknown key in an entry", data: { nodes: [{}, { lables: {} }] }, message: /nodes\[1\]\.lables: unknown key; known: roles, labels, annotations/ },
    { label: "a label that is not a string", data: { nodes: [{ labels: { zone: 1 } }] }, message: /nodes\[0\]\.labels\.zone must be a string/ },
    { label: "a bad role", data: { nodes: [{ roles: ["a b"] }] }, message: /nodes\[0\]\.roles\[0\] must be a role name/ },
  ];
  for (const row of badNodes) it(`refuses a nodes file with ${row.label}, naming the field`, () => expect(() => parseNodesFile(row.data, "n.json")).toThrow(row.message));

  const badTopology: { label: string; data: unknown; message: RegExp }[] = [
    { label: "no subnets", data: {}, message: /t\.json: topology\.subnets must be a list/ },
    { label: "a misspelt key", data: { subnets: [{ name: "a", cidr: "10.0.0.0/24", mtU: 1400 }] }, message: /topology\.subnets\[0\]\.mtU: unknown key; known: name, cidr, gateway, mtu/ },
    { label: "an MTU that is not an integer", data: { subnets: [{ name: "a", cidr: "10.0.0.0/24", mtu: "1400" }] }, message: /topology\.subnets\[0\]\.mtu must be an integer/ },
    { label: "a router without interfaces", data: { subnets: [{ name: "a", cidr: "10.0.0.0/24" }], routers: [{ name: "r" }] }, message: /topology\.routers\[0\]\.interfaces must be a list/ },
    {
      label: "an external without an address",
      data: { subnets: [{ name: "a", cidr: "10.0.0.0/24" }], externals: [{ name: "x", subnet: "a" }] },
      message: /topology\.externals\[0\]\.address must be a non-empty string/,
    },
  ];
  for (const row of badTopology) it(`refuses a topology file with ${row.label}, naming the field`, () => expect(() => parseTopologyFile(row.data, "t.json")).toThrow(row.message));

  it("exits 2 naming the field when the simulator refuses the topology's addresses (a gateway off its subnet, an MTU out of range)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "c.json"), "{}");
    writeFileSync(join(dir, "t1.json"), JSON.stringify({ subnets: [{ name: "a", cidr: "10.0.0.0/24", mtu: 100 }] }));
    writeFileSync(join(dir, "t2.json"), JSON.stringify({ subnets: [{ name: "a", cidr: "10.0.0.0/24", gateway: "10.0.1.1" }] }));
    writeFileSync(join(dir, "n.json"), JSON.stringify({ nodes: [{ labels: { zone: 7 } }] }));
    const cases: [string[], RegExp][] = [
      [["--topology", "t1.json"], /t1\.json: topology\.subnets\[0\]\.mtu: .*576 to 65535/],
      [["--topology", "t2.json"], /t2\.json: topology\.subnets\[0\]\.gateway: .*must lie inside 10\.0\.0\.0\/24/],
      [["--nodes-file", "n.json"], /n\.json: nodes\[0\]\.labels\.zone must be a string/],
      [["--topology", "t1.json", "--dataplane", "linux"], process.getuid?.() === 0 ? /--topology and --nodes-file apply to the simulator/ : /needs root/],
    ];
    for (const [args, message] of cases) {
      const t = io(dir);
      const code = await main(["--backend", "@cnikit/reference", "--config", "c.json", ...args], t.io);
      expect(code, args.join(" ")).toBe(2);
      expect(t.err.join("")).toMatch(message);
    }
  });
});

describe("--strict and section C without --invalid-configs", () => {
  it("says which export to add when the backend module has no table", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "c.json"), "{}");
    const t = io(dir);
    const code = await main(["--backend", `${brokenPath}#nonIdempotentDel`, "--config", "c.json", "--checks", "config.invalid-refused"], t.io);
    expect(code).toBe(0);
    expect(t.err.join("")).toMatch(/exports no conformance\.invalidConfigs and no --invalid-configs was given/);
    expect(t.out.join("")).toMatch(/config\.invalid-refused\s+yes\s+not run\s+.*export `conformance = \{ invalidConfigs/);
  });
});
