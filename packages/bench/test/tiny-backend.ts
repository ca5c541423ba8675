/**
 * A third-party-like backend written against @cnikit/core's public exports only (the contract and
 * the agent kit), in the shape of examples/static-routes-ts: a node takes a /24 of 10.50.0.0/16
 * under a store lease, pods sit on a bridge, and every node routes to the others' subnets via their
 * underlay addresses (one L2 subnet). `forgetful: false` makes it deliberately broken: a node never
 * withdraws a peer's route once it has seen it (a stale route after a leave).
 */
import { AddressPool, AgentRuntime, Informer, Prefix, SubnetLeaseKeeper, canonicalDataplane, defineBackend, emptyDataplane, fnv1a32Hex, podKey } from "@cnikit/core";
import type { AgentContext, AttachResult, Backend, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";

const NETWORK = "10.50.0.0/16";
const SUBNETS = "/tiny/subnets/";
const TTL_SECONDS = 10;
const BRIDGE = "tiny0";
const PODS = "/pods/";

type Pod = PodAttachment & { address: string };

const gatewayOf = (subnet: string): string => Prefix.parse(subnet).nth(1);
const hostIfOf = (pod: PodRef): string => `veth${fnv1a32Hex(podKey(pod))}`;
const macOf = (address: string): string =>
  `0a:58:${address
    .split(".")
    .map((o) => Number(o).toString(16).padStart(2, "0"))
    .join(":")}`;

class TinyAgent extends AgentRuntime<{ forgetful: boolean }, Pod> {
  private pool: AddressPool | undefined;
  private readonly lease: SubnetLeaseKeeper;
  private readonly claims: Informer<string>;
  /** Every peer subnet ever seen (the broken variant plans from this, never forgetting). */
  private readonly seen = new Map<string, { subnet: string; address: string }>();

  constructor(ctx: AgentContext<{ forgetful: boolean }>) {
    super(ctx, { component: "tiny" });
    const me = ctx.node.name;
    this.lease = new SubnetLeaseKeeper({
      ...ctx,
      component: "tiny",
      prefix: SUBNETS,
      localKey: "/subnet",
      ttlSeconds: TTL_SECONDS,
      renewEveryMs: (TTL_SECONDS * 1000) / 3,
      value: () => me,
      isMine: (kv) => kv.value === me,
      pick: ({ listing, random }) => {
        const taken = new Set(listing.map((kv) => kv.key));
        const free = [...Prefix.parse(NETWORK).subnets(24)]
          .map((s) => SUBNETS + s.toString())
          .filter((k) => !taken.has(k))
          .slice(0, 16);
        return free[Math.floor(random() * free.length)]!;
      },
      fits: (key) => key.startsWith(SUBNETS),
      onLost: () => this.setImpaired("subnet lost"),
    });
    this.claims = new Informer({ ...ctx, prefix: SUBNETS, signal: this.signal, decode: (kv) => kv.value, resyncMs: 5_000, onBatch: () => this.replan() });
  }

  private get subnet(): string | undefined {
    return this.lease.claim?.key.slice(SUBNETS.length);
  }

  protected async join(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.lease.stop(), { once: true });
    await this.lease.acquire(signal);
    this.pool = new AddressPool({ range: this.subnet!, gateway: gatewayOf(this.subnet!), component: "tiny" });
    // A restart keeps the pods (node-local records).
    for (const kv of (await this.ctx.local.list(PODS)).items) {
      const pod = JSON.parse(kv.value) as Pod;
      if (!Prefix.parse(this.subnet!).contains(pod.address)) {
        await this.ctx.local.delete(kv.key);
        continue;
      }
      this.pool.allocateSpecific(pod.address, podKey(pod));
      this.restore(pod);
    }
    const unsubscribe = this.ctx.members.onChange(() => this.replan());
    signal.addEventListener("abort", () => unsubscribe(), { once: true });
    await this.claims.start();
  }

  protected override async releaseShare(): Promise<void> {
    await this.lease.release();
  }

  protected async reserve(attachment: PodAttachment): Promise<Pod> {
    const pod = { ...attachment, address: this.pool!.allocate(podKey(attachment)) };
    await this.ctx.local.put(PODS + podKey(pod), JSON.stringify(pod));
    return pod;
  }

  protected async unreserve(ref: PodRef): Promise<void> {
    await this.ctx.local.delete(PODS + podKey(ref));
    this.pool?.releaseOwner(podKey(ref));
  }

  protected result(pod: Pod): AttachResult {
    const gw = gatewayOf(this.subnet!);
    return { interfaces: [{ name: pod.ifName, mac: macOf(pod.address), sandbox: pod.netns }], ips: [{ address: `${pod.address}/24`, gateway: gw, interface: 0 }], routes: [{ dst: "0.0.0.0/0", gw }] };
  }

  protected plan(): NodeDataplane {
    const me = this.ctx.node;
    const subnet = this.subnet;
    if (subnet === undefined) return emptyDataplane(me.name);
    const current = new Map<string, { subnet: string; address: string }>();
    for (const key of this.claims.keys()) {
      const node = this.claims.get(key)!;
      const address = this.ctx.members.get(node)?.underlay[0]?.address;
      if (node !== me.name && address !== undefined) current.set(node, { subnet: key.slice(SUBNETS.length), address });
    }
    for (const [k, v] of current) this.seen.set(k, v);
    const peers = this.ctx.config.forgetful ? [...current.values()] : [...this.seen.values()];
    const underlay = me.underlay[0]!;
    const gateway = gatewayOf(subnet);
    return canonicalDataplane({
      node: me.name,
      links: [{ kind: "bridge", name: BRIDGE, mtu: 1500, mac: macOf(gateway) }],
      addresses: [{ dev: BRIDGE, cidr: `${gateway}/24` }],
      routes: peers.map((p) => ({ dst: p.subnet, via: p.address, dev: underlay.iface })),
      neighbours: [],
      fdb: [],
      sysctls: { ipv4Forwarding: true },
      nat: [],
      filters: [],
      pods: [...this.attachments.values()].map((pod) => ({
        key: podKey(pod),
        containerId: pod.containerId,
        ifName: pod.ifName,
        netns: pod.netns,
        hostIf: hostIfOf(pod),
        bridge: BRIDGE,
        mac: macOf(pod.address),
        mtu: 1500,
        addresses: [`${pod.address}/24`],
        gateways: [gateway],
        routes: [{ dst: "0.0.0.0/0", via: gateway }],
      })),
    });
  }
}

