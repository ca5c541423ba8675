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
import { CniError, ConfigError, integerOption, runCliProgram } from "@cnikit/core";
import type { CliCommand, CliValues } from "@cnikit/core";
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

const STATE_ROOT = `--state-root <dir>   where labs keep their state (default ${DEFAULT_STATE_ROOT})`;

/** The usage text. */
export function usage(): string {
  const modes = builtinBackends
    .filter((b) => b.backend.name !== "reference")
    .map((b) => `${b.backend.name}: ${b.configs.map((c) => c.label).join(", ")}`)
    .join("; ");
  return [
    "Usage:",
    `  pnpm lab up --backend ${builtinBackends.map((b) => b.backend.name).join("|")} [--mode <label>] --nodes N [--pods-per-node K] [--name <lab>]`,
    "              [--subnets 1|2] [--config <backend config .json>] [--log-level debug|info|warn|error] [--keep-on-failure]",
    "  pnpm lab check [--name <lab>] [--timeout <ms>] [--json]",
    "  pnpm lab down [--name <lab>]",
    "  pnpm lab status [--json]",
    "Every command also takes --state-root <dir>; 'pnpm lab <command> --help' lists its options.",
    `modes: ${modes}`,
    `state: ${DEFAULT_STATE_ROOT}/<name>/state.json (default name: lab)`,
  ].join("\n");
}

const COMMON = { "state-root": { type: "string" } } as const;
const UP_OPTIONS = {
  ...COMMON,
  backend: { type: "string" },
  mode: { type: "string" },
  nodes: { type: "string" },
  "pods-per-node": { type: "string" },
  name: { type: "string" },
  subnets: { type: "string" },
  config: { type: "string" },
  "log-level": { type: "string" },
  "keep-on-failure": { type: "boolean" },
} as const;
const CHECK_OPTIONS = { ...COMMON, name: { type: "string" }, timeout: { type: "string" }, json: { type: "boolean" } } as const;
const DOWN_OPTIONS = { ...COMMON, name: { type: "string" } } as const;
const STATUS_OPTIONS = { ...COMMON, json: { type: "boolean" } } as const;

/** The flags of `lab up`, as parsed. */
export type UpValues = CliValues<typeof UP_OPTIONS>;

/** A whole number flag (at most 1e6), undefined when absent. Throws `ConfigError` naming the flag. */
function whole(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  try {
    return integerOption(flag, value, { min: 0, max: 1_000_000 });
  } catch {
    throw new ConfigError({ component: "lab", field: flag, rule: "must be a whole number", value });
  }
}

/** `up` options from its flags. Throws `ConfigError` naming the flag. */
export function upOptions(values: UpValues, log: (line: string) => void): StartLabOptions {
  const backend = values.backend;
  if (backend === undefined) throw new ConfigError({ component: "lab", field: "--backend", rule: `is required (${builtinBackends.map((b) => b.backend.name).join(", ")})` });
  const nodes = whole(values.nodes, "--nodes");
  if (nodes === undefined) throw new ConfigError({ component: "lab", field: "--nodes", rule: "is required (a whole number of nodes, e.g. 3)" });
  const options: StartLabOptions = { backend, nodes, podsPerNode: whole(values["pods-per-node"], "--pods-per-node") ?? 2, log };
  if (values.mode !== undefined) options.mode = values.mode;
  if (values.name !== undefined) options.name = values.name;
  const subnets = whole(values.subnets, "--subnets");
  if (subnets !== undefined) {
    if (subnets !== 1 && subnets !== 2) throw new ConfigError({ component: "lab", field: "--subnets", rule: "must be 1 or 2", value: subnets });
    options.subnets = subnets;
  }
  const config = values.config;
  if (config !== undefined) {
    try {
      options.backendConfig = JSON.parse(readFileSync(config, "utf8")) as unknown;
    } catch (e) {
      throw new ConfigError({ component: "lab", field: "--config", rule: `must be a readable JSON file (${(e as Error).message})`, value: config });
    }
  }
  const level = values["log-level"];
  if (level !== undefined) {
    if (level !== "debug" && level !== "info" && level !== "warn" && level !== "error")
      throw new ConfigError({ component: "lab", field: "--log-level", rule: "must be debug, info, warn or error", value: level });
    options.logLevel = level;
  }
  if (values["state-root"] !== undefined) options.stateRoot = values["state-root"];
  if (values["keep-on-failure"] === true) options.keepOnFailure = true;
  return options;
}

