// Every case's whole 9×9 matrix, for every probe (TCP, UDP, SCTP × ports 80, 81), from the
// evaluator, compared with the truth tables written from the API rules.
import { describe, expect, it } from "vitest";
import { PolicyEvaluator } from "../src/index.ts";
import { CASES } from "./cases.ts";
import { POD_IDS, PROBES, e2eCluster, expectedFor, policiesOf, showTable } from "./e2e-model.ts";

describe("reachability matrices over the upstream e2e model (evaluator)", () => {
  it("has at least 40 cases with unique names", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  for (const c of CASES) {
    it(c.name, () => {
      const ev = new PolicyEvaluator({ ...e2eCluster(c.edit), policies: policiesOf(c) });
      for (const probe of PROBES) {
        const got = ev.matrix(probe, POD_IDS).allowed;
        const want = expectedFor(c, probe);
        expect(showTable(got), `${probe.protocol}/${probe.port}`).toBe(showTable(want));
      }
    });
  }
});
