/**
 * Builds what a `LabPlan` says, recording each thing in the state file before creating it: the
 * fabric namespace with one bridge per subnet, routers, the infra host, external hosts and node
 * hosts (a namespace each, `eth0` on its subnet's bridge, a default route via the subnet's
 * router), and etcd inside the infra namespace. Nothing is created in the host's own namespace:
 * every veth is created inside the fabric namespace with its peer moved straight into the host's.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { findEtcdBinary } from "@cnikit/etcd/testing";
import type { LabPlan, PlannedHost, PlannedRouter } from "./plan.ts";
import { PROBE_PORT } from "./plan.ts";
import { PROBE_AGENT, ProbeClient } from "./probe.ts";
import type { StateStore } from "./state.ts";
import { createNetns, parseJsonValues, runIpBatch, writeSysctls } from "@cnikit/linux";
import { inNs, pidAlive, runAsync, spawnDetached } from "./system.ts";
import { ConfigError, KeyedSerializer, Prefix, StoreFabricPort, kubeNodeKey, kubeNodeValue, type FabricAddress, type FabricPort, type FabricRoute, type NodeInfo } from "@cnikit/core";
import type { FabricPortContext } from "@cnikit/cni";
import { readState } from "./state.ts";

const sysctls = (ns: string, values: Record<string, string>): Promise<void> =>
  writeSysctls(
    ns,
    Object.entries(values).map(([key, value]) => ({ key, value })),
  );
const ipBatch = async (ns: string, lines: readonly string[]): Promise<void> => {
  if (lines.length > 0) await runIpBatch(ns, lines);
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Creates a namespace after recording it. */
export async function makeNetns(store: StateStore, name: string): Promise<void> {
  store.record({ kind: "netns", name });
  await createNetns(name);
}

/** Creates a directory (recursively) after recording it. */
export function makeDir(store: StateStore, path: string): void {
  if (existsSync(path)) return;
  store.record({ kind: "dir", path });
  mkdirSync(path, { recursive: true });
}

/** The fabric namespace and its bridges (one per subnet, MTU of the subnet). */
export async function buildFabric(store: StateStore, plan: LabPlan): Promise<void> {
  await makeNetns(store, plan.fabricNs);
  await ipBatch(
    plan.fabricNs,
    plan.subnets.flatMap((s) => [`link add ${s.bridge} mtu ${s.mtu} type bridge`, `link set ${s.bridge} up`]),
  );
}

/** Plugs one interface of namespace `ns` into the bridge of `subnet`. */
async function plug(plan: LabPlan, itf: { ns: string; ifName: string; fabricIf: string; subnet: string; address: string; prefixLength: number; mtu: number }): Promise<void> {
  const bridge = plan.subnets.find((s) => s.name === itf.subnet)!.bridge;
  await ipBatch(plan.fabricNs, [
    `link add ${itf.fabricIf} mtu ${itf.mtu} type veth peer name ${itf.ifName} netns ${itf.ns}`,
    `link set ${itf.fabricIf} master ${bridge}`,
    `link set ${itf.fabricIf} up`,
  ]);
  await ipBatch(itf.ns, [`link set ${itf.ifName} mtu ${itf.mtu}`, `addr add ${itf.address}/${itf.prefixLength} dev ${itf.ifName}`, `link set ${itf.ifName} up`]);
}

/** A router namespace: its interfaces, forwarding on, routes to the subnets beyond other routers. */
export async function buildRouter(store: StateStore, plan: LabPlan, router: PlannedRouter): Promise<void> {
  await makeNetns(store, router.ns);
  await sysctls(router.ns, { "net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0" });
  for (const itf of router.interfaces) await plug(plan, { ns: router.ns, ...itf });
  await ipBatch(
    router.ns,
    router.routes.map((r) => `route add ${r.dst} via ${r.via}`),
  );
}

/**
 * A host namespace with `eth0` on its subnet and a default route via the subnet's router. Loose
 * reverse-path filtering (as most distributions set it), so asymmetric pod paths are not dropped
 * by the host before the backend's own rules see them.
 */
