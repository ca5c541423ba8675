/**
 * The shared Datastore test suite: every implementation's test file calls
 * `defineDatastoreSuite(name, factory)` in a few lines, so memory, file and etcd stores are held to
 * the same contract (`datastore.ts`). Imported from `@cnikit/core/testing` only (it imports
 * vitest and fast-check, which production code must not load).
 *
 * Each test gets a fresh fixture from `factory` and closes the store (then runs `cleanup`) after.
 * Lease timing is checked on the fixture's `VirtualClock`; without a clock the lease tests check
 * everything but expiry (no test sleeps on wall time), unless the suite's `realTimeLeases` option
 * says the store's leases run on wall time (etcd): then a short lease is kept alive and left to
 * expire for real.
 */

import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { VirtualClock } from "../clock.ts";
import type { Datastore, KeyValue, WatchEvent } from "../datastore.ts";
import { ClosedError, CniCode, CompactedError, ConfigError, ConflictError, NotFoundError } from "../errors.ts";

/** What a suite factory returns: a fresh, empty store and how to dispose of it. */
export interface DatastoreFixture {
  store: Datastore;
  /** The clock the store's leases run on, when virtual: enables the lease-expiry tests. */
  clock?: VirtualClock;
  /** Runs after the store was closed (e.g. removes a temp directory). */
  cleanup?: () => Promise<void>;
  /**
   * Makes the store forget watch history up to and including `revision`, so a watch from an older
   * revision throws `CompactedError`. Without it the suite writes until history runs out (see
   * `historyBudget`).
   */
  compact?: (revision: number) => Promise<void>;
}

export interface DatastoreSuiteOptions {
  /** fast-check runs of the model-based property test. Default 60. */
  propertyRuns?: number;
  /** Most writes the CompactedError test makes when the fixture has no `compact`. Default 30 000. */
  historyBudget?: number;
  /**
   * The store's leases run on wall time (no virtual clock, e.g. etcd): also check expiry and
   * keep-alive by waiting on a short lease of `ttlSeconds` (default 3). Off by default, so no test
   * of an in-process store waits on wall time.
   */
  realTimeLeases?: boolean | { ttlSeconds?: number };
  /** Keys the many-keys test writes. Default 2000. */
  manyKeys?: number;
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wall-time guard for awaiting watch events: a hang fails the test instead of stalling the run. */
const EVENT_WAIT_MS = 15_000;

function withGuard<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), EVENT_WAIT_MS);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** The next event of a watch (fails when the watch ends instead). */
async function nextEvent(it: AsyncIterator<WatchEvent>): Promise<WatchEvent> {
  const r = await withGuard(it.next(), "a watch event");
  if (r.done) throw new Error("the watch ended while an event was expected");
  return r.value;
}

async function take(it: AsyncIterator<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for (let i = 0; i < n; i++) out.push(await nextEvent(it));
  return out;
}

function open(store: Datastore, prefix: string, fromRevision?: number, signal?: AbortSignal): AsyncIterator<WatchEvent> {
  const opts: { fromRevision?: number; signal?: AbortSignal } = {};
  if (fromRevision !== undefined) opts.fromRevision = fromRevision;
  if (signal) opts.signal = signal;
  return store.watch(prefix, opts)[Symbol.asyncIterator]();
}

