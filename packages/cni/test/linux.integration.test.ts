/**
 * cnikitd on the real kernel: a daemon rendering with @cnikit/linux's LinuxRenderer into a scratch
 * node namespace, pods added through the real `cnikit-cni` executable (the native shim) with
 * CNI_NETNS of scratch pod namespaces. The pod interface exists with its address, pods reach each
 * other and their gateway, CHECK sees drift, DEL removes the veth and works with the netns gone,
 * and a mode the kernel cannot build (calico IPIP) fails the daemon's start with "kernel lacks".
 * Needs root, iproute2, nftables, iputils-ping and a C compiler (gcc); fails naming the package
 * otherwise. Scratch namespaces are `ckc<pid>-*`; leftovers of crashed runs are removed first.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { builtinBackend } from "@cnikit/backends";
import { KernelLacksError, MemoryDatastore, MemoryNetwork, RealClock, memoryLogger, seededRandom } from "@cnikit/core";
import { LinuxRenderer, TOOL_PACKAGES, createNetns, deleteNetns, execIn, listNetns, runIpBatch } from "@cnikit/linux";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CniDaemon } from "../src/daemon.ts";
import { buildNativeShim } from "../src/paths.ts";
import { cniEnv, netconf, runExecutable, tempDir } from "./helpers.ts";

const PREFIX = `ckc${process.pid}`;
const tmp = tempDir();
const names: string[] = [];
let shim = "";

function requirements(): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) throw new Error("the kernel tests need root (network namespaces, nft)");
  for (const tool of ["ip", "bridge", "nft", "nsenter"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`\`${tool}\` not found: install the Debian package ${TOOL_PACKAGES[tool]}`);
  }
  if (spawnSync("sh", ["-c", "command -v ping"]).status !== 0) throw new Error("`ping` not found: install the Debian package iputils-ping");
}

async function ns(suffix: string): Promise<string> {
  const name = `${PREFIX}-${suffix}`;
  names.push(name);
  await createNetns(name);
  return name;
}

/** A node namespace with an underlay eth0 (a veth whose peer is up, so it has carrier). */
async function nodeNs(suffix: string, address: string): Promise<string> {
  const name = await ns(suffix);
  await runIpBatch(name, ["link add eth0 type veth peer name eth0p", "link set dev eth0p up", `addr add ${address}/24 dev eth0`, "link set dev eth0 up"]);
  return name;
}

function ping(from: string, to: string): boolean {
  return spawnSync("ip", ["netns", "exec", from, "ping", "-c", "1", "-W", "2", to]).status === 0;
}

async function links(name: string): Promise<{ ifname: string; addr_info?: { local: string; prefixlen: number }[] }[]> {
  return JSON.parse(await execIn(name, ["ip", "-j", "addr", "show"])) as { ifname: string; addr_info?: { local: string; prefixlen: number }[] }[];
}

beforeAll(async () => {
  requirements();
  for (const name of await listNetns()) {
    const m = /^ckc(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === "EPERM";
    }
    if (!alive) await deleteNetns(name);
  }
  shim = buildNativeShim({ out: join(tmp.dir, "cnikit-cni") });
});

afterAll(async () => {
  for (const name of names.reverse()) await deleteNetns(name).catch(() => undefined);
  tmp.remove();
});

/** Removes what the daemon's renderer made in `node` (the daemon closed its own renderer at stop). */
async function teardown(node: string): Promise<void> {
  await new LinuxRenderer({ netns: node, owner: "ckc", stateDir: join(tmp.dir, "linux") }).teardown();
}

function daemonOn(node: string, options: { backend: string; backendConfig: unknown; address: string; socket: string }) {
  const clock = new RealClock();
  const { logger, records } = memoryLogger({ level: "warn" });
  const renderer = new LinuxRenderer({ netns: node, owner: "ckc", stateDir: join(tmp.dir, "linux"), log: logger });
  const daemon = new CniDaemon({
    backend: builtinBackend(options.backend).backend,
    backendConfig: options.backendConfig,
    node: { name: node, underlay: [{ iface: "eth0", address: options.address, prefixLength: 24 }] },
    store: new MemoryDatastore({ clock }),
    local: new MemoryDatastore({ clock }),
    peers: new MemoryNetwork({ clock }).transport(node),
    applier: renderer,
    socketPath: options.socket,
    clock,
    log: logger,
    random: seededRandom(1),
  });
  return { daemon, renderer, records };
}

