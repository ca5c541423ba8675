// TypeDoc plugin: name each entry-point module after the import a user writes (`@cnikit/core`,
// `@cnikit/conformance/vitest`) instead of its path in the repository (`packages/core/src`). The
// names come from each package's package.json `exports` (the `source` file, else the `types` file
// mapped back from dist/ to src/), so a renamed or moved entry cannot keep a stale name.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { Converter, ReflectionKind } from "typedoc";

/** The nearest package.json above `file`. */
function packageDir(file) {
  let dir = dirname(file);
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
  return dir;
}

/** The import specifier for an entry file, from its package's exports; undefined when not exported. */
export function importNameOf(file) {
  const dir = packageDir(file);
  if (!dir) return undefined;
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    const t = typeof target === "string" ? { default: target } : target;
    const src = t.source ?? (t.types ?? t.default ?? "").replace(/^\.\/dist\//, "./src/").replace(/\.d\.ts$|\.js$/, ".ts");
    if (resolve(dir, src) === resolve(file)) return pkg.name + subpath.slice(1);
  }
  return undefined;
}

export function load(app) {
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.kindOf(ReflectionKind.Module)) return;
    const symbol = context.getSymbolFromReflection(reflection);
    const file = symbol?.declarations?.[0]?.getSourceFile().fileName;
    if (!file) return;
    const name = importNameOf(file);
    if (!name) {
      app.logger.warn(`${relative(process.cwd(), file)} is an entry point but no package.json "exports" names it`);
      return;
    }
    reflection.name = name;
  });
}
