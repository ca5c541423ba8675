/**
 * SimCluster: a virtual cluster that runs a backend's NodeAgents on one virtual clock, with an
 * in-memory cluster store and peer network, attaches pods through the agents, and answers packet
 * questions by walking the agents' desired dataplanes (SimFabric).
 */
import {
  ConfigError,
  MemoryDatastore,
  MemoryMembership,
  MemoryNetwork,
  NotFoundError,
  VirtualClock,
  createLogger,
  emptyDataplane,
  podKey,
  seedFromString,
  seededRandom,
  scopedMembership,
  silentLogger,
  withSecondaryAddresses,
  type AgentContext,
  type Backend,
  type ClusterController,
  type ClusterTopology,
  type ControllerStatus,
  type Membership,
  type Datastore,
  type Logger,
  type NodeAgent,
  type NodeDataplane,
  type NodeInfo,
  type PodPort,
} from "@cnikit/core";
import { SimFabric } from "./fabric.ts";
import { SimFabricPort } from "./fabric-port.ts";
import { SandboxClock, SandboxStore, SandboxTransport, type CompactionFault } from "./sandbox.ts";
import { clusterTopologyOf, defaultTopology, type SimTopology } from "./topology.ts";
import type { Endpoint, PacketResult, PairOutcome, ReachabilityOptions, ReachabilityReport, SendOptions } from "./types.ts";

const COMPONENT = "sim";

export interface SimClusterOptions<C> {
  backend: Backend<C>;
  /** Already parsed (`backend.parseConfig`'s output). */
  config: C;
  /** Default `defaultTopology()`. */
  topology?: SimTopology;
  /** Determinism: per-node `ctx.random`, container ids, the peer network's faults. Default 1. */
  seed?: number;
  /** Default `new VirtualClock()`. */
  clock?: VirtualClock;
  /** Default `new MemoryDatastore({ clock })`. */
  store?: Datastore;
  /**
   * Labels and annotations of the n-th node added to the cluster (0-based, in order of addition,
   * whatever its name), merged under the ones `addNode` is given. A suite that names its own nodes
   * can still give roles to "the first two nodes", e.g. Calico route reflectors.
   */
  nodeMetadata?: NodeMetadata;
}

/** Options of `SimCluster.addNode`. */
export interface AddNodeOptions {
  /** Default `node-<n>`. */
  name?: string;
  /** Subnet to take the next free underlay address on (default: alternate between node subnets). */
  subnet?: string;
  /** A given underlay address (inside a node subnet, not taken) instead of the next free one. */
  address?: string;
  labels?: Record<string, string>;
}

/** Labels and annotations of the n-th node added to a cluster (see `SimClusterOptions.nodeMetadata`). */
export type NodeMetadata = (ordinal: number) => { labels?: Record<string, string>; annotations?: Record<string, string> };

export interface SimNode {
  name: string;
  info: NodeInfo;
  /** The node's current agent (replaced by `restartAgent`). */
  agent: NodeAgent;
  /** False once the node was removed (cleanly or by a crash). */
  alive: boolean;
}

export interface SimPod {
  /** `containerId/ifName`. */
  key: string;
  node: string;
  containerId: string;
  ifName: string;
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** Plain addresses (no prefix length) from the ADD result. */
  addresses: string[];
}

interface NodeState {
  node: SimNode;
  local: MemoryDatastore;
  clock: SandboxClock;
  store: SandboxStore;
  peers: SandboxTransport;
  /** The agent's view of the membership (closed with the agent: a dead agent hears nothing). */
  members: { members: Membership; close(): void };
  unsubscribe: () => void;
  generation: number;
  /** 0 for the first node of this name; +1 for each replacement (`replaceNode`). */
  incarnation: number;
  dirty: boolean;
}

/** Where a node's store handle stands (see the fault methods of `SimCluster`). */
export interface StoreFaultStatus {
  cutOff: boolean;
  /** Watch events dropped while the node was losing events. */
  lostEvents: number;
  /** Watches compacted between a listing and the watch. */
  compactedWatches: number;
}

