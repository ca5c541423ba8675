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
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckResult } from "@cnikit/conformance/runner";
import { fixtureConfig } from "@cnikit/core";
import { kernelCli, namespacesOf } from "../../../conformance/test/kernel-cli.ts";
import { weaveFixtures } from "../src/fixtures.ts";
import { buildWeaveTap } from "../src/sleeve/tap.ts";

const kernel = kernelCli("weave");
const { tmp } = kernel;

beforeAll(() => {
  buildWeaveTap();
});

afterAll(() => kernel.cleanup(), 180_000);

describe("weave on the kernel (--dataplane linux)", () => {
  it.each([
    ["fastdp", "vxlan 50"],
    ["sleeve", "sleeve 82"],
    ["encrypted", "sleeve 82"],
  ])(
    "%s, 2 nodes: every kernel check of A and I passes (full-size pings over %s); nothing is left",
    async (mode, overhead) => {
      const config = join(tmp, `${mode}.json`);
      writeFileSync(config, JSON.stringify(fixtureConfig(weaveFixtures.configs, mode)));
      const report = join(tmp, `${mode}-report.json`);
      const run = await kernel.run(["--dataplane", "linux", "--backend", "@cnikit/weave", "--config", config, "--checks", "A,I", "--report", report]);
      const json = JSON.parse(readFileSync(report, "utf8")) as { dataplane: string; results: CheckResult[]; lab?: { name: string } };
      if (json.lab) kernel.track(json.lab.name);
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
    },
    600_000,
  );
});
