// Address-pool allocator throughput: allocate+release pairs on an IPv4 /16 at 0%, 50% and 99% fill
// (holes scattered by a seeded PRNG, so the search crosses full words), and plain allocations on a
// sparse IPv6 /64. Wall-clock figures from performance.now(); nothing here asserts a speed.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/allocator.ts
import { seededRandom } from "@cnikit/core";
import { AddressPool } from "@cnikit/core";
import { runIfMain, type Figure } from "./figures.ts";

/** A /16 pool with `fill` of its capacity held, the free ones scattered at random. */
function filledPool(fill: number): AddressPool {
  const pool = new AddressPool({ range: "10.20.0.0/16" });
  const all: string[] = [];
  for (let i = 0n; i < pool.capacity; i++) all.push(pool.allocate("fill"));
  const random = seededRandom(0x5eed);
  // Fisher-Yates, then free the first (1 - fill) share.
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  const toFree = Math.round(all.length * (1 - fill));
  for (let i = 0; i < toFree; i++) pool.release(all[i]!);
  return pool;
}

/** Runs `batch` (which performs `perBatch` ops) until at least `minMs` passed; returns ops/s. */
function opsPerSecond(batch: () => void, perBatch: number, minMs: number): number {
  // Warm-up so the JIT has compiled the path being measured.
  const warmUntil = performance.now() + minMs / 4;
  while (performance.now() < warmUntil) batch();
  let ops = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    batch();
    ops += perBatch;
    elapsed = performance.now() - t0;
  } while (elapsed < minMs);
  return (ops / elapsed) * 1000;
}

/** Measures the allocator; each figure is ops per second. */
export async function benchAllocator(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const minMs = 1000;
  for (const fill of [0, 0.5, 0.99]) {
    const pool = filledPool(fill);
    const batch = (): void => {
      for (let i = 0; i < 1000; i++) pool.release(pool.allocate("bench"));
    };
    figures.push({
      name: `allocate+release, IPv4 /16 at ${Math.round(fill * 100)}% fill (${pool.used} held)`,
      value: opsPerSecond(batch, 1000, minMs),
      unit: "ops/s",
    });
  }

  // Sparse /64: allocations only, so the pool keeps growing (as on a node that never frees).
  const v6 = new AddressPool({ range: "fd00:20::/64" });
  const v6Batch = (): void => {
    for (let i = 0; i < 1000; i++) v6.allocate("bench");
  };
  const v6Rate = opsPerSecond(v6Batch, 1000, minMs);
  figures.push({
    name: `allocate, IPv6 /64 ${v6.storage} (ends holding ${v6.used.toLocaleString("en-US")})`,
    value: v6Rate,
    unit: "ops/s",
  });

  return figures;
}

await runIfMain(import.meta.url, "allocator", benchAllocator);
