/**
 * The command-line plumbing every cnikit CLI shares, over `node:util` `parseArgs`: one way to parse
 * flags (strict: an unknown flag is a usage error naming it and listing the known ones), `--help`
 * / `-h` on every command (usage on stdout, exit 0), subcommand dispatch, and the "run as the main
 * module, flush, exit with the status" ending. Exit statuses: 0 done or help, 2 usage error, others
 * as each CLI documents.
 */
import { parseArgs } from "node:util";
import { isMainModule } from "./process.ts";

/** One flag, as `parseArgs` takes it. */
export interface CliOption {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
}

/** The flags of one command, by long name (without `--`). */
export type CliOptions = Readonly<Record<string, CliOption>>;

type ValueOf<O extends CliOption> = O extends { type: "boolean" } ? (O extends { multiple: true } ? boolean[] : boolean) : O extends { multiple: true } ? string[] : string;

/** The parsed flags: each one absent, or its value. */
export type CliValues<O extends CliOptions> = { -readonly [K in keyof O]?: ValueOf<O[K]> };

/** Where a CLI writes: one or more lines at a time, without the final newline. */
export interface CliOutput {
  out(line: string): void;
  err(line: string): void;
}

/** A usage error (bad flag, missing or bad value, unknown command): exit status 2. */
export class CliUsageError extends Error {
  override readonly name = "CliUsageError";
  readonly code = "usage";
}

/** Whether `err` is a usage error (duck-typed by `code`, so copies of this package agree). */
export function isCliUsageError(err: unknown): err is Error & { code: "usage" } {
  return err instanceof Error && (err as { code?: unknown }).code === "usage";
}

/** One command of a CLI: its words, usage text, flags, positional arguments and body. */
export interface CliCommand<O extends CliOptions = CliOptions> {
  /** The words after the program's name that select it (`"check"`, `"ipam check"`); `""` for a program without commands. */
  readonly name: string;
  /** One line for the program's list of commands. */
  readonly summary: string;
  /** The full text `--help` prints. */
  readonly usage: string;
  readonly options: O;
  /** The names of the positional arguments, in order; each is required. Default: none accepted. */
  readonly positionals?: readonly string[];
  /**
   * Runs the command with its parsed arguments; resolves to the exit status. Throws `CliUsageError`
   * for a bad value (exit 2, the message printed); anything else propagates to the caller.
   */
  run(args: { values: CliValues<O>; positionals: string[] }): number | Promise<number>;
}

/** A CLI with several commands. */
export interface CliProgram {
  /** The executable's name, e.g. `cnikit-calico`: it prefixes every message. */
  readonly name: string;
  readonly commands: readonly CliCommand[];
  /** Printed for `--help`, without arguments and on an unknown command. Default: the list of commands. */
  readonly usage?: string;
}

const HELP: CliOption = { type: "boolean", short: "h" };

/** The flags of `options` as `--long (-s)`, comma-separated, `--help (-h)` included. */
export function knownOptions(options: CliOptions): string {
  const all: CliOptions = { ...options, help: options["help"] ?? HELP };
  return Object.entries(all)
    .map(([long, o]) => (o.short === undefined ? `--${long}` : `--${long} (-${o.short})`))
    .join(", ");
}

/**
 * Parses `argv` (the arguments after the command's words) against `command`'s flags, strictly.
 * @returns `{ help: true }` when `--help` or `-h` is given, else the values and positionals
 * @throws CliUsageError naming an unknown flag (and listing the known ones), a flag without its
 *   value, a missing or surplus positional argument
 */
export function parseCliArgs<O extends CliOptions>(
  command: Pick<CliCommand<O>, "options" | "positionals">,
  argv: readonly string[],
): { help: true } | { help: false; values: CliValues<O>; positionals: string[] } {
  const options = { ...command.options, help: command.options["help"] ?? HELP };
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    const flag = /'(-[^' ]*)/.exec(message)?.[1];
    const what =
      code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag !== undefined
        ? `unknown option ${flag}`
        : code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag !== undefined
          ? `${flag} ${/argument missing/.test(message) ? "needs a value" : "takes no value"}`
          : message;
    throw new CliUsageError(`${what}; known options: ${knownOptions(command.options)}`);
  }
  if (parsed.values["help"] === true) return { help: true };
  const names = command.positionals ?? [];
  const extra = parsed.positionals[names.length];
  if (extra !== undefined) {
    throw new CliUsageError(
      extra.startsWith("-")
        ? `unknown option ${extra}; known options: ${knownOptions(command.options)}`
        : `unexpected argument ${JSON.stringify(extra)}${names.length === 0 ? " (this command takes only options)" : ` (it takes ${names.map((n) => `<${n}>`).join(" ")})`}`,
    );
  }
  const missing = names[parsed.positionals.length];
  if (missing !== undefined) throw new CliUsageError(`<${missing}> is required`);
  const { help: _help, ...values } = parsed.values;
  return { help: false, values: values as CliValues<O>, positionals: parsed.positionals };
}

