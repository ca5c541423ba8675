/**
 * The reference backend's per-node agent.
 *
 * Cluster state: one key per node subnet, `/cnikit/reference/subnets/<cidr>` = `{node, address}`,
 * claimed by compare-and-swap and attached to a store lease that the agent keeps alive on
 * `ctx.clock`. A node that crashes stops keeping its lease alive, so its subnet expires after the
 * lease TTL and every other node withdraws its route.
 *
 * Every agent watches the subnets prefix (list, then watch from the listing's revision) and
 * re-lists periodically to repair anything a watch may have missed. Pod addresses come from an
 * `AddressPool` over the node subnet; every reservation is persisted in `ctx.local` before ADD
 * returns, so a restarted agent on the same node keeps every live pod's address.
 *
 * NetworkPolicy (policy.ts): the agent watches the NetworkPolicies and namespaces at `KUBE_PREFIX`
 * and the pods every agent publishes (namespace, labels, container ports from the ADD, address;
 * attached to the publishing node's subnet lease), and compiles its own pods' filters with
 * @cnikit/netpol. Publishing is best effort and off the ADD path (ADD touches only `ctx.local`); a
 * failed publish is repeated at the next resync.
 */
import {
  AddressPool,
  AddressInUseError,
  ConfigError,
  ConflictError,
  NotFoundError,
  NotReadyError,
  PoolExhaustedError,
  Prefix,
  TryAgainError,
  CheckFailedError,
  UnknownContainerError,
  podKey,
} from "@cnikit/core";
import type {
  AgentContext,
  AgentStatus,
  AttachResult,
  FilterPolicy,
  KeyValue,
  LeaseId,
  NodeAgent,
  NodeDataplane,
  PodAttachment,
  PodRef,
  TimerHandle,
  UnderlayInterface,
} from "@cnikit/core";
import type { ReferenceConfig } from "./config.ts";
import { BRIDGE, gatewayOf, hostIfName, macFor, planWithDiagnostics } from "./plan.ts";
import type { PeerSubnet, PodRecord } from "./plan.ts";
import { POD_PREFIX, PolicyView, containerPorts, publishedPodKey } from "./policy.ts";
import type { PublishedPod } from "./policy.ts";

/** Prefix of the subnet claims in the cluster store. */
export const SUBNET_PREFIX = "/cnikit/reference/subnets/";
/** TTL of a node's subnet lease. */
export const LEASE_TTL_SECONDS = 30;
/** How often the lease is kept alive (a third of the TTL: two keep-alives may be lost). */
export const KEEPALIVE_MS = 10_000;
/** How often the subnet list is re-read in full, repairing missed watch events. */
export const RESYNC_MS = 30_000;
/** Delay before re-opening a watch that failed. */
export const WATCH_RETRY_MS = 1_000;
/** How many lost compare-and-swaps a claim tolerates before giving up with code 11. */
export const CLAIM_ATTEMPTS = 32;

const COMPONENT = "reference";
const LOCAL_CLAIM = "/claim";
const LOCAL_PODS = "/pods/";

interface ClaimValue {
  node: string;
  address: string;
}

interface LocalClaim {
  subnet: string;
  lease: LeaseId;
}

/** The store key of a subnet claim. */
export function subnetKey(subnet: string): string {
  return `${SUBNET_PREFIX}${subnet}`;
}

function localPodKey(ref: PodRef): string {
  return `${LOCAL_PODS}${ref.containerId}/${ref.ifName}`;
}

function parseClaim(kv: KeyValue): PeerSubnet | undefined {
  const subnet = kv.key.slice(SUBNET_PREFIX.length);
  try {
    const value = JSON.parse(kv.value) as Partial<ClaimValue>;
    if (typeof value.node !== "string" || typeof value.address !== "string") return undefined;
    return { node: value.node, address: value.address, subnet: Prefix.parse(subnet).toString() };
  } catch {
    return undefined;
  }
}

/** The node's IPv4 underlay interface; throws ConfigError when there is none. */
function underlayOf(ctx: AgentContext<ReferenceConfig>): UnderlayInterface {
  const found = ctx.node.underlay.find((u) => !u.address.includes(":"));
  if (!found) {
    throw new ConfigError({ component: COMPONENT, field: "node.underlay", rule: "the reference backend needs an IPv4 underlay interface", value: ctx.node.underlay });
  }
  return found;
}

