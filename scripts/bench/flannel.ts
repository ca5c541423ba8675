// flannel backend: subnet lease throughput — lease acquisitions per second, one after another (no
// contention) and N at once (CAS races retried with jittered back-off on the virtual clock) — and
// the agents' own cost at scale (issue 19): N agents join at once until every one routes to every
// other, then one more node joins the settled cluster. Wall time, store operations, watch events
// delivered (and per join and other node: 1 is the floor, the joiner's lease put), lease-prefix
// re-lists and plans. Agents run on the store alone (no packet simulator: cnikit-bench's cold-start
// adds the simulator's reachability walk to its wall time). FLANNEL_JOIN_N sets the sizes
// (default 1000); FLANNEL_LEASE_BENCH=0 skips the lease-throughput figures.
// Flannel's route convergence is measured by cnikit-bench, like every backend's:
// `npm run bench -- convergence-flannel` (FLANNEL_BENCH_N sets its sizes; see scripts/bench.ts).
//
// Leases on one MemoryDatastore and a VirtualClock. Underlay: two /16s of the benchmarking range
// (198.18.0.0/15), Network 10.0.0.0/8 (65535 /24s).
// Wall-clock figures from performance.now(); nothing here asserts a speed.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/flannel.ts
import { seededRandom } from "@cnikit/core";
import { MemoryDatastore, MemoryMembership, VirtualClock, flushAsync, silentLogger } from "@cnikit/core";
import type { AgentContext, NodeInfo, WatchEvent, WatchOptions } from "@cnikit/core";
import { CountingDatastore } from "../../conformance/src/harness.ts";
import { FlannelAgent } from "../../packages/flannel/src/agent.ts";
import { parseFlannelConfig } from "../../packages/flannel/src/config.ts";
import { SUBNET_PREFIX, flannelLeaseKeeper } from "../../packages/flannel/src/leases.ts";
import type { FlannelConfig } from "../../packages/flannel/src/config.ts";
import { runIfMain, type Figure } from "./figures.ts";

const CONFIG: FlannelConfig = parseFlannelConfig({ Network: "10.0.0.0/8", Backend: { Type: "vxlan" } });

function nodeInfo(i: number): NodeInfo {
  const second = i % 2 === 0 ? 18 : 19;
  const host = Math.floor(i / 2) + 2;
  return { name: `node-${i}`, underlay: [{ iface: "eth0", address: `198.${second}.${host >> 8}.${host & 255}`, prefixLength: 16, gateway: `198.${second}.0.1` }] };
}

/** Advances the virtual clock in steps until `done()` holds; returns the virtual ms it took. */
async function runUntil(clock: VirtualClock, done: () => boolean, options: { stepMs: number; limitMs: number }): Promise<number> {
  const start = clock.now();
  await flushAsync();
  while (!done()) {
    if (clock.now() - start > options.limitMs) throw new Error(`leases not settled after ${options.limitMs} ms of virtual time`);
    await clock.advance(options.stepMs);
  }
  return clock.now() - start;
}

async function leaseThroughput(): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const [label, n, concurrent] of [
    ["one after another", 2000, false],
    ["1000 at once", 1000, true],
  ] as const) {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const random = seededRandom(42);
    const acquire = (i: number) =>
      flannelLeaseKeeper({
        store,
        local: new MemoryDatastore({ clock }),
        localKey: "/flannel/lease",
        config: CONFIG,
        attrs: { BackendType: "vxlan", PublicIP: nodeInfo(i).underlay[0]!.address, NodeName: `node-${i}` },
        clock,
        random,
        log: silentLogger,
      }).acquire();
    const t0 = performance.now();
    let conflicts = 0;
    if (concurrent) {
      let settled = 0;
      const all = Array.from({ length: n }, (_, i) =>
        acquire(i).then((l) => {
          settled++;
          conflicts += l.conflicts;
        }),
      );
      await runUntil(clock, () => settled === n, { stepMs: 10, limitMs: 600_000 });
      await Promise.all(all);
    } else {
      for (let i = 0; i < n; i++) conflicts += (await acquire(i)).conflicts;
    }
    const wall = performance.now() - t0;
    const held = (await store.list(SUBNET_PREFIX)).items.length;
    if (held !== n) throw new Error(`expected ${n} leases, found ${held}`);
    figures.push({ name: `lease acquisitions, ${label} (${n} leases)`, value: (n / wall) * 1000, unit: "leases/s" });
    if (concurrent) figures.push({ name: `lease CAS conflicts retried, ${label}`, value: conflicts, unit: "conflicts" });
  }
  return figures;
}

/**
 * CountingDatastore that also counts the watch events it delivers. The count is taken in the
 * iterator's `next`, not by an async generator around the store's: a generator adds its own
 * promise round trips to each of the N² deliveries, and that cost was the bench's, not the agents'.
 */
class WatchCountingStore extends CountingDatastore {
  watchEvents = 0;
  override watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> {
    const source = super.watch(prefix, options);
    const count = (r: IteratorResult<WatchEvent>): IteratorResult<WatchEvent> => {
      if (r.done !== true) this.watchEvents++;
      return r;
    };
    return {
      [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
        const it = source[Symbol.asyncIterator]();
        return {
          next: () => it.next().then(count),
          return: (value?: unknown) => it.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
        };
      },
    };
  }
}

const noPeers = { self: "", listen: () => () => undefined, connect: () => Promise.reject(new Error("flannel uses no peers")) } as unknown as AgentContext<FlannelConfig>["peers"];

