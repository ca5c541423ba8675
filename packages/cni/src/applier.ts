/**
 * Applying the agent's desired dataplane. `DataplaneApplier` is the small interface cnikitd needs
 * from a renderer (@cnikit/linux's `LinuxRenderer` fits it; tests use a fake). `ApplyLoop`
 * coalesces: however many ADDs, DELs and agent changes ask for an apply while one runs, the next
 * apply renders the newest dataplane once for all of them.
 */
import { CniCode, CniError, podKey } from "@cnikit/core";
import type { Logger, NodeDataplane, PodAttachment, PodInterface } from "@cnikit/core";

/**
 * What an apply may report back (@cnikit/linux's `ApplyReport` has this shape): pods that could
 * not be attached (rolled back by the renderer while the rest was applied), and facts about the
 * pods in place that a CNI result wants (the host veth's MAC).
 */
export interface ApplyOutcome {
  failedPods?: readonly { key: string; error: string }[];
  pods?: readonly { key: string; hostIf?: string; hostMac?: string; containerMac?: string }[];
}

/** What cnikitd needs from a renderer. */
export interface DataplaneApplier {
  /**
   * Makes the node match `dataplane` (a reconcile: applying the same dataplane twice changes
   * nothing). Rejects when the node could not be brought to it; a pod that alone failed may
   * instead be listed in the resolved `ApplyOutcome.failedPods`.
   */
  apply(dataplane: NodeDataplane): Promise<ApplyOutcome | unknown>;
  /**
   * CNI CHECK's kernel half: what is wrong with `pod`'s interfaces and routes (empty = fine).
   * `expect` overrides the MAC/MTU to expect, when a chained plugin's result says it changed them.
   */
  checkPod?(pod: PodInterface, expect?: { mac?: string; mtu?: number }): Promise<string[]>;
  /** Releases the renderer's resources. Must leave the dataplane in place (pods keep working). */
  close?(): Promise<void>;
}

/** An applier that only remembers what it was given (renderer `none`: a daemon without a kernel dataplane). */
export class RecordingApplier implements DataplaneApplier {
  /** Every dataplane applied, oldest first (the last `keep`). */
  readonly applied: NodeDataplane[] = [];
  constructor(private readonly keep = 1) {}

  /** Records `dataplane`; never fails. */
  async apply(dataplane: NodeDataplane): Promise<void> {
    this.applied.push(dataplane);
    if (this.applied.length > this.keep) this.applied.splice(0, this.applied.length - this.keep);
  }

  /** Reports a pod missing from the last applied dataplane. */
  async checkPod(pod: PodInterface): Promise<string[]> {
    const last = this.applied.at(-1);
    return last?.pods.some((p) => p.key === pod.key) ? [] : [`${pod.key} is not in the applied dataplane`];
  }
}

/** One successful apply: the dataplane it rendered and what the renderer reported. */
export interface AppliedDataplane {
  dataplane: NodeDataplane;
  outcome: ApplyOutcome;
}

/**
 * How one apply that a request waited for ended: applied, or failed with the dataplane it tried
 * to render (so a caller can tell whether other new pods rode in the same apply).
 */
export type ApplyAttempt = { ok: true; applied: AppliedDataplane } | { ok: false; error: unknown; dataplane: NodeDataplane | undefined };

interface Waiter {
  settle: (attempt: ApplyAttempt) => void;
}

function outcomeOf(result: unknown): ApplyOutcome {
  if (typeof result !== "object" || result === null) return {};
  const r = result as ApplyOutcome;
  const out: ApplyOutcome = {};
  if (Array.isArray(r.failedPods)) out.failedPods = r.failedPods;
  if (Array.isArray(r.pods)) out.pods = r.pods;
  return out;
}

/** Options of `ApplyLoop`. */
export interface ApplyLoopOptions {
  applier: DataplaneApplier;
  /** The desired dataplane now (read at the start of each apply). */
  source: () => NodeDataplane;
  log: Logger;
  /** First retry delay after a failed apply nobody retries (doubles up to `maxRetryMs`). Default 1000. */
  retryMs?: number;
  maxRetryMs?: number;
}

/** Counters of an `ApplyLoop`. */
export interface ApplyLoopStats {
  applies: number;
  failures: number;
  /** Requests served (each ADD / DEL / change asks once): requests / applies is the batching factor. */
  requests: number;
}

/**
 * Runs applies one at a time and batches requests: `request()` resolves with the dataplane (and
 * the renderer's report) of the first apply that *starts* after the call (so it contains every change made before the call), or
 * rejects with that apply's error. Requests arriving while an apply runs share the next one. After
 * a failure the loop retries by itself with back-off until an apply succeeds.
 */
export class ApplyLoop {
  private waiters: Waiter[] = [];
  private running = false;
  private scheduled = false;
  private closed = false;
  private current: Promise<void> = Promise.resolve();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryDelay: number;
  private last: NodeDataplane | undefined;
  private lastOutcome: ApplyOutcome = {};
  private error: unknown;
  private readonly counters: ApplyLoopStats = { applies: 0, failures: 0, requests: 0 };

  constructor(private readonly options: ApplyLoopOptions) {
    this.retryDelay = options.retryMs ?? 1000;
  }

  /** The last dataplane applied successfully, if any. */
  get lastApplied(): NodeDataplane | undefined {
    return this.last;
  }

