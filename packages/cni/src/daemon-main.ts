/**
 * `cnikitd --config <file> [--check]`: runs the node agent daemon until SIGTERM / SIGINT.
 * `cnikitd --config <file> --wait-ready [--timeout S]`: waits until the daemon that config
 * describes answers STATUS with 0 on its socket (the answer `cnikit-cni` STATUS gives).
 *
 * Exit status: 0 after a clean stop; 1 when the agent cannot start (a fatal error such as a config
 * the node cannot use) or the daemon cannot come up (socket served by another daemon, port taken);
 * 2 for bad usage or a bad config file (the message names the field). `--check` validates the
 * config and exits. `--wait-ready`: 0 once STATUS is 0, 1 when it is not within the timeout
 * (default 60 s; the last answer is printed). Logs are JSON lines on stderr.
 */
import { CliUsageError, CniError, runCliCommand } from "@cnikit/core";
import type { CliCommand, CliOutput, CliValues } from "@cnikit/core";
import { socketStatus } from "./daemon.ts";
import { SUPPORTED_VERSIONS } from "./protocol.ts";
import { loadDaemonConfig, runDaemon, type RunDaemonOptions, type RunningDaemon } from "./daemon-config.ts";

const USAGE = `Usage: cnikitd --config <file> [--check | --wait-ready [--timeout <seconds>]]

Runs the cnikit node agent daemon until SIGTERM / SIGINT (logs are JSON lines on stderr).

Options:
  --config <file>       the daemon's config file (JSON)
  --check               validate the config and exit
  --wait-ready          wait until the daemon that config describes answers STATUS with 0 on its socket
  --timeout <seconds>   how long --wait-ready waits (default 60)
  -h, --help            this text

Exit status: 0 after a clean stop (--check: valid; --wait-ready: ready), 1 the agent or daemon cannot
start (--wait-ready: not ready in time), 2 bad usage or a bad config file (the message names the field).

CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}`;

/** How long `--wait-ready` waits by default, and how often it asks. */
const WAIT_READY_DEFAULT_S = 60;
const WAIT_READY_POLL_MS = 200;

/** Where the CLI writes (log lines on stderr; `--help` on stdout) and how it learns about signals; injectable for tests. */
export interface DaemonMainIo {
  err(line: string): void;
  /** Where `--help` goes (default: the process's stdout). */
  out?(line: string): void;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
}

const processIo: DaemonMainIo = {
  err: (line) => void process.stderr.write(`${line}\n`),
  out: (line) => void process.stdout.write(`${line}\n`),
  onSignal: (signal, handler) => void process.once(signal, handler),
};

/** The `--config <file> [--check]` flags both cnikitd and cnikit-controller take. */
export const CONFIG_OPTIONS = { config: { type: "string" }, check: { type: "boolean" } } as const;

/** The config file of `--config` (a usage error when absent). */
export function configFile(values: CliValues<typeof CONFIG_OPTIONS>): string {
  if (values.config === undefined || values.config === "") throw new CliUsageError("--config <file> is required");
  return values.config;
}

/** Runs a bin's only command with core's CLI plumbing (--help on `io.out`, usage errors exit 2). */
export function runMainCommand<O extends typeof CONFIG_OPTIONS>(name: string, command: CliCommand<O>, argv: string[], io: Pick<DaemonMainIo, "err" | "out">): Promise<number> {
  const lines: CliOutput = { err: (l) => io.err(l), out: (l) => (io.out ?? processIo.out!)(l) };
  return runCliCommand(name, command, argv, lines);
}

/**
 * Waits for SIGTERM or SIGINT (exit status 0) or `fail(status)`, then runs `stop` once and
 * resolves with the status. Keeps the process alive meanwhile (a process whose timers are all
 * unref'd and that serves no socket would otherwise end with the wait unsettled).
 */
