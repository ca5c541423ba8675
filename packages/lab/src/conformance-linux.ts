/**
 * The conformance suite on the real kernel: `runLinuxConformance` builds a lab (nodes as network
 * namespaces, etcd, one cnikitd per node, pods made by the cnikit-cni executable) and runs
 * sections A, B, G and I of conformance.md against it, returning the suite's own `ConformanceReport`
 * (same check ids, same table printer, same JSON), marked `dataplane: "linux"`.
 *
 *  - A: addresses of the lab's pods (in range, unique, not reserved, also under concurrent ADDs
 *    through the executable); reachability probed with real TCP, UDP and ping between every pod,
 *    node → pod and pod → node, with the source address the receiver saw (no NAT between pods);
 *    pod → the external host masqueraded exactly when the config says so; the pod MTU read from
 *    the pod's interface and proven with a full-size DF ping across nodes.
 *  - B: the plugin executable itself: results in every version, DEL idempotence, release, failed
 *    ADDs that leave nothing behind, CHECK (silent, and catching a removed address or route),
 *    STATUS, GC, and the error JSON with its codes.
 *  - G: encryption.no-plaintext, for a backend that claims encryption with a config whose summary
 *    does not say `encrypted: false` ("not claimed" otherwise, as in the simulator): for a sample
 *    of ordered cross-node pod pairs (`KERNEL_G_PAIRS`, round-robin over node pairs; every pair of a
 *    2-node lab with 2 pods per node) and TCP and UDP, tcpdump captures every node's underlay
 *    `eth0` (capture.ts) while the pods exchange a random marker through the probe agents' echo
 *    padded to `KERNEL_G_PAYLOAD_BYTES` (it goes out and comes back); a flush sentinel each node
 *    sends proves its capture has caught up; then the marker, raw or in hex, must be in no captured
 *    packet (a hit names the pair, the protocol, the node, the outer packet), and each of the pair's
 *    nodes must have captured packets of the exchange both ways (packets long enough to carry the
 *    payload, between the two nodes' underlay addresses other than the peer transport's TCP, or
 *    between the pods themselves), or the capture cannot vouch. ICMP is not exchanged here (the
 *    simulator also walks it).
 *  - I: the same scenario in the simulator and the kernel gives the same reachability table cell
 *    by cell, and a NetworkPolicy written to the lab's etcd is enforced by nftables exactly as the
 *    simulator and @cnikit/netpol's evaluator say.
 *
 * Section A is not implemented here: its checks are the suite's own (conformance's driver.ts,
 * `DATAPLANE_CHECKS` and `CONCURRENT_IPAM_CHECK`), run on this file's kernel drivers
 * (`kernelDataplane`, `kernelChurnDriver`), so the simulator and the kernel judge by one rule.
 * Sections B, G and I still have kernel implementations of their own (see DESIGN.md).
 *
 * Every other check of the suite is reported "not run: simulator-only in this version", never
 * passed. A config the kernel cannot build (calico IPIP here) is reported "not run: kernel lacks
 * ipip: ..." for every kernel check.
 */
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  ConfigError,
  ENCAP_OVERHEAD,
  FileDatastore,
  KernelLacksError,
  Prefix,
  RealClock,
  canonicalDataplane,
  emptyDataplane,
  kubeNamespaceKey,
  kubeNamespaceValue,
  kubeNetworkPolicyKey,
  parseInterfaceAddress,
  topologyNeedsOf,
  type AttachResult,
  type Backend,
  type Link,
  type NetworkSummary,
  type NodeDataplane,
  type PodAttachment,
  type PodInterface,
  type PodRef,
  type PodRoute,
  type Sysctls,
} from "@cnikit/core";
import { builtinBackend, builtinBackends } from "@cnikit/backends";
import { CniRuntime, cniPluginPath, loadConfList, netnsWrapper, spawnExec } from "@cnikit/cni";
import {
  CLUSTER_STORE_LABEL,
  CONCURRENT_IPAM_CHECK,
  DATAPLANE_CHECKS,
  LIFECYCLE_CHECKS,
  SOURCES,
  drive,
  listChecks,
  runLifecycleCheck,
  reservePodInterface,
  selectChecks,
  type CheckResult,
  type CheckStatus,
  type CheckIdentity,
  type ChurnDriver,
  type ConformanceReport,
  type DataplaneCheck,
  type DpEndpoint,
  type EgressDelivery,
  type LifecycleCheck,
  type LifecycleDriver,
  type LifecycleDriverFactory,
  type ModelDataplane,
  type NattedPair,
  type NodeMtus,
  type ReachFailure,
  type StatusView,
  type StoreSnapshot,
  type SubResult,
} from "@cnikit/conformance/runner";
import { createNetns, defaultRouteProtocol, deleteNetns, parseJsonValues, readKernel } from "@cnikit/linux";
import { PolicyEvaluator, parsePolicyObject } from "@cnikit/netpol";
import { SimCluster, clusterTopologyOf, withUnderlayMtu, type Endpoint, type SimTopology } from "@cnikit/sim";
import {
  REACH_PROTOS,
  cellKey,
  compareReachTables,
  formatMismatches,
  kernelReachTable,
  reachPairs,
  simReachTable,
  tableCounts,
  type ReachEndpoint,
  type ReachProto,
  type ReachTable,
} from "./differential.ts";
import { labSecondaryAddresses, probeSocket } from "./build.ts";
import { UnderlayCapture, describePacket, ipv4Of, markerForms, packetsWith, type CapturedPacket } from "./capture.ts";
import { chooseTopology, startLab, type Lab, type LabPod, type PluginCall, type PluginOutcome } from "./lab.ts";
import { ETCD_PORT, PROBE_PORT, nsPrefix } from "./plan.ts";
import { ProbeClient } from "./probe.ts";
import type { LabBackendModule } from "./state.ts";
import { inNs, onPath, runAsync, type CommandResult } from "./system.ts";

/** Options of `runLinuxConformance`. */
export interface LinuxConformanceOptions {
  /**
   * The backend: a built-in backend's name, or the Backend object itself: a built-in one, or one
   * that is not built in together with `backendModule`.
   */
  backend: string | Backend<unknown>;
  /**
   * The module every cnikitd of the lab loads the backend from (cnikitd's `backend: {module, from?,
   * export?}`): required for a backend that is not built in; `config` is then required too.
   * `module` is a path (relative to `from`, default the current directory) or a package name
   * resolved from `from`.
   */
  backendModule?: LabBackendModule;
  /** The backend's own config, unparsed. Default: the fixture of `mode`. */
  config?: unknown;
  /** A fixture label of the backend (`vxlan`, `host-gw`, `bgp`, ...) when no `config` is given. */
  mode?: string;
  /** Label of the config in the report (default: `mode`, or `config`). */
  configLabel?: string;
  /** Nodes of the lab, 2-8. Default 2. */
  nodes?: number;
  /** Pods per node created by the lab, 1-4. Default 2. */
  podsPerNode?: number;
  /** Seed of the simulator's side of section I. Default 1. */
  seed?: number;
  /** Run only these checks (ids, section letters, prefixes like `cni.*`), as the suite takes them. */
  checks?: string[];
  /** Lab name (default `cf<pid><n>`): namespaces `ckl-<name>-*`. */
  name?: string;
  /** Where lab states live (default the lab's). */
  stateRoot?: string;
  /** The plugin executable (default @cnikit/cni's `cniPluginPath()`). */
  cniPlugin?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Called after each check. */
  onResult?: (result: CheckResult) => void;
  /**
   * Runs once the lab is up, before the first check (tests break the lab here to see checks
   * fail). Its error makes every kernel check "error".
   */
  prepare?: (lab: Lab) => Promise<void>;
}

/** The suite's report, from the kernel. */
export interface LinuxConformanceReport extends ConformanceReport {
  dataplane: "linux";
  /** The lab the run used (absent when it could not be built). */
  lab?: { name: string; subnets: string[]; nodes: { name: string; address: string }[]; pods: { name: string; node: string; ip: string }[]; buildMs: number };
}

/** A check of the kernel run. */
export interface LinuxCheck extends CheckIdentity {
  /** "not claimed" for a backend without the capability. */
  gate?(summary: NetworkSummary, backend: Backend<unknown>): { status: "not claimed" | "not run"; reason: string } | undefined;
  run(ctx: LinuxContext): Promise<Outcome>;
}

interface Outcome {
  status: CheckStatus;
  reason?: string;
  subResults?: SubResult[];
}

/** The suite's own sources; the policy check cites section I as well as the API. */
const SRC = { ...SOURCES, policy: "networking.k8s.io/v1 NetworkPolicy API; cnikit conformance.md sections F and I" } as const;

const SIM_ONLY = "simulator-only in this version: run it with --dataplane sim";
/** The ownership mark of the lab's renderer (cnikitd's default). */
const RENDER_OWNER = "cnikit";
const C = "lab";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The CNI result versions the plugin must answer in. */
export const RESULT_VERSIONS = ["0.3.0", "0.4.0", "1.0.0", "1.1.0"] as const;
/** Where the Debian reference plugins live. */
const CNI_DIR = "/usr/lib/cni";

// ---- context -----------------------------------------------------------------------------------

/** What a kernel check sees. */
export interface LinuxContext {
  lab: Lab;
  backend: Backend<unknown>;
  /** Parsed config. */
  config: unknown;
  summary: NetworkSummary;
  seed: number;
  /** The pods the lab made at start (the scenario the simulator mirrors). */
  basePods: LabPod[];
  /** Every endpoint of the base scenario: base pods, nodes, external hosts. */
  endpoints: ReachEndpoint[];
  /** The kernel's table of the base scenario (probed once, shared by A and I). */
  table(): Promise<ReachTable>;
  /** A scratch area for attachments made directly through the executable; cleaned after each check. */
  scratch: Scratch;
  /** The plugin executable the lab runs. */
  cniPlugin: string;
  /**
   * Starts another lab of the run's backend and config on `topology`, named after the run's lab
   * with `suffix` (its pods made, converged); the caller takes it down.
   */
  startLab(init: { topology: SimTopology; suffix: string; podsPerNode: number }): Promise<Lab>;
}

/** Attachments made straight through the executable, in namespaces of their own, undone at the end. */
export class Scratch {
  private n = 0;
  private readonly made: string[] = [];
  private readonly attached = new Map<string, { node: string; containerId: string; ifName: string; netns: string }>();
  /** A scratch area of `lab` (nothing is created until asked). */
  constructor(private readonly lab: Lab) {}

  /** A fresh, unique container id. */
  cid(tag: string): string {
    return `cf-${tag}-${++this.n}`;
  }

  /** Creates a pod namespace `ckl-<lab>-c<n>` (deleted by `cleanup`). */
  async netns(): Promise<string> {
    const ns = `${nsPrefix(this.lab.name)}-c${++this.n}`;
    this.made.push(ns);
    await createNetns(ns);
    return ns;
  }

  /** Remembers an attachment for a best-effort DEL in `cleanup` (forgotten by `forget`). */
  remember(a: { node: string; containerId: string; ifName?: string; netns: string }): void {
    this.attached.set(`${a.containerId}/${a.ifName ?? "eth0"}`, { ifName: "eth0", ...a });
  }

  /** Forgets an attachment (it was deleted). */
  forget(containerId: string, ifName = "eth0"): void {
    this.attached.delete(`${containerId}/${ifName}`);
  }

  /** DELs every remembered attachment and deletes every namespace made. Never throws. */
  async cleanup(): Promise<void> {
    for (const a of this.attached.values()) {
      await this.lab.plugin({ node: a.node, command: "DEL", containerId: a.containerId, ifName: a.ifName, netns: a.netns }).catch(() => undefined);
    }
    this.attached.clear();
    for (const ns of this.made.splice(0)) await deleteNetns(ns).catch(() => undefined);
  }
}

// ---- helpers -----------------------------------------------------------------------------------

function summarize(problems: readonly string[], max = 3): string {
  const shown = problems.slice(0, max).join("; ");
  return problems.length > max ? `${shown}; ... and ${problems.length - max} more` : shown;
}

function verdict(problems: readonly string[], subResults?: SubResult[]): Outcome {
  const out: Outcome = problems.length > 0 ? { status: "failed", reason: summarize(problems) } : { status: "passed" };
  if (subResults) out.subResults = subResults;
  return out;
}

/** The JSON error of a failed plugin call. */
function errorOf(o: PluginOutcome): { code?: number; msg?: string } {
  const j = o.json as { code?: unknown; msg?: unknown } | undefined;
  const out: { code?: number; msg?: string } = {};
  if (typeof j?.code === "number") out.code = j.code;
  if (typeof j?.msg === "string") out.msg = j.msg;
  return out;
}

