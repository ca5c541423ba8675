/**
 * Weave on the kernel (root, real etcd, the cnikit-cni executable, one cnikitd per node hosting
 * the built-in weave): the conformance CLI with `--dataplane linux` as a real process, sections A
 * and I on a 2-node lab, for every mode: `fastdp` (the kernel vxlan port on bridge weave),
 * `sleeve` (WEAVE_NO_FASTDP) and `encrypted` (WEAVE_PASSWORD). For the sleeve modes the plan's `sleeve-6783` link is rendered through weave's userspace datapath
 * (src/datapath.ts: a TAP made by the native helper + SleeveRelay inside cnikitd, keys by the
 * relay's own handshake when encrypted), so every kernel check passes, the full-size DF pings of
 * `mtu.*` included (the sleeve's 82 bytes). The TAP helper is built first (scripts/build-tap.mjs,
 * what `pnpm build` runs). The lab is taken down by the run; afterAll takes down one a crash left.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureConfig } from "@cnikit/core";
import { weaveFixtures } from "../src/fixtures.ts";
import { buildWeaveTap } from "../src/sleeve/tap.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const cli = join(root, "conformance", "src", "cli.ts");
const labCli = join(root, "packages", "lab", "src", "cli.ts");
const tsx = createRequire(join(root, "package.json")).resolve("tsx/esm");
const tmp = mkdtempSync(join(tmpdir(), "cnikit-weave-kernel-"));
const labs = new Set<string>();

/** Network namespaces whose name mentions the lab (the lab's nodes, pods, router, etcd). */
function namespacesOf(lab: string): string[] {
  const out = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  return out.stdout.split("\n").map((l) => l.split(" ")[0]!).filter((ns) => ns.includes(lab));
}

beforeAll(() => {
  buildWeaveTap();
});

afterAll(() => {
  for (const lab of labs) {
    if (namespacesOf(lab).length > 0) spawnSync(process.execPath, ["--conditions=source", "--import", tsx, labCli, "down", "--name", lab], { cwd: root, encoding: "utf8", timeout: 120_000 });
  }
  rmSync(tmp, { recursive: true, force: true });
}, 180_000);

/** Runs the CLI to the end without blocking the test's event loop; resolves with its exit and output. */
function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // CNIKIT_FROM_SOURCE: the lab's cnikitd runs from source (the lab hands CNIKIT_* on to its daemons).
    const child = spawn(process.execPath, ["--conditions=source", "--import", tsx, cli, ...args], { cwd: root, env: { ...process.env, CNIKIT_FROM_SOURCE: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
    child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

interface Result {
  id: string;
  status: string;
  reason?: string;
  subResults?: { label: string; status: string }[];
}

describe("weave on the kernel (--dataplane linux)", () => {
  it.each([
    ["fastdp", "vxlan 50"],
    ["sleeve", "sleeve 82"],
    ["encrypted", "sleeve 82"],
  ])("%s, 2 nodes: every kernel check of A and I passes (full-size pings over %s); nothing is left", async (mode, overhead) => {
    const config = join(tmp, `${mode}.json`);
    writeFileSync(config, JSON.stringify(fixtureConfig(weaveFixtures.configs, mode)));
    const report = join(tmp, `${mode}-report.json`);
    const run = await runCli(["--dataplane", "linux", "--backend", "@cnikit/weave", "--config", config, "--checks", "A,I", "--report", report]);
    const json = JSON.parse(readFileSync(report, "utf8")) as { dataplane: string; results: Result[]; lab?: { name: string } };
    if (json.lab) labs.add(json.lab.name);
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(json.dataplane).toBe("linux");
    expect(run.stdout).toMatch(new RegExp(`^weave \\(${mode}\\.json \\[dataplane linux\\]\\), 2 nodes`, "m"));
    const ran = json.results.filter((r) => !/^simulator-only in this version/.test(r.reason ?? ""));
    expect(ran.map((r) => r.id)).toEqual(expect.arrayContaining(["reach.pod-to-pod.cross-node", "mtu.encap-headroom", "linux.same-checks", "linux.policy-nftables"]));
    expect(ran.filter((r) => r.status !== "passed").map((r) => `${r.id}: ${r.status} ${r.reason ?? ""}`)).toEqual([]);
    // The full-size pings crossed the mode's datapath: the sleeve (its 82 bytes) or the vxlan port.
    const mtu = json.results.find((r) => r.id === "mtu.underlay-non-1500")!;
    expect(mtu.subResults?.map((s) => s.label).join("\n")).toContain(`+ ${overhead}`);
    expect(namespacesOf(json.lab!.name)).toEqual([]);
  }, 600_000);
});
