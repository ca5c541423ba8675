/**
 * Every published package's README as npm shows it, checked so it cannot rot:
 *  - it exists, says how to install the package (`npm install <name>`), links to the contract and
 *    to the package's API reference page (docs/api, which must exist);
 *  - every fenced TypeScript block is a whole module: all of them are type-checked together (one
 *    tsc run, strict, NodeNext), and each one is run unless a `<!-- readme-example: typecheck-only -->`
 *    line stands right before it (for examples that need root, a kernel or a real peer);
 *  - every bin of the package has its `--help` text in the README after
 *    `<!-- readme-help: <bin> -->`, exactly as the CLI prints it today (CNIKIT_UPDATE_README_HELP=1
 *    writes the CLI's current text into the README instead of failing, like `vitest -u`).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { publishedPackages, REPO, runNode, WEB_URL } from "./packages.ts";

const CONTRACT_URL = `${WEB_URL}/blob/main/packages/core/src/backend.ts`;
const API_URL = `${WEB_URL}/blob/main/docs/api/`;

const HERE = fileURLToPath(new URL("..", import.meta.url));
const SCRATCH = join(HERE, ".scratch/readme-examples");
const TSC = join(REPO, "node_modules/typescript/bin/tsc");
const TSX = join(REPO, "node_modules/tsx/dist/loader.mjs");

interface Example {
  pkg: string;
  index: number;
  code: string;
  run: boolean;
  file: string;
}

/**
 * The fenced ```ts blocks of a README. A line `<!-- readme-example: <options> -->` right before a
 * block sets options, comma-separated: `typecheck-only` (type-checked, not run) and `file <name>.ts`
 * (the block is saved under that name, so later blocks of the same README import it as `./<name>.js`).
 */
function examplesOf(text: string): { code: string; run: boolean; name: string | undefined }[] {
  const out: { code: string; run: boolean; name: string | undefined }[] = [];
  const re = /(?:<!-- readme-example: ([^>]*) -->\n)?```ts\n([\s\S]*?)```/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const options = (m[1] ?? "")
      .split(",")
      .map((o) => o.trim())
      .filter(Boolean);
    const unknown = options.filter((o) => o !== "typecheck-only" && !/^file [a-z0-9-]+\.ts$/.test(o));
    if (unknown.length > 0) throw new Error(`unknown readme-example option(s) ${unknown.join(", ")} (known: typecheck-only, file <name>.ts)`);
    const name = options.find((o) => o.startsWith("file "))?.slice(5);
    out.push({ code: m[2]!, run: !options.includes("typecheck-only"), name });
  }
  return out;
}

/** The block that follows `<!-- readme-help: <bin> -->`. */
function helpBlock(text: string, bin: string): string | undefined {
  const m = new RegExp(`<!-- readme-help: ${bin} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\`\\n`).exec(text);
  return m?.[1];
}

/** How to run a bin from source: dist/<x>.js maps to src/<x>.ts (through tsx), other bins run as they are. */
async function helpOf(dir: string, bin: string): Promise<{ status: number | null; text: string }> {
  const pkg = JSON.parse(readFileSync(join(REPO, dir, "package.json"), "utf8")) as { bin: Record<string, string> };
  const target = pkg.bin[bin]!;
  const m = /^\.\/dist\/(.+)\.js$/.exec(target);
  const args = m ? ["--conditions=source", "--import", pathToFileURL(TSX).href, join(REPO, dir, "src", `${m[1]}.ts`), "--help"] : [join(REPO, dir, target), "--help"];
  const r = await runNode(args, { cwd: REPO, env: { ...process.env, CNIKIT_FROM_SOURCE: "1", NO_COLOR: "1" }, timeoutMs: 120_000 });
  return { status: r.status, text: r.stdout + r.stderr };
}

const normalize = (s: string): string => s.replace(/[ \t]+$/gm, "").trim();

