import { describe, expect, it } from "vitest";
import { VirtualClock, defineBackend } from "@cnikit/core";
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
        expect(ids).toEqual(
          listChecks()
            .filter((c) => c.section === "C")
            .map((c) => c.id),
        );
        expect(ids).toEqual(expect.arrayContaining(["config.accepts-anchor-format", "config.invalid-refused", "claims.families", "claims.encapsulations"]));
      },
    },
    {
      label: "a prefix: exactly the ids that start with it",
      ids: ["fault.*"],
      expected: (ids) => {
        expect(ids).toEqual(
          listChecks()
            .filter((c) => c.id.startsWith("fault."))
            .map((c) => c.id),
        );
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
      expect(
        listChecks().map((c) => c.id),
        id,
      ).toContain(id);
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
