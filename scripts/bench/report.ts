// Regenerates docs/bench/: runs cnikit-bench (its own CLI, so the figures are exactly what a user
// gets), keeps the JSON with the machine, date and command beside it, and writes report.md (what was
// run where, what each plot shows, the Markdown tables) and the SVG plots (@cnikit/bench's
// renderPlots, drawn by Vega-Lite).
//
//   npx tsx --conditions=source scripts/bench/report.ts                 # the default run below
//   npx tsx --conditions=source scripts/bench/report.ts -- --all-builtins --nodes 3,10,30 --runs 3
//   npx tsx --conditions=source scripts/bench/report.ts --from docs/bench/bench.json   # re-render only
//
// Several runs: `-- <args> -- <args>`; the reports of one backend/config are merged.
// Options before `--`: --out <dir> (default docs/bench), --from <bench.json> (re-render a saved run;
// a JSON written by `cnikit-bench --json` carries no machine or command: give --command then, and
// the machine is this one), --command <text>, --note <text> (a paragraph on the choice of scenarios).
import { cpus, totalmem } from "node:os";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError } from "@cnikit/core";
import { renderMarkdown, renderPlots } from "@cnikit/bench";
import type { BenchReport } from "@cnikit/bench";
import { main as benchMain } from "../../packages/bench/src/cli.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const COMPONENT = "bench report";

/** What finishes in a few minutes on a loaded 2-core machine (see DEFAULT_NOTE). */
export const DEFAULT_ARGS = ["--all-builtins", "--nodes", "3,10", "--scenarios", "join,leave,crash,cold-start", "--runs", "1"];
const DEFAULT_NOTE =
  "Scenarios join, leave, crash and cold-start at N = 3 and 10, one run per point: what finishes in minutes on this machine. " +
  "flannel's crash waits out its 24 h lease in virtual time (tens of seconds of wall time per run), and silent, flap, partition-heal, pod-churn and graceful-restart, " +
  "larger N and more runs multiply that; run them with `cnikit-bench` directly (`--runs 3` gives min–max bars).";

/** Where and how the JSON was made. */
export interface BenchRunMeta {
  command: string;
  date: string;
  machine: { cpuModel: string; cores: number; memoryGiB: number; node: string; platform: string };
  note: string;
}

interface SavedRun {
  tool: "cnikit-bench";
  run?: BenchRunMeta;
  reports: BenchReport[];
}

function thisMachine(): BenchRunMeta["machine"] {
  const cpu = cpus();
  return { cpuModel: cpu[0]?.model.trim() ?? "unknown", cores: cpu.length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform}/${process.arch}` };
}

async function runBenchCli(args: readonly string[], json: string): Promise<SavedRun> {
  const silent = { stdout: () => undefined, stderr: (t: string) => void process.stderr.write(t), cwd: ROOT, isTTY: process.stderr.isTTY === true, env: process.env };
  const code = await benchMain([...args, "--json", json], silent);
  if (code !== 0) throw new Error(`cnikit-bench ${args.join(" ")} exited with ${code}`);
  return JSON.parse(await readFile(json, "utf8")) as SavedRun;
}

/** report.md: the run's where/when/how, a section per plot, then the tables. */
export function reportMarkdown(saved: SavedRun & { run: BenchRunMeta }, plots: readonly { file: string; title: string; description: string }[]): string {
  const { run } = saved;
  const m = run.machine;
  const scenarios = [...new Set(plots.map((p) => p.file.replace(/^[a-z]+-/, "").replace(/\.svg$/, "")))];
  const tables = renderMarkdown(saved.reports)
    .replace(/^# .*\n/, "")
    .replace(/^## /gm, "### ");
  return [
    "# cnikit-bench: the latest report",
    "",
    "Route convergence of every built-in backend in each of its fixture modes, in cnikit's simulator (virtual time), as `cnikit-bench` measures it",
    "(definitions: [packages/bench/README.md](../../packages/bench/README.md)). Regenerate with `npx tsx --conditions=source scripts/bench/report.ts`.",
    "",
    `- Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}; shared with other jobs while it ran (wall ms are indicative only, virtual ms are not affected).`,
    `- Date: ${run.date}`,
    `- Command: \`${run.command}\``,
    `- Data: [bench.json](bench.json) (every run's figures; the plots and tables are drawn from it).`,
    "",
    run.note,
    "",
    "## Plots",
    "",
    "Convergence plots: the median virtual ms from t0 to the last change of the desired state against N, one line per backend/config",
    "(log scale when the values span more than a factor of 20; with several runs, a bar from min to max). A run that did not converge is not drawn, it is named under the title.",
    "Message plots: per N, each backend/config's median peer messages and store watch events, stacked, beside the red dashed lower bound LB",
    "(per-route announcements of a full mesh; a store listing can hand a newcomer its table in one response, so a store-based backend can be below LB).",
    "",
    ...scenarios.flatMap((id) => plots.filter((p) => p.file.endsWith(`-${id}.svg`)).flatMap((p) => [`### ${p.title}`, "", p.description, "", `![${p.title}](${p.file})`, ""])),
    "## Tables",
    "",
    tables.trim(),
    "",
  ].join("\n");
}

