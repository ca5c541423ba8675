/**
 * `SubnetLeaseKeeper`: one node's claim on a share of the address space, held as one key in the
 * cluster store under a store lease (TTL), the way flannel leases node subnets and the reference
 * backend claims its node subnet.
 *
 *  - acquire: list the claims; one this node already holds (the backend's `isMine`) that still
 *    `fits` is taken over (its store lease kept alive, its value updated by CAS); mine that no
 *    longer fit are deleted; else a new key is `pick`ed (the backend chooses, given the listing and
 *    the key this node held before, remembered in `local`) and created by CAS (`ifRevision: 0`)
 *    under a fresh lease. Lost races are re-picked (at once for the first `immediateRepicks`,
 *    then after a jittered back-off on `clock`).
 *  - keep-alive every `renewEveryMs` (retried after `retryMs` on failure); a lease that expired
 *    anyway (the store was away longer than the TTL) is re-created for the same key if it is free;
 *  - `verify(current)`: the backend reports what the store holds at the key (from its informer);
 *    a vanished key is written back, a key taken by another node is reported through `onLost`;
 *  - `release()`: revokes the lease (the key goes with it) and forgets the key in `local`.
 *
 * The key and value encodings and the choice of a candidate belong to the backend.
 */
import type { Clock, TimerHandle } from "../clock.ts";
import type { Datastore, KeyValue, LeaseId } from "../datastore.ts";
import type { Logger } from "../backend.ts";
import { ConflictError, TryAgainError } from "../errors.ts";
import { errorText } from "./runtime.ts";

/** The claim a keeper holds. */
export interface HeldClaim {
  /** The store key of the claim. */
  key: string;
  /** The store lease keeping it alive; absent for a claim without TTL (a reservation). */
  lease?: LeaseId;
  modRevision: number;
  /** How it was obtained: taken over from the store, the previously held key, or a new pick. */
  source: "own" | "previous" | "new";
  /** Attempts it took (1 = first try won) and how many of them lost a CAS race. */
  attempts: number;
  conflicts: number;
}

export interface SubnetLeaseKeeperOptions {
  store: Datastore;
  /** Node-local state: remembers the held key across restarts at `localKey`. */
  local: Datastore;
  clock: Clock;
  log: Logger;
  random: () => number;
  /** Backend name for messages. */
  component: string;
  /** Prefix of every claim (listed to find this node's and the taken ones). */
  prefix: string;
  localKey: string;
  /** TTL of the store lease. */
  ttlSeconds: number;
  /** Keep-alive period (reference: a third of the TTL; flannel: TTL minus its renew margin). */
  renewEveryMs: number;
  /** Wait before retrying a failed keep-alive (default `renewEveryMs`). */
  retryMs?: number;
  /** This node's claim value now. */
  value: () => string;
  /** Whether a stored claim belongs to this node. */
  isMine: (kv: KeyValue) => boolean;
  /** Whether this node's existing claim still fits the config (default: yes); one that does not is deleted. */
  fits?: (key: string) => boolean;
  /**
   * The key to claim, given every claim in the store and the key this node held before (if
   * remembered). Throws `PoolExhaustedError` when nothing is free.
   */
  pick: (input: { listing: KeyValue[]; previous: string | undefined; random: () => number }) => string;
  /**
   * Checked after a new claim was created (`revision`: its create revision): false = another claim
   * overlaps it after all (e.g. half of a dual-stack pair leased under another key), so the new
   * one is deleted and the attempt counts as a lost race. Default: always true.
   */
  confirm?: (claim: { key: string; revision: number }) => Promise<boolean>;
  /** Attempts before `TryAgainError` (default 32). */
  maxAttempts?: number;
  /** Lost races re-picked at once before backing off (default 3). */
  immediateRepicks?: number;
  /** Back-off base and cap in ms (default 50 and 2000): equal jitter, doubling per attempt. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Retry a transient store error (`TryAgainError`) during acquire (default true); else it is thrown. */
  retryTransient?: boolean;
  /** The claim was lost to another node (`holder`) or could not be written back. */
  onLost?: (info: { key: string; holder: KeyValue | undefined }) => void;
  /** The claim moved to a new store lease (re-created after expiry). */
  onRenewedLease?: (claim: HeldClaim) => void;
}

function hasCode(err: unknown, code: number): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}
const CONFLICT = 102;
const NOT_FOUND = 103;
const TRY_AGAIN = 11;

/** Jittered exponential back-off: half fixed, half random ("equal jitter"). */
export function jitteredBackoff(attempt: number, random: () => number, base = 50, cap = 2_000): number {
  const ceiling = Math.min(cap, base * 2 ** Math.min(Math.max(attempt, 0), 20));
  return ceiling / 2 + (ceiling / 2) * random();
}

export class SubnetLeaseKeeper {
  private held: HeldClaim | undefined;
  private timer: TimerHandle | undefined;
  private stopped = false;
  private busy: Promise<void> | undefined;
  private lostKey: string | undefined;

  constructor(private readonly options: SubnetLeaseKeeperOptions) {}

