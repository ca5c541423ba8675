/**
 * The consumer test: the packages as a user outside the monorepo meets them. Every published
 * package packed (`pnpm pack`, or the tarballs of `--tarballs <folder>`), installed with npm into a
 * temporary project under os.tmpdir(), and there:
 *
 *  1. every tarball: LICENSE, README.md and package.json; no source maps, no `source` export
 *     condition, no workspace:/catalog: ranges; publint (strict) and arethetypeswrong
 *     (`--profile esm-only`);
 *  2. an import of every package and export subpath type-checks with `moduleResolution: nodenext`,
 *     and the third-party backend (fixture/src/tiny-routes.ts, written against the published
 *     packages only) compiles;
 *  3. every bin answers through npx (`--help` exits 0; cnikit-cni answers VERSION);
 *  4. `npx cnikit-conformance` over a built-in backend (reference) and over tiny-routes;
 *  5. vitest with `defineConformanceSuite` from `@cnikit/conformance/vitest` over tiny-routes;
 *  6. `npx cnikit-bench` over tiny-routes and the reference side by side: one table per scenario
 *     holding both.
 *
 * Fails loudly (exit 1) at the first step that goes wrong, printing the command and its output;
 * prints each step's time and the total. The project is removed afterwards unless `--keep`.
 *
 * Usage: tsx scripts/consumer/run.ts [--tarballs <folder>] [--keep]
 */
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { packAll, tarballName, type Tarball } from "../release/pack.ts";
import { REPO_ROOT, publishedPackages, readJson, type PackageJson } from "../release/packages.ts";

const FIXTURE = join(REPO_ROOT, "scripts/consumer/fixture");
/** The checks run over both backends: what tiny-routes meets (see its header). */
const CHECKS = ["ipam.in-range", "ipam.unique", "reach.pod-to-pod.same-node", "reach.pod-to-pod.cross-node", "reach.node-to-pod", "cni.check-after-add", "dyn.join", "dyn.leave"];

class StepError extends Error {
  override readonly name = "StepError";
}

interface Run {
  status: number;
  output: string;
}

/** Runs `cmd args` in `cwd`, output captured (stdout then stderr). */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("error", fail);
    child.on("close", (status) => done({ status: status ?? 1, output: `${out}${err ? `\n[stderr]\n${err}` : ""}` }));
  });
}

/** Like `run`, but anything other than exit 0 is a StepError with the command and its output. */
async function must(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await run(cmd, args, cwd, env);
  if (r.status !== 0) throw new StepError(`\`${[cmd, ...args].join(" ")}\` (in ${cwd}) exited ${r.status}:\n${r.output.trim()}`);
  return r.output;
}

/** `fn` over `items`, `limit` at a time; every failure collected into one StepError. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const failures: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item).catch((err: unknown) => failures.push(err instanceof Error ? err.message : String(err)));
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  if (failures.length > 0) throw new StepError(failures.join("\n\n"));
}

function tarList(file: string): string[] {
  return execFileSync("tar", ["tzf", file], { encoding: "utf8" }).split("\n").filter(Boolean);
}

function tarManifest(file: string): PackageJson {
  return JSON.parse(execFileSync("tar", ["xzf", file, "-O", "package/package.json"], { encoding: "utf8" })) as PackageJson;
}

/** The places a `source` condition or a workspace-only range would hide in a manifest. */
function manifestProblems(m: PackageJson): string[] {
  const problems: string[] = [];
  const walk = (value: unknown, path: string): void => {
    if (value === null || typeof value !== "object") return;
    for (const [k, v] of Object.entries(value)) {
      if (k === "source") problems.push(`${path}.source: a "source" export condition (src/ is not published)`);
      walk(v, `${path}.${k}`);
    }
  };
  walk(m.exports, "exports");
  for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
    for (const [dep, range] of Object.entries((m[field] as Record<string, string> | undefined) ?? {})) {
      if (/^(workspace|catalog):/.test(range)) problems.push(`${field}.${dep}: ${range} (a workspace-only range)`);
    }
  }
  return problems;
}

