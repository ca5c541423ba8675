/**
 * The TAP side of the sleeve on a real kernel: `TapDevice` runs the native helper
 * (native/weave-tap.c) that creates TAP device `ifname` in the namespace it runs in and relays its
 * frames over stdio (2-byte big-endian length per frame), and exposes it as a `FrameDevice`.
 *
 *  - `start(onFrames)` spawns the helper (under `ip netns exec <netns>` when `netns` is given, else
 *    in this process's namespace) and resolves once it printed "ready <ifname>"; it rejects with
 *    the helper's own message (it names /dev/net/tun and the errno) when the device cannot be had —
 *    `KernelLacksError` ("tun") when the kernel has no /dev/net/tun — or when the helper binary is
 *    missing (build it: `pnpm --filter @cnikit/weave build`, or `buildWeaveTap()`). The device is
 *    left as the helper made it: the caller sets MTU, master (the bridge) and up.
 *  - `send(frames)` queues frames for the TAP (written to the helper once per event-loop turn);
 *    false (frames dropped) when more than `backlogBytes` wait already, so a slow kernel side
 *    costs bounded memory.
 *  - `stop()` closes the helper's stdin (it exits and the TAP goes with it) and waits for it; a
 *    helper that does not exit within 2 s is signalled by its PID (SIGTERM, then SIGKILL). Idempotent.
 *  - `exited` says when (and how) the helper ended without being stopped.
 *
 * `FrameDevice` is the interface the relay uses, so its logic runs in tests without root.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { fileURLToPath } from "node:url";
import { CniCode, CniError, KernelLacksError, compileHelper } from "@cnikit/core";
import { encodeFrames, splitFrames } from "./packet.ts";

const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));

/** The C source of the TAP helper. */
export const WEAVE_TAP_SOURCE = here("../../native/weave-tap.c");
/** The helper as `pnpm build` (scripts/build-tap.mjs) makes it. */
export const WEAVE_TAP_NATIVE = here("../../dist/weave-tap");

/**
 * Compiles the helper to `out` (default `WEAVE_TAP_NATIVE`) with `cc` (default $CC, else `cc`),
 * -Wall -Wextra -Werror, and returns the path. Safe to call again (recompiles).
 * @throws CniError (999) naming the compiler and the Debian package (gcc) when compiling fails.
 */
export function buildWeaveTap(options: { out?: string; cc?: string } = {}): string {
  return compileHelper({ label: "weave", source: WEAVE_TAP_SOURCE, out: options.out ?? WEAVE_TAP_NATIVE, ...(options.cc !== undefined ? { cc: options.cc } : {}) });
}

/** Where the relay's frames go to and come from: the TAP on a kernel, a fake in tests. */
export interface FrameDevice {
  /** The interface name (for STATUS and logs). */
  readonly ifname: string;
  /** Opens the device; `onFrames` receives the frames it emits (views valid during the call). */
  start(onFrames: (frames: Uint8Array[]) => void): Promise<void>;
  /** Hands frames to the device; false when they were dropped (backlog full, device gone). */
  send(frames: readonly Uint8Array[]): boolean;
  /** Closes the device. Idempotent. */
  stop(): Promise<void>;
  /** The helper's PID while it runs (undefined for devices without a process). */
  readonly pid?: number | undefined;
  /** Set when the device ended by itself (a crash), with the reason. */
  readonly exited?: string | undefined;
}

export interface TapDeviceOptions {
  /** The TAP's name (1-15 characters: letters, digits, '_', '.', '-'). */
  ifname: string;
  /** The helper binary. Default `WEAVE_TAP_NATIVE`. */
  helper?: string;
  /** Run the helper under `ip netns exec <netns>`; default: in this process's namespace. */
  netns?: string;
  /** Most bytes queued towards the TAP before `send` drops (default 4 MiB). */
  backlogBytes?: number;
}

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const STOP_GRACE_MS = 2000;

export class TapDevice implements FrameDevice {
  readonly ifname: string;
  private readonly helper: string;
  private readonly netns: string | undefined;
  private readonly backlogBytes: number;
  private child: ChildProcessWithoutNullStreams | undefined;
  private stopping = false;
  private exitedReason: string | undefined;
  private exitPromise: Promise<void> | undefined;
  private queue: Buffer[] = [];
  private queuedBytes = 0;

