// Verdicts and their explanations: which policies isolated each direction, which rule allowed it,
// loopback, endpoints outside the cluster, and errors for unknown endpoints.
import { ConfigError } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { PolicyEvaluator, explainVerdict, formatMatrix, parsePolicies } from "../src/index.ts";
import { CASES } from "./cases.ts";
import { e2eCluster, policiesOf } from "./e2e-model.ts";

function evaluator(caseName: string): PolicyEvaluator {
  const c = CASES.find((k) => k.name === caseName)!;
  return new PolicyEvaluator({ ...e2eCluster(c.edit), policies: policiesOf(c) });
}

describe("verdicts and explanations", () => {
  it("names the isolating policy and says no rule matched for a denied direction", () => {
    const v = evaluator("ports: from namespace y to x/a on TCP 81 only").verdict({ from: "z/b", to: "x/a", protocol: "TCP", port: 81 });
    expect(v.allowed).toBe(false);
    expect(v.egress).toMatchObject({ isolated: false, allowed: true });
    expect(v.ingress).toMatchObject({ isolated: true, isolatedBy: ["x/port-81"], allowed: false, allowedBy: [] });
    const text = explainVerdict(v);
    expect(text).toContain("z/b (10.244.3.11) → x/a (10.244.1.10) TCP/81: DENIED");
    expect(text).toContain("ingress: x/a is isolated for ingress by x/port-81; no ingress rule of this policy matches z/b (10.244.3.11) on TCP/81: denied");
    expect(text).toContain("egress: z/b is not isolated for egress");
  });

  it("names the rule, peer and port that allowed a direction", () => {
    const v = evaluator("ports: from namespace y to x/a on TCP 81 only").verdict({ from: "y/c", to: "x/a", protocol: "TCP", port: 81 });
    expect(v.allowed).toBe(true);
    expect(v.ingress.allowedBy).toEqual([{ policy: "x/port-81", direction: "ingress", rule: 0, peer: 0, port: 0, text: "x/port-81 ingress[0] from[0] (namespaceSelector ns=y) ports[0] (TCP 81)" }]);
  });

  it("lists every allowing rule of every policy (the union)", () => {
    const v = evaluator("an allow-all ingress policy takes precedence over a narrower one").verdict({ from: "y/a", to: "x/a", protocol: "TCP", port: 80 });
    expect(v.ingress.isolatedBy).toEqual(["x/allow-all", "x/only-80"]);
    expect(v.ingress.allowedBy.map((r) => r.text)).toEqual(["x/allow-all ingress[0] (any peer) (any port)", "x/only-80 ingress[0] (any peer) ports[0] (TCP 80)"]);
  });

  it("explains both directions when both are isolated", () => {
    const ev = evaluator("both ends isolated: x/a may send TCP 80 to y/b, y/b accepts only x/a on TCP 80");
    const ok = ev.verdict({ from: "x/a", to: "y/b", protocol: "TCP", port: 80 });
    expect(ok.allowed).toBe(true);
    expect(ok.egress.allowedBy[0]!.text).toBe("x/a-to-yb egress[0] to[0] (namespaceSelector ns=y + podSelector pod=b) ports[0] (TCP 80)");
    expect(ok.ingress.allowedBy[0]!.text).toBe("y/b-from-xa ingress[0] from[0] (namespaceSelector ns=x + podSelector pod=a) ports[0] (TCP 80)");
    const no = ev.verdict({ from: "x/a", to: "y/b", protocol: "UDP", port: 80 });
    expect(no.egress.allowed).toBe(false);
    expect(no.ingress.allowed).toBe(false);
    expect(explainVerdict(no)).toMatch(/egress: x\/a is isolated for egress by x\/a-to-yb; no egress rule/);
  });

  it("says which selecting policies do not isolate a direction (policyTypes)", () => {
    const v = evaluator("policyTypes [Egress] with egress rules leaves ingress open").verdict({ from: "z/a", to: "x/a", protocol: "TCP", port: 80 });
    expect(v.ingress).toMatchObject({ isolated: false, selectedBy: ["x/egress-only"] });
    expect(explainVerdict(v)).toContain("(selected by x/egress-only, whose policyTypes do not include Ingress)");
  });

  it("loopback always passes and says so", () => {
    const v = evaluator("default-deny-all (ingress and egress) in x").verdict({ from: "x/a", to: "x/a", protocol: "UDP", port: 81 });
    expect(v.allowed).toBe(true);
    expect(v.loopback).toBe(true);
    expect(explainVerdict(v)).toContain("loopback");
  });

  it("takes addresses: a pod's address is that pod; other addresses match only ipBlocks and named ports never", () => {
    const c = `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: x}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 443}]}, {ports: [{port: serve-80-tcp}]}]}\n`;
    const ev = new PolicyEvaluator({ ...e2eCluster(), policies: parsePolicies(c) });
    expect(ev.verdict({ from: "x/a", to: "192.0.2.7", protocol: "TCP", port: 443 }).allowed).toBe(true);
    expect(ev.verdict({ from: "x/a", to: "198.51.100.7", protocol: "TCP", port: 443 }).allowed).toBe(false);
    expect(ev.verdict({ from: "x/a", to: "192.0.2.7", protocol: "TCP", port: 80 }).allowed).toBe(false);
    const byIp = ev.verdict({ from: "10.244.1.10", to: "10.244.2.11", protocol: "TCP", port: 80 });
    expect([byIp.from, byIp.to, byIp.allowed]).toEqual(["x/a", "y/b", true]);
    const ext = ev.verdict({ from: "192.0.2.9", to: "x/b", protocol: "UDP", port: 53 });
    expect(ext.allowed).toBe(true);
    expect(explainVerdict(ext)).toContain("192.0.2.9 is not a pod of the cluster, so no policy applies");
  });

  it("refuses unknown pods and mixed families with a ConfigError naming the side", () => {
    const ev = evaluator("no policies: everything is allowed");
    expect(() => ev.verdict({ from: "x/nope", to: "x/a", protocol: "TCP", port: 80 })).toThrow(ConfigError);
    let caught: unknown;
    try {
      ev.verdict({ from: "x/a", to: "q/zz", protocol: "TCP", port: 80 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe("to");
    expect(() => ev.verdict({ from: "fd00::1", to: "x/a", protocol: "TCP", port: 80 })).toThrow(/IPv4/);
  });

  it("formats a matrix like the upstream framework", () => {
    const m = evaluator("default-deny-ingress in x").matrix({ protocol: "TCP", port: 80 }, ["x/a", "x/b", "y/a"]);
    expect(formatMatrix(m)).toBe(["TCP/80 x/a x/b y/a", "x/a      .   X   .", "x/b      X   .   .", "y/a      X   X   ."].join("\n"));
  });
});
