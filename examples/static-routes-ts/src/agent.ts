/**
 * The agent, on the kit's `AgentRuntime` (phases, STATUS, ADD/DEL/CHECK/GC, publishing the plan).
 * What is its own:
 *  - the node's subnet: one key `/static-routes/subnets/<cidr>` = node name, held under a store
 *    lease by the kit's `SubnetLeaseKeeper` (a crashed node's key expires; its routes go);
 *  - the peers: the kit's `Informer` over those keys, joined with `ctx.members` for addresses;
 *  - pod addresses from core's `AddressPool`, each persisted in `ctx.local` (a restart keeps them);
 *  - NetworkPolicy from @cnikit/netpol's `PolicyComponent`, handed to the plan.
 */
import { AddressPool, AgentRuntime, ConfigError, Informer, PoolExhaustedError, Prefix, SubnetLeaseKeeper, TryAgainError, podKey } from "@cnikit/core";
import type { AgentContext, AttachResult, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";
import { PolicyComponent, directoryPodOf, planPolicy, podDirectoryPrefix, publishedPodDirectory } from "@cnikit/netpol";
import { NAME } from "./config.ts";
import type { StaticRoutesConfig } from "./config.ts";
import { BRIDGE, gatewayOf, hostIfOf, ipv4Underlay, macOf, plan } from "./plan.ts";
import type { Peer, Pod } from "./plan.ts";

export const SUBNETS = "/static-routes/subnets/";
export const TTL_SECONDS = 30;
export const RESYNC_MS = 30_000;
const PODS = "/pods/";
const podRecordKey = (ref: PodRef): string => `${PODS}${ref.containerId}/${ref.ifName}`;

/** Whether a subnet (a key's tail) is one this config hands out. */
export function fits(config: StaticRoutesConfig, subnet: string): boolean {
  try {
    const p = Prefix.parse(subnet);
    return p.toString() === subnet && p.length === config.nodeSubnetLength && Prefix.parse(config.network).contains(p);
  } catch {
    return false;
  }
}

/** A free subnet: the one held before if still free, else one of the first 16 free (at random, so nodes starting together rarely collide). */
export function pickSubnet(config: StaticRoutesConfig, taken: Set<string>, previous: string | undefined, random: () => number): string {
  if (previous !== undefined && !taken.has(previous) && fits(config, previous)) return previous;
  const free: string[] = [];
  for (const s of Prefix.parse(config.network).subnets(config.nodeSubnetLength)) {
    if (!taken.has(s.toString())) free.push(s.toString());
    if (free.length === 16) break;
  }
  if (free.length === 0) throw new PoolExhaustedError(config.network, `[${NAME}] every /${config.nodeSubnetLength} of ${config.network} is taken`);
  return free[Math.floor(random() * free.length)]!;
}

export class StaticRoutesAgent extends AgentRuntime<StaticRoutesConfig, Pod> {
  private pool: AddressPool | undefined;
  private readonly lease: SubnetLeaseKeeper;
  private readonly claims: Informer<string>;
  private readonly policy: PolicyComponent;

  constructor(ctx: AgentContext<StaticRoutesConfig>) {
    super(ctx, { component: NAME });
    const me = ctx.node.name;
    const subnetOf = (key: string): string => key.slice(SUBNETS.length);
    this.lease = new SubnetLeaseKeeper({
      ...ctx,
      component: NAME,
      prefix: SUBNETS,
      localKey: "/subnet",
      ttlSeconds: TTL_SECONDS,
      renewEveryMs: (TTL_SECONDS * 1000) / 3,
      value: () => me,
      isMine: (kv) => kv.value === me,
      pick: ({ listing, previous, random }) => SUBNETS + pickSubnet(ctx.config, new Set(listing.map((kv) => subnetOf(kv.key))), previous === undefined ? undefined : subnetOf(previous), random),
      fits: (key) => fits(ctx.config, subnetOf(key)),
      onLost: ({ key }) => this.setImpaired(`subnet ${subnetOf(key)} was taken by another node; restart this node's pods`),
      onRenewedLease: (claim) => this.policy.setLease(claim.lease),
    });
    this.claims = new Informer({ ...ctx, prefix: SUBNETS, signal: this.signal, decode: (kv) => kv.value, resyncMs: RESYNC_MS, onBatch: () => this.onClaims() });
    this.policy = new PolicyComponent({ ...ctx, node: me, directory: publishedPodDirectory(podDirectoryPrefix(NAME)), component: NAME });
    this.policy.onChange(() => this.replan());
  }

  private get subnet(): string | undefined {
    return this.lease.claim?.key.slice(SUBNETS.length);
  }

  protected async join(signal: AbortSignal): Promise<void> {
    ipv4Underlay(this.ctx.node);
    signal.addEventListener("abort", () => this.lease.stop(), { once: true });
    this.policy.setLease((await this.lease.acquire(signal)).lease);
    const subnet = this.subnet!;
    this.pool = new AddressPool({ range: subnet, gateway: gatewayOf(subnet), component: NAME });
    for (const kv of (await this.ctx.local.list(PODS)).items) {
      const pod = JSON.parse(kv.value) as Pod;
      if (!Prefix.parse(subnet).contains(pod.address)) {
        await this.ctx.local.delete(kv.key);
        continue;
      }
      this.pool.allocateSpecific(pod.address, podKey(pod));
      this.restore(pod);
      this.attached(pod);
    }
    const unsubscribe = this.ctx.members.onChange(() => this.replan());
    signal.addEventListener("abort", () => unsubscribe(), { once: true });
    await this.claims.start();
    await this.policy.start(signal);
  }

  /** The store changed under our own key (expired while cut off, or taken): let the keeper write it back or report it. */
  private onClaims(): void {
    const key = this.lease.claim?.key;
    if (this.phase === "running" && key !== undefined && this.claims.get(key) !== this.ctx.node.name) void this.lease.verify(this.claims.getKv(key) ?? null);
    this.replan();
  }

  protected override async releaseShare(): Promise<void> {
    await this.policy.stop();
    await this.lease.release();
  }

  protected async reserve(attachment: PodAttachment): Promise<Pod> {
    const [wanted, ...more] = attachment.requestedIps ?? [];
    if (more.length > 0) throw new ConfigError({ component: NAME, field: "requestedIps", rule: "at most one address (IPv4 only)", value: attachment.requestedIps });
    const key = podKey(attachment);
    const address = wanted === undefined ? this.pool!.allocate(key) : this.pool!.allocateSpecific(wanted, key);
    const pod: Pod = { ...attachment, address };
    try {
      await this.ctx.local.put(podRecordKey(pod), JSON.stringify(pod));
    } catch (err) {
      this.pool!.release(address);
      throw new TryAgainError(`[${NAME}] could not record ${address} for ${key}; try again`, { cause: err });
    }
    return pod;
  }

  protected async unreserve(ref: PodRef): Promise<void> {
    try {
      await this.ctx.local.delete(podRecordKey(ref));
    } catch (err) {
      throw new TryAgainError(`[${NAME}] could not record the release of ${podKey(ref)}; try again`, { cause: err });
    }
    this.pool?.releaseOwner(podKey(ref));
  }

  protected override async persistedRefs(): Promise<PodRef[]> {
    return (await this.ctx.local.list(PODS)).items.map((kv) => JSON.parse(kv.value) as Pod);
  }

  protected override attached(pod: Pod): void {
    this.policy.podAdded({ ...pod, ips: [pod.address], hostIf: hostIfOf(pod) });
  }

  protected override detached(_key: string, pod: Pod): void {
    this.policy.podRemoved(pod);
  }

  protected result(pod: Pod): AttachResult {
    const subnet = this.subnet!;
    const mtu = ipv4Underlay(this.ctx.node).mtu ?? 1500;
    return {
      interfaces: [
        { name: BRIDGE, mac: macOf(gatewayOf(subnet)), mtu },
        { name: hostIfOf(pod), mtu },
        { name: pod.ifName, mac: macOf(pod.address), mtu, sandbox: pod.netns },
      ],
      ips: [{ address: `${pod.address}/${Prefix.parse(subnet).length}`, gateway: gatewayOf(subnet), interface: 2 }],
      routes: [{ dst: "0.0.0.0/0", gw: gatewayOf(subnet) }],
    };
  }

  /** Peers = the subnet keys joined with membership (a key whose node is not a member yet is left out). */
  protected plan(): NodeDataplane {
    const peers: Peer[] = [];
    for (const key of this.claims.keys()) {
      const node = this.claims.get(key)!;
      const address = this.ctx.members.get(node)?.underlay.find((u) => !u.address.includes(":"))?.address;
      if (address !== undefined) peers.push({ node, subnet: key.slice(SUBNETS.length), address });
    }
    const me = this.ctx.node.name;
    const policy = planPolicy<Pod>(this.policy.snapshot(), (pod) => directoryPodOf(me, { ...pod, ips: [pod.address], hostIf: hostIfOf(pod) }));
    return plan({ config: this.ctx.config, node: this.ctx.node, pods: [...this.attachments.values()], peers, policy, subnet: this.subnet });
  }
}
