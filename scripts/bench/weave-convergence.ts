// Weave's convergence in the simulator, the whole backend (mesh + ring + plan) at N nodes, one pod
// each, full mesh (CONN_LIMIT 0: unlimited, so 500 nodes are a full mesh too), fast datapath:
//  - join: virtual time from a new node's start until every node floods to it (an FDB entry for
//    its underlay address on the vxlan port) and pods of sampled nodes reach its pod; the mesh's
//    messages and bytes per node in that window, quiet-time traffic (heartbeats) subtracted, beside
//    log2 N — the per-node share of Weave's O(N log N) gossip expectation (N·log2 N messages in the
//    cluster);
//  - crash: virtual time from a node's crash (no goodbye; the simulator resets its connections, as
//    a rebooted host's RSTs would) until no survivor floods to it, and the messages per node it cost;
//  - silent node: every packet to and from a node lost (no reset ever arrives): the mesh's
//    heartbeats decide (Weave: 6 missed at 10 s = 60 s).
// Sizes from WEAVE_BENCH_SIZES (default "10,100,500"). Run:
//   npx tsx --conditions=source scripts/bench/weave-convergence.ts
import { SimCluster } from "@cnikit/sim";
import { WeaveAgent, weave } from "@cnikit/weave";
import { runIfMain, type Figure } from "./figures.ts";

const STEP_MS = 100;
const LIMIT_MS = 300_000;
const QUIET_MS = 20_000;

type Cluster = SimCluster<ReturnType<typeof weave.parseConfig>>;

function underlayOf(c: Cluster, node: string): string {
  return c.node(node).info.underlay[0]!.address;
}

/** Whether every alive node other than `target` floods to it (and `target` to all of them). */
function everyoneFloodsTo(c: Cluster, target: string): boolean {
  const address = underlayOf(c, target);
  const alive = c.nodes().filter((n) => n.alive);
  for (const n of alive) {
    if (n.name === target) continue;
    if (!c.dataplane(n.name).fdb.some((e) => e.dst === address)) return false;
  }
  return c.dataplane(target).fdb.length >= alive.length - 1;
}

function nobodyFloodsTo(c: Cluster, address: string): boolean {
  return c.nodes().every((n) => !n.alive || !c.dataplane(n.name).fdb.some((e) => e.dst === address));
}

