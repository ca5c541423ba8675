/**
 * Table-driven packet walks through hand-built dataplanes: one row per forwarding feature and per
 * drop reason. Each row builds a small network, sends one packet and checks delivery, the reason
 * and stage of a drop, the source the receiver saw, the reply, and features of the path.
 */
import { emptyDataplane, type PodInterface, type Protocol } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { SimFabric, defaultTopology, singleSubnetTopology, type Endpoint, type PacketResult } from "../src/index.ts";
import { bridgeNode, external, flannelVxlan, hostGw, mac, mutate, node, pod, routedCluster, weaveMesh, type Built } from "./builders.ts";

interface Row {
  name: string;
  build: () => { fabric: SimFabric; from: Endpoint; to: Endpoint; protocol?: Protocol; port?: number };
  delivered: boolean;
  reason?: string | RegExp;
  stage?: string;
  rule?: string;
  seenSource?: string;
  natted?: boolean;
  replyDelivered?: boolean;
  replyReason?: string | RegExp;
  stages?: string[];
  noStages?: string[];
  payload?: "plaintext" | "encrypted";
  /** A node, router or external the path must pass. */
  through?: string;
  pathMtu?: number;
  mtuProblem?: boolean;
}

const A = pod("c-1-0/eth0");
const B = pod("c-2-1/eth0");

function from(b: Built, f: Endpoint, t: Endpoint, extra: { protocol?: Protocol; port?: number } = {}) {
  return { fabric: b.fabric, from: f, to: t, ...extra };
}

