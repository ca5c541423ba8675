/**
 * The Calico agent of one node (calico-node: the CNI plugin's IPAM, confd + BIRD, felix), on
 * core's agent kit: `AgentRuntime` (phases, STATUS, per-attachment serialisation, GC, dataplane
 * publication) and an `Informer` over the node records, with @cnikit/netpol's `PolicyComponent`
 * for NetworkPolicy. What is its own:
 *
 *  - block IPAM in `ctx.store` (ipam.ts): pod addresses, and the tunnel addresses of the node;
 *  - this node's record under `NODE_PREFIX` (peering.ts: why calico keeps node records beside
 *    membership), from which every agent chooses its BGP peers;
 *  - a workload endpoint per local pod under `ENDPOINT_PREFIX` (endpoints.ts): the policy
 *    component's pod directory (`externalPodDirectory`), beside the Kubernetes NetworkPolicies and
 *    namespaces under `KUBE_PREFIX` that it reads itself;
 *  - BGP: a bgp-utils-free speaker over `ctx.peers` (the agent's name is its transport address;
 *    node records map underlay addresses to names). The node announces its affine blocks as
 *    aggregates and a /32 per local pod whose address is borrowed from another node's block;
 *    learned routes become the plan's remote routes. Full mesh by default; BGPPeer selectors and
 *    `routeReflectorClusterID` give route reflection. Graceful restart as BIRD does it in Calico
 *    (`graceful restart;`, RFC 4724, restart time `RESTART_TIME`): a session that ends without a
 *    NOTIFICATION (an agent restart, a reset) leaves the peer's routes in place as stale until the
 *    peer is back and sends End-of-RIB, or the restart time runs out; a crashed node is withdrawn
 *    then (or when its sessions' hold timers expire), or at once when its Node object is deleted (it
 *    leaves the membership: the peer is de-configured, Cease, its routes flushed). `stop()`
 *    without release is such a restart: it marks the restart in `ctx.local`, and the next agent on
 *    the node restarts its speaker with the Restart State bit (deferring its tables until its
 *    peers' End-of-RIB). `bgpSessions()`
 *    reports the sessions (the contract's optional BGP introspection).
 *
 * The pure plan (plan.ts) takes the kit's plan input and compiles the filters itself from the
 * policy snapshot.
 */
import { AddressInUseError, AgentRuntime, CheckFailedError, ConfigError, Informer, KUBE_PREFIX, TryAgainError, podKey, sameJson } from "@cnikit/core";
import type { AgentContext, AttachResult, BgpSessionStatus, InformerEvent, MembershipEvent, NodeDataplane, PodAttachment, PodRef, TimerHandle, UnderlayInterface } from "@cnikit/core";
import { BgpSpeaker, peerTransportAdapter } from "bgp-utils-free";
import { PolicyComponent, externalPodDirectory, planPolicy } from "@cnikit/netpol";
import type { CalicoConfig } from "./config.ts";
import { ENDPOINT_PREFIX, decodeEndpoint, endpointKey, endpointOf } from "./endpoints.ts";
import { BlockIpam, podHandle, releaseHandle, releaseNodeBlocks, tunnelHandle } from "./ipam.ts";
import { NODE_PREFIX, decodeNode, desiredPeers, nodeKey, nodeLabels, routeReflectorClusterId } from "./peering.ts";
import { LearnedTable, POD_GATEWAY, calicoUnderlay, hostIfName, macFor, planIncremental, usedEncaps, podMtu } from "./plan.ts";
import type { NodeRecord, PodRecord } from "./plan.ts";

/** The store layout other tools read (see peering.ts and endpoints.ts). */
export { ENDPOINT_PREFIX } from "./endpoints.ts";
export { NODE_PREFIX, RR_CLUSTER_ID_ANNOTATION } from "./peering.ts";

/** NetworkPolicies, as every NetworkPolicy backend reads them (`KUBE_PREFIX.networkPolicies`). */
export const POLICY_PREFIX = KUBE_PREFIX.networkPolicies;
/** Namespaces, as every NetworkPolicy backend reads them (`KUBE_PREFIX.namespaces`). */
export const NAMESPACE_PREFIX = KUBE_PREFIX.namespaces;
/**
 * BGP hold time (s). A node that goes silent loses its routes when it expires (the expiry is a
 * NOTIFICATION, which ends graceful restart); a session reset (no NOTIFICATION) keeps them stale
 * until the node is back and sends End-of-RIB, for at most `RESTART_TIME`.
 */
