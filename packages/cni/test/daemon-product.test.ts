/**
 * cnikitd as a product, through the real executables: the plugin never hangs on a daemon that
 * accepts the call but does not answer (a cnikitd stopped with SIGSTOP, by PID), and the ADD it
 * gave up on is undone once the daemon runs again; `cnikitd --wait-ready`; two daemons given only
 * different node names start side by side on their default paths.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { daemonDefaults } from "../src/daemon-config.ts";
import { socketStatus } from "../src/daemon.ts";
import { CNIKITD_BIN, CNI_PLUGIN_JS, buildNativeShim } from "../src/paths.ts";
import { cniEnv, netconf, runExecutable, spawnCnikitd, tempDir, until } from "./helpers.ts";

const tmp = tempDir();
afterAll(() => tmp.remove());

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) continue;
    process.kill(c.pid, "SIGCONT");
    process.kill(c.pid, "SIGKILL");
  }
});

const NODE = { underlay: [{ iface: "eth0", address: "192.0.2.10", prefixLength: 24 }] };
const FLANNEL = { backend: "flannel", backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } } };

/** A config file in the temporary directory (relative paths there) for node `name`. */
function configFile(name: string, extra: Record<string, unknown> = {}): { file: string; socket: string } {
  const socket = join(tmp.dir, name, "cnikitd.sock");
  const file = join(tmp.dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ node: { name, ...NODE }, ...FLANNEL, store: `file:${name}/store`, localStateDir: `${name}/local`, socketPath: socket, renderer: { type: "none" }, ...extra }));
  return { file, socket };
}

async function ready(socket: string, stderr: () => string): Promise<void> {
  await until(async () => (await socketStatus(socket, 2000)).ready, 60_000, `cnikitd ready on ${socket} (stderr: ${stderr()})`);
}

describe("the plugin against a cnikitd that accepts calls but never answers (SIGSTOP)", () => {
  const shims: [string, string][] = [
    ["js", CNI_PLUGIN_JS],
    ["native", buildNativeShim({ out: join(tmp.dir, "cnikit-cni") })],
  ];

  it("both shims time out with 11 (STATUS 50) naming socket and timeout; the ADDs they gave up on are undone after SIGCONT, so the runtime's retry is a fresh ADD", async () => {
    const { file, socket } = configFile("stopped");
    const d = spawnCnikitd(["--config", file], children);
    await ready(socket, d.stderr);
    const pid = d.child.pid!;
    process.kill(pid, "SIGSTOP");
    try {
      const conf = netconf({ socketPath: socket, timeoutSeconds: 1.5, statusTimeoutSeconds: 1 });
      const runs = await Promise.all(
        shims.flatMap(([name, shim]) => [
          (async () => {
            const t0 = Date.now();
            const r = await runExecutable(shim, cniEnv("ADD", `stuck-${name}`), conf);
            return { name, command: "ADD", r, ms: Date.now() - t0 };
          })(),
          (async () => {
            const t0 = Date.now();
            const r = await runExecutable(shim, { CNI_COMMAND: "STATUS" }, netconf({ cniVersion: "1.1.0", socketPath: socket, statusTimeoutSeconds: 1 }));
            return { name, command: "STATUS", r, ms: Date.now() - t0 };
          })(),
        ]),
      );
      for (const { name, command, r, ms } of runs) {
        const wait = command === "ADD" ? "1.5" : "1";
        expect(r.code, `${name} ${command}: ${r.stdout}`).toBe(1);
        expect(r.json, name).toMatchObject({ code: command === "ADD" ? 11 : 50, msg: `cnikitd did not answer ${command} within ${wait} s (socket ${socket})` });
        expect(String(r.json!["details"])).toContain(command === "ADD" ? "timeoutSeconds" : "statusTimeoutSeconds");
        // The shim gave up at its deadline, not at the end of the test: well before the 60 s default.
        expect(ms, `${name} ${command}`).toBeLessThan(30_000);
      }
    } finally {
      process.kill(pid, "SIGCONT");
    }
    // The daemon now serves the calls that waited in its socket's backlog (accepted before any call
    // made from here on): each ADD finds its plugin gone and is undone under the attachment's lock.
    await ready(socket, d.stderr);
    // An ADD again, straight away (no DEL between): fresh, not 108 — the abandoned ADD's
    // reservation and interface are gone.
    const again = await runExecutable(CNI_PLUGIN_JS, cniEnv("ADD", "stuck-js"), netconf({ socketPath: socket }));
    expect(again.code, again.stdout).toBe(0);
    // What a runtime does after a failed ADD: DEL (a no-op now), then ADD again.
    const del = await runExecutable(shims[1]![1], cniEnv("DEL", "stuck-native"), netconf({ socketPath: socket }));
    expect(del.code, del.stdout).toBe(0);
    const add = await runExecutable(shims[1]![1], cniEnv("ADD", "stuck-native"), netconf({ socketPath: socket }));
    expect(add.code, add.stdout).toBe(0);
    expect((add.json!["ips"] as { address: string }[])[0]!.address).not.toBe((again.json!["ips"] as { address: string }[])[0]!.address);
    await until(() => (d.stderr().match(/an ADD was undone: its plugin was gone before the answer/g) ?? []).length === 2, 10_000, `two ADDs undone (stderr: ${d.stderr()})`);
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
  });
});

