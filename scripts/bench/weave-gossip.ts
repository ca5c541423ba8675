// weave mesh: gossip cost and convergence at N = 10, 100, 500 peers (MemoryNetwork + VirtualClock).
//
// For each N: the mesh forms (every member dials every other; CONN_LIMIT 200 as Weave's default,
// so at N = 500 each peer holds about 200 connections and the mesh is partial), then
//  - join: a newcomer is added to every membership and started; we measure the virtual time until
//    every peer knows it (its record at its current version) and until the topology is consistent
//    again, and the messages and bytes each node sent meanwhile (streams + heartbeat datagrams, the
//    network's own counters);
//  - crash: one peer's connections are reset (network.disconnect, no goodbye); we measure the time
//    until no survivor knows it any more, and messages and bytes per node.
// Printed beside N·log2 N (the yardstick of a delta gossip with fan-out 2·log2 N) and N² (what a
// full-topology push per change would cost in records).
// Run: npx tsx --conditions=source scripts/bench/weave-gossip.ts
// (WEAVE_BENCH_N=10,100 picks the sizes; WEAVE_BENCH_CONN_LIMIT=30 bounds each peer's connections:
// a partial mesh, and a 500-peer run in minutes instead of the full mesh's 125 000 connections.)
import { Harness } from "../../packages/weave/test/mesh-harness.ts";
import type { HarnessPeer } from "../../packages/weave/test/mesh-harness.ts";
import { runIfMain, type Figure } from "./figures.ts";

const STEP_MS = 100;

async function waitFor(h: Harness, cond: () => boolean, limitMs: number, stepMs = STEP_MS): Promise<number> {
  return h.until(cond, limitMs, stepMs);
}

function knowsAll(h: Harness, who: HarnessPeer[], target: HarnessPeer): boolean {
  const self = target.mesh.self;
  return who.every((p) => p === target || p.mesh.knows(self.name)?.version === self.version);
}

export async function benchWeaveGossip(sizes: number[] = [10, 100, 500], connLimit = 200): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const n of sizes) {
    const h = new Harness({ n, seed: n, resetAfterMs: 30_000, options: () => ({ connLimit }) });
    const wall0 = performance.now();
    await h.startAll();
    const formed = await waitFor(h, () => h.converged(), 600_000, 500);
    process.stderr.write(`N=${n}: formed after ${formed} ms virtual, ${((performance.now() - wall0) / 1000).toFixed(1)} s wall\n`);
    figures.push({ name: `N=${n}: mesh formed (all consistent)`, value: formed / 1000, unit: "s virtual" });
    await h.clock.advance(5_000);

    // Join.
    h.network.resetStats();
    const newcomer = h.addPeer();
    await newcomer.mesh.start();
    const all = h.peers;
    const known = await waitFor(h, () => knowsAll(h, all, newcomer) && newcomer.mesh.knownPeers() === all.length, 300_000);
    const settled = known + (await waitFor(h, () => h.converged(), 300_000));
    const join = h.network.stats();
    const logN = Math.log2(n);
    figures.push({ name: `N=${n}: join — every peer knows the newcomer`, value: known / 1000, unit: "s virtual" });
    figures.push({ name: `N=${n}: join — topology consistent again`, value: settled / 1000, unit: "s virtual" });
    figures.push({ name: `N=${n}: join — messages per node`, value: join.messages / all.length, unit: "msgs" });
    figures.push({ name: `N=${n}: join — bytes per node`, value: join.bytes / all.length, unit: "B" });
    figures.push({ name: `N=${n}: yardstick N·log2 N`, value: n * logN, unit: "" });

    // Crash.
    await h.clock.advance(5_000);
    h.network.resetStats();
    const victim = h.peers[Math.floor(n / 2)]!;
    const gone = victim.mesh.self.name;
    const survivors = h.peers.filter((p) => p !== victim);
    h.network.disconnect(victim.node);
    await victim.mesh.stop();
    victim.transport.close();
    const dropped = await waitFor(h, () => survivors.every((p) => p.mesh.knows(gone) === undefined), 300_000);
    const crash = h.network.stats();
    figures.push({ name: `N=${n}: crash — no survivor knows it`, value: dropped / 1000, unit: "s virtual" });
    figures.push({ name: `N=${n}: crash — messages per node`, value: crash.messages / survivors.length, unit: "msgs" });
    figures.push({ name: `N=${n}: crash — bytes per node`, value: crash.bytes / survivors.length, unit: "B" });
    figures.push({ name: `N=${n}: wall time`, value: (performance.now() - wall0) / 1000, unit: "s" });
    await h.stopAll();
  }
  return figures;
}

const sizes = (process.env["WEAVE_BENCH_N"] ?? "10,100,500").split(",").map(Number);
const limit = Number(process.env["WEAVE_BENCH_CONN_LIMIT"] ?? 200);
await runIfMain(import.meta.url, `weave mesh gossip (CONN_LIMIT ${limit})`, () => benchWeaveGossip(sizes, limit));