/** A compact view of an event for comparisons. */
function brief(ev: WatchEvent): string {
  return ev.type === "put" ? `put ${ev.kv.key}=${ev.kv.value}@${ev.revision}` : `delete ${ev.key}@${ev.revision}`;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

async function expectConflict(p: Promise<unknown>, key: string): Promise<ConflictError> {
  const e = await rejection(p);
  expect(e).toBeInstanceOf(ConflictError);
  expect((e as ConflictError).code).toBe(CniCode.Conflict);
  expect((e as ConflictError).key).toBe(key);
  return e as ConflictError;
}

async function expectConfig(p: Promise<unknown>, field: RegExp): Promise<ConfigError> {
  const e = await rejection(p);
  expect(e).toBeInstanceOf(ConfigError);
  expect((e as ConfigError).field).toMatch(field);
  expect((e as ConfigError).rule.length).toBeGreaterThan(0);
  return e as ConfigError;
}

const MiB = 1024 * 1024;

/** Defines the contract suite for one Datastore implementation. */
export function defineDatastoreSuite(name: string, factory: () => Promise<DatastoreFixture>, options: DatastoreSuiteOptions = {}): void {
  const propertyRuns = options.propertyRuns ?? 60;
  const historyBudget = options.historyBudget ?? 30_000;
  const realTimeTtl = options.realTimeLeases ? ((typeof options.realTimeLeases === "object" ? options.realTimeLeases.ttlSeconds : undefined) ?? 3) : undefined;
  const manyKeys = options.manyKeys ?? 2000;

  describe(`Datastore contract: ${name}`, () => {
    let fx: DatastoreFixture;
    let s: Datastore;

    beforeEach(async () => {
      fx = await factory();
      s = fx.store;
    });

    afterEach(async () => {
      await s.close();
      await fx.cleanup?.();
    });

    describe("revisions", () => {
      it("bumps the revision once per write and tracks createRevision, modRevision and version", async () => {
        const r0 = await s.revision();
        expect(await s.get("rev/a")).toBeUndefined();

        expect((await s.put("rev/a", "1")).revision).toBe(r0 + 1);
        expect(await s.get("rev/a")).toEqual({ key: "rev/a", value: "1", createRevision: r0 + 1, modRevision: r0 + 1, version: 1 });

        expect((await s.put("rev/a", "2")).revision).toBe(r0 + 2);
        expect(await s.get("rev/a")).toEqual({ key: "rev/a", value: "2", createRevision: r0 + 1, modRevision: r0 + 2, version: 2 });

        expect((await s.put("rev/b", "")).revision).toBe(r0 + 3);
        expect((await s.get("rev/b"))?.value).toBe("");
        expect(await s.revision()).toBe(r0 + 3);

        const del = await s.delete("rev/a");
        expect(del.deleted).toBe(true);
        expect(del.revision).toBe(r0 + 4);
        expect(del.prev?.value).toBe("2");
        expect(await s.get("rev/a")).toBeUndefined();

        const miss = await s.delete("rev/a");
        expect(miss).toMatchObject({ deleted: false, revision: r0 + 4 });
        expect(await s.revision()).toBe(r0 + 4);

        await s.put("rev/a", "3");
        expect(await s.get("rev/a")).toMatchObject({ createRevision: r0 + 5, modRevision: r0 + 5, version: 1 });
      });

      it("keeps values exactly (unicode, JSON, large)", async () => {
        const values = ['{"a":[1,2,{"b":null}]}', "héllo wörld 🚀 \u2028 \\n", "x".repeat(200_000)];
        for (const [i, v] of values.entries()) await s.put(`val/${i}`, v);
        for (const [i, v] of values.entries()) expect((await s.get(`val/${i}`))?.value).toBe(v);
      });

      it("returns records that cannot be used to change the store", async () => {
        await s.put("imm/a", "1");
        const kv = (await s.get("imm/a"))!;
        try {
          (kv as { value: string }).value = "changed";
        } catch {
          // frozen records throw in strict mode; either way the store must keep its value
        }
        expect((await s.get("imm/a"))?.value).toBe("1");
        const listed = await s.list("imm/");
        listed.items.length = 0;
        expect((await s.list("imm/")).items).toHaveLength(1);
      });
    });

    describe("compare-and-swap", () => {
      it("put with ifRevision 0 creates only", async () => {
        const r0 = await s.revision();
        await s.put("cas/a", "first", { ifRevision: 0 });
        const e = await expectConflict(s.put("cas/a", "second", { ifRevision: 0 }), "cas/a");
        expect(e.retryable).toBe(false);
        expect((await s.get("cas/a"))?.value).toBe("first");
        expect(await s.revision()).toBe(r0 + 1);
      });

      it("put with ifRevision succeeds only on the current modRevision", async () => {
        await s.put("cas/b", "1");
        const kv = (await s.get("cas/b"))!;
        const w = await s.put("cas/b", "2", { ifRevision: kv.modRevision });
        await expectConflict(s.put("cas/b", "stale", { ifRevision: kv.modRevision }), "cas/b");
        expect(await s.get("cas/b")).toMatchObject({ value: "2", modRevision: w.revision, version: 2 });
        expect(await s.revision()).toBe(w.revision);
        await expectConflict(s.put("cas/missing", "x", { ifRevision: w.revision }), "cas/missing");
        expect(await s.get("cas/missing")).toBeUndefined();
      });

      it("delete with ifRevision deletes only on the current modRevision", async () => {
        const w1 = await s.put("cas/d", "1");
        const w2 = await s.put("cas/d", "2");
        await expectConflict(s.delete("cas/d", { ifRevision: w1.revision }), "cas/d");
        expect((await s.get("cas/d"))?.value).toBe("2");
        await expectConflict(s.delete("cas/d", { ifRevision: 0 }), "cas/d");
        expect(await s.revision()).toBe(w2.revision);
        const del = await s.delete("cas/d", { ifRevision: w2.revision });
        expect(del).toMatchObject({ deleted: true, revision: w2.revision + 1 });
        await expectConflict(s.delete("cas/d", { ifRevision: w2.revision }), "cas/d");
        expect(await s.delete("cas/d", { ifRevision: 0 })).toMatchObject({ deleted: false, revision: w2.revision + 1 });
        expect(await s.delete("cas/d")).toMatchObject({ deleted: false });
      });

      it("serialises concurrent read-modify-write increments (no lost update)", async () => {
        await s.put("cas/ctr", "0");
        const workers = 8;
        const each = 10;
        let conflicts = 0;
        const worker = async (): Promise<void> => {
          for (let i = 0; i < each; i++) {
            for (;;) {
              const kv = (await s.get("cas/ctr"))!;
              try {
                await s.put("cas/ctr", String(Number(kv.value) + 1), { ifRevision: kv.modRevision });
                break;
              } catch (e) {
                if (!(e instanceof ConflictError)) throw e;
                conflicts++;
              }
            }
          }
        };
        await Promise.all(Array.from({ length: workers }, worker));
        const kv = (await s.get("cas/ctr"))!;
        expect(kv.value).toBe(String(workers * each));
        expect(kv.version).toBe(workers * each + 1);
        expect(conflicts).toBeGreaterThanOrEqual(0);
      });
    });

    describe("transactions", () => {
      it("applies every op under one revision when all compares hold", async () => {
        const a = await s.put("txn/a", "1");
        await s.put("txn/b", "1");
        const before = await s.revision();
        const it = open(s, "txn/", before);
        const res = await s.txn(
          [
            { key: "txn/a", modRevision: a.revision },
            { key: "txn/new", modRevision: 0 },
          ],
          [
            { op: "put", key: "txn/a", value: "2" },
            { op: "put", key: "txn/new", value: "n" },
            { op: "delete", key: "txn/b" },
          ],
        );
        expect(res).toEqual({ succeeded: true, revision: before + 1 });
        expect(await s.get("txn/a")).toMatchObject({ value: "2", modRevision: before + 1, version: 2 });
        expect(await s.get("txn/new")).toMatchObject({ value: "n", createRevision: before + 1, version: 1 });
        expect(await s.get("txn/b")).toBeUndefined();
        const events = await take(it, 3);
        expect(events.map(brief)).toEqual([`put txn/a=2@${before + 1}`, `put txn/new=n@${before + 1}`, `delete txn/b@${before + 1}`]);
        await it.return?.();
      });

      it("writes nothing when any compare fails", async () => {
        const a = await s.put("txn/a", "1");
        await s.put("txn/a", "2");
        await s.put("txn/c", "1");
        const before = await s.revision();
        const res = await s.txn(
          [
            { key: "txn/c", modRevision: (await s.get("txn/c"))!.modRevision },
            { key: "txn/a", modRevision: a.revision },
          ],
          [
            { op: "put", key: "txn/c", value: "changed" },
            { op: "put", key: "txn/d", value: "new" },
          ],
        );
        expect(res).toEqual({ succeeded: false, revision: before });
        expect((await s.get("txn/c"))?.value).toBe("1");
        expect(await s.get("txn/d")).toBeUndefined();
        const exists = await s.txn([{ key: "txn/a", modRevision: 0 }], [{ op: "delete", key: "txn/a" }]);
        expect(exists.succeeded).toBe(false);
        expect(await s.revision()).toBe(before);
      });

      it("is all-or-nothing when an op is refused (bad value, unknown lease)", async () => {
        const before = await s.revision();
        await expectConfig(
          s.txn(
            [],
            [
              { op: "put", key: "txn/ok", value: "1" },
              { op: "put", key: "txn/big", value: "x".repeat(1.5 * MiB + 1) },
            ],
          ),
          /value$/,
        );
        await expectConfig(
          s.txn(
            [],
            [
              { op: "put", key: "txn/ok", value: "1" },
              { op: "delete", key: "" },
            ],
          ),
          /key$/,
        );
        await expectConfig(s.txn([{ key: "bad\nkey", modRevision: 0 }], [{ op: "put", key: "txn/ok", value: "1" }]), /key$/);
        const lease = await s.grantLease(60);
        await s.revokeLease(lease);
        const e = await rejection(
          s.txn(
            [],
            [
              { op: "put", key: "txn/ok", value: "1" },
              { op: "put", key: "txn/leased", value: "1", lease },
            ],
          ),
        );
        expect(e).toBeInstanceOf(NotFoundError);
        expect(await s.get("txn/ok")).toBeUndefined();
        expect(await s.revision()).toBe(before);
      });

      it("does not bump the revision when the ops change nothing", async () => {
        await s.put("txn/x", "1");
        const before = await s.revision();
        expect(await s.txn([], [])).toEqual({ succeeded: true, revision: before });
        expect(await s.txn([{ key: "txn/none", modRevision: 0 }], [{ op: "delete", key: "txn/none" }])).toEqual({
          succeeded: true,
          revision: before,
        });
        expect(await s.revision()).toBe(before);
      });
    });

    describe("list", () => {
      const inside = ["l/a", "l/a/", "l/a/b", "l/a/b/c", "l/a0", "l/a-", "l/aé", "l/a\uffe9", "l/a😀", "l/b", "l/B", "l/", "l/z".repeat(3)];
      const outside = ["l", "k/z", "m/a", "L/a", "la"];

      it("returns keys under a byte-wise prefix, sorted by UTF-8 bytes, with the revision", async () => {
        const all = [...inside, ...outside];
        const shuffled = [...all].sort((x, y) => ((x.length * 7919 + x.charCodeAt(x.length - 1)) % 13) - ((y.length * 7919 + y.charCodeAt(y.length - 1)) % 13));
        for (const k of shuffled) await s.put(k, `v:${k}`);
        const rev = await s.revision();

        const got = await s.list("l/");
        expect(got.revision).toBe(rev);
        expect(got.items.map((kv) => kv.key)).toEqual([...inside].sort(byteOrder));
        for (const kv of got.items) expect(kv.value).toBe(`v:${kv.key}`);

        expect((await s.list("l/a")).items.map((kv) => kv.key)).toEqual(inside.filter((k) => k.startsWith("l/a")).sort(byteOrder));
        expect((await s.list("l/a/")).items.map((kv) => kv.key)).toEqual(["l/a/", "l/a/b", "l/a/b/c"]);
        expect((await s.list("l/a/b/c")).items.map((kv) => kv.key)).toEqual(["l/a/b/c"]);
        expect((await s.list("l/zz")).items).toEqual([]);
        expect((await s.list("l/c")).items).toEqual([]);
        const everything = (await s.list("")).items.map((kv) => kv.key);
        expect(everything).toEqual([...everything].sort(byteOrder));
        for (const k of all) expect(everything).toContain(k);
      });

      it("reflects deletes and carries each key's revisions", async () => {
        await s.put("ld/a", "1");
        const b = await s.put("ld/b", "1");
        await s.put("ld/a", "2");
        await s.delete("ld/a");
        const got = await s.list("ld/");
        expect(got.items).toEqual([{ key: "ld/b", value: "1", createRevision: b.revision, modRevision: b.revision, version: 1 }]);
      });
    });

    describe("watch", () => {
      it("continues from a listing's revision without missing or repeating events", async () => {
        await s.put("w/a", "1");
        await s.put("w/b", "1");
        const listing = await s.list("w/");
        await s.put("w/a", "2");
        await s.put("other/x", "1");
        await s.delete("w/b");
        await s.put("w/c", "1");
        const it = open(s, "w/", listing.revision);
        const events = await take(it, 3);
        const r = listing.revision;
        expect(events.map(brief)).toEqual([`put w/a=2@${r + 1}`, `delete w/b@${r + 3}`, `put w/c=1@${r + 4}`]);
        const [put, del] = events;
        expect(put?.type === "put" && put.prev?.value).toBe("1");
        expect(put?.type === "put" && put.kv.modRevision).toBe(r + 1);
        expect(del?.type === "delete" && del.prev?.value).toBe("1");
        const sentinel = await s.put("w/sentinel", "s");
        expect(brief(await nextEvent(it))).toBe(`put w/sentinel=s@${sentinel.revision}`);
        await it.return?.();
      });

      it("interleaves a listing and concurrent writes without loss", async () => {
        const writes = Array.from({ length: 40 }, (_, i) => s.put(`wc/${i % 7}`, String(i)));
        await Promise.resolve();
        const listing = await s.list("wc/");
        const it = open(s, "wc/", listing.revision);
        await Promise.all(writes);
        const final = await s.list("wc/");
        // Replaying the events after the listing onto the listing must give the final state.
        const state = new Map(listing.items.map((kv) => [kv.key, kv.value]));
        const n = final.revision - listing.revision;
        for (const ev of await take(it, n)) {
          expect(ev.revision).toBeGreaterThan(listing.revision);
          if (ev.type === "put") state.set(ev.kv.key, ev.kv.value);
          else state.delete(ev.key);
        }
        expect([...state.entries()].sort()).toEqual(final.items.map((kv) => [kv.key, kv.value]).sort());
        await it.return?.();
      });

      it("catches up from an older revision, and without fromRevision sees only later writes", async () => {
        const first = await s.put("wh/k", "1");
        await s.put("wh/k", "2");
        await s.put("wh/k", "3");
        const old = open(s, "wh/", first.revision);
        expect((await take(old, 2)).map(brief)).toEqual([`put wh/k=2@${first.revision + 1}`, `put wh/k=3@${first.revision + 2}`]);
        await old.return?.();

        const live = open(s, "wh/");
        const w = await s.put("wh/k", "4");
        expect(brief(await nextEvent(live))).toBe(`put wh/k=4@${w.revision}`);
        await live.return?.();
      });

      it("buffers every event for a slow consumer", async () => {
        const it = open(s, "ws/");
        const n = 500;
        for (let i = 0; i < n; i++) await s.put(`ws/${i % 10}`, String(i));
        const events = await take(it, n);
        expect(events.map((e) => (e.type === "put" ? e.kv.value : "?"))).toEqual(Array.from({ length: n }, (_, i) => String(i)));
        for (let i = 1; i < n; i++) expect(events[i]!.revision).toBe(events[i - 1]!.revision + 1);
        await it.return?.();
      });

      it("delivers deletes, including lease revocation (one delete event per key)", async () => {
        const lease = await s.grantLease(120);
        await s.put("wd/a", "1", { lease });
        await s.put("wd/b", "2", { lease });
        await s.put("wd/c", "3");
        const from = await s.revision();
        const it = open(s, "wd/", from);
        await s.delete("wd/c");
        await s.revokeLease(lease);
        const events = await take(it, 3);
        expect(events.every((e) => e.type === "delete")).toBe(true);
        expect(events.map((e) => (e.type === "delete" ? `${e.key}=${e.prev?.value}` : ""))).toEqual(["wd/c=3", "wd/a=1", "wd/b=2"]);
        expect(events[1]!.revision).toBeGreaterThan(events[0]!.revision);
        expect(events[2]!.revision).toBeGreaterThanOrEqual(events[1]!.revision);
        expect(await s.revision()).toBe(events[2]!.revision);
        await it.return?.();
      });

      it("filters by prefix", async () => {
        const it = open(s, "wp/a");
        await s.put("wp/b", "x");
        await s.put("wp", "x");
        await s.put("wp/ab", "y");
        expect(brief(await nextEvent(it))).toMatch(/^put wp\/ab=y@/);
        await it.return?.();
      });

      it("ends when the signal aborts", async () => {
        const ac = new AbortController();
        const seen: string[] = [];
        const loop = (async () => {
          for await (const ev of s.watch("wa/", { signal: ac.signal })) {
            seen.push(brief(ev));
            if (seen.length === 1) ac.abort();
          }
        })();
        await s.put("wa/x", "1");
        await withGuard(loop, "the watch to end after abort");
        expect(seen).toHaveLength(1);
        const pre = new AbortController();
        pre.abort();
        const done = await withGuard(open(s, "wa/", undefined, pre.signal).next(), "an aborted watch");
        expect(done.done).toBe(true);
      });

      it("throws CompactedError (code 105) for a revision older than the kept history", async () => {
        const first = await s.put("wk/a", "0");
        if (fx.compact) {
          await s.put("wk/a", "1");
          const r = await s.revision();
          await fx.compact(r);
          const e = await rejection(open(s, "wk/", first.revision).next());
          expect(e).toBeInstanceOf(CompactedError);
          expect((e as CompactedError).code).toBe(CniCode.Compacted);
          expect((e as CompactedError).compactRevision).toBeGreaterThanOrEqual(first.revision);
          const ok = open(s, "wk/", r);
          const w = await s.put("wk/a", "2");
          expect(brief(await nextEvent(ok))).toBe(`put wk/a=2@${w.revision}`);
          await ok.return?.();
          return;
        }
        let compacted: unknown;
        for (let i = 0; i < historyBudget && !compacted; i += 500) {
          await Promise.all(Array.from({ length: 500 }, (_, j) => s.put(`wk/f${j % 50}`, String(i + j))));
          try {
            const it = open(s, "wk/", first.revision - 1);
            await withGuard(it.next(), "a watch event");
            await it.return?.();
          } catch (e) {
            compacted = e;
          }
        }
        expect(compacted).toBeInstanceOf(CompactedError);
        expect((compacted as CompactedError).code).toBe(CniCode.Compacted);
      });
    });

    describe("leases", () => {
      it("attaches keys, reports them, keeps alive and revokes (deleting the keys)", async () => {
        const lease = await s.grantLease(30);
        expect(typeof lease).toBe("string");
        await s.put("lr/a", "1", { lease });
        await s.put("lr/b", "2", { lease });
        await s.put("lr/c", "3");
        expect((await s.get("lr/a"))?.lease).toBe(lease);
        expect((await s.get("lr/c"))?.lease).toBeUndefined();
        const info = (await s.leaseInfo(lease))!;
        expect(info.id).toBe(lease);
        expect(info.ttlSeconds).toBe(30);
        expect(info.remainingSeconds).toBeGreaterThan(0);
        expect(info.remainingSeconds).toBeLessThanOrEqual(30);
        expect(info.keys).toEqual(["lr/a", "lr/b"]);
        expect(await s.keepAlive(lease)).toBe(30);

        await s.revokeLease(lease);
        expect(await s.get("lr/a")).toBeUndefined();
        expect(await s.get("lr/b")).toBeUndefined();
        expect((await s.get("lr/c"))?.value).toBe("3");
        expect(await s.leaseInfo(lease)).toBeUndefined();
        expect(await rejection(s.keepAlive(lease))).toBeInstanceOf(NotFoundError);
        expect(await rejection(s.put("lr/d", "x", { lease }))).toBeInstanceOf(NotFoundError);
        expect(await s.get("lr/d")).toBeUndefined();
        await s.revokeLease(lease);
      });

      it("gives distinct ids; revoking an unknown lease succeeds", async () => {
        const ids = await Promise.all([s.grantLease(10), s.grantLease(10), s.grantLease(20)]);
        expect(new Set(ids).size).toBe(3);
        const before = await s.revision();
        await s.revokeLease(ids[0]!);
        await s.revokeLease(ids[0]!);
        expect(await s.revision()).toBe(before);
        expect((await s.leaseInfo(ids[2]!))?.ttlSeconds).toBe(20);
      });

      it("detaches a key put again without the lease", async () => {
        const lease = await s.grantLease(30);
        await s.put("ld/k", "1", { lease });
        await s.put("ld/k", "2");
        expect((await s.get("ld/k"))?.lease).toBeUndefined();
        expect((await s.leaseInfo(lease))?.keys).toEqual([]);
        await s.revokeLease(lease);
        expect((await s.get("ld/k"))?.value).toBe("2");
      });

      it("moves a key between leases", async () => {
        const l1 = await s.grantLease(30);
        const l2 = await s.grantLease(30);
        await s.put("lm/k", "1", { lease: l1 });
        await s.put("lm/k", "2", { lease: l2 });
        expect((await s.leaseInfo(l1))?.keys).toEqual([]);
        expect((await s.leaseInfo(l2))?.keys).toEqual(["lm/k"]);
        await s.revokeLease(l1);
        expect((await s.get("lm/k"))?.value).toBe("2");
        await s.revokeLease(l2);
        expect(await s.get("lm/k")).toBeUndefined();
      });

      it("expires on the store's clock, keepAlive restarts the TTL, and expiry is watched", async () => {
        const clock = fx.clock;
        if (!clock) {
          // No virtual clock: expiry timing is not observable without sleeping; check the TTL bookkeeping.
          const lease = await s.grantLease(5);
          expect(await s.keepAlive(lease)).toBe(5);
          expect((await s.leaseInfo(lease))?.remainingSeconds).toBeLessThanOrEqual(5);
          return;
        }
        const lease = await s.grantLease(5);
        await s.put("le/a", "1", { lease });
        await s.put("le/b", "2", { lease });
        await s.put("le/c", "3");
        const from = await s.revision();
        const it = open(s, "le/", from);
        expect((await s.leaseInfo(lease))?.remainingSeconds).toBe(5);

        await clock.advance(4000);
        expect((await s.leaseInfo(lease))?.remainingSeconds).toBe(1);
        expect(await s.keepAlive(lease)).toBe(5);
        expect((await s.leaseInfo(lease))?.remainingSeconds).toBe(5);
        await clock.advance(4999);
        expect((await s.get("le/a"))?.value).toBe("1");
        expect(await s.revision()).toBe(from);

        await clock.advance(1);
        const events = await take(it, 2);
        expect(events.map((e) => (e.type === "delete" ? `${e.key}=${e.prev?.value}` : brief(e)))).toEqual(["le/a=1", "le/b=2"]);
        expect(events[0]!.revision).toBeGreaterThan(from);
        expect(events[1]!.revision).toBeGreaterThanOrEqual(events[0]!.revision);
        expect(await s.get("le/a")).toBeUndefined();
        expect(await s.get("le/b")).toBeUndefined();
        expect((await s.get("le/c"))?.value).toBe("3");
        expect(await s.leaseInfo(lease)).toBeUndefined();
        expect(await rejection(s.keepAlive(lease))).toBeInstanceOf(NotFoundError);
        expect(await rejection(s.put("le/d", "x", { lease }))).toBeInstanceOf(NotFoundError);
        await it.return?.();
      });

      it("expires a lease with no keys without bumping the revision", async () => {
        const clock = fx.clock;
        const lease = await s.grantLease(2);
        const before = await s.revision();
        if (clock) {
          await clock.advance(2000);
          expect(await s.leaseInfo(lease)).toBeUndefined();
        } else {
          await s.revokeLease(lease);
        }
        expect(await s.revision()).toBe(before);
      });
    });

    describe("input validation", () => {
      const big = "x".repeat(1.5 * MiB + 1);
      const cases: [string, (st: Datastore) => Promise<unknown>, RegExp][] = [
        ["an empty key", (st) => st.put("", "v"), /^key$/],
        ["a key over 1024 bytes", (st) => st.put("k".repeat(1025), "v"), /^key$/],
        ["a key over 1024 bytes in UTF-8 (513 x é)", (st) => st.put("é".repeat(513), "v"), /^key$/],
        ["a key with a newline", (st) => st.put("a\nb", "v"), /^key$/],
        ["a key with NUL", (st) => st.put("a\u0000", "v"), /^key$/],
        ["a key with DEL", (st) => st.put("a\u007f", "v"), /^key$/],
        ["a key with a C1 control", (st) => st.put("a\u0085", "v"), /^key$/],
        ["a key with a lone surrogate", (st) => st.put("a\ud800", "v"), /^key$/],
        ["a non-string key", (st) => st.put(42 as unknown as string, "v"), /^key$/],
        ["a value over 1.5 MiB", (st) => st.put("v/big", big), /^value$/],
        ["a non-string value", (st) => st.put("v/num", 7 as unknown as string), /^value$/],
        ["a bad key in get", (st) => st.get(""), /^key$/],
        ["a bad key in delete", (st) => st.delete("a\tb"), /^key$/],
        ["a negative ifRevision", (st) => st.put("v/a", "v", { ifRevision: -1 }), /ifRevision/],
        ["a fractional ifRevision", (st) => st.delete("v/a", { ifRevision: 1.5 }), /ifRevision/],
        ["ttl 0", (st) => st.grantLease(0), /^ttlSeconds$/],
        ["a negative ttl", (st) => st.grantLease(-5), /^ttlSeconds$/],
        ["a fractional ttl", (st) => st.grantLease(1.5), /^ttlSeconds$/],
        ["a NaN ttl", (st) => st.grantLease(Number.NaN), /^ttlSeconds$/],
        ["an infinite ttl", (st) => st.grantLease(Number.POSITIVE_INFINITY), /^ttlSeconds$/],
        ["a bad key in a txn op", (st) => st.txn([], [{ op: "put", key: "a\nb", value: "v" }]), /key$/],
        ["a bad value in a txn op", (st) => st.txn([], [{ op: "put", key: "v/t", value: big }]), /value$/],
        ["a bad prefix in list", (st) => st.list("a\nb"), /^prefix$/],
        ["a bad prefix in watch", (st) => open(st, "a\u0000").next(), /^prefix$/],
        ["a negative fromRevision in watch", (st) => open(st, "", -1).next(), /^fromRevision$/],
      ];

      it.each(cases)("refuses %s with ConfigError naming the field, writing nothing", async (_label, call, field) => {
        await s.put("v/existing", "1");
        const before = await s.revision();
        const e = await expectConfig(call(s), field);
        expect(e.code).toBe(CniCode.InvalidNetworkConfig);
        expect(await s.revision()).toBe(before);
        expect((await s.list("")).items.map((kv) => kv.key)).toEqual(["v/existing"]);
      });

      it("accepts the limits exactly: a 1024-byte key and a 1.5 MiB value", async () => {
        const key = "é".repeat(512);
        const value = "x".repeat(1.5 * MiB);
        await s.put(key, value);
        const kv = (await s.get(key))!;
        expect(kv.value.length).toBe(1.5 * MiB);
        expect(await s.grantLease(1)).toEqual(expect.any(String));
      });
    });

    describe("close", () => {
      it("ends open watches, refuses later calls with ClosedError, and is idempotent", async () => {
        await s.put("c/a", "1");
        const lease = await s.grantLease(60);
        const it = open(s, "c/");
        const pending = it.next();
        let ended = false;
        const loop = (async () => {
          for await (const _ of s.watch("c/")) {
            // consume
          }
          ended = true;
        })();
        await s.close();
        expect((await withGuard(pending, "the watch to end")).done).toBe(true);
        await withGuard(loop, "the for-await watch to end");
        expect(ended).toBe(true);
        const calls: (() => Promise<unknown>)[] = [
          () => s.get("c/a"),
          () => s.put("c/a", "2"),
          () => s.delete("c/a"),
          () => s.list("c/"),
          () => s.txn([], [{ op: "put", key: "c/b", value: "1" }]),
          () => s.grantLease(5),
          () => s.keepAlive(lease),
          () => s.revokeLease(lease),
          () => s.leaseInfo(lease),
          () => s.revision(),
          () => open(s, "c/").next(),
        ];
        for (const call of calls) {
          const e = await rejection(call());
          expect(e).toBeInstanceOf(ClosedError);
          expect((e as ClosedError).code).toBe(CniCode.Closed);
        }
        await s.close();
      });
    });

    describe("CAS races", () => {
      it("lets exactly one of many concurrent conditional puts win, on a new and on an existing key", async () => {
        const n = 16;
        const first = await Promise.allSettled(Array.from({ length: n }, (_, i) => s.put("race/one", `w${i}`, { ifRevision: 0 })));
        const won = first.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
        expect(won).toHaveLength(1);
        for (const r of first) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ConflictError);
        const kv = (await s.get("race/one"))!;
        expect(kv).toMatchObject({ value: `w${won[0]}`, version: 1 });

        const second = await Promise.allSettled(Array.from({ length: n }, (_, i) => s.put("race/one", `v${i}`, { ifRevision: kv.modRevision })));
        const won2 = second.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
        expect(won2).toHaveLength(1);
        for (const r of second) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ConflictError);
        expect(await s.get("race/one")).toMatchObject({ value: `v${won2[0]}`, version: 2 });
        expect(await s.revision()).toBe(kv.modRevision + 1);
      });

      it("keeps a total across concurrent multi-key transfers (transactions comparing both keys)", async () => {
        const accounts = ["race/acct/a", "race/acct/b", "race/acct/c", "race/acct/d"];
        for (const a of accounts) await s.put(a, "100");
        const r0 = await s.revision();
        const workers = 6;
        const each = 8;
        let applied = 0;
        const worker = async (w: number): Promise<void> => {
          for (let i = 0; i < each; i++) {
            const from = accounts[(w + i) % accounts.length]!;
            const to = accounts[(w + i + 1 + (i % 3)) % accounts.length]!;
            for (;;) {
              const snap = await s.list("race/acct/");
              const get = (k: string): KeyValue => snap.items.find((kv) => kv.key === k)!;
              const a = get(from);
              const b = get(to);
              const amount = 1 + ((w * 7 + i) % 5);
              const res = await s.txn(
                [
                  { key: from, modRevision: a.modRevision },
                  { key: to, modRevision: b.modRevision },
                ],
                [
                  { op: "put", key: from, value: String(Number(a.value) - amount) },
                  { op: "put", key: to, value: String(Number(b.value) + amount) },
                ],
              );
              if (res.succeeded) {
                applied++;
                break;
              }
            }
          }
        };
        await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
        const final = await s.list("race/acct/");
        expect(final.items.reduce((sum, kv) => sum + Number(kv.value), 0)).toBe(400);
        expect(applied).toBe(workers * each);
        // One revision per applied transfer, nothing else.
        expect(final.revision).toBe(r0 + workers * each);
      });
    });

    describe("watch ordering", () => {
      it("gives every watcher the same events in revision order under concurrent writers", async () => {
        await s.put("wo/a/seed", "0");
        const r0 = await s.revision();
        const all = open(s, "wo/", r0);
        const subset = open(s, "wo/a/", r0);
        const writers = 4;
        const each = 20;
        const writer = async (w: number): Promise<void> => {
          for (let i = 0; i < each; i++) {
            const k = `wo/${i % 2 ? "a" : "b"}/${(w + i) % 5}`;
            if (i % 7 === 6) await s.delete(k);
            else if (i % 5 === 4) {
              await s.txn(
                [],
                [
                  { op: "put", key: `wo/a/t${w}`, value: `${w}.${i}` },
                  { op: "put", key: `wo/b/t${w}`, value: `${w}.${i}` },
                ],
              );
            } else await s.put(k, `${w}.${i}`);
          }
        };
        const late = open(s, "wo/", r0);
        await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
        const end = await s.put("wo/a/zz-end", "end");
        const readUntilEnd = async (it: AsyncIterator<WatchEvent>): Promise<WatchEvent[]> => {
          const out: WatchEvent[] = [];
          for (;;) {
            const ev = await nextEvent(it);
            out.push(ev);
            if (ev.revision === end.revision) return out;
          }
        };
        const seenAll = await readUntilEnd(all);
        const seenLate = await readUntilEnd(late);
        const seenSubset = await readUntilEnd(subset);
        for (const evs of [seenAll, seenSubset]) {
          for (let i = 1; i < evs.length; i++) expect(evs[i]!.revision).toBeGreaterThanOrEqual(evs[i - 1]!.revision);
        }
        expect(seenLate.map(brief)).toEqual(seenAll.map(brief));
        expect(seenSubset.map(brief)).toEqual(seenAll.filter((e) => (e.type === "put" ? e.kv.key : e.key).startsWith("wo/a/")).map(brief));
        // Every revision after r0 shows up, and replaying the events gives the final listing.
        const revisions = new Set(seenAll.map((e) => e.revision));
        expect(revisions.size).toBe(end.revision - r0);
        const state = new Map<string, string>([["wo/a/seed", "0"]]);
        for (const ev of seenAll) {
          if (ev.type === "put") state.set(ev.kv.key, ev.kv.value);
          else state.delete(ev.key);
        }
        const final = await s.list("wo/");
        expect([...state.entries()].sort(([x], [y]) => byteOrder(x, y))).toEqual(final.items.map((kv) => [kv.key, kv.value]));
        for (const it of [all, subset, late]) await it.return?.();
      });
    });

    describe("large values", () => {
      it("stores, lists and watches large values exactly (8 x 1 MiB and one of 1.5 MiB)", async () => {
        const r0 = await s.revision();
        const it = open(s, "big/", r0);
        const values = Array.from({ length: 8 }, (_, i) => `${i}:${String.fromCharCode(97 + i).repeat(MiB - 2)}`);
        values.push("é".repeat(0.75 * MiB)); // 1.5 MiB of UTF-8 in two-byte characters
        for (const [i, v] of values.entries()) await s.put(`big/${i}`, v);
        for (const [i, v] of values.entries()) expect((await s.get(`big/${i}`))?.value === v).toBe(true);
        const listing = await s.list("big/");
        expect(listing.items.map((kv) => kv.key)).toEqual(values.map((_, i) => `big/${i}`));
        expect(listing.items.every((kv, i) => kv.value === values[i])).toBe(true);
        const events = await take(it, values.length);
        expect(events.map((e) => (e.type === "put" ? e.kv.value.length : -1))).toEqual(values.map((v) => v.length));
        expect(events.every((e, i) => e.type === "put" && e.kv.value === values[i])).toBe(true);
        await it.return?.();
      });
    });

    describe("many keys", () => {
      it(`handles ${manyKeys} keys: concurrent writes, sorted and sub-prefix listings, watch catch-up, batched deletes`, async () => {
        const r0 = await s.revision();
        // Opened before the writes, so the catch-up does not depend on how much history is kept.
        const it = open(s, "many/", r0);
        const keys = Array.from({ length: manyKeys }, (_, i) => `many/${i % 10}/${i.toString(36)}`);
        await pool(keys, 32, async (k) => {
          await s.put(k, `v-${k}`);
        });
        const listing = await s.list("many/");
        expect(listing.revision).toBe(r0 + manyKeys);
        expect(listing.items.map((kv) => kv.key)).toEqual([...keys].sort(byteOrder));
        expect(listing.items.every((kv) => kv.value === `v-${kv.key}`)).toBe(true);
        const bucket = keys.filter((k) => k.startsWith("many/3/")).sort(byteOrder);
        expect((await s.list("many/3/")).items.map((kv) => kv.key)).toEqual(bucket);

        const events = await take(it, manyKeys);
        expect(events.map((e) => e.revision)).toEqual(Array.from({ length: manyKeys }, (_, i) => r0 + 1 + i));
        expect(new Set(events.map((e) => (e.type === "put" ? e.kv.key : ""))).size).toBe(manyKeys);
        await it.return?.();

        // Delete one bucket in transactions of at most 100 operations (etcd's default limit is 128).
        const before = await s.revision();
        for (let i = 0; i < bucket.length; i += 100) {
          const res = await s.txn(
            [],
            bucket.slice(i, i + 100).map((key) => ({ op: "delete" as const, key })),
          );
          expect(res.succeeded).toBe(true);
        }
        expect((await s.list("many/3/")).items).toEqual([]);
        expect(await s.revision()).toBe(before + Math.ceil(bucket.length / 100));
        expect((await s.list("many/")).items).toHaveLength(manyKeys - bucket.length);
      });
    });

    if (realTimeTtl !== undefined) {
      const ttl = realTimeTtl;
      describe("leases on wall time", () => {
        it(`keeps a ${ttl} s lease alive past its TTL, then expires it (one delete event per key)`, async () => {
          const lease = await s.grantLease(ttl);
          await s.put("lw/a", "1", { lease });
          await s.put("lw/b", "2", { lease });
          await s.put("lw/c", "3");
          const from = await s.revision();
          const it = open(s, "lw/", from);
          // Keep it alive for longer than one TTL: the keys must stay.
          const until = Date.now() + (ttl + 1) * 1000;
          while (Date.now() < until) {
            expect(await s.keepAlive(lease)).toBeGreaterThanOrEqual(ttl);
            await sleepMs(400);
          }
          expect((await s.get("lw/a"))?.value).toBe("1");
          expect(await s.revision()).toBe(from);
          // Then let it lapse: both keys go, under one revision, and nothing else changes.
          const events = await take(it, 2);
          expect(events.map((e) => (e.type === "delete" ? `${e.key}=${e.prev?.value}` : brief(e)))).toEqual(["lw/a=1", "lw/b=2"]);
          expect(events[1]!.revision).toBe(events[0]!.revision);
          expect(events[0]!.revision).toBe(from + 1);
          expect(await s.get("lw/a")).toBeUndefined();
          expect((await s.get("lw/c"))?.value).toBe("3");
          expect(await s.leaseInfo(lease)).toBeUndefined();
          expect(await rejection(s.keepAlive(lease))).toBeInstanceOf(NotFoundError);
          expect(await rejection(s.put("lw/d", "x", { lease }))).toBeInstanceOf(NotFoundError);
          await it.return?.();
        });
      });
    }

    describe("model-based property", () => {
      it("matches a simple map model over random put / CAS / delete / txn sequences", async () => {
        type Cmd =
          | { op: "put"; k: number; v: string }
          | { op: "putCas"; k: number; v: string; mode: "current" | "zero" | "stale" }
          | { op: "del"; k: number }
          | { op: "delCas"; k: number; mode: "current" | "zero" | "stale" }
          | { op: "txn"; k1: number; k2: number; v: string; mode: "current" | "stale" };
        const key = fc.integer({ min: 0, max: 5 });
        const val = fc.string({ maxLength: 6 });
        const mode = fc.constantFrom("current" as const, "zero" as const, "stale" as const);
        const cmd: fc.Arbitrary<Cmd> = fc.oneof(
          fc.record({ op: fc.constant("put" as const), k: key, v: val }),
          fc.record({ op: fc.constant("putCas" as const), k: key, v: val, mode }),
          fc.record({ op: fc.constant("del" as const), k: key }),
          fc.record({ op: fc.constant("delCas" as const), k: key, mode }),
          fc.record({ op: fc.constant("txn" as const), k1: key, k2: key, v: val, mode: fc.constantFrom("current" as const, "stale" as const) }),
        );
        let run = 0;
        await fc.assert(
          fc.asyncProperty(fc.array(cmd, { maxLength: 30 }), async (cmds) => {
            const prefix = `prop/${run++}/`;
            const r0 = await s.revision();
            const it = open(s, prefix, r0);
            type Entry = { value: string; create: number; mod: number; version: number };
            const model = new Map<string, Entry>();
            let rev = r0;
            const expected: string[] = [];
            const name = (k: number): string => `${prefix}${k}`;
            const casRev = (k: string, m: "current" | "zero" | "stale"): number => {
              const cur = model.get(k);
              if (m === "zero") return 0;
              if (m === "current") return cur?.mod ?? 0;
              return cur ? cur.mod + 1000 : rev + 1000;
            };
            const holds = (k: string, r: number): boolean => (r === 0 ? !model.has(k) : model.get(k)?.mod === r);
            const put = (k: string, v: string, at: number): void => {
              const cur = model.get(k);
              model.set(k, { value: v, create: cur?.create ?? at, mod: at, version: (cur?.version ?? 0) + 1 });
              expected.push(`put ${k}=${v}@${at}`);
            };
            for (const c of cmds) {
              if (c.op === "put") {
                const res = await s.put(name(c.k), c.v);
                rev++;
                expect(res.revision).toBe(rev);
                put(name(c.k), c.v, rev);
              } else if (c.op === "putCas") {
                const k = name(c.k);
                const r = casRev(k, c.mode);
                if (holds(k, r)) {
                  const res = await s.put(k, c.v, { ifRevision: r });
                  rev++;
                  expect(res.revision).toBe(rev);
                  put(k, c.v, rev);
                } else {
                  await expectConflict(s.put(k, c.v, { ifRevision: r }), k);
                }
              } else if (c.op === "del" || c.op === "delCas") {
                const k = name(c.k);
                const r = c.op === "delCas" ? casRev(k, c.mode) : undefined;
                if (r !== undefined && !holds(k, r)) {
                  await expectConflict(s.delete(k, { ifRevision: r }), k);
                  continue;
                }
                const res = await s.delete(k, r === undefined ? {} : { ifRevision: r });
                expect(res.deleted).toBe(model.has(k));
                if (model.has(k)) {
                  rev++;
                  model.delete(k);
                  expected.push(`delete ${k}@${rev}`);
                }
                expect(res.revision).toBe(rev);
              } else {
                const k1 = name(c.k1);
                const k2 = name(c.k2);
                const r = casRev(k1, c.mode);
                const ops =
                  k1 === k2
                    ? [{ op: "put" as const, key: k1, value: c.v }]
                    : [
                        { op: "put" as const, key: k1, value: c.v },
                        { op: "put" as const, key: k2, value: c.v },
                      ];
                const res = await s.txn([{ key: k1, modRevision: r }], ops);
                expect(res.succeeded).toBe(holds(k1, r));
                if (res.succeeded) {
                  rev++;
                  for (const op of ops) put(op.key, op.value, rev);
                }
                expect(res.revision).toBe(rev);
              }
            }
            const listing = await s.list(prefix);
            expect(listing.revision).toBe(rev);
            const want = [...model.entries()].sort(([a], [b]) => byteOrder(a, b)).map(([k, e]) => ({ key: k, value: e.value, createRevision: e.create, modRevision: e.mod, version: e.version }));
            expect(listing.items.map((kv: KeyValue) => ({ ...kv }))).toEqual(want);
            expect((await take(it, expected.length)).map(brief)).toEqual(expected);
            await it.return?.();
          }),
          { numRuns: propertyRuns },
        );
      });
    });
  });
}
