/**
 * The Azure-like node agent (Azure's CNS, the node's IPAM daemon, on core's agent kit). What is
 * its own:
 *
 *  - Its pool is what the cluster controller gave the node: classic — the node's fabric secondary
 *    addresses, read from its own member record (the contract's rule: what the fabric gave comes
 *    through membership); dynamic — the `assignedIPs` of its NodeNetworkConfig status; static-block
 *    and overlay — every address of the status's blocks (overlay /24: less network and broadcast).
 *    `NodeIpState` (ipstate.ts) tracks each address: PendingProgramming → Available → Assigned →
 *    (PendingRelease). An address becomes Available once the node's desired dataplane has been
 *    computed with it (dynamic: its `unreachable` /32 is in the plan, so a packet for it never
 *    loops between the node and the fabric), and the node then reports `programmedVersion`.
 *  - Dynamic: the node writes its NodeNetworkConfig spec — requestedIPCount from its demand (pods
 *    in use plus ADDs waiting) in one step (`nodeTarget`, pool.ts: B × ceil(mf + U/B)), and
 *    ipsNotInUse for idle addresses it gives back — whenever demand or status changes, and every
 *    `SPEC_RESYNC_MS` (Azure's v1 monitor ticks every second: `poolMonitor: v1` does too).
 *  - An ADD takes an Available address at once (no global lock: allocation is synchronous over the
 *    in-memory state, only the node-local record is awaited, concurrently per attachment). With
 *    none Available it waits (at most `ADD_WAIT_MS`) while the pool can still grow — its wait is
 *    part of the demand the spec asks for — instead of failing "No available addresses" while the
 *    subnet has room.
 *  - STATUS 50 until the pool is ready (the controller has answered and an address is Available or
 *    on its way), with the reason; a refused join (the classic sizing refusal) fails `start()` with
 *    `PoolExhaustedError` carrying AKS's text, and the node allocates nothing.
 *  - NetworkPolicy through @cnikit/netpol's `PolicyComponent` (pods published under its own lease).
 */
import {
  AddressInUseError,
  AgentRuntime,
  attachmentRecord,
  CheckFailedError,
  ConfigError,
  Informer,
  LocalPodRecords,
  PoolExhaustedError,
  Prefix,
  ROUTED_POD_GATEWAY,
  TryAgainError,
  podKey,
  podMac,
} from "@cnikit/core";
import type { AgentContext, AgentStatus, AttachResult, FilterPolicy, NodeDataplane, PodAttachment, PodRef, TimerHandle, UnderlayInterface } from "@cnikit/core";
import { PolicyComponent, directoryPodOf, planPolicy, podDirectoryPrefix, publishedPodDirectory } from "@cnikit/netpol";
import { AZURE } from "./config.ts";
import type { AzureConfig } from "./config.ts";
import { NodeIpState } from "./ipstate.ts";
import { nodeTarget } from "./pool.ts";
import { azureUnderlay, hostIfName, planDataplane, podMtu, underlaySubnet } from "./plan.ts";
import type { PodRecord } from "./plan.ts";
import { decodeNncStatus, encodeNncSpec, nncSpecKey, nncStatusKey } from "./records.ts";
import type { NncSpec, NncStatus } from "./records.ts";

/** How long `start()` waits for the controller's first NodeNetworkConfig status. */
export const CONTROLLER_WAIT_MS = 30_000;
/** How long an ADD waits for an address while the pool can still grow. */
export const ADD_WAIT_MS = 30_000;
/** Re-evaluation of the spec even without a change (Azure v2 reconciles at least every 60 s). */
export const SPEC_RESYNC_MS = 60_000;
/** Azure's v1 pool monitor tick. */
export const V1_TICK_MS = 1_000;
/** Re-list period of the status informer. */
export const RESYNC_MS = 30_000;
/** Lease of the published pod directory. */
export const DIRECTORY_TTL_SECONDS = 30;

/** A pod record read back from `ctx.local`, or undefined when it is not one. */
function decodePodRecord(value: unknown): PodRecord | undefined {
  const r = value as Partial<PodRecord> | null;
  if (r === null || typeof r !== "object" || typeof r.containerId !== "string" || typeof r.ifName !== "string" || typeof r.netns !== "string" || typeof r.address !== "string") return undefined;
  try {
    Prefix.host(r.address);
  } catch {
    return undefined;
  }
  return r as PodRecord;
}

