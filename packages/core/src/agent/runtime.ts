/**
 * `AgentRuntime`: the part of every NodeAgent that is the same in every backend. A backend extends
 * it and supplies only what is its own:
 *
 *  - `join(signal)`: take the node's share (lease, blocks, ring share), restore pods from
 *    `ctx.local` (`restore(record)`), start informers with `signal`; `started()` runs once running;
 *  - `releaseShare()`: give the share back on `stop({release: true})`;
 *  - `reserve(pod)` / `unreserve(ref, record)`: reserve and persist one pod's address, and forget it;
 *  - `result(record)`: the CNI result of an attachment; `plan()`: the desired dataplane now;
 *  - optionally `verify(record, dataplane)` (CHECK) and `persistedRefs()` (attachments GC must
 *    see that are only in persistent state).
 *
 * The runtime owns the rest: phases (new → starting → running → stopped) and STATUS (50 before
 * start and after stop, 51 "impaired" with a reason), `start()` once (a second call returns the
 * first promise), idempotent `stop()`, `requireRunning(op)` (NotReadyError, 50), per-attachment
 * serialisation of ADD/DEL/CHECK (same (containerId, ifName) in order, different ones concurrently),
 * idempotent ADD (a second ADD returns the first reservation's result), DEL that always releases,
 * GC over the node's attachments (continues past failures, one TryAgainError at the end), the
 * dataplane publisher (coalesced on `ctx.clock`, never stale), and the timers and abort signal that
 * `stop()` cancels.
 */
import type { AgentContext, AgentStatus, AttachResult, NodeAgent, PodAttachment, PodRef } from "../backend.ts";
import type { TimerHandle } from "../clock.ts";
import { emptyDataplane, podKey } from "../dataplane.ts";
import type { NodeDataplane } from "../dataplane.ts";
import { CheckFailedError, ConfigError, NotReadyError, TryAgainError, UnknownContainerError } from "../errors.ts";
import { DataplanePublisher } from "./publisher.ts";
import { KeyedSerializer } from "./serial.ts";

/** Lifecycle phases of an agent. */
export type AgentPhase = "new" | "starting" | "running" | "stopped";

export interface AgentRuntimeOptions {
  /** The backend's name, used in every message: `[<component>] ...`. */
  component: string;
  /** Least virtual time between two dataplane notifications (default 0: tell at once). */
  minReplanIntervalMs?: number;
  /**
   * How plans are compared ("did it change?"): default by JSON text; the publisher's `sameJson`
   * compares objects without serialising (O(changed) when plans share their unchanged entries),
   * and then `plan()` must never mutate a plan it returned before.
   */
  samePlan?: (a: NodeDataplane, b: NodeDataplane) => boolean;
}

