import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ClosedError, ConfigError, emptyDataplane, type NodeDataplane } from "@cnikit/core";
import {
  LinuxRenderer,
  defaultRouteProtocol,
  desiredState,
  emptyState,
  missingFeatures,
  parseBatchFailures,
  parseJsonValues,
  planApply,
  planIsEmpty,
  podHash,
  podSideLines,
  type KernelFeatures,
  type KernelState,
} from "../src/index.ts";
import { dataplaneArb } from "./gen.ts";

const OWNER = "t";
const PROTO = 222;
const gen = { node: "n1", podNetns: ["/var/run/netns/p0", "/var/run/netns/p1", "/var/run/netns/p2", "/var/run/netns/p3"], underlayDev: "eth0" };

function plan(observed: KernelState, dp: NodeDataplane) {
  return planApply({ observed, desired: desiredState(dp, { owner: OWNER }), owner: OWNER, proto: PROTO, foreignAddrs: new Set() });
}

/** Maps compared as sorted entry lists. */
function normal(s: KernelState): unknown {
  const m = <V>(x: Map<string, V>) => [...x.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return { links: m(s.links), pods: m(s.pods), addrs: m(s.addrs), routes: m(s.routes), neigh: m(s.neigh), fdb: m(s.fdb), sysctls: m(s.sysctls), nft: s.nft };
}

function base(): NodeDataplane {
  return {
    ...emptyDataplane("n1"),
    links: [{ kind: "bridge", name: "cni0", mtu: 1450 }],
    addresses: [{ dev: "cni0", cidr: "10.244.1.1/24" }],
    pods: [
      {
        key: "c1/eth0",
        containerId: "c1",
        ifName: "eth0",
        netns: "/var/run/netns/p1",
        hostIf: "veth1",
        bridge: "cni0",
        mac: "0a:58:0a:f4:01:02",
        mtu: 1450,
        addresses: ["10.244.1.2/24"],
        routes: [{ dst: "0.0.0.0/0", via: "10.244.1.1" }],
      },
    ],
  };
}

describe("desiredState: input that cannot be rendered is refused with the field and the rule", () => {
  const cases: { label: string; edit: (dp: NodeDataplane) => void; field: RegExp }[] = [
    { label: "link name too long", edit: (dp) => (dp.links[0]!.name = "a-very-long-name-x"), field: /links\[0\]\.name/ },
    { label: "duplicate link", edit: (dp) => dp.links.push({ kind: "bridge", name: "cni0" }), field: /links\[1\]\.name/ },
    { label: "unknown kind", edit: (dp) => ((dp.links[0] as { kind: string }).kind = "macvlan"), field: /links\[0\]\.kind/ },
    { label: "bad MAC", edit: (dp) => (dp.links[0]!.mac = "zz:00:00:00:00:00"), field: /links\[0\]\.mac/ },
    { label: "multicast MAC", edit: (dp) => (dp.links[0]!.mac = "01:00:5e:00:00:01"), field: /links\[0\]\.mac/ },
    { label: "MTU too small", edit: (dp) => (dp.links[0]!.mtu = 10), field: /links\[0\]\.mtu/ },
    { label: "vxlan VNI too large", edit: (dp) => dp.links.push({ kind: "vxlan", name: "vx", vni: 1 << 24, port: 4789, local: "10.0.0.1", learning: false }), field: /links\[1\]\.vni/ },
    { label: "vxlan local not an address", edit: (dp) => dp.links.push({ kind: "vxlan", name: "vx", vni: 1, port: 4789, local: "nope", learning: false }), field: /links\[1\]\.local/ },
    { label: "pod without netns", edit: (dp) => delete dp.pods[0]!.netns, field: /pods\[0\]\.netns/ },
    { label: "pod netns relative", edit: (dp) => (dp.pods[0]!.netns = "netns/x"), field: /pods\[0\]\.netns/ },
    { label: "pod hostIf equals a link", edit: (dp) => (dp.pods[0]!.hostIf = "cni0"), field: /pods\[0\]\.hostIf/ },
    { label: "pod address without length", edit: (dp) => (dp.pods[0]!.addresses = ["10.244.1.2"]), field: /pods\[0\]\.addresses\[0\]/ },
    { label: "pod route via other family", edit: (dp) => (dp.pods[0]!.routes = [{ dst: "0.0.0.0/0", via: "fd00::1" }]), field: /pods\[0\]\.routes\[0\]\.via/ },
    { label: "duplicate pod key", edit: (dp) => dp.pods.push({ ...dp.pods[0]!, hostIf: "veth2" }), field: /pods\[1\]\.key/ },
    { label: "route with host bits", edit: (dp) => dp.routes.push({ dst: "10.1.0.1/16", dev: "cni0" }), field: /routes\[0\]\.dst/ },
    { label: "route type", edit: (dp) => dp.routes.push({ dst: "10.1.0.0/16", type: "prohibit" as "blackhole" }), field: /routes\[0\]\.type/ },
    { label: "onlink without dev", edit: (dp) => dp.routes.push({ dst: "10.1.0.0/16", via: "10.0.0.1", onlink: true }), field: /routes\[0\]\.onlink/ },
    { label: "unicast without via or dev", edit: (dp) => dp.routes.push({ dst: "10.1.0.0/16" }), field: /routes\[0\]/ },
    { label: "local table", edit: (dp) => dp.routes.push({ dst: "10.1.0.0/16", dev: "cni0", table: 255 }), field: /routes\[0\]\.table/ },
    { label: "learned neighbour", edit: (dp) => dp.neighbours.push({ dev: "cni0", ip: "10.244.1.9", mac: "02:00:00:00:00:09", permanent: false }), field: /neighbours\[0\]\.permanent/ },
    { label: "fdb on a bridge", edit: (dp) => dp.fdb.push({ dev: "cni0", mac: "02:00:00:00:00:09", dst: "10.0.0.9", permanent: true }), field: /fdb\[0\]\.dev/ },
    { label: "snat without toAddress", edit: (dp) => dp.nat.push({ id: "s", kind: "snat", sources: ["10.244.0.0/16"], exceptDestinations: [] }), field: /nat\[0\]\.toAddress/ },
    { label: "nat source not a prefix", edit: (dp) => dp.nat.push({ id: "m", kind: "masquerade", sources: ["10.244.0.0"], exceptDestinations: [] }), field: /nat\[0\]\.sources\[0\]/ },
    {
      label: "two ingress policies",
      edit: (dp) => dp.filters.push({ pod: "c1/eth0", direction: "ingress", rules: [], defaultAction: "drop" }, { pod: "c1/eth0", direction: "ingress", rules: [], defaultAction: "accept" }),
      field: /filters\[1\]/,
    },
    {
      label: "bad port range",
      edit: (dp) => dp.filters.push({ pod: "c1/eth0", direction: "ingress", defaultAction: "drop", rules: [{ id: "r", action: "accept", protocol: "tcp", ports: [{ from: 90, to: 80 }] }] }),
      field: /filters\[0\]\.rules\[0\]\.ports\[0\]/,
    },
  ];
  it.each(cases)("$label", ({ edit, field }) => {
    const dp = base();
    edit(dp);
    let caught: unknown;
    try {
      desiredState(dp, { owner: OWNER });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toMatch(field);
    expect((caught as ConfigError).message).toContain("[linux]");
  });

  it("refuses an owner that cannot name a table", () => {
    expect(() => desiredState(base(), { owner: "Bad Owner" })).toThrow(ConfigError);
  });
});

describe("planApply", () => {
  it("creates a fresh node in dependency order: links, masters, pods, addresses, device routes before gateway routes", () => {
    const dp = base();
    dp.routes.push({ dst: "10.9.0.0/16", via: "10.244.1.50" }, { dst: "10.8.0.0/16", dev: "cni0" });
    const p = plan(emptyState(), dp);
    const lines = p.node.map((l) => l.line);
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(/^link add cni0 /)).toBe(0);
    expect(at(/^link set dev cni0 alias cnikit:t$/)).toBe(1);
    expect(at(/^link set dev cni0 up/)).toBeLessThan(at(/^link add veth1 /));
    expect(lines[at(/^link add veth1 /)]).toBe(
      "link add veth1 address " + desiredState(dp, { owner: OWNER }).pods.get("veth1")!.hostMac + " mtu 1450 type veth peer name eth0 address 0a:58:0a:f4:01:02 mtu 1450 netns /var/run/netns/p1",
    );
    expect(at(/^link set dev veth1 master cni0/)).toBeGreaterThan(at(/^link add veth1 /));
    expect(at(/^addr add 10.244.1.1\/24 dev cni0$/)).toBeGreaterThan(at(/^link set dev veth1 up/));
    expect(at(/^route replace 10.8.0.0\/16 dev cni0 metric 0 table 254 proto 222$/)).toBeLessThan(at(/^route replace 10.9.0.0\/16 via 10.244.1.50 metric 0 table 254 proto 222$/));
    expect(p.podSides).toEqual([{ hostIf: "veth1", key: "c1/eth0", netns: "/var/run/netns/p1", lines: podSideLines(dp.pods[0]!) }]);
    expect(p.node.filter((l) => l.pod === "veth1").map((l) => l.line)).toEqual(lines.filter((l) => l.includes("veth1")));
  });

  it("the container side: lo up, addresses (IPv6 without DAD), link up, scope-link routes before gateway routes", () => {
    expect(
      podSideLines({
        key: "k",
        containerId: "c",
        ifName: "eth0",
        hostIf: "h",
        mac: "02:00:00:00:00:01",
        mtu: 1500,
        addresses: ["10.0.0.5/32", "fd00::5/128"],
        routes: [
          { dst: "0.0.0.0/0", via: "169.254.1.1" },
          { dst: "169.254.1.1/32", scopeLink: true },
          { dst: "::/0", via: "fe80::1" },
        ],
      }),
    ).toEqual([
      "link set dev lo up",
      "addr add 10.0.0.5/32 dev eth0",
      "addr add fd00::5/128 dev eth0 nodad",
      "link set dev eth0 up",
      "route replace 169.254.1.1/32 dev eth0 scope link",
      "route replace 0.0.0.0/0 via 169.254.1.1 dev eth0",
      "route replace ::/0 via fe80::1 dev eth0",
    ]);
  });

  it("a container's second interface (net1) of the same network: its routes and connected route go in at metric 100 beside eth0's (never replacing them); eth0's lines and hash are what they always were", () => {
    const dp = base();
    const eth0 = dp.pods[0]!;
    dp.pods.push({
      ...eth0,
      key: "c1/net1",
      ifName: "net1",
      hostIf: "veth2",
      mac: "0a:58:0a:f4:01:03",
      addresses: ["10.244.1.3/24", "fd00:1::3/64"],
      routes: [
        { dst: "0.0.0.0/0", via: "10.244.1.1" },
        { dst: "::/0", via: "fd00:1::1" },
      ],
    });
    const s = desiredState(dp, { owner: OWNER });
    expect(s.pods.get("veth1")).toMatchObject({ hash: podHash(eth0) });
    expect(s.pods.get("veth1")?.rank).toBeUndefined();
    expect(s.pods.get("veth2")?.rank).toBe(1);
    const p = plan(emptyState(), dp);
    expect(p.podSides.find((x) => x.key === "c1/eth0")?.lines).toEqual([
      "link set dev lo up",
      "addr add 10.244.1.2/24 dev eth0",
      "link set dev eth0 up",
      "route replace 0.0.0.0/0 via 10.244.1.1 dev eth0",
    ]);
    expect(p.podSides.find((x) => x.key === "c1/net1")?.lines).toEqual([
      "link set dev lo up",
      "addr add 10.244.1.3/24 dev net1 noprefixroute",
      "addr add fd00:1::3/64 dev net1 nodad noprefixroute",
      "link set dev net1 up",
      "route replace 10.244.1.0/24 dev net1 scope link src 10.244.1.3 metric 100",
      "route replace fd00:1::/64 dev net1 scope link src fd00:1::3 metric 356",
      "route replace 0.0.0.0/0 via 10.244.1.1 dev net1 metric 100",
      "route replace ::/0 via fd00:1::1 dev net1 metric 1124",
    ]);
    // eth0 first whatever the order in the dataplane; the others by name.
    expect(desiredState({ ...dp, pods: [dp.pods[1]!, dp.pods[0]!] }, { owner: OWNER }).pods.get("veth2")?.rank).toBe(1);
    // A rank above 0 is part of the hash: the same pod at another rank is rebuilt.
    expect(s.pods.get("veth2")?.hash).not.toBe(podHash(dp.pods[1]!));
  });

  it("two interfaces of one container whose explicit metrics would make the kernel keep one route of two are refused, naming the field", () => {
    const dp = base();
    dp.pods[0]!.routes[0]!.metric = 100;
    dp.pods.push({ ...dp.pods[0]!, key: "c1/net1", ifName: "net1", hostIf: "veth2", mac: "0a:58:0a:f4:01:03", addresses: ["10.244.1.3/24"], routes: [{ dst: "0.0.0.0/0", via: "10.244.1.1" }] });
    expect(() => desiredState(dp, { owner: OWNER })).toThrow(ConfigError);
    expect(() => desiredState(dp, { owner: OWNER })).toThrow(/pods\[1\]\.routes\[0\]\.metric: must differ from dataplane\(n1\)\.pods\[0\]\.routes\[0\]'s: .*0\.0\.0\.0\/0 at metric 100/);
    // Another container may use the same metric: it has its own namespace.
    dp.pods[1] = { ...dp.pods[1]!, key: "c2/eth0", containerId: "c2", ifName: "eth0" };
    expect(() => desiredState(dp, { owner: OWNER })).not.toThrow();
  });

  it("a pod whose configuration changed is rebuilt; one that left is deleted; routes that left are deleted with our protocol", () => {
    const dp = base();
    dp.routes.push({ dst: "10.9.0.0/16", type: "blackhole" });
    const first = plan(emptyState(), dp).after;
    const next = base();
    next.pods[0]!.mtu = 1400;
    const p = plan(first, next);
    expect(p.node.map((l) => l.line)).toEqual([
      "route del 10.9.0.0/16 metric 0 table 254 proto 222",
      "link del dev veth1",
      ...plan(emptyState(), next)
        .node.filter((l) => l.pod === "veth1")
        .map((l) => l.line),
    ]);
    const gone = plan(first, { ...base(), pods: [] });
    expect(gone.node.map((l) => l.line)).toEqual(["route del 10.9.0.0/16 metric 0 table 254 proto 222", "link del dev veth1"]);
  });

  it("a link whose vxlan parameters changed is recreated and everything on it comes back", () => {
    const dp = base();
    dp.links.push({ kind: "vxlan", name: "vx", vni: 1, port: 8472, local: "10.0.0.1", learning: false });
    dp.addresses.push({ dev: "vx", cidr: "10.244.1.0/32" });
    dp.routes.push({ dst: "10.244.2.0/24", via: "10.244.2.0", dev: "vx", onlink: true });
    dp.neighbours.push({ dev: "vx", ip: "10.244.2.0", mac: "02:00:00:00:00:02", permanent: true });
    dp.fdb.push({ dev: "vx", mac: "02:00:00:00:00:02", dst: "10.0.0.2", permanent: true });
    const first = plan(emptyState(), dp).after;
    const next = structuredClone(dp);
    (next.links[1] as { vni: number }).vni = 2;
    const p = plan(first, next);
    const lines = p.node.map((l) => l.line);
    expect(lines[0]).toBe("link del dev vx");
    expect(lines.some((l) => l.startsWith("link add vx ") && l.includes(" id 2 "))).toBe(true);
    expect(lines).toContain("addr add 10.244.1.0/32 dev vx");
    expect(lines).toContain("neigh replace 10.244.2.0 lladdr 02:00:00:00:00:02 dev vx nud permanent protocol 222");
    expect(lines).toContain("route replace 10.244.2.0/24 via 10.244.2.0 dev vx onlink metric 0 table 254 proto 222");
    expect(p.fdb.map((l) => l.line)).toEqual(["fdb append 02:00:00:00:00:02 dev vx dst 10.0.0.2 self permanent"]);
  });

  it("an MTU change is done in place", () => {
    const first = plan(emptyState(), base()).after;
    const next = base();
    next.links[0]!.mtu = 1400;
    expect(plan(first, next).node.map((l) => l.line)).toEqual(["link set dev cni0 mtu 1400"]);
  });

  it("addresses on links it does not own are added only when absent, and recorded", () => {
    const dp = base();
    dp.addresses.push({ dev: "eth0", cidr: "192.168.9.1/32" }, { dev: "eth0", cidr: "192.168.50.1/24" });
    const p = planApply({ observed: emptyState(), desired: desiredState(dp, { owner: OWNER }), owner: OWNER, proto: PROTO, foreignAddrs: new Set(["eth0 192.168.50.1/24"]) });
    expect(p.node.map((l) => l.line)).toContain("addr add 192.168.9.1/32 dev eth0");
    expect(p.node.map((l) => l.line)).not.toContain("addr add 192.168.50.1/24 dev eth0");
    expect(p.foreignAdded).toEqual(["eth0 192.168.9.1/32"]);
    expect(p.after.addrs.has("eth0 192.168.50.1/24")).toBe(false);
  });

  it("proxy_arp is switched off on an interface that is no longer listed", () => {
    const dp = base();
    dp.sysctls = { proxyArp: ["veth1"], ipv4Forwarding: true };
    const first = plan(emptyState(), dp);
    expect(first.sysctls).toEqual([
      { key: "net/ipv4/ip_forward", value: "1" },
      { key: "net/ipv4/conf/veth1/proxy_arp", value: "1", pod: "veth1" },
    ]);
    const second = plan(first.after, { ...base(), sysctls: { ipv4Forwarding: true } });
    expect(second.sysctls).toEqual([{ key: "net/ipv4/conf/veth1/proxy_arp", value: "0" }]);
  });

  it("property: the plan of a state and its own dataplane is empty (apply twice = no commands)", () => {
    fc.assert(
      fc.property(dataplaneArb(gen), (dp) => {
        const p = plan(emptyState(), dp);
        expect(planIsEmpty(plan(p.after, dp))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("property: any sequence of dataplanes ends in the state a fresh apply of the last one gives", () => {
    fc.assert(
      fc.property(fc.array(dataplaneArb(gen), { minLength: 1, maxLength: 6 }), (dps) => {
        let s = emptyState();
        for (const dp of dps) s = plan(s, dp).after;
        expect(normal(s)).toEqual(normal(plan(emptyState(), dps[dps.length - 1]!).after));
      }),
      { numRuns: 200 },
    );
  });
});

describe("feature requirements", () => {
  const all = (over: Partial<Record<string, boolean>>, reasons: Record<string, string> = {}): KernelFeatures =>
    ({
      bridge: true,
      vxlan: true,
      veth: true,
      dummy: true,
      ipip: true,
      gre: true,
      wireguard: true,
      vrf: true,
      nftables: true,
      nftNat: true,
      brNetfilter: true,
      sleeve: false,
      ...over,
      reasons,
    }) as KernelFeatures;

  it("names the missing feature and the object that needs it", () => {
    const dp = { ...base(), links: [...base().links, { kind: "ipip" as const, name: "tunl0" }] };
    const missing = missingFeatures(dp, all({ ipip: false }, { ipip: "Error: Unknown device type." }));
    expect(missing.map((m) => m.message)).toEqual(["kernel lacks ipip: cannot create link tunl0 of kind ipip (Error: Unknown device type.)"]);
  });

  it("sleeve is refused without a userspace datapath (even with TAP devices); filters on bridged pods need br_netfilter; NAT needs nftables nat", () => {
    const dp = base();
    dp.links.push({ kind: "sleeve", name: "weave", port: 6783, encrypted: false });
    dp.filters.push({ pod: "c1/eth0", direction: "ingress", rules: [], defaultAction: "drop" });
    dp.nat.push({ id: "m", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: [] });
    const missing = missingFeatures(dp, all({ brNetfilter: false, nftNat: false, sleeve: true }));
    expect(missing.map((m) => m.feature).sort()).toEqual(["brNetfilter", "nftNat", "sleeve"]);
    expect(missing.find((m) => m.feature === "sleeve")!.message).toMatch(/^kernel lacks sleeve: cannot create link weave of kind sleeve \(.*no userspace datapath/);
    expect(missingFeatures(base(), all({}))).toEqual([]);
  });

  it("with a userspace datapath for it, a sleeve link needs only TAP devices", () => {
    const dp = base();
    dp.links.push({ kind: "sleeve", name: "sleeve0", port: 6783, encrypted: false });
    expect(missingFeatures(dp, all({ sleeve: true }), new Set(["sleeve"]))).toEqual([]);
    const missing = missingFeatures(dp, all({ sleeve: false }, { sleeve: "no TAP devices for a userspace sleeve: open /dev/net/tun: No such device" }), new Set(["sleeve"]));
    expect(missing.map((m) => m.message)).toEqual([
      "kernel lacks sleeve (TAP devices): cannot create link sleeve0 of kind sleeve (no TAP devices for a userspace sleeve: open /dev/net/tun: No such device)",
    ]);
  });

  it("plans a new userspace link's MAC and MTU instead of link add, the rest as for any link", () => {
    const dp = base();
    dp.links.push({ kind: "sleeve", name: "sleeve0", master: "cni0", mtu: 1418, mac: "02:00:00:00:00:5e", port: 6783, encrypted: false });
    const desired = desiredState(dp, { owner: "t" });
    const plan = planApply({ observed: emptyState(), desired, owner: "t", proto: 200, foreignAddrs: new Set(), userspaceKinds: new Set(["sleeve"]) });
    const lines = plan.node.map((l) => l.line).filter((l) => l.includes("sleeve0"));
    expect(lines).toEqual([
      "link set dev sleeve0 address 02:00:00:00:00:5e",
      "link set dev sleeve0 mtu 1418",
      "link set dev sleeve0 alias cnikit:t",
      "link set dev sleeve0 master cni0",
      "link set dev sleeve0 up",
    ]);
  });
});

describe("tool output parsing", () => {
  it("splits concatenated JSON values (ip -j -batch)", () => {
    expect(parseJsonValues('[{"a":"]["}]\n[]\n[{"b":[1,2]}]\n')).toEqual([[{ a: "][" }], [], [{ b: [1, 2] }]]);
  });

  it("maps batch errors to their lines", () => {
    const lines = ["link del x", "link set lo up", "route del 10.0.0.0/8"];
    expect(parseBatchFailures('Cannot find device "x"\nCommand failed -:1\nRTNETLINK answers: No such process\nCommand failed -:3\n', lines)).toEqual([
      { line: 1, command: "link del x", message: 'Cannot find device "x"' },
      { line: 3, command: "route del 10.0.0.0/8", message: "RTNETLINK answers: No such process" },
    ]);
  });
});

describe("LinuxRenderer without a kernel", () => {
  it("refuses bad options with the field named", () => {
    expect(() => new LinuxRenderer({ owner: "A B" })).toThrow(ConfigError);
    expect(() => new LinuxRenderer({ netns: "../x" })).toThrow(ConfigError);
    expect(() => new LinuxRenderer({ routeProtocol: 2 })).toThrow(/routeProtocol/);
  });

  it("derives a stable route protocol from the owner, outside the kernel's and well-known daemons' numbers", () => {
    for (const owner of ["cnikit", "a", "lab-node-1", "x_y"]) {
      const p = defaultRouteProtocol(owner);
      expect(p).toBe(defaultRouteProtocol(owner));
      expect(p).toBeGreaterThanOrEqual(200);
      expect(p).toBeLessThan(250);
    }
  });

  it("after close(), apply is refused with ClosedError", async () => {
    const r = new LinuxRenderer({ netns: "never-created" });
    await r.close();
    await expect(r.apply(emptyDataplane("n"))).rejects.toThrow(ClosedError);
  });
});
