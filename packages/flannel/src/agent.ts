/**
 * The flannel per-node agent, on core's agent kit: `AgentRuntime` owns phases and STATUS,
 * per-attachment serialisation, idempotent ADD, DEL, CHECK, GC and the dataplane publication
 * (re-plans coalesced on `ctx.clock`: at most one per REPLAN_MIN_INTERVAL_MS, leading edge, so
 * 1000 joins do not cost 1000 plans per node). What is flannel's own:
 *
 * start(): checks the node can run the config, loads (or derives and persists) the VTEP MACs,
 * takes the node's subnet lease with the kit's `SubnetLeaseKeeper` in flannel's layout
 * (leases.ts), restores pod reservations from `ctx.local`, and follows every lease with the kit's
 * `Informer`. From then on:
 *  - a compacted watch re-lists at once; a failed watch is re-opened with back-off (100 ms → 5 s);
 *  - every 10 s a resync re-lists the whole prefix unless the store revision is still the one the
 *    lease view reflects (then nothing can have been missed): missed events cannot leave stale
 *    routes for longer than one resync period;
 *  - the store lease is kept alive at expiry − margin (23 h by default), retried every minute;
 *    a lease that was lost anyway (expired, revoked, key deleted) is re-created for the same subnet
 *    if nobody took it, else the agent reports itself impaired (51) instead of exiting.
 * Pods: host-local-like IPAM over the node subnet (AddressPool), reservations persisted in
 * `ctx.local` before ADD returns.
 * Components composed in with `createFlannelAgent(ctx, options)` (components.ts) start after the
 * lease and hear every pod; their policy is part of the plan input. Canal is built that way.
 */
import { AddressInUseError, AddressPool, AgentRuntime, attachmentRecord, CheckFailedError, ConfigError, Informer, Prefix, TryAgainError, podKey, sameJson } from "@cnikit/core";
import type { AgentContext, AgentStatus, AttachResult, Family, KeyValue, NodeDataplane, PodAttachment, PodRef, SubnetLeaseKeeper } from "@cnikit/core";
import { flannelPodOf, recordPolicy } from "./components.ts";
import type { FlannelAgentComponent, FlannelAgentOptions } from "./components.ts";
import { COMPONENT, MIN_POD_MTU } from "./config.ts";
import type { FlannelConfig } from "./config.ts";
import { LEASE_TTL_SECONDS, SUBNET_PREFIX, decodeLease, flannelLeaseKeeper, leaseOfClaim, readLease, upgradeRememberedLease } from "./leases.ts";
import type { AcquiredLease, LeaseAttrs, LeaseSubnets, SubnetLease } from "./leases.ts";
import { BRIDGE, PeerTable, deriveVtepMac, hostIfName, localDevices, macForAddress, podMtu, sharedPlanCache, underlayOf } from "./plan.ts";
import type { PodRecord, SkippedPeer, VtepMacs } from "./plan.ts";

/** Full re-list period (flannel's route networks reconcile every 10 s; its vxlan never does). */
export const RESYNC_MS = 10_000;
/**
 * Lease changes are planned at most this often (leading edge: a change after a quiet spell is
 * planned at once). A storm of N joins then costs each node a few plans, not N.
 */
export const REPLAN_MIN_INTERVAL_MS = 250;
/** Watch re-open back-off, as flannel's: 100 ms doubling to 5 s. */
export const WATCH_BACKOFF_MS = { first: 100, max: 5_000 } as const;

/** Keys in `ctx.local`. */
export const LOCAL_KEYS = {
  /** The lease held last (flannel's subnet.env): `{key}`, as the kit's keeper remembers it. */
  lease: "/flannel/lease",
  /** VTEP MAC of `flannel.<VNI>` / `flannel-v6.<VNI>`. */
  vtepMac: (family: Family) => `/flannel/vtep-mac/v${family}`,
  /** One reservation per attachment. */
  pods: "/flannel/ipam/pods/",
  /** host-local's last_reserved_ip, per family. */
  lastReserved: (family: Family) => `/flannel/ipam/last-reserved/v${family}`,
} as const;

