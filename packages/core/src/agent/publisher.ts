/**
 * The dataplane publisher: owns an agent's desired dataplane and its listeners.
 *
 *  - `invalidate()` says "state changed". The plan is recomputed lazily: `current()` after an
 *    invalidate always computes the new plan (never a stale one), even before listeners hear of it.
 *  - Listeners are told at most once per `minIntervalMs` of `clock` (leading edge: the first
 *    change after a quiet spell is told at once; later ones are coalesced into one call when the
 *    interval has passed), and only when the plan really differs from the last one they were told.
 *  - `stop()` cancels the pending timer; afterwards the last plan is kept and nothing is told.
 *
 * "Differs" is by JSON text unless the agent passes `equal` (e.g. `sameJson`, which compares the
 * objects themselves and skips entries a plan shares with the previous one: no O(N) serialisation
 * per plan); then the agent must never mutate a plan it returned.
 */
import type { Clock, TimerHandle } from "../clock.ts";
import type { NodeDataplane } from "../dataplane.ts";

export interface DataplanePublisherOptions {
  clock: Clock;
  /** The first plan (before anything was computed), e.g. `emptyDataplane(node)`. */
  initial: NodeDataplane;
  /** Computes the desired dataplane from the agent's state now. Pure apart from logging. */
  compute: () => NodeDataplane;
  /** Least virtual time between two notifications (default 0: tell at every invalidate). */
  minIntervalMs?: number;
  /** Hears a listener's or `compute`'s exception (they never propagate into the agent). */
  onError?: (msg: string, err: unknown) => void;
  /**
   * Whether two plans are the same (default: equal `JSON.stringify` text). Given it, plans are
   * compared as objects: the agent must not mutate a plan after `compute` returned it.
   */
  equal?: (a: NodeDataplane, b: NodeDataplane) => boolean;
}

/**
 * Whether `JSON.stringify(a) === JSON.stringify(b)` for plain data (objects, arrays, strings,
 * numbers, booleans, null; undefined properties absent, as in JSON; key order counts), without
 * serialising: identical sub-objects are equal at once, and the first difference ends the walk.
 * Values JSON gives special treatment (toJSON, non-finite numbers, bigint, functions) are compared
 * through JSON itself.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return jsonText(a) === jsonText(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (typeof (a as { toJSON?: unknown }).toJSON === "function" || typeof (b as { toJSON?: unknown }).toJSON === "function") return jsonText(a) === jsonText(b);
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(inArray(a[i]), inArray(bb[i]))) return false;
    return true;
  }
  const ka = shownKeys(a as Record<string, unknown>);
  const kb = shownKeys(b as Record<string, unknown>);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i]) return false;
    if (!sameJson((a as Record<string, unknown>)[ka[i]!], (b as Record<string, unknown>)[kb[i]!])) return false;
  }
  return true;
}

/** An array element as JSON writes it: undefined, functions and symbols become null. */
function inArray(x: unknown): unknown {
  const t = typeof x;
  return t === "undefined" || t === "function" || t === "symbol" ? null : x;
}

/** The keys JSON.stringify writes, in its order. */
function shownKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).filter((k) => {
    const t = typeof o[k];
    return t !== "undefined" && t !== "function" && t !== "symbol";
  });
}

function jsonText(x: unknown): string | undefined {
  return JSON.stringify(x);
}

export class DataplanePublisher {
  private plan: NodeDataplane;
  /** JSON text of `plan` and of the plan last told (only without `equal`). */
  private planJson: string;
  private toldJson: string;
  /** The plan last told (with `equal`). */
  private told: NodeDataplane;
  private dirty = false;
  private stopped = false;
  private timer: TimerHandle | undefined;
  private lastTold = Number.NEGATIVE_INFINITY;
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();

  constructor(private readonly options: DataplanePublisherOptions) {
    this.plan = options.initial;
    this.told = options.initial;
    this.planJson = options.equal ? "" : JSON.stringify(options.initial);
    this.toldJson = this.planJson;
  }

  /** The desired dataplane now (recomputed if state changed since the last computation). */
  current(): NodeDataplane {
    if (this.dirty && !this.stopped) this.recompute();
    return this.plan;
  }

  /**
   * State changed: the next `current()` recomputes, and listeners are told (coalesced). With
   * `defer`, listeners are told from a timer on `clock` (0 ms, or what `minIntervalMs` still asks)
   * instead of at once, so a burst of changes within one instant (a cold start's BGP UPDATEs) costs
   * one plan; a later plain `invalidate` in that instant tells at once. `current()` is never stale.
   */
  invalidate(options: { defer?: boolean } = {}): void {
    if (this.stopped) return;
    this.dirty = true;
    const min = this.options.minIntervalMs ?? 0;
    const wait = this.lastTold + min - this.options.clock.now();
    if (!options.defer && (min <= 0 || wait <= 0)) {
      this.timer?.cancel();
      this.timer = undefined;
      this.tell();
      return;
    }
    if (this.timer) return;
    this.timer = this.options.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.tell();
      },
      Math.max(0, wait),
    );
  }

  /** Recomputes and tells listeners now if the plan changed (skips the coalescing wait). */
  flush(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.tell();
  }

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: (dp: NodeDataplane) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Cancels the pending notification; the plan is frozen as it is now. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.current();
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private recompute(): void {
    this.dirty = false;
    let next: NodeDataplane;
    try {
      next = this.options.compute();
    } catch (err) {
      this.options.onError?.("planning failed; keeping the previous dataplane", err);
      return;
    }
    const equal = this.options.equal;
    if (equal) {
      if (next !== this.plan && !equal(next, this.plan)) this.plan = next;
      return;
    }
    const json = JSON.stringify(next);
    if (json === this.planJson) return;
    this.plan = next;
    this.planJson = json;
  }

  private tell(): void {
    if (this.stopped) return;
    this.current();
    const equal = this.options.equal;
    if (equal) {
      if (this.plan === this.told || equal(this.plan, this.told)) return;
      this.told = this.plan;
    } else {
      if (this.planJson === this.toldJson) return;
      this.toldJson = this.planJson;
    }
    this.lastTold = this.options.clock.now();
    const plan = this.plan;
    for (const listener of [...this.listeners]) {
      try {
        listener(plan);
      } catch (err) {
        this.options.onError?.("a dataplane listener threw", err);
      }
    }
  }
}
