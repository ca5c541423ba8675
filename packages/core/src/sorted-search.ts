/**
 * Binary searches over an array of strings sorted in JS `<` order: the one definition for core's
 * sorted structures (the store's `SortedKeys`, `KeyedSortedList`).
 */

/** Index of the first element of sorted `arr` that is not below `key` (`arr.length` when none). */
export function lowerBound(arr: readonly string[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first element of sorted `arr` that is above `key` (`arr.length` when none). */
export function upperBound(arr: readonly string[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid]! <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
