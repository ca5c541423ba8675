/**
 * The runtime (src/runtime.ts) driving the Debian reference plugins on the real kernel: a conflist
 * of bridge + host-local, portmap and tuning at cniVersion 1.0.0, run inside a scratch "node"
 * namespace (plugins act on the namespace they run in for the host side) with CNI_NETNS pointing
 * at scratch pod namespaces. Needs root, iproute2, iptables and containernetworking-plugins; fails
 * naming the package when one is missing.
 *
 * Debian's portmap 1.1.1 has containernetworking/plugins#819: its CHECK looks for the IPv4 rules in
 * ip6tables too and fails whenever ip6tables works. The plugins therefore run with a PATH whose
 * only iptables binaries are the IPv4 ones (as on an IPv4-only host), which makes portmap skip
 * IPv6; the pods here are IPv4-only.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VersionError } from "@cnikit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ipv4OnlyIptables, natRules as kernelNatRules, nsLinks, requireTool, run } from "./kernel-fixture.ts";
import { CniRuntime, loadConfList, netnsWrapper, PluginError, spawnExec, type NetworkConfigList, type RuntimeConf } from "../src/runtime.ts";

const CNI_DIR = "/usr/lib/cni";
const prefix = `ck-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
const nodeNs = `${prefix}-node`;
const podNs = (n: number): string => `${prefix}-pod${n}`;
const made: string[] = [];
let dir: string;
let dataDir: string;
let runtime: CniRuntime;
let list: NetworkConfigList;

function addNs(name: string): void {
  run("ip", ["netns", "add", name]);
  made.push(name);
}

function pod(n: number, extra: Partial<RuntimeConf> = {}): RuntimeConf {
  return {
    containerId: `${prefix}-c${n}`,
    netns: `/var/run/netns/${podNs(n)}`,
    ifName: "eth0",
    args: [
      ["IgnoreUnknown", "1"],
      ["K8S_POD_NAMESPACE", "default"],
      ["K8S_POD_NAME", `web-${n}`],
    ],
    capabilityArgs: {
      portMappings: [{ hostPort: 8000 + n, containerPort: 80, protocol: "tcp" }],
      mac: `c2:00:00:00:00:${n.toString(16).padStart(2, "0")}`,
    },
    ...extra,
  };
}

const natRules = (): string[] => kernelNatRules(nodeNs);
const podLinks = (n: number): ReturnType<typeof nsLinks> => nsLinks(podNs(n));

function reservations(): string[] {
  const d = join(dataDir, list.name);
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"));
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("runtime-kernel.test.ts needs root (network namespaces, veths, iptables)");
  requireTool("/usr/sbin/ip", "iproute2");
  requireTool("/usr/sbin/iptables", "iptables");
  for (const p of ["bridge", "host-local", "portmap", "tuning"]) requireTool(join(CNI_DIR, p), "containernetworking-plugins");

  dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  dataDir = join(dir, "ipam");
  // IPv4-only iptables for the plugins (see the module comment).
  const v4only = ipv4OnlyIptables(dir);

  addNs(nodeNs);
  for (let n = 1; n <= 6; n++) addNs(podNs(n));
  run("ip", ["-n", nodeNs, "link", "set", "lo", "up"]);

  list = loadConfList({
    cniVersion: "1.0.0",
    name: `${prefix}-net`,
    plugins: [
      {
        type: "bridge",
        bridge: "ckbr0",
        isGateway: true,
        ipMasq: false,
        ipam: { type: "host-local", ranges: [[{ subnet: "10.99.0.0/24" }]], routes: [{ dst: "0.0.0.0/0" }], dataDir },
      },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
      { type: "tuning", capabilities: { mac: true }, sysctl: { "net.ipv4.conf.eth0.rp_filter": "2" } },
    ],
  });
  runtime = new CniRuntime({
    cniPath: [CNI_DIR],
    cacheDir: join(dir, "cache"),
    exec: spawnExec({ wrapper: netnsWrapper(nodeNs) }),
    env: { PATH: `${v4only}:/usr/bin:/bin` },
  });
});

afterAll(() => {
  for (const ns of made.reverse()) {
    try {
      run("ip", ["netns", "del", ns]);
    } catch {
      // Already gone.
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("bridge + host-local, portmap, tuning at 1.0.0 on the kernel", () => {
  let result: Awaited<ReturnType<CniRuntime["add"]>>;

  it("ADD returns a 1.0.0 result with the bridge, the host veth and the pod's eth0", async () => {
    result = await runtime.add(list, pod(1));
    expect(result.cniVersion).toBe("1.0.0");
    const names = result.interfaces!.map((i) => i.name);
    expect(names[0]).toBe("ckbr0");
    expect(names[1]).toMatch(/^veth/);
    expect(result.interfaces![2]).toEqual({ name: "eth0", mac: "c2:00:00:00:00:01", sandbox: pod(1).netns });
    expect(result.ips).toEqual([{ interface: 2, address: "10.99.0.2/24", gateway: "10.99.0.1" }]);
    expect(result.routes).toEqual([{ dst: "0.0.0.0/0" }]);
  });

  it("the pod has eth0 with the address and tuning's MAC (runtimeConfig.mac) and sysctl", () => {
    const eth0 = podLinks(1).find((l) => l.ifname === "eth0");
    expect(eth0).toBeDefined();
    expect(eth0!.address).toBe("c2:00:00:00:00:01");
    expect(eth0!.addr_info!.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["10.99.0.2/24"]);
    expect(run("ip", ["netns", "exec", podNs(1), "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]).trim()).toBe("2");
    const route = run("ip", ["-n", podNs(1), "route", "show", "default"]);
    expect(route).toContain("via 10.99.0.1 dev eth0");
  });

  it("the node has the bridge with the gateway, and portmap's DNAT for hostPort 8001", () => {
    expect(run("ip", ["-n", nodeNs, "-4", "addr", "show", "dev", "ckbr0"])).toContain("inet 10.99.0.1/24");
    const rules = natRules();
    expect(rules.some((r) => r.includes("--dport 8001") && r.includes("DNAT --to-destination 10.99.0.2:80"))).toBe(true);
    expect(rules.some((r) => r.startsWith("-A CNI-HOSTPORT-DNAT") && r.includes(`id: \\"${pod(1).containerId}\\"`))).toBe(true);
  });

  it("host-local's reservation and the runtime's cached result exist between ADD and DEL", () => {
    expect(reservations()).toEqual(["10.99.0.2"]);
    expect(readFileSync(join(dataDir, list.name, "10.99.0.2"), "utf8")).toBe(`${pod(1).containerId}\r\neth0`);
    const cached = JSON.parse(readFileSync(runtime.cachePath(list, pod(1)), "utf8")) as { result: unknown; cniVersion: string };
    expect(cached.cniVersion).toBe("1.0.0");
    expect(cached.result).toEqual(result);
  });

  it("CHECK passes right after ADD", async () => {
    await runtime.check(list, pod(1));
  });

  it("CHECK reports drift (tuning's sysctl changed behind its back), and passes once it is restored", async () => {
    run("ip", ["netns", "exec", podNs(1), "sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter"]);
    let err: unknown;
    try {
      await runtime.check(list, pod(1));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).plugin).toBe("tuning");
    expect((err as PluginError).index).toBe(2);
    run("ip", ["netns", "exec", podNs(1), "sh", "-c", "echo 2 > /proc/sys/net/ipv4/conf/eth0/rp_filter"]);
    await runtime.check(list, pod(1));
  });

  it("DEL (reverse order, with the cached result) removes the pod's eth0, the DNAT, the reservation and the cache", async () => {
    await runtime.del(list, pod(1));
    expect(podLinks(1).map((l) => l.ifname)).toEqual(["lo"]);
    expect(natRules().some((r) => r.includes("--dport 8001"))).toBe(false);
    expect(natRules().some((r) => r.includes(pod(1).containerId))).toBe(false);
    expect(reservations()).toEqual([]);
    expect(existsSync(runtime.cachePath(list, pod(1)))).toBe(false);
    // No veth left on the node: only lo and the bridge.
    const nodeLinks = (JSON.parse(run("ip", ["-j", "-n", nodeNs, "link", "show"])) as { ifname: string }[]).map((l) => l.ifname);
    expect(nodeLinks.sort()).toEqual(["ckbr0", "lo"]);
  });

  it("a second DEL succeeds", async () => {
    await runtime.del(list, pod(1));
    expect(reservations()).toEqual([]);
  });

  it("a failed ADD followed by DEL (addOrCleanup) leaves nothing behind", async () => {
    // host-local refuses an address outside the range after bridge made the veth.
    const bad = pod(2, {
      args: [
        ["IgnoreUnknown", "1"],
        ["IP", "10.98.0.7"],
      ],
    });
    let err: unknown;
    try {
      await runtime.addOrCleanup(list, bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).plugin).toBe("bridge");
    expect((err as PluginError).message).toContain("10.98.0.7");
    expect(podLinks(2).map((l) => l.ifname)).toEqual(["lo"]);
    expect(reservations()).toEqual([]);
    expect(existsSync(runtime.cachePath(list, bad))).toBe(false);
    expect(natRules().some((r) => r.includes(bad.containerId))).toBe(false);
  });

  it("parallel ADDs get distinct addresses; GC DELs the attachments not listed as valid", async () => {
    const pods = [3, 4, 5, 6];
    const results = await Promise.all(pods.map((n) => runtime.add(list, pod(n))));
    const addresses = results.map((r) => r.ips![0]!.address);
    expect(new Set(addresses).size).toBe(4);
    expect(reservations()).toHaveLength(4);
    for (const n of pods) expect(podLinks(n).some((l) => l.ifname === "eth0")).toBe(true);

    const report = await runtime.gc(list, [{ containerId: pod(3).containerId, ifName: "eth0" }]);
    expect(report.pluginsCollected).toBe(false); // 1.0.0: no plugin GC, stale DELs only.
    expect(report.deleted.map((d) => d.containerId).sort()).toEqual([pod(4), pod(5), pod(6)].map((p) => p.containerId).sort());
    for (const n of [4, 5, 6]) expect(podLinks(n).map((l) => l.ifname)).toEqual(["lo"]);
    expect(podLinks(3).some((l) => l.ifname === "eth0")).toBe(true);
    expect(reservations()).toEqual([addresses[0]!.split("/")[0]]);
    expect((await runtime.cachedAttachments(list.name)).map((a) => a.containerId)).toEqual([pod(3).containerId]);

    await runtime.del(list, pod(3));
    expect(reservations()).toEqual([]);
    expect(natRules().some((r) => r.includes(prefix))).toBe(false);
  });

  it("a 1.1.0-only conflist with these plugins is refused before any plugin runs ADD", async () => {
    const newer = loadConfList({ ...list.raw, cniVersion: "1.1.0" });
    let err: unknown;
    try {
      await runtime.add(newer, pod(2));
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toContain("bridge supports [0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0]");
    expect(err).toBeInstanceOf(VersionError);
    expect(podLinks(2).map((l) => l.ifname)).toEqual(["lo"]);
  });
});
