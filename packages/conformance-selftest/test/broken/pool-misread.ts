/**
 * Broken (calico): the agent reads its IPPool with the wrong prefix length (/8 instead of the
 * pool's own), so blocks are claimed anywhere in 10.0.0.0/8 and pods get addresses outside the
 * configured pool. `summarize` still promises the pool as configured.
 */
import { Prefix } from "@cnikit/core";
import type { AgentContext, Backend } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { wrapBackend } from "./wrap.ts";

function misreadPools(ctx: AgentContext<CalicoConfig>): AgentContext<CalicoConfig> {
  const pools = ctx.config.pools.map((p) => (p.family === 4 ? { ...p, cidr: Prefix.of(4, Prefix.parse(p.cidr).base, 8).toString() } : p));
  return { ...ctx, config: { ...ctx.config, pools } };
}

export const poolMisread: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-pool-misread", { context: misreadPools });
