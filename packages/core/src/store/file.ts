/**
 * `FileDatastore`: a single-node durable Datastore in one directory that survives `kill -9` (and,
 * with fsync on, power loss) at any moment with no lost acknowledged write and no torn state.
 *
 * Layout of the directory:
 *  - `LOCK`: the PID of the process that has the store open (created atomically with link(2);
 *    a lock whose PID is dead is taken over).
 *  - `wal-<gen>.log`: the write-ahead log. Every line is one batch of mutations (see `state.ts`),
 *    framed as `<crc32> <JSON array>\n` (`frames.ts`). Writes arriving while a batch is being
 *    written and fsync'd form the next batch (group commit), so concurrent writers share fsyncs.
 *    A promise resolves only after its batch is durable; watchers and readers see a write only
 *    then, too.
 *  - `snapshot`: the whole state at the start of `wal-<gen>.log`, written to `snapshot.tmp`,
 *    fsync'd, renamed, and the directory fsync'd. Taken when the log outgrows `snapshotBytes`
 *    (or the last snapshot), or on `checkpoint()`.
 *
 * Opening loads the snapshot, replays the log through the same state machine as
 * `MemoryDatastore`, and cuts off a torn tail (an unterminated or damaged last batch: it was never
 * acknowledged). A damaged batch FOLLOWED by good ones is real corruption and refuses to open.
 * Lease deadlines are stored as absolute times on the clock, so a reopened store expires leases
 * on time (at once for those that ran out while it was closed).
 *
 * If a log write or fsync fails, the store turns broken: every later call throws the `IoError`;
 * reopen the directory to continue from what is on disk.
 */

import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync, accessSync, constants as fsc } from "node:fs";
import { open, readFile, readdir, rename, unlink, type FileHandle } from "node:fs/promises";
import { join, resolve as resolvePath } from "node:path";
import type { WatchEvent } from "../datastore.ts";
import { ConfigError, DecodeError, IoError } from "../errors.ts";
import { StateDatastore, type StateDatastoreOptions } from "./base.ts";
import { frame, parseFrames } from "./frames.ts";
import type { Mutation, SnapshotKey, SnapshotLease } from "./state.ts";

export interface FileDatastoreOptions extends StateDatastoreOptions {
  /** The store's directory; created when missing. One process at a time may open it. */
  dir: string;
  /** fsync every batch before acknowledging it (default true). Off: survives kill -9, not power loss. */
  fsync?: boolean;
  /** Take a snapshot and start a new log once the log passes this many bytes (and the last snapshot's size). Default 64 MiB. */
  snapshotBytes?: number;
}

const LABEL = "[file-datastore]";
const SNAPSHOT = "snapshot";
const SNAPSHOT_TMP = "snapshot.tmp";
const LOCK = "LOCK";
const LOG_NAME = /^wal-(\d+)\.log$/;
const DEFAULT_SNAPSHOT_BYTES = 64 * 1024 * 1024;

interface Pending {
  json: string;
  events: WatchEvent[];
  resolve: () => void;
  reject: (e: unknown) => void;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

function errCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === "EPERM";
  }
}

export class FileDatastore extends StateDatastore {
  protected readonly label = LABEL;
  /** Absolute path of the store's directory. */
  readonly dir: string;
  private readonly fsync: boolean;
  private readonly snapshotBytes: number;
  private readonly lockPath: string;
  private fh: FileHandle | undefined;
  private gen = 0;
  private logBytes = 0;
  private lastSnapshotBytes = 0;
  private pending: Pending[] = [];
  private snapshotWaiters: Waiter[] = [];
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private applied = 0;
  private durable = 0;
  private lastPersist: Promise<void> = Promise.resolve();
  private broken: IoError | undefined;

  private constructor(dir: string, options: FileDatastoreOptions, lockPath: string) {
    super(options);
    this.dir = dir;
    this.fsync = options.fsync ?? true;
    this.snapshotBytes = options.snapshotBytes ?? DEFAULT_SNAPSHOT_BYTES;
    this.lockPath = lockPath;
  }