const rows: Row[] = [
  // ---- delivery on one node
  {
    name: "same-node pods on one bridge are switched at L2 (no routing)",
    build: () => from(hostGw(1, 3), A, pod("c-1-2/eth0")),
    delivered: true,
    seenSource: "10.244.1.2",
    stages: ["pod", "pod-arp", "bridge", "deliver"],
    noStages: ["route"],
    replyDelivered: true,
  },
  {
    name: "pod to its own node's address is delivered locally",
    build: () => {
      const b = hostGw(2, 1);
      return from(b, A, node("node-1"));
    },
    delivered: true,
    seenSource: "10.244.1.2",
  },
  {
    name: "node to a local pod uses the bridge address as source",
    build: () => from(hostGw(2, 1), node("node-1"), A),
    delivered: true,
    seenSource: "10.244.1.1",
  },
  // ---- host-gw
  {
    name: "host-gw: pods on two nodes of one subnet, no NAT",
    build: () => from(hostGw(2, 2), A, B),
    delivered: true,
    seenSource: "10.244.1.2",
    natted: false,
    replyDelivered: true,
    payload: "plaintext",
    stages: ["route", "underlay", "deliver"],
  },
  {
    name: "host-gw across a router: the router has no pod routes",
    build: () => {
      const b = new SimFabric(defaultTopology());
      const i1 = b.addNode({ name: "node-1", subnet: "a" });
      const i2 = b.addNode({ name: "node-2", subnet: "b" });
      const d1 = bridgeNode("node-1", 1, 1);
      d1.routes.push({ dst: "10.244.2.0/24", via: i2.underlay[0]!.address });
      const d2 = bridgeNode("node-2", 2, 2);
      b.setDataplane("node-1", d1);
      b.setDataplane("node-2", d2);
      void i1;
      return { fabric: b, from: A, to: B };
    },
    delivered: false,
    reason: "nexthop 203.0.113.10 of route 10.244.2.0/24 via 203.0.113.10 at node node-1 is not on a connected subnet (the kernel refuses this route)",
    stage: "route",
  },
  {
    name: "routed via the gateway across a router without a static route: dropped at the router",
    build: () => {
      const b = new SimFabric(defaultTopology());
      b.addNode({ name: "node-1", subnet: "a" });
      b.addNode({ name: "node-2", subnet: "b" });
      const d1 = bridgeNode("node-1", 1, 1);
      d1.routes.push({ dst: "10.244.2.0/24", via: "198.51.100.1" });
      b.setDataplane("node-1", d1);
      b.setDataplane("node-2", bridgeNode("node-2", 2, 2));
      return { fabric: b, from: A, to: B };
    },
    delivered: false,
    reason: "router r1 has no route to 10.244.2.3",
    stage: "router",
  },
  {
    name: "a router static route makes pods across subnets reachable",
    build: () => {
      const topo = defaultTopology();
      topo.routers![0]!.staticRoutes = [
        { dst: "10.244.2.0/24", via: "203.0.113.10" },
        { dst: "10.244.1.0/24", via: "198.51.100.10" },
      ];
      const b = new SimFabric(topo);
      b.addNode({ name: "node-1", subnet: "a" });
      b.addNode({ name: "node-2", subnet: "b" });
      b.setDataplane("node-1", bridgeNode("node-1", 1, 1));
      b.setDataplane("node-2", bridgeNode("node-2", 2, 2));
      return { fabric: b, from: A, to: B };
    },
    delivered: true,
    seenSource: "10.244.1.2",
    replyDelivered: true,
    stages: ["router"],
  },
  // ---- drops in the node's routing
  {
    name: "no route at all (node without a default gateway)",
    build: () => {
      const b = new SimFabric(singleSubnetTopology());
      b.setNode({ name: "node-1", underlay: [{ iface: "eth0", address: "198.51.100.10", prefixLength: 24 }] }, bridgeNode("node-1", 1, 1));
      b.setNode({ name: "node-2", underlay: [{ iface: "eth0", address: "198.51.100.11", prefixLength: 24 }] }, bridgeNode("node-2", 2, 2));
      return { fabric: b, from: A, to: B };
    },
    delivered: false,
    reason: "no route to 10.244.2.3 at node node-1",
    stage: "route",
  },
  {
    name: "blackhole route",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => dp.routes.push({ dst: "10.244.2.3/32", type: "blackhole" })),
        A,
        B,
      ),
    delivered: false,
    reason: "blackhole route blackhole 10.244.2.3/32 at node node-1 drops 10.244.2.3",
    stage: "route",
  },
  {
    name: "unreachable route",
    build: () =>
      from(
        mutate(hostGw(2, 2), 1, (dp) => dp.routes.push({ dst: "10.244.2.0/25", type: "unreachable" })),
        A,
        B,
      ),
    delivered: false,
    reason: "unreachable route unreachable 10.244.2.0/25 at node node-2 rejects 10.244.2.3",
    stage: "route",
  },
  {
    name: "a more-specific /32 wins over the /24 (detour through node-3)",
    build: () =>
      from(
        mutate(hostGw(3, 2), 0, (dp) => dp.routes.push({ dst: "10.244.2.3/32", via: "198.51.100.12" })),
        A,
        B,
      ),
    delivered: true,
    through: "node-3",
  },
  {
    name: "a more-specific /32 towards a node without a route",
    build: () => {
      const b = mutate(hostGw(3, 2), 0, (dp) => dp.routes.push({ dst: "10.244.2.3/32", via: "198.51.100.12" }));
      return from(
        mutate(b, 2, (dp) => (dp.routes = dp.routes.filter((r) => r.dst !== "10.244.2.0/24"))),
        A,
        B,
      );
    },
    delivered: false,
    reason: "router r1 has no route to 10.244.2.3",
    through: "node-3",
  },
  {
    name: "lower metric wins for the same prefix",
    build: () =>
      from(
        mutate(hostGw(3, 2), 0, (dp) => {
          dp.routes = dp.routes.filter((r) => r.dst !== "10.244.2.0/24");
          dp.routes.push({ dst: "10.244.2.0/24", via: "198.51.100.12", metric: 200 }, { dst: "10.244.2.0/24", via: "198.51.100.11", metric: 100 });
        }),
        A,
        B,
      ),
    delivered: true,
  },
  {
    name: "nexthop not on a connected subnet",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => {
          dp.routes = dp.routes.filter((r) => r.dst !== "10.244.2.0/24");
          dp.routes.push({ dst: "10.244.2.0/24", via: "10.77.0.1" });
        }),
        A,
        B,
      ),
    delivered: false,
    reason: "nexthop 10.77.0.1 of route 10.244.2.0/24 via 10.77.0.1 at node node-1 is not on a connected subnet (the kernel refuses this route)",
    stage: "route",
  },
  {
    name: "route through a device that does not exist",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => dp.routes.push({ dst: "10.244.2.3/32", dev: "nope0" })),
        A,
        B,
      ),
    delivered: false,
    reason: "route 10.244.2.3/32 dev nope0 at node node-1 uses device nope0, which does not exist",
  },
  {
    name: "route into a dummy device",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => {
          dp.links.push({ kind: "dummy", name: "dummy0" });
          dp.routes.push({ dst: "10.244.2.3/32", dev: "dummy0" });
        }),
        A,
        B,
      ),
    delivered: false,
    reason: "route 10.244.2.3/32 dev dummy0 at node node-1 sends 10.244.2.3 into dummy device dummy0",
  },
  {
    name: "forwarding disabled at the receiving node",
    build: () =>
      from(
        mutate(hostGw(2, 2), 1, (dp) => (dp.sysctls = {})),
        A,
        B,
      ),
    delivered: false,
    reason: "IPv4 forwarding is disabled at node node-2 (sysctls.ipv4Forwarding is not set)",
    stage: "forward",
  },
  // ---- pod side
  {
    name: "pod without a route",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => (dp.pods[0]!.routes = [])),
        A,
        B,
      ),
    delivered: false,
    reason: "no route to 10.244.2.3 in pod c-1-0/eth0",
    stage: "pod-route",
  },
  {
    name: "pod gateway that nobody answers ARP for",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => (dp.pods[0]!.routes = [{ dst: "0.0.0.0/0", via: "10.244.1.99" }])),
        A,
        B,
      ),
    delivered: false,
    reason: "no neighbour: nobody answers ARP for 10.244.1.99 on pod c-1-0/eth0's interface (bridge cni0)",
    stage: "pod-arp",
  },
  {
    name: "pod gateway off the pod's subnet",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => (dp.pods[0]!.routes = [{ dst: "0.0.0.0/0", via: "10.99.0.1" }])),
        A,
        B,
      ),
    delivered: false,
    reason: "pod c-1-0/eth0: nexthop 10.99.0.1 of route 0.0.0.0/0 via 10.99.0.1 dev eth0 is not on a connected subnet (the kernel refuses this route)",
    stage: "pod-route",
  },
  {
    name: "delivered to a pod that does not own the address (route to the wrong veth)",
    build: () =>
      from(
        mutate(hostGw(2, 3), 1, (dp) => dp.routes.push({ dst: "10.244.2.3/32", dev: "veth2x0" })),
        A,
        B,
      ),
    delivered: false,
    reason: "no neighbour: pod c-2-0/eth0 behind veth2x0 at node node-2 does not answer ARP for 10.244.2.3",
    stage: "neighbour",
  },
  // ---- filters
  {
    name: "egress filter rule drops",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) =>
          dp.filters.push({ pod: "c-1-0/eth0", direction: "egress", defaultAction: "accept", rules: [{ id: "np/default/deny-2/egress/0", peers: [{ cidrs: ["10.244.2.0/24"] }], action: "drop" }] }),
        ),
        A,
        B,
      ),
    delivered: false,
    reason: "filtered by rule np/default/deny-2/egress/0 at node node-1 (egress of pod c-1-0/eth0)",
    stage: "pod-egress",
    rule: "np/default/deny-2/egress/0",
  },
  {
    name: "ingress default drop of an isolated pod",
    build: () =>
      from(
        mutate(hostGw(2, 2), 1, (dp) => dp.filters.push({ pod: "c-2-1/eth0", direction: "ingress", defaultAction: "drop", rules: [] })),
        A,
        B,
      ),
    delivered: false,
    reason: "filtered by the default drop of pod c-2-1/eth0's ingress policy at node node-2",
    stage: "pod-ingress",
  },
  {
    name: "ingress rule allows one port: port 80 passes",
    build: () =>
      from(
        mutate(hostGw(2, 2), 1, (dp) =>
          dp.filters.push({
            pod: "c-2-1/eth0",
            direction: "ingress",
            defaultAction: "drop",
            rules: [{ id: "np/default/web/ingress/0", peers: [{ cidrs: ["10.244.0.0/16"], except: ["10.244.3.0/24"] }], protocol: "tcp", ports: [{ from: 80, to: 80 }], action: "accept" }],
          }),
        ),
        A,
        B,
      ),
    delivered: true,
    replyDelivered: true,
  },
  {
    name: "ingress rule allows one port: port 81 is dropped",
    build: () => {
      const b = mutate(hostGw(2, 2), 1, (dp) =>
        dp.filters.push({
          pod: "c-2-1/eth0",
          direction: "ingress",
          defaultAction: "drop",
          rules: [{ id: "np/default/web/ingress/0", peers: [{ cidrs: ["10.244.0.0/16"] }], protocol: "tcp", ports: [{ from: 80, to: 80 }], action: "accept" }],
        }),
      );
      return from(b, A, B, { protocol: "tcp", port: 81 });
    },
    delivered: false,
    reason: "filtered by the default drop of pod c-2-1/eth0's ingress policy at node node-2",
  },
  {
    name: "replies of an allowed connection pass the sender's own ingress isolation (conntrack)",
    build: () =>
      from(
        mutate(hostGw(2, 2), 0, (dp) => dp.filters.push({ pod: "c-1-0/eth0", direction: "ingress", defaultAction: "drop", rules: [] })),
        A,
        B,
      ),
    delivered: true,
    replyDelivered: true,
  },
  {
    name: "same-node traffic is filtered too (bridge-nf-call)",
    build: () =>
      from(
        mutate(hostGw(1, 3), 0, (dp) => dp.filters.push({ pod: "c-1-2/eth0", direction: "ingress", defaultAction: "drop", rules: [] })),
        A,
        pod("c-1-2/eth0"),
      ),
    delivered: false,
    stage: "pod-ingress",
  },
  // ---- NAT
  {
    name: "masquerade to the internet: the receiver sees the node, the reply is de-NATed",
    build: () => from(flannelVxlan(2, 1, { masquerade: true }), A, external("internet")),
    delivered: true,
    seenSource: "198.51.100.10",
    natted: true,
    replyDelivered: true,
  },
  {
    name: "no masquerade to the internet: delivered with the pod source, but the reply has no way back",
    build: () => from(flannelVxlan(2, 1), A, external("internet")),
    delivered: true,
    seenSource: "10.244.1.2",
    natted: false,
    replyDelivered: false,
    replyReason: "router r1 has no route to 10.244.1.2",
  },
  {
    name: "pod-to-pod is not masqueraded (except destinations)",
    build: () => from(flannelVxlan(2, 2, { masquerade: true }), A, B),
    delivered: true,
    seenSource: "10.244.1.2",
    natted: false,
  },
  {
    name: "snat rule uses toAddress",
    build: () =>
      from(
        mutate(hostGw(2, 1), 0, (dp) => dp.nat.push({ id: "snat-x", kind: "snat", sources: ["10.244.1.0/24"], exceptDestinations: ["10.244.0.0/16"], toAddress: "198.51.100.10" })),
        A,
        external("internet"),
      ),
    delivered: true,
    seenSource: "198.51.100.10",
    natted: true,
    replyDelivered: true,
  },
  {
    name: "masquerade limited to an outDev that is not used does not apply",
    build: () =>
      from(
        mutate(flannelVxlan(2, 1), 0, (dp) => dp.nat.push({ id: "masq-tun", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: [], outDev: "flannel.1" })),
        A,
        external("internet"),
      ),
    delivered: true,
    seenSource: "10.244.1.2",
    natted: false,
  },
  // ---- vxlan
  {
    name: "vxlan across two subnets: encap, router, decap",
    build: () => from(flannelVxlan(2, 2), A, B),
    delivered: true,
    seenSource: "10.244.1.2",
    replyDelivered: true,
    stages: ["vxlan-encap", "underlay", "router", "vxlan-decap", "deliver"],
    payload: "plaintext",
    pathMtu: 1450,
    mtuProblem: false,
  },
  {
    name: "vxlan with pod MTU 1500: MTU problem flagged",
    build: () => from(flannelVxlan(2, 2, { podMtu: 1500 }), A, B),
    delivered: true,
    pathMtu: 1450,
    mtuProblem: true,
  },
  {
    name: "vxlan: missing neighbour entry",
    build: () =>
      from(
        mutate(flannelVxlan(2, 2), 0, (dp) => (dp.neighbours = [])),
        A,
        B,
      ),
    delivered: false,
    reason: "no neighbour entry for 10.244.2.0 on flannel.1 at node node-1",
    stage: "neighbour",
  },
  {
    name: "vxlan: missing FDB entry",
    build: () =>
      from(
        mutate(flannelVxlan(2, 2), 0, (dp) => (dp.fdb = [])),
        A,
        B,
      ),
    delivered: false,
    reason: `no FDB entry for ${mac(2, 0xfe)} on flannel.1 at node node-1`,
    stage: "fdb",
  },
  {
    name: "vxlan: remote VTEP MAC changed (stale neighbour/FDB)",
    build: () =>
      from(
        mutate(flannelVxlan(2, 2), 1, (dp) => ((dp.links[1] as { mac?: string }).mac = mac(77, 0xfe))),
        A,
        B,
      ),
    delivered: false,
    reason: `inner destination MAC ${mac(2, 0xfe)} is not the MAC of flannel.1 (${mac(77, 0xfe)}) at node node-2`,
    stage: "vxlan-decap",
  },
  {
    name: "vxlan: remote VNI differs",
    build: () =>
      from(
        mutate(flannelVxlan(2, 2), 1, (dp) => ((dp.links[1] as { vni: number }).vni = 2)),
        A,
        B,
      ),
    delivered: false,
    reason: "no vxlan device for VNI 1 port 8472 at node node-2",
    stage: "vxlan-decap",
  },
  {
    name: "vxlan: FDB points at a host that does not exist",
    build: () =>
      from(
        mutate(flannelVxlan(2, 2), 0, (dp) => (dp.fdb[0]!.dst = "203.0.113.99")),
        A,
        B,
      ),
    delivered: false,
    reason: "no neighbour: nobody on subnet b answers ARP for 203.0.113.99 (asked by r1)",
    stage: "underlay-arp",
  },
  // ---- ipip
  {
    name: "ipip across two subnets",
    build: () => {
      const b = new SimFabric(defaultTopology());
      const infos = [b.addNode({ name: "node-1" }), b.addNode({ name: "node-2" })];
      infos.forEach((info, k) => {
        const dp = bridgeNode(info.name, k + 1, 2, { mtu: 1480 });
        dp.links.push({ kind: "ipip", name: "tunl0" });
        const peer = infos[1 - k]!;
        dp.routes.push({ dst: `10.244.${2 - k}.0/24`, via: peer.underlay[0]!.address, dev: "tunl0", onlink: true });
        b.setDataplane(info.name, dp);
      });
      return { fabric: b, from: A, to: B };
    },
    delivered: true,
    replyDelivered: true,
    stages: ["ipip-encap", "router", "ipip-decap"],
    pathMtu: 1480,
    mtuProblem: false,
  },
  {
    name: "ipip: the receiver has no ipip device",
    build: () => {
      const b = new SimFabric(defaultTopology());
      const infos = [b.addNode({ name: "node-1" }), b.addNode({ name: "node-2" })];
      const d1 = bridgeNode("node-1", 1, 1);
      d1.links.push({ kind: "ipip", name: "tunl0" });
      d1.routes.push({ dst: "10.244.2.0/24", via: infos[1]!.underlay[0]!.address, dev: "tunl0", onlink: true });
      b.setDataplane("node-1", d1);
      b.setDataplane("node-2", bridgeNode("node-2", 2, 2));
      return { fabric: b, from: A, to: B };
    },
    delivered: false,
    reason: "no ipip device at node node-2 accepts IP-in-IP for 203.0.113.10",
    stage: "ipip-decap",
  },
  // ---- Weave-style L2 mesh
  {
    name: "weave fastdp: pods ARP across the vxlan flood entries",
    build: () => from(weaveMesh(3, 2, { tunnel: "vxlan" }), pod("w-1-0/eth0"), pod("w-3-1/eth0")),
    delivered: true,
    seenSource: "10.32.1.2",
    replyDelivered: true,
    stages: ["vxlan-encap", "vxlan-decap", "bridge", "deliver"],
    payload: "plaintext",
  },
  {
    name: "weave sleeve, encrypted: nothing in plaintext on the underlay",
    build: () => from(weaveMesh(3, 2, { tunnel: "sleeve", encrypted: true }), pod("w-1-0/eth0"), pod("w-2-1/eth0")),
    delivered: true,
    payload: "encrypted",
    stages: ["sleeve-encap", "sleeve-decap"],
    pathMtu: 1376,
    mtuProblem: false,
  },
  {
    name: "weave sleeve, plaintext",
    build: () => from(weaveMesh(2, 2, { tunnel: "sleeve" }), pod("w-1-0/eth0"), pod("w-2-1/eth0")),
    delivered: true,
    payload: "plaintext",
  },
  {
    name: "weave sleeve: encryption mismatch between peers",
    build: () =>
      from(
        mutate(weaveMesh(2, 2, { tunnel: "sleeve", encrypted: true }), 1, (dp) => ((dp.links[1] as { encrypted: boolean }).encrypted = false)),
        pod("w-1-0/eth0"),
        pod("w-2-1/eth0"),
      ),
    delivered: false,
    reason: "sleeve encryption mismatch: sleeve at node node-1 is encrypted, sleeve at node node-2 is plaintext",
    stage: "sleeve-decap",
  },
  {
    name: "weave: a peer missing from the flood entries cannot be reached",
    build: () =>
      from(
        mutate(weaveMesh(3, 2, { tunnel: "vxlan" }), 0, (dp) => (dp.fdb = dp.fdb.filter((f) => f.dst !== "198.51.100.11"))),
        pod("w-1-0/eth0"),
        pod("w-3-1/eth0"),
      ),
    delivered: false,
    reason: "no neighbour: nobody answers ARP for 10.32.3.3 on pod w-1-0/eth0's interface (bridge weave)",
    stage: "pod-arp",
  },
  // ---- routed pods (Calico-like) and proxy ARP
  {
    name: "routed pods with proxy ARP on the host side",
    build: () => from(routedCluster(2, 2), pod("r-1-0/eth0"), pod("r-2-1/eth0")),
    delivered: true,
    seenSource: "10.96.1.1",
    replyDelivered: true,
  },
  {
    name: "routed pods without proxy ARP: the pod cannot resolve its gateway",
    build: () => from(routedCluster(2, 2, { proxyArp: false }), pod("r-1-0/eth0"), pod("r-2-1/eth0")),
    delivered: false,
    reason: "no neighbour: nobody answers ARP for 169.254.1.1 on pod r-1-0/eth0's interface",
    stage: "pod-arp",
  },
  {
    name: "routed pods: an unallocated address in the node's block hits the blackhole",
    build: () => {
      const b = routedCluster(2, 2);
      mutate(b, 1, (dp) => {
        dp.routes = dp.routes.filter((r) => r.dst !== "10.96.2.2/32");
      });
      return from(b, pod("r-1-0/eth0"), pod("r-2-1/eth0"));
    },
    delivered: false,
    reason: "blackhole route blackhole 10.96.2.0/24 at node node-2 drops 10.96.2.2",
  },
  // ---- misc endpoints
  {
    name: "external host to a node",
    build: () => from(hostGw(2, 1), external("internet"), node("node-2")),
    delivered: true,
    seenSource: "192.0.2.200",
    replyDelivered: true,
  },
  {
    name: "unknown pod",
    build: () => from(hostGw(2, 1), A, pod("nope/eth0")),
    delivered: false,
    reason: "pod nope/eth0 has no interface in any node's dataplane",
  },
  {
    name: "two pods with the same address: the packet lands at the wrong one",
    build: () => {
      const b = hostGw(2, 2);
      mutate(b, 0, (dp) => dp.routes.push({ dst: "10.244.2.3/32", dev: "veth1x1" }));
      mutate(b, 0, (dp) => (dp.pods[1]!.addresses = ["10.244.2.3/24"]));
      return from(b, node("node-1"), B);
    },
    delivered: false,
    reason: "delivered to pod c-1-1/eth0 instead of pod c-2-1/eth0 (address conflict)",
  },
];

