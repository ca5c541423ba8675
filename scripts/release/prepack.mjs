// The pack hooks of every published package (`prepack` / `postpack` in its package.json, written by
// scripts/release/package-meta.ts), run by `pnpm pack` and `pnpm publish` in the package's folder.
//
// prepack: copies the repository's LICENSE (the one canonical Apache-2.0 text) into the package,
// and removes the source maps from dist/ — the *.map files and the `//# sourceMappingURL=` line
// of every .js / .d.ts. The maps point at src/, which is not published, so a consumer's tools would
// chase files that do not exist; the workspace's own runs use src/ directly (the `source` export
// condition), and the next `pnpm build` writes the maps again.
// postpack (`--after`): removes the LICENSE copy again (the root's is the only one in git).
//
// Node built-ins only: it runs inside pnpm's lifecycle, before anything else is set up.
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const rootLicense = fileURLToPath(new URL("../../LICENSE", import.meta.url));
const here = process.cwd();
const license = join(here, "LICENSE");

if (process.argv.includes("--after")) {
  if (existsSync(license) && readFileSync(license, "utf8") === readFileSync(rootLicense, "utf8")) rmSync(license);
} else {
  if (!existsSync(join(here, "package.json"))) {
    console.error(`prepack: ${here} is not a package folder (no package.json)`);
    process.exit(1);
  }
  copyFileSync(rootLicense, license);
  const dist = join(here, "dist");
  if (!existsSync(dist)) {
    console.error(`prepack: ${dist} does not exist: build the package first (pnpm build)`);
    process.exit(1);
  }
  let maps = 0;
  let comments = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) {
        walk(path);
      } else if (entry.endsWith(".map")) {
        rmSync(path);
        maps++;
      } else if (entry.endsWith(".js") || entry.endsWith(".d.ts")) {
        const text = readFileSync(path, "utf8");
        const stripped = text.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n");
        if (stripped !== text) {
          writeFileSync(path, stripped);
          comments++;
        }
      }
    }
  };
  walk(dist);
  console.log(`prepack: LICENSE copied; ${maps} source map(s) and ${comments} sourceMappingURL comment(s) removed from dist/`);
}
