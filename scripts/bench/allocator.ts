// Address-pool allocator throughput: allocate+release pairs on an IPv4 /16 at 0%, 50% and 99% fill
// (holes scattered by a seeded PRNG, so the search crosses full words), and plain allocations on a
// sparse IPv6 /64. Wall-clock figures from performance.now(); nothing here asserts a speed.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/allocator.ts
import { AddressPool } from "@cnikit/core";

export interface AllocatorFigure {
  name: string;
  value: number;
  unit: string;
}

/** Deterministic PRNG (mulberry32) so every run fills the pool the same way. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A /16 pool with `fill` of its capacity held, the free ones scattered at random. */
function filledPool(fill: number): AddressPool {
  const pool = new AddressPool({ range: "10.20.0.0/16" });
  const all: string[] = [];
  for (let i = 0n; i < pool.capacity; i++) all.push(pool.allocate("fill"));
  const random = prng(0x5eed);
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
export async function benchAllocator(): Promise<AllocatorFigure[]> {
  const figures: AllocatorFigure[] = [];
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

if (import.meta.url === `file://${process.argv[1]}`) {
  const figures = await benchAllocator();
  const width = Math.max(...figures.map((f) => f.name.length));
  console.log(`allocator — node ${process.version}, ${process.platform}/${process.arch}`);
  for (const f of figures) {
    console.log(`  ${f.name.padEnd(width)}  ${Math.round(f.value).toLocaleString("en-US").padStart(12)} ${f.unit}`);
  }
}
