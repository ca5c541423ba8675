/**
 * The lab: nodes as network namespaces on two underlay subnets joined by a router, etcd on an
 * infra host, one `cnikitd` per node inside its namespace (datastore and peers reached over the
 * underlay, as on real hosts), pods created by executing the `cnikit-cni` plugin with CNI_NETNS,
 * and a probe agent in every namespace for real TCP, UDP and ping probes.
 *
 * `startLab` builds one; `openLab` attaches to one built earlier (another process, the CLI);
 * `downLab` removes exactly what the state file records, whatever state the lab is in.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve as resolvePath } from "node:path";
import { CniError, ConfigError, NotFoundError, topologyNeedsOf, type Backend, type NetworkSummary, type TopologyNeeds } from "@cnikit/core";
import { builtinBackend } from "@cnikit/backends";
import { CNIKITD_BIN, cniPluginPath } from "@cnikit/cni";
import { clusterTopologyOf, defaultTopology, singleSubnetTopology, type SimTopology } from "@cnikit/sim";
import { LAB_FABRIC_MODULE, buildFabric, buildHost, buildRouter, fileSize, makeDir, mirrorNodes, probeSocket, startEtcd, startProbeAgent, tail } from "./build.ts";
import { checkTools, requireKernel } from "./kernel.ts";
import { buildMatrix, probedPair, type EgressResult, type MatrixCell, type MatrixEndpoint, type ReachMatrix } from "./matrix.ts";
import { DEFAULT_STATE_ROOT, PROBE_PORT, checkLabName, labDir, planLab, podNamespace, type LabPlan, type PlannedNode } from "./plan.ts";
import { PROBE_PROTOS, ProbeClient, type ProbeProto, type ProbeResult } from "./probe.ts";
import { StateStore, readState, type LabBackendModule, type LabSpec, type LabState, type PodRecord, type ProcessResource } from "./state.ts";
import { createNetns, deleteNetns } from "@cnikit/linux";
import { inNs, onPath, pidAlive, processMatches, runAsync, spawnDetached, stopProcesses, type CommandResult } from "./system.ts";
import { downLab } from "./down.ts";

const C = "lab";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Options of `startLab`. */
export interface StartLabOptions {
  /** Lab name (a-z, 0-9, -; up to 20). Default `lab`. Namespaces are `ckl-<name>-...`. */
  name?: string;
  /**
   * Built-in backend: `flannel`, `calico` (or `reference`); or a Backend object, which is either a
   * built-in one or comes with `backendModule` (cnikitd cannot host an object, only a module).
   */
  backend: string | Backend<unknown>;
  /**
   * The module every cnikitd loads the backend from, for a backend that is not built in (`backend`
   * is then that module's Backend object, for its config parser and summary, and `backendConfig`
   * is required). A relative `module` path or `from` is resolved against the current directory.
   */
  backendModule?: LabBackendModule;
  /** A config label of the backend's fixtures (`vxlan`, `host-gw`, `bgp`, ...). Default: the first. */
  mode?: string;
  /** The backend's own config, instead of a fixture (`mode` then only labels it; default `custom`). */
  backendConfig?: unknown;
  /** Number of nodes (1-200). */
  nodes: number;
  /** Pods created on every node by `startLab`. Default 0. */
  podsPerNode?: number;
  /**
   * The underlay (the simulator's topology type). Default: the simulator's `defaultTopology()`
   * (two node subnets joined by a router, plus an external host), or `singleSubnetTopology()`
   * when the config needs one L2 subnet (host-gw, BGP without encapsulation).
   */
  topology?: SimTopology;
  /** Shortcut for `topology`: 1 = single subnet, 2 = the two-subnet default. */
  subnets?: 1 | 2;
  /** Where lab states live. Default `/run/cnikit-lab`. */
  stateRoot?: string;
  /** The plugin executable. Default @cnikit/cni's `cniPluginPath()` (the native shim when built). */
  cniPlugin?: string;
  /** The daemon executable (a node script). Default @cnikit/cni's `CNIKITD_BIN`. */
  cnikitd?: string;
  /** cniVersion of the network config the lab's ADDs use. Default `1.0.0`. */
  cniVersion?: string;
  /** How long to wait for each cnikitd to say it is ready. Default 60 000 ms. */
  readyTimeoutMs?: number;
  /** cnikitd's log level. Default `info`. */
  logLevel?: "debug" | "info" | "warn" | "error";
  /**
   * cnikitd's renderer: `linux` (default) renders into the node namespace; `none` only records the
   * dataplane (IPAM, datastore and peers run for real, pods get addresses but no interfaces).
   */
  renderer?: "linux" | "none";
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Leave a half-built lab in place when `startLab` fails (default: it is torn down). */
  keepOnFailure?: boolean;
  /**
   * Default true. False builds only the underlay, etcd and the probe agents (no cnikitd, no pods):
   * a lab to test the underlay itself.
   */
  daemons?: boolean;
}

/** A node of the lab. */
export interface LabNode {
  name: string;
  index: number;
  /** The node's network namespace. */
  ns: string;
  /** Underlay address (on `eth0`). */
  address: string;
  subnet: string;
  /** cnikitd's unix socket (the `socketPath` of the network config). */
  socketPath: string;
  /** cnikitd's config file and log. */
  configPath: string;
  logPath: string;
}

/** A pod of the lab. */
export interface LabPod {
  name: string;
  node: string;
  ns: string;
  containerId: string;
  ifName: string;
  /** IPv4 address the plugin returned. */
  ip: string;
  /** The plugin's ADD result as printed. */
  result: unknown;
}

