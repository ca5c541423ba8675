/**
 * Broken (calico, routed + BGP): block IPAM writes blocks without compare-and-swap (the
 * transaction's compare on the block key is dropped), so two nodes allocating from one block at
 * the same moment (a block claimed by two nodes, or borrowed from) take the same ordinal and hand
 * out the same address. The handle compare stays: a single ADD is still idempotent.
 */
import type { AgentContext, Backend } from "@cnikit/core";
import { BLOCK_PREFIX, calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { bentStore, wrapBackend } from "./wrap.ts";

function blindBlockWrites(ctx: AgentContext<CalicoConfig>): AgentContext<CalicoConfig> {
  const store = bentStore(ctx.store, {
    txn: (inner, compares, success) =>
      inner.txn(
        compares.filter((c) => !c.key.startsWith(BLOCK_PREFIX)),
        success,
      ),
  });
  return { ...ctx, store };
}

export const racyBlockClaim: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-racy-block-claim", { context: blindBlockWrites });
