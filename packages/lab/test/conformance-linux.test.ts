/**
 * The conformance suite on the kernel (root, real etcd, the cnikit-cni executable): sections A and
 * I (with B's executable-only checks) for one flannel and one calico config on 2-node labs; all of
 * section B — the suite's own LIFECYCLE_CHECKS on the lab's lifecycle driver, a /28 share and 32
 * churn pairs so each run takes minutes — green for reference and flannel vxlan, and a broken
 * variant (DEL keeps the address) turning cni.del-releases red on the kernel as in the simulator;
 * mtu.underlay-non-1500 on labs with 9000- and 1400-byte underlays; the IPIP config the kernel cannot build, the checks failing on a lab
 * broken behind the backend's back and on a plugin that lies about its errors, and the CLI's
 * `--dataplane linux` as a real process. Labs are named `c<pid>...`; each run takes its lab down,
 * and afterAll removes any left by a crash.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { builtinBackend } from "@cnikit/backends";
import { cniPluginPath } from "@cnikit/cni";
import { listChecks, renderTable, runConformance, type CheckResult } from "@cnikit/conformance/runner";
import { listNetns } from "@cnikit/linux";
import { LINUX_CHECKS, downLabWithExtras, kernelSupports, labDir, nsPrefix, runLinuxConformance, type LinuxConformanceReport } from "../src/index.ts";

const RUN = `c${process.pid}`;
const made = new Set<string>();
const labName = (suffix: string): string => {
  const name = `${RUN}${suffix}`.slice(0, 20);
  made.add(name);
  return name;
};
const tmp = mkdtempSync(join(tmpdir(), "cnikit-conf-linux-"));

afterAll(async () => {
  for (const name of made) await downLabWithExtras(name);
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

async function leftovers(name: string): Promise<string[]> {
  const out = (await listNetns()).filter((ns) => ns.startsWith(`${nsPrefix(name)}-`));
  if (existsSync(labDir(name))) out.push(labDir(name));
  return out;
}

function statuses(r: LinuxConformanceReport): Record<string, CheckResult["status"]> {
  return Object.fromEntries(r.results.map((x) => [x.id, x.status]));
}

const KERNEL_IDS = LINUX_CHECKS.map((c) => c.id);

/** Section B's checks that take seconds on the kernel (the rest fill a node's share and churn 200 pods). */
const QUICK_B = [
  "cni.add-result",
  "cni.result-versions",
  "cni.plugin-error-json",
  "cni.add-idempotent",
  "cni.del-idempotent",
  "cni.del-unknown",
  "cni.check-after-add",
  "cni.check-detects-missing",
  "cni.status",
  "cni.error-codes",
];

/** Every selected check appears once, in the suite's order; those the kernel does not run are "not run", never passed. */
function expectShapeOf(r: LinuxConformanceReport, checks: string[]): void {
  expect(r.dataplane).toBe("linux");
  const ids = listChecks()
    .filter((c) => checks.includes(c.section) || checks.includes(c.id))
    .map((c) => c.id);
  expect(r.results.map((x) => x.id)).toEqual(ids);
  for (const x of r.results.filter((y) => !KERNEL_IDS.includes(y.id))) {
    expect(x, x.id).toMatchObject({ status: "not run", reason: expect.stringMatching(/^simulator-only in this version/) });
  }
}