  /** The error of the last apply when it failed (cleared by the next success). */
  get lastError(): unknown {
    return this.error;
  }

  /**
   * Whether the last successful apply put `key`'s interfaces in place (in its dataplane and not
   * reported failed). Before this loop's first apply (a restarted daemon) it asks for one first;
   * a failing apply counts as "not in place".
   */
  async made(key: string): Promise<boolean> {
    let last = this.last;
    let outcome = this.lastOutcome;
    if (last === undefined) {
      const applied = await this.request().catch(() => undefined);
      if (applied === undefined) return false;
      last = applied.dataplane;
      outcome = applied.outcome;
    }
    return last.pods.some((p) => p.key === key) && !(outcome.failedPods ?? []).some((f) => f.key === key);
  }

  /**
   * The plugin's rule for an ADD of an attachment the agent may already hold (SPEC §2 ADD: "If an
   * interface of the requested name already exists in the container, the CNI plugin MUST return
   * with an error"; DESIGN.md checklist items 26 and 55). `desired` is the agent's dataplane now. Returns
   * whether the agent already holds `pod` (a failed ADD then must not undo it). Throws, leaving
   * every reservation and interface untouched, `CniError` 108 (`AttachmentExists`) when:
   *  - the agent holds the attachment for another network namespace (the first netns is never
   *    handed back as `sandbox`), or
   *  - it holds it for this netns and an apply already made its interface.
   * An attachment held but never made — a runtime retrying an ADD whose reply was lost before the
   * interface was made (its apply failed, or the daemon restarted before applying) — is let
   * through: the agent's `attach` is idempotent (same address, no second one) and the apply makes
   * the interface, so the retry finishes what the first ADD started.
   */
  async admitAdd(pod: PodAttachment, desired: NodeDataplane): Promise<boolean> {
    const key = podKey(pod);
    const held = desired.pods.find((p) => p.key === key);
    if (held === undefined) return false;
    const again = "DEL the attachment before adding it again";
    if (held.netns !== undefined && held.netns !== pod.netns) {
      throw new CniError(CniCode.AttachmentExists, `[cnikitd] ADD ${key}: the attachment already exists in network namespace ${held.netns}, not ${pod.netns}: ${again}`, { details: key });
    }
    if (await this.made(key)) {
      const addresses = held.addresses.length > 0 ? ` with ${held.addresses.join(", ")}` : "";
      throw new CniError(CniCode.AttachmentExists, `[cnikitd] ADD ${key}: interface ${pod.ifName} already exists in the container ${pod.netns}${addresses}: ${again}`, { details: key });
    }
    return true;
  }

  /** Counters (a copy). */
  stats(): ApplyLoopStats {
    return { ...this.counters };
  }

  /**
   * Asks for an apply and waits for it (see the class comment). Rejects with the apply's error, or
   * with an Error when the loop is closed first.
   */
  async request(): Promise<AppliedDataplane> {
    const attempt = await this.attempt();
    if (attempt.ok) return attempt.applied;
    throw attempt.error;
  }

  /**
   * As `request`, but never rejects: resolves with how the apply ended, and for a failed one the
   * dataplane it tried (undefined when the loop closed first or the source threw).
   */
  attempt(): Promise<ApplyAttempt> {
    if (this.closed) return Promise.resolve({ ok: false, error: new Error("[cnikitd] the apply loop is closed"), dataplane: undefined });
    this.counters.requests++;
    return new Promise<ApplyAttempt>((settle) => {
      this.waiters.push({ settle });
      this.schedule();
    });
  }

  /** Asks for an apply without waiting; a failure is logged (and retried). */
  kick(): void {
    if (this.closed) return;
    this.request().catch(() => undefined);
  }

  private schedule(): void {
    if (this.running || this.scheduled || this.closed) return;
    this.scheduled = true;
    // One macrotask of slack: ADDs finishing in the same turn share the apply.
    setImmediate(() => {
      this.scheduled = false;
      this.current = this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.waiters.length > 0 && !this.closed) {
        const batch = this.waiters.splice(0);
        this.counters.applies++;
        let dp: NodeDataplane | undefined;
        try {
          dp = this.options.source();
          const outcome = outcomeOf(await this.options.applier.apply(dp));
          this.last = dp;
          this.lastOutcome = outcome;
          this.error = undefined;
          this.retryDelay = this.options.retryMs ?? 1000;
          if (this.retryTimer) clearTimeout(this.retryTimer);
          this.retryTimer = undefined;
          const applied = { dataplane: dp, outcome };
          for (const w of batch) w.settle({ ok: true, applied });
        } catch (err) {
          this.counters.failures++;
          this.error = err;
          this.options.log.warn("applying the dataplane failed", { error: err, waiting: batch.length });
          for (const w of batch) w.settle({ ok: false, error: err, dataplane: dp });
          this.scheduleRetry();
        }
      }
    } finally {
      this.running = false;
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(delay * 2, this.options.maxRetryMs ?? 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.error !== undefined) this.kick();
    }, delay);
    this.retryTimer.unref?.();
  }

  /** Stops: waits for the apply in progress; pending requests reject. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.current.catch(() => undefined);
    for (const w of this.waiters.splice(0)) w.settle({ ok: false, error: new Error("[cnikitd] the apply loop closed before this apply ran"), dataplane: undefined });
  }
}
