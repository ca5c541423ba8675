#!/usr/bin/env node
/**
 * cnikit-bench: route-convergence benchmarks of a backend module (package name or path), a
 * built-in backend by name, or every built-in backend (`--all-builtins`), in the simulator. Prints
 * the Markdown tables on stdout, writes JSON and Markdown files on request, shows a progress line on
 * a TTY's stderr (not in CI). Exit status: 0 done (runs that did not converge are in the tables),
 * 2 usage error (bad flags, unloadable backend, invalid config; --dataplane linux without root or its
 * tools, or above 8 nodes), 3 internal error. `--dataplane linux` runs on the kernel (src/linux-cli.ts).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { isMainModule } from "@cnikit/core";
import { builtinBackends } from "@cnikit/backends";
import type { BuiltinBackend } from "@cnikit/backends";
import { withRouteReflectors } from "@cnikit/calico/fixtures";
import { loadBackendModule, readDataFile } from "@cnikit/conformance/cli";
import type { Backend } from "@cnikit/core";
import { SimFabric, type SimTopology } from "@cnikit/sim";
import { renderBirdComparison, runLinuxTargets } from "./linux-cli.ts";
import { renderMarkdown } from "./markdown.ts";
import { writePlots } from "./plot.ts";
import { DEFAULT_RUNS, DEFAULT_SEED, runBench } from "./run.ts";
import type { BenchProgress, BenchReport } from "./run.ts";
import { SCENARIO_IDS } from "./scenarios.ts";
import type { ScenarioId } from "./scenarios.ts";

export const USAGE = `Usage: cnikit-bench --backend <package|path|built-in name>[#export] [--config <file>] --nodes 10,100 [options]
       cnikit-bench --all-builtins --nodes 10 [options]

Route convergence in the simulator, per scenario, at each cluster size N, over several runs.

Options:
  --backend <spec>        a backend module (package name resolved from this directory's project, or a
                          file path; #name picks an export) or a built-in backend's name
                          (${builtinBackends.map((b) => b.backend.name).join(", ")})
  --config <file>         the backend's config in its own format (JSON, or YAML with the yaml package);
                          required for a module, optional for a built-in (default: each of its fixture modes).
                          Repeat --backend to compare backends side by side: then each module takes the next
                          --config in order and a built-in name runs its fixture modes
  --all-builtins          every built-in backend in each of its fixture modes (calico also with route reflectors), side by side
  --nodes <N,N,...>       cluster sizes (each >= 2; default 10)
  --scenarios <id,id>     ${SCENARIO_IDS.join(", ")} (default: all)
  --runs <R>              runs per scenario and N (default ${DEFAULT_RUNS}); medians, min and max over them
  --seed <S>              seed of the first run (run r uses S + r; default ${DEFAULT_SEED})
  --topology <file>       the simulated underlay (JSON: the simulator's SimTopology — subnets, routers, externals)
                          for every target; default: the suite's (two /24 node subnets behind a router, one for
                          single-subnet modes: room for about 250 nodes per subnet). Larger clusters need larger subnets
  --dataplane sim|linux   sim (default); linux: on the kernel, a lab of network namespaces per run (root; N <= 8;
                          cold-start, join, leave, crash), convergence timed from every node's FIB
  --compare-bird          with --dataplane linux and calico: a BIRD full mesh configured like Calico's beside it
  --json <file>           write every report as JSON there
  --markdown <file>       write the Markdown tables there (they are always printed on stdout)
  --svg <dir>             write SVG plots there: convergence vs N and messages vs the lower bound, per scenario
  -h, --help              this text

Exit status: 0 done (a run that did not converge is reported, not an error), 2 usage error, 3 internal error.`;

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  cwd: string;
  /** Whether stderr is a terminal (a progress line is drawn then, unless CI is set). */
  isTTY: boolean;
  env: Record<string, string | undefined>;
}

/** A usage error: exit status 2. */
export class BenchUsageError extends Error {
  override readonly name = "BenchUsageError";
  readonly code = "usage";
}

