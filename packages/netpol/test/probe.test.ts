// The evaluator's probe input: protocol exactly "TCP", "UDP" or "SCTP" (NetworkPolicy's spelling),
// port an integer 1..65535. Anything else is refused with a ConfigError (code 7) naming the field,
// in verdict(), matrix() and portMatches() alike; everything inside the bounds is answered.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PolicyEvaluator, parsePolicies, portMatches, type PolicyPort } from "../src/index.ts";
import { e2eCluster } from "./e2e-model.ts";

const ALLOW_TCP_80 = parsePolicies(
  `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec: {podSelector: {}, ingress: [{ports: [{protocol: TCP, port: 80}]}]}\n`,
);
const ev = new PolicyEvaluator({ ...e2eCluster(), policies: ALLOW_TCP_80 });
const PROTOCOLS = ["TCP", "UDP", "SCTP"] as const;

/** The error `fn` throws, as a plain record (duck-typed: code, name, field, rule). */
function refusal(fn: () => unknown): { code: unknown; name: unknown; field: unknown; rule: string } {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: unknown; name?: unknown; field?: unknown; rule?: unknown };
    return { code: e.code, name: e.name, field: e.field, rule: String(e.rule) };
  }
  throw new Error("expected a refusal, got an answer");
}

const notAProtocol = fc.oneof(
  fc.string().filter((s) => !(PROTOCOLS as readonly string[]).includes(s)),
  fc.constantFrom("tcp", "Tcp", "udp", "sctp", "TCPX", " TCP", "TCP ", "ICMP", ""),
  fc.constantFrom(null, undefined, 6, true),
);
const outOfRange = fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 65536 }), fc.constantFrom(0, 65536, 70000, -1));
const notAnInteger = fc.oneof(
  fc.double({ min: 1, max: 65535, noNaN: true }).filter((n) => !Number.isInteger(n)),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, "80", null, undefined, 80n),
);

describe("verdict(): protocol and port are checked", () => {
  it("refuses every protocol that is not exactly TCP, UDP or SCTP, naming the field", () => {
    fc.assert(
      fc.property(notAProtocol, (protocol) => {
        const r = refusal(() => ev.verdict({ from: "y/a", to: "x/a", protocol: protocol as "TCP", port: 80 }));
        expect(r).toMatchObject({ code: 7, name: "ConfigError", field: "protocol" });
        expect(r.rule).toContain('supported values: "SCTP", "TCP", "UDP"');
      }),
    );
  });

  it("names the upper-case spelling when only the case is wrong", () => {
    expect(refusal(() => ev.verdict({ from: "y/a", to: "x/a", protocol: "tcp" as "TCP", port: 80 })).rule).toContain('upper case: "TCP"');
    expect(refusal(() => ev.verdict({ from: "y/a", to: "x/a", protocol: "Sctp" as "SCTP", port: 80 })).rule).toContain('upper case: "SCTP"');
    expect(refusal(() => ev.verdict({ from: "y/a", to: "x/a", protocol: "TCPX" as "TCP", port: 80 })).rule).not.toContain("upper case");
  });

  it("refuses ports outside 1..65535 and non-integers, naming the field", () => {
    fc.assert(
      fc.property(fc.oneof(outOfRange, notAnInteger), fc.constantFrom(...PROTOCOLS), (port, protocol) => {
        const r = refusal(() => ev.verdict({ from: "y/a", to: "x/a", protocol, port: port as number }));
        expect(r).toMatchObject({ code: 7, name: "ConfigError", field: "port" });
        expect(r.rule).toContain("must be between 1 and 65535, inclusive");
      }),
    );
  });

  it("answers every protocol and every port 1..65535 (boundaries included)", () => {
    fc.assert(
      fc.property(fc.constantFrom(...PROTOCOLS), fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom(1, 65535)), (protocol, port) => {
        const v = ev.verdict({ from: "y/a", to: "x/a", protocol, port });
        expect(v.probe).toEqual({ protocol, port });
        expect(v.allowed).toBe(protocol === "TCP" && port === 80);
      }),
    );
  });
});

describe("matrix() and portMatches() check their probe too", () => {
  it("matrix names probe.protocol and probe.port", () => {
    expect(refusal(() => ev.matrix({ protocol: "tcp" as "TCP", port: 80 }))).toMatchObject({ code: 7, field: "probe.protocol" });
    expect(refusal(() => ev.matrix({ protocol: "UDP", port: 70000 }))).toMatchObject({ code: 7, field: "probe.port" });
    expect(ev.matrix({ protocol: "TCP", port: 65535 }, ["y/a", "x/a"]).allowed).toEqual([
      [true, false],
      [true, true],
    ]);
  });

  it("portMatches refuses a bad probe instead of answering false", () => {
    const entry: PolicyPort = { protocol: "TCP", port: 80 };
    fc.assert(
      fc.property(notAProtocol, (protocol) => {
        expect(refusal(() => portMatches(entry, { protocol: protocol as "TCP", port: 80 }, undefined))).toMatchObject({ code: 7, field: "probe.protocol" });
      }),
    );
    fc.assert(
      fc.property(outOfRange, (port) => {
        expect(refusal(() => portMatches(entry, { protocol: "TCP", port }, undefined))).toMatchObject({ code: 7, field: "probe.port" });
      }),
    );
    expect(portMatches(entry, { protocol: "TCP", port: 80 }, undefined)).toBe(true);
    expect(portMatches({ protocol: "TCP", port: 1, endPort: 65535 }, { protocol: "TCP", port: 65535 }, undefined)).toBe(true);
  });
});
