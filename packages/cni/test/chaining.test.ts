/**
 * Chaining on the real kernel (issue 8, "Chaining"; checklist 37-40, 44, 62 of
 * DESIGN.md "The CNI rules"): a conflist of cnikit-cni followed by Debian's portmap and tuning
 * at cniVersion 1.0.0 (the version those binaries accept), run by the runtime (src/runtime.ts) as
 * containerd would. cnikit-cni forwards to a real cnikitd (in process: flannel vxlan on a file
 * store, one node) that renders with @cnikit/linux into a scratch node namespace; the plugins run
 * inside that namespace (`ip netns exec`), pods are scratch namespaces. Needs root, iproute2,
 * iptables and containernetworking-plugins; fails naming the package when one is missing.
 *
 * Debian's portmap 1.1.1 CHECK looks for the IPv4 rules in ip6tables too
 * (containernetworking/plugins#819), so the plugins get a PATH with only the IPv4 iptables
 * binaries, as on an IPv4-only host (see runtime-kernel.test.ts).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ipv4OnlyIptables, natRules as kernelNatRules, nsLinks, requireTool, run } from "./kernel-fixture.ts";
import { parseDaemonConfig, runDaemon, type RunningDaemon } from "../src/daemon-config.ts";
import { cniPluginPath } from "../src/paths.ts";
import { CniRuntime, loadConfList, netnsWrapper, spawnExec, type CniResultJson, type NetworkConfigList, type RuntimeConf } from "../src/runtime.ts";

const CNI_DIR = "/usr/lib/cni";
const prefix = `ck-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
const nodeNs = `${prefix}-cnode`;
const podNs = (n: number): string => `${prefix}-cpod${n}`;
const made: string[] = [];
let dir: string;
let running: RunningDaemon | undefined;
let runtime: CniRuntime;
let list: NetworkConfigList;
const servers: ChildProcess[] = [];

function addNs(name: string): void {
  run("ip", ["netns", "add", name]);
  made.push(name);
}

/** The MAC tuning sets on pod n's eth0 (runtimeConfig.mac): cnikit's CHECK must accept the chain's final result. */
function tunedMac(n: number): string {
  return `c2:11:22:33:44:${n.toString(16).padStart(2, "0")}`;
}

function pod(n: number): RuntimeConf {
  return {
    containerId: `${prefix}-k${n}`,
    netns: `/var/run/netns/${podNs(n)}`,
    ifName: "eth0",
    args: [
      ["IgnoreUnknown", "1"],
      ["K8S_POD_NAMESPACE", "default"],
      ["K8S_POD_NAME", `web-${n}`],
    ],
    capabilityArgs: { portMappings: [{ hostPort: 9000 + n, containerPort: 80, protocol: "tcp" }], mac: tunedMac(n) },
  };
}

const natRules = (): string[] => kernelNatRules(nodeNs);
const podLinks = (n: number): ReturnType<typeof nsLinks> => nsLinks(podNs(n));

/** A TCP server on port 80 in a pod namespace answering "hello <peer>"; resolves once it listens. */
function serveInPod(n: number): Promise<void> {
  const script = `require("node:net").createServer((s) => s.end("hello " + s.remoteAddress + "\\n")).listen(80, "0.0.0.0", () => console.log("ready"));`;
  const child = spawn(netnsWrapper(podNs(n))[0]!, [...netnsWrapper(podNs(n)).slice(1), process.execPath, "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  servers.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("ready")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`the pod's TCP server exited (${code})`)));
  });
}

/** Connects from the node namespace to host:port and returns what the server said (10 s at most). */
function connectFromNode(host: string, port: number): string {
  const script = `const s = require("node:net").connect(${port}, ${JSON.stringify(host)}); let d = ""; s.on("data", (b) => d += b); s.on("end", () => { process.stdout.write(d); process.exit(0); }); s.on("error", (e) => { console.error(e.message); process.exit(1); }); setTimeout(() => { console.error("timeout"); process.exit(1); }, 10000);`;
  return execFileSync(netnsWrapper(nodeNs)[0]!, [...netnsWrapper(nodeNs).slice(1), process.execPath, "-e", script], { encoding: "utf8" });
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("chaining.test.ts needs root (network namespaces, veths, iptables)");
  requireTool("/usr/sbin/ip", "iproute2");
  requireTool("/usr/sbin/iptables", "iptables");
  requireTool("/usr/sbin/nft", "nftables");
  for (const p of ["portmap", "tuning"]) requireTool(join(CNI_DIR, p), "containernetworking-plugins");

  dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const v4only = ipv4OnlyIptables(dir);

  addNs(nodeNs);
  for (let n = 1; n <= 3; n++) addNs(podNs(n));
  // The node's underlay: one end of a veth pair (this kernel has no dummy module).
  run("ip", ["-n", nodeNs, "link", "add", "ck0", "type", "veth", "peer", "name", "ck0p"]);
  run("ip", ["-n", nodeNs, "addr", "add", "192.0.2.10/24", "dev", "ck0"]);
  for (const l of ["ck0", "ck0p", "lo"]) run("ip", ["-n", nodeNs, "link", "set", l, "up"]);

  const socketPath = join(dir, "cnikitd.sock");
  const config = parseDaemonConfig(
    {
      node: { name: `${prefix}-n1`, underlay: [{ iface: "ck0", address: "192.0.2.10", prefixLength: 24 }] },
      backend: "flannel",
      backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } },
      store: `file:${join(dir, "store")}`,
      localStateDir: join(dir, "local"),
      socketPath,
      renderer: { type: "linux", netns: nodeNs, stateDir: join(dir, "linux-state") },
      logLevel: "error",
    },
    { baseDir: dir },
  );
  running = await runDaemon(config);
  await running.daemon.agentStarted;

  const plugin = cniPluginPath();
  list = loadConfList({
    cniVersions: ["1.0.0", "1.1.0"],
    name: `${prefix}-chain`,
    plugins: [
      { type: "cnikit-cni", socketPath },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
      { type: "tuning", capabilities: { mac: true }, sysctl: { "net.ipv4.conf.eth0.rp_filter": "2" } },
    ],
  });
  runtime = new CniRuntime({
    cniPath: [dirname(plugin), CNI_DIR],
    cacheDir: join(dir, "cache"),
    exec: spawnExec({ wrapper: netnsWrapper(nodeNs) }),
    env: { PATH: `${v4only}:/usr/bin:/bin` },
  });
});