describe("cnikitd --wait-ready", () => {
  it("exits 1 naming the socket while nothing is ready, 0 once STATUS over the socket is 0", async () => {
    const { file, socket } = configFile("waiting");
    const early = await runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--config", file, "--wait-ready", "--timeout", "0.5"]);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain(`not ready within 0.5 s (socket ${socket}): code 11`);
    const waiter = runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--config", file, "--wait-ready", "--timeout", "120"]);
    const d = spawnCnikitd(["--config", file], children);
    const r = await waiter;
    expect(r.code, `${r.stderr}\n${d.stderr()}`).toBe(0);
    expect(r.stderr).toContain(`node waiting ready (STATUS 0 on ${socket})`);
    // The same answer the plugin's STATUS gives.
    expect((await runExecutable(CNI_PLUGIN_JS, { CNI_COMMAND: "STATUS" }, netconf({ cniVersion: "1.1.0", socketPath: socket }))).code).toBe(0);
    // And the stderr line is still there.
    await until(() => d.stderr().includes("cnikitd: node waiting ready"), 30_000, "the ready line");
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
  });

  it("refuses a --timeout without --wait-ready, or one that is not a number (exit 2)", async () => {
    const { file } = configFile("usage");
    for (const args of [
      ["--timeout", "3"],
      ["--wait-ready", "--timeout", "soon"],
    ]) {
      const r = await runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--config", file, ...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toContain("--timeout");
    }
  });
});

describe("two daemons given only different node names", () => {
  const names = [`t${process.pid}-a`, `t${process.pid}-b`];
  afterAll(() => {
    for (const n of names) {
      rmSync(join("/var/lib/cnikit", n), { recursive: true, force: true });
      rmSync(join("/run/cnikit", n), { recursive: true, force: true });
    }
  });

  it("start side by side on their default paths, each ready, each with its own state", async () => {
    const procs = names.map((name) => {
      const file = join(tmp.dir, `${name}.json`);
      // Nothing but the name differs: store, localStateDir and socketPath are the defaults.
      writeFileSync(file, JSON.stringify({ node: { name, ...NODE }, ...FLANNEL, renderer: { type: "none" } }));
      return { name, d: spawnCnikitd(["--config", file], children), defaults: daemonDefaults(name) };
    });
    for (const { d, defaults } of procs) await ready(defaults.socketPath, d.stderr);
    for (const { name, defaults } of procs) {
      const add = await runExecutable(CNI_PLUGIN_JS, cniEnv("ADD", `pod-${name}`), netconf({ socketPath: defaults.socketPath }));
      expect(add.code, add.stdout).toBe(0);
      expect(existsSync(defaults.storeDir) && existsSync(defaults.localStateDir)).toBe(true);
    }
    // Each daemon's node-local store holds its own pod only.
    for (const { name, defaults } of procs) {
      const files = JSON.stringify(readdirSync(defaults.localStateDir, { recursive: true }));
      const other = procs.find((p) => p.name !== name)!.name;
      expect(files).not.toContain(`pod-${other}`);
    }
    for (const { d } of procs) d.child.kill("SIGTERM");
    for (const { d } of procs) expect(await d.exited).toBe(0);
  });
});
