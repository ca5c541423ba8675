// Pod ADD and DEL latency of the Linux renderer on the real kernel: one renderer per scratch node
// namespace, pods added one apply at a time (the way cnikitd applies after each CNI ADD), then
// removed one at a time. Figures: p50/p95 wall time per ADD and DEL, processes per ADD, the
// per-step breakdown (node batch + nft, pod batch + sysctls), and the cost of one `ip` process as
// the floor. Styles: flannel-like bridged pods; calico-like routed pods (proxy ARP: one sysctl
// process more in a named netns); bridged pods each with an ingress policy (the nft table is
// replaced on every ADD). Needs root, iproute2, nftables, util-linux, procps. Nothing asserted.
//
// Run alone: pnpm exec tsx --conditions=source packages/linux/scripts/bench-pods.ts [pods]
// From a benchmark: import { benchLinuxPods } from "../../packages/linux/scripts/bench-pods.ts".
import { emptyDataplane, type FilterPolicy, type NodeDataplane, type PodInterface } from "@cnikit/core";
import { LinuxRenderer, createNetns, deleteNetns, execIn, runIpBatch, type ApplyReport } from "../src/index.ts";

/** One measured figure (the shape of scripts/bench/figures.ts's Figure). */
export interface PodFigure {
  name: string;
  value: number;
  unit: string;
}

type Style = "bridge" | "routed" | "bridge+policy";

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
}

function pod(style: Style, i: number, netns: string): PodInterface {
  const a = `10.244.${1 + Math.floor((i + 2) / 250)}.${((i + 2) % 250) + 2}`;
  if (style === "routed") {
    return {
      key: `r${i}/eth0`,
      containerId: `r${i}`,
      ifName: "eth0",
      netns,
      hostIf: `calb${i}`,
      mac: "ee:ee:ee:00:00:01",
      mtu: 1450,
      addresses: [`${a}/32`],
      routes: [
        { dst: "169.254.1.1/32", scopeLink: true },
        { dst: "0.0.0.0/0", via: "169.254.1.1" },
      ],
    };
  }
  return {
    key: `b${i}/eth0`,
    containerId: `b${i}`,
    ifName: "eth0",
    netns,
    hostIf: `vethb${i}`,
    bridge: "cni0",
    mac: `0a:58:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`,
    mtu: 1450,
    addresses: [`${a}/16`],
    routes: [{ dst: "0.0.0.0/0", via: "10.244.0.1" }],
  };
}

function dataplane(style: Style, pods: PodInterface[]): NodeDataplane {
  const dp: NodeDataplane = { ...emptyDataplane("bench"), sysctls: { ipv4Forwarding: true }, pods };
  dp.nat = [{ id: "masq", kind: "masquerade", sources: ["10.244.0.0/16"], exceptDestinations: ["10.244.0.0/16"] }];
  if (style === "routed") {
    dp.routes = pods.map((p) => ({ dst: p.addresses[0]!, dev: p.hostIf }));
    dp.sysctls.proxyArp = pods.map((p) => p.hostIf);
    return dp;
  }
  dp.links = [{ kind: "bridge", name: "cni0", mtu: 1450, mac: "0a:58:0a:f4:00:01" }];
  dp.addresses = [{ dev: "cni0", cidr: "10.244.0.1/16" }];
  if (style === "bridge+policy") {
    dp.filters = pods.map((p): FilterPolicy => ({
      pod: p.key,
      direction: "ingress",
      defaultAction: "drop",
      rules: [{ id: `allow-${p.key}`, action: "accept", protocol: "tcp", ports: [{ from: 80, to: 80 }], peers: [{ cidrs: ["10.244.0.0/16"] }] }],
    }));
  }
  return dp;
}