function commands(io: CliIo): CliCommand[] {
  const up: CliCommand<typeof UP_OPTIONS> = {
    name: "up",
    summary: "builds a lab: nodes, etcd, one cnikitd per node, pods",
    usage: `Usage: pnpm lab up --backend <name> [--mode <label>] --nodes N [options]

Options:
  --backend <name>       a built-in backend: ${builtinBackends.map((b) => b.backend.name).join(", ")}
  --mode <label>         one of the backend's fixture modes (default: its first)
  --nodes <N>            nodes
  --pods-per-node <K>    pods on each node (default 2)
  --name <lab>           the lab's name (default lab)
  --subnets 1|2          underlay subnets (2: nodes split over two, behind a router)
  --config <file.json>   the backend's config instead of the mode's
  --log-level <level>    debug, info, warn or error
  --keep-on-failure      leave what was built when a step fails
  ${STATE_ROOT}
  -h, --help             this text`,
    options: UP_OPTIONS,
    run: async ({ values }) => {
      const lab = await startLab(upOptions(values, (line) => io.err(`lab: ${line}`)));
      lab.close();
      io.out(`lab ${lab.name} is up: ${lab.spec.backend} ${lab.spec.mode}, ${lab.nodes.length} node(s), ${lab.pods.length} pod(s)`);
      for (const n of lab.nodes) {
        const pods = lab.pods.filter((p) => p.node === n.name);
        io.out(`  ${n.name} ${n.address} (${n.subnet}, ns ${n.ns}): ${pods.map((p) => `${p.name} ${p.ip}`).join(", ") || "no pods"}`);
      }
      io.out(`next: pnpm lab check --name ${lab.name}; pnpm lab down --name ${lab.name}`);
      return 0;
    },
  };
  const check: CliCommand<typeof CHECK_OPTIONS> = {
    name: "check",
    summary: "probes every pod pair: exit 0 when every pair that must reach did, without NAT",
    usage: `Usage: pnpm lab check [--name <lab>] [--timeout <ms>] [--json]

Options:
  --name <lab>           the lab (default lab)
  --timeout <ms>         per probe
  --json                 the matrix as JSON
  ${STATE_ROOT}
  -h, --help             this text`,
    options: CHECK_OPTIONS,
    run: async ({ values }) => {
      const timeout = whole(values.timeout, "--timeout");
      const lab = openLab(values.name ?? "lab", { stateRoot: values["state-root"] ?? DEFAULT_STATE_ROOT });
      try {
        const m = await lab.matrix(timeout !== undefined ? { timeoutMs: timeout } : {});
        if (values.json === true) io.out(JSON.stringify(m, null, 2));
        else {
          io.out(`lab ${lab.name}: ${lab.spec.backend} ${lab.spec.mode}, ${lab.nodes.length} node(s), ${lab.pods.length} pod(s)`);
          io.out(formatMatrix(m));
        }
        return m.ok ? 0 : 1;
      } finally {
        lab.close();
      }
    },
  };
  const down: CliCommand<typeof DOWN_OPTIONS> = {
    name: "down",
    summary: "removes a lab: its processes, namespaces and state",
    usage: `Usage: pnpm lab down [--name <lab>]

Options:
  --name <lab>           the lab (default lab)
  ${STATE_ROOT}
  -h, --help             this text`,
    options: DOWN_OPTIONS,
    run: async ({ values }) => {
      const name = values.name ?? "lab";
      const r = await downLab(name, { stateRoot: values["state-root"] ?? DEFAULT_STATE_ROOT });
      if (!r.existed) io.out(`lab ${name}: nothing to remove`);
      else if (r.leftovers.length > 0) {
        io.err(`lab ${name}: could not remove ${r.leftovers.join(", ")}; state kept, run down again`);
        return 1;
      } else io.out(`lab ${name} removed: ${r.killed.length} process(es), ${r.namespaces.length} namespace(s)`);
      return 0;
    },
  };
  const status: CliCommand<typeof STATUS_OPTIONS> = {
    name: "status",
    summary: "lists the labs with their processes and namespaces",
    usage: `Usage: pnpm lab status [--json]

Options:
  --json                 the list as JSON
  ${STATE_ROOT}
  -h, --help             this text`,
    options: STATUS_OPTIONS,
    run: ({ values }) => {
      const labs = listLabs(values["state-root"] ?? DEFAULT_STATE_ROOT);
      if (values.json === true) io.out(JSON.stringify(labs, null, 2));
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
    },
  };
  return [up, check, down, status];
}

/**
 * Runs the CLI; resolves with the exit status. Never calls process.exit. 0 done, 1 failed (check:
 * a pair that must reach did not), 2 bad usage or a bad option (a `ConfigError` naming the flag).
 */
export async function labMain(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  try {
    return await runCliProgram({ name: "lab", usage: usage(), commands: commands(io) }, argv, io);
  } catch (e) {
    io.err(`lab ${argv[0] ?? ""}: ${e instanceof Error ? e.message : String(e)}${e instanceof CniError && !(e instanceof ConfigError) ? ` (code ${e.code})` : ""}`);
    return e instanceof ConfigError ? 2 : 1;
  }
}
