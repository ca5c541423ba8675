// policy.matrix's probes around port ranges and its own-node probes, and dyn.leave's release
// observation: each judged on the broken variant it exists for, with the reason it gives.
import { describe, expect, it } from "vitest";
import { runConformance } from "@cnikit/conformance/runner";
import type { CheckResult, ConformanceReport } from "@cnikit/conformance/runner";
import { calicoVariants } from "./broken/variants-shapes.ts";
import type { BrokenVariant } from "./broken/types.ts";

const RUN = { nodes: 4, seed: 3 } as const;

function variant(label: string): BrokenVariant {
  const found = calicoVariants.find((v) => v.label.startsWith(label));
  if (!found) throw new Error(`no calico variant labelled ${label}...`);
  return found;
}

function result(report: ConformanceReport, id: string): CheckResult {
  const r = report.results.find((x) => x.id === id);
  if (!r) throw new Error(`no result for ${id}`);
  return r;
}

describe("the variants these probes exist for", () => {
  it("an ignored endPort is red inside the range, naming the pods, the port and the case", async () => {
    const v = variant("calico: NetworkPolicy endPort ignored");
    const r = result(await runConformance({ backend: v.backend, config: v.config, checks: ["policy.matrix"], ...RUN }), "policy.matrix");
    expect(r.status, r.reason).toBe("failed");
    expect(r.reason).toMatch(/first: endPort: .* \S+\/\S+ -> x\/a TCP\/82: expected allowed, got dropped .* on node \S+/);
  }, 120_000);

  it("a pod cut off from its own node is red, naming the node, the pod and the case", async () => {
    const v = variant("calico: pod isolation also blocks the pod's own node");
    const r = result(await runConformance({ backend: v.backend, config: v.config, checks: ["policy.matrix"], ...RUN }), "policy.matrix");
    expect(r.status, r.reason).toBe("failed");
    expect(r.reason).toMatch(/first: default-deny-ingress in x .*: node (\S+) -> x\/\w TCP\/80: expected delivered .* node \1 -> pod x\/\w \([0-9.]+\) on node \1/);
  }, 120_000);

  it("a clean leave that keeps its share is red, naming the record, the departed pod's address and the node", async () => {
    const v = variant("calico: a clean leave keeps its blocks");
    const r = result(await runConformance({ backend: v.backend, config: v.config, checks: ["dyn.leave"], ...RUN }), "dyn.leave");
    expect(r.status, r.reason).toBe("failed");
    expect(r.reason).toMatch(/its share was not given back: the store still holds \/calico\/\S+/);
    expect(r.reason).toMatch(/names [0-9.]+ \(the address of its pod default\/\S+\) of departed node l-2/);
  }, 120_000);
});