function localPodKey(ref: PodRef): string {
  return `${LOCAL_KEYS.pods}${ref.containerId}/${ref.ifName}`;
}

function isMac(x: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(x);
}

/** Counters for tests and benchmarks. */
export interface FlannelAgentStats {
  /** Attempts the lease acquisition took (1 = first CAS won). */
  leaseAttempts: number;
  /** Lost compare-and-swap races during acquisition. */
  leaseConflicts: number;
  /** Lease changes the watch delivered. */
  watchEvents: number;
  /** Full listings of the lease prefix (start, compaction, failed watch, resync). */
  relists: number;
  /** Resync listings that found the view different from the store (missed events repaired). */
  repairs: number;
  /** Plans computed. */
  replans: number;
}

/**
 * The flannel NodeAgent; see the module comment. Create it with `flannel.createAgent(ctx)`, or
 * with `createFlannelAgent(ctx, options)` to compose components into it.
 */
export class FlannelAgent extends AgentRuntime<FlannelConfig, PodRecord> {
  private readonly config: FlannelConfig;
  private readonly components: readonly FlannelAgentComponent[];
  private readonly policy: FlannelAgentOptions["policy"];
  private keeper: SubnetLeaseKeeper | undefined;
  /** The node subnets of the lease held (set once the lease is). */
  private held: LeaseSubnets & { key: string } = { key: "" };
  private acquired: AcquiredLease | undefined;
  /** Every lease in the store. */
  private readonly leases: Informer<SubnetLease>;
  private vtepMacs: VtepMacs = {};
  private readonly pools = new Map<Family, AddressPool>();
  /**
   * Every lease, planned incrementally (plan.ts's PeerTable, fed by the informer's events and
   * reading the leases from it: each lease is held once): a lease event costs its own entries, not
   * a re-plan over every lease. Peers' entries come from the process's plan cache.
   */
  private readonly peers: PeerTable;
  private skipped: SkippedPeer[] = [];
  private readonly warnedSkipped = new Map<string, string>();
  /** Malformed lease versions already warned about (key -> modRevision). */
  private readonly warnedMalformed = new Map<string, number>();
  private resyncing = false;
  /**
   * Our own lease may have changed in the view since it was last checked: an event on its key, a
   * listing, or any change before the agent ran. Other nodes' lease events leave it alone, so a
   * storm of N joins does not look our lease up N times.
   */
  private ownChanged = true;
  private readonly counters: FlannelAgentStats = { leaseAttempts: 0, leaseConflicts: 0, watchEvents: 0, relists: 0, repairs: 0, replans: 0 };

  /** `options`: components composed into the agent (components.ts); none for plain flannel. */
  constructor(ctx: AgentContext<FlannelConfig>, options: FlannelAgentOptions = {}) {
    // Plans share their peer entries with the previous plan (PeerTable) and are never mutated:
    // compared as objects, not as JSON text of every route.
    super(ctx, { component: COMPONENT, minReplanIntervalMs: REPLAN_MIN_INTERVAL_MS, samePlan: sameJson });
    this.config = ctx.config;
    this.components = options.components ?? [];
    this.policy = options.policy;
    this.leases = new Informer<SubnetLease>({
      store: ctx.store,
      prefix: SUBNET_PREFIX,
      clock: ctx.clock,
      signal: this.signal,
      decode: (kv) => this.decode(kv),
      onEvent: (ev) => {
        if (ev.key === this.keeper?.claim?.key) this.ownChanged = true;
        if (ev.type === "delete") this.peers.delete(ev.key);
        else this.peers.set(ev.value);
      },
      onBatch: (batch) => this.onLeases(batch),
      onError: (err) => this.warn("lease watch failed; re-listing", err),
      retryMs: WATCH_BACKOFF_MS.first,
      maxRetryMs: WATCH_BACKOFF_MS.max,
    });
    this.peers = new PeerTable(sharedPlanCache, this.leases);
    for (const c of this.components) c.onChange?.(() => this.replan());
  }

