// @ts-check
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
import { PolicyComponent, directoryPodOf, planPolicy, podDirectoryPrefix, publishedPodDirectory } from "@cnikit/netpol";
import { NAME } from "./config.js";
import { BRIDGE, gatewayOf, hostIfOf, ipv4Underlay, macOf, plan } from "./plan.js";

/** @typedef {import("@cnikit/core").AttachResult} AttachResult */
/** @typedef {import("@cnikit/core").PodAttachment} PodAttachment */
/** @typedef {import("@cnikit/core").PodRef} PodRef */
/** @typedef {import("./config.js").StaticRoutesConfig} StaticRoutesConfig */
/** @typedef {import("./plan.js").Peer} Peer */
/** @typedef {import("./plan.js").Pod} Pod */

export const SUBNETS = "/static-routes/subnets/";
export const TTL_SECONDS = 30;
export const RESYNC_MS = 30_000;
const PODS = "/pods/";
/** @param {PodRef} ref */
const podRecordKey = (ref) => `${PODS}${ref.containerId}/${ref.ifName}`;

/** Whether a subnet (a key's tail) is one this config hands out. @param {StaticRoutesConfig} config @param {string} subnet */
export function fits(config, subnet) {
  try {
    const p = Prefix.parse(subnet);
    return p.toString() === subnet && p.length === config.nodeSubnetLength && Prefix.parse(config.network).contains(p);
  } catch {
    return false;
  }
}

/**
 * A free subnet: the one held before if still free, else one of the first 16 free (at random, so nodes starting together rarely collide).
 * @param {StaticRoutesConfig} config @param {Set<string>} taken @param {string | undefined} previous @param {() => number} random
 */
export function pickSubnet(config, taken, previous, random) {
  if (previous !== undefined && !taken.has(previous) && fits(config, previous)) return previous;
  /** @type {string[]} */
  const free = [];
  for (const s of Prefix.parse(config.network).subnets(config.nodeSubnetLength)) {
    if (!taken.has(s.toString())) free.push(s.toString());
    if (free.length === 16) break;
  }
  if (free.length === 0) throw new PoolExhaustedError(config.network, `[${NAME}] every /${config.nodeSubnetLength} of ${config.network} is taken`);
  return /** @type {string} */ (free[Math.floor(random() * free.length)]);
}

/** @extends {AgentRuntime<StaticRoutesConfig, Pod>} */
export class StaticRoutesAgent extends AgentRuntime {
  /** @type {AddressPool | undefined} */
  #pool;
  #lease;
  #claims;
  #policy;

