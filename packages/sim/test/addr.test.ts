/**
 * The interval map's `partition` (which searches forward from where its last step ended) must
 * split a sorted run exactly where the run crosses an interval start — no more, no fewer — and
 * give each piece the value a per-address lookup gives, on random prefix sets and random sorted
 * runs, in both families — for IPv4 also with the run given as numbers (`numbersOf`), where it
 * searches doubles instead of bigints.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IntervalMap, addr, fmt, numbersOf, range, type Range } from "../src/addr.ts";

/** The runs one address at a time: a new run wherever an interval start lies in (previous, this]. */
function naiveRuns<T>(map: IntervalMap<T>, addrs: bigint[], i: number, j: number): [number, number, T | undefined][] {
  const { starts, values } = map as unknown as { starts: bigint[]; values: (T | undefined)[] };
  // the value of the last interval start <= the address, by a linear scan over the bigints
  const valueAt = (v: bigint): T | undefined => values[starts.filter((s) => s <= v).length - 1];
  const out: [number, number, T | undefined][] = [];
  for (let k = i; k < j; k++) {
    const last = out[out.length - 1];
    const crosses = k > i && starts.some((s) => s > addrs[k - 1]! && s <= addrs[k]!);
    if (last && !crosses) last[1] = k + 1;
    else out.push([k, k + 1, valueAt(addrs[k]!)]);
    expect(map.lookup(addrs[k]!)).toBe(valueAt(addrs[k]!));
  }
  return out;
}

function prefixOf(family: 4 | 6, value: bigint, length: number): Range {
  const bits = family === 4 ? 32 : 128;
  const host = (1n << BigInt(bits - length)) - 1n;
  return range(`${fmt(value & ~host, family)}/${length}`);
}

describe("IntervalMap.partition", () => {
  it("splits a sorted run exactly where it crosses an interval start (random prefixes, random runs)", () => {
    let splits = 0;
    let routed = 0;
    fc.assert(
      fc.property(
        fc.constantFrom<4 | 6>(4, 6),
        fc.array(fc.tuple(fc.bigInt({ min: 0n, max: (1n << 16n) - 1n }), fc.integer({ min: 4, max: 16 })), { minLength: 5, maxLength: 40 }),
        fc.array(fc.bigInt({ min: 0n, max: (1n << 16n) - 1n }), { minLength: 50, maxLength: 200 }),
        fc.nat(),
        fc.nat(),
        (family, prefixes, values, a, b) => {
          // addresses in one /112 (v6) or /16 (v4) so that prefixes and addresses meet often
          const base = family === 4 ? addr("10.20.0.0").value : addr("fd00::").value;
          const hostBits = family === 4 ? 32 : 128;
          const entries = new Map<string, { range: Range; value: number }>();
          prefixes.forEach(([v, len], n) => {
            const r = prefixOf(family, base + v, hostBits - 16 + len);
            entries.set(r.text, { range: r, value: n });
          });
          const map = IntervalMap.build(family, [...entries.values()]);
          const addrs = [...new Set(values.map((v) => base + v))].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
          const i = a % addrs.length;
          const j = i + 1 + (b % (addrs.length - i));
          const got: [number, number, number | undefined][] = [];
          map.partition(addrs, i, j, (s, e, v) => got.push([s, e, v]));
          expect(got).toEqual(naiveRuns(map, addrs, i, j));
          if (family === 4) {
            const numeric: [number, number, number | undefined][] = [];
            map.partition(addrs, i, j, (s, e, v) => numeric.push([s, e, v]), numbersOf(addrs));
            expect(numeric).toEqual(got);
          }
          splits += got.length;
          routed += got.filter((g) => g[2] !== undefined).length;
        },
      ),
      { numRuns: 300, seed: 19 },
    );
    expect(splits).toBeGreaterThan(800);
    expect(routed).toBeGreaterThan(200);
  });
});
