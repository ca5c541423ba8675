import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { singleSubnetTopology, type SimTopology } from "@cnikit/sim";
import { main } from "../src/cli.ts";
import type { CliIo } from "../src/cli.ts";
import { SCENARIO_IDS } from "../src/index.ts";
import type { BenchReport } from "../src/index.ts";

const here = resolve(import.meta.dirname, "..");
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function io(tty: { isTTY?: boolean; env?: Record<string, string> } = {}): CliIo & { out: string; err: string } {
  const o = {
    out: "",
    err: "",
    cwd: here,
    isTTY: tty.isTTY ?? false,
    env: tty.env ?? {},
    stdout: (t: string) => void (o.out += t),
    stderr: (t: string) => void (o.err += t),
  };
  return o;
}

describe("cnikit-bench CLI", () => {
  it("--help prints the usage and exits 0", async () => {
    const x = io();
    expect(await main(["--help"], x)).toBe(0);
    expect(x.out).toContain("Usage: cnikit-bench");
    for (const id of SCENARIO_IDS) expect(x.out).toContain(id);
  });

  it("refuses an unknown flag with exit 2, listing the known ones", async () => {
    const x = io();
    expect(await main(["--backend", "reference", "--nodez", "3"], x)).toBe(2);
    expect(x.err).toMatch(/--nodez/);
    expect(x.err).toContain("known options: --backend, --config, --all-builtins, --nodes, --scenarios, --runs");
    expect(x.out).toBe("");
  });

  it("refuses --dataplane linux above 8 nodes and --compare-bird without it (exit 2), and bad values naming the flag", async () => {
    const x = io();
    expect(await main(["--backend", "reference", "--dataplane", "linux", "--nodes", "3,9"], x)).toBe(2);
    expect(x.err).toContain("--nodes: --dataplane linux builds labs of at most 8 nodes here, got 9");
    const v = io();
    expect(await main(["--backend", "calico", "--compare-bird"], v)).toBe(2);
    expect(v.err).toContain("--compare-bird runs on the kernel: add --dataplane linux");
    const y = io();
    expect(await main(["--backend", "reference", "--nodes", "1"], y)).toBe(2);
    expect(y.err).toContain("--nodes must be a comma-separated list of integers from 2 to 5000");
    const z = io();
    expect(await main(["--backend", "reference", "--scenarios", "join,nope"], z)).toBe(2);
    expect(z.err).toContain('unknown scenario "nope"');
    const w = io();
    expect(await main(["--backend", "./test/tiny-backend.ts"], w)).toBe(2);
    expect(w.err).toContain("--config is required with a backend module");
  });

  it("benchmarks a backend module given by path and a built-in one, writing JSON and Markdown", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cnikit-bench-"));
    dirs.push(dir);
    const x = io();
    const args = ["--nodes", "2", "--runs", "1", "--scenarios", "join,leave", "--json", join(dir, "out.json"), "--markdown", join(dir, "out.md")];
    expect(await main(["--backend", "./test/tiny-backend.ts#tiny", "--config", "./test/tiny-config.json", ...args], x)).toBe(0);
    const json = JSON.parse(await readFile(join(dir, "out.json"), "utf8")) as { tool: string; reports: BenchReport[] };
    expect(json.tool).toBe("cnikit-bench");
    expect(json.reports.map((r) => [r.backend, r.results.map((s) => [s.scenario, s.nodes, s.convergedRuns])])).toEqual([
      [
        "tiny",
        [
          ["join", 2, 1],
          ["leave", 2, 1],
        ],
      ],
    ]);
    expect(await readFile(join(dir, "out.md"), "utf8")).toContain("| tiny/tiny-config |");
    expect(x.out).toContain("## join:");
    const y = io();
    expect(await main(["--backend", "reference", ...args], y)).toBe(0);
    expect(y.out).toMatch(/\| reference\/default \| \d[\d,]* ms virt/);
  }, 60_000);

  it("--topology sets the simulated underlay of every target (a /16 node subnet); an invalid one is a usage error naming the field, and the kernel lab refuses it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cnikit-bench-"));
    dirs.push(dir);
    // The simulator's single-subnet underlay with its node subnet widened from /24 to /16.
    const wide = JSON.parse(JSON.stringify(singleSubnetTopology()).replaceAll("198.51.100.0/24", "10.200.0.0/16").replaceAll("198.51.100.1", "10.200.0.1")) as SimTopology;
    await writeFile(join(dir, "wide.json"), JSON.stringify(wide));
    const x = io();
    expect(await main(["--backend", "reference", "--nodes", "2", "--runs", "1", "--scenarios", "join", "--topology", join(dir, "wide.json"), "--json", join(dir, "out.json")], x)).toBe(0);
    const json = JSON.parse(await readFile(join(dir, "out.json"), "utf8")) as { reports: BenchReport[] };
    expect(json.reports.map((r) => r.topology.subnets.map((s) => s.cidr))).toEqual([["10.200.0.0/16", "192.0.2.0/24"]]);
    expect(json.reports[0]!.results[0]!.convergedRuns).toBe(1);
    await writeFile(join(dir, "bad.json"), JSON.stringify({ ...wide, subnets: [{ name: "nodes", cidr: "10.200.0.0/33" }] }));
    const y = io();
    expect(await main(["--backend", "reference", "--nodes", "2", "--topology", join(dir, "bad.json")], y)).toBe(2);
    expect(y.err).toContain("--topology");
    expect(y.err).toContain("cidr");
    const z = io();
    expect(await main(["--backend", "reference", "--nodes", "2", "--dataplane", "linux", "--topology", join(dir, "wide.json")], z)).toBe(2);
    expect(z.err).toContain("--topology sets the simulated underlay");
  }, 60_000);

  it("puts several --backend side by side in one table per scenario (a module with its --config, a built-in's fixture modes); a --config left over is a usage error", async () => {
    const x = io();
    const args = ["--nodes", "2", "--runs", "1", "--scenarios", "join"];
    expect(await main(["--backend", "./test/tiny-backend.ts#tiny", "--config", "./test/tiny-config.json", "--backend", "reference", ...args], x)).toBe(0);
    const table = x.out.slice(x.out.indexOf("## join:"));
    expect(table).toContain("| tiny/tiny-config |");
    expect(table).toMatch(/\| reference\/default \| \d[\d,]* ms virt/);
    expect(x.out.match(/## join:/g)).toHaveLength(1);
    const y = io();
    expect(await main(["--backend", "reference", "--config", "./test/tiny-config.json", "--backend", "flannel", "--config", "./test/tiny-config.json", ...args], y)).toBe(2);
    expect(y.err).toContain("--config: ./test/tiny-config.json, ./test/tiny-config.json left over");
  }, 60_000);

  it("draws a progress line on a TTY's stderr, and none in CI", async () => {
    const args = ["--backend", "reference", "--nodes", "2", "--runs", "1", "--scenarios", "leave"];
    const tty = io({ isTTY: true });
    expect(await main(args, tty)).toBe(0);
    expect(tty.err).toContain("\r[########################] 1/1 reference/default leave N=2 run 1");
    const ci = io({ isTTY: true, env: { CI: "true" } });
    expect(await main(args, ci)).toBe(0);
    expect(ci.err).toBe("");
  }, 60_000);

  it("runs through an npm .bin symlink", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cnikit-bench-bin-"));
    dirs.push(dir);
    await mkdir(join(dir, ".bin"));
    const link = join(dir, ".bin", "cnikit-bench");
    await symlink(resolve(here, "src/cli.ts"), link);
    const { stdout } = await promisify(execFile)(process.execPath, ["--conditions=source", "--import", "tsx", link, "--help"], { cwd: here });
    expect(stdout).toContain("Usage: cnikit-bench");
  }, 60_000);
});
