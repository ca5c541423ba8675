/**
 * A fabric secondary address that a pod holds is routed to the pod (`UnderlayInterface.
 * secondaryAddresses`): the node answers ARP for it on its underlay interface and takes packets
 * for it itself, unless its main table holds a host route for exactly that address — then it
 * forwards them there, as Azure CNI's transparent mode does with a NIC's secondary IP
 * configurations. Built by hand on a SimFabric: node-1 and node-2 on subnet a, node-3 on subnet b
 * behind router r1, the external host on subnet ext behind r1 too.
 */
import { emptyDataplane, type NodeDataplane, type NodeInfo, type PodInterface } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { addr } from "../src/addr.ts";
import { Interner, compileNode, isLocal } from "../src/compile.ts";
import { compileTopology } from "../src/topology.ts";
import { SimFabric, defaultTopology, type Endpoint, type SimTopology } from "../src/index.ts";
import { mac } from "./builders.ts";

const SECONDARY = "198.51.100.200";
const POD: Endpoint = { kind: "pod", key: "az-1/eth0" };

/** A routed pod holding `address` as a /32 (Calico-style: default via 169.254.1.1 scope link). */
function vnetPod(address: string, hostIf = "azv1"): PodInterface {
  const v6 = address.includes(":");
  return {
    key: "az-1/eth0",
    containerId: "az-1",
    ifName: "eth0",
    hostIf,
    mac: mac(7, 0xdd),
    mtu: 1500,
    addresses: [`${address}/${v6 ? 128 : 32}`],
    routes: v6
      ? [
          { dst: "fe80::1/128", scopeLink: true },
          { dst: "::/0", via: "fe80::1" },
        ]
      : [
          { dst: "169.254.1.1/32", scopeLink: true },
          { dst: "0.0.0.0/0", via: "169.254.1.1" },
        ],
  };
}

/** node-2's dataplane: the pod, and (when `hostRoute`) `<address>/32 dev azv1`; proxy ARP on the veth and eth0. */
function node2Dataplane(options: { pod: boolean; hostRoute: boolean; address?: string }): NodeDataplane {
  const address = options.address ?? SECONDARY;
  const v6 = address.includes(":");
  const dp = emptyDataplane("node-2");
  dp.sysctls = { ipv4Forwarding: true, ipv6Forwarding: true, proxyArp: ["azv1", "eth0"] };
  if (options.pod) dp.pods.push(vnetPod(address));
  if (options.hostRoute) dp.routes.push({ dst: `${address}/${v6 ? 128 : 32}`, dev: "azv1", origin: "pod az-1" });
  return dp;
}

/** Three nodes; node-2 holds SECONDARY from the fabric, with the given dataplane. */
function cluster(dp: NodeDataplane): { fabric: SimFabric; infos: NodeInfo[] } {
  const fabric = new SimFabric(defaultTopology());
  const n1 = fabric.addNode({ name: "node-1", subnet: "a" });
  const n2 = fabric.addNode({ name: "node-2", subnet: "a" });
  const n3 = fabric.addNode({ name: "node-3", subnet: "b" });
  const info2: NodeInfo = { ...n2, underlay: [{ ...n2.underlay[0]!, secondaryAddresses: [SECONDARY] }] };
  fabric.setNode(info2, dp);
  return { fabric, infos: [n1, info2, n3] };
}

const senders: Endpoint[] = [
  { kind: "node", name: "node-1" }, // same subnet: ARP straight for the secondary address
  { kind: "node", name: "node-3" }, // across router r1, which ARPs for it on subnet a
  { kind: "external", name: "internet" }, // from outside the cluster, through r1
  { kind: "node", name: "node-2" }, // the node itself: its host route
];

