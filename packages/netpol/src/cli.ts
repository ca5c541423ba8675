#!/usr/bin/env node
/**
 * cnikit-netpol: NetworkPolicy from the command line.
 *
 *   cnikit-netpol explain --policies <file> --cluster <file> [--port 80[,81]] [--protocol TCP[,UDP,SCTP]]
 *       prints the reachability matrix per probe (default TCP/80)
 *   cnikit-netpol explain --policies <file> --cluster <file> --from x/a --to y/b [--port 80] [--protocol TCP]
 *       prints the verdict for one connection and the policies and rules that decided each direction
 *   cnikit-netpol nft --policies <file> --cluster <file> --node <name> [--families 4[,6]]
 *       prints the nftables ruleset of one node
 *   cnikit-netpol filters --policies <file> --cluster <file> --node <name>
 *       prints the NodeDataplane filters of one node (JSON)
 *
 * Files are YAML or JSON (one or many documents, List kinds). The cluster file holds namespaces and
 * pods (see parseCluster). Exit status: 0 done, 2 bad usage or invalid input (the message names
 * the file, field and rule).
 */
import { readFileSync } from "node:fs";
import { CliUsageError, listOption, runAsMain, runCliProgram, type CliCommand, type CliOutput, type CliValues, type Family } from "@cnikit/core";
import { compileFilters, compileWarnings } from "./compile.ts";
import { PolicyEvaluator, explainVerdict, formatMatrix, type Probe } from "./evaluate.ts";
import { compileNft, renderNft } from "./nft.ts";
import { parseCluster, parsePolicies } from "./parse.ts";
import { POLICY_PROTOCOLS, type PolicyModel, type PolicyProtocol } from "./types.ts";

const NAME = "cnikit-netpol";

/** The usage text printed on `--help` and usage errors. */
export const USAGE = `Usage:
  ${NAME} explain --policies <file> --cluster <file> [--port 80[,81]] [--protocol TCP[,UDP,SCTP]]
  ${NAME} explain --policies <file> --cluster <file> --from <ns/pod|ip> --to <ns/pod|ip> [--port 80] [--protocol TCP]
  ${NAME} nft --policies <file> --cluster <file> --node <name> [--families 4[,6]]
  ${NAME} filters --policies <file> --cluster <file> --node <name>

Files are YAML or JSON (one or many documents, List kinds); the cluster file holds namespaces and pods.
Run '${NAME} <command> --help' for the command's options.

Exit status: 0 done, 2 bad usage or invalid input (the message names the file, field and rule).`;

const FILES = `  --policies <file>    NetworkPolicies (YAML or JSON, one or many documents, List kinds)
  --cluster <file>     namespaces and pods (YAML or JSON)`;

/** Where the CLI writes; tests pass collectors. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const MODEL_OPTIONS = { policies: { type: "string" }, cluster: { type: "string" } } as const;
const EXPLAIN_OPTIONS = { ...MODEL_OPTIONS, from: { type: "string" }, to: { type: "string" }, port: { type: "string" }, protocol: { type: "string" } } as const;
const NFT_OPTIONS = { ...MODEL_OPTIONS, node: { type: "string" }, families: { type: "string" } } as const;
const FILTERS_OPTIONS = { ...MODEL_OPTIONS, node: { type: "string" } } as const;

function need(value: string | undefined, flag: string): string {
  if (value === undefined) throw new CliUsageError(`--${flag} is required`);
  return value;
}

/** The model of `--policies` and `--cluster`, with a warning on stderr for each problem compiling for `node` would have. */
function readModelFor(values: CliValues<typeof MODEL_OPTIONS>, node: string, io: CliIo): PolicyModel {
  const model = readModel(values, io);
  for (const w of compileWarnings({ model, node })) io.err(`${NAME}: warning: ${w.message}\n`);
  return model;
}

/** Runs `body`; invalid input (a CniError, such as ConfigError naming file, field and rule) is a usage error. */
function input<T>(body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (typeof (err as { code?: unknown } | null)?.code === "number" && err instanceof Error) throw new CliUsageError(err.message);
    throw err;
  }
}

function readModel(values: CliValues<typeof MODEL_OPTIONS>, io: CliIo): PolicyModel {
  const pf = need(values.policies, "policies");
  const cf = need(values.cluster, "cluster");
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8");
    } catch (err) {
      throw new CliUsageError(`cannot read ${f}: ${(err as Error).message}`);
    }
  };
  const { ignored, ...cluster } = input(() => parseCluster(read(cf), cf));
  for (const p of ignored) io.err(`${NAME}: note: ${p.message}\n`);
  return { ...cluster, policies: input(() => parsePolicies(read(pf), pf)) };
}

