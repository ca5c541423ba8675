/**
 * `EtcdDatastore`: the Datastore contract on a real etcd v3 cluster, through etcd's JSON gRPC
 * gateway (see DESIGN.md for why the gateway and not gRPC).
 *
 * Every key lives under the store's `prefix` (one prefix per cluster, e.g. `/cnikit/prod/`);
 * `list`, `watch` and `leaseInfo` strip it again, so callers never see it. Revisions, CAS (a
 * transaction comparing `mod_revision`), leases and watches are etcd's own, so the contract's
 * etcd semantics hold by construction; this file maps shapes and decides what a failure means:
 *
 *  - Nothing reached etcd (it is down or restarting): the call is retried on the next endpoint,
 *    backing off, for up to `retryWindowMs`, then `TryAgainError` (code 11; nothing was written).
 *  - Reads, keep-alives, revokes and grants (whose lease id is chosen here) are idempotent: they are
 *    re-sent also when an answer was lost.
 *  - A write whose answer was lost is re-sent only when etcd itself guarantees that at most one of
 *    the attempts can apply: a compare `modRevision == r` (r > 0) on a key the write changes
 *    (every `put`/`delete` with `ifRevision` > 0, and such transactions). Any other write in doubt
 *    throws `OutcomeUnknownError` (code 11, but not a `TryAgainError`: it may have been applied).
 *    So no acknowledged write is lost and none is applied twice.
 */

import { randomBytes } from "node:crypto";
import {
  ClosedError,
  CniCode,
  CniError,
  CompactedError,
  ConfigError,
  ConflictError,
  NotFoundError,
  TryAgainError,
  compareKeys,
  validateKey,
  validateLeaseId,
  validatePrefix,
  validateRevision,
  validateTtl,
  validateTxn,
  validateValue,
  type Datastore,
  type DeleteOptions,
  type DeleteResult,
  type KeyValue,
  type LeaseId,
  type LeaseInfo,
  type ListResult,
  type PutOptions,
  type TxnCompare,
  type TxnOp,
  type TxnResult,
  type WatchEvent,
  type WatchOptions,
  type WriteResult,
} from "@cnikit/core";
import { b64, int, KeySpace, leaseToDec, leaseToHex, randomLeaseDec, type RawHeader, type RawKeyValue } from "./codec.ts";
import { OutcomeUnknownError } from "./errors.ts";
import { ExchangeError, Gateway } from "./gateway.ts";
import { EtcdWatch, type WatchHost } from "./watch.ts";

export interface EtcdDatastoreOptions {
  /** etcd client URLs, e.g. `["http://127.0.0.1:2379"]`; calls fail over between them. */
  endpoints: readonly string[];
  /**
   * Every key is stored under this prefix (one per cluster, e.g. `/cnikit/<cluster>/`); `list`,
   * `watch` and lease key lists strip it. May be `""` (the whole keyspace). Ending it with `/`
   * keeps `/cnikit/a` from seeing `/cnikit/ab`'s keys.
   */
  prefix: string;
  /** Bound for one HTTP exchange with etcd (connect + answer). Default 5000 ms. */
  requestTimeoutMs?: number;
  /**
   * How long a call keeps trying while etcd is unreachable before `TryAgainError`, and how long a
   * write in doubt is re-sent. Default 5000 ms. Watches reconnect for as long as they are open.
   */
  retryWindowMs?: number;
  /** Keys fetched per range request by `list` / `listPages`. Default 1000. */
  listPageSize?: number;
}

/** etcd's `RangeResponse` / `TxnResponse` / ... shapes we read. */
interface RangeRes {
  header?: RawHeader;
  kvs?: RawKeyValue[];
  more?: boolean;
  count?: string;
}
interface DeleteRes {
  header?: RawHeader;
  deleted?: string;
  prev_kvs?: RawKeyValue[];
}
interface TxnRes {
  header?: RawHeader;
  succeeded?: boolean;
  responses?: { response_range?: RangeRes; response_delete_range?: DeleteRes; response_put?: { header?: RawHeader } }[];
}

const LABEL = "[etcd-datastore]";

