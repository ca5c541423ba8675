/**
 * The Calico agent of one node (calico-node: the CNI plugin's IPAM, confd + BIRD, felix).
 *
 * Cluster state in `ctx.store`:
 *  - block IPAM (see ipam.ts);
 *  - this node's record `/calico/resources/v3/projectcalico.org/nodes/<name>` (underlay address,
 *    labels, tunnel addresses, VXLAN MAC) — what other agents peer with and tunnel to;
 *  - workload endpoints `/calico/workloadendpoints/<node>/<containerId>/<ifName>` (namespace,
 *    labels, address, container ports);
 *  - read only: the Kubernetes objects every NetworkPolicy backend watches (`KUBE_PREFIX` of
 *    @cnikit/core): NetworkPolicies `/cnikit/kube/networkpolicies/<namespace>/<name>`
 *    (networking.k8s.io/v1 objects as JSON) and namespaces `/cnikit/kube/namespaces/<name>`.
 *
 * Routing is BGP: a bgp-utils-free speaker runs over `ctx.peers` (the agent's name is its
 * transport address; node records map underlay addresses to names). The node announces its
 * affine blocks as aggregates and a /32 per local pod whose address is borrowed from another
 * node's block; learned routes become the plan's remote routes. Full mesh by default; BGPPeer
 * selectors and `routeReflectorClusterID` give route reflection. A crashed node is withdrawn when
 * its sessions' hold timers expire.
 */
import {
  AddressInUseError,
  CheckFailedError,
  ConfigError,
  KUBE_PREFIX,
  NotReadyError,
  TryAgainError,
  UnknownContainerError,
  mirrorPrefix,
  emptyDataplane,
  podKey,
} from "@cnikit/core";
import type { AgentContext, AgentStatus, AttachResult, KeyValue, NodeAgent, NodeDataplane, NodeInfo, PodAttachment, PodRef, UnderlayInterface, FilterPolicy } from "@cnikit/core";
import { BgpSpeaker, peerTransportAdapter } from "bgp-utils-free";
import type { PeerConfig } from "bgp-utils-free";
import { KubePolicyView } from "@cnikit/netpol";
import type { ClusterPod, ContainerPort } from "@cnikit/netpol";
import type { CalicoConfig } from "./config.ts";
import { BlockIpam, podHandle, releaseHandle, releaseNodeBlocks, tunnelHandle } from "./ipam.ts";
import { POD_GATEWAY, hostIfName, macFor, planDataplane, usedEncaps, podMtu } from "./plan.ts";
import type { LearnedRoute, NodeRecord, PodRecord } from "./plan.ts";
import { parseSelector } from "./selector.ts";

export const NODE_PREFIX = "/calico/resources/v3/projectcalico.org/nodes/";
export const ENDPOINT_PREFIX = "/calico/workloadendpoints/";
/** NetworkPolicies, as every NetworkPolicy backend reads them (`KUBE_PREFIX.networkPolicies`). */
export const POLICY_PREFIX = KUBE_PREFIX.networkPolicies;
/** Namespaces, as every NetworkPolicy backend reads them (`KUBE_PREFIX.namespaces`). */
export const NAMESPACE_PREFIX = KUBE_PREFIX.namespaces;
/** BGP hold time (s). A crashed node's routes go when it expires (or at once on a reset). */
export const HOLD_TIME = 90;
/** Graceful-restart time (s) peers keep a restarting node's routes. */
export const RESTART_TIME = 120;
export const WATCH_RETRY_MS = 1_000;
/** Full re-list of the watched prefixes, repairing anything a watch missed. */
export const RESYNC_MS = 60_000;

const C = "calico";
const LOCAL_PODS = "/pods/";

/** The labels a node has: the Node resource's in the config, then the runtime's. */
export function nodeLabels(config: CalicoConfig, name: string, runtime: Record<string, string> = {}): Record<string, string> {
  return { ...(config.nodes.find((n) => n.name === name)?.labels ?? {}), ...runtime };
}

/** Kubernetes node annotation that makes a node a route reflector (calico/node reads it too). */
export const RR_CLUSTER_ID_ANNOTATION = "projectcalico.org/RouteReflectorClusterID";

