/**
 * Broken: an agent learns the nodes that exist when it starts (and those that appear before its
 * first timer fires), then ignores every node that joins later: no route to it, ever.
 */
import type { AgentContext, NodeAgent, NodeDataplane } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import type { ReferenceConfig } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class ForgetfulAgent extends WrappedAgent {
  private known: Set<string> | undefined;

  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<ReferenceConfig>,
  ) {
    super(inner);
  }

  override async start(): Promise<void> {
    await this.inner.start();
    this.ctx.clock.setTimeout(() => {
      this.known = new Set(this.inner.dataplane().routes.map((r) => r.dst));
    }, 1);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const known = this.known;
    if (!known) return dp;
    return { ...dp, routes: dp.routes.filter((r) => known.has(r.dst)) };
  }
}

export const missingRouteAfterJoin = wrapBackend(reference, "broken-missing-route-after-join", {
  agent: (inner, ctx) => new ForgetfulAgent(inner, ctx),
});
