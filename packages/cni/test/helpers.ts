/** Shared fixtures of the daemon and executable tests. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { builtinBackend } from "@cnikit/backends";
import { MemoryDatastore, MemoryNetwork, RealClock, memoryLogger, seededRandom } from "@cnikit/core";
import type { Backend, Datastore, NodeAgent, NodeDataplane, NodeInfo, PodInterface } from "@cnikit/core";
import type { ApplyOutcome, DataplaneApplier } from "../src/applier.ts";
import { CniDaemon, type CniDaemonOptions } from "../src/daemon.ts";
import { CNIKITD_BIN, CNI_PLUGIN_JS } from "../src/paths.ts";

export const NODE: NodeInfo = { name: "node-1", underlay: [{ iface: "eth0", address: "192.0.2.10", prefixLength: 24 }] };
export const FLANNEL_CONFIG = { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } };

/** A renderer that remembers what it was given and fails on command. */
export class FakeApplier implements DataplaneApplier {
  readonly applied: NodeDataplane[] = [];
  /** Applying fails while a pod of one of these container ids is in the dataplane. */
  readonly failFor = new Set<string>();
  /** Applying fails, whatever the dataplane. */
  failAll = false;
  /** Pods (by key) whose interfaces CHECK reports as missing. */
  readonly broken = new Set<string>();
  closed = false;
  /** Delay per apply (ms), to let requests pile up. */
  delayMs = 0;
  /** Pods of these container ids are reported in `failedPods` (the rest applies), as LinuxRenderer does. */
  readonly reportFailed = new Set<string>();
  /** Thrown by every apply while set (e.g. a KernelLacksError). */
  throwError: Error | undefined;

  async apply(dp: NodeDataplane): Promise<ApplyOutcome> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.throwError) throw this.throwError;
    const bad = dp.pods.find((p) => this.failFor.has(p.containerId));
    if (this.failAll || bad) throw new Error(`fake renderer: cannot create the veth of ${bad?.key ?? "anything"}`);
    this.applied.push(dp);
    const failed = dp.pods.filter((p) => this.reportFailed.has(p.containerId));
    return {
      failedPods: failed.map((p) => ({ key: p.key, error: `fake renderer: ${p.netns} is not a network namespace` })),
      pods: dp.pods.filter((p) => !this.reportFailed.has(p.containerId)).map((p) => ({ key: p.key, hostIf: p.hostIf, hostMac: "ee:ee:ee:00:00:01", containerMac: p.mac })),
    };
  }

  async checkPod(pod: PodInterface): Promise<string[]> {
    return this.broken.has(pod.key) ? [`${pod.hostIf} is missing`] : [];
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  get last(): NodeDataplane | undefined {
    return this.applied.at(-1);
  }
}

/** A backend whose agents wait for `open()` before `start()` resolves (to see a starting daemon). */
export function gatedBackend(inner: Backend<unknown>): { backend: Backend<unknown>; open(): void } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const backend: Backend<unknown> = {
    ...inner,
    createAgent(ctx): NodeAgent {
      const agent = inner.createAgent(ctx);
      return {
        start: async () => {
          await gate;
          await agent.start();
        },
        stop: (o) => agent.stop(o),
        attach: (p) => agent.attach(p),
        detach: (r) => agent.detach(r),
        check: (r) => agent.check(r),
        gc: (v) => agent.gc(v),
        status: () => agent.status(),
        dataplane: () => agent.dataplane(),
        onDataplaneChange: (l) => agent.onDataplaneChange(l),
      };
    },
  };
  return { backend, open };
}

export interface TestDaemon {
  daemon: CniDaemon;
  applier: FakeApplier;
  store: Datastore;
  local: Datastore;
  records: ReturnType<typeof memoryLogger>["records"];
}

/** A flannel daemon on memory stores with a fake applier (in process; socket when given). */
export async function flannelDaemon(options: Partial<CniDaemonOptions> & { start?: boolean } = {}): Promise<TestDaemon> {
  const clock = new RealClock();
  const store = options.store ?? new MemoryDatastore({ clock });
  const local = options.local ?? new MemoryDatastore({ clock });
  const applier = (options.applier as FakeApplier | undefined) ?? new FakeApplier();
  const { logger, records } = memoryLogger({ level: "warn" });
  const daemon = new CniDaemon({
    backend: builtinBackend("flannel").backend,
    backendConfig: FLANNEL_CONFIG,
    node: NODE,
    peers: new MemoryNetwork({ clock }).transport(NODE.name),
    clock,
    log: logger,
    random: seededRandom(1),
    ...options,
    store,
    local,
    applier,
  });
  if (options.start !== false) {
    await daemon.start();
    await daemon.agentStarted;
  }
  return { daemon, applier, store, local, records };
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = "cnikit-cni-"): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface PluginRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is. */
  json?: Record<string, unknown>;
}

/** Runs an executable with `env` (and nothing else but PATH) and `stdin`; resolves when it exits. */
export function runExecutable(file: string, env: Record<string, string | undefined>, stdin = "", args: string[] = []): Promise<PluginRun> {
  return new Promise((resolve, reject) => {
    const clean: Record<string, string> = { PATH: process.env["PATH"] ?? "/usr/bin:/bin" };
    for (const [k, v] of Object.entries(env)) if (v !== undefined) clean[k] = v;
    const child = spawn(file, args, { env: clean, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) => {
      const stdout = Buffer.concat(out).toString("utf8");
      const run: PluginRun = { code, stdout, stderr: Buffer.concat(err).toString("utf8") };
      try {
        if (stdout.trim() !== "") run.json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        // not JSON
      }
      resolve(run);
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}

/** Runs the JS `cnikit-cni` shim. */
export function runPlugin(env: Record<string, string | undefined>, stdin = ""): Promise<PluginRun> {
  return runExecutable(CNI_PLUGIN_JS, env, stdin);
}

/** A network config for cnikit-cni. */
export function netconf(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: "1.0.0", name: "cnikit", type: "cnikit-cni", ...extra });
}

/** The CNI_* environment of one call. */
export function cniEnv(command: string, containerId = "c1", extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: `/var/run/netns/${containerId}`, CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin", ...extra };
}

/** Polls until `cond` holds (or throws after `ms`). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A cnikitd process started from a config file (from the sources), with its stderr collected. */
export interface CnikitdProcess {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Starts `bin/cnikitd` with `args` (e.g. `--config f`), adding the child to `children` for clean-up. */
export function spawnCnikitd(args: string[], children: ChildProcess[]): CnikitdProcess {
  const child = spawn(CNIKITD_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CNIKIT_FROM_SOURCE: "1" } });
  children.push(child);
  let err = "";
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, stderr: () => err, exited };
}
