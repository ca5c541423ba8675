/**
 * The lab's contact with the system beyond @cnikit/linux's netns utilities: running commands,
 * detached processes and their PIDs. Every namespace is addressed by name (`ip netns exec <ns>`),
 * so nothing here ever changes the host's own namespace. Processes are signalled only by a PID the
 * lab recorded, and only after /proc/<pid>/cmdline shows the marker the lab gave them (a path
 * inside the lab's state directory).
 */
import { spawn } from "node:child_process";
import { accessSync, closeSync, constants, openSync, readFileSync, readdirSync } from "node:fs";
import { pidAlive } from "@cnikit/core";
import { delimiter, join } from "node:path";

/** Output of a finished command. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command asynchronously (stdin from `input`); resolves with its output, never rejects. */
export function runAsync(argv: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], ...(options.env !== undefined ? { env: options.env } : {}) });
    let stdout = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (e) => resolve({ code: null, stdout, stderr: stderr + e.message }));
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        stderr += `\n(killed after ${options.timeoutMs} ms)`;
        child.kill("SIGKILL");
      }, options.timeoutMs);
    }
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");
  });
}

/** `argv` prefixed to run inside namespace `ns`. */
export function inNs(ns: string, argv: readonly string[]): string[] {
  return ["ip", "netns", "exec", ns, ...argv];
}

/**
 * Starts `argv` inside `ns` as a detached process (own session, stdout and stderr appended to
 * `logPath`, stdin closed) that outlives the lab's own process, and returns its PID: `ip netns
 * exec` execs the command, so the PID is the command's own.
 */
export function spawnDetached(options: { ns: string; argv: readonly string[]; logPath: string; env?: NodeJS.ProcessEnv }): number {
  const fd = openSync(options.logPath, "a");
  try {
    const child = spawn("ip", ["netns", "exec", options.ns, ...options.argv], {
      detached: true,
      stdio: ["ignore", fd, fd],
      ...(options.env !== undefined ? { env: options.env } : {}),
    });
    child.on("error", () => {});
    child.unref();
    if (child.pid === undefined) throw new Error(`[lab] could not start ${options.argv.join(" ")} in ${options.ns}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** The command line of `pid` (arguments), or undefined when no such process (or a zombie). */
export function cmdlineOf(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (raw === "") return undefined;
    const args = raw.split("\0");
    if (args[args.length - 1] === "") args.pop();
    return args;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` exists and is not a zombie: core's, re-exported for the lab's callers. */
export { pidAlive };

/** Whether process `pid` runs and its command line contains `marker` as one argument. */
export function processMatches(pid: number, marker: string): boolean {
  return cmdlineOf(pid)?.includes(marker) ?? false;
}

/** PIDs of running processes whose command line contains `marker` as one argument. */
export function findProcessesByMarker(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid !== process.pid && processMatches(pid, marker)) out.push(pid);
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Sends `signal` to each recorded PID whose command line still shows its marker, waits up to
 * `graceMs` for them to exit, then SIGKILLs the rest (markers checked again). Returns the PIDs
 * that were signalled. Idempotent: gone or reused PIDs are left alone.
 */
export async function stopProcesses(targets: readonly { pid: number; marker: string }[], options: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<number[]> {
  const live = targets.filter((t) => processMatches(t.pid, t.marker));
  for (const t of live) {
    try {
      process.kill(t.pid, options.signal ?? "SIGTERM");
    } catch {
      // exited meanwhile
    }
  }
  const deadline = Date.now() + (options.graceMs ?? 3000);
  while (Date.now() < deadline && live.some((t) => processMatches(t.pid, t.marker))) await sleep(25);
  for (const t of live) {
    if (!processMatches(t.pid, t.marker)) continue;
    try {
      process.kill(t.pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  const hard = Date.now() + 5000;
  while (Date.now() < hard && live.some((t) => processMatches(t.pid, t.marker))) await sleep(25);
  // The command line empties as the process starts exiting, a moment before it is gone (or a
  // zombie): wait that moment out too, briefly, so "stopped" means stopped. A PID reused meanwhile
  // by someone else only costs the 2 s bound.
  const exit = Date.now() + 2000;
  while (Date.now() < exit && live.some((t) => pidAlive(t.pid) && cmdlineOf(t.pid) === undefined)) await sleep(10);
  return live.map((t) => t.pid);
}

/** Whether `bin` is an executable on PATH (or an absolute path). */
export function onPath(bin: string): boolean {
  const dirs = bin.includes("/") ? [""] : [...(process.env["PATH"] ?? "").split(delimiter).filter(Boolean), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  return dirs.some((d) => {
    try {
      accessSync(d === "" ? bin : join(d, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