/** Advances the virtual clock in steps until `done()`; returns the virtual ms it took. */
async function until(c: Cluster, done: () => boolean, what: string): Promise<number> {
  const start = c.clock.now();
  while (!done()) {
    if (c.clock.now() - start > LIMIT_MS) throw new Error(`${what}: not converged after ${LIMIT_MS} ms of virtual time`);
    await c.clock.advance(STEP_MS);
  }
  return c.clock.now() - start;
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
    routers: [{ name: "r1", interfaces: [{ subnet: "a", address: "100.64.0.1" }, { subnet: "ext", address: "192.0.2.1" }] }],
    externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }],
  };
  const c = SimCluster.create({ backend: weave, config: weave.parseConfig({ CONN_LIMIT: "0" }), seed: 1, topology }) as Cluster;
  try {
    const nodes = await drive(c, c.addNodes(n), `${n} nodes starting`);
    await drive(c, Promise.all(nodes.map((node) => c.addPod(node.name))), `${n} pods`);
    await until(c, () => nodes.every((node) => c.dataplane(node.name).fdb.length >= n - 1), `${n} nodes meshing`);
    const built = performance.now() - wallStart;

    // Quiet-time traffic (heartbeats, periodic exchanges) per virtual ms, to subtract.
    await c.clock.advance(30_000);
    const q0 = traffic(c);
    await c.clock.advance(QUIET_MS);
    const q1 = traffic(c);
    const quietRate = { messages: (q1.messages - q0.messages) / QUIET_MS, bytes: (q1.bytes - q0.bytes) / QUIET_MS };

    // Join.
    const j0 = traffic(c);
    const kinds0 = kinds(c);
    const joinStart = c.clock.now();
    const added = await drive(c, c.addNode(), "join");
    const pod = await drive(c, c.addPod(added.name), "join pod");
    await until(c, () => everyoneFloodsTo(c, added.name), "join");
    const floodMs = c.clock.now() - joinStart;
    const sample = c.pods().filter((p) => p.node !== added.name).slice(0, 10);
    await until(c, () => sample.every((p) => c.send({ kind: "pod", key: p.key }, { kind: "pod", key: pod.key }).delivered), "join reach");
    const joinMs = c.clock.now() - joinStart;
    const j1 = traffic(c);
    const kinds1 = kinds(c);
    const joinMessages = j1.messages - j0.messages - quietRate.messages * joinMs;
    const joinBytes = j1.bytes - j0.bytes - quietRate.bytes * joinMs;

    // Crash (no goodbye).
    const victim = nodes[Math.floor(n / 2)]!.name;
    const address = underlayOf(c, victim);
    const k0 = traffic(c);
    const crashStart = c.clock.now();
    await drive(c, c.removeNode(victim, { mode: "crash" }), "crash");
    await until(c, () => nobodyFloodsTo(c, address), "crash");
    const k1 = traffic(c);
    const crashMs = c.clock.now() - crashStart;
    const crashMessages = k1.messages - k0.messages - quietRate.messages * crashMs;

    // Silent death: a node whose every packet is lost (no reset reaches anyone): heartbeats decide.
    const mute = nodes[Math.floor(n / 3)]!.name;
    const muteAddress = underlayOf(c, mute);
    const muteStart = c.clock.now();
    c.network.setFaults({ lossRate: 1 }, { from: mute });
    c.network.setFaults({ lossRate: 1 }, { to: mute });
    await until(c, () => c.nodes().every((node) => node.name === mute || !node.alive || !c.dataplane(node.name).fdb.some((e) => e.dst === muteAddress)), "silent node");
    const muteMs = c.clock.now() - muteStart;

    const members = n + 1;
    return [
      { name: `N=${n}: build + mesh (wall)`, value: built, unit: "ms" },
      { name: `N=${n}: join, every node floods to the newcomer`, value: floodMs, unit: "virtual ms" },
      { name: `N=${n}: join, sampled pods reach its pod`, value: joinMs, unit: "virtual ms" },
      { name: `N=${n}: join, mesh messages per node`, value: joinMessages / members, unit: "msgs" },
      { name: `N=${n}: join, mesh bytes per node`, value: joinBytes / members, unit: "bytes" },
      ...[...kinds1].map(([k, v]) => ({ name: `N=${n}: join, ${k} bytes per node (incl. quiet)`, value: (v - (kinds0.get(k) ?? 0)) / members, unit: "bytes" })),
      { name: `N=${n}: yardstick log2 N (O(N log N) per cluster)`, value: Math.log2(members), unit: "msgs/node" },
      { name: `N=${n}: join messages per node / log2 N`, value: joinMessages / members / Math.log2(members), unit: "ratio" },
      { name: `N=${n}: join bytes per node / (N log2 N)`, value: joinBytes / members / (members * Math.log2(members)), unit: "bytes" },
      { name: `N=${n}: crash (connections reset), no survivor floods to it`, value: crashMs, unit: "virtual ms" },
      { name: `N=${n}: silent node (all its packets lost), no survivor floods to it`, value: muteMs, unit: "virtual ms" },
      { name: `N=${n}: crash, mesh messages per node`, value: crashMessages / n, unit: "msgs" },
      { name: `N=${n}: quiet traffic per node`, value: (quietRate.messages * 1000) / members, unit: "msgs/s" },
      { name: `N=${n}: wall`, value: performance.now() - wallStart, unit: "ms" },
    ];
  } finally {
    await c.close();
  }
}

export async function benchWeaveConvergence(): Promise<Figure[]> {
  const sizes = (process.env["WEAVE_BENCH_SIZES"] ?? "10,100,500").split(",").map(Number);
  const out: Figure[] = [];
  for (const n of sizes) out.push(...(await benchSize(n)));
  return out;
}

await runIfMain(import.meta.url, "weave convergence in the simulator (fastdp, one pod per node)", benchWeaveConvergence);
