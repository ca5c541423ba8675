/**
 * Broken (calico, routed + BGP): the BGP peer list is rendered once, from the nodes the agent saw
 * in its first listing (confd never re-renders), so routes to a node that joins later are never
 * installed on the nodes that were already there.
 */
import type { AgentContext, Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { calicoNodeAddresses } from "./peer-listings.ts";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class FrozenPeersAgent extends WrappedAgent {
  /** Underlay addresses of the nodes in the first listing (undefined until it was taken). */
  private known: Set<string> | undefined;

  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<CalicoConfig>,
  ) {
    super(inner);
  }

  override async start(): Promise<void> {
    await this.inner.start();
    // The peer list is rendered once the clock moves (after the nodes that join with this one).
    this.ctx.clock.setTimeout(() => {
      void calicoNodeAddresses(this.ctx.store).then((known) => {
        this.known = known;
      });
    }, 1);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const known = this.known;
    const learned = (via: string | undefined, origin: string | undefined) => origin?.startsWith("bgp") === true && via !== undefined && !known?.has(via);
    if (!known || !dp.routes.some((r) => learned(r.via, r.origin))) return dp;
    return { ...dp, routes: dp.routes.filter((r) => !learned(r.via, r.origin)) };
  }
}

export const bgpPeersFrozen: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-bgp-peers-frozen", {
  agent: (inner, ctx) => new FrozenPeersAgent(inner, ctx),
});