function stagesOf(r: PacketResult): string[] {
  return r.path.map((h) => h.stage);
}

describe("packet walk", () => {
  it.each(rows.map((r) => [r.name, r] as const))("%s", (_name, row) => {
    const { fabric, from: f, to: t, protocol, port } = row.build();
    const result = fabric.send(f, t, { ...(protocol ? { protocol } : {}), ...(port !== undefined ? { port } : {}) });
    const info = JSON.stringify({ reason: result.reason, replyReason: result.replyReason, path: result.path.map((h) => `${h.node}:${h.stage}:${h.detail}`) }, null, 1);
    expect(result.delivered, info).toBe(row.delivered);
    if (row.reason !== undefined) {
      if (typeof row.reason === "string") expect(result.reason, info).toBe(row.reason);
      else expect(result.reason, info).toMatch(row.reason);
    }
    if (!row.delivered) {
      expect(result.reason, info).toBeTruthy();
      expect(result.seenSource).toBeUndefined();
    }
    if (row.stage !== undefined) expect(result.drop?.stage, info).toBe(row.stage);
    if (row.rule !== undefined) expect(result.drop?.rule, info).toBe(row.rule);
    if (row.seenSource !== undefined) expect(result.seenSource, info).toBe(row.seenSource);
    if (row.natted !== undefined) expect(result.natted, info).toBe(row.natted);
    if (row.replyDelivered !== undefined) expect(result.replyDelivered, info).toBe(row.replyDelivered);
    if (row.replyReason !== undefined) {
      if (typeof row.replyReason === "string") expect(result.replyReason, info).toBe(row.replyReason);
      else expect(result.replyReason, info).toMatch(row.replyReason);
    }
    for (const s of row.stages ?? []) expect(stagesOf(result), info).toContain(s);
    for (const s of row.noStages ?? []) expect(stagesOf(result), info).not.toContain(s);
    if (row.through !== undefined)
      expect(
        result.path.map((h) => h.node),
        info,
      ).toContain(row.through);
    if (row.payload !== undefined) {
      const underlay = result.path.filter((h) => h.stage === "underlay");
      expect(underlay.length, info).toBeGreaterThan(0);
      for (const h of underlay) {
        expect(h.payload, info).toBe(row.payload);
        expect(h.detail).toContain(row.payload);
      }
    }
    if (row.pathMtu !== undefined) expect(result.pathMtu, info).toBe(row.pathMtu);
    if (row.mtuProblem !== undefined) expect(result.mtuProblem !== undefined, info).toBe(row.mtuProblem);
  });
});

