import { describe, expect, it } from "vitest";
import { ConfigError } from "@cnikit/core";
import { parseReferenceConfig, REFERENCE_DEFAULTS } from "../src/config.ts";
import { conformance, referenceFixtures } from "../src/fixtures.ts";
import { reference } from "../src/index.ts";

describe("parseReferenceConfig accepts", () => {
  const accepted: { label: string; input: unknown; expected: Partial<typeof REFERENCE_DEFAULTS> }[] = [
    { label: "an empty object (all defaults)", input: {}, expected: REFERENCE_DEFAULTS },
    {
      label: "a full config",
      input: { network: "10.1.0.0/16", nodeSubnetLength: 26, natOutgoing: false, mtu: 9000 },
      expected: { network: "10.1.0.0/16", nodeSubnetLength: 26, natOutgoing: false, mtu: 9000 },
    },
    { label: "the smallest node subnet", input: { network: "10.0.0.0/29", nodeSubnetLength: 30 }, expected: { network: "10.0.0.0/29", nodeSubnetLength: 30 } },
    { label: "the lowest mtu", input: { mtu: 576 }, expected: { mtu: 576 } },
    { label: "the highest mtu", input: { mtu: 9216 }, expected: { mtu: 9216 } },
  ];
  for (const row of accepted) {
    it(row.label, () => {
      expect(parseReferenceConfig(row.input)).toEqual({ ...REFERENCE_DEFAULTS, ...row.expected });
    });
  }
});

describe("parseReferenceConfig refuses", () => {
  const refused: { label: string; input: unknown; field: string; rule: RegExp }[] = [
    { label: "null", input: null, field: "config", rule: /JSON object/ },
    { label: "an array", input: [], field: "config", rule: /JSON object/ },
    { label: "a string", input: "10.0.0.0/8", field: "config", rule: /JSON object/ },
    { label: "an unknown key", input: { Network: "10.0.0.0/8" }, field: "Network", rule: /unknown field/ },
    { label: "a typo among good keys", input: { network: "10.0.0.0/8", natOutgoin: true }, field: "natOutgoin", rule: /unknown field/ },
    { label: "a network with host bits", input: { network: "10.250.1.0/16" }, field: "network", rule: /host bits/ },
    { label: "a network without length", input: { network: "10.250.0.0" }, field: "network", rule: /CIDR/ },
    { label: "a network with leading zeros", input: { network: "10.001.0.0/16" }, field: "network", rule: /IPv4/ },
    { label: "a network that is a number", input: { network: 10 }, field: "network", rule: /CIDR/ },
    { label: "an IPv6 network", input: { network: "fd00::/48", nodeSubnetLength: 64 }, field: "network", rule: /IPv4/ },
    { label: "a nodeSubnetLength equal to the network's", input: { network: "10.0.0.0/16", nodeSubnetLength: 16 }, field: "nodeSubnetLength", rule: /longer than/ },
    { label: "a nodeSubnetLength shorter than the network's", input: { network: "10.0.0.0/16", nodeSubnetLength: 8 }, field: "nodeSubnetLength", rule: /longer than/ },
    { label: "a nodeSubnetLength of 31", input: { nodeSubnetLength: 31 }, field: "nodeSubnetLength", rule: /at most 30/ },
    { label: "a fractional nodeSubnetLength", input: { nodeSubnetLength: 24.5 }, field: "nodeSubnetLength", rule: /integer/ },
    { label: "a nodeSubnetLength as a string", input: { nodeSubnetLength: "24" }, field: "nodeSubnetLength", rule: /integer/ },
    { label: "natOutgoing as a string", input: { natOutgoing: "true" }, field: "natOutgoing", rule: /true or false/ },
    { label: "an mtu below 576", input: { mtu: 575 }, field: "mtu", rule: /576/ },
    { label: "an mtu above 9216", input: { mtu: 9217 }, field: "mtu", rule: /9216/ },
    { label: "a fractional mtu", input: { mtu: 1500.5 }, field: "mtu", rule: /integer/ },
  ];
  for (const row of refused) {
    it(row.label, () => {
      let caught: unknown;
      try {
        parseReferenceConfig(row.input);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      const err = caught as ConfigError;
      expect(err.code).toBe(7);
      expect(err.field).toBe(row.field);
      expect(err.rule).toMatch(row.rule);
      expect(err.message.startsWith("[reference] ")).toBe(true);
    });
  }
});

describe("reference backend object", () => {
  it("parses through the backend and summarizes what the config promises", () => {
    const config = reference.parseConfig({ network: "10.9.0.0/16", natOutgoing: false });
    const summary = reference.summarize(config);
    expect(summary.podRanges).toEqual(["10.9.0.0/16"]);
    expect(summary.natOutgoing).toBe(false);
    expect(reference.topologyNeeds?.(config)).toEqual({ singleSubnet: true });
    expect(summary.crashDetectionMs).toBeGreaterThan(summary.convergenceMs);
    expect(reference.capabilities.networkPolicy).toBe(true);
  });
});

describe("the fixtures the suite, the registry and the main job run", () => {
  it.each(referenceFixtures.configs)("mode $label parses", ({ config }) => {
    expect(() => reference.parseConfig(config)).not.toThrow();
  });
  it.each(referenceFixtures.anchorConfigs)("anchor config $label parses", ({ config }) => {
    expect(() => reference.parseConfig(config)).not.toThrow();
  });
  it.each(referenceFixtures.invalidConfigs.filter((c) => c.refusedAt !== "start"))("$label → ConfigError naming $field and its rule at parse", ({ config, field, rule }) => {
    let caught: unknown;
    try {
      reference.parseConfig(config);
    } catch (err) {
      caught = err;
    }
    expect((caught as ConfigError | undefined)?.code).toBe(7);
    expect((caught as ConfigError).field).toBe(field);
    expect((caught as ConfigError).rule).toContain(rule);
  });
  it.each(referenceFixtures.invalidConfigs.filter((c) => c.refusedAt === "start"))("$label → parses (a node's start() refuses it)", ({ config }) => {
    expect(() => reference.parseConfig(config)).not.toThrow();
  });
  it("the conformance export is the fixtures' section-C tables", () => {
    expect(conformance).toEqual({ invalidConfigs: referenceFixtures.invalidConfigs, anchorConfigs: referenceFixtures.anchorConfigs });
  });
});
