/**
 * Broken (flannel vxlan, calico VXLAN): the FDB is filled from the agent's first view of its peers
 * only (flannel: the subnet leases; calico: the node records). A node that joins later gets its
 * route and neighbour entry on every other node, but no FDB entry (VTEP MAC -> its underlay
 * address), so encapsulated frames to it have nowhere to go. flannel host-gw, which has no FDB,
 * the same way loses the route `via <the late node's address>`.
 */
import type { AgentContext, Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { calicoNodeAddresses, flannelVteps } from "./peer-listings.ts";
import type { PeerListing } from "./peer-listings.ts";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class FirstListingFdbAgent<C> extends WrappedAgent {
  /** Underlay addresses of the VTEPs in the first listing (undefined until it was taken). */
  private known: Set<string> | undefined;

  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<C>,
    private readonly listing: PeerListing,
    /** What is missing for a late peer: its FDB entry (vxlan) or its route (host-gw). */
    private readonly kind: "fdb" | "routes" = "fdb",
  ) {
    super(inner);
  }

  override async start(): Promise<void> {
    await this.inner.start();
    // The first listing is taken once the clock moves (after the nodes that join with this one).
    this.ctx.clock.setTimeout(() => {
      void this.listing(this.ctx.store).then((known) => {
        this.known = known;
      });
    }, 1);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const known = this.known;
    if (!known) return dp;
    if (this.kind === "routes") {
      const late = (via: string | undefined) => via !== undefined && !known.has(via);
      return dp.routes.some((r) => late(r.via)) ? { ...dp, routes: dp.routes.filter((r) => !late(r.via)) } : dp;
    }
    if (dp.fdb.every((f) => known.has(f.dst))) return dp;
    return { ...dp, fdb: dp.fdb.filter((f) => known.has(f.dst)) };
  }
}

export const fdbMissingNewestPeer: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-fdb-missing-newest-peer", {
  agent: (inner, ctx) => new FirstListingFdbAgent(inner, ctx, flannelVteps),
});

export const calicoFdbMissingNewestPeer: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-vxlan-fdb-missing-newest-peer", {
  agent: (inner, ctx) => new FirstListingFdbAgent(inner, ctx, calicoNodeAddresses),
});

export const hostGwRoutesFrozen: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-host-gw-routes-frozen", {
  agent: (inner, ctx) => new FirstListingFdbAgent(inner, ctx, flannelVteps, "routes"),
});
