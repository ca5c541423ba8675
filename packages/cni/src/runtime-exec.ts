/**
 * How the runtime (`runtime.ts`) runs a plugin executable: child_process `spawn` without a shell,
 * the CNI_* variables in the environment, the network configuration on stdin, stdout and stderr
 * collected. Plus the one typed error every failed plugin call becomes (`PluginError`), and the
 * parser for a failed plugin's error JSON.
 */
import { spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { join } from "node:path";
import { CniCode, CniError } from "@cnikit/core";

/** One plugin call, as the runtime hands it to a `PluginExec`. */
export interface PluginInvocation {
  /** Absolute path of the plugin executable. */
  path: string;
  /** The whole environment of the child (the runtime's own, minus any CNI_*, plus the call's CNI_*). */
  env: Record<string, string>;
  /** The network configuration, written to the child's stdin (VERSION gets a small config too). */
  stdin: string;
  /** Kill the child (SIGKILL) after this many milliseconds; undefined = no limit. */
  timeoutMs?: number;
}

/** What a plugin call produced. */
export interface PluginOutput {
  /** Exit status, or null when the child was killed by a signal. */
  exitCode: number | null;
  /** The signal that ended the child, if any (e.g. SIGKILL after a timeout). */
  signal: string | null;
  /** True when the runtime killed the child because `timeoutMs` passed. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Runs one plugin and resolves with its output whatever the exit status; rejects only when the
 * executable could not be started at all (ENOENT, EACCES, ...). Injectable into `CniRuntime` so
 * tests and benchmarks can wrap or replace it.
 */
export type PluginExec = (call: PluginInvocation) => Promise<PluginOutput>;

/** Options of `spawnExec`. */
export interface SpawnExecOptions {
  /**
   * A command prefix run in front of the plugin, e.g. `["ip", "netns", "exec", "node1"]`: plugins
   * act on the network namespace they run in for the host side of a pod, so a runtime driving a
   * "node" that is itself a namespace runs them inside it. Empty or absent: the plugin runs directly.
   */
  wrapper?: readonly string[];
}

/**
 * The default `PluginExec`: `spawn(path)` (or `spawn(wrapper[0], [...wrapper.slice(1), path])`),
 * no shell, stdin written then closed (an EPIPE from a plugin that does not read stdin, as VERSION
 * does not, is ignored), stdout/stderr collected as UTF-8. Safe to call concurrently.
 */
export function spawnExec(options: SpawnExecOptions = {}): PluginExec {
  const wrapper = options.wrapper ?? [];
  return (call) =>
    new Promise<PluginOutput>((resolve, reject) => {
      const [command, ...args] = wrapper.length > 0 ? [...wrapper, call.path] : [call.path];
      const child = spawn(command!, args, { env: call.env, stdio: ["pipe", "pipe", "pipe"], windowsHide: true });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      if (call.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, call.timeoutMs);
      }
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      child.stdin.on("error", () => {
        // The plugin exited without reading stdin (VERSION, or an early failure): its output says why.
      });
      child.on("error", (e) => {
        if (timer) clearTimeout(timer);
        reject(e);
      });
      child.on("close", (exitCode, signal) => {
        if (timer) clearTimeout(timer);
        resolve({
          exitCode,
          signal,
          timedOut,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        });
      });
      child.stdin.end(call.stdin);
    });
}

/**
 * The wrapper that runs plugins inside the named network namespace (`/run/netns/<name>`, as made by
 * `ip netns add`): `["/usr/sbin/ip", "netns", "exec", name]`, `ip` resolved in this process's
 * PATH (so the plugins' own PATH may differ). Needs root and iproute2.
 */
export function netnsWrapper(name: string): string[] {
  return [which("ip"), "netns", "exec", name];
}

/** `command` resolved in this process's PATH; the bare name when not found (spawn reports ENOENT). */
function which(command: string): string {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    if (dir === "") continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return command;
}

/** Where in a conflist a failed call happened. */
export interface PluginErrorInit {
  /** The plugin's `type` (its executable's name). */
  plugin: string;
  /** Its index in the conflist's `plugins`, or -1 for a call not tied to one entry (VERSION). */
  index: number;
  /** The CNI command: ADD, DEL, CHECK, STATUS, GC, VERSION. */
  command: string;
  /** The network's name ("" for a call not made for a network, such as a lone VERSION). */
  network: string;
  /** The plugin's error code (its JSON's `code`, or 999 when it gave none). */
  code: number;
  /** The plugin's own message. */
  pluginMsg: string;
  details?: string;
  exitCode: number | null;
  signal?: string | null;
  /** The plugin's stderr (its logs), trimmed to the last 4 KiB. */
  stderr?: string;
  cause?: unknown;
}

/**
 * A plugin call that failed: non-zero exit (its error JSON parsed from stdout), a kill, a timeout,
 * or output the runtime could not use. `code` and `details` are the plugin's own; `pluginMsg` is
 * the plugin's message and `msg` says which plugin failed which command:
 * `[cni-runtime] network "pods": plugin portmap (plugins[1]) failed ADD: <plugin's msg>`.
 */
export class PluginError extends CniError {
  readonly plugin: string;
  readonly index: number;
  readonly command: string;
  readonly network: string;
  readonly pluginMsg: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderr: string;

  constructor(init: PluginErrorInit) {
    const where = init.index >= 0 ? `plugin ${init.plugin} (plugins[${init.index}])` : `plugin ${init.plugin}`;
    const network = init.network === "" ? "" : `network ${JSON.stringify(init.network)}: `;
    super(init.code, `[cni-runtime] ${network}${where} failed ${init.command}: ${init.pluginMsg}`, {
      ...(init.details !== undefined ? { details: init.details } : {}),
      cause: init.cause,
    });
    this.plugin = init.plugin;
    this.index = init.index;
    this.command = init.command;
    this.network = init.network;
    this.pluginMsg = init.pluginMsg;
    this.exitCode = init.exitCode;
    this.signal = init.signal ?? null;
    this.stderr = (init.stderr ?? "").slice(-4096);
  }
}

/** A plugin's error as parsed from its stdout. */
export interface ParsedPluginError {
  code: number;
  msg: string;
  details?: string;
}

/**
 * Reads a failed plugin's stdout as the spec's error JSON `{cniVersion?, code, msg, details?}`.
 * Anything else (empty, not JSON, no numeric code) becomes code 999 with libcni's wording:
 * `netplugin failed: "<stdout>"`, or `netplugin failed with no error message: <how it ended>` with
 * the tail of stderr when stdout is empty. Never throws.
 */
export function parsePluginError(output: PluginOutput): ParsedPluginError {
  const text = output.stdout.trim();
  const ended = output.timedOut ? "timed out and was killed" : output.signal !== null ? `killed by ${output.signal}` : `exit status ${output.exitCode ?? "unknown"}`;
  if (text !== "") {
    try {
      const raw: unknown = JSON.parse(text);
      if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
        const o = raw as Record<string, unknown>;
        if (typeof o["code"] === "number" && Number.isInteger(o["code"])) {
          const parsed: ParsedPluginError = { code: o["code"], msg: typeof o["msg"] === "string" ? o["msg"] : "" };
          if (typeof o["details"] === "string" && o["details"] !== "") parsed.details = o["details"];
          return parsed;
        }
      }
    } catch {
      // Not JSON: reported as text below.
    }
    return { code: CniCode.Internal, msg: `netplugin failed: ${JSON.stringify(text.length > 500 ? `${text.slice(0, 497)}...` : text)}`, details: ended };
  }
  const tail = output.stderr.trim().split("\n").slice(-3).join(" | ");
  return {
    code: CniCode.Internal,
    msg: `netplugin failed with no error message: ${ended}`,
    ...(tail !== "" ? { details: `stderr: ${tail}` } : {}),
  };
}
