/**
 * Section B's lifecycle helpers: what names an address, whether an ADD result matches the
 * dataplane, and what a DEL left behind in it, on hand-made cases. That every lifecycle check
 * passes on every built-in backend config, that each release leg catches the leak it is for, and
 * that each lifecycle broken variant is red on its targets is proven in
 * @cnikit/conformance-selftest (it needs the flannel and calico packages, which depend on this one).
 */
import { describe, expect, it } from "vitest";
import { emptyDataplane } from "@cnikit/core";
import type { AttachResult, NodeDataplane, PodAttachment } from "@cnikit/core";
import { dataplaneDifferences, entryChanges, mentionsAddress, resultVsDataplaneProblems } from "../src/checks/lifecycle.ts";

describe("mentionsAddress: an entry names a pod address, not a longer address or a prefix's network", () => {
  const cases: { text: string; address: string; expected: boolean }[] = [
    { text: '{"address":"10.244.1.5"}', address: "10.244.1.5", expected: true },
    { text: "10.244.1.5/24", address: "10.244.1.5", expected: true },
    { text: "10.244.1.5/32", address: "10.244.1.5", expected: true },
    { text: '{"address":"10.244.1.50"}', address: "10.244.1.5", expected: false },
    { text: "110.244.1.5", address: "10.244.1.5", expected: false },
    { text: "10.244.1.5.7", address: "10.244.1.5", expected: false },
    { text: '{"cidr":"10.244.1.0/26"}', address: "10.244.1.0", expected: false },
    { text: '{"cidr":"10.244.1.0/26","pod":"10.244.1.0"}', address: "10.244.1.0", expected: true },
    { text: "/calico/ipam/v2/assignment/ipv4/block/10-244-1-0-26", address: "10.244.1.0", expected: false },
    { text: "fd00::5", address: "fd00::5", expected: true },
    { text: "fd00::5a", address: "fd00::5", expected: false },
    { text: "fd00::/64", address: "fd00::", expected: false },
  ];
  for (const c of cases) {
    it(`${JSON.stringify(c.text)} ${c.expected ? "names" : "does not name"} ${c.address}`, () => {
      expect(mentionsAddress(c.text, c.address)).toBe(c.expected);
    });
  }
});

