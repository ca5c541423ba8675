/**
 * Weave's agent, on the kit's `AgentRuntime` (phases, STATUS, ADD/DEL/CHECK/GC, publishing the
 * plan). What is its own:
 *
 *  - the mesh (src/mesh): peers from `ctx.members`, connections over `ctx.peers`, topology gossip;
 *    no datastore holds any of Weave's network state;
 *  - the IPAM ring (src/ipam) on the mesh's "IPallocation" channel: the node's share of the range
 *    by consensus or donation, pod addresses first-fit inside it, all persisted in `ctx.local`;
 *  - the node's own address on the pod network (Weave's "expose"), the first thing it allocates:
 *    the bridge's address and the pods' gateway. ADDs wait for it (a lone node gets it at once; in
 *    a new cluster, when the consensus quorum talks);
 *  - the datapath of each established connection: fastdp when both ends offer it and the
 *    connection is not encrypted, else the sleeve — reported per peer in STATUS, re-decided on
 *    every connection change (never stuck);
 *  - NetworkPolicy from @cnikit/netpol's `PolicyComponent`. The store is used only as the
 *    Kubernetes API is by weave-npc: policies, namespaces and the pods' addresses (the pod
 *    directory, attached to a store lease of this agent's so a dead node's pods leave it).
 *
 * Membership drives reclaim: a node removed from the cluster (or replaced: a new peer name under
 * the same node name) hands its peer names to `ring.peersGone`, which reclaims their space with a
 * quorum, so exactly one survivor takes it.
 */
import { AgentRuntime, ConfigError, LocalPodRecords, TryAgainError, podKey, podMac, vethName } from "@cnikit/core";
import type { AgentContext, AttachResult, MembershipEvent, NodeDataplane, PodAttachment, PodRef, TimerHandle } from "@cnikit/core";
import { PolicyComponent, directoryPodOf, planPolicy, podDirectoryPrefix, publishedPodDirectory } from "@cnikit/netpol";
import { WEAVE } from "./config.ts";
import type { WeaveConfig } from "./config.ts";
import { IpamAllocator } from "./ipam/allocator.ts";
import type { IpallocInit } from "./ipam/allocator.ts";
import { Mesh } from "./mesh/mesh.ts";
import type { MeshConnection } from "./mesh/mesh.ts";
import { BRIDGE, bridgeMac, encrypted, ipv4Underlay, plan, podMtu, preferredDatapath } from "./plan.ts";
import type { Datapath, WeavePeer, WeavePod } from "./plan.ts";

/** The ring key of the node's own address on the pod network. */
export const BRIDGE_KEY = "weave:expose";
/** The mesh channel the ring rides on (Weave's name). */
export const IPAM_CHANNEL = "IPallocation";
/** The lease the pod directory hangs on (seconds), renewed every third of it. */
export const DIRECTORY_TTL_SECONDS = 30;
/** How long an ADD waits for the node's own address on the pod network before code 11. */
export const BRIDGE_WAIT_MS = 30_000;
/** Retry period for the bridge address while the ring cannot give one. */
export const EXPOSE_RETRY_MS = 1_000;

export class WeaveAgent extends AgentRuntime<WeaveConfig, WeavePod> {
  private mesh: Mesh | undefined;
  private ring: IpamAllocator | undefined;
  private bridgeAddress: string | undefined;
  private bridgeWaiters: (() => void)[] = [];
  private readonly policy: PolicyComponent;
  private readonly records: LocalPodRecords<WeavePod>;
  /** Peer names seen per node name (a node's peer name changes when it is replaced with fresh state). */
  private readonly peerNamesOf = new Map<string, Set<string>>();