/**
 * The node's route-reflector cluster id: its Node resource's `spec.bgp.routeReflectorClusterID`,
 * else the Kubernetes node annotation `projectcalico.org/RouteReflectorClusterID`. Throws
 * `ConfigError` when the annotation is not a dotted-quad IPv4 address (Calico's rule for the field).
 */
export function routeReflectorClusterId(config: CalicoConfig, node: NodeInfo): string | undefined {
  const fromResource = config.nodes.find((n) => n.name === node.name)?.routeReflectorClusterID;
  if (fromResource !== undefined) return fromResource;
  const value = node.annotations?.[RR_CLUSTER_ID_ANNOTATION];
  if (value === undefined) return undefined;
  if (!/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(value)) {
    throw new ConfigError({ component: C, field: `node.annotations["${RR_CLUSTER_ID_ANNOTATION}"]`, rule: "must be an IPv4 address in dotted-quad form", value });
  }
  return value;
}

/**
 * The BGP peers of `self` given every known node (Calico's confd logic): the full mesh among
 * non-reflector nodes when `nodeToNodeMeshEnabled`; BGPPeer selectors in both directions
 * (reversePeering Auto); a reflector treats iBGP peers outside its cluster id as clients. Pure.
 */
export function desiredPeers(config: CalicoConfig, self: NodeRecord, nodes: readonly NodeRecord[]): PeerConfig[] {
  const rrId = (n: NodeRecord) => n.routeReflectorClusterID ?? config.nodes.find((x) => x.name === n.name)?.routeReflectorClusterID;
  const asOf = (n: string) => config.nodes.find((x) => x.name === n)?.asNumber ?? config.bgp.asNumber;
  const myRr = rrId(self);
  const out = new Map<string, PeerConfig>();
  const add = (n: NodeRecord) => {
    if (n.name === self.name || out.has(n.address)) return;
    const theirRr = rrId(n);
    const peer: PeerConfig = { address: n.address, asn: asOf(n.name), passive: self.address > n.address, description: n.name };
    if (myRr !== undefined && theirRr !== myRr) peer.routeReflectorClient = true;
    out.set(n.address, peer);
  };
  if (config.bgp.nodeToNodeMeshEnabled && myRr === undefined) for (const n of nodes) if (rrId(n) === undefined) add(n);
  for (const p of config.peers) {
    const matchesNode = (n: NodeRecord) => (p.node !== undefined ? p.node === n.name : parseSelector(p.nodeSelector ?? "all()", "nodeSelector")(n.labels));
    if (p.peerSelector !== undefined) {
      const sel = parseSelector(p.peerSelector, "peerSelector");
      if (matchesNode(self)) for (const n of nodes) if (sel(n.labels)) add(n);
      if (sel(self.labels)) for (const n of nodes) if (matchesNode(n)) add(n);
    } else if (p.peerIP !== undefined && matchesNode(self)) {
      const known = nodes.find((n) => n.address === p.peerIP);
      if (known) add(known);
      else if (!out.has(p.peerIP)) out.set(p.peerIP, { address: p.peerIP, asn: p.asNumber ?? config.bgp.asNumber, description: p.name });
    }
  }
  return [...out.values()].sort((a, b) => (a.address < b.address ? -1 : 1));
}

interface Endpoint {
  node: string;
  key: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ips: string[];
  hostIf: string;
  ports?: ContainerPort[];
}

/** The Calico NodeAgent; create it with `calico.createAgent`. */
export class CalicoAgent implements NodeAgent {
  private readonly ctx: AgentContext<CalicoConfig>;
  private readonly config: CalicoConfig;
  private phase: "new" | "starting" | "running" | "stopped" = "new";
  private startPromise: Promise<void> | undefined;
  private underlay!: UnderlayInterface;
  private ipam!: BlockIpam;
  private self!: NodeRecord;
  private speaker: BgpSpeaker | undefined;
  private readonly pods = new Map<string, PodRecord>();
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly byAddress = new Map<string, NodeRecord>();
  private readonly learned = new Map<string, LearnedRoute>();
  private blocks = new Set<string>();
  private announced = new Set<string>();
  private readonly kube = new KubePolicyView((msg, err) => this.warn(msg, err));
  private readonly endpoints = new Map<string, Endpoint>();
  private filters: FilterPolicy[] = [];
  private readonly abort = new AbortController();
  private lastPlan: NodeDataplane;
  private lastJson = "";
  private replanQueued = false;
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(ctx: AgentContext<CalicoConfig>) {
    this.ctx = ctx;
    this.config = ctx.config;
    this.lastPlan = emptyDataplane(ctx.node.name);
  }

