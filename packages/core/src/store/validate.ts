/**
 * Input rules shared by every Datastore implementation (memory, file, etcd), so they refuse the
 * same keys, values and TTLs with the same `ConfigError`.
 */

import type { TxnCompare, TxnOp } from "../datastore.ts";
import { ConfigError } from "../errors.ts";

/** Longest key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
/** Largest value, in UTF-8 bytes: 1.5 MiB, etcd's default request limit. */
export const MAX_VALUE_BYTES = 1.5 * 1024 * 1024;
/** Longest lease TTL in seconds (etcd's `MaxLeaseTTL`). */
export const MAX_TTL_SECONDS = 9_000_000_000;

// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex -- matching control characters is what this is for
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function wellFormed(s: string): boolean {
  const native = (s as unknown as { isWellFormed?: () => boolean }).isWellFormed;
  return native ? native.call(s) : !LONE_SURROGATE.test(s);
}

/** UTF-8 length of `s`, computed only when the cheap bound (3 bytes per UTF-16 unit) is exceeded. */
function exceedsBytes(s: string, max: number): boolean {
  if (s.length * 3 <= max) return false;
  return Buffer.byteLength(s, "utf8") > max;
}

/**
 * Checks a key: a non-empty string of at most 1024 UTF-8 bytes, well-formed Unicode, no control
 * characters. Throws `ConfigError` naming `field` (default `key`) and the broken rule.
 */
export function validateKey(key: unknown, field = "key"): asserts key is string {
  if (typeof key !== "string") throw new ConfigError({ field, rule: "must be a string", value: typeof key });
  if (key.length === 0) throw new ConfigError({ field, rule: "must not be empty" });
  if (exceedsBytes(key, MAX_KEY_BYTES)) {
    throw new ConfigError({ field, rule: `must be at most ${MAX_KEY_BYTES} bytes (UTF-8)`, value: `${Buffer.byteLength(key)} bytes` });
  }
  if (CONTROL.test(key)) throw new ConfigError({ field, rule: "must not contain control characters", value: key });
  if (!wellFormed(key)) throw new ConfigError({ field, rule: "must be well-formed Unicode (no lone surrogates)", value: key });
}

/**
 * Checks a prefix for `list`/`watch`: like a key, but may be empty (= every key).
 * Throws `ConfigError` naming `prefix`.
 */
export function validatePrefix(prefix: unknown, field = "prefix"): asserts prefix is string {
  if (typeof prefix !== "string") throw new ConfigError({ field, rule: "must be a string", value: typeof prefix });
  if (prefix.length > 0) validateKey(prefix, field);
}

/**
 * Checks a value: a string of at most 1.5 MiB (UTF-8), well-formed Unicode.
 * Throws `ConfigError` naming `field` (default `value`).
 */
export function validateValue(value: unknown, field = "value"): asserts value is string {
  if (typeof value !== "string") throw new ConfigError({ field, rule: "must be a string", value: typeof value });
  if (exceedsBytes(value, MAX_VALUE_BYTES)) {
    throw new ConfigError({
      field,
      rule: `must be at most ${MAX_VALUE_BYTES} bytes (1.5 MiB, UTF-8)`,
      value: `${Buffer.byteLength(value)} bytes`,
    });
  }
  if (!wellFormed(value)) throw new ConfigError({ field, rule: "must be well-formed Unicode (no lone surrogates)" });
}

/** Checks a lease TTL: an integer from 1 to 9e9 seconds. Throws `ConfigError` naming `ttlSeconds`. */
export function validateTtl(ttlSeconds: unknown, field = "ttlSeconds"): asserts ttlSeconds is number {
  if (typeof ttlSeconds !== "number" || !Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
    throw new ConfigError({ field, rule: `must be an integer from 1 to ${MAX_TTL_SECONDS} (seconds)`, value: ttlSeconds });
  }
}

/** Checks a revision argument (`ifRevision`, `modRevision`, `fromRevision`): an integer >= 0. */
export function validateRevision(revision: unknown, field: string): asserts revision is number {
  if (typeof revision !== "number" || !Number.isSafeInteger(revision) || revision < 0) {
    throw new ConfigError({ field, rule: "must be an integer >= 0", value: revision });
  }
}

/** Checks a lease id argument: a non-empty string. Throws `ConfigError` naming `field` (default `lease`). */
export function validateLeaseId(lease: unknown, field = "lease"): asserts lease is string {
  if (typeof lease !== "string" || lease.length === 0 || lease.length > 64) {
    throw new ConfigError({ field, rule: "must be a lease id (a non-empty string from grantLease)", value: lease });
  }
}

/**
 * Orders keys the way etcd does: byte-wise on their UTF-8 encoding (= code point order). Plain
 * `<` on JS strings compares UTF-16 units, which puts U+E000..U+FFFF after astral characters.
 */
export function compareKeys(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

/** Validates a transaction's compares and ops (fields named like `success[1].key`). */
export function validateTxn(compares: readonly TxnCompare[], success: readonly TxnOp[]): void {
  if (!Array.isArray(compares)) throw new ConfigError({ field: "compares", rule: "must be an array" });
  if (!Array.isArray(success)) throw new ConfigError({ field: "success", rule: "must be an array" });
  compares.forEach((c, i) => {
    validateKey(c?.key, `compares[${i}].key`);
    validateRevision(c.modRevision, `compares[${i}].modRevision`);
  });
  const seen = new Set<string>();
  success.forEach((op, i) => {
    validateKey(op?.key, `success[${i}].key`);
    if (seen.has(op.key)) {
      throw new ConfigError({ field: `success[${i}].key`, rule: "a key may appear only once among a transaction's operations", value: op.key });
    }
    seen.add(op.key);
    if (op.op === "put") {
      validateValue(op.value, `success[${i}].value`);
      if (op.lease !== undefined) validateLeaseId(op.lease, `success[${i}].lease`);
    } else if (op.op !== "delete") {
      throw new ConfigError({ field: `success[${i}].op`, rule: 'must be "put" or "delete"', value: (op as { op: unknown }).op });
    }
  });
}
