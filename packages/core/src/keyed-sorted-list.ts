import { lowerBound, upperBound } from "./sorted-search.ts";

/**
 * A list of values kept sorted by a string key — JS `<` order, the order `canonicalDataplane`
 * sorts by (`routeOrderKey`, `neighbourOrderKey`, `fdbOrderKey`) — with equal keys in insertion
 * order. Keys and values sit in two parallel arrays (no wrapper object per entry), so a key
 * computed once can be shared by every list that holds its value.
 *
 * One change costs a binary search plus one array move (O(log n + n) with a small constant); many
 * changes at once go through `update`: one pass over the list plus a sort of the new entries
 * (O(n + m log m)) instead of m moves. Values are compared by identity (`===`) when removed.
 *
 * Used by calico's LearnedTable, an incremental planner whose output must stay exactly in
 * canonical order. (flannel's PeerTable still keeps its own keyed entries: its values are frozen
 * `{k, v}` pairs shared between agents, so a parallel key array would hold every key twice.)
 */
export class KeyedSortedList<T> {
  private ks: string[] = [];
  private vs: T[] = [];
  private snapshot: T[] | undefined;

  /** `keyOf`: the key of a value, used when a call gives none. */
  constructor(private readonly keyOf: (value: T) => string) {}

  /** Number of entries. */
  get size(): number {
    return this.vs.length;
  }

  /** Inserts `value` under `key` (default `keyOf(value)`), after the entries of an equal key. */
  add(value: T, key: string = this.keyOf(value)): void {
    const at = this.upperBound(key);
    this.ks.splice(at, 0, key);
    this.vs.splice(at, 0, value);
    this.snapshot = undefined;
  }

  /** Removes the entry holding `value` itself (`===`) under `key`; false when there is none. */
  remove(value: T, key: string = this.keyOf(value)): boolean {
    for (let i = this.lowerBound(key); i < this.ks.length && this.ks[i] === key; i++) {
      if (this.vs[i] === value) {
        this.removeAt(i);
        return true;
      }
    }
    return false;
  }

  /** Removes the first entry of `key` (the earliest inserted); returns its value, or undefined when there is none. */
  removeKey(key: string): T | undefined {
    const at = this.lowerBound(key);
    if (at >= this.ks.length || this.ks[at] !== key) return undefined;
    const value = this.vs[at];
    this.removeAt(at);
    return value;
  }

  /**
   * Many changes at once: drops the entries whose value is in `removed` (by identity) or whose key
   * is in `removedKeys` (every entry of such a key), then merges `added` in (with `addedKeys`, the
   * keys of `added` by index; default `keyOf`), each after the entries of an equal key already
   * there and in the order given among themselves — the result of removing and adding one by one.
   * Throws a RangeError when `addedKeys` and `added` differ in length.
   */
  update(change: { added?: readonly T[]; addedKeys?: readonly string[]; removed?: ReadonlySet<T>; removedKeys?: ReadonlySet<string> }): void {
    const added = change.added ?? [];
    const addedKeys = change.addedKeys ?? added.map((v) => this.keyOf(v));
    if (addedKeys.length !== added.length) throw new RangeError(`KeyedSortedList.update: addedKeys has ${addedKeys.length} keys for ${added.length} added values`);
    const { removed, removedKeys } = change;
    let ks = this.ks;
    let vs = this.vs;
    if ((removed && removed.size > 0) || (removedKeys && removedKeys.size > 0)) {
      const keptKs: string[] = [];
      const keptVs: T[] = [];
      for (let i = 0; i < vs.length; i++) {
        if (removed?.has(vs[i]!) || removedKeys?.has(ks[i]!)) continue;
        keptKs.push(ks[i]!);
        keptVs.push(vs[i]!);
      }
      ks = keptKs;
      vs = keptVs;
    }
    if (added.length > 0) {
      const order = sortedOrder(addedKeys);
      const outKs = new Array<string>(ks.length + added.length);
      const outVs = new Array<T>(ks.length + added.length);
      let i = 0;
      let j = 0;
      let o = 0;
      while (i < ks.length && j < order.length) {
        const b = order[j]!;
        if (addedKeys[b]! < ks[i]!) {
          outKs[o] = addedKeys[b]!;
          outVs[o++] = added[b]!;
          j++;
        } else {
          outKs[o] = ks[i]!;
          outVs[o++] = vs[i++]!;
        }
      }
      for (; i < ks.length; i++, o++) {
        outKs[o] = ks[i]!;
        outVs[o] = vs[i]!;
      }
      for (; j < order.length; j++, o++) {
        outKs[o] = addedKeys[order[j]!]!;
        outVs[o] = added[order[j]!]!;
      }
      ks = outKs;
      vs = outVs;
    }
    if (ks !== this.ks) {
      this.ks = ks;
      this.vs = vs;
      this.snapshot = undefined;
    }
  }

  /** Replaces the contents (`keys` by index, default `keyOf`): one stable sort. Throws a RangeError when the lengths differ. */
  reset(values: readonly T[], keys?: readonly string[]): void {
    if (keys && keys.length !== values.length) throw new RangeError(`KeyedSortedList.reset: ${keys.length} keys for ${values.length} values`);
    this.ks = [];
    this.vs = [];
    this.snapshot = undefined;
    this.update({ added: values, ...(keys ? { addedKeys: keys } : {}) });
  }

  /** Empties the list. */
  clear(): void {
    this.ks = [];
    this.vs = [];
    this.snapshot = undefined;
  }

  /** The values in order: the same array until the list changes (never mutated once returned). */
  values(): T[] {
    this.snapshot ??= [...this.vs];
    return this.snapshot;
  }

  /** The live values and keys, in order: read them before the list changes again, and keep neither. */
  view(): { values: readonly T[]; keys: readonly string[] } {
    return { values: this.vs, keys: this.ks };
  }

  /** Index of the first entry whose key is not below `key`. */
  lowerBound(key: string): number {
    return lowerBound(this.ks, key);
  }

  /** Index of the first entry whose key is above `key`. */
  upperBound(key: string): number {
    return upperBound(this.ks, key);
  }

  private removeAt(at: number): void {
    this.ks.splice(at, 1);
    this.vs.splice(at, 1);
    this.snapshot = undefined;
  }
}

/** Indices of `keys` in key order, equal keys by index (a stable sort). */
function sortedOrder(keys: readonly string[]): number[] {
  const order = Array.from({ length: keys.length }, (_, i) => i);
  let sorted = true;
  for (let i = 1; i < keys.length && sorted; i++) if (keys[i]! < keys[i - 1]!) sorted = false;
  if (!sorted) order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : a - b));
  return order;
}