export const HOLD_TIME = 90;
/** Graceful-restart time (s) peers keep a restarting node's routes. */
export const RESTART_TIME = 120;
export const WATCH_RETRY_MS = 1_000;
/** Full re-list of the watched prefixes, repairing anything a watch missed. */
export const RESYNC_MS = 60_000;

const C = "calico";
const LOCAL_PODS = "/pods/";
/** In `ctx.local`: the clock time a previous agent on this node stopped for a restart. */
const LOCAL_RESTART = "/bgp/graceful-restart";

/** The Calico NodeAgent; create it with `calico.createAgent`. */
export class CalicoAgent extends AgentRuntime<CalicoConfig, PodRecord> {
  private readonly config: CalicoConfig;
  private underlay!: UnderlayInterface;
  private ipam!: BlockIpam;
  private self!: NodeRecord;
  private speaker: BgpSpeaker | undefined;
  private speakerStopped: Promise<void> | undefined;
  /** `stop()` without release: the speaker stops for a graceful restart (no NOTIFICATION). */
  private restarting = false;
  /** Every node record, this node's included. */
  private readonly nodes: Informer<NodeRecord>;
  private readonly byAddress = new Map<string, NodeRecord>();
  /**
   * Nodes whose Node object was deleted (they left the membership) while this agent ran: no longer
   * peers, whatever their node record says (see `peerNodes`).
   */
  private readonly departed = new Set<string>();
  /** Routes learned over BGP, with their plan entries kept between plans (one UPDATE costs O(its prefixes)). */
  private readonly learned = new LearnedTable();
  private blocks = new Set<string>();
  /** The peer sync due in this instant of `ctx.clock` (see `onNodes`). */
  private peerSync: TimerHandle | undefined;
  private announced = new Set<string>();
  private readonly policy: PolicyComponent;

  constructor(ctx: AgentContext<CalicoConfig>) {
    // Plans share their unchanged entries with the previous plan (see LearnedTable): compared as objects.
    super(ctx, { component: C, samePlan: sameJson });
    this.config = ctx.config;
    this.nodes = new Informer({
      ...ctx,
      prefix: NODE_PREFIX,
      signal: this.signal,
      decode: decodeNode,
      retryMs: WATCH_RETRY_MS,
      resyncMs: RESYNC_MS,
      onEvent: (ev) => this.onNode(ev),
      onBatch: () => this.onNodes(),
      onError: (err) => this.warn(`watch of ${NODE_PREFIX} failed; re-listing`, err),
    });
    const directory = externalPodDirectory({ prefix: ENDPOINT_PREFIX, decode: decodeEndpoint });
    this.policy = new PolicyComponent({ ...ctx, node: ctx.node.name, directory, component: C, resyncMs: RESYNC_MS, retryMs: WATCH_RETRY_MS });
    this.policy.onChange(() => this.replan());
  }

  /**
   * A node whose Node object is deleted leaves the cluster (Calico's kube-controllers delete its
   * Calico node then, and confd drops the BGP peer): it is no longer a peer, so its session is
   * closed administratively (Cease, peer de-configured) and its routes are withdrawn at once, not
   * held as graceful-restart stale routes — RFC 4724 helper mode is for a session that fails, not
   * for a peer that is de-configured. A node that joins again is a peer again.
   */
  private onMember(ev: MembershipEvent): void {
    const name = ev.node.name;
    if (name === this.ctx.node.name) return;
    const changed = ev.type === "left" ? !this.departed.has(name) : this.departed.has(name);
    if (ev.type === "left") this.departed.add(name);
    else this.departed.delete(name);
    const record = this.nodes.get(nodeKey(name));
    if (changed && record) this.learned.touch(record.address);
    if (changed) this.onNodes();
  }

  /** The node records this node peers with and plans tunnels to: every record but the departed nodes'. */
  private peerNodes(): NodeRecord[] {
    return this.nodes.values().filter((n) => !this.departed.has(n.name));
  }

  /** The BGP speaker (for tests and benchmarks: RIB, session stats). Undefined before start. */
  get bgp(): BgpSpeaker | undefined {
    return this.speaker;
  }

