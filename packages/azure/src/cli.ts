#!/usr/bin/env node
/**
 * cnikit-azure: the subnet math AKS users get wrong, on the command line.
 *
 *   cnikit-azure plan-subnet --nodes n --max-pods m [--surge s] [--subnet <cidr>] [--json]
 *
 * prints the reference's worked sizing table for n nodes (the autoscaler's max) of maxPods pods
 * with s upgrade-surge nodes (default 1): node addresses, pod addresses, required
 * (n + s) × (maxPods + 1), plus Azure's 5 reserved, the largest prefix that is too small and the
 * smallest that fits. With `--subnet` it also says whether that subnet fits: when it does, the exact
 * headroom (how many more nodes, spare addresses) and exit 0; when it does not, the table on stdout,
 * then AKS's refusal ("Pre-allocated IPs N exceeds IPs available M: ...") on stderr, and exit 1.
 * `--json` prints one JSON object instead of the text (the refusal is in it, and on stderr too).
 *
 * Exit status: 0 fits (or no --subnet), 1 the subnet does not fit, 2 usage error (unknown command
 * or flag, bad value: the message names the flag and the rule).
 *
 * Importable: `main(argv, { stdout, stderr })` returns the exit status and never exits the process.
 * Run as the main module (also through an npm `.bin` symlink: real paths are compared) it exits
 * with that status.
 */
import { parseArgs } from "node:util";
import { Prefix, isMainModule } from "@cnikit/core";
import { MAX_PODS_RANGE, MAX_SURGE_LIMIT } from "./config.ts";
import { AZURE_MIN_SUBNET_LENGTH, classicHeadroom, classicJoinRefusal, formatCount, formatSizingTable, requiredAddresses, sizingTable, smallestFittingPrefix, usableAddresses } from "./sizing.ts";

const NAME = "cnikit-azure";
/** The most nodes `--nodes` accepts: AKS's node limit per cluster. */
const MAX_NODES = 5000;

export const USAGE = `Usage: ${NAME} <command> [options]

Commands:
  plan-subnet   the worked subnet sizing table for classic Azure CNI (Node Subnet), and whether a subnet fits

Run '${NAME} <command> --help' for the command's options.`;

export const PLAN_SUBNET_USAGE = `Usage: ${NAME} plan-subnet --nodes <n> --max-pods <m> [--surge <s>] [--subnet <cidr>] [--json]

Prints AKS's sizing for classic Azure CNI: every node holds 1 + maxPods subnet addresses from boot,
so a pool of n nodes needs (n + surge) × (maxPods + 1) addresses, plus the 5 Azure reserves per subnet.

Options:
  --nodes <n>        the most nodes the pool can reach (the autoscaler's max), 0 to ${MAX_NODES}
  --max-pods <m>     pods per node, ${MAX_PODS_RANGE.min} to ${MAX_PODS_RANGE.max} (Azure CNI's default is 30)
  --surge <s>        upgrade-surge nodes (AKS's max surge), 0 to ${MAX_SURGE_LIMIT}, default 1
  --subnet <cidr>    an IPv4 node subnet to check (/${AZURE_MIN_SUBNET_LENGTH} or larger): fits or not, and the exact headroom
  --json             one JSON object on stdout instead of the table
  -h, --help         this text

Exit status: 0 fits (or no --subnet), 1 the subnet does not fit (AKS's refusal on stderr), 2 usage error.`;

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

class UsageError extends Error {}

