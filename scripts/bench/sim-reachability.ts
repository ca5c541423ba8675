// Simulator all-pairs reachability (issue 19: goal build + walk <= 5 s for 1000 nodes x 30 pods,
// routed and vxlan): clusters of CNIKIT_SIM_BENCH_NODES nodes (default 200,1000) x
// CNIKIT_SIM_BENCH_PODS pods (default 30), dataplanes built directly (no agents), answered by
// SimFabric.reachability() (class-based, not one walk per pair). Two dataplane shapes: "routed"
// (host-gw: bridge per node, one route per peer via its underlay address, one L2 subnet) and
// "vxlan" (flannel-style: neighbour + FDB + onlink route per peer, nodes alternating between two
// subnets behind a router); CNIKIT_SIM_BENCH_SHAPES picks them. Printed per shape: the build in
// parts (nodes, the bench's own dataplane objects, compile), the walk, CPU time of each
// (process.cpuUsage, user + system: fairer than wall on a shared machine), heap in use (after a
// full GC when run with --expose-gc, else said), the ratio to the 5 s goal, and vxlan / routed in
// the same run (the "vxlan as fast as routed"). Nothing here asserts a speed.
// Before -> after (issue 19, 1000x30, same run, alternated, loaded 2-core machine at load ~13, CPU):
// routed build 5.7 -> 4.3 s, walk 5.5 -> 3.3 s, heap 368 -> 280 MB; vxlan build 9.2 -> 7.2 s, walk
// 13.8 -> 12.7 s, heap 680 -> 563 MB. Second pass (outer packets walked once per node over every
// tunnel endpoint, numeric IPv4 interval search; same runs alternated, loaded, CPU): routed walk
// 4.5/4.4 -> 3.7/3.5 s, vxlan walk 12.6/16.2 -> 12.9/10.7 s, builds and heap unchanged. See
// packages/sim/DESIGN.md ("At 1000 nodes") for what bounds it.
// Run alone: node --expose-gc --import tsx --conditions=source scripts/bench/sim-reachability.ts
import { emptyDataplane, type NodeDataplane, type NodeInfo } from "@cnikit/core";
import { SimFabric, type SimTopology } from "@cnikit/sim";
import { runIfMain, type Figure } from "./figures.ts";

const PODS_PER_NODE = Number(process.env.CNIKIT_SIM_BENCH_PODS ?? 30);

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

/** Builds the cluster; returns the fabric and the wall time of each part of the build. */
export function buildCluster(nodes: number, shape: "routed" | "vxlan"): { fabric: SimFabric; buildMs: number; nodesMs: number; dataplanesMs: number; compileMs: number } {
  const started = performance.now();
  const fabric = new SimFabric(topology(shape === "vxlan"));
  const infos: NodeInfo[] = [];
  for (let n = 1; n <= nodes; n++) infos.push(fabric.addNode({ name: `node-${n}`, subnet: shape === "vxlan" && n % 2 === 0 ? "b" : "a" }));
  const nodesDone = performance.now();
  // Each peer's texts are made once and shared by every dataplane that mentions the peer, as an
  // agent's plan shares them with the lease or node object they come from.
  const peers = infos.map((info, m) => ({ net: `${podNet(m + 1)}.0`, dst: `${podNet(m + 1)}.0/24`, vtep: mac(m + 1, 0xfe), underlay: info.underlay[0]!.address }));
  const dps = infos.map((info, k) => {
    const n = k + 1;
    const dp = baseDataplane(info.name, n, shape === "vxlan" ? 1450 : 1500);
    if (shape === "vxlan") {
      dp.links.push({ kind: "vxlan", name: "flannel.1", vni: 1, port: 8472, local: info.underlay[0]!.address, learning: false, mac: mac(n, 0xfe) });
      dp.addresses.push({ dev: "flannel.1", cidr: `${podNet(n)}.0/32` });
    }
    peers.forEach((peer, m) => {
      if (m === k) return;
      if (shape === "routed") {
        dp.routes.push({ dst: peer.dst, via: peer.underlay });
      } else {
        dp.neighbours.push({ dev: "flannel.1", ip: peer.net, mac: peer.vtep, permanent: true });
        dp.fdb.push({ dev: "flannel.1", mac: peer.vtep, dst: peer.underlay, permanent: true });
        dp.routes.push({ dst: peer.dst, via: peer.net, dev: "flannel.1", onlink: true });
      }
    });
    return dp;
  });
  const dataplanesDone = performance.now();
  infos.forEach((info, k) => fabric.setDataplane(info.name, dps[k]!));
  const done = performance.now();
  return { fabric, buildMs: done - started, nodesMs: nodesDone - started, dataplanesMs: dataplanesDone - nodesDone, compileMs: done - dataplanesDone };
}