async function checkTarball(t: Tarball): Promise<void> {
  const files = tarList(t.file);
  const manifest = tarManifest(t.file);
  const problems = manifestProblems(manifest);
  for (const wanted of ["package/LICENSE", "package/README.md", "package/package.json"]) {
    if (!files.includes(wanted)) problems.push(`no ${wanted.slice("package/".length)}`);
  }
  const maps = files.filter((f) => f.endsWith(".map"));
  if (maps.length > 0) problems.push(`${maps.length} source map(s), e.g. ${maps[0]}`);
  for (const [bin, target] of Object.entries(manifest.bin ?? {})) {
    if (!files.includes(`package/${target.replace(/^\.\//, "")}`)) problems.push(`bin ${bin}: ${target} is not in the tarball`);
  }
  if (problems.length > 0) throw new StepError(`${t.name} (${t.file}):\n  ${problems.join("\n  ")}`);
  await must(join(REPO_ROOT, "node_modules/.bin/publint"), ["run", t.file, "--strict"], REPO_ROOT);
  await must(join(REPO_ROOT, "node_modules/.bin/attw"), [t.file, "--profile", "esm-only", "--format", "table-flipped"], REPO_ROOT);
}

/** `import * as` every package and export subpath (from the tarballs' manifests), one name each. */
function importsModule(tarballs: Tarball[]): string {
  const lines: string[] = [];
  const names: string[] = [];
  for (const t of tarballs) {
    const exports = tarManifest(t.file).exports ?? { ".": null };
    for (const sub of Object.keys(exports)) {
      const spec = sub === "." ? t.name : `${t.name}/${sub.slice(2)}`;
      const id = `m${names.length}`;
      names.push(id);
      lines.push(`import * as ${id} from ${JSON.stringify(spec)};`);
    }
  }
  lines.push(`export const modules: object[] = [${names.join(", ")}];`);
  return `// Written by scripts/consumer/run.ts: every published entry point.\n${lines.join("\n")}\n`;
}

function catalogVersion(name: string): string {
  const m = new RegExp(`^\\s+"?${name.replace("/", "\\/")}"?: \\^?(\\S+)$`, "m").exec(readFileSync(join(REPO_ROOT, "pnpm-workspace.yaml"), "utf8"));
  if (!m) throw new StepError(`pnpm-workspace.yaml: no catalog entry for ${name}`);
  return m[1]!;
}

