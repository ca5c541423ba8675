/**
 * The simulator against the kernel, cell by cell.
 *
 * Two halves:
 *
 *  - Reachability tables (`ReachTable`): who reaches whom by TCP, UDP and ping, and which source
 *    address the receiver saw, over the same endpoints (pods, nodes, external hosts). The
 *    simulator's comes from walking packets (`simReachTable`, a packet and its reply); the
 *    kernel's from real probes (`kernelReachTable`). `compareReachTables` lists every cell where
 *    they disagree. The kernel conformance run (section I) uses these with a lab's cnikitd.
 *
 *  - The differential test (`runDifferential`): a seeded random scenario (backend and mode,
 *    2-3 nodes, 1-2 pods per node, maybe a NetworkPolicy, maybe one fault) is run in a SimCluster;
 *    the agents' NodeDataplanes — with the fault applied identically — are then walked by a
 *    `SimFabric` AND rendered by `LinuxRenderer` into the namespaces of a lab built with the same
 *    topology and addresses (no cnikitd: the same data goes to both renderers). Both tables must
 *    agree in every cell, including the source address the receiver saw.
 *
 * Everything the differential creates outside the lab (pod namespaces `ckl-<lab>-dp<i>`, their
 * probe agents) is removed by `runDifferential` itself, also when it fails; the lab is taken down.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync, readdirSync } from "node:fs";
import { ConfigError, kubeNamespaceKey, kubeNamespaceValue, kubeNetworkPolicyKey, seededRandom, type NodeDataplane, type NodeInfo } from "@cnikit/core";
import { builtinBackend } from "@cnikit/backends";
import { createNetns, deleteNetns, listNetns, LinuxRenderer } from "@cnikit/linux";
import { SimCluster, SimFabric, type Endpoint, type PacketResult, type SimTopology } from "@cnikit/sim";
import { resolveBackendMode, startLab, type Lab } from "./lab.ts";
import { DEFAULT_STATE_ROOT, PROBE_PORT, checkLabName, labDir, nsPrefix } from "./plan.ts";
import { downLab, type DownReport } from "./down.ts";
import { PROBE_AGENT, ProbeClient, type ProbeResult } from "./probe.ts";
import { cmdlineOf, processMatches, stopProcesses } from "./system.ts";

// ---- reachability tables ---------------------------------------------------------------------

/** A probe protocol of the tables (`ping` is ICMP echo). */
export type ReachProto = "tcp" | "udp" | "ping";
/** Every protocol of a table, in order. */
export const REACH_PROTOS: readonly ReachProto[] = ["tcp", "udp", "ping"];

/** An endpoint of a table: a pod, a node (its host namespace) or a host outside the cluster. */
export interface ReachEndpoint {
  name: string;
  kind: "pod" | "node" | "external";
  /** The address probes go to (a pod's first IPv4, a node's underlay address). */
  address: string;
  /** The pod's node. */
  node?: string;
}

/** One cell's outcome. */
export interface ReachVerdict {
  /** The packet and its reply made it (TCP handshake, UDP echo, ICMP echo reply). */
  reach: boolean;
  /** TCP/UDP: the source address the receiver saw. */
  seen?: string;
  /** Why not (the simulator's drop reason, the probe's error). */
  why?: string;
}

/** A reachability table: `cells[cellKey(from, to, proto)]` for every pair of `reachPairs`. */
export interface ReachTable {
  endpoints: ReachEndpoint[];
  protos: ReachProto[];
  cells: Record<string, ReachVerdict>;
}

/** The key of one cell. */
export function cellKey(from: string, to: string, proto: ReachProto): string {
  return `${from} > ${to} ${proto}`;
}

/**
 * The ordered pairs a table holds: pod → pod (both directions, same and other nodes), node → pod,
 * pod → node and pod → external host. Not node → node (the underlay) and not the diagonal.
 */
export function reachPairs(endpoints: readonly ReachEndpoint[]): [ReachEndpoint, ReachEndpoint][] {
  const out: [ReachEndpoint, ReachEndpoint][] = [];
  for (const a of endpoints) {
    for (const b of endpoints) {
      if (a.name === b.name) continue;
      if (a.kind === "pod" || (a.kind === "node" && b.kind === "pod")) out.push([a, b]);
    }
  }
  return out;
}

