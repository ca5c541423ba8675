import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SortedKeys } from "../src/store/sorted-keys.ts";
import { compareKeys } from "../src/store/validate.ts";

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe("compareKeys", () => {
  it.each([
    ["a", "b"],
    ["a", "ab"],
    ["", "a"],
    ["\u007e", "\u00e9"],
    ["\uffe9", "😀"], // U+FFE9 sorts before U+1F600 in UTF-8, after it in UTF-16
    ["\ud7ff", "\ue000"],
    ["😀", "😁"],
  ])("orders %j before %j like UTF-8 bytes", (a, b) => {
    expect(compareKeys(a, b)).toBeLessThan(0);
    expect(compareKeys(b, a)).toBeGreaterThan(0);
    expect(byBytes(a, b)).toBeLessThan(0);
  });

  it("agrees with UTF-8 byte order on random strings", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(byBytes(a, b)));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("SortedKeys", () => {
  it("matches a sorted-array model through adds and deletes across chunk splits and merges", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { minLength: 1, maxLength: 6000 }), fc.integer({ min: 0, max: 3000 }), (ops, probe) => {
        const set = new SortedKeys();
        const model = new Set<string>();
        const key = (n: number): string => `k/${n.toString(36)}`;
        for (const [add, n] of ops) {
          const k = key(n);
          if (add) expect(set.add(k)).toBe(!model.has(k));
          else expect(set.delete(k)).toBe(model.has(k));
          if (add) model.add(k);
          else model.delete(k);
        }
        const sorted = [...model].sort(byBytes);
        expect(set.size).toBe(model.size);
        expect(set.keys()).toEqual(sorted);
        expect(set.has(key(probe))).toBe(model.has(key(probe)));
        const prefix = key(probe).slice(0, 3);
        const got: string[] = [];
        set.forEachWithPrefix(prefix, (k) => got.push(k));
        expect(got).toEqual(sorted.filter((k) => k.startsWith(prefix)));
      }),
      { numRuns: 40 },
    );
  });

  it("orders astral and U+E000..U+FFFF keys by UTF-8 bytes across many chunks", () => {
    const unit = fc.constantFrom("a", "z", "/", "é", "\ud7ff", "\ue000", "\uffe9", "😀", "𝄞");
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.array(unit, { minLength: 1, maxLength: 7 }).map((u) => u.join("")),
          { minLength: 1500, maxLength: 3000 },
        ),
        fc.array(unit, { maxLength: 2 }),
        (keys, p) => {
          const set = new SortedKeys();
          for (const k of keys) set.add(k);
          for (const k of keys.slice(0, 300)) set.delete(k);
          const live = keys.slice(300).sort(byBytes);
          expect(set.keys()).toEqual(live);
          const prefix = p.join("");
          const got: string[] = [];
          set.forEachWithPrefix(prefix, (k) => got.push(k));
          expect(got).toEqual(live.filter((k) => k.startsWith(prefix)));
          expect(set.has(keys[0]!)).toBe(false);
          expect(set.has(keys[keys.length - 1]!)).toBe(true);
        },
      ),
      { numRuns: 15 },
    );
  });

  it("keeps order with 100 000 keys inserted in random order and half deleted", () => {
    const set = new SortedKeys();
    const keys = Array.from({ length: 100_000 }, (_, i) => `n/${((i * 7919) % 100_000).toString().padStart(6, "0")}`);
    for (const k of keys) set.add(k);
    for (let i = 0; i < 100_000; i += 2) set.delete(`n/${i.toString().padStart(6, "0")}`);
    const all = set.keys();
    expect(all).toHaveLength(50_000);
    expect(all[0]).toBe("n/000001");
    for (let i = 1; i < all.length; i++) expect(all[i - 1]! < all[i]!).toBe(true);
    const under: string[] = [];
    set.forEachWithPrefix("n/0999", (k) => under.push(k));
    expect(under).toEqual(Array.from({ length: 50 }, (_, i) => `n/0999${(2 * i + 1).toString().padStart(2, "0")}`));
  });
});
