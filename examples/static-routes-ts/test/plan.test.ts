// The pure plan over hand-written plan inputs: no store, no clock, no simulator.
import { describe, expect, it } from "vitest";
import type { NodeInfo } from "@cnikit/core";
import { parseConfig } from "../src/config.ts";
import { BRIDGE, plan } from "../src/plan.ts";
import type { Peer, Pod } from "../src/plan.ts";

const config = parseConfig({ network: "10.244.0.0/16" });
const node: NodeInfo = { name: "a", underlay: [{ iface: "eth0", address: "198.51.100.10", prefixLength: 24 }] };
const pod: Pod = { containerId: "c1", ifName: "eth0", netns: "/var/run/netns/c1", address: "10.244.1.2" };
const peers: Peer[] = [
  { node: "b", subnet: "10.244.2.0/24", address: "198.51.100.11" },
  { node: "c", subnet: "10.244.3.0/24", address: "203.0.113.12" },
  { node: "a", subnet: "10.244.1.0/24", address: "198.51.100.10" },
];

describe("plan", () => {
  it("is empty until the node holds a subnet", () => {
    expect(plan({ config, node, pods: [pod], peers, subnet: undefined }).links).toEqual([]);
  });

  it("routes each peer on the node's L2 subnet via its address, never itself, never one across a router", () => {
    const dp = plan({ config, node, pods: [], peers, subnet: "10.244.1.0/24" });
    expect(dp.routes).toEqual([{ dst: "10.244.2.0/24", via: "198.51.100.11", dev: "eth0" }]);
    expect(dp.addresses).toEqual([{ dev: BRIDGE, cidr: "10.244.1.1/24" }]);
  });

  it("puts pods on the bridge with the gateway as default route, and is the same for any order of peers", () => {
    const dp = plan({ config, node, pods: [pod], peers, subnet: "10.244.1.0/24" });
    expect(dp.pods).toMatchObject([{ key: "c1/eth0", bridge: BRIDGE, addresses: ["10.244.1.2/24"], routes: [{ dst: "0.0.0.0/0", via: "10.244.1.1" }], mtu: 1500 }]);
    expect(plan({ config, node, pods: [pod], peers: [...peers].reverse(), subnet: "10.244.1.0/24" })).toEqual(dp);
  });

  it("masquerades pod traffic leaving the pod network, never pod-to-pod traffic", () => {
    expect(plan({ config, node, pods: [], peers: [], subnet: "10.244.1.0/24" }).nat).toEqual([
      { id: "static-routes/masquerade", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: ["10.244.0.0/16"] },
    ]);
  });

  it("asks the policy for the filters of its pods, with the node's own addresses", () => {
    const asked: unknown[] = [];
    const policy = { filtersFor: (input: unknown) => (asked.push(input), []) };
    plan({ config, node, pods: [pod], peers: [], policy, subnet: "10.244.1.0/24" });
    expect(asked).toEqual([{ node: "a", pods: [pod], nodeAddresses: ["198.51.100.10", "10.244.1.1"] }]);
  });
});