/** Whether the receiver of `from → to` must be judged for NAT: a pod sending to a pod or outside. */
function natJudged(from: ReachEndpoint, to: ReachEndpoint): boolean {
  return from.kind === "pod" && to.kind !== "node";
}

const SIM_PROTOCOL = { tcp: "tcp", udp: "udp", ping: "icmp" } as const;

/**
 * The simulator's table: one `send` per cell (a packet to port `port`, default the probe port, and
 * its reply). `simOf` maps an endpoint to the simulator's, or undefined for one the simulator does
 * not hold (a pod whose interface was taken away): its cells are unreachable.
 */
export function simReachTable(options: {
  endpoints: ReachEndpoint[];
  send: (from: Endpoint, to: Endpoint, o: { protocol: "tcp" | "udp" | "icmp"; port: number }) => PacketResult;
  simOf: (e: ReachEndpoint) => Endpoint | undefined;
  protos?: readonly ReachProto[];
  port?: number;
}): ReachTable {
  const protos = [...(options.protos ?? REACH_PROTOS)];
  const cells: Record<string, ReachVerdict> = {};
  for (const [from, to] of reachPairs(options.endpoints)) {
    const a = options.simOf(from);
    const b = options.simOf(to);
    for (const proto of protos) {
      if (!a || !b) {
        cells[cellKey(from.name, to.name, proto)] = { reach: false, why: `${!a ? from.name : to.name} has no interface` };
        continue;
      }
      const r = options.send(a, b, { protocol: SIM_PROTOCOL[proto], port: options.port ?? PROBE_PORT });
      const reach = r.delivered && r.replyDelivered !== false;
      const v: ReachVerdict = { reach };
      if (reach && proto !== "ping" && r.seenSource !== undefined) v.seen = r.seenSource;
      if (!reach) v.why = r.delivered ? `reply lost: ${r.replyReason ?? "no reason given"}` : (r.reason ?? "dropped");
      cells[cellKey(from.name, to.name, proto)] = v;
    }
  }
  return { endpoints: options.endpoints, protos, cells };
}

/** Probes one cell in the kernel (never throws for an unreachable peer). */
export type KernelProber = (from: ReachEndpoint, to: ReachEndpoint, proto: ReachProto, timeoutMs: number) => Promise<ProbeResult>;

/**
 * The kernel's table: every cell probed once with `timeoutMs` (default 1000), `concurrency` at a
 * time (default 16). A cell that did not reach is probed again (up to `retries` more times, default
 * 2, with three times the timeout) when `expect` says it should reach (or always without `expect`),
 * so a loaded machine does not turn a working path into a difference; a reached cell is final.
 */
export async function kernelReachTable(options: {
  endpoints: ReachEndpoint[];
  probe: KernelProber;
  protos?: readonly ReachProto[];
  timeoutMs?: number;
  concurrency?: number;
  retries?: number;
  expect?: ReachTable;
}): Promise<ReachTable> {
  const protos = [...(options.protos ?? REACH_PROTOS)];
  const timeoutMs = options.timeoutMs ?? 1000;
  const retries = options.retries ?? 2;
  const cells: Record<string, ReachVerdict> = {};
  const jobs: (() => Promise<void>)[] = [];
  for (const [from, to] of reachPairs(options.endpoints)) {
    for (const proto of protos) {
      const key = cellKey(from.name, to.name, proto);
      jobs.push(async () => {
        let r = await options.probe(from, to, proto, timeoutMs);
        const wanted = options.expect ? options.expect.cells[key]?.reach === true : true;
        for (let i = 0; !r.ok && wanted && i < retries; i++) r = await options.probe(from, to, proto, timeoutMs * 3);
        const v: ReachVerdict = { reach: r.ok };
        if (r.ok && proto !== "ping" && r.seen !== undefined) v.seen = r.seen;
        if (!r.ok) v.why = r.error ?? "no answer";
        cells[key] = v;
      });
    }
  }
  await runLimited(jobs, options.concurrency ?? 16);
  return { endpoints: options.endpoints, protos, cells };
}

