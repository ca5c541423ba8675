/**
 * Broken (reference, bridge + lease): when a watch fails because the store compacted past its start
 * revision (code 105), the agent's store client quietly re-opens the watch "from now" instead of
 * making the agent re-list. Whatever changed between the listing and now is never seen.
 */
import type { AgentContext, Backend, Datastore, WatchEvent, WatchOptions } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { wrapBackend } from "./wrap.ts";

function rewatchingFromNow(store: Datastore): Datastore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== "watch") return Reflect.get(target, prop, receiver) as unknown;
      return (prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> => ({
        [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
          let it = target.watch(prefix, options)[Symbol.asyncIterator]();
          return {
            async next() {
              try {
                return await it.next();
              } catch (err) {
                if ((err as { code?: number }).code !== 105) throw err;
                const { fromRevision: _skipped, ...rest } = options;
                it = target.watch(prefix, rest)[Symbol.asyncIterator]();
                return it.next();
              }
            },
            async return(value?: unknown) {
              if (it.return) return it.return(value);
              return { done: true, value: undefined };
            },
          };
        },
      });
    },
  });
}

export const rewatchFromNowOnCompaction: Backend<unknown> = wrapBackend(reference as Backend<unknown>, "broken-reference-rewatch-from-now-on-compaction", {
  context: (ctx: AgentContext<unknown>) => ({ ...ctx, store: rewatchingFromNow(ctx.store) }),
});