/** A CNI call of the plugin executable, inside a node's namespace. */
export interface PluginCall {
  node: string;
  command: "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC" | "";
  containerId?: string;
  /** A namespace name (made `/var/run/netns/<ns>`) or a path. */
  netns?: string;
  ifName?: string;
  /** Extra or replaced keys of the network config (e.g. `prevResult`, `cniVersion`). */
  netconf?: Record<string, unknown>;
  /** The whole stdin instead of the lab's network config. */
  stdin?: string;
  /** `CNI_ARGS`. */
  args?: string;
  /** Environment to add (or, with value undefined, to remove: e.g. `CNI_PATH`). */
  env?: Record<string, string | undefined>;
}

/** What the plugin printed and its exit status; `json` when stdout parsed. */
export interface PluginOutcome extends CommandResult {
  json?: unknown;
}

/** The plugin failed where the lab needed it to succeed. */
export class LabCniError extends CniError {
  readonly outcome: PluginOutcome;
  constructor(what: string, outcome: PluginOutcome) {
    const j = outcome.json as { code?: number; msg?: string; details?: string } | undefined;
    super(
      typeof j?.code === "number" ? j.code : 999,
      `[lab] ${what}: cnikit-cni exited ${outcome.code}: ${j?.msg ?? (outcome.stdout.trim() || outcome.stderr.trim() || "(no output)")}${j?.details ? ` (${j.details})` : ""}`,
    );
    this.outcome = outcome;
  }
}

/** Options of `Lab.matrix`. */
export interface MatrixOptions {
  /** Per-probe timeout; failed probes are retried once with three times as long. Default 1500 ms. */
  timeoutMs?: number;
  /** Probes in flight at once. Default 24. */
  concurrency?: number;
  /** Also probe each pod → each external host (TCP) and judge the NAT rule. Default true. */
  egress?: boolean;
  /** Protocols to probe. Default all three (TCP, UDP, ping). */
  protos?: readonly ProbeProto[];
  /** Retry failed probes once with three times the timeout. Default true. */
  retry?: boolean;
}

/** What `Lab.converge` found. */
export interface ConvergeResult {
  converged: boolean;
  /** Wall time until every pair reached (or until giving up). */
  ms: number;
  /** Matrix rounds probed. */
  rounds: number;
  /** The last round's matrix. */
  matrix: ReachMatrix;
}

/** A backend config resolved from `backend` + `mode` or an explicit config. */
export interface ResolvedBackend {
  backend: string;
  /** The module cnikitd loads (absolute paths), for a backend that is not built in. */
  backendModule?: LabBackendModule;
  mode: string;
  config: unknown;
  /** What the config needs of the underlay (`topologyNeeds`, decided from the config alone). */
  needs: TopologyNeeds;
  /** The underlay the lab builds: the given topology or subnet count, else the one `needs` asks for. */
  topology: SimTopology;
  /** `summarize(config, cluster)` on `topology`'s node subnets. */
  summary: NetworkSummary;
  /** Whether the backend has a cluster-level controller (the lab then runs cnikit-controller). */
  controller: boolean;
}

/** Where `resolveBackendMode` takes the topology from (see `chooseTopology`). */
interface TopologyChoice {
  topology?: SimTopology;
  subnets?: 1 | 2;
}

/** needs, topology and summary of a parsed config (see `ResolvedBackend`). */
function onTopology(backend: Backend<unknown>, parsed: unknown, choice: TopologyChoice): Pick<ResolvedBackend, "needs" | "topology" | "summary" | "controller"> {
  const needs = topologyNeedsOf(backend, parsed);
  const topology = chooseTopology({ ...choice, needs });
  return { needs, topology, summary: backend.summarize(parsed, clusterTopologyOf(topology)), controller: typeof backend.createController === "function" };
}

/**
 * Resolves the backend, the mode's fixture config (or the given config), the topology (given, or
 * what the config needs) and the config's summary on it. Throws `ConfigError` naming `backend`,
 * `mode` or the config's field.
 */
export function resolveBackendMode(options: { backend: string | Backend<unknown>; backendModule?: LabBackendModule; mode?: string; backendConfig?: unknown } & TopologyChoice): ResolvedBackend {
  if (options.backendModule !== undefined) return resolveModuleBackend({ ...options, backendModule: options.backendModule });
  const name = typeof options.backend === "string" ? options.backend : options.backend.name;
  let entry;
  try {
    entry = builtinBackend(name);
  } catch (e) {
    // A Backend object that is not built in lacks the module cnikitd would load; a name is just unknown.
    const field = typeof options.backend === "string" ? "backend" : "backendModule";
    throw new ConfigError({ component: C, field, rule: `${(e as Error).message}; a backend that is not built in needs backendModule (the module cnikitd loads it from)`, value: name });
  }
  if (typeof options.backend !== "string" && options.backend !== entry.backend) {
    throw new ConfigError({
      component: C,
      field: "backendModule",
      rule: `is required: this Backend is called ${name} but is not the built-in one, and cnikitd hosts only built-in backends and modules`,
      value: name,
    });
  }
  let config: unknown;
  let mode: string;
  if (options.backendConfig !== undefined) {
    config = options.backendConfig;
    mode = options.mode ?? "custom";
  } else {
    const labels = entry.configs.map((c) => c.label);
    mode = options.mode ?? labels[0]!;
    const found = entry.configs.find((c) => c.label === mode);
    if (!found) throw new ConfigError({ component: C, field: "mode", rule: `must be one of ${labels.join(", ")} for ${entry.backend.name}`, value: mode });
    config = structuredClone(found.config);
  }
  const parsed = entry.backend.parseConfig(config);
  return { backend: entry.backend.name, mode, config, ...onTopology(entry.backend, parsed, options) };
}

