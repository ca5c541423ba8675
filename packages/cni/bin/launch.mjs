// Shared by the executables in this folder: loads src/<name>.ts's built JavaScript
// (dist/<name>.js). The published package is always built and ships no src/, so that is all an
// installed cnikitd / cnikit-controller ever runs: node and this package's dependencies, nothing
// else.
//
// In a checkout of the repository (src/ next to bin/) the TypeScript sources run instead when
// CNIKIT_FROM_SOURCE=1 (what the tests and the lab set) or when the package has not been built:
// through tsx (a dev dependency of this package) with the "source" export condition, so workspace
// packages resolve to their src/ as well.
import { existsSync } from "node:fs";
import { register } from "node:module";

export async function load(name) {
  const dist = new URL(`../dist/${name}.js`, import.meta.url);
  const source = new URL(`../src/${name}.ts`, import.meta.url);
  const checkout = existsSync(source);
  const fromSource = checkout && (process.env.CNIKIT_FROM_SOURCE === "1" || !existsSync(dist));
  if (!fromSource) {
    if (!existsSync(dist)) {
      process.stderr.write(`@cnikit/cni: ${dist.pathname} is missing: this installation of @cnikit/cni is incomplete (reinstall it)\n`);
      process.exit(1);
    }
    return import(dist.href);
  }
  let tsx;
  try {
    tsx = await import("tsx/esm/api");
  } catch (err) {
    process.stderr.write(`@cnikit/cni: running ${source.pathname} from source needs tsx (a dev dependency: pnpm install in the repository), or build first (pnpm build): ${err.message}\n`);
    process.exit(1);
  }
  tsx.register();
  const hook = 'export async function resolve(s, c, n) { return n(s, { ...c, conditions: [...new Set([...(c.conditions || []), "source"])] }); }';
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  return import(source.href);
}
