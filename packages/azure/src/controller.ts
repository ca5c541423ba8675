/**
 * The Azure backend's cluster-level controller: the VNet allocator. One per cluster (the lead wires
 * `createAzureController` as the backend's `createController`). It reads membership, the nodes'
 * NodeNetworkConfig specs (`/cnikit/azure/nnc/<node>/spec`) and the fabric, and writes only NNC
 * statuses (`.../status`) and subnet states (`/cnikit/azure/subnets/<cidr>`) — each only when its
 * encoded value changed, so a reconcile that changes nothing writes nothing — plus the fabric's
 * secondary addresses (classic) or routes (overlay, static-block, dynamic).
 *
 * API:
 *  - `createAzureController(ctx): ClusterController` and the class `AzureController`, whose
 *    `settled()` resolves once no reconcile is running or queued, and whose
 *    `report(): ControllerReport` gives per subnet the usable / node / assigned / free counts and
 *    the classic nodes that still fit, per node its assigned count, state and reason, and the
 *    reconcile count with the last reconcile's latency (ctx.clock ms and wall ms).
 *
 * Reconciles are serialised: one runs, every trigger that arrives meanwhile merges into the next
 * one. Triggers: a membership change, an NNC spec change (an Informer over `NNC_PREFIX` that
 * decodes `.../spec` keys only), a resync every `RESYNC_MS` (30 s), and `RETRY_MS` (1 s) after a
 * failed reconcile. A fabric or store call that throws (e.g. `TryAgainError`) ends the reconcile;
 * `status()` says why; nothing half-done stays inconsistent: a classic join adds its addresses and
 * removes them again if one add fails, and every grant is ordered so that an address (or block) is
 * routed before a status lists it and never listed in two nodes' statuses at any moment (releases
 * are written before grants).
 *
 * Per mode (every subnet's 5 Azure-reserved addresses and every member's primary addresses and
 * gateways are never assigned):
 *  - classic: each member of a node subnet holds exactly `maxPods` secondary addresses of its own
 *    subnet. Joins in name order; a join is admitted only if `classicJoinRefusal` (sizing.ts) says
 *    it fits with n = the subnet's holders including it and `maxSurge`, and then gets all of its
 *    addresses or none. A refused node gets an Error status with the refusal and is retried on
 *    every reconcile. A partial reservation of a node that was never admitted (a rollback that
 *    itself failed) is taken back before the node's join is judged again. A member that left loses
 *    its addresses and its status; a crashed member keeps both.
 *  - overlay: one /24 of `podCidr` per member (its own across restarts: read from its status),
 *    routed on the fabric; a /24 no member holds loses its route.
 *  - static-block: ceil(maxPods / 16) /28s of `podSubnet` per member, skipping the two blocks that
 *    hold reserved addresses, all or none per node, each routed.
 *  - dynamic: per node, drop `ipsNotInUse` (route deleted, then status written), then add up to
 *    `min(requestedIPCount, scaler.maxIPCount)`, lowest free addresses first, each routed as a /32
 *    before the status lists it. Never removes an address the node did not give back. Short supply
 *    is split max-min fairly (`fairShares`: fewest-held first), because a starving new node is
 *    worse than a big node waiting one more batch; then every status and the subnet state say
 *    `subnetExhausted` and carry `collapsedScaler(config.scaler)`. The flag clears only once every
 *    request is served and at least one full batch is free (hysteresis: no flapping at the edge).
 */
import { ConfigError, Informer, Prefix, canonicalAddress, type ClusterController, type ControllerContext, type ControllerStatus, type FabricRoute, type NodeInfo } from "@cnikit/core";
import { OVERLAY_NODE_PREFIX_LENGTH, type AzureConfig, type ScalerSettings } from "./config.ts";
import { addressValue, fairShares, freeAddressCount, isAzureReserved, lowestFreeAddresses, lowestFreeBlocks } from "./controller-alloc.ts";
import { collapsedScaler, compareAddresses, v2Target } from "./pool.ts";
import {
  NNC_PREFIX,
  SUBNET_STATE_PREFIX,
  decodeNncSpec,
  decodeNncStatus,
  decodeSubnetState,
  encodeNncStatus,
  encodeSubnetState,
  nncSpecKey,
  nncStatusKey,
  parseNncKey,
  subnetStateKey,
  type NncSpec,
  type NncState,
  type NncStatus,
  type SubnetState,
} from "./records.ts";
import { STATIC_BLOCK_LENGTH, classicHeadroom, classicJoinRefusal, staticBlocksPerNode, usableAddresses } from "./sizing.ts";