function resolveModuleBackend(options: { backend: string | Backend<unknown>; backendModule: LabBackendModule; mode?: string; backendConfig?: unknown } & TopologyChoice): ResolvedBackend {
  const m = options.backendModule;
  if (typeof options.backend === "string")
    throw new ConfigError({ component: C, field: "backend", rule: "must be the module's Backend object when backendModule is given (its parser and summary are needed here)", value: options.backend });
  if (typeof m?.module !== "string" || m.module === "") throw new ConfigError({ component: C, field: "backendModule.module", rule: "must be a path or a package name", value: m?.module });
  if (m.from !== undefined && (typeof m.from !== "string" || m.from === "")) throw new ConfigError({ component: C, field: "backendModule.from", rule: "must be a directory", value: m.from });
  if (m.export !== undefined && (typeof m.export !== "string" || !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(m.export)))
    throw new ConfigError({ component: C, field: "backendModule.export", rule: "must be an export name", value: m.export });
  if (options.backendConfig === undefined) throw new ConfigError({ component: C, field: "backendConfig", rule: "is required for a backend module (there are no fixtures for it)" });
  const from = resolvePath(m.from ?? process.cwd());
  const isPath = m.module.startsWith("/") || m.module.startsWith("./") || m.module.startsWith("../");
  const backendModule: LabBackendModule = { module: isPath ? resolvePath(from, m.module) : m.module, from, ...(m.export !== undefined ? { export: m.export } : {}) };
  const parsed = options.backend.parseConfig(options.backendConfig);
  return { backend: options.backend.name, backendModule, mode: options.mode ?? "custom", config: options.backendConfig, ...onTopology(options.backend, parsed, options) };
}

/**
 * The topology for a config: explicit, by subnet count, or by what the config needs (`needs`,
 * from `topologyNeedsOf(backend, config)`; absent: two subnets).
 */
export function chooseTopology(options: { topology?: SimTopology; subnets?: 1 | 2; needs?: TopologyNeeds }): SimTopology {
  if (options.topology) return options.topology;
  if (options.subnets !== undefined) {
    if (options.subnets !== 1 && options.subnets !== 2) throw new ConfigError({ component: C, field: "subnets", rule: "must be 1 or 2", value: options.subnets });
    return options.subnets === 1 ? singleSubnetTopology() : defaultTopology();
  }
  return options.needs?.singleSubnet === true ? singleSubnetTopology() : defaultTopology();
}

function toLabNode(n: PlannedNode): LabNode {
  return { name: n.name, index: n.index, ns: n.ns, address: n.address, subnet: n.subnet, socketPath: n.socketPath, configPath: n.configPath, logPath: n.logPath };
}

/** A running lab (see the module comment). One process drives a lab at a time. */
export class Lab {
  readonly name: string;
  readonly dir: string;
  readonly plan: LabPlan;
  readonly nodes: readonly LabNode[];
  private readonly store: StateStore;
  private readonly cniPlugin: string;
  private readonly cnikitd: string;
  private readonly cniVersion: string;
  private readonly readyTimeoutMs: number;
  private readonly logLevel: string;
  private readonly clients = new Map<string, ProbeClient>();
  private readonly log: (line: string) => void;

  /** Use `startLab` or `openLab`. */
  constructor(init: { store: StateStore; cniPlugin?: string; cnikitd?: string; readyTimeoutMs?: number; log?: (line: string) => void }) {
    this.store = init.store;
    this.plan = init.store.state.plan;
    this.name = this.plan.name;
    this.dir = this.plan.stateDir;
    this.nodes = this.plan.nodes.map(toLabNode);
    this.cniPlugin = init.cniPlugin ?? cniPluginPath();
    this.cnikitd = init.cnikitd ?? CNIKITD_BIN;
    this.cniVersion = init.store.state.spec.cniVersion ?? "1.0.0";
    this.readyTimeoutMs = init.readyTimeoutMs ?? 60_000;
    this.logLevel = init.store.state.spec.logLevel ?? "info";
    this.log = init.log ?? (() => {});
  }

  /** What the lab runs (backend, mode, config, summary). */
  get spec(): LabSpec {
    return this.store.state.spec;
  }

  /** The lab's state as recorded (a copy). */
  get state(): LabState {
    return structuredClone(this.store.state);
  }

  /** The pods whose ADD succeeded, in creation order. */
  get pods(): LabPod[] {
    return this.store.state.pods.filter((p) => p.ip !== undefined).map((p) => ({ name: p.name, node: p.node, ns: p.ns, containerId: p.containerId, ifName: p.ifName, ip: p.ip!, result: p.result }));
  }

