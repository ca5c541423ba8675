// Weave's pure plan over hand-written inputs: the flat L2 shape, the datapath per peer, the MTU
// from the underlay, the start-time refusal of a WEAVE_MTU the underlay cannot carry.
import { describe, expect, it } from "vitest";
import type { NodeInfo } from "@cnikit/core";
import { parseWeaveConfig } from "../src/config.ts";
import { BRIDGE, SLEEVE_DEV, VXLAN_DEV, bridgeMac, plan, podMtu } from "../src/plan.ts";
import type { WeavePeer, WeavePod } from "../src/plan.ts";

const node = (mtu?: number): NodeInfo => ({ name: "n1", underlay: [{ iface: "eth0", address: "198.51.100.10", prefixLength: 24, ...(mtu !== undefined && { mtu }) }] });
const pod: WeavePod = { containerId: "c1", ifName: "eth0", netns: "/var/run/netns/p1", address: "10.32.0.5" };
const byName = <T extends { name: string }>(xs: readonly T[]): T[] => [...xs].sort((a, b) => a.name.localeCompare(b.name));
const byDst = <T extends { dst: string }>(xs: readonly T[]): T[] => [...xs].sort((a, b) => a.dst.localeCompare(b.dst));
const peers: WeavePeer[] = [
  { node: "n2", address: "203.0.113.10", datapath: "fastdp" },
  { node: "n3", address: "203.0.113.11", datapath: "sleeve" },
];

describe("plan", () => {
  it("is empty until the ring gave the node its own address", () => {
    const dp = plan({ config: parseWeaveConfig({}), node: node(), pods: [pod], peers, bridgeAddress: undefined });
    expect(dp.links).toEqual([]);
    expect(dp.pods).toEqual([]);
  });

  it("puts pods on bridge weave with the default subnet's whole netmask, the bridge address as gateway, no per-node routes", () => {
    const dp = plan({ config: parseWeaveConfig({}), node: node(), pods: [pod], peers: [], bridgeAddress: "10.32.0.1" });
    expect(dp.addresses).toEqual([{ dev: BRIDGE, cidr: "10.32.0.1/12" }]);
    expect(dp.routes).toEqual([]);
    expect(dp.pods).toHaveLength(1);
    expect(dp.pods[0]).toMatchObject({ bridge: BRIDGE, addresses: ["10.32.0.5/12"], gateways: ["10.32.0.1"], routes: [{ dst: "0.0.0.0/0", via: "10.32.0.1" }], mtu: 1450 });
    expect(byName(dp.links)).toEqual([
      { kind: "vxlan", name: VXLAN_DEV, master: BRIDGE, mtu: 1450, vni: 1, port: 6784, local: "198.51.100.10", learning: true },
      { kind: "bridge", name: BRIDGE, mtu: 1450, mac: bridgeMac("n1") },
    ]);
    expect(dp.nat).toEqual([{ id: "weave/masquerade", kind: "masquerade", sources: ["10.32.0.0/12"], exceptDestinations: ["10.32.0.0/12"] }]);
  });

  it("floods to each established peer on its connection's datapath; a sleeve fallback adds the sleeve port beside fastdp", () => {
    const dp = plan({ config: parseWeaveConfig({}), node: node(), pods: [], peers, bridgeAddress: "10.32.0.1" });
    expect(byName(dp.links).map((l) => l.name)).toEqual([SLEEVE_DEV, VXLAN_DEV, BRIDGE]);
    expect(byDst(dp.fdb)).toEqual([
      { dev: VXLAN_DEV, mac: "00:00:00:00:00:00", dst: "203.0.113.10", vni: 1, permanent: true },
      { dev: SLEEVE_DEV, mac: "00:00:00:00:00:00", dst: "203.0.113.11", permanent: true },
    ]);
  });

  it("a password takes the encrypted sleeve and no vxlan port; the sleeve's 82 bytes come off the underlay MTU", () => {
    const config = parseWeaveConfig({ WEAVE_PASSWORD: "secret" });
    const dp = plan({ config, node: node(), pods: [pod], peers: [{ node: "n2", address: "203.0.113.10", datapath: "sleeve" }], bridgeAddress: "10.32.0.1" });
    expect(byName(dp.links).map((l) => l.kind)).toEqual(["sleeve", "bridge"]);
    expect(dp.links.find((l) => l.kind === "sleeve")).toMatchObject({ encrypted: true, port: 6783 });
    expect(dp.pods[0]!.mtu).toBe(1418);
  });

  it("derives the MTU from the underlay (jumbo frames too), not Weave's fixed 1376", () => {
    expect(podMtu(parseWeaveConfig({}), node(9000))).toBe(8950);
    expect(podMtu(parseWeaveConfig({ WEAVE_NO_FASTDP: "1" }), node(1400))).toBe(1318);
    expect(podMtu(parseWeaveConfig({ WEAVE_MTU: "1376" }), node(1500))).toBe(1376);
  });

  it("refuses a WEAVE_MTU the underlay cannot carry, naming the field and the most it allows", () => {
    expect(() => podMtu(parseWeaveConfig({ WEAVE_MTU: "1451" }), node(1500))).toThrow(expect.objectContaining({ code: 7, field: "WEAVE_MTU", rule: expect.stringContaining("must be at most 1450") }));
    expect(() => podMtu(parseWeaveConfig({ WEAVE_NO_FASTDP: "1", WEAVE_MTU: "1419" }), node(1500))).toThrow(
      expect.objectContaining({ field: "WEAVE_MTU", rule: expect.stringContaining("at most 1418") }),
    );
  });

  it("refuses a node without an IPv4 underlay (Weave Net is IPv4 only)", () => {
    const v6: NodeInfo = { name: "n6", underlay: [{ iface: "eth0", address: "2001:db8::10", prefixLength: 64 }] };
    expect(() => plan({ config: parseWeaveConfig({}), node: v6, pods: [], peers: [], bridgeAddress: "10.32.0.1" })).toThrow(expect.objectContaining({ field: "node.underlay" }));
  });
});
