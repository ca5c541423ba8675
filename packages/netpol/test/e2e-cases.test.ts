// The exported e2e cases (what the conformance suite runs): they parse, each one denies something
// (no vacuous case), a label change changes the matrix, and where a case has the name of a
// hand-written case its evaluator matrices equal that case's tables.
import { describe, expect, it } from "vitest";
import { E2E_POD_IDS, E2E_PORTS, PolicyEvaluator, e2eCases, parsePolicyObject, type Cluster } from "../src/index.ts";
import { CASES } from "./cases.ts";
import { POD_IDS, PROBES, e2eCluster, expectedFor, pod, podIp, showTable } from "./e2e-model.ts";

const env = { podIp: (id: string) => podIp(id.split("/")[0]!, id.split("/")[1]!), podNetwork: "10.244.0.0/16" };

function clusterFor(c: (typeof e2eCases)[number], relabelled: boolean): Cluster {
  return e2eCluster((cl) => {
    for (const [id, ports] of Object.entries(c.extraPorts ?? {})) pod(cl, id).ports.push(...ports);
    if (relabelled) for (const [ns, labels] of Object.entries(c.relabelNamespaces ?? {})) Object.assign(cl.namespaces.find((n) => n.name === ns)!.labels, labels);
  });
}

function matrices(c: (typeof e2eCases)[number], relabelled: boolean): string[] {
  const ev = new PolicyEvaluator({ ...clusterFor(c, relabelled), policies: c.policies(env).map((p, i) => parsePolicyObject(p, `${c.name}#${i}`)) });
  return PROBES.map((probe) => showTable(ev.matrix(probe, POD_IDS).allowed));
}

describe("e2eCases", () => {
  it("has at least 12 cases with unique names, in the model's pod order and ports", () => {
    expect(e2eCases.length).toBeGreaterThanOrEqual(12);
    expect(new Set(e2eCases.map((c) => c.name)).size).toBe(e2eCases.length);
    expect(E2E_POD_IDS).toEqual(POD_IDS);
    expect(E2E_PORTS).toEqual(e2eCluster().pods[0]!.ports);
  });

  for (const c of e2eCases) {
    it(c.name, () => {
      const before = matrices(c, false);
      const all = showTable(POD_IDS.map(() => POD_IDS.map(() => true)));
      if (c.relabelNamespaces) {
        expect(matrices(c, true)).not.toEqual(before);
      } else {
        expect(
          before.some((m) => m !== all),
          "the case must deny something",
        ).toBe(true);
      }
      const written = CASES.find((k) => k.name === c.name);
      if (written) PROBES.forEach((probe, i) => expect(before[i], `${probe.protocol}/${probe.port}`).toBe(showTable(expectedFor(written, probe))));
    });
  }

  it("shares most of its cases with the hand-written tables", () => {
    expect(e2eCases.filter((c) => CASES.some((k) => k.name === c.name)).length).toBeGreaterThanOrEqual(10);
  });
});
