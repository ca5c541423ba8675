// flannel backend: subnet lease throughput and route convergence.
//
//  - lease acquisitions per second: one after another (no contention), and N at once (CAS races
//    retried with jittered back-off on the virtual clock);
//  - convergence when N = 10, 100, 1000 agents join at once (every agent routes to every other),
//    and when 10% of them crash (no goodbye: their 24 h leases expire, every survivor withdraws
//    their routes). For each: virtual time, wall time, store operations, watch events delivered.
//
// Agents run directly on one MemoryDatastore and a VirtualClock (no packet simulator needed).
// Underlay: two /16s of the benchmarking range (198.18.0.0/15), Network 10.0.0.0/8 (65535 /24s).
// Wall-clock figures from performance.now(); nothing here asserts a speed.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/flannel.ts
// (FLANNEL_BENCH_N=10,100 limits the cluster sizes; the default 10,100,1000 takes a few minutes,
// most of it firing 1000 agents' 10 s resync timers through 24 h of virtual time.)
import { seededRandom } from "@cnikit/core";
import { MemoryDatastore, MemoryMembership, VirtualClock, flushAsync, silentLogger } from "@cnikit/core";
import type { AgentContext, Datastore, NodeInfo, WatchEvent } from "@cnikit/core";
import { FlannelAgent } from "../../packages/flannel/src/agent.ts";
import { parseFlannelConfig } from "../../packages/flannel/src/config.ts";
import { SUBNET_PREFIX, flannelLeaseKeeper } from "../../packages/flannel/src/leases.ts";
import type { FlannelConfig } from "../../packages/flannel/src/config.ts";
import { runIfMain, type Figure } from "./figures.ts";



/** Counts every store call and every watch event delivered through it. */
interface Counters {
  ops: number;
  watchEvents: number;
}

function countingStore(inner: Datastore, counters: Counters): Datastore {
  const count = <T>(p: Promise<T>): Promise<T> => {
    counters.ops++;
    return p;
  };
  return {
    get: (k) => count(inner.get(k)),
    put: (k, v, o) => count(inner.put(k, v, o)),
    delete: (k, o) => count(inner.delete(k, o)),
    list: (p) => count(inner.list(p)),
    txn: (c, s) => count(inner.txn(c, s)),
    watch(prefix, options) {
      counters.ops++;
      const source = inner.watch(prefix, options);
      return {
        async *[Symbol.asyncIterator](): AsyncGenerator<WatchEvent> {
          for await (const ev of source) {
            counters.watchEvents++;
            yield ev;
          }
        },
      };
    },
    grantLease: (t) => count(inner.grantLease(t)),
    keepAlive: (l) => count(inner.keepAlive(l)),
    revokeLease: (l) => count(inner.revokeLease(l)),
    leaseInfo: (l) => count(inner.leaseInfo(l)),
    revision: () => count(inner.revision()),
    close: () => inner.close(),
  };
}

const CONFIG: FlannelConfig = parseFlannelConfig({ Network: "10.0.0.0/8", Backend: { Type: "vxlan" } });

function nodeInfo(i: number): NodeInfo {
  const second = i % 2 === 0 ? 18 : 19;
  const host = Math.floor(i / 2) + 2;
  return { name: `node-${i}`, underlay: [{ iface: "eth0", address: `198.${second}.${host >> 8}.${host & 255}`, prefixLength: 16, gateway: `198.${second}.0.1` }] };
}

const noPeers = { self: "", listen: () => () => undefined, connect: () => Promise.reject(new Error("unused")) } as unknown as AgentContext<FlannelConfig>["peers"];

/** Advances the virtual clock in steps until `done()` holds; returns the virtual ms it took. */
async function runUntil(clock: VirtualClock, done: () => boolean, options: { stepMs: number; limitMs: number }): Promise<number> {
  const start = clock.now();
  await flushAsync();
  while (!done()) {
    if (clock.now() - start > options.limitMs) throw new Error(`not converged after ${options.limitMs} ms of virtual time`);
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
      flannelLeaseKeeper({ store, local: new MemoryDatastore({ clock }), localKey: "/flannel/lease", config: CONFIG, attrs: { BackendType: "vxlan", PublicIP: nodeInfo(i).underlay[0]!.address, NodeName: `node-${i}` }, clock, random, log: silentLogger }).acquire();
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

async function convergence(n: number): Promise<Figure[]> {
  const clock = new VirtualClock();
  const counters: Counters = { ops: 0, watchEvents: 0 };
  const store = countingStore(new MemoryDatastore({ clock }), counters);
  const agents: FlannelAgent[] = [];
  for (let i = 0; i < n; i++) {
    agents.push(
      new FlannelAgent({
        config: CONFIG,
        node: nodeInfo(i),
        store,
        local: new MemoryDatastore({ clock }),
        peers: noPeers,
        clock,
        log: silentLogger,
        members: new MemoryMembership({ clock }),
        random: seededRandom(1000 + i),
      }),
    );
  }
  const routesTo = (a: FlannelAgent) => a.dataplane().routes.length;

  // Join at once.
  let t0 = performance.now();
  let started = 0;
  const starts = agents.map((a) => a.start().then(() => started++));
  const joinVirtual = await runUntil(clock, () => started === n && agents.every((a) => routesTo(a) === n - 1), { stepMs: 10, limitMs: 600_000 });
  await Promise.all(starts);
  const joinWall = performance.now() - t0;
  const joinOps = counters.ops;
  const joinEvents = counters.watchEvents;

  // 10% crash: their renewals stop (stop without release); survivors drop them when the leases expire.
  const crashed = agents.filter((_, i) => i % 10 === 0);
  const survivors = agents.filter((_, i) => i % 10 !== 0);
  for (const a of crashed) await a.stop();
  counters.ops = 0;
  counters.watchEvents = 0;
  t0 = performance.now();
  const want = n - crashed.length - 1;
  const crashVirtual = await runUntil(clock, () => survivors.every((a) => routesTo(a) === want), { stepMs: 60_000, limitMs: 2 * 86_400_000 });
  const crashWall = performance.now() - t0;
  for (const a of survivors) await a.stop();

  return [
    { name: `join N=${n} at once: virtual time to full mesh`, value: joinVirtual, unit: "ms (virtual)" },
    { name: `join N=${n} at once: wall time`, value: joinWall, unit: "ms" },
    { name: `join N=${n} at once: store operations`, value: joinOps, unit: "ops" },
    { name: `join N=${n} at once: watch events delivered`, value: joinEvents, unit: "events" },
    { name: `crash 10% of N=${n}: virtual time to withdraw (24 h TTL)`, value: crashVirtual, unit: "ms (virtual)" },
    { name: `crash 10% of N=${n}: wall time`, value: crashWall, unit: "ms" },
    { name: `crash 10% of N=${n}: store operations`, value: counters.ops, unit: "ops" },
    { name: `crash 10% of N=${n}: watch events delivered`, value: counters.watchEvents, unit: "events" },
  ];
}

/** Runs every flannel measurement; see the file comment. */
export async function benchFlannel(): Promise<Figure[]> {
  const figures = await leaseThroughput();
  for (const n of (process.env.FLANNEL_BENCH_N ?? "10,100,1000").split(",").map(Number)) figures.push(...(await convergence(n)));
  return figures;
}

await runIfMain(import.meta.url, "flannel", benchFlannel);
