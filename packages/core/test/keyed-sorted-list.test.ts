import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KeyedSortedList } from "../src/index.ts";

/** A value: its key and an id (values are told apart by identity, as the list does). */
interface Item {
  k: string;
  id: number;
}

type Op =
  | { op: "add"; k: string }
  | { op: "remove"; pick: number }
  | { op: "removeKey"; k: string }
  | { op: "update"; added: string[]; removed: number[]; removedKeys: string[] }
  | { op: "reset"; keys: string[] };

// Few distinct keys (many ties) over a small alphabet, with prefixes of each other ("a" < "ab").
const key = fc.constantFrom("", "a", "ab", "b", "ba", "c", "é", "\u{1f600}");
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("add" as const), k: key }),
  fc.record({ op: fc.constant("remove" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("removeKey" as const), k: key }),
  fc.record({ op: fc.constant("update" as const), added: fc.array(key, { maxLength: 6 }), removed: fc.array(fc.nat(), { maxLength: 3 }), removedKeys: fc.array(key, { maxLength: 2 }) }),
  fc.record({ op: fc.constant("reset" as const), keys: fc.array(key, { maxLength: 6 }) }),
);

/** The naive model: entries in insertion order; the list's order is a stable sort by key with `<`. */
function expected(model: readonly Item[]): Item[] {
  return [...model].sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
}

describe("KeyedSortedList", () => {
  it("holds what a stable sort by key of the inserted values holds, after any sequence of changes", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), fc.boolean(), (ops, explicitKeys) => {
        const list = new KeyedSortedList<Item>((v) => v.k);
        let model: Item[] = [];
        let next = 0;
        const make = (k: string): Item => ({ k, id: next++ });
        for (const o of ops) {
          if (o.op === "add") {
            const v = make(o.k);
            if (explicitKeys) list.add(v, v.k);
            else list.add(v);
            model.push(v);
          } else if (o.op === "remove") {
            const v = model[o.pick % Math.max(1, model.length)];
            if (v === undefined) {
              expect(list.remove(make("a"))).toBe(false);
              continue;
            }
            expect(list.remove(v)).toBe(true);
            expect(list.remove(v)).toBe(false);
            model = model.filter((x) => x !== v);
          } else if (o.op === "removeKey") {
            const first = expected(model).find((x) => x.k === o.k);
            expect(list.removeKey(o.k)).toBe(first);
            model = model.filter((x) => x !== first);
          } else if (o.op === "update") {
            const removed = new Set(o.removed.map((i) => model[i % Math.max(1, model.length)]).filter((x): x is Item => x !== undefined));
            const removedKeys = new Set(o.removedKeys);
            const added = o.added.map(make);
            list.update({ added, ...(explicitKeys ? { addedKeys: added.map((v) => v.k) } : {}), removed, removedKeys });
            model = [...model.filter((x) => !removed.has(x) && !removedKeys.has(x.k)), ...added];
          } else {
            const values = o.keys.map(make);
            list.reset(values, explicitKeys ? values.map((v) => v.k) : undefined);
            model = values;
          }
          const want = expected(model);
          expect(list.size).toBe(want.length);
          expect(list.values()).toEqual(want);
          expect(list.view().keys).toEqual(want.map((v) => v.k));
        }
      }),
    );
  });

  it("hands out the same values array until the list changes, and never mutates it", () => {
    const list = new KeyedSortedList<string>((v) => v);
    list.reset(["b", "a"]);
    const first = list.values();
    expect(list.values()).toBe(first);
    list.update({});
    expect(list.values()).toBe(first);
    list.add("c");
    expect(first).toEqual(["a", "b"]);
    expect(list.values()).toEqual(["a", "b", "c"]);
    expect(list.values()).not.toBe(first);
  });

  it("finds bounds by key", () => {
    const list = new KeyedSortedList<string>((v) => v);
    list.reset(["a", "b", "b", "c"]);
    expect([list.lowerBound("b"), list.upperBound("b"), list.lowerBound("bb"), list.upperBound("z"), list.lowerBound("")]).toEqual([1, 3, 3, 4, 0]);
  });

  it("refuses keys that do not match the values added", () => {
    const list = new KeyedSortedList<string>((v) => v);
    expect(() => list.update({ added: ["a", "b"], addedKeys: ["a"] })).toThrow(/addedKeys has 1 keys for 2 added values/);
    list.reset(["z"]);
    expect(() => list.reset(["a"], [])).toThrow(/1 values/);
    expect(list.values()).toEqual(["z"]);
  });
});
