// calico backend: block IPAM throughput — block claims per second (each allocation on a fresh node
// claims a /26 by one CAS transaction) and allocations per second from one node's affine blocks
// (MemoryDatastore, no contention). BGP codec and route-reflector figures are in bgp.ts.
// Calico's route convergence (full mesh and route reflectors) is measured by cnikit-bench, like every
// backend's: `npm run bench -- convergence-calico` (CALICO_BENCH_N, CALICO_BENCH_RR and
// CALICO_BENCH_RR_N set its sizes; see scripts/bench.ts).
// Plan per BGP UPDATE: what one learned route's change costs the agent (replan + "did it change?")
// at 1000 learned routes, calico's LearnedTable against the pure planner with JSON-text comparison
// (the agent's path before it; the yardstick, in the same run).
// Run alone: pnpm exec tsx --conditions=source scripts/bench/calico.ts
import { MemoryDatastore, sameJson } from "@cnikit/core";
import type { NodeDataplane } from "@cnikit/core";
import { parseCalicoConfig } from "../../packages/calico/src/config.ts";
import { BlockIpam } from "../../packages/calico/src/ipam.ts";
import { LearnedTable, planDataplane, planIncremental } from "../../packages/calico/src/plan.ts";
import type { LearnedRoute } from "../../packages/calico/src/plan.ts";
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

function planFigures(out: Figure[], routes = 1000): void {
  const config = parseCalicoConfig([{ kind: "IPPool", metadata: { name: "p" }, spec: { cidr: "10.0.0.0/8", ipipMode: "CrossSubnet" } }]);
  const node = { name: "n0", underlay: [{ iface: "eth0", address: "192.168.0.1", prefixLength: 16 }] };
  const base = { config, node, pods: [], peers: [], blocks: ["10.0.0.0/26"] };
  const route = (i: number, flip: number): LearnedRoute => ({ prefix: `10.${(i >> 10) & 255}.${(i >> 2) & 255}.${(i & 3) * 64}/26`, nextHop: `192.168.${(i >> 7) & 255}.${(i & 127) + 2 + flip}` });
  const learned = Array.from({ length: routes }, (_, i) => route(i + 1, 0));
  // Incremental: one route's next hop changes, replan, compare with the last plan as objects.
  const table = new LearnedTable();
  for (const r of learned) table.set(r);
  let last: NodeDataplane = planIncremental(base, table, () => undefined);
  const n = 4000;
  let t = performance.now();
  for (let k = 0; k < n; k++) {
    table.set(route((k % routes) + 1, (k / routes) & 1 ? 0 : 1));
    const next = planIncremental(base, table, () => undefined);
    if (!sameJson(next, last)) last = next;
  }
  const incremental = ((performance.now() - t) * 1000) / n;
  // Pure: the same change, the whole plan again, compared by JSON text.
  let lastJson = JSON.stringify(planDataplane({ ...base, learned }));
  const m = 300;
  t = performance.now();
  for (let k = 0; k < m; k++) {
    learned[k % routes] = route((k % routes) + 1, (k / routes) & 1 ? 0 : 1);
    const json = JSON.stringify(planDataplane({ ...base, learned }));
    if (json !== lastJson) lastJson = json;
  }
  const pure = ((performance.now() - t) * 1000) / m;
  out.push({ name: `plan per UPDATE at ${routes} learned routes: LearnedTable + sameJson`, value: incremental, unit: "µs" });
  out.push({ name: `plan per UPDATE at ${routes} learned routes: pure planner + JSON text (yardstick)`, value: pure, unit: "µs" });
  out.push({ name: "plan per UPDATE: LearnedTable / pure planner", value: incremental / pure, unit: "×" });
}

/** Runs every figure; see the module comment. */
export async function benchCalico(): Promise<Figure[]> {
  const out: Figure[] = [];
  await ipamFigures(out);
  planFigures(out);
  return out;
}

await runIfMain(import.meta.url, "calico", benchCalico);
