// The one lint config of the repository (ESLint flat config + typescript-eslint). Every package's
// `lint` script runs `eslint .` in its folder and ESLint finds this file by walking up; the root's
// `lint:root` covers scripts/ and the root's own files. The house rules (README.md, "Working on
// cnikit") are the `projectRules` below; scripts/lint-rules.test.ts proves each one still fires.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

// File names are kebab-case words, then dotted suffixes: `pod-cidr.ts`, `agent.test.ts`,
// `vitest.config.ts`, `cnikit-lab-probe.mjs`.
const kebabCase = /^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+)*\.(ts|mts|js|mjs|cjs)$/;

// .gitignore's patterns as ESLint ignores: `dir/` anywhere, `/dir/` at the root, `*.ext` anywhere.
const gitignored = readFileSync(new URL(".gitignore", import.meta.url), "utf8")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"))
  .map((line) => {
    const rooted = line.startsWith("/");
    const path = line.replace(/^\//, "").replace(/\/$/, line.endsWith("/") ? "/**" : "");
    return rooted ? path : `**/${path}`;
  });

/** A local plugin for what no built-in rule says. */
const cnikit = {
  meta: { name: "cnikit" },
  rules: {
    "filename-case": {
      meta: {
        type: "suggestion",
        docs: { description: "file names are kebab-case (the house rules)" },
        schema: [],
        messages: { kebab: "file names are kebab-case: rename {{name}} (e.g. pod-cidr.ts, agent.test.ts)" },
      },
      create(context) {
        return {
          Program(node) {
            const name = basename(context.filename);
            if (!kebabCase.test(name)) context.report({ node, messageId: "kebab", data: { name } });
          },
        };
      },
    },
  },
};

// Each entry of no-restricted-syntax is one project rule, as an AST selector and the reason shown
// to whoever breaks it. Relative module specifiers name the file with its extension (.ts in
// TypeScript, which `allowImportingTsExtensions` resolves; .js/.mjs/.json for those files).
const relativeWithoutExtension = "/^\\.(?!.*\\.(ts|mts|js|mjs|json)$)/";
const restrictedSyntax = [
  { selector: "TSEnumDeclaration", message: "no TypeScript enums: use an `as const` object" },
  { selector: "ExportDefaultDeclaration", message: "named exports only" },
  { selector: "ExportSpecifier[exported.name='default']", message: "named exports only" },
  {
    selector: "MemberExpression[object.name=/^(describe|suite|it|test)$/][property.name=/^(only|skip|todo|fails)$/]",
    message: "no focused, skipped or postponed tests",
  },
  { selector: "MemberExpression[property.name=/^(skipIf|runIf)$/]", message: "no focused, skipped or postponed tests" },
  {
    selector: "CallExpression[callee.name='expect'][arguments.0.type='Literal'][arguments.0.raw=/^(true|false)$/]",
    message: "a test that cannot fail: expect() the value under test, not a literal",
  },
  {
    selector: `:matches(ImportDeclaration, ExportNamedDeclaration, ExportAllDeclaration, ImportExpression) > Literal.source[value=${relativeWithoutExtension}]`,
    message: "relative imports name the file with its extension (.ts)",
  },
];

/** The project's own rules (the house rules in README.md); never turned off per file except where noted. */
const projectRules = {
  "no-restricted-syntax": ["error", ...restrictedSyntax],
  "no-warning-comments": ["error", { terms: ["todo", "fixme", "xxx"], location: "start" }],
  "cnikit/filename-case": "error",
};

export const config = defineConfig(
  {
    // What git leaves out (built output, installed packages, reports, scratch and tool folders,
    // wherever they are) and the generated API docs.
    ignores: [...gitignored, "docs/api/**"],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: { ...globals.node } },
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    plugins: { cnikit },
    rules: {
      ...projectRules,
      // tsc (strict, checkJs in examples/static-routes-js) already reports undefined names, and
      // this rule does not know TypeScript's type-only globals.
      "no-undef": "off",
      // The house convention: a leading underscore marks a deliberately unused parameter or
      // destructured leftover (`const { type: _type, ...rest } = x`).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      // A named options interface that adds nothing yet (`MemoryDatastoreOptions extends
      // StateDatastoreOptions {}`) is public API that can grow without a breaking rename.
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
      // A `let` read by closures made before its one assignment (a timer a callback cancels) stays `let`.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // Off: it flags a defensive first value (`let text = ""; try { text = read(); } catch {…}`,
      // `let elapsed = 0; do {…} while (…)`) that is never read; none of its findings here was a
      // bug, and tsc's definite-assignment check already catches a value read before it is set.
      "no-useless-assignment": "off",
      // Off: its two findings (`const self = this` in sim's sandbox, `const t = this` in
      // conformance's external store) name the outer object inside object-literal methods that
      // have a `this` of their own; rewriting them as arrow properties is restyling, not a fix.
      "@typescript-eslint/no-this-alias": "off",
    },
  },
  {
    // Tool configuration files whose loader wants a default export.
    files: ["**/vitest.config.ts", "**/vitest.config.js", "vitest.shared.ts", "eslint.config.js", "prettier.config.js"],
    rules: {
      "no-restricted-syntax": ["error", ...restrictedSyntax.filter((r) => r.message !== "named exports only")],
    },
  },
);

export default config;
