/**
 * cnikit-bench on the kernel (root, iproute2, etcd, bird2 — as every lab test here: a missing
 * piece fails with what to install, nothing skips): a small cold start of the reference backend,
 * a mode the kernel cannot build (reported, not crashed), and calico beside the BIRD mesh at K=3, with real figures — converged, every node's FIB read and
 * judged, BIRD's processes gone after. The FIB rule itself is tested on plain data too.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { Prefix } from "@cnikit/core";
import { kernelSupports } from "@cnikit/lab";
import { describe, expect, it } from "vitest";
import { calicoBirdConfig, meshProtocolName } from "../src/linux-bird.ts";
import { renderBirdComparison } from "../src/linux-cli.ts";
import { fibProblems, parseRouteEvent, type FibView } from "../src/linux-fib.ts";
import { LINUX_QUIET_MS, runLinuxBench, type KernelTarget } from "../src/linux.ts";
import { renderMarkdown } from "../src/markdown.ts";
import type { BirdMeshTarget } from "../src/linux-bird.ts";

const pool = [Prefix.parse("10.244.0.0/16")];
const view = (node: string, address: string, block: string, routes: FibView["routes"]): FibView => ({
  node,
  addresses: [{ address, prefixLength: 24, dev: "eth0" }],
  routes: [{ dst: block, type: "blackhole" }, ...routes],
});

describe("the FIB rule (plain data)", () => {
  const a = (routes: FibView["routes"]) => view("a", "198.51.100.10", "10.244.1.0/26", routes);
  const b = (routes: FibView["routes"]) => view("b", "198.51.100.11", "10.244.2.0/26", routes);

  it("holds when every node routes every other node's range via that node, and names what is missing, wrong or stale", () => {
    expect(fibProblems([a([{ dst: "10.244.2.0/26", gateway: "198.51.100.11", dev: "eth0" }]), b([{ dst: "10.244.1.0/26", gateway: "198.51.100.10", dev: "eth0" }])], pool)).toEqual([]);
    expect(fibProblems([a([]), b([{ dst: "10.244.1.0/26", gateway: "198.51.100.10" }])], pool)).toEqual(["node a has no route to 10.244.2.0/26 (node b's) via an address of b"]);
    expect(fibProblems([a([{ dst: "10.244.2.0/26", gateway: "198.51.100.99" }]), b([{ dst: "10.244.1.0/26", gateway: "198.51.100.10" }])], pool)[0]).toContain(
      "it has 10.244.2.0/26 via 198.51.100.99",
    );
    // A route left to a node that is gone (not among the live views).
    expect(fibProblems([a([{ dst: "10.244.3.0/26", gateway: "198.51.100.12" }])], pool)).toEqual(["node a has a route no live node's range explains: 10.244.3.0/26 via 198.51.100.12"]);
    expect(fibProblems([{ node: "c", addresses: [], routes: [] }], pool)).toEqual(["node c owns no pod range yet"]);
  });

  it("reads `ip -ts monitor route` lines with their timestamps", () => {
    const e = parseRouteEvent("a", "[2026-12-07T17:55:40.876504] Deleted unreachable 240.0.0.1 proto 250 ");
    expect(e).toMatchObject({ node: "a", deleted: true, dst: "240.0.0.1", at: new Date("2026-12-07T17:55:40.876").getTime() });
    expect(parseRouteEvent("a", "[2026-12-07T17:55:40.1] 10.244.2.0/26 via 198.51.100.11 dev eth0 proto bird")?.dst).toBe("10.244.2.0/26");
    expect(parseRouteEvent("a", "not a route")).toBeUndefined();
  });

  it("writes Calico's mesh settings: AS 64512, its own block, passive towards lower addresses", () => {
    const nodes = [
      { name: "node-1", address: "198.51.100.10", block: "10.244.1.0/26" },
      { name: "node-2", address: "198.51.100.11", block: "10.244.2.0/26" },
    ];
    const one = calicoBirdConfig({ self: nodes[0]!, peers: nodes, pool: "10.244.0.0/16" });
    const two = calicoBirdConfig({ self: nodes[1]!, peers: nodes, pool: "10.244.0.0/16" });
    expect(one).toContain("route 10.244.1.0/26 blackhole;");
    expect(one).toContain(`protocol bgp ${meshProtocolName("198.51.100.11")} from bgp_template`);
    expect(one).not.toContain("passive on");
    expect(two).toContain("passive on");
    for (const text of ["local as 64512;", "graceful restart;", "connect delay time 2;", "scan time 2;", "add paths on;", "gateway recursive;"]) expect(one).toContain(text);
  });
});

describe("cnikit-bench --dataplane linux (root)", () => {
  it("times a cold start of the reference backend on 2 nodes from the kernel FIB", async () => {
    const report = await runLinuxBench({ backend: "reference", nodes: [2], runs: 1, scenarios: ["cold-start", "silent"] });
    expect(report.dataplane).toBe("linux");
    const cold = report.results.find((r) => r.scenario === "cold-start")!;
    expect(cold.runs[0]?.reason).toBeUndefined();
    expect(cold.convergedRuns).toBe(1);
    // Both nodes learned one route each at least (events on live nodes), and the point is after t0 and before the quiet period ended.
    expect(cold.runs[0]!.stateChanges).toBeGreaterThanOrEqual(2);
    expect(cold.kernelMs!.median).toBeGreaterThan(0);
    expect(cold.runs[0]!.wallMs).toBeGreaterThanOrEqual(cold.kernelMs!.median + LINUX_QUIET_MS);
    expect(report.results.find((r) => r.scenario === "silent")!.notRun).toMatch(/^not run on linux: /);
    expect(renderMarkdown([report])).toMatch(/\| reference\/default \(linux\) \| [\d,]+ ms kernel FIB · /);
    // The lab is gone after the run: no namespace of it is left.
    expect((existsSync("/run/netns") ? readdirSync("/run/netns") : []).filter((ns) => ns.startsWith(`ckl-bl${process.pid % 100_000}x`))).toEqual([]);
  }, 120_000);

  it("reports every scenario of a mode the kernel cannot build as 'not run on linux: kernel lacks ...', building no lab", async () => {
    const report = await runLinuxBench({ backend: "calico", mode: "ipip-always", nodes: [2], runs: 1, scenarios: ["cold-start", "crash"] });
    if (await kernelSupports("ipip")) {
      // A kernel with ipip: the mode runs (the check asks the kernel, not a list).
      expect(report.results[0]!.notRun).toBeUndefined();
      return;
    }
    for (const r of report.results) {
      expect(r.notRun).toMatch(/^not run on linux: kernel lacks ipip: calico mode ipip-always/);
      expect(r.runs).toEqual([]);
    }
    expect(renderMarkdown([report])).toContain("| calico/ipip-always (linux) | not run on linux: kernel lacks ipip");
  }, 120_000);

  it("compares calico with a BIRD full mesh at K=3 (cold start), and stops every BIRD it started", async () => {
    const closed: KernelTarget[] = [];
    const common = { backend: "calico", mode: "bgp", nodes: [3], runs: 1, scenarios: ["cold-start" as const], onTargetClosed: (t: KernelTarget) => void closed.push(t) };
    const calico = await runLinuxBench(common);
    const bird = await runLinuxBench({ ...common, target: "bird-mesh" });
    for (const r of [calico, bird]) {
      const cold = r.results[0]!;
      expect(cold.runs[0]?.reason, r.backend).toBeUndefined();
      expect(cold.convergedRuns).toBe(1);
      // Every node learns the other two blocks: at least 3·2 route events.
      expect(cold.runs[0]!.stateChanges).toBeGreaterThanOrEqual(6);
    }
    expect(bird.backend).toBe("bird-mesh");
    const pids = (closed[1] as BirdMeshTarget).pids;
    expect(pids).toHaveLength(3);
    for (const pid of pids) expect(() => readFileSync(`/proc/${pid}/cmdline`)).toThrow();
    const md = renderBirdComparison([calico, bird]);
    expect(md).toMatch(/\| cold-start \| 3 \| [\d,]+ ms kernel FIB · .* \| [\d,]+ ms kernel FIB · .* \| \d+\.\d\d× \|/);
  }, 150_000);
});