  /** The BGP speaker (for tests and benchmarks: RIB, session stats). Undefined before start. */
  get bgp(): BgpSpeaker | undefined {
    return this.speaker;
  }

  /**
   * Publishes the node record, restores pods from `ctx.local`, allocates tunnel addresses, watches
   * nodes and policy state, and starts the BGP speaker. A second call returns the first promise.
   * Throws `ConfigError` without an IPv4 underlay or without any IPPool this node may use,
   * `PoolExhaustedError` when a tunnel address cannot be allocated, `TryAgainError` for the store.
   */
  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    this.phase = "starting";
    const { ctx } = this;
    const underlay = ctx.node.underlay.find((u) => !u.address.includes(":"));
    if (!underlay) throw new ConfigError({ component: C, field: "node.underlay", rule: "calico needs an IPv4 underlay address (the BGP router id and next hop)", value: ctx.node.underlay });
    this.underlay = underlay;
    const clusterId = routeReflectorClusterId(this.config, ctx.node);
    const labels = nodeLabels(this.config, ctx.node.name, ctx.node.labels);
    this.ipam = new BlockIpam({ store: ctx.store, node: ctx.node.name, labels, pools: this.config.pools, config: this.config.ipam, random: ctx.random });
    if (this.ipam.usablePools(4).length === 0) {
      throw new ConfigError({ component: C, field: "IPPool", rule: `node ${ctx.node.name} matches no enabled IPv4 IPPool: add one, or fix the pools' nodeSelector` });
    }
    await this.restorePods();
    const encaps = usedEncaps(this.config);
    const self: NodeRecord = { name: ctx.node.name, address: underlay.address, prefixLength: underlay.prefixLength, labels };
    if (clusterId !== undefined) self.routeReflectorClusterID = clusterId;
    if (encaps.ipip) self.ipipTunnelAddr = (await this.ipam.allocate(tunnelHandle("ipip", self.name), { node: self.name, type: "ipipTunnelAddress" })).address;
    if (encaps.vxlan) {
      self.vxlanTunnelAddr = (await this.ipam.allocate(tunnelHandle("vxlan", self.name), { node: self.name, type: "vxlanTunnelAddress" })).address;
      self.vxlanMac = macFor(`vxlan/${self.name}`);
    }
    this.self = self;
    await ctx.store.put(`${NODE_PREFIX}${self.name}`, JSON.stringify(self));
    this.blocks = new Set(await this.ipam.affineBlocks());

    const speaker = new BgpSpeaker({
      asn: this.config.nodes.find((n) => n.name === self.name)?.asNumber ?? this.config.bgp.asNumber,
      routerId: underlay.address,
      localAddress: underlay.address,
      transport: peerTransportAdapter(ctx.peers, {
        nameOf: (a) => this.byAddress.get(a)?.name ?? a,
        addressOf: (n) => (n === self.name ? underlay.address : (this.nodes.get(n)?.address ?? n)),
        localAddress: underlay.address,
      }),
      families: ["ipv4-unicast"],
      holdTime: HOLD_TIME,
      connectRetryTime: 5,
      idleHoldTime: 1,
      gracefulRestart: { restartTime: RESTART_TIME },
      clock: ctx.clock,
      random: ctx.random,
      ...(clusterId !== undefined ? { clusterId } : {}),
      onListenerError: (e) => this.warn("BGP listener failed", e),
    });
    speaker.onRouteChange((e) => {
      const r = e.route;
      if (!r || r.source.kind !== "peer") this.learned.delete(e.prefix);
      else this.learned.set(e.prefix, { prefix: e.prefix, nextHop: r.attributes.nextHop });
      this.queueReplan();
    });
    this.speaker = speaker;
    await speaker.start();

