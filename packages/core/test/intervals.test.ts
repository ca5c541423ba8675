import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Prefix, intervalText, mergeIntervals, subtractIntervals } from "../src/index.ts";

const members = (ivs: readonly (readonly [bigint, bigint])[]) => {
  const out = new Set<number>();
  for (const [a, b] of ivs) for (let v = a; v <= b; v++) out.add(Number(v));
  return out;
};
const iv = fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 })).map(([a, n]) => [BigInt(a), BigInt(a + n)] as const);

describe("address intervals", () => {
  it("merge keeps exactly the union, sorted, disjoint and non-adjacent", () => {
    fc.assert(
      fc.property(fc.array(iv, { maxLength: 8 }), (list) => {
        const merged = mergeIntervals(list);
        expect(members(merged)).toEqual(members(list));
        for (let i = 1; i < merged.length; i++) expect(merged[i]![0]).toBeGreaterThan(merged[i - 1]![1] + 1n);
      }),
    );
  });

  it("subtract leaves exactly [lo, hi] minus the cut", () => {
    fc.assert(
      fc.property(iv, fc.array(iv, { maxLength: 6 }), ([lo, hi], cut) => {
        const merged = mergeIntervals(cut);
        const left = members(subtractIntervals(lo, hi, merged));
        const want = new Set([...members([[lo, hi]])].filter((v) => !members(merged).has(v)));
        expect(left).toEqual(want);
      }),
    );
  });

  it("text is an address, an aligned prefix, or a range", () => {
    const p = Prefix.parse("10.0.0.0/24");
    expect(intervalText(p.base, p.base, 4)).toBe("10.0.0.0");
    expect(intervalText(p.base, p.last, 4)).toBe("10.0.0.0/24");
    expect(intervalText(p.base + 1n, p.base + 2n, 4)).toBe("10.0.0.1-10.0.0.2");
    const v6 = Prefix.parse("fd00::/64");
    expect(intervalText(v6.base, v6.last, 6)).toBe("fd00::/64");
  });
});
