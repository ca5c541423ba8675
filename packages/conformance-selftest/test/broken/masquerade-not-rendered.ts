/**
 * Broken (every shape): the NAT setting (flannel IPMasq, calico natOutgoing, the reference's
 * natOutgoing) is parsed and promised by `summarize`, but the agent never renders the masquerade
 * rule: pods talk to the outside world with their own addresses, which nobody routes back.
 */
import type { Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class NoMasqueradeAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    return dp.nat.length === 0 ? dp : { ...dp, nat: [] };
  }
}

/** `base` whose agents render no NAT rule at all. */
export function masqueradeNotRenderedOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new NoMasqueradeAgent(inner) });
}