  /** The node called `name`; `NotFoundError` listing the nodes. */
  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new NotFoundError(`[lab] no node ${JSON.stringify(name)} in lab ${this.name} (nodes: ${this.nodes.map((x) => x.name).join(", ")})`);
    return n;
  }

  /** The pod called `name`; `NotFoundError` listing the pods. */
  pod(name: string): LabPod {
    const p = this.pods.find((x) => x.name === name);
    if (!p) throw new NotFoundError(`[lab] no pod ${JSON.stringify(name)} in lab ${this.name} (pods: ${this.pods.map((x) => x.name).join(", ") || "none"})`);
    return p;
  }

  private client(endpoint: string): ProbeClient {
    let c = this.clients.get(endpoint);
    if (!c) {
      const rec = this.store.state.pods.find((p) => p.name === endpoint);
      c = new ProbeClient(rec ? rec.controlSocket : probeSocket(this.plan, endpoint));
      this.clients.set(endpoint, c);
    }
    return c;
  }

  /** Namespace and address of an endpoint: a pod, a node, an external host or `infra`. */
  endpoint(name: string): { ns: string; address: string; kind: "pod" | "node" | "external" | "infra" } {
    const pod = this.pods.find((p) => p.name === name);
    if (pod) return { ns: pod.ns, address: pod.ip, kind: "pod" };
    const node = this.nodes.find((n) => n.name === name);
    if (node) return { ns: node.ns, address: node.address, kind: "node" };
    const ext = this.plan.externals.find((e) => e.name === name);
    if (ext) return { ns: ext.ns, address: ext.address, kind: "external" };
    if (name === "infra") return { ns: this.plan.infra.ns, address: this.plan.infra.address, kind: "infra" };
    throw new NotFoundError(`[lab] no endpoint ${JSON.stringify(name)} in lab ${this.name} (pods, nodes, ${[...this.plan.externals.map((e) => e.name), "infra"].join(", ")})`);
  }

  // ---- daemons ----------------------------------------------------------------------------

  /** The cluster store every cnikitd and cnikit-controller of the lab uses. */
  private get storeUrl(): string {
    return `etcd://${this.plan.etcd.address}:${this.plan.etcd.port}${this.storePrefix.slice(0, -1)}`;
  }

  /** The key prefix `storeUrl` puts the cluster's keys under. */
  private get storePrefix(): string {
    return `/cnikit-lab/${this.name}/`;
  }

  private daemonConfig(n: PlannedNode): Record<string, unknown> {
    const underlay: Record<string, unknown> = { iface: "eth0", address: n.address, prefixLength: n.prefixLength, mtu: n.mtu };
    if (n.gateway !== undefined) underlay["gateway"] = n.gateway;
    return {
      node: { name: n.name, underlay: [underlay] },
      backend: this.spec.backendModule ? { ...this.spec.backendModule } : this.spec.backend,
      backendConfig: this.spec.backendConfig,
      store: this.storeUrl,
      localStateDir: `${n.dir}/local`,
      socketPath: n.socketPath,
      peers: { listen: `${n.address}:${n.peerPort}` },
      // The renderer's own records go into the node's directory: nodes share the machine's /run.
      renderer: (this.spec.renderer ?? "linux") === "linux" ? { type: "linux", stateDir: `${n.dir}/linux` } : { type: "none" },
      logLevel: this.logLevel,
    };
  }

  /**
   * Starts cnikitd on `node` (recorded as process `cnikitd:<node>`, its config file as marker)
   * and waits until it says ready. No-op when it already runs. Throws with its log tail when it
   * exits or is not ready within `readyTimeoutMs`.
   */
  async startDaemon(node: string): Promise<number> {
    this.node(node);
    const n = this.plan.nodes.find((x) => x.name === node)!;
    const role = `cnikitd:${node}`;
    const old = this.store.process(role);
    if (old?.pid !== undefined && processMatches(old.pid, n.configPath)) return old.pid;
    makeDir(this.store, n.dir);
    writeFileSync(n.configPath, `${JSON.stringify(this.daemonConfig(n), null, 2)}\n`);
    const from = fileSize(n.logPath);
    const entry = this.store.recordProcess({ role, ns: n.ns, marker: n.configPath });
    const pid = spawnDetached({
      ns: n.ns,
      argv: [process.execPath, this.cnikitd, "--config", n.configPath],
      logPath: n.logPath,
      env: daemonEnv(),
    });
    this.store.setPid(entry, pid);
    await this.waitReady({ logPath: n.logPath, ready: new RegExp(`cnikitd: node ${n.name} ready`), what: `cnikitd on ${n.name}` }, pid, from);
    return pid;
  }

  private async waitReady(p: { logPath: string; ready: RegExp; what: string }, pid: number, from: number): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      let text = "";
      try {
        text = readFileSync(p.logPath, "utf8").slice(from);
      } catch {
        // not written yet
      }
      if (p.ready.test(text)) return;
      if (!pidAlive(pid)) throw new Error(`[lab] ${p.what} exited while starting; log tail:\n${tail(p.logPath, 20, from)}`);
      if (Date.now() > deadline) throw new Error(`[lab] ${p.what} not ready within ${this.readyTimeoutMs} ms; log tail:\n${tail(p.logPath, 20, from)}`);
      await sleep(50);
    }
  }

  /**
   * Starts `cnikit-controller` for a backend with a cluster-level controller (recorded as process
   * `cnikit-controller`, in the infra namespace next to etcd), with the lab's fabric port
   * (build.ts `createFabricPort`: routes in the router namespaces, secondary addresses on the
   * nodes' eth0), and waits until it says ready. No-op when it already runs.
   */
  async startController(): Promise<number> {
    const role = "cnikit-controller";
    const dir = join(this.plan.stateDir, "controller");
    const configPath = join(dir, "controller.json");
    const logPath = join(dir, "controller.log");
    const old = this.store.process(role);
    if (old?.pid !== undefined && processMatches(old.pid, configPath)) return old.pid;
    makeDir(this.store, dir);
    const config = {
      backend: this.spec.backendModule ? { ...this.spec.backendModule } : this.spec.backend,
      backendConfig: this.spec.backendConfig,
      store: this.storeUrl,
      fabric: { module: LAB_FABRIC_MODULE, options: { stateDir: this.plan.stateDir } },
      logLevel: this.logLevel,
    };
    writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
    const from = fileSize(logPath);
    const entry = this.store.recordProcess({ role, ns: this.plan.infra.ns, marker: configPath });
    const pid = spawnDetached({ ns: this.plan.infra.ns, argv: [process.execPath, join(dirname(this.cnikitd), "cnikit-controller"), "--config", configPath], logPath, env: daemonEnv() });
    this.store.setPid(entry, pid);
    await this.waitReady({ logPath, ready: /cnikit-controller: ready/, what: "cnikit-controller" }, pid, from);
    return pid;
  }

  /** The PID of `node`'s cnikitd when it runs. */
  daemonPid(node: string): number | undefined {
    const n = this.node(node);
    const p = this.store.process(`cnikitd:${node}`);
    return p?.pid !== undefined && processMatches(p.pid, n.configPath) ? p.pid : undefined;
  }

  /**
   * Kills `node`'s cnikitd (default SIGKILL: a crash; SIGTERM: a clean stop) and waits until it is
   * gone. Returns the PID signalled, or undefined when it was not running. Idempotent.
   */
  async killDaemon(node: string, signal: NodeJS.Signals = "SIGKILL"): Promise<number | undefined> {
    const n = this.node(node);
    const p = this.store.process(`cnikitd:${node}`);
    if (p?.pid === undefined) return undefined;
    const done = await stopProcesses([{ pid: p.pid, marker: n.configPath }], { signal, graceMs: 10_000 });
    return done[0];
  }

  /** Stops `node`'s cnikitd cleanly (SIGTERM) if it runs, starts it again and waits until ready. */
  async restartDaemon(node: string): Promise<number> {
    await this.killDaemon(node, "SIGTERM");
    return this.startDaemon(node);
  }

  // ---- the plugin -------------------------------------------------------------------------

  /** The network config the lab's plugin calls use on `node`. */
  netconf(node: string): Record<string, unknown> {
    return { cniVersion: this.cniVersion, name: "cnikit-lab", type: "cnikit-cni", socketPath: this.node(node).socketPath };
  }

  /**
   * Executes `cnikit-cni` inside `call.node`'s namespace with the CNI environment and the lab's
   * network config (merged with `call.netconf`) on stdin, as a container runtime would. Resolves
   * with its exit status and output whatever they are (the caller judges them).
   */
  async plugin(call: PluginCall): Promise<PluginOutcome> {
    const n = this.node(call.node);
    const env: NodeJS.ProcessEnv = { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin", CNI_COMMAND: call.command, CNI_PATH: dirname(this.cniPlugin) };
    if (call.containerId !== undefined) env["CNI_CONTAINERID"] = call.containerId;
    if (call.netns !== undefined) env["CNI_NETNS"] = call.netns.includes("/") ? call.netns : `/var/run/netns/${call.netns}`;
    if (call.ifName !== undefined) env["CNI_IFNAME"] = call.ifName;
    if (call.args !== undefined) env["CNI_ARGS"] = call.args;
    for (const [k, v] of Object.entries(call.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const stdin = call.stdin ?? JSON.stringify({ ...this.netconf(call.node), ...call.netconf });
    const r = await runAsync(inNs(n.ns, [this.cniPlugin]), { input: stdin, env, timeoutMs: 120_000 });
    const out: PluginOutcome = { ...r };
    try {
      if (r.stdout.trim() !== "") out.json = JSON.parse(r.stdout) as unknown;
    } catch {
      // not JSON: left to the caller
    }
    return out;
  }

  // ---- pods -------------------------------------------------------------------------------

  private nextPodName(node: LabNode): string {
    const counters = (this.store.state.podCounters ??= {});
    const re = new RegExp(`^pod-${node.index}-(\\d+)$`);
    let k = counters[node.name] ?? 0;
    for (const p of this.store.state.pods) {
      const m = re.exec(p.name);
      if (m) k = Math.max(k, Number(m[1]));
    }
    counters[node.name] = k + 1;
    return `pod-${node.index}-${k + 1}`;
  }

  /**
   * Creates a pod on `node`: its namespace, then `cnikit-cni ADD` (CNI_NETNS = the namespace),
   * then a probe agent inside it. Recorded before each step. When ADD fails the pod is removed
   * again (DEL, namespace deleted) and `LabCniError` thrown with the plugin's error.
   */
  async addPod(node: string, options: { name?: string; ifName?: string; args?: Record<string, string> } = {}): Promise<LabPod> {
    const n = this.node(node);
    const name = options.name ?? this.nextPodName(n);
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) throw new ConfigError({ component: C, field: "name", rule: "a pod name is 1-31 characters of a-z, 0-9 and -", value: name });
    if (this.store.state.pods.some((p) => p.name === name) || this.nodes.some((x) => x.name === name) || name === "infra" || this.plan.externals.some((e) => e.name === name)) {
      throw new ConfigError({ component: C, field: "name", rule: "must be unique among the lab's pods, nodes and hosts", value: name });
    }
    const rec: PodRecord = {
      name,
      node,
      ns: podNamespace(this.name, name),
      containerId: `${this.plan.prefix}-${name}`,
      ifName: options.ifName ?? "eth0",
      controlSocket: probeSocket(this.plan, name),
    };
    this.store.state.pods.push(rec);
    this.store.record({ kind: "netns", name: rec.ns });
    await createNetns(rec.ns);
    const args = Object.entries({ IgnoreUnknown: "1", K8S_POD_NAMESPACE: "default", K8S_POD_NAME: name, K8S_POD_INFRA_CONTAINER_ID: rec.containerId, ...options.args })
      .map(([k, v]) => `${k}=${v}`)
      .join(";");
    const add = await this.plugin({ node, command: "ADD", containerId: rec.containerId, netns: rec.ns, ifName: rec.ifName, args });
    const ip = add.code === 0 ? firstIpv4(add.json) : undefined;
    if (ip === undefined) {
      await this.plugin({ node, command: "DEL", containerId: rec.containerId, netns: rec.ns, ifName: rec.ifName, args });
      await this.forgetPod(rec);
      throw new LabCniError(`ADD of pod ${name} on ${node}${add.code === 0 ? " returned no IPv4 address" : ""}`, add);
    }
    rec.ip = ip;
    rec.result = add.json;
    this.store.save();
    this.clients.set(name, await startProbeAgent(this.store, { plan: this.plan, name, ns: rec.ns }));
    this.log(`pod ${name} on ${node}: ${ip}`);
    return this.pod(name);
  }

  private async forgetPod(rec: PodRecord): Promise<void> {
    await deleteNetns(rec.ns);
    this.store.state.pods = this.store.state.pods.filter((p) => p !== rec);
    this.store.forget((r) => (r.kind === "netns" && r.name === rec.ns) || (r.kind === "process" && r.role === `probe:${rec.name}`));
  }

  /**
   * Deletes a pod: `cnikit-cni DEL`, then its probe agent and namespace. Throws `LabCniError`
   * (pod kept) when DEL fails, `NotFoundError` for an unknown pod.
   */
  async deletePod(name: string): Promise<void> {
    const rec = this.store.state.pods.find((p) => p.name === name);
    if (!rec) throw new NotFoundError(`[lab] no pod ${JSON.stringify(name)} in lab ${this.name}`);
    const del = await this.plugin({ node: rec.node, command: "DEL", containerId: rec.containerId, netns: rec.ns, ifName: rec.ifName });
    if (del.code !== 0) throw new LabCniError(`DEL of pod ${name}`, del);
    this.clients.get(name)?.close();
    this.clients.delete(name);
    const agent = this.store.process(`probe:${name}`);
    if (agent?.pid !== undefined) await stopProcesses([{ pid: agent.pid, marker: agent.marker }]);
    await this.forgetPod(rec);
  }

  // ---- probes -----------------------------------------------------------------------------

  /**
   * Probes `to` from inside `from`'s namespace (pods, nodes, external hosts, `infra`): TCP connect
   * with a payload echoed back, a UDP echo, or one ping. Never throws for an unreachable peer.
   */
  async probe(from: string, to: string, proto: ProbeProto, options: { timeoutMs?: number; port?: number } = {}): Promise<ProbeResult> {
    this.endpoint(from);
    const dst = this.endpoint(to);
    return this.client(from).probe({ proto, host: dst.address, port: options.port ?? PROBE_PORT, timeoutMs: options.timeoutMs ?? 1500 });
  }

  /** Probes an address (not necessarily an endpoint) from inside `from`'s namespace. */
  async probeAddress(from: string, address: string, proto: ProbeProto, options: { timeoutMs?: number; port?: number } = {}): Promise<ProbeResult> {
    this.endpoint(from);
    return this.client(from).probe({ proto, host: address, port: options.port ?? PROBE_PORT, timeoutMs: options.timeoutMs ?? 1500 });
  }

  /**
   * The reachability matrix: every pod and node to every pod and node (not node → node), each
   * by TCP, UDP and ping; pod → pod must show the sender's own address at the receiver. With
   * `egress`, every pod → every external host by TCP, judged by the config's NAT rule.
   */
  async matrix(options: MatrixOptions = {}): Promise<ReachMatrix> {
    const timeoutMs = options.timeoutMs ?? 1500;
    const protos = options.protos ?? PROBE_PROTOS;
    const retry = options.retry ?? true;
    const pods = this.pods;
    const endpoints: MatrixEndpoint[] = [
      ...pods.map((p): MatrixEndpoint => ({ name: p.name, kind: "pod", address: p.ip })),
      ...this.nodes.map((n): MatrixEndpoint => ({ name: n.name, kind: "node", address: n.address })),
    ];
    const jobs: (() => Promise<void>)[] = [];
    const cells: (MatrixCell | undefined)[][] = endpoints.map((from) =>
      endpoints.map((to) => {
        if (!probedPair(from, to)) return undefined;
        const cell: MatrixCell = {
          from: from.name,
          to: to.name,
          expected: true,
          noNat: from.kind === "pod" && to.kind === "pod",
          results: {},
        };
        for (const proto of protos) {
          cell.results[proto] = { ok: false };
          jobs.push(async () => {
            let r = await this.client(from.name).probe({ proto, host: to.address, port: PROBE_PORT, timeoutMs });
            if (!r.ok && retry) r = await this.client(from.name).probe({ proto, host: to.address, port: PROBE_PORT, timeoutMs: timeoutMs * 3 });
            cell.results[proto] = r;
          });
        }
        return cell;
      }),
    );
    const egress: EgressResult[] = [];
    if (options.egress ?? true) {
      for (const p of pods) {
        for (const ext of this.plan.externals) {
          const node = this.node(p.node);
          const expectedSource = this.spec.summary.natOutgoing ? node.address : p.ip;
          const e: EgressResult = { pod: p.name, external: ext.name, expectedSource, result: { ok: false }, ok: false };
          egress.push(e);
          jobs.push(async () => {
            let r = await this.client(p.name).probe({ proto: "tcp", host: ext.address, port: PROBE_PORT, timeoutMs });
            if (!r.ok && retry) r = await this.client(p.name).probe({ proto: "tcp", host: ext.address, port: PROBE_PORT, timeoutMs: timeoutMs * 3 });
            e.result = r;
            // Without natOutgoing the external host has no route back to pod addresses: only a
            // masquerading config must reach it (and be seen as the node).
            e.ok = this.spec.summary.natOutgoing ? r.ok && r.seen === expectedSource : !r.ok || r.seen === expectedSource;
          });
        }
      }
    }
    await runLimited(jobs, options.concurrency ?? 24);
    return buildMatrix({ sources: endpoints, destinations: endpoints, cells, egress });
  }

  /**
   * Waits until the backend has converged: probes every pair by TCP (one round at a time, no
   * retries) until all reach or `timeoutMs` (default: the config's convergence bound, at most
   * 60 s) passes. Never throws for a lab that does not converge: `converged` says so.
   */
  async converge(options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<ConvergeResult> {
    const started = Date.now();
    const timeoutMs = options.timeoutMs ?? Math.min(this.spec.summary.convergenceMs, 60_000);
    let rounds = 0;
    for (;;) {
      const m = await this.matrix({ protos: ["tcp"], egress: false, retry: false, timeoutMs: 1000 });
      rounds++;
      const ms = Date.now() - started;
      if (m.ok || ms >= timeoutMs) return { converged: m.ok, ms, rounds, matrix: m };
      await sleep(options.intervalMs ?? 250);
    }
  }

  // ---- misc -------------------------------------------------------------------------------

  /** Runs `argv` inside the namespace of an endpoint (a node, pod, external host or `infra`). */
  async exec(endpoint: string, argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    const e = this.endpoint(endpoint);
    return runAsync(inNs(e.ns, argv), options);
  }

  /** Closes the probe connections (everything keeps running). Idempotent. */
  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /** Removes the whole lab (see `downLab`). Idempotent. */
  async down(): Promise<void> {
    this.close();
    await downLab(this.name, { stateRoot: dirname(this.dir) });
  }

  // ---- building ---------------------------------------------------------------------------

  /** Builds the underlay, etcd, the daemons and `podsPerNode` pods per node (`startLab`). */
  async build(podsPerNode: number, daemons = true): Promise<void> {
    const plan = this.plan;
    const t0 = Date.now();
    await buildFabric(this.store, plan);
    for (const r of plan.routers) await buildRouter(this.store, plan, r);
    // Hosts one after another: each plugs into the fabric, and the state records them in order.
    for (const h of [plan.infra, ...plan.externals, ...plan.nodes]) await buildHost(this.store, plan, h);
    this.log(`underlay: ${plan.subnets.map((s) => `${s.name} ${s.cidr}`).join(", ")}; ${plan.nodes.map((n) => `${n.name} ${n.address}`).join(", ")} (${Date.now() - t0} ms)`);
    makeDir(this.store, `${plan.stateDir}/probe`);
    const infra = await startProbeAgent(this.store, { plan, name: "infra", ns: plan.infra.ns });
    this.clients.set("infra", infra);
    await Promise.all([
      startEtcd(this.store, { plan, infra }),
      ...[...plan.externals, ...plan.nodes].map(async (h) => this.clients.set(h.name, await startProbeAgent(this.store, { plan, name: h.name, ns: h.ns }))),
    ]);
    this.log(`etcd on ${plan.etcd.clientUrl} (${Date.now() - t0} ms)`);
    await mirrorNodes(plan, this.storePrefix);
    if (daemons && this.spec.controller === true) {
      await this.startController();
      this.log(`cnikit-controller ready (${Date.now() - t0} ms)`);
    }
    if (daemons) {
      await Promise.all(plan.nodes.map((n) => this.startDaemon(n.name)));
      this.log(`cnikitd ready on ${plan.nodes.length} node(s) (${Date.now() - t0} ms)`);
      for (let k = 0; k < podsPerNode; k++) {
        await Promise.all(plan.nodes.map((n) => this.addPod(n.name)));
      }
      if (this.pods.length > 0) {
        const c = await this.converge();
        this.log(
          c.converged
            ? `converged: every pair reaches by TCP after ${c.ms} ms (${c.rounds} round(s))`
            : `not converged within ${c.ms} ms: ${c.matrix.failures.length} pair(s) still unreachable (see pnpm lab check)`,
        );
      }
    }
    this.store.state.phase = "up";
    this.store.save();
    this.log(`lab ${this.name} up: ${this.pods.length} pod(s) (${Date.now() - t0} ms)`);
  }
}

/**
 * The environment of cnikitd and cnikit-controller. When the lab runs from its sources (its
 * fabric module is build.ts: vitest, tsx) they run from the same sources (`CNIKIT_FROM_SOURCE=1`):
 * a `dist/` left from an earlier build would otherwise run older code, and cnikit-controller from
 * `dist/` could not import the lab's fabric module (a .ts file) at all.
 */
function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith("CNIKIT_") && v !== undefined) env[k] = v;
  if (process.env["HOME"]) env["HOME"] = process.env["HOME"];
  if (LAB_FABRIC_MODULE.endsWith(".ts")) env["CNIKIT_FROM_SOURCE"] = "1";
  return env;
}