describe("a secondary address of the fabric that a pod holds", () => {
  it("reaches the pod (not the node) from the same subnet, across the router and from outside, and the pod's replies leave through the underlay with its own address", () => {
    const { fabric } = cluster(node2Dataplane({ pod: true, hostRoute: true }));
    for (const from of senders) {
      const r = fabric.send(from, POD, { protocol: "icmp" });
      expect(r, JSON.stringify(from)).toMatchObject({ delivered: true, replyDelivered: true, natted: false, destination: SECONDARY });
      expect(r.path.at(-1)).toMatchObject({ node: "node-2", stage: "deliver", detail: "into pod az-1/eth0 via azv1" });
      // node-2 forwarded it (its host route), it did not take it.
      expect(r.path.some((h) => h.node === "node-2" && h.stage === "route" && h.detail.includes(`${SECONDARY}/32 dev azv1`))).toBe(true);
    }
    // The router on subnet a found node-2 by ARP for the secondary address.
    const viaRouter = fabric.send({ kind: "node", name: "node-3" }, POD);
    expect(viaRouter.path.some((h) => h.node === "r1" && h.stage === "underlay" && h.detail.includes(`→ ${SECONDARY}`) && h.detail.endsWith("to node-2 (plaintext)"))).toBe(true);
    // The pod sends with its own (VNet) address, unNATed, out of node-2's eth0.
    for (const to of senders) {
      const r = fabric.send(POD, to, { protocol: "tcp", port: 443 });
      expect(r, JSON.stringify(to)).toMatchObject({ delivered: true, replyDelivered: true, natted: false, seenSource: SECONDARY });
    }
    const out = fabric.send(POD, { kind: "node", name: "node-1" });
    expect(out.path.some((h) => h.node === "node-2" && h.stage === "underlay" && h.detail.startsWith(`${SECONDARY} → `))).toBe(true);
    // The class analysis agrees with the single walks.
    const report = fabric.reachability({ from: senders, to: [POD], protocol: "icmp" });
    expect(report).toMatchObject({ pairs: 4, delivered: 4, failed: 0 });
    const back = fabric.reachability({ from: [POD], to: senders.slice(0, 3), protocol: "icmp" });
    expect(back).toMatchObject({ pairs: 3, delivered: 3, failed: 0 });
  });

  it("is the node's own again when the host route goes: the node takes packets for it", () => {
    // The pod is still there but node-2 no longer routes the address to it (DEL removed the route
    // first): the node answers ARP and delivers locally, which the walk reports as the node.
    const { fabric } = cluster(node2Dataplane({ pod: true, hostRoute: false }));
    const r = fabric.send({ kind: "node", name: "node-1" }, POD, { protocol: "icmp" });
    expect(r.delivered).toBe(false);
    expect(r.reason).toMatch(/^delivered to node node-2 instead of pod az-1\/eth0/);
    expect(r.path.at(-1)).toMatchObject({ node: "node-2", stage: "deliver", detail: "local delivery at node node-2" });
    // Back with the host route: the pod again.
    fabric.setDataplane("node-2", node2Dataplane({ pod: true, hostRoute: true }));
    expect(fabric.send({ kind: "node", name: "node-1" }, POD, { protocol: "icmp" }).delivered).toBe(true);
  });
});