/** The reference NodeAgent; see the module comment. Create it with `reference.createAgent`. */
export class ReferenceAgent implements NodeAgent {
  private readonly ctx: AgentContext<ReferenceConfig>;
  private readonly config: ReferenceConfig;
  private phase: "new" | "starting" | "running" | "stopped" = "new";
  private startPromise: Promise<void> | undefined;
  private underlay: UnderlayInterface | undefined;
  private claim: LocalClaim | undefined;
  private pool: AddressPool | undefined;
  private readonly pods = new Map<string, PodRecord>();
  private readonly peers = new Map<string, PeerSubnet>();
  /** Highest store revision reflected in `peers` (events at or below it are stale). */
  private syncedRevision = 0;
  private readonly abort = new AbortController();
  private readonly timers: TimerHandle[] = [];
  private keepAliveRunning = false;
  private impaired: string | undefined;
  private lastPlan: NodeDataplane;
  private lastPlanJson = "";
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();
  private readonly warnedUnroutable = new Set<string>();
  /** Serialises ADD/DEL/CHECK/GC: node-local IPAM changes happen one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly policyView: PolicyView;
  private filters: FilterPolicy[] = [];
  /** Publishes and unpublishes of local pods, in order. */
  private publishing: Promise<void> = Promise.resolve();
  /** A publish failed: re-publish every local pod at the next resync. */
  private publishDirty = false;

  constructor(ctx: AgentContext<ReferenceConfig>) {
    this.ctx = ctx;
    this.config = ctx.config;
    this.policyView = new PolicyView(ctx as AgentContext<unknown>, () => this.onPolicyChange(), (msg, err) => this.warn(msg, err));
    this.lastPlan = {
      node: ctx.node.name,
      links: [],
      addresses: [],
      routes: [],
      neighbours: [],
      fdb: [],
      sysctls: {},
      nat: [],
      filters: [],
      pods: [],
    };
  }

