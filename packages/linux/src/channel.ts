/**
 * `IpChannel`: one long-lived `ip -force -batch -` per namespace, so a change costs a write to a
 * pipe instead of a process. Requests are pipelined: each is written as soon as it is asked for
 * (one after the other, never interleaved) and answered in order.
 *
 * Completion marker: after a request's lines the channel writes one line that always fails
 * (`link show dev <name that cannot exist>`); iproute2 answers it on stderr with `Command failed
 * -:<n>`, and since stderr is unbuffered and `ip` runs lines in order, that line says every line
 * before it ran, and every `Command failed -:<m>` before it (with the message lines above it)
 * belongs to the lines of the requests it ended. Line numbers count from the child's start.
 *
 * A child that dies (iproute2 exits on an argument it cannot parse; a kill from outside) fails the
 * request it was running (with what it printed) and the requests queued behind it are written again
 * to a new child: they had not started. A request that gets no marker within `timeoutMs` kills the
 * child (by its PID) and fails. `close()` ends stdin and stops the child by its PID.
 *
 * `PodSideChannel` has the same life for the netlink helper (native/cnikit-nl.c), which sets up the
 * container side of new pods in their own namespaces (it enters each with setns): the node's
 * namespace and every pod's are served by two long-lived processes, none spawned per ADD.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { fileURLToPath } from "node:url";
import { CniCode, CniError, ClosedError, compileHelper } from "@cnikit/core";
import { CommandError, MissingToolError, ipArgv, type BatchFailure, type BatchResult, type NetnsRef, type SpawnCounter } from "./exec.ts";

/** Options of `IpChannel`. */
export interface IpChannelOptions {
  /** Namespace the child runs in (same rules as `ipArgv`). */
  netns?: NetnsRef;
  /** How long one request may wait for its completion marker before the child is killed (+10 ms per line). Default 30000 ms. */
  timeoutMs?: number;
  /** Counts each child started. */
  counter?: SpawnCounter;
}

/** A device name `ip` accepts (≤ 15 bytes) and nobody uses: the completion marker's target. */
const MARKER_DEV = "ck~chan~marker";
const MARKER_LINE = `link show dev ${MARKER_DEV}`;
/** A line failed on a device that is not there (as `ip` resolved its name). */
const NO_DEVICE_RE = /No such device|Cannot find device/;

interface Request {
  lines: readonly string[];
  /** Namespace path the request runs in (the netlink helper's `ns` line). */
  ns?: string;
  /** Line number (1-based, in the child's life) of the request's first line; 0 until written. */
  first: number;
  failures: BatchFailure[];
  resolve: (r: BatchResult) => void;
  reject: (e: unknown) => void;
  timer?: ReturnType<typeof setTimeout>;
}

interface Child {
  proc: ChildProcess;
  /** Lines written to this child so far. */
  written: number;
  /** Requests written to this child, oldest first, not answered yet. */
  inflight: Request[];
  /** Unterminated tail of the answer stream. */
  partial: string;
  /** Message lines since the last answer. */
  pending: string[];
  dead: boolean;
  /** A line failed because a device was not found: `ip`'s name cache may be stale (see `recycle`). */
  stale?: boolean;
}

/**
 * A long-lived child that answers line requests in order: the lifecycle (start on first use,
 * pipelined writes, per-request timeout, a dead child's head request failed and the rest written
 * again to a new child, close by PID). Subclasses say how to start it, frame a request and read
 * its answers.
 */
abstract class LineChannel {
  private child: Child | undefined;
  /** Recycled children still finishing their requests (stopped by `close()` too). */
  private readonly retired = new Set<Child>();
  private closed = false;
  private started = 0;
  protected abstract readonly label: string;

  constructor(
    private readonly timeoutMs: number,
    private readonly counter: SpawnCounter | undefined,
  ) {}

  /** PID of the running child, if one runs. */
  get pid(): number | undefined {
    return this.child && !this.child.dead ? this.child.proc.pid : undefined;
  }

  /** Children started so far (1 + restarts). */
  get starts(): number {
    return this.started;
  }

