/**
 * Builds what a `LabPlan` says, recording each thing in the state file before creating it: the
 * fabric namespace with one bridge per subnet, routers, the infra host, external hosts and node
 * hosts (a namespace each, `eth0` on its subnet's bridge, a default route via the subnet's
 * router), and etcd inside the infra namespace. Nothing is created in the host's own namespace:
 * every veth is created inside the fabric namespace with its peer moved straight into the host's.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { findEtcdBinary } from "@cnikit/etcd/testing";
import type { LabPlan, PlannedHost, PlannedRouter } from "./plan.ts";
import { PROBE_PORT } from "./plan.ts";
import { PROBE_AGENT, ProbeClient } from "./probe.ts";
import type { StateStore } from "./state.ts";
import { createNetns, runIpBatch, writeSysctls } from "@cnikit/linux";
import { pidAlive, spawnDetached } from "./system.ts";

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