/** Every address of a block a pod may take: overlay /24 less network and broadcast; a /28 whole. */
export function blockAddresses(block: string, mode: AzureConfig["mode"]): string[] {
  const p = Prefix.parse(block);
  const out: string[] = [];
  const first = mode === "overlay" ? 1 : 0;
  const last = mode === "overlay" ? p.size - 2n : p.size - 1n;
  for (let i = BigInt(first); i <= last; i++) out.push(p.nth(i));
  return out;
}

export class AzureAgent extends AgentRuntime<AzureConfig, PodRecord> {
  private readonly config: AzureConfig;
  private readonly ips = new NodeIpState();
  private readonly statusInformer: Informer<NncStatus>;
  private readonly policy: PolicyComponent;
  private filters: FilterPolicy[] = [];
  /** The latest status of this node's NodeNetworkConfig. */
  private nnc: NncStatus | undefined;
  /** Version of the pool last given to `ips` (classic: counted locally, as the member record changes). */
  private poolVersion = 0;
  private pool: string[] = [];
  private poolKey = "";
  /** The highest pool version a computed plan included (reported in the spec). */
  private programmedVersion = 0;
  /** The node subnets of the other members (the VNet as the cluster knows it: NAT exceptions). */
  private memberSubnets: string[] = [];
  /** ADDs waiting for an address. */
  private waiting = 0;
  /** ADDs waiting for an address: woken true by programming, false by the stop (one abort listener for all). */
  private readonly wakers = new Set<(woken: boolean) => void>();
  private readonly statusWaiters = new Set<() => void>();
  /** The spec last written (dynamic), and the write chain. */
  private spec: NncSpec | undefined;
  private specWrites: Promise<void> = Promise.resolve();
  private specDirty = false;
  private specFlush: TimerHandle | undefined;
  private readonly records: LocalPodRecords<PodRecord>;

  constructor(ctx: AgentContext<AzureConfig>) {
    super(ctx, { component: AZURE });
    this.config = ctx.config;
    const me = ctx.node.name;
    this.records = new LocalPodRecords<PodRecord>({ ...ctx, component: AZURE, decode: decodePodRecord });
    this.statusInformer = new Informer<NncStatus>({
      ...ctx,
      prefix: nncStatusKey(me),
      signal: this.signal,
      decode: (kv) => (kv.key === nncStatusKey(me) ? decodeNncStatus(kv.value) : undefined),
      resyncMs: RESYNC_MS,
      onBatch: () => this.onStatus(),
      onError: (err) => this.warn("watching the NodeNetworkConfig status failed; re-listing", err),
    });
    this.policy = new PolicyComponent({ ...ctx, node: me, directory: publishedPodDirectory(podDirectoryPrefix(AZURE)), component: AZURE, ownLease: { ttlSeconds: DIRECTORY_TTL_SECONDS } });
    this.policy.onChange(() => this.replan());
    this.signal.addEventListener(
      "abort",
      () => {
        for (const wake of [...this.wakers]) wake(false);
      },
      { once: true },
    );
  }

  private get underlay(): UnderlayInterface | undefined {
    return azureUnderlay(this.ctx.node);
  }

  /**
   * Checks the node against the config, restores pods from `ctx.local`, follows the status and the
   * membership, asks for addresses (dynamic) and waits for the controller's answer. Throws
   * `ConfigError` (no IPv4 underlay, MTU above it, node outside `vnetSubnet`), `PoolExhaustedError`
   * (the controller refused the join: AKS's sizing text), `TryAgainError` (no answer in time).
   */
  protected async join(signal: AbortSignal): Promise<void> {
    const { ctx, config } = this;
    const underlay = this.underlay;
    if (!underlay) throw new ConfigError({ component: AZURE, field: "node.underlay", rule: "the azure backend needs an IPv4 underlay interface", value: ctx.node.underlay });
    const underlayMtu = underlay.mtu ?? 1500;
    if (config.mtu !== undefined && config.mtu > underlayMtu) {
      throw new ConfigError({
        component: AZURE,
        field: "mtu",
        rule: `must not exceed the underlay MTU ${underlayMtu} of ${underlay.iface} on node ${ctx.node.name} (pods are routed on the underlay, no encapsulation)`,
        value: config.mtu,
      });
    }
    if (config.vnetSubnet !== undefined && !Prefix.parse(config.vnetSubnet).contains(underlay.address)) {
      throw new ConfigError({ component: AZURE, field: "vnetSubnet", rule: `must hold every node's address; node ${ctx.node.name} is at ${underlay.address}`, value: config.vnetSubnet });
    }
    await this.restorePods();
    const offMembers = ctx.members.onChange(() => this.onMembers());
    signal.addEventListener("abort", () => offMembers(), { once: true });
    this.onMembers();
    await this.statusInformer.start();
    this.flushSpec();
    await this.awaitAnswer(signal);
    this.onStatus();
    await this.policy.start(signal);
    const pool = this.ips.counts();
    ctx.log.info(`[${AZURE}] node ${ctx.node.name} joined (${config.mode})`, { pods: this.attachments.size, ...pool });
  }