  /**
   * Opens (creating when needed) the store in `options.dir`, replaying its log. Throws
   * `ConfigError` naming `dir` when it is not a writable directory or another live process has it
   * open (naming that PID), `ConfigError` for other bad options, `DecodeError` when the snapshot or
   * the middle of the log is damaged, `IoError` for other I/O failures. Nothing is changed on
   * failure except cutting a torn log tail.
   */
  static async open(options: FileDatastoreOptions): Promise<FileDatastore> {
    if (typeof options?.dir !== "string" || options.dir.length === 0) {
      throw new ConfigError({ field: "dir", rule: "must be a non-empty path", value: options?.dir });
    }
    if (options.fsync !== undefined && typeof options.fsync !== "boolean") {
      throw new ConfigError({ field: "fsync", rule: "must be a boolean", value: options.fsync });
    }
    if (options.snapshotBytes !== undefined && (!Number.isSafeInteger(options.snapshotBytes) || options.snapshotBytes < 1)) {
      throw new ConfigError({ field: "snapshotBytes", rule: "must be an integer >= 1", value: options.snapshotBytes });
    }
    const dir = resolvePath(options.dir);
    prepareDir(dir);
    const lockPath = acquireLock(dir);
    let store: FileDatastore | undefined;
    try {
      store = new FileDatastore(dir, options, lockPath);
      await store.load();
      return store;
    } catch (e) {
      await store?.fh?.close().catch(() => undefined);
      releaseLock(lockPath);
      throw e;
    }
  }

  /** Number of keys held. */
  get size(): number {
    return this.state.size;
  }

  /** Current log generation and size, for tests and tooling. */
  get logInfo(): { generation: number; bytes: number; path: string } {
    return { generation: this.gen, bytes: this.logBytes, path: this.logPath(this.gen) };
  }

  private logPath(gen: number): string {
    return join(this.dir, `wal-${gen}.log`);
  }

  // ---- opening ----

  private async load(): Promise<void> {
    const snapPath = join(this.dir, SNAPSHOT);
    let snap: Buffer | undefined;
    try {
      snap = await readFile(snapPath);
    } catch (e) {
      if (errCode(e) !== "ENOENT") throw new IoError(`${LABEL} ${snapPath}: cannot read the snapshot`, { cause: e });
    }
    if (snap) {
      this.gen = this.loadSnapshot(snapPath, snap);
      this.lastSnapshotBytes = snap.length;
    }
    this.hub.reset(this.state.revision);

    // Leftovers of an interrupted snapshot: a temp file, logs of other generations.
    for (const name of await readdir(this.dir)) {
      const m = LOG_NAME.exec(name);
      if (name === SNAPSHOT_TMP || (m && Number(m[1]) !== this.gen)) await unlink(join(this.dir, name)).catch(() => undefined);
    }

    const logPath = this.logPath(this.gen);
    let log: Buffer | undefined;
    try {
      log = await readFile(logPath);
    } catch (e) {
      if (errCode(e) !== "ENOENT") throw new IoError(`${LABEL} ${logPath}: cannot read the log`, { cause: e });
    }
    if (log) {
      const parsed = parseFrames(log);
      if (parsed.badAt !== undefined && parsed.goodAfterBad) {
        throw new DecodeError(`${LABEL} ${logPath}: damaged record at byte ${parsed.badAt} with good records after it; the log is corrupt (not just torn): restore the directory from a backup`);
      }
      for (const batch of parsed.records) {
        if (!Array.isArray(batch)) throw new DecodeError(`${LABEL} ${logPath}: a log line is not a batch of mutations`);
        for (const m of batch) {
          try {
            this.hub.publish(this.state.apply(m as Mutation));
          } catch (e) {
            throw new DecodeError(`${LABEL} ${logPath}: cannot replay the log: ${(e as Error).message}`, { cause: e });
          }
        }
      }
      if (parsed.badAt !== undefined) {
        // A torn tail: the batch was never acknowledged. Cut it off so new batches follow good ones.
        const h = await open(logPath, "r+");
        try {
          await h.truncate(parsed.goodBytes);
          await h.sync();
        } finally {
          await h.close();
        }
      }
      this.logBytes = parsed.goodBytes;
    }
    this.fh = await open(logPath, "a");
    if (!log && this.fsync) await fsyncDir(this.dir);
    this.armAllLeases();
  }

