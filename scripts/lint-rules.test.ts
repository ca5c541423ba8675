// Proves that each of the project's lint rules (eslint.config.js; the house rules in README.md)
// still fires: the linter runs over one small fixture per rule, as if the fixture were a file at
// the given path in the tree, and must report that rule there; a clean fixture and the config-file
// exemption must report nothing. Run by the root's `lint:root` script.
import { fileURLToPath } from "node:url";
import { ESLint, type Linter } from "eslint";
import { beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const eslint = new ESLint({ cwd: root });

async function lint(path: string, code: string): Promise<Linter.LintMessage[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${path}`, warnIgnored: true });
  if (!result) throw new Error(`eslint returned no result for ${path}`);
  return result.messages;
}

interface Fixture {
  /** The project rule the fixture breaks. */
  rule: string;
  /** Where in the tree the fixture is linted as if it lived there. */
  path: string;
  code: string;
  /** ESLint rule id and a piece of the message that must be reported, on `line`. */
  ruleId: string;
  message: string;
  line: number;
}

const src = "packages/core/src/lint-fixture.ts";
const test = "packages/core/test/lint-fixture.test.ts";
/** A test file: the body after an import of the vitest names it uses (an unused one is a finding). */
const testFile = (body: string): string => {
  const names = ["describe", "expect", "it", "test"].filter((n) => new RegExp(`\\b${n}\\b`).test(body));
  return `import { ${names.join(", ")} } from "vitest";\n${body}`;
};

const fixtures: Fixture[] = [
  { rule: "no enums", path: src, code: "export enum Mode {\n  A,\n}\n", ruleId: "no-restricted-syntax", message: "no TypeScript enums", line: 1 },
  { rule: "no const enums", path: src, code: "const enum Mode {\n  A,\n}\nexport const a = Mode.A;\n", ruleId: "no-restricted-syntax", message: "no TypeScript enums", line: 1 },
  { rule: "named exports (export default)", path: src, code: "export default function f(): number {\n  return 1;\n}\n", ruleId: "no-restricted-syntax", message: "named exports only", line: 1 },
  { rule: "named exports (export { x as default })", path: src, code: "const x = 1;\nexport { x as default };\n", ruleId: "no-restricted-syntax", message: "named exports only", line: 2 },
  {
    rule: "no focused describe",
    path: test,
    code: testFile(`describe.only("a", () => {\n  it("b", () => expect(1 + 1).toBe(2));\n});\n`),
    ruleId: "no-restricted-syntax",
    message: "no focused, skipped",
    line: 2,
  },
  { rule: "no focused it", path: test, code: testFile(`it.only("b", () => expect(1 + 1).toBe(2));\n`), ruleId: "no-restricted-syntax", message: "no focused, skipped", line: 2 },
  { rule: "no skipped test", path: test, code: testFile(`test.skip("b", () => expect(1 + 1).toBe(2));\n`), ruleId: "no-restricted-syntax", message: "no focused, skipped", line: 2 },
  { rule: "no skipped table", path: test, code: testFile(`it.skip.each([1])("b %i", (n) => expect(n).toBe(1));\n`), ruleId: "no-restricted-syntax", message: "no focused, skipped", line: 2 },
  { rule: "no postponed test", path: test, code: testFile(`it.todo("b");\n`), ruleId: "no-restricted-syntax", message: "no focused, skipped", line: 2 },
  { rule: "no expected failure", path: test, code: testFile(`it.fails("b", () => expect(1 + 1).toBe(3));\n`), ruleId: "no-restricted-syntax", message: "no focused, skipped", line: 2 },
  {
    rule: "no conditional skip",
    path: test,
    code: testFile(`describe.skipIf(process.env.CI)("a", () => {\n  it("b", () => expect(1 + 1).toBe(2));\n});\n`),
    ruleId: "no-restricted-syntax",
    message: "no focused, skipped",
    line: 2,
  },
  {
    rule: "no conditional run",
    path: test,
    code: testFile(`test.runIf(process.env.CI)("b", () => expect(1 + 1).toBe(2));\n`),
    ruleId: "no-restricted-syntax",
    message: "no focused, skipped",
    line: 2,
  },
  { rule: "no expect(true)", path: test, code: testFile(`it("b", () => {\n  expect(true).toBe(true);\n});\n`), ruleId: "no-restricted-syntax", message: "a test that cannot fail", line: 3 },
  { rule: "no expect(false)", path: test, code: testFile(`it("b", () => {\n  expect(false).toBeFalsy();\n});\n`), ruleId: "no-restricted-syntax", message: "a test that cannot fail", line: 3 },
  { rule: "no TODO comment", path: src, code: "// TODO: handle IPv6\nexport const a = 1;\n", ruleId: "no-warning-comments", message: "todo", line: 1 },
  { rule: "no FIXME comment", path: src, code: "export const a = 1;\n/* FIXME wrong on /31 */\n", ruleId: "no-warning-comments", message: "fixme", line: 2 },
  { rule: "no XXX comment", path: src, code: "export const a = 1; // XXX\n", ruleId: "no-warning-comments", message: "xxx", line: 1 },
  {
    rule: "relative import names its .ts file",
    path: src,
    code: 'import { a } from "./other";\nexport const b = a;\n',
    ruleId: "no-restricted-syntax",
    message: "relative imports name the file",
    line: 1,
  },
  { rule: "relative re-export names its .ts file", path: src, code: 'export * from "../store/memory";\n', ruleId: "no-restricted-syntax", message: "relative imports name the file", line: 1 },
  { rule: "relative named re-export names its .ts file", path: src, code: 'export { a } from "./other";\n', ruleId: "no-restricted-syntax", message: "relative imports name the file", line: 1 },
  {
    rule: "relative dynamic import names its .ts file",
    path: src,
    code: 'export const load = () => import("./other");\n',
    ruleId: "no-restricted-syntax",
    message: "relative imports name the file",
    line: 1,
  },
  { rule: "kebab-case file name (camelCase)", path: "packages/core/src/podCidr.ts", code: "export const a = 1;\n", ruleId: "cnikit/filename-case", message: "podCidr.ts", line: 1 },
  { rule: "kebab-case file name (snake_case)", path: "packages/core/test/pod_cidr.test.ts", code: "export const a = 1;\n", ruleId: "cnikit/filename-case", message: "pod_cidr.test.ts", line: 1 },
  { rule: "kebab-case file name (JavaScript)", path: "examples/static-routes-js/src/Plan.js", code: "export const a = 1;\n", ruleId: "cnikit/filename-case", message: "Plan.js", line: 1 },
];

// Loading the config and typescript-eslint's parser takes seconds on a loaded machine: once,
// before the timed tests. Each test then lints a few lines.
beforeAll(async () => {
  await lint(src, "export const a = 1;\n");
}, 120_000);

describe("each project lint rule fires on a fixture that breaks it", { timeout: 30_000 }, () => {
  it.each(fixtures)("$rule", async (f) => {
    const messages = await lint(f.path, f.code);
    const hits = messages.filter((m) => m.ruleId === f.ruleId && m.message.toLowerCase().includes(f.message.toLowerCase()));
    expect(hits.map((m) => ({ line: m.line, severity: m.severity }))).toEqual([{ line: f.line, severity: 2 }]);
    // Nothing else: the fixture breaks only the rule under test.
    expect(messages.filter((m) => !hits.includes(m))).toEqual([]);
  });
});

describe("what the project rules allow", { timeout: 30_000 }, () => {
  it("a clean source file and test file report nothing", async () => {
    const source = [
      'import { Prefix } from "@cnikit/core";',
      'import { other } from "./other.ts";',
      'import data from "./data.json" with { type: "json" };',
      "",
      "/** The steps to do next are listed in the closing note, not here. */",
      'export const Mode = { A: "a", B: "b" } as const;',
      "export type Mode = (typeof Mode)[keyof typeof Mode];",
      'export const load = () => import("./other.ts");',
      "export { other, data, Prefix };",
      "",
    ].join("\n");
    expect(await lint(src, source)).toEqual([]);
    const cleanTest = testFile(`describe("a", () => {\n  it("b", () => expect(Math.max(1, 2)).toBe(2));\n  test("c", () => expect([1].length).toBe(1));\n});\n`);
    expect(await lint(test, cleanTest)).toEqual([]);
  });

  it("a vitest config may export default (vitest's loader wants it); other project rules still apply there", async () => {
    const config = 'import { defineConfig } from "vitest/config";\n\nexport default defineConfig({});\n';
    expect(await lint("packages/core/vitest.config.ts", config)).toEqual([]);
    const withEnum = `${config}enum Mode {\n  A,\n}\nexport const a = Mode.A;\n`;
    expect((await lint("packages/core/vitest.config.ts", withEnum)).map((m) => m.message)).toEqual(["no TypeScript enums: use an `as const` object"]);
  });

  it("ignores what git ignores, at any depth, and nothing else", async () => {
    const ignored = async (path: string) => ({ path, ignored: await eslint.isPathIgnored(`${root}${path}`) });
    for (const path of ["packages/core/dist/index.js", "packages/docs-check/.scratch/example.ts", "node_modules/x/index.js", "reports/x.ts"]) {
      expect(await ignored(path)).toEqual({ path, ignored: true });
    }
    for (const path of [src, test, "scripts/bench.ts", "examples/static-routes-js/src/plan.js", "packages/cni/bin/launch.mjs"]) {
      expect(await ignored(path)).toEqual({ path, ignored: false });
    }
  });

  it("every project rule is an error for source, test and JavaScript files alike", async () => {
    for (const path of [src, test, "examples/static-routes-js/src/plan.js", "scripts/bench.ts"]) {
      const config = (await eslint.calculateConfigForFile(`${root}${path}`)) as { rules: Record<string, unknown[]> };
      for (const rule of ["no-restricted-syntax", "no-warning-comments", "cnikit/filename-case"]) {
        expect({ path, rule, severity: config.rules[rule]?.[0] }).toEqual({ path, rule, severity: 2 });
      }
    }
  });
});