/**
 * Runs one command: parses `argv`, prints the usage on stdout for `--help` (0), runs it, and turns
 * a usage error into its message on stderr (2). `prefix` starts each message (the program and the
 * command's words, e.g. `cnikit-calico ipam check`).
 */
export async function runCliCommand(prefix: string, command: CliCommand, argv: readonly string[], io: CliOutput): Promise<number> {
  try {
    const parsed = parseCliArgs(command, argv);
    if (parsed.help) {
      io.out(command.usage);
      return 0;
    }
    return await command.run(parsed);
  } catch (err) {
    if (!isCliUsageError(err)) throw err;
    io.err(`${prefix}: ${err.message}\nRun '${prefix} --help' for usage.`);
    return 2;
  }
}

/** The default usage of a program: its commands, one line each. */
export function programUsage(program: Pick<CliProgram, "name" | "commands">): string {
  const width = Math.max(...program.commands.map((c) => c.name.length));
  return [
    `Usage: ${program.name} <command> [options]`,
    "",
    "Commands:",
    ...program.commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    `Run '${program.name} <command> --help' for the command's options.`,
  ].join("\n");
}

/**
 * Runs a program with commands: picks the command whose words start `argv` (the longest), then runs
 * it as `runCliCommand` does. Without arguments: the usage on stderr, 2; `--help`, `-h` or `help`:
 * the usage on stdout, 0; an unknown command or flag: a message listing the known ones, 2.
 */
export async function runCliProgram(program: CliProgram, argv: readonly string[], io: CliOutput): Promise<number> {
  const usage = program.usage ?? programUsage(program);
  const [first] = argv;
  if (first === undefined) {
    io.err(usage);
    return 2;
  }
  if (first === "--help" || first === "-h" || first === "help") {
    io.out(usage);
    return 0;
  }
  const matches = program.commands
    .filter((c) => {
      const words = c.name.split(" ");
      return words.every((w, i) => argv[i] === w);
    })
    .sort((a, b) => b.name.split(" ").length - a.name.split(" ").length);
  const command = matches[0];
  if (command === undefined) {
    const known = program.commands.map((c) => c.name).join(", ");
    // Name the words that were meant as the command: two when the first begins a two-word command.
    const typed = program.commands.some((c) => c.name.startsWith(`${first} `)) ? argv.slice(0, 2).join(" ") : first;
    const what = first.startsWith("-") ? `unknown option ${first} (known before a command: --help (-h))` : `unknown command ${JSON.stringify(typed)}`;
    io.err(`${program.name}: ${what}; known commands: ${known}\n${usage}`);
    return 2;
  }
  return runCliCommand(`${program.name} ${command.name}`, command, argv.slice(command.name.split(" ").length), io);
}

/** Parses a whole number from `min` to `max` given to `flag`; `fallback` when absent (else required). */
export function integerOption(flag: string, value: string | undefined, range: { min: number; max: number; fallback?: number }): number {
  if (value === undefined) {
    if (range.fallback !== undefined) return range.fallback;
    throw new CliUsageError(`${flag} is required (an integer from ${range.min} to ${range.max})`);
  }
  if (!/^\d+$/.test(value) || Number(value) < range.min || Number(value) > range.max) {
    throw new CliUsageError(`${flag} must be an integer from ${range.min} to ${range.max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** The comma-separated items of a flag's value (trimmed, empty items dropped). */
export function listOption(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Line-oriented `CliOutput` on the process's stdout and stderr. */
export const processOutput: CliOutput = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

/**
 * The ending of every bin: when the module at `moduleUrl` is the process's main script (real paths
 * compared, so an npm `.bin` symlink or a wrapper counts), runs `main` on the arguments, flushes
 * stdout and stderr, and exits with its status. A throw is an internal error: its stack on stderr,
 * prefixed with `name`, then exit `internalErrorStatus` (default 1). Does nothing when imported.
 */
export function runAsMain(moduleUrl: string, name: string, main: (argv: string[]) => number | Promise<number>, options: { internalErrorStatus?: number } = {}): void {
  if (!isMainModule(moduleUrl)) return;
  const exit = (code: number): void => void process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
  Promise.resolve()
    .then(() => main(process.argv.slice(2)))
    .then(exit, (err: unknown) => {
      process.stderr.write(`${name}: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      exit(options.internalErrorStatus ?? 1);
    });
}