describe("compiling a node's secondary addresses", () => {
  const topo = compileTopology(defaultTopology());
  const info: NodeInfo = { name: "node-2", underlay: [{ iface: "eth0", address: "198.51.100.11", prefixLength: 24, gateway: "198.51.100.1", secondaryAddresses: [SECONDARY, "198.51.100.201"] }] };
  const local = (dp: NodeDataplane, text: string, node: NodeInfo = info, topology = topo): boolean => {
    const a = addr(text);
    return isLocal(compileNode({ info: node, dp, topology, interner: new Interner() }), a.value, a.family);
  };
  const withRoutes = (routes: NodeDataplane["routes"]): NodeDataplane => {
    const dp = node2Dataplane({ pod: true, hostRoute: false });
    dp.routes.push(...routes);
    return dp;
  };

  it.each([
    { name: "no route", routes: [], local: true },
    { name: "a host route with a device", routes: [{ dst: `${SECONDARY}/32`, dev: "azv1" }], local: false },
    { name: "a host route via a nexthop and a device", routes: [{ dst: `${SECONDARY}/32`, via: "169.254.1.1", dev: "azv1", onlink: true }], local: false },
    { name: "a wider route through the same device (/31)", routes: [{ dst: "198.51.100.200/31", dev: "azv1" }], local: true },
    { name: "a host route in another table", routes: [{ dst: `${SECONDARY}/32`, dev: "azv1", table: 100 }], local: true },
    { name: "a blackhole host route", routes: [{ dst: `${SECONDARY}/32`, type: "blackhole" as const }], local: true },
    { name: "a host route without a device", routes: [{ dst: `${SECONDARY}/32`, via: "198.51.100.10" }], local: true },
    {
      name: "a host route whose best metric is a blackhole",
      routes: [
        { dst: `${SECONDARY}/32`, type: "blackhole" as const, metric: 10 },
        { dst: `${SECONDARY}/32`, dev: "azv1", metric: 20 },
      ],
      local: true,
    },
    {
      name: "a host route whose best metric has a device",
      routes: [
        { dst: `${SECONDARY}/32`, type: "blackhole" as const, metric: 20 },
        { dst: `${SECONDARY}/32`, dev: "azv1", metric: 10 },
      ],
      local: false,
    },
  ])("$name: local = $local (only that address; the primary always)", ({ routes, local: expected }) => {
    const dp = withRoutes(routes);
    expect(local(dp, SECONDARY)).toBe(expected);
    expect(local(dp, "198.51.100.201")).toBe(true);
    expect(local(dp, "198.51.100.11")).toBe(true);
  });

  it("the pod deleted with its host route: local again", () => {
    const dp = node2Dataplane({ pod: true, hostRoute: true });
    expect(local(dp, SECONDARY)).toBe(false);
    expect(local(node2Dataplane({ pod: false, hostRoute: false }), SECONDARY)).toBe(true);
  });

  it("a host route for the primary address leaves it local", () => {
    expect(local(withRoutes([{ dst: "198.51.100.11/32", dev: "azv1" }]), "198.51.100.11")).toBe(true);
  });

  it("IPv6: a /128 host route to the pod makes the secondary address forwarded, not local", () => {
    const t6: SimTopology = { subnets: [{ name: "a", cidr: "2001:db8:1::/64", gateway: "2001:db8:1::1" }], routers: [{ name: "r1", interfaces: [{ subnet: "a", address: "2001:db8:1::1" }] }] };
    const n6: NodeInfo = { name: "node-2", underlay: [{ iface: "eth0", address: "2001:db8:1::b", prefixLength: 64, secondaryAddresses: ["2001:db8:1::c8"] }] };
    const topo6 = compileTopology(t6);
    expect(local(node2Dataplane({ pod: true, hostRoute: false, address: "2001:db8:1::c8" }), "2001:db8:1::c8", n6, topo6)).toBe(true);
    expect(local(node2Dataplane({ pod: true, hostRoute: true, address: "2001:db8:1::c8" }), "2001:db8:1::c8", n6, topo6)).toBe(false);
    // End to end on a v6 fabric: a second node on the subnet reaches the pod.
    const f = new SimFabric(t6);
    f.addNode({ name: "node-1", subnet: "a" });
    const n2 = f.addNode({ name: "node-2", subnet: "a" });
    f.setNode({ ...n2, underlay: [{ ...n2.underlay[0]!, secondaryAddresses: ["2001:db8:1::c8"] }] }, node2Dataplane({ pod: true, hostRoute: true, address: "2001:db8:1::c8" }));
    expect(f.send({ kind: "node", name: "node-1" }, POD, { protocol: "icmp" })).toMatchObject({ delivered: true, replyDelivered: true, seenSource: "2001:db8:1::a" });
  });
});
