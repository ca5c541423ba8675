/**
 * `cnikit-controller --config <file> [--check]`: runs a backend's cluster-level controller until
 * SIGTERM / SIGINT (controller.ts has the config format).
 *
 * Exit status: 0 after a clean stop; 1 when the controller cannot start (store, fabric module or
 * the controller's own start failed); 2 for bad usage or a bad config file (the message names the
 * field). `--check` validates the config and exits. Logs are JSON lines on stderr.
 */
import { loadControllerConfig, runController, type ControllerConfig, type RunControllerOptions, type RunningController } from "./controller.ts";
import type { CliValues } from "@cnikit/core";
import { CONFIG_OPTIONS, configFile, runMainCommand, untilSignal, type DaemonMainIo } from "./daemon-main.ts";

const NAME = "cnikit-controller";
const USAGE = `Usage: ${NAME} --config <file> [--check]

Runs a backend's cluster-level controller until SIGTERM / SIGINT (logs are JSON lines on stderr).

Options:
  --config <file>   the controller's config file (JSON)
  --check           validate the config and exit
  -h, --help        this text

Exit status: 0 after a clean stop (--check: valid), 1 the controller cannot start, 2 bad usage or a
bad config file (the message names the field).`;

const processIo: DaemonMainIo = {
  err: (line) => void process.stderr.write(`${line}\n`),
  out: (line) => void process.stdout.write(`${line}\n`),
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
  return runMainCommand(NAME, { name: "", summary: "a backend's cluster-level controller", usage: USAGE, options: CONFIG_OPTIONS, run: ({ values }) => controller(values, io, options) }, argv, io);
}

async function controller(values: CliValues<typeof CONFIG_OPTIONS>, io: DaemonMainIo, options: RunControllerOptions): Promise<number> {
  const file = configFile(values);
  let config: ControllerConfig;
  try {
    config = await loadControllerConfig(file);
  } catch (e) {
    io.err(`${NAME}: ${file}: ${message(e)}`);
    return 2;
  }
  if (values.check === true) {
    io.err(`${NAME}: ${file}: ok (backend ${config.backend}, fabric ${config.fabric.kind === "store" ? "store" : config.fabric.spec.module})`);
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