describe("resultVsDataplaneProblems: an ADD result is held to the node's dataplane entry", () => {
  const pod: PodAttachment = { containerId: "c1", ifName: "eth0", netns: "/var/run/netns/c1" };
  // A routed pod (Calico shape): /32, gateway 169.254.1.1 reachable through a scope-link route.
  const dp: NodeDataplane = {
    ...emptyDataplane("n1"),
    pods: [
      {
        key: "c1/eth0",
        containerId: "c1",
        ifName: "eth0",
        netns: "/var/run/netns/c1",
        hostIf: "cali1234",
        mac: "02:00:00:00:00:01",
        mtu: 1480,
        addresses: ["10.244.1.5/32"],
        gateways: ["169.254.1.1"],
        routes: [
          { dst: "169.254.1.1/32", scopeLink: true },
          { dst: "0.0.0.0/0", via: "169.254.1.1" },
        ],
      },
    ],
  };
  const good: AttachResult = {
    interfaces: [{ name: "cali1234" }, { name: "eth0", mac: "02:00:00:00:00:01", mtu: 1480, sandbox: "/var/run/netns/c1" }],
    ips: [{ address: "10.244.1.5/32", gateway: "169.254.1.1", interface: 1 }],
    routes: [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }],
  };
  const cases: { label: string; result: AttachResult; problem: RegExp | undefined }[] = [
    { label: "the agreeing result", result: good, problem: undefined },
    { label: "a route without gw (the family's gateway)", result: { ...good, routes: [{ dst: "0.0.0.0/0" }] }, problem: undefined },
    { label: "another prefix length", result: { ...good, ips: [{ ...good.ips[0]!, address: "10.244.1.5/24" }] }, problem: /result ips are 10\.244\.1\.5\/24/ },
    { label: "another gateway", result: { ...good, ips: [{ ...good.ips[0]!, gateway: "10.244.1.1" }] }, problem: /gateway is 10\.244\.1\.1, the dataplane's gateway for the pod is 169\.254\.1\.1/ },
    { label: "a route the pod does not have", result: { ...good, routes: [...good.routes, { dst: "10.96.0.0/12", gw: "169.254.1.1" }] }, problem: /result route 10\.96\.0\.0\/12/ },
    { label: "the default route missing", result: { ...good, routes: [] }, problem: /the pod's route 0\.0\.0\.0\/0 via 169\.254\.1\.1 is missing/ },
    { label: "another MTU", result: { ...good, interfaces: [good.interfaces[0]!, { ...good.interfaces[1]!, mtu: 1500 }] }, problem: /MTU of eth0 is 1500/ },
    { label: "another MAC", result: { ...good, interfaces: [good.interfaces[0]!, { ...good.interfaces[1]!, mac: "02:00:00:00:00:02" }] }, problem: /MAC of eth0/ },
    { label: "no host side", result: { ...good, interfaces: [good.interfaces[1]!], ips: [{ ...good.ips[0]!, interface: 0 }] }, problem: /does not list the host side cali1234/ },
    { label: "a host side the node does not have", result: { ...good, interfaces: [...good.interfaces, { name: "cni0" }] }, problem: /cni0 is no link/ },
  ];
  for (const c of cases) {
    it(`${c.label}: ${c.problem ? "a problem" : "no problem"}`, () => {
      const problems = resultVsDataplaneProblems(c.result, pod, dp, "n1");
      if (c.problem === undefined) expect(problems).toEqual([]);
      else expect(problems.join("; ")).toMatch(c.problem);
    });
  }
  it("a gateway off the pod's prefix with no on-link route is a problem", () => {
    const onlyDefault: NodeDataplane = { ...dp, pods: [{ ...dp.pods[0]!, routes: [{ dst: "0.0.0.0/0", via: "169.254.1.1" }] }] };
    expect(resultVsDataplaneProblems(good, pod, onlyDefault, "n1").join("; ")).toMatch(/neither on the pod's prefix 10\.244\.1\.5\/32 nor covered by an on-link route/);
  });
});

describe("dataplaneDifferences: what a DEL left behind in, or took from, the node's dataplane", () => {
  const resident: NodeDataplane["pods"][number] = {
    key: "r/eth0",
    containerId: "r",
    ifName: "eth0",
    hostIf: "cali0001",
    mac: "02:00:00:00:00:01",
    mtu: 1480,
    addresses: ["10.244.1.4/32"],
    routes: [{ dst: "0.0.0.0/0", via: "169.254.1.1" }],
  };
  const before: NodeDataplane = {
    ...emptyDataplane("b-1"),
    links: [{ name: "tunl0", kind: "ipip", mtu: 1480 }],
    routes: [
      { dst: "10.244.1.4/32", dev: "cali0001" },
      { dst: "10.244.2.0/26", via: "198.51.100.12", dev: "tunl0", onlink: true },
    ],
    neighbours: [{ dev: "tunl0", ip: "198.51.100.12", mac: "02:00:00:00:00:12", permanent: true }],
    sysctls: { ipv4Forwarding: true, proxyArp: ["cali0001"] },
    pods: [resident],
  };
  const cases: { label: string; after: NodeDataplane; leftBehind: string[]; gone: string[] }[] = [
    {
      label: "the same entries in another order, fields in another order",
      after: { ...before, routes: [{ onlink: true, dev: "tunl0", via: "198.51.100.12", dst: "10.244.2.0/26" }, before.routes[0]!], sysctls: { proxyArp: ["cali0001"], ipv4Forwarding: true } },
      leftBehind: [],
      gone: [],
    },
    {
      label: "the deleted pod's host route left",
      after: { ...before, routes: [...before.routes, { dst: "10.244.1.7/32", dev: "cali0007" }] },
      leftBehind: ["route 10.244.1.7/32 dev cali0007"],
      gone: [],
    },
    { label: "a second copy of a route", after: { ...before, routes: [...before.routes, before.routes[1]!] }, leftBehind: ["route 10.244.2.0/26 via 198.51.100.12 dev tunl0"], gone: [] },
    {
      label: "proxy ARP left on the deleted pod's interface",
      after: { ...before, sysctls: { ...before.sysctls, proxyArp: ["cali0001", "cali0007"] } },
      leftBehind: ["proxy ARP on cali0007"],
      gone: [],
    },
    {
      label: "the deleted pod's interface and filter left",
      after: {
        ...before,
        pods: [...before.pods, { ...resident, key: "x/eth0", containerId: "x", hostIf: "cali0007", addresses: ["10.244.1.7/32"] }],
        filters: [{ pod: "x/eth0", direction: "ingress", rules: [], defaultAction: "drop" }],
      },
      leftBehind: ["ingress filter of x/eth0", "pod interface x/eth0 (host side cali0007, 10.244.1.7/32)"],
      gone: [],
    },
    {
      label: "a neighbour rewritten and a sysctl switched off",
      after: { ...before, neighbours: [{ ...before.neighbours[0]!, mac: "02:00:00:00:00:99" }], sysctls: { proxyArp: ["cali0001"], ipv4Forwarding: false } },
      leftBehind: ["neighbour 198.51.100.12 dev tunl0 lladdr 02:00:00:00:00:99", "sysctl ipv4Forwarding = false"],
      gone: ["neighbour 198.51.100.12 dev tunl0 lladdr 02:00:00:00:00:12", "sysctl ipv4Forwarding = true"],
    },
    { label: "the resident pod's route taken away", after: { ...before, routes: [before.routes[1]!] }, leftBehind: [], gone: ["route 10.244.1.4/32 dev cali0001"] },
  ];
  it("changes an agent restart made in between are excused, a route left behind by the DEL is not", () => {
    const restarted: NodeDataplane = { ...before, links: [{ name: "tunl0", kind: "ipip", mtu: 1480, mac: "02:00:00:00:00:77" }] };
    const afterDel: NodeDataplane = { ...restarted, routes: [...before.routes, { dst: "10.244.1.7/32", dev: "cali0007" }] };
    expect(dataplaneDifferences(before, afterDel)).toEqual({ leftBehind: ["link tunl0 (ipip)", "route 10.244.1.7/32 dev cali0007"], gone: ["link tunl0 (ipip)"] });
    expect(dataplaneDifferences(before, afterDel, entryChanges(before, restarted))).toEqual({ leftBehind: ["route 10.244.1.7/32 dev cali0007"], gone: [] });
  });
  for (const c of cases) {
    it(`${c.label}: ${c.leftBehind.length + c.gone.length === 0 ? "no difference" : "named"}`, () => {
      const d = dataplaneDifferences(before, c.after);
      expect([...d.leftBehind].sort()).toEqual([...c.leftBehind].sort());
      expect([...d.gone].sort()).toEqual([...c.gone].sort());
    });
  }
});