  private loadSnapshot(path: string, buf: Buffer): number {
    const bad = (why: string): DecodeError => new DecodeError(`${LABEL} ${path}: the snapshot is damaged (${why}); restore the directory from a backup`);
    const parsed = parseFrames(buf);
    if (parsed.badAt !== undefined) throw bad(`bad record at byte ${parsed.badAt}`);
    const recs = parsed.records;
    const header = recs[0] as { snapshot?: unknown; gen?: unknown; revision?: unknown; nextLease?: unknown; keys?: unknown; leases?: unknown } | undefined;
    if (
      !header ||
      header.snapshot !== 1 ||
      !Number.isSafeInteger(header.gen) ||
      !Number.isSafeInteger(header.revision) ||
      !Number.isSafeInteger(header.nextLease) ||
      !Number.isSafeInteger(header.keys) ||
      !Number.isSafeInteger(header.leases)
    ) {
      throw bad("bad header");
    }
    const nLeases = header.leases as number;
    const nKeys = header.keys as number;
    if (recs.length !== 2 + nLeases + nKeys || (recs[recs.length - 1] as { end?: unknown }).end !== true) throw bad("record count or trailer");
    for (let i = 1; i <= nLeases; i++) this.state.restoreLease(recs[i] as SnapshotLease);
    for (let i = 1 + nLeases; i < 1 + nLeases + nKeys; i++) {
      if (!this.state.restoreKey(recs[i] as SnapshotKey)) throw bad(`key ${JSON.stringify((recs[i] as SnapshotKey).k)} names an unknown lease`);
    }
    this.state.revision = header.revision as number;
    this.state.nextLease = header.nextLease as number;
    return header.gen as number;
  }

  // ---- writing ----

  protected override brokenError(): Error | undefined {
    return this.broken;
  }

  protected persist(m: Mutation, events: WatchEvent[]): Promise<void> {
    this.applied++;
    const p = new Promise<void>((resolve, reject) => {
      this.pending.push({ json: JSON.stringify(m), events, resolve, reject });
    });
    this.lastPersist = p;
    this.kick();
    return p;
  }

  protected readBarrier(): Promise<void> | void {
    if (this.durable < this.applied) return this.lastPersist;
  }

  /**
   * Writes a snapshot of the whole state now and starts a new log (normally this happens on its
   * own when the log grows). Concurrent writes keep going into the next log. Throws `IoError` when
   * writing fails (the store is then broken), `ClosedError`, `TryAgainError`.
   */
  async checkpoint(): Promise<void> {
    this.checkUsable();
    const done = new Promise<void>((resolve, reject) => this.snapshotWaiters.push({ resolve, reject }));
    this.kick();
    await done;
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.flushLoop();
  }

  /** Writes batches until nothing is pending; the exit check and `running = false` happen together. */
  private async flushLoop(): Promise<void> {
    for (;;) {
      if (this.pending.length === 0 && this.snapshotWaiters.length === 0) {
        this.running = false;
        return;
      }
      const batch = this.pending;
      this.pending = [];
      const waiters = this.snapshotWaiters;
      this.snapshotWaiters = [];
      try {
        if (waiters.length > 0 || this.logBytes >= Math.max(this.snapshotBytes, this.lastSnapshotBytes)) {
          await this.writeSnapshot();
        } else {
          await this.writeBatch(batch);
        }
      } catch (e) {
        this.broken = new IoError(`${LABEL} ${this.dir}: writing the log failed (${(e as Error).message}); the store is unusable now: reopen the directory`, { cause: e });
        for (const p of [...batch, ...this.pending]) p.reject(this.broken);
        for (const w of [...waiters, ...this.snapshotWaiters]) w.reject(this.broken);
        this.pending = [];
        this.snapshotWaiters = [];
        this.running = false;
        return;
      }
      this.durable += batch.length;
      for (const p of batch) this.hub.publish(p.events);
      for (const p of batch) p.resolve();
      for (const w of waiters) w.resolve();
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    let json = "[";
    for (let i = 0; i < batch.length; i++) json += (i === 0 ? "" : ",") + batch[i]!.json;
    json += "]";
    const buf = Buffer.from(frame(json), "utf8");
    await writeAll(this.fh!, buf);
    if (this.fsync) await this.fh!.datasync();
    this.logBytes += buf.length;
  }

  /**
   * Snapshot of the state as applied so far — which includes the batch being flushed, so that
   * batch becomes durable with the snapshot and never enters a log.
   */
  private async writeSnapshot(): Promise<void> {
    const gen = this.gen + 1;
    const chunks = this.serializeSnapshot(gen);
    const tmp = join(this.dir, SNAPSHOT_TMP);
    let size = 0;
    const h = await open(tmp, "w");
    try {
      for (const c of chunks) {
        await writeAll(h, c);
        size += c.length;
      }
      if (this.fsync) await h.sync();
    } finally {
      await h.close();
    }
    const oldPath = this.logPath(this.gen);
    const next = await open(this.logPath(gen), "w");
    try {
      await rename(tmp, join(this.dir, SNAPSHOT));
      if (this.fsync) await fsyncDir(this.dir);
    } catch (e) {
      await next.close().catch(() => undefined);
      throw e;
    }
    const old = this.fh!;
    this.fh = next;
    this.gen = gen;
    this.logBytes = 0;
    this.lastSnapshotBytes = size;
    await old.close().catch(() => undefined);
    await unlink(oldPath).catch(() => undefined);
  }

  private serializeSnapshot(gen: number): Buffer[] {
    const out: Buffer[] = [];
    let parts: string[] = [];
    let size = 0;
    const push = (line: string): void => {
      parts.push(line);
      size += line.length;
      if (size >= 1 << 20) {
        out.push(Buffer.from(parts.join(""), "utf8"));
        parts = [];
        size = 0;
      }
    };
    const leases = this.state.dumpLeases();
    push(
      frame(
        JSON.stringify({
          snapshot: 1,
          gen,
          revision: this.state.revision,
          nextLease: this.state.nextLease,
          keys: this.state.size,
          leases: leases.length,
        }),
      ),
    );
    for (const l of leases) push(frame(JSON.stringify(l)));
    for (const k of this.state.dumpKeys()) push(frame(JSON.stringify(k)));
    push(frame(JSON.stringify({ end: true })));
    if (parts.length > 0) out.push(Buffer.from(parts.join(""), "utf8"));
    return out;
  }

  protected async closeResources(): Promise<void> {
    while (this.running) await this.loopDone;
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    releaseLock(this.lockPath);
  }
}

async function writeAll(h: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await h.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, "r");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function prepareDir(dir: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
    if (!isDir) throw new ConfigError({ field: "dir", rule: "must be a directory (a file is in the way)", value: dir });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (errCode(e) !== "ENOENT") throw new ConfigError({ field: "dir", rule: `must be a readable directory (${errCode(e) ?? String(e)})`, value: dir, cause: e });
  }
  if (!isDir) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new ConfigError({ field: "dir", rule: `must be a directory that can be created (${errCode(e) ?? String(e)})`, value: dir, cause: e });
    }
  }
  try {
    accessSync(dir, fsc.R_OK | fsc.W_OK | fsc.X_OK);
  } catch (e) {
    throw new ConfigError({ field: "dir", rule: "must be writable", value: dir, cause: e });
  }
}

