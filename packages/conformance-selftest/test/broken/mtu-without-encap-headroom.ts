/**
 * Broken (flannel vxlan, calico IPIP): pod interfaces (and flannel's bridge) take the underlay's MTU
 * as it is, without subtracting the encapsulation header (vxlan 50, IPIP 20), so a full-size pod
 * packet no longer fits the underlay once encapsulated. Tunnel devices keep their correct MTU.
 */
import type { Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import type { AgentContext } from "@cnikit/core";
import { WrappedAgent, copy, wrapBackend } from "./wrap.ts";

class UnderlayMtuAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly mtu: number,
  ) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (dp.pods.length === 0) return dp;
    const out = copy(dp);
    for (const p of out.pods) p.mtu = this.mtu;
    for (const l of out.links) if (l.kind === "bridge") l.mtu = this.mtu;
    return out;
  }
}

/** `base` whose pods get the MTU of the node's first underlay interface (1500 when it names none). */
export function mtuWithoutEncapHeadroomOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, {
    agent: (inner, ctx: AgentContext<C>) => new UnderlayMtuAgent(inner, ctx.node.underlay[0]?.mtu ?? 1500),
  });
}