  constructor(ctx: AgentContext<WeaveConfig>) {
    super(ctx, { component: WEAVE, minReplanIntervalMs: 0 });
    this.records = new LocalPodRecords<WeavePod>({ ...ctx, component: WEAVE, decode: (v) => (typeof (v as WeavePod | null)?.address === "string" ? (v as WeavePod) : undefined) });
    this.policy = new PolicyComponent({ ...ctx, node: ctx.node.name, directory: publishedPodDirectory(podDirectoryPrefix(WEAVE)), component: WEAVE, ownLease: { ttlSeconds: DIRECTORY_TTL_SECONDS } });
    this.policy.onChange(() => this.replan());
  }

  protected async join(signal: AbortSignal): Promise<void> {
    const { ctx } = this;
    ipv4Underlay(ctx.node);
    podMtu(ctx.config, ctx.node);
    const mesh = new Mesh({
      nodeName: ctx.node.name,
      transport: ctx.peers,
      members: ctx.members,
      clock: ctx.clock,
      log: ctx.log,
      random: ctx.random,
      local: ctx.local,
      password: ctx.config.password,
      // CONN_LIMIT 0 is Weave's "unlimited"; the mesh takes a bound.
      connLimit: ctx.config.connLimit === 0 ? Number.MAX_SAFE_INTEGER : ctx.config.connLimit,
      trustedSubnets: ctx.config.trustedSubnets,
      features: { fastdp: preferredDatapath(ctx.config) === "fastdp" ? "1" : "0" },
    });
    this.mesh = mesh;
    signal.addEventListener("abort", () => void mesh.stop(), { once: true });
    await mesh.start();
    const ring = new IpamAllocator({
      range: ctx.config.ipallocRange,
      self: mesh.self.name,
      nickname: ctx.node.name,
      init: initOf(ctx.config.init, ctx.members.list().length),
      clock: ctx.clock,
      log: ctx.log,
      random: ctx.random,
      local: ctx.local,
      knownPeers: () => mesh.peerNames(),
    });
    this.ring = ring;
    ring.attach(mesh.channel(IPAM_CHANNEL, ring));
    await ring.start();
    signal.addEventListener("abort", () => ring.stop(), { once: true });
    // Pods recorded before a restart keep their addresses: the ring holds them (unverified until it
    // merged a peer's ring; then each is kept or claimed from its owner — refused ones are reported
    // in the ring's status, never served twice).
    const held = ring.allocations({ includeUnverified: true });
    for (const pod of await this.records.load()) {
      if (held.get(podKey(pod)) !== pod.address) {
        ctx.log.warn(`[${WEAVE}] dropping ${podKey(pod)}: the ring has no record of ${pod.address} for it`);
        await this.records.remove(pod);
        continue;
      }
      this.restore(pod);
      this.attached(pod);
    }
    const bridge = held.get(BRIDGE_KEY);
    if (bridge !== undefined) this.bridgeAddress = bridge;
    const offMesh = mesh.onChange(() => this.onMeshChange());
    const offMembers = ctx.members.onChange((event) => this.onMember(event));
    signal.addEventListener("abort", () => (offMesh(), offMembers()), { once: true });
    await this.policy.start(signal);
  }

  protected override started(): void {
    if (this.bridgeAddress === undefined) void this.expose();
  }

  /** Takes the node's own address on the pod network, retrying while the ring cannot give one. */
  private async expose(): Promise<void> {
    while (this.phase === "running" && this.bridgeAddress === undefined) {
      try {
        const fixed = this.ctx.config.exposeIp;
        this.bridgeAddress = await this.ring!.allocate(BRIDGE_KEY, { ...(fixed !== undefined && { address: fixed }), signal: this.signal });
        for (const wake of this.bridgeWaiters.splice(0)) wake();
        this.replan();
        return;
      } catch (err) {
        if (this.signal.aborted) return;
        this.ctx.log.warn(`[${WEAVE}] node ${this.ctx.node.name} has no address on the pod network yet: ${err instanceof Error ? err.message : String(err)}`);
        await this.ctx.clock.sleep(EXPOSE_RETRY_MS, this.signal).catch(() => undefined);
      }
    }
  }