/** A cell where two tables disagree. */
export interface ReachMismatch {
  from: string;
  to: string;
  proto: ReachProto;
  /** `reach`: one reached and the other did not; `nat`: both reached, the receivers saw different kinds of source. */
  kind: "reach" | "nat";
  sim: ReachVerdict | undefined;
  kernel: ReachVerdict | undefined;
}

/**
 * Every cell where `sim` and `kernel` disagree. Reachability always; for a pod sending to a pod or
 * outside, also whether the receiver saw the sender's own address (no NAT) — or, with
 * `exactSeen`, the same source address (the differential test, where both have the same
 * addresses). The endpoints are matched by name; the tables may hold different addresses.
 */
export function compareReachTables(sim: ReachTable, kernel: ReachTable, options: { exactSeen?: boolean } = {}): ReachMismatch[] {
  const out: ReachMismatch[] = [];
  const simEp = new Map(sim.endpoints.map((e) => [e.name, e]));
  const kEp = new Map(kernel.endpoints.map((e) => [e.name, e]));
  for (const [from, to] of reachPairs(sim.endpoints)) {
    for (const proto of sim.protos) {
      const key = cellKey(from.name, to.name, proto);
      const s = sim.cells[key];
      const k = kernel.cells[key];
      if (s?.reach !== k?.reach || s === undefined || k === undefined) {
        out.push({ from: from.name, to: to.name, proto, kind: "reach", sim: s, kernel: k });
        continue;
      }
      if (!s.reach || proto === "ping" || !natJudged(from, to)) continue;
      if (options.exactSeen) {
        if (s.seen !== k.seen) out.push({ from: from.name, to: to.name, proto, kind: "nat", sim: s, kernel: k });
        continue;
      }
      const sOwn = s.seen === undefined || s.seen === simEp.get(from.name)?.address;
      const kOwn = k.seen === undefined || k.seen === kEp.get(from.name)?.address;
      if (sOwn !== kOwn) out.push({ from: from.name, to: to.name, proto, kind: "nat", sim: s, kernel: k });
    }
  }
  return out;
}

/** Counts of a table: cells, reached, unreachable. */
export function tableCounts(t: ReachTable): { cells: number; reached: number; unreachable: number } {
  const vs = Object.values(t.cells);
  const reached = vs.filter((v) => v.reach).length;
  return { cells: vs.length, reached, unreachable: vs.length - reached };
}

function verdictText(v: ReachVerdict | undefined): string {
  if (!v) return "no answer recorded";
  if (v.reach) return v.seen !== undefined ? `reached (receiver saw ${v.seen})` : "reached";
  return `unreachable (${v.why ?? "no reason"})`;
}

/** One line per mismatch (at most `max`, default 12), for failure messages. */
export function formatMismatches(ms: readonly ReachMismatch[], max = 12): string {
  const lines = ms.slice(0, max).map((m) => `${m.from} → ${m.to} ${m.proto}: simulator ${verdictText(m.sim)}; kernel ${verdictText(m.kernel)}`);
  if (ms.length > max) lines.push(`... and ${ms.length - max} more`);
  return lines.join("\n");
}

/** The table as text: one row per source, one column per destination, ✓/✗ per protocol. */
export function formatReachTable(t: ReachTable): string {
  const names = t.endpoints.map((e) => e.name);
  const w = Math.max(6, ...names.map((n) => n.length));
  const col = Math.max(t.protos.length, ...names.map((n) => n.length));
  const pad = (s: string, n: number): string => s + " ".repeat(Math.max(0, n - [...s].length));
  const lines = [`${pad("from\\to", w)}  ${names.map((n) => pad(n, col)).join("  ")}`.trimEnd()];
  for (const a of t.endpoints) {
    const row = t.endpoints.map((b) => {
      const marks = t.protos.map((p) => {
        const v = t.cells[cellKey(a.name, b.name, p)];
        return v === undefined ? "·" : v.reach ? "✓" : "✗";
      });
      return pad(marks.every((m) => m === "·") ? "·" : marks.join(""), col);
    });
    lines.push(`${pad(a.name, w)}  ${row.join("  ")}`.trimEnd());
  }
  return lines.join("\n");
}