describe("loops", () => {
  it("a routing loop is reported with its cycle", () => {
    const b = hostGw(2, 1);
    mutate(b, 0, (dp) => dp.routes.push({ dst: "10.244.9.0/24", via: "198.51.100.11" }));
    mutate(b, 1, (dp) => dp.routes.push({ dst: "10.244.9.0/24", via: "198.51.100.10" }));
    // A pod at 10.244.9.5 that exists nowhere routable: give node-1 a pod there so the endpoint exists.
    mutate(b, 0, (dp) => dp.pods.push({ key: "ghost/eth0", containerId: "ghost", ifName: "eth0", hostIf: "vethghost", mac: mac(9, 9), mtu: 1500, addresses: ["10.244.9.5/24"], routes: [] }));
    const r = b.fabric.send(pod("c-2-0/eth0"), pod("ghost/eth0"));
    expect(r.delivered).toBe(false);
    expect(r.reason).toMatch(/^loop: TTL exceeded at node-[12] \(cycle node-[12] → node-[12] → node-[12]\)$/);
    expect(r.drop?.stage).toBe("forward");
    expect(r.path.filter((h) => h.stage === "underlay").length).toBeGreaterThan(30);
    // and the class analysis says the same
    const pairs = b.fabric.reachabilityPairs({ from: [pod("c-2-0/eth0")], to: [pod("ghost/eth0")] });
    expect(pairs[0]!.reason).toBe(r.reason);
  });

  it("a loop through a router", () => {
    const topo = defaultTopology();
    topo.routers![0]!.staticRoutes = [{ dst: "10.244.9.0/24", via: "198.51.100.10" }];
    const b = new SimFabric(topo);
    b.addNode({ name: "node-1", subnet: "a" });
    const dp = bridgeNode("node-1", 1, 1);
    dp.routes.push({ dst: "10.244.9.0/24", via: "198.51.100.1" });
    b.setDataplane("node-1", dp);
    const r = b.send(pod("c-1-0/eth0"), external("internet"));
    expect(r.delivered).toBe(true);
    const loop = b.send(external("internet"), node("node-1"));
    expect(loop.delivered).toBe(true);
    const dpx = emptyDataplane("node-1");
    dpx.sysctls = { ipv4Forwarding: true };
    dpx.routes.push({ dst: "10.244.9.0/24", via: "198.51.100.1" });
    dpx.pods.push({ key: "x/eth0", containerId: "x", ifName: "eth0", hostIf: "vx", mac: mac(1, 2), mtu: 1500, addresses: ["10.244.9.9/32"], routes: [] });
    b.setDataplane("node-1", dpx);
    const l = b.send(external("internet"), pod("x/eth0"));
    expect(l.delivered).toBe(false);
    expect(l.reason).toMatch(/cycle (r1|node-1) → (r1|node-1) → (r1|node-1)/);
  });
});