  /**
   * Restores pods from `ctx.local`, allocates tunnel addresses, publishes the node record, starts
   * the BGP speaker, and lists and watches the node records and the policy state. Throws
   * `ConfigError` without an IPv4 underlay or without any IPPool this node may use,
   * `PoolExhaustedError` when a tunnel address cannot be allocated, `TryAgainError` for the store.
   */
  protected async join(signal: AbortSignal): Promise<void> {
    const { ctx } = this;
    const underlay = calicoUnderlay(ctx.node);
    if (!underlay) throw new ConfigError({ component: C, field: "node.underlay", rule: "calico needs an IPv4 underlay address (the BGP router id and next hop)", value: ctx.node.underlay });
    this.underlay = underlay;
    const clusterId = routeReflectorClusterId(this.config, ctx.node);
    const labels = nodeLabels(this.config, ctx.node.name, ctx.node.labels);
    this.ipam = new BlockIpam({ store: ctx.store, node: ctx.node.name, labels, pools: this.config.pools, config: this.config.ipam, random: ctx.random });
    if (this.ipam.usablePools(4).length === 0) {
      throw new ConfigError({ component: C, field: "IPPool", rule: `node ${ctx.node.name} matches no enabled IPv4 IPPool: add one, or fix the pools' nodeSelector` });
    }
    const unsubscribe = ctx.members.onChange((ev) => this.onMember(ev));
    signal.addEventListener("abort", unsubscribe, { once: true });
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
    await ctx.store.put(nodeKey(self.name), JSON.stringify(self));
    this.blocks = new Set(await this.ipam.affineBlocks());
    await this.startSpeaker(signal, clusterId, await this.takeRestartMark());
    await this.nodes.start();
    await this.policy.start(signal);
    for (const pod of this.attachments.values()) await this.publishEndpoint(pod).catch((e: unknown) => this.warn("could not publish an endpoint", e));
  }

  protected override started(): void {
    this.syncPeers();
    this.syncAnnouncements();
    this.ctx.log.info(`[calico] node ${this.self.name} up: ${this.blocks.size} block(s), ${this.attachments.size} pod(s)`);
  }

  /** Whether a previous agent on this node stopped for a restart within the restart time (the mark is consumed). */
  private async takeRestartMark(): Promise<boolean> {
    const mark = await this.ctx.local.get(LOCAL_RESTART);
    if (!mark) return false;
    await this.ctx.local.delete(LOCAL_RESTART);
    const at = Number(mark.value);
    return Number.isFinite(at) && this.ctx.clock.now() - at <= RESTART_TIME * 1000;
  }

  private async startSpeaker(signal: AbortSignal, clusterId: string | undefined, restarted: boolean): Promise<void> {
    const { ctx, self, underlay } = this;
    const speaker = new BgpSpeaker({
      asn: this.config.nodes.find((n) => n.name === self.name)?.asNumber ?? this.config.bgp.asNumber,
      routerId: underlay.address,
      localAddress: underlay.address,
      transport: peerTransportAdapter(ctx.peers, {
        nameOf: (a) => this.byAddress.get(a)?.name ?? a,
        addressOf: (n) => (n === self.name ? underlay.address : (this.nodes.get(nodeKey(n))?.address ?? n)),
        localAddress: underlay.address,
      }),
      families: ["ipv4-unicast"],
      holdTime: HOLD_TIME,
      connectRetryTime: 5,
      idleHoldTime: 1,
      // The dataplane outlives the agent, so peers keep this node's routes while it restarts.
      gracefulRestart: { restartTime: RESTART_TIME, preserveForwarding: true, restarting: restarted },
      clock: ctx.clock,
      random: ctx.random,
      ...(clusterId !== undefined ? { clusterId } : {}),
      onListenerError: (e) => this.warn("BGP listener failed", e),
    });
    // A burst of UPDATEs (a cold start delivers one per peer) costs one plan per instant, not one
    // per route: at 500 nodes that was ~N² plans.
    speaker.onRouteChange((e) => {
      const r = e.route;
      if (!r || r.source.kind !== "peer") this.learned.delete(e.prefix);
      else this.learned.set({ prefix: e.prefix, nextHop: r.attributes.nextHop });
      this.replan({ defer: true });
    });
    this.speaker = speaker;
    signal.addEventListener("abort", () => void this.stopSpeaker(), { once: true });
    await speaker.start();
    if (signal.aborted) await this.stopSpeaker();
  }