/** CPU ms (user + system) of this process since `since`: on a loaded machine, wall time is not the agents' cost alone. */
function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/** Heap in use now, in MB (after a full collection when node runs with --expose-gc). */
function heapMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/**
 * The yardstick, measured in the same run: N² lease values through JSON.parse (what N agents that
 * each decode every lease do, the cost issue 19 removes), CPU ms. On a loaded machine the ratio of
 * the join's CPU time to it is steadier than either figure.
 */
function yardstickMs(n: number): number {
  const values = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ PublicIP: nodeInfo(i).underlay[0]!.address, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" }, NodeName: `node-${i}` }),
  );
  const cpu0 = process.cpuUsage();
  let sink = 0;
  for (let a = 0; a < n; a++) for (const v of values) sink += (JSON.parse(v) as { BackendData: { VNI: number } }).BackendData.VNI;
  if (sink !== n * n) throw new Error("yardstick: unexpected sum");
  return cpuMs(cpu0);
}

/** Issue 19's goal for N = 1000 joining at once: 3 s of wall time. */
const JOIN_GOAL_MS = 3_000;

/** N agents join at once until each routes to every other; then one more joins; see the file comment. */
export async function joinAtScale(n: number): Promise<Figure[]> {
  const clock = new VirtualClock();
  const store = new WatchCountingStore(new MemoryDatastore({ clock }));
  const members = new MemoryMembership({ clock, nodes: Array.from({ length: n + 1 }, (_, i) => nodeInfo(i)) });
  const agent = (i: number) =>
    new FlannelAgent({ config: CONFIG, node: nodeInfo(i), store, local: new MemoryDatastore({ clock }), peers: noPeers, clock, log: silentLogger, random: seededRandom(1000 + i), members });
  const agents = Array.from({ length: n }, (_, i) => agent(i));
  const routesTo = (a: FlannelAgent) => a.dataplane().routes.length;
  const sum = (key: "relists" | "replans") => agents.reduce((t, a) => t + a.stats()[key], 0);
  const figures: Figure[] = [];
  const label = `join N=${n} at once`;

  let t0 = performance.now();
  let cpu0 = process.cpuUsage();
  let started = 0;
  const starts = agents.map((a) => a.start().then(() => started++));
  const virtual = await runUntil(clock, () => started === n && agents.every((a) => routesTo(a) === n - 1), { stepMs: 10, limitMs: 600_000 });
  await Promise.all(starts);
  const wall = performance.now() - t0;
  const cpu = cpuMs(cpu0);
  figures.push(
    { name: `${label}: wall time`, value: wall, unit: "ms" },
    { name: `${label}: CPU time (user + system)`, value: cpu, unit: "ms" },
    { name: `${label}: heap used at full mesh`, value: heapMb(), unit: "MB" },
    { name: `${label}: wall time / issue 19's goal (3 s)`, value: wall / JOIN_GOAL_MS, unit: "×" },
    { name: `${label}: virtual time to full mesh`, value: virtual, unit: "ms (virtual)" },
    { name: `${label}: store operations`, value: store.ops, unit: "ops" },
    { name: `${label}: watch events delivered`, value: store.watchEvents, unit: "events" },
    { name: `${label}: watch events per join and other node`, value: store.watchEvents / (n * (n - 1)), unit: "events" },
    { name: `${label}: lease-prefix listings`, value: sum("relists"), unit: "lists" },
    { name: `${label}: plans`, value: sum("replans"), unit: "plans" },
  );

  // One more node joins the settled cluster: every other node should hear exactly its lease.
  const ops0 = store.ops;
  const events0 = store.watchEvents;
  const relists0 = sum("relists");
  const joiner = agent(n);
  t0 = performance.now();
  cpu0 = process.cpuUsage();
  let joined = false;
  const start = joiner.start().then(() => (joined = true));
  await runUntil(clock, () => joined && routesTo(joiner) === n && agents.every((a) => routesTo(a) === n), { stepMs: 10, limitMs: 600_000 });
  await start;
  figures.push(
    { name: `one more joins N=${n}: wall time`, value: performance.now() - t0, unit: "ms" },
    { name: `one more joins N=${n}: CPU time (user + system)`, value: cpuMs(cpu0), unit: "ms" },
    { name: `one more joins N=${n}: store operations`, value: store.ops - ops0, unit: "ops" },
    { name: `one more joins N=${n}: watch events per other node`, value: (store.watchEvents - events0) / n, unit: "events" },
    { name: `one more joins N=${n}: lease-prefix listings by the others`, value: sum("relists") - relists0, unit: "lists" },
  );
  for (const a of [...agents, joiner]) await a.stop();
  const yardstick = yardstickMs(n);
  figures.push({ name: `yardstick: ${n}² lease values through JSON.parse, CPU`, value: yardstick, unit: "ms" }, { name: `${label}: CPU time / yardstick`, value: cpu / yardstick, unit: "×" });
  return figures;
}

/** Runs every flannel measurement; see the file comment. */
export async function benchFlannel(): Promise<Figure[]> {
  const figures = process.env.FLANNEL_LEASE_BENCH === "0" ? [] : await leaseThroughput();
  for (const n of (process.env.FLANNEL_JOIN_N ?? "1000").split(",").map(Number)) figures.push(...(await joinAtScale(n)));
  return figures;
}

await runIfMain(import.meta.url, "flannel", benchFlannel);
