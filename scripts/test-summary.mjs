// Sums the vitest JSON reports every package's `test` script writes, prints one line per package
// and a closing "N passed, N failed" line. Exits 1 when any test failed or a package that has
// tests wrote no report.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dirs = [...readdirSync(join(root, "packages")).map((d) => join("packages", d)), ...readdirSync(join(root, "examples")).map((d) => join("examples", d)), "conformance"];
let passed = 0;
let failed = 0;
let skipped = 0;
let problems = 0;
for (const dir of dirs.sort()) {
  const pkgFile = join(root, dir, "package.json");
  if (!existsSync(pkgFile)) continue;
  const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
  if (!pkg.scripts?.test) continue;
  const reportFile = join(root, dir, ".vitest-report.json");
  if (!existsSync(reportFile)) {
    console.log(`${pkg.name}: no test report (its tests did not run to the end)`);
    problems++;
    continue;
  }
  const r = JSON.parse(readFileSync(reportFile, "utf8"));
  const p = r.numPassedTests ?? 0;
  const f = (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0);
  const s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  passed += p;
  failed += f;
  skipped += s;
  console.log(`${pkg.name}: ${p} passed, ${f} failed${s ? `, ${s} skipped` : ""}`);
  if (p + f === 0) {
    console.log(`${pkg.name}: ran no test`);
    problems++;
  }
}
console.log(`tests: ${passed} passed, ${failed + problems} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed + problems > 0 ? 1 : 0);
