/**
 * Azure on the kernel (root, real etcd, the cnikit-cni executable, one cnikitd per node hosting the
 * built-in azure, and `cnikit-controller` — the VNet allocator — in the lab's infra namespace with
 * the lab's fabric port): the conformance CLI with `--dataplane linux` as a real process, sections
 * A and I on the lab's default 2-node topology (two node subnets joined by a router), for every
 * mode of the fixtures:
 *  - `classic`: pods hold the node's fabric secondary addresses of its own subnet; a pod on the
 *    other subnet is reached across the router, the node answering ARP for its pods on eth0;
 *  - `dynamic`: /32s of the pod subnet, each routed to its node by the controller in the router
 *    namespace; idle assigned addresses `unreachable` on the node;
 *  - `static-block`: /28s of the pod subnet per node, routed the same way, `unreachable` per block;
 *  - `overlay`: a /24 of podCidr per node, routed by the fabric, SNAT to the node outside it.
 * Beyond the suite's own verdicts, each run's report shows the mode's addressing (the lab's pods:
 * classic in their node's subnet, the others in their node's own block of the configured range)
 * and that nothing encapsulates (pod MTU = underlay MTU on the 9000- and 1400-byte labs). The lab
 * is taken down by the run; afterAll takes down one a crash left.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CheckResult } from "@cnikit/conformance/runner";
import { Prefix, fixtureConfig } from "@cnikit/core";
import { kernelCli, namespacesOf } from "../../../conformance/test/kernel-cli.ts";
import { FIXTURE_BLOCK_SUBNET, FIXTURE_POD_CIDR, FIXTURE_POD_SUBNET, azureFixtures } from "../src/fixtures.ts";

const kernel = kernelCli("azure");
const { tmp } = kernel;

afterAll(() => kernel.cleanup(), 180_000);

interface LabReport {
  name: string;
  subnets: string[];
  nodes: { name: string; address: string }[];
  pods: { name: string; node: string; ip: string }[];
}

/** Problems with the lab pods' addresses for `mode` (empty when each pod sits where the mode puts it). */
function addressingProblems(mode: string, lab: LabReport): string[] {
  const problems: string[] = [];
  const subnets = lab.subnets.map((s) => Prefix.parse(s.split(" ")[1]!));
  const nodeAddress = new Map(lab.nodes.map((n) => [n.name, n.address]));
  // The node's block a pod's address lies in: static-block one of the node's /28s, overlay its /24.
  const blockOf = (ip: string): string => Prefix.parse(`${ip}/${mode === "overlay" ? 24 : 28}`, { allowHostBits: true }).toString();
  const blocksByNode = new Map<string, Set<string>>();
  for (const p of lab.pods) {
    const at = `pod ${p.name} (${p.ip}) on ${p.node}`;
    if (p.ip === nodeAddress.get(p.node)) problems.push(`${at} holds its node's own address`);
    if (mode === "classic") {
      const own = subnets.find((s) => s.contains(nodeAddress.get(p.node)!));
      if (!own?.contains(p.ip)) problems.push(`${at} is outside its node's subnet ${own?.toString() ?? "?"}`);
      continue;
    }
    const range = mode === "dynamic" ? FIXTURE_POD_SUBNET : mode === "static-block" ? FIXTURE_BLOCK_SUBNET : FIXTURE_POD_CIDR;
    if (!Prefix.parse(range).contains(p.ip)) problems.push(`${at} is outside ${range}`);
    if (mode === "dynamic") continue;
    const blocks = blocksByNode.get(p.node) ?? new Set<string>();
    blocks.add(blockOf(p.ip));
    blocksByNode.set(p.node, blocks);
  }
  // static-block and overlay: no block holds pods of two nodes.
  const owner = new Map<string, string>();
  for (const [node, blocks] of blocksByNode) {
    for (const b of blocks) {
      const other = owner.get(b);
      if (other !== undefined) problems.push(`block ${b} holds pods of ${other} and ${node}`);
      owner.set(b, node);
    }
  }
  return problems;
}

describe("azure on the kernel (--dataplane linux)", () => {
  it.each(["classic", "dynamic", "static-block", "overlay"])(
    "%s, 2 nodes: every kernel check of A and I passes, pods addressed as the mode says, no encapsulation; nothing is left",
    async (mode) => {
      const config = join(tmp, `${mode}.json`);
      writeFileSync(config, JSON.stringify(fixtureConfig(azureFixtures.configs, mode)));
      const report = join(tmp, `${mode}-report.json`);
      const run = await kernel.run(["--dataplane", "linux", "--backend", "@cnikit/azure", "--config", config, "--checks", "A,I", "--report", report]);
      const json = JSON.parse(readFileSync(report, "utf8")) as { dataplane: string; results: CheckResult[]; lab?: LabReport };
      if (json.lab) kernel.track(json.lab.name);
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(json.dataplane).toBe("linux");
      expect(run.stdout).toMatch(new RegExp(`^azure \\(${mode}\\.json \\[dataplane linux\\]\\), 2 nodes`, "m"));
      // The controller ran in the lab (the agents wait for its answer; the lab says so when it is ready).
      expect(run.stderr).toMatch(/lab: cnikit-controller ready/);
      const ran = json.results.filter((r) => !/^simulator-only in this version/.test(r.reason ?? ""));
      expect(ran.map((r) => r.id)).toEqual(
        expect.arrayContaining([
          "ipam.reserved",
          "ipam.concurrent-unique",
          "reach.pod-to-pod.cross-node",
          "reach.no-nat-between-pods",
          "nat.outgoing",
          "mtu.underlay-non-1500",
          "linux.same-checks",
          "linux.policy-nftables",
        ]),
      );
      expect(ran.filter((r) => r.status !== "passed").map((r) => `${r.id}: ${r.status} ${r.reason ?? ""}`)).toEqual([]);
      // Pods on both nodes, addressed as the mode says.
      const lab = json.lab!;
      expect(new Set(lab.pods.map((p) => p.node))).toEqual(new Set(lab.nodes.map((n) => n.name)));
      expect(addressingProblems(mode, lab)).toEqual([]);
      // Routed, no encapsulation: the pod MTU is the underlay's on both labs of other MTUs.
      const mtu = json.results.find((r) => r.id === "mtu.underlay-non-1500")!;
      const labels = mtu.subResults?.map((s) => s.label) ?? [];
      expect(labels.some((l) => l.startsWith("underlay MTU 9000: pod MTU 9000;"))).toBe(true);
      expect(labels.some((l) => l.startsWith("underlay MTU 1400: pod MTU 1400;"))).toBe(true);
      expect(namespacesOf(lab.name)).toEqual([]);
    },
    600_000,
  );
});
