/**
 * The published packages of the workspace (scripts/release/packages.ts decides which), with their
 * bins and entry points as this package's checks need them.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT, projectRepository, publishedPackages as workspacePublished } from "../../../scripts/release/packages.ts";

export const REPO = REPO_ROOT;
/** The project's repository on the web, e.g. `https://github.com/cnikit/cnikit`. */
export const WEB_URL = projectRepository().webUrl;

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

/** Every published package with its entry points' source files (the `source` condition, else `types` mapped from dist/ to src/). */
export function publishedPackages(): PublishedPackage[] {
  return workspacePublished().map(({ dir, manifest }) => {
    const entries = Object.entries(manifest.exports ?? {}).map(([subpath, target]) => {
      const t = (typeof target === "string" ? { default: target } : target) as Record<string, string | undefined>;
      const src = t["source"] ?? (t["types"] ?? t["default"] ?? "").replace(/^\.\/dist\//, "./src/").replace(/\.d\.ts$|\.js$/, ".ts");
      return { subpath, file: join(dir, src) };
    });
    return { name: manifest.name, dir, bin: Object.keys(manifest.bin ?? {}), entries };
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
