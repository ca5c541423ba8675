/**
 * Plain-text rendering of conformance reports: one report as a detailed table (section, check,
 * status, figures, reason), several as a check × backend matrix followed by the reasons.
 */
import type { CheckResult, CheckStatus, ClaimsCoverage, ConformanceReport } from "./types.ts";

/** What the table shows for a figure that was not measured (never 0). */
export const UNMEASURED = "\u2014";

/** Longest sub-result label in the CHECK column (a long label would widen every row). */
const SUB_LABEL_WIDTH = 60;

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

/** Required checks that did not pass, by status (strict runs count "not run" / "not applicable" as not passed). */
export function requiredCounts(report: ConformanceReport): { failed: number; notRun: number; notApplicable: number; notPassed: number } {
  const req = report.results.filter((r) => r.required);
  const failed = req.filter((r) => r.status === "failed" || r.status === "error").length;
  const notRun = req.filter((r) => r.status === "not run").length;
  const notApplicable = req.filter((r) => r.status === "not applicable").length;
  return { failed, notRun, notApplicable, notPassed: failed + (report.strict ? notRun + notApplicable : 0) };
}

/**
 * The summary line of one report. It always carries the run's identity before the counts, so no
 * line is ever just "N passed, N failed" (which CI would read as a test run's total), and it counts
 * every status, plus the required checks that were not run or not applicable.
 */
export function headline(report: ConformanceReport): string {
  const t = tally(report);
  const req = requiredCounts(report);
  return (
    `${report.backend} (${report.config}), ${report.nodes} nodes, seed ${report.seed}${report.store ? `, store ${report.store}` : ""}${report.strict ? ", strict" : ""}: ` +
    `${t.passed} passed, ${t.failed} failed, ${t.error} errors, ${t["not run"]} not run, ${t["not applicable"]} not applicable, ${t["not claimed"]} not claimed; ` +
    `${req.notRun} required not run, ${req.notApplicable} required not applicable` +
    ` in ${(report.durationMs / 1000).toFixed(1)} s` +
    (req.notPassed > 0 ? ` — ${req.notPassed} REQUIRED CHECK(S) NOT PASSED${report.strict && req.notPassed > req.failed ? " (strict: not run / not applicable count)" : ""}` : "")
  );
}

function figure(value: number | undefined, round = false): string {
  if (value === undefined || !Number.isFinite(value)) return UNMEASURED;
  return String(round ? Math.round(value) : value);
}

function figures(r: CheckResult): string[] {
  const m = r.metrics;
  return [figure(m?.virtualMs), r.bound ? String(r.bound.ms) : UNMEASURED, figure(m?.wallMs, true), figure(m?.messages), figure(m?.bytes), figure(m?.storeOps)];
}

function familyName(f: number): string {
  return `IPv${f}`;
}

/** "declared bounds: convergence 30000 ms, crash detection 86410000 ms". */
function boundsLine(report: ConformanceReport): string | undefined {
  const b = report.bounds;
  return b ? `declared bounds: convergence ${b.convergenceMs} ms, crash detection ${b.crashDetectionMs} ms` : undefined;
}

/** "claims: families IPv4 (exercised), IPv6 (not exercised); encapsulations vxlan (exercised), none (not exercised)". */
function claimsLine(claims: ClaimsCoverage | undefined): string | undefined {
  if (!claims) return undefined;
  const fam = claims.families.claimed.map((f) => `${familyName(f)} (${claims.families.exercised.includes(f) ? "exercised" : "not exercised"})`);
  const enc = claims.encapsulations.claimed.map((e) => `${e} (${claims.encapsulations.exercised.includes(e) ? "exercised" : "not exercised"})`);
  return `claims: families ${fam.join(", ") || "(none)"}; encapsulations ${enc.join(", ") || "(none)"}`;
}