/** `a b -- c d` → [[a, b], [c, d]]: one cnikit-bench run per group. */
function splitGroups(args: readonly string[]): string[][] {
  const groups: string[][] = [[]];
  for (const a of args) {
    if (a === "--") groups.push([]);
    else groups[groups.length - 1]!.push(a);
  }
  const empty = groups.findIndex((g) => g.length === 0);
  if (empty !== -1) throw new ConfigError({ component: COMPONENT, field: "cnikit-bench arguments", rule: `group ${empty + 1} after -- is empty` });
  return groups;
}

/** Runs of the same backend/config (several groups) become one report, their results in run order. */
export function mergeReports(reports: readonly BenchReport[]): BenchReport[] {
  const merged = new Map<string, BenchReport>();
  for (const r of reports) {
    const key = `${r.backend}/${r.configLabel}`;
    const seen = merged.get(key);
    if (!seen) merged.set(key, { ...r, results: [...r.results] });
    else merged.set(key, { ...seen, results: [...seen.results, ...r.results], peakHeapBytes: Math.max(seen.peakHeapBytes, r.peakHeapBytes), wallMs: seen.wallMs + r.wallMs });
  }
  return [...merged.values()];
}

export async function generate(argv: readonly string[]): Promise<string> {
  const dash = argv.indexOf("--");
  const own = dash === -1 ? argv : argv.slice(0, dash);
  const groups = dash === -1 ? [DEFAULT_ARGS] : splitGroups(argv.slice(dash + 1));
  const { values } = parseArgs({
    args: [...own],
    options: { out: { type: "string" }, from: { type: "string" }, command: { type: "string" }, note: { type: "string" } },
    strict: true,
    allowPositionals: false,
  });
  const out = resolve(ROOT, values.out ?? "docs/bench");
  await mkdir(out, { recursive: true });
  const json = join(out, "bench.json");
  let saved: SavedRun;
  let run: BenchRunMeta;
  if (values.from !== undefined) {
    saved = JSON.parse(await readFile(resolve(values.from), "utf8")) as SavedRun;
    if (saved.run) run = { ...saved.run, ...(values.note !== undefined ? { note: values.note } : {}) };
    else {
      if (values.command === undefined)
        throw new ConfigError({ component: COMPONENT, field: "--command", rule: `is required with --from when the JSON has no run record (${values.from} came from cnikit-bench --json)` });
      run = { command: values.command, date: saved.reports[0]?.startedAt ?? new Date().toISOString(), machine: thisMachine(), note: values.note ?? DEFAULT_NOTE };
    }
  } else {
    const date = new Date().toISOString();
    const reports: BenchReport[] = [];
    for (const args of groups) reports.push(...(await runBenchCli(args, json)).reports);
    saved = { tool: "cnikit-bench", reports: mergeReports(reports) };
    run = { command: groups.map((args) => `cnikit-bench ${args.join(" ")}`).join(" && "), date, machine: thisMachine(), note: values.note ?? (dash === -1 ? DEFAULT_NOTE : "") };
  }
  const full = { tool: "cnikit-bench" as const, run, reports: saved.reports };
  const plots = await renderPlots(saved.reports);
  await writeFile(json, `${JSON.stringify(full, null, 2)}\n`);
  for (const p of plots) await writeFile(join(out, p.file), p.svg);
  await writeFile(join(out, "report.md"), reportMarkdown(full, plots));
  return `${relative(ROOT, out)}: bench.json, report.md and ${plots.length} SVG plot(s)`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  generate(process.argv.slice(2)).then(
    (done) => console.log(done),
    (err: unknown) => {
      console.error(`report: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