afterAll(async () => {
  for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill("SIGKILL");
  await running?.stop();
  for (const ns of made.reverse()) {
    try {
      run("ip", ["netns", "del", ns]);
    } catch {
      // Already gone.
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("cnikit-cni + portmap + tuning at 1.0.0 on the kernel", () => {
  let result: CniResultJson;
  let podIp: string;

  it("the list offering 1.0.0 and 1.1.0 runs at 1.0.0, the highest the Debian plugins take (42, 62)", async () => {
    expect(await runtime.negotiate(list)).toBe("1.0.0");
    expect(await runtime.status(list)).toEqual({ cniVersion: "1.0.0", skipped: true });
  });

  it("ADD chains cnikit-cni's result through portmap and tuning and returns it at 1.0.0", async () => {
    result = await runtime.add(list, pod(1));
    expect(result.cniVersion).toBe("1.0.0");
    const eth0 = result.interfaces!.findIndex((i) => i.name === "eth0");
    expect(eth0).toBeGreaterThanOrEqual(0);
    expect(result.interfaces![eth0]!.sandbox).toBe(pod(1).netns);
    expect(result.ips).toHaveLength(1);
    expect(result.ips![0]!.interface).toBe(eth0);
    expect(result.ips![0]!.address).toMatch(/^10\.244\.\d+\.\d+\/24$/);
    podIp = result.ips![0]!.address.split("/")[0]!;
  });

  it("the pod has eth0 with that address, and tuning's sysctl and MAC (reported in the result)", () => {
    const eth0 = podLinks(1).find((l) => l.ifname === "eth0");
    expect(eth0?.address).toBe(tunedMac(1));
    expect(result.interfaces!.find((i) => i.name === "eth0" && i.sandbox !== undefined)?.mac).toBe(tunedMac(1));
    expect(eth0?.addr_info?.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`)).toEqual([result.ips![0]!.address]);
    expect(run("ip", ["netns", "exec", podNs(1), "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]).trim()).toBe("2");
  });

  it("portmap got cnikit's address through prevResult: its DNAT points at the pod", () => {
    const rules = natRules();
    expect(rules.some((r) => r.includes("--dport 9001") && r.includes(`DNAT --to-destination ${podIp}:80`))).toBe(true);
  });

  it("traffic flows: the node reaches the pod directly and through the hostPort", async () => {
    await serveInPod(1);
    expect(connectFromNode(podIp, 80)).toMatch(/^hello /);
    expect(connectFromNode("192.0.2.10", 9001)).toMatch(/^hello /);
  });

  it("CHECK passes for all three plugins with the cached result", async () => {
    expect(existsSync(runtime.cachePath(list, pod(1)))).toBe(true);
    const cached = JSON.parse(readFileSync(runtime.cachePath(list, pod(1)), "utf8")) as { result: unknown };
    expect(cached.result).toEqual(result);
    await runtime.check(list, pod(1));
  });

  it("parallel ADDs of two more pods get distinct addresses and pass CHECK", async () => {
    const [a, b] = await Promise.all([runtime.add(list, pod(2)), runtime.add(list, pod(3))]);
    const ips = [podIp, a!.ips![0]!.address.split("/")[0], b!.ips![0]!.address.split("/")[0]];
    expect(new Set(ips).size).toBe(3);
    await Promise.all([runtime.check(list, pod(2)), runtime.check(list, pod(3))]);
  });

  it("DEL in reverse removes tuning's and portmap's state and cnikit's interface; a second DEL works", async () => {
    for (const n of [1, 2, 3]) {
      await runtime.del(list, pod(n));
      expect(podLinks(n).map((l) => l.ifname)).toEqual(["lo"]);
      expect(existsSync(runtime.cachePath(list, pod(n)))).toBe(false);
    }
    expect(natRules().some((r) => r.includes(prefix))).toBe(false);
    expect(natRules().some((r) => r.includes("DNAT --to-destination"))).toBe(false);
    for (const n of [1, 2, 3]) await runtime.del(list, pod(n));
    expect(running!.daemon.nodeAgent!.dataplane().pods).toEqual([]);
  });
});