  protected override started(): void {
    if (this.config.mode !== "dynamic") return;
    this.every(this.config.poolMonitor === "v1" ? V1_TICK_MS : SPEC_RESYNC_MS, () => this.flushSpec({ tick: true }));
  }

  /** Waits for the controller's first status; a refusal (Error with nothing assigned) is thrown. */
  private async awaitAnswer(signal: AbortSignal): Promise<void> {
    let timer: TimerHandle | undefined;
    if (this.nncNow() === undefined) {
      await new Promise<void>((resolve) => {
        const done = (): void => (this.statusWaiters.delete(done), resolve());
        this.statusWaiters.add(done);
        signal.addEventListener("abort", done, { once: true });
        timer = this.ctx.clock.setTimeout(done, CONTROLLER_WAIT_MS);
      });
      timer?.cancel();
    }
    const nnc = this.nncNow();
    if (signal.aborted) throw new TryAgainError(`[${AZURE}] node ${this.ctx.node.name} stopped while joining`);
    if (nnc === undefined) {
      throw new TryAgainError(`[${AZURE}] node ${this.ctx.node.name}: no NodeNetworkConfig status from the controller within ${CONTROLLER_WAIT_MS / 1000} s (is the azure controller running?)`);
    }
    if (nnc.state === "Error" && nnc.assignedIPs.length === 0 && nnc.blocks.length === 0) {
      throw new PoolExhaustedError(nnc.subnet, `[${AZURE}] node ${this.ctx.node.name} was refused: ${nnc.reason ?? "the controller reported an error"}`);
    }
  }

  private nncNow(): NncStatus | undefined {
    return this.statusInformer.get(nncStatusKey(this.ctx.node.name));
  }

  /** Rebuilds the pod records from `ctx.local`; the pool confirms them when the status arrives. */
  private async restorePods(): Promise<void> {
    for (const record of await this.records.load()) {
      this.ips.restore(podKey(record), record.address);
      this.restore(record);
      this.attached(record);
    }
  }

  /** The pool as the controller (classic: the fabric, through membership) gives it now. */
  private poolNow(): string[] {
    const nnc = this.nnc;
    switch (this.config.mode) {
      case "classic":
        return [...(this.ctx.members.get(this.ctx.node.name)?.underlay.find((u) => !u.address.includes(":"))?.secondaryAddresses ?? [])];
      case "dynamic":
        return nnc ? [...nnc.assignedIPs] : [];
      case "static-block":
      case "overlay":
        return nnc ? nnc.blocks.flatMap((b) => blockAddresses(b, this.config.mode)) : [];
    }
  }

  /** Gives the current pool to the address states; a changed pool is a new version to program. */
  private applyPool(): void {
    const pool = this.poolNow().sort();
    const key = pool.join(",");
    if (key === this.poolKey && this.poolVersion > 0) return;
    this.poolKey = key;
    this.pool = pool;
    const version = this.config.mode === "dynamic" && this.nnc ? Math.max(this.nnc.version, this.poolVersion + 1) : this.poolVersion + 1;
    this.poolVersion = version;
    const { revoked } = this.ips.applyStatus(pool, version);
    for (const r of revoked) {
      this.setImpaired(`address ${r.address} of pod ${r.podKey} was taken back by the controller while in use; restart the pod`);
      this.ctx.log.warn(`[${AZURE}] node ${this.ctx.node.name}: ${r.address} of ${r.podKey} left the node's pool while in use`);
    }
    this.replan();
  }

