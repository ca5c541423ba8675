/**
 * Running `ip`, `bridge`, `nft` and `sysctl` inside a network namespace. Everything is spawned with
 * an argument vector (never a shell string), input goes through stdin.
 *
 * A namespace is named by a `NetnsRef`: `undefined` = the current process's namespace; a string
 * containing `/` = a path (`/var/run/netns/x`, `/proc/<pid>/ns/net`, what CNI_NETNS holds); any
 * other string = a named namespace (`ip netns`), i.e. `/var/run/netns/<name>`. `ip` enters a named
 * namespace itself (`ip -n`); other tools, and `ip` for a path, run under `nsenter --net=<path>`.
 */
import { spawn } from "node:child_process";
import { CniCode, CniError } from "@cnikit/core";

/** Where a command runs: undefined = this process's netns, a path, or an `ip netns` name. */
export type NetnsRef = string | undefined;

/** Directory of named namespaces (iproute2's NETNS_RUN_DIR). */
export const NETNS_RUN_DIR = "/var/run/netns";

/** The Debian package that provides each tool this package runs. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: "iproute2",
  bridge: "iproute2",
  nft: "nftables",
  nsenter: "util-linux",
  sysctl: "procps",
};

/** A command this package ran that failed: names the command, its namespace and its stderr. */
export class CommandError extends CniError {
  /** The argument vector that was run. */
  readonly argv: readonly string[];
  /** Namespace it ran in (undefined = current). */
  readonly netns: NetnsRef;
  readonly stderr: string;
  readonly exitCode: number | null;
  constructor(init: { argv: readonly string[]; netns: NetnsRef; stderr: string; exitCode: number | null; what?: string }) {
    const where = init.netns === undefined ? "" : ` in netns ${init.netns}`;
    const what = init.what ?? init.argv.join(" ");
    const err = init.stderr.trim().split("\n").slice(0, 6).join(" / ");
    super(CniCode.IoFailure, `[linux] ${what}${where} failed (exit ${init.exitCode ?? "signal"}): ${err || "no message"}`, {
      details: init.stderr.trim().slice(0, 4000),
    });
    this.argv = init.argv;
    this.netns = init.netns;
    this.stderr = init.stderr;
    this.exitCode = init.exitCode;
  }
}

/** A tool this package needs is not installed; the message names the Debian package. */
export class MissingToolError extends CniError {
  readonly tool: string;
  readonly debianPackage: string;
  constructor(tool: string) {
    const pkg = TOOL_PACKAGES[tool] ?? tool;
    super(CniCode.PluginNotAvailable, `[linux] \`${tool}\` not found: install the Debian package ${pkg} (apt-get install -y ${pkg})`);
    this.tool = tool;
    this.debianPackage = pkg;
  }
}

/** Output of one process. */
export interface ProcessResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal. */
  code: number | null;
}

/** Counts processes spawned, for reports and benchmarks. */
export interface SpawnCounter {
  spawned: number;
}

/**
 * Runs `argv` (no shell), writing `input` to stdin. Resolves with the output whatever the exit
 * code; rejects only with `MissingToolError` when the program does not exist.
 */
export function runProcess(argv: readonly string[], input?: string, counter?: SpawnCounter): Promise<ProcessResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new CniError(CniCode.Internal, "[linux] runProcess: empty argv"));
  if (counter) counter.spawned++;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") reject(new MissingToolError(toolOf(argv)));
      else reject(new CniError(CniCode.IoFailure, `[linux] cannot run ${argv.join(" ")}: ${e.message}`, { cause: e }));
    });
    child.once("close", (code) => {
      const stderr = Buffer.concat(err).toString("utf8");
      const missing = /nsenter: failed to execute (\S+): No such file or directory/.exec(stderr);
      if (missing && argv[0] === "nsenter") reject(new MissingToolError(missing[1]!));
      else resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr, code });
    });
    child.stdin.on("error", () => {
      // the child exited before reading its input; its exit status tells what happened
    });
    child.stdin.end(input ?? "");
  });
}

/** The tool a (possibly nsenter-wrapped) argv runs, for MissingToolError. */
function toolOf(argv: readonly string[]): string {
  return argv[0] ?? "";
}

/** The path of a namespace reference (undefined for the current namespace). */
export function netnsPath(ns: NetnsRef): string | undefined {
  if (ns === undefined) return undefined;
  return ns.includes("/") ? ns : `${NETNS_RUN_DIR}/${ns}`;
}

/** `argv` wrapped so it runs in `ns` (`nsenter --net=<path> --`); unchanged for the current netns. */
export function inNetns(ns: NetnsRef, argv: readonly string[]): string[] {
  const path = netnsPath(ns);
  return path === undefined ? [...argv] : ["nsenter", `--net=${path}`, "--", ...argv];
}

/**
 * The `ip netns` name a reference stands for: the name itself, or `x` for the path
 * `/var/run/netns/x` (what a runtime's CNI_NETNS usually holds); undefined for other paths.
 */
function netnsName(ns: string): string | undefined {
  if (!ns.includes("/")) return ns;
  const prefix = `${NETNS_RUN_DIR}/`;
  const name = ns.startsWith(prefix) ? ns.slice(prefix.length) : "";
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name) ? name : undefined;
}

/**
 * `ip <options...>` in `ns`: `ip -n <name>` for a named namespace (also given as its
 * `/var/run/netns/<name>` path: one process instead of nsenter's two), nsenter for other paths.
 */
