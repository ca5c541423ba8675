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
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { CniError, type Family } from "@cnikit/core";
import { compileFilters, compileWarnings } from "./compile.ts";
import { PolicyEvaluator, explainVerdict, formatMatrix, type Probe } from "./evaluate.ts";
import { compileNft, renderNft } from "./nft.ts";
import { parseCluster, parsePolicies } from "./parse.ts";
import { POLICY_PROTOCOLS, type PolicyModel, type PolicyProtocol } from "./types.ts";

/** The usage text printed on `--help` and usage errors. */
export const USAGE = `usage:
  cnikit-netpol explain --policies <file> --cluster <file> [--port 80[,81]] [--protocol TCP[,UDP,SCTP]]
  cnikit-netpol explain --policies <file> --cluster <file> --from <ns/pod|ip> --to <ns/pod|ip> [--port 80] [--protocol TCP]
  cnikit-netpol nft --policies <file> --cluster <file> --node <name> [--families 4[,6]]
  cnikit-netpol filters --policies <file> --cluster <file> --node <name>`;

/** Where the CLI writes; tests pass collectors. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

class UsageError extends Error {}

const FLAGS = ["policies", "cluster", "from", "to", "port", "protocol", "node", "families"] as const;
type Flag = (typeof FLAGS)[number];

function parseArgs(argv: string[]): { command: string; flags: Partial<Record<Flag, string>> } {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h") throw new UsageError("");
  if (!["explain", "nft", "filters"].includes(command)) throw new UsageError(`unknown command ${command}`);
  const flags: Partial<Record<Flag, string>> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(a);
    if (!m || !(FLAGS as readonly string[]).includes(m[1]!)) throw new UsageError(`unknown argument ${a}`);
    const value = m[2] ?? rest[++i];
    if (value === undefined) throw new UsageError(`--${m[1]} needs a value`);
    flags[m[1] as Flag] = value;
  }
  return { command, flags };
}

function need(flags: Partial<Record<Flag, string>>, f: Flag): string {
  const v = flags[f];
  if (v === undefined) throw new UsageError(`--${f} is required`);
  return v;
}

function readModel(flags: Partial<Record<Flag, string>>): PolicyModel {
  const pf = need(flags, "policies");
  const cf = need(flags, "cluster");
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8");
    } catch (err) {
      throw new UsageError(`cannot read ${f}: ${(err as Error).message}`);
    }
  };
  const cluster = parseCluster(read(cf), cf);
  return { ...cluster, policies: parsePolicies(read(pf), pf) };
}

function probesOf(flags: Partial<Record<Flag, string>>): Probe[] {
  const protocols = (flags.protocol ?? "TCP").split(",").map((p) => p.trim().toUpperCase());
  const ports = (flags.port ?? "80").split(",").map((p) => p.trim());
  for (const p of protocols) if (!(POLICY_PROTOCOLS as readonly string[]).includes(p)) throw new UsageError(`--protocol must be TCP, UDP or SCTP (got ${p})`);
  const nums = ports.map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new UsageError(`--port must be port numbers 1..65535 (got ${p})`);
    return n;
  });
  return protocols.flatMap((protocol) => nums.map((port) => ({ protocol: protocol as PolicyProtocol, port })));
}

/**
 * Runs the CLI with `argv` (without node and script). Returns the exit status; never calls
 * process.exit. Invalid input is reported on `io.err` with status 2.
 */
export function main(argv: string[], io: CliIo): number {
  try {
    const { command, flags } = parseArgs(argv);
    const model = readModel(flags);
    if (flags.node !== undefined) for (const w of compileWarnings({ model, node: flags.node })) io.err(`cnikit-netpol: warning: ${w.message}\n`);
    switch (command) {
      case "explain": {
        const probes = probesOf(flags);
        if ((flags.from === undefined) !== (flags.to === undefined)) throw new UsageError("--from and --to go together");
        const ev = new PolicyEvaluator(model);
        if (flags.from !== undefined && flags.to !== undefined) {
          const texts = probes.map((p) => explainVerdict(ev.verdict({ from: flags.from!, to: flags.to!, ...p })));
          io.out(`${texts.join("\n\n")}\n`);
        } else {
          io.out(`${probes.map((p) => formatMatrix(ev.matrix(p))).join("\n\n")}\n`);
        }
        return 0;
      }
      case "nft": {
        const families = (flags.families ?? "4,6").split(",").map((f) => {
          if (f !== "4" && f !== "6") throw new UsageError(`--families must be 4, 6 or 4,6 (got ${f})`);
          return Number(f) as Family;
        });
        io.out(renderNft(compileNft({ model, node: need(flags, "node"), families })));
        return 0;
      }
      case "filters":
        io.out(`${JSON.stringify(compileFilters({ model, node: need(flags, "node") }), null, 2)}\n`);
        return 0;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message ? `cnikit-netpol: ${err.message}\n` : ""}${USAGE}\n`);
      return 2;
    }
    if (err instanceof CniError) {
      io.err(`cnikit-netpol: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

function isEntry(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntry()) {
  process.exitCode = main(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
}