  /**
   * Claims (or re-takes) the node subnet, restores pod reservations from `ctx.local`, lists and
   * watches the other nodes' subnets, and starts the keep-alive and resync timers. A second call
   * returns the first call's promise. Throws `ConfigError` (no IPv4 underlay, mtu above the
   * underlay's), `PoolExhaustedError` (every node subnet taken), `TryAgainError` (store
   * unavailable, or the claim lost too many races).
   */
  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    this.phase = "starting";
    const underlay = underlayOf(this.ctx);
    this.underlay = underlay;
    const underlayMtu = underlay.mtu ?? 1500;
    if (this.config.mtu > underlayMtu) {
      throw new ConfigError({
        component: COMPONENT,
        field: "mtu",
        rule: `must not exceed the underlay MTU ${underlayMtu} of ${underlay.iface} on node ${this.ctx.node.name} (the reference backend adds no encapsulation)`,
        value: this.config.mtu,
      });
    }
    const claim = await this.claimSubnet();
    this.claim = claim;
    await this.ctx.local.put(LOCAL_CLAIM, JSON.stringify(claim));
    await this.restorePods(claim.subnet);
    const listing = await this.resync();
    await this.policyView.start(this.abort.signal);
    if (this.phase !== "starting") return;
    this.phase = "running";
    this.republishAll();
    this.recompileFilters();
    void this.watchLoop(listing);
    this.timers.push(this.ctx.clock.setInterval(() => void this.keepLeaseAlive(), KEEPALIVE_MS));
    this.timers.push(this.ctx.clock.setInterval(() => void this.resync().catch((err) => this.warn("resync failed", err)), RESYNC_MS));
    this.ctx.log.info(`[reference] node ${this.ctx.node.name} holds ${claim.subnet}`, { subnet: claim.subnet, pods: this.pods.size });
    this.replan();
  }

  /**
   * Finds this node's subnet: the one the store already names it for (a restart), else the one
   * remembered in `ctx.local` if still free, else a random free one. Every write is a CAS; a lost
   * race re-lists and tries again.
   */
  private async claimSubnet(): Promise<LocalClaim> {
    const { store } = this.ctx;
    const me = this.ctx.node.name;
    const address = this.underlay!.address;
    const value = JSON.stringify({ node: me, address } satisfies ClaimValue);
    const remembered = await this.readLocalClaim();
    const network = Prefix.parse(this.config.network);

    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const listing = await store.list(SUBNET_PREFIX);
      const claims = listing.items.map((kv) => ({ kv, peer: parseClaim(kv) }));
      const mine = claims.find((c) => c.peer?.node === me);
      if (mine?.peer) {
        // Restart: the claim is still ours. Keep the same lease when it is alive and the value current.
        if (remembered && mine.kv.lease === remembered.lease && mine.kv.value === value && remembered.subnet === mine.peer.subnet) {
          try {
            await store.keepAlive(remembered.lease);
            return remembered;
          } catch (err) {
            if (!(err instanceof NotFoundError)) throw err;
          }
        }
        const lease = await store.grantLease(LEASE_TTL_SECONDS);
        try {
          await store.put(mine.kv.key, value, { ifRevision: mine.kv.modRevision, lease });
          return { subnet: mine.peer.subnet, lease };
        } catch (err) {
          await store.revokeLease(lease).catch(() => undefined);
          if (err instanceof ConflictError) continue;
          throw err;
        }
      }

      const taken = new Set(claims.map((c) => c.kv.key.slice(SUBNET_PREFIX.length)));
      const candidates: string[] = [];
      if (remembered && !taken.has(remembered.subnet) && network.contains(Prefix.parse(remembered.subnet))) {
        candidates.push(remembered.subnet);
      } else {
        for (const sub of network.subnets(this.config.nodeSubnetLength)) {
          const text = sub.toString();
          if (!taken.has(text)) candidates.push(text);
          if (candidates.length >= 16) break;
        }
      }
      if (candidates.length === 0) {
        throw new PoolExhaustedError(
          this.config.network,
          `[reference] every /${this.config.nodeSubnetLength} of ${this.config.network} is claimed by another node; use a larger network or a longer nodeSubnetLength`,
        );
      }
      // Random pick among the first free subnets keeps nodes that start together from colliding.
      const pick = candidates[Math.min(candidates.length - 1, Math.floor(this.ctx.random() * candidates.length))]!;
      const lease = await store.grantLease(LEASE_TTL_SECONDS);
      try {
        await store.put(subnetKey(pick), value, { ifRevision: 0, lease });
        return { subnet: pick, lease };
      } catch (err) {
        await store.revokeLease(lease).catch(() => undefined);
        if (err instanceof ConflictError) continue;
        throw err;
      }
    }
    throw new TryAgainError(`[reference] lost the subnet claim race ${CLAIM_ATTEMPTS} times on node ${me}; try again`);
  }

  private async readLocalClaim(): Promise<LocalClaim | undefined> {
    const kv = await this.ctx.local.get(LOCAL_CLAIM);
    if (!kv) return undefined;
    try {
      const parsed = JSON.parse(kv.value) as Partial<LocalClaim>;
      if (typeof parsed.subnet === "string" && typeof parsed.lease === "string") return { subnet: parsed.subnet, lease: parsed.lease };
    } catch {
      // A corrupt record is treated as none: the store tells us what we hold.
    }
    return undefined;
  }

  /** Rebuilds the pool from the persisted reservations; drops records outside the subnet. */
  private async restorePods(subnet: string): Promise<void> {
    const pool = new AddressPool({ range: subnet, gateway: gatewayOf(subnet), name: `reference ${this.ctx.node.name}`, component: COMPONENT });
    const listing = await this.ctx.local.list(LOCAL_PODS);
    const range = Prefix.parse(subnet);
    for (const kv of listing.items) {
      let record: PodRecord;
      try {
        record = JSON.parse(kv.value) as PodRecord;
      } catch {
        this.ctx.log.warn(`[reference] dropping unreadable reservation ${kv.key}`);
        await this.ctx.local.delete(kv.key);
        continue;
      }
      if (!range.contains(record.address)) {
        this.ctx.log.warn(`[reference] dropping reservation ${record.address} of ${podKey(record)}: outside this node's subnet ${subnet}`);
        await this.ctx.local.delete(kv.key);
        continue;
      }
      pool.allocateSpecific(record.address, podKey(record));
      this.pods.set(podKey(record), record);
    }
    this.pool = pool;
  }

  /** Re-lists every subnet claim and replaces the peer view. Returns the listing's revision. */
  private async resync(): Promise<number> {
    const listing = await this.ctx.store.list(SUBNET_PREFIX);
    if (listing.revision < this.syncedRevision) return this.syncedRevision;
    this.peers.clear();
    for (const kv of listing.items) {
      const peer = parseClaim(kv);
      if (peer) this.peers.set(peer.subnet, peer);
    }
    this.syncedRevision = listing.revision;
    if (this.phase === "running") {
      if (this.publishDirty) this.republishAll();
      await this.reassertOwnClaim();
      this.replan();
    }
    return listing.revision;
  }

  /** If our own claim vanished from the store while our lease lives, write it back. */
  private async reassertOwnClaim(): Promise<void> {
    const claim = this.claim;
    if (!claim || this.peers.get(claim.subnet)?.node === this.ctx.node.name) return;
    if (this.peers.has(claim.subnet)) {
      this.setImpaired(`subnet ${claim.subnet} is now claimed by node ${this.peers.get(claim.subnet)!.node}; restart this node's pods`);
      return;
    }
    try {
      await this.ctx.store.put(subnetKey(claim.subnet), JSON.stringify({ node: this.ctx.node.name, address: this.underlay!.address }), {
        ifRevision: 0,
        lease: claim.lease,
      });
    } catch (err) {
      if (err instanceof NotFoundError) await this.reclaimAfterExpiry();
      else this.warn("could not re-assert the subnet claim", err);
    }
  }

  private async watchLoop(fromRevision: number): Promise<void> {
    let from = fromRevision;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        for await (const event of this.ctx.store.watch(SUBNET_PREFIX, { fromRevision: from, signal })) {
          from = event.revision;
          if (event.revision <= this.syncedRevision) continue;
          this.syncedRevision = event.revision;
          if (event.type === "put") {
            const peer = parseClaim(event.kv);
            if (peer) this.peers.set(peer.subnet, peer);
          } else {
            const subnet = event.key.slice(SUBNET_PREFIX.length);
            this.peers.delete(subnet);
          }
          this.replan();
        }
      } catch (err) {
        if (signal.aborted) return;
        this.warn("subnet watch failed; re-listing", err);
      }
      if (signal.aborted) return;
      try {
        await this.ctx.clock.sleep(WATCH_RETRY_MS, signal);
        from = await this.resync();
      } catch (err) {
        if (signal.aborted) return;
        this.warn("re-list after a watch failure failed", err);
      }
    }
  }

  private async keepLeaseAlive(): Promise<void> {
    if (this.keepAliveRunning || this.phase !== "running" || !this.claim) return;
    this.keepAliveRunning = true;
    try {
      await this.ctx.store.keepAlive(this.claim.lease);
    } catch (err) {
      if (err instanceof NotFoundError) await this.reclaimAfterExpiry();
      else this.warn("lease keep-alive failed; retrying at the next interval", err);
    } finally {
      this.keepAliveRunning = false;
    }
  }

  /** Our lease expired (the store was unreachable for longer than the TTL): take the same subnet back. */
  private async reclaimAfterExpiry(): Promise<void> {
    const claim = this.claim;
    if (!claim || this.phase !== "running") return;
    try {
      const lease = await this.ctx.store.grantLease(LEASE_TTL_SECONDS);
      try {
        await this.ctx.store.put(subnetKey(claim.subnet), JSON.stringify({ node: this.ctx.node.name, address: this.underlay!.address }), {
          ifRevision: 0,
          lease,
        });
      } catch (err) {
        await this.ctx.store.revokeLease(lease).catch(() => undefined);
        if (err instanceof ConflictError) {
          const holder = await this.ctx.store.get(subnetKey(claim.subnet));
          const other = holder ? parseClaim(holder)?.node : undefined;
          if (other !== this.ctx.node.name) {
            this.setImpaired(`subnet ${claim.subnet} expired and was claimed by node ${other ?? "?"}; restart this node's pods`);
          }
          return;
        }
        throw err;
      }
      this.claim = { subnet: claim.subnet, lease };
      await this.ctx.local.put(LOCAL_CLAIM, JSON.stringify(this.claim));
      this.republishAll();
      this.ctx.log.warn(`[reference] lease of ${claim.subnet} had expired; claimed it again`);
    } catch (err) {
      this.warn("could not re-claim the subnet after the lease expired; retrying at the next keep-alive", err);
    }
  }

  private setImpaired(reason: string): void {
    if (this.impaired === reason) return;
    this.impaired = reason;
    this.ctx.log.error(`[reference] ${reason}`);
  }

  private warn(msg: string, err: unknown): void {
    this.ctx.log.warn(`[reference] ${msg}: ${err instanceof Error ? err.message : String(err)}`);
  }

  /**
   * Stops watches and timers. With `release: true` revokes the subnet lease (other nodes drop
   * their route at once) and forgets the claim in `ctx.local`; without, the claim stays for the
   * next agent on this node. Idempotent; never throws (a failed revoke is logged: the lease then
   * simply expires).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    const wasRunning = this.phase !== "stopped";
    this.phase = "stopped";
    this.abort.abort();
    for (const t of this.timers.splice(0)) t.cancel();
    if (!wasRunning || !options.release) return;
    await this.startPromise?.catch(() => undefined);
    const claim = this.claim;
    if (!claim) return;
    try {
      await this.ctx.store.revokeLease(claim.lease);
      await this.ctx.local.delete(LOCAL_CLAIM);
    } catch (err) {
      this.warn(`could not release ${claim.subnet}; it expires after ${LEASE_TTL_SECONDS}s`, err);
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private requireRunning(op: string): { subnet: string; pool: AddressPool } {
    if (this.phase !== "running" || !this.claim || !this.pool) {
      throw new NotReadyError(`[reference] ${op} on node ${this.ctx.node.name}: the agent is ${this.phase === "stopped" ? "stopped" : "not started"}`);
    }
    return { subnet: this.claim.subnet, pool: this.pool };
  }

  private resultFor(subnet: string, record: PodRecord): AttachResult {
    const gateway = gatewayOf(subnet);
    const length = Prefix.parse(subnet).length;
    return {
      interfaces: [
        { name: BRIDGE, mac: macFor(gateway), mtu: this.config.mtu },
        { name: hostIfName(record), mtu: this.config.mtu },
        { name: record.ifName, mac: macFor(record.address), mtu: this.config.mtu, sandbox: record.netns ?? "" },
      ],
      ips: [{ address: `${record.address}/${length}`, gateway, interface: 2 }],
      routes: [{ dst: "0.0.0.0/0", gw: gateway }],
    };
  }

  /**
   * CNI ADD: reserves an address in the node subnet (the requested one, if any), persists the
   * reservation in `ctx.local`, and adds the pod to the dataplane. Idempotent per (containerId,
   * ifName). Throws `NotReadyError` (50) before start, `ConfigError` (7) for more than one
   * requested address or a missing id, `PoolExhaustedError` (100), `AddressInUseError` (101),
   * `TryAgainError` (11) when the reservation could not be persisted (then nothing is reserved).
   */
  attach(pod: PodAttachment): Promise<AttachResult> {
    return this.serial(async () => {
      const { subnet, pool } = this.requireRunning("ADD");
      if (!pod.containerId) throw new ConfigError({ component: COMPONENT, field: "containerId", rule: "must not be empty" });
      if (!pod.ifName) throw new ConfigError({ component: COMPONENT, field: "ifName", rule: "must not be empty" });
      const key = podKey(pod);
      const existing = this.pods.get(key);
      if (existing) return this.resultFor(subnet, existing);
      const requested = pod.requestedIps ?? [];
      if (requested.length > 1) {
        throw new ConfigError({ component: COMPONENT, field: "requestedIps", rule: "the reference backend is IPv4 single-stack: ask for at most one address", value: requested });
      }
      let address: string;
      if (requested[0] !== undefined) {
        const wanted = requested[0];
        if (!Prefix.parse(subnet).contains(wanted)) {
          throw new AddressInUseError(wanted, `[reference] requested address ${wanted} is outside node ${this.ctx.node.name}'s subnet ${subnet}`);
        }
        address = pool.allocateSpecific(wanted, key);
      } else {
        address = pool.allocate(key);
      }
      const record: PodRecord = { containerId: pod.containerId, ifName: pod.ifName, address, netns: pod.netns };
      if (pod.namespace !== undefined) record.namespace = pod.namespace;
      if (pod.podName !== undefined) record.podName = pod.podName;
      if (pod.labels !== undefined) record.labels = { ...pod.labels };
      if (pod.ports !== undefined) record.ports = pod.ports.map((p) => ({ ...p }));
      try {
        await this.ctx.local.put(localPodKey(pod), JSON.stringify(record));
      } catch (err) {
        pool.release(address);
        throw err instanceof TryAgainError ? err : new TryAgainError(`[reference] could not record the reservation of ${address} for ${key}; try again`, { cause: err });
      }
      this.pods.set(key, record);
      this.publish(record);
      this.recompileFilters();
      this.replan();
      return this.resultFor(subnet, record);
    });
  }

  /**
   * CNI DEL: forgets the reservation (in `ctx.local` first, then in memory) and removes the pod from
   * the dataplane. Idempotent: an unknown attachment succeeds. Works before start and after stop
   * only for the persisted record. Throws `TryAgainError` (11) when the release could not be
   * recorded (then nothing was released).
   */
  detach(ref: PodRef): Promise<void> {
    return this.serial(async () => {
      await this.release(ref);
    });
  }

  private async release(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    try {
      await this.ctx.local.delete(localPodKey(ref));
    } catch (err) {
      throw err instanceof TryAgainError ? err : new TryAgainError(`[reference] could not record the release of ${key}; try again`, { cause: err });
    }
    const record = this.pods.get(key);
    this.pods.delete(key);
    if (this.pool) {
      if (record) this.pool.release(record.address);
      this.pool.releaseOwner(key);
    }
    if (record) {
      this.unpublish(key);
      this.recompileFilters();
      this.replan();
    }
  }

  /**
   * CNI CHECK: passes silently when the reservation is in memory, in `ctx.local` and in the pool,
   * inside the node subnet, and the pod is in the dataplane. Throws `UnknownContainerError` (3) for
   * an attachment never made (or already deleted), `CheckFailedError` (106) naming what drifted,
   * `NotReadyError` (50) before start.
   */
  check(ref: PodRef): Promise<void> {
    return this.serial(async () => {
      const { subnet, pool } = this.requireRunning("CHECK");
      const key = podKey(ref);
      const record = this.pods.get(key);
      if (!record) throw new UnknownContainerError(`[reference] no attachment ${key} on node ${this.ctx.node.name}`);
      const stored = await this.ctx.local.get(localPodKey(ref));
      if (!stored) throw new CheckFailedError(`[reference] reservation of ${record.address} for ${key} is missing from the node-local store`);
      if (pool.ownerOf(record.address) !== key) {
        throw new CheckFailedError(`[reference] ${record.address} is not reserved for ${key} in the pool of ${subnet}`);
      }
      if (!Prefix.parse(subnet).contains(record.address)) {
        throw new CheckFailedError(`[reference] ${record.address} of ${key} is outside this node's subnet ${subnet}`);
      }
      if (!this.lastPlan.pods.some((p) => p.key === key)) {
        throw new CheckFailedError(`[reference] ${key} has no interface in the dataplane of node ${this.ctx.node.name}`);
      }
      if (!this.lastPlan.addresses.some((a) => a.dev === BRIDGE)) {
        throw new CheckFailedError(`[reference] bridge ${BRIDGE} has no gateway address on node ${this.ctx.node.name}`);
      }
    });
  }

  /**
   * CNI GC: releases every attachment not in `valid`. Continues past failures and throws one
   * `TryAgainError` (11) listing them at the end.
   */
  gc(valid: PodRef[]): Promise<void> {
    return this.serial(async () => {
      const keep = new Set(valid.map((v) => podKey(v)));
      const failures: string[] = [];
      const persisted = await this.ctx.local.list(LOCAL_PODS).catch(() => ({ items: [] as KeyValue[] }));
      const known = new Map<string, PodRef>();
      for (const record of this.pods.values()) known.set(podKey(record), record);
      for (const kv of persisted.items) {
        const [containerId, ifName] = kv.key.slice(LOCAL_PODS.length).split("/");
        if (containerId && ifName) known.set(podKey({ containerId, ifName }), { containerId, ifName });
      }
      for (const [key, ref] of known) {
        if (keep.has(key)) continue;
        try {
          await this.release(ref);
        } catch (err) {
          failures.push(`${key}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (failures.length > 0) throw new TryAgainError(`[reference] GC could not release ${failures.length} attachment(s)`, { details: failures.join("; ") });
    });
  }

  /** CNI STATUS: ready once the subnet is held; 50 before start or after stop; 51 if the subnet was lost. */
  status(): AgentStatus {
    if (this.phase !== "running") {
      return { ready: false, code: 50, reason: `[reference] agent on node ${this.ctx.node.name} is ${this.phase === "stopped" ? "stopped" : "not started"}` };
    }
    if (this.impaired) return { ready: false, code: 51, reason: `[reference] ${this.impaired}` };
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

  /** What other nodes need to know about a local pod for NetworkPolicy. */
  private published(record: PodRecord): PublishedPod {
    return {
      node: this.ctx.node.name,
      key: podKey(record),
      namespace: record.namespace ?? "default",
      name: record.podName ?? record.containerId,
      labels: { ...(record.labels ?? {}) },
      ips: [record.address],
      ports: containerPorts(record.ports),
      hostIf: hostIfName(record),
    };
  }

  /** Queues the publication of a local pod under the subnet lease (best effort; see publishDirty). */
  private publish(record: PodRecord): void {
    const lease = this.claim?.lease;
    if (lease === undefined || this.phase !== "running") return;
    const key = publishedPodKey(this.ctx.node.name, podKey(record));
    const value = JSON.stringify(this.published(record));
    this.publishing = this.publishing.then(() =>
      this.ctx.store.put(key, value, { lease }).then(
        () => undefined,
        (err: unknown) => {
          this.publishDirty = true;
          this.warn(`could not publish pod ${podKey(record)}; retrying at the next resync`, err);
        },
      ),
    );
  }

  /** Queues the removal of a local pod's publication. */
  private unpublish(key: string): void {
    if (this.phase !== "running") return;
    const storeKey = publishedPodKey(this.ctx.node.name, key);
    this.publishing = this.publishing.then(() =>
      this.ctx.store.delete(storeKey).then(
        () => undefined,
        (err: unknown) => {
          this.publishDirty = true;
          this.warn(`could not unpublish pod ${key}; retrying at the next resync`, err);
        },
      ),
    );
  }

  /** Publishes every local pod and removes this node's publications of pods it no longer has. */
  private republishAll(): void {
    if (this.phase !== "running") return;
    this.publishDirty = false;
    const mine = `${POD_PREFIX}${this.ctx.node.name}/`;
    this.publishing = this.publishing.then(async () => {
      try {
        const listing = await this.ctx.store.list(mine);
        for (const kv of listing.items) if (!this.pods.has(kv.key.slice(mine.length))) await this.ctx.store.delete(kv.key);
      } catch (err) {
        this.publishDirty = true;
        this.warn("could not list this node's published pods; retrying at the next resync", err);
      }
    });
    for (const record of this.pods.values()) this.publish(record);
  }

  private onPolicyChange(): void {
    if (this.phase !== "running") return;
    this.recompileFilters();
    this.replan();
  }

  /** Recompiles the local pods' filters from the policy view (local pods from memory, not the store). */
  private recompileFilters(): void {
    if (this.phase !== "running" || !this.claim || !this.underlay) return;
    try {
      this.filters = this.policyView.compile({
        node: this.ctx.node.name,
        local: [...this.pods.values()].map((r) => this.published(r)),
        nodeAddresses: [this.underlay.address, gatewayOf(this.claim.subnet)],
      });
    } catch (err) {
      this.warn("could not compile NetworkPolicies; keeping the previous filters", err);
    }
  }

  private replan(): void {
    if (!this.underlay) return;
    const input = {
      config: this.config,
      node: this.ctx.node.name,
      underlay: this.underlay,
      peers: [...this.peers.values()],
      pods: [...this.pods.values()],
      filters: this.filters,
      ...(this.claim && this.phase === "running" ? { subnet: this.claim.subnet } : {}),
    };
    const { dataplane, unroutablePeers } = planWithDiagnostics(input);
    for (const peer of unroutablePeers) {
      if (this.warnedUnroutable.has(peer.node)) continue;
      this.warnedUnroutable.add(peer.node);
      this.ctx.log.warn(
        `[reference] node ${peer.node} (${peer.address}) is not on ${this.underlay.iface}'s subnet: no route to ${peer.subnet}. The reference backend needs every node on one L2 subnet.`,
      );
    }
    const json = JSON.stringify(dataplane);
    if (json === this.lastPlanJson) return;
    this.lastPlanJson = json;
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
