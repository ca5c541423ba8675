// CNI ADD and DEL wall time on the real kernel, driven by @cnikit/cni's runtime the way containerd
// drives a conflist: p50/p95 over 200 pods added one after another and deleted one after another,
// then 100 ADDs at once on one node (pods/s), in rounds that alternate reference and cnikit (A, B,
// A, B: on a shared machine the load drifts, so the ratio is taken per adjacent pair and its median
// printed), with the CPU time each side spent per ADD (the plugin processes the runtime started,
// reaped; cnikitd's own). The reference conflist (Debian's bridge + host-local)
// and cnikit's (cnikit-cni forwarding to a cnikitd with the flannel backend on a file store,
// rendering with @cnikit/linux) run side by side in one run, with the ratio printed. Every plugin
// runs inside a scratch "node" namespace (`ip netns exec`, the same wrapper for both), each pod
// has its own scratch namespace. A breakdown of the fixed costs (process start of node and of the
// plugin, the wrapper, a VERSION call) shows where cnikit's ADD time goes.
// Needs root, iproute2 and containernetworking-plugins. Wall-clock figures; nothing asserted.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/cni.ts
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CNI_PLUGIN_JS, CNI_PLUGIN_NATIVE, CNIKITD_BIN } from "../../packages/cni/src/paths.ts";
import { CniRuntime, loadConfList, netnsWrapper, spawnExec, type NetworkConfigList, type PluginExec, type RuntimeConf } from "../../packages/cni/src/runtime.ts";
import { percentile, processCpuMs, runIfMain, type Figure } from "./figures.ts";

const PODS = 200;
const PARALLEL = 100;
/** Parallel rounds per side, alternating reference and cnikit ($CNI_BENCH_ROUNDS, default 3). */
const ROUNDS = Math.max(1, Number(process.env["CNI_BENCH_ROUNDS"] ?? 3) || 3);
const CNI_DIR = "/usr/lib/cni";

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
}

/** One round of PARALLEL ADDs at once (timed), then their DELs (not timed). */
interface ParallelRound {
  podsPerSecond: number;
  /** CPU time (ms) per ADD of the processes the runtime started (reaped children: wrapper, plugins and whatever they ran). */
  childCpuMs: number;
  /** CPU time (ms) per ADD of this process: the runtime (containerd's part), the same code for both. */
  runtimeCpuMs: number;
}

function pod(pods: string[], i: number, tag: string): RuntimeConf {
  return {
    containerId: `${tag}-c${i}`,
    netns: `/var/run/netns/${pods[i]!}`,
    ifName: "eth0",
    args: [
      ["IgnoreUnknown", "1"],
      ["K8S_POD_NAMESPACE", "bench"],
      ["K8S_POD_NAME", `p${i}`],
    ],
  };
}

/** 200 sequential ADDs, then 200 sequential DELs (after a warm-up ADD and DEL). */
async function sequential(subject: Subject, pods: string[], tag: string): Promise<SeriesResult> {
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
  return { add: add.sort((a, b) => a - b), del: del.sort((a, b) => a - b) };
}

/** PARALLEL ADDs at once (timed, with their CPU time), then their DELs. */
async function parallelRound(subject: Subject, pods: string[], tag: string, daemonCpuMs?: () => number): Promise<ParallelRound & { daemonCpuMs: number }> {
  const { runtime, list } = subject;
  const daemon0 = daemonCpuMs?.() ?? 0;
  const child0 = processCpuMs("self", true);
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => runtime.add(list, pod(pods, i, tag))));
  const ms = performance.now() - t0;
  const self = process.cpuUsage(self0);
  const childCpuMs = processCpuMs("self", true) - child0;
  const daemon = (daemonCpuMs?.() ?? 0) - daemon0;
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => runtime.del(list, pod(pods, i, tag))));
  return { podsPerSecond: (PARALLEL / ms) * 1000, childCpuMs: childCpuMs / PARALLEL, runtimeCpuMs: (self.user + self.system) / 1000 / PARALLEL, daemonCpuMs: daemon / PARALLEL };
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
  return percentile(
    times.sort((a, b) => a - b),
    50,
  );
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

/** Stage timings cnikitd prints on SIGTERM (`cnikitd: stats {...}`). */
interface DaemonStats {
  stages: Record<string, { count: number; totalMs: number; maxMs: number }>;
  applies: number;
  requests: number;
}