function firstIpv4(json: unknown): string | undefined {
  const ips = (json as { ips?: { address?: string }[] } | undefined)?.ips;
  if (!Array.isArray(ips)) return undefined;
  for (const i of ips) {
    const a = typeof i?.address === "string" ? i.address.split("/")[0]! : "";
    if (/^\d+\.\d+\.\d+\.\d+$/.test(a)) return a;
  }
  return undefined;
}

async function runLimited(jobs: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, jobs.length)) }, worker));
}

/**
 * Builds a lab (see `StartLabOptions`) and returns it running. Checks first, creating nothing when
 * a check fails: root and the tools (error names the Debian package), the backend and mode
 * (`ConfigError`), kernel support for the config's encapsulations (`KernelLacksError`, "kernel
 * lacks ipip: ..."), and that no lab of that name exists (`ConfigError` field `name`). Every
 * resource is recorded before it is created; when a later step fails the lab is torn down
 * (unless `keepOnFailure`) and the error rethrown.
 */
export async function startLab(options: StartLabOptions): Promise<Lab> {
  const name = checkLabName(options.name ?? "lab");
  const podsPerNode = options.podsPerNode ?? 0;
  if (!Number.isInteger(podsPerNode) || podsPerNode < 0 || podsPerNode > 50) throw new ConfigError({ component: C, field: "podsPerNode", rule: "must be an integer 0-50", value: podsPerNode });
  const resolved = resolveBackendMode(options);
  const topology = resolved.topology;
  const plan = planLab({ name, nodes: options.nodes, topology, ...(options.stateRoot !== undefined ? { stateRoot: options.stateRoot } : {}) });
  checkTools(onPath);
  await requireKernel(resolved.summary.encapsulations, `${resolved.backend} mode ${resolved.mode}`);
  const cniPlugin = options.cniPlugin ?? cniPluginPath();
  const cnikitd = options.cnikitd ?? CNIKITD_BIN;
  if (options.daemons !== false) {
    if (!existsSync(cniPlugin)) throw new ConfigError({ component: C, field: "cniPlugin", rule: "must be the cnikit-cni executable", value: cniPlugin });
    if (!existsSync(cnikitd)) throw new ConfigError({ component: C, field: "cnikitd", rule: "must be the cnikitd executable", value: cnikitd });
  }
  if (existsSync(plan.stateDir)) {
    throw new ConfigError({ component: C, field: "name", rule: `a lab called ${name} exists (${plan.stateDir}); remove it first: pnpm lab down --name ${name}`, value: name });
  }
  const state: LabState = {
    version: 1,
    name,
    createdAt: new Date().toISOString(),
    phase: "creating",
    ownerPid: process.pid,
    spec: {
      backend: resolved.backend,
      ...(resolved.backendModule ? { backendModule: resolved.backendModule } : {}),
      mode: resolved.mode,
      backendConfig: resolved.config,
      nodes: options.nodes,
      podsPerNode,
      summary: resolved.summary,
      ...(resolved.controller ? { controller: true } : {}),
      ...(options.renderer !== undefined ? { renderer: options.renderer } : {}),
      ...(options.cniVersion !== undefined ? { cniVersion: options.cniVersion } : {}),
      ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}),
    },
    plan,
    resources: [{ kind: "dir", path: plan.stateDir }],
    pods: [],
  };
  const store = new StateStore(plan.stateDir, state);
  store.save();
  const lab = new Lab({
    store,
    cniPlugin,
    cnikitd,
    ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    ...(options.log !== undefined ? { log: options.log } : {}),
  });
  try {
    await lab.build(podsPerNode, options.daemons ?? true);
    return lab;
  } catch (e) {
    store.state.phase = "failed";
    store.state.error = e instanceof Error ? e.message : String(e);
    store.save();
    lab.close();
    if (!options.keepOnFailure) await downLab(name, { stateRoot: dirname(plan.stateDir) });
    throw e;
  }
}