const OPTIONS = {
  backend: { type: "string", multiple: true },
  config: { type: "string", multiple: true },
  "all-builtins": { type: "boolean" },
  nodes: { type: "string" },
  scenarios: { type: "string" },
  runs: { type: "string" },
  seed: { type: "string" },
  topology: { type: "string" },
  dataplane: { type: "string" },
  "compare-bird": { type: "boolean" },
  json: { type: "string" },
  markdown: { type: "string" },
  svg: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const KNOWN_FLAGS = Object.keys(OPTIONS)
  .map((k) => `--${k}`)
  .join(", ");

function integerList(value: string, flag: string, min: number, max: number): number[] {
  const parts = value.split(",").map((p) => p.trim());
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || Number(p) < min || Number(p) > max) throw new BenchUsageError(`${flag} must be a comma-separated list of integers from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return Number(p);
  });
}

function integer(value: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new BenchUsageError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return Number(value);
}

function scenarioList(value: string | undefined): ScenarioId[] | undefined {
  if (value === undefined) return undefined;
  return value.split(",").map((s) => {
    const id = s.trim();
    if (!(SCENARIO_IDS as readonly string[]).includes(id)) throw new BenchUsageError(`--scenarios: unknown scenario ${JSON.stringify(id)}; known: ${SCENARIO_IDS.join(", ")}`);
    return id as ScenarioId;
  });
}

/** One thing to benchmark: a backend and one config. */
export interface Target {
  backend: Backend<unknown>;
  config: unknown;
  label: string;
  topology?: SimTopology;
  /** A backend module's spec and the directory it resolves from (cnikitd loads it on the kernel). */
  module?: { spec: string; cwd: string };
}

/**
 * What a built-in backend is benchmarked in: each of its fixture modes; calico's in both of its BGP
 * topologies side by side, full mesh (the modes as labelled) and route reflectors (`<mode>-rr`,
 * calico's `withRouteReflectors`: node-1 and node-2 reflect, every node peers with them, the mesh
 * off), for each encapsulation.
 */
export function builtinTargets(b: BuiltinBackend): Target[] {
  const modes: Target[] = b.configs.map((c) => ({ backend: b.backend, config: c.config, label: c.label, ...(c.topology ? { topology: c.topology } : {}) }));
  if (b.package !== "@cnikit/calico") return modes;
  return modes.flatMap((t) => [t, { ...t, config: withRouteReflectors(t.config as Record<string, unknown>[]), label: `${t.label}-rr` }]);
}

/**
 * The targets of `--backend` (repeatable: one table per scenario holds them all, side by side).
 * One `--backend`: its `--config`, if any. Several: each backend module takes the next `--config`
 * in order, a built-in name its fixture modes.
 */
async function targetsOf(values: { backend?: string[] | undefined; config?: string[] | undefined; "all-builtins"?: boolean | undefined }, cwd: string): Promise<Target[]> {
  if (values["all-builtins"]) {
    if (values.backend !== undefined || values.config !== undefined) throw new BenchUsageError("--all-builtins runs the built-in backends in their fixture modes: leave out --backend and --config");
    return builtinBackends.flatMap(builtinTargets);
  }
  const specs = values.backend ?? [];
  const configs = [...(values.config ?? [])];
  if (specs.length === 0) throw new BenchUsageError("--backend is required (or --all-builtins); see --help");
  if (specs.length === 1) {
    if (configs.length > 1) throw new BenchUsageError(`--config: one per backend module, got ${configs.length} for one --backend`);
    return targetOf(specs[0]!, configs[0], cwd);
  }
  const targets: Target[] = [];
  for (const spec of specs) {
    const builtin = builtinBackends.some((b) => b.backend.name === spec);
    targets.push(...(await targetOf(spec, builtin ? undefined : configs.shift(), cwd)));
  }
  if (configs.length > 0) throw new BenchUsageError(`--config: ${configs.join(", ")} left over: with several --backend, each backend module takes one --config in order and a built-in name none`);
  return targets;
}

async function targetOf(spec: string, configFile: string | undefined, cwd: string): Promise<Target[]> {
  const config =
    configFile === undefined
      ? undefined
      : await readDataFile(resolve(cwd, configFile), "config").catch((err: unknown) => {
          throw new BenchUsageError(err instanceof Error ? err.message : String(err));
        });
  const builtin = builtinBackends.find((b) => b.backend.name === spec);
  if (builtin) return configFile === undefined ? builtinTargets(builtin) : [{ backend: builtin.backend, config, label: "config" }];
  if (configFile === undefined) throw new BenchUsageError(`--config is required with a backend module (${spec}); only a built-in backend's name runs its fixture modes`);
  let backend: Backend<unknown>;
  try {
    backend = (await loadBackendModule(spec, cwd)).backend;
  } catch (err) {
    throw new BenchUsageError(err instanceof Error ? err.message : String(err));
  }
  return [{ backend, config, label: configFile.replace(/^.*\//, "").replace(/\.(json|ya?ml)$/, ""), module: { spec, cwd } }];
}

/** `--topology <file>`: a SimTopology, validated by the simulator (its error names the field). */
async function topologyOf(file: string, cwd: string): Promise<SimTopology> {
  const data = await readDataFile(resolve(cwd, file), "topology").catch((err: unknown) => {
    throw new BenchUsageError(err instanceof Error ? err.message : String(err));
  });
  if (data === null || typeof data !== "object" || Array.isArray(data)) throw new BenchUsageError(`--topology ${file}: must be a JSON object with "subnets" (and optionally "routers", "externals")`);
  try {
    new SimFabric(data as SimTopology);
  } catch (err) {
    throw new BenchUsageError(`--topology ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return data as SimTopology;
}

function progressLine(io: CliIo): ((p: BenchProgress, label: string) => void) | undefined {
  if (!io.isTTY || (io.env.CI !== undefined && io.env.CI !== "" && io.env.CI !== "false")) return undefined;
  return (p, label) => {
    const width = 24;
    const filled = Math.round((p.done / p.total) * width);
    io.stderr(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${p.done}/${p.total} ${label} ${p.scenario} N=${p.nodes} run ${p.run}\x1b[K`);
  };
}

/** Runs the CLI; resolves with the exit status. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: false }>>["values"];
  try {
    values = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    io.stderr(`cnikit-bench: ${err instanceof Error ? err.message : String(err)}; known options: ${KNOWN_FLAGS}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  let reports: BenchReport[];
  try {
    const dataplane = values.dataplane ?? "sim";
    if (dataplane !== "sim" && dataplane !== "linux") throw new BenchUsageError(`--dataplane must be sim or linux, got ${JSON.stringify(dataplane)}`);
    if (values["compare-bird"] && dataplane !== "linux") throw new BenchUsageError("--compare-bird runs on the kernel: add --dataplane linux");
    if (dataplane === "linux" && values.svg !== undefined) throw new BenchUsageError("--svg: plots are drawn for simulator runs; leave it out with --dataplane linux");
    const nodes = values.nodes === undefined ? [10] : integerList(values.nodes, "--nodes", 2, 5000);
    const runs = integer(values.runs, "--runs", DEFAULT_RUNS, 1, 100);
    const seed = integer(values.seed, "--seed", DEFAULT_SEED, 0, 2 ** 31 - 1);
    const scenarios = scenarioList(values.scenarios);
    if (dataplane === "linux" && values.topology !== undefined) throw new BenchUsageError("--topology sets the simulated underlay; the lab of --dataplane linux builds its own: leave it out");
    const topology = values.topology === undefined ? undefined : await topologyOf(values.topology, io.cwd);
    const targets = (await targetsOf(values, io.cwd)).map((t) => (topology ? { ...t, topology } : t));
    const progress = progressLine(io);
    reports =
      dataplane === "linux"
        ? await runLinuxTargets({
            targets,
            nodes,
            runs,
            ...(scenarios ? { scenarios } : {}),
            compareBird: values["compare-bird"] === true,
            usage: (m) => new BenchUsageError(m),
            note: (l) => io.stderr(`cnikit-bench: ${l}\n`),
            ...(progress ? { onRun: progress } : {}),
          })
        : [];
    for (const t of dataplane === "linux" ? [] : targets) {
      const label = `${t.backend.name}/${t.label}`;
      try {
        reports.push(
          await runBench({
            backend: t.backend,
            config: t.config,
            configLabel: t.label,
            nodes,
            runs,
            seed,
            ...(scenarios ? { scenarios } : {}),
            ...(t.topology ? { topology: t.topology } : {}),
            ...(progress ? { onRun: (p: BenchProgress) => progress(p, label) } : {}),
          }),
        );
      } catch (err) {
        // A config the backend refuses (ConfigError, code 7) is the user's to fix.
        if ((err as { code?: unknown } | null)?.code === 7) throw new BenchUsageError(`${label}: ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      }
    }
    if (progress) io.stderr("\r\x1b[K");
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code === "usage") {
      io.stderr(`cnikit-bench: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  }
  const markdown = [renderMarkdown(reports), renderBirdComparison(reports)].filter((t) => t !== "").join("\n");
  io.stdout(`${markdown}\n`);
  if (values.json !== undefined) {
    const out = resolve(io.cwd, values.json);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify({ tool: "cnikit-bench", reports }, null, 2)}\n`);
    io.stderr(`cnikit-bench: JSON written to ${out}\n`);
  }
  if (values.markdown !== undefined) {
    const out = resolve(io.cwd, values.markdown);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${markdown}\n`);
    io.stderr(`cnikit-bench: Markdown written to ${out}\n`);
  }
  if (values.svg !== undefined) {
    const dir = resolve(io.cwd, values.svg);
    const plots = await writePlots(reports, dir);
    io.stderr(`cnikit-bench: ${plots.length} SVG plot(s) written to ${dir}\n`);
  }
  return 0;
}

if (isMainModule(import.meta.url)) {
  const io: CliIo = {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    cwd: process.cwd(),
    isTTY: process.stderr.isTTY === true,
    env: process.env,
  };
  main(process.argv.slice(2), io).then(
    (code) => process.stdout.write("", () => process.stderr.write("", () => process.exit(code))),
    (err: unknown) => process.stderr.write(`cnikit-bench: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`, () => process.exit(3)),
  );
}
