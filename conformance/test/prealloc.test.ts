/**
 * The preallocation judges (src/checks/prealloc.ts) over hand-written fabric states: the
 * simulator's own fabric port refuses several of these states (a broadcast or another node's
 * address as a secondary address), so each rule is shown here to turn red on exactly the state it
 * is about, naming the address, the node and the subnet — for fabric ports that do not refuse them
 * (a cloud, the lab's router, the store-backed port).
 */
import type { NodeInfo } from "@cnikit/core";
import { defaultTopology } from "@cnikit/sim";
import type { SimPod } from "@cnikit/sim";
import { describe, expect, it } from "vitest";
import { fabricDiff, reservationProblems, smallSubnetTopology, subnetUsage } from "../src/checks/prealloc.ts";
import type { FabricSnapshot } from "../src/checks/prealloc.ts";
import type { Harness } from "../src/harness.ts";

const node = (name: string, address: string, subnet = "198.51.100"): NodeInfo => ({
  name,
  underlay: [{ iface: "eth0", address: `${subnet}.${address}`, prefixLength: 24, gateway: `${subnet}.1` }],
});
const MEMBERS = [node("n1", "10"), node("n2", "11"), node("n3", "10", "203.0.113")];

/** Just enough of a Harness for the judges: members, the topology, live nodes and their pods. */
function view(pods: Pick<SimPod, "node" | "addresses" | "name">[] = [], members: NodeInfo[] = MEMBERS): Harness {
  const simPods = pods.map((p) => ({ ...p, key: `${p.node}/${p.name}`, namespace: "default" }));
  const cluster = {
    members: { list: () => members },
    topology: defaultTopology(),
    nodes: () => members.map((m) => ({ name: m.name, alive: true })),
    pods: () => simPods,
  };
  return { cluster } as unknown as Harness;
}

const GOOD: FabricSnapshot = {
  addresses: [
    { node: "n1", address: "198.51.100.2" },
    { node: "n1", address: "198.51.100.3" },
    { node: "n2", address: "198.51.100.4" },
    { node: "n3", address: "203.0.113.2" },
  ],
  routes: [
    { dst: "10.244.0.0/24", node: "n1" },
    { dst: "10.244.1.0/24", node: "n2" },
  ],
};