    await this.watchPrefix(NODE_PREFIX, (key, kv) => this.onNode(key, kv));
    await this.kube.start({ store: ctx.store, clock: ctx.clock, signal: this.abort.signal, retryMs: WATCH_RETRY_MS, onChange: () => this.recompileFilters() });
    await this.watchPrefix(ENDPOINT_PREFIX, (key, kv) => this.onEndpoint(key, kv));
    if (this.phase !== "starting") return;
    this.phase = "running";
    for (const pod of this.pods.values()) await this.publishEndpoint(pod).catch((e: unknown) => this.warn("could not publish an endpoint", e));
    this.syncPeers();
    this.syncAnnouncements();
    this.recompileFilters();
    this.replan();
    ctx.log.info(`[calico] node ${self.name} up: ${this.blocks.size} block(s), ${this.pods.size} pod(s)`);
  }

  private async restorePods(): Promise<void> {
    const listing = await this.ctx.local.list(LOCAL_PODS);
    for (const kv of listing.items) {
      try {
        const rec = JSON.parse(kv.value) as PodRecord;
        this.pods.set(podKey(rec), rec);
      } catch {
        await this.ctx.local.delete(kv.key);
      }
    }
  }

  /**
   * Lists `prefix`, then watches it from the listing's revision, re-listing after failures and
   * every RESYNC_MS (a watch that silently lost events is repaired by the next listing).
   */
  private watchPrefix(prefix: string, apply: (key: string, kv: KeyValue | undefined) => void): Promise<void> {
    return mirrorPrefix({
      store: this.ctx.store,
      prefix,
      clock: this.ctx.clock,
      signal: this.abort.signal,
      apply,
      retryMs: WATCH_RETRY_MS,
      resyncMs: RESYNC_MS,
      onError: (err) => this.warn(`watch of ${prefix} failed; re-listing`, err),
    });
  }

  private onNode(key: string, kv: KeyValue | undefined): void {
    const name = key.slice(NODE_PREFIX.length);
    const old = this.nodes.get(name);
    if (old) this.byAddress.delete(old.address);
    if (kv) {
      try {
        const rec = JSON.parse(kv.value) as NodeRecord;
        this.nodes.set(name, rec);
        this.byAddress.set(rec.address, rec);
      } catch {
        this.nodes.delete(name);
      }
    } else this.nodes.delete(name);
    if (this.phase === "running") {
      this.syncPeers();
      this.queueReplan();
    }
  }

  private onEndpoint(key: string, kv: KeyValue | undefined): void {
    if (!kv) this.endpoints.delete(key);
    else {
      try {
        this.endpoints.set(key, JSON.parse(kv.value) as Endpoint);
      } catch {
        this.endpoints.delete(key);
      }
    }
    if (this.kube.hasPolicies()) this.recompileFilters();
  }

  private recompileFilters(): void {
    if (this.phase !== "running") return;
    let next: FilterPolicy[] = [];
    if (this.kube.hasPolicies()) {
      const pods: ClusterPod[] = [...this.endpoints.values()].map((e) => ({ namespace: e.namespace, name: e.name, labels: e.labels, ips: e.ips, ports: e.ports ?? [], node: e.node, key: e.key, hostIf: e.hostIf }));
      try {
        next = this.kube.compile({ node: this.ctx.node.name, pods, nodeAddresses: [this.underlay.address] });
      } catch (err) {
        this.warn("could not compile NetworkPolicies; keeping the previous filters", err);
        return;
      }
    }
    this.filters = next;
    this.queueReplan();
  }

  private syncPeers(): void {
    const speaker = this.speaker;
    if (!speaker) return;
    const want = desiredPeers(this.config, this.self, [...this.nodes.values()]);
    const wanted = new Map(want.map((p) => [p.address, p]));
    for (const st of speaker.peerStatus()) {
      const w = wanted.get(st.address);
      if (!w) speaker.removePeer(st.address);
      else wanted.delete(st.address);
    }
    for (const p of wanted.values()) speaker.addPeer(p);
  }

  /** Announces affine blocks and /32s of borrowed local addresses; withdraws what is no longer so. */
  private syncAnnouncements(): void {
    const speaker = this.speaker;
    if (!speaker || this.phase !== "running") return;
    const exportable = (prefix: string) => {
      const pool = this.config.pools.find((p) => p.family === 4 && prefixContains(p.cidr, prefix));
      return pool !== undefined && !pool.disableBGPExport;
    };
    const want = new Set<string>();
    for (const b of this.blocks) if (exportable(b)) want.add(b);
    for (const p of this.pods.values()) {
      if (![...this.blocks].some((b) => prefixContains(b, `${p.address}/32`)) && exportable(`${p.address}/32`)) want.add(`${p.address}/32`);
    }
    const add = [...want].filter((p) => !this.announced.has(p));
    const del = [...this.announced].filter((p) => !want.has(p));
    if (del.length > 0) speaker.withdraw(del);
    if (add.length > 0) speaker.announce(add);
    this.announced = want;
  }

  private async refreshBlocks(): Promise<void> {
    this.blocks = new Set(await this.ipam.affineBlocks());
    this.syncAnnouncements();
  }

  private async publishEndpoint(pod: PodRecord): Promise<void> {
    const ep: Endpoint = {
      node: this.ctx.node.name,
      key: podKey(pod),
      namespace: pod.namespace ?? "default",
      name: pod.podName ?? pod.containerId,
      labels: pod.labels ?? {},
      ips: [pod.address],
      hostIf: hostIfName(pod),
      ports: (pod.ports ?? []).map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), containerPort: p.containerPort, protocol: p.protocol ?? "TCP" })),
    };
    await this.ctx.store.put(`${ENDPOINT_PREFIX}${this.ctx.node.name}/${podKey(pod)}`, JSON.stringify(ep));
  }

  /**
   * Stops watches, timers and the BGP speaker (peers withdraw this node's routes). With
   * `release: true` also releases this node's pod and tunnel addresses and blocks and deletes its
   * node record. Idempotent; never throws (failures are logged).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (this.phase === "stopped") return;
    this.phase = "stopped";
    this.abort.abort();
    await this.speaker?.stop().catch((e: unknown) => this.warn("BGP stop failed", e));
    if (!options.release) return;
    await this.startPromise?.catch(() => undefined);
    try {
      for (const pod of this.pods.values()) {
        await releaseHandle(this.ctx.store, pod.handle);
        await this.ctx.store.delete(`${ENDPOINT_PREFIX}${this.ctx.node.name}/${podKey(pod)}`);
        await this.ctx.local.delete(`${LOCAL_PODS}${podKey(pod)}`);
      }
      this.pods.clear();
      await releaseHandle(this.ctx.store, tunnelHandle("ipip", this.ctx.node.name));
      await releaseHandle(this.ctx.store, tunnelHandle("vxlan", this.ctx.node.name));
      await releaseNodeBlocks(this.ctx.store, this.ctx.node.name);
      await this.ctx.store.delete(`${NODE_PREFIX}${this.ctx.node.name}`);
    } catch (err) {
      this.warn("could not release everything on leave; `gcIpam` reclaims the rest", err);
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private requireRunning(op: string): void {
    if (this.phase !== "running") throw new NotReadyError(`[calico] ${op} on node ${this.ctx.node.name}: the agent is ${this.phase === "stopped" ? "stopped" : "not started"}`);
  }

  private resultFor(pod: PodRecord): AttachResult {
    const mtu = podMtu(this.config, this.underlay.mtu ?? 1500);
    return {
      interfaces: [
        { name: hostIfName(pod), mac: "ee:ee:ee:ee:ee:ee" },
        { name: pod.ifName, mac: macFor(`pod/${podKey(pod)}`), mtu, sandbox: pod.netns ?? "" },
      ],
      ips: [{ address: `${pod.address}/32`, gateway: POD_GATEWAY, interface: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: POD_GATEWAY }],
    };
  }

  /**
   * CNI ADD: allocates an address by block IPAM (handle `k8s-pod-network.<containerId>`), records
   * the pod in `ctx.local`, publishes its endpoint, announces a new block or a borrowed /32, and
   * plans the veth. Idempotent per (containerId, ifName). Throws `NotReadyError` before start,
   * `ConfigError` for a missing id or more than one requested address, `PoolExhaustedError`,
   * `AddressInUseError`, `TryAgainError` (then nothing stays reserved).
   */
  attach(pod: PodAttachment): Promise<AttachResult> {
    return this.serial(async () => {
      this.requireRunning("ADD");
      if (!pod.containerId) throw new ConfigError({ component: C, field: "containerId", rule: "must not be empty" });
      if (!pod.ifName) throw new ConfigError({ component: C, field: "ifName", rule: "must not be empty" });
      const key = podKey(pod);
      const existing = this.pods.get(key);
      if (existing) return this.resultFor(existing);
      const requested = pod.requestedIps ?? [];
      if (requested.length > 1) throw new ConfigError({ component: C, field: "requestedIps", rule: "calico here is IPv4 single-stack: ask for at most one address", value: requested });
      const handle = podHandle(pod.containerId, pod.ifName);
      const attrs: Record<string, string> = { node: this.ctx.node.name, ...(pod.namespace ? { namespace: pod.namespace } : {}), ...(pod.podName ? { pod: pod.podName } : {}) };
      const alloc = requested[0] !== undefined ? await this.ipam.allocateSpecific(handle, requested[0], attrs) : await this.ipam.allocate(handle, attrs);
      const rec: PodRecord = { containerId: pod.containerId, ifName: pod.ifName, address: alloc.address, handle, netns: pod.netns };
      if (pod.namespace !== undefined) rec.namespace = pod.namespace;
      if (pod.podName !== undefined) rec.podName = pod.podName;
      if (pod.labels !== undefined) rec.labels = { ...pod.labels };
      if (pod.ports !== undefined) rec.ports = pod.ports.map((p) => ({ ...p }));
      try {
        await this.ctx.local.put(`${LOCAL_PODS}${key}`, JSON.stringify(rec));
        await this.publishEndpoint(rec);
      } catch (err) {
        await releaseHandle(this.ctx.store, handle).catch(() => undefined);
        await this.ctx.local.delete(`${LOCAL_PODS}${key}`).catch(() => undefined);
        if (err instanceof AddressInUseError) throw err;
        throw err instanceof TryAgainError ? err : new TryAgainError(`[calico] could not record ${alloc.address} for ${key}; try again`, { cause: err });
      }
      this.pods.set(key, rec);
      if (!this.blocks.has(alloc.block) && !alloc.borrowed) await this.refreshBlocks();
      else this.syncAnnouncements();
      this.replan();
      return this.resultFor(rec);
    });
  }

  /**
   * CNI DEL: releases the handle (one store transaction), unpublishes the endpoint and forgets the
   * pod. Idempotent. Throws `TryAgainError` when the release could not be recorded.
   */
  detach(ref: PodRef): Promise<void> {
    return this.serial(() => this.release(ref));
  }

  private async release(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    try {
      await releaseHandle(this.ctx.store, podHandle(ref.containerId, ref.ifName));
      await this.ctx.store.delete(`${ENDPOINT_PREFIX}${this.ctx.node.name}/${key}`);
      await this.ctx.local.delete(`${LOCAL_PODS}${key}`);
    } catch (err) {
      throw err instanceof TryAgainError ? err : new TryAgainError(`[calico] could not record the release of ${key}; try again`, { cause: err });
    }
    if (this.pods.delete(key)) {
      this.syncAnnouncements();
      this.replan();
    }
  }

  /**
   * CNI CHECK: the pod is known, its handle holds its address in the store, and the dataplane has
   * its interface and host route. Throws `UnknownContainerError`, `CheckFailedError`, `NotReadyError`.
   */
  check(ref: PodRef): Promise<void> {
    return this.serial(async () => {
      this.requireRunning("CHECK");
      const key = podKey(ref);
      const rec = this.pods.get(key);
      if (!rec) throw new UnknownContainerError(`[calico] no attachment ${key} on node ${this.ctx.node.name}`);
      const h = await this.ctx.store.get(`/calico/ipam/v2/handle/${rec.handle}`);
      if (!h || (JSON.parse(h.value) as { address?: string }).address !== rec.address) throw new CheckFailedError(`[calico] handle ${rec.handle} does not hold ${rec.address} in IPAM`);
      const dp = this.lastPlan;
      if (!dp.pods.some((p) => p.key === key)) throw new CheckFailedError(`[calico] ${key} has no interface in the dataplane`);
      if (!dp.routes.some((r) => r.dst === `${rec.address}/32` && r.dev === hostIfName(rec))) throw new CheckFailedError(`[calico] no host route ${rec.address}/32 dev ${hostIfName(rec)}`);
    });
  }

  /** CNI GC: releases every local attachment not in `valid`; failures are reported together (`TryAgainError`). */
  gc(valid: PodRef[]): Promise<void> {
    return this.serial(async () => {
      const keep = new Set(valid.map((v) => podKey(v)));
      const failures: string[] = [];
      for (const rec of [...this.pods.values()]) {
        if (keep.has(podKey(rec))) continue;
        try {
          await this.release(rec);
        } catch (err) {
          failures.push(`${podKey(rec)}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (failures.length > 0) throw new TryAgainError(`[calico] GC could not release ${failures.length} attachment(s)`, { details: failures.join("; ") });
    });
  }

  /** CNI STATUS: ready while running. */
  status(): AgentStatus {
    if (this.phase !== "running") return { ready: false, code: 50, reason: `[calico] agent on node ${this.ctx.node.name} is ${this.phase === "stopped" ? "stopped" : "not started"}` };
    return { ready: true };
  }

  /** The desired dataplane now (do not mutate it). */
  dataplane(): NodeDataplane {
    if (this.replanQueued) this.replan();
    return this.lastPlan;
  }

  /** Subscribes to dataplane changes; returns the unsubscribe function. */
  onDataplaneChange(listener: (dataplane: NodeDataplane) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private queueReplan(): void {
    if (this.replanQueued || this.phase !== "running") return;
    this.replanQueued = true;
    // A clock timer, not a microtask: a burst of BGP UPDATEs (a cold start delivers one per peer)
    // then costs one replan instead of one per UPDATE, which at 500 nodes was ~N² plans. Readers
    // never see a stale plan: dataplane() replans at once when one is queued.
    this.ctx.clock.setTimeout(() => {
      if (this.replanQueued) this.replan();
    }, 0);
  }

  private replan(): void {
    this.replanQueued = false;
    if (this.phase !== "running") return;
    const dp = planDataplane({
      config: this.config,
      node: this.ctx.node.name,
      underlay: this.underlay,
      blocks: [...this.blocks],
      learned: [...this.learned.values()],
      nodesByAddress: this.byAddress,
      pods: [...this.pods.values()],
      filters: this.filters,
      ...(this.self.ipipTunnelAddr ? { ipipTunnelAddr: this.self.ipipTunnelAddr } : {}),
      ...(this.self.vxlanTunnelAddr ? { vxlanTunnelAddr: this.self.vxlanTunnelAddr } : {}),
      ...(this.self.vxlanMac ? { vxlanMac: this.self.vxlanMac } : {}),
    });
    const json = JSON.stringify(dp);
    if (json === this.lastJson) return;
    this.lastJson = json;
    this.lastPlan = dp;
    for (const l of this.listeners) {
      try {
        l(dp);
      } catch (err) {
        this.warn("a dataplane listener threw", err);
      }
    }
  }

  private warn(msg: string, err: unknown): void {
    this.ctx.log.warn(`[calico] ${msg}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function prefixContains(outer: string, inner: string): boolean {
  const [oa, ol] = outer.split("/");
  const [ia, il] = inner.split("/");
  const toInt = (a: string) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
  const olen = Number(ol);
  if (Number(il) < olen) return false;
  const mask = olen === 0 ? 0 : 2 ** 32 - 2 ** (32 - olen);
  return (toInt(oa!) & mask) >>> 0 === (toInt(ia!) & mask) >>> 0;
}
