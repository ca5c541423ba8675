import { describe, expect, it } from "vitest";
import { AZURE_DEFAULTS, parseAzureConfig } from "../src/config.ts";
import type { AzureConfig } from "../src/config.ts";

/** The ConfigError thrown by `parseAzureConfig(input)` (duck-typed: code 7, name, field, rule). */
function refusal(input: unknown): { code: number; name: string; field: string; rule: string; message: string } {
  try {
    parseAzureConfig(input);
  } catch (err) {
    return err as { code: number; name: string; field: string; rule: string; message: string };
  }
  throw new Error(`accepted: ${JSON.stringify(input)}`);
}

const DEFAULTS: AzureConfig = {
  networkPlugin: "azure",
  networkPluginMode: "none",
  podIpAllocationMode: "classic",
  mode: "classic",
  maxPods: 30,
  podCidr: "10.244.0.0/16",
  scaler: { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150, maxIPCount: 250 },
  natOutgoing: true,
  maxSurge: 1,
  reclaimIdle: true,
  poolMonitor: "v2",
};

describe("parseAzureConfig: accepted profiles", () => {
  const cases: { label: string; input: unknown; expected: Partial<AzureConfig> }[] = [
    { label: "empty object: classic with Azure's defaults", input: {}, expected: {} },
    { label: "networkPlugin azure spelled out", input: { networkPlugin: "azure", maxPods: 50 }, expected: { maxPods: 50 } },
    { label: "classic with a node subnet", input: { vnetSubnet: "10.240.0.0/16" }, expected: { vnetSubnet: "10.240.0.0/16" } },
    {
      label: "a pod subnet alone means DynamicIndividual (AKS's default)",
      input: { vnetSubnet: "10.240.0.0/16", podSubnet: "10.241.0.0/16" },
      expected: { vnetSubnet: "10.240.0.0/16", podSubnet: "10.241.0.0/16", podIpAllocationMode: "DynamicIndividual", mode: "dynamic" },
    },
    {
      label: "AKS's spelling podIPAllocationMode",
      input: { podSubnet: "10.241.0.0/24", podIPAllocationMode: "StaticBlock" },
      expected: { podSubnet: "10.241.0.0/24", podIpAllocationMode: "StaticBlock", mode: "static-block" },
    },
    { label: "explicit classic", input: { podIpAllocationMode: "classic" }, expected: {} },
    {
      label: "dynamic with a scaler and cnikit's knobs",
      input: { podSubnet: "10.241.0.0/20", scaler: { batchSize: 8, requestThresholdPercent: 25, releaseThresholdPercent: 200, maxIPCount: 110 }, maxPods: 110, reclaimIdle: false, poolMonitor: "v1" },
      expected: {
        podSubnet: "10.241.0.0/20",
        podIpAllocationMode: "DynamicIndividual",
        mode: "dynamic",
        maxPods: 110,
        scaler: { batchSize: 8, requestThresholdPercent: 25, releaseThresholdPercent: 200, maxIPCount: 110 },
        reclaimIdle: false,
        poolMonitor: "v1",
      },
    },
    {
      label: "release threshold left out follows Azure's clamp (request + 100)",
      input: { podSubnet: "10.241.0.0/20", scaler: { requestThresholdPercent: 80 } },
      expected: {
        podSubnet: "10.241.0.0/20",
        podIpAllocationMode: "DynamicIndividual",
        mode: "dynamic",
        scaler: { batchSize: 16, requestThresholdPercent: 80, releaseThresholdPercent: 180, maxIPCount: 250 },
      },
    },
    {
      label: "overlay with its own pod CIDR, maxPods 250",
      input: { networkPluginMode: "overlay", podCidr: "192.168.0.0/16", vnetSubnet: "10.240.0.0/24", maxPods: 250 },
      expected: { networkPluginMode: "overlay", mode: "overlay", podCidr: "192.168.0.0/16", vnetSubnet: "10.240.0.0/24", maxPods: 250 },
    },
    { label: "natOutgoing, maxSurge, mtu", input: { natOutgoing: false, maxSurge: 0, mtu: 9000 }, expected: { natOutgoing: false, maxSurge: 0, mtu: 9000 } },
    {
      label: "AKS's nested ARM shape",
      input: {
        networkProfile: { networkPlugin: "azure", networkPluginMode: "overlay", podCidr: "10.10.0.0/16", natOutgoing: false },
        agentPoolProfile: { maxPods: 60, vnetSubnet: "10.240.0.0/22", maxSurge: 3 },
      },
      expected: { networkPluginMode: "overlay", mode: "overlay", podCidr: "10.10.0.0/16", natOutgoing: false, maxPods: 60, vnetSubnet: "10.240.0.0/22", maxSurge: 3 },
    },
    { label: "YAML text", input: "networkPlugin: azure\nmaxPods: 40\nvnetSubnet: 10.240.0.0/16\n", expected: { maxPods: 40, vnetSubnet: "10.240.0.0/16" } },
    {
      label: "JSON text",
      input: '{"podSubnet": "10.241.0.0/24", "podIpAllocationMode": "DynamicIndividual"}',
      expected: { podSubnet: "10.241.0.0/24", podIpAllocationMode: "DynamicIndividual", mode: "dynamic" },
    },
    {
      label: "nested YAML text",
      input: "networkProfile:\n  networkPlugin: azure\nagentPoolProfile:\n  podSubnet: 10.241.0.0/24\n  scaler: { batchSize: 4 }\n",
      expected: {
        podSubnet: "10.241.0.0/24",
        podIpAllocationMode: "DynamicIndividual",
        mode: "dynamic",
        scaler: { batchSize: 4, requestThresholdPercent: 50, releaseThresholdPercent: 150, maxIPCount: 250 },
      },
    },
  ];
  it.each(cases)("$label", ({ input, expected }) => {
    expect(parseAzureConfig(input)).toEqual({ ...DEFAULTS, ...expected });
  });

  it("the defaults table matches Azure's published defaults", () => {
    expect(AZURE_DEFAULTS.maxPods).toBe(30);
    expect(AZURE_DEFAULTS.scaler).toEqual({ batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150, maxIPCount: 250 });
    expect(AZURE_DEFAULTS.podCidr).toBe("10.244.0.0/16");
  });

  it("returns plain data that survives JSON", () => {
    const c = parseAzureConfig({ podSubnet: "10.241.0.0/24", mtu: 1500 });
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
  });
});

