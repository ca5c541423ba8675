// Weave's gossip traffic in the simulator, the whole backend (mesh + ring + plan) at N nodes, one pod
// each, full mesh (CONN_LIMIT 0: unlimited), fast datapath — what the mesh sends, not how fast routes
// converge (that is cnikit-bench's: `npm run bench -- convergence-weave`, see scripts/bench.ts):
//  - quiet traffic per node (heartbeats, periodic exchanges) once the mesh has formed;
//  - a join's gossip: the messages and bytes per node, and the bytes per node of each gossip kind,
//    over the backend's own convergence bound after a node (and its pod) starts, the quiet rate
//    subtracted; beside log2 N — the per-node share of Weave's O(N log N) gossip expectation
//    (N·log2 N messages in the cluster).
// Sizes from WEAVE_TRAFFIC_N (default "10,100"). Run:
//   npx tsx --conditions=source scripts/bench/weave-convergence.ts
import { ConfigError } from "@cnikit/core";
import { SimCluster } from "@cnikit/sim";
import { WeaveAgent, weave } from "@cnikit/weave";
import { runIfMain, type Figure } from "./figures.ts";

const STEP_MS = 100;
const LIMIT_MS = 300_000;
const QUIET_MS = 20_000;

type Cluster = SimCluster<ReturnType<typeof weave.parseConfig>>;

/** Advances the virtual clock in steps until `ready()` (set-up only: nothing here is timed by it). */
async function until(c: Cluster, ready: () => boolean, what: string): Promise<void> {
  const start = c.clock.now();
  while (!ready()) {
    if (c.clock.now() - start > LIMIT_MS) throw new Error(`${what}: not ready after ${LIMIT_MS} ms of virtual time`);
    await c.clock.advance(STEP_MS);
  }
}

/** Runs the virtual clock until `work` settles (agents wait on virtual time: consensus, donations). */
async function drive<T>(c: Cluster, work: Promise<T>, what: string): Promise<T> {
  let done = false;
  const settled = work.finally(() => (done = true));
  settled.catch(() => undefined);
  const start = c.clock.now();
  while (!done) {
    if (c.clock.now() - start > LIMIT_MS) throw new Error(`${what}: not done after ${LIMIT_MS} ms of virtual time`);
    await c.clock.advance(STEP_MS);
  }
  return settled;
}

/** The mesh's sent bytes per kind, summed over the alive nodes. */
function kinds(c: Cluster): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of c.nodes()) {
    if (!n.alive || !(n.agent instanceof WeaveAgent)) continue;
    for (const [k, v] of Object.entries(n.agent.gossipCounters() ?? {})) out.set(k, (out.get(k) ?? 0) + v.bytes);
  }
  return out;
}

function traffic(c: Cluster): { messages: number; bytes: number } {
  const s = c.network.stats();
  return { messages: s.messages, bytes: s.bytes };
}

async function benchSize(n: number): Promise<Figure[]> {
  const wallStart = performance.now();
  // One /16 underlay subnet: the default topology's /24s hold ~490 nodes.
  const topology = {
    subnets: [
      { name: "a", cidr: "100.64.0.0/16", gateway: "100.64.0.1", mtu: 1500 },
      { name: "ext", cidr: "192.0.2.0/24", gateway: "192.0.2.1", mtu: 1500 },
    ],
    routers: [
      {
        name: "r1",
        interfaces: [
          { subnet: "a", address: "100.64.0.1" },
          { subnet: "ext", address: "192.0.2.1" },
        ],
      },
    ],
    externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }],
  };
  const config = weave.parseConfig({ CONN_LIMIT: "0" });
  const windowMs = weave.summarize(config).convergenceMs;
  const c = SimCluster.create({ backend: weave, config, seed: 1, topology }) as Cluster;
  try {
    const nodes = await drive(c, c.addNodes(n), `${n} nodes starting`);
    await drive(c, Promise.all(nodes.map((node) => c.addPod(node.name))), `${n} pods`);
    await until(c, () => nodes.every((node) => c.dataplane(node.name).fdb.length >= n - 1), `${n} nodes meshing`);
    const built = performance.now() - wallStart;

    // Quiet-time traffic (heartbeats, periodic exchanges) per virtual ms, to subtract.
    await c.clock.advance(30_000);
    const q0 = traffic(c);
    const quietKinds0 = kinds(c);
    await c.clock.advance(QUIET_MS);
    const q1 = traffic(c);
    const quietKinds1 = kinds(c);
    const quietRate = { messages: (q1.messages - q0.messages) / QUIET_MS, bytes: (q1.bytes - q0.bytes) / QUIET_MS };

    // A join: the traffic over the convergence bound from the newcomer's start, less the quiet rate.
    const j0 = traffic(c);
    const kinds0 = kinds(c);
    const joinStart = c.clock.now();
    const added = await drive(c, c.addNode(), "join");
    await drive(c, c.addPod(added.name), "join pod");
    await c.clock.advance(Math.max(0, joinStart + windowMs - c.clock.now()));
    const joinMs = c.clock.now() - joinStart;
    const j1 = traffic(c);
    const kinds1 = kinds(c);
    const joinMessages = j1.messages - j0.messages - quietRate.messages * joinMs;
    const joinBytes = j1.bytes - j0.bytes - quietRate.bytes * joinMs;

    const members = n + 1;
    const quietKind = (k: string): number => ((quietKinds1.get(k) ?? 0) - (quietKinds0.get(k) ?? 0)) / QUIET_MS;
    return [
      { name: `N=${n}: build + mesh (wall)`, value: built, unit: "ms" },
      { name: `N=${n}: quiet traffic per node`, value: (quietRate.messages * 1000) / n, unit: "msgs/s" },
      { name: `N=${n}: quiet traffic per node`, value: (quietRate.bytes * 1000) / n, unit: "bytes/s" },
      { name: `N=${n}: join (${joinMs} virtual ms window), mesh messages per node`, value: joinMessages / members, unit: "msgs" },
      { name: `N=${n}: join, mesh bytes per node`, value: joinBytes / members, unit: "bytes" },
      ...[...kinds1].map(([k, v]) => ({ name: `N=${n}: join, ${k} bytes per node (quiet rate subtracted)`, value: (v - (kinds0.get(k) ?? 0) - quietKind(k) * joinMs) / members, unit: "bytes" })),
      { name: `N=${n}: yardstick log2 N (O(N log N) per cluster)`, value: Math.log2(members), unit: "msgs/node" },
      { name: `N=${n}: join messages per node / log2 N`, value: joinMessages / members / Math.log2(members), unit: "ratio" },
      { name: `N=${n}: join bytes per node / (N log2 N)`, value: joinBytes / members / (members * Math.log2(members)), unit: "bytes" },
      { name: `N=${n}: wall`, value: performance.now() - wallStart, unit: "ms" },
    ];
  } finally {
    await c.close();
  }
}

/** Weave's gossip traffic at each size; see the file comment. */
export async function benchWeaveTraffic(): Promise<Figure[]> {
  const raw = process.env["WEAVE_TRAFFIC_N"] ?? "10,100";
  const sizes = raw.split(",").map(Number);
  if (sizes.some((x) => !Number.isInteger(x) || x < 2)) throw new ConfigError({ component: "bench", field: "WEAVE_TRAFFIC_N", rule: "must be a comma-separated list of integers from 2", value: raw });
  const out: Figure[] = [];
  for (const n of sizes) out.push(...(await benchSize(n)));
  return out;
}

await runIfMain(import.meta.url, "weave gossip traffic in the simulator (fastdp, one pod per node)", benchWeaveTraffic);
