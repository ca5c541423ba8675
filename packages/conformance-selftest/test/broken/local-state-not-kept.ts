/**
 * Broken (every shape): node-local state does not survive an agent restart — the agent keeps it
 * where a restart wipes it (a tmpfs, the container's own filesystem), modelled as a fresh empty
 * local store per agent. A restarted agent forgets the pods it holds (flannel's host-local
 * reservations, calico's and the reference's pod records): their interfaces vanish from its
 * dataplane and their addresses look free again.
 */
import { MemoryDatastore } from "@cnikit/core";
import type { AgentContext, Backend } from "@cnikit/core";
import { wrapBackend } from "./wrap.ts";

/** `base` whose every agent gets a fresh, empty node-local store. */
export function localStateNotKeptOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, {
    context: (ctx: AgentContext<C>) => ({ ...ctx, local: new MemoryDatastore({ clock: ctx.clock }) }),
  });
}
