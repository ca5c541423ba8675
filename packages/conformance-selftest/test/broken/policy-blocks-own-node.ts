/**
 * Broken (backends that claim NetworkPolicy): pod isolation also cuts the pod off from its own node
 * — the filters lose the rule that accepts traffic between a pod and the node it runs on (netpol's
 * `np/node-local`, which NetworkPolicy semantics require: traffic to and from the pod's node is
 * always allowed), so kubelet probes of an isolated pod fail.
 */
import type { Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const NODE_RULE = "np/node-local";

class NodeBlockingAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (!dp.filters.some((f) => f.rules.some((r) => r.id === NODE_RULE))) return dp;
    return { ...dp, filters: dp.filters.map((f) => ({ ...f, rules: f.rules.filter((r) => r.id !== NODE_RULE) })) };
  }
}

/** `base` whose isolated pods no longer accept traffic from (or send to) their own node. */
export function policyBlocksOwnNodeOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new NodeBlockingAgent(inner) });
}
