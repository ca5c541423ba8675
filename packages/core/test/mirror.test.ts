import { describe, expect, it } from "vitest";
import { CompactedError, MemoryDatastore, VirtualClock, flushAsync, mirrorPrefix } from "../src/index.ts";
import type { KeyValue } from "../src/index.ts";
import { faultyWatches } from "./faulty-watches.ts";

function setup() {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  const view = new Map<string, string>();
  const errors: unknown[] = [];
  const abort = new AbortController();
  const start = () =>
    mirrorPrefix({
      store,
      prefix: "/p/",
      clock,
      signal: abort.signal,
      retryMs: 500,
      apply: (key: string, kv: KeyValue | undefined) => (kv ? view.set(key, kv.value) : view.delete(key)),
      onError: (err) => errors.push(err),
    });
  return { clock, store, view, errors, abort, start };
}

async function snapshot(store: MemoryDatastore): Promise<Map<string, string>> {
  return new Map((await store.list("/p/")).items.map((kv) => [kv.key, kv.value]));
}

describe("mirrorPrefix", () => {
  it("starts from a complete listing, then follows puts and deletes under the prefix only", async () => {
    const t = setup();
    await t.store.put("/p/a", "1");
    await t.store.put("/q/x", "outside");
    await t.start();
    expect([...t.view]).toEqual([["/p/a", "1"]]);
    await t.store.put("/p/b", "2");
    await t.store.put("/p/a", "3");
    await t.store.delete("/p/b");
    await flushAsync();
    expect(t.view).toEqual(await snapshot(t.store));
    t.abort.abort();
  });

  it("after a failed watch re-lists and reports what vanished in between", async () => {
    const t = setup();
    await t.store.put("/p/a", "1");
    await t.store.put("/p/b", "2");
    // A store whose first watch breaks at once, as a dropped stream or a compacted revision would.
    const { proxy: flaky, state } = faultyWatches(t.store);
    state.failWith.push(new CompactedError(1, "compacted"));
    await mirrorPrefix({
      store: flaky,
      prefix: "/p/",
      clock: t.clock,
      signal: t.abort.signal,
      retryMs: 500,
      apply: (key, kv) => (kv ? t.view.set(key, kv.value) : t.view.delete(key)),
      onError: (err) => t.errors.push(err),
    });
    await flushAsync();
    expect(t.errors).toHaveLength(1);
    // Changed while the mirror waits to re-list: no event will ever tell it about these.
    await t.store.delete("/p/a");
    await t.store.put("/p/c", "3");
    await t.clock.advance(500);
    expect(t.view).toEqual(await snapshot(t.store));
    expect(t.view.has("/p/a")).toBe(false);
    // And it follows the store again after the re-list.
    await t.store.put("/p/d", "4");
    await flushAsync();
    expect(t.view.get("/p/d")).toBe("4");
    t.abort.abort();
  });

  it("applies nothing after the signal aborts", async () => {
    const t = setup();
    await t.start();
    t.abort.abort();
    await flushAsync();
    await t.store.put("/p/late", "x");
    await t.clock.advance(2_000);
    expect(t.view.size).toBe(0);
  });
});

describe("mirrorPrefix with resyncMs", () => {
  it("repairs events a healthy-looking watch silently lost, at the next period, and stops on abort", async () => {
    const t = setup();
    await t.store.put("/p/a", "1");
    // A watch that swallows every event while `losing` (it stays open and reports no error).
    const { proxy: lossy, state } = faultyWatches(t.store);
    await mirrorPrefix({
      store: lossy,
      prefix: "/p/",
      clock: t.clock,
      signal: t.abort.signal,
      resyncMs: 10_000,
      apply: (key, kv) => (kv ? t.view.set(key, kv.value) : t.view.delete(key)),
      onError: (err) => t.errors.push(err),
    });
    state.losing = true;
    await t.store.delete("/p/a");
    await t.store.put("/p/b", "2");
    state.losing = false;
    await flushAsync();
    expect(t.view.has("/p/a")).toBe(true);
    await t.clock.advance(10_000);
    expect(t.view).toEqual(await snapshot(t.store));
    // Events after the listing flow as before; older ones the listing covered are not re-applied.
    await t.store.put("/p/c", "3");
    await flushAsync();
    expect(t.view).toEqual(await snapshot(t.store));
    expect(t.errors).toHaveLength(0);
    t.abort.abort();
    await t.store.put("/p/d", "4");
    await t.clock.advance(30_000);
    expect(t.view.has("/p/d")).toBe(false);
    expect(t.clock.pending()).toBe(0);
  });
});
