// Every executable a workspace package declares in its package.json `bin`, run the way npm's
// `node_modules/.bin` runs it: through a symlink whose path is not the file's. Each bin's
// "am I the main module" test must hold there (it once compared the symlink's path with the real
// one, and `npx cnikit-calico ...` printed nothing and exited 0). `--help` exits 0 with the usage
// on stdout; an unknown flag exits 2 naming it.
//
// From the sources, not dist/ (which may be stale in a checkout): a `./dist/<x>.js` bin is linked to
// its `./src/<x>.ts` and run with tsx and the "source" condition; a bin that is a wrapper script of
// its own (cni's) is linked as it is and runs its sources (CNIKIT_FROM_SOURCE=1). The tarballs
// themselves are run through npx by the consumer test.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const tsx = join(root, "node_modules", "tsx", "dist", "esm", "index.mjs");

interface Bin {
  pkg: string;
  name: string;
  /** The file the symlink points at. */
  target: string;
  /** Node flags before the script. */
  node: string[];
}

function workspaceBins(): Bin[] {
  const dirs = [...readdirSync(join(root, "packages")).map((d) => join(root, "packages", d)), join(root, "conformance")];
  const bins: Bin[] = [];
  for (const dir of dirs) {
    const file = join(dir, "package.json");
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, "utf8")) as { name: string; bin?: Record<string, string> | string };
    if (pkg.bin === undefined) continue;
    const entries = typeof pkg.bin === "string" ? [[pkg.name.replace(/^@.*\//, ""), pkg.bin] as const] : Object.entries(pkg.bin);
    for (const [name, path] of entries) {
      const m = /^\.\/dist\/(.+)\.js$/.exec(path);
      if (m) bins.push({ pkg: pkg.name, name, target: join(dir, "src", `${m[1]!}.ts`), node: ["--import", tsx, "--conditions=source"] });
      else bins.push({ pkg: pkg.name, name, target: join(dir, path), node: [] });
    }
  }
  return bins;
}

const bins = workspaceBins();
const binDir = join(mkdtempSync(join(tmpdir(), "cnikit-bins-")), "node_modules", ".bin");
mkdirSync(binDir, { recursive: true });
afterAll(() => rmSync(resolve(binDir, "../.."), { recursive: true, force: true }));

function link(bin: Bin): string {
  const path = join(binDir, bin.name);
  if (!existsSync(path)) symlinkSync(bin.target, path);
  return path;
}

function run(bin: Bin, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = link(bin);
  return new Promise((done) => {
    const env: NodeJS.ProcessEnv = { ...process.env, CNIKIT_FROM_SOURCE: "1" };
    delete env["CNI_COMMAND"];
    const child = spawn(process.execPath, [...bin.node, script, ...args], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

describe("every package bin through a .bin symlink", () => {
  it("finds the bins of every package that declares some", () => {
    const names = bins.map((b) => b.name);
    for (const expected of ["cnikit-calico", "cnikit-azure", "cnikit-netpol", "bgp-utils-free", "cnikit-conformance", "cnikit-bench", "cnikit-cni", "cnikitd", "cnikit-controller"]) {
      expect(names).toContain(expected);
    }
    for (const b of bins) expect(existsSync(b.target), `${b.pkg} ${b.name} -> ${b.target}`).toBe(true);
  });

  it.each(bins.map((b) => [b.name, b] as const))(
    "%s --help exits 0 with its usage on stdout; an unknown flag exits 2 naming it",
    async (name, bin) => {
      const [help, bad] = await Promise.all([run(bin, ["--help"]), run(bin, ["--no-such-flag"])]);
      expect(help.stderr, `${name} --help stderr`).toBe("");
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(name);
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stdout).toBe("");
      expect(bad.stderr).toMatch(/unknown option '?--no-such-flag'?/i);
    },
    120_000,
  );
});
