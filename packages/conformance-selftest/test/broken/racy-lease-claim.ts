/**
 * Broken (flannel, vxlan + lease): the subnet lease is created with a plain put instead of
 * create-if-absent (the compare-and-swap on the lease key is dropped), and every agent picks the
 * lowest free subnet. Nodes that join at the same moment all "win" the same subnet and hand out
 * the same pod addresses from it.
 */
import type { AgentContext, Backend } from "@cnikit/core";
import { SUBNET_PREFIX, flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { bentStore, wrapBackend } from "./wrap.ts";

function racyClaims(ctx: AgentContext<FlannelConfig>): AgentContext<FlannelConfig> {
  const store = bentStore(ctx.store, {
    put: (inner, key, value, options) => {
      if (!key.startsWith(SUBNET_PREFIX) || options?.ifRevision !== 0) return inner.put(key, value, options);
      return inner.put(key, value, options.lease !== undefined ? { lease: options.lease } : {});
    },
  });
  return { ...ctx, store, random: () => 0 };
}

export const racyLeaseClaim: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-racy-lease-claim", { context: racyClaims });
