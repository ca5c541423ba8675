/**
 * The datastore state machine shared by `MemoryDatastore` and `FileDatastore`: keys with their
 * revisions, a sorted key index, leases and the revision counter.
 *
 * Every change goes through `apply(mutation)`, and a mutation is plain JSON, so the file store can
 * log exactly what it applied and replay it after a crash. The `plan*` methods check a request
 * against the current state (compare-and-swap, lease existence) without changing anything and
 * return the mutation to apply — so a refused request never leaves anything half-written.
 */

import type { KeyValue, LeaseId, LeaseInfo, TxnCompare, TxnOp, WatchEvent } from "../datastore.ts";
import { CniCode, CniError, ConflictError, NotFoundError } from "../errors.ts";
import { SortedKeys } from "./sorted-keys.ts";
import { compareKeys } from "./validate.ts";

/** One key written (`v`, optional lease `l`) or deleted (`d`) inside a write mutation. */
export type WriteOp = { k: string; v: string; l?: LeaseId } | { k: string; d: 1 };

/**
 * A change to the state, as logged by the file store.
 *  - `w`: writes under one revision `r` (the revision after applying; unchanged when no op changed
 *    anything).
 *  - `g`: lease granted; `exp` is the absolute expiry time on the store's clock (ms).
 *  - `k`: lease kept alive until `exp`.
 *  - `x`: lease revoked or expired: its keys are deleted under one revision, `r` after applying.
 */
export type Mutation = { t: "w"; r: number; ops: WriteOp[] } | { t: "g"; id: LeaseId; ttl: number; exp: number } | { t: "k"; id: LeaseId; exp: number } | { t: "x"; id: LeaseId; r: number };

export type WriteMutation = Extract<Mutation, { t: "w" }>;
export type GrantMutation = Extract<Mutation, { t: "g" }>;
export type KeepMutation = Extract<Mutation, { t: "k" }>;
export type RevokeMutation = Extract<Mutation, { t: "x" }>;

export interface LeaseState {
  readonly id: LeaseId;
  readonly ttl: number;
  /** Absolute expiry time on the store's clock, in ms. */
  exp: number;
  readonly keys: Set<string>;
}

/** A key as stored in a snapshot. */
export interface SnapshotKey {
  k: string;
  v: string;
  c: number;
  m: number;
  n: number;
  l?: LeaseId;
}

/** A lease as stored in a snapshot. */
export interface SnapshotLease {
  id: LeaseId;
  ttl: number;
  exp: number;
}

const LABEL = "[datastore]";

function describe(kv: KeyValue | undefined): string {
  return kv ? `found modRevision ${kv.modRevision}` : "found no key";
}

function makeKv(key: string, value: string, createRevision: number, modRevision: number, version: number, lease: LeaseId | undefined): KeyValue {
  const kv: KeyValue = lease === undefined ? { key, value, createRevision, modRevision, version } : { key, value, createRevision, modRevision, version, lease };
  return Object.freeze(kv);
}

export class StoreState {
  /** The store revision: bumped once by every write that changed something. */
  revision = 0;
  /** Counter behind lease ids (lowercase hex). */
  nextLease = 1;
  private readonly kvs = new Map<string, KeyValue>();
  private readonly index = new SortedKeys();
  readonly leases = new Map<LeaseId, LeaseState>();

  /** Number of keys held. */
  get size(): number {
    return this.kvs.size;
  }

  /** The key's current record (frozen), or undefined. */
  get(key: string): KeyValue | undefined {
    return this.kvs.get(key);
  }

  /** Every record under `prefix`, sorted by key (etcd byte order). */
  list(prefix: string): KeyValue[] {
    const out: KeyValue[] = [];
    this.index.forEachWithPrefix(prefix, (k) => {
      out.push(this.kvs.get(k)!);
    });
    return out;
  }

  /** Lease details at time `now`, or undefined. Keys are in key order. */
  leaseInfo(id: LeaseId, now: number): LeaseInfo | undefined {
    const lease = this.leases.get(id);
    if (!lease) return undefined;
    return {
      id,
      ttlSeconds: lease.ttl,
      remainingSeconds: Math.max(0, Math.ceil((lease.exp - now) / 1000)),
      keys: [...lease.keys].sort(compareKeys),
    };
  }

  // ---- planning: check a request, change nothing, return the mutation ----

