/**
 * The differential test: random scenarios (seeded) rendered in the simulator and on the kernel
 * (root, real namespaces) must give the same reachability table, cell by cell, including the
 * source address each receiver saw. Two scenarios per mode (flannel vxlan and host-gw, calico bgp
 * and vxlan-crosssubnet), 2-3 nodes, 1-2 pods per node, with random policies and faults so that
 * many cells are unreachable. A failing scenario prints its seed; rerun it alone with
 * CNIKIT_DIFF_SEED=<base> (scenario seeds are base*100 + mode*10 + k).
 *
 * Also the pure parts: the comparison itself, the scenario generator and the faults.
 */
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { emptyDataplane, type NodeDataplane } from "@cnikit/core";
import { createNetns, listNetns } from "@cnikit/linux";
import {
  DIFF_MODES,
  applyFault,
  cellKey,
  compareReachTables,
  describeScenario,
  downLabWithExtras,
  formatMismatches,
  formatReachTable,
  nsPrefix,
  randomScenario,
  reachPairs,
  runDifferential,
  simulateScenario,
  startLab,
  type DiffOutcome,
  type ReachEndpoint,
  type ReachTable,
} from "../src/index.ts";
import { inNs, pidAlive, runAsync } from "../src/system.ts";

const BASE = Number(process.env["CNIKIT_DIFF_SEED"] ?? 1);
const RUN = `d${process.pid}`;
const made = new Set<string>();
const labName = (suffix: string): string => {
  const name = `${RUN}${suffix}`.slice(0, 20);
  made.add(name);
  return name;
};

afterAll(async () => {
  for (const name of made) await downLabWithExtras(name);
}, 120_000);

async function leftovers(name: string): Promise<string[]> {
  return (await listNetns()).filter((ns) => ns.startsWith(`${nsPrefix(name)}-`));
}

// ---- the comparison (pure) ---------------------------------------------------------------------

const eps: ReachEndpoint[] = [
  { name: "a", kind: "pod", address: "10.244.1.2", node: "node-1" },
  { name: "b", kind: "pod", address: "10.244.2.2", node: "node-2" },
  { name: "node-1", kind: "node", address: "198.51.100.10" },
  { name: "internet", kind: "external", address: "192.0.2.200" },
];

function table(cells: (from: ReachEndpoint, to: ReachEndpoint) => { reach: boolean; seen?: string }, endpoints = eps): ReachTable {
  const out: ReachTable = { endpoints, protos: ["tcp", "udp", "ping"], cells: {} };
  for (const [a, b] of reachPairs(endpoints)) for (const p of out.protos) out.cells[cellKey(a.name, b.name, p)] = cells(a, b);
  return out;
}