export class SimCluster<C> {
  readonly clock: VirtualClock;
  /** The cluster store (a MemoryDatastore unless one was given). */
  readonly store: Datastore;
  /** Peers between agents. */
  readonly network: MemoryNetwork;
  readonly topology: SimTopology;
  readonly seed: number;
  private readonly backend: Backend<C>;
  private readonly config: C;
  private readonly fabric: SimFabric;
  private readonly states = new Map<string, NodeState>();
  /** Removed nodes' last state, for inspection (`pendingTimers`). */
  private readonly departed = new Map<string, NodeState>();
  private readonly podMap = new Map<string, SimPod>();
  private readonly random: () => number;
  private readonly nodeMetadata: NodeMetadata | undefined;
  /**
   * The cluster's members (its Node objects). A node joins when it is added and leaves on a clean
   * removal or `deleteNode`; a crashed node stays a member (Kubernetes keeps the Node object until
   * the node controller or an operator deletes it).
   */
  private readonly memberList: MemoryMembership;
  /** The fabric port the backend's cluster-level controller programs (routers, node addresses). */
  readonly fabricPort: SimFabricPort;
  private controller: ClusterController | undefined;
  private controllerStart: Promise<void> | undefined;
  /** Compactions armed for nodes that have not started yet (see `armCompaction`). */
  private readonly pendingCompactions = new Map<string, CompactionFault>();
  private nodesAdded = 0;
  private podsAdded = 0;
  private closed = false;

  private constructor(options: SimClusterOptions<C>) {
    this.backend = options.backend;
    this.config = options.config;
    this.seed = options.seed ?? 1;
    if (!Number.isFinite(this.seed)) throw new ConfigError({ component: COMPONENT, field: "seed", rule: "must be a finite number", value: options.seed });
    this.topology = options.topology ?? defaultTopology();
    this.fabric = new SimFabric(this.topology);
    this.clock = options.clock ?? new VirtualClock();
    this.store = options.store ?? new MemoryDatastore({ clock: this.clock });
    this.network = new MemoryNetwork({ clock: this.clock, seed: this.seed });
    this.random = seededRandom(seedFromString(`cluster|${this.seed}`));
    this.nodeMetadata = options.nodeMetadata;
    this.memberList = new MemoryMembership({ clock: this.clock });
    this.fabricPort = new SimFabricPort({
      members: this.memberList,
      fabric: this.fabric,
      onAddresses: (node, addresses) => this.setSecondaryAddresses(node, addresses),
    });
  }

  /** The cluster's members (see `Membership` in core; a crashed node stays until `deleteNode`). */
  get members(): Membership {
    return this.memberList;
  }

  /** The topology `summarize(config, cluster)` takes: node subnets and the current members. */
  clusterTopology(): ClusterTopology {
    return clusterTopologyOf(this.topology, this.memberList.list());
  }

  private setSecondaryAddresses(name: string, addresses: string[]): void {
    const member = this.memberList.get(name);
    if (!member) return;
    const info = withSecondaryAddresses(member, addresses);
    const state = this.states.get(name);
    if (state && this.fabric.hasNode(name)) {
      this.fabric.setNode(info);
      state.node.info = info;
      state.dirty = true;
    }
    this.memberList.set(info);
  }

  /**
   * Creates and starts the backend's cluster-level controller once (no-op for a backend without
   * `createController`): `addNode`, `addNodes` and `replaceNode` call it before any agent starts,
   * so the controller has reconciled once before the first node joins. A failed start is rethrown
   * (to every later caller too).
   */
  startController(): Promise<void> {
    this.checkOpen();
    if (this.controllerStart) return this.controllerStart;
    const create = this.backend.createController;
    if (!create) return (this.controllerStart = Promise.resolve());
    const clock = this.clock;
    this.controller = create.call(this.backend, {
      config: this.config,
      store: this.store,
      members: this.memberList,
      fabric: this.fabricPort,
      clock,
      log: process.env.CNIKIT_SIM_LOG === "1" ? createLogger({ name: `${this.backend.name}/controller`, level: "debug", clock }) : silentLogger,
      random: seededRandom(seedFromString(`controller|${this.seed}`)),
    });
    this.controllerStart = this.controller.start();
    return this.controllerStart;
  }