/** One cnikitd, spawned inside the node namespace as the lab runs it. */
class Daemon {
  private child: ChildProcess | undefined;
  private stderr = "";

  constructor(
    private readonly nodeNs: string,
    private readonly configPath: string,
  ) {}

  /** Starts cnikitd and waits until it says ready (60 s at most). */
  async start(): Promise<void> {
    this.stderr = "";
    // CNI_BENCH_PROFILE=<dir>: cnikitd writes a CPU profile there (node --cpu-prof) when it stops.
    const profile = process.env["CNI_BENCH_PROFILE"] ? ["--cpu-prof", `--cpu-prof-dir=${process.env["CNI_BENCH_PROFILE"]}`] : [];
    const child = spawn(netnsWrapper(this.nodeNs)[0]!, [...netnsWrapper(this.nodeNs).slice(1), process.execPath, ...profile, CNIKITD_BIN, "--config", this.configPath], {
      stdio: ["ignore", "ignore", "pipe"],
      // The sources this script runs (a built dist/ of @cnikit/cni would otherwise win, and with it
      // the dist/ of @cnikit/linux and the backends: whatever was built last, not this checkout).
      env: { ...process.env, CNIKIT_FROM_SOURCE: "1" },
    });
    this.child = child;
    child.stderr!.on("data", (b: Buffer) => (this.stderr += b.toString("utf8")));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cnikitd not ready within 60 s:\n${this.stderr.slice(-2000)}`)), 60_000);
      const poll = setInterval(() => {
        if (/cnikitd: node \S+ ready/.test(this.stderr)) {
          clearInterval(poll);
          clearTimeout(timer);
          resolve();
        }
      }, 20);
      child.once("exit", (code) => {
        clearInterval(poll);
        clearTimeout(timer);
        reject(new Error(`cnikitd exited (${code}) while starting:\n${this.stderr.slice(-2000)}`));
      });
    });
  }

  /** SIGTERM, wait for the exit, and return the stats it printed. */
  async stop(): Promise<DaemonStats | undefined> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return undefined;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    await exited;
    this.child = undefined;
    const line = this.stderr.split("\n").find((l) => l.startsWith("cnikitd: stats "));
    return line ? (JSON.parse(line.slice("cnikitd: stats ".length)) as DaemonStats) : undefined;
  }

  /** CPU time (ms) cnikitd used so far (`ip netns exec` execs node, so the child is cnikitd itself). */
  cpuMs(): number {
    return this.child?.pid === undefined ? Number.NaN : processCpuMs(this.child.pid);
  }

  /** Kills it (SIGKILL) if it still runs: for the clean-up after a failure. */
  kill(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}

/**
 * The cnikit-cni shims to measure, from $CNI_BENCH_SHIMS (comma list of native, js; default both).
 * native: the built dist/cnikit-cni, else native/cnikit-cni.c compiled with cc into the scratch
 * directory (skipped, with a note, when there is no compiler).
 */
function shims(scratch: Scratch): { kind: "native" | "js"; path: string }[] {
  const wanted = (process.env["CNI_BENCH_SHIMS"] ?? "native,js").split(",").map((s) => s.trim());
  const out: { kind: "native" | "js"; path: string }[] = [];
  if (wanted.includes("native")) {
    if (existsSync(CNI_PLUGIN_NATIVE)) out.push({ kind: "native", path: CNI_PLUGIN_NATIVE });
    else {
      const dir = join(scratch.dir, "native");
      mkdirSync(dir);
      const path = join(dir, "cnikit-cni");
      try {
        execFileSync(process.env["CC"] ?? "cc", ["-O2", "-o", path, fileURLToPath(new URL("../../packages/cni/native/cnikit-cni.c", import.meta.url))], { stdio: "pipe" });
        out.push({ kind: "native", path });
      } catch (err) {
        console.error(`bench cni: no native cnikit-cni (cc failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}); measuring the JavaScript shim only`);
      }
    }
  }
  if (wanted.includes("js")) out.push({ kind: "js", path: CNI_PLUGIN_JS });
  return out;
}

/** Whether @cnikit/linux provides the renderer cnikitd's `renderer: linux` needs. */
async function linuxRendererAvailable(): Promise<boolean> {
  const linux = (await import("../../packages/linux/src/index.ts")) as Record<string, unknown>;
  return typeof linux["LinuxRenderer"] === "function";
}

function mean(stats: DaemonStats | undefined, stage: string): number {
  const s = stats?.stages[stage];
  return s && s.count > 0 ? s.totalMs / s.count : Number.NaN;
}

function pushSequential(figures: Figure[], label: string, r: SeriesResult): void {
  figures.push({ name: `${label}: ADD p50 (${PODS} pods, sequential)`, value: percentile(r.add, 50), unit: "ms" });
  figures.push({ name: `${label}: ADD p95`, value: percentile(r.add, 95), unit: "ms" });
  figures.push({ name: `${label}: DEL p50`, value: percentile(r.del, 50), unit: "ms" });
  figures.push({ name: `${label}: DEL p95`, value: percentile(r.del, 95), unit: "ms" });
}

/**
 * The parallel figures of `label` against the reference rounds run beside it (round i of each ran
 * back to back): medians, the per-pair ratios, and the CPU time per ADD on each side.
 */
function pushParallel(figures: Figure[], label: string, ref: ParallelRound[], ck: (ParallelRound & { daemonCpuMs: number })[]): void {
  const ratios = ck.map((r, i) => r.podsPerSecond / ref[i]!.podsPerSecond);
  figures.push({
    name: `reference: ${PARALLEL} parallel ADDs on one node (median of ${ref.length} rounds beside ${label})`,
    value: percentile(
      ref.map((r) => r.podsPerSecond),
      50,
    ),
    unit: "pods/s",
  });
  figures.push({
    name: `${label}: ${PARALLEL} parallel ADDs on one node (median of ${ck.length} rounds)`,
    value: percentile(
      ck.map((r) => r.podsPerSecond),
      50,
    ),
    unit: "pods/s",
  });
  figures.push({ name: `ratio ${label} / reference: parallel pods/s (median of ${ratios.length} adjacent pairs)`, value: percentile(ratios, 50), unit: "x" });
  figures.push({ name: `ratio ${label} / reference: parallel pods/s, lowest pair`, value: Math.min(...ratios), unit: "x" });
  figures.push({ name: `ratio ${label} / reference: parallel pods/s, highest pair`, value: Math.max(...ratios), unit: "x" });
  const refCpu = percentile(
    ref.map((r) => r.childCpuMs),
    50,
  );
  const ckChild = percentile(
    ck.map((r) => r.childCpuMs),
    50,
  );
  const ckDaemon = percentile(
    ck.map((r) => r.daemonCpuMs),
    50,
  );
  figures.push({ name: `cpu reference: per parallel ADD, processes started (wrapper, bridge, host-local)`, value: refCpu, unit: "ms" });
  figures.push({
    name: `cpu reference: per parallel ADD, the runtime (this process)`,
    value: percentile(
      ref.map((r) => r.runtimeCpuMs),
      50,
    ),
    unit: "ms",
  });
  figures.push({ name: `cpu ${label}: per parallel ADD, processes started (wrapper, shim)`, value: ckChild, unit: "ms" });
  figures.push({ name: `cpu ${label}: per parallel ADD, cnikitd`, value: ckDaemon, unit: "ms" });
  figures.push({
    name: `cpu ${label}: per parallel ADD, the runtime (this process)`,
    value: percentile(
      ck.map((r) => r.runtimeCpuMs),
      50,
    ),
    unit: "ms",
  });
  figures.push({ name: `ratio cpu reference plugins / ${label} (processes + cnikitd) per parallel ADD`, value: refCpu / (ckChild + ckDaemon), unit: "x" });
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
    const refResult = await sequential(ref, pods, "ref");
    pushSequential(figures, "reference", refResult);

    // cnikit: cnikit-cni forwarding to cnikitd (flannel vxlan, file store, one node) in its own node namespace.
    const kernel = await linuxRendererAvailable();
    if (!kernel) console.error("bench cni: @cnikit/linux has no LinuxRenderer: cnikitd runs with renderer none (IPAM and the daemon, no kernel changes)");
    const ckNode = scratch.ns("cknode");
    // No dummy module in this kernel: the underlay is one end of a veth pair.
    run("ip", ["-n", ckNode, "link", "add", "ck0", "type", "veth", "peer", "name", "ck0p"]);
    run("ip", ["-n", ckNode, "link", "set", "ck0p", "up"]);
    run("ip", ["-n", ckNode, "addr", "add", "192.0.2.10/24", "dev", "ck0"]);
    run("ip", ["-n", ckNode, "link", "set", "ck0", "up"]);
    run("ip", ["-n", ckNode, "link", "set", "lo", "up"]);
    const socketPath = join(scratch.dir, "cnikitd.sock");
    const configPath = join(scratch.dir, "cnikitd.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        node: { name: "bench-node", underlay: [{ iface: "ck0", address: "192.0.2.10", prefixLength: 24 }] },
        backend: "flannel",
        backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } },
        store: `file:${join(scratch.dir, "store")}`,
        localStateDir: join(scratch.dir, "local"),
        socketPath,
        renderer: { type: kernel ? "linux" : "none" },
        logLevel: "warn",
      }),
    );
    const daemon = new Daemon(ckNode, configPath);
    try {
      for (const shim of shims(scratch)) {
        const label = `cnikit ${shim.kind} shim${kernel ? "" : ", renderer none"}`;
        const ck: Subject = {
          label,
          list: loadConfList({ cniVersion: "1.0.0", name: `${scratch.prefix}-ck`, plugins: [{ type: basename(shim.path), socketPath }] }),
          runtime: new CniRuntime({ cniPath: [dirname(shim.path)], cacheDir: join(scratch.dir, `cache-ck-${shim.kind}`), exec: spawnExec({ wrapper: netnsWrapper(ckNode) }) }),
        };
        await daemon.start();
        const ckResult = await sequential(ck, pods, `ck${shim.kind}`);
        // Restarted so that the stage timings it prints at the stop cover one phase each.
        const sequentialStats = await daemon.stop();
        pushSequential(figures, label, ckResult);
        figures.push({ name: `ratio ${label} / reference: ADD p50`, value: percentile(ckResult.add, 50) / percentile(refResult.add, 50), unit: "x" });
        figures.push({ name: `ratio ${label} / reference: ADD p95`, value: percentile(ckResult.add, 95) / percentile(refResult.add, 95), unit: "x" });
        figures.push({ name: `ratio ${label} / reference: DEL p50`, value: percentile(ckResult.del, 50) / percentile(refResult.del, 50), unit: "x" });
        await daemon.start();
        const refRounds: ParallelRound[] = [];
        const ckRounds: (ParallelRound & { daemonCpuMs: number })[] = [];
        for (let r = 0; r < ROUNDS; r++) {
          refRounds.push(await parallelRound(ref, pods, `ref${shim.kind}p${r}`));
          ckRounds.push(await parallelRound(ck, pods, `ck${shim.kind}p${r}`, () => daemon.cpuMs()));
        }
        const parallelStats = await daemon.stop();
        pushParallel(figures, label, refRounds, ckRounds);
        figures.push({ name: `breakdown ${label}: parallel rounds, daemon ADD attach (IPAM, store), mean`, value: mean(parallelStats, "ADD.attach"), unit: "ms" });
        figures.push({ name: `breakdown ${label}: parallel rounds, daemon ADD waiting for its apply, mean`, value: mean(parallelStats, "ADD.apply"), unit: "ms" });
        figures.push({ name: `breakdown ${label}: parallel rounds, requests per apply (ADD, DEL)`, value: parallelStats ? parallelStats.requests / parallelStats.applies : Number.NaN, unit: "x" });
        // Where an ADD goes: the daemon's own stage timings (sequential phase) against the wall time.
        const addTotal = mean(sequentialStats, "ADD.total");
        figures.push({ name: `breakdown ${label}: daemon ADD handling, mean`, value: addTotal, unit: "ms" });
        figures.push({ name: `breakdown ${label}:   of which agent attach (IPAM, store)`, value: mean(sequentialStats, "ADD.attach"), unit: "ms" });
        figures.push({ name: `breakdown ${label}:   of which apply (renderer: kernel calls)`, value: mean(sequentialStats, "ADD.apply"), unit: "ms" });
        figures.push({ name: `breakdown ${label}: ADD wall p50 outside the daemon (processes, socket, runtime)`, value: percentile(ckResult.add, 50) - addTotal, unit: "ms" });
        figures.push({ name: `breakdown ${label}: daemon DEL handling, mean`, value: mean(sequentialStats, "DEL.total"), unit: "ms" });
        figures.push({ name: `breakdown ${label}:   of which apply (renderer: kernel calls)`, value: mean(sequentialStats, "DEL.apply"), unit: "ms" });
        figures.push({ name: `breakdown: spawn cnikit-cni VERSION (${shim.kind} shim start, no socket)`, value: await spawnMedian([shim.path], 15, { CNI_COMMAND: "VERSION" }), unit: "ms" });
      }
    } finally {
      daemon.kill();
    }

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
