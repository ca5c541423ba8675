/**
 * The runtime's two locks (DESIGN.md checklist item 47: no GC during ADD/DEL, no parallel operations on one
 * container): a mutex per container id, and a shared/exclusive gate that every container operation
 * holds shared and GC holds exclusively. Container operations take their container's mutex first,
 * then the gate; GC takes only the gate, so there is no lock-order cycle. A waiting GC is served
 * before operations that arrive after it, so a steady stream of ADDs cannot starve it.
 *
 * Across processes (`FileLocks`): two runtimes sharing a cache directory — two plugin-calling
 * processes, as two container runtimes on one host are — hold a lock file per container id under
 * `<cacheDir>/locks/` around every ADD, DEL and CHECK (and GC's DEL of each stale attachment), so
 * they cannot interleave an ADD and a DEL of one attachment (the result cache and the plugins'
 * reservations would disagree). The lock file names its owner: pid, the process's start time and
 * the boot id (from /proc), so a lock left by a process that died — kill -9, a crash, a reboot — is
 * recognised (the pid is gone or now belongs to another process) and taken over, never waited on.
 * Taking over is itself serialized by a second file (`<name>.takeover`), so two waiters cannot both
 * remove the dead owner's lock and one of them a fresh one. Order: container mutex, gate, file lock;
 * GC: gate, then one file lock at a time — no process holds two file locks, so there is no cycle.
 */
import { link, mkdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ConfigError, IoError, TryAgainError } from "@cnikit/core";

/** FIFO mutual exclusion per key. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier `run` with the same key has settled; other keys run in parallel. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** How many keys have an operation running or queued (for tests and diagnostics). */
  get busyKeys(): number {
    return this.tails.size;
  }
}

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

/** Many shared holders or one exclusive holder; FIFO, so a queued exclusive blocks later shared ones. */
export class SharedExclusiveGate {
  private shared = 0;
  private exclusive = false;
  private readonly queue: Waiter[] = [];

  /** Runs `fn` while holding the gate shared. */
  async withShared<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await fn();
    } finally {
      this.shared--;
      this.drain();
    }
  }

  /** Runs `fn` while holding the gate exclusively (no shared holder runs meanwhile). */
  async withExclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await fn();
    } finally {
      this.exclusive = false;
      this.drain();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.grantable(exclusive)) {
      this.take(exclusive);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.queue.push({ exclusive, grant: resolve }));
  }

  private grantable(exclusive: boolean): boolean {
    return exclusive ? !this.exclusive && this.shared === 0 : !this.exclusive;
  }

  private take(exclusive: boolean): void {
    if (exclusive) this.exclusive = true;
    else this.shared++;
  }

  private drain(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (!this.grantable(head.exclusive)) return;
      this.queue.shift();
      this.take(head.exclusive);
      head.grant();
      if (head.exclusive) return;
    }
  }
}

/** Who holds a lock file: enough to tell whether that process still runs. */
export interface LockOwner {
  pid: number;
  /** The process's start time (clock ticks since boot, /proc/<pid>/stat field 22); "" when unknown. */
  start: string;
  /** /proc/sys/kernel/random/boot_id; "" when unknown. */
  boot: string;
  /** The pid namespace (`readlink /proc/self/ns/pid`); "" when unknown. */
  pidns: string;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

/** Field 22 (starttime) of /proc/<pid>/stat, or "" when the process does not exist or /proc is absent. */
function processStart(pid: number): string {
  const stat = readText(`/proc/${pid}/stat`);
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
  const tail = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return stat === "" ? "" : (tail[19] ?? "");
}

let self: LockOwner | undefined;

/** This process as a lock owner. */
export function currentLockOwner(): LockOwner {
  let pidns = "";
  try {
    pidns = readlinkSync("/proc/self/ns/pid");
  } catch {
    // No /proc: pids are compared as they are.
  }
  self ??= { pid: process.pid, start: processStart(process.pid), boot: readText("/proc/sys/kernel/random/boot_id"), pidns };
  return self;
}

/**
 * Whether `owner` still runs: on another boot it does not; in another pid namespace we cannot tell
 * (undefined: the caller decides by age); with /proc, the pid must exist with the same start time
 * (a reused pid is another process); without /proc, `kill(pid, 0)` decides.
 */
export function lockOwnerAlive(owner: LockOwner): boolean | undefined {
  const me = currentLockOwner();
  if (owner.boot !== "" && me.boot !== "" && owner.boot !== me.boot) return false;
  if (owner.pidns !== "" && me.pidns !== "" && owner.pidns !== me.pidns) return undefined;
  if (me.start !== "" && owner.start !== "") return processStart(owner.pid) === owner.start;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== "object" || v === null) return undefined;
    const o = v as Record<string, unknown>;
    if (typeof o["pid"] !== "number" || !Number.isInteger(o["pid"]) || o["pid"] <= 0) return undefined;
    const str = (k: string): string => (typeof o[k] === "string" ? o[k] : "");
    return { pid: o["pid"], start: str("start"), boot: str("boot"), pidns: str("pidns") };
  } catch {
    return undefined;
  }
}

