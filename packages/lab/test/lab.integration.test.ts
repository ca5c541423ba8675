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
import { KernelLacksError, Prefix } from "@cnikit/core";
import { downLab, formatMatrix, kernelSupports, labDir, listLabs, nsPrefix, openLab, readState, requireKernel, startLab } from "../src/index.ts";
import { labMain } from "../src/cli-main.ts";
import { createNetns, listNetns } from "@cnikit/linux";
import { pidAlive } from "../src/system.ts";
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
async function leftovers(name: string): Promise<string[]> {
  const out: string[] = [];
  const prefix = `${nsPrefix(name)}-`;
  for (const ns of await listNetns()) if (ns.startsWith(prefix)) out.push(`netns ${ns}`);
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
    if (await kernelSupports("ipip")) {
      // A kernel with ipip: no refusal (the check asks the kernel, not a list).
      await expect(requireKernel(["ipip"], "calico mode ipip-always")).resolves.toBeUndefined();
      return;
    }
    await expect(startLab({ name, backend: "calico", mode: "ipip-always", nodes: 2 })).rejects.toThrow(KernelLacksError);
    await expect(startLab({ name, backend: "calico", mode: "ipip-always", nodes: 2 })).rejects.toThrow(/^kernel lacks ipip: calico mode ipip-always/);
    const cli = io();
    expect(await labMain(["up", "--backend", "calico", "--mode", "ipip-always", "--nodes", "2", "--name", name], cli.io)).toBe(1);
    expect(cli.err.join("\n")).toContain("kernel lacks ipip");
    expect(await leftovers(name)).toEqual([]);
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
    expect(await leftovers(name)).toEqual([]);
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
    expect((await leftovers(name)).some((l) => l.includes("orphan.marker"))).toBe(true);
    // A namespace made on top of the lab and never recorded (as the kernel lifecycle driver does
    // for each attachment) goes too: it carries the lab's prefix.
    const unrecorded = `${nsPrefix(name)}-b999`;
    await createNetns(unrecorded);
    const status = listLabs().find((l) => l.name === name);
    expect(status?.phase).toBe("creating");
    const a = io();
    expect(await labMain(["down", "--name", name], a.io)).toBe(0);
    expect(a.out.join("\n")).toMatch(/removed: \d+ process\(es\), \d+ namespace\(s\)/);
    expect(await leftovers(name)).toEqual([]);
    const b = io();
    expect(await labMain(["down", "--name", name], b.io)).toBe(0);
    expect(b.out).toEqual([`lab ${name}: nothing to remove`]);
  }, 150_000);

  it("flannel vxlan, 3 nodes x 2 pods across both subnets: every pair reaches by TCP, UDP and ping without NAT; pods come and go; a daemon killed with -9 comes back; down leaves nothing", async () => {
    const name = labName("f");
    const lab = await startLab({ name, backend: "flannel", mode: "vxlan", nodes: 3, podsPerNode: 2 });
    try {
      expect(lab.nodes.map((n) => n.subnet)).toEqual(["a", "b", "a"]);
      expect(lab.pods.map((p) => `${p.name}@${p.node}`)).toEqual(["pod-1-1@node-1", "pod-2-1@node-2", "pod-3-1@node-3", "pod-1-2@node-1", "pod-2-2@node-2", "pod-3-2@node-3"]);
      const range = Prefix.parse("10.244.0.0/16");
      for (const p of lab.pods) expect(range.contains(p.ip), p.ip).toBe(true);
      expect(new Set(lab.pods.map((p) => p.ip)).size).toBe(6);
      const m = await lab.matrix();
      expect(m.failures, formatMatrix(m)).toEqual([]);
      expect(m.ok, formatMatrix(m)).toBe(true);
      // The CLI sees the same lab from its state file and agrees.
      const check = io();
      expect(await labMain(["check", "--name", name], check.io)).toBe(0);
      expect(check.out.join("\n")).toMatch(/^OK: 66 pairs/m);

      // The executable, driven directly (what section B of the suite does through the lab).
      const version = await lab.plugin({ node: "node-1", command: "VERSION" });
      expect(version.code).toBe(0);
      expect((version.json as { supportedVersions: string[] }).supportedVersions).toContain("1.0.0");
      const p21 = lab.pod("pod-2-1");
      const check21 = await lab.plugin({ node: "node-2", command: "CHECK", containerId: p21.containerId, netns: p21.ns, ifName: "eth0", netconf: { prevResult: p21.result } });
      expect(check21.code, check21.stdout + check21.stderr).toBe(0);
      const delUnknown = await lab.plugin({ node: "node-2", command: "DEL", containerId: "never-added", netns: p21.ns, ifName: "eth0" });
      expect(delUnknown.code, delUnknown.stdout).toBe(0);
      // The pod's interface leaves room for the VXLAN header (exec inside the pod's namespace).
      const link = await lab.exec("pod-1-1", ["ip", "-j", "link", "show", "eth0"]);
      expect((JSON.parse(link.stdout) as { mtu: number }[])[0]!.mtu).toBe(1450);

      // A pod goes away: its namespace and agent with it; a new one on the same node reaches the rest.
      const gone = lab.pod("pod-1-2");
      await lab.deletePod("pod-1-2");
      expect(await listNetns()).not.toContain(gone.ns);
      const fresh = await lab.addPod("node-1");
      expect(fresh.name).toBe("pod-1-3");
      for (const to of ["pod-2-1", "pod-3-2"]) expect(await lab.probe(fresh.name, to, "tcp")).toMatchObject({ ok: true, seen: fresh.ip });

      // kill -9 a daemon: its process is gone; started again it serves ADDs for new pods.
      const pid = lab.daemonPid("node-2");
      expect(pid).toBeDefined();
      expect(await lab.killDaemon("node-2")).toBe(pid);
      expect(pidAlive(pid!)).toBe(false);
      expect(lab.daemonPid("node-2")).toBeUndefined();
      expect(listLabs().find((l) => l.name === name)?.processes?.stopped).toEqual(["cnikitd:node-2"]);
      await expect(lab.addPod("node-2")).rejects.toThrow(/cnikitd is not running|cannot reach cnikitd/);
      await lab.restartDaemon("node-2");
      const back = await lab.addPod("node-2");
      expect(await lab.probe("pod-1-1", back.name, "tcp")).toMatchObject({ ok: true, seen: lab.pod("pod-1-1").ip });
      // ...and killed again before down: down copes with a dead daemon.
      await lab.killDaemon("node-3");
    } finally {
      await lab.down();
    }
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("calico without encapsulation (bgp), 3 nodes, through the CLI: up, check (and check failing on NAT between pods and on a cut-off pod), status, down", async () => {
    const name = labName("b");
    const up = io();
    const status = await labMain(["up", "--backend", "calico", "--mode", "bgp", "--nodes", "3", "--pods-per-node", "1", "--name", name], up.io);
    expect(status, up.err.join("\n")).toBe(0);
    try {
      expect(up.out[0]).toBe(`lab ${name} is up: calico bgp, 3 node(s), 3 pod(s)`);
      const lab = openLab(name);
      expect(lab.nodes.map((n) => n.subnet)).toEqual(["a", "a", "a"]);
      lab.close();
      const check = io();
      const code = await labMain(["check", "--name", name], check.io);
      expect(code, check.out.join("\n")).toBe(0);
      expect(check.out.join("\n")).toMatch(/^OK: 24 pairs × 3 protocols = 72 probes, 72 reached, 0 expected but unreachable, 0 NAT'ed between pods, egress 3\/3/m);
      // check must fail when pods are NAT'ed to each other, and when a pod is cut off.
      const broken = openLab(name);
      try {
        const nat = await broken.exec("node-1", ["nft", "-f", "-"], {
          input: 'table ip labtest {\n chain post {\n  type nat hook postrouting priority 100; policy accept;\n  oifname "eth0" masquerade\n }\n}\n',
        });
        expect(nat.code, nat.stderr).toBe(0);
        const natCheck = io();
        expect(await labMain(["check", "--name", name, "--timeout", "800"], natCheck.io)).toBe(1);
        expect(natCheck.out.join("\n")).toMatch(/pod-1-1 → pod-2-1: tcp NAT between pods \(receiver saw 198\.51\.100\.10, sender is 10\.244\./);
        expect((await broken.exec("node-1", ["nft", "delete", "table", "ip", "labtest"])).code).toBe(0);
        expect((await broken.exec("pod-3-1", ["ip", "link", "set", "eth0", "down"])).code).toBe(0);
        const cutCheck = io();
        expect(await labMain(["check", "--name", name, "--timeout", "800"], cutCheck.io)).toBe(1);
        expect(cutCheck.out.join("\n")).toMatch(/pod-1-1 → pod-3-1: tcp unreachable/);
        expect(cutCheck.out.join("\n")).not.toMatch(/pod-1-1 → pod-2-1:/);
      } finally {
        broken.close();
      }
      const st = io();
      expect(await labMain(["status"], st.io)).toBe(0);
      expect(st.out.join("\n")).toContain(`${name}: up, calico bgp, 3 node(s), 3 pod(s), processes`);
    } finally {
      const down = io();
      expect(await labMain(["down", "--name", name], down.io)).toBe(0);
    }
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);
});
