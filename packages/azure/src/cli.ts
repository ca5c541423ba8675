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
import { CliUsageError, Prefix, integerOption, runAsMain, runCliProgram } from "@cnikit/core";
import type { CliCommand, CliOutput, CliValues } from "@cnikit/core";
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

const PLAN_SUBNET_OPTIONS = {
  nodes: { type: "string" },
  "max-pods": { type: "string" },
  surge: { type: "string" },
  subnet: { type: "string" },
  json: { type: "boolean" },
} as const;

function subnetFlag(value: string): Prefix {
  let p: Prefix;
  try {
    p = Prefix.parse(value, { field: "--subnet" });
  } catch (err) {
    throw new CliUsageError(err instanceof Error ? err.message : String(err));
  }
  if (p.family !== 4) throw new CliUsageError(`--subnet must be an IPv4 CIDR, got ${JSON.stringify(value)}`);
  if (p.length > AZURE_MIN_SUBNET_LENGTH) throw new CliUsageError(`--subnet must be a /${AZURE_MIN_SUBNET_LENGTH} or larger (Azure's smallest subnet), got ${JSON.stringify(value)}`);
  return p;
}

function planSubnet(v: CliValues<typeof PLAN_SUBNET_OPTIONS>, io: CliIo): number {
  const nodes = integerOption("--nodes", v.nodes, { min: 0, max: MAX_NODES });
  const maxPods = integerOption("--max-pods", v["max-pods"], MAX_PODS_RANGE);
  const surge = integerOption("--surge", v.surge, { min: 0, max: MAX_SURGE_LIMIT, fallback: 1 });
  if (nodes + surge === 0) throw new CliUsageError("--nodes and --surge are both 0: there is nothing to size");
  const subnet = v.subnet === undefined ? undefined : subnetFlag(v.subnet);

  const input = { nodes, maxPods, surge };
  const rows = sizingTable(input);
  const required = requiredAddresses(input);
  const smallest = smallestFittingPrefix({ required });
  let check: { cidr: string; usable: number; fits: boolean; refusal?: string; headroom?: ReturnType<typeof classicHeadroom> } | undefined;
  if (subnet !== undefined) {
    const cidr = subnet.toString();
    const refusal = classicJoinRefusal({ subnet: cidr, ...input });
    check =
      refusal === undefined
        ? { cidr, usable: usableAddresses(subnet), fits: true, headroom: classicHeadroom({ subnet: cidr, ...input }) }
        : { cidr, usable: usableAddresses(subnet), fits: false, refusal };
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

const planSubnetCommand = (io: CliIo): CliCommand<typeof PLAN_SUBNET_OPTIONS> => ({
  name: "plan-subnet",
  summary: "the worked subnet sizing table for classic Azure CNI (Node Subnet), and whether a subnet fits",
  usage: PLAN_SUBNET_USAGE,
  options: PLAN_SUBNET_OPTIONS,
  run: ({ values }) => planSubnet(values, io),
});

/**
 * Runs the CLI on `argv` (without node and the script), writing to `io`. Never exits the process.
 * @returns 0 fits (or nothing to check), 1 the subnet does not fit, 2 usage error
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const lines: CliOutput = { out: (l) => io.stdout(`${l}\n`), err: (l) => io.stderr(`${l}\n`) };
  return runCliProgram({ name: NAME, usage: USAGE, commands: [planSubnetCommand(io)] }, argv, lines);
}

const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

runAsMain(import.meta.url, NAME, (argv) => main(argv), { internalErrorStatus: 3 });
