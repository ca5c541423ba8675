/**
 * Broken (calico): the policy engine's endpoint view is node-local — the agent watches only its own
 * node's workload endpoints — so a policy peer (podSelector, namespaceSelector) never matches pods
 * on other nodes: ingress from them is denied, egress to them too, while pods on the same node are
 * matched as they should be.
 */
import type { AgentContext, Backend } from "@cnikit/core";
import { ENDPOINT_PREFIX, calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { readView, wrapBackend } from "./wrap.ts";

function ownEndpointsOnly(ctx: AgentContext<CalicoConfig>): AgentContext<CalicoConfig> {
  const own = `${ENDPOINT_PREFIX}${ctx.node.name}/`;
  return { ...ctx, store: readView(ctx.store, { hide: (key) => key.startsWith(ENDPOINT_PREFIX) && !key.startsWith(own) }) };
}

export const endpointsNodeLocal: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-endpoints-node-local", { context: ownEndpointsOnly });