const PLAN_SUBNET_OPTIONS = {
  nodes: { type: "string" },
  "max-pods": { type: "string" },
  surge: { type: "string" },
  subnet: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const knownFlags = (options: Readonly<Record<string, { readonly type: string; readonly short?: string }>>): string =>
  Object.entries(options)
    .map(([long, o]) => (o.short === undefined ? `--${long}` : `--${long} (-${o.short})`))
    .join(", ");

function integer(flag: string, value: string | undefined, min: number, max: number, dflt?: number): number {
  if (value === undefined) {
    if (dflt !== undefined) return dflt;
    throw new UsageError(`--${flag} is required (an integer from ${min} to ${max})`);
  }
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return Number(value);
}

function subnetFlag(value: string): Prefix {
  let p: Prefix;
  try {
    p = Prefix.parse(value, { field: "--subnet" });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (p.family !== 4) throw new UsageError(`--subnet must be an IPv4 CIDR, got ${JSON.stringify(value)}`);
  if (p.length > AZURE_MIN_SUBNET_LENGTH) throw new UsageError(`--subnet must be a /${AZURE_MIN_SUBNET_LENGTH} or larger (Azure's smallest subnet), got ${JSON.stringify(value)}`);
  return p;
}

function planSubnet(argv: string[], io: CliIo): number {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: PLAN_SUBNET_OPTIONS, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}; known options of plan-subnet: ${knownFlags(PLAN_SUBNET_OPTIONS)}`);
  }
  const v = parsed.values;
  if (v.help) {
    io.stdout(`${PLAN_SUBNET_USAGE}\n`);
    return 0;
  }
  const nodes = integer("nodes", v.nodes, 0, MAX_NODES);
  const maxPods = integer("max-pods", v["max-pods"], MAX_PODS_RANGE.min, MAX_PODS_RANGE.max);
  const surge = integer("surge", v.surge, 0, MAX_SURGE_LIMIT, 1);
  if (nodes + surge === 0) throw new UsageError("--nodes and --surge are both 0: there is nothing to size");
  const subnet = v.subnet === undefined ? undefined : subnetFlag(v.subnet);

  const input = { nodes, maxPods, surge };
  const rows = sizingTable(input);
  const required = requiredAddresses(input);
  const smallest = smallestFittingPrefix({ required });
  let check: { cidr: string; usable: number; fits: boolean; refusal?: string; headroom?: ReturnType<typeof classicHeadroom> } | undefined;
  if (subnet !== undefined) {
    const cidr = subnet.toString();
    const refusal = classicJoinRefusal({ subnet: cidr, ...input });
    check = refusal === undefined ? { cidr, usable: usableAddresses(subnet), fits: true, headroom: classicHeadroom({ subnet: cidr, ...input }) } : { cidr, usable: usableAddresses(subnet), fits: false, refusal };
  }

  if (v.json) {
    io.stdout(`${JSON.stringify({ nodes, maxPods, surge, required, smallestPrefix: smallest, rows, ...(check === undefined ? {} : { subnet: check }) }, null, 2)}\n`);
  } else {
    io.stdout(`Subnet sizing for ${formatCount(nodes)} node${nodes === 1 ? "" : "s"} × maxPods ${maxPods}, surge ${surge}: (n + ${surge}) × (maxPods + 1)\n\n`);
    io.stdout(`${formatSizingTable(rows)}\n`);
    if (check?.headroom !== undefined) {
      const h = check.headroom;
      io.stdout(
        `\n${check.cidr} fits: ${formatCount(required)} required of ${formatCount(check.usable)} usable. ` +
          `Headroom: ${formatCount(h.nodesThatFit)} more node${h.nodesThatFit === 1 ? "" : "s"} (${h.perNode} addresses each) with the surge reserve of ${formatCount(h.surgeReserve)} kept free, ` +
          `${formatCount(h.spare)} address${h.spare === 1 ? "" : "es"} spare after that.\n`,
      );
    }
  }
  if (check?.refusal !== undefined) {
    io.stderr(`${check.cidr} does not fit: ${check.refusal}\n`);
    return 1;
  }
  return 0;
}

/**
 * Runs the CLI on `argv` (without node and the script), writing to `io`. Never exits the process.
 * @returns 0 fits (or nothing to check), 1 the subnet does not fit, 2 usage error
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined) {
      io.stderr(`${USAGE}\n`);
      return 2;
    }
    if (command === "--help" || command === "-h" || command === "help") {
      io.stdout(`${USAGE}\n`);
      return 0;
    }
    if (command === "plan-subnet") return planSubnet(rest, io);
    if (command.startsWith("-")) throw new UsageError(`unknown option ${JSON.stringify(command)}; known options: --help (-h); commands: plan-subnet`);
    throw new UsageError(`unknown command ${JSON.stringify(command)}; known commands: plan-subnet`);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`${NAME}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

if (isMainModule(import.meta.url)) {
  main(process.argv.slice(2)).then(
    // Flush both streams before exiting: writes to pipes are asynchronous.
    (code) => process.stdout.write("", () => process.stderr.write("", () => process.exit(code))),
    (err: unknown) => process.stderr.write(`${NAME}: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`, () => process.exit(3)),
  );
}
