/**
 * `pnpm pack` of every published package into one folder (the packages must be built: their
 * prepack hook refuses a missing dist/). What release.sh publishes and the consumer test installs.
 *
 * Usage: tsx scripts/release/pack.ts <folder>   (prints one tarball path per line)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { REPO_ROOT, publishedPackages } from "./packages.ts";

export interface Tarball {
  name: string;
  dir: string;
  file: string;
}

/** `@cnikit/core` at 0.1.0 → `cnikit-core-0.1.0.tgz`, pnpm's and npm's tarball name. */
export function tarballName(name: string, version: string): string {
  return `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`;
}

export function packAll(dest: string): Tarball[] {
  mkdirSync(dest, { recursive: true });
  const packages = publishedPackages();
  // One pnpm process for all of them (a pnpm start per package costs seconds on a loaded machine).
  const filters = packages.flatMap(({ manifest }) => ["--filter", manifest.name]);
  try {
    execFileSync("pnpm", ["pack", "--recursive", "--workspace-concurrency=2", "--pack-destination", dest, ...filters], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`pnpm pack --recursive failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`, { cause: err });
  }
  const written = readdirSync(dest);
  return packages.map(({ dir, manifest }) => {
    const name = tarballName(manifest.name, manifest.version);
    if (!written.includes(name)) throw new Error(`pnpm pack wrote no ${name} for ${dir} into ${dest}`);
    return { name: manifest.name, dir, file: join(dest, name) };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dest = process.argv[2];
  if (dest === undefined) {
    console.error("usage: tsx scripts/release/pack.ts <folder>");
    process.exit(2);
  }
  for (const t of packAll(resolve(dest))) console.log(t.file);
}
