/**
 * Bad input gets a ConfigError naming the field and the rule, and changes nothing.
 */
import { ConfigError, emptyDataplane } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { SimFabric, defaultTopology, type SimTopology } from "../src/index.ts";
import { bridgeNode, hostGw, pod } from "./builders.ts";

function topo(edit: (t: SimTopology) => void): SimTopology {
  const t = defaultTopology();
  edit(t);
  return t;
}

const badTopologies: [string, SimTopology, string][] = [
  ["no subnets", { subnets: [] }, "topology.subnets"],
  ["duplicate subnet name", topo((t) => (t.subnets[1]!.name = "a")), "topology.subnets[1].name"],
  ["bad cidr", topo((t) => (t.subnets[0]!.cidr = "198.51.100.1/24")), "topology.subnets[0].cidr"],
  ["overlapping subnets", topo((t) => (t.subnets[1]!.cidr = "198.51.100.128/25")), "topology.subnets[1].cidr"],
  ["gateway outside its subnet", topo((t) => (t.subnets[0]!.gateway = "10.0.0.1")), "topology.subnets[0].gateway"],
  ["gateway that is no router", topo((t) => (t.subnets[0]!.gateway = "198.51.100.2")), "topology.subnets[0].gateway"],
  ["mtu too small", topo((t) => (t.subnets[0]!.mtu = 100)), "topology.subnets[0].mtu"],
  ["router on an unknown subnet", topo((t) => (t.routers![0]!.interfaces[0]!.subnet = "zz")), "topology.routers[0].interfaces[0].subnet"],
  ["router address outside its subnet", topo((t) => (t.routers![0]!.interfaces[0]!.address = "203.0.113.7")), "topology.routers[0].interfaces[0].address"],
  ["static route via an unattached subnet", topo((t) => (t.routers![0]!.staticRoutes = [{ dst: "10.0.0.0/8", via: "10.1.1.1" }])), "topology.routers[0].staticRoutes[0].via"],
  ["external on an unknown subnet", topo((t) => (t.externals![0]!.subnet = "zz")), "topology.externals[0].subnet"],
  ["external address taken by the router", topo((t) => (t.externals![0]!.address = "192.0.2.1")), "topology.externals[0].address"],
];

describe("topology validation", () => {
  it.each(badTopologies)("%s", (_name, t, field) => {
    let err: unknown;
    try {
      new SimFabric(t);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).message).toContain(field);
  });
});

describe("dataplane and node validation", () => {
  const cases: [string, (dp: ReturnType<typeof bridgeNode>) => void, string][] = [
    ["route dst with host bits", (dp) => dp.routes.push({ dst: "10.244.2.1/24", via: "198.51.100.11" }), "dataplane(node-1).routes[0].dst"],
    ["route via of another family", (dp) => dp.routes.push({ dst: "10.244.2.0/24", via: "fd00::1" }), "dataplane(node-1).routes[0].via"],
    ["address without prefix length", (dp) => dp.addresses.push({ dev: "cni0", cidr: "10.1.1.1" }), "dataplane(node-1).addresses[1].cidr"],
    ["unknown link kind", (dp) => dp.links.push({ kind: "tap", name: "tap0" } as never), "dataplane(node-1).links[1].kind"],
    ["duplicate link", (dp) => dp.links.push({ kind: "bridge", name: "cni0" }), "dataplane(node-1).links[1].name"],
    ["pod address not a CIDR", (dp) => (dp.pods[0]!.addresses = ["10.244.1.2"]), "dataplane(node-1).pods[0].addresses[0]"],
    ["bad fdb dst", (dp) => dp.fdb.push({ dev: "x", mac: "02:00:00:00:00:01", dst: "nope", permanent: true }), "dataplane(node-1).fdb[0].dst"],
    ["snat without toAddress", (dp) => dp.nat.push({ id: "s", kind: "snat", sources: ["10.0.0.0/8"], exceptDestinations: [] }), "dataplane(node-1).nat[0].toAddress"],
    [
      "filter port range reversed",
      (dp) => dp.filters.push({ pod: "c-1-0/eth0", direction: "ingress", defaultAction: "drop", rules: [{ id: "r", action: "accept", ports: [{ from: 90, to: 80 }] }] }),
      "dataplane(node-1).filters[0].rules[0].ports[0]",
    ],
  ];
  it.each(cases)("%s", (_name, edit, field) => {
    const b = hostGw(2, 1);
    const dp = bridgeNode("node-1", 1, 1);
    edit(dp);
    let err: unknown;
    try {
      b.fabric.setDataplane("node-1", dp);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    // The previous dataplane stays in force.
    expect(b.fabric.dataplane("node-1")).toBe(b.dps[0]);
    expect(b.fabric.send(pod("c-1-0/eth0"), pod("c-2-0/eth0")).delivered).toBe(true);
  });

  it("rejects node addresses outside the topology or already taken", () => {
    const f = new SimFabric();
    f.addNode({ name: "node-1" });
    expect(() => f.setNode({ name: "x", underlay: [{ iface: "eth0", address: "10.9.9.9", prefixLength: 24 }] })).toThrow(/node\(x\)\.underlay\[0\]\.address: must lie inside a subnet/);
    expect(() => f.setNode({ name: "x", underlay: [{ iface: "eth0", address: "198.51.100.10", prefixLength: 24 }] })).toThrow(/already used by node node-1/);
    expect(() => f.setNode({ name: "x", underlay: [{ iface: "eth0", address: "198.51.100.1", prefixLength: 24 }] })).toThrow(/router or external/);
    expect(() => f.setDataplane("nope", emptyDataplane("nope"))).toThrow(ConfigError);
    expect(f.nodeNames()).toEqual(["node-1"]);
  });

  it("rejects bad endpoints, protocols and ports", () => {
    const b = hostGw(2, 1);
    expect(() => b.fabric.send({ kind: "node", name: "zz" }, pod("c-1-0/eth0"))).toThrow(/from\.name/);
    expect(() => b.fabric.send(pod("c-1-0/eth0"), { kind: "external", name: "zz" })).toThrow(/to\.name/);
    expect(() => b.fabric.send(pod("c-1-0/eth0"), pod("c-2-0/eth0"), { protocol: "gre" as never })).toThrow(/protocol/);
    expect(() => b.fabric.send(pod("c-1-0/eth0"), pod("c-2-0/eth0"), { port: 70000 })).toThrow(/port/);
    expect(() => b.fabric.reachability({ from: [{ kind: "node", name: "zz" }] })).toThrow(/from\[0\]\.name/);
  });

  it("a full subnet says so", () => {
    const f = new SimFabric({ subnets: [{ name: "tiny", cidr: "198.51.100.0/28" }] });
    for (let i = 0; i < 5; i++) f.addNode({ name: `n${i}` });
    expect(() => f.addNode({ name: "n5" })).toThrow(/no free address left/);
  });
});