describe("a container with two interfaces (eth0 and net1 share one namespace, one routing table)", () => {
  /** node-1's container c-1-0 gets net1 on bridge cni1 (10.245.1.0/24), with a default route of its own. */
  function twoInterfaces(edit: (eth0: PodInterface, net1: PodInterface) => void = () => {}): Built {
    const b = hostGw(2, 2);
    return mutate(b, 0, (dp) => {
      dp.links.push({ kind: "bridge", name: "cni1" });
      dp.addresses.push({ dev: "cni1", cidr: "10.245.1.1/24" });
      const eth0 = dp.pods.find((p) => p.key === "c-1-0/eth0")!;
      const net1: PodInterface = {
        key: "c-1-0/net1",
        containerId: "c-1-0",
        ifName: "net1",
        hostIf: "veth1n1",
        bridge: "cni1",
        mac: mac(1999, 0xbb),
        mtu: 1500,
        addresses: ["10.245.1.2/24"],
        routes: [{ dst: "0.0.0.0/0", via: "10.245.1.1" }],
      };
      edit(eth0, net1);
      dp.pods.push(net1);
    });
  }
  const routeHops = (r: PacketResult): string[] => r.path.filter((h) => h.stage === "pod-route").map((h) => h.detail);

  it("eth0 keeps the default route: net1's goes in at metric 100 beside it, and what eth0 or net1 sends off-subnet leaves through eth0", () => {
    const b = twoInterfaces();
    const r = b.fabric.send(A, B);
    expect(r.delivered, r.reason).toBe(true);
    expect(routeHops(r)).toEqual([expect.stringMatching(/matches 0\.0\.0\.0\/0 via 10\.244\.1\.1 dev eth0$/)]);
    const fromNet1 = b.fabric.send(pod("c-1-0/net1"), B);
    expect(routeHops(fromNet1)).toEqual([expect.stringMatching(/matches 0\.0\.0\.0\/0 via 10\.244\.1\.1 dev eth0$/)]);
  });

  it("when net1's route has the lower metric, eth0's packets leave through net1 (cni1), as in the kernel's one table", () => {
    const b = twoInterfaces((eth0, net1) => {
      eth0.routes = [{ dst: "0.0.0.0/0", via: "10.244.1.1", metric: 50 }];
      net1.routes = [{ dst: "0.0.0.0/0", via: "10.245.1.1", metric: 10 }];
    });
    const r = b.fabric.send(A, B);
    expect(routeHops(r)).toEqual([expect.stringMatching(/matches 0\.0\.0\.0\/0 via 10\.245\.1\.1 dev net1 metric 10$/)]);
    expect(
      r.path.some((h) => h.stage === "bridge" && h.detail.includes("cni1")),
      JSON.stringify(r.path),
    ).toBe(true);
  });

  it("two interfaces routing one destination at the same metric are refused (the kernel would keep only one), naming the field; in two containers they are fine", () => {
    expect(() =>
      twoInterfaces((eth0, net1) => {
        eth0.routes = [{ dst: "0.0.0.0/0", via: "10.244.1.1", metric: 100 }];
        net1.routes = [{ dst: "0.0.0.0/0", via: "10.245.1.1" }];
      }),
    ).toThrow(/pods\[\d+\]\.routes\[0\]\.metric: must differ from dataplane\(node-1\)\.pods\[0\]\.routes\[0\]'s: .*0\.0\.0\.0\/0 at metric 100/);
    const other = twoInterfaces((eth0, net1) => {
      eth0.routes = [{ dst: "0.0.0.0/0", via: "10.244.1.1", metric: 100 }];
      net1.containerId = "c-1-9";
      net1.key = "c-1-9/net1";
    });
    expect(other.fabric.send(A, B).delivered).toBe(true);
  });
});