export async function buildHost(store: StateStore, plan: LabPlan, host: PlannedHost): Promise<void> {
  await makeNetns(store, host.ns);
  await sysctls(host.ns, { "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0" });
  await plug(plan, { ns: host.ns, ifName: "eth0", fabricIf: host.fabricIf, subnet: host.subnet, address: host.address, prefixLength: host.prefixLength, mtu: host.mtu });
  if (host.gateway !== undefined) await ipBatch(host.ns, [`route add default via ${host.gateway} dev eth0`]);
}

/** The control socket of the probe agent of endpoint `name`. */
export function probeSocket(plan: LabPlan, name: string): string {
  return `${plan.stateDir}/probe/${name}.sock`;
}

/**
 * Starts a probe agent (responder + prober) in namespace `ns` for endpoint `name`, recorded as
 * process `probe:<name>`, and waits until its control socket answers. Throws with the agent's log
 * when it exits or does not answer within `timeoutMs`.
 */
export async function startProbeAgent(store: StateStore, init: { plan: LabPlan; name: string; ns: string; timeoutMs?: number }): Promise<ProbeClient> {
  const socket = probeSocket(init.plan, init.name);
  const logPath = `${init.plan.stateDir}/probe/${init.name}.log`;
  const entry = store.recordProcess({ role: `probe:${init.name}`, ns: init.ns, marker: socket });
  const pid = spawnDetached({ ns: init.ns, argv: [process.execPath, PROBE_AGENT, "--control", socket, "--port", String(PROBE_PORT)], logPath });
  store.setPid(entry, pid);
  const client = new ProbeClient(socket);
  const deadline = Date.now() + (init.timeoutMs ?? 15_000);
  for (;;) {
    if (existsSync(socket) && (await client.alive())) return client;
    if (!pidAlive(pid)) {
      throw new Error(`[lab] probe agent for ${init.name} exited: ${tail(logPath)}`);
    }
    if (Date.now() > deadline) throw new Error(`[lab] probe agent for ${init.name} did not answer within ${init.timeoutMs ?? 15_000} ms: ${tail(logPath)}`);
    await sleep(30);
  }
}

/** The last lines of a log file. */
export function tail(path: string, lines = 15, from = 0): string {
  try {
    const text = readFileSync(path, "utf8").slice(from);
    return text.trimEnd().split("\n").slice(-lines).join("\n") || "(empty log)";
  } catch {
    return "(no log)";
  }
}

/** Size of a file, 0 when absent. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/**
 * Starts etcd inside the infra namespace, serving clients on the infra host's underlay address
 * (and its peer port on the namespace's loopback), recorded as process `etcd` with its data
 * directory as marker; waits until `/health` answers through the infra host's probe agent.
 */
export async function startEtcd(store: StateStore, init: { plan: LabPlan; infra: ProbeClient; timeoutMs?: number }): Promise<number> {
  const { plan } = init;
  const binary = findEtcdBinary();
  makeDir(store, plan.etcd.dataDir);
  const member = `cnikit-lab-${plan.name}`;
  const peer = "http://127.0.0.1:2380";
  const argv = [
    binary,
    "--name",
    member,
    "--data-dir",
    plan.etcd.dataDir,
    "--listen-client-urls",
    `${plan.etcd.clientUrl},http://127.0.0.1:${plan.etcd.port}`,
    "--advertise-client-urls",
    plan.etcd.clientUrl,
    "--listen-peer-urls",
    peer,
    "--initial-advertise-peer-urls",
    peer,
    "--initial-cluster",
    `${member}=${peer}`,
    "--initial-cluster-state",
    "new",
    "--heartbeat-interval",
    "50",
    "--election-timeout",
    "500",
    "--max-request-bytes",
    String(2 * 1024 * 1024),
    "--logger",
    "zap",
    "--log-outputs",
    "stderr",
  ];
  const entry = store.recordProcess({ role: "etcd", ns: plan.infra.ns, marker: plan.etcd.dataDir });
  const pid = spawnDetached({ ns: plan.infra.ns, argv, logPath: plan.etcd.logPath });
  store.setPid(entry, pid);
  const timeoutMs = init.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await init.infra.request({ op: "http", url: `${plan.etcd.clientUrl}/health`, timeoutMs: 1000 });
    if (a["ok"] === true && a["status"] === 200 && /"health":\s*"true"/.test(String(a["body"]))) return pid;
    if (!pidAlive(pid)) throw new Error(`[lab] etcd exited while starting; log tail:\n${tail(plan.etcd.logPath)}`);
    if (Date.now() > deadline) throw new Error(`[lab] etcd did not become healthy within ${timeoutMs} ms on ${plan.etcd.clientUrl}; log tail:\n${tail(plan.etcd.logPath)}`);
    await sleep(100);
  }
}