async function runLimited(jobs: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, jobs.length)) }, worker));
}

// ---- scenarios ---------------------------------------------------------------------------------

/** The backend modes the differential test draws from. */
export const DIFF_MODES: readonly { backend: "flannel" | "calico"; mode: string }[] = [
  { backend: "flannel", mode: "vxlan" },
  { backend: "flannel", mode: "host-gw" },
  { backend: "calico", mode: "bgp" },
  { backend: "calico", mode: "vxlan-crosssubnet" },
];

/** A fault applied identically to the dataplanes both renderers get. `pick` chooses (modulo) among the candidates. */
export type DiffFault =
  | { kind: "route"; node: number; pick: number }
  | { kind: "fdb"; node: number; pick: number }
  | { kind: "neighbour"; node: number; pick: number }
  | { kind: "pod-routes"; pick: number }
  | { kind: "pod-removed"; pick: number };

/** A pod of a scenario. */
export interface DiffPod {
  name: string;
  /** 1-based node index. */
  node: number;
  namespace: string;
  labels: Record<string, string>;
}

/** A random scenario: everything `runDifferential` does follows from it. */
export interface DiffScenario {
  seed: number;
  backend: "flannel" | "calico";
  mode: string;
  nodes: number;
  pods: DiffPod[];
  /** Namespaces of the pods with their labels (written to the store for policies). */
  namespaces: { name: string; labels: Record<string, string> }[];
  /** networking.k8s.io/v1 NetworkPolicy objects (calico only: flannel does not claim policy). */
  policies: Record<string, unknown>[];
  fault?: DiffFault;
}

const NAMESPACES = [
  { name: "team-a", labels: { team: "a" } },
  { name: "team-b", labels: { team: "b" } },
];

/**
 * The scenario of `seed`. Pure and deterministic: 2-3 nodes, 1-2 pods each (labels `app: <name>`,
 * namespaces team-a / team-b), a mode of `DIFF_MODES`; for calico, a NetworkPolicy with
 * probability 1/2 (one selected pod, ingress and/or egress, a peer by pod label, namespace label or
 * ipBlock, any port or TCP/UDP 8080 or TCP 80); a fault with probability 3/4 (flannel always gets
 * one when it gets no policy, so most scenarios have unreachable cells). `options.mode` fixes the
 * backend and mode (the rest is still drawn from the seed).
 */
export function randomScenario(seed: number, options: { mode?: { backend: "flannel" | "calico"; mode: string } } = {}): DiffScenario {
  const rnd = seededRandom(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const drawn = DIFF_MODES[int(DIFF_MODES.length)]!;
  const m = options.mode ?? drawn;
  const nodes = 2 + int(2);
  const pods: DiffPod[] = [];
  for (let n = 1; n <= nodes; n++) {
    const count = 1 + int(2);
    for (let k = 1; k <= count; k++) {
      const name = `p${n}${k}`;
      const ns = NAMESPACES[int(NAMESPACES.length)]!;
      pods.push({ name, node: n, namespace: ns.name, labels: { app: name } });
    }
  }
  const policies: Record<string, unknown>[] = [];
  if (m.backend === "calico" && rnd() < 0.5) policies.push(randomPolicy(rnd, pods));
  const wantFault = rnd() < 0.75 || (policies.length === 0 && m.backend === "flannel");
  let fault: DiffFault | undefined;
  if (wantFault) {
    const kinds: DiffFault["kind"][] = ["route", "route", "fdb", "neighbour", "pod-routes", "pod-removed"];
    const kind = kinds[int(kinds.length)]!;
    const pick = int(1000);
    const node = 1 + int(nodes);
    fault = kind === "pod-routes" || kind === "pod-removed" ? { kind, pick } : { kind, node, pick };
  }
  return { seed, backend: m.backend, mode: m.mode, nodes, pods, namespaces: NAMESPACES.map((n) => ({ name: n.name, labels: { ...n.labels } })), policies, ...(fault ? { fault } : {}) };
}

function randomPolicy(rnd: () => number, pods: DiffPod[]): Record<string, unknown> {
  const int = (n: number): number => Math.floor(rnd() * n);
  const target = pods[int(pods.length)]!;
  const others = pods.filter((p) => p !== target);
  const types = [["Ingress"], ["Egress"], ["Ingress", "Egress"]][int(3)]!;
  const peer = (): Record<string, unknown> => {
    const k = int(3);
    if (k === 0 && others.length > 0) return { podSelector: { matchLabels: { app: others[int(others.length)]!.name } }, namespaceSelector: {} };
    if (k === 1) return { namespaceSelector: { matchLabels: { team: int(2) === 0 ? "a" : "b" } } };
    return { ipBlock: { cidr: ["198.51.100.0/24", "192.0.2.0/24", "10.244.0.0/16"][int(3)]! } };
  };
  const ports = (): Record<string, unknown> => {
    const k = int(4);
    if (k === 0) return {};
    if (k === 1) return { ports: [{ protocol: "TCP", port: PROBE_PORT }] };
    if (k === 2) return { ports: [{ protocol: "UDP", port: PROBE_PORT }] };
    return { ports: [{ protocol: "TCP", port: 80 }] };
  };
  const spec: Record<string, unknown> = { podSelector: { matchLabels: { app: target.name } }, policyTypes: types };
  if (types.includes("Ingress")) spec["ingress"] = int(3) === 0 ? [] : [{ from: [peer()], ...ports() }];
  if (types.includes("Egress")) spec["egress"] = int(3) === 0 ? [] : [{ to: [peer()], ...ports() }];
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: `diff-${target.name}`, namespace: target.namespace }, spec };
}

