/**
 * Broken (calico): the ADD result reports the underlay MTU for the container interface, while the
 * interface the dataplane sets up has the IPIP headroom taken off (the result and the pod disagree).
 */
import type { AgentContext, AttachResult, Backend, NodeAgent, PodAttachment } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class UnderlayMtuResultAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<CalicoConfig>,
  ) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    const mtu = this.ctx.node.underlay[0]?.mtu ?? 1500;
    return { ...result, interfaces: result.interfaces.map((i) => (i.sandbox ? { ...i, mtu } : i)) };
  }
}

export const resultMtuWithoutHeadroom: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-result-mtu-without-headroom", {
  agent: (inner, ctx) => new UnderlayMtuResultAgent(inner, ctx),
});