function outcomeText(o: PluginOutcome): string {
  const e = errorOf(o);
  if (o.code === 0) return `exit 0${o.stdout.trim() ? ` with ${o.stdout.trim().slice(0, 160)}` : ""}`;
  return `exit ${o.code}, code ${e.code ?? "?"}: ${e.msg ?? (o.stdout.trim() || o.stderr.trim()).slice(0, 200)}`;
}

function firstIpv4(json: unknown): string | undefined {
  const ips = (json as { ips?: { address?: unknown }[] } | undefined)?.ips;
  if (!Array.isArray(ips)) return undefined;
  for (const i of ips) {
    const a = typeof i?.address === "string" ? i.address.split("/")[0]! : "";
    if (/^\d+\.\d+\.\d+\.\d+$/.test(a)) return a;
  }
  return undefined;
}

async function inNetns(ns: string, argv: readonly string[]): Promise<CommandResult> {
  return runAsync(inNs(ns, argv), { timeoutMs: 30_000 });
}

interface JsonLink {
  ifname: string;
  mtu?: number;
  address?: string;
  link_type?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
  linkinfo?: { info_kind?: string };
}

async function links(ns: string, extra: readonly string[] = []): Promise<JsonLink[]> {
  const r = await inNetns(ns, ["ip", "-j", "-d", "addr", "show", ...extra]);
  if (r.code !== 0) return [];
  try {
    return JSON.parse(r.stdout) as JsonLink[];
  } catch {
    return [];
  }
}

const ADDRESS_RE = /^(\d{1,3}\.){3}\d{1,3}$|:/;

/** Problems with the shape of an ADD result in version `version` (see the CNI result types). */
export function resultProblems(json: unknown, o: { version: string; ifName: string; netns: string; podRanges: readonly string[] }): string[] {
  const problems: string[] = [];
  if (json === null || typeof json !== "object") return [`the result is not a JSON object: ${JSON.stringify(json)?.slice(0, 120)}`];
  const r = json as { cniVersion?: unknown; interfaces?: unknown; ips?: unknown; routes?: unknown; dns?: unknown };
  if (r.cniVersion !== o.version) problems.push(`cniVersion is ${JSON.stringify(r.cniVersion)}, asked for ${o.version}`);
  const ifaces = Array.isArray(r.interfaces) ? (r.interfaces as { name?: unknown; mac?: unknown; sandbox?: unknown }[]) : undefined;
  if (!ifaces || ifaces.length === 0) problems.push("no interfaces");
  (ifaces ?? []).forEach((i, k) => {
    if (typeof i.name !== "string" || i.name === "") problems.push(`interfaces[${k}] has no name`);
    if (i.mac !== undefined && (typeof i.mac !== "string" || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(i.mac))) problems.push(`interfaces[${k}].mac ${JSON.stringify(i.mac)} is not a MAC`);
  });
  const container = (ifaces ?? []).findIndex((i) => i.name === o.ifName && typeof i.sandbox === "string" && i.sandbox !== "");
  if (container < 0) problems.push(`no interface ${o.ifName} with a sandbox`);
  else if (ifaces![container]!.sandbox !== o.netns) problems.push(`interface ${o.ifName} has sandbox ${String(ifaces![container]!.sandbox)}, expected ${o.netns}`);
  const ips = Array.isArray(r.ips) ? (r.ips as { address?: unknown; gateway?: unknown; interface?: unknown; version?: unknown }[]) : undefined;
  if (!ips || ips.length === 0) problems.push("no ips");
  const ranges = o.podRanges.map((p) => Prefix.parse(p));
  const legacy = o.version.startsWith("0.");
  (ips ?? []).forEach((ip, k) => {
    let p: Prefix | undefined;
    try {
      p = Prefix.parse(String(ip.address), { allowHostBits: true });
    } catch {
      problems.push(`ips[${k}].address ${JSON.stringify(ip.address)} is not an address with a prefix length`);
    }
    const addr = typeof ip.address === "string" ? ip.address.split("/")[0]! : "";
    if (p && !ranges.some((r) => r.contains(addr))) problems.push(`ips[${k}].address ${addr} is outside the pod range(s) ${o.podRanges.join(", ")}`);
    if (ip.interface !== undefined) {
      if (typeof ip.interface !== "number" || !ifaces?.[ip.interface]) problems.push(`ips[${k}].interface ${JSON.stringify(ip.interface)} is not an index into interfaces`);
      else if (!(ifaces[ip.interface] as { sandbox?: unknown }).sandbox) problems.push(`ips[${k}].interface points at ${String(ifaces[ip.interface]!.name)}, which has no sandbox`);
    } else problems.push(`ips[${k}] has no interface index`);
    if (ip.gateway !== undefined && (typeof ip.gateway !== "string" || !ADDRESS_RE.test(ip.gateway))) problems.push(`ips[${k}].gateway ${JSON.stringify(ip.gateway)} is not an address`);
    const family = addr.includes(":") ? "6" : "4";
    if (legacy && ip.version !== family) problems.push(`ips[${k}].version is ${JSON.stringify(ip.version)}; a ${o.version} result carries "${family}"`);
    if (!legacy && ip.version !== undefined) problems.push(`ips[${k}] carries version ${JSON.stringify(ip.version)}, which a ${o.version} result does not have`);
  });
  if (r.routes !== undefined) {
    if (!Array.isArray(r.routes)) problems.push("routes is not a list");
    else
      (r.routes as { dst?: unknown }[]).forEach((route, k) => {
        try {
          Prefix.parse(String(route.dst), { allowHostBits: true });
        } catch {
          problems.push(`routes[${k}].dst ${JSON.stringify(route.dst)} is not a CIDR`);
        }
      });
  }
  if (r.dns !== undefined && (r.dns === null || typeof r.dns !== "object")) problems.push("dns is not an object");
  return problems;
}