/** A one-line description of a scenario (printed with its seed on failure). */
export function describeScenario(s: DiffScenario): string {
  const pods = s.pods.map((p) => `${p.name}@node-${p.node}(${p.namespace})`).join(", ");
  const pol = s.policies.length > 0 ? `; policy ${JSON.stringify(s.policies[0])}` : "";
  const fault = s.fault ? `; fault ${JSON.stringify(s.fault)}` : "";
  return `seed ${s.seed}: ${s.backend} ${s.mode}, ${s.nodes} nodes, pods ${pods}${pol}${fault}`;
}

// ---- the simulator side ------------------------------------------------------------------------

/** What the simulator built for a scenario: the dataplanes both renderers get, and the simulator's table. */
export interface SimSide {
  topology: SimTopology;
  infos: NodeInfo[];
  /** The agents' dataplanes with the fault applied. */
  dataplanes: NodeDataplane[];
  /** Pod name → key, node name and address. */
  pods: Map<string, { key: string; node: string; address: string }>;
  /** The fault as applied, in words (or "none"). */
  faultText: string;
  /** Pods whose interface the fault removed. */
  removedPods: Set<string>;
  endpoints: ReachEndpoint[];
  table: ReachTable;
}

/**
 * Runs the scenario's agents in a SimCluster (same topology the lab picks for the mode), applies
 * the fault to a copy of their dataplanes and walks every cell through a `SimFabric` holding
 * exactly those dataplanes. Throws the backend's or the simulator's error (e.g. a faulted dataplane
 * the simulator refuses to compile).
 */
