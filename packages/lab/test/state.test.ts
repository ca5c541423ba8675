import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, NotFoundError } from "@cnikit/core";
import { defaultTopology } from "@cnikit/sim";
import { planLab, readState, type LabState } from "../src/index.ts";
import { StateStore, writeState } from "../src/state.ts";

const root = mkdtempSync(join(tmpdir(), "cnikit-lab-state-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function fresh(name: string): LabState {
  const plan = planLab({ name, nodes: 2, topology: defaultTopology(), stateRoot: root });
  return {
    version: 1,
    name,
    createdAt: "2024-01-01T00:00:00.000Z",
    phase: "creating",
    ownerPid: 1,
    spec: {
      backend: "flannel",
      mode: "vxlan",
      backendConfig: {},
      nodes: 2,
      podsPerNode: 0,
      summary: { podRanges: [], natOutgoing: true, encapsulations: ["vxlan"], convergenceMs: 1, crashDetectionMs: 1 },
    },
    plan,
    resources: [{ kind: "dir", path: plan.stateDir }],
    pods: [],
  };
}

describe("state file", () => {
  it("round-trips and leaves no temporary file", () => {
    const s = fresh("a");
    writeState(s.plan.stateDir, s);
    expect(readState(s.plan.stateDir)).toEqual(s);
    expect(readdirSync(s.plan.stateDir)).toEqual(["state.json"]);
  });

  it("writes every record through at once, and one process entry per role", () => {
    const s = fresh("b");
    const store = new StateStore(s.plan.stateDir, s);
    store.record({ kind: "netns", name: "ckl-b-fabric" });
    const e = store.recordProcess({ role: "etcd", ns: "ckl-b-infra", marker: "/x" });
    expect(readState(s.plan.stateDir).resources.at(-1)).toEqual({ kind: "process", role: "etcd", ns: "ckl-b-infra", marker: "/x" });
    store.setPid(e, 42);
    expect(readState(s.plan.stateDir).resources.at(-1)).toMatchObject({ pid: 42 });
    store.recordProcess({ role: "etcd", ns: "ckl-b-infra", marker: "/y" });
    const procs = readState(s.plan.stateDir).resources.filter((r) => r.kind === "process");
    expect(procs).toEqual([{ kind: "process", role: "etcd", ns: "ckl-b-infra", marker: "/y" }]);
    store.forget((r) => r.kind === "netns");
    expect(readState(s.plan.stateDir).resources.some((r) => r.kind === "netns")).toBe(false);
  });

  it("refuses a missing or foreign file", () => {
    expect(() => readState(join(root, "none"))).toThrow(NotFoundError);
    const dir = join(root, "garbage");
    writeState(dir, fresh("c"));
    writeFileSync(join(dir, "state.json"), "{not json");
    expect(() => readState(dir)).toThrow(ConfigError);
    writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 7 }));
    expect(() => readState(dir)).toThrow(/version 1/);
  });
});