  /**
   * Joins: see the module comment. Throws `ConfigError` when this node cannot run the config (no
   * underlay address of a needed family, an underlay MTU too small for the pods),
   * `PoolExhaustedError` ("out of subnets"), `TryAgainError` when the store stayed unavailable or
   * every lease attempt lost its race, and what a component's `start` throws.
   */
  protected async join(signal: AbortSignal): Promise<void> {
    const { ctx, config } = this;
    this.checkNode();
    if (config.backendDefaulted) {
      ctx.log.info(`[${COMPONENT}] net-conf.json has no Backend: using vxlan (flannel's documented default; its code would pick udp, which cnikit does not support)`);
    }
    this.vtepMacs = await this.loadVtepMacs();
    await upgradeRememberedLease(ctx.local, LOCAL_KEYS.lease);
    const keeper = flannelLeaseKeeper({
      ...ctx,
      localKey: LOCAL_KEYS.lease,
      config,
      attrs: this.buildAttrs(),
      onLost: ({ holder }) => {
        const by = holder ? decodeLease(holder)?.attrs : undefined;
        this.setImpaired(`subnet lease ${describe(this.held)} was taken by ${by?.NodeName ?? by?.PublicIP ?? "another writer"}; restart this node's agent and pods to lease a new subnet`);
      },
      onRenewedLease: (claim) => {
        for (const c of this.components) c.setLease?.(claim.lease);
      },
    });
    this.keeper = keeper;
    signal.addEventListener("abort", () => keeper.stop(), { once: true });
    const claim = await keeper.acquire(signal);
    const lease = leaseOfClaim(claim);
    this.acquired = lease;
    this.counters.leaseAttempts = lease.attempts;
    this.counters.leaseConflicts = lease.conflicts;
    this.held = { key: lease.key, ...subnetsOf(lease) };
    for (const c of this.components) c.setLease?.(claim.lease);
    await this.restorePods(this.held);
    await this.leases.start();
    for (const c of this.components) {
      signal.addEventListener("abort", () => void c.stop(), { once: true });
      await c.start(signal);
    }
    ctx.log.info(`[${COMPONENT}] node ${ctx.node.name} holds ${describe(lease)} (${lease.source})`, { key: lease.key, source: lease.source, attempts: lease.attempts, pods: this.attachments.size });
  }

  protected override started(): void {
    // A plain interval rather than the kit's `every`: 100 simulated agents fire it 8640 times a
    // virtual day each, and `resync` neither throws nor overlaps itself.
    const timer = this.ctx.clock.setInterval(() => void this.resync(), RESYNC_MS);
    this.signal.addEventListener("abort", () => timer.cancel(), { once: true });
  }

