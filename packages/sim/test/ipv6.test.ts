/**
 * The walk is family-agnostic: an IPv6 underlay with IPv6 pods, and a dual-stack pod whose
 * families are chosen per send.
 */
import { emptyDataplane, type NodeDataplane, type NodeInfo } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { SimFabric } from "../src/index.ts";
import { mac, node, pod } from "./builders.ts";

function v6Cluster(forwarding = true): SimFabric {
  const f = new SimFabric({
    subnets: [
      { name: "a", cidr: "2001:db8:1::/64", gateway: "2001:db8:1::1" },
      { name: "b", cidr: "198.51.100.0/24", gateway: "198.51.100.1" },
    ],
    routers: [
      {
        name: "r1",
        interfaces: [
          { subnet: "a", address: "2001:db8:1::1" },
          { subnet: "b", address: "198.51.100.1" },
        ],
      },
    ],
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

/**
 * Dual-stack pods over an IPv4-only underlay with no IPv6 path between the nodes (no tunnel, no
 * IPv6 peer routes): IPv4 works everywhere, IPv6 only within a node. `hostV6` puts the bridge's
 * IPv6 gateway address on the host side (else only a link-local one, which is no node address);
 * `v4OnlyPod` adds a pod with an IPv4 address only.
 */
function dualOverV4(options: { hostV6: boolean; v4OnlyPod?: boolean }): SimFabric {
  const f = new SimFabric({ subnets: [{ name: "b", cidr: "198.51.100.0/24" }], routers: [] });
  const infos: NodeInfo[] = [1, 2].map((n) => {
    const u = f.nextUnderlay("b");
    const info: NodeInfo = { name: `node-${n}`, underlay: [{ iface: "eth0", address: u.address, prefixLength: u.prefixLength }] };
    f.setNode(info);
    return info;
  });
  infos.forEach((info, k) => {
    const n = k + 1;
    const dp: NodeDataplane = emptyDataplane(info.name);
    dp.sysctls = { ipv6Forwarding: true, ipv4Forwarding: true };
    dp.links.push({ kind: "bridge", name: "cni0", mac: mac(n, 1) });
    dp.addresses.push({ dev: "cni0", cidr: `10.244.${n}.1/24` });
    // Without hostV6 the host side has only a link-local IPv6 address, which is not a node address.
    dp.addresses.push({ dev: "cni0", cidr: options.hostV6 ? `fd00:${n}::1/64` : "fe80::1/64" });
    dp.pods.push({
      key: `p${n}/eth0`,
      containerId: `p${n}`,
      ifName: "eth0",
      hostIf: `veth${n}`,
      bridge: "cni0",
      mac: mac(n, 2),
      mtu: 1500,
      addresses: [`10.244.${n}.2/24`, `fd00:${n}::2/64`],
      routes: [
        { dst: "0.0.0.0/0", via: `10.244.${n}.1` },
        { dst: "::/0", via: `fd00:${n}::1` },
      ],
    });
    if (options.v4OnlyPod && n === 1) {
      dp.pods.push({
        key: "q1/eth0",
        containerId: "q1",
        ifName: "eth0",
        hostIf: "vethq1",
        bridge: "cni0",
        mac: mac(n, 3),
        mtu: 1500,
        addresses: ["10.244.1.3/24"],
        routes: [{ dst: "0.0.0.0/0", via: "10.244.1.1" }],
      });
    }
    dp.routes.push({ dst: `10.244.${3 - n}.0/24`, via: infos[1 - k]!.underlay[0]!.address });
    f.setDataplane(info.name, dp);
  });
  return f;
}

describe("reachability in one address family", () => {
  it("probes each pod at its address of the asked family: the IPv6 half of dual-stack pods is seen broken while the first (IPv4) address works", () => {
    const f = dualOverV4({ hostV6: true });
    // Without a family every pod is probed at its first address (IPv4): all delivered.
    expect(f.reachability()).toMatchObject({ pairs: 2, delivered: 2, failed: 0, skipped: [] });
    expect(f.reachability({ family: 4 })).toMatchObject({ pairs: 2, delivered: 2, failed: 0, family: 4, skipped: [] });
    const r6 = f.reachability({ family: 6 });
    expect(r6).toMatchObject({ pairs: 2, delivered: 0, failed: 2, family: 6, skipped: [] });
    expect(r6.failures.map((x) => [x.from, x.to, x.result.destination, x.result.reason])).toEqual([
      [pod("p1/eth0"), pod("p2/eth0"), "fd00:2::2", "no route to fd00:2::2 at node node-1"],
      [pod("p2/eth0"), pod("p1/eth0"), "fd00:1::2", "no route to fd00:1::2 at node node-2"],
    ]);
    const pairs = f.reachabilityPairs({ family: 6 });
    expect(pairs.map((p) => [p.from, p.to, p.delivered])).toEqual([
      [pod("p1/eth0"), pod("p2/eth0"), false],
      [pod("p2/eth0"), pod("p1/eth0"), false],
    ]);
  });

  it("probes a node without an underlay address of the family at its host-side address of it", () => {
    const f = dualOverV4({ hostV6: true });
    const both = [node("node-1"), node("node-2")];
    const toNodes = f.reachability({ from: [pod("p1/eth0")], to: both, family: 6 });
    expect(toNodes).toMatchObject({ pairs: 2, delivered: 1, failed: 1, skipped: [] });
    // node-1's own bridge address is reached; node-2's is not (no IPv6 path between the nodes).
    expect(toNodes.failures.map((x) => [x.to, x.result.destination])).toEqual([[node("node-2"), "fd00:2::1"]]);
    expect(f.send(pod("p1/eth0"), node("node-1"), { family: 6 })).toMatchObject({ delivered: true, destination: "fd00:1::1" });
    expect(f.send(pod("p1/eth0"), node("node-2"), { family: 6 })).toMatchObject({ delivered: false, destination: "fd00:2::1", reason: "no route to fd00:2::1 at node node-1" });
    const fromNodes = f.reachability({ from: both, to: [pod("p1/eth0"), pod("p2/eth0")], family: 6 });
    expect(fromNodes).toMatchObject({ pairs: 4, delivered: 2, failed: 2, skipped: [] });
    // In IPv4 the nodes are probed at their underlay addresses, as before.
    expect(f.reachability({ from: [pod("p1/eth0")], to: both, family: 4 })).toMatchObject({ pairs: 2, delivered: 2 });
  });

  it("skips endpoints without an address of the family and lists them with the reason", () => {
    const f = dualOverV4({ hostV6: false, v4OnlyPod: true });
    const r = f.reachability({ from: [pod("p1/eth0"), pod("q1/eth0")], to: [node("node-1"), node("node-2"), pod("p1/eth0"), pod("q1/eth0")], family: 6 });
    expect(r.skipped).toEqual([
      { endpoint: pod("q1/eth0"), reason: "pod q1/eth0 has no IPv6 address" },
      { endpoint: node("node-1"), reason: "node node-1 has no IPv6 address (none on its underlay, none on its host side)" },
      { endpoint: node("node-2"), reason: "node node-2 has no IPv6 address (none on its underlay, none on its host side)" },
    ]);
    // Only p1 -> p1 is left, the self pair: nothing counted.
    expect(r).toMatchObject({ pairs: 0, delivered: 0, failed: 0, failures: [] });
    // The same endpoints in IPv4 are all probed.
    const r4 = f.reachability({ from: [pod("p1/eth0"), pod("q1/eth0")], to: [node("node-1"), pod("p1/eth0"), pod("q1/eth0")], family: 4 });
    expect(r4).toMatchObject({ pairs: 4, delivered: 4, skipped: [] });
  });

  it("agrees with one send() per pair in each family, pods and nodes alike", () => {
    for (const f of [dualOverV4({ hostV6: true }), dualOverV4({ hostV6: false, v4OnlyPod: true }), v6Cluster(), v6Cluster(false)]) {
      const eps = [pod("p1/eth0"), pod("p2/eth0"), node("node-1"), node("node-2"), ...(f.dataplane("node-1").pods.some((p) => p.key === "q1/eth0") ? [pod("q1/eth0")] : [])];
      for (const family of [4, 6] as const) {
        const report = f.reachability({ from: eps, to: eps, family, maxFailures: 1000 });
        const skipped = new Set(report.skipped.map((s) => JSON.stringify(s.endpoint)));
        const probed = eps.filter((e) => !skipped.has(JSON.stringify(e)));
        const byPair = new Map(f.reachabilityPairs({ from: eps, to: eps, family }).map((o) => [`${JSON.stringify(o.from)}>${JSON.stringify(o.to)}`, o.delivered]));
        let pairs = 0;
        let delivered = 0;
        for (const a of probed) {
          for (const b of probed) {
            if (a === b) continue;
            pairs++;
            const sent = f.send(a, b, { family }).delivered;
            if (sent) delivered++;
            expect(byPair.get(`${JSON.stringify(a)}>${JSON.stringify(b)}`), `IPv${family} ${JSON.stringify(a)} -> ${JSON.stringify(b)}`).toBe(sent);
          }
        }
        expect(byPair.size).toBe(pairs);
        expect(report).toMatchObject({ pairs, delivered, failed: pairs - delivered });
      }
    }
  });

  it("refuses a family other than 4 or 6", () => {
    const f = dualOverV4({ hostV6: true });
    let err: unknown;
    try {
      f.reachability({ family: 5 as unknown as 4 });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: "ConfigError", field: "family" });
  });
});
