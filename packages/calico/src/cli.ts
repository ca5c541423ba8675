#!/usr/bin/env node
/**
 * `cnikit-calico` (also reachable as `cnikit calico ...`): operator commands on a cluster store.
 *
 *   cnikit-calico ipam check --store <dir> [--config <calico.yaml>]
 *       checks IPAM for consistency (see `checkIpam`); exit 0 when consistent, 1 with one line per
 *       problem otherwise, 2 for bad usage or a bad config file.
 *   cnikit-calico ipam gc --store <dir> --nodes a,b --handles h1,h2
 *       releases handles not listed and returns empty blocks (see `gcIpam`).
 *
 * `--config` is Calico's own resources as `calicoctl apply -f` takes them: YAML (several `---`
 * documents, empty ones skipped), JSON, or a `List`; a bad resource is named by its document and field.
 */
import { readFileSync } from "node:fs";
import { CliUsageError, FileDatastore, listOption, processOutput, runAsMain, runCliProgram } from "@cnikit/core";
import type { CliCommand, CliOutput, CliProgram, Datastore } from "@cnikit/core";
import { parseCalicoConfig } from "./config.ts";
import type { IpPool } from "./config.ts";
import { checkIpam, gcIpam } from "./ipam.ts";

const NAME = "cnikit-calico";

/** Where the CLI writes: one or more lines at a time. */
export type CliIo = CliOutput;

const STORE = { store: { type: "string" } } as const;
const CHECK_OPTIONS = { ...STORE, config: { type: "string" } } as const;
const GC_OPTIONS = { ...STORE, nodes: { type: "string" }, handles: { type: "string" } } as const;

/** The store a command works on: the caller's, or the file store `--store` names (closed afterwards). */
type StoreSource = Datastore | "from --store";

async function withStore<T>(source: StoreSource, dir: string | undefined, body: (store: Datastore) => Promise<T>): Promise<T> {
  if (source !== "from --store") return body(source);
  if (dir === undefined || dir === "") throw new CliUsageError("--store <dir> is required (the cluster's file store)");
  const store = await FileDatastore.open({ dir });
  try {
    return await body(store);
  } finally {
    await store.close();
  }
}

/** The pools of a Calico config file; unreadable or invalid files are usage errors naming the file. */
function poolsOf(path: string): IpPool[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliUsageError(`--config: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return parseCalicoConfig(text).pools;
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code === 7) throw new CliUsageError(`--config ${path}: ${(err as Error).message}`);
    throw err;
  }
}

function program(source: StoreSource, io: CliIo): CliProgram {
  const check: CliCommand<typeof CHECK_OPTIONS> = {
    name: "ipam check",
    summary: "checks IPAM for consistency: exit 0 consistent, 1 with one line per problem",
    usage: `Usage: ${NAME} ipam check --store <dir> [--config <calico.yaml>]

Checks the IPAM records in the store for consistency (blocks, affinities, handles).

Options:
  --store <dir>      the cluster's file store
  --config <file>    Calico resources (YAML with one or more documents, JSON, or a List): checks
                     blocks against their IPPools too
  -h, --help         this text

Exit status: 0 consistent, 1 problems (one line each), 2 usage error or bad config file.`,
    options: CHECK_OPTIONS,
    run: ({ values }) => {
      const pools = values.config === undefined ? undefined : poolsOf(values.config);
      return withStore(source, values.store, async (store) => {
        const problems = await checkIpam(store, pools);
        for (const p of problems) io.out(`${p.key}: ${p.problem}`);
        io.out(problems.length === 0 ? "IPAM is consistent" : `${problems.length} problem(s)`);
        return problems.length === 0 ? 0 : 1;
      });
    },
  };
  const gc: CliCommand<typeof GC_OPTIONS> = {
    name: "ipam gc",
    summary: "releases handles not listed as live and returns empty blocks",
    usage: `Usage: ${NAME} ipam gc --store <dir> --nodes a,b --handles h1,h2

Releases every IPAM handle not in --handles and returns empty blocks of nodes not in --nodes.

Options:
  --store <dir>        the cluster's file store
  --nodes <a,b>        the live nodes (comma-separated)
  --handles <h1,h2>    the live handles (comma-separated)
  -h, --help           this text

Exit status: 0 done, 2 usage error.`,
    options: GC_OPTIONS,
    run: ({ values }) =>
      withStore(source, values.store, async (store) => {
        const report = await gcIpam({ store, liveNodes: new Set(listOption(values.nodes)), liveHandles: new Set(listOption(values.handles)) });
        io.out(`released ${report.releasedHandles.length} handle(s), ${report.releasedBlocks.length} block(s)`);
        return 0;
      }),
  };
  return { name: NAME, commands: [check, gc] };
}

/**
 * Runs one command against `store` (opened by the caller; `--store` is then not needed). Returns
 * the exit status. Never throws for bad usage (exit 2); store errors propagate.
 */
export async function runCalicoCli(argv: string[], io: CliIo, store: Datastore): Promise<number> {
  return runCliProgram(program(store, io), argv, io);
}

/** The bin entry: opens the file store named by `--store` and runs the command. */
export async function main(argv: string[], io: CliIo = processOutput): Promise<number> {
  return runCliProgram(program("from --store", io), argv, io);
}

runAsMain(import.meta.url, NAME, (argv) => main(argv));
