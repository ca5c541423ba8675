/**
 * Canal on the kernel (root, real etcd, the cnikit-cni executable, one cnikitd per node hosting
 * the built-in canal): the conformance CLI with `--dataplane linux` as a real process, sections A
 * and I on a 2-node lab with flannel's vxlan mode (section B, the CNI lifecycle through the
 * executable, is flannel's agent unchanged: flannel's kernel run in @cnikit/lab covers it, and
 * canal's simulator run passes it). Every kernel check passes, and
 * `linux.policy-nftables` — claimed by canal — shows a NetworkPolicy written to the lab's etcd
 * enforced by nftables exactly as the simulator and netpol's evaluator say. The kernel driver
 * (@cnikit/lab) is found by the CLI from the workspace root, as for any backend, so canal does not
 * depend on the lab (which depends on the registry, which lists canal). The lab is taken down by the
 * run (the CLI is never killed half-way, so it always can); afterAll takes down one a crash left behind.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { fixtureConfig } from "@cnikit/core";
import { canalFixtures } from "../src/fixtures.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const cli = join(root, "conformance", "src", "cli.ts");
const labCli = join(root, "packages", "lab", "src", "cli.ts");
const tsx = createRequire(join(root, "package.json")).resolve("tsx/esm");
const tmp = mkdtempSync(join(tmpdir(), "cnikit-canal-kernel-"));
const labs = new Set<string>();

/** Network namespaces whose name mentions the lab (the lab's nodes, pods, router, etcd). */
function namespacesOf(lab: string): string[] {
  const out = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  return out.stdout.split("\n").map((l) => l.split(" ")[0]!).filter((ns) => ns.includes(lab));
}

afterAll(() => {
  for (const lab of labs) {
    if (namespacesOf(lab).length > 0) spawnSync(process.execPath, ["--conditions=source", "--import", tsx, labCli, "down", "--name", lab], { cwd: root, encoding: "utf8", timeout: 120_000 });
  }
  rmSync(tmp, { recursive: true, force: true });
}, 180_000);

/** Runs the CLI to the end without blocking the test's event loop; resolves with its exit and output. */
function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // CNIKIT_FROM_SOURCE: the lab's cnikitd runs @cnikit/cni from source (the lab hands CNIKIT_*
    // on to its daemons), so a stale dist/ of the registry cannot hide canal from it.
    const child = spawn(process.execPath, ["--conditions=source", "--import", tsx, cli, ...args], { cwd: root, env: { ...process.env, CNIKIT_FROM_SOURCE: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
    child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
    child.on("error", reject);
    child.on("close", (status) => {
      resolve({ status, stdout, stderr });
    });
  });
}

interface Result {
  id: string;
  status: string;
  reason?: string;
  subResults?: { label: string; status: string }[];
}

describe("canal on the kernel (--dataplane linux)", () => {
  it("vxlan, 2 nodes: every kernel check of A and I passes, linux.policy-nftables included (the policy denies something, in both the simulator and nftables); nothing is left", async () => {
    const config = join(tmp, "net-conf.json");
    writeFileSync(config, JSON.stringify(fixtureConfig(canalFixtures.configs, "vxlan")));
    const report = join(tmp, "report.json");
    const run = await runCli(["--dataplane", "linux", "--backend", "@cnikit/canal", "--config", config, "--checks", "A,I", "--report", report]);
    const json = JSON.parse(readFileSync(report, "utf8")) as { dataplane: string; results: Result[]; lab?: { name: string } };
    if (json.lab) labs.add(json.lab.name);
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(json.dataplane).toBe("linux");
    expect(run.stdout).toMatch(/^canal \(net-conf\.json \[dataplane linux\]\), 2 nodes/m);
    const ran = json.results.filter((r) => !/^simulator-only in this version/.test(r.reason ?? ""));
    expect(ran.map((r) => r.id)).toContain("linux.policy-nftables");
    expect(ran.filter((r) => r.status !== "passed").map((r) => `${r.id}: ${r.status} ${r.reason ?? ""}`)).toEqual([]);
    const policy = json.results.find((r) => r.id === "linux.policy-nftables")!;
    expect(policy.subResults?.[0]?.label).toMatch(/^simulator: \d+ reached, [1-9]\d* denied/);
    expect(policy.subResults?.[1]?.label).toMatch(/^kernel after \d+ round\(s\): \d+ reached, [1-9]\d* denied/);
    expect(policy.subResults?.[2]).toMatchObject({ label: "pod → pod TCP/UDP 8080 as netpol's evaluator says", status: "passed" });
    expect(namespacesOf(json.lab!.name)).toEqual([]);
  }, 600_000);
});