  private onStatus(): void {
    const nnc = this.nncNow();
    this.nnc = nnc;
    for (const w of [...this.statusWaiters]) w();
    if (nnc === undefined || this.phase === "stopped") return;
    this.applyPool();
    if (this.config.mode === "dynamic") this.writeSpec();
  }

  private onMembers(): void {
    const me = this.ctx.node.name;
    const subnets = new Set<string>();
    for (const m of this.ctx.members.list()) {
      if (m.name === me) continue;
      const u = azureUnderlay(m);
      if (u) subnets.add(underlaySubnet(u));
    }
    const list = [...subnets].sort();
    if (list.join(",") !== this.memberSubnets.join(",")) {
      this.memberSubnets = list;
      this.replan();
    }
    if (this.config.mode === "classic" && this.nnc !== undefined) this.applyPool();
  }

  /** After a plan with pool version `v` was computed: its addresses are programmed. */
  private markProgrammed(v: number): void {
    if (v <= this.programmedVersion) return;
    this.programmedVersion = v;
    this.ips.programmed(v);
    for (const wake of [...this.wakers]) wake(true);
    if (this.config.mode === "dynamic") this.writeSpec();
  }

  /**
   * Dynamic: recomputes the spec from demand and status (`nodeTarget`) and writes it when it
   * changed; the other modes write it once at join. Coalesced: every change within one turn of
   * the clock (200 ADDs arriving together, a status and its programming) makes one computation on
   * a 0 ms timer, so a burst asks for its whole demand in one write. Writes are chained; a failed
   * one is retried on the next change or tick.
   */
  private writeSpec(): void {
    if (this.specFlush !== undefined || this.phase === "stopped") return;
    this.specFlush = this.after(0, () => {
      this.specFlush = undefined;
      this.flushSpec();
    });
  }

  /** Computes and writes the spec now (see `writeSpec`). */
  private flushSpec(options: { tick?: boolean } = {}): void {
    if (this.phase === "stopped") return;
    // Azure's v1 monitor is a 1 s loop: it looks at demand on its tick only (and once at join).
    if (this.config.mode === "dynamic" && this.config.poolMonitor === "v1" && !options.tick && this.spec !== undefined && !this.specDirty) return;
    const counts = this.ips.counts();
    let spec: NncSpec;
    if (this.config.mode !== "dynamic") {
      // The node announces itself once (the controller learns of it from the store at once, not
      // only from membership); its reservation does not follow demand.
      if (this.spec !== undefined && !this.specDirty) return;
      spec = { requestedIPCount: 0, ipsNotInUse: [], demand: counts.assigned, programmedVersion: this.programmedVersion };
    } else {
      const nnc = this.nnc;
      const target = nodeTarget({
        scaler: nnc?.scaler ?? this.config.scaler,
        monitor: this.config.poolMonitor,
        reclaimIdle: this.config.reclaimIdle,
        exhausted: nnc?.subnetExhausted ?? false,
        requested: this.spec?.requestedIPCount ?? 0,
        assigned: counts.pendingProgramming + counts.available + counts.assigned + counts.pendingRelease,
        pendingRelease: counts.pendingRelease,
        inUse: counts.assigned,
        waiting: this.waiting,
      });
      if (target.release > 0) this.ips.markForRelease(target.release);
      spec = {
        requestedIPCount: target.requestedIPCount,
        ipsNotInUse: this.ips.ipsNotInUse(),
        demand: counts.assigned + this.waiting,
        programmedVersion: this.programmedVersion,
      };
    }
    const text = encodeNncSpec(spec);
    if (!this.specDirty && this.spec !== undefined && encodeNncSpec(this.spec) === text) return;
    this.spec = spec;
    this.specDirty = false;
    const key = nncSpecKey(this.ctx.node.name);
    this.specWrites = this.specWrites.then(async () => {
      try {
        await this.ctx.store.put(key, text);
      } catch (err) {
        this.specDirty = true;
        this.warn("could not write the NodeNetworkConfig spec; retried on the next change", err);
      }
    });
  }

