/**
 * The lab on the real kernel with a real etcd (root): labs of this run are named `k<pid>...`, so
 * their namespaces are `ckl-k<pid>...-*`; every lab is taken down in afterAll even on failure, and
 * each test asserts that `down` left no namespace, process or file of its lab behind.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { KernelLacksError } from "@cnikit/core";
import { downLab, kernelSupports, labDir, listLabs, nsPrefix, readState, requireKernel, startLab } from "../src/index.ts";
import { labMain } from "../src/cli-main.ts";
import { listNetns } from "../src/system.ts";
import { writeState } from "../src/state.ts";

const RUN = `k${process.pid}`;
const made = new Set<string>();
const labName = (suffix: string): string => {
  const name = `${RUN}${suffix}`;
  made.add(name);
  return name;
};

afterAll(async () => {
  for (const name of made) await downLab(name);
}, 120_000);

/** Everything of lab `name` still on the machine: namespaces, processes, its state directory. */
function leftovers(name: string): string[] {
  const out: string[] = [];
  const prefix = `${nsPrefix(name)}-`;
  for (const ns of listNetns()) if (ns.startsWith(prefix)) out.push(`netns ${ns}`);
  const dir = labDir(name);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmdline.includes(`${dir}/`)) out.push(`pid ${entry}: ${cmdline.replace(/\0/g, " ").trim()}`);
  }
  if (existsSync(dir)) out.push(`dir ${dir}`);
  return out;
}

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) }, out, err };
}

describe("lab on the kernel", () => {
  it("refuses calico ipip-always when the kernel lacks ipip, creating nothing", async () => {
    const name = labName("ipip");
    if (kernelSupports("ipip")) {
      // A kernel with ipip: no refusal (the check asks the kernel, not a list).
      expect(() => requireKernel(["ipip"], "calico mode ipip-always")).not.toThrow();
      return;
    }
    await expect(startLab({ name, backend: "calico", mode: "ipip-always", nodes: 2 })).rejects.toThrow(KernelLacksError);
    await expect(startLab({ name, backend: "calico", mode: "ipip-always", nodes: 2 })).rejects.toThrow(/^kernel lacks ipip: calico mode ipip-always/);
    const cli = io();
    expect(await labMain(["up", "--backend", "calico", "--mode", "ipip-always", "--nodes", "2", "--name", name], cli.io)).toBe(1);
    expect(cli.err.join("\n")).toContain("kernel lacks ipip");
    expect(leftovers(name)).toEqual([]);
  });

  it("builds the underlay: nodes on two subnets reach each other, etcd's host and the external host through the router, without NAT", async () => {
    const name = labName("u");
    const lab = await startLab({ name, backend: "flannel", mode: "vxlan", nodes: 3, daemons: false });
    try {
      expect(lab.nodes.map((n) => n.subnet)).toEqual(["a", "b", "a"]);
      const pairs: [string, string][] = [
        ["node-1", "node-2"],
        ["node-2", "node-3"],
        ["node-1", "node-3"],
        ["node-3", "infra"],
        ["node-2", "internet"],
      ];
      for (const [from, to] of pairs) {
        for (const proto of ["tcp", "udp", "ping"] as const) {
          const r = await lab.probe(from, to, proto);
          expect(r, `${from} → ${to} ${proto}`).toMatchObject({ ok: true });
          if (proto !== "ping") expect(r.seen).toBe(lab.endpoint(from).address);
        }
      }
      const state = readState(lab.dir);
      expect(state.resources.filter((r) => r.kind === "process").map((r) => (r.kind === "process" ? r.role : ""))).toEqual(
        expect.arrayContaining(["etcd", "probe:infra", "probe:node-1", "probe:node-2", "probe:node-3", "probe:internet"]),
      );
      // The host's own namespace never sees a lab address.
      expect(readFileSync("/proc/net/fib_trie", "utf8")).not.toContain("198.51.100.254");
    } finally {
      await lab.down();
    }
    expect(leftovers(name)).toEqual([]);
    expect((await downLab(name)).existed).toBe(false);
  }, 120_000);

  it("down removes everything after up was killed half way and a process was killed or never got its PID recorded", async () => {
    const name = labName("c");
    // One process (node with tsx's loader), so SIGKILL hits the process that runs `up` itself.
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm")).href;
    const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
    const child = spawn(process.execPath, ["--conditions=source", "--import", tsx, cli, "up", "--backend", "flannel", "--mode", "vxlan", "--nodes", "2", "--name", name], { stdio: "ignore" });
    const exited = new Promise((r) => child.once("exit", r));
    const file = `${labDir(name)}/state.json`;
    // Kill `up` (SIGKILL: no cleanup of its own) once a cnikitd is recorded: the underlay, etcd
    // and probe agents exist, daemons are starting.
    const deadline = Date.now() + 90_000;
    let killedAt = "";
    while (Date.now() < deadline) {
      if (existsSync(file)) {
        try {
          const s = readState(labDir(name));
          if (s.resources.some((r) => r.kind === "process" && r.role.startsWith("cnikitd:"))) {
            child.kill("SIGKILL");
            killedAt = s.phase;
            break;
          }
        } catch {
          // being renamed into place
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await exited;
    expect(killedAt).toBe("creating");
    const state = readState(labDir(name));
    expect(state.ownerPid).toBe(child.pid);
    // kill -9 one recorded process too (etcd), as a crash would.
    const etcd = state.resources.find((r) => r.kind === "process" && r.role === "etcd");
    expect(etcd?.kind === "process" && etcd.pid !== undefined).toBe(true);
    if (etcd?.kind === "process" && etcd.pid !== undefined) process.kill(etcd.pid, "SIGKILL");
    // A process recorded but whose PID never made it to the file (killed between spawn and write).
    const marker = `${labDir(name)}/orphan.marker`;
    state.resources.push({ kind: "process", role: "orphan", ns: state.plan.nodes[0]!.ns, marker });
    writeState(labDir(name), state);
    const orphan = spawn("ip", ["netns", "exec", state.plan.nodes[0]!.ns, process.execPath, "-e", "setInterval(() => {}, 1000)", marker], { detached: true, stdio: "ignore" });
    orphan.unref();
    await new Promise((r) => setTimeout(r, 300));
    expect(leftovers(name).some((l) => l.includes("orphan.marker"))).toBe(true);
    const status = listLabs().find((l) => l.name === name);
    expect(status?.phase).toBe("creating");
    const a = io();
    expect(await labMain(["down", "--name", name], a.io)).toBe(0);
    expect(a.out.join("\n")).toMatch(/removed: \d+ process\(es\), \d+ namespace\(s\)/);
    expect(leftovers(name)).toEqual([]);
    const b = io();
    expect(await labMain(["down", "--name", name], b.io)).toBe(0);
    expect(b.out).toEqual([`lab ${name}: nothing to remove`]);
  }, 150_000);
});