  protected abstract argv(): string[];
  /** The child's answers come on this stream (the other one is ignored). */
  protected abstract readonly answers: "stdout" | "stderr";
  /** The text written for `req` (starting at line `req.first` of the child's life). */
  protected abstract frame(req: Request): string;
  /** Lines `frame` writes per request beyond its own lines. */
  protected abstract readonly extraLines: number;
  /** Handles one line of the answer stream: `answer(c)` when the head request is done. */
  protected abstract onLine(c: Child, line: string): void;
  /** The netns a request ran in, for errors. */
  protected abstract where(req: Request): NetnsRef;

  protected submit(lines: readonly string[], ns?: string, counter?: SpawnCounter): Promise<BatchResult> {
    if (this.closed) return Promise.reject(new ClosedError(`[linux] the ${this.label} is closed`));
    for (const l of lines) {
      if (l.includes("\n") || l.trimEnd().endsWith("\\"))
        return Promise.reject(new CniError(CniCode.Internal, `[linux] ${this.label}: a line contains a newline or ends with '\\': ${JSON.stringify(l)}`));
    }
    if (lines.length === 0) return Promise.resolve({ stdout: "", failures: [] });
    return new Promise<BatchResult>((resolve, reject) => {
      const req: Request = { lines, first: 0, failures: [], resolve, reject, ...(ns !== undefined ? { ns } : {}) };
      try {
        this.write(req, counter);
      } catch (err) {
        reject(err);
      }
    });
  }

  /**
   * The next request goes to a new child; the current one finishes what it was given and exits.
   * (`ip` caches interface names → indexes for its whole life: after links changed behind its back
   * a fresh process looks them up again.)
   */
  recycle(): void {
    const c = this.child;
    if (!c || c.dead) return;
    this.child = undefined;
    this.retired.add(c);
    c.proc.stdin?.end();
  }

  /** Ends the child's input and stops it by its PID (SIGKILL after 2 s). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const c = this.child;
    this.child = undefined;
    await Promise.all([...this.retired].map((r) => this.stop(r)));
    if (!c || c.dead) return;
    await this.stop(c);
  }

  private async stop(c: Child): Promise<void> {
    if (c.dead) return;
    const exited = new Promise<void>((r) => c.proc.once("close", () => r()));
    c.proc.stdin?.end();
    const timer = setTimeout(() => {
      if (!c.dead && c.proc.pid !== undefined) process.kill(c.proc.pid, "SIGKILL");
    }, 2000);
    await exited;
    clearTimeout(timer);
  }

  private spawnChild(counter?: SpawnCounter): Child {
    const argv = this.argv();
    const stdio: ["pipe", "pipe" | "ignore", "pipe" | "ignore"] = this.answers === "stdout" ? ["pipe", "pipe", "ignore"] : ["pipe", "ignore", "pipe"];
    const proc = spawn(argv[0]!, argv.slice(1), { stdio });
    this.started++;
    if (this.counter) this.counter.spawned++;
    if (counter) counter.spawned++;
    const c: Child = { proc, written: 0, inflight: [], partial: "", pending: [], dead: false };
    const out = this.answers === "stdout" ? proc.stdout! : proc.stderr!;
    // An idle channel does not keep the process alive (a request in flight does: its timer); when
    // this process exits, the child reads EOF and exits too.
    proc.unref();
    (proc.stdin as unknown as { unref?: () => void }).unref?.();
    (out as unknown as { unref?: () => void }).unref?.();
    out.setEncoding("utf8");
    out.on("data", (s: string) => {
      const parts = (c.partial + s).split("\n");
      c.partial = parts.pop()!;
      for (const line of parts) this.onLine(c, line);
    });
    proc.stdin!.on("error", () => {
      // the child is gone; its close event fails or re-sends what it held
    });
    proc.once("error", (e: NodeJS.ErrnoException) => this.onDeath(c, e.code === "ENOENT" ? new MissingToolError(argv[0]!) : e));
    proc.once("close", (code, signal) => this.onDeath(c, undefined, code, signal));
    return c;
  }

  private write(req: Request, counter?: SpawnCounter): void {
    if (!this.child || this.child.dead) this.child = this.spawnChild(counter);
    const c = this.child;
    req.first = c.written + 1;
    c.written += req.lines.length + this.extraLines;
    c.inflight.push(req);
    // A big batch (a node's first apply: thousands of routes) gets 10 ms more per line.
    const timeout = this.timeoutMs + 10 * req.lines.length;
    req.timer = setTimeout(() => this.onTimeout(c, req, timeout), timeout);
    c.proc.stdin!.write(this.frame(req));
  }

  /** The head request of `c` is answered. */
  protected answer(c: Child): void {
    const head = c.inflight.shift();
    if (!head) return;
    clearTimeout(head.timer);
    head.resolve({ stdout: "", failures: head.failures });
  }