  /** The controller's status, or undefined when the backend has none (or it was not started yet). */
  controllerStatus(): ControllerStatus | undefined {
    return this.controller?.status();
  }

  /**
   * Deletes the Node object of a node that crashed (what the node controller or an operator
   * does): it leaves the membership, and the fabric forgets its secondary addresses and routes.
   * Throws `ConfigError` for a node still running (remove it first) and `NotFoundError` for one
   * that is not a member.
   */
  deleteNode(name: string): void {
    if (this.states.has(name)) throw new ConfigError({ component: COMPONENT, field: "name", rule: "must name a node that is down (crashed); remove a running node with removeNode", value: name });
    if (!this.memberList.get(name)) throw new NotFoundError(`[sim] node ${name} is not a member of the cluster`);
    this.fabricPort.dropNode(name);
    this.memberList.remove(name);
  }

  /**
   * Creates a cluster with no nodes. Throws `ConfigError` for an invalid topology or seed. Does
   * not start anything.
   */
  static create<C>(options: SimClusterOptions<C>): SimCluster<C> {
    if (!options || typeof options.backend?.createAgent !== "function") {
      throw new ConfigError({ component: COMPONENT, field: "backend", rule: "must be a Backend (with createAgent)" });
    }
    return new SimCluster(options);
  }

  private checkOpen(): void {
    if (this.closed) throw new ConfigError({ component: COMPONENT, field: "cluster", rule: "is closed; create a new SimCluster" });
  }

  private logger(name: string, clock: SandboxClock): Logger {
    if (process.env.CNIKIT_SIM_LOG !== "1") return silentLogger;
    return createLogger({ name: `${this.backend.name}/${name}`, level: "debug", clock });
  }

  private nextName(): string {
    let n = this.nodesAdded;
    for (;;) {
      const name = `node-${++n}`;
      if (!this.states.has(name) && !this.fabric.hasNode(name) && !this.memberList.get(name)) return name;
    }
  }

  /** Builds a node's sandbox and agent (no start). */
  private spawn(info: NodeInfo, local: MemoryDatastore, generation: number, incarnation = 0): NodeState {
    const clock = new SandboxClock(this.clock);
    const store = new SandboxStore(this.store, info.name);
    const armed = this.pendingCompactions.get(info.name);
    if (armed) {
      store.armCompaction(armed);
      this.pendingCompactions.delete(info.name);
    }
    const peers = new SandboxTransport(this.network.transport(info.name), this.network);
    const members = scopedMembership(this.memberList);
    const ctx: AgentContext<C> = {
      config: this.config,
      node: info,
      store,
      local,
      peers,
      clock,
      log: this.logger(info.name, clock),
      members: members.members,
      random: seededRandom(seedFromString(`node|${this.seed}|${info.name}|${generation}${incarnation > 0 ? `|incarnation ${incarnation}` : ""}`)),
    };
    let agent: NodeAgent;
    try {
      agent = this.backend.createAgent(ctx);
    } catch (err) {
      clock.kill();
      store.kill();
      peers.kill(false);
      members.close();
      throw err;
    }
    const node: SimNode = { name: info.name, info, agent, alive: true };
    const state: NodeState = { node, local, clock, store, peers, members, unsubscribe: () => {}, generation, incarnation, dirty: true };
    state.unsubscribe = agent.onDataplaneChange(() => {
      state.dirty = true;
    });
    return state;
  }

  private kill(state: NodeState, crash: boolean): void {
    state.unsubscribe();
    state.members.close();
    state.clock.kill();
    state.store.kill();
    state.peers.kill(crash);
  }

