/**
 * Broken (flannel, calico): the periodic re-list (flannel's 10 s resync, calico's 60 s) is never
 * scheduled, so the agent trusts its watches alone. A watch that silently loses events (a broken
 * proxy, a missed informer event) leaves the node with a stale view forever. (Calico shipped this:
 * RESYNC_MS was declared and never used.)
 */
import type { AgentContext, Backend, Clock } from "@cnikit/core";
import { RESYNC_MS as CALICO_RESYNC_MS, calico } from "@cnikit/calico";
import { RESYNC_MS as FLANNEL_RESYNC_MS, flannel } from "@cnikit/flannel";
import { wrapBackend } from "./wrap.ts";

/** A clock on which an interval of exactly `resyncMs` is never scheduled. */
function withoutInterval(clock: Clock, resyncMs: number): Clock {
  return new Proxy(clock, {
    get(target, prop, receiver) {
      if (prop !== "setInterval") return Reflect.get(target, prop, receiver) as unknown;
      return (fn: () => void, ms: number) => (ms === resyncMs ? { cancel() {} } : target.setInterval(fn, ms));
    },
  });
}

/** `base` whose agents never schedule their `resyncMs` re-list. */
export function noPeriodicRelistOf<C>(base: Backend<C>, name: string, resyncMs: number): Backend<C> {
  return wrapBackend(base, name, {
    context: (ctx: AgentContext<C>) => ({ ...ctx, clock: withoutInterval(ctx.clock, resyncMs) }),
  });
}

export const noPeriodicRelist = noPeriodicRelistOf(flannel, "broken-flannel-no-periodic-relist", FLANNEL_RESYNC_MS);
export const calicoNoPeriodicRelist = noPeriodicRelistOf(calico, "broken-calico-no-periodic-relist", CALICO_RESYNC_MS);
