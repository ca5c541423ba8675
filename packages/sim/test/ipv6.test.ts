/**
 * The walk is family-agnostic: an IPv6 underlay with IPv6 pods, and a dual-stack pod whose
 * families are chosen per send.
 */
import { emptyDataplane, type NodeDataplane, type NodeInfo } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { SimFabric } from "../src/index.ts";
import { mac, pod } from "./builders.ts";

function v6Cluster(forwarding = true): SimFabric {
  const f = new SimFabric({
    subnets: [
      { name: "a", cidr: "2001:db8:1::/64", gateway: "2001:db8:1::1" },
      { name: "b", cidr: "198.51.100.0/24", gateway: "198.51.100.1" },
    ],
    routers: [{ name: "r1", interfaces: [{ subnet: "a", address: "2001:db8:1::1" }, { subnet: "b", address: "198.51.100.1" }] }],
  });
  const infos: NodeInfo[] = [1, 2].map((n) => {
    const v6 = f.nextUnderlay("a");
    const v4 = f.nextUnderlay("b");
    const info: NodeInfo = {
      name: `node-${n}`,
      underlay: [
        { iface: "eth0", address: v6.address, prefixLength: v6.prefixLength, gateway: v6.gateway! },
        { iface: "eth1", address: v4.address, prefixLength: v4.prefixLength, gateway: v4.gateway! },
      ],
    };
    f.setNode(info);
    return info;
  });
  infos.forEach((info, k) => {
    const n = k + 1;
    const dp: NodeDataplane = emptyDataplane(info.name);
    dp.sysctls = { ipv6Forwarding: forwarding, ipv4Forwarding: true };
    dp.links.push({ kind: "bridge", name: "cni0", mac: mac(n, 1) });
    dp.addresses.push({ dev: "cni0", cidr: `fd00:${n}::1/64` }, { dev: "cni0", cidr: `10.244.${n}.1/24` });
    dp.pods.push({
      key: `p${n}/eth0`,
      containerId: `p${n}`,
      ifName: "eth0",
      hostIf: `veth${n}`,
      bridge: "cni0",
      mac: mac(n, 2),
      mtu: 1500,
      addresses: [`fd00:${n}::2/64`, `10.244.${n}.2/24`],
      routes: [
        { dst: "::/0", via: `fd00:${n}::1` },
        { dst: "0.0.0.0/0", via: `10.244.${n}.1` },
      ],
    });
    const peer = infos[1 - k]!;
    dp.routes.push({ dst: `fd00:${3 - n}::/64`, via: peer.underlay[0]!.address }, { dst: `10.244.${3 - n}.0/24`, via: peer.underlay[1]!.address });
    f.setDataplane(info.name, dp);
  });
  return f;
}

describe("IPv6 and dual stack", () => {
  it("walks IPv6 by default (the destination's first address) and IPv4 when asked", () => {
    const f = v6Cluster();
    expect(f.nodeInfo("node-1").underlay[0]!.address).toBe("2001:db8:1::a");
    const r6 = f.send(pod("p1/eth0"), pod("p2/eth0"));
    expect(r6).toMatchObject({ delivered: true, destination: "fd00:2::2", seenSource: "fd00:1::2", replyDelivered: true });
    const r4 = f.send(pod("p1/eth0"), pod("p2/eth0"), { family: 4 });
    expect(r4).toMatchObject({ delivered: true, destination: "10.244.2.2", seenSource: "10.244.1.2" });
    expect(f.reachability()).toMatchObject({ pairs: 2, delivered: 2 });
  });

  it("needs IPv6 forwarding for forwarded IPv6", () => {
    const f = v6Cluster(false);
    const r = f.send(pod("p1/eth0"), pod("p2/eth0"));
    expect(r.delivered).toBe(false);
    expect(r.reason).toBe("IPv6 forwarding is disabled at node node-1 (sysctls.ipv6Forwarding is not set)");
    expect(f.send(pod("p1/eth0"), pod("p2/eth0"), { family: 4 }).delivered).toBe(true);
    const pairs = f.reachabilityPairs();
    expect(pairs.map((p) => p.reason)).toEqual([r.reason, "IPv6 forwarding is disabled at node node-2 (sysctls.ipv6Forwarding is not set)"]);
  });
});
