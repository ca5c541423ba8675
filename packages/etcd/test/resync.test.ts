// watchWithResync works on any Datastore: a property test on the in-memory store whose watches can
// be broken with CompactedError at will. Whatever happens before, during and after the lost
// history, replaying the helper's stream over its snapshot gives exactly the store's listing, and
// outside the resync every change arrives once.
import fc from "fast-check";
import { CompactedError, MemoryDatastore, type Datastore, type WatchEvent, type WatchOptions } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { watchWithResync, type ResyncEvent } from "../src/index.ts";

/** Delegates to a MemoryDatastore; `breakWatches` makes every open watch throw CompactedError. */
class BreakableStore implements Datastore {
  private readonly breakers = new Set<() => void>();
  readonly inner: MemoryDatastore;
  constructor(inner: MemoryDatastore) {
    this.inner = inner;
  }
  get: Datastore["get"] = (...a) => this.inner.get(...a);
  put: Datastore["put"] = (...a) => this.inner.put(...a);
  delete: Datastore["delete"] = (...a) => this.inner.delete(...a);
  list: Datastore["list"] = (...a) => this.inner.list(...a);
  txn: Datastore["txn"] = (...a) => this.inner.txn(...a);
  grantLease: Datastore["grantLease"] = (...a) => this.inner.grantLease(...a);
  keepAlive: Datastore["keepAlive"] = (...a) => this.inner.keepAlive(...a);
  revokeLease: Datastore["revokeLease"] = (...a) => this.inner.revokeLease(...a);
  leaseInfo: Datastore["leaseInfo"] = (...a) => this.inner.leaseInfo(...a);
  revision: Datastore["revision"] = () => this.inner.revision();
  close: Datastore["close"] = () => this.inner.close();

  breakWatches(compactRevision: number): void {
    for (const b of [...this.breakers]) b();
    this.compactRevision = compactRevision;
  }
  private compactRevision = 0;

  watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> {
    const inner = this.inner.watch(prefix, options);
    return {
      [Symbol.asyncIterator]: () => {
        const it = inner[Symbol.asyncIterator]();
        let broken = false;
        let wake: (() => void) | undefined;
        const breaker = (): void => {
          broken = true;
          wake?.();
        };
        this.breakers.add(breaker);
        const fail = (): Promise<never> => {
          this.breakers.delete(breaker);
          void it.return?.();
          return Promise.reject(new CompactedError(this.compactRevision, "broken on purpose"));
        };
        return {
          next: async (): Promise<IteratorResult<WatchEvent>> => {
            if (broken) return fail();
            const woke = new Promise<"broken">((r) => (wake = () => r("broken")));
            const r = await Promise.race([it.next(), woke]);
            if (r === "broken") return fail();
            return r;
          },
          return: async (): Promise<IteratorResult<WatchEvent>> => {
            this.breakers.delete(breaker);
            await it.return?.();
            return { value: undefined, done: true };
          },
        };
      },
    };
  }
}

type Op = { del: boolean; k: number; v: string };
const op = fc.record({ del: fc.boolean(), k: fc.integer({ min: 0, max: 5 }), v: fc.string({ maxLength: 3 }) });

async function run(store: Datastore, ops: Op[]): Promise<number> {
  let changes = 0;
  for (const o of ops) {
    if (o.del) changes += (await store.delete(`p/${o.k}`)).deleted ? 1 : 0;
    else {
      await store.put(`p/${o.k}`, o.v);
      changes++;
    }
  }
  return changes;
}

describe("watchWithResync on a store that loses history", () => {
  it("replays to the store's state; every change once outside the resync, at most one event per key inside it", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 12 }), fc.array(op, { maxLength: 12 }), fc.array(op, { maxLength: 12 }), fc.array(op, { maxLength: 6 }), async (before, live, lost, after) => {
        const inner = new MemoryDatastore();
        const store = new BreakableStore(inner);
        await run(store, before);
        let resyncs = 0;
        const it = watchWithResync(store, "p/", { onResync: () => resyncs++ })[Symbol.asyncIterator]();
        const state = new Map<string, string>();
        const apply = (ev: ResyncEvent): void => {
          if (ev.type === "snapshot") for (const kv of ev.items) state.set(kv.key, kv.value);
          else if (ev.type === "put") state.set(ev.kv.key, ev.kv.value);
          else state.delete(ev.key);
        };
        const until = async (key: string, value: string): Promise<ResyncEvent[]> => {
          const got: ResyncEvent[] = [];
          for (;;) {
            const r = await it.next();
            if (r.done) throw new Error("ended early");
            got.push(r.value);
            apply(r.value);
            if (r.value.type === "put" && r.value.kv.key === key && r.value.kv.value === value) return got;
          }
        };
        const first = await it.next();
        expect(first.value?.type).toBe("snapshot");
        apply(first.value!);

        const liveChanges = await run(store, live);
        await store.put("p/end", "1");
        const liveEvents = await until("p/end", "1");
        expect(liveEvents).toHaveLength(liveChanges + 1);
        expect(liveEvents.every((e) => e.type !== "snapshot" && !e.resynced)).toBe(true);

        await run(store, lost);
        await store.put("p/end", "2");
        await inner.compact(await inner.revision());
        store.breakWatches(await inner.revision());
        const resynced = await until("p/end", "2");
        // The informer under the stream follows the watch eagerly: what the watch delivered before the
        // history was lost arrives live (each change once); everything after the break arrives
        // resynced, at most one event per key.
        const firstResynced = resynced.findIndex((e) => e.type !== "snapshot" && e.resynced === true);
        const cut = firstResynced < 0 ? resynced.length : firstResynced;
        expect(resynced.slice(0, cut).every((e) => e.type !== "snapshot" && !e.resynced)).toBe(true);
        expect(resynced.slice(cut).every((e) => e.type !== "snapshot" && e.resynced === true)).toBe(true);
        const keys = resynced.slice(cut).map((e) => (e.type === "put" ? e.kv.key : e.type === "delete" ? e.key : "snapshot"));
        expect(new Set(keys).size).toBe(keys.length);

        // The re-listing runs in the background: the after phase starts once it is done.
        while (resyncs === 0) await new Promise((r) => setTimeout(r, 1));
        const afterChanges = await run(store, after);
        await store.put("p/end", "3");
        const afterEvents = await until("p/end", "3");
        expect(afterEvents).toHaveLength(afterChanges + 1);
        expect(afterEvents.every((e) => e.type !== "snapshot" && !e.resynced)).toBe(true);

        const final = await inner.list("p/");
        expect([...state.entries()].sort()).toEqual(final.items.map((kv) => [kv.key, kv.value]).sort());
        await it.return(undefined);
        await inner.close();
      }),
      { numRuns: 60 },
    );
  });

  it("waits out an unavailable store, then starts with the snapshot", async () => {
    const inner = new MemoryDatastore();
    await inner.put("p/a", "1");
    inner.setAvailable(false);
    let unavailable = 0;
    const it = watchWithResync(inner, "p/", { maxBackoffMs: 20, onUnavailable: () => unavailable++ })[Symbol.asyncIterator]();
    const first = it.next();
    await new Promise((r) => setTimeout(r, 100));
    inner.setAvailable(true);
    const r = await first;
    expect(r.value).toMatchObject({ type: "snapshot", items: [{ key: "p/a", value: "1" }] });
    expect(unavailable).toBeGreaterThan(0);
    await it.return(undefined);
  });
});