async function style(style: Style, count: number, prefix: string): Promise<PodFigure[]> {
  const nodeNs = `${prefix}-${style.replace("+", "-")}`;
  const podNs: string[] = [];
  await createNetns(nodeNs);
  try {
    await runIpBatch(nodeNs, ["link add eth0 type veth peer name eth0p", "link set dev eth0p up", "addr add 192.168.50.1/24 dev eth0", "link set dev eth0 up", "route add default via 192.168.50.254"]);
    const renderer = new LinuxRenderer({ netns: nodeNs, owner: "bench" });
    await renderer.apply(dataplane(style, []));
    const pods: PodInterface[] = [];
    const adds: ApplyReport[] = [];
    for (let i = 0; i < count; i++) {
      const ns = `${prefix}-p${i}`;
      await createNetns(ns, { loopbackUp: false });
      podNs.push(ns);
      pods.push(pod(style, i, `/var/run/netns/${ns}`));
      const r = await renderer.apply(dataplane(style, pods));
      if (r.failedPods.length > 0) throw new Error(`bench: pod failed: ${r.failedPods[0]!.error}`);
      adds.push(r);
    }
    const dels: ApplyReport[] = [];
    while (pods.length > 0) {
      pods.pop();
      dels.push(await renderer.apply(dataplane(style, pods)));
    }
    await renderer.teardown();
    const ms = (rs: ApplyReport[]) => rs.map((r) => r.durationMs);
    const step = (rs: ApplyReport[], k: keyof ApplyReport["stepsMs"]) => rs.map((r) => r.stepsMs[k] ?? 0);
    return [
      { name: `${style}: ADD p50 (${count} pods, one apply each)`, value: percentile(ms(adds), 50), unit: "ms" },
      { name: `${style}: ADD p95`, value: percentile(ms(adds), 95), unit: "ms" },
      {
        name: `${style}: ADD processes (p50)`,
        value: percentile(
          adds.map((r) => r.processes),
          50,
        ),
        unit: "processes",
      },
      { name: `${style}: ADD step node (nft + node ip batch) p50`, value: percentile(step(adds, "node"), 50), unit: "ms" },
      { name: `${style}: ADD step pods (pod ip batch + sysctls) p50`, value: percentile(step(adds, "pods"), 50), unit: "ms" },
      { name: `${style}: ADD step plan (validate + diff) p50`, value: percentile(step(adds, "plan"), 50), unit: "ms" },
      { name: `${style}: DEL p50`, value: percentile(ms(dels), 50), unit: "ms" },
      { name: `${style}: DEL p95`, value: percentile(ms(dels), 95), unit: "ms" },
      {
        name: `${style}: DEL processes (p50)`,
        value: percentile(
          dels.map((r) => r.processes),
          50,
        ),
        unit: "processes",
      },
    ];
  } finally {
    for (const ns of podNs) await deleteNetns(ns);
    await deleteNetns(nodeNs);
  }
}

async function floor(prefix: string): Promise<PodFigure[]> {
  const ns = `${prefix}-floor`;
  await createNetns(ns);
  try {
    const ip: number[] = [];
    const nsenter: number[] = [];
    for (let i = 0; i < 30; i++) {
      let t = performance.now();
      await execIn(ns, ["ip", "link", "show", "lo"]);
      ip.push(performance.now() - t);
      t = performance.now();
      await execIn(`/var/run/netns/${ns}`, ["ip", "link", "show", "lo"]);
      nsenter.push(performance.now() - t);
    }
    return [
      { name: "floor: one `ip -n <ns>` process p50", value: percentile(ip, 50), unit: "ms" },
      { name: "floor: one `nsenter --net=<path> ip` process p50", value: percentile(nsenter, 50), unit: "ms" },
    ];
  } finally {
    await deleteNetns(ns);
  }
}

/** Runs every style with `pods` pods each (default 100) and returns the figures. */
export async function benchLinuxPods(pods = 100): Promise<PodFigure[]> {
  const prefix = `ck-lbench-${process.pid}`;
  const out = await floor(prefix);
  for (const s of ["bridge", "routed", "bridge+policy"] as const) out.push(...(await style(s, pods, prefix)));
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 100);
  const started = performance.now();
  console.log(`@cnikit/linux pod ADD/DEL — node ${process.version}, ${process.platform}/${process.arch}, ${n} pods per style`);
  const figures = await benchLinuxPods(n);
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const f of figures) console.log(`  ${f.name.padEnd(width)}  ${f.value.toFixed(2).padStart(10)} ${f.unit}`);
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
