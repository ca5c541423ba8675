// Simulator all-pairs reachability: clusters of 100, 200 and 1000 nodes x 20 pods, dataplanes built
// directly (no agents), answered by SimFabric.reachability() (class-based, not one walk per pair).
// Two dataplane shapes: "routed" (host-gw: bridge per node, one route per peer via its underlay
// address, one L2 subnet) and "vxlan" (flannel-style: neighbour + FDB + onlink route per peer,
// nodes alternating between two subnets behind a router). Wall-clock figures from
// performance.now(); nothing here asserts a speed.
// Run alone: pnpm exec tsx --conditions=source scripts/bench/sim-reachability.ts
import { emptyDataplane, type NodeDataplane, type NodeInfo } from "@cnikit/core";
import { SimFabric, type SimTopology } from "@cnikit/sim";
import { runIfMain, type Figure } from "./figures.ts";

const PODS_PER_NODE = 20;

function mac(n: number, kind: number): string {
  return [0x02, kind, (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Node n's pod subnet prefix (first three octets): 10.128.0.0/9 split into /24s. */
function podNet(n: number): string {
  return `10.${128 + (n >> 8)}.${n & 255}`;
}

function topology(twoSubnets: boolean): SimTopology {
  const subnets = [{ name: "a", cidr: "100.64.0.0/16", gateway: "100.64.0.1", mtu: 1500 }];
  const ifaces = [{ subnet: "a", address: "100.64.0.1" }];
  if (twoSubnets) {
    subnets.push({ name: "b", cidr: "100.65.0.0/16", gateway: "100.65.0.1", mtu: 1500 });
    ifaces.push({ subnet: "b", address: "100.65.0.1" });
  }
  subnets.push({ name: "ext", cidr: "192.0.2.0/24", gateway: "192.0.2.1", mtu: 1500 });
  ifaces.push({ subnet: "ext", address: "192.0.2.1" });
  return { subnets, routers: [{ name: "r1", interfaces: ifaces }], externals: [{ name: "internet", address: "192.0.2.200", subnet: "ext" }] };
}

function baseDataplane(name: string, n: number, podMtu: number): NodeDataplane {
  const dp = emptyDataplane(name);
  const net = podNet(n);
  dp.links.push({ kind: "bridge", name: "cni0", mac: mac(n, 0x01) });
  dp.addresses.push({ dev: "cni0", cidr: `${net}.1/24` });
  dp.sysctls = { ipv4Forwarding: true };
  dp.nat.push({ id: "masq", kind: "masquerade", sources: ["10.128.0.0/9"], exceptDestinations: ["10.128.0.0/9"] });
  for (let i = 0; i < PODS_PER_NODE; i++) {
    const id = `n${n}p${i}`;
    dp.pods.push({
      key: `${id}/eth0`,
      containerId: id,
      ifName: "eth0",
      hostIf: `veth${i}`,
      bridge: "cni0",
      mac: mac(n * 100 + i, 0xbb),
      mtu: podMtu,
      addresses: [`${net}.${i + 2}/24`],
      gateways: [`${net}.1`],
      routes: [{ dst: "0.0.0.0/0", via: `${net}.1` }],
    });
  }
  return dp;
}

/** Builds the cluster; returns the fabric and the wall time the build took. */
export function buildCluster(nodes: number, shape: "routed" | "vxlan"): { fabric: SimFabric; buildMs: number } {
  const started = performance.now();
  const fabric = new SimFabric(topology(shape === "vxlan"));
  const infos: NodeInfo[] = [];
  for (let n = 1; n <= nodes; n++) infos.push(fabric.addNode({ name: `node-${n}`, subnet: shape === "vxlan" && n % 2 === 0 ? "b" : "a" }));
  infos.forEach((info, k) => {
    const n = k + 1;
    const dp = baseDataplane(info.name, n, shape === "vxlan" ? 1450 : 1500);
    if (shape === "vxlan") {
      dp.links.push({ kind: "vxlan", name: "flannel.1", vni: 1, port: 8472, local: info.underlay[0]!.address, learning: false, mac: mac(n, 0xfe) });
      dp.addresses.push({ dev: "flannel.1", cidr: `${podNet(n)}.0/32` });
    }
    infos.forEach((peer, m) => {
      if (m === k) return;
      const pn = m + 1;
      if (shape === "routed") {
        dp.routes.push({ dst: `${podNet(pn)}.0/24`, via: peer.underlay[0]!.address });
      } else {
        dp.neighbours.push({ dev: "flannel.1", ip: `${podNet(pn)}.0`, mac: mac(pn, 0xfe), permanent: true });
        dp.fdb.push({ dev: "flannel.1", mac: mac(pn, 0xfe), dst: peer.underlay[0]!.address, permanent: true });
        dp.routes.push({ dst: `${podNet(pn)}.0/24`, via: `${podNet(pn)}.0`, dev: "flannel.1", onlink: true });
      }
    });
    fabric.setDataplane(info.name, dp);
  });
  return { fabric, buildMs: performance.now() - started };
}

/** Runs the benchmark and returns its figures. */
export async function benchSimReachability(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const sizes = (process.env.CNIKIT_SIM_BENCH_NODES ?? "100,200,1000").split(",").map(Number);
  for (const shape of ["routed", "vxlan"] as const) {
    for (const nodes of sizes) {
      const { fabric, buildMs } = buildCluster(nodes, shape);
      const report = fabric.reachability();
      const expected = nodes * PODS_PER_NODE * (nodes * PODS_PER_NODE - 1);
      if (report.pairs !== expected || report.delivered !== expected) {
        throw new Error(`sim-reachability ${shape} ${nodes}: expected ${expected} delivered pairs, got ${report.delivered}/${report.pairs}: ${report.failures[0]?.result.reason ?? ""}`);
      }
      figures.push({ name: `${shape} ${nodes}x${PODS_PER_NODE} build (dataplanes + compile)`, value: buildMs, unit: "ms" });
      figures.push({ name: `${shape} ${nodes}x${PODS_PER_NODE} reachability`, value: report.wallMs, unit: "ms" });
      figures.push({ name: `${shape} ${nodes}x${PODS_PER_NODE} pairs/s`, value: report.pairs / (report.wallMs / 1000), unit: "pairs/s" });
      await new Promise((r) => setImmediate(r));
    }
  }
  return figures;
}

await runIfMain(import.meta.url, "sim-reachability", benchSimReachability);