// ---- membership and the fabric port -----------------------------------------------------------

/** This module's file: the fabric module the lab's cnikit-controller loads (`createFabricPort`). */
export const LAB_FABRIC_MODULE = fileURLToPath(import.meta.url);

/** The NodeInfo of a planned node, as its cnikitd config and its mirrored Node object give it. */
export function plannedNodeInfo(n: PlannedHost & { name: string }): NodeInfo {
  return {
    name: n.name,
    underlay: [{ iface: "eth0", address: n.address, prefixLength: n.prefixLength, mtu: n.mtu, ...(n.gateway !== undefined ? { gateway: n.gateway } : {}) }],
  };
}

const ETCD_PUT_SCRIPT = `const [u, items] = process.argv.slice(1);
(async () => { for (const b of JSON.parse(items)) { const r = await fetch(u, { method: "POST", body: JSON.stringify(b) }); if (!r.ok) { console.error(r.status + " " + (await r.text())); process.exit(1); } } })().catch((e) => { console.error(String(e)); process.exit(1); });`;

/**
 * Mirrors every planned node as a Kubernetes Node object under `KUBE_PREFIX.nodes` in the lab's
 * etcd (below `storePrefix`), as a cluster's API would: what cnikitd's and cnikit-controller's
 * membership read. Runs inside the infra namespace (etcd's v3 JSON gateway on loopback). Throws
 * when etcd refuses.
 */
