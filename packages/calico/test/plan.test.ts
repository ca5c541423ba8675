// The pure plan over the kit's plan input: routes to remote blocks by encapsulation, VXLAN end
// points from the peers' node records, and the NetworkPolicy filters computed from the policy
// snapshot in the input (the plan owns them; the agent hands over no compiled filters).
import { describe, expect, it } from "vitest";
import type { NodeInfo } from "@cnikit/core";
import { emptyPolicySnapshot, parsePolicyObject, planPolicy } from "@cnikit/netpol";
import type { PolicySnapshot } from "@cnikit/netpol";
import { endpointOf } from "../src/endpoints.ts";
import { ipPool } from "../src/fixtures.ts";
import { parseCalicoConfig } from "../src/config.ts";
import { VXLAN_DEVICE, hostIfName, planDataplane } from "../src/plan.ts";
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