function checkPositiveInt(value: unknown, field: string, rule: string): void {
  if (value !== undefined && (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)) {
    throw new ConfigError({ field, rule, value });
  }
}

function describe(cur: KeyValue | undefined): string {
  return cur ? `found modRevision ${cur.modRevision}` : "found no key";
}

/**
 * Whether etcd guarantees that at most one of several identical attempts of this write can apply:
 * it compares `modRevision == r` with r > 0 on a key it also writes, and any applied attempt
 * changes that key's modRevision for good.
 */
function selfInvalidating(compares: readonly TxnCompare[], keys: readonly string[]): boolean {
  return compares.some((c) => c.modRevision > 0 && keys.includes(c.key));
}

function unknownLease(lease: LeaseId): NotFoundError {
  return new NotFoundError(`${LABEL} lease ${lease}: no such lease (it expired or was revoked); grant a new one`);
}

export class EtcdDatastore implements Datastore, WatchHost {
  /** The key prefix of this store (one per cluster). */
  readonly prefix: string;
  /** @internal */
  readonly keys: KeySpace;
  /** @internal */
  readonly gateway: Gateway;
  private readonly pageSize: number;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly watches = new Set<EtcdWatch>();
  private readonly inflight = new Set<Promise<unknown>>();
  /** Highest revision any etcd answer has shown this client (`watch` without `fromRevision` starts here). */
  private seen = 0;
  private clusterId: string | undefined;

  private constructor(options: EtcdDatastoreOptions) {
    if (typeof options !== "object" || options === null) throw new ConfigError({ field: "options", rule: "must be an object" });
    validatePrefix(options.prefix, "prefix");
    checkPositiveInt(options.requestTimeoutMs, "requestTimeoutMs", "must be an integer >= 1 (milliseconds)");
    checkPositiveInt(options.retryWindowMs, "retryWindowMs", "must be an integer >= 1 (milliseconds)");
    checkPositiveInt(options.listPageSize, "listPageSize", "must be an integer >= 1 (keys per range request)");
    this.prefix = options.prefix;
    this.keys = new KeySpace(options.prefix);
    this.pageSize = options.listPageSize ?? 1000;
    this.gateway = new Gateway({
      endpoints: options.endpoints,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      retryWindowMs: options.retryWindowMs ?? 5000,
      label: LABEL,
    });
  }

