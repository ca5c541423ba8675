// claims.families and claims.encapsulations on flannel, which claims IPv4 and IPv6 and vxlan and
// none: exercised claims pass, unclaimed ones fail, a hidden tunnel link fails, an unexercised
// claim is "not run" naming it.
import { describe, expect, it } from "vitest";
import { defineBackend } from "@cnikit/core";
import { hasRequiredFailure, runConformance } from "@cnikit/conformance/runner";
import { flannel } from "@cnikit/flannel";
import { reference } from "@cnikit/reference";

describe("claims", () => {
  const checks = ["claims.families", "claims.encapsulations"];

  it("passes when the config exercises every claimed family, and lists the exercised encapsulation", async () => {
    const report = await runConformance({ backend: reference, config: {}, nodes: 3, seed: 4, checks });
    expect(report.results.map((r) => [r.id, r.status])).toEqual([
      ["claims.families", "passed"],
      ["claims.encapsulations", "passed"],
    ]);
    expect(report.results[1]!.subResults).toEqual([{ label: "none exercised", status: "passed" }]);
  });

  it("fails a config whose pod range is of a family the backend does not claim", async () => {
    const v6Only = defineBackend({ ...reference, name: "reference-claims-v6", capabilities: { ...reference.capabilities, families: [6] } });
    const report = await runConformance({ backend: v6Only, config: {}, nodes: 3, seed: 4, checks });
    const r = report.results[0]!;
    expect(r.status).toBe("failed");
    expect(r.reason).toMatch(/pod range 10\.250\.0\.0\/16 is IPv4, but capabilities\.families claims only IPv6/);
    expect(hasRequiredFailure(report)).toBe(true);
  });

  it("fails an encapsulation the summary uses but capabilities do not claim", async () => {
    const noNone = defineBackend({ ...reference, name: "reference-claims-vxlan", capabilities: { ...reference.capabilities, encapsulations: ["vxlan"] } });
    const report = await runConformance({ backend: noNone, config: {}, nodes: 3, seed: 4, checks });
    expect(report.results[1]).toMatchObject({ status: "failed", reason: expect.stringMatching(/uses encapsulation none, which capabilities\.encapsulations does not claim \(vxlan\)/) });
  });

  it("fails a tunnel link the agents build that the summary does not declare", async () => {
    const hidden = defineBackend({ ...flannel, name: "flannel-hides-vxlan", summarize: (c) => ({ ...flannel.summarize(c), encapsulations: ["none"] }) });
    const report = await runConformance({ backend: hidden, config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }, nodes: 3, seed: 4, checks: ["claims.encapsulations"] });
    expect(report.results[0]).toMatchObject({ status: "failed", reason: expect.stringMatching(/node node-\d+ \(.*\) builds vxlan link flannel\.1, but the config's summary declares only none/) });
  });

  it("reports a claimed family the config does not exercise as 'not run' naming it, never passed", async () => {
    const report = await runConformance({ backend: flannel, config: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } }, nodes: 3, seed: 4, checks });
    const r = report.results[0]!;
    expect(r.status).toBe("not run");
    expect(r.reason).toMatch(/claims IPv4, IPv6; this config exercises IPv4 only .*IPv6 not exercised/);
    expect(report.claims?.families).toEqual({ claimed: [4, 6], exercised: [4] });
    expect(report.claims?.encapsulations).toEqual({ claimed: ["vxlan", "none"], exercised: ["vxlan"] });
  });

  it("passes flannel's dual-stack config: every pod holds one address of each family", async () => {
    const config = { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan" } };
    const report = await runConformance({ backend: flannel, config, nodes: 3, seed: 4, checks: [...checks, "reach.pod-to-pod.cross-node"] });
    expect(report.results.map((r) => [r.id, r.status, r.reason])).toEqual([
      ["reach.pod-to-pod.cross-node", "passed", undefined],
      ["claims.families", "passed", undefined],
      ["claims.encapsulations", "passed", undefined],
    ]);
  });

  it("fails a backend whose pods miss the second family of a dual-stack config", async () => {
    const v4Pods = defineBackend({
      ...flannel,
      name: "flannel-v4-pods",
      createAgent: (ctx) => {
        const agent = flannel.createAgent(ctx);
        return new Proxy(agent, {
          get(target, prop, receiver) {
            const v: unknown = Reflect.get(target, prop, receiver);
            if (prop !== "attach" || typeof v !== "function") return typeof v === "function" ? v.bind(target) : v;
            return async (...args: unknown[]) => {
              const res = (await (v as (...a: unknown[]) => Promise<{ ips: { address: string }[] }>).apply(target, args)) as { ips: { address: string }[] };
              return { ...res, ips: res.ips.filter((ip) => !ip.address.includes(":")) };
            };
          },
        });
      },
    });
    const config = { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56", Backend: { Type: "vxlan" } };
    const report = await runConformance({ backend: v4Pods, config, nodes: 3, seed: 4, checks: ["claims.families"] });
    expect(report.results[0]).toMatchObject({ status: "failed", reason: expect.stringMatching(/pod .* on node node-\d+ has no IPv6 address/) });
  });
});