  /** Refuses a node that cannot run the config (ConfigError naming the node's underlay). */
  private checkNode(): void {
    const { config, ctx } = this;
    const node = ctx.node;
    const field = "node.underlay";
    const on = ` (node ${node.name} has ${node.underlay.map((u) => `${u.iface} ${u.address}/${u.prefixLength}`).join(", ") || "no underlay address"})`;
    const u4 = underlayOf(node, 4);
    const u6 = underlayOf(node, 6);
    if (config.backend.type === "host-gw") {
      if (config.enableIPv4 && !u4) throw new ConfigError({ component: COMPONENT, field, rule: `host-gw with EnableIPv4 needs an IPv4 underlay address on every node${on}` });
      if (config.enableIPv6 && !u6) throw new ConfigError({ component: COMPONENT, field, rule: `host-gw with EnableIPv6 needs an IPv6 underlay address on every node${on}` });
    } else {
      if (config.enableIPv4 && !u4) throw new ConfigError({ component: COMPONENT, field, rule: `vxlan with EnableIPv4 needs an IPv4 underlay address (the VTEP of flannel.<VNI>)${on}` });
      if (config.enableIPv6 && !u6 && !u4) throw new ConfigError({ component: COMPONENT, field, rule: `vxlan with EnableIPv6 needs an underlay address${on}` });
    }
    const mtu = podMtu(config, node);
    const floor = config.enableIPv6 ? MIN_POD_MTU[6] : MIN_POD_MTU[4];
    if (config.backend.type === "vxlan" && config.backend.mtu !== undefined) {
      for (const u of node.underlay) {
        if (config.backend.mtu > (u.mtu ?? 1500)) {
          ctx.log.warn(
            `[${COMPONENT}] Backend.MTU ${config.backend.mtu} is above the MTU ${u.mtu ?? 1500} of ${u.iface} on node ${node.name}: encapsulated pod packets larger than the underlay allows will be dropped`,
          );
        }
      }
    }
    if (mtu < floor) {
      throw new ConfigError({
        component: COMPONENT,
        field: config.backend.type === "vxlan" && config.backend.mtu !== undefined ? "Backend.MTU" : "node.underlay.mtu",
        rule: `pods on node ${node.name} would get MTU ${mtu}, below the minimum ${floor}; raise the underlay MTU`,
        value: mtu,
      });
    }
  }

  /** The VTEP MACs: from ctx.local, else derived from the node name and persisted. */
  private async loadVtepMacs(): Promise<VtepMacs> {
    const devs = localDevices(this.config, this.ctx.node);
    const out: VtepMacs = {};
    for (const [family, dev] of [
      [4, devs.v4],
      [6, devs.v6],
    ] as const) {
      if (!dev) continue;
      const key = LOCAL_KEYS.vtepMac(family);
      const stored = (await this.ctx.local.get(key))?.value;
      let mac = stored !== undefined && isMac(stored) ? stored : undefined;
      if (mac === undefined) {
        mac = deriveVtepMac(this.ctx.node.name, family);
        await this.ctx.local.put(key, mac);
      }
      if (family === 4) out.v4 = mac;
      else out.v6 = mac;
    }
    return out;
  }

  private buildAttrs(): LeaseAttrs & { NodeName: string } {
    const { config, ctx } = this;
    const attrs: LeaseAttrs & { NodeName: string } = { BackendType: config.backend.type, NodeName: ctx.node.name };
    if (config.backend.type === "vxlan") {
      const devs = localDevices(config, ctx.node);
      if (devs.v4) {
        attrs.PublicIP = devs.v4.underlay.address;
        attrs.BackendData = { VNI: config.backend.vni, VtepMAC: this.vtepMacs.v4! };
      }
      if (devs.v6) {
        attrs.PublicIPv6 = devs.v6.underlay.address;
        attrs.BackendV6Data = { VNI: config.backend.vni, VtepMAC: this.vtepMacs.v6! };
      }
    } else {
      const u4 = underlayOf(ctx.node, 4);
      const u6 = underlayOf(ctx.node, 6);
      if (config.enableIPv4 && u4) attrs.PublicIP = u4.address;
      if (config.enableIPv6 && u6) attrs.PublicIPv6 = u6.address;
    }
    return attrs;
  }

