// Watches through outages (a TCP proxy cut between the client and a real etcd): resumed from the
// next revision without loss or repeats; CompactedError when history went meanwhile; and
// watchWithResync and keepLeaseAlive riding over both.
import { CompactedError, NotFoundError, type KeyValue } from "@cnikit/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EtcdDatastore, keepLeaseAlive, watchWithResync, type EtcdDatastoreOptions, type ResyncEvent } from "../src/index.ts";
import { EtcdProcess } from "../src/testing.ts";
import { TcpProxy } from "./support/tcp-proxy.ts";

let etcd: EtcdProcess;
let n = 0;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  etcd = await EtcdProcess.start();
});
afterAll(async () => {
  await etcd?.cleanup();
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
  await etcd.revokeAllLeases();
});

async function store(options: Partial<EtcdDatastoreOptions> = {}): Promise<EtcdDatastore> {
  const s = await EtcdDatastore.connect({ endpoints: [etcd.endpoint], prefix: `/cnikit-watch-test/${n++}/`, ...options });
  open.push(s);
  return s;
}

/** A store reached through a proxy, and a direct one on the same prefix. */
async function pair(options: Partial<EtcdDatastoreOptions> = {}): Promise<{ p: TcpProxy; viaProxy: EtcdDatastore; direct: EtcdDatastore }> {
  const p = await TcpProxy.start(etcd.port);
  open.push(p);
  const viaProxy = await store({ endpoints: [p.endpoint], ...options });
  const direct = await store({ prefix: viaProxy.prefix });
  return { p, viaProxy, direct };
}

function guard<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

async function take<T>(it: AsyncIterator<T>, count: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < count) {
    const r = await guard(it.next(), `event ${out.length + 1} of ${count}`);
    if (r.done) throw new Error("the stream ended early");
    out.push(r.value);
  }
  return out;
}

describe("watch across an outage", () => {
  it("resumes from the next revision: every event once, in order", async () => {
    const { p, viaProxy, direct } = await pair();
    const r0 = await direct.revision();
    const it = viaProxy.watch("o/", { fromRevision: r0 })[Symbol.asyncIterator]();
    for (let i = 0; i < 10; i++) await direct.put(`o/${i % 3}`, `a${i}`);
    const firstPart = await take(it, 5);
    await p.setMode("refuse");
    for (let i = 0; i < 10; i++) await direct.put(`o/${i % 3}`, `b${i}`);
    await direct.delete("o/0");
    await new Promise((r) => setTimeout(r, 300));
    await p.setMode("pass");
    for (let i = 0; i < 10; i++) await direct.put(`o/${i % 3}`, `c${i}`);
    const rest = await take(it, 26);
    const events = [...firstPart, ...rest];
    expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 31 }, (_, i) => r0 + 1 + i));
    expect(events.map((e) => (e.type === "put" ? e.kv.value : "del"))).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `a${i}`),
      ...Array.from({ length: 10 }, (_, i) => `b${i}`),
      "del",
      ...Array.from({ length: 10 }, (_, i) => `c${i}`),
    ]);
    await it.return?.();
  });

  it("ends with CompactedError after the buffered events when history was compacted during the outage", async () => {
    const { p, viaProxy, direct } = await pair();
    const r0 = await direct.revision();
    const it = viaProxy.watch("c/", { fromRevision: r0 })[Symbol.asyncIterator]();
    await direct.put("c/a", "1");
    await take(it, 1);
    await p.setMode("refuse");
    await direct.put("c/a", "2");
    await direct.put("c/b", "1");
    await direct.put("zz-outside", "x");
    await direct.compact((await direct.revision()) - 1);
    await p.setMode("pass");
    const e = await guard(
      it.next().catch((err: unknown) => err),
      "the CompactedError",
    );
    expect(e).toBeInstanceOf(CompactedError);
    expect((e as CompactedError).compactRevision).toBe(r0 + 3);
    expect((await it.next()).done).toBe(true);
  });
});

