// Shared pieces of the BIRD and GoBGP launchers (tests, benchmarks): finding the binaries (failing with the package
// to install when missing), temp dirs, free ports, child processes stopped by their own PID.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const execFileAsync = promisify(execFile);

const SEARCH = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"];

/** Absolute path of `binary`; throws an Error naming the Debian package to install when it is missing. */
export function requireBinary(binary: string, debianPackage: string): string {
  for (const dir of [...(process.env["PATH"] ?? "").split(":"), ...SEARCH]) {
    if (dir && existsSync(join(dir, binary))) return join(dir, binary);
  }
  throw new Error(`${binary} not found on PATH or in ${SEARCH.join(", ")}: install the Debian package ${debianPackage}, which provides it (apt-get install -y ${debianPackage})`);
}

/** A fresh temporary directory. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Removes a temporary directory (ignores errors). */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

/** Polls `check` every `intervalMs` until it returns true; throws with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000, intervalMs = 20): Promise<number> {
  const start = performance.now();
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return performance.now() - start;
    } catch (e) {
      lastError = e;
    }
    if (performance.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A child process we started; stopped only through its own PID. */
export class Daemon {
  readonly output: string[] = [];
  exited: number | null | undefined;
  private readonly exitPromise: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on("data", (d: Buffer) => this.output.push(d.toString()));
    child.stderr?.on("data", (d: Buffer) => this.output.push(d.toString()));
    this.exitPromise = new Promise((resolve) => {
      child.once("exit", (code) => {
        this.exited = code;
        resolve();
      });
    });
  }

  /** Starts `command` with `args` in `cwd`. */
  static spawn(name: string, command: string, args: string[], cwd: string): Daemon {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    return new Daemon(name, child);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.child.pid;
  }

  /** SIGSTOP: the process freezes, its sockets stay open. */
  freeze(): void {
    process.kill(this.pid, "SIGSTOP");
  }

  /** SIGCONT. */
  thaw(): void {
    process.kill(this.pid, "SIGCONT");
  }

  /** SIGKILL, then waits until it has exited. Idempotent. */
  async kill(): Promise<void> {
    if (this.exited !== undefined || this.child.pid === undefined) return;
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      return;
    }
    await this.exitPromise;
  }

  /** SIGTERM (after SIGCONT, in case it is frozen), then SIGKILL if it lingers. Idempotent. */
  async stop(): Promise<void> {
    if (this.exited !== undefined || this.child.pid === undefined) return;
    try {
      process.kill(this.pid, "SIGCONT");
      process.kill(this.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(this.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, 3000);
    await this.exitPromise;
    clearTimeout(timer);
  }
}