/** An ADD through the executable into a fresh namespace of the scratch area. */
async function addScratch(
  ctx: LinuxContext,
  init: { node: string; tag: string; cniVersion?: string; args?: string; netns?: string; ifName?: string },
): Promise<{ outcome: PluginOutcome; containerId: string; netns: string; ns: string; ip?: string }> {
  const ns = init.netns ?? (await ctx.scratch.netns());
  const containerId = ctx.scratch.cid(init.tag);
  const netns = ns.includes("/") ? ns : `/var/run/netns/${ns}`;
  const call: PluginCall = { node: init.node, command: "ADD", containerId, netns, ifName: init.ifName ?? "eth0" };
  if (init.cniVersion) call.netconf = { cniVersion: init.cniVersion };
  call.args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${containerId}${init.args ? `;${init.args}` : ""}`;
  ctx.scratch.remember({ node: init.node, containerId, netns, ...(init.ifName ? { ifName: init.ifName } : {}) });
  const outcome = await ctx.lab.plugin(call);
  const out: { outcome: PluginOutcome; containerId: string; netns: string; ns: string; ip?: string } = { outcome, containerId, netns, ns };
  const ip = outcome.code === 0 ? firstIpv4(outcome.json) : undefined;
  if (ip !== undefined) out.ip = ip;
  return out;
}

async function delScratch(ctx: LinuxContext, init: { node: string; containerId: string; netns?: string; cniVersion?: string; prevResult?: unknown; ifName?: string }): Promise<PluginOutcome> {
  const call: PluginCall = { node: init.node, command: "DEL", containerId: init.containerId, ifName: init.ifName ?? "eth0" };
  if (init.netns !== undefined) call.netns = init.netns;
  const netconf: Record<string, unknown> = {};
  if (init.cniVersion) netconf["cniVersion"] = init.cniVersion;
  if (init.prevResult !== undefined) netconf["prevResult"] = init.prevResult;
  if (Object.keys(netconf).length > 0) call.netconf = netconf;
  const o = await ctx.lab.plugin(call);
  if (o.code === 0) ctx.scratch.forget(init.containerId, init.ifName);
  return o;
}

async function checkCall(ctx: LinuxContext, init: { node: string; containerId: string; netns: string; prevResult: unknown; cniVersion?: string; ifName?: string }): Promise<PluginOutcome> {
  return ctx.lab.plugin({
    node: init.node,
    command: "CHECK",
    containerId: init.containerId,
    netns: init.netns,
    ifName: init.ifName ?? "eth0",
    netconf: { cniVersion: init.cniVersion ?? "1.0.0", prevResult: init.prevResult },
  });
}

/** The lab's node names, in order. */
function nodeNames(ctx: LinuxContext): string[] {
  return ctx.lab.nodes.map((n) => n.name);
}

// ---- etcd --------------------------------------------------------------------------------------

/** The key prefix of the lab's cluster store (from cnikitd's config: `etcd://host:port/<prefix>`). */
function storePrefix(lab: Lab): string {
  const cfg = JSON.parse(readFileSync(lab.nodes[0]!.configPath, "utf8")) as { store?: unknown };
  const m = typeof cfg.store === "string" ? /^etcd:\/\/[^/]+(\/.*)?$/.exec(cfg.store) : null;
  if (!m) throw new ConfigError({ component: C, field: "store", rule: "the lab's cnikitd must use etcd://", value: cfg.store });
  const p = m[1] === undefined ? "" : `${m[1].replace(/\/+$/, "")}/`;
  return p === "/" ? "" : p;
}

const ETCD_SCRIPT = `const [u, b] = process.argv.slice(1);
fetch(u, { method: "POST", body: b }).then(async (r) => { const t = await r.text(); if (!r.ok) { console.error(r.status + " " + t); process.exit(1); } process.stdout.write(t); }, (e) => { console.error(String(e)); process.exit(1); });`;

/** A write to the lab's etcd (its v3 JSON gateway, from inside the infra namespace). Throws when etcd refuses. */
export async function labEtcd(lab: Lab, op: { put: string; value: string } | { del: string }): Promise<void> {
  const prefix = storePrefix(lab);
  const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
  const [path, body] = "put" in op ? ["/v3/kv/put", { key: b64(prefix + op.put), value: b64(op.value) }] : ["/v3/kv/deleterange", { key: b64(prefix + op.del) }];
  const r = await lab.exec("infra", [process.execPath, "-e", ETCD_SCRIPT, `http://127.0.0.1:${ETCD_PORT}${path}`, JSON.stringify(body)], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`[lab] etcd ${path} failed: ${r.stderr.trim() || r.stdout.trim()}`);
}

// ---- the simulator's twin of the lab -----------------------------------------------------------

/** A SimCluster mirroring the lab: same topology, same node names and addresses, the same pods by name. */
async function simTwin(
  ctx: LinuxContext,
  pods: { name: string; node: string; namespace?: string }[],
  before?: (cluster: SimCluster<unknown>) => Promise<void>,
): Promise<{ cluster: SimCluster<unknown>; keys: Map<string, string>; addresses: Map<string, string>; problems: string[] }> {
  const topology = chooseTopology({ needs: topologyNeedsOf(ctx.backend, ctx.config) });
  const cluster = SimCluster.create({ backend: ctx.backend, config: ctx.config, topology, seed: ctx.seed });
  const problems: string[] = [];
  for (const n of ctx.lab.nodes) {
    // Driven: a node whose start waits on virtual time (a controller's first answer) lets the clock move.
    const sn = await drive(cluster.clock, cluster.addNode({ name: n.name }), `simulator twin: addNode(${n.name})`);
    const a = sn.info.underlay[0]?.address;
    if (a !== n.address) problems.push(`the simulator placed ${n.name} at ${a ?? "?"}, the lab at ${n.address}`);
  }
  await cluster.settle({ limitMs: ctx.summary.convergenceMs });
  if (before) await before(cluster);
  const keys = new Map<string, string>();
  const addresses = new Map<string, string>();
  for (const p of pods) {
    const sp = await drive(cluster.clock, cluster.addPod(p.node, { name: p.name, ...(p.namespace !== undefined ? { namespace: p.namespace } : {}) }), `simulator twin: addPod(${p.name})`);
    keys.set(p.name, sp.key);
    addresses.set(p.name, sp.addresses.find((x) => !x.includes(":")) ?? sp.addresses[0] ?? "");
  }
  await cluster.settle({ limitMs: ctx.summary.convergenceMs });
  return { cluster, keys, addresses, problems };
}

function simTableOf(cluster: SimCluster<unknown>, endpoints: ReachEndpoint[], keys: Map<string, string>, addresses: Map<string, string>): ReachTable {
  const simEndpoints = endpoints.map((e) => (e.kind === "pod" ? { ...e, address: addresses.get(e.name) ?? e.address } : e));
  const simOf = (e: ReachEndpoint): Endpoint | undefined =>
    e.kind === "node" ? { kind: "node", name: e.name } : e.kind === "external" ? { kind: "external", name: e.name } : keys.has(e.name) ? { kind: "pod", key: keys.get(e.name)! } : undefined;
  return simReachTable({ endpoints: simEndpoints, send: (a, b, o) => cluster.send(a, b, o), simOf });
}

// ---- section A: the kernel's driver -------------------------------------------------------------

/** How the suite's reasons name a lab pod: "pod default/pod-1-1 (10.244.0.2) on node node-1". */
function podEndpoint(p: LabPod): DpEndpoint {
  return { kind: "pod", id: p.name, node: p.node, addresses: [p.ip], label: `pod default/${p.name} (${p.ip}) on node ${p.node}` };
}

async function reserveKernelAddresses(ctx: LinuxContext, pods: readonly LabPod[], reserved: Map<string, string>): Promise<void> {
  for (const n of ctx.lab.nodes) {
    // A fabric secondary address on eth0 is the fabric's, for a pod of the node (a cloud NIC's secondary IP configuration), not the node's own.
    const secondary = await labSecondaryAddresses(n.ns);
    for (const l of await links(n.ns)) for (const a of l.addr_info ?? []) if (!secondary.has(a.local)) reserved.set(a.local, `an address of ${l.ifname} on node ${n.name} (read from the kernel)`);
  }
  for (const p of pods) {
    const ips = (p.result as { ips?: { address?: unknown; gateway?: unknown }[] } | undefined)?.ips ?? [];
    for (const ip of ips) {
      reservePodInterface(reserved, p.node, typeof ip.address === "string" ? [ip.address] : [], typeof ip.gateway === "string" ? [ip.gateway] : []);
    }
  }
}

async function podMtu(p: LabPod): Promise<number> {
  return (await links(p.ns, ["dev", p.ifName]))[0]?.mtu ?? 0;
}

/**
 * The kernel's view of the lab for the suite's section-A checks (conformance's `DATAPLANE_CHECKS`):
 * the lab's base pods and nodes, reachability and seen sources from the shared table of real TCP,
 * UDP and ping probes, MTUs read with `ip`, full-size packets as DF pings. Probes are round trips,
 * so a pod → external packet without NAT (no route back to a pod address) is not delivered.
 */
export function kernelDataplane(ctx: LinuxContext): ModelDataplane {
  const lab = ctx.lab;
  const pods = ctx.basePods.map(podEndpoint);
  const nodes = lab.nodes.map((n): DpEndpoint => ({ kind: "node", id: n.name, node: n.name, addresses: [n.address], label: `node ${n.name} (${n.address})` }));
  const externals = lab.plan.externals.map((e): DpEndpoint => ({ kind: "external", id: e.name, addresses: [e.address], label: `external host ${e.name}` }));
  const cell = async (a: DpEndpoint, b: DpEndpoint, proto: ReachProto): Promise<{ reach: boolean; seen?: string; why: string }> => {
    const v = (await ctx.table()).cells[cellKey(a.id, b.id, proto)];
    return { reach: v?.reach === true, ...(v?.seen !== undefined ? { seen: v.seen } : {}), why: v?.why ?? "not probed" };
  };
  const labPod = (e: DpEndpoint): LabPod => ctx.basePods.find((p) => p.name === e.id)!;
  return {
    name: "linux",
    seesOneWay: false,
    pods: () => pods,
    nodes: () => nodes,
    externals: () => externals,
    nodeAddress: (node) => lab.nodes.find((n) => n.name === node)?.address,
    async reachFailures(from, to) {
      const protos = (await ctx.table()).protos;
      const out: ReachFailure[] = [];
      for (const a of from) {
        for (const b of to) {
          if (a.kind === b.kind && a.id === b.id) continue;
          for (const proto of protos) {
            const c = await cell(a, b, proto);
            if (!c.reach) out.push({ from: a, to: b, why: `by ${proto}: ${c.why}` });
          }
        }
      }
      return out;
    },
    async podSources(list, max) {
      let pairs = 0;
      let delivered = 0;
      let nattedPairs = 0;
      const examples: NattedPair[] = [];
      for (const a of list) {
        for (const b of list) {
          if (a.id === b.id) continue;
          pairs++;
          let got = false;
          let natted = false;
          // ping shows no source address: TCP and UDP do.
          for (const proto of ["tcp", "udp"] as const) {
            const c = await cell(a, b, proto);
            if (!c.reach) continue;
            got = true;
            if (c.seen !== undefined && !a.addresses.includes(c.seen)) {
              if (!natted && examples.length < max) examples.push({ from: a, to: b, proto, seen: c.seen });
              natted = true;
            }
          }
          if (got) delivered++;
          if (natted) nattedPairs++;
        }
      }
      return { pairs, delivered, nattedPairs, examples };
    },
    async egress(pod, external) {
      const out: EgressDelivery[] = [];
      for (const proto of ["tcp", "udp"] as const) {
        const c = await cell(pod, external, proto);
        out.push({ proto, delivered: c.reach, ...(c.seen !== undefined ? { seenSource: c.seen } : {}), why: c.why });
      }
      return out;
    },
    async reserveAddresses(reserved) {
      await reserveKernelAddresses(ctx, ctx.basePods, reserved);
    },
    async mtus() {
      const out: NodeMtus[] = [];
      for (const n of lab.nodes) {
        const ls = await links(n.ns);
        const mine: NodeMtus["pods"] = [];
        for (const p of ctx.basePods.filter((x) => x.node === n.name)) mine.push({ label: `${podEndpoint(p).label}, interface ${p.ifName},`, mtu: await podMtu(p) });
        out.push({
          node: n.name,
          underlayMtu: ls.find((l) => l.ifname === "eth0")?.mtu ?? 1500,
          links: ls.map((l) => ({ kind: l.linkinfo?.info_kind ?? "", name: l.ifname, ...(l.mtu !== undefined ? { mtu: l.mtu } : {}) })),
          pods: mine,
        });
      }
      return out;
    },
    async fullSizeProblem(from, to) {
      const a = labPod(from);
      const size = (await podMtu(a)) - 28;
      let r: CommandResult | undefined;
      for (let i = 0; i < 3 && r?.code !== 0; i++) r = await lab.exec(a.name, ["ping", "-M", "do", "-s", String(size), "-c", "1", "-W", "2", to.addresses[0]!]);
      if (r?.code === 0) return undefined;
      return `a ${size + 28}-byte packet (the pod's MTU) with DF set did not arrive (3 tries): ${(r?.stdout ?? "").trim().split("\n").slice(-2).join(" ")} ${(r?.stderr ?? "").trim()}`.trim();
    },
  };
}

/** Random schedules ipam.concurrent-unique runs on the kernel (each ADD is a real pod: slow). */
export const KERNEL_SCHEDULES = 3;

/**
 * The kernel's churn for ipam.concurrent-unique: the lab itself. ADDs make real pods through the
 * executable (`lab.addPod`), DELs remove only pods this schedule made; the base pods stay and count
 * for the address rules. `close` deletes what the schedule left.
 */
export function kernelChurnDriver(ctx: LinuxContext): ChurnDriver {
  const lab = ctx.lab;
  return {
    name: "linux",
    async open() {
      const made = new Set<string>();
      return {
        nodes: lab.nodes.map((n) => n.name),
        removable: () => lab.pods.filter((p) => made.has(p.name)).map(podEndpoint),
        async wave(adds, victims) {
          const ops: Promise<unknown>[] = [...adds.map((node) => lab.addPod(node).then((p) => void made.add(p.name))), ...victims.map((v) => lab.deletePod(v.id).then(() => void made.delete(v.id)))];
          return (await Promise.allSettled(ops)).map((r) => {
            if (r.status === "fulfilled") return { ok: true as const };
            const e = r.reason as { code?: unknown; message?: unknown } | undefined;
            return { ok: false as const, code: e?.code, message: String(e?.message ?? e) };
          });
        },
        pods: async () => lab.pods.map(podEndpoint),
        reserveAddresses: (reserved) => reserveKernelAddresses(ctx, lab.pods, reserved),
        async close() {
          for (const name of made) await lab.deletePod(name).catch(() => undefined);
          made.clear();
        },
      };
    },
  };
}

/** A section-A check of the suite, run on the kernel's driver. */
function onKernel(c: DataplaneCheck): LinuxCheck {
  return { id: c.id, section: c.section, rule: c.rule, source: c.source, required: c.required, run: (ctx) => c.judge(kernelDataplane(ctx), ctx.summary) };
}

/** Section A in the suite's order: the address checks, ipam.concurrent-unique, the rest. */
const modelChecks: LinuxCheck[] = [
  ...DATAPLANE_CHECKS.filter((c) => c.id.startsWith("ipam.")).map(onKernel),
  {
    ...CONCURRENT_IPAM_CHECK,
    run: (ctx) => CONCURRENT_IPAM_CHECK.judge(kernelChurnDriver(ctx), { summary: ctx.summary, seed: ctx.seed, runs: KERNEL_SCHEDULES }),
  },
  ...DATAPLANE_CHECKS.filter((c) => !c.id.startsWith("ipam.")).map(onKernel),
];

// ---- section B: the kernel's lifecycle driver ------------------------------------------------------

/** The plugin's JSON error as a thrown error the suite recognises by `code` (duck-typed, like the agent's). */
function pluginError(what: string, o: PluginOutcome): Error {
  const e = errorOf(o);
  return Object.assign(new Error(`${what}: ${outcomeText(o)}`), { name: "CniError", ...(e.code !== undefined ? { code: e.code } : {}) });
}

/** The key range of everything under `prefix` in etcd (`range_end` = prefix + 1 in its last byte; all keys for ""). */
function rangeEnd(prefix: string): Buffer {
  if (prefix === "") return Buffer.from([0]);
  const b = Buffer.from(prefix, "utf8");
  let i = b.length - 1;
  while (i >= 0 && b[i] === 0xff) i--;
  if (i < 0) return Buffer.from([0]);
  const out = Buffer.from(b.subarray(0, i + 1));
  out[i] = out[i]! + 1;
  return out;
}

/** Every key and value of the lab's cluster store (below its prefix, the prefix cut off). */
async function labEtcdList(lab: Lab): Promise<{ key: string; value: string }[]> {
  const prefix = storePrefix(lab);
  const body = { key: Buffer.from(prefix === "" ? "\0" : prefix, "utf8").toString("base64"), range_end: rangeEnd(prefix).toString("base64") };
  const r = await lab.exec("infra", [process.execPath, "-e", ETCD_SCRIPT, `http://127.0.0.1:${ETCD_PORT}/v3/kv/range`, JSON.stringify(body)], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`[lab] etcd range failed: ${r.stderr.trim() || r.stdout.trim()}`);
  const kvs = (JSON.parse(r.stdout) as { kvs?: { key: string; value?: string }[] }).kvs ?? [];
  const dec = (s: string | undefined): string => Buffer.from(s ?? "", "base64").toString("utf8");
  return kvs.map((kv) => ({ key: dec(kv.key).slice(prefix.length), value: dec(kv.value) }));
}

/** Every key and value of a node's `ctx.local` (cnikitd's FileDatastore), read from a copy (the daemon holds the store's lock). */
async function labLocalList(lab: Lab, node: string): Promise<{ key: string; value: string }[]> {
  const cfg = JSON.parse(readFileSync(lab.node(node).configPath, "utf8")) as { localStateDir?: unknown };
  if (typeof cfg.localStateDir !== "string") throw new ConfigError({ component: C, field: "localStateDir", rule: "the lab's cnikitd config must name its node-local store", value: cfg.localStateDir });
  const copy = mkdtempSync(join(tmpdir(), "cnikit-local-"));
  try {
    cpSync(cfg.localStateDir, copy, { recursive: true });
    rmSync(join(copy, "LOCK"), { force: true });
    const store = await FileDatastore.open({ dir: copy, clock: new RealClock(), fsync: false });
    try {
      return (await store.list("")).items.map((kv) => ({ key: kv.key, value: kv.value }));
    } finally {
      await store.close();
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

interface JsonRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  protocol?: string;
}

/** A pod namespace as `ip` shows it: its links with addresses, and its main-table routes per family. */
interface NetnsView {
  links: (JsonLink & { link_index?: number })[];
  routes: { family: 4 | 6; route: JsonRoute & { table?: string } }[];
}

/** Reads a pod namespace in one `ip -batch` process (links, addresses, both families' routes); undefined when it cannot be read. */
async function readNetnsView(ns: string): Promise<NetnsView | undefined> {
  const r = await runAsync(["ip", "-n", ns, "-j", "-d", "-batch", "-"], { input: "addr show\nroute show table all root 0.0.0.0/0\nroute show table all root ::/0\n", timeoutMs: 30_000 });
  if (r.code !== 0) return undefined;
  try {
    const [linksJson, r4, r6] = parseJsonValues(r.stdout) as [NetnsView["links"], JsonRoute[], JsonRoute[]];
    const main = (list: (JsonRoute & { table?: string })[] | undefined, family: 4 | 6) => (list ?? []).filter((x) => x.table === undefined || x.table === "main").map((route) => ({ family, route }));
    return { links: linksJson ?? [], routes: [...main(r4, 4), ...main(r6, 6)] };
  } catch {
    return undefined;
  }
}

/** The container side of an attachment as the kernel holds it (undefined: its interface is gone), from its namespace's view. */
function kernelPodInterface(
  a: { containerId: string; ifName: string; netns: string; namespace?: string; podName?: string },
  view: NetnsView | undefined,
  hostLinks: Map<number, { ifname: string; master?: string }>,
): PodInterface | undefined {
  const l = view?.links.find((x) => x.ifname === a.ifName);
  if (!view || !l) return undefined;
  const addresses = (l.addr_info ?? []).filter((x) => !/^fe[89ab]/i.test(x.local)).map((x) => `${x.local}/${x.prefixlen}`);
  // The subnets of the interface's addresses: their routes are the connected ones, not the plugin's.
  const connected = new Set(addresses.map((x) => parseInterfaceAddress(x).prefix.toString()));
  const routes: PodRoute[] = [];
  const gateways: string[] = [];
  for (const { family, route: x } of view.routes) {
    // Routes the kernel derives from an address (proto kernel, or the renderer's own connected
    // route of a container's further interface) and IPv6 link-local/multicast ones are not the plugin's.
    if (x.dev !== a.ifName || x.protocol === "kernel" || /^(fe80|ff00)::/i.test(x.dst)) continue;
    const dst = x.dst === "default" ? (family === 4 ? "0.0.0.0/0" : "::/0") : x.dst.includes("/") ? x.dst : `${x.dst}/${x.dst.includes(":") ? 128 : 32}`;
    if (x.gateway === undefined && connected.has(dst)) continue;
    routes.push({ dst, ...(x.gateway !== undefined ? { via: x.gateway } : {}), ...(x.scope === "link" ? { scopeLink: true } : {}) });
    if (x.dst === "default" && x.gateway !== undefined) gateways.push(x.gateway);
  }
  const host = l.link_index !== undefined ? hostLinks.get(l.link_index) : undefined;
  return {
    key: `${a.containerId}/${a.ifName}`,
    containerId: a.containerId,
    ifName: a.ifName,
    ...(a.namespace !== undefined ? { namespace: a.namespace } : {}),
    ...(a.podName !== undefined ? { podName: a.podName } : {}),
    netns: a.netns,
    hostIf: host?.ifname ?? `(peer ifindex ${l.link_index ?? "?"})`,
    ...(host?.master !== undefined ? { bridge: host.master } : {}),
    mac: (l.address ?? "").toLowerCase(),
    mtu: l.mtu ?? 0,
    addresses,
    ...(gateways.length > 0 ? { gateways } : {}),
    routes,
  };
}

/** Pod namespaces read at once in `kernelNodeDataplane` (one `ip` process each). */
const NETNS_READS_AT_ONCE = 4;

/** The node's dataplane as the kernel holds it: cnikitd's owned objects, and the pod interfaces of `attachments` on the node. */
async function kernelNodeDataplane(lab: Lab, node: string, attachments: { containerId: string; ifName: string; netns: string; namespace?: string; podName?: string }[]): Promise<NodeDataplane> {
  const ns = lab.node(node).ns;
  const { state } = await readKernel({ ns, owner: RENDER_OWNER, proto: defaultRouteProtocol(RENDER_OWNER), sysctlKeys: [] });
  const dp = emptyDataplane(node);
  const strip = <T>(o: Record<string, unknown>): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  for (const l of state.links.values()) {
    dp.links.push(
      strip<Link>({
        name: l.name,
        kind: l.kind,
        mtu: l.mtu,
        mac: l.mac,
        master: l.master,
        ...(l.vxlan ? { vni: l.vxlan.vni, port: l.vxlan.port, local: l.vxlan.local, learning: l.vxlan.learning } : {}),
      }),
    );
  }
  for (const a of state.addrs.values()) dp.addresses.push({ dev: a.dev, cidr: a.cidr });
  for (const r of state.routes.values())
    dp.routes.push(
      strip<NodeDataplane["routes"][number]>({ dst: r.dst, type: r.type, via: r.via, dev: r.dev, onlink: r.onlink || undefined, src: r.src, metric: r.metric, table: r.table, mtu: r.mtu }),
    );
  for (const n of state.neigh.values()) dp.neighbours.push({ dev: n.dev, ip: n.ip, mac: n.mac, permanent: true });
  for (const f of state.fdb.values()) dp.fdb.push(strip<NodeDataplane["fdb"][number]>({ dev: f.dev, mac: f.mac, dst: f.dst, vni: f.vni, permanent: true }));
  const proxyArp: string[] = [];
  const sysctls: Record<string, unknown> = {};
  for (const [k, v] of state.sysctls) {
    const m = /conf[./]([^./]+)[./]proxy_arp$/.exec(k);
    if (m) {
      if (v.trim() === "1") proxyArp.push(m[1]!);
    } else sysctls[k] = v;
  }
  dp.sysctls = { ...(sysctls as Sysctls), ...(proxyArp.length > 0 ? { proxyArp } : {}) };
  if (state.nft !== undefined) dp.nat.push({ id: `nft table of ${RENDER_OWNER} (hash ${state.nft || "empty"})`, kind: "masquerade", sources: [], exceptDestinations: [] });
  const hostLinks = new Map<number, { ifname: string; master?: string }>();
  const all = await inNetns(ns, ["ip", "-j", "link", "show"]);
  try {
    for (const l of JSON.parse(all.stdout) as { ifindex: number; ifname: string; master?: string }[])
      hostLinks.set(l.ifindex, { ifname: l.ifname, ...(l.master !== undefined ? { master: l.master } : {}) });
  } catch {
    // no links read: host sides stay unnamed
  }
  const matched = new Set<string>();
  // One read per pod namespace (the interfaces of a multi-interface container share theirs), a few at a time.
  const namespaces = [...new Set(attachments.map((a) => a.netns))];
  const views = new Map<string, NetnsView | undefined>();
  for (let i = 0; i < namespaces.length; i += NETNS_READS_AT_ONCE) {
    const batch = namespaces.slice(i, i + NETNS_READS_AT_ONCE);
    const read = await Promise.all(batch.map((netns) => readNetnsView(netns.replace(/^\/var\/run\/netns\//, ""))));
    batch.forEach((netns, k) => views.set(netns, read[k]));
  }
  for (const a of attachments) {
    const pod = kernelPodInterface(a, views.get(a.netns), hostLinks);
    if (!pod) continue;
    matched.add(pod.hostIf);
    dp.pods.push(pod);
  }
  // Pod veths of other pods (the lab's own, or one whose container side is gone): by their host side.
  for (const p of state.pods.values()) {
    if (matched.has(p.hostIf)) continue;
    dp.pods.push({
      key: `host veth ${p.hostIf}`,
      containerId: "",
      ifName: "",
      hostIf: p.hostIf,
      mac: p.hostMac,
      mtu: 0,
      addresses: [],
      routes: [],
      ...(p.master !== undefined ? { bridge: p.master } : {}),
    });
  }
  return dp;
}

/** Heavy section-B checks on the kernel: every ADD is a real namespace, veth and plugin run. */
const KERNEL_B_BUDGET_MS: Record<string, number> = {
  "cni.del-releases": 900_000,
  "cni.gc": 900_000,
  "cni.failed-add-leaks-nothing": 600_000,
  "cni.del-after-reuse": 600_000,
};

/**
 * ADD/DEL pairs of each churn leg on the kernel (the suite's floor; the simulator runs 200): every
 * pair is a namespace, a veth and two plugin runs, and the lab's /28 shares hold 13 pods, so 32
 * pairs still cycle every address of the share twice.
 */
const KERNEL_CHURN_PAIRS = 32;

/** The longest a kernel check waits in one step, and for the dataplane to settle (the daemons apply at once; this is margin). */
const KERNEL_STEP_MS = 2_000;
const KERNEL_QUIET_MS = 1_000;
const KERNEL_SETTLE_CAP_MS = 30_000;

/**
 * Section B's driver on the kernel: ADD, DEL, CHECK, GC and STATUS through the cnikit-cni
 * executable against the lab's cnikitd (the path the lab's own pods take), each attachment in a
 * network namespace of its own; the dataplane read from the kernel, the cluster store from etcd and
 * `ctx.local` from the daemon's store on disk. Uses the lab's first two nodes; its base pods are
 * the fixture (listed in every GC, left out of `podKeys`). `close` DELs what the check left and
 * deletes its namespaces.
 */
export function kernelLifecycleDriver(ctx: LinuxContext): LifecycleDriverFactory {
  const lab = ctx.lab;
  return async () => {
    const [n1, n2] = nodeNames(ctx) as [string, string];
    const prefix = nsPrefix(lab.name);
    const nsOf = new Map<string, string>();
    const created = new Set<string>();
    type Known = { node: string; containerId: string; ifName: string; netns: string; namespace?: string; podName?: string; result?: unknown };
    const known = new Map<string, Known>();
    const added = new Set<string>();
    let lastResult: unknown;
    const keyOf = (r: PodRef): string => `${r.containerId}/${r.ifName}`;
    const netnsOf = (containerId: string): string => {
      let ns = nsOf.get(containerId);
      if (ns === undefined) {
        ns = `${prefix}-b${nsOf.size + 1}`;
        nsOf.set(containerId, ns);
      }
      return `/var/run/netns/${ns}`;
    };
    const ensureNetns = async (netns: string): Promise<void> => {
      const ns = netns.slice("/var/run/netns/".length);
      if (created.has(ns)) return;
      await createNetns(ns);
      created.add(ns);
    };
    const args = (pod: PodAttachment): string =>
      [
        `IgnoreUnknown=1`,
        `K8S_POD_NAMESPACE=${pod.namespace ?? "default"}`,
        `K8S_POD_NAME=${pod.podName ?? pod.containerId}`,
        ...(pod.requestedIps && pod.requestedIps.length > 0 ? [`IP=${pod.requestedIps.join(",")}`] : []),
      ].join(";");
    const attach = async (node: string, pod: PodAttachment): Promise<AttachResult> => {
      await ensureNetns(pod.netns);
      const k = keyOf(pod);
      if (!known.has(k))
        known.set(k, {
          node,
          containerId: pod.containerId,
          ifName: pod.ifName,
          netns: pod.netns,
          ...(pod.namespace !== undefined ? { namespace: pod.namespace } : {}),
          ...(pod.podName !== undefined ? { podName: pod.podName } : {}),
        });
      const o = await lab.plugin({ node, command: "ADD", containerId: pod.containerId, netns: pod.netns, ifName: pod.ifName, args: args(pod) });
      if (o.code !== 0 || o.json === undefined) throw pluginError(`ADD ${k} on node ${node}`, o);
      known.get(k)!.result = o.json;
      lastResult = o.json;
      return o.json as AttachResult;
    };
    const detach = async (node: string, ref: PodRef): Promise<void> => {
      const k = known.get(keyOf(ref));
      const o = await lab.plugin({ node, command: "DEL", containerId: ref.containerId, ifName: ref.ifName, netns: k?.netns ?? netnsOf(ref.containerId) });
      if (o.code !== 0) throw pluginError(`DEL ${keyOf(ref)} on node ${node}`, o);
    };
    const status = async (node: string): Promise<StatusView> => {
      const o = await lab.plugin({ node, command: "STATUS", netconf: { cniVersion: "1.1.0" } });
      if (o.code === 0) return { ready: true };
      const e = errorOf(o);
      return { ready: false, ...(e.code !== undefined ? { code: e.code } : {}), reason: e.msg ?? outcomeText(o) };
    };
    const onNode = (node: string): Known[] => [...known.values()].filter((k) => k.node === node);
    const dataplane = (node: string): Promise<NodeDataplane> => kernelNodeDataplane(lab, node, onNode(node));
    const ping = async (ns: string, address: string): Promise<string | undefined> => {
      let r: CommandResult | undefined;
      for (let i = 0; i < 2 && r?.code !== 0; i++) r = await inNetns(ns, ["ping", "-c", "1", "-W", "1", address]);
      return r?.code === 0 ? undefined : (r?.stdout ?? "").trim().split("\n").slice(-2).join(" ") || (r?.stderr ?? "").trim();
    };
    const driver: LifecycleDriver = {
      name: "linux",
      nodes: [n1, n2],
      daemon: true,
      churnPairs: KERNEL_CHURN_PAIRS,
      attachment: (containerId, ifName = "eth0", pod) => ({ containerId, ifName, netns: netnsOf(containerId), namespace: pod?.namespace ?? "default", podName: pod?.podName ?? containerId }),
      attach,
      attachConcurrently: (node, pods) => Promise.allSettled(pods.map((p) => attach(node, p))),
      detach,
      async check(node, ref) {
        const k = known.get(keyOf(ref));
        const o = await lab.plugin({
          node,
          command: "CHECK",
          containerId: ref.containerId,
          ifName: ref.ifName,
          netns: k?.netns ?? netnsOf(ref.containerId),
          netconf: { cniVersion: "1.0.0", prevResult: k?.result ?? lastResult ?? ctx.basePods[0]?.result },
        });
        if (o.code !== 0) throw pluginError(`CHECK ${keyOf(ref)} on node ${node}`, o);
      },
      async gc(node, valid) {
        const keep = [
          ...ctx.basePods.filter((p) => p.node === node).map((p) => ({ containerID: p.containerId, ifname: p.ifName })),
          ...valid.map((v) => ({ containerID: v.containerId, ifname: v.ifName })),
        ];
        const o = await lab.plugin({ node, command: "GC", netconf: { cniVersion: "1.1.0", "cni.dev/valid-attachments": keep } });
        if (o.code !== 0) throw pluginError(`GC on node ${node}`, o);
      },
      status,
      async statusesNotRunning(node) {
        await lab.killDaemon(node, "SIGTERM");
        try {
          return [{ what: `STATUS with cnikitd stopped on node ${node}`, status: await status(node) }];
        } finally {
          await lab.startDaemon(node);
        }
      },
      async attachNotRunning(node, pod) {
        await lab.killDaemon(node, "SIGTERM");
        let error: unknown;
        try {
          await attach(node, pod);
        } catch (e) {
          error = e;
        } finally {
          await lab.startDaemon(node);
        }
        return { what: `ADD with cnikitd stopped on node ${node}`, error };
      },
      restartAgent: async (node) => void (await lab.restartDaemon(node)),
      async addPod(node, pod) {
        const r = await attach(node, pod);
        added.add(keyOf(pod));
        return (r.ips ?? []).map((ip) => ip.address.split("/")[0]!);
      },
      async removePod(node, ref) {
        await detach(node, ref);
        added.delete(keyOf(ref));
      },
      async reachProblems(node, ref) {
        const me = known.get(keyOf(ref));
        const mine = (me?.result as AttachResult | undefined)?.ips?.map((ip) => ip.address.split("/")[0]!) ?? [];
        if (!me || mine.length === 0) return [`${keyOf(ref)} on node ${node} has no address to probe`];
        const others: { label: string; ns: string; addresses: string[] }[] = [
          ...ctx.basePods.map((p) => ({ label: `pod default/${p.name} (${p.ip}) on node ${p.node}`, ns: p.ns, addresses: [p.ip] })),
          ...[...added]
            .map((k) => known.get(k)!)
            .filter((k) => k.containerId !== ref.containerId)
            .map((k) => ({
              label: `pod ${k.namespace ?? "default"}/${k.podName ?? k.containerId} on node ${k.node}`,
              ns: k.netns.slice("/var/run/netns/".length),
              addresses: ((k.result as AttachResult | undefined)?.ips ?? []).map((ip) => ip.address.split("/")[0]!),
            })),
          ...lab.nodes.map((n) => ({ label: `node ${n.name} (${n.address})`, ns: n.ns, addresses: [n.address] })),
        ];
        const myNs = me.netns.slice("/var/run/netns/".length);
        const problems: string[] = [];
        for (const o of others) {
          if (o.addresses.length === 0) continue;
          for (const a of o.addresses) {
            if (!mine.some((x) => x.includes(":") === a.includes(":"))) continue;
            const why = await ping(myNs, a);
            if (why !== undefined) problems.push(`${keyOf(ref)} -> ${o.label} at ${a}: ${why}`);
          }
          for (const a of mine) {
            // Only where the other end has an address of that family to answer from.
            if (!o.addresses.some((x) => x.includes(":") === a.includes(":"))) continue;
            const why = await ping(o.ns, a);
            if (why !== undefined) problems.push(`${o.label} -> ${keyOf(ref)} at ${a}: ${why}`);
          }
        }
        return problems;
      },
      dataplane,
      async podKeys(node) {
        return (await dataplane(node)).pods
          .filter((p) => p.containerId !== "")
          .map((p) => p.key)
          .sort();
      },
      async stores(node) {
        const out: StoreSnapshot = new Map();
        for (const kv of await labEtcdList(lab)) out.set(`${CLUSTER_STORE_LABEL}${kv.key}`, kv.value);
        for (const kv of await labLocalList(lab, node)) out.set(`node ${node}'s local store key ${kv.key}`, kv.value);
        return out;
      },
      passTime: (ms) => sleep(Math.max(0, Math.min(ms, KERNEL_STEP_MS))),
      now: () => performance.now(),
      async settle(boundMs) {
        const deadline = performance.now() + Math.min(Math.max(boundMs, KERNEL_QUIET_MS * 2), KERNEL_SETTLE_CAP_MS);
        const read = async (): Promise<string> => JSON.stringify(await Promise.all([n1, n2].map(async (n) => canonicalDataplane(await dataplane(n)))));
        let last = await read();
        let since = performance.now();
        for (;;) {
          await sleep(250);
          const next = await read();
          if (next !== last) {
            last = next;
            since = performance.now();
          } else if (performance.now() - since >= KERNEL_QUIET_MS) return { settled: true };
          if (performance.now() > deadline) return { settled: false, problem: `the kernel's dataplane of ${n1} and ${n2} was still changing after ${KERNEL_SETTLE_CAP_MS} ms` };
        }
      },
      async close() {
        for (const k of known.values()) await lab.plugin({ node: k.node, command: "DEL", containerId: k.containerId, ifName: k.ifName, netns: k.netns }).catch(() => undefined);
        for (const ns of created) await deleteNetns(ns).catch(() => undefined);
      },
    };
    return driver;
  };
}

/** A section-B check of the suite, run on the kernel's lifecycle driver. */
function lifecycleOnKernel(c: LifecycleCheck): LinuxCheck {
  return {
    id: c.id,
    section: c.section,
    rule: c.rule,
    source: c.source,
    required: c.required,
    budgetMs: KERNEL_B_BUDGET_MS[c.id] ?? 300_000,
    run: (ctx) => runLifecycleCheck(c, kernelLifecycleDriver(ctx), { summary: ctx.summary, backend: ctx.backend }),
  };
}

// ---- section B: what only the executable shows ------------------------------------------------------

/** The checks of section B that run only through the executable (result versions, error JSON on stdout); the simulator reports them "not run". */
const pluginChecks: LinuxCheck[] = [
  {
    id: "cni.result-versions",
    section: "B",
    rule: "The executable lists 0.3.0-1.1.0 in VERSION and answers ADD in the version asked (0.3.0, 0.4.0, 1.0.0, 1.1.0; shape checked), CHECK and DEL too; a conflist with the reference portmap and tuning negotiates 1.0.0.",
    source: SRC.cniVersions,
    required: true,
    async run(ctx) {
      const node = ctx.lab.nodes[0]!.name;
      const subs: SubResult[] = [];
      const v = await ctx.lab.plugin({ node, command: "VERSION", netconf: { cniVersion: "1.1.0" } });
      const supported = (v.json as { supportedVersions?: unknown } | undefined)?.supportedVersions;
      const missing = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].filter((x) => !Array.isArray(supported) || !supported.includes(x));
      subs.push(
        v.code === 0 && missing.length === 0
          ? { label: "VERSION lists 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0", status: "passed" }
          : { label: "VERSION lists 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0", status: "failed", reason: v.code !== 0 ? outcomeText(v) : `missing ${missing.join(", ")} in ${JSON.stringify(supported)}` },
      );
      for (const version of RESULT_VERSIONS) {
        const problems: string[] = [];
        const a = await addScratch(ctx, { node, tag: `v${version.replace(/\./g, "")}`, cniVersion: version });
        if (a.outcome.code !== 0) problems.push(`ADD: ${outcomeText(a.outcome)}`);
        else {
          problems.push(...resultProblems(a.outcome.json, { version, ifName: "eth0", netns: a.netns, podRanges: ctx.summary.podRanges }));
          if (version !== "0.3.0") {
            const c = await checkCall(ctx, { node, containerId: a.containerId, netns: a.netns, prevResult: a.outcome.json, cniVersion: version });
            if (c.code !== 0 || c.stdout.trim() !== "") problems.push(`CHECK at ${version}: ${outcomeText(c)}`);
          }
        }
        const d = await delScratch(ctx, { node, containerId: a.containerId, netns: a.netns, cniVersion: version });
        if (d.code !== 0) problems.push(`DEL at ${version}: ${outcomeText(d)}`);
        subs.push(problems.length === 0 ? { label: `ADD/CHECK/DEL at ${version}`, status: "passed" } : { label: `ADD/CHECK/DEL at ${version}`, status: "failed", reason: summarize(problems) });
      }
      subs.push(await conflistSub(ctx, node));
      const bad = subs.filter((s) => s.status !== "passed");
      return bad.length > 0 ? { status: "failed", reason: bad.map((s) => `${s.label}: ${s.reason ?? s.status}`).join("; "), subResults: subs } : { status: "passed", subResults: subs };
    },
  },
  {
    id: "cni.plugin-error-json",
    section: "B",
    rule: "Errors are the spec's JSON on stdout with the right code and a non-zero exit: 4 missing env or unknown command, 6 stdin that is not JSON, 7 a bad network config, 1 an unsupported version.",
    source: SRC.cniErrors,
    required: true,
    async run(ctx) {
      const node = ctx.lab.nodes[0]!.name;
      const ns = await ctx.scratch.netns();
      const netns = `/var/run/netns/${ns}`;
      const base = ctx.lab.netconf(node);
      const cases: { label: string; call: PluginCall; code: number }[] = [
        { label: "ADD without CNI_CONTAINERID", call: { node, command: "ADD", netns, ifName: "eth0" }, code: 4 },
        { label: "ADD without CNI_NETNS and CNI_IFNAME", call: { node, command: "ADD", containerId: "cf-err-env" }, code: 4 },
        { label: "unknown CNI_COMMAND", call: { node, command: "", env: { CNI_COMMAND: "FROB" }, containerId: "cf-err-cmd", netns, ifName: "eth0" }, code: 4 },
        {
          label: "stdin that is not JSON",
          call: { node, command: "ADD", containerId: "cf-err-json", netns, ifName: "eth0", stdin: `{"cniVersion": "1.0.0", "socketPath": ${JSON.stringify(base["socketPath"])}, ` },
          code: 6,
        },
        { label: "network name with invalid characters", call: { node, command: "ADD", containerId: "cf-err-name", netns, ifName: "eth0", netconf: { name: "bad name!" } }, code: 7 },
        { label: "runtimeConfig that is not an object", call: { node, command: "ADD", containerId: "cf-err-rc", netns, ifName: "eth0", netconf: { runtimeConfig: "x" } }, code: 7 },
        { label: "cniVersion 9.9.9", call: { node, command: "ADD", containerId: "cf-err-ver", netns, ifName: "eth0", netconf: { cniVersion: "9.9.9" } }, code: 1 },
      ];
      const subs: SubResult[] = [];
      for (const c of cases) {
        const o = await ctx.lab.plugin(c.call);
        const e = errorOf(o);
        const ok = o.code !== 0 && o.code !== null && e.code === c.code && typeof e.msg === "string" && e.msg !== "" && o.json !== undefined;
        subs.push(
          ok
            ? { label: `${c.label} → ${c.code}`, status: "passed" }
            : { label: `${c.label} → ${c.code}`, status: "failed", reason: `${outcomeText(o)}${o.json === undefined ? " (stdout is not JSON)" : ""}` },
        );
        if (o.code === 0 && c.call.containerId) await delScratch(ctx, { node, containerId: c.call.containerId, netns });
      }
      const bad = subs.filter((s) => s.status !== "passed");
      return bad.length > 0 ? { status: "failed", reason: bad.map((s) => `${s.label}: ${s.reason}`).join("; "), subResults: subs } : { status: "passed", subResults: subs };
    },
  },
];

/** Section B on the kernel, in the suite's order: the lifecycle checks on the kernel's driver, and the executable's own. */
const lifecycleChecks: LinuxCheck[] = listChecks()
  .filter((c) => c.section === "B")
  .map((c) => pluginChecks.find((k) => k.id === c.id) ?? LIFECYCLE_CHECKS.filter((k) => k.id === c.id).map(lifecycleOnKernel)[0])
  .filter((c): c is LinuxCheck => c !== undefined);

/** The conflist sub-check of cni.result-versions: cnikit-cni + portmap + tuning through CniRuntime inside the node namespace. */
async function conflistSub(ctx: LinuxContext, node: string): Promise<SubResult> {
  const label = "conflist cnikit-cni + portmap + tuning negotiates 1.0.0 (ADD, CHECK, DEL)";
  const missing = ["portmap", "tuning"].filter((p) => {
    try {
      readFileSync(join(CNI_DIR, p));
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) return { label, status: "failed", reason: `${missing.join(", ")} not found in ${CNI_DIR}: install the Debian package containernetworking-plugins` };
  const n = ctx.lab.node(node);
  const plugin = ctx.lab.netconf(node);
  const list = loadConfList({
    cniVersions: ["1.0.0", "1.1.0"],
    name: "cnikit-lab-chain",
    plugins: [{ type: "cnikit-cni", socketPath: plugin["socketPath"] }, { type: "portmap", capabilities: { portMappings: true } }, { type: "tuning" }],
  });
  const runtime = new CniRuntime({
    cniPath: [dirname(ctx.cniPlugin), CNI_DIR],
    cacheDir: `${ctx.lab.dir}/cni-cache`,
    exec: spawnExec({ wrapper: netnsWrapper(n.ns) }),
    env: { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
  });
  const ns = await ctx.scratch.netns();
  const rt = { containerId: ctx.scratch.cid("chain"), netns: `/var/run/netns/${ns}`, ifName: "eth0" };
  const problems: string[] = [];
  try {
    const v = await runtime.negotiate(list);
    if (v !== "1.0.0") problems.push(`negotiated ${v}`);
    const r = await runtime.add(list, rt);
    problems.push(...resultProblems(r, { version: "1.0.0", ifName: "eth0", netns: rt.netns, podRanges: ctx.summary.podRanges }));
    await runtime.check(list, rt);
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
  } finally {
    await runtime.del(list, rt).catch((e: unknown) => problems.push(`DEL: ${(e as Error).message}`));
  }
  return problems.length > 0 ? { label, status: "failed", reason: summarize(problems) } : { label, status: "passed" };
}

// ---- section I ---------------------------------------------------------------------------------

const POLICY_NS = { iso: "cnikit-iso", friend: "cnikit-friend" } as const;

const realChecks: LinuxCheck[] = [
  {
    id: "linux.same-checks",
    section: "I",
    rule: "The same scenario (backend, config, nodes, pods) in the simulator and on the kernel gives the same reachability table, cell by cell: pod ↔ pod, node → pod, pod → node, pod → external, by TCP, UDP and ping, and the same NAT verdict.",
    source: SRC.linux,
    required: true,
    async run(ctx) {
      const kernel = await ctx.table();
      const twin = await simTwin(
        ctx,
        ctx.basePods.map((p) => ({ name: p.name, node: p.node })),
      );
      try {
        if (twin.problems.length > 0) return { status: "failed", reason: summarize(twin.problems) };
        const sim = simTableOf(twin.cluster, ctx.endpoints, twin.keys, twin.addresses);
        const ms = compareReachTables(sim, kernel);
        const counts = tableCounts(kernel);
        if (ms.length > 0) return { status: "failed", reason: `${ms.length} of ${counts.cells} cells differ: ${formatMismatches(ms, 4).replace(/\n/g, "; ")}` };
        return { status: "passed", subResults: [{ label: `${counts.cells} cells agree (${counts.reached} reached, ${counts.unreachable} unreachable in both)`, status: "passed" }] };
      } finally {
        await twin.cluster.close();
      }
    },
  },
  {
    id: "linux.policy-nftables",
    section: "I",
    rule: "A NetworkPolicy written to the lab's etcd (isolating one pod: ingress only from a namespace, TCP 8080 only) is enforced by nftables: the kernel's table equals the simulator's and @cnikit/netpol's evaluator's.",
    source: SRC.policy,
    required: true,
    budgetMs: 240_000,
    gate: (summary, backend) => (backend.capabilities.networkPolicy ? undefined : { status: "not claimed", reason: "capabilities.networkPolicy is false" }),
    async run(ctx) {
      return policyRun(ctx);
    },
  },
];

async function policyRun(ctx: LinuxContext): Promise<Outcome> {
  const lab = ctx.lab;
  const nodes = nodeNames(ctx);
  const namespaces = [
    { name: "default", labels: {} as Record<string, string> },
    { name: POLICY_NS.iso, labels: { role: "iso" } },
    { name: POLICY_NS.friend, labels: { role: "friend" } },
  ];
  const policy = {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "isolate", namespace: POLICY_NS.iso },
    spec: {
      podSelector: {},
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { role: "friend" } } }], ports: [{ protocol: "TCP", port: 8080 }] }],
    },
  };
  const extra = [
    { name: "cf-iso", node: nodes[nodes.length - 1]!, namespace: POLICY_NS.iso },
    { name: "cf-friend", node: nodes[0]!, namespace: POLICY_NS.friend },
  ];
  const made: string[] = [];
  let written = false;
  try {
    for (const ns of namespaces) await labEtcd(lab, { put: kubeNamespaceKey(ns.name), value: kubeNamespaceValue(ns) });
    for (const e of extra) {
      await lab.addPod(e.node, { name: e.name, args: { K8S_POD_NAMESPACE: e.namespace } });
      made.push(e.name);
    }
    const pods = [...ctx.basePods.map((p) => ({ name: p.name, node: p.node, namespace: "default" })), ...extra];
    const endpoints: ReachEndpoint[] = [
      ...pods.map((p): ReachEndpoint => ({ name: p.name, kind: "pod", address: lab.pod(p.name).ip, node: p.node })),
      ...ctx.endpoints.filter((e) => e.kind !== "pod"),
    ];
    const twin = await simTwin(ctx, pods, async (cluster) => {
      for (const ns of namespaces) await cluster.store.put(kubeNamespaceKey(ns.name), kubeNamespaceValue(ns));
    });
    try {
      if (twin.problems.length > 0) return { status: "failed", reason: summarize(twin.problems) };
      await twin.cluster.store.put(kubeNetworkPolicyKey(policy.metadata.namespace, policy.metadata.name), JSON.stringify(policy));
      await twin.cluster.settle({ limitMs: ctx.summary.convergenceMs });
      const sim = simTableOf(twin.cluster, endpoints, twin.keys, twin.addresses);
      const simCounts = tableCounts(sim);
      if (simCounts.unreachable === 0) return { status: "failed", reason: "the policy isolates nothing in the simulator, so the kernel's enforcement cannot be judged" };
      // The evaluator over the kernel's pods (addresses as the kernel has them).
      const ev = new PolicyEvaluator({
        namespaces,
        pods: pods.map((p) => ({ namespace: p.namespace, name: p.name, labels: {}, ips: [lab.pod(p.name).ip], ports: [] })),
        policies: [parsePolicyObject(policy, "isolate")],
      });
      await labEtcd(lab, { put: kubeNetworkPolicyKey(policy.metadata.namespace, policy.metadata.name), value: JSON.stringify(policy) });
      written = true;
      // Converge: the agents watch etcd; probe until the kernel agrees or the bound passes.
      const deadline = Date.now() + Math.min(Math.max(ctx.summary.convergenceMs, 10_000), 60_000);
      let kernel: ReachTable;
      let ms: ReturnType<typeof compareReachTables>;
      let rounds = 0;
      for (;;) {
        rounds++;
        kernel = await kernelReachTable({ endpoints, expect: sim, timeoutMs: 800, probe: (a, b, proto, t) => lab.probe(a.name, b.name, proto, { timeoutMs: t }) });
        ms = compareReachTables(sim, kernel);
        if (ms.length === 0 || Date.now() > deadline) break;
        await sleep(500);
      }
      const problems: string[] = [];
      if (ms.length > 0) problems.push(`kernel vs simulator after ${rounds} round(s): ${ms.length} cells differ: ${formatMismatches(ms, 4).replace(/\n/g, "; ")}`);
      const evProblems: string[] = [];
      for (const a of pods) {
        for (const b of pods) {
          if (a === b) continue;
          for (const proto of ["tcp", "udp"] as const) {
            const allowed = ev.verdict({ from: `${a.namespace}/${a.name}`, to: `${b.namespace}/${b.name}`, protocol: proto === "tcp" ? "TCP" : "UDP", port: 8080 }).allowed;
            const k = kernel.cells[cellKey(a.name, b.name, proto)];
            if (allowed !== k?.reach)
              evProblems.push(`${a.name} → ${b.name} ${proto}/8080: netpol says ${allowed ? "allowed" : "denied"}, the kernel ${k?.reach ? "delivered" : `dropped (${k?.why ?? "?"})`}`);
          }
        }
      }
      if (evProblems.length > 0) problems.push(`kernel vs netpol's evaluator: ${summarize(evProblems)}`);
      const k = tableCounts(kernel);
      return verdict(problems, [
        { label: `simulator: ${simCounts.reached} reached, ${simCounts.unreachable} denied of ${simCounts.cells} cells`, status: "passed" },
        { label: `kernel after ${rounds} round(s): ${k.reached} reached, ${k.unreachable} denied`, status: ms.length === 0 ? "passed" : "failed" },
        { label: "pod → pod TCP/UDP 8080 as netpol's evaluator says", status: evProblems.length === 0 ? "passed" : "failed" },
      ]);
    } finally {
      await twin.cluster.close();
    }
  } finally {
    if (written) await labEtcd(lab, { del: kubeNetworkPolicyKey(policy.metadata.namespace, policy.metadata.name) }).catch(() => undefined);
    for (const name of made) await lab.deletePod(name).catch(() => undefined);
  }
}

// ---- mtu.underlay-non-1500: labs whose underlay is not 1500 ---------------------------------------

/** The underlay MTUs the check builds labs on (the suite's: a jumbo and a smaller-than-Ethernet one). */
export const KERNEL_UNDERLAY_MTUS = [9000, 1400] as const;

/** The largest encapsulation overhead of the config (0 when it encapsulates nothing). */
function encapOverhead(summary: NetworkSummary): { bytes: number; kind: string } {
  let best = { bytes: 0, kind: "none" };
  for (const e of summary.encapsulations) {
    const bytes = (ENCAP_OVERHEAD as Record<string, number | undefined>)[e];
    if (bytes !== undefined && bytes > best.bytes) best = { bytes, kind: e };
  }
  return best;
}

/** The MTU of `ifName` in namespace `ns` (undefined when it cannot be read). */
async function linkMtu(ns: string, ifName: string): Promise<number | undefined> {
  const r = await runAsync(["ip", "-n", ns, "-j", "link", "show", "dev", ifName], { timeoutMs: 15_000 });
  if (r.code !== 0) return undefined;
  try {
    return (JSON.parse(r.stdout) as { mtu?: number }[])[0]?.mtu;
  } catch {
    return undefined;
  }
}

/**
 * One underlay MTU on the kernel: a lab whose subnets, bridges, router and node interfaces carry
 * `mtu`; every pod's eth0 MTU leaves room for the encapsulation, and a packet of the sender's full
 * MTU with DF set (ping -M do) crosses to every pod on another node. The agent refusing a config
 * MTU the underlay cannot carry (code 7 naming an mtu field) is reported as such.
 */
async function kernelUnderlayMtuCase(ctx: LinuxContext, mtu: number): Promise<{ problems: string[]; refused?: string; label: string }> {
  const topology = withUnderlayMtu(chooseTopology({ needs: topologyNeedsOf(ctx.backend, ctx.config) }), mtu);
  let lab: Lab;
  try {
    lab = await ctx.startLab({ topology, suffix: `m${String(mtu).slice(0, 2)}`, podsPerNode: 1 });
  } catch (e) {
    const err = e as { code?: unknown; field?: unknown; message?: unknown };
    const text = `${String(err.field ?? "")} ${String(err.message ?? e)}`;
    // The agent's refusal reaches here as a ConfigError, or in cnikitd's last words ("cannot start (code 7): [x] mtu: ...").
    const refusal = /cannot start \(code 7\): (.*mtu.*)/i.exec(text)?.[1] ?? (err.code === 7 && /mtu/i.test(text) ? String(err.message) : undefined);
    if (refusal !== undefined) return { problems: [], refused: `on a ${mtu}-byte underlay the agent refused its config: ${refusal}`, label: `underlay MTU ${mtu}: refused` };
    return { problems: [`on a ${mtu}-byte underlay the lab could not be built: ${String(err.message ?? e)}`], label: `underlay MTU ${mtu}` };
  }
  try {
    const problems: string[] = [];
    const overhead = encapOverhead(ctx.summary);
    for (const n of lab.nodes) {
      const have = await linkMtu(n.ns, "eth0");
      if (have !== mtu) problems.push(`node ${n.name}'s underlay interface eth0 has MTU ${String(have)}, the lab's subnet ${mtu}`);
    }
    const mtuOf = new Map<string, number>();
    for (const p of lab.pods) {
      const have = await linkMtu(p.ns, p.ifName);
      if (have === undefined) {
        problems.push(`pod default/${p.name} (${p.ip}) on node ${p.node}: ${p.ifName} cannot be read`);
        continue;
      }
      mtuOf.set(p.name, have);
      if (have + overhead.bytes > mtu)
        problems.push(
          `on a ${mtu}-byte underlay, pod default/${p.name} (${p.ip}) on node ${p.node} has MTU ${have}: with ${overhead.kind} (${overhead.bytes} bytes) that is ${have + overhead.bytes} > ${mtu}`,
        );
    }
    let crossed = 0;
    for (const from of lab.pods) {
      const size = mtuOf.get(from.name);
      if (size === undefined) continue;
      for (const to of lab.pods) {
        if (to.node === from.node) continue;
        // ICMP echo of `size` bytes in all: 20 IPv4 + 8 ICMP + payload; DF set, so nothing may fragment it.
        let r: CommandResult | undefined;
        for (let i = 0; i < 3 && r?.code !== 0; i++)
          r = await runAsync(["ip", "netns", "exec", from.ns, "ping", "-M", "do", "-s", String(size - 28), "-c", "1", "-W", "2", to.ip], { timeoutMs: 15_000 });
        if (r?.code === 0) crossed++;
        else
          problems.push(
            `on a ${mtu}-byte underlay, a ${size}-byte packet (DF) from pod default/${from.name} (${from.ip}) on node ${from.node} to pod default/${to.name} (${to.ip}) on node ${to.node} is lost: ${((r?.stdout ?? "") + (r?.stderr ?? "")).trim().split("\n").slice(-2).join(" ")}`,
          );
      }
    }
    const sizes = [...new Set(mtuOf.values())].join("/");
    return { problems, label: `underlay MTU ${mtu}: pod MTU ${sizes || "?"}${overhead.bytes > 0 ? ` + ${overhead.kind} ${overhead.bytes}` : ""}; ${crossed} full-size DF packet(s) crossed nodes` };
  } finally {
    await lab.down().catch(() => undefined);
  }
}

/** The suite's mtu.underlay-non-1500 (its rule and source), here on labs instead of simulated topologies. */
const UNDERLAY_MTU_SPEC = listChecks().find((c) => c.id === "mtu.underlay-non-1500")!;

const underlayMtuCheck: LinuxCheck = {
  id: UNDERLAY_MTU_SPEC.id,
  section: UNDERLAY_MTU_SPEC.section,
  rule: UNDERLAY_MTU_SPEC.rule,
  source: UNDERLAY_MTU_SPEC.source,
  required: UNDERLAY_MTU_SPEC.required,
  budgetMs: 300_000,
  async run(ctx) {
    const problems: string[] = [];
    const refused: string[] = [];
    const subResults: SubResult[] = [];
    for (const mtu of KERNEL_UNDERLAY_MTUS) {
      const r = await kernelUnderlayMtuCase(ctx, mtu);
      problems.push(...r.problems);
      if (r.refused) refused.push(r.refused);
      subResults.push(
        r.refused
          ? { label: r.label, status: "not applicable", reason: r.refused }
          : r.problems.length > 0
            ? { label: r.label, status: "failed", reason: summarize(r.problems) }
            : { label: r.label, status: "passed" },
      );
    }
    if (problems.length > 0) return { status: "failed", reason: summarize(problems), subResults };
    if (refused.length === KERNEL_UNDERLAY_MTUS.length) return { status: "not applicable", reason: `the backend ran on neither underlay: ${refused.join("; ")}`, subResults };
    return refused.length > 0 ? { status: "passed", reason: `passed where it ran; ${refused.join("; ")}`, subResults } : { status: "passed", subResults };
  },
};

// ---- section G: encryption.no-plaintext on the kernel -------------------------------------------

/** Ordered cross-node pod pairs the kernel's section G exchanges a marker between (a bounded sample). */
export const KERNEL_G_PAIRS = 8;
/** The protocols of the exchange (the probe agents' TCP and UDP echo on PROBE_PORT). */
export const KERNEL_G_PROTOS = ["tcp", "udp"] as const;
/** The node's underlay interface in the lab (the plan gives every host one `eth0`). */
const UNDERLAY_IF = "eth0";

/**
 * Up to `max` ordered pairs of pods on different nodes, taken round-robin over the ordered node
 * pairs (every direction between every two nodes before a second pod pair of any of them).
 */
export function crossNodeSample<P extends { node: string }>(pods: readonly P[], max: number): [P, P][] {
  const groups = new Map<string, [P, P][]>();
  for (const a of pods) {
    for (const b of pods) {
      if (a.node === b.node) continue;
      const k = `${a.node}>${b.node}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = []));
      g.push([a, b]);
    }
  }
  const out: [P, P][] = [];
  for (let i = 0; out.length < max; i++) {
    let any = false;
    for (const g of groups.values()) {
      const pair = g[i];
      if (pair === undefined) continue;
      any = true;
      if (out.length < max) out.push(pair);
    }
    if (!any) break;
  }
  return out;
}

/** A random string that cannot occur on the wire by chance. */
function randomMarker(tag: string): string {
  return `cnikit-${tag}-${randomBytes(16).toString("hex")}`;
}

/**
 * Bytes of the payload each exchange sends (the marker, then random padding), echoed back: every
 * packet that carries it across the underlay, encrypted or not, is at least this long, which the
 * overlay's own chatter between two nodes (ARP, IPv6 neighbour and multicast listener messages
 * flooded on an L2 overlay, a few dozen to ~200 bytes) is not. It fits one packet each way on
 * any pod MTU from ~700 bytes (the echo adds ~50 bytes of JSON); a smaller MTU would split it and
 * the check would say the capture saw no packet of the exchange.
 */
export const KERNEL_G_PAYLOAD_BYTES = 600;

/**
 * Which way `p` carries the exchange between two pods, or undefined when it is not a packet of it:
 * an outer IPv4 packet between the two pods' nodes (not the peer transport's TCP: gossip and
 * leases are the control plane) or between the pods themselves (routed as they are), at least
 * `minBytes` long on the wire. "there" is from the sender's side, "back" towards it.
 */
export function exchangeDirection(p: CapturedPacket, o: { nodes: [string, string]; pods: [string, string]; peerPorts: ReadonlySet<number>; minBytes: number }): "there" | "back" | undefined {
  const ip = ipv4Of(p);
  if (!ip || p.wireLength < o.minBytes) return undefined;
  const way = (x: [string, string]): "there" | "back" | undefined => (ip.src === x[0] && ip.dst === x[1] ? "there" : ip.src === x[1] && ip.dst === x[0] ? "back" : undefined);
  const pods = way(o.pods);
  if (pods !== undefined) return pods;
  const nodes = way(o.nodes);
  if (nodes === undefined) return undefined;
  if (ip.protocol === 6 && (o.peerPorts.has(ip.srcPort ?? -1) || o.peerPorts.has(ip.dstPort ?? -1))) return undefined;
  return nodes;
}

/**
 * One exchange of section G on the kernel: tcpdump on every node's underlay interface, a marker
 * from `from` to `to` over `proto` (echoed back), a flush sentinel per node so that each capture
 * has caught up, then the captures searched for the marker and counted for the exchange.
 */
async function plaintextExchange(ctx: LinuxContext, from: LabPod, to: LabPod, proto: "tcp" | "udp"): Promise<{ problems: string[]; sub: SubResult }> {
  const lab = ctx.lab;
  const what = `${proto} from ${podEndpoint(from).label} to ${podEndpoint(to).label}`;
  const problems: string[] = [];
  const marker = randomMarker(`g-${proto}`);
  const payload = `${marker}.${randomBytes(KERNEL_G_PAYLOAD_BYTES).toString("hex")}`.slice(0, KERNEL_G_PAYLOAD_BYTES);
  const nodeA = lab.node(from.node);
  const nodeB = lab.node(to.node);
  const peerPorts = new Set(lab.plan.nodes.map((n) => n.peerPort));
  const controlSocket = lab.state.pods.find((p) => p.name === from.name)?.controlSocket;
  if (controlSocket === undefined) throw new Error(`[lab] pod ${from.name} has no probe agent recorded`);
  const podClient = new ProbeClient(controlSocket);
  const nodeClients = lab.nodes.map((n) => new ProbeClient(probeSocket(lab.plan, n.name)));
  const captures: UnderlayCapture[] = [];
  try {
    const started = await Promise.allSettled(lab.nodes.map((n) => UnderlayCapture.start({ ns: n.ns, ifName: UNDERLAY_IF, maxMs: 120_000 })));
    for (const c of started) if (c.status === "fulfilled") captures.push(c.value);
    for (const c of started) if (c.status === "rejected") throw c.reason;
    let r = await podClient.probe({ proto, host: to.ip, port: PROBE_PORT, timeoutMs: 3000, payload });
    if (!r.ok) r = await podClient.probe({ proto, host: to.ip, port: PROBE_PORT, timeoutMs: 6000, payload });
    if (!r.ok) problems.push(`${what}: the exchange did not complete (${r.error ?? "no echo"}), so the capture cannot vouch for it`);
    // Each node sends a sentinel to another node over the underlay; once its capture holds it, it holds everything before it.
    const sentinels = lab.nodes.map(() => randomMarker("g-flush"));
    await Promise.all(
      lab.nodes.map(async (n, i) => {
        const peer = lab.nodes[(i + 1) % lab.nodes.length]!;
        const sentinel = Buffer.from(sentinels[i]!, "utf8");
        const seen = nodeClients[i]!.probe({ proto: "udp", host: peer.address, port: PROBE_PORT, timeoutMs: 2000, payload: sentinels[i]! });
        const caught = await captures[i]!.waitFor(sentinel, 10_000);
        await seen;
        if (!caught) problems.push(`${what}: the capture on node ${n.name}'s ${UNDERLAY_IF} never showed the sentinel node ${n.name} sent after the exchange, so it may have missed packets`);
      }),
    );
    const results = await Promise.all(captures.splice(0).map((c) => c.stop()));
    const sentinelForms = sentinels.map((s) => Buffer.from(s, "utf8"));
    const counts: string[] = [];
    const seenOn: string[] = [];
    for (const [i, n] of lab.nodes.entries()) {
      const res = results[i]!;
      if ((res.droppedByKernel ?? 0) > 0) problems.push(`${what}: the capture on node ${n.name} dropped ${res.droppedByKernel} packet(s) in the kernel, so it may have missed the marker`);
      const hits = packetsWith(res.packets, markerForms(marker));
      if (hits.length > 0) seenOn.push(`node ${n.name} (${UNDERLAY_IF}, ${hits.length} packet(s), e.g. ${describePacket(hits[0]!)})`);
      if (n.name !== nodeA.name && n.name !== nodeB.name) continue;
      const ways = { there: 0, back: 0 };
      for (const p of res.packets) {
        if (sentinelForms.some((f) => p.data.includes(f))) continue;
        const way = exchangeDirection(p, { nodes: [nodeA.address, nodeB.address], pods: [from.ip, to.ip], peerPorts, minBytes: KERNEL_G_PAYLOAD_BYTES });
        if (way !== undefined) ways[way]++;
      }
      counts.push(`${ways.there} there, ${ways.back} back on ${n.name}`);
      const missing = [ways.there === 0 ? `from ${nodeA.address} to ${nodeB.address}` : "", ways.back === 0 ? `from ${nodeB.address} to ${nodeA.address}` : ""].filter(Boolean);
      if (missing.length > 0) {
        problems.push(
          `${what}: the capture on node ${n.name}'s ${UNDERLAY_IF} saw no packet of ${KERNEL_G_PAYLOAD_BYTES}+ bytes ${missing.join(" nor ")} (nor between the pods) during the exchange, so it cannot show the marker did not cross in plaintext`,
        );
      }
    }
    if (seenOn.length > 0) problems.unshift(`${what}: the marker ${marker} crosses the underlay in plaintext on ${seenOn.join(" and on ")}`);
    const label = `${proto} ${from.name} (${from.node}) → ${to.name} (${to.node}): packets of the exchange (${KERNEL_G_PAYLOAD_BYTES}+ bytes between the nodes) ${counts.join(", ")}`;
    return { problems, sub: problems.length > 0 ? { label, status: "failed", reason: summarize(problems) } : { label: `${label}; the marker in none`, status: "passed" } };
  } finally {
    await Promise.all(captures.map((c) => c.stop()));
    podClient.close();
    for (const c of nodeClients) c.close();
  }
}

/** The suite's encryption.no-plaintext (its section and source), here with captures of the lab's underlay. */
const NO_PLAINTEXT_SPEC = listChecks().find((c) => c.id === "encryption.no-plaintext")!;

const encryptionCheck: LinuxCheck = {
  id: NO_PLAINTEXT_SPEC.id,
  section: NO_PLAINTEXT_SPEC.section,
  rule: "Pod traffic between nodes carries no plaintext payload on the underlay: a random marker pods exchange over TCP and UDP (both directions) never appears, raw or in hex, in a tcpdump capture of any node's underlay interface, while the capture sees the exchange's packets.",
  source: NO_PLAINTEXT_SPEC.source,
  required: NO_PLAINTEXT_SPEC.required,
  budgetMs: 240_000,
  // Exactly as in the simulator.
  gate: (summary, backend) => {
    if (!backend.capabilities.encryption) return { status: "not claimed", reason: "capabilities.encryption is false" };
    if (summary.encrypted === false) return { status: "not claimed", reason: "this config does not encrypt (summarize says encrypted: false)" };
    return undefined;
  },
  async run(ctx) {
    if (!onPath("tcpdump")) return { status: "error", reason: "tcpdump is not installed: install the Debian package tcpdump (listed in scripts/system-packages.txt)" };
    const pairs = crossNodeSample(ctx.basePods, KERNEL_G_PAIRS);
    if (pairs.length === 0) return { status: "not applicable", reason: `the lab has no two pods on different nodes (${ctx.basePods.length} pod(s)): no pod traffic crosses the underlay` };
    const problems: string[] = [];
    const subResults: SubResult[] = [];
    for (const [from, to] of pairs) {
      for (const proto of KERNEL_G_PROTOS) {
        const r = await plaintextExchange(ctx, from, to, proto);
        problems.push(...r.problems);
        subResults.push(r.sub);
      }
    }
    const failed = subResults.filter((s) => s.status !== "passed").length;
    if (failed > 0) return { status: "failed", reason: `${failed} of ${subResults.length} exchanges: ${summarize(problems)}`, subResults };
    return { status: "passed", subResults };
  },
};

// ---- the run -----------------------------------------------------------------------------------

/** Every check the kernel run implements, in the suite's order. */
export const LINUX_CHECKS: readonly LinuxCheck[] = Object.freeze([...modelChecks, underlayMtuCheck, ...lifecycleChecks, encryptionCheck, ...realChecks]);

let runCounter = 0;

function resolveBackend(options: LinuxConformanceOptions): { backend: Backend<unknown>; raw: unknown; label: string; mode: string; backendModule?: LabBackendModule } {
  const name = typeof options.backend === "string" ? options.backend : options.backend.name;
  // A built-in Backend object needs no module: cnikitd hosts it by name.
  const builtin = builtinBackends.find((b) => b.backend.name === name)?.backend;
  if (options.backendModule !== undefined && !(builtin !== undefined && builtin === options.backend)) {
    if (typeof options.backend === "string") throw new ConfigError({ component: C, field: "backend", rule: "must be the module's Backend object when backendModule is given", value: name });
    if (options.config === undefined) throw new ConfigError({ component: C, field: "config", rule: "is required for a backend module (there are no fixtures for it)" });
    const label = options.configLabel ?? options.mode ?? "config";
    return { backend: options.backend, raw: options.config, label, mode: options.mode ?? label, backendModule: options.backendModule };
  }
  let entry;
  try {
    entry = builtinBackend(name);
  } catch (e) {
    throw new ConfigError({
      component: C,
      field: "backendModule",
      rule: `is required for a backend that is not built in (the module each node's cnikitd loads it from): ${(e as Error).message}`,
      value: name,
    });
  }
  if (typeof options.backend !== "string" && options.backend !== entry.backend) {
    throw new ConfigError({
      component: C,
      field: "backendModule",
      rule: `is required: this Backend is called ${name} but is not the built-in one (each node's cnikitd must load the same code)`,
      value: name,
    });
  }
  const backend = typeof options.backend === "string" ? entry.backend : options.backend;
  if (options.config !== undefined) {
    const label = options.configLabel ?? options.mode ?? "config";
    return { backend, raw: options.config, label, mode: options.mode ?? label };
  }
  const labels = entry.configs.map((c) => c.label);
  const mode = options.mode ?? labels[0]!;
  const found = entry.configs.find((c) => c.label === mode);
  if (!found) throw new ConfigError({ component: C, field: "mode", rule: `must be one of ${labels.join(", ")} for ${name}`, value: mode });
  return { backend, raw: structuredClone(found.config), label: options.configLabel ?? mode, mode };
}

function boundedInt(v: number | undefined, field: string, fallback: number, min: number, max: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < min || x > max) throw new ConfigError({ component: C, field, rule: `must be an integer from ${min} to ${max}`, value: v });
  return x;
}

