// What every benchmark module returns, and the one way they are printed (by `pnpm bench` and by a
// module run on its own).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** One measured figure, e.g. { name: "allocate+release /16 at 50%", value: 512000, unit: "ops/s" }. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
}

/** The figures as aligned lines: large values with thousands separators, small ones with 2 decimals. */
export function formatFigures(figures: Figure[]): string {
  const width = Math.max(0, ...figures.map((f) => f.name.length));
  return figures
    .map((f) => {
      const value = Math.abs(f.value) >= 100 ? Math.round(f.value).toLocaleString("en-US") : f.value.toFixed(2);
      return `  ${f.name.padEnd(width)}  ${value.padStart(14)} ${f.unit}`;
    })
    .join("\n");
}

/** When the calling module is the script node was started with, runs its benchmark and prints it. */
export async function runIfMain(moduleUrl: string, title: string, run: () => Promise<Figure[]>): Promise<void> {
  if (moduleUrl !== `file://${process.argv[1]}`) return;
  const started = performance.now();
  console.log(`${title} — node ${process.version}, ${process.platform}/${process.arch}`);
  console.log(formatFigures(await run()));
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

/**
 * A Markdown table (GitHub style): `header` then one line per row; numbers right-aligned: integers
 * and values from 100 up rounded with thousands separators, others with 2 decimals; strings as given.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cell = (v: string | number): string => (typeof v === "string" ? v : Number.isInteger(v) || Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2));
  const text = rows.map((r) => r.map(cell));
  const width = header.map((h, i) => Math.max(h.length, 3, ...text.map((r) => (r[i] ?? "").length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => (numeric[i] ? c.padStart(width[i]!) : c.padEnd(width[i]!))).join(" | ")} |`;
  const rule = `|${width.map((w, i) => (numeric[i] ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`;
  return [line(header), rule, ...text.map(line)].join("\n");
}

/** The nearest-rank `p`th percentile (0..100) of `values` (any order), NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

let clockTicks: number | undefined;

/**
 * CPU time (ms, user + system) of process `pid` from /proc/<pid>/stat, or with `children` that of
 * its reaped children (cutime + cstime). Linux only.
 */
export function processCpuMs(pid: number | "self", children = false): number {
  // The command (field 2) is in parentheses and may hold spaces: fields are counted after the last ')', state first.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [u, s] = children ? [f[13], f[14]] : [f[11], f[12]];
  clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  return ((Number(u) + Number(s)) * 1000) / clockTicks;
}
