/** The published packages of the workspace, read from their package.json files. */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));

export interface PublishedEntry {
  /** `.`, `./testing`, ... */
  subpath: string;
  /** The source file, relative to the repository root (`packages/core/src/index.ts`). */
  file: string;
}

export interface PublishedPackage {
  name: string;
  /** Relative to the repository root (`packages/core`, `conformance`). */
  dir: string;
  bin: string[];
  entries: PublishedEntry[];
}

/** Every package of the workspace that is not private, in folder order. */
export function publishedPackages(): PublishedPackage[] {
  const dirs = [...readdirSync(join(REPO, "packages")).map((d) => `packages/${d}`), "conformance"];
  return dirs.flatMap((dir) => {
    const file = join(REPO, dir, "package.json");
    if (!existsSync(file)) return [];
    const pkg = JSON.parse(readFileSync(file, "utf8")) as {
      name: string;
      private?: boolean;
      bin?: Record<string, string>;
      exports?: Record<string, string | Record<string, string>>;
    };
    if (pkg.private) return [];
    const entries = Object.entries(pkg.exports ?? {}).map(([subpath, target]) => {
      const t = typeof target === "string" ? { default: target } : target;
      const src = t.source ?? (t.types ?? t.default ?? "").replace(/^\.\/dist\//, "./src/").replace(/\.d\.ts$|\.js$/, ".ts");
      return { subpath, file: join(dir, src) };
    });
    return [{ name: pkg.name, dir, bin: Object.keys(pkg.bin ?? {}), entries }];
  });
}

/** Runs node with `args` without blocking the test worker (vitest's RPC needs its event loop). */
export function runNode(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