/** A markdown table row's cells. */
const cells = (line: string): string[] => line.split("|").map((c) => c.trim());

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tarballs: { type: "string" }, keep: { type: "boolean" } }, strict: true });
  const started = Date.now();
  const step = async (label: string, fn: () => Promise<void> | void): Promise<void> => {
    const t0 = Date.now();
    process.stdout.write(`consumer: ${label} ...\n`);
    await fn();
    process.stdout.write(`consumer: ${label}: ok (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  };

  const project = mkdtempSync(join(tmpdir(), "cnikit-consumer-"));
  let tarballs: Tarball[] = [];
  try {
    await step("pack every published package", () => {
      if (values.tarballs !== undefined) {
        const dir = resolve(values.tarballs);
        tarballs = publishedPackages().map(({ dir: pkgDir, manifest }) => ({ name: manifest.name, dir: pkgDir, file: join(dir, tarballName(manifest.name, manifest.version)) }));
      } else {
        tarballs = packAll(join(project, "tarballs"));
      }
      process.stdout.write(`  ${tarballs.length} tarballs: ${tarballs.map((t) => t.name).join(", ")}\n`);
    });

    await step("tarball contents, publint --strict, attw --profile esm-only", () => eachLimited(tarballs, 2, checkTarball));

    await step(`npm install of the tarballs into ${project}`, async () => {
      writeFileSync(join(project, "package.json"), `${JSON.stringify({ name: "cnikit-consumer", version: "0.0.0", private: true, type: "module" }, null, 2)}\n`);
      cpSync(FIXTURE, project, { recursive: true });
      writeFileSync(join(project, "src/imports.ts"), importsModule(tarballs));
      const tools = [`typescript@${catalogVersion("typescript")}`, `@types/node@${catalogVersion("@types/node")}`, `vitest@${catalogVersion("vitest")}`];
      await must("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", ...tarballs.map((t) => t.file), ...tools], project);
    });

    await step("tsc (module nodenext): an import of every entry point, and tiny-routes compiled", async () => {
      await must("npx", ["--no-install", "tsc", "-p", "tsconfig.json"], project);
    });

    await step("every bin through npx", async () => {
      const bins = tarballs.flatMap((t) => Object.keys(tarManifest(t.file).bin ?? {}));
      await eachLimited(bins, 2, async (bin) => {
        if (bin === "cnikit-cni") {
          const out = await must("npx", ["--no-install", bin], project, { CNI_COMMAND: "VERSION" });
          if (!out.includes('"supportedVersions"')) throw new StepError(`npx cnikit-cni with CNI_COMMAND=VERSION printed no supportedVersions:\n${out}`);
          return;
        }
        const out = await must("npx", ["--no-install", bin, "--help"], project);
        if (!/usage/i.test(out)) throw new StepError(`npx ${bin} --help printed no usage:\n${out}`);
      });
    });

    const conformance = async (backend: string, config: string, report: string): Promise<void> => {
      await must("npx", ["--no-install", "cnikit-conformance", "--backend", backend, "--config", config, "--nodes", "3", "--checks", CHECKS.join(","), "--report", report], project);
      const results = (readJson(join(project, report)) as unknown as { results?: { id: string; status: string }[] }).results ?? [];
      const passed = results.filter((r) => r.status === "passed").map((r) => r.id);
      const missing = CHECKS.filter((c) => !passed.includes(c));
      if (missing.length > 0) throw new StepError(`${report}: not passed: ${missing.join(", ")}`);
    };

    await step("npx cnikit-conformance over the built-in reference backend", async () => {
      writeFileSync(join(project, "reference.json"), `${JSON.stringify({ network: "10.250.0.0/16", nodeSubnetLength: 24 })}\n`);
      await conformance("@cnikit/reference", "reference.json", "reference-report.json");
    });

    await step("npx cnikit-conformance over tiny-routes (third-party, compiled by tsc)", () => conformance("./dist/src/tiny-routes.js", "tiny-routes.json", "tiny-routes-report.json"));

    await step("vitest: defineConformanceSuite over tiny-routes", async () => {
      const out = await must("npx", ["--no-install", "vitest", "run", "--reporter=default", "--reporter=json", "--outputFile.json=vitest.json"], project, { CI: "1" });
      const report = JSON.parse(readFileSync(join(project, "vitest.json"), "utf8")) as { testResults: { assertionResults: { title: string; status: string }[] }[] };
      const passed = report.testResults.flatMap((f) => f.assertionResults).filter((a) => a.status === "passed");
      const missing = CHECKS.filter((c) => !passed.some((a) => a.title.startsWith(`${c}:`)));
      if (missing.length > 0) throw new StepError(`vitest: not passed: ${missing.join(", ")}\n${out}`);
    });

    await step("npx cnikit-bench: tiny-routes and the reference side by side", async () => {
      const out = await must(
        "npx",
        [
          "--no-install",
          "cnikit-bench",
          "--backend",
          "./dist/src/tiny-routes.js",
          "--config",
          "tiny-routes.json",
          "--backend",
          "reference",
          "--nodes",
          "3",
          "--scenarios",
          "join",
          "--runs",
          "1",
          "--json",
          "bench.json",
        ],
        project,
        { CI: "1" },
      );
      const rows = out
        .split("\n")
        .filter((l) => l.startsWith("|"))
        .map(cells);
      const holds = (name: string): boolean => rows.some((r) => r.some((c) => c.startsWith(name)));
      if (!holds("tiny-routes") || !holds("reference")) throw new StepError(`cnikit-bench's table does not hold both tiny-routes and reference:\n${out}`);
    });
  } finally {
    if (values.keep) process.stdout.write(`consumer: project kept at ${project}\n`);
    else rmSync(project, { recursive: true, force: true });
  }
  process.stdout.write(`consumer: passed in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`consumer: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
