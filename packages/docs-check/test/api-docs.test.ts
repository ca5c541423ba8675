/**
 * The API reference (docs/api, TypeDoc Markdown from the root typedoc.json) as a check: it builds
 * with no warning (TypeDoc's treatWarningsAsErrors: a broken {@link}, an unexported type a public
 * one names, a comment TypeDoc would drop), every public entry point of every published package is
 * in it, and the committed pages are what the types say today (`npm run docs:api` regenerates them).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { publishedPackages, REPO, runNode } from "./packages.ts";

const out = mkdtempSync(join(tmpdir(), "cnikit-docs-api-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const TYPEDOC = fileURLToPath(new URL("../../../node_modules/typedoc/bin/typedoc", import.meta.url));

describe("API reference (docs/api)", () => {
  it("builds from typedoc.json with warnings as errors, and docs/api is current", async () => {
    const r = await runNode([TYPEDOC, "--treatWarningsAsErrors", "--out", out], { cwd: REPO, timeoutMs: 600_000 });
    expect(r.status, `typedoc failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    const committed = join(REPO, "docs/api");
    const made = files(out)
      .map((f) => relative(out, f))
      .sort();
    expect(
      files(committed)
        .map((f) => relative(committed, f))
        .sort(),
      "docs/api has other pages than typedoc makes now: run `npm run docs:api`",
    ).toEqual(made);
    const stale = made.filter((f) => readFileSync(join(out, f), "utf8") !== readFileSync(join(committed, f), "utf8"));
    expect(stale, "these docs/api pages differ from what the types say now: run `npm run docs:api` and commit docs/api").toEqual([]);
  }, 600_000);

  it("has an entry point for every public export of every published package (not ./internal, ./cli, ./fixtures)", () => {
    const config = JSON.parse(readFileSync(join(REPO, "typedoc.json"), "utf8")) as { entryPoints: string[] };
    const wanted = publishedPackages().flatMap((p) => p.entries.filter((e) => !/^\.\/(internal|cli|fixtures)$/.test(e.subpath)).map((e) => e.file));
    expect(wanted.length).toBeGreaterThan(15);
    expect([...config.entryPoints].sort()).toEqual([...wanted].sort());
  });
});
