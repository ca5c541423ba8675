/**
 * The flannel per-node agent.
 *
 * start(): checks the node can run the config, loads (or derives and persists) the VTEP MACs,
 * acquires the node's subnet lease (leases.ts), restores pod reservations from `ctx.local`, lists
 * every lease and watches the prefix from the listing's revision. From then on:
 *  - watch events update the lease view; the dataplane is re-planned once per burst of events
 *    (coalesced on `setImmediate`, so 1000 joins do not cost 1000 plans per node);
 *  - a compacted watch re-lists; a failed watch is re-opened with back-off (100 ms → 5 s);
 *  - every 10 s a resync re-lists the whole prefix unless the store revision is still the one the
 *    last full listing reflected (then nothing can have been missed): missed events cannot leave
 *    stale routes for longer than one resync period;
 *  - the store lease is kept alive at expiry − margin (23 h by default), retried every minute;
 *    a lease that was lost anyway (expired, revoked, key deleted) is re-created for the same subnet
 *    if nobody took it, else the agent reports itself impaired (51) instead of exiting.
 * Pods: host-local-like IPAM over the node subnet (AddressPool), reservations persisted in
 * `ctx.local` before ADD returns.
 */
import {
  AddressInUseError,
  AddressPool,
  CheckFailedError,
  CompactedError,
  ConfigError,
  ConflictError,
  NotFoundError,
  NotReadyError,
  Prefix,
  TryAgainError,
  UnknownContainerError,
  emptyDataplane,
  podKey,
} from "@cnikit/core";
import type {
  AgentContext,
  AgentStatus,
  AttachResult,
  Family,
  KeyValue,
  LeaseId,
  NodeAgent,
  NodeDataplane,
  PodAttachment,
  PodRef,
  TimerHandle,
  WatchEvent,
} from "@cnikit/core";
import { COMPONENT, MIN_POD_MTU } from "./config.ts";
import type { FlannelConfig } from "./config.ts";
import {
  LEASE_TTL_SECONDS,
  RENEW_RETRY_MS,
  SUBNET_PREFIX,
  acquireLease,
  decodeLease,
  encodeAttrs,
  readPreviousSubnets,
} from "./leases.ts";
import type { AcquiredLease, LeaseAttrs, LeaseSubnets, SubnetLease } from "./leases.ts";
import { BRIDGE, createPlanCache, deriveVtepMac, hostIfName, localDevices, macForAddress, planWithDiagnostics, podMtu, underlayOf } from "./plan.ts";
import type { PodRecord, SkippedPeer, VtepMacs } from "./plan.ts";
import { flannelPodOf, recordPolicy } from "./components.ts";
import type { FlannelAgentComponent, FlannelAgentOptions } from "./components.ts";

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
  /** The subnets held last (flannel's subnet.env). */
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
  watchEvents: number;
  /** Full listings of the lease prefix (start, compaction, resync). */
  relists: number;
  /** Listings that found the view different from the store (missed events repaired). */
  repairs: number;
  /** Plans computed. */
  replans: number;
  renewals: number;
}

/** The flannel NodeAgent; see the module comment. Create it with `flannel.createAgent(ctx)` or `createFlannelAgent`. */
export class FlannelAgent implements NodeAgent {
  private readonly ctx: AgentContext<FlannelConfig>;
  private readonly config: FlannelConfig;
  private phase: "new" | "starting" | "running" | "stopped" = "new";
  private startPromise: Promise<void> | undefined;
  private held: AcquiredLease | undefined;
  private attrs: LeaseAttrs & { NodeName: string } = { BackendType: "", NodeName: "" };
  private vtepMacs: VtepMacs = {};
  private readonly pools = new Map<Family, AddressPool>();
  private readonly pods = new Map<string, PodRecord>();
  /** Every lease in the store as last seen, by key. */
  private readonly view = new Map<string, SubnetLease>();
  /** Revision the last full listing reflected: watch events at or below it are already in `view`. */
  private listRevision = 0;
  /** Highest revision reflected in `view` (listing or event). */
  private viewRevision = 0;
  private readonly abort = new AbortController();
  private readonly timers: TimerHandle[] = [];
  private renewTimer: TimerHandle | undefined;
  private resyncRunning = false;
  private replanQueued = false;
  private replanTimer: TimerHandle | undefined;
  private lastReplanAt = Number.NEGATIVE_INFINITY;
  private readonly planCache = createPlanCache();
  private impaired: string | undefined;
  private skipped: SkippedPeer[] = [];
  private readonly warnedSkipped = new Map<string, string>();
  private lastPlan: NodeDataplane;
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();
  /** Serialises ADD/DEL/CHECK/GC. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly counters: FlannelAgentStats = { leaseAttempts: 0, leaseConflicts: 0, watchEvents: 0, relists: 0, repairs: 0, replans: 0, renewals: 0 };

  private readonly components: readonly FlannelAgentComponent[];
  private readonly policy: FlannelAgentOptions["policy"];

  /** `options`: components composed into the agent (see components.ts); none for plain flannel. */
  constructor(ctx: AgentContext<FlannelConfig>, options: FlannelAgentOptions = {}) {
    this.ctx = ctx;
    this.config = ctx.config;
    this.lastPlan = emptyDataplane(ctx.node.name);
    this.components = options.components ?? [];
    this.policy = options.policy;
    for (const c of this.components) c.onChange?.(() => this.scheduleReplan());
  }

