/**
 * The published packages of the workspace and the metadata every one of them carries on npm, shared
 * by package-meta.ts (writes or checks it), release.sh and the consumer test (scripts/consumer/).
 *
 * Published = every packages/* folder and conformance/ whose package.json is not `private`.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface PackageJson {
  name: string;
  version: string;
  private?: boolean;
  exports?: Record<string, unknown>;
  bin?: Record<string, string>;
  files?: string[];
  [key: string]: unknown;
}

export interface WorkspacePackage {
  /** The folder relative to the repository root, e.g. `packages/core`. */
  dir: string;
  manifest: PackageJson;
}

export function readJson(file: string): PackageJson {
  return JSON.parse(readFileSync(file, "utf8")) as PackageJson;
}

/** Every published package, in a stable order (folder name). */
export function publishedPackages(): WorkspacePackage[] {
  const dirs = [
    ...readdirSync(join(REPO_ROOT, "packages"))
      .sort()
      .map((d) => `packages/${d}`),
    "conformance",
  ];
  const out: WorkspacePackage[] = [];
  for (const dir of dirs) {
    const file = join(REPO_ROOT, dir, "package.json");
    if (!existsSync(file)) continue;
    const manifest = readJson(file);
    if (manifest.private !== true) out.push({ dir, manifest });
  }
  return out;
}

/** The project's repository, stated once in the root package.json (`repository.url`). */
export function projectRepository(): { gitUrl: string; webUrl: string } {
  const root = readJson(join(REPO_ROOT, "package.json"));
  const repo = root["repository"] as { url?: unknown } | undefined;
  if (typeof repo?.url !== "string" || !/^git\+https:\/\/github\.com\/[^/]+\/[^/]+\.git$/.test(repo.url)) {
    throw new Error(`package.json: repository.url: must be git+https://github.com/<owner>/<name>.git, got ${JSON.stringify(repo?.url)}`);
  }
  return { gitUrl: repo.url, webUrl: repo.url.slice("git+".length, -".git".length) };
}

/**
 * `exports` as published: the `source` condition (the workspace's TypeScript entry points, which
 * are not shipped) removed at every level; everything else as written.
 */
export function publishedExports(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === "source") continue;
    out[key] = publishedExports(inner);
  }
  return out;
}