  private onMeshChange(): void {
    const peers = this.mesh!.peers();
    const current = new Set(peers.map((p) => p.identity.name));
    // A node whose peer name changed was replaced with fresh state: its old peer is gone for good.
    const gone: string[] = [];
    for (const p of peers) {
      let names = this.peerNamesOf.get(p.node);
      if (!names) this.peerNamesOf.set(p.node, (names = new Set()));
      names.add(p.identity.name);
      if (names.size === 1) continue;
      for (const name of names) {
        if (!current.has(name)) {
          gone.push(name);
          names.delete(name);
        }
      }
    }
    if (gone.length > 0) this.ring?.peersGone(gone);
    this.replan();
  }

  private onMember(event: MembershipEvent): void {
    if (event.type === "left" && event.node.name !== this.ctx.node.name) {
      const names = [...(this.peerNamesOf.get(event.node.name) ?? [])];
      this.peerNamesOf.delete(event.node.name);
      if (names.length > 0) this.ring?.peersGone(names);
    }
    this.replan();
  }

  protected override async releaseShare(): Promise<void> {
    await this.policy.stop();
    await this.policy.revokeOwnLease();
  }

  /**
   * Resolves once the node has its address on the pod network; TryAgainError (11) naming the ring's
   * state after `BRIDGE_WAIT_MS` (a cluster still awaiting consensus must not hang an ADD) or when
   * the agent stops first.
   */
  private async bridgeReady(signal: AbortSignal): Promise<string> {
    if (this.bridgeAddress !== undefined) return this.bridgeAddress;
    let timer: TimerHandle | undefined;
    const woken = await new Promise<boolean>((resolve) => {
      this.bridgeWaiters.push(() => resolve(true));
      signal.addEventListener("abort", () => resolve(false), { once: true });
      timer = this.ctx.clock.setTimeout(() => resolve(false), BRIDGE_WAIT_MS);
    });
    timer?.cancel();
    if (woken && this.bridgeAddress !== undefined) return this.bridgeAddress;
    if (signal.aborted || this.phase !== "running") throw new TryAgainError(`[${WEAVE}] node ${this.ctx.node.name} is stopping; try again`);
    throw new TryAgainError(`[${WEAVE}] node ${this.ctx.node.name} has no address on the pod network yet (IPAM: ${this.ring?.status().join("; ") ?? "not started"}); try again`);
  }

  protected async reserve(attachment: PodAttachment): Promise<WeavePod> {
    const [wanted, ...more] = attachment.requestedIps ?? [];
    if (more.length > 0) throw new ConfigError({ component: WEAVE, field: "requestedIps", rule: "at most one address (Weave Net is IPv4 only)", value: attachment.requestedIps });
    await this.bridgeReady(this.signal);
    const key = podKey(attachment);
    const address = await this.ring!.allocate(key, { ...(wanted !== undefined && { address: wanted }), signal: this.signal });
    const pod: WeavePod = { ...attachment, address };
    try {
      await this.records.put(pod, address);
    } catch (err) {
      await this.ring!.release(key);
      throw err;
    }
    return pod;
  }

  protected async unreserve(ref: PodRef): Promise<void> {
    await this.records.remove(ref);
    await this.ring?.release(podKey(ref));
  }

  protected override persistedRefs(): Promise<PodRef[]> {
    return this.records.refs();
  }

  protected override attached(pod: WeavePod): void {
    this.policy.podAdded({ ...pod, ips: [pod.address], hostIf: vethName(pod) });
  }

  protected override detached(_key: string, pod: WeavePod): void {
    this.policy.podRemoved(pod);
  }

  protected result(pod: WeavePod): AttachResult {
    const mtu = podMtu(this.ctx.config, this.ctx.node);
    const gateway = this.bridgeAddress!;
    const length = this.ctx.config.defaultSubnet.split("/")[1]!;
    return {
      interfaces: [
        { name: BRIDGE, mac: bridgeMac(this.ctx.node.name), mtu },
        { name: vethName(pod), mtu },
        { name: pod.ifName, mac: podMac(pod.address), mtu, sandbox: pod.netns },
      ],
      ips: [{ address: `${pod.address}/${length}`, gateway, interface: 2 }],
      routes: [{ dst: "0.0.0.0/0", gw: gateway }],
    };
  }

