// `pnpm bench`: runs every benchmark module under scripts/bench/ and prints one table. Figures are
// wall-clock measurements on this machine; nothing here asserts a speed (tests never time things).
// Usage: pnpm bench [name-filter ...]   e.g. `pnpm bench allocator datastore`
// The conformance false-red sweep runs only when named: `pnpm bench conformance-sweep`.
import { benchAllocator } from "./bench/allocator.ts";
import { benchAzure } from "./bench/azure.ts";
import { benchBgp } from "./bench/bgp.ts";
import { benchCalico } from "./bench/calico.ts";
import { benchCni } from "./bench/cni.ts";
import { benchConformanceSweep } from "./bench/conformance-sweep.ts";
import { benchDatastore } from "./bench/datastore.ts";
import { benchEtcd } from "./bench/etcd.ts";
import { benchFlannel } from "./bench/flannel.ts";
import { benchNetpol } from "./bench/netpol.ts";
import { benchSimReachability } from "./bench/sim-reachability.ts";
import { benchWeaveConvergence } from "./bench/weave-convergence.ts";
import { formatFigures, type Figure } from "./bench/figures.ts";


/** `onlyWhenNamed`: left out of a run without filters (it takes hours with its defaults). */
const suites: { name: string; run: () => Promise<Figure[]>; onlyWhenNamed?: boolean }[] = [
  { name: "allocator", run: benchAllocator },
  { name: "datastore", run: benchDatastore },
  { name: "etcd", run: benchEtcd },
  { name: "sim-reachability", run: benchSimReachability },
  { name: "flannel", run: benchFlannel },
  { name: "bgp", run: benchBgp },
  { name: "calico", run: benchCalico },
  { name: "netpol", run: benchNetpol },
  { name: "cni", run: benchCni },
  { name: "weave-convergence", run: benchWeaveConvergence },
  // Flags from AZURE_BENCH_ARGS (e.g. "--quick" or "--nodes 20 --steps 5"); the default run takes ~3 minutes.
  { name: "azure", run: benchAzure },
  // The false-red sweep (hours with its defaults; narrow it with CONFORMANCE_SWEEP_ARGS="--seeds 1-100 --nodes 4").
  { name: "conformance-sweep", run: benchConformanceSweep, onlyWhenNamed: true },
];

const filters = process.argv.slice(2);
const chosen = suites.filter((s) => (filters.length === 0 ? !s.onlyWhenNamed : filters.some((f) => s.name.includes(f))));
if (chosen.length === 0) {
  console.error(`bench: no benchmark matches ${filters.join(", ")}; known: ${suites.map((s) => s.name).join(", ")}`);
  process.exit(2);
}
console.log(`cnikit benchmarks — node ${process.version}, ${process.platform}/${process.arch}, ${new Date().toISOString()}`);
for (const suite of chosen) {
  const started = performance.now();
  const figures = await suite.run();
  console.log(`\n## ${suite.name} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  console.log(formatFigures(figures));
}
