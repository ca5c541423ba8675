import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { flushAsync, VirtualClock } from "../src/clock.ts";
import type { WatchEvent } from "../src/datastore.ts";
import { CompactedError, ConfigError, ConflictError, TryAgainError } from "../src/errors.ts";
import { MemoryDatastore } from "../src/store/memory.ts";
import { defineDatastoreSuite } from "../src/store/testing.ts";

defineDatastoreSuite("MemoryDatastore", async () => {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  return { store, clock, compact: (r) => store.compact(r) };
});

// The same suite on the default history and no compact hook: CompactedError must come from the
// history limit alone, and the lease tests run without a virtual clock.
defineDatastoreSuite("MemoryDatastore (real clock, small history)", async () => ({ store: new MemoryDatastore({ historyLimit: 1000 }) }), { propertyRuns: 20 });

async function settled<T>(p: Promise<T>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await flushAsync(5);
  return done;
}

describe("MemoryDatastore specifics", () => {
  it("names the expected and the actual revision in a ConflictError", async () => {
    const s = new MemoryDatastore();
    await s.put("k", "1");
    await s.put("k", "2");
    await expect(s.put("k", "x", { ifRevision: 1 })).rejects.toThrow(/expected modRevision 1, found modRevision 2/);
    await expect(s.put("k", "x", { ifRevision: 0 })).rejects.toThrow(/expected no key \(ifRevision 0\), found modRevision 2/);
    await expect(s.delete("nope", { ifRevision: 7 })).rejects.toThrow(/expected modRevision 7, found no key/);
    const e = await s.put("k", "x", { ifRevision: 1 }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ConflictError);
    expect((e as ConflictError).key).toBe("k");
  });

  it("refuses a key twice among a transaction's ops, writing nothing", async () => {
    const s = new MemoryDatastore();
    const err = await s
      .txn(
        [],
        [
          { op: "put", key: "a", value: "1" },
          { op: "delete", key: "a" },
        ],
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe("success[1].key");
    expect(await s.revision()).toBe(0);
  });

  it("refuses a bad historyLimit", () => {
    expect(() => new MemoryDatastore({ historyLimit: -1 })).toThrow(ConfigError);
    expect(() => new MemoryDatastore({ historyLimit: 1.5 })).toThrow(/historyLimit/);
  });

  it("trims history by whole revisions and reports the compact revision", async () => {
    const s = new MemoryDatastore({ historyLimit: 5 });
    // One txn of 3 events at revision 1, then single puts at revisions 2..4.
    await s.txn(
      [],
      [
        { op: "put", key: "a", value: "1" },
        { op: "put", key: "b", value: "1" },
        { op: "put", key: "c", value: "1" },
      ],
    );
    await s.put("a", "2");
    await s.put("a", "3");
    // 5 events: still all kept, from revision 0.
    const all = s.watch("", { fromRevision: 0 })[Symbol.asyncIterator]();
    expect((await all.next()).value?.revision).toBe(1);
    await all.return?.();
    await s.put("a", "4"); // 6 events: revision 1 (all three) goes
    const compacted = s.watch("", { fromRevision: 0 })[Symbol.asyncIterator]();
    const e = await compacted.next().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CompactedError);
    expect((e as CompactedError).compactRevision).toBe(1);
    const ok = s.watch("", { fromRevision: 1 })[Symbol.asyncIterator]();
    expect(((await ok.next()).value as WatchEvent).revision).toBe(2);
    await ok.return?.();
  });

  it("compact() refuses revisions beyond the current one", async () => {
    const s = new MemoryDatastore();
    await s.put("a", "1");
    await expect(s.compact(2)).rejects.toBeInstanceOf(ConfigError);
    await s.compact(1);
    await expect(s.watch("", { fromRevision: 0 })[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(CompactedError);
  });

  describe("setAvailable (fault injection)", () => {
    it("refuses every call with TryAgainError (code 11) and writes nothing", async () => {
      const s = new MemoryDatastore();
      const lease = await s.grantLease(10);
      await s.put("a", "1");
      s.setAvailable(false);
      expect(s.isAvailable()).toBe(false);
      const calls: (() => Promise<unknown>)[] = [
        () => s.get("a"),
        () => s.put("a", "2"),
        () => s.put("b", "2", { ifRevision: 0 }),
        () => s.delete("a"),
        () => s.list(""),
        () => s.txn([], [{ op: "put", key: "c", value: "1" }]),
        () => s.grantLease(5),
        () => s.keepAlive(lease),
        () => s.revokeLease(lease),
        () => s.leaseInfo(lease),
        () => s.revision(),
        () => s.watch("")[Symbol.asyncIterator]().next(),
      ];
      for (const call of calls) {
        const e = await call().catch((x: unknown) => x);
        expect(e).toBeInstanceOf(TryAgainError);
        expect((e as TryAgainError).code).toBe(11);
        expect((e as TryAgainError).retryable).toBe(true);
      }
      s.setAvailable(true);
      expect(await s.revision()).toBe(1);
      expect((await s.list("")).items.map((kv) => `${kv.key}=${kv.value}`)).toEqual(["a=1"]);
      expect(await s.leaseInfo(lease)).toBeDefined();
    });

    it("stalls watches while unavailable and resumes them without loss", async () => {
      const s = new MemoryDatastore();
      const it = s.watch("w/")[Symbol.asyncIterator]();
      await s.put("w/1", "a");
      await s.put("w/2", "b");
      s.setAvailable(false);
      const first = it.next();
      expect(await settled(first)).toBe(false);
      s.setAvailable(true);
      expect((await first).value).toMatchObject({ type: "put", kv: { key: "w/1" } });
      expect((await it.next()).value).toMatchObject({ type: "put", kv: { key: "w/2" } });
      await s.put("w/3", "c");
      expect((await it.next()).value).toMatchObject({ type: "put", kv: { key: "w/3" } });
      await it.return?.();
    });

    it("does not expire leases while unavailable; refreshes them to a full TTL when back", async () => {
      const clock = new VirtualClock();
      const s = new MemoryDatastore({ clock });
      const lease = await s.grantLease(5);
      await s.put("l", "1", { lease });
      s.setAvailable(false);
      await clock.advance(20_000);
      s.setAvailable(true);
      await flushAsync();
      expect((await s.get("l"))?.value).toBe("1");
      expect((await s.leaseInfo(lease))?.remainingSeconds).toBe(5);
      await clock.advance(4999);
      expect(await s.get("l")).toBeDefined();
      await clock.advance(1);
      expect(await s.get("l")).toBeUndefined();
    });
  });

  it("deletes all keys of an expired lease under one revision", async () => {
    const clock = new VirtualClock();
    const s = new MemoryDatastore({ clock });
    const lease = await s.grantLease(1);
    for (let i = 0; i < 5; i++) await s.put(`k/${i}`, "v", { lease });
    const before = await s.revision();
    const it = s.watch("k/", { fromRevision: before })[Symbol.asyncIterator]();
    await clock.advance(1000);
    const revs: number[] = [];
    for (let i = 0; i < 5; i++) revs.push(((await it.next()).value as WatchEvent).revision);
    expect(revs).toEqual([before + 1, before + 1, before + 1, before + 1, before + 1]);
    expect(await s.revision()).toBe(before + 1);
    await it.return?.();
  });

  it("cancels lease timers on close", async () => {
    const clock = new VirtualClock();
    const s = new MemoryDatastore({ clock });
    await s.grantLease(3);
    expect(clock.pending()).toBe(1);
    await s.close();
    expect(clock.pending()).toBe(0);
  });

  it("lists by prefix consistently with a sorted model over random key sets", async () => {
    const keyArb = fc.array(fc.constantFrom("a", "b", "/", "é", "😀", "\uffe9"), { minLength: 1, maxLength: 5 }).map((parts) => parts.join(""));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(keyArb, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 20 }), keyArb, async (keys, dels, prefix) => {
        const s = new MemoryDatastore();
        for (const k of keys) await s.put(k, k);
        const deleted = new Set<string>();
        for (const d of dels) {
          const k = keys[d % Math.max(1, keys.length)];
          if (k !== undefined) {
            await s.delete(k);
            deleted.add(k);
          }
        }
        const live = keys.filter((k) => !deleted.has(k));
        const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
        expect((await s.list(prefix)).items.map((kv) => kv.key)).toEqual(live.filter((k) => k.startsWith(prefix)).sort(byBytes));
        expect((await s.list("")).items.map((kv) => kv.key)).toEqual([...live].sort(byBytes));
      }),
      { numRuns: 200 },
    );
  });
});
