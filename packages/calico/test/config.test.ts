// Table-driven tests of Calico's resources: defaults, accepted forms, and one refusal per rule.
import { describe, expect, it } from "vitest";
import { ConfigError } from "@cnikit/core";
import { parseCalicoConfig } from "../src/config.ts";
import { calicoFixtures } from "../src/fixtures.ts";
import { parseSelector } from "../src/selector.ts";

const pool = (spec: Record<string, unknown>, name = "p") => ({ apiVersion: "projectcalico.org/v3", kind: "IPPool", metadata: { name }, spec });

describe("defaults", () => {
  it("applies Calico's defaults", () => {
    const c = parseCalicoConfig([pool({ cidr: "10.244.0.0/16" }), pool({ cidr: "fd00:10::/64" }, "v6")]);
    expect(c.pools[0]).toEqual({
      name: "p",
      cidr: "10.244.0.0/16",
      family: 4,
      blockSize: 26,
      ipipMode: "Never",
      vxlanMode: "Never",
      natOutgoing: false,
      disabled: false,
      disableBGPExport: false,
      nodeSelector: "all()",
    });
    expect(c.pools[1]!.blockSize).toBe(122);
    expect(c.bgp).toEqual({ nodeToNodeMeshEnabled: true, asNumber: 64512, listenPort: 179 });
    expect(c.ipam).toEqual({ strictAffinity: false, maxBlocksPerHost: 20, autoAllocateBlocks: true });
    expect(c.peers).toEqual([]);
  });

  it("reads multi-document YAML, JSON text and List objects alike", () => {
    const yaml = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: a }
spec: { cidr: 10.1.0.0/16, ipipMode: CrossSubnet, natOutgoing: true }
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: { name: default }
spec: { nodeToNodeMeshEnabled: false, asNumber: 65001 }
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: { name: rr }
spec: { nodeSelector: all(), peerSelector: "route-reflector == 'true'" }
`;
    const a = parseCalicoConfig(yaml);
    expect(a.pools[0]!.ipipMode).toBe("CrossSubnet");
    expect(a.bgp.asNumber).toBe(65001);
    expect(a.bgp.nodeToNodeMeshEnabled).toBe(false);
    expect(a.peers[0]!.peerSelector).toBe("route-reflector == 'true'");
    const b = parseCalicoConfig(JSON.stringify({ kind: "IPPoolList", items: [pool({ cidr: "10.1.0.0/16", ipipMode: "CrossSubnet", natOutgoing: true }, "a")] }));
    expect(b.pools).toEqual(a.pools);
  });

  it("every fixture config parses", () => {
    for (const f of calicoFixtures.configs) expect(() => parseCalicoConfig(f.config), f.label).not.toThrow();
  });

  it("every anchor config (just inside a documented boundary) parses", () => {
    for (const f of calicoFixtures.anchorConfigs) expect(() => parseCalicoConfig(f.config), f.label).not.toThrow();
  });
});

describe("the fixtures' invalid-config table", () => {
  it.each(calicoFixtures.invalidConfigs)("$label → ConfigError naming $field and its rule", ({ config, field, rule }) => {
    let err: unknown;
    try {
      parseCalicoConfig(config);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 7, field });
    expect((err as ConfigError).rule).toContain(rule);
  });
});

describe("refusals", () => {
  const cases: { label: string; config: unknown; field: string }[] = [
    ...calicoFixtures.invalidConfigs,
    { label: "blockSize below 20", config: [pool({ cidr: "10.0.0.0/8", blockSize: 19 })], field: "IPPool/p.spec.blockSize" },
    { label: "v6 blockSize 115", config: [pool({ cidr: "fd00::/48", blockSize: 115 })], field: "IPPool/p.spec.blockSize" },
    { label: "bad ipipMode", config: [pool({ cidr: "10.0.0.0/16", ipipMode: "Sometimes" })], field: "IPPool/p.spec.ipipMode" },
    { label: "link-local pool", config: [pool({ cidr: "169.254.0.0/16" })], field: "IPPool/p.spec.cidr" },
    { label: "bad nodeSelector", config: [pool({ cidr: "10.0.0.0/16", nodeSelector: "a ==" })], field: "IPPool/p.spec.nodeSelector" },
    { label: "unknown kind", config: [{ apiVersion: "projectcalico.org/v3", kind: "Felix", metadata: { name: "x" } }], field: "(document 1).kind" },
    { label: "BGPPeer without peer", config: [{ kind: "BGPPeer", metadata: { name: "x" }, spec: {} }], field: "BGPPeer/x.spec.peerIP" },
    { label: "maxBlocksPerHost without strict", config: [{ kind: "IPAMConfig", metadata: { name: "default" }, spec: { maxBlocksPerHost: 4 } }], field: "IPAMConfig/default.spec.maxBlocksPerHost" },
    { label: "bad routeReflectorClusterID", config: [{ kind: "Node", metadata: { name: "n" }, spec: { bgp: { routeReflectorClusterID: "x" } } }], field: "Node/n.spec.bgp.routeReflectorClusterID" },
  ];
  it.each(cases)("$label → $field", ({ config, field }) => {
    let err: unknown;
    try {
      parseCalicoConfig(config);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).code).toBe(7);
  });

  it("a disabled pool smaller than a block is accepted (Calico's exception)", () => {
    expect(parseCalicoConfig([pool({ cidr: "10.0.0.0/28", disabled: true })]).pools[0]!.disabled).toBe(true);
  });
});

describe("selectors", () => {
  const table: [string, Record<string, string>, boolean][] = [
    ["all()", {}, true],
    ["", { a: "b" }, true],
    ["has(rr)", { rr: "" }, true],
    ["has(rr)", {}, false],
    ["role == 'rr'", { role: "rr" }, true],
    ["role != 'rr'", { role: "rr" }, false],
    ["role in {'a', 'b'}", { role: "b" }, true],
    ["role not in {'a'}", {}, true],
    ["!has(x) && (a == '1' || b == '2')", { b: "2" }, true],
    ["!has(x) && (a == '1' || b == '2')", { x: "", b: "2" }, false],
  ];
  it.each(table)("%s on %j → %s", (sel, labels, want) => {
    expect(parseSelector(sel, "f")(labels)).toBe(want);
  });
  it("refuses global()", () => {
    expect(() => parseSelector("global()", "f")).toThrow(ConfigError);
  });
});
