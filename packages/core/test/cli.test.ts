// The shared CLI plumbing: strict flags, --help exits 0, usage errors exit 2 naming the flag and the
// known ones, subcommand dispatch, and the main-module test through a symlink.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { CliUsageError, integerOption, isMainModule, knownOptions, listOption, parseCliArgs, programUsage, runCliCommand, runCliProgram } from "../src/index.ts";
import type { CliCommand } from "../src/index.ts";

const OPTIONS = { store: { type: "string" }, json: { type: "boolean" }, port: { type: "string", short: "p" } } as const;

function collect(): { io: { out(l: string): void; err(l: string): void }; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l) => out.push(l), err: (l) => err.push(l) }, out, err };
}

describe("parseCliArgs", () => {
  it("parses long, short and --flag=value forms, booleans and positionals", () => {
    const r = parseCliArgs({ options: OPTIONS, positionals: ["file"] }, ["f.yaml", "--store=/s", "-p", "80", "--json"]);
    expect(r).toEqual({ help: false, values: { store: "/s", port: "80", json: true }, positionals: ["f.yaml"] });
  });

  it("answers help for --help and -h, even with other flags", () => {
    expect(parseCliArgs({ options: OPTIONS }, ["--help"])).toEqual({ help: true });
    expect(parseCliArgs({ options: OPTIONS }, ["--store", "x", "-h"])).toEqual({ help: true });
  });

  it.each([
    [["--bogus"], /^unknown option --bogus; known options: --store, --json, --port \(-p\), --help \(-h\)$/],
    [["-x"], /^unknown option -x; known options: /],
    [["--store"], /^--store needs a value; known options: /],
    [["--json=yes"], /^--json takes no value; known options: /],
    [["extra"], /^unexpected argument "extra" \(this command takes only options\)$/],
  ])("refuses %j with a usage error naming it", (argv, message) => {
    let caught: unknown;
    try {
      parseCliArgs({ options: OPTIONS }, argv);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CliUsageError);
    expect((caught as CliUsageError).code).toBe("usage");
    expect((caught as Error).message).toMatch(message);
  });

  it("requires each named positional and refuses a surplus one", () => {
    expect(() => parseCliArgs({ options: {}, positionals: ["config"] }, [])).toThrow(/<config> is required/);
    expect(() => parseCliArgs({ options: {}, positionals: ["config"] }, ["a", "b"])).toThrow(/unexpected argument "b" \(it takes <config>\)/);
  });

  it("knownOptions lists every flag with its short form and --help", () => {
    expect(knownOptions({ a: { type: "string" }, b: { type: "boolean", short: "b" } })).toBe("--a, --b (-b), --help (-h)");
  });
});

describe("integerOption and listOption", () => {
  it("takes whole numbers in range, the fallback when absent, and names the flag otherwise", () => {
    expect(integerOption("--n", "7", { min: 1, max: 9 })).toBe(7);
    expect(integerOption("--n", undefined, { min: 1, max: 9, fallback: 3 })).toBe(3);
    expect(() => integerOption("--n", undefined, { min: 1, max: 9 })).toThrow(/--n is required \(an integer from 1 to 9\)/);
    expect(() => integerOption("--n", "10", { min: 1, max: 9 })).toThrow(/--n must be an integer from 1 to 9, got "10"/);
    expect(() => integerOption("--n", "1.5", { min: 1, max: 9 })).toThrow(CliUsageError);
  });

  it("splits comma lists, trimming and dropping empty items", () => {
    expect(listOption(" a, b,,c ")).toEqual(["a", "b", "c"]);
    expect(listOption(undefined)).toEqual([]);
  });
});

describe("runCliProgram", () => {
  const ran: unknown[] = [];
  const check: CliCommand<typeof OPTIONS> = {
    name: "ipam check",
    summary: "checks",
    usage: "Usage: prog ipam check [--store <dir>]",
    options: OPTIONS,
    run: ({ values }) => {
      ran.push(values);
      if (values.port === "bad") throw new CliUsageError("--port must be a number");
      return values.json ? 1 : 0;
    },
  };
  const gc: CliCommand = { name: "ipam gc", summary: "collects", usage: "Usage: prog ipam gc", options: {}, run: () => 5 };
  const program = { name: "prog", commands: [check, gc] };

  it("dispatches on the command's words and returns its status", async () => {
    const c = collect();
    expect(await runCliProgram(program, ["ipam", "check", "--store", "/s"], c.io)).toBe(0);
    expect(ran.at(-1)).toEqual({ store: "/s" });
    expect(await runCliProgram(program, ["ipam", "check", "--json"], c.io)).toBe(1);
    expect(await runCliProgram(program, ["ipam", "gc"], c.io)).toBe(5);
  });

  it("--help exits 0 with the usage on stdout, at the program and at a command", async () => {
    for (const [argv, text] of [
      [["--help"], programUsage(program)],
      [["-h"], programUsage(program)],
      [["ipam", "check", "--help"], check.usage],
    ] as const) {
      const c = collect();
      expect(await runCliProgram(program, argv, c.io)).toBe(0);
      expect(c.out).toEqual([text]);
      expect(c.err).toEqual([]);
    }
    expect(programUsage(program)).toContain("ipam check  checks");
  });

  it("exits 2 with the usage on stderr without arguments, on an unknown command, flag or bad value", async () => {
    const none = collect();
    expect(await runCliProgram(program, [], none.io)).toBe(2);
    expect(none.err.join("\n")).toContain("Usage: prog <command>");
    const unknown = collect();
    expect(await runCliProgram(program, ["ipam", "cehck"], unknown.io)).toBe(2);
    expect(unknown.err.join("\n")).toMatch(/prog: unknown command "ipam cehck"; known commands: ipam check, ipam gc/);
    const flag = collect();
    expect(await runCliProgram(program, ["ipam", "check", "--stor", "x"], flag.io)).toBe(2);
    expect(flag.err.join("\n")).toMatch(/^prog ipam check: unknown option --stor; known options: --store, --json, --port \(-p\), --help \(-h\)\nRun 'prog ipam check --help' for usage\.$/);
    const bad = collect();
    expect(await runCliProgram(program, ["ipam", "check", "--port", "bad"], bad.io)).toBe(2);
    expect(bad.err[0]).toMatch(/^prog ipam check: --port must be a number/);
    expect(bad.out).toEqual([]);
  });

  it("lets an error that is not a usage error propagate", async () => {
    const boom: CliCommand = { name: "", summary: "", usage: "", options: {}, run: () => Promise.reject(new Error("store down")) };
    await expect(runCliCommand("prog", boom, [], collect().io)).rejects.toThrow("store down");
  });
});

describe("isMainModule", () => {
  const dir = mkdtempSync(join(tmpdir(), "cnikit-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("holds through a symlink (as npm's .bin makes) and not for another file", () => {
    const real = join(dir, "cli.js");
    writeFileSync(real, "");
    mkdirSync(join(dir, "bin"));
    const link = join(dir, "bin", "tool");
    symlinkSync(real, link);
    const url = pathToFileURL(real).href;
    expect(isMainModule(url, link)).toBe(true);
    expect(isMainModule(url, real)).toBe(true);
    expect(isMainModule(url, join(dir, "other.js"))).toBe(false);
    expect(isMainModule(url, undefined)).toBe(false);
  });
});
