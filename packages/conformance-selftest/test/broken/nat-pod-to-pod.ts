/** Broken: masquerades everything the pods send, pod-to-pod traffic included (no pod-range exception). */
import type { AgentContext, NodeAgent, NodeDataplane } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import type { ReferenceConfig } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class OverMasqueradingAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<ReferenceConfig>,
  ) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (dp.links.length === 0) return dp;
    return { ...dp, nat: [{ id: "broken/masquerade-all", kind: "masquerade", sources: [this.ctx.config.network], exceptDestinations: [] }] };
  }
}

export const natPodToPod = wrapBackend(reference, "broken-nat-pod-to-pod", {
  agent: (inner, ctx) => new OverMasqueradingAgent(inner, ctx),
});
