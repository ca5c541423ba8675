/**
 * The reference backend's per-node agent, on core's agent kit (`AgentRuntime`: phases, STATUS,
 * per-attachment serialisation, GC, dataplane publication). What is its own:
 *  - one key per node subnet, `/cnikit/reference/subnets/<cidr>` = `{node, address}`, claimed by CAS
 *    under a store lease the kit's `SubnetLeaseKeeper` keeps alive (a crashed node's subnet expires
 *    after the TTL and every other node withdraws its route); the kit's `Informer` follows them all;
 *  - pod addresses from an `AddressPool` over the node subnet, each reservation persisted in
 *    `ctx.local` before ADD returns (a restarted agent keeps every live pod's address);
 *  - NetworkPolicy through @cnikit/netpol's `PolicyComponent` (pods published under the subnet
 *    lease, off the ADD path); the pure plan compiles the filters from its snapshot.
 */
import {
  AddressInUseError,
  AddressPool,
  AgentRuntime,
  attachmentRecord,
  CheckFailedError,
  ConfigError,
  Informer,
  LocalPodRecords,
  PoolExhaustedError,
  Prefix,
  SubnetLeaseKeeper,
  podKey,
} from "@cnikit/core";
import type { AgentContext, AttachResult, FilterPolicy, KeyValue, NodeDataplane, PodAttachment, PodRef, UnderlayInterface } from "@cnikit/core";
import { PolicyComponent, directoryPodOf, planPolicy, podDirectoryPrefix, publishedPodDirectory } from "@cnikit/netpol";
import type { ReferenceConfig } from "./config.ts";
import { BRIDGE, gatewayOf, hostIfName, ipv4Underlay, macFor, planWithDiagnostics } from "./plan.ts";
import type { PeerSubnet, PodRecord } from "./plan.ts";

/** Prefix of the subnet claims in the cluster store. */
export const SUBNET_PREFIX = "/cnikit/reference/subnets/";
/** Prefix of the pods every agent publishes for NetworkPolicy: `<prefix><node>/<containerId>/<ifName>`. */
export const POD_PREFIX = podDirectoryPrefix("reference");
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

/** The store key of a subnet claim. */
export function subnetKey(subnet: string): string {
  return `${SUBNET_PREFIX}${subnet}`;
}

function parseClaim(kv: KeyValue): PeerSubnet | undefined {
  try {
    const value = JSON.parse(kv.value) as { node?: unknown; address?: unknown };
    if (typeof value.node !== "string" || typeof value.address !== "string") return undefined;
    return { node: value.node, address: value.address, subnet: Prefix.parse(kv.key.slice(SUBNET_PREFIX.length)).toString() };
  } catch {
    return undefined;
  }
}

/** The reference NodeAgent; see the module comment. Create it with `reference.createAgent`. */
export class ReferenceAgent extends AgentRuntime<ReferenceConfig, PodRecord> {
  private readonly config: ReferenceConfig;
  private readonly underlay: UnderlayInterface | undefined;
  private pool: AddressPool | undefined;
  private readonly keeper: SubnetLeaseKeeper;
  private readonly peers: Informer<PeerSubnet>;
  private readonly policy: PolicyComponent;
  private filters: FilterPolicy[] = [];
  private readonly warnedUnroutable = new Set<string>();
  private readonly records: LocalPodRecords<PodRecord>;

  constructor(ctx: AgentContext<ReferenceConfig>) {
    super(ctx, { component: COMPONENT });
    this.config = ctx.config;
    this.underlay = ctx.node.underlay.find((u) => !u.address.includes(":"));
    const network = Prefix.parse(this.config.network);
    const me = ctx.node.name;
    this.records = new LocalPodRecords<PodRecord>({ ...ctx, component: COMPONENT, decode: (v) => (typeof (v as PodRecord | null)?.address === "string" ? (v as PodRecord) : undefined) });
    this.keeper = new SubnetLeaseKeeper({
      ...ctx,
      component: COMPONENT,
      prefix: SUBNET_PREFIX,
      localKey: "/claim",
      ttlSeconds: LEASE_TTL_SECONDS,
      renewEveryMs: KEEPALIVE_MS,
      value: () => JSON.stringify({ node: me, address: this.underlay?.address }),
      isMine: (kv) => parseClaim(kv)?.node === me,
      fits: (key) => this.fits(key.slice(SUBNET_PREFIX.length)),
      pick: ({ listing, previous, random }) => this.pick(new Set(listing.map((kv) => kv.key)), previous, random, network),
      maxAttempts: CLAIM_ATTEMPTS,
      immediateRepicks: CLAIM_ATTEMPTS,
      retryTransient: false,
      onLost: ({ key, holder }) => this.setImpaired(`subnet ${key.slice(SUBNET_PREFIX.length)} is now claimed by node ${(holder && parseClaim(holder)?.node) ?? "?"}; restart this node's pods`),
      onRenewedLease: (claim) => this.policy.setLease(claim.lease),
    });
    const onError = (err: unknown): void => this.warn("subnet watch failed; re-listing", err);
    this.peers = new Informer({ ...ctx, prefix: SUBNET_PREFIX, signal: this.signal, decode: parseClaim, retryMs: WATCH_RETRY_MS, resyncMs: RESYNC_MS, onBatch: () => this.onPeers(), onError });
    this.policy = new PolicyComponent({ ...ctx, node: me, directory: publishedPodDirectory(POD_PREFIX), component: COMPONENT, resyncMs: RESYNC_MS, retryMs: WATCH_RETRY_MS });
    this.policy.onChange(() => this.replan());
  }

