/** Broken: the agent drops every egress FilterPolicy from its dataplane (only ingress is enforced). */
import type { Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

export class IngressOnlyAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (!dp.filters.some((f) => f.direction === "egress")) return dp;
    return { ...dp, filters: dp.filters.filter((f) => f.direction !== "egress") };
  }
}

/** `base` (one that claims NetworkPolicy) that enforces ingress rules only. */
export function policyForgetsEgressOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new IngressOnlyAgent(inner) });
}

export const policyForgetsEgress = policyForgetsEgressOf(reference, "broken-policy-forgets-egress");
