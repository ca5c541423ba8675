// A small lint for the house rules (no enums, named exports, no skipped tests, ...) that tsc does not enforce. Run in a package
// directory (each package's `lint` script); checks src/ and test/. Exits 1 with one line per finding.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, basename } from "node:path";

const rules = [
  { re: /^\s*(export\s+)?(const\s+)?enum\s+\w+/, why: "no TypeScript enums: use an `as const` object" },
  { re: /^\s*export\s+default\b/, why: "named exports only", except: /vitest\.config\.ts$/ },
  { re: /\b(describe|it|test)\.(only|skip|todo)\(|\bit\.fails\(|\.skipIf\(/, why: "no focused, skipped or postponed tests" },
  { re: /expect\(\s*true\s*\)/, why: "a test that cannot fail" },
  { re: /\/\/\s*(TODO|FIXME|XXX)\b/, why: "no TODO/FIXME left in code: do it, or say it in the closing note" },
  { re: /from\s+["']\.{1,2}\/[^"']*(?<!\.ts|\.json|\.mjs|\.js)["']/, why: "relative imports name the file with its .ts extension" },
];

const findings = [];
function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      walk(path);
      continue;
    }
    if (!/\.(ts|mts)$/.test(name)) continue;
    if (!/^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+)*\.m?ts$/.test(basename(name))) {
      findings.push(`${path}: file names are kebab-case`);
    }
    const lines = readFileSync(path, "utf8").split("\n");
    lines.forEach((line, i) => {
      for (const rule of rules) {
        if (rule.except?.test(path)) continue;
        if (rule.re.test(line)) findings.push(`${path}:${i + 1}: ${rule.why}\n    ${line.trim()}`);
      }
    });
  }
}
for (const dir of ["src", "test"]) walk(dir);
if (findings.length) {
  console.error(findings.join("\n"));
  console.error(`lint: ${findings.length} finding(s)`);
  process.exit(1);
}
