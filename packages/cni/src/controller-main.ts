/**
 * `cnikit-controller --config <file> [--check]`: runs a backend's cluster-level controller until
 * SIGTERM / SIGINT (controller.ts has the config format).
 *
 * Exit status: 0 after a clean stop; 1 when the controller cannot start (store, fabric module or
 * the controller's own start failed); 2 for bad usage or a bad config file (the message names the
 * field). `--check` validates the config and exits. Logs are JSON lines on stderr.
 */
import { loadControllerConfig, runController, type ControllerConfig, type RunControllerOptions, type RunningController } from "./controller.ts";
import { parseConfigArgs, untilSignal, type DaemonMainIo } from "./daemon-main.ts";

const NAME = "cnikit-controller";
const USAGE = `usage: ${NAME} --config <file> [--check]`;

const processIo: DaemonMainIo = {
  err: (line) => void process.stderr.write(`${line}\n`),
  onSignal: (signal, handler) => void process.once(signal, handler),
};

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Runs cnikit-controller with `argv` (without node and script) and resolves with the exit status
 * once the controller stopped (signal) or could not start. Never calls process.exit itself.
 */
export async function controllerMain(argv: string[], io: DaemonMainIo = processIo, options: RunControllerOptions = {}): Promise<number> {
  const args = parseConfigArgs(argv, NAME, USAGE, io);
  if (typeof args === "number") return args;
  let config: ControllerConfig;
  try {
    config = await loadControllerConfig(args.file);
  } catch (e) {
    io.err(`${NAME}: ${args.file}: ${message(e)}`);
    return 2;
  }
  if (args.check) {
    io.err(`${NAME}: ${args.file}: ok (backend ${config.backend}, fabric ${config.fabric.kind === "store" ? "store" : config.fabric.spec.module})`);
    return 0;
  }
  let running: RunningController;
  try {
    running = await runController(config, options);
  } catch (e) {
    io.err(`${NAME}: cannot start: ${message(e)}`);
    return 1;
  }
  const run = untilSignal(io, async () => {
    await running.stop();
    io.err(`${NAME}: stopped`);
  });
  io.err(`${NAME}: ready (backend ${config.backend}, ${running.members.list().length} members)`);
  return run.done;
}
