// The pure plan over the kit's plan input: routes to remote blocks by encapsulation, VXLAN end
// points from the peers' node records, and the NetworkPolicy filters computed from the policy
// snapshot in the input (the plan owns them; the agent hands over no compiled filters).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { NodeInfo } from "@cnikit/core";
import { emptyPolicySnapshot, parsePolicyObject, planPolicy } from "@cnikit/netpol";
import type { PolicySnapshot } from "@cnikit/netpol";
import { endpointOf } from "../src/endpoints.ts";
import { ipPool } from "../src/fixtures.ts";
import { parseCalicoConfig } from "../src/config.ts";
import { LearnedTable, VXLAN_DEVICE, hostIfName, planDataplane, planIncremental } from "../src/plan.ts";
import type { NodeRecord, PlanInput, PodRecord } from "../src/plan.ts";

const node: NodeInfo = { name: "n1", underlay: [{ iface: "eth0", address: "192.168.50.1", prefixLength: 24 }] };
const peer: NodeRecord = { name: "n2", address: "192.168.60.2", prefixLength: 24, labels: {}, vxlanTunnelAddr: "10.245.2.0", vxlanMac: "ee:00:00:00:00:02" };
const web: PodRecord = { containerId: "c1", ifName: "eth0", address: "10.245.1.2", handle: "h1", namespace: "x", podName: "web", labels: { app: "web" } };

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    config: parseCalicoConfig([ipPool("p", { cidr: "10.245.0.0/16", vxlanMode: "CrossSubnet" })]),
    node,
    pods: [web],
    peers: [peer],
    blocks: ["10.245.1.0/26"],
    learned: [{ prefix: "10.245.2.0/26", nextHop: peer.address }],
    vxlanTunnelAddr: "10.245.1.0",
    vxlanMac: "ee:00:00:00:00:01",
    ...over,
  };
}

const denyAll = parsePolicyObject({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "deny", namespace: "x" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } });

function snapshotWith(policies: PolicySnapshot["policies"]): PolicySnapshot {
  return { ...emptyPolicySnapshot("n1"), policies };
}

describe("calico plan over the kit's plan input", () => {
  it("reaches a remote block across subnets through VXLAN, with the end point taken from the peers' node records", () => {
    const dp = planDataplane(input());
    expect(dp.node).toBe("n1");
    expect(dp.routes).toContainEqual({ dst: "10.245.2.0/26", via: "10.245.2.0", dev: VXLAN_DEVICE, onlink: true, origin: "bgp" });
    expect(dp.fdb).toEqual([{ dev: VXLAN_DEVICE, mac: peer.vxlanMac, dst: peer.address, permanent: true }]);
    // Without the peer's record the end point is unknown: no route rather than a wrong one.
    expect(planDataplane(input({ peers: [] })).routes.some((r) => r.dst === "10.245.2.0/26")).toBe(false);
  });

  it("computes the filters of its own pods from the policy snapshot, allowing the node's underlay address", () => {
    const policy = planPolicy<PodRecord>(snapshotWith([denyAll]), (pod) => endpointOf("n1", pod));
    const dp = planDataplane(input({ policy }));
    expect(dp.filters).toHaveLength(1);
    const filter = dp.filters[0]!;
    expect(filter).toMatchObject({ pod: "c1/eth0", direction: "ingress", defaultAction: "drop" });
    expect(filter.rules.flatMap((r) => r.peers ?? []).flatMap((p) => p.cidrs ?? [])).toEqual(["192.168.50.1/32"]);
    expect(hostIfName(web)).toBe(dp.pods[0]!.hostIf);
    // No policy in force, or no policy input: nothing filtered.
    expect(planDataplane(input({ policy: planPolicy<PodRecord>(snapshotWith([]), (pod) => endpointOf("n1", pod)) })).filters).toEqual([]);
    expect(planDataplane(input()).filters).toEqual([]);
  });

  it("plans nothing for a node without an IPv4 underlay", () => {
    const dp = planDataplane(input({ node: { name: "n1", underlay: [{ iface: "eth0", address: "fd00::1", prefixLength: 64 }] } }));
    expect(dp.routes).toEqual([]);
    expect(dp.pods).toEqual([]);
  });
});