/**
 * Attaches to lab `name` built earlier (by this or another process) from its state file.
 * `NotFoundError` when there is no such lab.
 */
export function openLab(name: string, options: { stateRoot?: string; cniPlugin?: string; cnikitd?: string; log?: (line: string) => void } = {}): Lab {
  const dir = labDir(checkLabName(name), options.stateRoot ?? DEFAULT_STATE_ROOT);
  const state = readState(dir);
  return new Lab({
    store: new StateStore(dir, state),
    ...(options.cniPlugin !== undefined ? { cniPlugin: options.cniPlugin } : {}),
    ...(options.cnikitd !== undefined ? { cnikitd: options.cnikitd } : {}),
    ...(options.log !== undefined ? { log: options.log } : {}),
  });
}

/** One line of `lab status`. */
export interface LabStatus {
  name: string;
  dir: string;
  phase: LabState["phase"] | "unreadable";
  backend?: string;
  mode?: string;
  nodes?: number;
  pods?: number;
  /** Recorded processes that still run / recorded with a PID. */
  processes?: { running: number; recorded: number; stopped: string[] };
  /** Recorded namespaces that exist / recorded. */
  namespaces?: { present: number; recorded: number };
  error?: string;
}

/** Every lab under `stateRoot` with what still runs. Reads only. */
export function listLabs(stateRoot: string = DEFAULT_STATE_ROOT): LabStatus[] {
  if (!existsSync(stateRoot)) return [];
  const out: LabStatus[] = [];
  for (const name of readdirSync(stateRoot).sort()) {
    const dir = `${stateRoot}/${name}`;
    let state: LabState;
    try {
      state = readState(dir);
    } catch (e) {
      out.push({ name, dir, phase: "unreadable", error: (e as Error).message });
      continue;
    }
    const procs = state.resources.filter((r): r is ProcessResource => r.kind === "process" && r.pid !== undefined);
    const stopped = procs.filter((p) => !processMatches(p.pid!, p.marker)).map((p) => p.role);
    const nss = state.resources.filter((r) => r.kind === "netns");
    out.push({
      name,
      dir,
      phase: state.phase,
      backend: state.spec.backend,
      mode: state.spec.mode,
      nodes: state.plan.nodes.length,
      pods: state.pods.filter((p) => p.ip !== undefined).length,
      processes: { running: procs.length - stopped.length, recorded: procs.length, stopped },
      namespaces: { present: nss.filter((r) => r.kind === "netns" && existsSync(`/run/netns/${r.name}`)).length, recorded: nss.length },
      ...(state.error !== undefined ? { error: state.error } : {}),
    });
  }
  return out;
}