  private onTimeout(c: Child, req: Request, timeout: number): void {
    if (c.dead || !c.inflight.includes(req)) return;
    c.pending.push(`no answer within ${timeout} ms; the ${this.label} was killed`);
    if (c.proc.pid !== undefined) process.kill(c.proc.pid, "SIGKILL");
  }

  private onDeath(c: Child, error?: unknown, code?: number | null, signal?: NodeJS.Signals | null): void {
    if (c.dead) return;
    c.dead = true;
    this.retired.delete(c);
    if (this.child === c) this.child = undefined;
    const [head, ...rest] = c.inflight.splice(0);
    if (head) {
      clearTimeout(head.timer);
      if (error instanceof MissingToolError) head.reject(error);
      else {
        const stderr = [...c.pending, c.partial].join("\n").trim() || (error instanceof Error ? error.message : "");
        const exit = signal ? `signal ${signal}` : `exit ${code ?? "?"}`;
        head.reject(
          new CommandError({
            argv: this.argv(),
            netns: this.where(head),
            stderr: stderr || `the ${this.label} ended (${exit})`,
            exitCode: code ?? null,
            what: `${this.label} (${exit}) running \`${head.lines.join("; ").slice(0, 300)}\``,
          }),
        );
      }
    }
    for (const r of rest) {
      clearTimeout(r.timer);
      if (this.closed) r.reject(new ClosedError(`[linux] the ${this.label} was closed before this request ran`));
      else if (error instanceof MissingToolError) r.reject(error);
      else {
        r.failures = [];
        try {
          this.write(r);
        } catch (err) {
          r.reject(err);
        }
      }
    }
  }
}

/**
 * A persistent `ip -force -batch -` in one namespace (see the module comment). `run(lines)` resolves
 * with the failed lines (line numbers relative to `lines`), like `runIpBatch(..., { force: true })`.
 */
export class IpChannel extends LineChannel {
  readonly netns: NetnsRef;
  protected readonly label: string;
  protected readonly answers = "stderr";
  protected readonly extraLines = 1;

  constructor(options: IpChannelOptions = {}) {
    super(options.timeoutMs ?? 30_000, options.counter);
    this.netns = options.netns;
    this.label = `ip -batch channel${this.netns === undefined ? "" : ` in netns ${this.netns}`}`;
  }

  /**
   * Runs `lines` (every line, failures reported, as `-force`). Rejects with `CommandError` when the
   * child died on one of them or the marker did not come within the timeout; `ClosedError` after
   * `close()`; `MissingToolError` when `ip` is not installed. `counter` counts a child started for it.
   */
  run(lines: readonly string[], counter?: SpawnCounter): Promise<BatchResult> {
    return this.submit(lines, undefined, counter);
  }

  protected argv(): string[] {
    return ipArgv(this.netns, ["-force", "-batch", "-"]);
  }

  protected where(): NetnsRef {
    return this.netns;
  }

  protected frame(req: Request): string {
    return `${req.lines.join("\n")}\n${MARKER_LINE}\n`;
  }

  protected onLine(c: Child, raw: string): void {
    const m = /^Command failed -:(\d+)\s*$/.exec(raw);
    if (!m) {
      if (raw.trim() !== "") c.pending.push(raw.trim());
      return;
    }
    const n = Number(m[1]);
    const message = c.pending.join(" ").trim();
    c.pending = [];
    const head = c.inflight[0];
    if (!head) return;
    const marker = head.first + head.lines.length;
    if (n === marker) {
      this.answer(c);
      if (c.stale) this.recycle();
    } else if (n >= head.first && n < marker) {
      head.failures.push({ line: n - head.first + 1, command: head.lines[n - head.first]!, message });
      if (NO_DEVICE_RE.test(message)) c.stale = true;
    }
  }
}