  /** The claim held now. */
  get claim(): HeldClaim | undefined {
    return this.held;
  }

  /** Whether the claim was lost to another node (the agent is impaired). */
  get lost(): boolean {
    return this.lostKey !== undefined;
  }

  /**
   * Obtains the claim (see the module comment), remembers it in `local`, and starts keeping it
   * alive. Throws `PoolExhaustedError` (from `pick`), `TryAgainError` when every attempt lost or
   * the store stayed unavailable (nothing is left behind), and what `local` throws.
   */
  async acquire(signal?: AbortSignal): Promise<HeldClaim> {
    const o = this.options;
    const maxAttempts = o.maxAttempts ?? 32;
    const immediate = o.immediateRepicks ?? 3;
    const previous = await this.remembered();
    let granted: LeaseId | undefined;
    let conflicts = 0;
    let last = "";
    try {
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        let conflict = false;
        try {
          const done = await this.tryOnce(
            previous,
            () => granted,
            (id) => (granted = id),
          );
          if (done) {
            if (granted !== undefined && granted !== done.lease) await o.store.revokeLease(granted).catch(() => undefined);
            granted = undefined;
            this.held = { ...done, attempts: attempt, conflicts };
            await this.remember();
            this.schedule(o.renewEveryMs);
            return this.held;
          }
          last = "own claim expired while being taken over";
        } catch (err) {
          if (hasCode(err, CONFLICT)) conflict = true;
          else if (hasCode(err, NOT_FOUND)) granted = undefined;
          else if (!(hasCode(err, TRY_AGAIN) && (o.retryTransient ?? true))) throw err;
          last = errorText(err);
        }
        if (conflict) conflicts++;
        if (attempt < maxAttempts && !(conflict && attempt < immediate)) {
          const n = conflict ? attempt - immediate : attempt - 1;
          await o.clock.sleep(jitteredBackoff(n, o.random, o.backoffMs, o.maxBackoffMs), signal);
        }
      }
    } catch (err) {
      if (granted !== undefined) await o.store.revokeLease(granted).catch(() => undefined);
      throw err;
    }
    if (granted !== undefined) await o.store.revokeLease(granted).catch(() => undefined);
    throw new TryAgainError(`[${o.component}] could not claim a share under ${o.prefix} after ${maxAttempts} attempts (${conflicts} lost races); last: ${last}; try again`);
  }

  private async tryOnce(previous: string | undefined, getGranted: () => LeaseId | undefined, setGranted: (id: LeaseId) => void): Promise<Omit<HeldClaim, "attempts" | "conflicts"> | undefined> {
    const o = this.options;
    const listing = await o.store.list(o.prefix);
    let own: KeyValue | undefined;
    for (const kv of listing.items.filter((kv) => o.isMine(kv))) {
      if (own === undefined && (o.fits?.(kv.key) ?? true)) {
        own = kv;
        continue;
      }
      await o.store.delete(kv.key, { ifRevision: kv.modRevision }).catch((err: unknown) => {
        if (!hasCode(err, CONFLICT)) throw err;
      });
      o.log.info(`[${o.component}] deleted a stale claim of this node`, { key: kv.key });
    }
    const value = o.value();
    if (own !== undefined) {
      if (own.lease !== undefined) {
        try {
          await o.store.keepAlive(own.lease);
        } catch (err) {
          if (hasCode(err, NOT_FOUND)) return undefined;
          throw err;
        }
      }
      let modRevision = own.modRevision;
      if (own.value !== value) {
        const put = await o.store.put(own.key, value, own.lease === undefined ? { ifRevision: own.modRevision } : { ifRevision: own.modRevision, lease: own.lease });
        modRevision = put.revision;
      }
      return own.lease === undefined ? { key: own.key, modRevision, source: "own" } : { key: own.key, lease: own.lease, modRevision, source: "own" };
    }
    const key = o.pick({ listing: listing.items, previous, random: o.random });
    let lease = getGranted();
    if (lease === undefined) {
      lease = await o.store.grantLease(o.ttlSeconds);
      setGranted(lease);
    }
    const put = await o.store.put(key, value, { ifRevision: 0, lease });
    if (o.confirm && !(await o.confirm({ key, revision: put.revision }))) {
      await o.store.delete(key, { ifRevision: put.revision }).catch(() => undefined);
      throw new ConflictError(key, `[${o.component}] ${key} overlaps a claim made earlier; yielding`);
    }
    return { key, lease, modRevision: put.revision, source: key === previous ? "previous" : "new" };
  }

  private async remembered(): Promise<string | undefined> {
    const kv = await this.options.local.get(this.options.localKey);
    if (!kv) return undefined;
    try {
      const parsed = JSON.parse(kv.value) as { key?: unknown };
      return typeof parsed.key === "string" && parsed.key.startsWith(this.options.prefix) ? parsed.key : undefined;
    } catch {
      return undefined; // a corrupt record is treated as none: the store tells us what we hold
    }
  }

  private async remember(): Promise<void> {
    const held = this.held;
    if (!held) return;
    await this.options.local.put(this.options.localKey, JSON.stringify(held.lease === undefined ? { key: held.key } : { key: held.key, lease: held.lease }));
  }

  private schedule(ms: number): void {
    this.timer?.cancel();
    if (this.stopped || this.held?.lease === undefined) return; // a claim without TTL never expires
    this.timer = this.options.clock.setTimeout(() => void this.exclusive(() => this.renew()), ms);
  }

  /** One maintenance task at a time (keep-alive, verify). */
  private async exclusive(fn: () => Promise<void>): Promise<void> {
    while (this.busy) await this.busy;
    if (this.stopped) return;
    this.busy = fn()
      .catch((err: unknown) => this.options.log.warn(`[${this.options.component}] claim maintenance failed: ${errorText(err)}`))
      .finally(() => (this.busy = undefined));
    return this.busy;
  }

  private async renew(): Promise<void> {
    const o = this.options;
    const held = this.held;
    if (!held?.lease) return;
    try {
      await o.store.keepAlive(held.lease);
      this.schedule(o.renewEveryMs);
    } catch (err) {
      if (hasCode(err, NOT_FOUND)) {
        await this.recreate("expired");
      } else {
        o.log.warn(`[${o.component}] lease keep-alive of ${held.key} failed; retrying: ${errorText(err)}`);
        this.schedule(o.retryMs ?? o.renewEveryMs);
      }
    }
  }

  /**
   * The store holds `current` at the claim's key (undefined: nothing; omitted: read it now).
   * Mine: nothing to do. Absent: written back (under the same lease while it lives, else a new one).
   * Another node's: `onLost`. Never throws (failures are logged and retried at the next call).
   */
  verify(current?: KeyValue | null): Promise<void> {
    return this.exclusive(async () => {
      const o = this.options;
      const held = this.held;
      if (!held || this.lostKey !== undefined) return;
      try {
        const kv = current === undefined ? await o.store.get(held.key) : (current ?? undefined);
        if (kv && o.isMine(kv)) return;
        if (kv) return this.lose(held.key, kv);
        if (held.lease === undefined) {
          held.modRevision = (await o.store.put(held.key, o.value(), { ifRevision: 0 })).revision;
          return;
        }
        try {
          held.modRevision = (await o.store.put(held.key, o.value(), { ifRevision: 0, lease: held.lease })).revision;
        } catch (err) {
          if (hasCode(err, NOT_FOUND)) await this.recreate("expired");
          else if (hasCode(err, CONFLICT)) await this.checkHolder(held.key);
          else throw err;
        }
      } catch (err) {
        o.log.warn(`[${o.component}] could not re-assert the claim ${held.key}: ${errorText(err)}`);
      }
    });
  }

  /** Re-creates the claim for the same key under a new lease (the old one expired). */
  private async recreate(why: string): Promise<void> {
    const o = this.options;
    const held = this.held;
    if (!held || this.stopped) return;
    let lease: LeaseId | undefined;
    try {
      lease = await o.store.grantLease(o.ttlSeconds);
      const put = await o.store.put(held.key, o.value(), { ifRevision: 0, lease });
      this.held = { ...held, lease, modRevision: put.revision };
      lease = undefined;
      await this.remember();
      o.log.warn(`[${o.component}] lease of ${held.key} had ${why}; claimed it again`);
      this.schedule(o.renewEveryMs);
      o.onRenewedLease?.(this.held);
    } catch (err) {
      if (lease !== undefined) await o.store.revokeLease(lease).catch(() => undefined);
      if (hasCode(err, CONFLICT)) await this.checkHolder(held.key);
      else {
        o.log.warn(`[${o.component}] could not re-claim ${held.key} after its lease ${why}; retrying: ${errorText(err)}`);
        this.schedule(o.retryMs ?? o.renewEveryMs);
      }
    }
  }

  private async checkHolder(key: string): Promise<void> {
    const holder = await this.options.store.get(key);
    if (holder && this.options.isMine(holder)) {
      if (this.held && holder.lease !== undefined && holder.lease !== this.held.lease) {
        this.held = { ...this.held, lease: holder.lease, modRevision: holder.modRevision };
        await this.remember();
        this.schedule(this.options.renewEveryMs);
      }
      return;
    }
    this.lose(key, holder);
  }

  private lose(key: string, holder: KeyValue | undefined): void {
    this.lostKey = key;
    this.timer?.cancel();
    this.options.onLost?.({ key, holder });
  }

  /** Stops keep-alives (the claim stays for the next agent on this node). Idempotent. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /**
   * Stops, then gives the claim back: revokes its store lease (the key goes with it; a claim without
   * TTL is deleted) and forgets it in `local`. Throws what the store throws (the lease then expires).
   */
  async release(): Promise<void> {
    this.stop();
    while (this.busy) await this.busy;
    const held = this.held;
    if (!held) return;
    const o = this.options;
    if (held.lease !== undefined) await o.store.revokeLease(held.lease);
    else await o.store.delete(held.key, { ifRevision: held.modRevision });
    await o.local.delete(o.localKey);
    this.held = undefined;
  }
}