  /**
   * Adds a node with the next free underlay address on `subnet` (default: alternate between the
   * node subnets), creates its agent with a sandboxed context and awaits `agent.start()`. A node
   * whose agent fails to start is removed again and the error is rethrown. `address` gives the
   * node that underlay address instead (its subnet, prefix, gateway and MTU follow from the
   * topology; `subnet`, when also given, must be that subnet). Throws `ConfigError` for a
   * duplicate name, an unknown subnet, or an address outside every subnet or already taken.
   */
  async addNode(options: AddNodeOptions = {}): Promise<SimNode> {
    this.checkOpen();
    await this.startController();
    const state = this.prepareNode(options);
    await this.startNode(state);
    return state.node;
  }

  private prepareNode(options: AddNodeOptions, replacing?: { info: NodeInfo; generation: number; incarnation: number }): NodeState {
    const name = options.name ?? this.nextName();
    if (this.states.has(name) || this.fabric.hasNode(name)) throw new ConfigError({ component: COMPONENT, field: "name", rule: "must be unique among the cluster's nodes", value: name });
    let info: NodeInfo;
    if (replacing) {
      info = JSON.parse(JSON.stringify(replacing.info)) as NodeInfo;
    } else {
      const subnets = this.fabric.nodeSubnets();
      let u: { address: string; prefixLength: number; gateway?: string; mtu: number };
      if (options.address !== undefined) {
        const at = this.fabric.underlayAt(options.address);
        if (options.subnet !== undefined && options.subnet !== at.subnet) {
          throw new ConfigError({ component: COMPONENT, field: "address", rule: `must lie inside subnet ${options.subnet} (it lies in ${at.subnet})`, value: options.address });
        }
        u = at;
      } else {
        // A crashed node is still a member (its Node object stays) and keeps its addresses, primary
        // and secondary: a new node must not be given one of them.
        const held = new Set(this.memberList.list().flatMap((m) => m.underlay.flatMap((x) => [x.address, ...(x.secondaryAddresses ?? [])])));
        u = this.fabric.nextUnderlay(options.subnet ?? subnets[this.nodesAdded % subnets.length]!, held);
      }
      const meta = this.nodeMetadata?.(this.nodesAdded) ?? {};
      const labels = meta.labels || options.labels ? { ...meta.labels, ...options.labels } : undefined;
      info = {
        name,
        underlay: [{ iface: "eth0", address: u.address, prefixLength: u.prefixLength, ...(u.gateway !== undefined ? { gateway: u.gateway } : {}), mtu: u.mtu }],
        ...(labels ? { labels } : {}),
        ...(meta.annotations ? { annotations: { ...meta.annotations } } : {}),
      };
    }
    this.fabric.setNode(info, emptyDataplane(name));
    const wasMember = this.memberList.get(name) !== undefined;
    this.memberList.set(info);
    if (!replacing) this.nodesAdded++;
    let state: NodeState;
    try {
      state = replacing
        ? this.spawn(info, new MemoryDatastore({ clock: this.clock }), replacing.generation + 1, replacing.incarnation + 1)
        : this.spawn(info, new MemoryDatastore({ clock: this.clock }), 0);
    } catch (err) {
      this.fabric.removeNode(name);
      if (!wasMember) this.memberList.remove(name);
      throw err;
    }
    this.states.set(name, state);
    return state;
  }

  private async startNode(state: NodeState): Promise<void> {
    try {
      await state.node.agent.start();
    } catch (err) {
      this.kill(state, false);
      state.node.alive = false;
      this.states.delete(state.node.name);
      this.fabric.removeNode(state.node.name);
      this.memberList.remove(state.node.name);
      throw err;
    }
    state.dirty = true;
  }