  /** The pool is ready when the controller answered without refusing and an address is usable or coming. */
  private poolProblem(): string | undefined {
    const nnc = this.nnc;
    if (nnc === undefined) return `node ${this.ctx.node.name} is waiting for its NodeNetworkConfig status from the controller`;
    if (nnc.state === "Error" && nnc.assignedIPs.length === 0 && nnc.blocks.length === 0) return `node ${this.ctx.node.name}: ${nnc.reason ?? "the controller reported an error"}`;
    const c = this.ips.counts();
    if (c.available + c.assigned === 0) {
      return c.pendingProgramming > 0
        ? `node ${this.ctx.node.name}: ${c.pendingProgramming} address(es) assigned, not yet programmed`
        : `node ${this.ctx.node.name} has no address yet (requested ${this.spec?.requestedIPCount ?? 0}, assigned 0)`;
    }
    return undefined;
  }

  /** CNI STATUS: the kit's, and 50 until the node's pool is ready. */
  override status(): AgentStatus {
    const base = super.status();
    if (!base.ready) return base;
    const problem = this.poolProblem();
    return problem === undefined ? base : { ready: false, code: 50, reason: `[${AZURE}] ${problem}` };
  }

  protected override async releaseShare(): Promise<void> {
    await this.policy.stop();
    await this.policy.revokeOwnLease();
    await this.specWrites;
    await this.ctx.store.delete(nncSpecKey(this.ctx.node.name)).catch((err: unknown) => this.warn("could not delete the NodeNetworkConfig spec", err));
  }

  /** Whether the pool may still give this node an address (dynamic, below the cap, controller answering). */
  private mayGrow(): boolean {
    if (this.ips.counts().pendingProgramming > 0) return true;
    if (this.config.mode !== "dynamic") return false;
    const c = this.ips.counts();
    const held = c.pendingProgramming + c.available + c.assigned + c.pendingRelease;
    return held < (this.nnc?.scaler.maxIPCount ?? this.config.scaler.maxIPCount);
  }

  /** Waits until an address may be Available (woken by programming), at most `ms`. True when woken. */
  private async waitForAddress(ms: number): Promise<boolean> {
    if (this.signal.aborted) return false;
    return new Promise<boolean>((resolve) => {
      const timer = this.ctx.clock.setTimeout(() => wake(false), ms);
      const wake = (woken: boolean): void => {
        this.wakers.delete(wake);
        timer.cancel();
        resolve(woken);
      };
      this.wakers.add(wake);
    });
  }

  /** Takes an Available address (the requested one when given), waiting while the pool can grow. */
  protected async reserve(pod: PodAttachment): Promise<PodRecord> {
    const key = podKey(pod);
    const requested = pod.requestedIps ?? [];
    if (requested.length > 1) throw new ConfigError({ component: AZURE, field: "requestedIps", rule: "ask for at most one address (the azure backend is IPv4 single-stack)", value: requested });
    const wanted = requested[0];
    const deadline = this.ctx.clock.now() + ADD_WAIT_MS;
    let address: string | undefined;
    for (;;) {
      if (wanted !== undefined) {
        const owner = this.ips.ownerOf(wanted);
        if (owner !== undefined && owner !== key) throw new AddressInUseError(wanted, `[${AZURE}] requested address ${wanted} is in use by ${owner} on node ${this.ctx.node.name}`);
        if (this.ips.stateOf(wanted) === undefined) throw new AddressInUseError(wanted, `[${AZURE}] requested address ${wanted} is not one of node ${this.ctx.node.name}'s addresses`);
      }
      address = this.ips.assign(key, wanted);
      if (address !== undefined) break;
      const left = deadline - this.ctx.clock.now();
      if (!this.mayGrow() || left <= 0) break;
      this.waiting++;
      this.writeSpec();
      try {
        await this.waitForAddress(left);
      } finally {
        this.waiting--;
      }
      if (this.phase !== "running") throw new TryAgainError(`[${AZURE}] node ${this.ctx.node.name} is stopping; try again`);
    }
    if (address === undefined) throw this.noAddress(wanted);
    const record: PodRecord = attachmentRecord(pod, { address });
    try {
      await this.records.put(record, `the reservation of ${address}`);
    } catch (err) {
      this.ips.release(key);
      throw err;
    }
    this.writeSpec();
    return record;
  }