/**
 * Runs sections A, B and I on the real kernel (see the module comment) and returns the suite's
 * report with `dataplane: "linux"`. Every check of the suite appears once, in the suite's order:
 * kernel checks with their outcome, the rest "not run: simulator-only in this version". Needs root
 * and the lab's tools (iproute2, nftables, iputils-ping, etcd-server); builds one lab and takes it
 * down at the end, also on failure. A backend that is not built in runs from `backendModule`, which
 * every node's cnikitd loads. Throws `ConfigError` for such a backend without `backendModule`
 * (field `backendModule`) or without `config`, an unknown mode or check id, bad node/pod counts, and the backend's own `ConfigError` for an invalid config.
 * A kernel that lacks the config's encapsulation makes every kernel check "not run" with the
 * kernel's reason ("kernel lacks ipip: ..."); a lab that cannot be built makes them "error".
 * Checks run one after another (they share the lab).
 */
export async function runLinuxConformance(options: LinuxConformanceOptions): Promise<LinuxConformanceReport> {
  const { backend, raw, label, mode, backendModule } = resolveBackend(options);
  const config = backend.parseConfig(raw);
  const summary = backend.summarize(config, clusterTopologyOf(chooseTopology({ needs: topologyNeedsOf(backend, config) })));
  const nodes = boundedInt(options.nodes, "nodes", 2, 2, 8);
  const podsPerNode = boundedInt(options.podsPerNode, "podsPerNode", 2, 1, 4);
  const seed = options.seed ?? 1;
  const selected = selectChecks(options.checks);
  const log = options.log ?? (() => {});
  const startedAt = new Date();
  const t0 = performance.now();
  const results: CheckResult[] = [];
  const byId = new Map(LINUX_CHECKS.map((c) => [c.id, c]));
  const emit = (r: CheckResult): void => {
    results.push(r);
    options.onResult?.(r);
  };
  const head = (id: string): Omit<CheckResult, "status"> => {
    const k = byId.get(id);
    const s = listChecks().find((c) => c.id === id)!;
    return { id, section: s.section, rule: k?.rule ?? s.rule, source: k?.source ?? s.source, required: k?.required ?? s.required };
  };
  const kernelIds = selected.filter((c) => byId.has(c.id)).map((c) => c.id);
  const gated = new Map<string, { status: "not claimed" | "not run"; reason: string }>();
  for (const id of kernelIds) {
    const g = byId.get(id)!.gate?.(summary, backend);
    if (g) gated.set(id, g);
  }
  const toRun = kernelIds.filter((id) => !gated.has(id));

  /** What every lab of this run is started with (the run's own, and the ones checks start). */
  const labOptions = {
    backend: backendModule ? backend : backend.name,
    ...(backendModule ? { backendModule } : {}),
    backendConfig: raw,
    mode,
    ...(options.stateRoot !== undefined ? { stateRoot: options.stateRoot } : {}),
    ...(options.cniPlugin !== undefined ? { cniPlugin: options.cniPlugin } : {}),
    log,
  };
  let lab: Lab | undefined;
  let buildMs = 0;
  let labFailure: { status: "not run" | "error"; reason: string } | undefined;
  if (toRun.length > 0) {
    const tb = performance.now();
    try {
      lab = await startLab({ ...labOptions, name: options.name ?? `cf${process.pid}${runCounter++}`.slice(0, 20), nodes, podsPerNode });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      labFailure = e instanceof KernelLacksError ? { status: "not run", reason: msg } : { status: "error", reason: `could not build the lab: ${msg}` };
    }
    buildMs = Math.round(performance.now() - tb);
  }
  try {
    if (lab && options.prepare) {
      try {
        await options.prepare(lab);
      } catch (e) {
        labFailure = { status: "error", reason: `the prepare hook failed: ${e instanceof Error ? e.message : String(e)}` };
      }
    }
    const mainLab = lab;
    const startOther: LinuxContext["startLab"] = ({ topology, suffix, podsPerNode: perNode }) =>
      startLab({ ...labOptions, name: `${mainLab!.name.slice(0, 20 - suffix.length)}${suffix}`, topology, nodes: 2, podsPerNode: perNode });
    const ctx = lab && !labFailure ? makeContext({ lab, backend, config, summary, seed, cniPlugin: options.cniPlugin ?? cniPluginPath(), startLab: startOther }) : undefined;
    for (const c of selected) {
      const h = head(c.id);
      const g = gated.get(c.id);
      if (!byId.has(c.id)) {
        emit({ ...h, status: "not run", reason: SIM_ONLY });
        continue;
      }
      if (g) {
        emit({ ...h, status: g.status, reason: g.reason });
        continue;
      }
      if (!ctx) {
        emit({ ...h, status: labFailure?.status ?? "error", reason: labFailure?.reason ?? "no lab" });
        continue;
      }
      emit(await runOne(byId.get(c.id)!, ctx, h));
    }
  } finally {
    if (lab) await lab.down();
  }
  const report: LinuxConformanceReport = {
    backend: backend.name,
    config: `${label} [dataplane linux]`,
    nodes,
    seed,
    started: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    results,
    dataplane: "linux",
  };
  if (lab) {
    report.store = `etcd in lab ${lab.name}`;
    report.lab = {
      name: lab.name,
      subnets: lab.plan.subnets.map((s) => `${s.name} ${s.cidr}`),
      nodes: lab.nodes.map((n) => ({ name: n.name, address: n.address })),
      pods: (lab.state.pods ?? []).filter((p) => p.ip !== undefined).map((p) => ({ name: p.name, node: p.node, ip: p.ip! })),
      buildMs,
    };
  }
  return report;
}

