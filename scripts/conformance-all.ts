// The main job (`npm run conformance`): the conformance suite over every built-in backend and each
// of its listed configurations, on the embedded defaults (in-memory datastore, simulator). Prints
// the check × backend table and writes every JSON report to reports/. Exits 1 when any required
// check did not pass.
//
// The last line sums the runs: required checks not passed, and required checks not run / not
// applicable (never a bare "N passed, N failed" line, which CI would read as a test total).
//
// Options: --nodes N (default: the suite's), --seed S, --only name[,name] (backend names),
//          --report-dir DIR (default reports/), --strict (a required check not run / not
//          applicable counts as not passed)
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { builtinBackends } from "@cnikit/backends";
import { hasRequiredFailure, renderTable, requiredCounts, runConformance } from "@cnikit/conformance/runner";
import type { ConformanceReport } from "@cnikit/conformance/runner";

const { values } = parseArgs({
  options: {
    nodes: { type: "string" },
    seed: { type: "string" },
    only: { type: "string" },
    "report-dir": { type: "string", default: "reports" },
    strict: { type: "boolean", default: false },
  },
});

function positiveInt(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`conformance-all: --${name} must be a positive integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

const nodes = positiveInt("nodes", values.nodes);
const seed = positiveInt("seed", values.seed);
const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
const chosen = builtinBackends.filter((b) => !only || only.includes(b.backend.name));
if (chosen.length === 0) {
  console.error(`conformance-all: no built-in backend named ${only?.join(", ")}; known: ${builtinBackends.map((b) => b.backend.name).join(", ")}`);
  process.exit(2);
}

const reportDir = values["report-dir"] ?? "reports";
mkdirSync(reportDir, { recursive: true });
const reports: ConformanceReport[] = [];
for (const entry of chosen) {
  for (const c of entry.configs) {
    const label = `${entry.backend.name}/${c.label}`;
    process.stderr.write(`conformance: ${label} ...`);
    const report = await runConformance({
      backend: entry.backend,
      config: c.config,
      configLabel: c.label,
      invalidConfigs: entry.invalidConfigs,
      anchorConfigs: entry.anchorConfigs,
      ...(c.topology ? { topology: c.topology } : {}),
      ...(values.strict ? { strict: true } : {}),
      ...(nodes === undefined ? {} : { nodes }),
      ...(seed === undefined ? {} : { seed }),
    });
    process.stderr.write(` ${(report.durationMs / 1000).toFixed(1)} s\n`);
    const file = join(reportDir, `${entry.backend.name}-${c.label}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    reports.push(report);
  }
}

console.log(renderTable(reports));
console.log(`\nJSON reports: ${reportDir}/`);
const sums = reports.map(requiredCounts).reduce((a, c) => ({ failed: a.failed + c.failed, notRun: a.notRun + c.notRun, notApplicable: a.notApplicable + c.notApplicable, notPassed: a.notPassed + c.notPassed }), {
  failed: 0,
  notRun: 0,
  notApplicable: 0,
  notPassed: 0,
});
console.log(
  `conformance over ${reports.length} backend configs${values.strict ? " (strict)" : ""}: ${sums.notPassed} required not passed, ${sums.notRun} required not run, ${sums.notApplicable} required not applicable`,
);
const bad = reports.filter(hasRequiredFailure);
if (bad.length > 0) {
  console.log(`required checks not passed by: ${bad.map((r) => `${r.backend}/${r.config}`).join(", ")}`);
  process.exit(1);
}
