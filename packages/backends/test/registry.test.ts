import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { clusterTopologyOf, defaultTopology } from "@cnikit/sim";
import { builtinBackend, builtinBackends, ipv6UnderlayTopology } from "../src/index.ts";

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

describe("claims and section-C tables of the built-in backends", () => {
  const familyOf = (cidr: string): number => (cidr.includes(":") ? 6 : 4);

  it.each(builtinBackends.map((b) => ({ name: b.backend.name, b })))("$name: every claimed family and encapsulation is exercised by a listed config", ({ b }) => {
    // On the cluster each config runs on (a topology-dependent backend, azure classic, needs it).
    const summaries = b.configs.map((c) => b.backend.summarize(b.backend.parseConfig(c.config), clusterTopologyOf(c.topology ?? defaultTopology())));
    const families = new Set(summaries.flatMap((s) => s.podRanges.map(familyOf)));
    const encapsulations = new Set(summaries.flatMap((s) => s.encapsulations));
    for (const f of b.backend.capabilities.families) expect(families.has(f), `IPv${f} claimed by ${b.backend.name}`).toBe(true);
    for (const e of b.backend.capabilities.encapsulations) expect(encapsulations.has(e), `${e} claimed by ${b.backend.name}`).toBe(true);
    // and nothing is used that is not claimed
    for (const f of families) expect(b.backend.capabilities.families).toContain(f);
    for (const e of encapsulations) expect(b.backend.capabilities.encapsulations).toContain(e);
  });

  it.each(builtinBackends.map((b) => ({ name: b.backend.name, b })))("$name: the package exports its tables as `conformance`, the ones listed here", async ({ b }) => {
    const mod = (await import(b.package)) as { conformance?: { invalidConfigs?: unknown; anchorConfigs?: unknown } };
    expect(mod.conformance?.invalidConfigs).toBe(b.invalidConfigs);
    expect(mod.conformance?.anchorConfigs).toBe(b.anchorConfigs);
  });

  it.each(builtinBackends.map((b) => ({ name: b.backend.name, b })))("$name: every anchor config (just inside a boundary) is accepted", ({ b }) => {
    expect(b.anchorConfigs.length).toBeGreaterThan(3);
    for (const c of b.anchorConfigs) expect(() => b.backend.summarize(b.backend.parseConfig(c.config), clusterTopologyOf(defaultTopology())), c.label).not.toThrow();
  });

  it.each(builtinBackends.map((b) => ({ name: b.backend.name, b })))("$name: every invalid config refused at parse names its field with code 7", ({ b }) => {
    let atParse = 0;
    for (const c of b.invalidConfigs) {
      let err: unknown;
      try {
        b.backend.parseConfig(c.config);
      } catch (e) {
        err = e;
      }
      // A few rows are valid configs refused when a node starts (refusedAt "start"); the suite checks those.
      if (c.refusedAt === "start") {
        expect(err, `${c.label} is refused at node start, so it parses`).toBeUndefined();
        continue;
      }
      atParse++;
      expect(err, c.label).toMatchObject({ code: 7, field: c.field });
      expect((err as { rule?: string }).rule, c.label).toContain(c.rule);
    }
    expect(atParse).toBeGreaterThan(b.invalidConfigs.length / 2);
  });
});

describe("the backends' fixtures modules", () => {
  it.each(builtinBackends.map((b) => ({ name: b.backend.name, b })))("$name: the entry is its package's `fixtures` subpath, mode for mode", async ({ b }) => {
    const mod = (await import(`${b.package}/fixtures`)) as Record<string, unknown>;
    expect(mod[`${b.backend.name}Fixtures`]).toBe(b.fixtures);
    expect(b.configs.map((c) => [c.label, c.config])).toEqual(b.fixtures.configs.map((c) => [c.label, c.config]));
    expect(b.invalidConfigs).toBe(b.fixtures.invalidConfigs);
    expect(b.anchorConfigs).toBe(b.fixtures.anchorConfigs);
  });

  it("a mode that needs an IPv6 underlay gets the IPv6 twin of the simulator's default topology", () => {
    const ipv6Only = builtinBackend("flannel").configs.find((c) => c.label === "vxlan-ipv6-only")!;
    expect(ipv6Only.topology).toEqual(ipv6UnderlayTopology());
    expect(builtinBackends.flatMap((b) => b.configs.filter((c) => c.topology).map((c) => `${b.backend.name}/${c.label}`))).toEqual(["flannel/vxlan-ipv6-only", "canal/vxlan-ipv6-only"]);
  });

  it("the IPv6 twin keeps the default topology's subnets, router and external host, with their host numbers", () => {
    const v4 = defaultTopology();
    const v6 = ipv6UnderlayTopology();
    expect(v6.subnets.map((s) => s.name)).toEqual(v4.subnets.map((s) => s.name));
    expect(v6.subnets.map((s) => s.cidr)).toEqual(["2001:db8:a::/64", "2001:db8:b::/64", "2001:db8:e::/64"]);
    expect(v6.routers?.map((r) => r.interfaces.map((i) => i.address))).toEqual([["2001:db8:a::1", "2001:db8:b::1", "2001:db8:e::1"]]);
    expect(v6.externals).toEqual([{ name: "internet", address: "2001:db8:e::200", subnet: "ext" }]);
  });
});

describe("configs that bring their own underlay", () => {
  const withTopology = builtinBackends.flatMap((b) => b.configs.filter((c) => c.topology).map((c) => ({ label: `${b.backend.name}/${c.label}`, b, c })));

  it("include flannel's IPv6-only config over an IPv6 underlay", () => {
    expect(withTopology.map((x) => x.label)).toContain("flannel/vxlan-ipv6-only");
  });

  it.each(withTopology)(
    "$label: pods reach each other across nodes on that underlay, with the pod MTU's headroom",
    async ({ b, c }) => {
      const { runConformance } = await import("@cnikit/conformance/runner");
      const report = await runConformance({
        backend: b.backend,
        config: c.config,
        configLabel: c.label,
        topology: c.topology!,
        nodes: 3,
        seed: 5,
        checks: ["reach.pod-to-pod.cross-node", "reach.node-to-pod", "mtu.encap-headroom", "claims.encapsulations"],
      });
      expect(report.results.map((r) => [r.id, r.status, r.reason])).toEqual([
        ["reach.pod-to-pod.cross-node", "passed", undefined],
        ["reach.node-to-pod", "passed", undefined],
        ["mtu.encap-headroom", "passed", undefined],
        ["claims.encapsulations", "passed", undefined],
      ]);
    },
    120_000,
  );
});
