// What only the etcd store has: the key prefix, paged listing, lease ids, endpoints and fail-over,
// and what a lost request or a lost answer means for each kind of call (through a TCP proxy that
// drops them on purpose), against a real etcd started for this file.
import { createServer, type Server } from "node:http";
import { CniCode, CniError, ConfigError, ConflictError, NotFoundError, TryAgainError, type WatchEvent } from "@cnikit/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EtcdDatastore, OutcomeUnknownError, type EtcdDatastoreOptions } from "../src/index.ts";
import { EtcdProcess, findEtcdBinary, freePort } from "../src/testing.ts";
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
  const s = await EtcdDatastore.connect({ endpoints: [etcd.endpoint], prefix: `/cnikit-etcd-test/${n++}/`, ...options });
  open.push(s);
  return s;
}

async function proxy(): Promise<TcpProxy> {
  const p = await TcpProxy.start(etcd.port);
  open.push(p);
  return p;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

async function leaseCount(): Promise<number> {
  const res = await fetch(`${etcd.endpoint}/v3/lease/leases`, { method: "POST", body: "{}" });
  const body = (await res.json()) as { leases?: unknown[] };
  return body.leases?.length ?? 0;
}

describe("options", () => {
  const cases: [string, Partial<EtcdDatastoreOptions>, RegExp][] = [
    ["no endpoints", { endpoints: [] }, /^endpoints$/],
    ["a non-URL endpoint", { endpoints: ["127.0.0.1:2379"] }, /^endpoints\[0\]$/],
    ["an ftp endpoint", { endpoints: ["ftp://127.0.0.1:2379"] }, /^endpoints\[0\]$/],
    ["credentials in the URL", { endpoints: ["http://u:p@127.0.0.1:2379"] }, /^endpoints\[0\]$/],
    ["a bad second endpoint", { endpoints: ["http://127.0.0.1:2379", "nope"] }, /^endpoints\[1\]$/],
    ["a prefix with a newline", { prefix: "/cnikit/\n/" }, /^prefix$/],
    ["a non-string prefix", { prefix: 7 as unknown as string }, /^prefix$/],
    ["a zero request timeout", { requestTimeoutMs: 0 }, /^requestTimeoutMs$/],
    ["a fractional retry window", { retryWindowMs: 1.5 }, /^retryWindowMs$/],
    ["a zero page size", { listPageSize: 0 }, /^listPageSize$/],
  ];
  it.each(cases)("refuses %s with ConfigError naming the field", async (_label, bad, field) => {
    const e = await failure(EtcdDatastore.connect({ endpoints: [etcd.endpoint], prefix: "/x/", ...bad }));
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).field).toMatch(field);
  });

  it("fails to connect with TryAgainError when nothing listens, and names a non-etcd server", async () => {
    const port = await freePort();
    const e = await failure(EtcdDatastore.connect({ endpoints: [`http://127.0.0.1:${port}`], prefix: "/x/", retryWindowMs: 300 }));
    expect(e).toBeInstanceOf(TryAgainError);
    expect((e as TryAgainError).code).toBe(CniCode.TryAgainLater);

    const web: Server = createServer((_req, res) => {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("404 page not found");
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", () => r()));
    const addr = web.address();
    const webPort = typeof addr === "object" && addr ? addr.port : 0;
    try {
      const e2 = await failure(EtcdDatastore.connect({ endpoints: [`http://127.0.0.1:${webPort}`], prefix: "/x/" }));
      expect(e2).toBeInstanceOf(CniError);
      expect((e2 as CniError).message).toMatch(/gRPC gateway/);
    } finally {
      await new Promise((r) => web.close(r));
    }
  });
});

describe("key prefix", () => {
  it("stores every key under the prefix and strips it from list, watch and lease keys", async () => {
    const a = await store({ prefix: "/cnikit/a/" });
    const b = await store({ prefix: "/cnikit/b/" });
    const raw = await store({ prefix: "" });
    const r0 = await a.revision();
    const wa = a.watch("", { fromRevision: r0 })[Symbol.asyncIterator]();
    const lease = await a.grantLease(30);
    await a.put("k1", "a1", { lease });
    await b.put("k1", "b1");
    await a.put("k2", "a2");
    expect((await a.list("")).items.map((kv) => `${kv.key}=${kv.value}`)).toEqual(["k1=a1", "k2=a2"]);
    expect((await b.list("")).items.map((kv) => `${kv.key}=${kv.value}`)).toEqual(["k1=b1"]);
    const all = (await raw.list("/cnikit/")).items.map((kv) => kv.key);
    expect(all).toEqual(["/cnikit/a/k1", "/cnikit/a/k2", "/cnikit/b/k1"]);
    expect((await raw.get("/cnikit/a/k1"))?.value).toBe("a1");
    expect((await a.leaseInfo(lease))?.keys).toEqual(["k1"]);
    const events: WatchEvent[] = [(await wa.next()).value, (await wa.next()).value];
    expect(events.map((e) => (e.type === "put" ? e.kv.key : e.key))).toEqual(["k1", "k2"]);
    await wa.return?.();
  });

  it("lists an empty prefix store (the whole keyspace) without error", async () => {
    const raw = await store({ prefix: "" });
    await raw.put("\u00ff\u00ff", "high");
    expect((await raw.list("")).items.map((kv) => kv.key)).toContain("\u00ff\u00ff");
    expect((await raw.list("\u00ff")).items.map((kv) => kv.key)).toEqual(["\u00ff\u00ff"]);
  });
});

describe("paged listing", () => {
  it("lists through many small pages as one snapshot", async () => {
    const s = await store({ listPageSize: 7 });
    const keys = Array.from({ length: 50 }, (_, i) => `p/${String(i).padStart(2, "0")}`);
    for (const k of keys) await s.put(k, k);
    const rev = await s.revision();
    const listing = await s.list("p/");
    expect(listing.revision).toBe(rev);
    expect(listing.items.map((kv) => kv.key)).toEqual(keys);

    const pages = s.listPages("p/", { pageSize: 10 });
    const first = await pages.next();
    // Writes after the first page do not leak into later pages: every page is read at one revision.
    await s.put("p/25", "changed");
    await s.put("p/99", "new");
    const seen = [...(first.value?.items ?? [])];
    const revisions = [first.value?.revision];
    for await (const page of pages) {
      seen.push(...page.items);
      revisions.push(page.revision);
    }
    expect(revisions).toEqual([rev, rev, rev, rev, rev]);
    expect(seen.map((kv) => `${kv.key}=${kv.value}`)).toEqual(keys.map((k) => `${k}=${k}`));
    expect(await failure(s.listPages("p/", { pageSize: 0 }).next())).toBeInstanceOf(ConfigError);
  });
});

describe("leases", () => {
  it("shows lease ids as 16 hex digits and treats ids no etcd lease can have as unknown", async () => {
    const s = await store();
    const lease = await s.grantLease(10);
    expect(lease).toMatch(/^[0-9a-f]{16}$/);
    expect((await s.leaseInfo(lease))?.ttlSeconds).toBe(10);
    for (const bogus of ["zz", "0", "ffffffffffffffff", "1234567890abcdef0"]) {
      expect(await failure(s.put("k", "v", { lease: bogus }))).toBeInstanceOf(NotFoundError);
      expect(await failure(s.keepAlive(bogus))).toBeInstanceOf(NotFoundError);
      expect(await s.leaseInfo(bogus)).toBeUndefined();
      await s.revokeLease(bogus);
    }
    expect(await s.get("k")).toBeUndefined();
  });
});

describe("endpoints", () => {
  it("fails over to the next endpoint when one refuses connections", async () => {
    const p = await proxy();
    const s = await store({ endpoints: [p.endpoint, etcd.endpoint] });
    await s.put("f/a", "1");
    await p.setMode("refuse");
    await s.put("f/b", "2");
    expect((await s.list("f/")).items.map((kv) => kv.value)).toEqual(["1", "2"]);
  });
});

describe("an unreachable etcd", () => {
  it("fails reads and writes with TryAgainError after the retry window, having written nothing", async () => {
    const p = await proxy();
    const s = await store({ endpoints: [p.endpoint], retryWindowMs: 400 });
    const direct = await store({ prefix: s.prefix });
    await s.put("u/a", "1");
    const before = await direct.revision();
    await p.setMode("refuse");
    for (const call of [() => s.get("u/a"), () => s.put("u/b", "2"), () => s.put("u/a", "3", { ifRevision: 1 }), () => s.grantLease(5), () => s.list("u/")]) {
      const e = await failure(call());
      expect(e).toBeInstanceOf(TryAgainError);
      expect((e as TryAgainError).retryable).toBe(true);
    }
    expect(await direct.revision()).toBe(before);
    const w = s.watch("u/")[Symbol.asyncIterator]();
    expect(await failure(w.next())).toBeInstanceOf(TryAgainError);
    await p.setMode("pass");
    expect((await s.get("u/a"))?.value).toBe("1");
  });

  it("waits out a short outage inside the retry window", async () => {
    const p = await proxy();
    const s = await store({ endpoints: [p.endpoint], retryWindowMs: 10_000 });
    await p.setMode("refuse");
    const pending = s.put("w/a", "1");
    setTimeout(() => void p.setMode("pass"), 300);
    expect((await pending).revision).toBeGreaterThan(0);
    expect((await s.get("w/a"))?.value).toBe("1");
  });
});

describe("lost requests and lost answers", () => {
  it("re-sends a guarded write whose request was lost: applied exactly once", async () => {
    const p = await proxy();
    const s = await store({ endpoints: [p.endpoint] });
    const w1 = await s.put("l/a", "1");
    p.dropNextRequests(1);
    const w2 = await s.put("l/a", "2", { ifRevision: w1.revision });
    expect(await s.get("l/a")).toMatchObject({ value: "2", version: 2, modRevision: w2.revision });
  });

  it("reports OutcomeUnknownError (not TryAgainError, not ConflictError) when a guarded write's answer was lost after it applied", async () => {
    const p = await proxy();
    const s = await store({ endpoints: [p.endpoint] });
    const w1 = await s.put("l/b", "1");
    p.dropNextAnswers(1);
    const e = await failure(s.put("l/b", "2", { ifRevision: w1.revision }));
    expect(e).toBeInstanceOf(OutcomeUnknownError);
    expect(e).not.toBeInstanceOf(TryAgainError);
    expect(e).not.toBeInstanceOf(ConflictError);
    expect((e as OutcomeUnknownError).code).toBe(CniCode.TryAgainLater);
    // It was applied once, not twice.
    expect(await s.get("l/b")).toMatchObject({ value: "2", version: 2 });
  });

  it("reports OutcomeUnknownError for writes that cannot be re-sent safely (plain, create-only, unguarded txn)", async () => {
    const p = await proxy();
    const s = await store({ endpoints: [p.endpoint] });
    const direct = await store({ prefix: s.prefix });
    const before = await direct.revision();
    for (const call of [() => s.put("l/c", "1"), () => s.put("l/d", "1", { ifRevision: 0 }), () => s.delete("l/e"), () => s.txn([], [{ op: "put", key: "l/f", value: "1" }])]) {
      p.dropNextRequests(1);
      expect(await failure(call())).toBeInstanceOf(OutcomeUnknownError);
    }
    // Here the requests never reached etcd, but the client could not know that.
    expect(await direct.revision()).toBe(before);
  });

  it("re-sends idempotent calls: a lost grant answer creates one lease, a lost keep-alive answer is retried", async () => {
    const p = await proxy();
    const s = await store({ endpoints: [p.endpoint] });
    const before = await leaseCount();
    p.dropNextAnswers(1);
    const lease = await s.grantLease(20);
    expect(await leaseCount()).toBe(before + 1);
    expect((await s.leaseInfo(lease))?.ttlSeconds).toBe(20);
    p.dropNextAnswers(1);
    expect(await s.keepAlive(lease)).toBe(20);
    p.dropNextAnswers(1);
    await s.revokeLease(lease);
    expect(await s.leaseInfo(lease)).toBeUndefined();
    p.dropNextAnswers(1);
    expect((await s.list("")).items).toEqual([]);
  });
});

describe("open (no connectivity check)", () => {
  it("sends nothing until the first call; a watch before any answer starts at etcd's current revision", async () => {
    const port = await freePort();
    const dead = EtcdDatastore.open({ endpoints: [`http://127.0.0.1:${port}`], prefix: "/x/", retryWindowMs: 200 });
    open.push(dead);
    expect(await failure(dead.get("k"))).toBeInstanceOf(TryAgainError);
    expect(() => EtcdDatastore.open({ endpoints: [], prefix: "/x/" })).toThrow(ConfigError);

    const writer = await store();
    await writer.put("o/old", "1");
    const fresh = EtcdDatastore.open({ endpoints: [etcd.endpoint], prefix: writer.prefix });
    open.push(fresh);
    const it = fresh.watch("o/")[Symbol.asyncIterator]();
    const first = it.next();
    // The watch is created asynchronously; once etcd has it, later writes arrive and older ones do not.
    await new Promise((r) => setTimeout(r, 200));
    await writer.put("o/new", "2");
    const ev = (await first).value as WatchEvent;
    expect(ev.type === "put" && ev.kv.key).toBe("o/new");
    await it.return?.();
  });
});

describe("the etcd test helper", () => {
  it("names the Debian package to install when etcd is missing", () => {
    expect(() => findEtcdBinary("/nonexistent/etcd")).toThrow(/install the Debian package etcd-server/);
    expect(findEtcdBinary()).toMatch(/etcd$/);
  });

  it("runs etcd under the PID it reports and stops it by that PID", async () => {
    const own = await EtcdProcess.start();
    try {
      const pid = own.pid!;
      expect(() => process.kill(pid, 0)).not.toThrow();
      await own.stop();
      expect(own.running).toBe(false);
      expect(() => process.kill(pid, 0)).toThrow();
      await own.restart();
      const s = await EtcdDatastore.connect({ endpoints: [own.endpoint], prefix: "/x/" });
      open.push(s);
      expect(await s.revision()).toBeGreaterThan(0);
    } finally {
      await own.cleanup();
    }
  });
});
