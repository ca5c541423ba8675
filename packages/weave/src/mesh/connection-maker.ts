/**
 * Who to dial and when, as weaveworks/mesh's connection maker: every member node but us is a
 * target; a target without a connection is dialled, at once the first time, then after a back-off
 * of 2 s × 1.5 per consecutive failure with ±50 % jitter, capped at 6 min, reset to the start once
 * a connection stayed up for 1 min. A connection closed as a duplicate is not a failure. Also the
 * accept-side token bucket (burst 20, then one per 50 ms).
 */
import type { Clock, Logger, TimerHandle } from "@cnikit/core";

export const RECONNECT_BASE_MS = 2_000;
export const RECONNECT_FACTOR = 1.5;
export const RECONNECT_CAP_MS = 6 * 60_000;
/** A connection up this long resets the target's back-off. */
export const RECONNECT_RESET_AFTER_MS = 60_000;
export const ACCEPT_BURST = 20;
export const ACCEPT_REFILL_MS = 50;

/**
 * The delay before retry number `failures` (≥ 1): 2 s × 1.5^(failures − 1), then ±50 % jitter
 * (`random` in [0, 1)), never more than 6 min.
 */
export function reconnectDelay(failures: number, random: () => number): number {
  const base = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * RECONNECT_FACTOR ** Math.max(0, failures - 1));
  return Math.min(RECONNECT_CAP_MS, base * (0.5 + random()));
}

/** A token bucket on a clock: `burst` tokens, one more every `refillMs`. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly clock: Clock,
    private readonly burst = ACCEPT_BURST,
    private readonly refillMs = ACCEPT_REFILL_MS,
  ) {
    this.tokens = burst;
    this.at = clock.now();
  }

  /** Takes one token; false when none is left. */
  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) / this.refillMs);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface TargetStatus {
  node: string;
  /** Consecutive failures since the last success (or reset). */
  failures: number;
  /** When the next attempt is due (clock ms), undefined while connected or dialling. */
  nextAttemptAt: number | undefined;
  /** Why the last attempt or connection ended. */
  lastError: string | undefined;
  /** Attempts made in total. */
  attempts: number;
}

interface Target extends TargetStatus {
  timer: TimerHandle | undefined;
  dialling: boolean;
  /** Waiting for a free slot under the connection limit (no timer: `slotFreed` wakes it). */
  parked: boolean;
}

export interface ConnectionMakerOptions {
  clock: Clock;
  random: () => number;
  log: Logger;
  /** Opens a connection to `node` (resolves once the transport connected; the handshake follows). */
  dial(node: string): Promise<void>;
  /** Whether a connection to `node` exists (handshaking or up). */
  isConnected(node: string): boolean;
  /** Whether another outbound connection is allowed (the connection limit). */
  canDial(): boolean;
}

export class ConnectionMaker {
  private readonly targets = new Map<string, Target>();
  private stopped = false;

  constructor(private readonly o: ConnectionMakerOptions) {}

  /** Replaces the target set: new nodes are dialled at once, removed ones forgotten. */
  setTargets(nodes: Iterable<string>): void {
    const want = new Set(nodes);
    for (const [node, t] of this.targets) {
      if (want.has(node)) continue;
      t.timer?.cancel();
      this.targets.delete(node);
    }
    // New targets in random order: with a connection limit, peers starting together do not all
    // dial the same first names.
    const fresh = [...want].filter((node) => !this.targets.has(node));
    for (let i = fresh.length - 1; i > 0; i--) {
      const j = Math.floor(this.o.random() * (i + 1));
      [fresh[i], fresh[j]] = [fresh[j]!, fresh[i]!];
    }
    for (const node of fresh) {
      const t: Target = { node, failures: 0, nextAttemptAt: undefined, lastError: undefined, attempts: 0, timer: undefined, dialling: false, parked: false };
      this.targets.set(node, t);
      this.schedule(t, 0);
    }
  }

  /** `free` connection slots came free: that many parked targets, at random, try again within 1 s. */
  slotFreed(free: number): void {
    if (this.stopped || free <= 0) return;
    const parked = [...this.targets.values()].filter((t) => t.parked);
    for (let k = 0; k < free && parked.length > 0; k++) {
      const [t] = parked.splice(Math.floor(this.o.random() * parked.length), 1);
      this.schedule(t!, this.o.random() * 1_000);
    }
  }

  /** A connection to `node` ended after `upMs` (undefined: it never completed its handshake). */
  disconnected(node: string, info: { upMs: number | undefined; reason: string; duplicate: boolean }): void {
    const t = this.targets.get(node);
    if (!t || this.stopped) return;
    t.lastError = info.reason;
    if (info.duplicate) {
      if (!this.o.isConnected(node)) this.schedule(t, 0);
      return;
    }
    if (info.upMs !== undefined && info.upMs >= RECONNECT_RESET_AFTER_MS) t.failures = 0;
    else t.failures++;
    this.schedule(t, t.failures === 0 ? reconnectDelay(1, this.o.random) : reconnectDelay(t.failures, this.o.random));
  }

  /** A connection to `node` completed its handshake. */
  connected(node: string): void {
    const t = this.targets.get(node);
    if (!t) return;
    t.timer?.cancel();
    t.timer = undefined;
    t.nextAttemptAt = undefined;
  }

  status(): TargetStatus[] {
    return [...this.targets.values()].map(({ node, failures, nextAttemptAt, lastError, attempts }) => ({ node, failures, nextAttemptAt, lastError, attempts }));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.targets.values()) t.timer?.cancel();
    this.targets.clear();
  }

  private schedule(t: Target, delay: number): void {
    t.timer?.cancel();
    t.parked = false;
    t.nextAttemptAt = this.o.clock.now() + delay;
    t.timer = this.o.clock.setTimeout(() => {
      t.timer = undefined;
      this.attempt(t);
    }, delay);
  }

  private attempt(t: Target): void {
    if (this.stopped || this.targets.get(t.node) !== t || t.dialling) return;
    t.nextAttemptAt = undefined;
    if (this.o.isConnected(t.node)) return;
    if (!this.o.canDial()) {
      // At the connection limit: wait for a free slot (no timer per waiting target).
      t.parked = true;
      return;
    }
    t.dialling = true;
    t.attempts++;
    this.o.dial(t.node).then(
      () => {
        t.dialling = false;
      },
      (err: unknown) => {
        t.dialling = false;
        if (this.stopped || this.targets.get(t.node) !== t) return;
        t.failures++;
        t.lastError = err instanceof Error ? err.message : String(err);
        const delay = reconnectDelay(t.failures, this.o.random);
        this.o.log.debug("mesh: dial failed", { node: t.node, failures: t.failures, retryInMs: Math.round(delay), error: t.lastError });
        this.schedule(t, delay);
      },
    );
  }
}
