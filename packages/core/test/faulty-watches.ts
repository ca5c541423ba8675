/** Test helper: a store whose watches can be made to fail at once or to swallow events silently. */
import type { Datastore, WatchEvent, WatchOptions } from "../src/index.ts";

export interface WatchFaults {
  /** The next watches fail at once with these errors (one each, in order). */
  failWith: Error[];
  /** While true, open watches swallow every event (they stay open and report no error). */
  losing: boolean;
  /** Watches opened so far. */
  watches: number;
}

/** `store` with its `watch` under the control of the returned `state`. */
export function faultyWatches(store: Datastore): { proxy: Datastore; state: WatchFaults } {
  const state: WatchFaults = { failWith: [], losing: false, watches: 0 };
  const proxy: Datastore = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== "watch") return Reflect.get(target, prop, receiver);
      return (prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> => {
        state.watches++;
        const failure = state.failWith.shift();
        if (failure) return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(failure) }) };
        return {
          [Symbol.asyncIterator]() {
            const it = target.watch(prefix, options)[Symbol.asyncIterator]();
            return {
              async next() {
                for (;;) {
                  const r = await it.next();
                  if (r.done || !state.losing) return r;
                }
              },
            };
          },
        };
      };
    },
  });
  return { proxy, state };
}