  /** The datapath of one established connection: fastdp when both ends offer it (and it is not encrypted), else the sleeve. */
  private datapathOf(c: MeshConnection): Datapath {
    return preferredDatapath(this.ctx.config) === "fastdp" && !c.encrypted && c.features["fastdp"] === "1" ? "fastdp" : "sleeve";
  }

  /** Peers = this node's established connections, joined with membership for the underlay address. */
  protected plan(): NodeDataplane {
    const peers: WeavePeer[] = [];
    for (const c of this.mesh?.connections() ?? []) {
      if (!c.established) continue;
      const address = this.ctx.members.get(c.node)?.underlay.find((u) => !u.address.includes(":"))?.address;
      if (address !== undefined) peers.push({ node: c.node, address, datapath: this.datapathOf(c) });
    }
    const me = this.ctx.node.name;
    const policy = planPolicy<WeavePod>(this.policy.snapshot(), (pod) => directoryPodOf(me, { ...pod, ips: [pod.address], hostIf: vethName(pod) }));
    return plan({ config: this.ctx.config, node: this.ctx.node, pods: [...this.attachments.values()], peers, policy, bridgeAddress: this.bridgeAddress });
  }

  /** STATUS: the runtime's, made unready while the node has no address on the pod network. */
  override status(): ReturnType<AgentRuntime<WeaveConfig, WeavePod>["status"]> {
    const base = super.status();
    if (!base.ready || this.bridgeAddress !== undefined) return base;
    const ring = this.ring?.status().join("; ") ?? "not started";
    return { ready: false, code: 50, reason: `[${WEAVE}] node ${this.ctx.node.name} has no address on the pod network yet (IPAM: ${ring})` };
  }

  /** The mesh's sent messages and bytes per kind (benchmarks, STATUS); undefined before start. */
  gossipCounters(): ReturnType<Mesh["gossipCounters"]> | undefined {
    return this.mesh?.gossipCounters();
  }

  /** Lines for people: mesh connections (datapath per peer, encryption, reasons) and the ring. */
  report(): string[] {
    const lines = [...(this.mesh?.status() ?? []), ...(this.ring?.status() ?? [])];
    for (const c of this.mesh?.connections() ?? []) {
      if (c.established)
        lines.push(
          `datapath to ${c.node}: ${this.datapathOf(c)}${c.encrypted ? " (encrypted)" : ""}${this.datapathOf(c) !== preferredDatapath(this.ctx.config) ? ` — fell back from ${preferredDatapath(this.ctx.config)}: ${c.features["fastdp"] === "1" ? "encrypted" : `${c.node} does not offer fastdp`}` : ""}`,
        );
    }
    if (encrypted(this.ctx.config)) lines.push("encryption: on (X25519 + password → ChaCha20-Poly1305); encrypted traffic takes the sleeve: this kernel has no xfrm for fastdp's ESP");
    return lines;
  }
}

/**
 * IPALLOC_INIT as the ring takes it. Consensus without N follows membership, as Weave's Kubernetes
 * launcher does (consensus=<nodes listed>): the members at start are the peer set, quorum N/2 + 1,
 * so nodes starting together never seed one ring each; a lone first node forms its ring at once.
 */
export function initOf(init: WeaveConfig["init"], members: number): IpallocInit {
  if (init.mode !== "consensus") return init;
  if (init.quorum !== undefined) return { mode: "consensus", quorum: init.quorum };
  const n = init.peerCount ?? Math.max(1, members);
  return { mode: "consensus", quorum: Math.floor(n / 2) + 1 };
}

/** The node's agent. Does no I/O until `start()`. */
export function createWeaveAgent(ctx: AgentContext<WeaveConfig>): WeaveAgent {
  return new WeaveAgent(ctx);
}
