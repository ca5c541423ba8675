// The simulator, enforcing the compiled filters, gives the same matrices as the evaluator (and as
// the hand-written tables) for every case and probe, with pods spread over three nodes and with
// all pods on one node.
import { describe, expect, it } from "vitest";
import { PolicyEvaluator, podKeyOf } from "../src/index.ts";
import { CASES } from "./cases.ts";
import { POD_IDS, PROBES, e2eCluster, expectedFor, policiesOf, protoLower, showTable } from "./e2e-model.ts";
import { simFabric } from "./sim-model.ts";

describe("sim enforcement of compiled filters equals the evaluator", () => {
  for (const layout of ["three nodes", "one node"] as const) {
    describe(layout, () => {
      for (const c of CASES) {
        it(c.name, () => {
          const cluster = e2eCluster(c.edit);
          const model = { ...cluster, policies: policiesOf(c) };
          const ev = new PolicyEvaluator(model);
          const { fabric } = simFabric(model, { oneNode: layout === "one node" });
          const keyIndex = new Map(cluster.pods.map((p) => [podKeyOf(p), POD_IDS.indexOf(`${p.namespace}/${p.name}`)]));
          for (const probe of PROBES) {
            const sim = POD_IDS.map(() => POD_IDS.map(() => false));
            let pairs = 0;
            for (const o of fabric.reachabilityPairs({ protocol: protoLower(probe.protocol), port: probe.port })) {
              if (o.from.kind !== "pod" || o.to.kind !== "pod") continue;
              sim[keyIndex.get(o.from.key)!]![keyIndex.get(o.to.key)!] = o.delivered;
              pairs++;
            }
            expect(pairs).toBe(72); // the analysis leaves out self pairs: send() walks those
            for (const p of cluster.pods) {
              const k = keyIndex.get(podKeyOf(p))!;
              sim[k]![k] = fabric.send({ kind: "pod", key: podKeyOf(p) }, { kind: "pod", key: podKeyOf(p) }, { protocol: protoLower(probe.protocol), port: probe.port }).delivered;
            }
            const label = `${probe.protocol}/${probe.port}`;
            expect(showTable(sim), `sim ${label}`).toBe(showTable(ev.matrix(probe, POD_IDS).allowed));
            expect(showTable(sim), `sim vs table ${label}`).toBe(showTable(expectedFor(c, probe)));
          }
        });
      }
    });
  }

  it("a denied pair is explained by the sim with the pod's default drop, an allowed one by the accepting rule", () => {
    const c = CASES.find((k) => k.name === "ports: from namespace y to x/a on TCP 81 only")!;
    const model = { ...e2eCluster(), policies: policiesOf(c) };
    const { fabric } = simFabric(model);
    const denied = fabric.send({ kind: "pod", key: "x-b/eth0" }, { kind: "pod", key: "x-a/eth0" }, { protocol: "tcp", port: 81 });
    expect(denied.delivered).toBe(false);
    expect(denied.reason).toMatch(/default drop of pod x-a\/eth0's ingress policy/);
    const allowed = fabric.send({ kind: "pod", key: "y-c/eth0" }, { kind: "pod", key: "x-a/eth0" }, { protocol: "tcp", port: 81 });
    expect(allowed.delivered).toBe(true);
    expect(allowed.replyDelivered).toBe(true);
    expect(allowed.path.map((h) => h.detail).join("\n")).toContain("np/x/port-81/ingress/0/tcp");
  });
});
