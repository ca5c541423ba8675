// calico backend: block IPAM throughput and BGP convergence in the simulator.
//
//  - block claims per second (each allocation on a fresh node claims a /26 by one CAS transaction)
//    and allocations per second from one node's affine blocks (MemoryDatastore, no contention);
//  - convergence of N agents (IPIP CrossSubnet, two underlay subnets) for N = 10, 100, 500 in full
//    mesh and N = 1000 with 2 route reflectors: cold start (all join at once), one node joining,
//    10% crashing (the simulator resets their connections: peers withdraw at once), 10% going
//    silent (no reset: the hold timer detects them). For each: virtual time and wall time to
//    settle, BGP UPDATEs and bytes sent by all speakers, against the lower bound of /work/shared/reference/bgp.md §3
//    (every node originates one block; 49 octets per UPDATE).
// Run alone: NODE_OPTIONS=--max-old-space-size=16384 pnpm exec tsx --conditions=source scripts/bench/calico.ts
// (the 500-node mesh holds ~250k BGP sessions and needs more than the default 4 GB heap; `npm run bench` sets it).
// (CALICO_BENCH_N=10,100 limits the mesh sizes; CALICO_BENCH_RR=0 skips the 1000-node RR run.)
import { MemoryDatastore } from "@cnikit/core";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import type { SimTopology } from "@cnikit/sim";
import { HOLD_TIME, RESTART_TIME } from "../../packages/calico/src/agent.ts";
import { parseCalicoConfig } from "../../packages/calico/src/config.ts";
import { calicoFixtures, withRouteReflectors } from "../../packages/calico/src/fixtures.ts";
import { calico } from "../../packages/calico/src/index.ts";
import { BlockIpam } from "../../packages/calico/src/ipam.ts";
import type { CalicoAgent } from "../../packages/calico/src/agent.ts";
import { runIfMain, type Figure } from "./figures.ts";


const UPDATE_OCTETS = 49;

/** The default topology (two node subnets behind one router) with /21 node subnets: room for 1000+ nodes. */
function benchTopology(): SimTopology {
  const t = defaultTopology();
  const wide: Record<string, { cidr: string; gateway: string }> = { a: { cidr: "172.16.0.0/21", gateway: "172.16.0.1" }, b: { cidr: "172.16.16.0/21", gateway: "172.16.16.1" } };
  return {
    ...t,
    subnets: t.subnets.map((s) => (wide[s.name] ? { ...s, ...wide[s.name] } : s)),
    routers: (t.routers ?? []).map((r) => ({ ...r, interfaces: r.interfaces.map((i) => (wide[i.subnet] ? { ...i, address: wide[i.subnet]!.gateway } : i)) })),
  };
}

async function ipamFigures(out: Figure[]): Promise<void> {
  const pools = parseCalicoConfig([{ kind: "IPPool", metadata: { name: "p" }, spec: { cidr: "10.0.0.0/12" } }]).pools;
  const config = { strictAffinity: false, maxBlocksPerHost: 20, autoAllocateBlocks: true };
  const store = new MemoryDatastore();
  const claims = 300;
  let t = performance.now();
  for (let i = 0; i < claims; i++) await new BlockIpam({ store, node: `n${i}`, pools, config }).allocate(`h${i}`);
  out.push({ name: "ipam: block claims (claim + first address)", value: Math.round(claims / ((performance.now() - t) / 1000)), unit: "claims/s" });
  const one = new BlockIpam({ store, node: "n0", pools, config });
  const allocs = 600;
  t = performance.now();
  for (let i = 0; i < allocs; i++) await one.allocate(`a${i}`);
  out.push({ name: "ipam: allocations on one node (300 blocks in the store)", value: Math.round(allocs / ((performance.now() - t) / 1000)), unit: "allocs/s" });
}

