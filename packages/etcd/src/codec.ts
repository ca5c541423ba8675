/**
 * Conversions between the Datastore contract's shapes and etcd's JSON gateway messages: keys and
 * values are base64 bytes, int64 fields are decimal strings (absent when zero), lease ids are
 * int64s that we show as 16 hex digits (as `etcdctl lease list` does).
 */

import type { KeyValue, LeaseId } from "@cnikit/core";

/** A key-value as etcd's gateway sends it (`mvccpb.KeyValue`); zero fields are omitted. */
export interface RawKeyValue {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

/** The response header every etcd answer carries. */
export interface RawHeader {
  cluster_id?: string;
  member_id?: string;
  revision?: string;
  raft_term?: string;
}

/** One watch event as sent by etcd (`type` absent means PUT). */
export interface RawEvent {
  type?: "PUT" | "DELETE";
  kv?: RawKeyValue;
  prev_kv?: RawKeyValue;
}

/** base64 of the UTF-8 bytes of `s`. */
export function b64(bytes: Buffer): string {
  return bytes.toString("base64");
}

/** Parses an int64 decimal string from etcd (absent = 0). Revisions stay far below 2^53. */
export function int(s: string | undefined): number {
  return s === undefined ? 0 : Number(s);
}

/**
 * The end of etcd's range for "every key starting with `prefix`" (etcd's `GetPrefixRangeEnd`):
 * the prefix with its last byte below 0xff incremented and the rest dropped; `\0` (no upper
 * bound) when every byte is 0xff or the prefix is empty.
 */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const b = prefix[i]!;
    if (b < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i] = b + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

const LEASE_HEX = /^[0-9a-f]{1,16}$/;
const INT64_MAX = (1n << 63n) - 1n;

/** An etcd lease id (int64 decimal) as a `LeaseId`: 16 lowercase hex digits. */
export function leaseToHex(dec: string): LeaseId {
  return BigInt(dec).toString(16).padStart(16, "0");
}

/**
 * A `LeaseId` as etcd's int64 decimal string, or undefined when it cannot be an etcd lease id (so
 * it names no lease: callers answer "not found").
 */
export function leaseToDec(id: LeaseId): string | undefined {
  if (!LEASE_HEX.test(id)) return undefined;
  const n = BigInt(`0x${id}`);
  if (n === 0n || n > INT64_MAX) return undefined;
  return n.toString(10);
}

/** A random positive int64 lease id (decimal): ids are chosen here so a re-sent grant is idempotent. */
export function randomLeaseDec(random: () => Buffer): string {
  const b = random();
  const n = b.readBigUInt64BE(0) & INT64_MAX;
  return (n === 0n ? 1n : n).toString(10);
}

/** Maps full etcd keys to contract keys and back for one store prefix. */
export class KeySpace {
  readonly prefix: string;
  readonly prefixBytes: Buffer;

  constructor(prefix: string) {
    this.prefix = prefix;
    this.prefixBytes = Buffer.from(prefix, "utf8");
  }

  /** The etcd key (bytes) of a contract key. */
  full(key: string): Buffer {
    return Buffer.concat([this.prefixBytes, Buffer.from(key, "utf8")]);
  }

  /** base64 of the etcd key of a contract key. */
  key64(key: string): string {
    return b64(this.full(key));
  }

  /** `{key, range_end}` (base64) covering every contract key that starts with `prefix`. */
  range(prefix: string): { key: string; range_end: string } {
    const start = this.full(prefix);
    if (start.length === 0) return { key: b64(Buffer.from([0])), range_end: b64(Buffer.from([0])) };
    return { key: b64(start), range_end: b64(prefixRangeEnd(start)) };
  }

  /** The contract key of an etcd key (base64), or undefined when it lies outside the prefix. */
  strip(key64: string | undefined): string | undefined {
    const bytes = Buffer.from(key64 ?? "", "base64");
    if (bytes.length < this.prefixBytes.length || !bytes.subarray(0, this.prefixBytes.length).equals(this.prefixBytes)) return undefined;
    return bytes.subarray(this.prefixBytes.length).toString("utf8");
  }

  /** A contract `KeyValue` from etcd's, or undefined when the key lies outside the prefix. */
  kv(raw: RawKeyValue | undefined): KeyValue | undefined {
    if (!raw) return undefined;
    const key = this.strip(raw.key);
    if (key === undefined) return undefined;
    const out: KeyValue = {
      key,
      value: raw.value === undefined ? "" : Buffer.from(raw.value, "base64").toString("utf8"),
      createRevision: int(raw.create_revision),
      modRevision: int(raw.mod_revision),
      version: int(raw.version),
    };
    if (raw.lease !== undefined && raw.lease !== "0") out.lease = leaseToHex(raw.lease);
    return out;
  }
}
