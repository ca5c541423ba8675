// weave IPAM ring: a longer sweep of the property test (test/ring-property.test.ts runs seeds
// 1-100): random partition / heal / crash / restart / delete-for-good schedules with allocations
// between them, 0 duplicate addresses expected. Prints one compact line per failing schedule (all of
// them with WEAVE_SWEEP_VERBOSE=1) and a summary.
// Run: npx tsx --conditions=source scripts/bench/weave-ring-sweep.ts [first-seed] [count] [steps]
//   (defaults 101 1000 24; loss rate WEAVE_SWEEP_LOSS, default 0.05; most founding peers
//   WEAVE_SWEEP_PEERS, default 5)
import { runRingSchedule } from "../../packages/weave/src/ipam/testing.ts";

const first = Number(process.argv[2] ?? 101);
const count = Number(process.argv[3] ?? 1000);
const steps = Number(process.argv[4] ?? 24);
const lossRate = Number(process.env.WEAVE_SWEEP_LOSS ?? 0.05);
const maxPeers = Number(process.env.WEAVE_SWEEP_PEERS ?? 5);
const verbose = process.env.WEAVE_SWEEP_VERBOSE === "1";
const started = performance.now();
let failed = 0;
let granted = 0;
for (let seed = first; seed < first + count; seed++) {
  const r = await runRingSchedule(seed, { steps, lossRate, maxPeers });
  granted += r.allocations;
  if (r.failures.length > 0) {
    failed++;
    console.log(r.line);
    for (const f of r.failures) console.log(`  ${f}`);
  } else if (verbose) {
    console.log(r.line);
  }
}
console.log(
  `weave ring sweep: seeds ${first}..${first + count - 1}, ${steps} steps, loss ${lossRate}, 3-${maxPeers} peers: ${failed} failed, ${granted} allocations held at the end, ${Math.round(performance.now() - started)} ms`,
);
process.exitCode = failed > 0 ? 1 : 0;
