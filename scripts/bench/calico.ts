// calico backend: block IPAM throughput — block claims per second (each allocation on a fresh node
// claims a /26 by one CAS transaction) and allocations per second from one node's affine blocks
// (MemoryDatastore, no contention). BGP codec and route-reflector figures are in bgp.ts.
// Calico's route convergence (full mesh and route reflectors) is measured by cnikit-bench, like every
// backend's: `npm run bench -- convergence-calico` (CALICO_BENCH_N, CALICO_BENCH_RR and
// CALICO_BENCH_RR_N set its sizes; see scripts/bench.ts).
// Run alone: pnpm exec tsx --conditions=source scripts/bench/calico.ts
import { MemoryDatastore } from "@cnikit/core";
import { parseCalicoConfig } from "../../packages/calico/src/config.ts";
import { BlockIpam } from "../../packages/calico/src/ipam.ts";
import { runIfMain, type Figure } from "./figures.ts";

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

/** Runs every figure; see the module comment. */
export async function benchCalico(): Promise<Figure[]> {
  const out: Figure[] = [];
  await ipamFigures(out);
  return out;
}

await runIfMain(import.meta.url, "calico", benchCalico);