  /** The error of an ADD that found no address: exhausted (100) or not yet (11), with the numbers. */
  private noAddress(wanted: string | undefined): Error {
    const c = this.ips.counts();
    const me = this.ctx.node.name;
    if (wanted !== undefined) return new AddressInUseError(wanted, `[${AZURE}] requested address ${wanted} is not available on node ${me}`);
    const nnc = this.nnc;
    const subnet = nnc?.subnet ?? this.config.podSubnet ?? this.config.podCidr;
    if (this.config.mode === "dynamic") {
      const cap = nnc?.scaler.maxIPCount ?? this.config.scaler.maxIPCount;
      const held = c.pendingProgramming + c.available + c.assigned + c.pendingRelease;
      if (held >= cap) return new PoolExhaustedError(subnet, `[${AZURE}] No available addresses: node ${me} holds ${held} addresses, its cap maxIPCount ${cap}, all in use`);
      if (nnc?.subnetExhausted) return new PoolExhaustedError(subnet, `[${AZURE}] No available addresses: pod subnet ${subnet} is exhausted and node ${me} holds ${held}, all in use`);
      return new TryAgainError(
        `[${AZURE}] node ${me} is waiting for the controller to assign addresses (requested ${this.spec?.requestedIPCount ?? 0}, assigned ${held}, in use ${c.assigned}); try again`,
      );
    }
    return new PoolExhaustedError(
      subnet,
      `[${AZURE}] No available addresses: node ${me} holds ${c.assigned + c.available + c.pendingProgramming} addresses (${this.config.mode}, maxPods ${this.config.maxPods}), all in use`,
    );
  }

  /** Forgets the reservation in `ctx.local` first (TryAgainError if that fails), then in the pool. */
  protected async unreserve(ref: PodRef): Promise<void> {
    await this.records.remove(ref);
    this.ips.release(podKey(ref));
    this.writeSpec();
  }

  protected override attached(record: PodRecord): void {
    this.policy.podAdded({ ...record, ips: [record.address], hostIf: hostIfName(record) });
  }

  protected override detached(_key: string, record: PodRecord): void {
    this.policy.podRemoved(record);
  }

  protected override persistedRefs(): Promise<PodRef[]> {
    return this.records.refs();
  }

  /** CHECK: the reservation is recorded, the pool holds the address for this pod, the host route is planned. */
  protected override async verify(record: PodRecord, dataplane: NodeDataplane): Promise<void> {
    const key = podKey(record);
    if (!(await this.records.has(record))) throw new CheckFailedError(`[${AZURE}] reservation of ${record.address} for ${key} is missing from the node-local store`);
    if (this.ips.ownerOf(record.address) !== key) throw new CheckFailedError(`[${AZURE}] ${record.address} is not assigned to ${key} in node ${this.ctx.node.name}'s pool`);
    if (!dataplane.routes.some((r) => r.dst === `${record.address}/32` && r.dev === hostIfName(record)))
      throw new CheckFailedError(`[${AZURE}] host route ${record.address}/32 dev ${hostIfName(record)} is missing`);
  }

  protected result(record: PodRecord): AttachResult {
    const mtu = podMtu(this.config, this.underlay);
    return {
      interfaces: [
        { name: hostIfName(record), mtu },
        { name: record.ifName, mac: podMac(record.address), mtu, sandbox: record.netns },
      ],
      ips: [{ address: `${record.address}/32`, gateway: ROUTED_POD_GATEWAY, interface: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: ROUTED_POD_GATEWAY }],
    };
  }

  /** Addresses of the pool no pod holds. */
  private idle(): string[] {
    const held = new Set(this.ips.pods().values());
    return this.pool.filter((a) => !held.has(a));
  }

  protected plan(): NodeDataplane {
    const node = this.ctx.node.name;
    const version = this.poolVersion;
    const policy = planPolicy<PodRecord>(this.policy.snapshot(), (r) => directoryPodOf(node, { ...r, ips: [r.address], hostIf: hostIfName(r) }));
    const dataplane = planDataplane({
      config: this.config,
      node: this.ctx.node,
      peers: this.memberSubnets,
      pods: [...this.attachments.values()],
      idle: this.idle(),
      blocks: this.nnc?.blocks ?? [],
      policy: {
        filtersFor: (input) => {
          try {
            this.filters = policy.filtersFor(input);
          } catch (err) {
            this.warn("could not compile NetworkPolicies; keeping the previous filters", err);
          }
          return this.filters;
        },
      },
    });
    // The desired state now holds this version's addresses: they are programmed once it is out.
    queueMicrotask(() => this.markProgrammed(version));
    return dataplane;
  }
}

/** `azure.createAgent`. */
export function createAzureAgent(ctx: AgentContext<AzureConfig>): AzureAgent {
  return new AzureAgent(ctx);
}