describe("the conformance suite with --dataplane linux", () => {
  it("flannel vxlan, 2 nodes: every check of A and I (and B's executable-only checks) passes on the kernel; policy is not claimed; the other sections are not run; nothing is left", async () => {
    const name = labName("f");
    const r = await runLinuxConformance({ backend: "flannel", mode: "vxlan", nodes: 2, name, checks: ["A", "I", ...QUICK_B] });
    expectShapeOf(r, ["A", "I", ...QUICK_B]);
    const s = statuses(r);
    const bad = r.results.filter((x) => KERNEL_IDS.includes(x.id) && x.id !== "linux.policy-nftables" && x.status !== "passed");
    expect(bad, renderTable([r])).toEqual([]);
    expect(s["linux.policy-nftables"]).toBe("not claimed");
    expect(r.config).toBe("vxlan [dataplane linux]");
    expect(r.lab?.nodes.map((n) => n.address)).toEqual(["198.51.100.10", "203.0.113.10"]);
    expect(r.lab?.pods).toHaveLength(4);
    // Section I compared real cells: 4 pods, 2 nodes, 1 external host.
    expect(r.results.find((x) => x.id === "linux.same-checks")?.subResults?.[0]?.label).toMatch(/^96 cells agree/);
    expect(r.results.find((x) => x.id === "cni.result-versions")?.subResults?.map((x) => x.status)).toEqual(["passed", "passed", "passed", "passed", "passed", "passed"]);
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("calico bgp, 2 nodes: A, I and B's quick checks pass, and the NetworkPolicy written to etcd is enforced by nftables as the simulator and netpol say", async () => {
    const name = labName("b");
    const r = await runLinuxConformance({ backend: "calico", mode: "bgp", nodes: 2, name, checks: ["A", "I", ...QUICK_B] });
    expectShapeOf(r, ["A", "I", ...QUICK_B]);
    const bad = r.results.filter((x) => KERNEL_IDS.includes(x.id) && x.status !== "passed");
    expect(bad, renderTable([r])).toEqual([]);
    const policy = r.results.find((x) => x.id === "linux.policy-nftables")!;
    // The policy denied something in both (the check refuses a policy that isolates nothing).
    expect(policy.subResults?.[0]?.label).toMatch(/^simulator: \d+ reached, [1-9]\d* denied/);
    expect(policy.subResults?.[1]?.label).toMatch(/^kernel after \d+ round\(s\): \d+ reached, [1-9]\d* denied/);
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("calico ipip-always: every kernel check is 'not run: kernel lacks ipip' (never passed) when the kernel lacks ipip", async () => {
    const name = labName("i");
    const r = await runLinuxConformance({ backend: "calico", mode: "ipip-always", nodes: 2, name, checks: ["A", "B", "I"] });
    // Sections A, B and I in the suite's order; those without a kernel implementation are "simulator-only".
    expect(r.results.map((x) => x.id)).toEqual(
      listChecks()
        .filter((c) => ["A", "B", "I"].includes(c.section))
        .map((c) => c.id),
    );
    const kernel = r.results.filter((x) => KERNEL_IDS.includes(x.id));
    expect(kernel.map((x) => x.id).sort()).toEqual(
      LINUX_CHECKS.filter((c) => ["A", "B", "I"].includes(c.section))
        .map((c) => c.id)
        .sort(),
    );
    for (const x of r.results.filter((y) => !KERNEL_IDS.includes(y.id))) expect(x, x.id).toMatchObject({ status: "not run", reason: expect.stringMatching(/^simulator-only in this version/) });
    if (await kernelSupports("ipip")) {
      // A kernel with ipip runs the checks instead of refusing.
      expect(kernel.every((x) => !/kernel lacks/.test(x.reason ?? ""))).toBe(true);
    } else {
      for (const x of kernel) expect(x, x.id).toMatchObject({ status: "not run", reason: expect.stringMatching(/^kernel lacks ipip: /) });
    }
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("calico bgp without natOutgoing: the external host sees pod addresses or nothing (no route back), and the simulator agrees", async () => {
    const name = labName("n");
    const config = [{ apiVersion: "projectcalico.org/v3", kind: "IPPool", metadata: { name: "default-ipv4-ippool" }, spec: { cidr: "10.244.0.0/16", natOutgoing: false } }];
    const r = await runLinuxConformance({
      backend: "calico",
      config,
      configLabel: "no-nat",
      nodes: 2,
      podsPerNode: 1,
      name,
      checks: ["nat.outgoing", "reach.no-nat-between-pods", "linux.same-checks"],
    });
    expect(statuses(r), renderTable([r])).toEqual({ "nat.outgoing": "passed", "reach.no-nat-between-pods": "passed", "linux.same-checks": "passed" });
    // Pod → internet (2 pods x 3 protocols) is unreachable in both: no NAT and no route back; the rest reached.
    expect(r.results.find((x) => x.id === "linux.same-checks")?.subResults?.[0]?.label).toMatch(/^\d+ cells agree \(\d+ reached, 6 unreachable in both\)/);
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("the checks fail on a broken lab: NAT between pods on node-1, node-1 dropping its pods' traffic to the internet, a pod MTU of 1500 under VXLAN (reach alone still passes)", async () => {
    const name = labName("x");
    const r = await runLinuxConformance({
      backend: "flannel",
      mode: "vxlan",
      nodes: 2,
      podsPerNode: 1,
      name,
      checks: ["reach.pod-to-pod.cross-node", "reach.pod-to-node", "reach.no-nat-between-pods", "nat.outgoing", "mtu.encap-headroom", "linux.same-checks"],
      prepare: async (lab) => {
        const nat = await lab.exec("node-1", ["nft", "-f", "-"], {
          input:
            'table ip conftest {\n chain post {\n  type nat hook postrouting priority 100; policy accept;\n  ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 oifname "flannel.1" masquerade\n }\n' +
            " chain cfdrop {\n  type filter hook forward priority -10; policy accept;\n  ip saddr 10.244.0.0/16 ip daddr 192.0.2.200 drop\n }\n}\n",
        });
        expect(nat.code, nat.stderr).toBe(0);
        const mtu = await lab.exec("pod-2-1", ["ip", "link", "set", "eth0", "mtu", "1500"]);
        expect(mtu.code, mtu.stderr).toBe(0);
      },
    });
    const s = statuses(r);
    expect(s, renderTable([r])).toEqual({
      "reach.pod-to-pod.cross-node": "passed",
      "reach.pod-to-node": "passed",
      "reach.no-nat-between-pods": "failed",
      "nat.outgoing": "failed",
      "mtu.encap-headroom": "failed",
      "linux.same-checks": "failed",
    });
    const reason = (id: string): string => r.results.find((x) => x.id === id)?.reason ?? "";
    expect(reason("reach.no-nat-between-pods")).toMatch(
      /^\d+ of \d+ pod pairs arrive NATed: pod default\/pod-1-1 \(10\.244\.[\d.]+\) on node node-1 -> pod default\/pod-2-1 \(10\.244\.[\d.]+\) on node node-2 by tcp: the receiver saw source 10\.244\.\d+\.0 instead of 10\.244\./,
    );
    // Only node-1's pod is cut off from the internet: natOutgoing is on, so it must get there.
    expect(reason("nat.outgoing")).toMatch(/^pod default\/pod-1-1 \(10\.244\.[\d.]+\) on node node-1 -> internet \(192\.0\.2\.200\) by tcp: .*; pod default\/pod-1-1 .* by udp: [^;]*$/);
    expect(reason("mtu.encap-headroom")).toMatch(
      /pod default\/pod-2-1 \(10\.244\.[\d.]+\) on node node-2, interface eth0, has MTU 1500; the underlay MTU is 1500 and the encapsulation \(vxlan\) needs 50 bytes, so at most 1450/,
    );
    expect(reason("linux.same-checks")).toMatch(/cells differ: pod-1-1 → pod-2-1 tcp: simulator reached \(receiver saw 10\.244\./);
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("the checks fail on a plugin that exits 0 whatever happened (error JSON still on stdout)", async () => {
    const liar = join(tmp, "cnikit-cni");
    writeFileSync(liar, `#!/bin/sh\n${JSON.stringify(cniPluginPath())} "$@"\nexit 0\n`);
    chmodSync(liar, 0o755);
    const name = labName("l");
    const r = await runLinuxConformance({
      backend: "flannel",
      mode: "host-gw",
      nodes: 2,
      podsPerNode: 1,
      name,
      cniPlugin: liar,
      checks: ["cni.plugin-error-json", "cni.failed-add-leaks-nothing", "cni.add-result"],
    });
    expect(statuses(r), renderTable([r])).toEqual({ "cni.add-result": "passed", "cni.plugin-error-json": "failed", "cni.failed-add-leaks-nothing": "failed" });
    expect(r.results.find((x) => x.id === "cni.plugin-error-json")?.reason).toMatch(/ADD without CNI_CONTAINERID → 4: exit 0/);
    expect(r.results.find((x) => x.id === "cni.failed-add-leaks-nothing")?.reason).toMatch(/held by holder\/eth0 succeeded; it must fail/);
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("cnikit-conformance --dataplane linux as a real process: table, JSON report with dataplane linux, exit 0; the simulator run keeps I as 'use --dataplane linux'", () => {
    const cli = fileURLToPath(new URL("../../../conformance/src/cli.ts", import.meta.url));
    const tsx = createRequire(import.meta.url).resolve("tsx/esm");
    const cwd = fileURLToPath(new URL("..", import.meta.url));
    const config = join(tmp, "hostgw.json");
    writeFileSync(config, JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "host-gw" } }));
    const report = join(tmp, "report.json");
    const run = spawnSync(
      process.execPath,
      [
        "--conditions=source",
        "--import",
        tsx,
        cli,
        "--dataplane",
        "linux",
        "--backend",
        "@cnikit/flannel",
        "--config",
        config,
        "--checks",
        "reach.pod-to-pod.cross-node,cni.add-result,linux.same-checks,dyn.join",
        "--report",
        report,
      ],
      {
        cwd,
        encoding: "utf8",
        timeout: 240_000,
      },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^flannel \(hostgw\.json \[dataplane linux\]\), 2 nodes/m);
    expect(run.stdout).toMatch(/linux\.same-checks\s+yes\s+passed/);
    expect(run.stdout).toMatch(/dyn\.join\s+yes\s+not run\s.*simulator-only in this version/);
    const json = JSON.parse(readFileSync(report, "utf8")) as LinuxConformanceReport;
    expect(json.dataplane).toBe("linux");
    expect(json.results.map((x) => `${x.id}=${x.status}`)).toEqual(["reach.pod-to-pod.cross-node=passed", "cni.add-result=passed", "dyn.join=not run", "linux.same-checks=passed"]);
    if (json.lab) made.add(json.lab.name);
    const sim = spawnSync(process.execPath, ["--conditions=source", "--import", tsx, cli, "--backend", "@cnikit/flannel", "--config", config, "--checks", "I"], {
      cwd,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(sim.status, sim.stderr).toBe(0);
    expect(sim.stdout).toMatch(/linux\.same-checks\s+yes\s+not run\s.*use --dataplane linux/);
    expect(sim.stdout).toMatch(/linux\.policy-nftables\s+yes\s+not claimed/);
  }, 300_000);
});

/**
 * A project of one's own outside the workspace: its node_modules links @cnikit/core and
 * @cnikit/reference, and two modules re-export the reference backend under names cnikit has never
 * heard of: `acme` unchanged, `bent` with its nodes' routes to other nodes' pod subnets dropped
 * from the desired dataplane (so cross-node pod traffic has no route).
 */
function thirdPartyProject(): { dir: string; acme: string; bent: string } {
  const dir = join(tmp, "third-party");
  const root = fileURLToPath(new URL("../../", import.meta.url));
  mkdirSync(join(dir, "node_modules", "@cnikit"), { recursive: true });
  for (const pkg of ["core", "reference"]) {
    if (!existsSync(join(dir, "node_modules", "@cnikit", pkg))) symlinkSync(resolve(root, pkg), join(dir, "node_modules", "@cnikit", pkg));
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "acme-cni", type: "module", private: true }));
  const acme = join(dir, "acme.mjs");
  writeFileSync(acme, 'import { defineBackend } from "@cnikit/core";\nimport { reference } from "@cnikit/reference";\nexport const acme = defineBackend({ ...reference, name: "acme" });\n');
  const bent = join(dir, "bent.mjs");
  writeFileSync(
    bent,
    `import { defineBackend } from "@cnikit/core";
import { reference } from "@cnikit/reference";
const withoutPeerRoutes = (d) => ({ ...d, routes: d.routes.filter((r) => r.via === undefined) });
export const bent = defineBackend({
  ...reference,
  name: "bent",
  createAgent(ctx) {
    const agent = reference.createAgent(ctx);
    return new Proxy(agent, {
      get(target, prop) {
        if (prop === "dataplane") return () => withoutPeerRoutes(target.dataplane());
        if (prop === "onDataplaneChange") return (listener) => target.onDataplaneChange((d) => listener(withoutPeerRoutes(d)));
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  },
});
export const conformance = {};
`,
  );
  writeFileSync(join(dir, "reference.json"), JSON.stringify({ network: "10.250.0.0/16", nodeSubnetLength: 24, natOutgoing: true }));
  return { dir, acme, bent };
}

describe("kernel runs of a backend that is not built in (a module every cnikitd loads)", () => {
  it("refuses a Backend object that is not built in without the module cnikitd would load, naming backendModule", async () => {
    const { acme } = thirdPartyProject();
    const mod = (await import(acme)) as { acme: Parameters<typeof runLinuxConformance>[0]["backend"] };
    await expect(runLinuxConformance({ backend: mod.acme, config: { network: "10.250.0.0/16" }, nodes: 2, name: labName("r") })).rejects.toMatchObject({ code: 7, field: "backendModule" });
  });

  it("cnikit-conformance --dataplane linux --backend ./acme.mjs (a real process, run from the project): every cnikitd loads acme; A, I and B's quick checks pass", () => {
    const { dir } = thirdPartyProject();
    const cli = fileURLToPath(new URL("../../../conformance/src/cli.ts", import.meta.url));
    const tsx = createRequire(import.meta.url).resolve("tsx/esm");
    const report = join(tmp, "acme-report.json");
    const run = spawnSync(
      process.execPath,
      ["--conditions=source", "--import", tsx, cli, "--dataplane", "linux", "--backend", "./acme.mjs", "--config", "reference.json", "--checks", ["A", "I", ...QUICK_B].join(","), "--report", report],
      {
        cwd: dir,
        encoding: "utf8",
        timeout: 290_000,
      },
    );
    const json = existsSync(report) ? (JSON.parse(readFileSync(report, "utf8")) as LinuxConformanceReport) : undefined;
    if (json?.lab) made.add(json.lab.name);
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(json?.backend).toBe("acme");
    const kernel = json!.results.filter((x) => KERNEL_IDS.includes(x.id));
    const selected = listChecks().filter((c) => KERNEL_IDS.includes(c.id) && (["A", "I"].includes(c.section) || QUICK_B.includes(c.id)));
    expect(kernel.map((x) => x.id)).toEqual(selected.map((c) => c.id));
    // Every kernel check ran and passed (policy too: the reference enforces it through netpol).
    expect(kernel.filter((x) => x.status !== "passed").map((x) => `${x.id}=${x.status}: ${x.reason ?? ""}`)).toEqual([]);
    // cnikitd said which backend it loaded.
    expect(run.stderr).toMatch(/cnikit-conformance: acme with reference\.json on the kernel/);
  }, 300_000);

  it("a module whose nodes drop their routes to the other nodes' pods turns cross-node reachability red on the kernel, naming pod, address and node (same-node stays green)", async () => {
    const { dir, bent } = thirdPartyProject();
    const mod = (await import(bent)) as { bent: Parameters<typeof runLinuxConformance>[0]["backend"] };
    const name = labName("t");
    const r = await runLinuxConformance({
      backend: mod.bent,
      backendModule: { module: "./bent.mjs", from: dir, export: "bent" },
      config: JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as unknown,
      configLabel: "bent",
      nodes: 2,
      podsPerNode: 2,
      name,
      checks: ["reach.pod-to-pod.same-node", "reach.pod-to-pod.cross-node", "ipam.unique"],
    });
    expect(r.backend).toBe("bent");
    expect(statuses(r), renderTable([r])).toEqual({ "ipam.unique": "passed", "reach.pod-to-pod.same-node": "passed", "reach.pod-to-pod.cross-node": "failed" });
    expect(r.results.find((x) => x.id === "reach.pod-to-pod.cross-node")?.reason).toMatch(
      /pod default\/pod-1-1 \(10\.250\.[\d.]+\) on node node-1 -> pod default\/pod-2-1 \(10\.250\.[\d.]+\) on node node-2: by (tcp|udp|ping): /,
    );
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);
});

/** Built-in configs with a /28 node share, so a node's share runs out after 13 ADDs on the kernel (not ~250): same rules, shorter runs. */
const SMALL_SHARE: { backend: string; config: unknown }[] = [
  { backend: "reference", config: { network: "10.250.0.0/16", nodeSubnetLength: 28, natOutgoing: true } },
  { backend: "flannel", config: { Network: "10.244.0.0/16", SubnetLen: 28, Backend: { Type: "vxlan" } } },
];

const SECTION_B = listChecks()
  .filter((c) => c.section === "B")
  .map((c) => c.id);

/** The sub-result of `id` whose label starts with `label`. */
function subOf(r: LinuxConformanceReport, id: string, label: string): { status: string; reason?: string } | undefined {
  return r.results.find((x) => x.id === id)?.subResults?.find((s) => s.label.startsWith(label));
}

describe("section B on the kernel: the suite's lifecycle checks (LIFECYCLE_CHECKS) on the lab's lifecycle driver", () => {
  it.each(SMALL_SHARE)(
    "$backend (a /28 share per node), 2 nodes: every check of section B runs on the kernel and passes (cni.multi-interface too: net1's routes sit beside eth0's at a higher metric); the legs that need a full node ran; a few minutes",
    async ({ backend, config }) => {
      const name = labName(backend === "reference" ? "kr" : "kf");
      const t0 = performance.now();
      const r = await runLinuxConformance({ backend, config, configLabel: "small-share", nodes: 2, podsPerNode: 1, name, checks: ["B"] });
      console.log(`${renderTable([r]).split("\n")[0]} — section B on the kernel in ${Math.round((performance.now() - t0) / 1000)} s`);
      expect(r.results.map((x) => x.id)).toEqual(SECTION_B);
      expect(
        r.results.filter((x) => x.status !== "passed").map((x) => `${x.id}=${x.status}: ${x.reason ?? ""}`),
        renderTable([r]),
      ).toEqual([]);
      // Release was observed on the kernel in every leg, with the share run out (not "not applicable").
      for (const leg of ["trace", "requested IP", "exhaustion", "churn"]) expect(subOf(r, "cni.del-releases", leg)?.status, leg).toBe("passed");
      // The kernel's churn legs run the suite's floor of pairs (the simulator runs 200), still more than a /28 share holds.
      expect(r.results.find((x) => x.id === "cni.del-releases")?.subResults?.find((x) => x.label.startsWith("churn"))?.label).toMatch(/^churn: 32 ADD\/DEL pairs/);
      expect(subOf(r, "cni.del-releases", "exhaustion")?.reason).toMatch(/the share ran out after \d+ pods/);
      expect(subOf(r, "cni.gc", "exhaustion")?.status).toBe("passed");
      expect(subOf(r, "cni.failed-add-leaks-nothing", "failed ADD on a node whose share is exhausted")?.status).toBe("passed");
      // What the kernel driver cannot do is said, not passed.
      expect(subOf(r, "cni.failed-add-leaks-nothing", "failed ADD while the node is cut off")).toMatchObject({
        status: "not applicable",
        reason: expect.stringMatching(/the linux driver cannot cut one node off/),
      });
      expect(await leftovers(name)).toEqual([]);
    },
    900_000,
  );

  it("a backend whose DEL keeps the address (conformance-selftest's leak-on-del, bundled for cnikitd) turns cni.del-releases red on the kernel as in the simulator; cni.del-idempotent stays green", async () => {
    const out = join(tmp, "leak-on-del.mjs");
    const entry = fileURLToPath(new URL("../../conformance-selftest/test/broken/leak-on-del.ts", import.meta.url));
    // esbuild (tsx's) bundles the variant with its own copies of @cnikit/core and the reference backend: one module cnikitd can load.
    const esbuild = createRequire(createRequire(import.meta.url).resolve("tsx")).resolve("esbuild");
    const built = spawnSync(
      process.execPath,
      [
        "-e",
        `require(${JSON.stringify(esbuild)}).buildSync({ entryPoints: [${JSON.stringify(entry)}], bundle: true, platform: "node", format: "esm", conditions: ["source"], outfile: ${JSON.stringify(out)}, logLevel: "error", banner: { js: 'import { createRequire as cr } from "node:module"; const require = cr(import.meta.url);' } })`,
      ],
      { encoding: "utf8" },
    );
    expect(built.status, built.stderr).toBe(0);
    const mod = (await import(out)) as { leakOnDel: Parameters<typeof runLinuxConformance>[0]["backend"] };
    const config = SMALL_SHARE[0]!.config;
    const checks = ["cni.del-idempotent", "cni.del-releases"];
    const sim = await runConformance({ backend: mod.leakOnDel as never, config, checks, nodes: 2, seed: 1 });
    const name = labName("kv");
    const r = await runLinuxConformance({ backend: mod.leakOnDel, backendModule: { module: out, export: "leakOnDel" }, config, configLabel: "small-share", nodes: 2, podsPerNode: 1, name, checks });
    console.log(renderTable([r]).split("\n")[0]);
    const simStatus = Object.fromEntries(sim.results.map((x) => [x.id, x.status]));
    expect(simStatus).toEqual({ "cni.del-idempotent": "passed", "cni.del-releases": "failed" });
    expect(statuses(r), renderTable([r])).toEqual(simStatus);
    // The exhaustion leg is red on the kernel as in the simulator: the bundle's own PoolExhaustedError
    // (another copy of core's class) reaches the runtime through cnikitd as code 100, so the refill
    // stops where it should and names the leaked addresses.
    expect(subOf(r, "cni.del-releases", "exhaustion")).toMatchObject({
      status: "failed",
      reason: expect.stringMatching(/on node node-1, whose share was exhausted, only \d+ ADD\(s\) succeeded before PoolExhaustedError: .* stayed reserved \(leaked\)/),
    });
    expect(r.results.find((x) => x.id === "cni.del-releases")?.reason).toMatch(/on node node-1/);
    expect(await leftovers(name)).toEqual([]);
  }, 900_000);
});

describe("mtu.underlay-non-1500 on the kernel: labs whose underlay (veths, bridges, router) carries 9000 and 1400 bytes", () => {
  it("flannel vxlan: pod MTU = underlay − 50 on both, and a full-size DF packet crosses nodes; reference (no encapsulation, mtu 1500 configured): passes on 9000 and says it refused 1400 (code 7, mtu), as in the simulator", async () => {
    const flannelName = labName("mf");
    const f = await runLinuxConformance({ backend: "flannel", mode: "vxlan", nodes: 2, podsPerNode: 1, name: flannelName, checks: ["mtu.underlay-non-1500"] });
    const fc = f.results.find((x) => x.id === "mtu.underlay-non-1500")!;
    expect(fc.status, renderTable([f])).toBe("passed");
    expect(fc.subResults?.map((x) => `${x.status}: ${x.label}`)).toEqual([
      "passed: underlay MTU 9000: pod MTU 8950 + vxlan 50; 2 full-size DF packet(s) crossed nodes",
      "passed: underlay MTU 1400: pod MTU 1350 + vxlan 50; 2 full-size DF packet(s) crossed nodes",
    ]);
    const refName = labName("mr");
    const config = { network: "10.250.0.0/16", nodeSubnetLength: 24, natOutgoing: true };
    const r = await runLinuxConformance({ backend: "reference", config, configLabel: "mtu-1500", nodes: 2, podsPerNode: 1, name: refName, checks: ["mtu.underlay-non-1500"] });
    const sim = await runConformance({ backend: builtinBackend("reference").backend as never, config, checks: ["mtu.underlay-non-1500"], nodes: 4, seed: 1 });
    const rc = r.results.find((x) => x.id === "mtu.underlay-non-1500")!;
    expect(rc.status, renderTable([r])).toBe(sim.results[0]?.status);
    expect(rc.subResults?.map((x) => `${x.status}: ${x.label}`)).toEqual([
      "passed: underlay MTU 9000: pod MTU 1500; 2 full-size DF packet(s) crossed nodes",
      "not applicable: underlay MTU 1400: refused",
    ]);
    expect(rc.reason).toMatch(/on a 1400-byte underlay the agent refused its config: .*mtu/);
    for (const n of [flannelName, refName]) expect(await leftovers(n)).toEqual([]);
    // The labs the check built were taken down too.
    expect((await listNetns()).filter((ns) => /m(90|14)-/.test(ns) && (ns.includes(flannelName.slice(0, 10)) || ns.includes(refName.slice(0, 10))))).toEqual([]);
  }, 600_000);
});