export function ipArgv(ns: NetnsRef, options: readonly string[]): string[] {
  if (ns === undefined) return ["ip", ...options];
  const name = netnsName(ns);
  if (name !== undefined) return ["ip", "-n", name, ...options];
  return inNetns(ns, ["ip", ...options]);
}

/** `bridge <options...>` in `ns` (same rules as `ipArgv`). */
export function bridgeArgv(ns: NetnsRef, options: readonly string[]): string[] {
  if (ns === undefined) return ["bridge", ...options];
  const name = netnsName(ns);
  if (name !== undefined) return ["bridge", "-n", name, ...options];
  return inNetns(ns, ["bridge", ...options]);
}

/**
 * Runs `argv` inside `ns` and returns its stdout.
 * @throws CommandError (naming the command, the namespace and stderr) on a non-zero exit;
 *   MissingToolError when the program (or nsenter) is not installed.
 */
export async function execIn(ns: NetnsRef, argv: readonly string[], input?: string, counter?: SpawnCounter): Promise<string> {
  const full = argv[0] === "ip" ? ipArgv(ns, argv.slice(1)) : argv[0] === "bridge" ? bridgeArgv(ns, argv.slice(1)) : inNetns(ns, argv);
  const r = await runProcess(full, input, counter);
  if (r.code !== 0) throw new CommandError({ argv: full, netns: ns, stderr: r.stderr, exitCode: r.code, what: argv.join(" ") });
  return r.stdout;
}

/** One line of a batch that failed. */
export interface BatchFailure {
  /** 1-based line number in the batch. */
  line: number;
  /** The line's text. */
  command: string;
  /** What the tool printed for it. */
  message: string;
}

/** What a batch run returned. */
export interface BatchResult {
  stdout: string;
  /** Failed lines (only ever non-empty with `force`). */
  failures: BatchFailure[];
}

/** Options of `runIpBatch` / `runBridgeBatch`. */
export interface BatchOptions {
  /** Keep going after a failed line (`-force`) and report every failure instead of throwing. */
  force?: boolean;
  /** Global options before `-batch`, e.g. `["-j", "-d"]`. */
  globals?: string[];
  counter?: SpawnCounter;
}

/** Parses iproute2's batch stderr: message lines followed by `Command failed -:<n>`. */
export function parseBatchFailures(stderr: string, lines: readonly string[]): BatchFailure[] {
  const failures: BatchFailure[] = [];
  let pending: string[] = [];
  for (const raw of stderr.split("\n")) {
    const m = /^Command failed -:(\d+)\s*$/.exec(raw);
    if (m) {
      const n = Number(m[1]);
      failures.push({ line: n, command: lines[n - 1] ?? "", message: pending.join(" ").trim() });
      pending = [];
    } else if (raw.trim() !== "") pending.push(raw.trim());
  }
  return failures;
}

async function runBatch(tool: "ip" | "bridge", ns: NetnsRef, lines: readonly string[], options: BatchOptions): Promise<BatchResult> {
  for (const l of lines) {
    if (l.includes("\n")) throw new CniError(CniCode.Internal, `[linux] ${tool} batch line contains a newline: ${JSON.stringify(l)}`);
  }
  if (lines.length === 0) return { stdout: "", failures: [] };
  const opts = [...(options.globals ?? []), ...(options.force ? ["-force"] : []), "-batch", "-"];
  const argv = tool === "ip" ? ipArgv(ns, opts) : bridgeArgv(ns, opts);
  const r = await runProcess(argv, `${lines.join("\n")}\n`, options.counter);
  if (r.code === 0) return { stdout: r.stdout, failures: [] };
  const failures = parseBatchFailures(r.stderr, lines);
  if (failures.length === 0) failures.push({ line: 0, command: "", message: r.stderr.trim() || `exit ${r.code}` });
  if (!options.force) {
    const f = failures[0]!;
    throw new CommandError({ argv, netns: ns, stderr: r.stderr, exitCode: r.code, what: `${tool} -batch line ${f.line} \`${f.command}\`` });
  }
  return { stdout: r.stdout, failures };
}

/**
 * Runs `lines` as one `ip -batch -` process in `ns` (one netlink socket, one process).
 * Without `force`, stops at the first failed line and throws `CommandError` naming it; with
 * `force`, runs every line and returns the failures.
 */
export function runIpBatch(ns: NetnsRef, lines: readonly string[], options: BatchOptions = {}): Promise<BatchResult> {
  return runBatch("ip", ns, lines, options);
}

/** `bridge -batch -` in `ns` (FDB entries); same contract as `runIpBatch`. */
export function runBridgeBatch(ns: NetnsRef, lines: readonly string[], options: BatchOptions = {}): Promise<BatchResult> {
  return runBatch("bridge", ns, lines, options);
}

/**
 * Loads `script` with `nft -f -` in `ns`: one transaction, all or nothing. Returns stdout.
 * @throws CommandError with nft's message (which quotes the offending line) when it is refused.
 */
export async function runNft(ns: NetnsRef, script: string, counter?: SpawnCounter): Promise<string> {
  const argv = inNetns(ns, ["nft", "-f", "-"]);
  const r = await runProcess(argv, script, counter);
  if (r.code !== 0) throw new CommandError({ argv, netns: ns, stderr: r.stderr, exitCode: r.code, what: "nft -f -" });
  return r.stdout;
}