describe("reservationProblems", () => {
  it("finds nothing in a sound fabric, with pods inside their node's share (secondary or routed)", () => {
    const pods = [
      { node: "n1", name: "a", addresses: ["198.51.100.2"] },
      { node: "n2", name: "b", addresses: ["10.244.1.7"] },
    ];
    expect(reservationProblems(view(pods), GOOD)).toEqual([]);
  });

  const cases: { label: string; snap: FabricSnapshot; pods?: Pick<SimPod, "node" | "addresses" | "name">[]; expected: RegExp }[] = [
    {
      label: "the broadcast address",
      snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "n1", address: "198.51.100.255" }] },
      expected: /198\.51\.100\.255 of n1: it is the broadcast address of 198\.51\.100\.0\/24/,
    },
    { label: "the network address", snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "n2", address: "198.51.100.0" }] }, expected: /198\.51\.100\.0 of n2: it is the network address/ },
    {
      label: "the gateway (router r1)",
      snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "n2", address: "198.51.100.1" }] },
      expected: /198\.51\.100\.1 of n2: it is the gateway of 198\.51\.100\.0\/24/,
    },
    {
      label: "another node's primary",
      snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "n1", address: "198.51.100.11" }] },
      expected: /198\.51\.100\.11 of n1: it is the primary address of node n2/,
    },
    { label: "a node's own primary", snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "n1", address: "198.51.100.10" }] }, expected: /primary address of node n1/ },
    { label: "held by two nodes", snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "n2", address: "198.51.100.2" }] }, expected: /198\.51\.100\.2 is held by 2 nodes: n1, n2/ },
    {
      label: "outside the node's subnet",
      snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "n1", address: "203.0.113.9" }] },
      expected: /203\.0\.113\.9 of n1: outside every underlay subnet of n1/,
    },
    { label: "held by a node that is not a member", snap: { ...GOOD, addresses: [...GOOD.addresses, { node: "gone", address: "198.51.100.9" }] }, expected: /gone is not a member of the cluster/ },
    {
      label: "overlapping routes of two nodes",
      snap: { ...GOOD, routes: [...GOOD.routes, { dst: "10.244.0.16/28", node: "n2" }] },
      expected: /10\.244\.0\.0\/24 -> n1 overlaps 10\.244\.0\.16\/28 -> n2/,
    },
    {
      label: "a /32 route of the broadcast",
      snap: { ...GOOD, routes: [...GOOD.routes, { dst: "198.51.100.255/32", node: "n1" }] },
      expected: /route 198\.51\.100\.255\/32 -> n1 covers 198\.51\.100\.255, the broadcast address/,
    },
    {
      label: "a route over another node's secondary",
      snap: { ...GOOD, routes: [...GOOD.routes, { dst: "198.51.100.4/32", node: "n1" }] },
      expected: /covers 198\.51\.100\.4, a secondary address of n2/,
    },
    {
      label: "a route to a node that is not a member",
      snap: { ...GOOD, routes: [...GOOD.routes, { dst: "10.244.9.0/24", node: "gone" }] },
      expected: /10\.244\.9\.0\/24 -> gone: gone is not a member/,
    },
    {
      label: "a subnet over capacity (the whole subnet routed to a node)",
      snap: { ...GOOD, routes: [{ dst: "198.51.100.0/24", node: "n1" }] },
      expected: /subnet a \(198\.51\.100\.0\/24\) holds 261 addresses \(2 primary, 3 secondary, 256 routed\) but only 253 are usable/,
    },
    {
      label: "a pod address outside its node's share",
      snap: GOOD,
      pods: [{ node: "n1", name: "a", addresses: ["198.51.100.4"] }],
      expected: /pod default\/a \(198\.51\.100\.4\) on node n1: 198\.51\.100\.4 is not among what the fabric gives n1 \(198\.51\.100\.2, 198\.51\.100\.3, 10\.244\.0\.0\/24\)/,
    },
  ];
  for (const c of cases) {
    it(`turns red on ${c.label}`, () => {
      const problems = reservationProblems(view(c.pods), c.snap);
      expect(problems.join("\n")).toMatch(c.expected);
    });
  }

  it("does not hold pods to the fabric when the fabric is empty (a backend that does not use it)", () => {
    expect(reservationProblems(view([{ node: "n1", name: "a", addresses: ["10.9.0.5"] }]), { addresses: [], routes: [] })).toEqual([]);
  });
});

describe("subnetUsage", () => {
  it("counts primaries, secondaries and routed addresses per IPv4 subnet against its usable size", () => {
    const a = subnetUsage(view(), { ...GOOD, routes: [{ dst: "198.51.100.240/28", node: "n2" }] }).find((u) => u.name === "a")!;
    expect(a).toEqual({ name: "a", cidr: "198.51.100.0/24", usable: 253, primary: 2, secondary: 3, routed: 16 });
  });
});

describe("smallSubnetTopology", () => {
  it("cuts the first node subnet down around its gateway and keeps the rest", () => {
    const small = smallSubnetTopology(defaultTopology(), 26)!;
    expect(small).toMatchObject({ subnet: "a", cidr: "198.51.100.0/26" });
    expect(small.topology.subnets.map((s) => s.cidr)).toEqual(["198.51.100.0/26", "203.0.113.0/24", "192.0.2.0/24"]);
    expect(smallSubnetTopology(defaultTopology(), 25)!.cidr).toBe("198.51.100.0/25");
  });

  it("gives up when a router on that subnet would fall outside the small one", () => {
    const t = defaultTopology();
    t.routers!.push({ name: "r2", interfaces: [{ subnet: "a", address: "198.51.100.200" }] });
    expect(smallSubnetTopology(t, 26)).toBeUndefined();
  });
});

describe("fabricDiff", () => {
  it("names every added and removed entry", () => {
    const after: FabricSnapshot = { addresses: [...GOOD.addresses.slice(1), { node: "r-9", address: "198.51.100.40" }], routes: GOOD.routes };
    expect(fabricDiff(GOOD, after)).toEqual(["+ secondary 198.51.100.40 of r-9", "- secondary 198.51.100.2 of n1"]);
    expect(fabricDiff(GOOD, GOOD)).toEqual([]);
  });
});