/** Resync period: a full reconcile even when nothing was heard. */
export const RESYNC_MS = 30_000;
/** Wait before retrying a failed reconcile. */
export const RETRY_MS = 1_000;
/** Overlay: one /24 of podCidr per node. */
const OVERLAY_BLOCK_LENGTH = OVERLAY_NODE_PREFIX_LENGTH;
const C = "azure";

/** One node in `ControllerReport`. */
export interface ControllerNodeReport {
  name: string;
  /** Addresses assigned (classic, dynamic) or addresses in its blocks (overlay, static-block). */
  assigned: number;
  state: NncState;
  reason?: string;
}

/** What `AzureController.report()` returns. */
export interface ControllerReport {
  mode: AzureConfig["mode"];
  /** One per subnet the controller allocates from (classic: every node subnet with members). */
  subnets: SubnetState[];
  /** One per node holding a status, by name. */
  nodes: ControllerNodeReport[];
  /** Reconciles run (failed ones included). */
  reconciles: number;
  /** Reconciles that failed. */
  failures: number;
  /** The last reconcile's duration on `ctx.clock` (virtual ms in the simulator). */
  lastReconcileMs: number;
  /** The last reconcile's wall-clock duration (performance.now()), for benchmarks. */
  lastReconcileWallMs: number;
  /** Why the last reconcile failed, if it did. */
  lastError?: string;
}

const byName = (a: NodeInfo, b: NodeInfo): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const sortAddresses = (list: Iterable<string>): string[] => [...list].sort(compareAddresses);
const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && new Set([...a, ...b]).size === a.length;
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A node's IPv4 underlay subnet, or undefined when it has no IPv4 interface. */
function ipv4Subnet(node: NodeInfo): Prefix | undefined {
  for (const u of node.underlay) {
    const p = Prefix.parse(`${u.address}/${u.prefixLength}`, { allowHostBits: true });
    if (p.family === 4) return p;
  }
  return undefined;
}

/** Every member's primary addresses and gateways, as numbers (never assigned to pods). */
function nodeAddressValues(members: readonly NodeInfo[]): Set<bigint> {
  const out = new Set<bigint>();
  for (const m of members) {
    for (const u of m.underlay) {
      out.add(addressValue(u.address));
      if (u.gateway !== undefined) out.add(addressValue(u.gateway));
    }
  }
  return out;
}

/** Node addresses inside `pool` that are not among its reserved five. */
function nodeAddressesIn(pool: Prefix, values: ReadonlySet<bigint>): number {
  let n = 0;
  for (const v of values) if (pool.contains(v) && !isAzureReserved(pool, v)) n++;
  return n;
}

/** What a status says, before its version is decided. */
type StatusFields = Omit<NncStatus, "version" | "mode">;

/** The VNet allocator; see the module comment. */
export class AzureController implements ClusterController {
  private readonly ctx: ControllerContext<AzureConfig>;
  private readonly abort = new AbortController();
  private readonly specs: Informer<NncSpec>;
  /** Statuses as written in the store (read at start, then every write and delete of ours). */
  private readonly statuses = new Map<string, NncStatus>();
  /** Encoded values of our keys as the store holds them. */
  private readonly written = new Map<string, string>();
  private readonly subnetStates = new Map<string, SubnetState>();
  private running: Promise<void> | undefined;
  private dirty = false;
  private started = false;
  private stopped = false;
  private offMembers: (() => void) | undefined;
  private resyncTimer: { cancel(): void } | undefined;
  private retryTimer: { cancel(): void } | undefined;
  private failure: string | undefined;
  private reconciles = 0;
  private failures = 0;
  /**
   * Classic: addresses the fabric refused to give (ConfigError naming `address`: a router's, a load
   * balancer's, anything outside our view). Never picked again by this controller.
   */
  private readonly refusedByFabric = new Set<bigint>();
  private lastMs = 0;
  private lastWallMs = 0;

  constructor(ctx: ControllerContext<AzureConfig>) {
    this.ctx = ctx;
    this.specs = new Informer<NncSpec>({
      store: ctx.store,
      prefix: NNC_PREFIX,
      clock: ctx.clock,
      signal: this.abort.signal,
      decode: (kv) => (parseNncKey(kv.key)?.half === "spec" ? decodeNncSpec(kv.value) : undefined),
      resyncMs: RESYNC_MS,
      onBatch: (b) => {
        if (b.changed > 0) void this.trigger();
      },
      onError: (error) => ctx.log.warn("azure controller: watching NodeNetworkConfig specs failed; re-listing", { error }),
    });
  }