/** The netlink helper as `pnpm build` (scripts/build-nl.mjs) makes it. */
export const NETLINK_HELPER = fileURLToPath(new URL("../dist/cnikit-nl", import.meta.url));

/** The helper's C source. */
export const NETLINK_HELPER_SOURCE = fileURLToPath(new URL("../native/cnikit-nl.c", import.meta.url));

/**
 * Compiles the netlink helper to `out` (default `NETLINK_HELPER`) with `cc` (default $CC, else `cc`)
 * and returns the path. Throws `CniError` naming the compiler and the Debian package (gcc) when it fails.
 */
export function buildNetlinkHelper(options: { out?: string; cc?: string } = {}): string {
  return compileHelper({ label: "linux", source: NETLINK_HELPER_SOURCE, out: options.out ?? NETLINK_HELPER, ...(options.cc !== undefined ? { cc: options.cc } : {}) });
}

/** Whether `path` is an executable file (the helper is built). */
export function helperBuilt(path: string = NETLINK_HELPER): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Options of `PodSideChannel`. */
export interface PodSideChannelOptions {
  /** The helper executable. Default `NETLINK_HELPER`. */
  helper?: string;
  /** How long one request may wait for its answer before the helper is killed (+10 ms per line). Default 30000 ms. */
  timeoutMs?: number;
  counter?: SpawnCounter;
}

/**
 * The container side of new pod veths through one long-lived netlink helper (native/cnikit-nl.c):
 * each request names the pod's namespace (a path) and carries `podSideLines` lines; the helper
 * enters the namespace (setns) and sends the netlink requests itself — no process per pod.
 * Like `runIpBatch` without `force`: the first failing line ends the request and is reported.
 */
export class PodSideChannel extends LineChannel {
  readonly helper: string;
  protected readonly label = "netlink helper cnikit-nl";
  protected readonly answers = "stdout";
  protected readonly extraLines = 2;

  constructor(options: PodSideChannelOptions = {}) {
    super(options.timeoutMs ?? 30_000, options.counter);
    this.helper = options.helper ?? NETLINK_HELPER;
  }

  /**
   * Runs `lines` in the namespace at `netnsPath`. Rejects with `CommandError` naming the line, the
   * namespace and the kernel's message when a line fails (the lines after it do not run).
   */
  async run(netnsPath: string, lines: readonly string[], counter?: SpawnCounter): Promise<BatchResult> {
    if (netnsPath.includes("\n")) throw new CniError(CniCode.Internal, `[linux] ${this.label}: a netns path contains a newline: ${JSON.stringify(netnsPath)}`);
    const r = await this.submit(lines, netnsPath, counter);
    const f = r.failures[0];
    if (f) {
      throw new CommandError({
        argv: [this.helper],
        netns: netnsPath,
        stderr: f.message,
        exitCode: 1,
        what: f.line === 0 ? `${this.label}: entering the namespace` : `${this.label} line ${f.line} \`${f.command}\``,
      });
    }
    return r;
  }

  protected argv(): string[] {
    return [this.helper];
  }

  protected where(req: Request): NetnsRef {
    return req.ns;
  }

  protected frame(req: Request): string {
    return `ns ${req.ns ?? ""}\n${req.lines.join("\n")}\n.\n`;
  }

  protected onLine(c: Child, raw: string): void {
    const head = c.inflight[0];
    if (!head) return;
    if (raw === "ok") {
      this.answer(c);
      return;
    }
    const m = /^fail (\d+) (.*)$/.exec(raw);
    if (!m) return;
    const n = Number(m[1]);
    head.failures.push({ line: n, command: n === 0 ? `ns ${head.ns ?? ""}` : (head.lines[n - 1] ?? ""), message: m[2]! });
    this.answer(c);
  }
}
