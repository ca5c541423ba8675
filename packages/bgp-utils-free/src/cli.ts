#!/usr/bin/env node
/**
 * `bgp-utils-free`: runs a speaker from a YAML or JSON file and prints its RIB.
 *
 *   bgp-utils-free run <config> [--exit-after <s>] [--until-routes <n>] [--json] [--quiet]
 *   bgp-utils-free check <config>
 *
 * `run` prints session changes and route events as they happen, and the Loc-RIB on SIGUSR1 and
 * when it ends (SIGINT/SIGTERM, `--exit-after`, or once `--until-routes` prefixes are selected).
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
 */
import { readFile } from "node:fs/promises";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseCliConfig } from "./cli-config.ts";
import { formatCommunity } from "./config.ts";
import { BgpConfigError } from "./errors.ts";
import type { Route } from "./rib.ts";
import { BgpSpeaker } from "./speaker.ts";
import { tcpTransport } from "./transport/tcp.ts";

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); default: those signals. */
  stopSignal?: Promise<void>;
  /** Called to ask for a RIB dump (default: SIGUSR1). */
  onDumpRequest?: (dump: () => void) => void;
}

/** The text `--help` prints. */
export const USAGE = `Usage: bgp-utils-free run <config.yaml|config.json> [--exit-after <seconds>] [--until-routes <n>] [--json] [--quiet]
       bgp-utils-free check <config.yaml|config.json>

Commands:
  run     runs a speaker from the file: session changes and route events as they happen, the Loc-RIB
          on SIGUSR1 and when it ends (SIGINT/SIGTERM, --exit-after, or --until-routes)
  check   validates the file and exits

Options (run):
  --exit-after <seconds>   stop after this long
  --until-routes <n>       stop once n prefixes are selected
  --json                   the RIB as JSON lines
  --quiet                  no session and route events, only the RIB
  -h, --help               this text

Exit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.`;

// node:util parseArgs, the way every cnikit CLI parses (this package stands alone, so not through
// @cnikit/core's helper): strict, unknown flags refused with the known ones, --help exits 0.
const OPTIONS = {
  "exit-after": { type: "string" },
  "until-routes": { type: "string" },
  json: { type: "boolean" },
  quiet: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;
const KNOWN_OPTIONS = "--exit-after, --until-routes, --json, --quiet, --help (-h)";

/** Reads and parses a config file (YAML for .yaml/.yml, else JSON). Throws BgpConfigError with the file name on errors. */
export async function loadConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new BgpConfigError(path, `cannot be read: ${(e as Error).message}`);
  }
  try {
    if (/\.ya?ml$/i.test(path)) {
      const { parse } = await import("yaml");
      return parse(text) as unknown;
    }
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new BgpConfigError(path, `is not valid ${/\.ya?ml$/i.test(path) ? "YAML" : "JSON"}: ${(e as Error).message}`);
  }
}

function origin(o: number): string {
  return o === 0 ? "i" : o === 1 ? "e" : "?";
}

/** One line per selected route, in a fixed-width table (or JSON lines). */
export function formatRib(routes: readonly Route[], json = false): string[] {
  if (json) {
    return routes.map((r) =>
      JSON.stringify({
        prefix: r.prefix,
        nextHop: r.attributes.nextHop,
        from: r.source.address,
        asPath: r.attributes.asPath.flatMap((s) => (s.type === 1 ? [`{${s.asns.join(",")}}`] : s.asns.map(String))).join(" "),
        localPref: r.attributes.localPref,
        med: r.attributes.med,
        origin: origin(r.attributes.origin),
        communities: r.attributes.communities?.map(formatCommunity),
        stale: r.stale || undefined,
      }),
    );
  }
  const rows = routes.map((r) => [
    r.prefix,
    r.attributes.nextHop || "self",
    r.source.address,
    r.attributes.asPath.flatMap((s) => (s.type === 1 ? [`{${s.asns.join(",")}}`] : s.asns.map(String))).join(" ") || "-",
    r.attributes.localPref === undefined ? "-" : String(r.attributes.localPref),
    r.attributes.med === undefined ? "-" : String(r.attributes.med),
    origin(r.attributes.origin),
    [r.stale ? "stale" : "", ...(r.attributes.communities ?? []).map(formatCommunity)].filter(Boolean).join(",") || "-",
  ]);
  const head = ["prefix", "next hop", "from", "as path", "lp", "med", "origin", "flags"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cols: string[]): string =>
    cols
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [fmt(head), ...rows.map(fmt), `${routes.length} route${routes.length === 1 ? "" : "s"}`];
}