  /**
   * Adds `count` nodes with all `start()` calls in flight at once ("N join together"). Resolves
   * with the nodes in order when all started; if any failed, the others stay and the first
   * error is thrown after all have settled.
   */
  async addNodes(count: number, options: { subnet?: string } = {}): Promise<SimNode[]> {
    this.checkOpen();
    if (!Number.isInteger(count) || count < 0) throw new ConfigError({ component: COMPONENT, field: "count", rule: "must be an integer >= 0", value: count });
    await this.startController();
    const states: NodeState[] = [];
    for (let i = 0; i < count; i++) states.push(this.prepareNode(options.subnet !== undefined ? { subnet: options.subnet } : {}));
    const results = await Promise.allSettled(states.map((s) => this.startNode(s)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    return states.map((s) => s.node);
  }

  private state(name: string): NodeState {
    const s = this.states.get(name);
    if (!s) throw new NotFoundError(`[sim] node ${name} is not in the cluster (known: ${[...this.states.keys()].join(", ") || "none"})`);
    return s;
  }

  /** The node by name. Throws `NotFoundError` for an unknown (or removed) node. */
  node(name: string): SimNode {
    return this.state(name).node;
  }

  /** Nodes currently in the cluster, in the order they were added. */
  nodes(): SimNode[] {
    return [...this.states.values()].map((s) => s.node);
  }

  /**
   * clean: `agent.stop({ release: true })`, then the node is removed. crash: the node goes silent
   * at once with no goodbye: its timers are cancelled, its store handle rejects every later call
   * (lease keep-alives stop), its peer connections are reset; its dataplane is gone. Pods on the
   * node are removed from the sim either way. The node is removed even when a clean `stop()`
   * fails; that error is rethrown afterwards. Membership: a clean removal deletes the node's
   * member record (and the fabric forgets its secondary addresses and routes); a crashed node
   * stays a member until `deleteNode`. Throws `NotFoundError` for an unknown node.
   */
  async removeNode(name: string, options: { mode: "clean" | "crash" }): Promise<void> {
    const state = this.state(name);
    if (options?.mode !== "clean" && options?.mode !== "crash") throw new ConfigError({ component: COMPONENT, field: "mode", rule: 'must be "clean" or "crash"', value: options?.mode });
    let failure: unknown;
    if (options.mode === "clean") {
      try {
        await state.node.agent.stop({ release: true });
      } catch (err) {
        failure = err;
      }
    }
    this.kill(state, options.mode === "crash");
    state.node.alive = false;
    this.states.delete(name);
    this.departed.set(name, state);
    this.fabric.removeNode(name);
    if (options.mode === "clean") {
      this.fabricPort.dropNode(name);
      this.memberList.remove(name);
    }
    for (const [key, pod] of this.podMap) if (pod.node === name) this.podMap.delete(key);
    if (failure !== undefined) throw failure;
  }

  /**
   * Stops the node's agent without release (node-local state kept) and starts a new agent for the
   * same NodeInfo and the same node-local store, with a fresh sandbox. Pods stay. Throws
   * `NotFoundError` for an unknown node; rethrows a failed `start()` (the node is then down).
   */
  async restartAgent(name: string): Promise<void> {
    const old = this.state(name);
    try {
      await old.node.agent.stop();
    } finally {
      this.kill(old, false);
    }
    const next = this.spawn(old.node.info, old.local, old.generation + 1);
    // Keep the SimNode object callers hold.
    old.node.agent = next.node.agent;
    next.node = old.node;
    this.states.set(name, next);
    try {
      await next.node.agent.start();
    } catch (err) {
      this.kill(next, false);
      next.node.alive = false;
      this.states.delete(name);
      this.fabric.removeNode(name);
      for (const [key, pod] of this.podMap) if (pod.node === name) this.podMap.delete(key);
      throw err;
    }
    next.dirty = true;
  }

  /**
   * Replaces a node: the node goes (`mode` "crash": no goodbye, as in `removeNode`; "clean": a
   * clean leave) and a new node of the same identity comes up at once — same name, underlay
   * address, labels and annotations — with fresh node-local state (an empty `ctx.local`: no
   * host-local records, a new VTEP MAC) and a new random stream, and `agent.start()` is awaited.
   * Its pods are gone. Throws `NotFoundError` for an unknown node; rethrows a failed clean
   * `stop()` (after the replacement started) or a failed `start()` (the node is then down).
   */
  async replaceNode(name: string, options: { mode: "clean" | "crash" }): Promise<SimNode> {
    this.checkOpen();
    const old = this.state(name);
    await this.startController();
    const before = { info: old.node.info, generation: old.generation, incarnation: old.incarnation };
    let failure: unknown;
    try {
      await this.removeNode(name, options);
    } catch (err) {
      if (this.states.has(name)) throw err;
      failure = err;
    }
    const state = this.prepareNode({ name }, before);
    await this.startNode(state);
    if (failure !== undefined) throw failure;
    return state.node;
  }

  /** How many times a node of this name was replaced (0 for the first incarnation). Throws `NotFoundError` for an unknown node. */
  incarnation(name: string): number {
    return this.state(name).incarnation;
  }

  /**
   * Cuts one node off from the cluster store (the others keep it), or restores it: while cut,
   * every store call of that node's agent throws `TryAgainError` (code 11), its open watches end
   * and new ones fail; its leases are not kept alive (they expire on the store's clock). Throws
   * `NotFoundError` for an unknown node.
   */
  setStoreCutOff(name: string, cut: boolean): void {
    const s = this.state(name);
    s.store.setCutOff(cut);
    s.dirty = true;
  }

  /**
   * While on, the node's store watches silently drop every event (a broken watch proxy, a missed
   * informer event); listings still work, and events flow again once it is off. Throws
   * `NotFoundError` for an unknown node.
   */
  setLosingWatchEvents(name: string, losing: boolean): void {
    this.state(name).store.setLosingEvents(losing);
  }

  /**
   * Arms a compaction between the node's listing and the watch that follows it: the next watch the
   * node opens from a revision (each prefix once) stalls `delayMs`, then the store is compacted
   * past everything written so far and the watch throws `CompactedError` (code 105). For a node
   * not yet in the cluster the fault is kept and armed when a node of that name starts (so its
   * first list-then-watch is hit). `undefined` disarms.
   */
  armCompaction(name: string, fault: CompactionFault | undefined): void {
    const s = this.states.get(name);
    if (s) s.store.armCompaction(fault);
    else if (fault) this.pendingCompactions.set(name, fault);
    else this.pendingCompactions.delete(name);
  }

  /** The node's store-fault figures. Throws `NotFoundError` for an unknown node. */
  storeFaults(name: string): StoreFaultStatus {
    const st = this.state(name).store;
    return { cutOff: st.cutOff, lostEvents: st.lost, compactedWatches: st.compacted };
  }

  private containerId(): string {
    let out = "";
    while (out.length < 64)
      out += Math.floor(this.random() * 0x100000000)
        .toString(16)
        .padStart(8, "0");
    return out.slice(0, 64);
  }

  /**
   * CNI ADD through the node's agent; the pod is registered with the ADD result's addresses.
   * Container ids are deterministic from the seed; `ports` (named container ports) go to the agent
   * with the attachment. Rethrows the agent's error (nothing is
   * registered then); throws `NotFoundError` for an unknown node.
   */
  async addPod(nodeName: string, options: { name?: string; namespace?: string; labels?: Record<string, string>; containerId?: string; ifName?: string; ports?: PodPort[] } = {}): Promise<SimPod> {
    this.checkOpen();
    const state = this.state(nodeName);
    const n = ++this.podsAdded;
    const name = options.name ?? `pod-${n}`;
    const namespace = options.namespace ?? "default";
    const containerId = options.containerId ?? this.containerId();
    const ifName = options.ifName ?? "eth0";
    const labels = { ...(options.labels ?? {}) };
    const result = await state.node.agent.attach({
      containerId,
      ifName,
      netns: `/var/run/netns/sim-${nodeName}-${name}`,
      namespace,
      podName: name,
      labels,
      ...(options.ports ? { ports: options.ports.map((p) => ({ ...p })) } : {}),
    });
    const pod: SimPod = {
      key: podKey({ containerId, ifName }),
      node: nodeName,
      containerId,
      ifName,
      name,
      namespace,
      labels,
      addresses: result.ips.map((ip) => ip.address.split("/")[0]!),
    };
    this.podMap.set(pod.key, pod);
    state.dirty = true;
    return pod;
  }

  /**
   * CNI DEL through the agent (when the node is still up); removes the pod from the sim.
   * Unknown pods are ignored (DEL is idempotent). Rethrows the agent's error (the pod stays).
   */
  async removePod(pod: SimPod | string): Promise<void> {
    const key = typeof pod === "string" ? pod : pod.key;
    const p = this.podMap.get(key);
    if (!p) return;
    const state = this.states.get(p.node);
    if (state) {
      await state.node.agent.detach({ containerId: p.containerId, ifName: p.ifName });
      state.dirty = true;
    }
    this.podMap.delete(key);
  }

  /** Pods registered in the sim, in the order they were added. */
  pods(): SimPod[] {
    return [...this.podMap.values()];
  }

  /**
   * Runs the virtual clock until no timer is pending or `limitMs` (default 60 000) of virtual time
   * would be exceeded; returns the virtual and wall milliseconds that passed.
   */
  async settle(options: { limitMs?: number } = {}): Promise<{ virtualMs: number; wallMs: number }> {
    const started = performance.now();
    const virtualMs = await this.clock.runUntilIdle({ limitMs: options.limitMs ?? 60_000 });
    return { virtualMs, wallMs: performance.now() - started };
  }

  /** Pushes changed agent dataplanes into the fabric. Throws `ConfigError` for a dataplane that does not compile. */
  private sync(): void {
    for (const s of this.states.values()) {
      if (!s.dirty) continue;
      this.fabric.setDataplane(s.node.name, s.node.agent.dataplane());
      s.dirty = false;
    }
  }

  /**
   * Walks one packet (default tcp/80) and its reply through the agents' current dataplanes.
   * Throws `ConfigError` for an unknown node/external endpoint or a dataplane that does not compile.
   */
  send(from: Endpoint, to: Endpoint, options: SendOptions = {}): PacketResult {
    this.sync();
    return this.fabric.send(from, to, options);
  }

  /**
   * All-pairs reachability (default: every registered pod to every registered pod), reasoned per
   * sender class and destination run. With `family`, every endpoint is probed at its address of
   * that family and those without one are listed in the report's `skipped`: call it once per
   * family to cover dual-stack pods. Throws like `send`.
   */
  reachability(options: ReachabilityOptions = {}): ReachabilityReport {
    this.sync();
    const all = (): Endpoint[] => this.pods().map((p) => ({ kind: "pod", key: p.key }));
    return this.fabric.reachability({ ...options, from: options.from ?? all(), to: options.to ?? all() });
  }

  /**
   * Every pair's outcome as the class analysis computed it (no paths): for full matrices such as
   * the NetworkPolicy checks. O(pairs). Throws like `send`.
   */
  reachabilityPairs(options: Omit<ReachabilityOptions, "maxFailures"> = {}): PairOutcome[] {
    this.sync();
    const all = (): Endpoint[] => this.pods().map((p) => ({ kind: "pod", key: p.key }));
    return this.fabric.reachabilityPairs({ ...options, from: options.from ?? all(), to: options.to ?? all() });
  }

  /** The node agent's current desired dataplane. Throws `NotFoundError` for an unknown node. */
  dataplane(node: string): NodeDataplane {
    return this.state(node).node.agent.dataplane();
  }

  /**
   * The node's node-local store (`ctx.local`: host-local records, VTEP MAC, ...), for inspection:
   * checks diff it to find leaks in node-local state. Kept across `restartAgent`. Throws
   * `NotFoundError` for an unknown (or removed) node.
   */
  localStore(node: string): Datastore {
    return this.state(node).local;
  }

  /**
   * Timers the node's agent has pending (always 0 once the node was removed or crashed). Throws
   * `NotFoundError` for a node that never existed.
   */
  pendingTimers(node: string): number {
    const s = this.states.get(node) ?? this.departed.get(node);
    if (!s) throw new NotFoundError(`[sim] node ${node} is not in the cluster`);
    return s.clock.pending();
  }

  /** Stops every agent (no release) and closes their sandboxes. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const states = [...this.states.values()];
    await Promise.allSettled(states.map((s) => s.node.agent.stop()));
    await this.controller?.stop().catch(() => undefined);
    for (const s of states) {
      this.kill(s, false);
      s.node.alive = false;
    }
    this.states.clear();
  }
}
