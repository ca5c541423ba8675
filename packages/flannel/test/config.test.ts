import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CniCode, ConfigError, MemoryDatastore, VirtualClock, fixtureConfig } from "@cnikit/core";
import { parseFlannelConfig, subnetCapacity } from "../src/config.ts";
import { flannelFixtures } from "../src/fixtures.ts";
import { flannel } from "../src/index.ts";
import type { FlannelConfig } from "../src/config.ts";
import { agentContext, nodeInfo } from "./helpers.ts";

function configError(input: unknown): ConfigError {
  try {
    parseFlannelConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(input)}`);
}

describe("net-conf.json defaults (flannel's)", () => {
  const table: { network: string; subnetLen: number; min: string; max: string; capacity: bigint }[] = [
    { network: "10.3.0.0/16", subnetLen: 24, min: "10.3.1.0", max: "10.3.255.0", capacity: 255n },
    { network: "10.244.0.0/16", subnetLen: 24, min: "10.244.1.0", max: "10.244.255.0", capacity: 255n },
    { network: "10.0.0.0/8", subnetLen: 24, min: "10.0.1.0", max: "10.255.255.0", capacity: 65_535n },
    { network: "10.4.0.0/22", subnetLen: 24, min: "10.4.1.0", max: "10.4.3.0", capacity: 3n },
    { network: "10.5.0.0/23", subnetLen: 25, min: "10.5.0.128", max: "10.5.1.128", capacity: 3n },
    { network: "10.6.0.0/28", subnetLen: 30, min: "10.6.0.4", max: "10.6.0.12", capacity: 3n },
  ];
  it.each(table)("Network $network → SubnetLen $subnetLen, $min … $max", ({ network, subnetLen, min, max, capacity }) => {
    const c = parseFlannelConfig({ Network: network });
    expect(c.ipv4).toEqual({ family: 4, network, subnetLen, subnetMin: min, subnetMax: max });
    expect(subnetCapacity(c.ipv4!)).toBe(capacity);
    expect(c.ipv6).toBeUndefined();
  });

  const table6: { network: string; subnetLen: number; min: string; max: string }[] = [
    { network: "fc00::/48", subnetLen: 64, min: "fc00:0:0:1::", max: "fc00:0:0:ffff::" },
    { network: "fd00::/62", subnetLen: 64, min: "fd00:0:0:1::", max: "fd00:0:0:3::" },
    { network: "fd00::/63", subnetLen: 65, min: "fd00::8000:0:0:0", max: "fd00:0:0:1:8000::" },
    { network: "fd00::/124", subnetLen: 126, min: "fd00::4", max: "fd00::c" },
  ];
  it.each(table6)("IPv6Network $network → IPv6SubnetLen $subnetLen, $min … $max", ({ network, subnetLen, min, max }) => {
    const c = parseFlannelConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: network });
    expect(c.ipv6).toEqual({ family: 6, network, subnetLen, subnetMin: min, subnetMax: max });
  });

  it("IPv6 only: EnableIPv4 false needs no Network", () => {
    const c = parseFlannelConfig({ EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/48" });
    expect(c.ipv4).toBeUndefined();
    expect(c.ipv6?.network).toBe("fd00::/48");
  });

  it("a Network with 2^k subnets yields 2^k − 1 node subnets (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 8, max: 28 }), fc.integer({ min: 0, max: 255 }), (length, octet) => {
        const network = `10.${octet}.0.0/${length}`;
        // host bits set for short prefixes are cleared, never refused
        const c: FlannelConfig = parseFlannelConfig({ Network: network });
        const r = c.ipv4!;
        const netLen = Number(r.network.split("/")[1]);
        expect(netLen).toBe(length);
        expect(r.subnetLen).toBe(length <= 22 ? 24 : length + 2);
        expect(subnetCapacity(r)).toBe((1n << BigInt(r.subnetLen - length)) - 1n);
      }),
    );
  });

  it("explicit SubnetLen, SubnetMin and SubnetMax are kept", () => {
    const c = parseFlannelConfig({ Network: "10.244.0.0/16", SubnetLen: 26, SubnetMin: "10.244.10.0", SubnetMax: "10.244.20.192" });
    expect(c.ipv4).toEqual({ family: 4, network: "10.244.0.0/16", subnetLen: 26, subnetMin: "10.244.10.0", subnetMax: "10.244.20.192" });
  });

  it("Go zero values mean unset: SubnetLen 0, SubnetMin 0.0.0.0, null", () => {
    const c = parseFlannelConfig({ Network: "10.244.0.0/16", SubnetLen: 0, SubnetMin: "0.0.0.0", SubnetMax: null, Backend: { Type: "vxlan", Port: 0, MTU: 0 } });
    expect(c.ipv4).toEqual({ family: 4, network: "10.244.0.0/16", subnetLen: 24, subnetMin: "10.244.1.0", subnetMax: "10.244.255.0" });
    expect(c.backend).toEqual({ type: "vxlan", vni: 1, port: 8472, gbp: false, directRouting: false, learning: false });
  });

  it("Network host bits are cleared, as Go's net.ParseCIDR does", () => {
    expect(parseFlannelConfig({ Network: "10.244.7.9/16" }).ipv4?.network).toBe("10.244.0.0/16");
  });

  it("accepts the file text as well as the object", () => {
    const text = '{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n';
    expect(parseFlannelConfig(text)).toEqual(parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }));
  });

  it("ipMasq defaults to true (stock manifest --ip-masq), SubnetLeaseRenewMargin to 60 min, EnableNFTables to false", () => {
    const c = parseFlannelConfig({ Network: "10.244.0.0/16" });
    expect(c.ipMasq).toBe(true);
    expect(c.subnetLeaseRenewMarginMinutes).toBe(60);
    expect(c.enableNFTables).toBe(false);
    const d = parseFlannelConfig({ Network: "10.244.0.0/16", IPMasq: false, SubnetLeaseRenewMargin: 120, EnableNFTables: true });
    expect(d.ipMasq).toBe(false);
    expect(d.subnetLeaseRenewMarginMinutes).toBe(120);
    expect(d.enableNFTables).toBe(true);
  });
});

describe("keys are case-insensitive, like Go's encoding/json", () => {
  it("accepts any spelling of a known key", () => {
    const a = parseFlannelConfig({ network: "10.244.0.0/16", subnetlen: 25, SUBNETMIN: "10.244.2.0", backend: { type: "VXLAN", vni: 7, port: 4789, directrouting: true } });
    expect(a.ipv4?.subnetLen).toBe(25);
    expect(a.ipv4?.subnetMin).toBe("10.244.2.0");
    expect(a.backend).toEqual({ type: "vxlan", vni: 7, port: 4789, gbp: false, directRouting: true, learning: false });
    expect(parseFlannelConfig({ Network: "10.244.0.0/16", ipMasq: false }).ipMasq).toBe(false);
  });
});

describe("backends", () => {
  const table: { label: string; backend: unknown; expected: FlannelConfig["backend"] }[] = [
    { label: "vxlan defaults", backend: { Type: "vxlan" }, expected: { type: "vxlan", vni: 1, port: 8472, gbp: false, directRouting: false, learning: false } },
    {
      label: "vxlan every field",
      backend: { Type: "vxlan", VNI: 4096, Port: 4789, GBP: true, DirectRouting: true, Learning: true, MTU: 9000 },
      expected: { type: "vxlan", vni: 4096, port: 4789, gbp: true, directRouting: true, learning: true, mtu: 9000 },
    },
    {
      label: "vxlan MacPrefix (Windows only) accepted",
      backend: { Type: "vxlan", MacPrefix: "0E-2A" },
      expected: { type: "vxlan", vni: 1, port: 8472, gbp: false, directRouting: false, learning: false },
    },
    { label: "host-gw", backend: { Type: "host-gw" }, expected: { type: "host-gw" } },
    { label: "Type is lower-cased", backend: { Type: "Host-GW" }, expected: { type: "host-gw" } },
  ];
  it.each(table)("$label", ({ backend, expected }) => {
    const c = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: backend });
    expect(c.backend).toEqual(expected);
    expect(c.backendDefaulted).toBe(false);
  });

  it("a missing Backend means vxlan (flannel's documented default), flagged as defaulted", () => {
    const c = parseFlannelConfig({ Network: "10.244.0.0/16" });
    expect(c.backend.type).toBe("vxlan");
    expect(c.backendDefaulted).toBe(true);
  });

  it.each(["udp", "ipsec", "wireguard", "alloc", "ipip", "aws-vpc", "gce", "ali-vpc", "tencent-vpc", "extension"])("%s is refused as not supported", (type) => {
    const err = configError({ Network: "10.244.0.0/16", Backend: { Type: type } });
    expect(err.field).toBe("Backend.Type");
    expect(err.message).toContain("is not supported");
    expect(err.message).toContain('use "vxlan" or "host-gw"');
  });

  it("Backend without Type gives flannel's 'unknown backend type: '", () => {
    expect(configError({ Network: "10.244.0.0/16", Backend: {} }).message).toContain("unknown backend type: ");
    expect(configError({ Network: "10.244.0.0/16", Backend: { Type: "geneve" } }).message).toContain("unknown backend type: geneve");
  });
});

describe("flannel's CheckNetworkConfig rules, in order, with flannel's text and the field path", () => {
  // Each rule's own row, with flannel's text as its rule, is in the fixtures' invalid-config table
  // (src/fixtures.ts, held to field and rule below); these rows pin down the order of the checks.
  const table: { label: string; config: unknown; field: string; text: string }[] = [
    { label: "1 Network empty", config: {}, field: "Network", text: "please define a correct Network parameter in the flannel config" },
    { label: "order: 5 before 7", config: { Network: "10.244.0.0/16", SubnetMin: "10.1.0.1" }, field: "SubnetMin", text: "SubnetMin is not in the range of the Network" },
    { label: "order: 6 before 7", config: { Network: "10.244.0.0/16", SubnetMin: "10.244.1.1", SubnetMax: "10.1.0.0" }, field: "SubnetMax", text: "SubnetMax is not in the range of the Network" },
    { label: "v4 checked before v6", config: { Network: "10.244.0.0/16", SubnetLen: 31, EnableIPv6: true }, field: "SubnetLen", text: "SubnetLen must be less than /31" },
  ];
  it.each(table)("$label", ({ config, field, text }) => {
    const err = configError(config);
    expect(err.code).toBe(CniCode.InvalidNetworkConfig);
    expect(err.field).toBe(field);
    expect(err.rule).toContain(text);
    expect(err.message.startsWith(`[flannel] ${field}: `)).toBe(true);
  });
});

describe("type errors name the field", () => {
  const table: { config: unknown; field: string; rule: RegExp }[] = [
    { config: "{not json", field: "net-conf.json", rule: /valid JSON/ },
    { config: [], field: "net-conf.json", rule: /JSON object/ },
    { config: { Network: 10 }, field: "Network", rule: /please define a correct Network/ },
    { config: { Network: "fd00::/48" }, field: "Network", rule: /IPv4 CIDR/ },
    { config: { Network: "10.244.0.0/16", SubnetLen: 24.5 }, field: "SubnetLen", rule: /whole number/ },
    { config: { Network: "10.244.0.0/16", SubnetLen: -1 }, field: "SubnetLen", rule: /whole number/ },
    { config: { Network: "10.244.0.0/16", SubnetMin: "fd00::" }, field: "SubnetMin", rule: /IPv4 address/ },
    { config: { Network: "10.244.0.0/16", EnableIPv4: 1 }, field: "EnableIPv4", rule: /true or false/ },
    { config: { Network: "10.244.0.0/16", Backend: { Type: 5 } }, field: "Backend.Type", rule: /string/ },
    { config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", VNI: -1 } }, field: "Backend.VNI", rule: /from 0 to 16777215/ },
    { config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan", MTU: 20000 } }, field: "Backend.MTU", rule: /from 0 to 9216/ },
    { config: { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", Backend: { Type: "vxlan", MTU: 1300 } }, field: "Backend.MTU", rule: /IPv6 needs 1280/ },
    { config: { Network: "10.244.0.0/16", SubnetLeaseRenewMargin: 0 }, field: "SubnetLeaseRenewMargin", rule: /subnet-lease-renew-margin/ },
  ];
  it.each(table)("$field: $rule", ({ config, field, rule }) => {
    const err = configError(config);
    expect(err.field).toBe(field);
    expect(err.rule).toMatch(rule);
  });
});

describe("weaknesses of flannel fixed here", () => {
  it("weakness: typos silently ignored", () => {
    const err = configError({ Network: "10.244.0.0/16", SubnetLength: 26 });
    expect(err.field).toBe("SubnetLength");
    expect(err.rule).toContain('unknown key "SubnetLength"');
    expect(err.rule).toContain("did you mean SubnetLen?");
    const inner = configError({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRoutng: true } });
    expect(inner.field).toBe("Backend.DirectRoutng");
    expect(inner.rule).toContain("did you mean DirectRouting?");
  });

  it("weakness: SubnetMin > SubnetMax surfaces late", () => {
    const err = configError({ Network: "10.244.0.0/16", SubnetMin: "10.244.200.0", SubnetMax: "10.244.100.0" });
    expect(err.field).toBe("SubnetMin");
    expect(err.rule).toContain("is above SubnetMax 10.244.100.0");
    const v6 = configError({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd00:0:0:9::", IPv6SubnetMax: "fd00:0:0:2::" });
    expect(v6.field).toBe("IPv6SubnetMin");
    // SubnetMin == SubnetMax is fine: exactly one node subnet.
    expect(subnetCapacity(parseFlannelConfig({ Network: "10.244.0.0/16", SubnetMin: "10.244.5.0", SubnetMax: "10.244.5.0" }).ipv4!)).toBe(1n);
  });

  it("weakness: Backend default udp contradicts the docs", () => {
    expect(flannel.parseConfig({ Network: "10.244.0.0/16" }).backend.type).toBe("vxlan");
  });
});

describe("the fixture table the conformance suite runs", () => {
  it.each(flannelFixtures.configs)("$label parses", ({ config }) => {
    expect(() => flannel.parseConfig(config)).not.toThrow();
  });
  const atParse = flannelFixtures.invalidConfigs.filter((c) => c.refusedAt !== "start");
  const atStart = flannelFixtures.invalidConfigs.filter((c) => c.refusedAt === "start");
  it.each(atParse)("$label → ConfigError naming $field and its rule", ({ config, field, rule }) => {
    const err = configError(config);
    expect(err.code).toBe(7);
    expect(err.field).toBe(field);
    expect(err.rule).toContain(rule);
    expect(err.message.startsWith(`[flannel] ${field}: `)).toBe(true);
  });
  it.each(atStart)("$label → parses, then start() on an IPv4-only node throws ConfigError naming $field and its rule, store untouched", async ({ config, field, rule }) => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const agent = flannel.createAgent(agentContext({ config: flannel.parseConfig(config), node: nodeInfo("a1", "a", 10), store, clock }));
    const err = await agent.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).rule).toContain(rule);
    expect(await store.revision()).toBe(0);
  });
});

describe("summarize", () => {
  it("vxlan, DirectRouting and host-gw promise what they do", () => {
    const [vx, dr, hg] = flannelFixtures.configs.map((c) => flannel.summarize(flannel.parseConfig(c.config)));
    expect(vx).toMatchObject({ podRanges: ["10.244.0.0/16"], natOutgoing: true, encapsulations: ["vxlan"] });
    expect(dr?.encapsulations).toEqual(["vxlan", "none"]);
    expect(hg).toMatchObject({ encapsulations: ["none"] });
    for (const c of flannelFixtures.configs) {
      const config = flannel.parseConfig(c.config);
      expect(flannel.topologyNeeds?.(config), c.label).toEqual({ singleSubnet: config.backend.type === "host-gw" });
    }
    expect(flannelFixtures.configs.some((c) => flannel.topologyNeeds?.(flannel.parseConfig(c.config)).singleSubnet)).toBe(true);
    expect(vx!.crashDetectionMs).toBeGreaterThanOrEqual(86_400_000);
    const dual = flannel.summarize(flannel.parseConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00::/48", IPMasq: false }));
    expect(dual.podRanges).toEqual(["10.244.0.0/16", "fd00::/48"]);
    expect(dual.natOutgoing).toBe(false);
  });

  it("the dual-stack and IPv6-only modes promise their families' pod ranges", () => {
    const summary = (label: string) => flannel.summarize(flannel.parseConfig(fixtureConfig(flannelFixtures.configs, label)));
    expect(summary("vxlan-dualstack").podRanges).toEqual(["10.244.0.0/16", "fd00:10:244::/56"]);
    expect(summary("vxlan-ipv6-only").podRanges).toEqual(["fd00:10:244::/56"]);
    expect(flannelFixtures.configs.filter((c) => c.underlayFamily === 6).map((c) => c.label)).toEqual(["vxlan-ipv6-only"]);
  });
});
