import { describe, expect, it } from "vitest";
import { VirtualClock, defineBackend } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import { reference } from "@cnikit/reference";
import { defaultTopology, singleSubnetTopology } from "@cnikit/sim";
import { drive } from "../src/harness.ts";
import { CHECK_BOUNDS, boundMs, hasRequiredFailure, listChecks, runConformance, selectChecks } from "../src/runner-entry.ts";

describe("selectChecks", () => {
  const rows: { label: string; ids: string[] | undefined; expected: (ids: string[]) => void }[] = [
    { label: "all by default", ids: undefined, expected: (ids) => expect(ids).toHaveLength(listChecks().length) },
    { label: "exact ids, in report order", ids: ["dyn.join", "ipam.unique"], expected: (ids) => expect(ids).toEqual(["ipam.unique", "dyn.join"]) },
    {
      label: "a section letter: exactly that section's checks, in report order",
      ids: ["C"],
      expected: (ids) => {
        expect(ids).toEqual(listChecks().filter((c) => c.section === "C").map((c) => c.id));
        expect(ids).toEqual(expect.arrayContaining(["config.accepts-anchor-format", "config.invalid-refused", "claims.families", "claims.encapsulations"]));
      },
    },
    {
      label: "a prefix: exactly the ids that start with it",
      ids: ["fault.*"],
      expected: (ids) => {
        expect(ids).toEqual(listChecks().filter((c) => c.id.startsWith("fault.")).map((c) => c.id));
        expect(ids).toEqual(expect.arrayContaining(["fault.message-loss", "fault.partition-heal", "fault.store-unavailable"]));
      },
    },
  ];
  for (const row of rows) it(row.label, () => row.expected(selectChecks(row.ids).map((c) => c.id)));

  it("refuses an unknown id with a ConfigError naming the field", () => {
    expect(() => selectChecks(["ipam.nope"])).toThrow(expect.objectContaining({ code: 7, field: "checks" }));
  });

  it("gives every check a unique id, a rule, a source and a section", () => {
    const ids = listChecks().map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const c of listChecks()) {
      expect(c.rule.length, c.id).toBeGreaterThan(10);
      expect(c.source.length, c.id).toBeGreaterThan(5);
      expect(c.section, c.id).toMatch(/^[A-I]$/);
    }
  });
});

describe("runConformance options", () => {
  const bad: { label: string; options: Record<string, unknown>; field: string }[] = [
    { label: "one node", options: { nodes: 1 }, field: "nodes" },
    { label: "a fractional seed", options: { seed: 1.5 }, field: "seed" },
    { label: "zero property runs", options: { propertyRuns: 0 }, field: "propertyRuns" },
    { label: "an invalid run config (the backend's own error)", options: { config: { mtu: 1 } }, field: "mtu" },
  ];
  for (const row of bad) {
    it(`refuses ${row.label}`, async () => {
      await expect(runConformance({ backend: reference, config: {}, ...row.options })).rejects.toMatchObject({ code: 7, field: row.field });
    });
  }

  it("reports the run's identity and counts required failures", async () => {
    const report = await runConformance({ backend: reference, config: {}, configLabel: "x", nodes: 3, seed: 9, checks: ["ipam.unique", "encryption.no-plaintext"] });
    expect(report).toMatchObject({ backend: "reference", config: "x", nodes: 3, seed: 9 });
    expect(report.results.map((r) => [r.id, r.status])).toEqual([
      ["ipam.unique", "passed"],
      ["encryption.no-plaintext", "not claimed"],
    ]);
    expect(hasRequiredFailure(report)).toBe(false);
    expect(hasRequiredFailure({ ...report, results: [{ ...report.results[0]!, status: "error" }] })).toBe(true);
  });
});

