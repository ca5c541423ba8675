// Sums the vitest JSON reports every package's `test` script writes, prints one line per package
// and a closing "N passed, N failed" line. Each failed test is named with the first lines of its
// failure, so a CI log that keeps only its tail still says what broke. Exits 1 when any test failed
// or a package that has tests wrote no report.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dirs = [...readdirSync(join(root, "packages")).map((d) => join("packages", d)), ...readdirSync(join(root, "examples")).map((d) => join("examples", d)), "conformance"];
let passed = 0;
let failed = 0;
let skipped = 0;
let problems = 0;
const failures = [];
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
  // numFailedTestSuites counts every file and describe block above a failed test too; count the
  // failed tests, plus each file that failed outside any test (an import error, a failing hook).
  const brokenFiles = (r.testResults ?? []).filter((file) => file.status === "failed" && !(file.assertionResults ?? []).some((t) => t.status === "failed"));
  const f = (r.numFailedTests ?? 0) + brokenFiles.length;
  const s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  passed += p;
  failed += f;
  skipped += s;
  console.log(`${pkg.name}: ${p} passed, ${f} failed${s ? `, ${s} skipped` : ""}`);
  for (const file of r.testResults ?? []) {
    const where = `${dir}/${file.name.startsWith(join(root, dir)) ? file.name.slice(join(root, dir).length + 1) : file.name}`;
    const failedTests = (file.assertionResults ?? []).filter((t) => t.status === "failed");
    for (const t of failedTests) failures.push({ where, title: t.fullName ?? t.title, message: (t.failureMessages ?? []).join("\n") });
    // A file that failed outside any test (an import error, a failing hook) has a message of its own.
    if (file.status === "failed" && failedTests.length === 0) failures.push({ where, title: "(the file, outside any test)", message: file.message ?? "" });
  }
  if (p + f === 0) {
    console.log(`${pkg.name}: ran no test`);
    problems++;
  }
}
for (const { where, title, message } of failures) {
  console.log(`FAILED ${where} > ${title}`);
  // The message and the stack frames in our own code; the test runner's frames say nothing.
  const lines = message.split("\n").filter((l) => l.trim() !== "" && !/node_modules|node:internal|new Promise \(<anonymous>\)/.test(l));
  for (const l of lines.slice(0, 12)) console.log(`    ${l.length > 300 ? `${l.slice(0, 300)}…` : l}`);
  if (lines.length > 12) console.log(`    … ${lines.length - 12} more lines in ${where}'s report`);
}
console.log(`tests: ${passed} passed, ${failed + problems} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed + problems > 0 ? 1 : 0);
