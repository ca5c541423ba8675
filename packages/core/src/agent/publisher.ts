/**
 * The dataplane publisher: owns an agent's desired dataplane and its listeners.
 *
 *  - `invalidate()` says "state changed". The plan is recomputed lazily: `current()` after an
 *    invalidate always computes the new plan (never a stale one), even before listeners hear of it.
 *  - Listeners are told at most once per `minIntervalMs` of `clock` (leading edge: the first
 *    change after a quiet spell is told at once; later ones are coalesced into one call when the
 *    interval has passed), and only when the plan really differs from the last one they were told.
 *  - `stop()` cancels the pending timer; afterwards the last plan is kept and nothing is told.
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
}

export class DataplanePublisher {
  private plan: NodeDataplane;
  private planJson: string;
  private toldJson: string;
  private dirty = false;
  private stopped = false;
  private timer: TimerHandle | undefined;
  private lastTold = Number.NEGATIVE_INFINITY;
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();

  constructor(private readonly options: DataplanePublisherOptions) {
    this.plan = options.initial;
    this.planJson = JSON.stringify(options.initial);
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
    const json = JSON.stringify(next);
    if (json === this.planJson) return;
    this.plan = next;
    this.planJson = json;
  }

  private tell(): void {
    if (this.stopped) return;
    this.current();
    if (this.planJson === this.toldJson) return;
    this.toldJson = this.planJson;
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
