// The RFC 4271 §9.1.2 decision process, one tie-breaker per row.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RouteAttributes } from "../src/codec/update.ts";
import { selectBest } from "../src/decision.ts";
import type { Route, RouteSource } from "../src/rib.ts";

function src(address: string, options: Partial<RouteSource> = {}): RouteSource {
  return { kind: "peer", address, asn: 64512, routerId: address, ibgp: true, rrClient: false, ...options };
}

function route(name: string, attrs: Partial<RouteAttributes>, source: RouteSource, extra: Partial<Route> = {}): Route & { name: string } {
  return { name, prefix: "10.0.0.0/24", afi: 1, safi: 1, pathId: 0, attributes: { origin: 0, asPath: [], nextHop: "192.0.2.1", ...attrs }, source, receivedAt: 0, stale: false, ...extra };
}

const ctx = { defaultLocalPref: 100 };
const seq = (...asns: number[]): RouteAttributes["asPath"] => [{ type: 2, asns }];

describe("selectBest", () => {
  const rows: { rule: string; a: Route & { name: string }; b: Route & { name: string }; context?: typeof ctx & { igpCost?: (nh: string) => number | undefined } }[] = [
    { rule: "higher LOCAL_PREF", a: route("a", { localPref: 200 }, src("10.0.0.2")), b: route("b", { localPref: 100 }, src("10.0.0.1")) },
    { rule: "missing LOCAL_PREF counts as the default", a: route("a", {}, src("10.0.0.1")), b: route("b", { localPref: 99 }, src("10.0.0.2")) },
    { rule: "(a) shorter AS_PATH", a: route("a", { asPath: seq(1) }, src("10.0.0.2")), b: route("b", { asPath: seq(1, 2) }, src("10.0.0.1")) },
    { rule: "(a) an AS_SET counts as one", a: route("a", { asPath: [{ type: 1, asns: [1, 2, 3] }] }, src("10.0.0.2")), b: route("b", { asPath: seq(1, 2) }, src("10.0.0.1")) },
    { rule: "(b) lower ORIGIN", a: route("a", { origin: 0 }, src("10.0.0.2")), b: route("b", { origin: 2 }, src("10.0.0.1")) },
    { rule: "(c) lower MED from the same neighbour AS", a: route("a", { asPath: seq(7), med: 5 }, src("10.0.0.2")), b: route("b", { asPath: seq(7), med: 10 }, src("10.0.0.1")) },
    { rule: "(c) MED is not compared across neighbour ASes", a: route("a", { asPath: seq(8), med: 50 }, src("10.0.0.1")), b: route("b", { asPath: seq(7), med: 10 }, src("10.0.0.2")) },
    { rule: "(c) a missing MED is the lowest", a: route("a", { asPath: seq(7) }, src("10.0.0.2")), b: route("b", { asPath: seq(7), med: 1 }, src("10.0.0.1")) },
    { rule: "(d) eBGP over iBGP", a: route("a", { asPath: seq(7) }, src("10.0.0.2", { ibgp: false, asn: 7 })), b: route("b", { asPath: seq(7) }, src("10.0.0.1")) },
    {
      rule: "(e) lower IGP cost",
      a: route("a", { nextHop: "192.0.2.2" }, src("10.0.0.2")),
      b: route("b", { nextHop: "192.0.2.1" }, src("10.0.0.1")),
      context: { ...ctx, igpCost: (nh) => (nh === "192.0.2.2" ? 1 : 10) },
    },
    {
      rule: "unresolvable next hop is left out (§9.1.2.1)",
      a: route("a", { localPref: 1 }, src("10.0.0.2")),
      b: route("b", { nextHop: "192.0.2.99", localPref: 500 }, src("10.0.0.1")),
      context: { ...ctx, igpCost: (nh) => (nh === "192.0.2.99" ? undefined : 0) },
    },
    { rule: "(f) lower BGP Identifier", a: route("a", {}, src("10.0.0.9", { routerId: "1.1.1.1" })), b: route("b", {}, src("10.0.0.1", { routerId: "2.2.2.2" })) },
    {
      rule: "(f) ORIGINATOR_ID stands in for the Identifier (RFC 4456 §9)",
      a: route("a", { originatorId: "1.1.1.1" }, src("10.0.0.9", { routerId: "9.9.9.9" })),
      b: route("b", {}, src("10.0.0.1", { routerId: "2.2.2.2" })),
    },
    {
      rule: "(f') shorter CLUSTER_LIST",
      a: route("a", { originatorId: "1.1.1.1", clusterList: ["5.5.5.5"] }, src("10.0.0.9")),
      b: route("b", { originatorId: "1.1.1.1", clusterList: ["5.5.5.5", "6.6.6.6"] }, src("10.0.0.1")),
    },
    { rule: "(g) lower peer address", a: route("a", {}, src("10.0.0.1", { routerId: "1.1.1.1" })), b: route("b", {}, src("10.0.0.2", { routerId: "1.1.1.1" })) },
    {
      rule: "local routes win",
      a: route("a", { localPref: 1 }, { kind: "local", address: "local", asn: 64512, routerId: "10.0.0.1", ibgp: false, rrClient: false }),
      b: route("b", { localPref: 900 }, src("10.0.0.1")),
    },
    { rule: "stale routes lose", a: route("a", { localPref: 1 }, src("10.0.0.2")), b: route("b", { localPref: 900 }, src("10.0.0.1"), { stale: true }) },
    { rule: "ineligible routes are never chosen", a: route("a", { localPref: 1 }, src("10.0.0.2")), b: route("b", { localPref: 900 }, src("10.0.0.1"), { ineligible: "AS_PATH contains our AS" }) },
  ];
  it.each(rows)("$rule", ({ a, b, context }) => {
    expect((selectBest([a, b], context ?? ctx) as typeof a).name).toBe("a");
    expect((selectBest([b, a], context ?? ctx) as typeof a).name).toBe("a");
  });

  it("MED needs the set elimination of §9.1.2.2: the result does not depend on candidate order", () => {
    // A pairwise comparison would cycle here: a beats b by MED (same AS 7), b beats c by router id,
    // c beats a by router id... the RFC's round-based elimination always yields the same winner.
    const a = route("a", { asPath: seq(7), med: 0 }, src("10.0.0.3", { routerId: "3.3.3.3" }));
    const b = route("b", { asPath: seq(7), med: 10 }, src("10.0.0.1", { routerId: "1.1.1.1" }));
    const c = route("c", { asPath: seq(8), med: 5 }, src("10.0.0.2", { routerId: "2.2.2.2" }));
    fc.assert(
      fc.property(fc.shuffledSubarray([a, b, c], { minLength: 3, maxLength: 3 }), (list) => {
        expect((selectBest(list, ctx) as typeof a).name).toBe("c");
      }),
    );
  });

  it("no eligible candidate gives undefined", () => {
    expect(selectBest([], ctx)).toBeUndefined();
    expect(selectBest([route("x", {}, src("10.0.0.1"), { ineligible: "loop" })], ctx)).toBeUndefined();
  });
});