  /**
   * Validates the config for the controller's mode, reads the statuses and subnet states already
   * in the store (a restarted controller keeps every assignment), starts watching, and resolves
   * after the first reconcile (whose failure, if any, `status()` reports; it is retried).
   * Throws `ConfigError` for a config it cannot serve, or the store's error when the first
   * listing fails.
   */
  async start(): Promise<void> {
    if (this.started || this.stopped) throw new Error("azure controller: start() may be called once");
    this.pools();
    const { store } = this.ctx;
    const [nnc, subnets] = await Promise.all([store.list(NNC_PREFIX), store.list(SUBNET_STATE_PREFIX)]);
    for (const kv of nnc.items) {
      const key = parseNncKey(kv.key);
      if (key?.half !== "status") continue;
      const s = decodeNncStatus(kv.value);
      if (!s) {
        this.ctx.log.warn("azure controller: an NNC status it cannot read is rewritten", { key: kv.key });
        continue;
      }
      this.statuses.set(key.node, s);
      this.written.set(kv.key, kv.value);
    }
    for (const kv of subnets.items) {
      const s = decodeSubnetState(kv.value);
      if (s) this.subnetStates.set(kv.key, s);
      this.written.set(kv.key, kv.value);
    }
    await this.specs.start();
    this.offMembers = this.ctx.members.onChange(() => void this.trigger());
    this.resyncTimer = this.ctx.clock.setInterval(() => void this.trigger(), RESYNC_MS);
    this.started = true;
    await this.trigger();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.offMembers?.();
    this.resyncTimer?.cancel();
    this.retryTimer?.cancel();
    this.abort.abort();
    await this.running;
  }

  status(): ControllerStatus {
    if (!this.started) return { ready: false, reason: "azure controller: not started" };
    if (this.stopped) return { ready: false, reason: "azure controller: stopped" };
    if (this.failure !== undefined) return { ready: false, reason: `azure controller: the last reconcile failed (retried in ${RETRY_MS} ms and on every change): ${this.failure}` };
    return { ready: true };
  }