/** UPDATEs and bytes sent by every alive speaker, and its Established sessions (each sends one End-of-RIB). */
function bgpTotals(cluster: SimCluster<unknown>): { updates: number; bytes: number; established: number } {
  let updates = 0;
  let bytes = 0;
  let established = 0;
  for (const n of cluster.nodes()) {
    if (!n.alive) continue;
    for (const p of (n.agent as CalicoAgent).bgp?.peerStatus() ?? []) {
      updates += p.stats?.updatesOut ?? 0;
      bytes += p.stats?.bytesOut ?? 0;
      if (p.state === "Established") established++;
    }
  }
  return { updates, bytes, established };
}

/** Steps the virtual clock by 100 ms until `done()` holds (keepalives never let the cluster idle). */
async function until(cluster: SimCluster<unknown>, done: () => boolean, limitMs: number): Promise<number> {
  const v0 = cluster.clock.now();
  while (!done() && cluster.clock.now() - v0 < limitMs) await cluster.clock.advance(100);
  return cluster.clock.now() - v0;
}

/** Every alive node has a BGP route for every other alive node's first block. */
function meshComplete(cluster: SimCluster<unknown>): boolean {
  const alive = cluster.nodes().filter((x) => x.alive);
  return alive.every((n) => cluster.dataplane(n.name).routes.filter((r) => r.origin === "bgp").length >= alive.length - 1);
}

