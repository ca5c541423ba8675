#!/usr/bin/env node
/**
 * `cnikit-calico` (also reachable as `cnikit calico ...`): operator commands on a cluster store.
 *
 *   cnikit-calico ipam check --store <dir> [--config <calico.yaml>]
 *       checks IPAM for consistency (see `checkIpam`); exit 0 when consistent, 1 with one line per
 *       problem otherwise, 2 for bad usage.
 *   cnikit-calico ipam gc --store <dir> --nodes a,b --handles h1,h2
 *       releases handles not listed and returns empty blocks (see `gcIpam`).
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { FileDatastore } from "@cnikit/core";
import type { Datastore } from "@cnikit/core";
import { parseCalicoConfig } from "./config.ts";
import { checkIpam, gcIpam } from "./ipam.ts";

/** Where the CLI writes. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const USAGE = "usage: cnikit-calico ipam check --store <dir> [--config <file>] | ipam gc --store <dir> --nodes a,b --handles h1,h2";

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/**
 * Runs one command against `store` (opened by the caller, or from `--store` by `main`). Returns
 * the exit code. Never throws for bad usage (exit 2); store errors propagate.
 */
export async function runCalicoCli(argv: string[], io: CliIo, store: Datastore): Promise<number> {
  const [group, cmd] = argv;
  if (group !== "ipam" || (cmd !== "check" && cmd !== "gc")) {
    io.err(USAGE);
    return 2;
  }
  if (cmd === "check") {
    const configPath = flag(argv, "--config");
    const pools = configPath ? parseCalicoConfig(readFileSync(configPath, "utf8")).pools : undefined;
    const problems = await checkIpam(store, pools);
    for (const p of problems) io.out(`${p.key}: ${p.problem}`);
    io.out(problems.length === 0 ? "IPAM is consistent" : `${problems.length} problem(s)`);
    return problems.length === 0 ? 0 : 1;
  }
  const list = (v: string | undefined) => new Set((v ?? "").split(",").filter((x) => x !== ""));
  const report = await gcIpam({ store, liveNodes: list(flag(argv, "--nodes")), liveHandles: list(flag(argv, "--handles")) });
  io.out(`released ${report.releasedHandles.length} handle(s), ${report.releasedBlocks.length} block(s)`);
  return 0;
}

/** The bin entry: opens the file store named by `--store` and runs the command. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const dir = flag(argv, "--store");
  if (!dir) {
    io.err(USAGE);
    return 2;
  }
  const store = await FileDatastore.open({ dir });
  try {
    return await runCalicoCli(argv, io, store);
  } finally {
    await store.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2), { out: (l) => console.log(l), err: (l) => console.error(l) }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
