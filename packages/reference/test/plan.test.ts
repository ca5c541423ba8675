import { describe, expect, it } from "vitest";
import { canonicalDataplane } from "@cnikit/core";
import { parseReferenceConfig } from "../src/config.ts";
import { BRIDGE, MASQ_RULE_ID, hostIfName, macFor, planDataplane, planWithDiagnostics } from "../src/plan.ts";
import type { PlanInput, PodRecord } from "../src/plan.ts";
import type { FilterPolicy } from "@cnikit/core";

const underlay = { iface: "eth0", address: "198.51.100.10", prefixLength: 24 };
const base: PlanInput = {
  config: parseReferenceConfig({}),
  node: { name: "n1", underlay: [underlay] },
  subnet: "10.250.1.0/24",
  peers: [
    { node: "n1", subnet: "10.250.1.0/24", address: "198.51.100.10" },
    { node: "n2", subnet: "10.250.2.0/24", address: "198.51.100.11" },
    { node: "n3", subnet: "10.250.3.0/24", address: "198.51.100.12" },
  ],
  pods: [{ containerId: "c1", ifName: "eth0", address: "10.250.1.2", netns: "/var/run/netns/c1", namespace: "default", podName: "a" }],
};

function withoutSubnet(input: PlanInput): PlanInput {
  const { subnet: _claimed, ...rest } = input;
  return rest;
}

describe("planDataplane", () => {
  const cases: { label: string; input: PlanInput; expect: (dp: ReturnType<typeof planDataplane>) => void }[] = [
    {
      label: "routes every other node's subnet via its underlay address, never its own",
      input: base,
      expect: (dp) => {
        expect(dp.routes.map((r) => [r.dst, r.via, r.dev])).toEqual([
          ["10.250.2.0/24", "198.51.100.11", "eth0"],
          ["10.250.3.0/24", "198.51.100.12", "eth0"],
        ]);
      },
    },
    {
      label: "puts the gateway on the bridge and the pod on the bridge",
      input: base,
      expect: (dp) => {
        expect(dp.links).toEqual([{ kind: "bridge", name: BRIDGE, mtu: 1500, mac: macFor("10.250.1.1") }]);
        expect(dp.addresses).toEqual([{ dev: BRIDGE, cidr: "10.250.1.1/24" }]);
        expect(dp.pods).toHaveLength(1);
        const pod = dp.pods[0]!;
        expect(pod).toMatchObject({
          key: "c1/eth0",
          hostIf: hostIfName({ containerId: "c1", ifName: "eth0" }),
          bridge: BRIDGE,
          addresses: ["10.250.1.2/24"],
          gateways: ["10.250.1.1"],
          routes: [{ dst: "0.0.0.0/0", via: "10.250.1.1" }],
          mtu: 1500,
          namespace: "default",
          podName: "a",
        });
        expect(pod.hostIf.length).toBeLessThanOrEqual(15);
      },
    },
    {
      label: "masquerades pod traffic leaving the network, never pod-to-pod",
      input: base,
      expect: (dp) => {
        expect(dp.nat).toEqual([{ id: MASQ_RULE_ID, kind: "masquerade", sources: ["10.250.0.0/16"], exceptDestinations: ["10.250.0.0/16"] }]);
        expect(dp.sysctls.ipv4Forwarding).toBe(true);
      },
    },
    {
      label: "has no NAT when natOutgoing is false",
      input: { ...base, config: parseReferenceConfig({ natOutgoing: false }) },
      expect: (dp) => expect(dp.nat).toEqual([]),
    },
    {
      label: "is empty before the subnet is claimed",
      input: withoutSubnet(base),
      expect: (dp) => {
        expect(dp.links).toEqual([]);
        expect(dp.routes).toEqual([]);
        expect(dp.pods).toEqual([]);
      },
    },
    {
      label: "gives no route to a node outside the L2 subnet",
      input: { ...base, peers: [{ node: "far", subnet: "10.250.9.0/24", address: "203.0.113.5" }] },
      expect: (dp) => expect(dp.routes).toEqual([]),
    },
    {
      label: "uses the configured MTU on the bridge and the pods",
      input: { ...base, config: parseReferenceConfig({ mtu: 1400 }) },
      expect: (dp) => {
        expect(dp.links[0]!.mtu).toBe(1400);
        expect(dp.pods[0]!.mtu).toBe(1400);
      },
    },
  ];
  for (const c of cases) it(c.label, () => c.expect(planDataplane(c.input)));

  it("does not depend on the order of peers and pods", () => {
    const more: PlanInput = {
      ...base,
      pods: [...base.pods, { containerId: "c2", ifName: "eth0", address: "10.250.1.3" }],
    };
    const reversed: PlanInput = { ...more, peers: [...more.peers].reverse(), pods: [...more.pods].reverse() };
    expect(planDataplane(reversed)).toEqual(planDataplane(more));
    expect(planDataplane(more)).toEqual(canonicalDataplane(planDataplane(more)));
  });

  it("compiles the local pods' filters itself from the input's policy (the node's underlay and gateway always allowed)", () => {
    const calls: { node: string; pods: readonly PodRecord[]; nodeAddresses: readonly string[] }[] = [];
    const filter: FilterPolicy = { pod: "c1/eth0", direction: "ingress", rules: [], defaultAction: "drop" };
    const dp = planDataplane({ ...base, policy: { filtersFor: (input) => (calls.push(input), [filter]) } });
    expect(calls).toEqual([{ node: "n1", pods: base.pods, nodeAddresses: ["198.51.100.10", "10.250.1.1"] }]);
    expect(dp.filters).toHaveLength(1);
    expect(planDataplane(base).filters).toEqual([]);
    expect(planDataplane(withoutSubnet({ ...base, policy: { filtersFor: () => [filter] } })).filters).toEqual([]);
  });

  it("reports unroutable peers", () => {
    const { unroutablePeers } = planWithDiagnostics({ ...base, peers: [{ node: "far", subnet: "10.250.9.0/24", address: "203.0.113.5" }] });
    expect(unroutablePeers.map((p) => p.node)).toEqual(["far"]);
  });
});

describe("naming helpers", () => {
  it("derives a locally administered MAC from the address", () => {
    expect(macFor("10.250.1.2")).toBe("0a:58:0a:fa:01:02");
  });
  it("gives different host interface names to different attachments", () => {
    expect(hostIfName({ containerId: "a", ifName: "eth0" })).not.toBe(hostIfName({ containerId: "b", ifName: "eth0" }));
    expect(hostIfName({ containerId: "a", ifName: "eth0" })).toMatch(/^veth[0-9a-f]{8}$/);
  });
});