  constructor(options: TapDeviceOptions) {
    if (!IFNAME_RE.test(options.ifname)) {
      throw new CniError(CniCode.InvalidNetworkConfig, `[weave] sleeve.tap: "${options.ifname}" must be an interface name of 1-15 letters, digits, '_', '.', '-'`);
    }
    this.ifname = options.ifname;
    this.helper = options.helper ?? WEAVE_TAP_NATIVE;
    this.netns = options.netns;
    this.backlogBytes = options.backlogBytes ?? 4 * 1024 * 1024;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get exited(): string | undefined {
    return this.exitedReason;
  }

  async start(onFrames: (frames: Uint8Array[]) => void): Promise<void> {
    if (this.child) throw new CniError(CniCode.Internal, `[weave] TAP ${this.ifname}: already started`);
    try {
      accessSync(this.helper, constants.X_OK);
    } catch {
      throw new CniError(CniCode.Internal, `[weave] the sleeve's TAP helper ${this.helper} is missing or not executable: build it (pnpm --filter @cnikit/weave build, needs gcc) or pass its path`);
    }
    const argv = this.netns === undefined ? [this.helper, this.ifname] : ["ip", "netns", "exec", this.netns, this.helper, this.ifname];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    this.child = child;
    let stderr = "";
    let pending: Buffer | undefined;
    child.stdout.on("data", (chunk: Buffer) => {
      const bytes = pending ? Buffer.concat([pending, chunk]) : chunk;
      const frames: Uint8Array[] = [];
      const { consumed } = splitFrames(bytes, frames);
      pending = consumed < bytes.length ? Buffer.from(bytes.subarray(consumed)) : undefined;
      if (frames.length > 0) onFrames(frames);
    });
    child.stdin.on("error", () => {
      // EPIPE after the helper exited: its exit is reported below
    });
    this.exitPromise = new Promise((resolve) => child.once("close", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr = (stderr + d).slice(-4096);
        if (!ready && stderr.includes(`ready ${this.ifname}\n`)) {
          ready = true;
          resolve();
        }
      });
      child.once("error", (err) => {
        if (!ready) reject(new CniError(CniCode.Internal, `[weave] cannot start the TAP helper ${argv.join(" ")}: ${err.message}`, { cause: err }));
      });
      child.once("close", (code, signal) => {
        const why = stderr.trim() || `exit ${code ?? signal}`;
        if (!ready) {
          this.child = undefined;
          if (/open \/dev\/net\/tun.*(ENOENT|ENODEV|ENXIO)/.test(why)) reject(new KernelLacksError("tun", `kernel lacks tun: ${why}`));
          else reject(new CniError(CniCode.Internal, `[weave] the TAP helper could not open ${this.ifname}: ${why}`));
          return;
        }
        if (!this.stopping) this.exitedReason = `the TAP helper (pid ${child.pid}) exited ${code ?? signal}: ${why}`;
      });
    });
  }

  send(frames: readonly Uint8Array[]): boolean {
    const child = this.child;
    if (!child || this.stopping || this.exitedReason !== undefined || frames.length === 0) return false;
    if (child.stdin.writableLength + this.queuedBytes > this.backlogBytes) return false;
    // Frames of one event-loop turn (several UDP packets) go to the helper in one pipe write.
    const bytes = encodeFrames(frames);
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
    if (this.queue.length === 1) setImmediate(() => this.flush());
    return true;
  }

  private flush(): void {
    const child = this.child;
    const chunks = this.queue.splice(0);
    this.queuedBytes = 0;
    if (!child || this.stopping || chunks.length === 0) return;
    child.stdin.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || this.stopping) return this.exitPromise;
    this.stopping = true;
    child.stdin.end();
    if (await exitsWithin(this.exitPromise!, STOP_GRACE_MS)) return;
    signalPid(child.pid, "SIGTERM");
    if (await exitsWithin(this.exitPromise!, STOP_GRACE_MS)) return;
    signalPid(child.pid, "SIGKILL");
    await this.exitPromise;
  }
}

function signalPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Whether `exit` settles within `ms` of wall time (a real process, so real time). */
function exitsWithin(exit: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    void exit.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
