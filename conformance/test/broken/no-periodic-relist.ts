/**
 * Broken (flannel, vxlan + FDB): the periodic re-list (flannel's 10 s resync) is never scheduled,
 * so the agent trusts its watch alone. A watch that silently loses events (a broken proxy, a
 * missed informer event) leaves the node with a stale view forever.
 */
import type { AgentContext, Backend, Clock } from "@cnikit/core";
import { RESYNC_MS, flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { wrapBackend } from "./wrap.ts";

function withoutResync(clock: Clock): Clock {
  return new Proxy(clock, {
    get(target, prop, receiver) {
      if (prop !== "setInterval") return Reflect.get(target, prop, receiver) as unknown;
      return (fn: () => void, ms: number) => (ms === RESYNC_MS ? { cancel() {} } : target.setInterval(fn, ms));
    },
  });
}

export const noPeriodicRelist: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-no-periodic-relist", {
  context: (ctx: AgentContext<FlannelConfig>) => ({ ...ctx, clock: withoutResync(ctx.clock) }),
});