describe("reachability tables (pure)", () => {
  it("pairs: pod to everything, node to pods; never node to node, external as a sender, or the diagonal", () => {
    const pairs = reachPairs(eps).map(([a, b]) => `${a.name}>${b.name}`);
    expect(pairs.sort()).toEqual(["a>b", "a>internet", "a>node-1", "b>a", "b>internet", "b>node-1", "node-1>a", "node-1>b"].sort());
  });

  it("equal tables have no mismatch; a cell reached on one side only is a reach mismatch", () => {
    const all = table((a) => ({ reach: true, seen: a.address }));
    expect(compareReachTables(all, structuredClone(all))).toEqual([]);
    const broken = structuredClone(all);
    broken.cells[cellKey("a", "b", "udp")] = { reach: false };
    const ms = compareReachTables(all, broken);
    expect(ms).toHaveLength(1);
    expect(ms[0]).toMatchObject({ from: "a", to: "b", proto: "udp", kind: "reach" });
    expect(formatMismatches(ms)).toMatch(/^a → b udp: simulator reached .*; kernel unreachable/);
  });

  it("NAT: the kind of source is compared (own vs other) across tables with different addresses; exactly with exactSeen", () => {
    const sim = table((a) => ({ reach: true, seen: a.address }));
    // The kernel's pods have other addresses but each receiver still sees the sender's own.
    const kEps = eps.map((e) => (e.kind === "pod" ? { ...e, address: e.address.replace("10.244.", "10.245.") } : e));
    const kernel = table((a) => ({ reach: true, seen: a.address }), kEps);
    expect(compareReachTables(sim, kernel)).toEqual([]);
    expect(compareReachTables(sim, kernel, { exactSeen: true }).length).toBeGreaterThan(0);
    // Masqueraded on one side only: a NAT mismatch; ping and node → pod are not judged for NAT.
    const natted = table((a, b) => ({ reach: true, seen: b.kind === "external" && a.kind === "pod" ? "198.51.100.10" : a.address }));
    const ms = compareReachTables(sim, natted);
    expect(ms.map((m) => `${m.from}>${m.to} ${m.proto} ${m.kind}`).sort()).toEqual(["a>internet tcp nat", "a>internet udp nat", "b>internet tcp nat", "b>internet udp nat"]);
  });

  it("a cell missing from one table is a mismatch, never a silent pass", () => {
    const all = table(() => ({ reach: false }));
    const partial = structuredClone(all);
    delete partial.cells[cellKey("node-1", "a", "ping")];
    expect(compareReachTables(all, partial)).toEqual([expect.objectContaining({ from: "node-1", to: "a", proto: "ping", kind: "reach", kernel: undefined })]);
  });

  it("formats a table with one mark per protocol", () => {
    const t = table((a, b) => ({ reach: b.kind !== "external" }));
    const text = formatReachTable(t);
    expect(text).toMatch(/^a\s+·\s+✓✓✓\s+✓✓✓\s+✗✗✗$/m);
  });
});

// ---- scenarios and faults (pure) ---------------------------------------------------------------