describe("honest figures, bounds and strictness", () => {
  it("keeps unmeasured figures out of the report and stores the declared bounds and claims", async () => {
    const report = await runConformance({ backend: reference, config: {}, nodes: 3, seed: 3, checks: ["ipam.unique", "dyn.join"] });
    const unique = report.results.find((r) => r.id === "ipam.unique")!;
    expect(unique.metrics).toBeDefined();
    expect(Object.keys(unique.metrics!)).toEqual(["wallMs"]);
    expect(unique.bound).toBeUndefined();
    const join = report.results.find((r) => r.id === "dyn.join")!;
    const summary = reference.summarize(reference.parseConfig({}));
    expect(join.bound).toEqual({ name: "convergenceMs", ms: summary.convergenceMs });
    expect(typeof join.metrics!.virtualMs).toBe("number");
    expect(report.bounds).toEqual({ convergenceMs: summary.convergenceMs, crashDetectionMs: summary.crashDetectionMs });
    expect(report.claims).toEqual({ families: { claimed: [4], exercised: [4] }, encapsulations: { claimed: ["none"], exercised: ["none"] } });
    expect(report.strict).toBeUndefined();
  });

  it("names a bound for every dynamics and fault check the suite has", () => {
    const summary = { podRanges: ["10.0.0.0/16"], natOutgoing: true, encapsulations: [], convergenceMs: 30, crashDetectionMs: 400 };
    for (const [id, name] of Object.entries(CHECK_BOUNDS)) {
      expect(listChecks().map((c) => c.id), id).toContain(id);
      expect(boundMs(summary, name), id).toBe(name === "convergenceMs" ? 30 : name === "crashDetectionMs" ? 400 : 430);
    }
    expect(CHECK_BOUNDS["dyn.crash"]).toBe("crashDetectionMs");
  });

  it("strict turns a required 'not run' into a failure of the run, and never a 'not claimed'", async () => {
    // No invalid-config table: config.invalid-refused is a required check that is "not run".
    const options = { backend: reference, config: {}, nodes: 3, seed: 3, checks: ["config.invalid-refused", "encryption.no-plaintext"] };
    const lenient = await runConformance(options);
    expect(lenient.results.map((r) => r.status)).toEqual(["not run", "not claimed"]);
    expect(lenient.results[0]!.reason).toMatch(/export `conformance = \{ invalidConfigs/);
    expect(hasRequiredFailure(lenient)).toBe(false);
    const strict = await runConformance({ ...options, strict: true });
    expect(strict.strict).toBe(true);
    expect(hasRequiredFailure(strict)).toBe(true);
    const onlyNotClaimed = await runConformance({ ...options, checks: ["encryption.no-plaintext"], strict: true });
    expect(hasRequiredFailure(onlyNotClaimed)).toBe(false);
  });

  it("refuses a topology the simulator cannot build, naming the field", async () => {
    const topology = defaultTopology();
    topology.subnets[1]!.mtu = 100;
    await expect(runConformance({ backend: reference, config: {}, topology })).rejects.toMatchObject({ code: 7, field: "topology.subnets[1].mtu" });
  });

  it("builds every cluster on the given topology (a 9000-byte underlay lets a 9000-byte pod MTU start)", async () => {
    const topology = singleSubnetTopology();
    for (const s of topology.subnets) s.mtu = 9000;
    const report = await runConformance({ backend: reference, config: { mtu: 9000 }, nodes: 3, seed: 2, topology, checks: ["reach.pod-to-pod.cross-node", "mtu.encap-headroom"] });
    // mtu 9000 is refused at node start on the default 1500 underlay; on this one it runs.
    expect(report.results.map((r) => [r.id, r.status, r.reason])).toEqual([
      ["reach.pod-to-pod.cross-node", "passed", undefined],
      ["mtu.encap-headroom", "passed", undefined],
    ]);
  });
});

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

describe("section F gate", () => {
  it("reports policy.matrix as not claimed (never passed) for a backend that does not claim networkPolicy", async () => {
    const noPolicy = defineBackend({ ...reference, name: "reference-no-policy", capabilities: { ...reference.capabilities, networkPolicy: false } });
    const report = await runConformance({ backend: noPolicy, config: {}, nodes: 3, seed: 9, checks: ["policy.matrix"] });
    expect(report.results.map((r) => [r.id, r.status, r.reason])).toEqual([["policy.matrix", "not claimed", "capabilities.networkPolicy is false"]]);
  });
});

describe("drive", () => {
  it("lets virtual time flow while an operation waits on timers", async () => {
    const clock = new VirtualClock();
    const op = (async () => {
      await clock.sleep(1_000);
      await clock.sleep(2_500);
      return "done";
    })();
    await expect(drive(clock, op)).resolves.toBe("done");
    expect(clock.now()).toBe(3_500);
  });

  it("does not move the clock for an operation that does not wait", async () => {
    const clock = new VirtualClock();
    clock.setInterval(() => undefined, 10_000);
    await expect(drive(clock, Promise.resolve(1))).resolves.toBe(1);
    expect(clock.now()).toBe(0);
  });

  it("gives up after the virtual limit, naming the operation", async () => {
    const clock = new VirtualClock();
    clock.setInterval(() => undefined, 1_000);
    const never = new Promise<never>(() => undefined);
    await expect(drive(clock, never, "addNode()", 5_000)).rejects.toThrow(/addNode\(\) still had not completed after 5000 ms of virtual time/);
  });
});
