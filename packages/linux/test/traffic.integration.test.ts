/**
 * Real packets through rendered dataplanes. Two node namespaces on an L2 "switch" namespace (the
 * underlay), each rendering its own dataplane from the real planner, pods in their own namespaces:
 *  - flannel vxlan: pods on one bridge and across nodes over VXLAN (ping and TCP); masquerade makes
 *    an off-cluster host see the node's address; per-pod filters drop and accept TCP connects;
 *  - calico without encapsulation, then the same nodes moved to VXLAN by a reconcile: routed /32
 *    veths, proxy ARP for 169.254.1.1, node-to-node routes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FilterPolicy, NodeDataplane } from "@cnikit/core";
import { LinuxRenderer } from "../src/index.ts";
import { calicoDataplane, flannelDataplane, type TestPod } from "./dataplanes.ts";
import { Scratch, checkRequirements, cleanupLeftovers, connect, ipJson, makeSwitch, ping, plug } from "./lab.ts";

const scratch = new Scratch("t");

beforeAll(async () => {
  checkRequirements();
  await cleanupLeftovers();
});
afterAll(async () => {
  await scratch.cleanup();
});

function nameOf(p: TestPod): string {
  return p.netns.split("/").pop()!;
}

async function txPackets(ns: string, dev: string): Promise<number> {
  const [l] = await ipJson<{ stats64: { tx: { packets: number } } }[]>(ns, ["-s", "link", "show", "dev", dev]);
  return l!.stats64.tx.packets;
}

describe("flannel vxlan across two nodes", () => {
  const nodes: string[] = [];
  const renderers: LinuxRenderer[] = [];
  const pods: TestPod[][] = [[], []];
  const dps: NodeDataplane[] = [];
  let ext = "";

  beforeAll(async () => {
    const sw = await scratch.ns("fsw");
    await makeSwitch(sw);
    for (let i = 1; i <= 2; i++) {
      const n = await scratch.ns(`fn${i}`);
      await plug({ sw, node: n, iface: "eth0", cidr: `192.168.50.${i}/24`, port: `p${i}`, gateway: "192.168.50.254" });
      nodes.push(n);
      for (let id = 1; id <= 2; id++) pods[i - 1]!.push({ id, netns: scratch.path(await scratch.ns(`f${i}p${id}`)) });
    }
    ext = await scratch.ns("fext");
    await plug({ sw, node: ext, iface: "eth0", cidr: "192.168.50.100/24", port: "pext" });
    for (let i = 1; i <= 2; i++) {
      const dp = flannelDataplane({ backend: "vxlan", self: i, nodes: 2, pods: pods[i - 1]! });
      dps.push(dp);
      const r = new LinuxRenderer({ netns: nodes[i - 1]! });
      renderers.push(r);
      const report = await r.apply(dp);
      expect(report.failedPods).toEqual([]);
    }
    await scratch.serve(nameOf(pods[1]![0]!), 8080);
    await scratch.serve(nameOf(pods[1]![0]!), 9090);
    await scratch.serve(ext, 8080);
  });

  it("pods on one bridge reach each other", async () => {
    expect(await ping(nameOf(pods[0]![0]!), "10.244.1.3")).toBe(true);
  });

  it("pods on different nodes reach each other over VXLAN (ping and TCP, source address kept)", async () => {
    const before = await txPackets(nodes[0]!, "flannel.1");
    expect(await ping(nameOf(pods[0]![0]!), "10.244.2.2")).toBe(true);
    expect(await connect(nameOf(pods[0]![0]!), "10.244.2.2", 8080)).toBe("10.244.1.2");
    expect(await txPackets(nodes[0]!, "flannel.1")).toBeGreaterThan(before);
  });

  it("masquerade: an off-cluster host sees the node's address; without the rule it cannot answer at all", async () => {
    expect(await connect(nameOf(pods[0]![0]!), "192.168.50.100", 8080)).toBe("192.168.50.1");
    const noNat = { ...dps[0]!, nat: [] };
    const r = await renderers[0]!.apply(noNat);
    expect(r.commands.map((c) => c.tool)).toEqual(["nft"]);
    expect(await connect(nameOf(pods[0]![1]!), "192.168.50.100", 8080, 800)).toBeUndefined();
    await renderers[0]!.apply(dps[0]!);
    expect(await connect(nameOf(pods[0]![1]!), "192.168.50.100", 8080)).toBe("192.168.50.1");
  });

  it("filters: an ingress policy accepts what it allows and drops the rest; an egress policy drops what it names", async () => {
    const b1 = dps[1]!.pods[0]!;
    const ingress: FilterPolicy = {
      pod: b1.key,
      direction: "ingress",
      defaultAction: "drop",
      rules: [{ id: "allow-a1-8080", action: "accept", protocol: "tcp", ports: [{ from: 8080, to: 8080 }], peers: [{ cidrs: ["10.244.1.0/24"], except: ["10.244.1.3/32"] }] }],
    };
    await renderers[1]!.apply({ ...dps[1]!, filters: [ingress] });
    const a1 = nameOf(pods[0]![0]!);
    const a2 = nameOf(pods[0]![1]!);
    const b2 = nameOf(pods[1]![1]!);
    expect(await connect(a1, "10.244.2.2", 8080)).toBe("10.244.1.2");
    expect(await connect(a1, "10.244.2.2", 9090, 800)).toBeUndefined();
    expect(await connect(a2, "10.244.2.2", 8080, 800)).toBeUndefined();
    expect(await connect(b2, "10.244.2.2", 8080, 800)).toBeUndefined();
    const a1pod = dps[0]!.pods[0]!;
    const egress: FilterPolicy = { pod: a1pod.key, direction: "egress", defaultAction: "accept", rules: [{ id: "no-8080", action: "drop", protocol: "tcp", ports: [{ from: 8080, to: 8080 }] }] };
    await renderers[0]!.apply({ ...dps[0]!, filters: [egress] });
    expect(await connect(a1, "10.244.2.2", 8080, 800)).toBeUndefined();
    expect(await ping(a1, "10.244.2.3")).toBe(true);
    await renderers[0]!.apply(dps[0]!);
    await renderers[1]!.apply(dps[1]!);
    expect(await connect(a2, "10.244.2.2", 9090)).toBe("10.244.1.3");
    expect(await connect(b2, "10.244.2.2", 8080)).toBe("10.244.2.3");
  });
});

describe("calico: routed veths without encapsulation, then moved to VXLAN", () => {
  const nodes: string[] = [];
  const renderers: LinuxRenderer[] = [];
  const pods: TestPod[][] = [[], []];
  let ext = "";

  beforeAll(async () => {
    const sw = await scratch.ns("csw");
    await makeSwitch(sw);
    for (let i = 1; i <= 2; i++) {
      const n = await scratch.ns(`cn${i}`);
      await plug({ sw, node: n, iface: "eth0", cidr: `192.168.50.${i}/24`, port: `p${i}`, gateway: "192.168.50.254" });
      nodes.push(n);
      for (let id = 1; id <= 2; id++) pods[i - 1]!.push({ id, netns: scratch.path(await scratch.ns(`c${i}p${id}`)) });
      renderers.push(new LinuxRenderer({ netns: n, owner: "calico" }));
    }
    ext = await scratch.ns("cext");
    await plug({ sw, node: ext, iface: "eth0", cidr: "192.168.50.100/24", port: "pext" });
    await scratch.serve(nameOf(pods[1]![0]!), 8080);
    await scratch.serve(ext, 8080);
  });

  it.each(["none", "vxlan"] as const)("%s: pods reach each other on one node and across nodes; NAT outgoing hides them from the outside", async (mode) => {
    for (let i = 1; i <= 2; i++) {
      const report = await renderers[i - 1]!.apply(calicoDataplane({ mode, self: i, nodes: 2, pods: pods[i - 1]! }));
      expect(report.failedPods).toEqual([]);
    }
    const c1 = nameOf(pods[0]![0]!);
    expect(await ping(c1, "10.245.1.4")).toBe(true);
    expect(await ping(c1, "10.245.2.3")).toBe(true);
    expect(await connect(c1, "10.245.2.3", 8080)).toBe("10.245.1.3");
    expect(await connect(c1, "192.168.50.100", 8080)).toBe("192.168.50.1");
    const tunnel = (await ipJson(nodes[0]!, ["link", "show"])).some((l) => l["ifname"] === "vxlan.calico");
    expect(tunnel).toBe(mode === "vxlan");
  });
});