const packages = publishedPackages();
const examples: Example[] = [];
for (const p of packages) {
  const readme = join(REPO, p.dir, "README.md");
  if (!existsSync(readme)) continue;
  examplesOf(readFileSync(readme, "utf8")).forEach((e, index) => {
    const file = join(SCRATCH, p.dir.replace(/\//g, "-"), e.name ?? `example-${index + 1}.ts`);
    examples.push({ pkg: p.name, index: index + 1, code: e.code, run: e.run, file });
  });
}

afterAll(() => rmSync(SCRATCH, { recursive: true, force: true }));

describe("published READMEs", () => {
  it("there are published packages to check", () => {
    expect(packages.length).toBeGreaterThanOrEqual(17);
  });

  describe.each(packages)("$name", (p) => {
    const readme = join(REPO, p.dir, "README.md");
    const text = existsSync(readme) ? readFileSync(readme, "utf8") : "";

    it("has a README with install, contract and API reference links", () => {
      expect(existsSync(readme), `${p.dir}/README.md is missing`).toBe(true);
      expect(text).toMatch(new RegExp(`npm install [^\\n]*${p.name.replace(/[/@]/g, "\\$&")}`));
      expect(text).toContain(CONTRACT_URL);
      const api = `${API_URL}${p.name}.md`;
      expect(text, `link to ${api}`).toContain(api);
      expect(existsSync(join(REPO, "docs/api", `${p.name}.md`)), `docs/api/${p.name}.md`).toBe(true);
      expect(text, "no pointer outside the repository").not.toMatch(/\/work\/shared|shared\/(reference|design)/);
    });

    it.each(p.bin.length ? p.bin : ["(no bin)"])(
      "prints %s --help as the README shows it",
      async (bin) => {
        if (bin === "(no bin)") {
          expect(text).not.toMatch(/<!-- readme-help:/);
          return;
        }
        const shown = helpBlock(text, bin);
        expect(shown, `README lacks the block after <!-- readme-help: ${bin} -->`).toBeDefined();
        const { status, text: help } = await helpOf(p.dir, bin);
        expect(status, help).toBe(0);
        if (process.env.CNIKIT_UPDATE_README_HELP === "1" && normalize(shown!) !== normalize(help)) {
          // Like `vitest -u` for snapshots: write the CLI's text into the README, then check it again.
          writeFileSync(readme, readFileSync(readme, "utf8").replace(`<!-- readme-help: ${bin} -->\n\`\`\`text\n${shown!}`, `<!-- readme-help: ${bin} -->\n\`\`\`text\n${help.trimEnd()}\n`));
          expect(normalize(helpBlock(readFileSync(readme, "utf8"), bin) ?? "")).toBe(normalize(help));
          return;
        }
        expect(normalize(shown!), `${p.dir}/README.md's ${bin} --help block is stale: run CNIKIT_UPDATE_README_HELP=1 npx vitest run test/readme.test.ts in packages/docs-check`).toBe(normalize(help));
      },
      120_000,
    );
  });
});

describe("README examples", () => {
  it("every ```ts block of every README type-checks (strict, NodeNext, as a module of its own)", async () => {
    expect(examples.length).toBeGreaterThan(10);
    rmSync(SCRATCH, { recursive: true, force: true });
    for (const e of examples) {
      mkdirSync(dirname(e.file), { recursive: true });
      writeFileSync(e.file, `// ${e.pkg} README, example ${e.index}\n${e.code}`);
    }
    writeFileSync(join(SCRATCH, "tsconfig.json"), JSON.stringify({ extends: "../../../../tsconfig.base.json", compilerOptions: { noEmit: true }, include: ["*/*.ts"] }));
    const r = await runNode([TSC, "-p", join(SCRATCH, "tsconfig.json")], { cwd: HERE, timeoutMs: 600_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 600_000);

  it.each(examples.filter((e) => e.run).map((e) => [`${e.pkg} #${e.index}`, e] as const))(
    "%s runs",
    async (_label, e) => {
      for (const f of examples.filter((x) => x.pkg === e.pkg)) {
        mkdirSync(dirname(f.file), { recursive: true });
        writeFileSync(f.file, f.code);
      }
      await expect(import(pathToFileURL(e.file).href)).resolves.toBeDefined();
    },
    300_000,
  );
});