  report(): ControllerReport {
    const nodes: ControllerNodeReport[] = [...this.statuses.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, s]) => {
        const blockAddresses = s.blocks.reduce((n, b) => n + Number(Prefix.parse(b).size), 0);
        const r: ControllerNodeReport = { name, assigned: s.assignedIPs.length + blockAddresses, state: s.state };
        if (s.reason !== undefined) r.reason = s.reason;
        return r;
      });
    const out: ControllerReport = {
      mode: this.ctx.config.mode,
      subnets: [...this.subnetStates.values()].sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0)).map((s) => ({ ...s })),
      nodes,
      reconciles: this.reconciles,
      failures: this.failures,
      lastReconcileMs: this.lastMs,
      lastReconcileWallMs: this.lastWallMs,
    };
    if (this.failure !== undefined) out.lastError = this.failure;
    return out;
  }

  /** Resolves once no reconcile is running or queued (for tests and benchmarks). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Asks for a reconcile; resolves when the run that includes it has finished. */
  private trigger(): Promise<void> {
    if (!this.started || this.stopped) return this.running ?? Promise.resolve();
    this.dirty = true;
    this.running ??= this.drain();
    return this.running;
  }

  private async drain(): Promise<void> {
    await Promise.resolve();
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        await this.reconcileOnce();
      }
    } finally {
      this.running = undefined;
    }
  }

  private async reconcileOnce(): Promise<void> {
    const t0 = this.ctx.clock.now();
    const w0 = performance.now();
    this.reconciles++;
    try {
      await this.reconcile();
      this.failure = undefined;
    } catch (error) {
      this.failures++;
      this.failure = message(error);
      this.ctx.log.warn("azure controller: reconcile failed; retried", { error, retryMs: RETRY_MS });
      if (!this.stopped && !this.retryTimer) {
        this.retryTimer = this.ctx.clock.setTimeout(() => {
          this.retryTimer = undefined;
          void this.trigger();
        }, RETRY_MS);
      }
    } finally {
      this.lastMs = this.ctx.clock.now() - t0;
      this.lastWallMs = performance.now() - w0;
    }
  }

  /** The prefixes the mode allocates from, validated (ConfigError naming the field). */
  private pools(): { podSubnet?: Prefix; podCidr?: Prefix; vnetSubnet?: Prefix } {
    const { config } = this.ctx;
    const out: { podSubnet?: Prefix; podCidr?: Prefix; vnetSubnet?: Prefix } = {};
    if (config.vnetSubnet !== undefined) out.vnetSubnet = Prefix.parse(config.vnetSubnet, { component: C, field: "vnetSubnet" });
    if (config.mode === "dynamic" || config.mode === "static-block") {
      if (config.podSubnet === undefined) throw new ConfigError({ component: C, field: "podSubnet", rule: `is required for podIpAllocationMode ${config.podIpAllocationMode}` });
      const p = Prefix.parse(config.podSubnet, { component: C, field: "podSubnet" });
      if (p.family !== 4) throw new ConfigError({ component: C, field: "podSubnet", rule: "must be an IPv4 CIDR", value: config.podSubnet });
      if (config.mode === "static-block" && p.length > STATIC_BLOCK_LENGTH - 2) {
        throw new ConfigError({
          component: C,
          field: "podSubnet",
          rule: `must be /${STATIC_BLOCK_LENGTH - 2} or larger for StaticBlock (its first and last /28 hold reserved addresses)`,
          value: config.podSubnet,
        });
      }
      out.podSubnet = p;
    }
    if (config.mode === "overlay") {
      const p = Prefix.parse(config.podCidr, { component: C, field: "podCidr" });
      if (p.family !== 4 || p.length > OVERLAY_BLOCK_LENGTH)
        throw new ConfigError({ component: C, field: "podCidr", rule: `must be an IPv4 CIDR of /${OVERLAY_BLOCK_LENGTH} or larger (a /${OVERLAY_BLOCK_LENGTH} per node)`, value: config.podCidr });
      out.podCidr = p;
    }
    return out;
  }

  private async reconcile(): Promise<void> {
    const pools = this.pools();
    let members = [...this.ctx.members.list()].sort(byName);
    if (this.ctx.config.mode !== "classic") {
      // The fabric routes pods to a node's IPv4 address: a node without one gets an Error (written
      // first, so whatever it held is out of its status before anyone else can be given it).
      const subnet = (pools.podSubnet ?? pools.podCidr)!.toString();
      for (const m of members) {
        if (ipv4Subnet(m)) continue;
        const reason = `node ${m.name} has no IPv4 underlay interface for the fabric to route its pods to`;
        await this.putStatus(m.name, { state: "Error", reason, assignedIPs: [], blocks: [], scaler: this.ctx.config.scaler, subnet, subnetExhausted: false });
      }
      members = members.filter((m) => ipv4Subnet(m) !== undefined);
    }
    switch (this.ctx.config.mode) {
      case "classic":
        await this.reconcileClassic(members, pools.vnetSubnet);
        return;
      case "overlay":
        await this.reconcileBlocks(members, {
          pool: pools.podCidr!,
          field: "podCidr",
          length: OVERLAY_BLOCK_LENGTH,
          perNode: 1,
          usable: Number(pools.podCidr!.size),
          eligible: () => true,
        });
        return;
      case "static-block": {
        const pool = pools.podSubnet!;
        return this.reconcileBlocks(members, {
          pool,
          field: "podSubnet",
          length: STATIC_BLOCK_LENGTH,
          perNode: staticBlocksPerNode(this.ctx.config.maxPods),
          usable: usableAddresses(pool),
          eligible: (b) => !isAzureReserved(pool, b.base) && !isAzureReserved(pool, b.last) && !isAzureReserved(pool, b.base + 3n),
        });
      }
      case "dynamic":
        await this.reconcileDynamic(members, pools.podSubnet!);
        return;
    }
  }

  // ---- store writes -------------------------------------------------------------------------

  /** The next status of `node`: version bumped when the assignment changed. */
  private statusOf(node: string, f: StatusFields): NncStatus {
    const prev = this.statuses.get(node);
    const changed = !sameSet(prev?.assignedIPs ?? [], f.assignedIPs) || !sameSet(prev?.blocks ?? [], f.blocks);
    const version = (prev?.version ?? 0) + (changed ? 1 : 0);
    const s: NncStatus = {
      mode: this.ctx.config.mode,
      state: f.state,
      version,
      assignedIPs: sortAddresses(f.assignedIPs),
      blocks: [...f.blocks].sort(),
      scaler: f.scaler,
      subnet: f.subnet,
      subnetExhausted: f.subnetExhausted,
    };
    if (f.reason !== undefined) s.reason = f.reason;
    return s;
  }

  private async putStatus(node: string, f: StatusFields): Promise<void> {
    const s = this.statusOf(node, f);
    const key = nncStatusKey(node);
    const text = encodeNncStatus(s);
    if (this.written.get(key) === text) return;
    await this.ctx.store.put(key, text);
    this.written.set(key, text);
    this.statuses.set(node, s);
  }

  private async dropStatus(node: string): Promise<void> {
    const key = nncStatusKey(node);
    if (!this.written.has(key) && !this.statuses.has(node)) return;
    await this.ctx.store.delete(key);
    this.written.delete(key);
    this.statuses.delete(node);
  }

  /** Writes the subnet states of this reconcile and deletes those of subnets no longer served. */
  private async putSubnetStates(states: readonly SubnetState[]): Promise<void> {
    const keep = new Set<string>();
    for (const s of states) {
      const key = subnetStateKey(s.cidr);
      keep.add(key);
      const text = encodeSubnetState(s);
      this.subnetStates.set(key, s);
      if (this.written.get(key) === text) continue;
      await this.ctx.store.put(key, text);
      this.written.set(key, text);
    }
    for (const key of [...this.written.keys()]) {
      if (!key.startsWith(SUBNET_STATE_PREFIX) || keep.has(key)) continue;
      await this.ctx.store.delete(key);
      this.written.delete(key);
      this.subnetStates.delete(key);
    }
    for (const key of [...this.subnetStates.keys()]) if (!keep.has(key)) this.subnetStates.delete(key);
  }

  /** Statuses of nodes that are no longer members are deleted (after their fabric state went). */
  private async dropDeparted(members: readonly NodeInfo[], before: (node: string, status: NncStatus) => Promise<void>): Promise<void> {
    const names = new Set(members.map((m) => m.name));
    for (const [node, status] of [...this.statuses]) {
      if (names.has(node) || this.ctx.members.get(node)) continue;
      await before(node, status);
      await this.dropStatus(node);
    }
  }

  // ---- classic ------------------------------------------------------------------------------

  private async reconcileClassic(members: NodeInfo[], vnetSubnet: Prefix | undefined): Promise<void> {
    const { fabric, config } = this.ctx;
    const maxPods = config.maxPods;
    const names = new Set(members.map((m) => m.name));
    const held = new Map<string, string[]>();
    for (const a of await fabric.secondaryAddresses()) {
      if (!names.has(a.node)) {
        await fabric.removeSecondaryAddress(a);
        continue;
      }
      const list = held.get(a.node) ?? [];
      list.push(a.address);
      held.set(a.node, list);
    }
    await this.dropDeparted(members, async () => undefined);

    const bySubnet = new Map<string, { pool: Prefix; nodes: NodeInfo[] }>();
    for (const m of members) {
      const pool = ipv4Subnet(m);
      const fallback = config.vnetSubnet ?? "0.0.0.0/0";
      if (!pool) {
        await this.releaseAll(m.name, held.get(m.name) ?? []);
        await this.putStatus(m.name, {
          state: "Error",
          reason: `node ${m.name} has no IPv4 underlay interface to take pod addresses from`,
          assignedIPs: [],
          blocks: [],
          scaler: config.scaler,
          subnet: fallback,
          subnetExhausted: false,
        });
        continue;
      }
      if (vnetSubnet && !vnetSubnet.contains(pool)) {
        await this.releaseAll(m.name, held.get(m.name) ?? []);
        const reason = `node ${m.name}'s subnet ${pool.toString()} lies outside vnetSubnet ${vnetSubnet.toString()}: every node of the pool must sit in vnetSubnet`;
        await this.putStatus(m.name, { state: "Error", reason, assignedIPs: [], blocks: [], scaler: config.scaler, subnet: pool.toString(), subnetExhausted: false });
        continue;
      }
      const entry = bySubnet.get(pool.toString()) ?? { pool, nodes: [] };
      entry.nodes.push(m);
      bySubnet.set(pool.toString(), entry);
    }

    const nodeValues = nodeAddressValues(members);
    const states: SubnetState[] = [];
    for (const { pool, nodes } of [...bySubnet.values()].sort((a, b) => (a.pool.base < b.pool.base ? -1 : 1))) {
      states.push(await this.reconcileClassicSubnet(pool, nodes, held, nodeValues, maxPods));
    }
    await this.putSubnetStates(states);
  }

  private async releaseAll(node: string, addresses: readonly string[]): Promise<void> {
    for (const address of addresses) await this.ctx.fabric.removeSecondaryAddress({ node, address });
  }

  /** One node subnet: plan (admit, top up, refuse) in name order, then apply, then statuses. */
  private async reconcileClassicSubnet(pool: Prefix, nodes: NodeInfo[], held: Map<string, string[]>, nodeValues: ReadonlySet<bigint>, maxPods: number): Promise<SubnetState> {
    const { fabric, config } = this.ctx;
    const subnet = pool.toString();
    const taken = new Set<bigint>([...nodeValues, ...this.refusedByFabric]);
    // Admitted: a full reservation, or one the status already calls done (then it is topped up).
    const admitted = new Set<string>();
    for (const m of nodes) {
      const have = (held.get(m.name) ?? []).filter((a) => pool.contains(a));
      const st = this.statuses.get(m.name);
      if (have.length >= maxPods || (have.length > 0 && st?.state === "Updated" && st.assignedIPs.length > 0)) admitted.add(m.name);
      else if (have.length > 0) {
        // A partial reservation of a node never admitted (a rollback that failed): take it back.
        await this.releaseAll(m.name, have);
        held.set(m.name, []);
      }
    }
    for (const list of held.values()) for (const a of list) if (pool.contains(a)) taken.add(addressValue(a));

    let holders = admitted.size;
    let refused = 0;
    const plan: { node: string; add: string[]; remove: string[]; keep: string[]; reason?: string }[] = [];
    for (const m of nodes) {
      const have = sortAddresses((held.get(m.name) ?? []).filter((a) => pool.contains(a)));
      if (admitted.has(m.name)) {
        if (have.length > maxPods) {
          plan.push({ node: m.name, add: [], remove: have.slice(maxPods), keep: have.slice(0, maxPods) });
          continue;
        }
        const add = lowestFreeAddresses(pool, taken, maxPods - have.length);
        for (const a of add) taken.add(addressValue(a));
        const p: (typeof plan)[number] = { node: m.name, add, remove: [], keep: have };
        if (have.length + add.length < maxPods) p.reason = `subnet ${subnet} has no free address to restore node ${m.name}'s reservation (it holds ${have.length + add.length} of maxPods ${maxPods})`;
        plan.push(p);
        continue;
      }
      const free = freeAddressCount(pool, taken);
      const refusal = classicJoinRefusal({ subnet, nodes: holders + 1, maxPods, surge: config.maxSurge, free });
      if (refusal !== undefined) {
        refused++;
        plan.push({ node: m.name, add: [], remove: [], keep: [], reason: refusal });
        continue;
      }
      const add = lowestFreeAddresses(pool, taken, maxPods);
      for (const a of add) taken.add(addressValue(a));
      holders++;
      plan.push({ node: m.name, add, remove: [], keep: [] });
    }

    // Apply: a join gets all of its addresses or none (a failed add takes back what it added).
    for (const p of plan) {
      for (const address of p.remove) await fabric.removeSecondaryAddress({ node: p.node, address });
      const added: string[] = [];
      try {
        for (const address of p.add) {
          try {
            await fabric.addSecondaryAddress({ node: p.node, address });
          } catch (error) {
            const e = error as { code?: unknown; field?: unknown };
            if (e?.code === 7 && e.field === "address") this.refusedByFabric.add(addressValue(address));
            throw error;
          }
          added.push(address);
        }
      } catch (error) {
        if (p.keep.length === 0) {
          for (const address of added) {
            await fabric.removeSecondaryAddress({ node: p.node, address }).catch((e: unknown) => {
              this.ctx.log.warn("azure controller: rolling back a failed join left an address; the next reconcile takes it back", { node: p.node, address, error: e });
            });
          }
        }
        throw error;
      }
    }

    const assigned = plan.reduce((n, p) => n + p.keep.length + p.add.length, 0);
    const nodeAddresses = nodeAddressesIn(pool, nodeValues);
    const elsewhere = [...this.refusedByFabric].filter((v) => pool.contains(v) && !isAzureReserved(pool, v) && !nodeValues.has(v)).length;
    const head = classicHeadroom({ subnet, nodes: holders, maxPods, surge: config.maxSurge, used: nodeAddresses + assigned + elsewhere });
    const exhausted = refused > 0;
    for (const p of plan) {
      const list = [...p.keep, ...p.add];
      const f: StatusFields = { state: p.reason === undefined ? "Updated" : "Error", assignedIPs: list, blocks: [], scaler: config.scaler, subnet, subnetExhausted: exhausted };
      if (p.reason !== undefined) f.reason = p.reason;
      await this.putStatus(p.node, f);
    }
    return { cidr: subnet, usable: head.usable, nodeAddresses, assigned, free: head.free, nodesThatFit: head.nodesThatFit, exhausted };
  }

  // ---- overlay and static-block -------------------------------------------------------------

  private async reconcileBlocks(
    members: NodeInfo[],
    o: { pool: Prefix; field: "podCidr" | "podSubnet"; length: number; perNode: number; usable: number; eligible: (b: Prefix) => boolean },
  ): Promise<void> {
    const { fabric, config } = this.ctx;
    const poolCidr = o.pool.toString();
    const blockSize = 2 ** (32 - o.length);
    const routes = new Map((await fabric.routes()).map((r) => [r.dst, r.node]));
    const inPool = (dst: string): boolean => {
      const p = Prefix.parse(dst);
      return p.length === o.length && o.pool.contains(p);
    };
    // Departed nodes: routes first, then the status (the blocks are free only once it is gone).
    await this.dropDeparted(members, async (_node, s) => {
      for (const b of s.blocks) await fabric.deleteRoute(b);
    });

    // What each member holds (its status's blocks that are valid and not claimed by an earlier one).
    const taken = new Set<string>();
    const held = new Map<string, string[]>();
    const holding = new Set<string>();
    for (const m of members) {
      const mine: string[] = [];
      for (const b of this.statuses.get(m.name)?.blocks ?? []) {
        if (mine.length >= o.perNode || taken.has(b) || !inPool(b) || !o.eligible(Prefix.parse(b))) continue;
        taken.add(b);
        mine.push(b);
      }
      held.set(m.name, mine);
      if (mine.length > 0) holding.add(m.name);
    }
    const total = [...o.pool.subnets(o.length)].filter(o.eligible).length;
    let refused = 0;
    const plan: { node: string; blocks: string[]; reason?: string }[] = [];
    for (const m of members) {
      const mine = held.get(m.name) ?? [];
      const need = o.perNode - mine.length;
      const free = lowestFreeBlocks(o.pool, o.length, taken, need, o.eligible);
      if (free.length < need) {
        refused++;
        const holders = holding.size;
        const reason =
          o.field === "podCidr"
            ? `podCidr ${poolCidr} has no free /${o.length} for node ${m.name} (${holders} nodes hold all ${total})`
            : `podSubnet ${poolCidr} has ${free.length} free /${o.length} blocks but node ${m.name} needs ${need} (${holders} nodes hold ${taken.size} of the ${total} usable /${o.length} blocks)`;
        plan.push({ node: m.name, blocks: mine, reason });
        continue;
      }
      for (const b of free) taken.add(b);
      if (free.length > 0) holding.add(m.name);
      plan.push({ node: m.name, blocks: [...mine, ...free] });
    }

    // Routes before statuses; then stale routes of the pool go.
    const wanted = new Map<string, string>();
    for (const p of plan) {
      for (const dst of p.blocks) {
        wanted.set(dst, p.node);
        if (routes.get(dst) !== p.node) await fabric.setRoute({ dst, node: p.node });
      }
    }
    const exhausted = refused > 0;
    for (const p of plan) {
      const f: StatusFields = { state: p.reason === undefined ? "Updated" : "Error", assignedIPs: [], blocks: p.blocks, scaler: config.scaler, subnet: poolCidr, subnetExhausted: exhausted };
      if (p.reason !== undefined) f.reason = p.reason;
      await this.putStatus(p.node, f);
    }
    for (const [dst] of routes) if (inPool(dst) && !wanted.has(dst)) await fabric.deleteRoute(dst);

    const assignedBlocks = plan.reduce((n, p) => n + p.blocks.length, 0);
    await this.putSubnetStates([{ cidr: poolCidr, usable: o.usable, nodeAddresses: 0, assigned: assignedBlocks * blockSize, free: (total - assignedBlocks) * blockSize, exhausted }]);
  }

  // ---- dynamic ------------------------------------------------------------------------------

  private async reconcileDynamic(members: NodeInfo[], pool: Prefix): Promise<void> {
    const { fabric, config } = this.ctx;
    const subnet = pool.toString();
    const host = (a: string): string => `${a}/32`;
    const routes = new Map((await fabric.routes()).map((r: FabricRoute) => [r.dst, r.node]));
    await this.dropDeparted(members, async (_node, s) => {
      for (const a of s.assignedIPs) await fabric.deleteRoute(host(a));
    });

    // Committed assignments (an address in two statuses stays with the first by name; never happens).
    const nodeValues = nodeAddressValues(members);
    const owner = new Map<string, string>();
    const have = new Map<string, Set<string>>();
    for (const m of members) {
      const mine = new Set<string>();
      for (const a of this.statuses.get(m.name)?.assignedIPs ?? []) {
        if (owner.has(a) || !pool.contains(a)) continue;
        owner.set(a, m.name);
        mine.add(a);
      }
      have.set(m.name, mine);
    }
    const prevExhausted = this.subnetStates.get(subnetStateKey(subnet))?.exhausted ?? false;

    // Release phase: routes of given-back addresses go, then the statuses without them are written.
    for (const m of members) {
      const spec = this.specs.get(nncSpecKey(m.name));
      const mine = have.get(m.name)!;
      const back = (spec?.ipsNotInUse ?? []).map((a) => canonicalAddress(a)).filter((a) => mine.has(a));
      if (back.length === 0) continue;
      for (const a of back) {
        await fabric.deleteRoute(host(a));
        routes.delete(host(a));
      }
      for (const a of back) {
        mine.delete(a);
        owner.delete(a);
      }
      const prev = this.statuses.get(m.name);
      await this.putStatus(m.name, {
        state: prev?.state ?? "Updated",
        ...(prev?.reason !== undefined ? { reason: prev.reason } : {}),
        assignedIPs: [...mine],
        blocks: [],
        scaler: prev?.scaler ?? config.scaler,
        subnet,
        subnetExhausted: prev?.subnetExhausted ?? false,
      });
    }

    // Grant phase (pure plan first): targets, fair shares of the free addresses, lowest first.
    const taken = new Set<bigint>(nodeValues);
    for (const a of owner.keys()) taken.add(addressValue(a));
    const free = freeAddressCount(pool, taken);
    const asks = members.map((m) => {
      const target = Math.min(this.specs.get(nncSpecKey(m.name))?.requestedIPCount ?? 0, config.scaler.maxIPCount);
      const n = have.get(m.name)!.size;
      return { name: m.name, have: n, want: Math.max(0, target - n), target };
    });
    const grants = fairShares(asks, free);
    const granted = [...grants.values()].reduce((n, g) => n + g, 0);
    // A node's own ipsNotInUse are never handed back to it in the same breath (its spec still lists
    // them until it sees this status, so the next reconcile would take them away again).
    const givingBack = new Map(members.map((m) => [m.name, new Set((this.specs.get(nncSpecKey(m.name))?.ipsNotInUse ?? []).map((a) => canonicalAddress(a)))]));
    const spare = [...givingBack.values()].reduce((n, set) => n + set.size, 0);
    const picks = lowestFreeAddresses(pool, taken, granted + spare);
    const picked = new Set<string>();
    const adds = new Map<string, string[]>();
    for (const a of asks) {
      const add: string[] = [];
      const own = givingBack.get(a.name)!;
      for (const p of picks) {
        if (add.length >= (grants.get(a.name) ?? 0)) break;
        if (picked.has(p) || own.has(p)) continue;
        picked.add(p);
        add.push(p);
      }
      adds.set(a.name, add);
    }
    const unserved = asks.reduce((s, a) => s + a.want, 0) - picked.size;
    const freeAfter = free - picked.size;
    // Hysteresis: once collapsed, the scaler comes back only when every node's request under the
    // full scaler (its demand sized as v2 would, B × ceil(mf + U/B)) fits in what is free; else the
    // nodes would grow back, exhaust the subnet again and collapse, forever.
    const uncollapsedNeed = asks.reduce((n, a) => {
      const demand = this.specs.get(nncSpecKey(a.name))?.demand ?? 0;
      const held = have.get(a.name)!.size + (adds.get(a.name)?.length ?? 0);
      return n + Math.max(0, v2Target({ scaler: config.scaler, demand }) - held);
    }, 0);
    const exhausted = unserved > 0 || (prevExhausted && (freeAfter < config.scaler.batchSize || uncollapsedNeed > freeAfter));
    const scaler: ScalerSettings = exhausted ? collapsedScaler(config.scaler) : config.scaler;

    for (const a of asks) {
      const mine = have.get(a.name)!;
      const add = adds.get(a.name)!;
      // Every address of the node is routed to it before the status lists it (repairs included).
      for (const addr of [...mine, ...add]) {
        if (routes.get(host(addr)) === a.name) continue;
        await fabric.setRoute({ dst: host(addr), node: a.name });
        routes.set(host(addr), a.name);
      }
      for (const addr of add) mine.add(addr);
      const state: NncState = mine.size < a.target ? "Updating" : "Updated";
      const f: StatusFields = { state, assignedIPs: [...mine], blocks: [], scaler, subnet, subnetExhausted: exhausted };
      if (state === "Updating") {
        f.reason = exhausted
          ? `subnet ${subnet} is exhausted: ${mine.size} of the ${a.target} requested addresses assigned`
          : `${mine.size} of the ${a.target} requested addresses assigned; the rest once the node's ipsNotInUse are cleared`;
      }
      await this.putStatus(a.name, f);
    }
    // Routes of the pod subnet that no status backs go (a grant whose status write failed).
    for (const [dst, node] of routes) {
      const p = Prefix.parse(dst);
      if (p.length !== 32 || !pool.contains(p)) continue;
      if (have.get(node)?.has(p.network)) continue;
      await fabric.deleteRoute(dst);
    }
    const assigned = [...have.values()].reduce((s, m) => s + m.size, 0);
    await this.putSubnetStates([{ cidr: subnet, usable: usableAddresses(pool), nodeAddresses: nodeAddressesIn(pool, nodeValues), assigned, free: freeAfter, exhausted }]);
  }
}

/** The backend's `createController`: the VNet allocator (see `AzureController`). */
export function createAzureController(ctx: ControllerContext<AzureConfig>): ClusterController {
  return new AzureController(ctx);
}
