/**
 * Broken (calico, routed + IPIP): the pod MTU is pinned to 1480 (a 1500-byte underlay minus the
 * IPIP header) instead of being derived from the node's underlay interface. Right on the usual
 * 1500-byte underlay; on a 1400-byte cloud underlay full-size pod packets no longer fit the tunnel.
 */
import type { Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const PINNED = 1500 - 20;

class PinnedMtuAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    return {
      ...dp,
      pods: dp.pods.map((p) => ({ ...p, mtu: PINNED })),
      links: dp.links.map((l) => (l.kind === "ipip" ? { ...l, mtu: PINNED } : l)),
      routes: dp.routes.map((r) => (r.mtu !== undefined ? { ...r, mtu: PINNED } : r)),
    };
  }
}

export const pinnedPodMtu = wrapBackend(calico, "broken-calico-pinned-pod-mtu", {
  agent: (inner) => new PinnedMtuAgent(inner),
}) as Backend<unknown>;