describe("calico's incremental plan (LearnedTable)", () => {
  // Node n1 at 192.168.50.1/24 with a gateway; peers n2..n6 on and off its subnet, some with VXLAN end points.
  const gwNode: NodeInfo = { name: "n1", underlay: [{ iface: "eth0", address: "192.168.50.1", prefixLength: 24, gateway: "192.168.50.254" }] };
  const addresses = ["192.168.50.1", "192.168.50.2", "192.168.50.3", "192.168.60.4", "192.168.60.5", "192.168.70.6"];
  const prefixes = ["10.245.1.0/26", "10.245.2.0/26", "10.245.3.0/26", "10.245.4.0/26", "10.245.1.7/32", "10.245.2.9/32", "10.246.0.0/26", "10.99.0.0/24"];
  const pools = {
    vxlan: [ipPool("p", { cidr: "10.245.0.0/16", vxlanMode: "CrossSubnet" }), ipPool("q", { cidr: "10.246.0.0/16", vxlanMode: "Always" })],
    ipip: [ipPool("p", { cidr: "10.245.0.0/16", ipipMode: "CrossSubnet" }), ipPool("q", { cidr: "10.246.0.0/16", ipipMode: "Always" })],
    bgp: [ipPool("p", { cidr: "10.245.0.0/16" })],
  };
  const op = fc.oneof(
    fc.record({ t: fc.constant("set" as const), prefix: fc.constantFrom(...prefixes), hop: fc.nat(addresses.length - 1) }),
    fc.record({ t: fc.constant("delete" as const), prefix: fc.constantFrom(...prefixes) }),
    // Node n<i+1>'s record: at address i or another, with or without its VXLAN end point, or gone.
    fc.record({ t: fc.constant("node" as const), i: fc.integer({ min: 1, max: addresses.length - 1 }), at: fc.nat(addresses.length - 1), vxlan: fc.nat(2), gone: fc.boolean() }),
    fc.record({ t: fc.constant("blocks" as const), blocks: fc.subarray(prefixes.slice(0, 4)) }),
    fc.record({ t: fc.constant("pods" as const), pods: fc.subarray(["10.245.1.7", "10.245.2.9", "10.245.1.3"]) }),
  );

  it("plans exactly what the pure planner plans, after any sequence of route, node record, block and pod changes", () => {
    fc.assert(
      fc.property(fc.constantFrom("vxlan", "ipip", "bgp") as fc.Arbitrary<keyof typeof pools>, fc.array(op, { minLength: 1, maxLength: 40 }), (mode, ops) => {
        const config = parseCalicoConfig(pools[mode]);
        const table = new LearnedTable();
        const learned = new Map<string, string>();
        const records = new Map<string, NodeRecord>();
        let blocks: string[] = ["10.245.1.0/26"];
        let pods: PodRecord[] = [];
        for (const o of ops) {
          if (o.t === "set") {
            learned.set(o.prefix, addresses[o.hop]!);
            table.set({ prefix: o.prefix, nextHop: addresses[o.hop]! });
          } else if (o.t === "delete") {
            learned.delete(o.prefix);
            table.delete(o.prefix);
          } else if (o.t === "node") {
            const name = `n${o.i + 1}`;
            const prev = records.get(name);
            if (prev) table.touch(prev.address);
            if (o.gone) records.delete(name);
            else {
              const rec: NodeRecord = { name, address: addresses[o.at]!, prefixLength: 24, labels: {} };
              if (o.vxlan > 0) Object.assign(rec, { vxlanTunnelAddr: `10.245.${o.i}.${o.vxlan}`, vxlanMac: `ee:00:00:00:0${o.vxlan}:0${o.i}` });
              records.set(name, rec);
              table.touch(rec.address);
            }
          } else if (o.t === "blocks") blocks = o.blocks;
          else pods = o.pods.map((address, k) => ({ containerId: `c${k}`, ifName: "eth0", address, handle: `h${k}` }));
          const base = { config, node: gwNode, pods, blocks, vxlanTunnelAddr: "10.245.1.0", vxlanMac: "ee:00:00:00:00:01" };
          const peers = [...records.values()];
          const pure = planDataplane({ ...base, peers, learned: [...learned].map(([prefix, nextHop]) => ({ prefix, nextHop })) });
          // The agent looks end points up by address, the last record at an address winning (as the pure planner's map does).
          const peerAt = (a: string) => peers.filter((p) => p.address === a).at(-1);
          expect(planIncremental({ ...base, peers: [] }, table, peerAt)).toEqual(pure);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("rebuilds the lists in one go after a burst of routes and shares unchanged lists between plans", () => {
    const config = parseCalicoConfig([ipPool("p", { cidr: "10.0.0.0/8", ipipMode: "Always" })]);
    const table = new LearnedTable();
    for (let i = 0; i < 300; i++) table.set({ prefix: `10.${i >> 8}.${i & 255}.0/26`, nextHop: `192.168.50.${(i % 200) + 2}` });
    const base = { config, node: gwNode, pods: [], peers: [], blocks: [] };
    const peerAt = () => undefined;
    const first = planIncremental(base, table, peerAt);
    expect(first).toEqual(planDataplane({ ...base, learned: table.values() }));
    expect(first.routes).toHaveLength(300);
    table.delete("10.0.5.0/26");
    table.set({ prefix: "10.9.9.0/26", nextHop: "192.168.50.7" });
    const second = planIncremental(base, table, peerAt);
    expect(second).toEqual(planDataplane({ ...base, learned: table.values() }));
    // Entries nobody changed are the same objects as in the previous plan (sameJson compares them at once).
    expect(second.routes[0]).toBe(first.routes[0]);
    const third = planIncremental(base, table, peerAt);
    expect(third.routes.every((r, i) => r === second.routes[i])).toBe(true);
  });
});
