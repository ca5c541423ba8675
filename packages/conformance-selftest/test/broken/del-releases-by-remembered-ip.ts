/**
 * Broken (calico): DEL releases the address remembered from the attachment's ADD, whoever holds it
 * now — a DEL repeated after the address went to another pod frees that pod's handle in IPAM (the
 * other pod keeps running on an address the store calls free).
 */
import { podKey } from "@cnikit/core";
import type { AgentContext, AttachResult, Backend, NodeAgent, PodAttachment, PodRef } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import { readIpam, releaseHandle } from "@cnikit/calico/internal";
import type { CalicoConfig } from "@cnikit/calico";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class RememberedIpReleaseAgent extends WrappedAgent {
  /** Never forgotten: the stale cache the bug lives in. */
  private readonly remembered = new Map<string, string>();

  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<CalicoConfig>,
  ) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    const ip = result.ips[0];
    if (ip) this.remembered.set(podKey(pod), ip.address.split("/")[0]!);
    return result;
  }

  override async detach(ref: PodRef): Promise<void> {
    await this.inner.detach(ref);
    const address = this.remembered.get(podKey(ref));
    if (!address) return;
    const ipam = await readIpam(this.ctx.store);
    for (const { record } of ipam.handles.values()) {
      if (record.address === address) await releaseHandle(this.ctx.store, record.handle);
    }
  }
}

export const delReleasesByRememberedIp: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-del-releases-remembered-ip", {
  agent: (inner, ctx) => new RememberedIpReleaseAgent(inner, ctx),
});