/** Runs the CLI with `args` (without node and script). Resolves to the exit code. Never throws. */
export async function runCli(args: string[], io: CliIo): Promise<number> {
  const usageError = (message: string): number => {
    io.err(`bgp-utils-free: ${message}\nRun 'bgp-utils-free --help' for usage.`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (e) {
    const message = (e as Error).message;
    const flag = /'(-[^' ]*)/.exec(message)?.[1];
    const code = (e as { code?: unknown }).code;
    const what = flag === undefined ? message : code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? `unknown option ${flag}` : `${flag} needs a value`;
    return usageError(`${what}; known options: ${KNOWN_OPTIONS}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const [command, file, ...extra] = positionals;
  if (command !== "run" && command !== "check")
    return usageError(command === undefined ? "a command is required: run or check" : `unknown command ${JSON.stringify(command)}; known commands: run, check`);
  if (file === undefined) return usageError(`${command} needs a configuration file (YAML or JSON)`);
  if (extra[0] !== undefined) return usageError(`unexpected argument ${JSON.stringify(extra[0])} (${command} takes one configuration file)`);
  const number = (flag: "exit-after" | "until-routes"): number | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(v) || v < 0) throw new RangeError(`--${flag} needs a number ≥ 0, got ${JSON.stringify(raw)}`);
    return v;
  };
  let exitAfter: number | undefined;
  let untilRoutes: number | undefined;
  try {
    exitAfter = number("exit-after");
    untilRoutes = number("until-routes");
  } catch (e) {
    return usageError((e as Error).message);
  }
  if (command === "check" && (exitAfter !== undefined || untilRoutes !== undefined || values.json || values.quiet))
    return usageError("--exit-after, --until-routes, --json and --quiet apply to run, not check");
  const json = values.json === true;
  const quiet = values.quiet === true;
  let speaker: BgpSpeaker;
  try {
    const cfg = parseCliConfig(await loadConfigFile(file));
    const transport = tcpTransport(
      cfg.listen === false ? {} : { listenAddress: cfg.listen.address, listenPort: cfg.listen.port, ...(cfg.listen.backlog === undefined ? {} : { backlog: cfg.listen.backlog }) },
    );
    speaker = new BgpSpeaker({ ...cfg.speaker, transport, listen: cfg.listen !== false });
    for (const r of cfg.routes) speaker.announce(r.prefix, r.options);
    if (command === "check") {
      io.out(`${file}: ok (${cfg.speaker.peers?.length ?? 0} peers, ${cfg.routes.length} routes)`);
      return 0;
    }
  } catch (e) {
    io.err(e instanceof BgpConfigError ? e.message : `[bgp] ${(e as Error).message}`);
    return 2;
  }
  const dump = (): void => {
    for (const line of formatRib(speaker.routes(), json)) io.out(line);
  };
  if (!quiet) {
    speaker.onSessionState((e) => io.out(`session ${e.peer} ${e.previous} -> ${e.state}${e.reason ? ` (${e.reason})` : ""}`));
    speaker.onRouteChange((e) => io.out(`route ${e.type} ${e.prefix}${e.route ? ` via ${e.route.attributes.nextHop || "self"} from ${e.route.source.address}` : ""}`));
  }
  try {
    await speaker.start();
  } catch (e) {
    io.err(`[bgp] cannot start: ${(e as Error).message}`);
    return 1;
  }
  io.onDumpRequest?.(dump);
  const waits: Promise<void>[] = [];
  if (io.stopSignal) waits.push(io.stopSignal);
  if (exitAfter !== undefined) waits.push(new Promise((r) => setTimeout(r, exitAfter! * 1000)));
  if (untilRoutes !== undefined) {
    waits.push(
      new Promise((resolve) => {
        const check = (): void => {
          if (speaker.routeCount >= untilRoutes!) resolve();
        };
        speaker.onRouteChange(check);
        check();
      }),
    );
  }
  if (waits.length === 0) waits.push(new Promise(() => undefined));
  // Keep the event loop alive while we wait (the speaker's timers are unref'd).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await Promise.race(waits);
  clearInterval(keepAlive);
  dump();
  await speaker.stop();
  return 0;
}

function isMain(): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const stopSignal = new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  const code = await runCli(process.argv.slice(2), {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    stopSignal,
    onDumpRequest: (dump) => process.on("SIGUSR1", dump),
  });
  process.exit(code);
}