  /** Rebuilds the address pools from the persisted reservations; drops records that no longer fit. */
  private async restorePods(held: LeaseSubnets): Promise<void> {
    const { ctx } = this;
    const subnets = new Map<Family, Prefix>();
    if (held.subnet !== undefined) subnets.set(4, Prefix.parse(held.subnet));
    if (held.ipv6Subnet !== undefined) subnets.set(6, Prefix.parse(held.ipv6Subnet));
    const listing = await ctx.local.list(LOCAL_KEYS.pods);
    const allocations = new Map<Family, [string, string][]>([
      [4, []],
      [6, []],
    ]);
    for (const kv of listing.items) {
      const record = readPodRecord(kv);
      const fits =
        record !== undefined &&
        record.addresses.length === subnets.size &&
        record.addresses.every((a) => {
          const fam = Prefix.host(a).family;
          return subnets.get(fam)?.contains(a) ?? false;
        });
      if (!record || !fits) {
        ctx.log.warn(`[${COMPONENT}] dropping reservation ${kv.key}: unreadable or outside this node's subnet ${describe(held)}`);
        await ctx.local.delete(kv.key);
        continue;
      }
      const key = podKey(record);
      for (const a of record.addresses) allocations.get(Prefix.host(a).family)!.push([a, key]);
      this.restore(record);
      this.attached(record);
    }
    for (const [family, range] of subnets) {
      const last = (await ctx.local.get(LOCAL_KEYS.lastReserved(family)))?.value;
      const options = this.poolOptions(family, range);
      const list = allocations.get(family)!.sort((a, b) => (Prefix.host(a[0]).base < Prefix.host(b[0]).base ? -1 : 1));
      let pool: AddressPool;
      try {
        pool = AddressPool.restore(options, { range: range.toString(), lastReserved: last !== undefined && range.contains(last) ? last : null, allocations: list });
      } catch (err) {
        // A reservation on the gateway or a duplicate: keep what fits, one by one.
        ctx.log.warn(`[${COMPONENT}] reservations of ${range.toString()} did not restore as a whole; restoring one by one`, { error: String(err) });
        pool = new AddressPool(options);
        for (const [address, owner] of list) {
          try {
            pool.allocateSpecific(address, owner);
          } catch {
            ctx.log.warn(`[${COMPONENT}] dropping reservation of ${address} for ${owner}`);
          }
        }
      }
      this.pools.set(family, pool);
    }
  }

  private poolOptions(family: Family, range: Prefix): { range: Prefix; name: string; component: string } {
    return { range, name: `${COMPONENT} node ${this.ctx.node.name} IPv${family} subnet`, component: COMPONENT };
  }

  /** A stored lease, or undefined (ignored, with one warning per version) when it is malformed. */
  private decode(kv: KeyValue): SubnetLease | undefined {
    const lease = readLease(kv);
    if (lease === undefined && this.warnedMalformed.get(kv.key) !== kv.modRevision) {
      this.warnedMalformed.set(kv.key, kv.modRevision);
      this.ctx.log.warn(`[${COMPONENT}] ignoring malformed lease ${kv.key}`);
    }
    return lease;
  }

  /** After each change of the lease view: counters, our own lease still ours, re-plan. */
  private onLeases(batch: { reason: string; changed: number; revision: number }): void {
    if (batch.reason === "watch") this.counters.watchEvents++;
    else this.counters.relists++;
    if (batch.reason !== "watch") this.ownChanged = true;
    if (this.phase !== "running") {
      this.ownChanged = true;
      return;
    }
    if (batch.changed > 0 && (batch.reason === "resync" || batch.reason === "manual")) {
      // The store says something our watch never told us: a missed event, repaired here.
      this.counters.repairs++;
      this.ctx.log.warn(`[${COMPONENT}] resync found leases the watch had missed; repaired`, { revision: batch.revision });
    }
    if (this.ownChanged) {
      this.ownChanged = false;
      this.checkOwnLease();
    }
    if (batch.changed > 0) this.replan();
  }

  /** Periodic: re-list unless the store has not moved since the view was last brought up to date. */
  private async resync(): Promise<void> {
    if (this.phase !== "running" || this.resyncing) return;
    this.resyncing = true;
    try {
      if ((await this.ctx.store.revision()) !== this.leases.revision) await this.leases.resync();
    } catch (err) {
      this.warn("resync failed; retrying at the next period", err);
    } finally {
      this.resyncing = false;
    }
  }

