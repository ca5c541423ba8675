import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { VirtualClock } from "../src/clock.ts";
import { CompactedError, ConfigError, DecodeError } from "../src/errors.ts";
import { FileDatastore } from "../src/store/file.ts";
import { frame } from "../src/store/frames.ts";
import { defineDatastoreSuite } from "../src/store/testing.ts";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "cnikit-file-store-"));
}

defineDatastoreSuite("FileDatastore", async () => {
  const dir = tempDir();
  const clock = new VirtualClock();
  const store = await FileDatastore.open({ dir, clock });
  return { store, clock, compact: (r) => store.compact(r), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

// Snapshots on almost every batch: the contract must hold across log generations too.
defineDatastoreSuite(
  "FileDatastore (fsync off, snapshot every 4 KiB)",
  async () => {
    const dir = tempDir();
    const clock = new VirtualClock();
    const store = await FileDatastore.open({ dir, clock, fsync: false, snapshotBytes: 4096 });
    return { store, clock, compact: (r) => store.compact(r), cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  { propertyRuns: 30 },
);

describe("FileDatastore specifics", () => {
  const dirs: string[] = [];
  const stores: FileDatastore[] = [];
  const fresh = (): string => {
    const d = tempDir();
    dirs.push(d);
    return d;
  };
  const openStore = async (dir: string, clock = new VirtualClock(), extra: { snapshotBytes?: number; historyLimit?: number } = {}): Promise<FileDatastore> => {
    const s = await FileDatastore.open({ dir, clock, ...extra });
    stores.push(s);
    return s;
  };

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it("keeps keys, revisions, versions and leases across close and reopen", async () => {
    const dir = fresh();
    const clock = new VirtualClock(1_000);
    const a = await openStore(dir, clock);
    const lease = await a.grantLease(10);
    await a.put("k/1", "one", { lease });
    await a.put("k/2", "two");
    await a.put("k/2", "two again");
    await a.txn(
      [{ key: "k/3", modRevision: 0 }],
      [
        { op: "put", key: "k/3", value: "three" },
        { op: "delete", key: "k/1" },
      ],
    );
    await a.put("k/1", "one again", { lease });
    const before = await a.list("");
    await a.close();

    await clock.advance(3_000);
    const b = await openStore(dir, clock);
    expect(await b.list("")).toEqual(before);
    expect(await b.revision()).toBe(before.revision);
    expect(await b.leaseInfo(lease)).toEqual({ id: lease, ttlSeconds: 10, remainingSeconds: 7, keys: ["k/1"] });
    // New leases do not reuse ids.
    expect(await b.grantLease(5)).not.toBe(lease);
    // The lease deadline survived: it expires 10 s after its grant, not after the reopen.
    await clock.advance(6_999);
    expect(await b.get("k/1")).toBeDefined();
    await clock.advance(1);
    expect(await b.get("k/1")).toBeUndefined();
    await b.close();

    const c = await openStore(dir, clock);
    expect(await c.get("k/1")).toBeUndefined();
    expect(await c.leaseInfo(lease)).toBeUndefined();
    expect(await c.revision()).toBe(before.revision + 1);
  });

  it("expires at once on reopen the leases that ran out while closed", async () => {
    const dir = fresh();
    const clock = new VirtualClock();
    const a = await openStore(dir, clock);
    const lease = await a.grantLease(2);
    await a.put("x", "1", { lease });
    await a.close();
    await clock.advance(60_000);
    const b = await openStore(dir, clock);
    const it = b.watch("", { fromRevision: await b.revision() })[Symbol.asyncIterator]();
    await clock.advance(0);
    expect((await it.next()).value).toMatchObject({ type: "delete", key: "x" });
    expect(await b.leaseInfo(lease)).toBeUndefined();
    await it.return?.();
  });

  it("replays watch history from the log after reopen, and from a snapshot only forward", async () => {
    const dir = fresh();
    const a = await openStore(dir);
    const first = await a.put("h/a", "1");
    await a.put("h/a", "2");
    await a.close();
    const b = await openStore(dir);
    const it = b.watch("h/", { fromRevision: first.revision })[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ type: "put", kv: { value: "2" }, prev: { value: "1" } });
    await it.return?.();
    await b.checkpoint();
    await b.close();
    const c = await openStore(dir);
    const compacted = c.watch("h/", { fromRevision: first.revision })[Symbol.asyncIterator]();
    const e = await compacted.next().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CompactedError);
    const live = c.watch("h/", { fromRevision: await c.revision() })[Symbol.asyncIterator]();
    await c.put("h/a", "3");
    expect((await live.next()).value).toMatchObject({ type: "put", kv: { value: "3", version: 3 } });
    await live.return?.();
  });

  it("snapshots when the log grows, keeping one log and the same state", async () => {
    const dir = fresh();
    const a = await openStore(dir, new VirtualClock(), { snapshotBytes: 2048 });
    const lease = await a.grantLease(100);
    for (let i = 0; i < 300; i++) await a.put(`s/${i % 37}`, `value ${i}`, i % 5 === 0 ? { lease } : {});
    const gen = a.logInfo.generation;
    expect(gen).toBeGreaterThan(3);
    const files = readdirSync(dir).sort();
    expect(files).toEqual(["LOCK", "snapshot", `wal-${gen}.log`]);
    const before = await a.list("");
    const info = await a.leaseInfo(lease);
    await a.close();
    const b = await openStore(dir);
    expect(await b.list("")).toEqual(before);
    expect(await b.leaseInfo(lease)).toEqual(info);
  });

  it("cuts a torn tail (unterminated or damaged last batch) and appends after it", async () => {
    const dir = fresh();
    const a = await openStore(dir);
    await a.put("t/a", "1");
    await a.put("t/b", "2");
    const log = a.logInfo.path;
    await a.close();
    const good = statSync(log).size;

    for (const tail of ['0badc0de [{"t":"w","r":3,"ops":[{"k":"t/c","v":"3"}]}]\n', frame('[{"t":"w","r":3,"ops":[{"k":"t/c","v":"3"}]}]').slice(0, 30), "\0\0\0\0\0\0"]) {
      appendFileSync(log, tail);
      const b = await openStore(dir);
      expect(statSync(log).size).toBe(good);
      expect((await b.list("t/")).items.map((kv) => kv.key)).toEqual(["t/a", "t/b"]);
      expect(await b.revision()).toBe(2);
      await b.close();
    }
    const c = await openStore(dir);
    await c.put("t/c", "3");
    await c.close();
    const d = await openStore(dir);
    expect((await d.list("t/")).items.map((kv) => `${kv.key}=${kv.value}`)).toEqual(["t/a=1", "t/b=2", "t/c=3"]);
  });

  it("refuses to open a log damaged in the middle", async () => {
    const dir = fresh();
    const a = await openStore(dir);
    await a.put("m/a", "1");
    await a.put("m/b", "2");
    await a.put("m/c", "3");
    const log = a.logInfo.path;
    await a.close();
    const text = readFileSync(log, "utf8");
    const lines = text.split("\n");
    lines[1] = lines[1]!.replace('"2"', '"X"');
    writeFileSync(log, lines.join("\n"));
    const e = await FileDatastore.open({ dir }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DecodeError);
    expect(String((e as Error).message)).toMatch(/corrupt/);
    // The failed open released the lock.
    expect(existsSync(join(dir, "LOCK"))).toBe(false);
  });

  it("refuses a damaged snapshot", async () => {
    const dir = fresh();
    const a = await openStore(dir);
    await a.put("s/a", "1");
    await a.checkpoint();
    await a.close();
    const snap = join(dir, "snapshot");
    writeFileSync(snap, readFileSync(snap, "utf8").replace('"s/a"', '"s/b"'));
    await expect(FileDatastore.open({ dir })).rejects.toBeInstanceOf(DecodeError);
  });

  it("lets one process at a time open a directory; a stale lock is taken over", async () => {
    const dir = fresh();
    const a = await openStore(dir);
    const e = await FileDatastore.open({ dir }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).field).toBe("dir");
    expect((e as ConfigError).rule).toContain(`process ${process.pid}`);
    await a.put("k", "v");
    await a.close();
    expect(existsSync(join(dir, "LOCK"))).toBe(false);

    // A lock left by a process that has exited.
    const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    const deadPid = Number(child.stdout);
    expect(deadPid).toBeGreaterThan(0);
    writeFileSync(join(dir, "LOCK"), `${deadPid}\n`);
    const b = await openStore(dir);
    expect(readFileSync(join(dir, "LOCK"), "utf8")).toBe(`${process.pid}\n`);
    expect((await b.get("k"))?.value).toBe("v");
  });

  it.each([
    [
      "a file",
      (d: string) => {
        const f = join(d, "file");
        writeFileSync(f, "x");
        return f;
      },
    ],
    [
      "a path under a file",
      (d: string) => {
        const f = join(d, "file");
        writeFileSync(f, "x");
        return join(f, "sub");
      },
    ],
    ["an empty path", () => ""],
  ])("refuses %s as dir with ConfigError naming dir", async (_label, make) => {
    const e = await FileDatastore.open({ dir: make(fresh()) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).field).toBe("dir");
  });

  it("refuses bad options", async () => {
    const dir = fresh();
    await expect(FileDatastore.open({ dir, snapshotBytes: 0 })).rejects.toThrow(/snapshotBytes/);
    await expect(FileDatastore.open({ dir, historyLimit: -1 })).rejects.toThrow(/historyLimit/);
    // Neither failure left the lock behind.
    const s = await openStore(dir);
    expect(await s.revision()).toBe(0);
  });

  it("creates a missing directory", async () => {
    const dir = join(fresh(), "a", "b");
    const s = await openStore(dir);
    await s.put("k", "v");
    expect(statSync(dir).isDirectory()).toBe(true);
  });

  it("acknowledges concurrent writers in shared batches, all durable", async () => {
    const dir = fresh();
    const a = await openStore(dir);
    await Promise.all(Array.from({ length: 200 }, (_, i) => a.put(`c/${i}`, String(i))));
    const lines = readFileSync(a.logInfo.path, "utf8").trim().split("\n").length;
    expect(lines).toBeLessThan(200);
    await a.close();
    const b = await openStore(dir);
    expect((await b.list("c/")).items).toHaveLength(200);
    expect(await b.revision()).toBe(200);
  });

  it("never lets a reader see a write before it is durable", async () => {
    const dir = fresh();
    const a = await openStore(dir);
    const write = a.put("r/a", "1");
    let acked = false;
    void write.then(() => (acked = true));
    const seen = await a.get("r/a");
    // The read waited for the write's batch: by the time it answers, the write is acknowledged.
    expect(seen?.value).toBe("1");
    expect(acked).toBe(true);
  });
});