/**
 * Takes the directory's lock: a temp file holding our PID is hard-linked to `LOCK`, which fails
 * atomically when `LOCK` exists, so `LOCK` is never seen half-written. A `LOCK` whose PID is not
 * running is stale and is removed. (Two processes taking over the same stale lock at the same
 * instant could both remove it; each then links its own, and only one link succeeds.)
 */
function acquireLock(dir: string): string {
  const lockPath = join(dir, LOCK);
  const tmp = join(dir, `${LOCK}.${process.pid}.${randomBytes(4).toString("hex")}`);
  try {
    writeFileSync(tmp, `${process.pid}\n`);
  } catch (e) {
    throw new ConfigError({ field: "dir", rule: `must be writable (${errCode(e) ?? String(e)})`, value: dir, cause: e });
  }
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, lockPath);
        return lockPath;
      } catch (e) {
        if (errCode(e) !== "EEXIST") throw new ConfigError({ field: "dir", rule: `must allow creating the lock file (${errCode(e) ?? String(e)})`, value: dir, cause: e });
      }
      let holder = Number.NaN;
      try {
        holder = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
      } catch (e) {
        if (errCode(e) === "ENOENT") continue;
        throw new ConfigError({ field: "dir", rule: `must allow reading the lock file (${errCode(e) ?? String(e)})`, value: dir, cause: e });
      }
      if (Number.isSafeInteger(holder) && holder > 0 && isAlive(holder)) {
        throw new ConfigError({
          field: "dir",
          rule: `is in use by process ${holder} (lock file ${lockPath}); only one process at a time may open a store directory (if that PID is not a cnikit store, remove the lock file)`,
          value: dir,
        });
      }
      try {
        unlinkSync(lockPath);
      } catch (e) {
        if (errCode(e) !== "ENOENT") throw new ConfigError({ field: "dir", rule: `must allow removing a stale lock file (${errCode(e) ?? String(e)})`, value: dir, cause: e });
      }
    }
    throw new ConfigError({ field: "dir", rule: "could not take the lock file LOCK (it kept reappearing)", value: dir });
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

function releaseLock(lockPath: string): void {
  try {
    if (Number.parseInt(readFileSync(lockPath, "utf8"), 10) === process.pid) unlinkSync(lockPath);
  } catch {
    // nothing to release
  }
}