export async function simulateScenario(s: DiffScenario): Promise<SimSide> {
  const resolved = resolveBackendMode({ backend: s.backend, mode: s.mode });
  const entry = builtinBackend(s.backend);
  const topology = resolved.topology;
  const cluster = SimCluster.create({ backend: entry.backend, config: entry.backend.parseConfig(resolved.config), topology, seed: s.seed });
  try {
    for (let i = 1; i <= s.nodes; i++) await cluster.addNode({ name: `node-${i}` });
    await cluster.settle({ limitMs: resolved.summary.convergenceMs });
    for (const ns of s.namespaces) await cluster.store.put(kubeNamespaceKey(ns.name), kubeNamespaceValue(ns));
    const pods = new Map<string, { key: string; node: string; address: string }>();
    for (const p of s.pods) {
      const sp = await cluster.addPod(`node-${p.node}`, { name: p.name, namespace: p.namespace, labels: p.labels });
      const address = sp.addresses.find((a) => !a.includes(":"));
      if (!address) throw new ConfigError({ component: "lab", field: "pods", rule: `pod ${p.name} got no IPv4 address in the simulator`, value: sp.addresses });
      pods.set(p.name, { key: sp.key, node: sp.node, address });
    }
    for (const pol of s.policies) {
      const meta = pol["metadata"] as { name: string; namespace: string };
      await cluster.store.put(kubeNetworkPolicyKey(meta.namespace, meta.name), JSON.stringify(pol));
    }
    await cluster.settle({ limitMs: resolved.summary.convergenceMs });
    const infos = cluster.nodes().map((n) => structuredClone(n.info));
    const dataplanes = cluster.nodes().map((n) => structuredClone(cluster.dataplane(n.name)));
    const { text, removed } = applyFault(s.fault, dataplanes, pods);
    const fabric = new SimFabric(topology);
    infos.forEach((info, i) => fabric.setNode(info, dataplanes[i]!));
    const endpoints: ReachEndpoint[] = [
      ...s.pods.map((p): ReachEndpoint => ({ name: p.name, kind: "pod", address: pods.get(p.name)!.address, node: `node-${p.node}` })),
      ...infos.map((n): ReachEndpoint => ({ name: n.name, kind: "node", address: n.underlay[0]!.address })),
      ...(topology.externals ?? []).map((e): ReachEndpoint => ({ name: e.name, kind: "external", address: e.address })),
    ];
    const simOf = (e: ReachEndpoint): Endpoint | undefined => {
      if (e.kind === "node") return { kind: "node", name: e.name };
      if (e.kind === "external") return { kind: "external", name: e.name };
      return removed.has(e.name) ? undefined : { kind: "pod", key: pods.get(e.name)!.key };
    };
    const table = simReachTable({ endpoints, send: (a, b, o) => fabric.send(a, b, o), simOf });
    return { topology, infos, dataplanes, pods, faultText: text, removedPods: removed, endpoints, table };
  } finally {
    await cluster.close();
  }
}

/**
 * Applies `fault` to `dataplanes` in place and says what it did. A pod taken away also loses
 * everything on its node that names its host interface (routes, neighbours, proxy ARP, filters),
 * as if the agent had never planned it. An FDB or neighbour fault on a node that has none (host-gw,
 * BGP) removes a route instead; a node with no route at all is left alone, and the text says so.
 */
export function applyFault(fault: DiffFault | undefined, dataplanes: NodeDataplane[], pods: ReadonlyMap<string, { key: string; node: string }>): { text: string; removed: Set<string> } {
  const removed = new Set<string>();
  if (!fault) return { text: "none", removed };
  if (fault.kind === "route" || fault.kind === "fdb" || fault.kind === "neighbour") {
    const dp = dataplanes[(fault.node - 1) % dataplanes.length]!;
    let kind: "route" | "fdb" | "neighbour" = fault.kind;
    let list: unknown[] = kind === "route" ? dp.routes : kind === "fdb" ? dp.fdb : dp.neighbours;
    let note = "";
    if (list.length === 0 && kind !== "route") {
      note = ` (node ${dp.node} has no ${kind} entry: a route instead)`;
      kind = "route";
      list = dp.routes;
    }
    if (list.length === 0) return { text: `${kind}: node ${dp.node} has none, nothing removed`, removed };
    const [gone] = list.splice(fault.pick % list.length, 1);
    return { text: `${kind} removed on ${dp.node}${note}: ${JSON.stringify(gone)}`, removed };
  }
  const names = [...pods.keys()];
  const name = names[fault.pick % names.length]!;
  const pod = pods.get(name)!;
  const dp = dataplanes.find((d) => d.node === pod.node)!;
  const iface = dp.pods.find((p) => p.key === pod.key)!;
  if (fault.kind === "pod-routes") {
    iface.routes = [];
    return { text: `pod ${name} on ${pod.node}: every route inside the pod removed`, removed };
  }
  dp.pods = dp.pods.filter((p) => p !== iface);
  dp.routes = dp.routes.filter((r) => r.dev !== iface.hostIf);
  dp.neighbours = dp.neighbours.filter((n) => n.dev !== iface.hostIf);
  dp.filters = dp.filters.filter((f) => f.pod !== iface.key);
  if (dp.sysctls.proxyArp) dp.sysctls.proxyArp = dp.sysctls.proxyArp.filter((d) => d !== iface.hostIf);
  removed.add(name);
  return { text: `pod ${name} on ${pod.node}: its interface removed (pod namespace left empty)`, removed };
}

