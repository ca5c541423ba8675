/**
 * Plain-text rendering of conformance reports: one report as a detailed table (section, check,
 * status, figures, reason), several as a check × backend matrix followed by the reasons.
 */
import type { CheckResult, CheckStatus, ConformanceReport } from "./types.ts";

/** Longest reason shown in the "Failures" list under a table. */
const FULL_REASON = 1_000;

const SHORT: Record<CheckStatus, string> = {
  passed: "pass",
  failed: "FAIL",
  "not claimed": "n/claimed",
  "not run": "not run",
  "not applicable": "n/a",
  error: "ERROR",
};

export interface RenderOptions {
  /** Longest reason shown in a table cell (default 100 characters). */
  reasonWidth?: number;
}

function truncate(text: string, width: number): string {
  const flat = text.replace(/\s+/g, " ");
  return flat.length > width ? `${flat.slice(0, Math.max(0, width - 3))}...` : flat;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

function padLeft(text: string, width: number): string {
  return text.length >= width ? text : " ".repeat(width - text.length) + text;
}

function grid(rows: string[][], rightAligned: Set<number> = new Set()): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : rightAligned.has(i) ? padLeft(cell, widths[i]!) : pad(cell, widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Counts of each status. */
export function tally(report: ConformanceReport): Record<CheckStatus, number> {
  const out: Record<CheckStatus, number> = { passed: 0, failed: 0, "not claimed": 0, "not run": 0, "not applicable": 0, error: 0 };
  for (const r of report.results) out[r.status]++;
  return out;
}

function headline(report: ConformanceReport): string {
  const t = tally(report);
  const requiredBad = report.results.filter((r) => r.required && (r.status === "failed" || r.status === "error")).length;
  return (
    `${report.backend} (${report.config}), ${report.nodes} nodes, seed ${report.seed}${report.store ? `, store ${report.store}` : ""}: ` +
    `${t.passed} passed, ${t.failed} failed, ${t.error} errors, ${t["not run"]} not run, ${t["not claimed"]} not claimed` +
    ` in ${(report.durationMs / 1000).toFixed(1)} s` +
    (requiredBad > 0 ? ` — ${requiredBad} REQUIRED CHECK(S) NOT PASSED` : "")
  );
}

function figures(r: CheckResult): string[] {
  const m = r.metrics;
  if (!m) return ["", "", "", "", ""];
  return [String(m.virtualMs), String(Math.round(m.wallMs)), String(m.messages), String(m.bytes), m.storeOps === undefined ? "" : String(m.storeOps)];
}

function single(report: ConformanceReport, width: number): string {
  const rows: string[][] = [["SEC", "CHECK", "REQ", "STATUS", "VIRT ms", "WALL ms", "MSGS", "BYTES", "STORE", "REASON"]];
  for (const r of report.results) {
    rows.push([r.section, r.id, r.required ? "yes" : "no", r.status, ...figures(r), r.reason ? truncate(r.reason, width) : ""]);
    for (const s of r.subResults ?? []) {
      rows.push(["", `  - ${s.label}`, "", s.status, "", "", "", "", "", s.reason ? truncate(s.reason, width) : ""]);
    }
  }
  const reasons = report.results
    .filter((r) => r.status === "failed" || r.status === "error")
    .map((r) => `${r.id} ${r.status}: ${truncate(r.reason ?? "", FULL_REASON)}`);
  return `${headline(report)}\n\n${grid(rows, new Set([4, 5, 6, 7, 8]))}${reasons.length > 0 ? `\n\nFailures:\n${reasons.join("\n")}` : ""}`;
}

function matrix(reports: ConformanceReport[]): string {
  const ids: { id: string; section: string }[] = [];
  for (const report of reports) {
    for (const r of report.results) if (!ids.some((x) => x.id === r.id)) ids.push({ id: r.id, section: r.section });
  }
  const header = ["SEC", "CHECK", ...reports.map((r, i) => `[${i + 1}]`)];
  const rows: string[][] = [header];
  for (const { id, section } of ids) {
    rows.push([
      section,
      id,
      ...reports.map((report) => {
        const r = report.results.find((x) => x.id === id);
        return r ? SHORT[r.status] : "-";
      }),
    ]);
  }
  const legend = reports.map((r, i) => `[${i + 1}] ${headline(r)}`).join("\n");
  const reasons: string[] = [];
  reports.forEach((report, i) => {
    for (const r of report.results) {
      if (r.status === "failed" || r.status === "error") reasons.push(`[${i + 1}] ${r.id} ${r.status}: ${truncate(r.reason ?? "", FULL_REASON)}`);
    }
  });
  return `${legend}\n\n${grid(rows)}${reasons.length > 0 ? `\n\nFailures:\n${reasons.join("\n")}` : ""}`;
}

/**
 * Renders reports as text a person can read. One report: a row per check with status, figures
 * (virtual ms, wall ms, messages, bytes, store ops) and the reason truncated to `reasonWidth`,
 * then the full reason of every failure. Several reports (backends or configs): a check × report
 * matrix, a legend, and the reasons of every failure.
 */
export function renderTable(reports: ConformanceReport[], options: RenderOptions = {}): string {
  const width = options.reasonWidth ?? 100;
  if (reports.length === 0) return "(no conformance reports)";
  if (reports.length === 1) return single(reports[0]!, width);
  return matrix(reports);
}
