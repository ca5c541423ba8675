/**
 * Broken (flannel vxlan with DirectRouting, calico IPIP CrossSubnet): the "is the peer on my own L2
 * subnet?" test is skipped, so peers on another underlay subnet get a native route as well —
 * flannel routes their subnet `via <PublicIP>` on the underlay device, calico routes their block
 * through the underlay's default gateway unencapsulated. The router between the subnets knows no
 * pod routes: cross-subnet pod traffic dies there, while peers on the same subnet still work.
 */
import type { AgentContext, Backend, NodeAgent, NodeDataplane, RouteEntry } from "@cnikit/core";
import { IPIP_DEVICE, calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class NativeEverywhereAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly native: (dp: NodeDataplane, r: RouteEntry) => RouteEntry | undefined,
  ) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    let changed = false;
    const routes = dp.routes.map((r) => {
      const n = this.native(dp, r);
      if (n) changed = true;
      return n ?? r;
    });
    return changed ? { ...dp, routes } : dp;
  }
}

/** flannel: an onlink vxlan route becomes `via <the peer's VTEP underlay address> dev <underlay>`. */
function flannelDirect(ctx: AgentContext<FlannelConfig>): (dp: NodeDataplane, r: RouteEntry) => RouteEntry | undefined {
  const iface = ctx.node.underlay[0]?.iface;
  return (dp, r) => {
    if (!r.onlink || r.via === undefined || iface === undefined) return undefined;
    const mac = dp.neighbours.find((n) => n.dev === r.dev && n.ip === r.via)?.mac;
    const dst = dp.fdb.find((f) => f.dev === r.dev && f.mac === mac)?.dst;
    return dst === undefined ? undefined : { dst: r.dst, via: dst, dev: iface, origin: `${r.origin ?? ""} direct` };
  };
}

/** calico: an IPIP route becomes a native route through the underlay's default gateway. */
function calicoNative(ctx: AgentContext<CalicoConfig>): (dp: NodeDataplane, r: RouteEntry) => RouteEntry | undefined {
  const u = ctx.node.underlay.find((x) => !x.address.includes(":"));
  return (_dp, r) => {
    if (r.dev !== IPIP_DEVICE || !u?.gateway) return undefined;
    return { dst: r.dst, via: u.gateway, dev: u.iface, origin: "bgp (recursive)" };
  };
}

export const flannelDirectRoutingAcrossSubnets: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-direct-routing-across-subnets", {
  agent: (inner, ctx) => new NativeEverywhereAgent(inner, flannelDirect(ctx)),
});

export const calicoCrossSubnetAsNever: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-crosssubnet-as-never", {
  agent: (inner, ctx) => new NativeEverywhereAgent(inner, calicoNative(ctx)),
});
