/**
 * Broken (flannel, calico): the masquerade rule's exception covers only this node's own pod
 * addresses (flannel: its lease subnet; calico: its affine blocks) instead of the whole pod
 * network, so traffic to pods on other nodes leaves masqueraded to the node's address. Traffic to
 * the outside world is still masqueraded as it should be.
 */
import { Prefix } from "@cnikit/core";
import type { Backend, NodeAgent, NodeDataplane } from "@cnikit/core";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class OwnSubnetExceptionAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly ownRanges: (dp: NodeDataplane) => string[],
  ) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (dp.nat.length === 0) return dp;
    const own = this.ownRanges(dp);
    return {
      ...dp,
      nat: dp.nat.map((rule) => ({
        ...rule,
        exceptDestinations: [...own, ...rule.exceptDestinations.filter((d) => Prefix.parse(d).family === 4 && Prefix.parse(d).contains("224.0.0.1"))],
      })),
    };
  }
}

/** flannel: the node subnet is the prefix of the bridge's gateway address. */
function bridgeSubnet(dp: NodeDataplane): string[] {
  return dp.addresses.filter((a) => a.dev === "cni0").map((a) => Prefix.parse(a.cidr, { allowHostBits: true }).toString());
}

/** calico: the node's affine blocks are its blackhole routes. */
function affineBlocks(dp: NodeDataplane): string[] {
  return dp.routes.filter((r) => r.type === "blackhole").map((r) => r.dst);
}

export function natOnlyOwnSubnetExceptedOf<C>(base: Backend<C>, name: string, ownRanges: "bridge subnet" | "affine blocks"): Backend<C> {
  const pick = ownRanges === "bridge subnet" ? bridgeSubnet : affineBlocks;
  return wrapBackend(base, name, { agent: (inner) => new OwnSubnetExceptionAgent(inner, pick) });
}
