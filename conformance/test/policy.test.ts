// policy.matrix's probes around port ranges (the variants they exist for are judged in
// @cnikit/conformance-selftest's policy-variants.test.ts).
import { describe, expect, it } from "vitest";
import { parsePolicyObject } from "@cnikit/netpol";
import { POLICY_PROBES, probesFor } from "../src/checks/policy.ts";

function policy(ports: Record<string, unknown>[]) {
  return parsePolicyObject({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { namespace: "x", name: "p" }, spec: { podSelector: {}, ingress: [{ ports }] } }, "test");
}

describe("policy.matrix probes", () => {
  it("probes TCP and UDP 80 and 81 when no policy names a range", () => {
    expect(probesFor([])).toEqual([...POLICY_PROBES]);
    expect(probesFor([policy([{ port: 81 }, { port: "serve-80-tcp" }])])).toEqual([...POLICY_PROBES]);
  });

  it("adds, for every range, a port past its first, its last port and the port just past it, once each", () => {
    const probes = probesFor([
      policy([
        { port: 81, endPort: 90 },
        { protocol: "UDP", port: 1000, endPort: 1001 },
        { port: 81, endPort: 90 },
      ]),
    ]);
    expect(probes.slice(POLICY_PROBES.length)).toEqual([
      { protocol: "TCP", port: 82 },
      { protocol: "TCP", port: 90 },
      { protocol: "TCP", port: 91 },
      { protocol: "UDP", port: 1001 },
      { protocol: "UDP", port: 1002 },
    ]);
  });

  it("leaves out what the simulator cannot probe: SCTP, ports past 65535", () => {
    const probes = probesFor([
      policy([
        { protocol: "SCTP", port: 81, endPort: 90 },
        { port: 65534, endPort: 65535 },
      ]),
    ]);
    expect(probes.slice(POLICY_PROBES.length)).toEqual([{ protocol: "TCP", port: 65535 }]);
  });
});
