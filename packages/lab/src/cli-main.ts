/**
 * `pnpm lab <command>`: the lab's command line (run by src/cli.ts).
 *
 * ```
 * lab up --backend <built-in backend> [--mode <label>] --nodes N [--pods-per-node K] [--name <lab>]
 *        [--subnets 1|2] [--config <backend config .json>] [--log-level debug|info|warn|error]
 *        [--keep-on-failure]
 * lab check [--name <lab>] [--timeout <ms>] [--json]
 * lab down [--name <lab>]
 * lab status [--json]
 * ```
 *
 * Exit status: 0 done (check: every pair that must reach did, no NAT between pods); 1 failed
 * (check: a pair that must reach did not); 2 bad usage or a bad option (the message names it).
 */
import { readFileSync } from "node:fs";
import { CniError, ConfigError } from "@cnikit/core";
import { builtinBackends } from "@cnikit/backends";
import { downLab } from "./down.ts";
import { listLabs, openLab, startLab, type StartLabOptions } from "./lab.ts";
import { formatMatrix } from "./matrix.ts";
import { DEFAULT_STATE_ROOT } from "./plan.ts";

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const processIo: CliIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

/** The usage text. */
export function usage(): string {
  const modes = builtinBackends
    .filter((b) => b.backend.name !== "reference")
    .map((b) => `${b.backend.name}: ${b.configs.map((c) => c.label).join(", ")}`)
    .join("; ");
  return [
    "usage:",
    `  pnpm lab up --backend ${builtinBackends.map((b) => b.backend.name).join("|")} [--mode <label>] --nodes N [--pods-per-node K] [--name <lab>]`,
    "              [--subnets 1|2] [--config <backend config .json>] [--log-level debug|info|warn|error] [--keep-on-failure]",
    "  pnpm lab check [--name <lab>] [--timeout <ms>] [--json]",
    "  pnpm lab down [--name <lab>]",
    "  pnpm lab status [--json]",
    `modes: ${modes}`,
    `state: ${DEFAULT_STATE_ROOT}/<name>/state.json (default name: lab)`,
  ].join("\n");
}

/** Parsed `--key value` flags and bare `--flag`s. */
export interface ParsedArgs {
  command: string;
  flags: Map<string, string | true>;
}

const BOOLEAN_FLAGS = new Set(["json", "keep-on-failure", "help"]);
const VALUE_FLAGS: Record<string, string[]> = {
  up: ["backend", "mode", "nodes", "pods-per-node", "name", "subnets", "config", "log-level", "state-root"],
  check: ["name", "timeout", "state-root"],
  down: ["name", "state-root"],
  status: ["state-root"],
};

/** Parses argv (without node and script). Throws `ConfigError` naming the bad argument. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const [command = "", ...rest] = argv;
  const flags = new Map<string, string | true>();
  const allowed = VALUE_FLAGS[command];
  if (!allowed) throw new ConfigError({ component: "lab", field: "command", rule: "must be up, check, down or status", value: command });
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new ConfigError({ component: "lab", field: a, rule: "is not an option (options look like --name value)" });
    const key = m[1]!;
    if (BOOLEAN_FLAGS.has(key)) {
      flags.set(key, true);
      continue;
    }
    if (!allowed.includes(key)) throw new ConfigError({ component: "lab", field: `--${key}`, rule: `is not an option of ${command} (options: ${[...allowed, ...BOOLEAN_FLAGS].map((k) => `--${k}`).join(", ")})` });
    const value = m[2] ?? rest[++i];
    if (value === undefined || (m[2] === undefined && value.startsWith("--"))) throw new ConfigError({ component: "lab", field: `--${key}`, rule: "needs a value" });
    flags.set(key, value);
  }
  return { command, flags };
}

function intFlag(flags: Map<string, string | true>, key: string, dflt?: number): number | undefined {
  const v = flags.get(key);
  if (v === undefined) return dflt;
  if (typeof v !== "string" || !/^\d+$/.test(v)) throw new ConfigError({ component: "lab", field: `--${key}`, rule: "must be a whole number", value: v });
  return Number(v);
}

function str(flags: Map<string, string | true>, key: string): string | undefined {
  const v = flags.get(key);
  return typeof v === "string" ? v : undefined;
}

/** `up` options from flags. Throws `ConfigError` naming the flag. */
export function upOptions(flags: Map<string, string | true>, log: (line: string) => void): StartLabOptions {
  const backend = str(flags, "backend");
  if (backend === undefined) throw new ConfigError({ component: "lab", field: "--backend", rule: "is required (flannel or calico)" });
  const nodes = intFlag(flags, "nodes");
  if (nodes === undefined) throw new ConfigError({ component: "lab", field: "--nodes", rule: "is required (a whole number of nodes, e.g. 3)" });
  const options: StartLabOptions = { backend, nodes, podsPerNode: intFlag(flags, "pods-per-node", 2)!, log };
  const mode = str(flags, "mode");
  if (mode !== undefined) options.mode = mode;
  const name = str(flags, "name");
  if (name !== undefined) options.name = name;
  const subnets = intFlag(flags, "subnets");
  if (subnets !== undefined) {
    if (subnets !== 1 && subnets !== 2) throw new ConfigError({ component: "lab", field: "--subnets", rule: "must be 1 or 2", value: subnets });
    options.subnets = subnets;
  }
  const config = str(flags, "config");
  if (config !== undefined) {
    try {
      options.backendConfig = JSON.parse(readFileSync(config, "utf8")) as unknown;
    } catch (e) {
      throw new ConfigError({ component: "lab", field: "--config", rule: `must be a readable JSON file (${(e as Error).message})`, value: config });
    }
  }
  const level = str(flags, "log-level");
  if (level !== undefined) {
    if (level !== "debug" && level !== "info" && level !== "warn" && level !== "error") throw new ConfigError({ component: "lab", field: "--log-level", rule: "must be debug, info, warn or error", value: level });
    options.logLevel = level;
  }
  const root = str(flags, "state-root");
  if (root !== undefined) options.stateRoot = root;
  if (flags.get("keep-on-failure") === true) options.keepOnFailure = true;
  return options;
}