function tinyBackend(name: string, forgetful: boolean): Backend<{ forgetful: boolean }> {
  return defineBackend<{ forgetful: boolean }>({
    name,
    capabilities: { networkPolicy: false, encryption: false, encapsulations: ["none"], families: [4] },
    parseConfig: () => ({ forgetful }),
    summarize: () => ({ podRanges: [NETWORK], natOutgoing: false, encapsulations: ["none"], convergenceMs: 2_000, crashDetectionMs: TTL_SECONDS * 1000 + 5_000 }),
    topologyNeeds: () => ({ singleSubnet: true }),
    createAgent: (ctx) => new TinyAgent(ctx),
  });
}

/** The tiny backend: a correct one. */
export const tiny = tinyBackend("tiny", true);
/** The same, broken: routes to a departed node are never withdrawn. */
export const tinyNeverWithdraws = tinyBackend("tiny-never-withdraws", false);

/**
 * The tiny backend, broken another way: its agent gives its subnet back on every stop, a restart
 * included (the other nodes withdraw its routes until it is back: route loss).
 */
export const tinyReleasesOnRestart = defineBackend<{ forgetful: boolean }>({
  ...tiny,
  name: "tiny-releases-on-restart",
  createAgent: (ctx) => {
    const agent = tiny.createAgent(ctx);
    return {
      start: () => agent.start(),
      stop: () => agent.stop({ release: true }),
      attach: (pod) => agent.attach(pod),
      detach: (pod) => agent.detach(pod),
      check: (pod) => agent.check(pod),
      gc: (valid) => agent.gc(valid),
      status: () => agent.status(),
      dataplane: () => agent.dataplane(),
      onDataplaneChange: (listener) => agent.onDataplaneChange(listener),
    };
  },
});
