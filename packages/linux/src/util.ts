/**
 * Small pure helpers shared by the renderer: a stable hash, MAC derivation, a reader for the
 * concatenated JSON values `ip -j -batch` prints (interval arithmetic for nft sets is in core).
 */

import { fnv1a32Hex } from "@cnikit/core";

/** FNV-1a 32-bit over a string, as 8 hex digits (core's `fnv1a32Hex`). Stable across processes and versions. */
export const hash32 = fnv1a32Hex;

/**
 * A locally administered unicast MAC derived from `text` (`02:` + 5 bytes of hashes): the same
 * text always gives the same MAC, so a link or veth recreated after a restart keeps its address and
 * neighbours' ARP caches stay valid.
 */
export function deriveMac(text: string): string {
  const a = hash32(text);
  const b = hash32(`${text}/mac`);
  const hex = `${a}${b.slice(0, 2)}`;
  return `02:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}:${hex.slice(6, 8)}:${hex.slice(8, 10)}`;
}

/** Lower-case, colon-separated form of a MAC, or undefined when `text` is not a 6-byte MAC. */
export function normalizeMac(text: string): string | undefined {
  const m = /^([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})[:-]([0-9a-fA-F]{1,2})$/.exec(text);
  if (!m) return undefined;
  return m
    .slice(1)
    .map((x) => x.toLowerCase().padStart(2, "0"))
    .join(":");
}

/**
 * Splits text holding several JSON values one after another (what `ip -j -batch -` prints: one
 * array per command) into the parsed values, in order.
 * @throws SyntaxError when a value is not valid JSON.
 */
export function parseJsonValues(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      if (depth === 0 && start < 0) start = i;
    } else if (c === "[" || c === "{") {
      if (depth === 0) start = i;
      depth++;
    } else if (c === "]" || c === "}") {
      depth--;
      if (depth === 0 && start >= 0) {
        out.push(JSON.parse(text.slice(start, i + 1)));
        start = -1;
      }
    }
  }
  return out;
}

// Address intervals (mergeIntervals, subtractIntervals, intervalText) live in @cnikit/core.
export { intervalText, mergeIntervals, subtractIntervals, type Interval } from "@cnikit/core";

/** Sorted copy by a string key compared with `<` (locale-independent). */
export function sortByKey<T>(items: Iterable<T>, key: (x: T) => string): T[] {
  return [...items]
    .map((v) => ({ k: key(v), v }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map((x) => x.v);
}