export function untilSignal(io: Pick<DaemonMainIo, "onSignal">, stop: () => Promise<void>): { done: Promise<number>; fail(status: number): void } {
  let finish!: (status: number) => void;
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const done = new Promise<number>((resolve) => {
    let finished = false;
    finish = (status) => {
      if (finished) return;
      finished = true;
      clearInterval(keepAlive);
      void stop().finally(() => resolve(status));
    };
  });
  io.onSignal("SIGTERM", () => finish(0));
  io.onSignal("SIGINT", () => finish(0));
  return { done, fail: (status) => finish(status) };
}

const DAEMON_OPTIONS = { ...CONFIG_OPTIONS, "wait-ready": { type: "boolean" }, timeout: { type: "string" } } as const;

/** `--timeout`'s seconds (only with --wait-ready): a number above 0. */
function waitTimeout(values: CliValues<typeof DAEMON_OPTIONS>): number | undefined {
  if (values.timeout !== undefined && values["wait-ready"] !== true) throw new CliUsageError("--timeout goes with --wait-ready");
  if (values["wait-ready"] !== true) return undefined;
  if (values.check === true) throw new CliUsageError("--check and --wait-ready do not go together");
  if (values.timeout === undefined) return WAIT_READY_DEFAULT_S;
  const s = Number(values.timeout);
  if (values.timeout.trim() === "" || !Number.isFinite(s) || s <= 0) throw new CliUsageError(`--timeout must be a number of seconds above 0 (got ${values.timeout})`);
  return s;
}

/**
 * Runs cnikitd with `argv` (without node and script) and resolves with the exit status once the
 * daemon stopped (signal) or failed. Never calls process.exit itself.
 */
export async function daemonMain(argv: string[], io: DaemonMainIo = processIo, options: RunDaemonOptions = {}): Promise<number> {
  return runMainCommand("cnikitd", { name: "", summary: "the cnikit node agent daemon", usage: USAGE, options: DAEMON_OPTIONS, run: ({ values }) => daemon(values, io, options) }, argv, io);
}

async function daemon(values: CliValues<typeof DAEMON_OPTIONS>, io: DaemonMainIo, options: RunDaemonOptions): Promise<number> {
  const file = configFile(values);
  const timeoutS = waitTimeout(values);
  let config;
  try {
    config = await loadDaemonConfig(file);
  } catch (e) {
    io.err(`cnikitd: ${file}: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  if (timeoutS !== undefined) return waitReady(config.socketPath, config.node.name, timeoutS, io);
  if (values.check === true) {
    io.err(`cnikitd: ${file}: ok (node ${config.node.name}, backend ${config.backend})`);
    return 0;
  }
  let running: RunningDaemon;
  try {
    running = await runDaemon(config, options);
  } catch (e) {
    io.err(`cnikitd: cannot start: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const run = untilSignal(io, async () => {
    for (const line of running.userspace?.status() ?? []) io.err(`cnikitd: userspace ${line}`);
    await running.stop();
    io.err(`cnikitd: stats ${JSON.stringify(running.daemon.stats())}`);
  });
  running.daemon.agentStarted.then(
    () => io.err(`cnikitd: node ${config.node.name} ready (backend ${config.backend}, socket ${config.socketPath})`),
    (e: unknown) => {
      const err = CniError.from(e);
      io.err(`cnikitd: the ${config.backend} agent cannot start (code ${err.code}): ${err.message}`);
      run.fail(1);
    },
  );
  return run.done;
}

/** Asks STATUS on `socketPath` until it is 0 (exit 0) or `timeoutS` passed (exit 1, the last answer printed). */
async function waitReady(socketPath: string, node: string, timeoutS: number, io: Pick<DaemonMainIo, "err">): Promise<number> {
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const left = deadline - Date.now();
    const status = await socketStatus(socketPath, Math.max(1, Math.min(left, 10_000)));
    if (status.ready) {
      io.err(`cnikitd: node ${node} ready (STATUS 0 on ${socketPath})`);
      return 0;
    }
    if (Date.now() + WAIT_READY_POLL_MS >= deadline) {
      io.err(`cnikitd: node ${node} not ready within ${timeoutS} s (socket ${socketPath}): code ${status.code}: ${status.msg}`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, WAIT_READY_POLL_MS));
  }
}