  /**
   * Our key must be in the view with our name. If it vanished (expired while the store was
   * unreachable, revoked by an operator), flannel exits ("Lease has been revoked"); the keeper
   * writes it back for the same subnet if it is free, so pods keep their addresses, else reports
   * the loss (impaired, 51).
   */
  private checkOwnLease(): void {
    const keeper = this.keeper;
    const held = keeper?.claim;
    if (!keeper || !held || keeper.lost) return;
    if (this.leases.get(held.key)?.attrs.NodeName === this.ctx.node.name) return;
    const kv = this.leases.getKv(held.key);
    const before = held.modRevision;
    void keeper.verify(kv ?? null).then(() => {
      const now = keeper.claim;
      if (!keeper.lost && now && now.modRevision !== before) {
        this.ctx.log.warn(`[${COMPONENT}] subnet lease ${describe(this.held)} was ${kv ? "overwritten" : "deleted"}; re-created it (flannel would exit here)`);
      }
    });
  }

  /**
   * Revokes the subnet lease (every other node drops its entries at once) and forgets it in
   * `ctx.local`; without `release`, the lease stays for the next agent on this node (it is taken
   * over by node name). A reservation (no TTL) is never deleted. Components are stopped first.
   * Never throws (a failed revoke is logged: the lease then expires).
   */
  protected override async releaseShare(): Promise<void> {
    for (const c of this.components) await c.stop();
    const keeper = this.keeper;
    if (!keeper?.claim) return;
    try {
      if (keeper.claim.lease === undefined) {
        keeper.stop();
        await this.ctx.local.delete(LOCAL_KEYS.lease);
      } else {
        await keeper.release();
      }
    } catch (err) {
      this.warn(`could not release ${describe(this.held)}; it expires within ${LEASE_TTL_SECONDS / 3600} h`, err);
    }
  }

  /**
   * CNI ADD (after the kit's checks): reserves one address per enabled family in the node subnet
   * (the requested ones, if any; network, gateway and broadcast never) and persists the
   * reservation in `ctx.local`. Throws `ConfigError` (7) for more than one requested address per
   * family, `PoolExhaustedError` (100), `AddressInUseError` (101) for a requested address that is
   * taken or outside the node subnet, `TryAgainError` (11) when the reservation could not be
   * persisted (then nothing is reserved).
   */
  protected async reserve(pod: PodAttachment): Promise<PodRecord> {
    const key = podKey(pod);
    const requested = new Map<Family, string>();
    for (const ip of pod.requestedIps ?? []) {
      const family = Prefix.host(ip.split("/")[0]!).family;
      if (requested.has(family)) {
        throw new ConfigError({ component: COMPONENT, field: "requestedIps", rule: `ask for at most one IPv${family} address`, value: pod.requestedIps });
      }
      requested.set(family, ip.split("/")[0]!);
    }
    const taken: [AddressPool, string][] = [];
    const cursors = new Map([...this.pools].map(([family, pool]) => [family, pool.lastReserved]));
    try {
      for (const [family, pool] of this.pools) {
        const wanted = requested.get(family);
        if (wanted !== undefined) {
          if (!pool.range.contains(wanted)) {
            throw new AddressInUseError(wanted, `[${COMPONENT}] requested address ${wanted} is outside node ${this.ctx.node.name}'s subnet ${pool.range.toString()}`);
          }
          taken.push([pool, pool.allocateSpecific(wanted, key)]);
        } else {
          taken.push([pool, pool.allocate(key)]);
        }
      }
      for (const [family] of requested) {
        if (!this.pools.has(family)) {
          throw new AddressInUseError(requested.get(family)!, `[${COMPONENT}] IPv${family} is not enabled in this network (requested ${requested.get(family)})`);
        }
      }
      const record: PodRecord = attachmentRecord(pod, { addresses: taken.map(([, a]) => a) });
      const ops: { op: "put"; key: string; value: string }[] = [{ op: "put", key: localPodKey(pod), value: JSON.stringify(record) }];
      for (const [family, pool] of this.pools) {
        if (pool.lastReserved !== null) ops.push({ op: "put", key: LOCAL_KEYS.lastReserved(family), value: pool.lastReserved });
      }
      let result;
      try {
        result = await this.ctx.local.txn([{ key: localPodKey(pod), modRevision: 0 }], ops);
      } catch (err) {
        throw err instanceof TryAgainError ? err : new TryAgainError(`[${COMPONENT}] could not record the reservation for ${key}; try again`, { cause: err });
      }
      if (!result.succeeded) throw new TryAgainError(`[${COMPONENT}] a reservation for ${key} appeared in the node-local store meanwhile; try again`);
      return record;
    } catch (err) {
      for (const [pool, address] of taken) pool.release(address);
      // Put the round-robin cursor back too: a failed ADD leaves no trace.
      for (const [family, pool] of this.pools) {
        const before = cursors.get(family) ?? null;
        if (pool.lastReserved !== before) this.pools.set(family, AddressPool.restore(this.poolOptions(family, pool.range), { ...pool.snapshot(), lastReserved: before }));
      }
      throw err;
    }
  }

