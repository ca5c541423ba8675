/**
 * The Datastore contract: shared cluster state with etcd v3 semantics, so that the in-memory, file
 * and etcd implementations behave alike and one shared test suite runs against all of them.
 *
 * Semantics (as etcd v3):
 *  - One cluster-wide `revision` counter, bumped by every successful write (put, delete that
 *    deleted something, txn with writes). A key remembers `createRevision` (revision of the write
 *    that created it), `modRevision` (revision of its last write) and `version` (writes since
 *    creation, 1 after create).
 *  - Compare-and-swap: `put(k, v, {ifRevision: r})` succeeds only when the key's `modRevision`
 *    equals `r`; `ifRevision: 0` means "only if the key does not exist". On mismatch nothing is
 *    written and a `ConflictError` (code 102) is thrown.
 *  - Leases: `grantLease(ttl)` returns an id; keys put with `{lease}` are deleted (one delete event
 *    each) when the lease expires on the store's clock or is revoked. `keepAlive` restarts the TTL.
 *  - Watch: events for keys under a prefix, in revision order, starting after `fromRevision` (so
 *    `list()` then `watch({fromRevision: list.revision})` misses nothing and repeats nothing).
 *    A start revision older than what the store keeps throws `CompactedError` (code 105).
 *  - Availability: an unavailable store throws `TryAgainError` (code 11) and writes nothing.
 *
 * Keys are non-empty strings of at most 1024 bytes of printable characters (no control
 * characters); values are strings (JSON by convention) of at most 1.5 MiB (etcd's default request
 * limit). Bad keys and values are refused with `ConfigError` naming `key` / `value` and the rule.
 */

export type LeaseId = string;

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** The lease the key is attached to, if any. */
  lease?: LeaseId;
}

export interface PutOptions {
  /** CAS: the key's current modRevision must equal this; 0 = the key must not exist. */
  ifRevision?: number;
  /** Attach the key to this lease (it is deleted when the lease ends). */
  lease?: LeaseId;
}

export interface DeleteOptions {
  /** CAS: the key's current modRevision must equal this. */
  ifRevision?: number;
}

export interface WriteResult {
  /** The store revision after the write. */
  revision: number;
}

export interface DeleteResult extends WriteResult {
  /** Whether a key was there to delete (a miss does not bump the revision). */
  deleted: boolean;
  prev?: KeyValue;
}

export interface ListResult {
  items: KeyValue[];
  /** The store revision the listing reflects: pass it to `watch` to continue from here. */
  revision: number;
}

export type WatchEvent = { type: "put"; kv: KeyValue; prev?: KeyValue; revision: number } | { type: "delete"; key: string; prev?: KeyValue; revision: number };

export interface WatchOptions {
  /** Deliver events with revision > fromRevision. Absent = from now on. */
  fromRevision?: number;
  /** Ends the iteration (the iterator returns normally). */
  signal?: AbortSignal;
}

/** One comparison of a transaction. */
export interface TxnCompare {
  key: string;
  /** The key's modRevision must equal this (0 = must not exist). */
  modRevision: number;
}

export type TxnOp = { op: "put"; key: string; value: string; lease?: LeaseId } | { op: "delete"; key: string };

export interface TxnResult {
  /** Whether every comparison held (then `success` ran, else nothing was written). */
  succeeded: boolean;
  revision: number;
}

export interface LeaseInfo {
  id: LeaseId;
  ttlSeconds: number;
  /** Seconds left before expiry on the store's clock. */
  remainingSeconds: number;
  keys: string[];
}

export interface Datastore {
  /** The key's current value, or undefined. */
  get(key: string): Promise<KeyValue | undefined>;
  /**
   * Writes `value` at `key`. Atomic. Throws `ConflictError` when `ifRevision` does not hold,
   * `NotFoundError` when the lease does not exist, `TryAgainError` when unavailable.
   */
  put(key: string, value: string, options?: PutOptions): Promise<WriteResult>;
  /** Deletes `key`. Deleting a missing key succeeds with `deleted: false` (unless `ifRevision` > 0). */
  delete(key: string, options?: DeleteOptions): Promise<DeleteResult>;
  /** Every key under `prefix` (byte-wise prefix), sorted by key, with the revision it reflects. */
  list(prefix: string): Promise<ListResult>;
  /** Atomic multi-key compare-and-swap: all compares hold → all ops applied under one revision. */
  txn(compares: TxnCompare[], success: TxnOp[]): Promise<TxnResult>;
  /** Events under `prefix`; see the contract above. Ends when the signal aborts or the store closes. */
  watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent>;
  /** A new lease with the given TTL (seconds, integer ≥ 1). */
  grantLease(ttlSeconds: number): Promise<LeaseId>;
  /** Restarts the lease's TTL; returns the TTL. Throws `NotFoundError` if it already expired. */
  keepAlive(lease: LeaseId): Promise<number>;
  /** Ends the lease and deletes its keys. Revoking an unknown lease succeeds. */
  revokeLease(lease: LeaseId): Promise<void>;
  /** Lease details, or undefined if it does not exist. */
  leaseInfo(lease: LeaseId): Promise<LeaseInfo | undefined>;
  /** The current store revision. */
  revision(): Promise<number>;
  /** Releases resources; later calls throw `ClosedError`; open watches end. Idempotent. */
  close(): Promise<void>;
}