/** The message of anything thrown. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export abstract class AgentRuntime<C, R extends PodRef = PodRef> implements NodeAgent {
  protected readonly ctx: AgentContext<C>;
  protected readonly component: string;
  /** The node's attachments, by `podKey`. */
  protected readonly attachments = new Map<string, R>();
  private phaseNow: AgentPhase = "new";
  private startPromise: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly timers = new Set<TimerHandle>();
  private readonly serializer = new KeyedSerializer();
  private readonly publisher: DataplanePublisher;
  private impairedReason: string | undefined;

  constructor(ctx: AgentContext<C>, options: AgentRuntimeOptions) {
    this.ctx = ctx;
    this.component = options.component;
    this.publisher = new DataplanePublisher({
      clock: ctx.clock,
      initial: emptyDataplane(ctx.node.name),
      compute: () => (this.phaseNow === "running" ? this.plan() : emptyDataplane(ctx.node.name)),
      minIntervalMs: options.minReplanIntervalMs ?? 0,
      onError: (msg, err) => this.warn(msg, err),
      ...(options.samePlan ? { equal: options.samePlan } : {}),
    });
  }

  // ---- what the backend supplies ----

  /** Takes the node's share and restores state; runs once, from `start()`. */
  protected abstract join(signal: AbortSignal): Promise<void>;
  /** Reserves and persists one pod's address. Leaves nothing reserved when it throws. */
  protected abstract reserve(pod: PodAttachment): Promise<R>;
  /**
   * Forgets one attachment (persistent record first, then memory); `record` is absent when only
   * persistent state knows it. Throws `TryAgainError` when the release could not be recorded.
   */
  protected abstract unreserve(ref: PodRef, record: R | undefined): Promise<void>;
  /** The CNI result of an attachment. */
  protected abstract result(record: R): AttachResult;
  /** The desired dataplane from the state now; called only while running. */
  protected abstract plan(): NodeDataplane;
  /** Runs once the agent is running (publications, first resync). */
  protected started(): void {}
  /** Gives the node's share back (`stop({release: true})`). Must not throw. */
  protected async releaseShare(): Promise<void> {}
  /** CHECK of one attachment beyond "it is in the dataplane". Throws `CheckFailedError`. */
  protected async verify(_record: R, _dataplane: NodeDataplane): Promise<void> {}
  /** Attachments only persistent state knows (GC releases those too). */
  protected async persistedRefs(): Promise<PodRef[]> {
    return [];
  }
  /** An attachment was added (after `reserve`) or removed (after `unreserve`). */
  protected attached(_record: R): void {}
  protected detached(_key: string, _record: R): void {}

  // ---- helpers for the backend ----

  protected get phase(): AgentPhase {
    return this.phaseNow;
  }

  /** Aborts at `stop()` (and when `start()` fails): give it to informers and sleeps. */
  protected get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Puts a restored attachment back (from `join`). */
  protected restore(record: R): void {
    this.attachments.set(podKey(record), record);
  }

  /**
   * State changed: replan (coalesced; `dataplane()` is never stale). `defer`: tell listeners from
   * a 0 ms timer, so a burst of changes in one instant of `ctx.clock` costs one plan.
   */
  protected replan(options: { defer?: boolean } = {}): void {
    this.publisher.invalidate(options);
  }

  /** Runs `fn` every `ms` on `ctx.clock` until stop; a run still going is not overlapped. */
  protected every(ms: number, fn: () => Promise<void> | void): void {
    let running = false;
    const handle = this.ctx.clock.setInterval(() => {
      if (running || this.abort.signal.aborted) return;
      running = true;
      Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.warn("periodic task failed", err))
        .finally(() => (running = false));
    }, ms);
    this.timers.add(handle);
  }

  /** Runs `fn` once after `ms` on `ctx.clock` unless stopped first. */
  protected after(ms: number, fn: () => void): TimerHandle {
    const handle = this.ctx.clock.setTimeout(() => {
      this.timers.delete(handle);
      if (!this.abort.signal.aborted) fn();
    }, ms);
    this.timers.add(handle);
    return { cancel: () => (handle.cancel(), this.timers.delete(handle)) };
  }

  /** Marks the agent impaired (STATUS 51) with a reason a person can act on; logged once. */
  protected setImpaired(reason: string): void {
    if (this.impairedReason === reason) return;
    this.impairedReason = reason;
    this.ctx.log.error(`[${this.component}] ${reason}`);
  }

  protected clearImpaired(): void {
    this.impairedReason = undefined;
  }

  protected warn(msg: string, err: unknown): void {
    this.ctx.log.warn(`[${this.component}] ${msg}: ${errorText(err)}`);
  }

  /** Throws `NotReadyError` (50) unless the agent is running. */
  protected requireRunning(op: string): void {
    if (this.phaseNow !== "running") {
      throw new NotReadyError(`[${this.component}] ${op} on node ${this.ctx.node.name}: the agent is ${this.phaseNow === "stopped" ? "stopped" : "not started"}`);
    }
  }

  // ---- NodeAgent ----

  /** Joins (see `join`). A second call returns the first call's promise. */
  start(): Promise<void> {
    this.startPromise ??= this.run();
    return this.startPromise;
  }

  private async run(): Promise<void> {
    this.phaseNow = "starting";
    try {
      await this.join(this.abort.signal);
    } catch (err) {
      if (this.phaseNow === "starting") this.abort.abort();
      throw err;
    }
    if (this.phaseNow !== "starting") return;
    this.phaseNow = "running";
    this.started();
    this.replan();
  }

  /**
   * Stops informers and timers (the abort signal); with `release: true`, once `start()` settled,
   * gives the share back. Idempotent; never throws.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (this.phaseNow === "stopped") return;
    this.publisher.stop(); // keeps the last plan (computed while still running)
    this.phaseNow = "stopped";
    this.abort.abort();
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    if (!options.release) return;
    await this.startPromise?.catch(() => undefined);
    try {
      await this.releaseShare();
    } catch (err) {
      this.warn("could not release the node's share", err);
    }
  }

  /** CNI ADD; see `NodeAgent.attach`. */
  attach(pod: PodAttachment): Promise<AttachResult> {
    return this.serializer.run(podKey(pod), async () => {
      this.requireRunning("ADD");
      if (!pod.containerId) throw new ConfigError({ component: this.component, field: "containerId", rule: "must not be empty" });
      if (!pod.ifName) throw new ConfigError({ component: this.component, field: "ifName", rule: "must not be empty" });
      const existing = this.attachments.get(podKey(pod));
      if (existing) return this.result(existing);
      const record = await this.reserve(pod);
      this.attachments.set(podKey(pod), record);
      this.attached(record);
      this.replan();
      return this.result(record);
    });
  }

  /** CNI DEL; see `NodeAgent.detach`. Works in every phase (persistent state is released). */
  detach(ref: PodRef): Promise<void> {
    return this.serializer.run(podKey(ref), () => this.release(ref));
  }

  private async release(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    const record = this.attachments.get(key);
    await this.unreserve(ref, record);
    this.attachments.delete(key);
    if (record) {
      this.detached(key, record);
      this.replan();
    }
  }

  /** CNI CHECK; see `NodeAgent.check`. */
  check(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    return this.serializer.run(key, async () => {
      this.requireRunning("CHECK");
      const record = this.attachments.get(key);
      if (!record) throw new UnknownContainerError(`[${this.component}] no attachment ${key} on node ${this.ctx.node.name}`);
      const dataplane = this.dataplane();
      await this.verify(record, dataplane);
      if (!dataplane.pods.some((p) => p.key === key)) {
        throw new CheckFailedError(`[${this.component}] ${key} has no interface in the dataplane of node ${this.ctx.node.name}`);
      }
    });
  }

  /** CNI GC; see `NodeAgent.gc`. Each release runs serialised with its attachment's other calls. */
  async gc(valid: PodRef[]): Promise<void> {
    const keep = new Set(valid.map((v) => podKey(v)));
    const known = new Map<string, PodRef>();
    for (const record of this.attachments.values()) known.set(podKey(record), record);
    for (const ref of await this.persistedRefs().catch(() => [] as PodRef[])) known.set(podKey(ref), ref);
    const failures: string[] = [];
    for (const [key, ref] of known) {
      if (keep.has(key)) continue;
      try {
        await this.serializer.run(key, () => this.release(ref));
      } catch (err) {
        failures.push(`${key}: ${errorText(err)}`);
      }
    }
    if (failures.length > 0) {
      throw new TryAgainError(`[${this.component}] GC could not release ${failures.length} attachment(s)`, { details: failures.join("; ") });
    }
  }

  /** CNI STATUS: 50 unless running, 51 when impaired. */
  status(): AgentStatus {
    if (this.phaseNow !== "running") {
      return { ready: false, code: 50, reason: `[${this.component}] agent on node ${this.ctx.node.name} is ${this.phaseNow === "stopped" ? "stopped" : "not started"}` };
    }
    if (this.impairedReason !== undefined) return { ready: false, code: 51, reason: `[${this.component}] ${this.impairedReason}` };
    return { ready: true };
  }

  /** The desired dataplane now (never stale; do not mutate it). */
  dataplane(): NodeDataplane {
    return this.publisher.current();
  }

  /** Subscribes to dataplane changes; returns the unsubscribe function. */
  onDataplaneChange(listener: (dataplane: NodeDataplane) => void): () => void {
    return this.publisher.subscribe(listener);
  }
}