  /** Plans a put; throws `ConflictError` when `ifRevision` does not hold, `NotFoundError` for an unknown lease. */
  planPut(key: string, value: string, ifRevision: number | undefined, lease: LeaseId | undefined): WriteMutation {
    const cur = this.kvs.get(key);
    if (ifRevision !== undefined) this.checkRevision(key, cur, ifRevision);
    if (lease !== undefined && !this.leases.has(lease)) {
      throw new NotFoundError(`${LABEL} lease ${lease}: no such lease (it expired or was revoked); grant a new one`);
    }
    return { t: "w", r: this.revision + 1, ops: [lease === undefined ? { k: key, v: value } : { k: key, v: value, l: lease }] };
  }

  /**
   * Plans a delete; returns undefined when there is nothing to delete. Throws `ConflictError`
   * when `ifRevision` does not hold (a missing key holds only for `ifRevision` 0).
   */
  planDelete(key: string, ifRevision: number | undefined): { mutation: WriteMutation; prev: KeyValue } | undefined {
    const cur = this.kvs.get(key);
    if (ifRevision !== undefined) this.checkRevision(key, cur, ifRevision);
    if (!cur) return undefined;
    return { mutation: { t: "w", r: this.revision + 1, ops: [{ k: key, d: 1 }] }, prev: cur };
  }

  /**
   * Plans a transaction (inputs already validated, keys unique). `succeeded` false when a compare
   * failed; no mutation when nothing would change. Throws `NotFoundError` for an unknown lease.
   */
  planTxn(compares: readonly TxnCompare[], success: readonly TxnOp[]): { succeeded: boolean; mutation?: WriteMutation } {
    for (const c of compares) {
      const cur = this.kvs.get(c.key);
      if (c.modRevision === 0 ? cur !== undefined : cur?.modRevision !== c.modRevision) return { succeeded: false };
    }
    const ops: WriteOp[] = [];
    for (const op of success) {
      if (op.op === "put") {
        if (op.lease !== undefined && !this.leases.has(op.lease)) {
          throw new NotFoundError(`${LABEL} lease ${op.lease}: no such lease (it expired or was revoked); grant a new one`);
        }
        ops.push(op.lease === undefined ? { k: op.key, v: op.value } : { k: op.key, v: op.value, l: op.lease });
      } else if (this.kvs.has(op.key)) {
        ops.push({ k: op.key, d: 1 });
      }
    }
    if (ops.length === 0) return { succeeded: true };
    return { succeeded: true, mutation: { t: "w", r: this.revision + 1, ops } };
  }

  /** Plans a lease grant expiring `ttl` seconds after `now`. */
  planGrant(ttl: number, now: number): GrantMutation {
    return { t: "g", id: this.nextLease.toString(16), ttl, exp: now + ttl * 1000 };
  }

  /** Plans a keep-alive; throws `NotFoundError` when the lease is gone. */
  planKeepAlive(id: LeaseId, now: number): KeepMutation {
    const lease = this.leases.get(id);
    if (!lease) throw new NotFoundError(`${LABEL} lease ${id}: no such lease (it expired or was revoked); grant a new one`);
    return { t: "k", id, exp: now + lease.ttl * 1000 };
  }

  /** Plans a revoke (or expiry); undefined when the lease does not exist. */
  planRevoke(id: LeaseId): RevokeMutation | undefined {
    const lease = this.leases.get(id);
    if (!lease) return undefined;
    return { t: "x", id, r: lease.keys.size > 0 ? this.revision + 1 : this.revision };
  }

  private checkRevision(key: string, cur: KeyValue | undefined, ifRevision: number): void {
    if (ifRevision === 0) {
      if (cur) {
        throw new ConflictError(key, `${LABEL} ${JSON.stringify(key)}: compare-and-swap failed: expected no key (ifRevision 0), ${describe(cur)}; re-read and retry`);
      }
    } else if (cur?.modRevision !== ifRevision) {
      throw new ConflictError(key, `${LABEL} ${JSON.stringify(key)}: compare-and-swap failed: expected modRevision ${ifRevision}, ${describe(cur)}; re-read and retry`);
    }
  }

  // ---- applying ----