  /**
   * Stops the speaker once; never throws. For a restart (`stop()` without release) without a
   * NOTIFICATION, so peers keep this node's routes; otherwise with Cease (peers withdraw them).
   */
  private stopSpeaker(): Promise<void> {
    if (!this.speaker) return Promise.resolve();
    this.speakerStopped ??= this.speaker.stop({ graceful: this.restarting }).catch((e: unknown) => this.warn("BGP stop failed", e));
    return this.speakerStopped;
  }

  /** The BGP sessions (`NodeAgent.bgpSessions`): one per configured peer, named by node. */
  bgpSessions(): BgpSessionStatus[] {
    if (!this.speaker) return [];
    return this.speaker
      .peerStatus()
      .map((p) => {
        const s: BgpSessionStatus = {
          peer: this.byAddress.get(p.address)?.name ?? p.address,
          address: p.address,
          state: p.state,
          gracefulRestart: p.negotiated?.gracefulRestart === true,
          staleRoutes: p.staleRoutes,
          routesReceived: p.prefixesReceived,
        };
        if (p.establishedAt !== undefined) s.establishedAt = p.establishedAt;
        if (p.endOfRibReceivedAt !== undefined) s.endOfRibReceivedAt = p.endOfRibReceivedAt;
        return s;
      })
      .sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  }

  private async restorePods(): Promise<void> {
    for (const kv of (await this.ctx.local.list(LOCAL_PODS)).items) {
      try {
        this.restore(JSON.parse(kv.value) as PodRecord);
      } catch {
        await this.ctx.local.delete(kv.key);
      }
    }
  }

  private onNode(ev: InformerEvent<NodeRecord>): void {
    if (ev.type !== "add") {
      this.byAddress.delete(ev.prev.address);
      this.learned.touch(ev.prev.address);
    }
    if (ev.type !== "delete") {
      this.byAddress.set(ev.value.address, ev.value);
      this.learned.touch(ev.value.address);
    }
  }

  /**
   * Node records changed: the BGP peers are chosen again once per instant of `ctx.clock` (a 0 ms
   * timer), not once per record — a cold start hands every agent one watch event per node, and
   * choosing the peers is O(N) (`desiredPeers`), which was O(N²) per agent, O(N³) for the cluster.
   */
  private onNodes(): void {
    if (this.phase !== "running") return;
    this.peerSync ??= this.after(0, () => {
      this.peerSync = undefined;
      this.syncPeers();
    });
    this.replan({ defer: true });
  }

  private syncPeers(): void {
    const speaker = this.speaker;
    if (!speaker) return;
    const want = desiredPeers(this.config, this.self, this.peerNodes());
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
    for (const p of this.attachments.values()) {
      if (![...this.blocks].some((b) => prefixContains(b, `${p.address}/32`)) && exportable(`${p.address}/32`)) want.add(`${p.address}/32`);
    }
    const add = [...want].filter((p) => !this.announced.has(p));
    const del = [...this.announced].filter((p) => !want.has(p));
    if (del.length > 0) speaker.withdraw(del);
    if (add.length > 0) speaker.announce(add);
    this.announced = want;
  }

  private async publishEndpoint(pod: PodRecord): Promise<void> {
    await this.ctx.store.put(endpointKey(this.ctx.node.name, pod), JSON.stringify(endpointOf(this.ctx.node.name, pod)));
  }

  /**
   * Stops as the kit does (informers, timers, the policy component) and the BGP speaker with it.
   * Without release it is a restart: marked in `ctx.local` for the next agent, and the speaker ends
   * its sessions gracefully (peers keep this node's routes for `RESTART_TIME`).
   */
  override async stop(options: { release?: boolean } = {}): Promise<void> {
    if (!options.release && this.speaker && !this.speakerStopped && this.phase === "running") {
      this.restarting = true;
      await this.ctx.local.put(LOCAL_RESTART, String(this.ctx.clock.now())).catch((e: unknown) => this.warn("could not mark the restart in ctx.local", e));
    }
    await super.stop(options);
    await this.stopSpeaker();
  }

