/** Broken: the agent drops every egress FilterPolicy from its dataplane (only ingress is enforced). */
import type { NodeAgent, NodeDataplane } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class IngressOnlyAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (!dp.filters.some((f) => f.direction === "egress")) return dp;
    return { ...dp, filters: dp.filters.filter((f) => f.direction !== "egress") };
  }
}

export const policyForgetsEgress = wrapBackend(reference, "broken-policy-forgets-egress", {
  agent: (inner) => new IngressOnlyAgent(inner),
});
