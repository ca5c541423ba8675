/**
 * Broken: pods get a jumbo MTU (9000) on a 1500-byte underlay, so full-size packets do not fit
 * between nodes.
 */
import type { NodeAgent, NodeDataplane } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, copy, wrapBackend } from "./wrap.ts";

class JumboAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (dp.pods.length === 0) return dp;
    const out = copy(dp);
    for (const p of out.pods) p.mtu = 9000;
    return out;
  }
}

export const mtuNoHeadroom = wrapBackend(reference, "broken-mtu-no-headroom", {
  agent: (inner) => new JumboAgent(inner),
});