describe("scenarios (pure)", () => {
  it("randomScenario is deterministic and always within bounds", () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 31 - 1 }), (seed) => {
        const s = randomScenario(seed);
        expect(randomScenario(seed)).toEqual(s);
        expect(s.nodes).toBeGreaterThanOrEqual(2);
        expect(s.nodes).toBeLessThanOrEqual(3);
        for (let n = 1; n <= s.nodes; n++) {
          const count = s.pods.filter((p) => p.node === n).length;
          expect(count).toBeGreaterThanOrEqual(1);
          expect(count).toBeLessThanOrEqual(2);
        }
        expect(new Set(s.pods.map((p) => p.name)).size).toBe(s.pods.length);
        expect(DIFF_MODES.some((m) => m.backend === s.backend && m.mode === s.mode)).toBe(true);
        if (s.backend === "flannel") expect(s.policies).toEqual([]);
        // Every scenario with no policy on flannel has a fault: most tables have unreachable cells.
        if (s.backend === "flannel") expect(s.fault).toBeDefined();
        for (const p of s.policies) expect(s.pods.some((x) => x.namespace === (p["metadata"] as { namespace: string }).namespace)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("the mode can be fixed; the rest still comes from the seed", () => {
    const s = randomScenario(42, { mode: { backend: "calico", mode: "bgp" } });
    expect([s.backend, s.mode]).toEqual(["calico", "bgp"]);
    expect(randomScenario(42, { mode: { backend: "calico", mode: "bgp" } })).toEqual(s);
  });

  const dp = (): NodeDataplane => ({
    ...emptyDataplane("node-1"),
    routes: [
      { dst: "10.244.2.0/24", via: "198.51.100.11" },
      { dst: "10.244.1.2/32", dev: "cali1" },
    ],
    fdb: [{ dev: "flannel.1", mac: "aa:bb:cc:dd:ee:ff", dst: "198.51.100.11", permanent: true }],
    neighbours: [{ dev: "cali1", ip: "169.254.1.1", mac: "ee:ee:ee:ee:ee:ee", permanent: true }],
    sysctls: { proxyArp: ["cali1", "cali2"] },
    filters: [{ pod: "c1/eth0", direction: "ingress", rules: [], defaultAction: "drop" }],
    pods: [
      { key: "c1/eth0", containerId: "c1", ifName: "eth0", hostIf: "cali1", mac: "02:00:00:00:00:01", mtu: 1500, addresses: ["10.244.1.2/32"], routes: [{ dst: "0.0.0.0/0", via: "169.254.1.1" }] },
      { key: "c2/eth0", containerId: "c2", ifName: "eth0", hostIf: "cali2", mac: "02:00:00:00:00:02", mtu: 1500, addresses: ["10.244.1.3/32"], routes: [{ dst: "0.0.0.0/0", via: "169.254.1.1" }] },
    ],
  });
  const pods = new Map([
    ["p1", { key: "c1/eth0", node: "node-1" }],
    ["p2", { key: "c2/eth0", node: "node-1" }],
  ]);

  it("faults remove exactly one entry, or a pod with everything naming its host interface", () => {
    const a = [dp()];
    expect(applyFault({ kind: "route", node: 1, pick: 3 }, a, pods).text).toMatch(/^route removed on node-1: .*cali1/);
    expect(a[0]!.routes).toEqual([{ dst: "10.244.2.0/24", via: "198.51.100.11" }]);
    const b = [dp()];
    applyFault({ kind: "fdb", node: 1, pick: 0 }, b, pods);
    expect(b[0]!.fdb).toEqual([]);
    expect(b[0]!.routes).toHaveLength(2);
    const c = [{ ...dp(), fdb: [] }];
    expect(applyFault({ kind: "fdb", node: 1, pick: 0 }, c, pods).text).toMatch(/no fdb entry: a route instead/);
    expect(c[0]!.routes).toHaveLength(1);
    const d = [dp()];
    expect(applyFault({ kind: "pod-routes", pick: 1 }, d, pods).text).toMatch(/pod p2/);
    expect(d[0]!.pods[1]!.routes).toEqual([]);
    expect(d[0]!.pods[0]!.routes).toHaveLength(1);
    const e = [dp()];
    const r = applyFault({ kind: "pod-removed", pick: 0 }, e, pods);
    expect([...r.removed]).toEqual(["p1"]);
    expect(e[0]!.pods.map((p) => p.key)).toEqual(["c2/eth0"]);
    expect(e[0]!.routes.map((x) => x.dst)).toEqual(["10.244.2.0/24"]);
    expect(e[0]!.neighbours).toEqual([]);
    expect(e[0]!.filters).toEqual([]);
    expect(e[0]!.sysctls.proxyArp).toEqual(["cali2"]);
    expect(applyFault(undefined, [dp()], pods).text).toBe("none");
  });

  it("the simulator's side alone: a removed pod is unreachable in every cell it is in, and the rest of the table is judged", async () => {
    const s = { ...randomScenario(BASE * 100 + 20, { mode: { backend: "calico", mode: "bgp" } }), policies: [], fault: { kind: "pod-removed" as const, pick: 0 } };
    const sim = await simulateScenario(s);
    const gone = [...sim.removedPods][0]!;
    expect(gone).toBe(s.pods[0]!.name);
    for (const [key, v] of Object.entries(sim.table.cells)) {
      if (key.startsWith(`${gone} >`) || key.includes(`> ${gone} `)) expect(v, key).toMatchObject({ reach: false, why: `${gone} has no interface` });
    }
    const others = s.pods.filter((p) => p.name !== gone);
    if (others.length >= 2) expect(sim.table.cells[cellKey(others[0]!.name, others[1]!.name, "tcp")]?.reach).toBe(true);
  });
});

// ---- the kernel ---------------------------------------------------------------------------------

describe("differential: the simulator and the kernel agree cell by cell (root)", () => {
  const outcomes: DiffOutcome[] = [];
  DIFF_MODES.forEach((mode, i) => {
    for (const k of [0, 1]) {
      const seed = BASE * 100 + i * 10 + k;
      it(`${mode.backend} ${mode.mode}, scenario seed ${seed}`, async () => {
        const s = randomScenario(seed, { mode });
        const name = labName(`m${i}${k}`);
        let o: DiffOutcome;
        try {
          o = await runDifferential(s, { name });
        } catch (e) {
          throw new Error(`scenario ${describeScenario(s)} (reproduce: CNIKIT_DIFF_SEED=${BASE}) failed: ${(e as Error).message}`, { cause: e });
        }
        outcomes.push(o);
        expect(
          o.mismatches,
          `${o.description}\nfault: ${o.faultText}\nreproduce: CNIKIT_DIFF_SEED=${BASE}\n${formatMismatches(o.mismatches)}\nsimulator:\n${formatReachTable(o.sim)}\nkernel:\n${formatReachTable(o.kernel)}`,
        ).toEqual([]);
        expect(o.cells).toBeGreaterThan(0);
        expect(await leftovers(name)).toEqual([]);
      }, 120_000);
    }
  });

  it("the scenarios were not all-green: some had unreachable cells (faults, policies) and still agreed", () => {
    const informative = outcomes.filter((o) => o.mismatches.length === 0 && o.unreachable > 0);
    expect(outcomes.length, "every scenario above must have run").toBe(DIFF_MODES.length * 2);
    expect(informative.length, outcomes.map((o) => `${o.scenario.seed}: ${o.unreachable}/${o.cells} unreachable`).join("; ")).toBeGreaterThan(0);
    expect(
      outcomes.some((o) => o.scenario.policies.length > 0 && o.unreachable > 0),
      "some scenario with a policy denied something",
    ).toBe(true);
    expect(
      outcomes.some((o) => o.scenario.fault !== undefined && o.unreachable > 0),
      "some scenario with a fault cut something",
    ).toBe(true);
  });

  it("downLabWithExtras removes what a run left beside its lab: a pod namespace and a probe agent under <lab>/differential/", async () => {
    const name = labName("w");
    const lab = await startLab({ name, backend: "flannel", mode: "vxlan", nodes: 2, daemons: false });
    lab.close();
    const ns = `${nsPrefix(name)}-dp9`;
    await createNetns(ns);
    mkdirSync(`${lab.dir}/differential`, { recursive: true });
    const marker = `${lab.dir}/differential/p9.sock`;
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", "setInterval(() => {}, 1000)", marker], { detached: true, stdio: "ignore" });
    child.unref();
    await new Promise((r) => setTimeout(r, 300));
    expect(pidAlive(child.pid!)).toBe(true);
    const report = await downLabWithExtras(name);
    expect(report.existed).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(pidAlive(child.pid!)).toBe(false);
    expect(await leftovers(name)).toEqual([]);
    expect((await downLabWithExtras(name)).existed).toBe(false);
  }, 120_000);

  it("catches a kernel that differs: one pod's eth0 set down behind the renderer's back makes mismatches", async () => {
    const s = { ...randomScenario(BASE * 100 + 1, { mode: { backend: "flannel", mode: "vxlan" } }) };
    delete s.fault;
    const victim = s.pods[0]!.name;
    const name = labName("t");
    const o = await runDifferential(s, {
      name,
      timeoutMs: 500,
      tamper: async (_lab, nss) => {
        const r = await runAsync(inNs(nss.get(victim)!, ["ip", "link", "set", "eth0", "down"]));
        expect(r.code, r.stderr).toBe(0);
      },
    });
    expect(o.unreachable, "the simulator itself sees no fault").toBe(0);
    expect(o.mismatches.length).toBeGreaterThan(0);
    expect(o.mismatches.every((m) => (m.from === victim || m.to === victim) && m.kind === "reach" && m.sim?.reach === true && m.kernel?.reach === false)).toBe(true);
    expect(await leftovers(name)).toEqual([]);
  }, 120_000);
});
