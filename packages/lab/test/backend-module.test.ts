/**
 * How the lab resolves a backend for its cnikitds (no kernel needed): a built-in one by name, or
 * a Backend object that is not built in together with the module every cnikitd loads it from.
 */
import { describe, expect, it } from "vitest";
import { defineBackend } from "@cnikit/core";
import { builtinBackend } from "@cnikit/backends";
import { resolveBackendMode } from "../src/index.ts";

const reference = builtinBackend("reference").backend;
const acme = defineBackend({ ...reference, name: "acme" });
const CONFIG = { network: "10.250.0.0/16" };

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect((e as { code?: unknown }).code).toBe(7);
    return (e as { field?: string }).field;
  }
  throw new Error("expected a ConfigError");
}

describe("resolveBackendMode with a backend module", () => {
  it("a built-in backend, by name or as its own object, needs no module", () => {
    expect(resolveBackendMode({ backend: "reference" })).toMatchObject({ backend: "reference", mode: "default" });
    expect(resolveBackendMode({ backend: reference, backendConfig: CONFIG }).backendModule).toBeUndefined();
  });

  it("a Backend that is not built in runs from its module: a relative path made absolute against 'from', a package name kept with 'from'", () => {
    const byPath = resolveBackendMode({ backend: acme, backendModule: { module: "./lib/acme.mjs", from: "/opt/project", export: "acme" }, backendConfig: CONFIG });
    expect(byPath).toMatchObject({ backend: "acme", mode: "custom", config: CONFIG, backendModule: { module: "/opt/project/lib/acme.mjs", from: "/opt/project", export: "acme" } });
    expect(byPath.summary.podRanges).toEqual(["10.250.0.0/16"]);
    expect(resolveBackendMode({ backend: acme, backendModule: { module: "@acme/cni", from: "/opt/project" }, backendConfig: CONFIG, mode: "mine" }).backendModule).toEqual({
      module: "@acme/cni",
      from: "/opt/project",
    });
  });

  it.each([
    ["a Backend that is not built in, without a module", () => resolveBackendMode({ backend: acme, backendConfig: CONFIG }), "backendModule"],
    ["an unknown backend name", () => resolveBackendMode({ backend: "acme" }), "backend"],
    ["a copy of a built-in backend under its name, without a module", () => resolveBackendMode({ backend: { ...reference }, backendConfig: CONFIG }), "backendModule"],
    ["a module given with a backend name only", () => resolveBackendMode({ backend: "acme", backendModule: { module: "/x.mjs" }, backendConfig: CONFIG }), "backend"],
    ["an empty module", () => resolveBackendMode({ backend: acme, backendModule: { module: "" }, backendConfig: CONFIG }), "backendModule.module"],
    ["an export that is not a name", () => resolveBackendMode({ backend: acme, backendModule: { module: "/x.mjs", export: "a-b" }, backendConfig: CONFIG }), "backendModule.export"],
    ["an empty 'from'", () => resolveBackendMode({ backend: acme, backendModule: { module: "x", from: "" }, backendConfig: CONFIG }), "backendModule.from"],
    ["no config (a module has no fixtures)", () => resolveBackendMode({ backend: acme, backendModule: { module: "/x.mjs" } }), "backendConfig"],
    [
      "a config the backend refuses",
      () => resolveBackendMode({ backend: acme, backendModule: { module: "/x.mjs" }, backendConfig: { network: "10.250.0.0/16", nodeSubnetLength: 40 } }),
      "nodeSubnetLength",
    ],
  ])("refuses %s, naming the field", (_label, fn, field) => {
    expect(fieldOf(fn)).toBe(field);
  });
});