  /** CNI DEL: forgets the reservation in `ctx.local` first (TryAgainError if that fails), then in the pools. */
  protected async unreserve(ref: PodRef): Promise<void> {
    try {
      await this.ctx.local.delete(localPodKey(ref));
    } catch (err) {
      throw err instanceof TryAgainError ? err : new TryAgainError(`[${COMPONENT}] could not record the release of ${podKey(ref)}; try again`, { cause: err });
    }
    for (const pool of this.pools.values()) pool.releaseOwner(podKey(ref));
  }

  protected override attached(record: PodRecord): void {
    for (const c of this.components) c.podAdded?.(flannelPodOf(record));
  }

  protected override detached(_key: string, record: PodRecord): void {
    for (const c of this.components) c.podRemoved?.(record);
  }

  /** Reservations only `ctx.local` knows (GC releases those too). */
  protected override async persistedRefs(): Promise<PodRef[]> {
    const refs: PodRef[] = [];
    for (const kv of (await this.ctx.local.list(LOCAL_KEYS.pods)).items) {
      const rest = kv.key.slice(LOCAL_KEYS.pods.length);
      const slash = rest.lastIndexOf("/");
      if (slash > 0) refs.push({ containerId: rest.slice(0, slash), ifName: rest.slice(slash + 1) });
    }
    return refs;
  }

  /** CHECK: the reservation is in `ctx.local` and in the pools, and the pod has its routes. */
  protected override async verify(record: PodRecord, dataplane: NodeDataplane): Promise<void> {
    const key = podKey(record);
    if (!(await this.ctx.local.get(localPodKey(record)))) throw new CheckFailedError(`[${COMPONENT}] the reservation for ${key} is missing from the node-local store`);
    for (const address of record.addresses) {
      const pool = this.pools.get(Prefix.host(address).family);
      if (pool?.ownerOf(address) !== key) throw new CheckFailedError(`[${COMPONENT}] ${address} is not reserved for ${key} in the node subnet pool`);
    }
    const iface = dataplane.pods.find((p) => p.key === key);
    if (iface && iface.routes.length === 0) throw new CheckFailedError(`[${COMPONENT}] ${key} has no routes`);
  }

  protected result(record: PodRecord): AttachResult {
    const held = this.held;
    const mtu = podMtu(this.config, this.ctx.node);
    const ips: AttachResult["ips"] = [];
    const routes: AttachResult["routes"] = [];
    for (const address of record.addresses) {
      const family = Prefix.host(address).family;
      const subnet = Prefix.parse(family === 4 ? held.subnet! : held.ipv6Subnet!);
      const gw = subnet.nth(1);
      ips.push({ address: `${address}/${subnet.length}`, gateway: gw, interface: 2 });
      routes.push({ dst: family === 4 ? this.config.ipv4!.network : this.config.ipv6!.network, gw }, { dst: family === 4 ? "0.0.0.0/0" : "::/0", gw });
    }
    const firstSubnet = Prefix.parse((held.subnet ?? held.ipv6Subnet)!);
    return {
      interfaces: [
        { name: BRIDGE, mac: macForAddress(firstSubnet.nth(1)), mtu },
        { name: hostIfName(record), mtu },
        { name: record.ifName, mac: macForAddress(record.addresses[0]!), mtu, sandbox: record.netns ?? "" },
      ],
      ips,
      routes,
    };
  }