describe("parseAzureConfig: refusals name the field and the rule", () => {
  const cases: { label: string; input: unknown; field: string; rule: RegExp }[] = [
    { label: "kubenet", input: { networkPlugin: "kubenet" }, field: "networkPlugin", rule: /must be "azure"/ },
    { label: "networkPlugin nested", input: { networkProfile: { networkPlugin: "none" } }, field: "networkProfile.networkPlugin", rule: /must be "azure"/ },
    { label: "Overlay with a capital", input: { networkPluginMode: "Overlay" }, field: "networkPluginMode", rule: /AKS spells it "overlay"/ },
    { label: "unknown plugin mode", input: { networkPluginMode: "bridge" }, field: "networkPluginMode", rule: /none .* or overlay/ },
    { label: "unknown allocation mode", input: { podSubnet: "10.241.0.0/24", podIpAllocationMode: "Dynamic" }, field: "podIpAllocationMode", rule: /DynamicIndividual, StaticBlock or classic/ },
    { label: "both spellings", input: { podSubnet: "10.241.0.0/24", podIpAllocationMode: "StaticBlock", podIPAllocationMode: "StaticBlock" }, field: "podIPAllocationMode", rule: /not both/ },
    { label: "DynamicIndividual without a pod subnet", input: { podIpAllocationMode: "DynamicIndividual" }, field: "podSubnet", rule: /required with podIpAllocationMode DynamicIndividual/ },
    {
      label: "StaticBlock without a pod subnet (nested)",
      input: { agentPoolProfile: { podIPAllocationMode: "StaticBlock" } },
      field: "agentPoolProfile.podSubnet",
      rule: /required with podIpAllocationMode StaticBlock/,
    },
    { label: "classic with a pod subnet", input: { podIpAllocationMode: "classic", podSubnet: "10.241.0.0/24" }, field: "podSubnet", rule: /must not be set in classic mode/ },
    { label: "overlay with a pod subnet", input: { networkPluginMode: "overlay", podSubnet: "10.241.0.0/24" }, field: "podSubnet", rule: /overlay pods take addresses from podCidr/ },
    {
      label: "overlay with an allocation mode",
      input: { networkPluginMode: "overlay", podIpAllocationMode: "classic" },
      field: "podIpAllocationMode",
      rule: /must not be set with networkPluginMode overlay/,
    },
    { label: "maxPods below 10", input: { maxPods: 9 }, field: "maxPods", rule: /integer from 10 to 250/ },
    { label: "maxPods above 250", input: { maxPods: 251 }, field: "maxPods", rule: /integer from 10 to 250/ },
    { label: "maxPods not an integer", input: { maxPods: "30" }, field: "maxPods", rule: /integer from 10 to 250/ },
    { label: "maxPods nested", input: { agentPoolProfile: { maxPods: 5 } }, field: "agentPoolProfile.maxPods", rule: /integer from 10 to 250/ },
    { label: "vnetSubnet host bits", input: { vnetSubnet: "10.240.0.1/16" }, field: "vnetSubnet", rule: /host bits must be zero \(did you mean 10\.240\.0\.0\/16\?\)/ },
    { label: "vnetSubnet not a CIDR", input: { vnetSubnet: "10.240.0.0" }, field: "vnetSubnet", rule: /CIDR notation/ },
    { label: "vnetSubnet IPv6", input: { vnetSubnet: "fd00::/64" }, field: "vnetSubnet", rule: /must be an IPv4 CIDR/ },
    { label: "vnetSubnet smaller than /29", input: { vnetSubnet: "10.240.0.0/30" }, field: "vnetSubnet", rule: /Azure's smallest subnet is a \/29/ },
    { label: "podSubnet overlaps vnetSubnet", input: { vnetSubnet: "10.240.0.0/16", podSubnet: "10.240.8.0/24" }, field: "podSubnet", rule: /must not overlap vnetSubnet 10\.240\.0\.0\/16/ },
    { label: "podSubnet smaller than one batch", input: { podSubnet: "10.241.0.0/28" }, field: "podSubnet", rule: /at least one batch \(16 addresses\).*11 usable/ },
    {
      label: "podSubnet fits a smaller batch but not this one",
      input: { podSubnet: "10.241.0.0/27", scaler: { batchSize: 32 } },
      field: "podSubnet",
      rule: /at least one batch \(32 addresses\).*27 usable/,
    },
    {
      label: "StaticBlock pod subnet short of blocks",
      input: { podSubnet: "10.241.0.0/26", podIpAllocationMode: "StaticBlock", maxPods: 40 },
      field: "podSubnet",
      rule: /at least 3 \/28 blocks \(ceil\(maxPods 40 \/ 16\)\).*has 2/,
    },
    { label: "StaticBlock /27 holds no clear block", input: { podSubnet: "10.241.0.0/27", podIpAllocationMode: "StaticBlock" }, field: "podSubnet", rule: /at least 2 \/28 blocks.*has 0/ },
    { label: "podCidr longer than /24", input: { networkPluginMode: "overlay", podCidr: "10.244.0.0/25" }, field: "podCidr", rule: /at most \/24/ },
    { label: "podCidr overlaps vnetSubnet", input: { networkPluginMode: "overlay", podCidr: "10.0.0.0/8", vnetSubnet: "10.240.0.0/16" }, field: "podCidr", rule: /must not overlap vnetSubnet/ },
    { label: "default podCidr overlaps vnetSubnet", input: { networkPluginMode: "overlay", vnetSubnet: "10.244.0.0/24" }, field: "podCidr", rule: /the default is 10\.244\.0\.0\/16; set podCidr/ },
    { label: "podCidr outside overlay", input: { podCidr: "10.244.0.0/16" }, field: "podCidr", rule: /only applies to networkPluginMode overlay .*; this config is mode classic/ },
    { label: "scaler in classic", input: { scaler: { batchSize: 8 } }, field: "scaler", rule: /only applies to podIpAllocationMode DynamicIndividual.*mode classic/ },
    { label: "scaler in static-block", input: { podSubnet: "10.241.0.0/24", podIpAllocationMode: "StaticBlock", scaler: {} }, field: "scaler", rule: /mode static-block/ },
    { label: "scaler in overlay (nested)", input: { networkProfile: { networkPluginMode: "overlay" }, agentPoolProfile: { scaler: {} } }, field: "agentPoolProfile.scaler", rule: /mode overlay/ },
    { label: "scaler not an object", input: { podSubnet: "10.241.0.0/24", scaler: 16 }, field: "scaler", rule: /must be an object/ },
    {
      label: "scaler unknown field",
      input: { podSubnet: "10.241.0.0/24", scaler: { batch: 16 } },
      field: "scaler.batch",
      rule: /unknown field; known: batchSize, requestThresholdPercent, releaseThresholdPercent, maxIPCount/,
    },
    { label: "batchSize 0", input: { podSubnet: "10.241.0.0/24", scaler: { batchSize: 0 } }, field: "scaler.batchSize", rule: /integer from 1 to 250/ },
    { label: "batchSize above maxIPCount", input: { podSubnet: "10.241.0.0/16", scaler: { batchSize: 64, maxIPCount: 50 } }, field: "scaler.batchSize", rule: /integer from 1 to 50/ },
    { label: "nested batchSize", input: { agentPoolProfile: { podSubnet: "10.241.0.0/24", scaler: { batchSize: 1.5 } } }, field: "agentPoolProfile.scaler.batchSize", rule: /integer/ },
    { label: "requestThresholdPercent 0", input: { podSubnet: "10.241.0.0/24", scaler: { requestThresholdPercent: 0 } }, field: "scaler.requestThresholdPercent", rule: /integer from 1 to 100/ },
    {
      label: "release below request + 100",
      input: { podSubnet: "10.241.0.0/24", scaler: { requestThresholdPercent: 60, releaseThresholdPercent: 150 } },
      field: "scaler.releaseThresholdPercent",
      rule: /at least requestThresholdPercent \+ 100 \(160\).*refused/,
    },
    { label: "maxIPCount above 250", input: { podSubnet: "10.241.0.0/24", scaler: { maxIPCount: 251 } }, field: "scaler.maxIPCount", rule: /integer from 1 to 250/ },
    { label: "maxIPCount below maxPods", input: { podSubnet: "10.241.0.0/24", maxPods: 60, scaler: { maxIPCount: 50 } }, field: "scaler.maxIPCount", rule: /at least maxPods \(60\)/ },
    { label: "natOutgoing as a string", input: { natOutgoing: "true" }, field: "natOutgoing", rule: /true or false/ },
    { label: "maxSurge percentage", input: { maxSurge: "33%" }, field: "maxSurge", rule: /percentage form such as "33%" is not accepted/ },
    { label: "maxSurge negative", input: { maxSurge: -1 }, field: "maxSurge", rule: /whole number|integer from 0/ },
    { label: "mtu too small", input: { mtu: 500 }, field: "mtu", rule: /integer from 576 to 9000/ },
    { label: "mtu too large", input: { mtu: 9001 }, field: "mtu", rule: /integer from 576 to 9000/ },
    { label: "reclaimIdle outside dynamic", input: { reclaimIdle: false }, field: "reclaimIdle", rule: /only applies to podIpAllocationMode DynamicIndividual.*mode classic/ },
    { label: "poolMonitor outside dynamic", input: { networkPluginMode: "overlay", poolMonitor: "v1" }, field: "poolMonitor", rule: /mode overlay/ },
    { label: "poolMonitor unknown", input: { podSubnet: "10.241.0.0/24", poolMonitor: "v3" }, field: "poolMonitor", rule: /v1 .* or v2/ },
    { label: "reclaimIdle not boolean", input: { podSubnet: "10.241.0.0/24", reclaimIdle: "yes" }, field: "reclaimIdle", rule: /true or false/ },
    { label: "unknown flat field", input: { maxPod: 30 }, field: "maxPod", rule: /unknown field; known: networkPlugin, .*maxPods/ },
    { label: "flat field next to the nested shape", input: { networkProfile: {}, maxPods: 30 }, field: "maxPods", rule: /top level holds only networkProfile and agentPoolProfile/ },
    { label: "field in the wrong profile", input: { networkProfile: { maxPods: 30 } }, field: "networkProfile.maxPods", rule: /belongs in agentPoolProfile/ },
    {
      label: "unknown nested field",
      input: { agentPoolProfile: { vnetSubnetID: "/subscriptions/x" } },
      field: "agentPoolProfile.vnetSubnetID",
      rule: /unknown field; known in agentPoolProfile: maxPods/,
    },
    { label: "profile not an object", input: { networkProfile: "azure" }, field: "networkProfile", rule: /must be an object/ },
    { label: "two YAML documents", input: "maxPods: 30\n---\nmaxPods: 40\n", field: "(config)", rule: /exactly one YAML\/JSON document.*found 2/ },
    { label: "empty text", input: "", field: "(config)", rule: /found 0/ },
    { label: "broken YAML", input: "maxPods: [30\n", field: "(document 1)", rule: /not valid YAML\/JSON/ },
    { label: "a list", input: [{ maxPods: 30 }], field: "(config)", rule: /must be an AKS-like network profile/ },
    { label: "a scalar document", input: "42", field: "(config)", rule: /must be an AKS-like network profile/ },
  ];
  it.each(cases)("$label → $field", ({ input, field, rule }) => {
    const err = refusal(input);
    expect(err.code).toBe(7);
    expect(err.name).toBe("ConfigError");
    expect(err.field).toBe(field);
    expect(err.rule).toMatch(rule);
    expect(err.message.startsWith(`[azure] ${field}: `)).toBe(true);
  });
});