function makeContext(init: { lab: Lab; backend: Backend<unknown>; config: unknown; summary: NetworkSummary; seed: number; cniPlugin: string; startLab: LinuxContext["startLab"] }): LinuxContext {
  const { lab } = init;
  const basePods = lab.pods;
  const endpoints: ReachEndpoint[] = [
    ...basePods.map((p): ReachEndpoint => ({ name: p.name, kind: "pod", address: p.ip, node: p.node })),
    ...lab.nodes.map((n): ReachEndpoint => ({ name: n.name, kind: "node", address: n.address })),
    ...lab.plan.externals.map((e): ReachEndpoint => ({ name: e.name, kind: "external", address: e.address })),
  ];
  let table: Promise<ReachTable> | undefined;
  return {
    ...init,
    basePods,
    endpoints,
    scratch: new Scratch(lab),
    table: () =>
      (table ??= kernelReachTable({
        endpoints,
        protos: REACH_PROTOS,
        timeoutMs: 1500,
        probe: (a, b, proto, t) => lab.probe(a.name, b.name, proto, { timeoutMs: t }),
        // Every pair must reach, except pod → outside without NAT (no route back to pod addresses).
        expect: {
          endpoints,
          protos: [...REACH_PROTOS],
          cells: Object.fromEntries(reachPairs(endpoints).flatMap(([a, b]) => REACH_PROTOS.map((p) => [cellKey(a.name, b.name, p), { reach: b.kind !== "external" || init.summary.natOutgoing }]))),
        },
      })),
  };
}

async function runOne(check: LinuxCheck, ctx: LinuxContext, h: Omit<CheckResult, "status">): Promise<CheckResult> {
  const budget = check.budgetMs ?? 180_000;
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  let outcome: Outcome;
  try {
    outcome = await Promise.race([
      check.run(ctx),
      new Promise<Outcome>((resolve) => {
        timer = setTimeout(() => resolve({ status: "error", reason: `did not finish within its budget of ${Math.round(budget / 1000)} s of wall time` }), budget);
      }),
    ]);
  } catch (e) {
    outcome = { status: "error", reason: `threw ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    if (timer) clearTimeout(timer);
    await ctx.scratch.cleanup();
  }
  const r: CheckResult = { ...h, status: outcome.status, metrics: { wallMs: Math.round(performance.now() - started) } };
  if (outcome.reason !== undefined) r.reason = outcome.reason;
  if (outcome.subResults) r.subResults = outcome.subResults;
  return r;
}