  /**
   * Connects to etcd and checks that it answers (one linearizable read). Throws `ConfigError`
   * naming `endpoints[i]` / `prefix` / a timeout option for bad options, `TryAgainError` when no
   * endpoint answered within `retryWindowMs`, `CniError` when the endpoint is not etcd's gateway.
   */
  static async connect(options: EtcdDatastoreOptions): Promise<EtcdDatastore> {
    const store = new EtcdDatastore(options);
    try {
      await store.revision();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /**
   * The same store without the connectivity check, synchronously (for callers that cannot await,
   * e.g. a simulator building its cluster): nothing is sent until the first call, which fails with
   * `TryAgainError` when etcd cannot be reached. Throws `ConfigError` for bad options.
   */
  static open(options: EtcdDatastoreOptions): EtcdDatastore {
    return new EtcdDatastore(options);
  }

  /** The etcd endpoint calls currently go to. */
  get endpoint(): string {
    return this.gateway.endpoint;
  }

  /** @internal Highest revision seen so far. */
  get seenRevision(): number {
    return this.seen;
  }

  /** @internal Records an answer's header (revision high-water mark). */
  note(header: RawHeader | undefined): number {
    const r = int(header?.revision);
    if (r > this.seen) this.seen = r;
    if (header?.cluster_id !== undefined) this.clusterId ??= header.cluster_id;
    return r;
  }

  /** @internal The id of the etcd cluster first answered by (watches notice a different one). */
  get cluster(): string | undefined {
    return this.clusterId;
  }

  /** @internal Whether `close` was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  private checkOpen(): void {
    if (this.closed) throw new ClosedError(`${LABEL} the store is closed; open a new one`);
  }

  /** Runs `fn` counted as in flight (so `close` lets it finish) with etcd errors mapped. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    this.checkOpen();
    const p = fn().catch((e: unknown) => {
      throw this.mapError(e);
    });
    this.inflight.add(p);
    try {
      return await p;
    } finally {
      this.inflight.delete(p);
    }
  }

  /** Maps a transport/etcd failure to the contract's errors. */
  private mapError(e: unknown): unknown {
    if (e instanceof CniError) return e;
    if (!(e instanceof ExchangeError)) return e;
    const text = e.etcdError ?? e.message;
    if (e.kind === "indeterminate") {
      return new OutcomeUnknownError(e.endpoint, `${LABEL} ${e.message}: the write may or may not have been applied; re-read before retrying`, { cause: e });
    }
    if (e.kind === "unreachable") return new TryAgainError(`${LABEL} ${e.message}; nothing was written, retry later`, { cause: e });
    if (/requested lease not found/.test(text)) return new NotFoundError(`${LABEL} no such lease (it expired or was revoked); grant a new one`, { cause: e });
    if (/required revision has been compacted/.test(text)) return new CompactedError(0, `${LABEL} ${text}; re-list and watch again`);
    if (/request is too large/.test(text)) {
      return new ConfigError({
        field: "value",
        rule: "etcd refused the request as too large: raise etcd's --max-request-bytes above the value plus ~1 KiB (the contract allows values up to 1.5 MiB)",
        cause: e,
      });
    }
    if (/too many operations in txn request/.test(text)) {
      return new ConfigError({ field: "success", rule: "etcd refused the transaction: more operations than its --max-txn-ops (default 128)", cause: e });
    }
    if (/database space exceeded/.test(text)) return new TryAgainError(`${LABEL} etcd is out of space (NOSPACE alarm); nothing was written: compact and defragment etcd, then retry`, { cause: e });
    return new CniError(CniCode.Internal, `${LABEL} ${e.message}`, { cause: e });
  }

  /** An idempotent call (re-sent on a lost answer within the retry window). */
  private read<T>(path: string, body: unknown): Promise<T> {
    return this.gateway.call<T>(path, body, { idempotent: true });
  }

  /**
   * A write. Unguarded (or not self-invalidating) writes in doubt throw `OutcomeUnknownError`;
   * self-invalidating ones are re-sent until etcd answers or the retry window ends. After a doubt, a
   * failed compare is reported as `OutcomeUnknownError` too (the first attempt may have won).
   */
  private async write<T extends { header?: RawHeader; succeeded?: boolean }>(path: string, body: unknown, resend: boolean, what: string): Promise<T> {
    const deadline = Date.now() + this.gateway.retryWindowMs;
    let doubt: ExchangeError | undefined;
    for (;;) {
      let res: T;
      try {
        res = await this.gateway.call<T>(path, body, { idempotent: false, deadline });
      } catch (e) {
        if (e instanceof ExchangeError && e.kind === "indeterminate") {
          if (!resend) throw this.mapError(e);
          doubt ??= e;
          if (Date.now() >= deadline) throw this.inDoubt(what, doubt);
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        if (doubt && (e instanceof TryAgainError || e instanceof ClosedError)) throw this.inDoubt(what, doubt);
        throw e;
      }
      this.note(res.header);
      // etcd omits `succeeded` when false. After a doubt a failed compare may be our own first attempt.
      if (doubt && path === "/v3/kv/txn" && res.succeeded !== true) throw this.inDoubt(what, doubt);
      return res;
    }
  }

  private inDoubt(what: string, first: ExchangeError): OutcomeUnknownError {
    return new OutcomeUnknownError(
      first.endpoint,
      `${LABEL} ${what}: etcd's answer was lost (${first.message}) and re-sending could not settle it: the write may or may not have been applied; re-read before retrying`,
      { cause: first },
    );
  }

  /** A lease id as etcd's int64, or `NotFoundError` (an id no etcd lease can have). */
  private leaseDec(lease: LeaseId): string {
    const dec = leaseToDec(lease);
    if (dec === undefined) throw unknownLease(lease);
    return dec;
  }

  private conflict(key: string, ifRevision: number, cur: KeyValue | undefined): ConflictError {
    const expected = ifRevision === 0 ? "expected no key (ifRevision 0)" : `expected modRevision ${ifRevision}`;
    return new ConflictError(key, `${LABEL} ${JSON.stringify(key)}: compare-and-swap failed: ${expected}, ${describe(cur)}; re-read and retry`);
  }

  /** The contract: {@link Datastore.get}. Linearizable. Throws `ConfigError`, `TryAgainError`, `ClosedError`. */
  get(key: string): Promise<KeyValue | undefined> {
    return this.run(async () => {
      validateKey(key);
      const res = await this.read<RangeRes>("/v3/kv/range", { key: this.keys.key64(key) });
      this.note(res.header);
      return this.keys.kv(res.kvs?.[0]);
    });
  }

  /**
   * The contract: {@link Datastore.put}. `ifRevision` becomes an etcd transaction comparing the key's
   * `mod_revision`. Throws `ConfigError`, `ConflictError`, `NotFoundError` (lease),
   * `TryAgainError` (etcd unreachable; nothing written), `OutcomeUnknownError` (answer lost),
   * `ClosedError`.
   */
  put(key: string, value: string, options: PutOptions = {}): Promise<WriteResult> {
    return this.run(async () => {
      validateKey(key);
      validateValue(value);
      if (options.ifRevision !== undefined) validateRevision(options.ifRevision, "ifRevision");
      if (options.lease !== undefined) validateLeaseId(options.lease);
      const k = this.keys.key64(key);
      const req: Record<string, string> = { key: k, value: b64(Buffer.from(value, "utf8")) };
      if (options.lease !== undefined) req.lease = this.leaseDec(options.lease);
      const ifRevision = options.ifRevision;
      if (ifRevision === undefined) {
        const res = await this.write<{ header?: RawHeader }>("/v3/kv/put", req, false, `put ${JSON.stringify(key)}`);
        return { revision: int(res.header?.revision) };
      }
      const res = await this.write<TxnRes>(
        "/v3/kv/txn",
        {
          compare: [{ target: "MOD", result: "EQUAL", key: k, mod_revision: String(ifRevision) }],
          success: [{ request_put: req }],
          failure: [{ request_range: { key: k } }],
        },
        ifRevision > 0,
        `put ${JSON.stringify(key)} (ifRevision ${ifRevision})`,
      );
      if (!res.succeeded) throw this.conflict(key, ifRevision, this.keys.kv(res.responses?.[0]?.response_range?.kvs?.[0]));
      return { revision: int(res.header?.revision) };
    });
  }

  /**
   * The contract: {@link Datastore.delete}. Throws `ConfigError`, `ConflictError`, `TryAgainError`,
   * `OutcomeUnknownError`, `ClosedError`.
   */
  delete(key: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    return this.run(async () => {
      validateKey(key);
      if (options.ifRevision !== undefined) validateRevision(options.ifRevision, "ifRevision");
      const k = this.keys.key64(key);
      const ifRevision = options.ifRevision;
      let del: DeleteRes | undefined;
      let revision: number;
      if (ifRevision === undefined) {
        del = await this.write<DeleteRes>("/v3/kv/deleterange", { key: k, prev_kv: true }, false, `delete ${JSON.stringify(key)}`);
        revision = int(del.header?.revision);
      } else {
        const res = await this.write<TxnRes>(
          "/v3/kv/txn",
          {
            compare: [{ target: "MOD", result: "EQUAL", key: k, mod_revision: String(ifRevision) }],
            success: [{ request_delete_range: { key: k, prev_kv: true } }],
            failure: [{ request_range: { key: k } }],
          },
          ifRevision > 0,
          `delete ${JSON.stringify(key)} (ifRevision ${ifRevision})`,
        );
        if (!res.succeeded) throw this.conflict(key, ifRevision, this.keys.kv(res.responses?.[0]?.response_range?.kvs?.[0]));
        del = res.responses?.[0]?.response_delete_range;
        revision = int(res.header?.revision);
      }
      const prev = this.keys.kv(del?.prev_kvs?.[0]);
      const out: DeleteResult = { revision, deleted: int(del?.deleted) > 0 };
      if (prev) out.prev = prev;
      return out;
    });
  }

  /**
   * The contract: {@link Datastore.list}. Fetched in pages of `listPageSize` keys, every page read at the
   * revision of the first (one consistent snapshot). When etcd compacts that revision mid-way the
   * listing starts over (up to 5 times). Throws `ConfigError`, `TryAgainError`, `ClosedError`.
   */
  list(prefix: string): Promise<ListResult> {
    return this.run(async () => {
      validatePrefix(prefix);
      for (let attempt = 1; ; attempt++) {
        try {
          const items: KeyValue[] = [];
          let revision = 0;
          for await (const page of this.pages(prefix, this.pageSize)) {
            for (const kv of page.items) items.push(kv);
            revision = page.revision;
          }
          return { items, revision };
        } catch (e) {
          if (attempt < 5 && this.mapError(e) instanceof CompactedError) continue;
          throw e;
        }
      }
    });
  }

  /**
   * The listing of `list`, one page at a time (for prefixes too large to hold at once). Every page
   * reflects the same revision; a `CompactedError` means that revision was compacted meanwhile: list
   * again. Throws `ConfigError` (prefix, pageSize), `TryAgainError`, `CompactedError`, `ClosedError`.
   */
  async *listPages(prefix: string, options: { pageSize?: number } = {}): AsyncGenerator<ListResult> {
    this.checkOpen();
    validatePrefix(prefix);
    checkPositiveInt(options.pageSize, "pageSize", "must be an integer >= 1 (keys per page)");
    try {
      yield* this.pages(prefix, options.pageSize ?? this.pageSize);
    } catch (e) {
      throw this.mapError(e);
    }
  }

  private async *pages(prefix: string, pageSize: number): AsyncGenerator<ListResult> {
    const range = this.keys.range(prefix);
    let from = range.key;
    let revision = 0;
    let limit = pageSize;
    for (;;) {
      this.checkOpen();
      const body: Record<string, unknown> = { key: from, range_end: range.range_end, limit: String(limit) };
      if (revision > 0) body.revision = String(revision);
      let res: RangeRes;
      try {
        res = await this.read<RangeRes>("/v3/kv/range", body);
      } catch (e) {
        // A page too large for a gRPC message: fetch fewer keys per request.
        if (e instanceof ExchangeError && e.grpcCode === 8 && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 4));
          continue;
        }
        throw e;
      }
      const r = this.note(res.header);
      if (revision === 0) revision = r;
      const raw = res.kvs ?? [];
      const items: KeyValue[] = [];
      for (const kv of raw) {
        const mapped = this.keys.kv(kv);
        if (mapped) items.push(mapped);
      }
      yield { items, revision };
      if (!res.more || raw.length === 0) return;
      const last = Buffer.from(raw[raw.length - 1]!.key ?? "", "base64");
      from = b64(Buffer.concat([last, Buffer.from([0])]));
      limit = pageSize;
    }
  }

  /**
   * The contract: {@link Datastore.txn}. One etcd transaction: every compare is `mod_revision ==`, the ops
   * run under one revision. Throws `ConfigError`, `NotFoundError` (unknown lease; nothing written),
   * `TryAgainError`, `OutcomeUnknownError`, `ClosedError`.
   */
  txn(compares: TxnCompare[], success: TxnOp[]): Promise<TxnResult> {
    return this.run(async () => {
      validateTxn(compares, success);
      const ops = success.map((op) => {
        if (op.op === "delete") return { request_delete_range: { key: this.keys.key64(op.key) } };
        const req: Record<string, string> = { key: this.keys.key64(op.key), value: b64(Buffer.from(op.value, "utf8")) };
        if (op.lease !== undefined) req.lease = this.leaseDec(op.lease);
        return { request_put: req };
      });
      const body = {
        compare: compares.map((c) => ({ target: "MOD", result: "EQUAL", key: this.keys.key64(c.key), mod_revision: String(c.modRevision) })),
        success: ops,
      };
      const resend =
        success.length === 0 ||
        selfInvalidating(
          compares,
          success.map((op) => op.key),
        );
      const res = await this.write<TxnRes>("/v3/kv/txn", body, resend, `txn on ${success.map((op) => JSON.stringify(op.key)).join(", ") || "no keys"}`);
      return { succeeded: res.succeeded === true, revision: int(res.header?.revision) };
    });
  }

  /**
   * The contract: {@link Datastore.watch}. One etcd watch stream per iteration, with `prev_kv`. Without
   * `fromRevision` it starts after the highest revision this client has seen (so its own later
   * writes are never missed; a store made by `open` that has not talked to etcd yet starts at
   * etcd's current revision). When etcd goes away the stream reconnects from the next revision
   * (no event lost or repeated) for as long as the watch is open; when that revision has been
   * compacted meanwhile it throws `CompactedError` (re-list, or use `watchWithResync`). Errors
   * (`ConfigError`, `CompactedError`, `TryAgainError` when etcd cannot be reached for the first
   * stream, `ClosedError`) reject `next()`.
   */
  watch(prefix: string, options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    const from = options.fromRevision;
    const signal = options.signal;
    return {
      [Symbol.asyncIterator]: () => {
        let error: Error | undefined;
        try {
          this.checkOpen();
          validatePrefix(prefix);
          if (from !== undefined) validateRevision(from, "fromRevision");
        } catch (e) {
          error = e as Error;
        }
        // Without fromRevision: after the highest revision seen; before any answer, from etcd's now.
        const start = from ?? (this.seen > 0 ? this.seen : undefined);
        const w = new EtcdWatch({ host: this, prefix, fromRevision: start, signal, error });
        if (!error && !w.finished) this.watches.add(w);
        return w;
      },
    };
  }

  /**
   * The contract: {@link Datastore.grantLease}. The lease id is chosen here (random 63 bits, shown as 16 hex
   * digits), so a grant whose answer was lost is re-sent safely. etcd may grant more than asked
   * (its minimum TTL, ~2 s by default). Throws `ConfigError` naming `ttlSeconds`, `TryAgainError`,
   * `OutcomeUnknownError` (a lease may have been granted; it expires unused), `ClosedError`.
   */
  grantLease(ttlSeconds: number): Promise<LeaseId> {
    return this.run(async () => {
      validateTtl(ttlSeconds);
      const deadline = Date.now() + this.gateway.retryWindowMs;
      let id = randomLeaseDec(() => randomBytes(8));
      let doubt: ExchangeError | undefined;
      for (;;) {
        try {
          const res = await this.gateway.call<{ header?: RawHeader; ID?: string }>("/v3/lease/grant", { TTL: String(ttlSeconds), ID: id }, { idempotent: false, deadline });
          this.note(res.header);
          return leaseToHex(res.ID ?? id);
        } catch (e) {
          if (e instanceof ExchangeError && e.kind === "indeterminate") {
            doubt ??= e;
            if (Date.now() >= deadline) throw this.inDoubt(`grant a ${ttlSeconds} s lease`, doubt);
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          if (e instanceof ExchangeError && /lease already exists/.test(e.etcdError ?? "")) {
            // An earlier attempt of ours got through; otherwise a 1-in-2^63 collision: pick again.
            if (doubt) return leaseToHex(id);
            id = randomLeaseDec(() => randomBytes(8));
            continue;
          }
          if (doubt && e instanceof TryAgainError) throw this.inDoubt(`grant a ${ttlSeconds} s lease`, doubt);
          throw e;
        }
      }
    });
  }

  /**
   * The contract: {@link Datastore.keepAlive}. One keep-alive round trip; returns the lease's granted TTL.
   * Idempotent. Throws `NotFoundError` (expired or revoked), `ConfigError`, `TryAgainError`,
   * `ClosedError`.
   */
  keepAlive(lease: LeaseId): Promise<number> {
    return this.run(async () => {
      validateLeaseId(lease);
      const id = this.leaseDec(lease);
      const res = await this.read<{ result?: { header?: RawHeader; TTL?: string } }>("/v3/lease/keepalive", { ID: id });
      this.note(res.result?.header);
      const ttl = int(res.result?.TTL);
      if (ttl <= 0) throw unknownLease(lease);
      return ttl;
    });
  }

  /**
   * The contract: {@link Datastore.revokeLease}. etcd deletes the lease's keys under one revision (one
   * delete event each). Idempotent (an unknown lease succeeds). Throws `ConfigError`,
   * `TryAgainError`, `ClosedError`.
   */
  revokeLease(lease: LeaseId): Promise<void> {
    return this.run(async () => {
      validateLeaseId(lease);
      const id = leaseToDec(lease);
      if (id === undefined) return;
      try {
        const res = await this.read<{ header?: RawHeader }>("/v3/lease/revoke", { ID: id });
        this.note(res.header);
      } catch (e) {
        if (e instanceof ExchangeError && /requested lease not found/.test(e.etcdError ?? "")) return;
        throw e;
      }
    });
  }

  /**
   * The contract: {@link Datastore.leaseInfo}. etcd's time-to-live with the lease's keys (outside this
   * store's prefix ones are left out). Throws `ConfigError`, `TryAgainError`, `ClosedError`.
   */
  leaseInfo(lease: LeaseId): Promise<LeaseInfo | undefined> {
    return this.run(async () => {
      validateLeaseId(lease);
      const id = leaseToDec(lease);
      if (id === undefined) return undefined;
      const res = await this.read<{ header?: RawHeader; TTL?: string; grantedTTL?: string; keys?: string[] }>("/v3/lease/timetolive", {
        ID: id,
        keys: true,
      });
      this.note(res.header);
      const remaining = int(res.TTL);
      if (remaining < 0) return undefined;
      const keys: string[] = [];
      for (const k of res.keys ?? []) {
        const key = this.keys.strip(k);
        if (key !== undefined) keys.push(key);
      }
      keys.sort(compareKeys);
      return { id: lease, ttlSeconds: int(res.grantedTTL), remainingSeconds: remaining, keys };
    });
  }

  /** The contract: {@link Datastore.revision}. A linearizable read of etcd's revision. Throws `TryAgainError`, `ClosedError`. */
  revision(): Promise<number> {
    return this.run(async () => {
      const res = await this.read<RangeRes>("/v3/kv/range", { key: b64(Buffer.concat([this.keys.prefixBytes, Buffer.from([0])])), count_only: true });
      return this.note(res.header);
    });
  }

  /**
   * Forgets watch history up to and including `revision` (as `MemoryDatastore.compact` does): a
   * later watch from an older revision throws `CompactedError`. This is etcd's physical compaction
   * at `revision + 1` (etcd keeps the revision it compacts at), so `revision` must be below the
   * current one; it compacts the whole etcd cluster, not only this prefix: meant for tests and
   * operators. Throws `ConfigError` naming `revision`, `CniError` when etcd refuses (already
   * compacted), `TryAgainError`, `ClosedError`.
   */
  compact(revision: number): Promise<void> {
    return this.run(async () => {
      validateRevision(revision, "revision");
      const current = await this.revision();
      if (revision >= current) {
        throw new ConfigError({ field: "revision", rule: `must be below the current revision ${current} (etcd keeps the revision it compacts at)`, value: revision });
      }
      const res = await this.read<{ header?: RawHeader }>("/v3/kv/compaction", { revision: String(revision + 1), physical: true });
      this.note(res.header);
    });
  }

  /** @internal Called by a finished watch. */
  forget(w: EtcdWatch): void {
    this.watches.delete(w);
  }

  /**
   * The contract: {@link Datastore.close}. Open watches end at once; calls already under way complete (or
   * fail) before connections are dropped; later calls throw `ClosedError`. Leases are left to
   * etcd (they expire on their TTL unless kept alive elsewhere). Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      for (const w of [...this.watches]) w.end();
      this.watches.clear();
      const pending = [...this.inflight];
      this.closing = Promise.allSettled(pending).then(() => this.gateway.close());
    }
    return this.closing;
  }
}