/** Heap in use (MB), after a full GC when node runs with --expose-gc; says which. */
function heapMb(): { mb: number; gc: boolean } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
  return { mb: process.memoryUsage().heapUsed / 2 ** 20, gc: gc !== undefined };
}

function cpuMs(a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number {
  return (b.user - a.user + b.system - a.system) / 1000;
}

/** Runs the benchmark and returns its figures. */
export async function benchSimReachability(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const sizes = (process.env.CNIKIT_SIM_BENCH_NODES ?? "200,1000").split(",").map(Number);
  const shapes = (process.env.CNIKIT_SIM_BENCH_SHAPES ?? "routed,vxlan").split(",").filter((s): s is "routed" | "vxlan" => s === "routed" || s === "vxlan");
  for (const nodes of sizes) {
    const label = `${nodes}x${PODS_PER_NODE}`;
    const totals = new Map<string, number>();
    // routed first: the yardstick vxlan is compared with, measured in the same run
    for (const shape of shapes) {
      const cpu0 = process.cpuUsage();
      const b = buildCluster(nodes, shape);
      const cpu1 = process.cpuUsage();
      const report = b.fabric.reachability();
      const cpu2 = process.cpuUsage();
      const expected = nodes * PODS_PER_NODE * (nodes * PODS_PER_NODE - 1);
      if (report.pairs !== expected || report.delivered !== expected) {
        throw new Error(`sim-reachability ${shape} ${nodes}: expected ${expected} delivered pairs, got ${report.delivered}/${report.pairs}: ${report.failures[0]?.result.reason ?? ""}`);
      }
      const heap = heapMb();
      const total = b.buildMs + report.wallMs;
      totals.set(shape, total);
      figures.push({ name: `${shape} ${label} build: nodes`, value: b.nodesMs, unit: "ms" });
      figures.push({ name: `${shape} ${label} build: dataplanes (bench objects)`, value: b.dataplanesMs, unit: "ms" });
      figures.push({ name: `${shape} ${label} build: compile (setDataplane)`, value: b.compileMs, unit: "ms" });
      figures.push({ name: `${shape} ${label} build`, value: b.buildMs, unit: "ms" });
      figures.push({ name: `${shape} ${label} build CPU (user + system)`, value: cpuMs(cpu0, cpu1), unit: "ms" });
      figures.push({ name: `${shape} ${label} walk (reachability, world included)`, value: report.wallMs, unit: "ms" });
      figures.push({ name: `${shape} ${label} walk CPU (user + system)`, value: cpuMs(cpu1, cpu2), unit: "ms" });
      figures.push({ name: `${shape} ${label} build + walk`, value: total, unit: "ms" });
      figures.push({ name: `${shape} ${label} build + walk / goal 5 s`, value: total / 5000, unit: "x" });
      figures.push({ name: `${shape} ${label} pairs/s (walk)`, value: report.pairs / (report.wallMs / 1000), unit: "pairs/s" });
      figures.push({ name: `${shape} ${label} heap in use${heap.gc ? " (after gc)" : " (no --expose-gc: before gc)"}`, value: heap.mb, unit: "MB" });
      await new Promise((r) => setImmediate(r));
    }
    if (totals.size === 2) figures.push({ name: `vxlan / routed ${label} build + walk (same run)`, value: totals.get("vxlan")! / totals.get("routed")!, unit: "x" });
  }
  return figures;
}

await runIfMain(import.meta.url, "sim-reachability", benchSimReachability);
