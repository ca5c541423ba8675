/**
 * Broken (reference, bridge + lease): every node sends traffic for the other nodes' subnets through
 * one hub (the node with the lowest underlay address on its subnet) instead of straight to the
 * owner. Everything is still delivered while all nodes live — delivery-only checks stay green —
 * but every path hairpins through a third node, and through a dead one while a crash is undetected.
 */
import type { AgentContext, Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { Prefix } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

function addressKey(a: string): bigint {
  return Prefix.host(a).base;
}

class HubRoutingAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<unknown>,
  ) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const self = this.ctx.node.underlay[0];
    if (!self) return dp;
    const subnet = Prefix.parse(`${self.address}/${self.prefixLength}`, { allowHostBits: true });
    const vias = dp.routes.filter((r) => r.via !== undefined && r.dst !== "0.0.0.0/0" && subnet.contains(r.via)).map((r) => r.via!);
    const candidates = [self.address, ...vias].sort((a, b) => (addressKey(a) < addressKey(b) ? -1 : addressKey(a) > addressKey(b) ? 1 : 0));
    const hub = candidates[0]!;
    if (hub === self.address) return dp;
    const routes = dp.routes.map((r) => (r.via !== undefined && r.via !== hub && vias.includes(r.via) ? { ...r, via: hub } : r));
    return { ...dp, routes };
  }
}

export const hairpinViaHub: Backend<unknown> = wrapBackend(reference as Backend<unknown>, "broken-reference-hairpin-via-hub", {
  agent: (inner, ctx) => new HubRoutingAgent(inner, ctx),
});
