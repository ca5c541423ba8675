/**
 * The sleeve's MAC → peer cache, learned from the source MAC of frames received from a peer
 * (as Weave's sleeve learns from the capturing peer's name). Entries expire `ttlMs` after they
 * were last seen (Weave: 10 minutes); the table never holds more than `limit` entries — when full,
 * the least recently seen entry goes — so a flood of forged source MACs costs bounded memory.
 * Expiry is lazy (checked on lookup and when the table is full), so no timer runs. Time comes
 * from a `Clock` (virtual time in tests).
 */
import type { Clock } from "@cnikit/core";
import { ConfigError } from "@cnikit/core";

/** Weave's MAC cache expiry: 10 minutes. */
export const MAC_TTL_MS = 10 * 60 * 1000;
/** Default bound of the table. */
export const MAC_TABLE_LIMIT = 8192;

export interface MacTableOptions {
  clock: Pick<Clock, "now">;
  /** How long an entry lives after it was last seen (ms > 0). Default `MAC_TTL_MS`. */
  ttlMs?: number;
  /** Most entries held (integer ≥ 1). Default `MAC_TABLE_LIMIT`. */
  limit?: number;
}

interface Entry {
  peer: string;
  seen: number;
}

export class MacTable {
  private readonly clock: Pick<Clock, "now">;
  private readonly ttlMs: number;
  private readonly limit: number;
  /** Insertion order = least recently seen first (an entry is re-inserted when seen). */
  private readonly entries = new Map<number, Entry>();
  /** Entries dropped because the table was full. */
  evicted = 0;

  /** @throws ConfigError for a non-positive `ttlMs` or a `limit` that is not an integer ≥ 1. */
  constructor(options: MacTableOptions) {
    const ttl = options.ttlMs ?? MAC_TTL_MS;
    const limit = options.limit ?? MAC_TABLE_LIMIT;
    if (!(ttl > 0) || !Number.isFinite(ttl)) throw new ConfigError({ component: "weave", field: "sleeve.macTtlMs", rule: "must be a finite number of milliseconds > 0", value: ttl });
    if (!Number.isInteger(limit) || limit < 1) throw new ConfigError({ component: "weave", field: "sleeve.macLimit", rule: "must be an integer ≥ 1", value: limit });
    this.clock = options.clock;
    this.ttlMs = ttl;
    this.limit = limit;
  }

  /** Records that `mac` was seen behind `peer` now (moves it if it was behind another peer). */
  learn(mac: number, peer: string): void {
    const now = this.clock.now();
    this.entries.delete(mac);
    this.entries.set(mac, { peer, seen: now });
    if (this.entries.size > this.limit) this.shrink(now);
  }

  /** The peer `mac` was last seen behind, or undefined when unknown or expired. */
  lookup(mac: number): string | undefined {
    const e = this.entries.get(mac);
    if (!e) return undefined;
    if (this.clock.now() - e.seen >= this.ttlMs) {
      this.entries.delete(mac);
      return undefined;
    }
    return e.peer;
  }

  /** Forgets `mac` (it showed up locally). */
  forget(mac: number): void {
    this.entries.delete(mac);
  }

  /** Forgets every MAC behind `peer` (the peer left). */
  forgetPeer(peer: string): void {
    for (const [mac, e] of this.entries) if (e.peer === peer) this.entries.delete(mac);
  }

  /** Entries held (expired ones not yet swept included). */
  get size(): number {
    return this.entries.size;
  }

  /** Drops expired entries, then the least recently seen until the limit holds. */
  private shrink(now: number): void {
    for (const [mac, e] of this.entries) {
      if (now - e.seen < this.ttlMs) break; // insertion order is seen order: the rest are younger
      this.entries.delete(mac);
    }
    while (this.entries.size > this.limit) {
      const oldest = this.entries.keys().next().value as number;
      this.entries.delete(oldest);
      this.evicted++;
    }
  }
}
