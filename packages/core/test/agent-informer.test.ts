import { describe, expect, it } from "vitest";
import { CompactedError, Informer, MemoryDatastore, TryAgainError, VirtualClock, flushAsync } from "../src/index.ts";
import type { Datastore, InformerEvent, KeyValue } from "../src/index.ts";
import { faultyWatches } from "./faulty-watches.ts";

async function snapshot(store: Datastore, prefix = "/p/"): Promise<Map<string, string>> {
  return new Map((await store.list(prefix)).items.map((kv) => [kv.key, kv.value]));
}

function setup(options: { resyncMs?: number; retryMs?: number; maxRetryMs?: number } = {}) {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  const { proxy, state } = faultyWatches(store);
  const abort = new AbortController();
  const events: InformerEvent<string>[] = [];
  const batches: string[] = [];
  const errors: unknown[] = [];
  const informer = new Informer<string>({
    store: proxy,
    prefix: "/p/",
    clock,
    signal: abort.signal,
    decode: (kv: KeyValue) => (kv.value === "bad" ? undefined : kv.value),
    onEvent: (ev) => events.push(ev),
    onBatch: (b) => batches.push(b.reason),
    onError: (err) => errors.push(err),
    ...options,
  });
  const view = () => new Map(informer.keys().map((k) => [k, informer.get(k)!]));
  return { clock, store, state, abort, informer, events, batches, errors, view };
}

describe("Informer", () => {
  it("lists, then follows puts and deletes from the listing's revision; decode rejects are absent", async () => {
    const t = setup();
    await t.store.put("/p/a", "1");
    await t.store.put("/p/x", "bad");
    await t.store.put("/q/out", "1");
    await t.informer.start();
    expect(t.view()).toEqual(new Map([["/p/a", "1"]]));
    await t.store.put("/p/b", "2");
    await t.store.put("/p/a", "3");
    await t.store.delete("/p/b");
    await flushAsync();
    expect(t.events.map((e) => `${e.type} ${e.key}`)).toEqual(["add /p/a", "add /p/b", "update /p/a", "delete /p/b"]);
    expect(t.batches).toEqual(["start", "watch", "watch", "watch"]);
    t.abort.abort();
  });

  it("re-lists after a compacted watch and turns the difference into events, once per key", async () => {
    const t = setup({ retryMs: 100 });
    await t.store.put("/p/a", "1");
    await t.store.put("/p/b", "2");
    t.state.failWith.push(new CompactedError(1, "compacted"));
    await t.informer.start();
    await flushAsync();
    expect(t.errors).toHaveLength(1);
    // Changes while the informer waits: no watch will ever deliver them.
    await t.store.delete("/p/a");
    await t.store.put("/p/b", "22");
    await t.store.put("/p/c", "3");
    await t.clock.advance(100);
    expect(t.view()).toEqual(await snapshot(t.store));
    expect(t.batches).toContain("compacted");
    const after = t.events
      .slice(2)
      .map((e) => `${e.type} ${e.key}`)
      .sort();
    expect(after).toEqual(["add /p/c", "delete /p/a", "update /p/b"]);
    // The new watch runs from the listing's revision: later events flow, earlier ones are not repeated.
    await t.store.put("/p/d", "4");
    await flushAsync();
    expect(t.view()).toEqual(await snapshot(t.store));
    expect(t.events.filter((e) => e.key === "/p/c")).toHaveLength(1);
    t.abort.abort();
  });

  it("repairs events a healthy-looking watch lost at the next resync", async () => {
    const t = setup({ resyncMs: 10_000 });
    await t.store.put("/p/a", "1");
    await t.informer.start();
    t.state.losing = true;
    await t.store.delete("/p/a");
    await t.store.put("/p/b", "2");
    await flushAsync();
    t.state.losing = false;
    expect(t.view().has("/p/a")).toBe(true);
    await t.clock.advance(10_000);
    expect(t.view()).toEqual(await snapshot(t.store));
    expect(t.batches.at(-1)).toBe("resync");
    expect(t.errors).toHaveLength(0);
    t.abort.abort();
    await t.store.put("/p/late", "x");
    await t.clock.advance(30_000);
    expect(t.view().has("/p/late")).toBe(false);
    expect(t.clock.pending()).toBe(0);
  });

  it("fails start loudly when the first listing fails", async () => {
    const t = setup();
    t.store.setAvailable(false);
    await expect(t.informer.start()).rejects.toMatchObject({ code: 11 });
    expect(t.state.watches).toBe(0);
  });

  it("backs off (doubling up to maxRetryMs) while re-listing fails, then recovers", async () => {
    const t = setup({ retryMs: 100, maxRetryMs: 400 });
    await t.store.put("/p/a", "1");
    t.state.failWith.push(new TryAgainError("watch dropped"));
    await t.informer.start();
    t.store.setAvailable(false);
    await flushAsync();
    const failedAt: number[] = [];
    const errorsBefore = t.errors.length;
    for (let ms = 0; ms < 1_500; ms += 50) {
      await t.clock.advance(50);
      while (t.errors.length - errorsBefore > failedAt.length) failedAt.push(t.clock.now());
    }
    // Re-list attempts at 100, +200, +400, +400, ... after the failed watch.
    expect(failedAt.slice(0, 4)).toEqual([100, 300, 700, 1100]);
    await t.store.setAvailable(true);
    await t.store.put("/p/b", "2");
    await t.clock.advance(400);
    await flushAsync();
    expect(t.view()).toEqual(await snapshot(t.store));
    t.abort.abort();
  });

  it("resync() re-lists on demand and concurrent calls share one listing", async () => {
    const t = setup();
    await t.informer.start();
    t.state.losing = true;
    await t.store.put("/p/a", "1");
    await flushAsync();
    expect(t.informer.size).toBe(0);
    const [r1, r2] = await Promise.all([t.informer.resync(), t.informer.resync()]);
    expect(r1).toBe(r2);
    expect(t.informer.get("/p/a")).toBe("1");
    expect(t.batches.filter((b) => b === "manual")).toHaveLength(1);
    t.abort.abort();
  });
});