describe("cnikitd with the Linux renderer", () => {
  it("ADD through the executable creates the pod interface with its address; pods reach each other; CHECK, DEL; stop leaves the pods working", async () => {
    const node = await nodeNs("node", "192.0.2.10");
    const pod1 = await ns("pod1");
    const pod2 = await ns("pod2");
    const socket = join(tmp.dir, "flannel.sock");
    const { daemon } = daemonOn(node, { backend: "flannel", backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }, address: "192.0.2.10", socket });
    await daemon.start();
    try {
      await daemon.agentStarted;
      const plugin = (env: Record<string, string | undefined>, stdin = netconf()) => runExecutable(shim, { CNIKITD_SOCKET: socket, ...env }, stdin);
      const add1 = await plugin(cniEnv("ADD", "pod1", { CNI_NETNS: `/var/run/netns/${pod1}` }));
      expect(add1.code, add1.stdout).toBe(0);
      const add2 = await plugin(cniEnv("ADD", "pod2", { CNI_NETNS: `/var/run/netns/${pod2}` }));
      expect(add2.code, add2.stdout).toBe(0);
      const ip1 = (add1.json!["ips"] as { address: string; gateway: string }[])[0]!;
      const ip2 = (add2.json!["ips"] as { address: string }[])[0]!;

      const inPod = (await links(pod1)).find((l) => l.ifname === "eth0");
      expect(inPod?.addr_info?.map((a) => `${a.local}/${a.prefixlen}`)).toContain(ip1.address);
      const hostIf = (add1.json!["interfaces"] as { name: string; mac?: string }[])[1]!;
      const onNode = (await links(node)).map((l) => l.ifname);
      expect(onNode).toContain(hostIf.name);
      expect(hostIf.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);

      expect(ping(pod1, ip1.gateway)).toBe(true);
      expect(ping(pod1, ip2.address.split("/")[0]!)).toBe(true);

      expect(await plugin(cniEnv("CHECK", "pod1", { CNI_NETNS: `/var/run/netns/${pod1}` }), netconf({ prevResult: add1.json }))).toMatchObject({ code: 0, stdout: "" });
      await execIn(pod1, ["ip", "link", "set", "dev", "eth0", "down"]);
      const drift = await plugin(cniEnv("CHECK", "pod1", { CNI_NETNS: `/var/run/netns/${pod1}` }), netconf({ prevResult: add1.json }));
      expect(drift.code).toBe(1);
      expect(drift.json!["code"]).toBe(106);

      expect(await plugin(cniEnv("DEL", "pod1", { CNI_NETNS: `/var/run/netns/${pod1}` }))).toMatchObject({ code: 0, stdout: "" });
      expect((await links(node)).map((l) => l.ifname)).not.toContain(hostIf.name);
      expect((await links(pod1)).map((l) => l.ifname)).not.toContain("eth0");
      expect((await plugin(cniEnv("DEL", "pod1"))).code).toBe(0);

      // The pod's netns is gone before DEL (item 29): DEL succeeds and the address is free again.
      await deleteNetns(pod2);
      expect((await plugin(cniEnv("DEL", "pod2", { CNI_NETNS: `/var/run/netns/${pod2}` }))).code).toBe(0);
      const pod3 = await ns("pod3");
      const again = await plugin(cniEnv("ADD", "pod3", { CNI_NETNS: `/var/run/netns/${pod3}`, CNI_ARGS: `IP=${ip2.address.split("/")[0]}` }));
      expect(again.code, again.stdout).toBe(0);
      expect((again.json!["ips"] as { address: string }[])[0]!.address).toBe(ip2.address);

      // A netns that does not exist: the ADD fails and leaves nothing behind.
      const missing = await plugin(cniEnv("ADD", "ghost", { CNI_NETNS: `/var/run/netns/${PREFIX}-nowhere` }));
      expect(missing.code).toBe(1);
      expect(daemon.nodeAgent!.dataplane().pods.map((p) => p.key)).toEqual(["pod3/eth0"]);

      // A clean stop leaves the dataplane in place: pod3 still reaches its gateway.
      await daemon.stop();
      expect(ping(pod3, ip1.gateway)).toBe(true);
    } finally {
      await daemon.stop();
      await teardown(node);
    }
  });

  it("calico IPIP on this kernel (no ipip) fails the start with 'kernel lacks ipip', and ADD says so", async () => {
    const node = await nodeNs("ipip", "192.0.2.20");
    const socket = join(tmp.dir, "ipip.sock");
    const config = [{ apiVersion: "projectcalico.org/v3", kind: "IPPool", metadata: { name: "default-ipv4-ippool" }, spec: { cidr: "10.245.0.0/16", ipipMode: "Always" } }];
    const { daemon } = daemonOn(node, { backend: "calico", backendConfig: config, address: "192.0.2.20", socket });
    await daemon.start();
    try {
      await expect(daemon.agentStarted).rejects.toBeInstanceOf(KernelLacksError);
      const r = await runExecutable(shim, { CNIKITD_SOCKET: socket, ...cniEnv("ADD", "p") }, netconf());
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ code: 104, msg: expect.stringMatching(/kernel lacks ipip/i) });
    } finally {
      await daemon.stop();
      await teardown(node);
    }
  });
});
