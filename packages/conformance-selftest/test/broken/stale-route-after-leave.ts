/** Broken: an agent keeps every route it ever planned, so departed nodes are never forgotten. */
import type { NodeAgent, NodeDataplane, RouteEntry } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class HoardingAgent extends WrappedAgent {
  private readonly seen = new Map<string, RouteEntry>();

  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    for (const r of dp.routes) this.seen.set(`${r.dst} ${r.via ?? ""}`, r);
    const current = new Set(dp.routes.map((r) => r.dst));
    const stale = [...this.seen.values()].filter((r) => !current.has(r.dst));
    return stale.length === 0 ? dp : { ...dp, routes: [...dp.routes, ...stale] };
  }
}

export const staleRouteAfterLeave = wrapBackend(reference, "broken-stale-route-after-leave", {
  agent: (inner) => new HoardingAgent(inner),
});
