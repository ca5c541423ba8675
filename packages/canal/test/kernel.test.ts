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
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CheckResult } from "@cnikit/conformance/runner";
import { fixtureConfig } from "@cnikit/core";
import { kernelCli, namespacesOf } from "../../../conformance/test/kernel-cli.ts";
import { canalFixtures } from "../src/fixtures.ts";

const kernel = kernelCli("canal");
const { tmp } = kernel;

afterAll(() => kernel.cleanup(), 180_000);

describe("canal on the kernel (--dataplane linux)", () => {
  it("vxlan, 2 nodes: every kernel check of A and I passes, linux.policy-nftables included (the policy denies something, in both the simulator and nftables); nothing is left", async () => {
    const config = join(tmp, "net-conf.json");
    writeFileSync(config, JSON.stringify(fixtureConfig(canalFixtures.configs, "vxlan")));
    const report = join(tmp, "report.json");
    const run = await kernel.run(["--dataplane", "linux", "--backend", "@cnikit/canal", "--config", config, "--checks", "A,I", "--report", report]);
    const json = JSON.parse(readFileSync(report, "utf8")) as { dataplane: string; results: CheckResult[]; lab?: { name: string } };
    if (json.lab) kernel.track(json.lab.name);
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
