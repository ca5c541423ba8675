/**
 * Broken (flannel): DEL and GC leak every address, and the leak lives only in the agent's memory —
 * the released address is re-held by the host-local pool under a hidden owner whose record is
 * removed from `ctx.local` at once (and the last-reserved cursor put back), so neither store shows
 * it. The backend also refuses requested
 * addresses (code 2), so the suite cannot ask for a released address back: only a node whose share
 * runs out shows the leak.
 */
import { UnsupportedFieldError, podKey } from "@cnikit/core";
import type { AgentContext, AttachResult, Backend, NodeAgent, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import { LOCAL_KEYS } from "@cnikit/flannel/internal";
import type { FlannelConfig } from "@cnikit/flannel";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const HIDDEN = "in-memory-leak-";

class InMemoryLeakAgent extends WrappedAgent {
  private readonly addresses = new Map<string, string[]>();
  private hidden = 0;

  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<FlannelConfig>,
  ) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    if (pod.requestedIps && pod.requestedIps.length > 0) {
      throw new UnsupportedFieldError({ component: "broken-flannel", field: "requestedIps", value: pod.requestedIps, rule: "requested addresses are not supported" });
    }
    const result = await this.inner.attach(pod);
    this.addresses.set(
      podKey(pod),
      result.ips.map((ip) => ip.address.split("/")[0]!),
    );
    return result;
  }

  override async detach(ref: PodRef): Promise<void> {
    await this.inner.detach(ref);
    await this.leak(ref);
  }

  override async gc(valid: PodRef[]): Promise<void> {
    const keep = new Set(valid.map((v) => podKey(v)));
    const hidden = this.inner
      .dataplane()
      .pods.filter((p) => p.containerId.startsWith(HIDDEN))
      .map((p) => ({ containerId: p.containerId, ifName: p.ifName }));
    const gone = this.inner
      .dataplane()
      .pods.filter((p) => !p.containerId.startsWith(HIDDEN) && !keep.has(p.key))
      .map((p) => ({ containerId: p.containerId, ifName: p.ifName }));
    await this.inner.gc([...valid, ...hidden]);
    for (const ref of gone) await this.leak(ref);
  }

  /** Re-holds the attachment's addresses under a hidden owner and removes that owner's record from ctx.local. */
  private async leak(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    const addresses = this.addresses.get(key);
    if (!addresses) return;
    this.addresses.delete(key);
    const id = `${HIDDEN}${++this.hidden}`;
    const cursors = await Promise.all(([4, 6] as const).map(async (family) => ({ key: LOCAL_KEYS.lastReserved(family), kv: await this.ctx.local.get(LOCAL_KEYS.lastReserved(family)) })));
    await this.inner.attach({ containerId: id, ifName: ref.ifName, netns: "/leaked", requestedIps: addresses }).catch(() => undefined);
    await this.ctx.local.delete(`${LOCAL_KEYS.pods}${id}/${ref.ifName}`);
    for (const { key: k, kv } of cursors) {
      if (kv) await this.ctx.local.put(k, kv.value);
      else await this.ctx.local.delete(k);
    }
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (!dp.pods.some((p) => p.containerId.startsWith(HIDDEN))) return dp;
    return { ...dp, pods: dp.pods.filter((p) => !p.containerId.startsWith(HIDDEN)) };
  }
}

export const leakInMemoryRefusesRequestedIps: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-leak-in-memory-no-requested-ips", {
  agent: (inner, ctx) => new InMemoryLeakAgent(inner, ctx),
});