describe("watchWithResync", () => {
  it("re-lists after compaction and delivers each change once, so replaying gives the store's state", async () => {
    const { p, viaProxy, direct } = await pair();
    await direct.put("r/keep", "1");
    await direct.put("r/gone", "1");
    await direct.put("r/changed", "1");
    const resyncs: number[] = [];
    const ac = new AbortController();
    const it = watchWithResync(viaProxy, "r/", { signal: ac.signal, onResync: (i) => resyncs.push(i.changes) })[Symbol.asyncIterator]();
    const state = new Map<string, KeyValue>();
    const apply = (ev: ResyncEvent): void => {
      if (ev.type === "snapshot") for (const kv of ev.items) state.set(kv.key, kv);
      else if (ev.type === "put") state.set(ev.kv.key, ev.kv);
      else state.delete(ev.key);
    };
    const [snap] = await take(it, 1);
    expect(snap?.type).toBe("snapshot");
    apply(snap!);
    await direct.put("r/changed", "2");
    const [live] = await take(it, 1);
    expect(live).toMatchObject({ type: "put", kv: { key: "r/changed", value: "2" } });
    apply(live!);

    await p.setMode("refuse");
    await direct.delete("r/gone");
    await direct.put("r/changed", "3");
    await direct.put("r/changed", "4");
    await direct.put("r/new", "1");
    await direct.put("zz-outside", "x");
    await direct.compact((await direct.revision()) - 1);
    await p.setMode("pass");

    const resynced = await take(it, 3);
    expect(resynced.every((e) => e.type !== "snapshot" && e.resynced === true)).toBe(true);
    expect(resynced.map((e) => (e.type === "delete" ? `delete ${e.key}` : e.type === "put" ? `put ${e.kv.key}=${e.kv.value}` : e.type)).sort()).toEqual([
      "delete r/gone",
      "put r/changed=4",
      "put r/new=1",
    ]);
    for (const e of resynced) apply(e);
    expect(resyncs).toEqual([3]);
    // And it goes on watching from the listing.
    await direct.put("r/keep", "2");
    const [after] = await take(it, 1);
    expect(after).toMatchObject({ type: "put", kv: { key: "r/keep", value: "2" } });
    expect(after?.type === "put" && after.resynced).toBeUndefined();
    apply(after!);
    const final = await direct.list("r/");
    expect([...state.values()].sort((a, b) => (a.key < b.key ? -1 : 1))).toEqual(final.items);
    ac.abort();
    expect((await guard(it.next(), "the end after abort")).done).toBe(true);
  });
});

describe("keepLeaseAlive", () => {
  it("keeps a lease alive across an outage shorter than its TTL and reports its loss", async () => {
    // A short retry window, so refreshes fail during the outage and the keeper retries them.
    const { p, viaProxy, direct } = await pair({ retryWindowMs: 200 });
    const lease = await viaProxy.grantLease(3);
    await viaProxy.put("k/a", "1", { lease });
    const errors: unknown[] = [];
    const keeper = keepLeaseAlive(viaProxy, lease, { ttlSeconds: 3, intervalMs: 400, onError: (e) => errors.push(e) });
    await new Promise((r) => setTimeout(r, 500));
    await p.setMode("refuse");
    await new Promise((r) => setTimeout(r, 1200));
    await p.setMode("pass");
    await new Promise((r) => setTimeout(r, 2500));
    // 4.2 s in all, longer than the TTL: only the refreshes kept the key.
    expect((await direct.get("k/a"))?.value).toBe("1");
    expect(keeper.refreshes).toBeGreaterThan(2);
    expect(errors.length).toBeGreaterThan(0);
    await direct.revokeLease(lease);
    expect(await guard(keeper.lost, "the keeper to notice")).toBeInstanceOf(NotFoundError);
    keeper.stop();
  });

  it("refuses an interval that is not below the TTL", async () => {
    const s = await store();
    expect(() => keepLeaseAlive(s, "00000000000000aa", { ttlSeconds: 2, intervalMs: 2000 })).toThrow(/intervalMs/);
    expect(() => keepLeaseAlive(s, "00000000000000aa", { ttlSeconds: 0 })).toThrow(/ttlSeconds/);
  });
});
