// flannel backend: subnet lease throughput — lease acquisitions per second, one after another (no
// contention) and N at once (CAS races retried with jittered back-off on the virtual clock).
// Flannel's route convergence is measured by cnikit-bench, like every backend's:
// `npm run bench -- convergence-flannel` (FLANNEL_BENCH_N sets its sizes; see scripts/bench.ts).
//
// Leases on one MemoryDatastore and a VirtualClock. Underlay: two /16s of the benchmarking range
// (198.18.0.0/15), Network 10.0.0.0/8 (65535 /24s).
// Wall-clock figures from performance.now(); nothing here asserts a speed.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/flannel.ts
import { seededRandom } from "@cnikit/core";
import { MemoryDatastore, VirtualClock, flushAsync, silentLogger } from "@cnikit/core";
import type { NodeInfo } from "@cnikit/core";
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

/** Runs every flannel measurement; see the file comment. */
export async function benchFlannel(): Promise<Figure[]> {
  return leaseThroughput();
}

await runIfMain(import.meta.url, "flannel", benchFlannel);