/** Options of `FileLocks`. */
export interface FileLocksOptions {
  /** Give up waiting for a live holder after this long (ms): `TryAgainError` (11). Default 120 000. */
  timeoutMs?: number;
  /** First wait between attempts (ms), doubled up to `maxPollMs`. Default 5. */
  pollMs?: number;
  maxPollMs?: number;
  /**
   * A lock file that is not an owner record (a foreign or truncated file) counts as stale once it
   * is older than this (ms). Default 10 000.
   */
  unreadableStaleMs?: number;
  /**
   * A lock held from another pid namespace (whose pids this process cannot check) counts as stale
   * once it is older than this (ms). Default 600 000 (ten times a plugin's default timeout).
   */
  foreignStaleMs?: number;
}

const LOCK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Exclusive locks across processes, one lock file per name in `dir` (see the module comment).
 * Each lock file is made whole by `link(2)` of a file already holding the owner record, so it is
 * never seen half-written; a holder removes it when done.
 */
export class FileLocks {
  readonly dir: string;
  private readonly timeoutMs: number;
  private readonly pollMs: number;
  private readonly maxPollMs: number;
  private readonly unreadableStaleMs: number;
  private readonly foreignStaleMs: number;

  constructor(dir: string, options: FileLocksOptions = {}) {
    this.dir = dir;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.pollMs = options.pollMs ?? 5;
    this.maxPollMs = options.maxPollMs ?? 100;
    this.unreadableStaleMs = options.unreadableStaleMs ?? 10_000;
    this.foreignStaleMs = options.foreignStaleMs ?? 600_000;
  }

  /** The lock file of `name`. */
  path(name: string): string {
    return join(this.dir, `${name}.lock`);
  }

  /**
   * Runs `fn` holding the lock `name` (a container id: `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`, else
   * `ConfigError` 7). Waits while a live process holds it; takes over a dead one's. Throws
   * `TryAgainError` (11) naming the holder after `timeoutMs`, `IoError` (5) when the directory
   * cannot be written.
   */
  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (!LOCK_NAME.test(name)) throw new ConfigError({ component: "cni-runtime", field: "lock name", rule: "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", value: name });
    const file = this.path(name);
    await this.acquire(file);
    try {
      return await fn();
    } finally {
      await rm(file, { force: true });
    }
  }

  /** Who holds `name` now (undefined: nobody, or a file that is not an owner record). */
  async holder(name: string): Promise<LockOwner | undefined> {
    return parseOwner(await readFile(this.path(name), "utf8").catch(() => ""));
  }

  private async acquire(file: string): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    let wait = this.pollMs;
    let holder: LockOwner | undefined;
    for (;;) {
      if (await this.tryLink(file)) return;
      const seen = await this.inspect(file);
      if (seen === "gone") continue;
      if (seen.stale) {
        if (await this.takeOver(file, seen.text)) continue;
      } else {
        holder = seen.owner;
      }
      if (Date.now() >= deadline) {
        const who = holder ? `process ${holder.pid}` : "another process";
        throw new TryAgainError(`[cni-runtime] ${file} is still held by ${who} after ${this.timeoutMs} ms: another runtime is working on this container; try again`, { details: file });
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, this.maxPollMs);
    }
  }

  /** Creates `file` holding our owner record, atomically; false when it exists. */
  private async tryLink(file: string): Promise<boolean> {
    // The staging file's name must be unique to this one attempt: two FileLocks in one process
    // (two runtimes, or a runtime and a daemon) once shared a per-instance counter's value, so one
    // overwrote the other's staging file and, having linked and removed it, left the other's link(2)
    // failing with ENOENT. Random bytes also keep apart runtimes in other pid namespaces that share
    // the directory and happen to have the same pid.
    const tmp = `${file}.${process.pid}.${randomBytes(8).toString("hex")}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, `${JSON.stringify(currentLockOwner())}\n`, { mode: 0o600 });
      await link(tmp, file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw new IoError(`[cni-runtime] could not take the lock ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** What holds `file`: gone, or its text, owner and whether that owner is dead. */
  private async inspect(file: string): Promise<"gone" | { text: string; owner: LockOwner | undefined; stale: boolean }> {
    let text: string;
    let mtimeMs: number;
    try {
      [text, mtimeMs] = await Promise.all([readFile(file, "utf8"), stat(file).then((s) => s.mtimeMs)]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return "gone";
      throw new IoError(`[cni-runtime] could not read the lock ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const owner = parseOwner(text);
    const age = Date.now() - mtimeMs;
    const alive = owner ? lockOwnerAlive(owner) : undefined;
    const stale = owner === undefined ? age > this.unreadableStaleMs : alive === undefined ? age > this.foreignStaleMs : !alive;
    return { text, owner, stale };
  }

  /**
   * Removes `file` if it still holds `deadText`, under the takeover guard. True when the caller
   * should try again at once (removed, or gone meanwhile); false when another process is taking
   * over right now (the caller waits).
   */
  private async takeOver(file: string, deadText: string): Promise<boolean> {
    const guard = `${file}.takeover`;
    if (!(await this.tryLink(guard))) {
      const seen = await this.inspect(guard);
      // A guard whose owner died mid-takeover is removed; the next round tries again.
      if (seen !== "gone" && seen.stale) await unlink(guard).catch(() => undefined);
      return seen === "gone";
    }
    try {
      const now = await readFile(file, "utf8").catch(() => undefined);
      if (now === deadText) await unlink(file).catch(() => undefined);
      return true;
    } finally {
      await rm(guard, { force: true });
    }
  }
}