/** Runs the CLI; resolves with the exit status. Never calls process.exit. */
export async function labMain(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    io.err(usage());
    return argv.length === 0 ? 2 : 0;
  }
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    io.err(`lab: ${(e as Error).message}\n${usage()}`);
    return 2;
  }
  const { command, flags } = parsed;
  const name = str(flags, "name") ?? "lab";
  const stateRoot = str(flags, "state-root") ?? DEFAULT_STATE_ROOT;
  try {
    switch (command) {
      case "up": {
        const options = upOptions(flags, (line) => io.err(`lab: ${line}`));
        const lab = await startLab(options);
        lab.close();
        io.out(`lab ${lab.name} is up: ${lab.spec.backend} ${lab.spec.mode}, ${lab.nodes.length} node(s), ${lab.pods.length} pod(s)`);
        for (const n of lab.nodes) {
          const pods = lab.pods.filter((p) => p.node === n.name);
          io.out(`  ${n.name} ${n.address} (${n.subnet}, ns ${n.ns}): ${pods.map((p) => `${p.name} ${p.ip}`).join(", ") || "no pods"}`);
        }
        io.out(`next: pnpm lab check --name ${lab.name}; pnpm lab down --name ${lab.name}`);
        return 0;
      }
      case "check": {
        const lab = openLab(name, { stateRoot });
        try {
          const timeout = intFlag(flags, "timeout");
          const m = await lab.matrix(timeout !== undefined ? { timeoutMs: timeout } : {});
          if (flags.get("json") === true) io.out(JSON.stringify(m, null, 2));
          else {
            io.out(`lab ${lab.name}: ${lab.spec.backend} ${lab.spec.mode}, ${lab.nodes.length} node(s), ${lab.pods.length} pod(s)`);
            io.out(formatMatrix(m));
          }
          return m.ok ? 0 : 1;
        } finally {
          lab.close();
        }
      }
      case "down": {
        const r = await downLab(name, { stateRoot });
        if (!r.existed) io.out(`lab ${name}: nothing to remove`);
        else if (r.leftovers.length > 0) {
          io.err(`lab ${name}: could not remove ${r.leftovers.join(", ")}; state kept, run down again`);
          return 1;
        } else io.out(`lab ${name} removed: ${r.killed.length} process(es), ${r.namespaces.length} namespace(s)`);
        return 0;
      }
      case "status": {
        const labs = listLabs(stateRoot);
        if (flags.get("json") === true) io.out(JSON.stringify(labs, null, 2));
        else if (labs.length === 0) io.out("no labs");
        else {
          for (const l of labs) {
            if (l.phase === "unreadable") {
              io.out(`${l.name}: unreadable state (${l.error ?? ""})`);
              continue;
            }
            const procs = l.processes!;
            io.out(
              `${l.name}: ${l.phase}, ${l.backend} ${l.mode}, ${l.nodes} node(s), ${l.pods} pod(s), processes ${procs.running}/${procs.recorded} running` +
                `${procs.stopped.length > 0 ? ` (stopped: ${procs.stopped.join(", ")})` : ""}, namespaces ${l.namespaces!.present}/${l.namespaces!.recorded}` +
                `${l.error !== undefined ? `; error: ${l.error.split("\n")[0]}` : ""}`,
            );
          }
        }
        return 0;
      }
    }
  } catch (e) {
    const code = e instanceof ConfigError ? 2 : 1;
    io.err(`lab ${command}: ${e instanceof Error ? e.message : String(e)}${e instanceof CniError && !(e instanceof ConfigError) ? ` (code ${e.code})` : ""}`);
    return code;
  }
  return 2;
}
