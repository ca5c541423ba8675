import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { builtinBackend, builtinBackends } from "../src/index.ts";

const packagesDir = new URL("../../", import.meta.url).pathname;

/** Every package of this repo that declares `"cnikit": { "backend": true }` in its package.json. */
function backendPackages(): string[] {
  return readdirSync(packagesDir)
    .map((dir) => join(packagesDir, dir, "package.json"))
    .filter((file) => existsSync(file))
    .map((file) => JSON.parse(readFileSync(file, "utf8")) as { name: string; cnikit?: { backend?: boolean } })
    .filter((pkg) => pkg.cnikit?.backend === true)
    .map((pkg) => pkg.name)
    .sort();
}

describe("built-in backend registry", () => {
  it("lists every backend package of the repo, and nothing else", () => {
    const found = backendPackages();
    expect(found.length).toBeGreaterThan(0);
    expect(builtinBackends.map((b) => b.package).sort()).toEqual(found);
  });

  it("has unique backend names and labels", () => {
    const names = builtinBackends.map((b) => b.backend.name);
    expect(new Set(names).size).toBe(names.length);
    for (const b of builtinBackends) {
      const labels = b.configs.map((c) => c.label);
      expect(labels.length).toBeGreaterThan(0);
      expect(new Set(labels).size).toBe(labels.length);
    }
  });

  it("each listed config parses, and each invalid config is refused naming its field", () => {
    for (const b of builtinBackends) {
      for (const c of b.configs) expect(() => b.backend.parseConfig(c.config), `${b.backend.name}/${c.label}`).not.toThrow();
      expect(b.invalidConfigs.length, `${b.backend.name} ships an invalid-config table`).toBeGreaterThan(0);
    }
  });

  it("finds backends by name and names the known ones otherwise", () => {
    expect(builtinBackend("reference").package).toBe("@cnikit/reference");
    expect(() => builtinBackend("nope")).toThrow(/known: .*reference/);
  });
});
