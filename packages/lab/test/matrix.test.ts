import { describe, expect, it } from "vitest";
import { buildMatrix, formatMatrix, judgeCell, probedPair, type MatrixCell, type MatrixEndpoint } from "../src/index.ts";

const ok = (seen?: string) => ({ ok: true, ...(seen !== undefined ? { seen } : {}) });
const bad = { ok: false, error: "timeout" };

function cell(over: Partial<MatrixCell>): MatrixCell {
  return { from: "a", to: "b", expected: true, noNat: true, results: { tcp: ok("10.244.1.2"), udp: ok("10.244.1.2"), ping: ok() }, ...over };
}

describe("judgeCell", () => {
  const cases: [string, MatrixCell, string[]][] = [
    ["all reached, sender seen", cell({}), []],
    ["tcp unreachable", cell({ results: { tcp: bad, udp: ok("10.244.1.2"), ping: ok() } }), ["tcp:unreachable"]],
    ["udp NAT'ed", cell({ results: { tcp: ok("10.244.1.2"), udp: ok("198.51.100.10"), ping: ok() } }), ["udp:nat"]],
    ["NAT allowed node to pod", cell({ noNat: false, results: { tcp: ok("198.51.100.10"), udp: ok("198.51.100.10"), ping: ok() } }), []],
    ["unreachable but not expected", cell({ expected: false, results: { tcp: bad, udp: bad, ping: bad } }), []],
    ["everything down", cell({ results: { tcp: bad, udp: bad, ping: bad } }), ["tcp:unreachable", "udp:unreachable", "ping:unreachable"]],
  ];
  it.each(cases)("%s", (_label, c, want) => {
    expect(judgeCell(c, "10.244.1.2").map((f) => `${f.proto}:${f.kind}`)).toEqual(want);
  });
});

describe("probedPair", () => {
  const pod: MatrixEndpoint = { name: "p", kind: "pod", address: "10.244.0.2" };
  const pod2: MatrixEndpoint = { name: "q", kind: "pod", address: "10.244.0.3" };
  const node: MatrixEndpoint = { name: "n", kind: "node", address: "198.51.100.10" };
  const node2: MatrixEndpoint = { name: "m", kind: "node", address: "198.51.100.11" };
  it.each([
    [pod, pod2, true],
    [pod, pod, false],
    [node, pod, true],
    [pod, node, true],
    [node, node2, false],
  ] as const)("%o → %o: %s", (a, b, want) => {
    expect(probedPair(a, b)).toBe(want);
  });
});

describe("buildMatrix and formatMatrix", () => {
  const sources: MatrixEndpoint[] = [
    { name: "pod-1-1", kind: "pod", address: "10.244.1.2" },
    { name: "pod-2-1", kind: "pod", address: "10.244.2.2" },
  ];
  it("is ok when every expected pair reached without NAT, and prints ✓ per protocol", () => {
    const cells = [
      [undefined, cell({ from: "pod-1-1", to: "pod-2-1" })],
      [cell({ from: "pod-2-1", to: "pod-1-1", results: { tcp: ok("10.244.2.2"), udp: ok("10.244.2.2"), ping: ok() } }), undefined],
    ];
    const m = buildMatrix({ sources, destinations: sources, cells });
    expect(m.ok).toBe(true);
    const text = formatMatrix(m);
    expect(text).toContain("✓✓✓");
    expect(text).toMatch(/^OK: 2 pairs × 3 protocols = 6 probes, 6 reached/m);
  });
  it("fails and lists the pair when one protocol did not reach", () => {
    const cells = [
      [undefined, cell({ from: "pod-1-1", to: "pod-2-1", results: { tcp: ok("10.244.1.2"), udp: bad, ping: ok() } })],
      [undefined, undefined],
    ];
    const m = buildMatrix({ sources, destinations: sources, cells });
    expect(m.ok).toBe(false);
    expect(m.failures).toEqual([{ from: "pod-1-1", to: "pod-2-1", proto: "udp", kind: "unreachable", detail: "timeout" }]);
    const text = formatMatrix(m);
    expect(text).toContain("✓✗✓");
    expect(text).toContain("pod-1-1 → pod-2-1: udp unreachable (timeout)");
    expect(text).toMatch(/^FAILED:/m);
  });
  it("fails on egress seen from the wrong source", () => {
    const m = buildMatrix({
      sources,
      destinations: sources,
      cells: [
        [undefined, undefined],
        [undefined, undefined],
      ],
      egress: [{ pod: "pod-1-1", external: "internet", expectedSource: "198.51.100.10", result: ok("10.244.1.2"), ok: false }],
    });
    expect(m.ok).toBe(false);
    expect(formatMatrix(m)).toContain("✗ pod-1-1 → internet: seen as 10.244.1.2, expected 198.51.100.10");
  });
  it("marks protocols that were not asked with -", () => {
    const cells = [
      [undefined, cell({ from: "pod-1-1", to: "pod-2-1", results: { tcp: ok("10.244.1.2") } })],
      [undefined, undefined],
    ];
    const m = buildMatrix({ sources, destinations: sources, cells });
    expect(m.ok).toBe(true);
    const text = formatMatrix(m);
    expect(text).toContain("✓--");
    expect(text).toMatch(/^OK: 1 pairs × 1 protocol = 1 probes, 1 reached/m);
  });
});