  private fits(subnet: string): boolean {
    try {
      const p = Prefix.parse(subnet);
      return p.length === this.config.nodeSubnetLength && Prefix.parse(this.config.network).contains(p);
    } catch {
      return false;
    }
  }

  /** The remembered subnet if still free, else a random one of the first 16 free (nodes starting together rarely collide). */
  private pick(taken: Set<string>, previous: string | undefined, random: () => number, network: Prefix): string {
    if (previous !== undefined && !taken.has(previous) && this.fits(previous.slice(SUBNET_PREFIX.length))) return previous;
    const candidates: string[] = [];
    for (const sub of network.subnets(this.config.nodeSubnetLength)) {
      if (!taken.has(subnetKey(sub.toString()))) candidates.push(subnetKey(sub.toString()));
      if (candidates.length >= 16) break;
    }
    if (candidates.length === 0) {
      const msg = `[reference] every /${this.config.nodeSubnetLength} of ${this.config.network} is claimed by another node; use a larger network or a longer nodeSubnetLength`;
      throw new PoolExhaustedError(this.config.network, msg);
    }
    return candidates[Math.min(candidates.length - 1, Math.floor(random() * candidates.length))]!;
  }

  private get subnet(): string | undefined {
    return this.keeper.claim?.key.slice(SUBNET_PREFIX.length);
  }

  /**
   * Claims (or re-takes) the node subnet, restores pod reservations from `ctx.local`, lists and
   * watches the other nodes' subnets and the policy inputs. Throws `ConfigError` (no IPv4 underlay,
   * mtu above the underlay's), `PoolExhaustedError` (every node subnet taken), `TryAgainError`
   * (store unavailable, or the claim lost too many races).
   */
  protected async join(signal: AbortSignal): Promise<void> {
    const underlay = ipv4Underlay(this.ctx.node);
    const underlayMtu = underlay.mtu ?? 1500;
    if (this.config.mtu > underlayMtu) {
      const rule = `must not exceed the underlay MTU ${underlayMtu} of ${underlay.iface} on node ${this.ctx.node.name} (the reference backend adds no encapsulation)`;
      throw new ConfigError({ component: COMPONENT, field: "mtu", rule, value: this.config.mtu });
    }
    signal.addEventListener("abort", () => this.keeper.stop(), { once: true });
    const claim = await this.keeper.acquire(signal);
    this.policy.setLease(claim.lease);
    await this.restorePods(this.subnet!);
    await this.peers.start();
    await this.policy.start(signal);
    this.ctx.log.info(`[reference] node ${this.ctx.node.name} holds ${this.subnet}`, { subnet: this.subnet, pods: this.attachments.size });
  }

  /** Rebuilds the pool from the persisted reservations; drops records outside the subnet. */
  private async restorePods(subnet: string): Promise<void> {
    const pool = new AddressPool({ range: subnet, gateway: gatewayOf(subnet), name: `reference ${this.ctx.node.name}`, component: COMPONENT });
    const range = Prefix.parse(subnet);
    for (const record of await this.records.load()) {
      if (!range.contains(record.address)) {
        this.ctx.log.warn(`[reference] dropping reservation ${record.address} of ${podKey(record)}: outside this node's subnet ${subnet}`);
        await this.records.remove(record);
        continue;
      }
      pool.allocateSpecific(record.address, podKey(record));
      this.restore(record);
      this.attached(record);
    }
    this.pool = pool;
  }

  /** After every change of the peer view: our own claim still ours (else written back or lost), then replan. */
  private onPeers(): void {
    const key = this.keeper.claim?.key;
    if (this.phase === "running" && key !== undefined && this.peers.get(key)?.node !== this.ctx.node.name) void this.keeper.verify(this.peers.getKv(key) ?? null);
    this.replan();
  }