export async function mirrorNodes(plan: LabPlan, storePrefix: string): Promise<void> {
  const b64 = (t: string): string => Buffer.from(t, "utf8").toString("base64");
  const items = plan.nodes.map((n) => ({ key: b64(storePrefix + kubeNodeKey(n.name)), value: b64(kubeNodeValue(plannedNodeInfo(n))) }));
  const r = await runAsync(inNs(plan.infra.ns, [process.execPath, "-e", ETCD_PUT_SCRIPT, `http://127.0.0.1:${plan.etcd.port}/v3/kv/put`, JSON.stringify(items)]), { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`[lab] mirroring the Node objects into etcd failed: ${r.stderr.trim() || r.stdout.trim()}`);
}

/** Priority a node namespace's local-table lookup moves to (from 0) once it holds a secondary address. */
export const LAB_LOCAL_RULE_PREF = 100;
/** Priority of the per-secondary-address rule `to <a>/32 lookup main suppress_prefixlength 31`. */
export const LAB_SECONDARY_RULE_PREF = 50;

/** One rule of `ip -j rule show`. */
interface IpRuleJson {
  priority?: number;
  src?: string;
  dst?: string;
  dstlen?: number;
  table?: string;
  suppress_prefixlen?: number;
}

async function ipJson<T>(ns: string, line: string): Promise<T[]> {
  const r = await runIpBatch(ns, [line], { globals: ["-j"] });
  return parseJsonValues(r.stdout).flatMap((v) => (Array.isArray(v) ? (v as T[]) : []));
}

const isLocalLookup =
  (pref: number) =>
  (r: IpRuleJson): boolean =>
    r.priority === pref && r.table === "local" && (r.src ?? "all") === "all" && r.dst === undefined;
const isSecondaryRule =
  (address: string) =>
  (r: IpRuleJson): boolean =>
    r.priority === LAB_SECONDARY_RULE_PREF && r.dst === address && (r.dstlen ?? 32) === 32 && r.table === "main" && r.suppress_prefixlen === 31;

/**
 * The fabric secondary addresses `LabFabricPort` gave node namespace `ns`, read from the kernel
 * (each carries its `LAB_SECONDARY_RULE_PREF` rule). They sit on eth0 but are the fabric's, for
 * pods: not the node's own addresses (`UnderlayInterface.secondaryAddresses`).
 */
export async function labSecondaryAddresses(ns: string): Promise<Set<string>> {
  const rules = await ipJson<IpRuleJson>(ns, "rule show");
  return new Set(rules.filter((r) => r.dst !== undefined && isSecondaryRule(r.dst)(r)).map((r) => r.dst!));
}

/**
 * The lab's fabric port: what a cloud SDN would do, done in namespaces the lab created. A route
 * goes into every router namespace of the plan (`ip route replace <dst> via <node>` on the node's
 * subnet, else via the router's own next hop toward that subnet). Validation and the records under
 * `/cnikit/fabric/` (so nodes see their secondary addresses through membership) are `inner`'s,
 * and come first: nothing is programmed that was refused.
 *
 * A secondary address follows the rule of `UnderlayInterface.secondaryAddresses`: the node answers
 * ARP for it on `eth0` and takes it itself, unless its dataplane routes it elsewhere with a host
 * route in the main table (a pod that holds it); then the node forwards it there. In the node's
 * namespace:
 *  - `ip addr replace <a>/<prefix> dev eth0`: the node's own (ARP, local delivery) by default;
 *  - once per namespace, the local table's lookup moves from priority 0 to `LAB_LOCAL_RULE_PREF`
 *    (`ip rule add pref 100 lookup local`, then `ip rule del pref 0 lookup local`; idempotent,
 *    never undone: the namespace goes with the lab);
 *  - per address, `ip rule add pref 50 to <a>/32 lookup main suppress_prefixlength 31`: the main
 *    table answers only with a /32 host route, else the lookup falls through to the local table at
 *    100 and the node takes it. Without this rule the local table wins over any host route: the
 *    node answers for the pod, and drops the pod's own packets (source = a local address, a
 *    martian) whatever rp_filter says;
 *  - per address, a proxy neighbour entry `ip neigh replace proxy <a> dev eth0`, and
 *    `net.ipv4.neigh.eth0.proxy_delay=0`: once the host route wins, the kernel answers ARP for the
 *    address only by proxy (forwarding on, the route out of another device), and without
 *    `proxy_arp=1` on eth0 or this entry it stays silent; the entry makes the fabric's "the node
 *    answers ARP for it" hold whatever the dataplane sets, at once instead of after up to 0.8 s.
 * `removeSecondaryAddress` removes the address, its rule and its proxy entry.
 */
export class LabFabricPort implements FabricPort {
  /** One change at a time per node namespace (its rules are read, then changed). */
  private readonly serial = new KeyedSerializer();

  constructor(
    private readonly plan: LabPlan,
    private readonly inner: FabricPort,
  ) {}

  private node(name: string): LabPlan["nodes"][number] {
    const n = this.plan.nodes.find((x) => x.name === name);
    if (!n) throw new ConfigError({ component: "lab", field: "node", rule: `must be a node of lab ${this.plan.name} (${this.plan.nodes.map((x) => x.name).join(", ")})`, value: name });
    return n;
  }

  /** `ip route` lines per router namespace that carry `dst` to node `n`. */
  private routeLines(dst: string, n: LabPlan["nodes"][number]): { ns: string; line: string }[] {
    const out: { ns: string; line: string }[] = [];
    for (const r of this.plan.routers) {
      if (r.interfaces.some((i) => i.subnet === n.subnet)) out.push({ ns: r.ns, line: `route replace ${dst} via ${n.address}` });
      else {
        const toSubnet = r.routes.find((x) => Prefix.parse(x.dst).contains(n.address));
        if (toSubnet) out.push({ ns: r.ns, line: `route replace ${dst} via ${toSubnet.via}` });
      }
    }
    return out;
  }

  async setRoute(route: FabricRoute): Promise<void> {
    const n = this.node(route.node);
    await this.inner.setRoute(route);
    const dst = Prefix.parse(route.dst).toString();
    for (const { ns, line } of this.routeLines(dst, n)) await ipBatch(ns, [line]);
  }

  async deleteRoute(dst: string): Promise<void> {
    const canonical = Prefix.parse(dst, { component: "lab", field: "dst" }).toString();
    await this.inner.deleteRoute(canonical);
    // Absent already is fine (the contract): one router at a time, a failure means "no such route".
    for (const r of this.plan.routers) await runIpBatch(r.ns, [`route del ${canonical}`]).catch(() => undefined);
  }

  routes(): Promise<FabricRoute[]> {
    return this.inner.routes();
  }

  async addSecondaryAddress(a: FabricAddress): Promise<void> {
    const n = this.node(a.node);
    await this.inner.addSecondaryAddress(a);
    await this.serial.run(n.ns, async () => {
      const rules = await ipJson<IpRuleJson>(n.ns, "rule show");
      const lines = [`addr replace ${a.address}/${n.prefixLength} dev eth0`, `neigh replace proxy ${a.address} dev eth0`];
      if (!rules.some(isLocalLookup(LAB_LOCAL_RULE_PREF))) lines.push(`rule add pref ${LAB_LOCAL_RULE_PREF} lookup local`);
      if (rules.some(isLocalLookup(0))) lines.push("rule del pref 0 lookup local");
      if (!rules.some(isSecondaryRule(a.address))) lines.push(`rule add pref ${LAB_SECONDARY_RULE_PREF} to ${a.address}/32 lookup main suppress_prefixlength 31`);
      await sysctls(n.ns, { "net.ipv4.neigh.eth0.proxy_delay": "0" });
      await ipBatch(n.ns, lines);
    });
  }

  async removeSecondaryAddress(a: FabricAddress): Promise<void> {
    const n = this.node(a.node);
    await this.inner.removeSecondaryAddress(a);
    await this.serial.run(n.ns, async () => {
      const rules = await ipJson<IpRuleJson>(n.ns, "rule show");
      const proxies = await ipJson<{ dst?: string; dev?: string }>(n.ns, "neigh show proxy dev eth0");
      const lines: string[] = [];
      if (rules.some(isSecondaryRule(a.address))) lines.push(`rule del pref ${LAB_SECONDARY_RULE_PREF} to ${a.address}/32 lookup main suppress_prefixlength 31`);
      if (proxies.some((p) => p.dst === a.address)) lines.push(`neigh del proxy ${a.address} dev eth0`);
      await ipBatch(n.ns, lines);
      // Absent already is fine (the contract).
      await runIpBatch(n.ns, [`addr del ${a.address}/${n.prefixLength} dev eth0`]).catch(() => undefined);
    });
  }

  secondaryAddresses(): Promise<FabricAddress[]> {
    return this.inner.secondaryAddresses();
  }
}

/**
 * The fabric module cnikit-controller loads in a lab (`fabric: {module: <this file>, options:
 * {stateDir}}`): a `LabFabricPort` over the lab whose state lives in `options.stateDir`, recording
 * through core's `StoreFabricPort`.
 */
export function createFabricPort(ctx: FabricPortContext): FabricPort {
  const dir = ctx.options["stateDir"];
  if (typeof dir !== "string" || dir === "") throw new ConfigError({ component: "lab", field: "fabric.options.stateDir", rule: "must be the lab's state directory", value: dir });
  return new LabFabricPort(readState(dir).plan, new StoreFabricPort({ store: ctx.store, members: ctx.members, log: ctx.log }));
}