async function convergence(figures: Figure[], n: number, rr: boolean): Promise<void> {
  // Each figure also goes to stderr as soon as it is measured, so a long run shows how far it got.
  const out = { push: (f: Figure) => (figures.push(f), process.stderr.write(`  [calico bench] ${f.name}: ${f.value} ${f.unit}\n`)) };
  const base = calicoFixtures.configs.find((c) => c.label === "ipip-crosssubnet")!.config;
  const config = calico.parseConfig(rr ? withRouteReflectors(base) : base);
  const cluster = SimCluster.create({ backend: calico, config, topology: benchTopology(), seed: 1 }) as unknown as SimCluster<unknown>;
  const tag = `${rr ? "2 RRs" : "mesh"} N=${n}`;
  const R = 2;
  // Every CALICO_BENCH_PROGRESS_S wall seconds (default 30): how far the run got (to stderr).
  const progressEvery = Number(process.env.CALICO_BENCH_PROGRESS_S ?? 30) * 1000;
  const wStart = performance.now();
  const progress = setInterval(() => {
    const alive = cluster.nodes().filter((x) => x.alive);
    const t = bgpTotals(cluster);
    const routes = alive.map((x) => (x.agent as CalicoAgent).bgp?.peerStatus().reduce((a, p) => a + p.prefixesReceived, 0) ?? 0).sort((a, b) => a - b);
    process.stderr.write(
      `  [calico bench] ${tag} after ${Math.round((performance.now() - wStart) / 1000)} s wall, ${cluster.clock.now()} ms virtual: ${alive.length} nodes, ${t.established} sessions Established, ` +
        `${t.updates} UPDATEs sent, prefixes received per node min ${routes[0] ?? 0} median ${routes[routes.length >> 1] ?? 0}, heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MB\n`,
    );
  }, progressEvery);
  progress.unref();
  try {
    const w0 = performance.now();
    const v0 = cluster.clock.now();
    const start = cluster.addNodes(n);
    let done = false;
    void start.then(() => (done = true));
    while (!done) await cluster.clock.advance(100);
    await until(cluster, () => meshComplete(cluster), 600_000);
    const cold = bgpTotals(cluster);
    out.push({ name: `cold start ${tag}: virtual time until every node routes to every block`, value: cluster.clock.now() - v0, unit: "ms" });
    out.push({ name: `cold start ${tag}: wall time`, value: Math.round(performance.now() - w0), unit: "ms" });
    const bound = rr ? R * n + R * n * (n - 1) : n * (n - 1);
    out.push({ name: `cold start ${tag}: BGP UPDATEs (lower bound ${bound}, + ${cold.established} End-of-RIB markers)`, value: cold.updates, unit: "msgs" });
    out.push({ name: `cold start ${tag}: BGP UPDATE+keepalive bytes (UPDATE lower bound ${bound * UPDATE_OCTETS})`, value: cold.bytes, unit: "bytes" });

    const w1 = performance.now();
    const v1 = cluster.clock.now();
    const joined = cluster.addNode();
    let jd = false;
    void joined.then(() => (jd = true));
    while (!jd) await cluster.clock.advance(100);
    await until(cluster, () => meshComplete(cluster), 600_000);
    const j = bgpTotals(cluster);
    out.push({ name: `one node joins ${tag}: virtual time`, value: cluster.clock.now() - v1, unit: "ms" });
    out.push({ name: `one node joins ${tag}: wall time`, value: Math.round(performance.now() - w1), unit: "ms" });
    out.push({ name: `one node joins ${tag}: BGP UPDATEs (lower bound ${rr ? R + R * n : n} for its route + ${rr ? R * n : n} for its table, + ${j.established - cold.established} End-of-RIB)`, value: j.updates - cold.updates, unit: "msgs" });

    const w2 = performance.now();
    const v2 = cluster.clock.now();
    const victims = cluster.nodes().filter((x) => x.alive).slice(rr ? R : 0).filter((_, i) => i % 10 === 5).slice(0, Math.max(1, Math.round(n / 10)));
    for (const v of victims) await cluster.removeNode(v.name, { mode: "crash" });
    const ips = new Set(victims.map((v) => v.info.underlay[0]!.address));
    await until(cluster, () => cluster.nodes().filter((x) => x.alive).every((x) => !cluster.dataplane(x.name).routes.some((r) => r.via !== undefined && ips.has(r.via))), (HOLD_TIME + RESTART_TIME) * 1000 + 60_000);
    out.push({ name: `10% crash ${tag}: virtual time until no route points at a crashed node (connections reset: no hold timer needed)`, value: cluster.clock.now() - v2, unit: "ms" });
    out.push({ name: `10% crash ${tag}: wall time`, value: Math.round(performance.now() - w2), unit: "ms" });

    // 10% of the rest go silent (power-off: no RST; every message to or from them delayed by an
    // hour, so the simulator's TCP never resets): only the hold timers can detect it.
    const w3 = performance.now();
    const v3 = cluster.clock.now();
    const silent = cluster.nodes().filter((x) => x.alive).slice(rr ? R : 0).filter((_, i) => i % 10 === 3).slice(0, Math.max(1, Math.round(n / 10)));
    const silentIps = new Set(silent.map((v) => v.info.underlay[0]!.address));
    for (const v of silent) {
      cluster.network.setFaults({ delayMs: { min: 3_600_000, max: 3_600_000 } }, { from: v.name });
      cluster.network.setFaults({ delayMs: { min: 3_600_000, max: 3_600_000 } }, { to: v.name });
    }
    const silentNames = new Set(silent.map((v) => v.name));
    await until(cluster, () => cluster.nodes().filter((x) => x.alive && !silentNames.has(x.name)).every((x) => !cluster.dataplane(x.name).routes.some((r) => r.via !== undefined && silentIps.has(r.via))), (HOLD_TIME + 60) * 1000);
    out.push({ name: `10% silent ${tag}: virtual time until no route points at a silent node (hold timer ${HOLD_TIME}s)`, value: cluster.clock.now() - v3, unit: "ms" });
    out.push({ name: `10% silent ${tag}: wall time`, value: Math.round(performance.now() - w3), unit: "ms" });
  } finally {
    clearInterval(progress);
    await cluster.close();
  }
}

/** Runs every figure; see the module comment. */
export async function benchCalico(): Promise<Figure[]> {
  const out: Figure[] = [];
  await ipamFigures(out);
  const sizes = (process.env.CALICO_BENCH_N ?? "10,100,500").split(",").map(Number).filter((x) => x > 0);
  for (const n of sizes) await convergence(out, n, false);
  if (process.env.CALICO_BENCH_RR !== "0") await convergence(out, Number(process.env.CALICO_BENCH_RR_N ?? 1000), true);
  return out;
}

await runIfMain(import.meta.url, "calico", benchCalico);
