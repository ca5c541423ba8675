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
import { CniError } from "@cnikit/core";
import { socketStatus } from "./daemon.ts";
import { loadDaemonConfig, runDaemon, type RunDaemonOptions, type RunningDaemon } from "./daemon-config.ts";

const USAGE = "usage: cnikitd --config <file> [--check | --wait-ready [--timeout <seconds>]]";

/** How long `--wait-ready` waits by default, and how often it asks. */
const WAIT_READY_DEFAULT_S = 60;
const WAIT_READY_POLL_MS = 200;

/** Where the CLI writes (stderr) and how it learns about signals; injectable for tests. */
export interface DaemonMainIo {
  err(line: string): void;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
}

const processIo: DaemonMainIo = {
  err: (line) => void process.stderr.write(`${line}\n`),
  onSignal: (signal, handler) => void process.once(signal, handler),
};

/**
 * The `--config <file> [--check]` command line both cnikitd and cnikit-controller take: the file
 * and whether to only check it, or the exit status to return at once (0 for --help, 2 for bad
 * usage, with the usage written).
 */
export function parseConfigArgs(argv: string[], name: string, usage: string, io: Pick<DaemonMainIo, "err">): { file: string; check: boolean } | number {
  const at = argv.indexOf("--config");
  const file = at >= 0 ? argv[at + 1] : undefined;
  if (argv.includes("--help") || argv.includes("-h")) {
    io.err(usage);
    return 0;
  }
  const unknown = argv.filter((a, i) => a !== "--config" && a !== "--check" && !(i === at + 1 && at >= 0));
  if (file === undefined || file.startsWith("--") || unknown.length > 0) {
    io.err(unknown.length > 0 ? `${name}: unknown argument ${unknown[0]}\n${usage}` : usage);
    return 2;
  }
  return { file, check: argv.includes("--check") };
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

/**
 * Runs cnikitd with `argv` (without node and script) and resolves with the exit status once the
 * daemon stopped (signal) or failed. Never calls process.exit itself.
 */
export async function daemonMain(argv: string[], io: DaemonMainIo = processIo, options: RunDaemonOptions = {}): Promise<number> {
  const wait = waitReadyArgs(argv, io);
  if (typeof wait === "number") return wait;
  const args = parseConfigArgs(wait.rest, "cnikitd", USAGE, io);
  if (typeof args === "number") return args;
  const { file } = args;
  let config;
  try {
    config = await loadDaemonConfig(file);
  } catch (e) {
    io.err(`cnikitd: ${file}: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  if (wait.timeoutS !== undefined) {
    if (args.check) {
      io.err(`cnikitd: --check and --wait-ready do not go together\n${USAGE}`);
      return 2;
    }
    return waitReady(config.socketPath, config.node.name, wait.timeoutS, io);
  }
  if (args.check) {
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

/** Takes `--wait-ready [--timeout S]` out of argv: the timeout (undefined without --wait-ready) and the rest. */
function waitReadyArgs(argv: string[], io: Pick<DaemonMainIo, "err">): { timeoutS?: number; rest: string[] } | number {
  const rest = [...argv];
  const at = rest.indexOf("--wait-ready");
  if (at >= 0) rest.splice(at, 1);
  const t = rest.indexOf("--timeout");
  let timeoutS: number | undefined;
  if (t >= 0) {
    const value = rest[t + 1];
    timeoutS = Number(value);
    if (at < 0 || value === undefined || !Number.isFinite(timeoutS) || timeoutS <= 0) {
      io.err(`cnikitd: ${at < 0 ? "--timeout goes with --wait-ready" : `--timeout must be a number of seconds above 0 (got ${value ?? "nothing"})`}\n${USAGE}`);
      return 2;
    }
    rest.splice(t, 2);
  }
  return at >= 0 ? { timeoutS: timeoutS ?? WAIT_READY_DEFAULT_S, rest } : { rest };
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