  /** @param {import("@cnikit/core").AgentContext<StaticRoutesConfig>} ctx */
  constructor(ctx) {
    super(ctx, { component: NAME });
    const me = ctx.node.name;
    /** @param {string} key */
    const subnetOf = (key) => key.slice(SUBNETS.length);
    this.#lease = new SubnetLeaseKeeper({
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
      onRenewedLease: (claim) => this.#policy.setLease(claim.lease),
    });
    /** @type {Informer<string>} */
    this.#claims = new Informer({ ...ctx, prefix: SUBNETS, signal: this.signal, decode: (kv) => kv.value, resyncMs: RESYNC_MS, onBatch: () => this.#onClaims() });
    this.#policy = new PolicyComponent({ ...ctx, node: me, directory: publishedPodDirectory(podDirectoryPrefix(NAME)), component: NAME });
    this.#policy.onChange(() => this.replan());
  }

  get #subnet() {
    return this.#lease.claim?.key.slice(SUBNETS.length);
  }

  /** @override @param {AbortSignal} signal */
  async join(signal) {
    ipv4Underlay(this.ctx.node);
    signal.addEventListener("abort", () => this.#lease.stop(), { once: true });
    this.#policy.setLease((await this.#lease.acquire(signal)).lease);
    const subnet = /** @type {string} */ (this.#subnet);
    const pool = new AddressPool({ range: subnet, gateway: gatewayOf(subnet), component: NAME });
    this.#pool = pool;
    for (const kv of (await this.ctx.local.list(PODS)).items) {
      const pod = /** @type {Pod} */ (JSON.parse(kv.value));
      if (!Prefix.parse(subnet).contains(pod.address)) {
        await this.ctx.local.delete(kv.key);
        continue;
      }
      pool.allocateSpecific(pod.address, podKey(pod));
      this.restore(pod);
      this.attached(pod);
    }
    const unsubscribe = this.ctx.members.onChange(() => this.replan());
    signal.addEventListener("abort", () => unsubscribe(), { once: true });
    await this.#claims.start();
    await this.#policy.start(signal);
  }

  /** The store changed under our own key (expired while cut off, or taken): let the keeper write it back or report it. */
  #onClaims() {
    const key = this.#lease.claim?.key;
    if (this.phase === "running" && key !== undefined && this.#claims.get(key) !== this.ctx.node.name) void this.#lease.verify(this.#claims.getKv(key) ?? null);
    this.replan();
  }

  /** @override */
  async releaseShare() {
    await this.#policy.stop();
    await this.#lease.release();
  }

  /** @override @param {PodAttachment} attachment @returns {Promise<Pod>} */
  async reserve(attachment) {
    const pool = /** @type {AddressPool} */ (this.#pool);
    const [wanted, ...more] = attachment.requestedIps ?? [];
    if (more.length > 0) throw new ConfigError({ component: NAME, field: "requestedIps", rule: "at most one address (IPv4 only)", value: attachment.requestedIps });
    const key = podKey(attachment);
    const address = wanted === undefined ? pool.allocate(key) : pool.allocateSpecific(wanted, key);
    const pod = { ...attachment, address };
    try {
      await this.ctx.local.put(podRecordKey(pod), JSON.stringify(pod));
    } catch (err) {
      pool.release(address);
      throw new TryAgainError(`[${NAME}] could not record ${address} for ${key}; try again`, { cause: err });
    }
    return pod;
  }

  /** @override @param {PodRef} ref */
  async unreserve(ref) {
    try {
      await this.ctx.local.delete(podRecordKey(ref));
    } catch (err) {
      throw new TryAgainError(`[${NAME}] could not record the release of ${podKey(ref)}; try again`, { cause: err });
    }
    this.#pool?.releaseOwner(podKey(ref));
  }

  /** @override @returns {Promise<PodRef[]>} */
  async persistedRefs() {
    return (await this.ctx.local.list(PODS)).items.map((kv) => /** @type {Pod} */ (JSON.parse(kv.value)));
  }

  /** @override @param {Pod} pod */
  attached(pod) {
    this.#policy.podAdded({ ...pod, ips: [pod.address], hostIf: hostIfOf(pod) });
  }

  /** @override @param {string} _key @param {Pod} pod */
  detached(_key, pod) {
    this.#policy.podRemoved(pod);
  }

  /** @override @param {Pod} pod @returns {AttachResult} */
  result(pod) {
    const subnet = /** @type {string} */ (this.#subnet);
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

  /** Peers = the subnet keys joined with membership (a key whose node is not a member yet is left out). @override */
  plan() {
    /** @type {Peer[]} */
    const peers = [];
    for (const key of this.#claims.keys()) {
      const node = /** @type {string} */ (this.#claims.get(key));
      const address = this.ctx.members.get(node)?.underlay.find((u) => !u.address.includes(":"))?.address;
      if (address !== undefined) peers.push({ node, subnet: key.slice(SUBNETS.length), address });
    }
    const me = this.ctx.node.name;
    /** @type {(pod: Pod) => import("@cnikit/netpol").DirectoryPod} */
    const podOf = (pod) => directoryPodOf(me, { ...pod, ips: [pod.address], hostIf: hostIfOf(pod) });
    const policy = planPolicy(this.#policy.snapshot(), podOf);
    return plan({ config: this.ctx.config, node: this.ctx.node, pods: [...this.attachments.values()], peers, policy, subnet: this.#subnet });
  }
}