  /**
   * Applies a mutation and returns the watch events it produced (frozen, in order). The only way
   * the state changes. Throws an internal `CniError` when a logged mutation does not fit the state
   * (a replay that diverged), before changing anything.
   */
  apply(m: Mutation): WatchEvent[] {
    switch (m.t) {
      case "w":
        return this.applyWrites(m.r, m.ops);
      case "g": {
        if (this.leases.has(m.id)) throw diverged(`lease ${m.id} granted twice`);
        this.leases.set(m.id, { id: m.id, ttl: m.ttl, exp: m.exp, keys: new Set() });
        const n = Number.parseInt(m.id, 16);
        if (Number.isSafeInteger(n) && n >= this.nextLease) this.nextLease = n + 1;
        return [];
      }
      case "k": {
        const lease = this.leases.get(m.id);
        if (!lease) throw diverged(`keep-alive of unknown lease ${m.id}`);
        lease.exp = m.exp;
        return [];
      }
      case "x": {
        const lease = this.leases.get(m.id);
        if (!lease) {
          if (m.r !== this.revision) throw diverged(`revoke of unknown lease ${m.id} at revision ${m.r}`);
          return [];
        }
        const keys = [...lease.keys].sort(compareKeys);
        const events = this.applyWrites(
          m.r,
          keys.map((k) => ({ k, d: 1 as const })),
        );
        this.leases.delete(m.id);
        return events;
      }
    }
  }

  private applyWrites(r: number, ops: readonly WriteOp[]): WatchEvent[] {
    const rev = this.revision + 1;
    let changes = 0;
    for (const op of ops) if (!("d" in op) || this.kvs.has(op.k)) changes++;
    if ((changes > 0 ? rev : this.revision) !== r) {
      throw diverged(`write expected to end at revision ${r}, state is at ${this.revision} with ${changes} change(s)`);
    }
    for (const op of ops) if (!("d" in op) && op.l !== undefined && !this.leases.has(op.l)) throw diverged(`put with unknown lease ${op.l}`);
    const events: WatchEvent[] = [];
    for (const op of ops) {
      const prev = this.kvs.get(op.k);
      if ("d" in op) {
        if (!prev) continue;
        this.kvs.delete(op.k);
        this.index.delete(op.k);
        if (prev.lease !== undefined) this.leases.get(prev.lease)?.keys.delete(op.k);
        events.push(Object.freeze({ type: "delete", key: op.k, prev, revision: rev }));
      } else {
        const kv = makeKv(op.k, op.v, prev ? prev.createRevision : rev, rev, prev ? prev.version + 1 : 1, op.l);
        this.kvs.set(op.k, kv);
        if (prev) {
          if (prev.lease !== undefined && prev.lease !== op.l) this.leases.get(prev.lease)?.keys.delete(op.k);
        } else {
          this.index.add(op.k);
        }
        if (op.l !== undefined) this.leases.get(op.l)!.keys.add(op.k);
        events.push(Object.freeze(prev ? { type: "put", kv, prev, revision: rev } : { type: "put", kv, revision: rev }));
      }
    }
    if (events.length > 0) this.revision = rev;
    return events;
  }

  // ---- snapshots ----

  /** Every key as a snapshot record, in key order. */
  *dumpKeys(): Generator<SnapshotKey> {
    for (const k of this.index.keys()) {
      const kv = this.kvs.get(k)!;
      const rec: SnapshotKey = { k, v: kv.value, c: kv.createRevision, m: kv.modRevision, n: kv.version };
      if (kv.lease !== undefined) rec.l = kv.lease;
      yield rec;
    }
  }

  /** Every lease as a snapshot record. */
  dumpLeases(): SnapshotLease[] {
    return [...this.leases.values()].map((l) => ({ id: l.id, ttl: l.ttl, exp: l.exp }));
  }

  /** Adds a lease read from a snapshot (leases are restored before keys). */
  restoreLease(rec: SnapshotLease): void {
    this.leases.set(rec.id, { id: rec.id, ttl: rec.ttl, exp: rec.exp, keys: new Set() });
  }

  /** Adds a key read from a snapshot; returns false when its lease is unknown. */
  restoreKey(rec: SnapshotKey): boolean {
    if (rec.l !== undefined) {
      const lease = this.leases.get(rec.l);
      if (!lease) return false;
      lease.keys.add(rec.k);
    }
    this.kvs.set(rec.k, makeKv(rec.k, rec.v, rec.c, rec.m, rec.n, rec.l));
    this.index.add(rec.k);
    return true;
  }
}

function diverged(what: string): CniError {
  return new CniError(CniCode.Internal, `${LABEL} log replay diverged from the state: ${what}`);
}
