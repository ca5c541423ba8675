// parsePolicyBatch: one invalid object does not fail the batch. Every valid policy is returned (and
// enforced), every invalid object is named (kind, namespace, name, document, field, rule), and the
// error the strict parsePolicies throws is one of them, word for word.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PolicyEvaluator, compileFilters, parsePolicies, parsePolicyBatch } from "../src/index.ts";
import { e2eCluster } from "./e2e-model.ts";

function np(name: string, spec: string, ns = "x"): string {
  return `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: ${spec}\n`;
}
const DENY_X = np("deny-all", "{podSelector: {}}");
const BAD = np("bad", "{podSelector: {}, ingress: [{ports: [{protocol: tcp, port: 70000}]}]}");
const ALLOW_Y = np("from-y", "{podSelector: {matchLabels: {pod: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]}");

/** The message the strict parser throws for `text`, or undefined when it accepts it. */
function strictMessage(text: string): string | undefined {
  try {
    parsePolicies(text, "p.yaml");
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe("parsePolicyBatch", () => {
  it("keeps the valid policies enforced and names the invalid one", () => {
    const text = [DENY_X, BAD, ALLOW_Y].join("---\n");
    const batch = parsePolicyBatch(text, "p.yaml");
    expect(batch.policies.map((p) => `${p.namespace}/${p.name}`)).toEqual(["x/deny-all", "x/from-y"]);
    expect(batch.errors).toHaveLength(1);
    expect(batch.errors[0]).toMatchObject({ kind: "NetworkPolicy", namespace: "x", name: "bad", source: "p.yaml#2", field: "spec.ingress[0].ports[0].protocol" });
    expect(batch.errors[0]!.rule).toContain('upper case: "TCP"');
    expect(batch.errors[0]!.rule).toContain("spec.ingress[0].ports[0].port: must be between 1 and 65535, inclusive");
    expect(batch.errors[0]!.message).toBe(strictMessage(text));
    // Enforced: x/a admits only namespace y; x/b nothing.
    const ev = new PolicyEvaluator({ ...e2eCluster(), policies: batch.policies });
    expect(ev.verdict({ from: "y/b", to: "x/a", protocol: "TCP", port: 80 }).allowed).toBe(true);
    expect(ev.verdict({ from: "z/b", to: "x/a", protocol: "TCP", port: 80 }).allowed).toBe(false);
    expect(ev.verdict({ from: "y/b", to: "x/b", protocol: "TCP", port: 80 }).allowed).toBe(false);
    expect(compileFilters({ model: { ...e2eCluster(), policies: batch.policies }, node: "node-a" }).map((f) => `${f.pod} ${f.direction}`)).toEqual(["x-a/eth0 ingress"]);
  });

  it("reports unreadable documents, wrong kinds, nameless objects and List items, in document order", () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n- ${DENY_X.split("\n").join("\n  ")}\n- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {namespace: y}, spec: {podSelector: {}}}\n`;
    const text = ["apiVersion: [\n", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {}\n", list, "- just\n- a list\n", ALLOW_Y].join("---\n");
    const batch = parsePolicyBatch(text, "p.yaml");
    expect(batch.policies.map((p) => p.name)).toEqual(["deny-all", "from-y"]);
    expect(batch.errors.map((e) => [e.kind, e.namespace, e.name, e.source, e.field])).toEqual([
      ["(document)", undefined, undefined, "p.yaml#1", "(document)"],
      ["Pod", "default", "web", "p.yaml#2", "kind"],
      ["NetworkPolicy", "y", undefined, "p.yaml#3 items[1]", "metadata.name"],
      ["(document)", undefined, undefined, "p.yaml#4", "(document)"],
    ]);
    expect(batch.errors[0]!.rule).toMatch(/not valid YAML/);
    expect(batch.errors[0]!.message).toBe(strictMessage(text));
  });

  it("keeps the first of two policies with one namespace/name and reports the second", () => {
    const batch = parsePolicyBatch([DENY_X, np("deny-all", "{podSelector: {}, ingress: [{}]}"), np("deny-all", "{podSelector: {}}", "y")].join("---\n"), "p.yaml");
    expect(batch.policies.map((p) => `${p.namespace}/${p.name} ${p.ingress.length}`)).toEqual(["x/deny-all 0", "y/deny-all 0"]);
    expect(batch.errors).toEqual([
      expect.objectContaining({ kind: "NetworkPolicy", namespace: "x", name: "deny-all", source: "p.yaml#2", field: "metadata.name", rule: expect.stringMatching(/appears twice/) }),
    ]);
  });

  it("gives what the strict parser gives for a valid file, and never throws for bad input", () => {
    const good = [DENY_X, ALLOW_Y].join("---\n");
    expect(parsePolicyBatch(good, "p.yaml")).toEqual({ policies: parsePolicies(good, "p.yaml"), errors: [] });
    expect(parsePolicyBatch("", "p.yaml")).toEqual({ policies: [], errors: [] });
    expect(parsePolicyBatch("kind: NetworkPolicyList\nitems: 3\n", "p.yaml").errors).toEqual([expect.objectContaining({ kind: "NetworkPolicyList", field: "items", source: "p.yaml#1" })]);
  });

  it("for any mix of valid and invalid objects: the valid ones in order, one error per invalid one, and the strict parser's error among them", () => {
    const valid = (i: number) => np(`ok-${i}`, "{podSelector: {}, ingress: [{ports: [{port: 80}]}]}");
    const invalid = [
      (i: number) => np(`bad-${i}`, "{podSelector: {}, ingress: [{ports: [{port: 0}]}]}"),
      (i: number) => np(`bad-${i}`, "{podSelector: {}, policyTypes: [Sideways]}"),
      (i: number) => np(`Bad_${i}`, "{podSelector: {}}"),
      () => "apiVersion: [\n",
    ];
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: 0, max: invalid.length - 1 }), { nil: undefined }), { maxLength: 8 }), (mix) => {
        const docs = mix.map((bad, i) => (bad === undefined ? valid(i) : invalid[bad]!(i)));
        const text = docs.join("---\n");
        const batch = parsePolicyBatch(text, "p.yaml");
        expect(batch.policies.map((p) => p.name)).toEqual(mix.flatMap((bad, i) => (bad === undefined ? [`ok-${i}`] : [])));
        expect(batch.errors.map((e) => e.source)).toEqual(mix.flatMap((bad, i) => (bad === undefined ? [] : [`p.yaml#${i + 1}`])));
        // The strict parser reads every document before it validates objects: a YAML error comes first.
        const first = batch.errors.find((e) => /not valid YAML/.test(e.rule)) ?? batch.errors[0];
        expect(first?.message).toBe(strictMessage(text));
      }),
      { numRuns: 60 },
    );
  });
});
