/**
 * Broken (flannel dual stack): the agent plans its peers' IPv4 subnets only — the onlink routes to
 * other nodes' IPv6 pod subnets are never installed — so IPv6 between pods on different nodes is
 * dropped while IPv4 works.
 */
import type { Backend, NodeAgent, NodeDataplane, RouteEntry } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const ipv6PeerRoute = (r: RouteEntry) => r.onlink === true && r.dst.includes(":");

class Ipv4PeersOnlyAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    return dp.routes.some(ipv6PeerRoute) ? { ...dp, routes: dp.routes.filter((r) => !ipv6PeerRoute(r)) } : dp;
  }
}

export const ipv6PeerRoutesMissing: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-ipv6-peer-routes-missing", {
  agent: (inner) => new Ipv4PeersOnlyAgent(inner),
});