function single(report: ConformanceReport, width: number): string {
  const rows: string[][] = [["SEC", "CHECK", "REQ", "STATUS", "VIRT ms", "BOUND ms", "WALL ms", "MSGS", "BYTES", "STORE", "REASON"]];
  for (const r of report.results) {
    rows.push([r.section, r.id, r.required ? "yes" : "no", r.status, ...figures(r), r.reason ? truncate(r.reason, width) : ""]);
    for (const s of r.subResults ?? []) {
      rows.push(["", `  - ${truncate(s.label, SUB_LABEL_WIDTH)}`, "", s.status, "", "", "", "", "", "", s.reason ? truncate(s.reason, width) : ""]);
    }
  }
  const reasons = report.results.filter((r) => r.status === "failed" || r.status === "error").map((r) => `${r.id} ${r.status}: ${truncate(r.reason ?? "", FULL_REASON)}`);
  const notes = [boundsLine(report), claimsLine(report.claims)].filter((x): x is string => x !== undefined);
  return `${headline(report)}${notes.length > 0 ? `\n${notes.join("\n")}` : ""}\n\n${grid(rows, new Set([4, 5, 6, 7, 8, 9]))}${reasons.length > 0 ? `\n\nFailures:\n${reasons.join("\n")}` : ""}`;
}

/**
 * Per backend, each claimed family and encapsulation with the reports (configs) that exercised it,
 * or "not exercised" when no config of the run did.
 */
function boundsMatrix(reports: ConformanceReport[]): string | undefined {
  const ids: string[] = [];
  for (const report of reports) for (const r of report.results) if (r.bound && !ids.includes(r.id)) ids.push(r.id);
  if (ids.length === 0) return undefined;
  const rows: string[][] = [["CHECK", ...reports.map((_, i) => `[${i + 1}] measured / declared`)]];
  for (const id of ids) {
    rows.push([
      id,
      ...reports.map((report) => {
        const r = report.results.find((x) => x.id === id);
        if (!r) return "-";
        return `${figure(r.metrics?.virtualMs)} / ${r.bound ? r.bound.ms : UNMEASURED}`;
      }),
    ]);
  }
  return grid(rows);
}

function claimsMatrix(reports: ConformanceReport[]): string | undefined {
  const backends = [...new Set(reports.filter((r) => r.claims).map((r) => r.backend))];
  if (backends.length === 0) return undefined;
  const rows: string[][] = [["BACKEND", "CLAIM", "EXERCISED BY"]];
  for (const backend of backends) {
    const mine = reports.map((r, i) => ({ r, i })).filter(({ r }) => r.backend === backend && r.claims);
    const claims = mine[0]!.r.claims!;
    const by = (test: (c: ClaimsCoverage) => boolean): string => {
      const hits = mine.filter(({ r }) => test(r.claims!)).map(({ r, i }) => `[${i + 1}] ${r.config}`);
      return hits.length > 0 ? hits.join(", ") : "not exercised";
    };
    for (const f of claims.families.claimed) rows.push([backend, `family ${familyName(f)}`, by((c) => c.families.exercised.includes(f))]);
    for (const e of claims.encapsulations.claimed) rows.push([backend, `encapsulation ${e}`, by((c) => c.encapsulations.exercised.includes(e))]);
  }
  return grid(rows);
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
  const legend = reports
    .map((r, i) => {
      const b = r.bounds ? `\n    ${boundsLine(r)}` : "";
      return `[${i + 1}] ${headline(r)}${b}`;
    })
    .join("\n");
  const reasons: string[] = [];
  reports.forEach((report, i) => {
    for (const r of report.results) {
      if (r.status === "failed" || r.status === "error") reasons.push(`[${i + 1}] ${r.id} ${r.status}: ${truncate(r.reason ?? "", FULL_REASON)}`);
    }
  });
  const claims = claimsMatrix(reports);
  const bounds = boundsMatrix(reports);
  return `${legend}\n\n${grid(rows)}${bounds ? `\n\nVirtual ms, measured / declared bound (${UNMEASURED}: not measured):\n${bounds}` : ""}${claims ? `\n\nClaims (capabilities) exercised by the configs above:\n${claims}` : ""}${reasons.length > 0 ? `\n\nFailures:\n${reasons.join("\n")}` : ""}`;
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
