import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ConfigError, Prefix } from "@cnikit/core";
import { SimFabric, defaultTopology, singleSubnetTopology, type SimTopology } from "@cnikit/sim";
import { PACKAGE_NAME, planLab, podNamespace } from "../src/index.ts";
import { readFileSync } from "node:fs";

describe("planLab", () => {
  it("exports its own package name", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { name: string };
    expect(PACKAGE_NAME).toBe(pkg.name);
  });

  it("places three nodes across both subnets behind the router, as the simulator does", () => {
    const plan = planLab({ name: "t1", nodes: 3, topology: defaultTopology() });
    expect(plan.nodes.map((n) => [n.name, n.subnet, n.address, n.gateway, n.ns])).toEqual([
      ["node-1", "a", "198.51.100.10", "198.51.100.1", "ckl-t1-node-1"],
      ["node-2", "b", "203.0.113.10", "203.0.113.1", "ckl-t1-node-2"],
      ["node-3", "a", "198.51.100.11", "198.51.100.1", "ckl-t1-node-3"],
    ]);
    expect(plan.routers).toHaveLength(1);
    expect(plan.routers[0]!.interfaces.map((i) => `${i.ifName}=${i.address}/${i.prefixLength}`)).toEqual(["s0=198.51.100.1/24", "s1=203.0.113.1/24", "s2=192.0.2.1/24"]);
    expect(plan.externals.map((e) => [e.name, e.address, e.gateway])).toEqual([["internet", "192.0.2.200", "192.0.2.1"]]);
    expect(plan.infra.address).toBe("198.51.100.254");
    expect(plan.etcd.clientUrl).toBe("http://198.51.100.254:2379");
    expect(plan.stateDir).toBe("/run/cnikit-lab/t1");
    expect(plan.nodes[0]!.socketPath).toBe("/run/cnikit-lab/t1/node-1/cnikitd.sock");
    expect(podNamespace("t1", "pod-1-1")).toBe("ckl-t1-pod-1-1");
  });

  it("puts every node on one subnet with the single-subnet topology", () => {
    const plan = planLab({ name: "t2", nodes: 3, topology: singleSubnetTopology() });
    expect(plan.nodes.map((n) => n.address)).toEqual(["198.51.100.10", "198.51.100.11", "198.51.100.12"]);
  });

  it("routes between routers over the routers in between", () => {
    const topology: SimTopology = {
      subnets: [
        { name: "a", cidr: "198.51.100.0/24", gateway: "198.51.100.1" },
        { name: "m", cidr: "192.0.2.0/28" },
        { name: "b", cidr: "203.0.113.0/24", gateway: "203.0.113.1" },
      ],
      routers: [
        {
          name: "r1",
          interfaces: [
            { subnet: "a", address: "198.51.100.1" },
            { subnet: "m", address: "192.0.2.1" },
          ],
        },
        {
          name: "r2",
          interfaces: [
            { subnet: "m", address: "192.0.2.2" },
            { subnet: "b", address: "203.0.113.1" },
          ],
        },
      ],
    };
    const plan = planLab({ name: "t3", nodes: 2, topology });
    expect(plan.routers[0]!.routes).toEqual([{ dst: "203.0.113.0/24", via: "192.0.2.2" }]);
    expect(plan.routers[1]!.routes).toEqual([{ dst: "198.51.100.0/24", via: "192.0.2.1" }]);
  });

  const invalid: [string, Parameters<typeof planLab>[0], string][] = [
    ["name with capitals", { name: "Lab", nodes: 1, topology: defaultTopology() }, "name"],
    ["name too long", { name: "a".repeat(21), nodes: 1, topology: defaultTopology() }, "name"],
    ["zero nodes", { name: "x", nodes: 0, topology: defaultTopology() }, "nodes"],
    ["fractional nodes", { name: "x", nodes: 1.5, topology: defaultTopology() }, "nodes"],
    ["IPv6 subnet", { name: "x", nodes: 1, topology: { subnets: [{ name: "a", cidr: "fd00::/64" }] } }, "topology.subnets[0].cidr"],
    ["subnet too small", { name: "x", nodes: 1, topology: { subnets: [{ name: "a", cidr: "198.51.100.0/30" }] } }, "topology.subnets[0].cidr"],
    ["gateway outside", { name: "x", nodes: 1, topology: { subnets: [{ name: "a", cidr: "198.51.100.0/24", gateway: "203.0.113.1" }] } }, "topology.subnets[0].gateway"],
    [
      "router on an unknown subnet",
      { name: "x", nodes: 1, topology: { subnets: [{ name: "a", cidr: "198.51.100.0/24" }], routers: [{ name: "r", interfaces: [{ subnet: "z", address: "198.51.100.1" }] }] } },
      "topology.routers[0].interfaces[0].subnet",
    ],
    ["subnet full", { name: "x", nodes: 10, topology: { subnets: [{ name: "a", cidr: "198.51.100.0/28" }] } }, "nodes"],
  ];
  it.each(invalid)("refuses %s with a ConfigError naming the field", (_label, options, field) => {
    let caught: unknown;
    try {
      planLab(options);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
  });

  it("gives every host a unique address inside its subnet, short interface names, and the simulator's placement", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 120 }), fc.boolean(), (nodes, single) => {
        const topology = single ? singleSubnetTopology() : defaultTopology();
        const plan = planLab({ name: "p", nodes, topology });
        const hosts = [plan.infra, ...plan.externals, ...plan.nodes];
        const seen = new Set<string>();
        for (const r of plan.routers) for (const i of r.interfaces) seen.add(i.address);
        for (const h of hosts) {
          expect(seen.has(h.address)).toBe(false);
          seen.add(h.address);
          const sub = plan.subnets.find((s) => s.name === h.subnet)!;
          expect(Prefix.parse(sub.cidr).contains(h.address)).toBe(true);
          expect(h.fabricIf.length).toBeLessThanOrEqual(15);
          expect(h.ns.startsWith("ckl-p-")).toBe(true);
        }
        expect(new Set(hosts.map((h) => h.ns)).size).toBe(hosts.length);
        const fabric = new SimFabric(topology);
        for (const n of plan.nodes) {
          const info = fabric.addNode({ name: n.name });
          expect(info.underlay[0]!.address).toBe(n.address);
          expect(info.underlay[0]!.gateway).toBe(n.gateway);
        }
      }),
      { numRuns: 40 },
    );
  });
});