function probesOf(values: CliValues<typeof EXPLAIN_OPTIONS>): Probe[] {
  const protocols = listOption(values.protocol ?? "TCP").map((p) => p.toUpperCase());
  const ports = listOption(values.port ?? "80");
  for (const p of protocols) if (!(POLICY_PROTOCOLS as readonly string[]).includes(p)) throw new CliUsageError(`--protocol must be TCP, UDP or SCTP (got ${p})`);
  const nums = ports.map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new CliUsageError(`--port must be port numbers 1..65535 (got ${p})`);
    return n;
  });
  return protocols.flatMap((protocol) => nums.map((port) => ({ protocol: protocol as PolicyProtocol, port })));
}

function commands(io: CliIo): CliCommand[] {
  const explain: CliCommand<typeof EXPLAIN_OPTIONS> = {
    name: "explain",
    summary: "the reachability matrix per probe, or one connection's verdict and the rules that decided it",
    usage: `Usage: ${NAME} explain --policies <file> --cluster <file> [--from <ns/pod|ip> --to <ns/pod|ip>] [--port 80[,81]] [--protocol TCP[,UDP,SCTP]]

Without --from/--to: the reachability matrix per probe. With them: the verdict for one connection and
the policies and rules that decided each direction.

Options:
${FILES}
  --from <ns/pod|ip>   the client (with --to)
  --to <ns/pod|ip>     the server (with --from)
  --port <p,p>         destination ports, default 80
  --protocol <P,P>     TCP, UDP or SCTP, default TCP
  -h, --help           this text`,
    options: EXPLAIN_OPTIONS,
    run: ({ values }) => {
      const probes = probesOf(values);
      if ((values.from === undefined) !== (values.to === undefined)) throw new CliUsageError("--from and --to go together");
      const model = readModel(values, io);
      const ev = input(() => new PolicyEvaluator(model));
      const { from, to } = values;
      if (from !== undefined && to !== undefined) {
        const texts = probes.map((p) => input(() => explainVerdict(ev.verdict({ from, to, ...p }))));
        io.out(`${texts.join("\n\n")}\n`);
      } else {
        io.out(`${probes.map((p) => formatMatrix(ev.matrix(p))).join("\n\n")}\n`);
      }
      return 0;
    },
  };
  const nft: CliCommand<typeof NFT_OPTIONS> = {
    name: "nft",
    summary: "the nftables ruleset of one node",
    usage: `Usage: ${NAME} nft --policies <file> --cluster <file> --node <name> [--families 4[,6]]

Options:
${FILES}
  --node <name>        the node whose ruleset to print
  --families <4,6>     address families, default 4,6
  -h, --help           this text`,
    options: NFT_OPTIONS,
    run: ({ values }) => {
      const families = listOption(values.families ?? "4,6").map((f) => {
        if (f !== "4" && f !== "6") throw new CliUsageError(`--families must be 4, 6 or 4,6 (got ${f})`);
        return Number(f) as Family;
      });
      const node = need(values.node, "node");
      const model = readModelFor(values, node, io);
      io.out(input(() => renderNft(compileNft({ model, node, families }))));
      return 0;
    },
  };
  const filters: CliCommand<typeof FILTERS_OPTIONS> = {
    name: "filters",
    summary: "the NodeDataplane filters of one node (JSON)",
    usage: `Usage: ${NAME} filters --policies <file> --cluster <file> --node <name>

Options:
${FILES}
  --node <name>        the node whose filters to print
  -h, --help           this text`,
    options: FILTERS_OPTIONS,
    run: ({ values }) => {
      const node = need(values.node, "node");
      const model = readModelFor(values, node, io);
      io.out(
        `${JSON.stringify(
          input(() => compileFilters({ model, node })),
          null,
          2,
        )}\n`,
      );
      return 0;
    },
  };
  return [explain, nft, filters];
}

/**
 * Runs the CLI with `argv` (without node and script). Resolves to the exit status; never calls
 * process.exit. Invalid input is reported on `io.err` with status 2.
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const lines: CliOutput = { out: (l) => io.out(`${l}\n`), err: (l) => io.err(`${l}\n`) };
  return runCliProgram({ name: NAME, usage: USAGE, commands: commands(io) }, argv, lines);
}

runAsMain(import.meta.url, NAME, (argv) => main(argv, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) }));