// ---- the kernel side ---------------------------------------------------------------------------

/** What one differential run found. */
export interface DiffOutcome {
  scenario: DiffScenario;
  description: string;
  faultText: string;
  sim: ReachTable;
  kernel: ReachTable;
  mismatches: ReachMismatch[];
  /** Cells unreachable in the simulator's table. */
  unreachable: number;
  cells: number;
  /** Wall time of the whole run. */
  ms: number;
}

/** Options of `runDifferential`. */
export interface DifferentialOptions {
  /** Lab name (default `d<pid>`); namespaces `ckl-<name>-*`. */
  name?: string;
  stateRoot?: string;
  /** Per-probe timeout (default 1000 ms; cells the simulator says reach are retried with 3x). */
  timeoutMs?: number;
  /**
   * Runs after both sides are rendered and before probing, with the lab and each pod's namespace
   * by pod name: tests break the kernel side alone here to prove the comparison catches it.
   */
  tamper?: (lab: Lab, podNamespaces: ReadonlyMap<string, string>) => Promise<void>;
  log?: (line: string) => void;
}

interface PodAgent {
  name: string;
  ns: string;
  pid: number;
  socket: string;
  client: ProbeClient;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startPodAgent(init: { name: string; ns: string; dir: string }): Promise<PodAgent> {
  const socket = `${init.dir}/${init.name}.sock`;
  const logPath = `${init.dir}/${init.name}.log`;
  const fd = openSync(logPath, "a");
  let pid: number | undefined;
  try {
    const child = spawn("ip", ["netns", "exec", init.ns, process.execPath, PROBE_AGENT, "--control", socket, "--port", String(PROBE_PORT)], { detached: true, stdio: ["ignore", fd, fd] });
    child.on("error", () => {});
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new Error(`[lab] could not start a probe agent in ${init.ns}`);
  const client = new ProbeClient(socket);
  const agent = { name: init.name, ns: init.ns, pid, socket, client };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (existsSync(socket) && (await client.alive())) return agent;
    if (Date.now() > deadline) {
      await stopPodAgent(agent);
      throw new Error(`[lab] the probe agent in ${init.ns} did not answer within 15 s (log ${logPath})`);
    }
    await sleep(30);
  }
}

/** Stops an agent this module started: by its PID, only while its command line shows its socket. */
async function stopPodAgent(a: PodAgent): Promise<void> {
  a.client.close();
  if (!processMatches(a.pid, a.socket)) return;
  try {
    process.kill(a.pid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
  for (let i = 0; i < 100 && processMatches(a.pid, a.socket); i++) await sleep(20);
}

/**
 * Runs one scenario in the simulator and in the kernel and compares the tables (see the module
 * comment). Builds a lab without daemons (underlay, etcd, probe agents) with the simulator's
 * topology, checks the node addresses agree, renders each node's dataplane with `LinuxRenderer`
 * into the node's namespace and each pod's container side into a namespace of its own, starts a
 * probe agent per pod and probes every cell. Never leaves anything behind: agents stopped, pod
 * namespaces deleted, the lab taken down, also when it throws. Throws when the kernel refuses a
 * dataplane (ApplyError, a pod the renderer could not attach), the addresses disagree, or the lab
 * cannot be built; differences in the tables are the outcome, not errors.
 */
export async function runDifferential(s: DiffScenario, options: DifferentialOptions = {}): Promise<DiffOutcome> {
  const t0 = Date.now();
  const log = options.log ?? (() => {});
  const sim = await simulateScenario(s);
  const name = options.name ?? `d${process.pid}`;
  const lab = await startLab({
    name,
    backend: s.backend,
    mode: s.mode,
    nodes: s.nodes,
    topology: sim.topology,
    daemons: false,
    ...(options.stateRoot !== undefined ? { stateRoot: options.stateRoot } : {}),
  });
  const agents: PodAgent[] = [];
  const podNs: string[] = [];
  const renderers: LinuxRenderer[] = [];
  try {
    for (const info of sim.infos) {
      const n = lab.node(info.name);
      if (n.address !== info.underlay[0]!.address) {
        throw new Error(`[lab] differential: the simulator placed ${info.name} at ${info.underlay[0]!.address}, the lab at ${n.address}`);
      }
    }
    const dir = `${lab.dir}/differential`;
    mkdirSync(dir, { recursive: true });
    // One namespace per pod (also for a pod whose interface the fault removed: it stays empty).
    const nsOf = new Map<string, string>();
    let i = 0;
    for (const p of s.pods) {
      const ns = `${nsPrefix(lab.name)}-dp${++i}`;
      podNs.push(ns);
      await createNetns(ns);
      nsOf.set(p.name, ns);
    }
    const keyToNs = new Map([...sim.pods].map(([podName, v]) => [v.key, nsOf.get(podName)!]));
    await Promise.all(
      sim.dataplanes.map(async (dp) => {
        const kernelDp = structuredClone(dp);
        for (const p of kernelDp.pods) p.netns = `/var/run/netns/${keyToNs.get(p.key)!}`;
        const r = new LinuxRenderer({ netns: lab.node(dp.node).ns, stateDir: `${dir}/linux-${dp.node}` });
        renderers.push(r);
        const report = await r.apply(kernelDp);
        if (report.failedPods.length > 0) {
          throw new Error(`[lab] differential: the renderer could not attach ${report.failedPods.map((f) => `${f.key} (${f.error})`).join(", ")} on ${dp.node}`);
        }
      }),
    );
    for (const p of s.pods) agents.push(await startPodAgent({ name: p.name, ns: nsOf.get(p.name)!, dir }));
    log(`differential ${describeScenario(s)}; fault: ${sim.faultText}; rendered in ${Date.now() - t0} ms`);
    if (options.tamper) await options.tamper(lab, nsOf);
    const byName = new Map(agents.map((a) => [a.name, a]));
    const probe: KernelProber = (from, to, proto, timeoutMs) =>
      from.kind === "pod" ? byName.get(from.name)!.client.probe({ proto, host: to.address, port: PROBE_PORT, timeoutMs }) : lab.probeAddress(from.name, to.address, proto, { timeoutMs });
    const kernel = await kernelReachTable({ endpoints: sim.endpoints, probe, expect: sim.table, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
    const mismatches = compareReachTables(sim.table, kernel, { exactSeen: true });
    const counts = tableCounts(sim.table);
    return {
      scenario: s,
      description: describeScenario(s),
      faultText: sim.faultText,
      sim: sim.table,
      kernel,
      mismatches,
      unreachable: counts.unreachable,
      cells: counts.cells,
      ms: Date.now() - t0,
    };
  } finally {
    for (const a of agents) await stopPodAgent(a);
    for (const r of renderers) await r.close().catch(() => undefined);
    for (const ns of podNs) await deleteNetns(ns).catch(() => undefined);
    lab.close();
    await lab.down();
  }
}

/**
 * Removes lab `name` with what `runDifferential` and `runLinuxConformance` made beside it when they
 * could not clean up themselves (a test that timed out, a killed process): processes whose command
 * line holds a path under `<lab dir>/differential/` (the pod probe agents), then every namespace
 * with the lab's prefix `ckl-<name>-` that the lab did not record (pod and scratch namespaces),
 * then `downLab`. Only this lab's paths and prefix are ever touched. Idempotent.
 */
export async function downLabWithExtras(name: string, options: { stateRoot?: string } = {}): Promise<DownReport> {
  const dir = labDir(checkLabName(name), options.stateRoot ?? DEFAULT_STATE_ROOT);
  const under = `${dir}/differential/`;
  const targets: { pid: number; marker: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const marker = cmdlineOf(Number(entry))?.find((a) => a.startsWith(under));
    if (marker) targets.push({ pid: Number(entry), marker });
  }
  await stopProcesses(targets, { signal: "SIGKILL", graceMs: 1000 });
  const report = await downLab(name, options);
  const prefix = `${nsPrefix(name)}-`;
  for (const ns of await listNetns()) if (ns.startsWith(prefix)) await deleteNetns(ns).catch(() => undefined);
  return report;
}