  /** Revokes the subnet lease (other nodes drop their route at once) and forgets the claim in `ctx.local`. */
  protected override async releaseShare(): Promise<void> {
    await this.policy.stop();
    const subnet = this.subnet;
    await this.keeper.release().catch((err: unknown) => this.warn(`could not release ${subnet}; it expires after ${LEASE_TTL_SECONDS}s`, err));
  }

  /** Reserves the requested address (at most one) or the next free one, and persists it in `ctx.local`. */
  protected async reserve(pod: PodAttachment): Promise<PodRecord> {
    const subnet = this.subnet!;
    const pool = this.pool!;
    const key = podKey(pod);
    const requested = pod.requestedIps ?? [];
    if (requested.length > 1) {
      throw new ConfigError({ component: COMPONENT, field: "requestedIps", rule: "the reference backend is IPv4 single-stack: ask for at most one address", value: requested });
    }
    const wanted = requested[0];
    if (wanted !== undefined && !Prefix.parse(subnet).contains(wanted)) {
      throw new AddressInUseError(wanted, `[reference] requested address ${wanted} is outside node ${this.ctx.node.name}'s subnet ${subnet}`);
    }
    const address = wanted !== undefined ? pool.allocateSpecific(wanted, key) : pool.allocate(key);
    const record: PodRecord = attachmentRecord(pod, { address });
    try {
      await this.records.put(record, `the reservation of ${address}`);
    } catch (err) {
      pool.release(address);
      throw err;
    }
    return record;
  }

  /** Forgets the reservation in `ctx.local` first (TryAgainError if that fails), then in the pool. */
  protected async unreserve(ref: PodRef, record: PodRecord | undefined): Promise<void> {
    await this.records.remove(ref);
    if (record) this.pool?.release(record.address);
    this.pool?.releaseOwner(podKey(ref));
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

  /** CHECK: the reservation is in `ctx.local` and the pool, inside the node subnet, and the bridge has its gateway. */
  protected override async verify(record: PodRecord, dataplane: NodeDataplane): Promise<void> {
    const key = podKey(record);
    const subnet = this.subnet!;
    if (!(await this.records.has(record))) throw new CheckFailedError(`[reference] reservation of ${record.address} for ${key} is missing from the node-local store`);
    if (this.pool?.ownerOf(record.address) !== key) throw new CheckFailedError(`[reference] ${record.address} is not reserved for ${key} in the pool of ${subnet}`);
    if (!Prefix.parse(subnet).contains(record.address)) throw new CheckFailedError(`[reference] ${record.address} of ${key} is outside this node's subnet ${subnet}`);
    if (!dataplane.addresses.some((a) => a.dev === BRIDGE)) throw new CheckFailedError(`[reference] bridge ${BRIDGE} has no gateway address on node ${this.ctx.node.name}`);
  }

  protected result(record: PodRecord): AttachResult {
    const subnet = this.subnet!;
    const gateway = gatewayOf(subnet);
    const mtu = this.config.mtu;
    return {
      interfaces: [
        { name: BRIDGE, mac: macFor(gateway), mtu },
        { name: hostIfName(record), mtu },
        { name: record.ifName, mac: macFor(record.address), mtu, sandbox: record.netns ?? "" },
      ],
      ips: [{ address: `${record.address}/${Prefix.parse(subnet).length}`, gateway, interface: 2 }],
      routes: [{ dst: "0.0.0.0/0", gw: gateway }],
    };
  }

  protected plan(): NodeDataplane {
    const node = this.ctx.node.name;
    const policy = planPolicy<PodRecord>(this.policy.snapshot(), (r) => directoryPodOf(node, { ...r, ips: [r.address], hostIf: hostIfName(r) }));
    const { dataplane, unroutablePeers } = planWithDiagnostics({
      config: this.config,
      node: this.ctx.node,
      peers: this.peers.values(),
      pods: [...this.attachments.values()],
      // A policy that cannot be compiled (an invalid address in the view) keeps the previous filters.
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
      ...(this.subnet !== undefined ? { subnet: this.subnet } : {}),
    });
    for (const peer of unroutablePeers) {
      if (this.warnedUnroutable.has(peer.node)) continue;
      this.warnedUnroutable.add(peer.node);
      this.ctx.log.warn(
        `[reference] node ${peer.node} (${peer.address}) is not on ${this.underlay?.iface}'s subnet: no route to ${peer.subnet}. The reference backend needs every node on one L2 subnet.`,
      );
    }
    return dataplane;
  }
}
