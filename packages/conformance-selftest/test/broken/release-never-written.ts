/**
 * Broken (calico): IPAM releases are acknowledged but never written — the transaction that deletes
 * the pod's handle and frees its ordinal in the block reports success and changes nothing. DEL
 * removes the pod from the node, and its address stays allocated forever.
 */
import type { AgentContext, Backend } from "@cnikit/core";
import { HANDLE_PREFIX, calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { bentStore, wrapBackend } from "./wrap.ts";

function lostReleases(ctx: AgentContext<CalicoConfig>): AgentContext<CalicoConfig> {
  const store = bentStore(ctx.store, {
    txn: async (inner, compares, success) => {
      const releases = success.some((op) => op.op === "delete" && op.key.startsWith(HANDLE_PREFIX));
      if (!releases) return inner.txn(compares, success);
      return { succeeded: true, revision: await inner.revision() };
    },
  });
  return { ...ctx, store };
}

export const releaseNeverWritten: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-release-never-written", { context: lostReleases });