  /**
   * Joins: see the module comment. A second call returns the first call's promise.
   * Throws `ConfigError` when this node cannot run the config (no underlay address of a needed
   * family, an underlay MTU too small for the pods), `PoolExhaustedError` ("out of subnets"),
   * `TryAgainError` when the store stayed unavailable or every lease attempt lost its race.
   */
  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    this.phase = "starting";
    const { ctx, config } = this;
    this.checkNode();
    if (config.backendDefaulted) {
      ctx.log.info(`[${COMPONENT}] net-conf.json has no Backend: using vxlan (flannel's documented default; its code would pick udp, which cnikit does not support)`);
    }
    this.vtepMacs = await this.loadVtepMacs();
    this.attrs = this.buildAttrs();
    const previous = readPreviousSubnets((await ctx.local.get(LOCAL_KEYS.lease))?.value);
    const acquireOptions = {
      store: ctx.store,
      config,
      attrs: this.attrs,
      clock: ctx.clock,
      random: ctx.random,
      log: ctx.log,
      signal: this.abort.signal,
      ...(previous ? { previous } : {}),
    };
    const held = await acquireLease(acquireOptions);
    this.counters.leaseAttempts = held.attempts;
    this.counters.leaseConflicts = held.conflicts;
    if (this.phase !== "starting") {
      // Stopped while acquiring: leave the lease to expire or to the next agent.
      return;
    }
    this.held = held;
    await ctx.local.put(LOCAL_KEYS.lease, JSON.stringify(subnetsOf(held)));
    for (const c of this.components) c.setLease?.(held.storeLease);
    await this.restorePods(held);
    await this.relist();
    for (const c of this.components) {
      this.abort.signal.addEventListener("abort", () => void c.stop(), { once: true });
      await c.start(this.abort.signal);
    }
    if (this.phase !== "starting") return;
    this.phase = "running";
    void this.watchLoop();
    this.scheduleRenewal(this.renewDelayMs());
    this.timers.push(ctx.clock.setInterval(() => void this.resync(), RESYNC_MS));
    ctx.log.info(`[${COMPONENT}] node ${ctx.node.name} holds ${describe(held)} (${held.source})`, {
      key: held.key,
      source: held.source,
      attempts: held.attempts,
      pods: this.pods.size,
    });
    this.replan();
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
          ctx.log.warn(`[${COMPONENT}] Backend.MTU ${config.backend.mtu} is above the MTU ${u.mtu ?? 1500} of ${u.iface} on node ${node.name}: encapsulated pod packets larger than the underlay allows will be dropped`);
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
      this.pods.set(key, record);
      for (const c of this.components) c.podAdded?.(flannelPodOf(record));
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

  /** Full listing of the lease prefix; replaces the view. */
  private async relist(): Promise<void> {
    const listing = await this.ctx.store.list(SUBNET_PREFIX);
    this.counters.relists++;
    if (listing.revision < this.listRevision) return;
    let changed = listing.items.length !== this.view.size;
    const next = new Map<string, SubnetLease>();
    for (const kv of listing.items) {
      const known = this.view.get(kv.key);
      if (known !== undefined && known.modRevision === kv.modRevision && known.storeLease === kv.lease) {
        next.set(kv.key, known);
        continue;
      }
      changed = true;
      const lease = decodeLease(kv);
      if (lease) next.set(kv.key, lease);
      else this.ctx.log.warn(`[${COMPONENT}] ignoring malformed lease ${kv.key}`);
    }
    if (this.phase === "running" && changed && listing.revision <= this.viewRevision) {
      // The store says something our watch never told us: a missed event, repaired here.
      this.counters.repairs++;
      this.ctx.log.warn(`[${COMPONENT}] resync found leases the watch had missed; repaired`, { revision: listing.revision });
    }
    this.view.clear();
    for (const [k, v] of next) this.view.set(k, v);
    this.listRevision = listing.revision;
    this.viewRevision = Math.max(this.viewRevision, listing.revision);
    if (this.phase === "running") {
      this.checkOwnLease();
      if (changed) this.scheduleReplan();
    }
  }

