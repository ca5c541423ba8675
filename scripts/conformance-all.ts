// The main job (`npm run conformance`): the conformance suite over every built-in backend and each
// of its listed configurations, on the embedded defaults (in-memory datastore, simulator). Prints
// the check × backend table and writes every JSON report to reports/. Exits 1 when any required
// check did not pass.
//
// The last line sums the runs: required checks not passed, and required checks not run / not
// applicable (never a bare "N passed, N failed" line, which CI would read as a test total).
//
// The configurations are each backend's fixtures (`@cnikit/<backend>/fixtures`, listed by the
// registry @cnikit/backends): one run per mode, with the backend's invalid-config and anchor tables.
//
// Options: see USAGE below (--help).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { builtinBackends } from "@cnikit/backends";
import { hasRequiredFailure, renderTable, requiredCounts, runConformance, selectChecks } from "@cnikit/conformance/runner";
import type { ConformanceReport } from "@cnikit/conformance/runner";

const USAGE = `Usage: tsx --conditions=source scripts/conformance-all.ts [options]

The conformance suite over every built-in backend, one run per mode of its fixtures:
${builtinBackends.map((b) => `  ${b.backend.name}: ${b.configs.map((c) => c.label).join(", ")}`).join("\n")}

Options:
  --only <name[,name]>     only these backends
  --mode <label[,label]>   only these modes (fixture labels above; with --only, of those backends)
  --checks <id,id>         only these checks (ids, section letters, or prefixes like dyn.*)
  --nodes <N>              nodes in the shared cluster (default: the suite's)
  --seed <S>               seed of every random choice
  --report-dir <dir>       where the JSON reports go (default reports/)
  --strict                 a required check "not run" or "not applicable" counts as not passed
  -h, --help               this text

Exit status: 0 every required check passed, 1 one did not, 2 usage error.`;

const { values } = parseArgs({
  options: {
    nodes: { type: "string" },
    seed: { type: "string" },
    only: { type: "string" },
    mode: { type: "string" },
    checks: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
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

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const nodes = positiveInt("nodes", values.nodes);
const seed = positiveInt("seed", values.seed);
const only = values.only
  ?.split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const chosen = builtinBackends.filter((b) => !only || only.includes(b.backend.name));
if (chosen.length === 0) {
  console.error(`conformance-all: no built-in backend named ${only?.join(", ")}; known: ${builtinBackends.map((b) => b.backend.name).join(", ")}`);
  process.exit(2);
}

const modes = values.mode
  ?.split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const runs = chosen.flatMap((entry) => entry.configs.filter((c) => !modes || modes.includes(c.label)).map((c) => ({ entry, c })));
if (runs.length === 0) {
  console.error(`conformance-all: no mode named ${modes?.join(", ")}; known: ${chosen.map((b) => `${b.backend.name}: ${b.configs.map((c) => c.label).join(", ")}`).join("; ")}`);
  process.exit(2);
}
const checks = values.checks
  ?.split(",")
  .map((s) => s.trim())
  .filter(Boolean);
if (checks) {
  try {
    selectChecks(checks);
  } catch (err) {
    console.error(`conformance-all: --checks: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  }
}

const reportDir = values["report-dir"] ?? "reports";
mkdirSync(reportDir, { recursive: true });
const reports: ConformanceReport[] = [];
for (const { entry, c } of runs) {
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
    ...(checks ? { checks } : {}),
  });
  process.stderr.write(` ${(report.durationMs / 1000).toFixed(1)} s\n`);
  const file = join(reportDir, `${entry.backend.name}-${c.label}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  reports.push(report);
}

console.log(renderTable(reports));
console.log(`\nJSON reports: ${reportDir}/`);
const sums = reports
  .map(requiredCounts)
  .reduce((a, c) => ({ failed: a.failed + c.failed, notRun: a.notRun + c.notRun, notApplicable: a.notApplicable + c.notApplicable, notPassed: a.notPassed + c.notPassed }), {
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