  /** The plan of the state now (plan.ts's, kept incrementally by the PeerTable); warns once per skipped lease and reason. */
  protected plan(): NodeDataplane {
    this.counters.replans++;
    const policy = this.policy?.();
    const { dataplane, skipped } = this.peers.plan({
      config: this.config,
      node: this.ctx.node,
      lease: this.held,
      vtepMacs: this.vtepMacs,
      pods: [...this.attachments.values()],
      ...(policy ? { policy: recordPolicy(policy) } : {}),
    });
    this.skipped = skipped;
    for (const s of skipped) {
      if (this.warnedSkipped.get(s.key) === s.reason) continue;
      this.warnedSkipped.set(s.key, s.reason);
      this.ctx.log.warn(`[${COMPONENT}] no entries for lease ${s.key}${s.node ? ` of node ${s.node}` : ""}: ${s.reason}`);
    }
    return dataplane;
  }

  /**
   * CNI STATUS: the kit's (50 before start and after stop, 51 when the lease was lost to another
   * node); while ready, `reason` lists peers that got no entries (host-gw peers on another L2
   * subnet, leases of another backend type).
   */
  override status(): AgentStatus {
    const status = super.status();
    if (!status.ready) return status;
    const skipped = this.skippedPeers();
    if (skipped.length === 0) return status;
    const shown = skipped.slice(0, 5).map((s) => `${s.node ?? s.key}: ${s.reason}`);
    const more = skipped.length > 5 ? `; and ${skipped.length - 5} more` : "";
    return { ready: true, reason: `[${COMPONENT}] no route to ${skipped.length} peer(s): ${shown.join("; ")}${more}` };
  }

  /** The lease this agent holds (after start; after a release, the one it held). */
  lease(): Readonly<AcquiredLease> | undefined {
    const claim = this.keeper?.claim;
    return claim ? leaseOfClaim(claim) : this.acquired;
  }

  /** Leases the current plan made no entries for, and why. */
  skippedPeers(): readonly SkippedPeer[] {
    this.dataplane(); // the current plan's
    return this.skipped;
  }

  /** Counters (lease attempts, watch events, re-lists, repairs, plans). */
  stats(): Readonly<FlannelAgentStats> {
    return { ...this.counters };
  }

  /** Runs one resync now (what the 10 s timer does). Resolves when done; never throws. */
  resyncNow(): Promise<void> {
    return this.resync();
  }
}

/**
 * Flannel's agent with extra components composed into it: the composition point Canal uses (see
 * components.ts). `createFlannelAgent(ctx)` is plain flannel, what `flannel.createAgent` makes.
 */
export function createFlannelAgent(ctx: AgentContext<FlannelConfig>, options: FlannelAgentOptions = {}): FlannelAgent {
  return new FlannelAgent(ctx, options);
}

function subnetsOf(l: LeaseSubnets): LeaseSubnets {
  const out: LeaseSubnets = {};
  if (l.subnet !== undefined) out.subnet = l.subnet;
  if (l.ipv6Subnet !== undefined) out.ipv6Subnet = l.ipv6Subnet;
  return out;
}

function describe(l: LeaseSubnets): string {
  return [l.subnet, l.ipv6Subnet].filter((x) => x !== undefined).join(" + ");
}

function readPodRecord(kv: KeyValue): PodRecord | undefined {
  try {
    const o = JSON.parse(kv.value) as Partial<PodRecord>;
    if (typeof o.containerId !== "string" || typeof o.ifName !== "string" || !Array.isArray(o.addresses)) return undefined;
    if (!o.addresses.every((a) => typeof a === "string")) return undefined;
    for (const a of o.addresses) Prefix.host(a);
    return o as PodRecord;
  } catch {
    return undefined;
  }
}