  /** Periodic: re-list unless the store has not moved since the last full listing. */
  private async resync(): Promise<void> {
    if (this.resyncRunning || this.phase !== "running") return;
    this.resyncRunning = true;
    try {
      const revision = await this.ctx.store.revision();
      if (revision !== this.listRevision) await this.relist();
    } catch (err) {
      this.warn("resync failed; retrying at the next period", err);
    } finally {
      this.resyncRunning = false;
    }
  }

  private async watchLoop(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        for await (const event of this.ctx.store.watch(SUBNET_PREFIX, { fromRevision: this.viewRevision, signal })) {
          failures = 0;
          this.applyEvent(event);
        }
        if (signal.aborted) return;
        throw new TryAgainError("watch ended");
      } catch (err) {
        if (signal.aborted) return;
        try {
          if (err instanceof CompactedError) {
            this.ctx.log.info(`[${COMPONENT}] lease watch compacted; re-listing`);
            await this.relist();
            continue;
          }
          failures++;
          const delay = Math.min(WATCH_BACKOFF_MS.max, WATCH_BACKOFF_MS.first * 2 ** (failures - 1));
          this.warn(`lease watch failed; re-opening in ${delay} ms`, err);
          await this.ctx.clock.sleep(delay, signal);
        } catch (inner) {
          if (signal.aborted) return;
          this.warn("re-list after a watch failure failed", inner);
          await this.ctx.clock.sleep(WATCH_BACKOFF_MS.max, signal).catch(() => undefined);
        }
      }
    }
  }

  private applyEvent(event: WatchEvent): void {
    this.counters.watchEvents++;
    if (event.revision <= this.listRevision) return; // already in the listing
    this.viewRevision = Math.max(this.viewRevision, event.revision);
    if (event.type === "put") {
      const lease = decodeLease(event.kv);
      if (lease) this.view.set(event.kv.key, lease);
      else {
        this.view.delete(event.kv.key);
        this.ctx.log.warn(`[${COMPONENT}] ignoring malformed lease ${event.kv.key}`);
      }
    } else {
      this.view.delete(event.key);
    }
    if (this.held && (event.type === "put" ? event.kv.key : event.key) === this.held.key) this.checkOwnLease();
    this.scheduleReplan();
  }

  /** Our key must be in the view with our attributes; if it vanished, take it back. */
  private checkOwnLease(): void {
    const held = this.held;
    if (!held || this.phase !== "running") return;
    const mine = this.view.get(held.key);
    if (mine && mine.attrs.NodeName === this.ctx.node.name) {
      held.modRevision = mine.modRevision;
      return;
    }
    void this.reclaim(mine ? `taken by ${mine.attrs.NodeName ?? mine.attrs.PublicIP ?? "another writer"}` : "deleted");
  }

  private reclaiming = false;

  /**
   * Our lease key was deleted (expired while the store was unreachable, revoked by an operator):
   * flannel exits ("Lease has been revoked"); we write it back for the same subnet if it is free,
   * so pods keep their addresses, else report impaired (51).
   */
  private async reclaim(why: string): Promise<void> {
    const held = this.held;
    if (!held || this.reclaiming || this.phase !== "running") return;
    this.reclaiming = true;
    const { store } = this.ctx;
    let granted: LeaseId | undefined;
    try {
      const current = await store.get(held.key);
      if (current) {
        const lease = decodeLease(current);
        if (lease?.attrs.NodeName === this.ctx.node.name) return;
        this.setImpaired(`subnet lease ${describe(held)} was ${why}; restart this node's agent and pods to lease a new subnet`);
        return;
      }
      granted = await store.grantLease(LEASE_TTL_SECONDS);
      const put = await store.put(held.key, encodeAttrs(this.attrs), { ifRevision: 0, lease: granted });
      this.ctx.log.warn(`[${COMPONENT}] subnet lease ${describe(held)} was ${why}; re-created it (flannel would exit here)`);
      if (held.storeLease !== undefined) await store.revokeLease(held.storeLease).catch(() => undefined);
      held.storeLease = granted;
      held.modRevision = put.revision;
      granted = undefined;
      for (const c of this.components) c.setLease?.(held.storeLease);
      this.impaired = undefined;
      this.scheduleRenewal(this.renewDelayMs());
    } catch (err) {
      if (err instanceof ConflictError) {
        this.setImpaired(`subnet lease ${describe(held)} was ${why} and another node leased it; restart this node's agent and pods`);
      } else {
        this.warn("could not re-create the lost subnet lease; retrying at the next resync", err);
      }
    } finally {
      if (granted !== undefined) await store.revokeLease(granted).catch(() => undefined);
      this.reclaiming = false;
    }
  }

  private renewDelayMs(): number {
    return Math.max(60_000, LEASE_TTL_SECONDS * 1000 - this.config.subnetLeaseRenewMarginMinutes * 60_000);
  }

  private scheduleRenewal(ms: number): void {
    this.renewTimer?.cancel();
    if (this.held?.storeLease === undefined) return; // a reservation never expires
    this.renewTimer = this.ctx.clock.setTimeout(() => void this.renew(), ms);
  }

  /** Keeps the store lease alive; retried every minute on failure, re-created when it expired. */
  private async renew(): Promise<void> {
    const held = this.held;
    if (!held?.storeLease || this.phase !== "running") return;
    try {
      await this.ctx.store.keepAlive(held.storeLease);
      this.counters.renewals++;
      this.scheduleRenewal(this.renewDelayMs());
    } catch (err) {
      if (err instanceof NotFoundError) {
        await this.reclaim("expired");
        if (this.held?.storeLease === held.storeLease) this.scheduleRenewal(RENEW_RETRY_MS);
      } else {
        this.warn(`lease renewal failed; retrying in ${RENEW_RETRY_MS / 1000} s`, err);
        this.scheduleRenewal(RENEW_RETRY_MS);
      }
    }
  }

  private setImpaired(reason: string): void {
    if (this.impaired === reason) return;
    this.impaired = reason;
    this.ctx.log.error(`[${COMPONENT}] ${reason}`);
  }

  private warn(msg: string, err: unknown): void {
    this.ctx.log.warn(`[${COMPONENT}] ${msg}: ${err instanceof Error ? err.message : String(err)}`);
  }

  /**
   * Stops watches and timers. With `release: true` revokes the subnet lease (every other node
   * drops its entries at once) and forgets it in `ctx.local`; without, the lease stays for the
   * next agent on this node (it is taken over by node name). A reservation (no TTL) is never
   * deleted. Idempotent; never throws (a failed revoke is logged: the lease then expires).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    const wasActive = this.phase !== "stopped" && this.phase !== "new";
    this.phase = "stopped";
    this.abort.abort();
    for (const t of this.timers.splice(0)) t.cancel();
    this.renewTimer?.cancel();
    this.replanTimer?.cancel();
    if (!wasActive || !options.release) return;
    await this.startPromise?.catch(() => undefined);
    for (const c of this.components) await c.stop();
    const held = this.held;
    if (!held) return;
    try {
      if (held.storeLease !== undefined) await this.ctx.store.revokeLease(held.storeLease);
      await this.ctx.local.delete(LOCAL_KEYS.lease);
    } catch (err) {
      this.warn(`could not release ${describe(held)}; it expires within ${LEASE_TTL_SECONDS / 3600} h`, err);
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private requireRunning(op: string): AcquiredLease {
    if (this.phase !== "running" || !this.held) {
      throw new NotReadyError(`[${COMPONENT}] ${op} on node ${this.ctx.node.name}: the agent is ${this.phase === "stopped" ? "stopped" : "not started"}`);
    }
    return this.held;
  }

  private resultFor(held: LeaseSubnets, record: PodRecord): AttachResult {
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

  /**
   * CNI ADD: reserves one address per enabled family in the node subnet (the requested ones, if
   * any; network, gateway and broadcast never), persists the reservation in `ctx.local`, and adds
   * the pod to the dataplane. Idempotent per (containerId, ifName). Throws `NotReadyError` (50)
   * before start, `ConfigError` (7) for a missing id or more than one requested address per
   * family, `PoolExhaustedError` (100), `AddressInUseError` (101) for a requested address that is
   * taken or outside the node subnet, `TryAgainError` (11) when the reservation could not be
   * persisted (then nothing is reserved).
   */
  attach(pod: PodAttachment): Promise<AttachResult> {
    return this.serial(async () => {
      const held = this.requireRunning("ADD");
      if (!pod.containerId) throw new ConfigError({ component: COMPONENT, field: "containerId", rule: "must not be empty" });
      if (!pod.ifName) throw new ConfigError({ component: COMPONENT, field: "ifName", rule: "must not be empty" });
      const key = podKey(pod);
      const existing = this.pods.get(key);
      if (existing) return this.resultFor(held, existing);

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
        const record: PodRecord = { containerId: pod.containerId, ifName: pod.ifName, addresses: taken.map(([, a]) => a), netns: pod.netns };
        if (pod.namespace !== undefined) record.namespace = pod.namespace;
        if (pod.podName !== undefined) record.podName = pod.podName;
        if (pod.labels !== undefined) record.labels = { ...pod.labels };
        if (pod.ports !== undefined) record.ports = pod.ports.map((p) => ({ ...p }));
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
        this.pods.set(key, record);
        for (const c of this.components) c.podAdded?.(flannelPodOf(record));
        this.replan();
        return this.resultFor(held, record);
      } catch (err) {
        for (const [pool, address] of taken) pool.release(address);
        // Put the round-robin cursor back too: a failed ADD leaves no trace.
        for (const [family, pool] of this.pools) {
          const before = cursors.get(family) ?? null;
          if (pool.lastReserved !== before) this.pools.set(family, AddressPool.restore(this.poolOptions(family, pool.range), { ...pool.snapshot(), lastReserved: before }));
        }
        throw err;
      }
    });
  }

  /**
   * CNI DEL: forgets the reservation (in `ctx.local` first, then in memory) and removes the pod from
   * the dataplane. Idempotent: an unknown attachment succeeds. Throws `TryAgainError` (11) only
   * when the release could not be recorded (then nothing was released).
   */
  detach(ref: PodRef): Promise<void> {
    return this.serial(() => this.release(ref));
  }

  private async release(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    try {
      await this.ctx.local.delete(localPodKey(ref));
    } catch (err) {
      throw err instanceof TryAgainError ? err : new TryAgainError(`[${COMPONENT}] could not record the release of ${key}; try again`, { cause: err });
    }
    const record = this.pods.get(key);
    this.pods.delete(key);
    for (const pool of this.pools.values()) pool.releaseOwner(key);
    if (record) for (const c of this.components) c.podRemoved?.(ref);
    if (record) this.replan();
  }

  /**
   * CNI CHECK: passes silently when the reservation is in memory, in `ctx.local` and in the pools,
   * and the pod is in the dataplane. Throws `UnknownContainerError` (3) for an attachment never
   * made (or deleted), `CheckFailedError` (106) naming what drifted, `NotReadyError` (50) before start.
   */
  check(ref: PodRef): Promise<void> {
    return this.serial(async () => {
      this.requireRunning("CHECK");
      const key = podKey(ref);
      const record = this.pods.get(key);
      if (!record) throw new UnknownContainerError(`[${COMPONENT}] no attachment ${key} on node ${this.ctx.node.name}`);
      const stored = await this.ctx.local.get(localPodKey(ref));
      if (!stored) throw new CheckFailedError(`[${COMPONENT}] the reservation for ${key} is missing from the node-local store`);
      for (const address of record.addresses) {
        const pool = this.pools.get(Prefix.host(address).family);
        if (pool?.ownerOf(address) !== key) throw new CheckFailedError(`[${COMPONENT}] ${address} is not reserved for ${key} in the node subnet pool`);
      }
      const iface = this.lastPlan.pods.find((p) => p.key === key);
      if (!iface) throw new CheckFailedError(`[${COMPONENT}] ${key} has no interface in the dataplane of node ${this.ctx.node.name}`);
      if (iface.routes.length === 0) throw new CheckFailedError(`[${COMPONENT}] ${key} has no routes`);
    });
  }

  /**
   * CNI GC: releases every attachment not in `valid` (in memory and in `ctx.local`). Continues past
   * failures and throws one `TryAgainError` (11) listing them at the end.
   */
  gc(valid: PodRef[]): Promise<void> {
    return this.serial(async () => {
      const keep = new Set(valid.map((v) => podKey(v)));
      const known = new Map<string, PodRef>();
      for (const record of this.pods.values()) known.set(podKey(record), record);
      const persisted = await this.ctx.local.list(LOCAL_KEYS.pods).catch(() => ({ items: [] as KeyValue[] }));
      for (const kv of persisted.items) {
        const rest = kv.key.slice(LOCAL_KEYS.pods.length);
        const slash = rest.lastIndexOf("/");
        if (slash > 0) known.set(rest, { containerId: rest.slice(0, slash), ifName: rest.slice(slash + 1) });
      }
      const failures: string[] = [];
      for (const [key, ref] of known) {
        if (keep.has(key)) continue;
        try {
          await this.release(ref);
        } catch (err) {
          failures.push(`${key}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (failures.length > 0) throw new TryAgainError(`[${COMPONENT}] GC could not release ${failures.length} attachment(s)`, { details: failures.join("; ") });
    });
  }

  /**
   * CNI STATUS: ready once the lease is held; 50 before start or after stop; 51 when the lease was
   * lost to another node. While ready, `reason` lists peers that got no entries (host-gw peers on
   * another L2 subnet, leases of another backend type).
   */
  status(): AgentStatus {
    if (this.phase !== "running") {
      return { ready: false, code: 50, reason: `[${COMPONENT}] agent on node ${this.ctx.node.name} is ${this.phase === "stopped" ? "stopped" : "not started"}` };
    }
    if (this.impaired) return { ready: false, code: 51, reason: `[${COMPONENT}] ${this.impaired}` };
    if (this.skipped.length > 0) {
      const shown = this.skipped.slice(0, 5).map((s) => `${s.node ?? s.key}: ${s.reason}`);
      const more = this.skipped.length > 5 ? `; and ${this.skipped.length - 5} more` : "";
      return { ready: true, reason: `[${COMPONENT}] no route to ${this.skipped.length} peer(s): ${shown.join("; ")}${more}` };
    }
    return { ready: true };
  }

  /** The desired dataplane now (do not mutate it). */
  dataplane(): NodeDataplane {
    return this.lastPlan;
  }

  /** Subscribes to dataplane changes; returns the unsubscribe function. */
  onDataplaneChange(listener: (dataplane: NodeDataplane) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The lease this agent holds (after start). */
  lease(): Readonly<AcquiredLease> | undefined {
    return this.held;
  }

  /** Leases the current plan made no entries for, and why. */
  skippedPeers(): readonly SkippedPeer[] {
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

  /**
   * Coalesces re-plans after lease changes: right after the current burst of events (setImmediate)
   * when the last plan is older than REPLAN_MIN_INTERVAL_MS, else when that interval has passed
   * on `ctx.clock`.
   */
  private scheduleReplan(): void {
    if (this.replanQueued) return;
    this.replanQueued = true;
    const run = (): void => {
      this.replanQueued = false;
      this.replanTimer = undefined;
      if (this.phase === "running") this.replan();
    };
    const wait = this.lastReplanAt + REPLAN_MIN_INTERVAL_MS - this.ctx.clock.now();
    if (wait <= 0) setImmediate(run);
    else this.replanTimer = this.ctx.clock.setTimeout(run, wait);
  }

  private replan(): void {
    const held = this.held;
    if (!held) return;
    this.counters.replans++;
    this.lastReplanAt = this.ctx.clock.now();
    const policy = this.policy?.();
    const { dataplane, skipped } = planWithDiagnostics(
      {
        ...(policy ? { policy: recordPolicy(policy) } : {}),
        config: this.config,
        node: this.ctx.node,
        lease: { ...subnetsOf(held), key: held.key },
        vtepMacs: this.vtepMacs,
        leases: [...this.view.values()],
        pods: [...this.pods.values()],
      },
      this.planCache,
    );
    this.skipped = skipped;
    for (const s of skipped) {
      if (this.warnedSkipped.get(s.key) === s.reason) continue;
      this.warnedSkipped.set(s.key, s.reason);
      this.ctx.log.warn(`[${COMPONENT}] no entries for lease ${s.key}${s.node ? ` of node ${s.node}` : ""}: ${s.reason}`);
    }
    this.lastPlan = dataplane;
    for (const listener of this.listeners) {
      try {
        listener(dataplane);
      } catch (err) {
        this.warn("a dataplane listener threw", err);
      }
    }
  }
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


/**
 * Flannel's agent with extra components composed into it: the composition point Canal uses (see
 * components.ts). `createFlannelAgent(ctx)` is plain flannel, what `flannel.createAgent` makes.
 */
export function createFlannelAgent(ctx: AgentContext<FlannelConfig>, options: FlannelAgentOptions = {}): FlannelAgent {
  return new FlannelAgent(ctx, options);
}
