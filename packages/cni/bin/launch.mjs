// Shared by the executables in this folder: loads src/<name>.ts's built JavaScript
// (dist/<name>.js) when the package was built, else the TypeScript sources through tsx with the
// "source" export condition (workspace packages resolve to their src/), so they work from a fresh
// checkout without a build step. CNIKIT_FROM_SOURCE=1 forces the sources.
import { existsSync } from "node:fs";
import { register } from "node:module";

export async function load(name) {
  const dist = new URL(`../dist/${name}.js`, import.meta.url);
  if (existsSync(dist) && process.env.CNIKIT_FROM_SOURCE !== "1") return import(dist.href);
  const { register: registerTsx } = await import("tsx/esm/api");
  registerTsx();
  const hook =
    'export async function resolve(s, c, n) { return n(s, { ...c, conditions: [...new Set([...(c.conditions || []), "source"])] }); }';
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  return import(new URL(`../src/${name}.ts`, import.meta.url).href);
}
