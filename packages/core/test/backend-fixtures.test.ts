import { describe, expect, it } from "vitest";
import { conformanceTables, fixtureConfig } from "../src/fixtures.ts";
import type { BackendFixtures } from "../src/fixtures.ts";

const fixtures: BackendFixtures<{ network: string }> = {
  configs: [
    { label: "a", config: { network: "10.0.0.0/16" } },
    { label: "b", config: { network: "10.1.0.0/16" }, underlayFamily: 6 },
  ],
  invalidConfigs: [{ label: "host bits", config: { network: "10.0.0.1/16" }, field: "network", rule: "network has no host bits" }],
  anchorConfigs: [{ label: "smallest", config: { network: "10.0.0.0/30" } }],
};

describe("fixtureConfig", () => {
  it("returns the config of the entry with that label", () => {
    expect(fixtureConfig(fixtures.configs, "b")).toEqual({ network: "10.1.0.0/16" });
  });

  it("names the unknown label and the known ones", () => {
    expect(() => fixtureConfig(fixtures.configs, "c")).toThrow(TypeError);
    expect(() => fixtureConfig(fixtures.configs, "c")).toThrow('no fixture config labelled "c"; known: a, b');
  });
});

describe("conformanceTables", () => {
  it("is the fixtures' section-C tables, the same arrays (no copies)", () => {
    const tables = conformanceTables(fixtures);
    expect(Object.keys(tables).sort()).toEqual(["anchorConfigs", "invalidConfigs"]);
    expect(tables.invalidConfigs).toBe(fixtures.invalidConfigs);
    expect(tables.anchorConfigs).toBe(fixtures.anchorConfigs);
  });
});
