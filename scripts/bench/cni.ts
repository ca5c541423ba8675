// CNI ADD and DEL wall time on the real kernel, driven by @cnikit/cni's runtime the way containerd
// drives a conflist: p50/p95 over 200 pods added one after another and deleted one after another,
// then 100 ADDs at once on one node (pods/s). The reference conflist (Debian's bridge + host-local)
// and cnikit's (cnikit-cni forwarding to a cnikitd with the flannel backend on a file store,
// rendering with @cnikit/linux) run side by side in one run, with the ratio printed. Every plugin
// runs inside a scratch "node" namespace (`ip netns exec`, the same wrapper for both), each pod
// has its own scratch namespace. A breakdown of the fixed costs (process start of node and of the
// plugin, the wrapper, a VERSION call) shows where cnikit's ADD time goes.
// Needs root, iproute2 and containernetworking-plugins. Wall-clock figures; nothing asserted.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/cni.ts
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CniRuntime, loadConfList, netnsWrapper, spawnExec, type NetworkConfigList, type PluginExec, type RuntimeConf } from "../../packages/cni/src/runtime.ts";
import { runIfMain, type Figure } from "./figures.ts";

const PODS = 200;
const PARALLEL = 100;
const CNI_DIR = "/usr/lib/cni";

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Scratch namespaces named with this run's prefix, removed by `cleanup` whatever happened. */
class Scratch {
  readonly prefix = `ck-bench-${process.pid}`;
  readonly dir = mkdtempSync(join(tmpdir(), `ck-bench-${process.pid}-`));
  private readonly namespaces: string[] = [];

  ns(name: string): string {
    const full = `${this.prefix}-${name}`;
    run("ip", ["netns", "add", full]);
    this.namespaces.push(full);
    return full;
  }

  cleanup(): void {
    for (const ns of this.namespaces.reverse()) {
      try {
        run("ip", ["netns", "del", ns]);
      } catch {
        // Already gone.
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One conflist under test, with the runtime that drives it. */
interface Subject {
  label: string;
  runtime: CniRuntime;
  list: NetworkConfigList;
}

interface SeriesResult {
  add: number[];
  del: number[];
  parallelPodsPerSecond: number;
}

function pod(pods: string[], i: number, tag: string): RuntimeConf {
  return { containerId: `${tag}-c${i}`, netns: `/var/run/netns/${pods[i]!}`, ifName: "eth0", args: [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "bench"], ["K8S_POD_NAME", `p${i}`]] };
}

/** 200 sequential ADDs, 200 sequential DELs, then 100 parallel ADDs (timed) and their DELs. */
async function series(subject: Subject, pods: string[], tag: string): Promise<SeriesResult> {
  const { runtime, list } = subject;
  // Warm-up: VERSION answers cached, executables and libraries in the page cache.
  await runtime.add(list, pod(pods, 0, `${tag}w`));
  await runtime.del(list, pod(pods, 0, `${tag}w`));
  const add: number[] = [];
  const del: number[] = [];
  for (let i = 0; i < PODS; i++) {
    const t0 = performance.now();
    await runtime.add(list, pod(pods, i, tag));
    add.push(performance.now() - t0);
  }
  for (let i = 0; i < PODS; i++) {
    const t0 = performance.now();
    await runtime.del(list, pod(pods, i, tag));
    del.push(performance.now() - t0);
  }
  const t0 = performance.now();
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => runtime.add(list, pod(pods, i, `${tag}p`))));
  const parallelMs = performance.now() - t0;
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => runtime.del(list, pod(pods, i, `${tag}p`))));
  return { add: add.sort((a, b) => a - b), del: del.sort((a, b) => a - b), parallelPodsPerSecond: (PARALLEL / parallelMs) * 1000 };
}

/** Median wall time (ms) of `n` runs of `argv` with `env`, stdin `input`. */
async function spawnMedian(argv: string[], n: number, env: Record<string, string> = {}, input = ""): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ["pipe", "ignore", "ignore"] });
      child.on("error", reject);
      child.on("close", () => resolve());
      child.stdin.on("error", () => undefined);
      child.stdin.end(input);
    });
    times.push(performance.now() - t0);
  }
  return percentile(times.sort((a, b) => a - b), 50);
}

function referenceSubject(scratch: Scratch, nodeNs: string): Subject {
  const list = loadConfList({
    cniVersion: "1.0.0",
    name: `${scratch.prefix}-ref`,
    plugins: [
      {
        type: "bridge",
        bridge: "ckref0",
        isGateway: true,
        ipMasq: false,
        ipam: { type: "host-local", ranges: [[{ subnet: "10.99.0.0/22" }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: join(scratch.dir, "ipam") },
      },
    ],
  });
  const exec: PluginExec = spawnExec({ wrapper: netnsWrapper(nodeNs) });
  return { label: "reference bridge + host-local", list, runtime: new CniRuntime({ cniPath: [CNI_DIR], cacheDir: join(scratch.dir, "cache-ref"), exec }) };
}

function pushSeries(figures: Figure[], label: string, r: SeriesResult): void {
  figures.push({ name: `${label}: ADD p50 (${PODS} pods, sequential)`, value: percentile(r.add, 50), unit: "ms" });
  figures.push({ name: `${label}: ADD p95`, value: percentile(r.add, 95), unit: "ms" });
  figures.push({ name: `${label}: DEL p50`, value: percentile(r.del, 50), unit: "ms" });
  figures.push({ name: `${label}: DEL p95`, value: percentile(r.del, 95), unit: "ms" });
  figures.push({ name: `${label}: ${PARALLEL} parallel ADDs on one node`, value: r.parallelPodsPerSecond, unit: "pods/s" });
}

/** Measures ADD/DEL of the reference conflist (and cnikit's, when its daemon can run); figures in ms and pods/s. */
export async function benchCni(): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error("bench cni needs root (network namespaces, veths)");
  for (const p of ["bridge", "host-local"]) {
    if (!existsSync(join(CNI_DIR, p))) throw new Error(`${CNI_DIR}/${p} is missing: install the Debian package containernetworking-plugins`);
  }
  const scratch = new Scratch();
  const figures: Figure[] = [];
  const onSignal = (): void => {
    scratch.cleanup();
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  try {
    const refNode = scratch.ns("refnode");
    const pods = Array.from({ length: PODS }, (_, i) => scratch.ns(`p${i}`));

    const ref = referenceSubject(scratch, refNode);
    const refResult = await series(ref, pods, "ref");
    pushSeries(figures, "reference", refResult);

    // Fixed costs every plugin call pays, measured the same way the runtime spawns.
    figures.push({ name: "breakdown: spawn `ip netns exec <node> true` (the wrapper)", value: await spawnMedian([...netnsWrapper(refNode), "/bin/true"], 30), unit: "ms" });
    figures.push({ name: "breakdown: spawn `bridge` VERSION (Go plugin start)", value: await spawnMedian([join(CNI_DIR, "bridge")], 30, { CNI_COMMAND: "VERSION" }), unit: "ms" });
    figures.push({ name: "breakdown: spawn `node -e ''` (node start)", value: await spawnMedian([process.execPath, "-e", ""], 15), unit: "ms" });
  } finally {
    process.removeListener("SIGINT", onSignal);
    scratch.cleanup();
  }
  return figures;
}

await runIfMain(import.meta.url, "cni", benchCni);