  /**
   * `stop({release: true})`: releases this node's pod and tunnel addresses and blocks and deletes
   * its endpoints and node record (after the speaker stopped).
   */
  protected override async releaseShare(): Promise<void> {
    await this.stopSpeaker();
    const { store, local, node } = this.ctx;
    try {
      for (const pod of this.attachments.values()) {
        await releaseHandle(store, pod.handle);
        await store.delete(endpointKey(node.name, pod));
        await local.delete(`${LOCAL_PODS}${podKey(pod)}`);
      }
      this.attachments.clear();
      await releaseHandle(store, tunnelHandle("ipip", node.name));
      await releaseHandle(store, tunnelHandle("vxlan", node.name));
      await releaseNodeBlocks(store, node.name);
      await store.delete(nodeKey(node.name));
    } catch (err) {
      this.warn("could not release everything on leave; `gcIpam` reclaims the rest", err);
    }
  }

  protected result(pod: PodRecord): AttachResult {
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
   * CNI ADD's reservation: an address by block IPAM (handle `k8s-pod-network.<containerId>`), the
   * pod recorded in `ctx.local` and its endpoint published; a newly claimed block is read back.
   * Throws `ConfigError` for more than one requested address, `PoolExhaustedError`,
   * `AddressInUseError`, `TryAgainError` (then nothing stays reserved).
   */
  protected async reserve(pod: PodAttachment): Promise<PodRecord> {
    const key = podKey(pod);
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
    if (!this.blocks.has(alloc.block) && !alloc.borrowed) {
      const affine = await this.ipam.affineBlocks().catch((err: unknown) => (this.warn("could not re-read this node's blocks", err), [...this.blocks, alloc.block]));
      this.blocks = new Set(affine);
    }
    return rec;
  }

  /** A new pod is announced when its address is borrowed, its block when it is new. */
  protected override attached(): void {
    this.syncAnnouncements();
  }

  protected override detached(): void {
    this.syncAnnouncements();
  }

  /**
   * CNI DEL: releases the handle (one store transaction), unpublishes the endpoint and forgets the
   * pod in `ctx.local`. Idempotent. Throws `TryAgainError` when the release could not be recorded.
   */
  protected async unreserve(ref: PodRef): Promise<void> {
    try {
      await releaseHandle(this.ctx.store, podHandle(ref.containerId, ref.ifName));
      await this.ctx.store.delete(endpointKey(this.ctx.node.name, ref));
      await this.ctx.local.delete(`${LOCAL_PODS}${podKey(ref)}`);
    } catch (err) {
      throw err instanceof TryAgainError ? err : new TryAgainError(`[calico] could not record the release of ${podKey(ref)}; try again`, { cause: err });
    }
  }

  /** CHECK: the pod's handle holds its address in IPAM, and the dataplane has its host route. */
  protected override async verify(rec: PodRecord, dp: NodeDataplane): Promise<void> {
    const h = await this.ctx.store.get(`/calico/ipam/v2/handle/${rec.handle}`);
    if (!h || (JSON.parse(h.value) as { address?: string }).address !== rec.address) throw new CheckFailedError(`[calico] handle ${rec.handle} does not hold ${rec.address} in IPAM`);
    if (!dp.routes.some((r) => r.dst === `${rec.address}/32` && r.dev === hostIfName(rec))) throw new CheckFailedError(`[calico] no host route ${rec.address}/32 dev ${hostIfName(rec)}`);
  }

  protected plan(): NodeDataplane {
    const node = this.ctx.node.name;
    // The VXLAN end points are looked up by address among the peer nodes (`peerNodes`: not departed).
    const peerAt = (address: string): NodeRecord | undefined => {
      const n = this.byAddress.get(address);
      return n && !this.departed.has(n.name) ? n : undefined;
    };
    return planIncremental(
      {
        config: this.config,
        node: this.ctx.node,
        pods: [...this.attachments.values()],
        peers: [],
        policy: planPolicy<PodRecord>(this.policy.snapshot(), (pod) => endpointOf(node, pod)),
        blocks: [...this.blocks],
        ...(this.self.ipipTunnelAddr ? { ipipTunnelAddr: this.self.ipipTunnelAddr } : {}),
        ...(this.self.vxlanTunnelAddr ? { vxlanTunnelAddr: this.self.vxlanTunnelAddr } : {}),
        ...(this.self.vxlanMac ? { vxlanMac: this.self.vxlanMac } : {}),
      },
      this.learned,
      peerAt,
    );
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
