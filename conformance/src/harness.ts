/**
 * Building blocks the checks share: clusters with the right topology and a counted store, figures
 * (virtual/wall time, messages, bytes, store operations), stepping the clock until a condition
 * holds, the section-A invariants, and readable descriptions of pods, endpoints and errors.
 */
import { MemoryDatastore, Prefix, VirtualClock, canonicalDataplane, flushAsync, topologyNeedsOf } from "@cnikit/core";
import type {
  Datastore,
  DeleteOptions,
  DeleteResult,
  KeyValue,
  LeaseId,
  LeaseInfo,
  ListResult,
  NodeAgent,
  NodeDataplane,
  PutOptions,
  TxnCompare,
  TxnOp,
  TxnResult,
  WatchEvent,
  WatchOptions,
  WriteResult,
} from "@cnikit/core";
import { SimCluster, clusterTopologyOf, defaultTopology, singleSubnetTopology } from "@cnikit/sim";
import type { Endpoint, PacketResult, SimPod, SimTopology } from "@cnikit/sim";
import type { CheckContext, CheckMetrics } from "./types.ts";
import { IoPacedClock, IoTracker } from "./external-store.ts";

/** A Datastore that counts the operations it forwards (for the report's `storeOps`). */
export class CountingDatastore implements Datastore {
  ops = 0;
  constructor(readonly inner: Datastore) {}
  get(key: string): Promise<KeyValue | undefined> {
    this.ops++;
    return this.inner.get(key);
  }
  put(key: string, value: string, options?: PutOptions): Promise<WriteResult> {
    this.ops++;
    return this.inner.put(key, value, options);
  }
  delete(key: string, options?: DeleteOptions): Promise<DeleteResult> {
    this.ops++;
    return this.inner.delete(key, options);
  }
  list(prefix: string): Promise<ListResult> {
    this.ops++;
    return this.inner.list(prefix);
  }
  txn(compares: TxnCompare[], success: TxnOp[]): Promise<TxnResult> {
    this.ops++;
    return this.inner.txn(compares, success);
  }
  watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> {
    this.ops++;
    return this.inner.watch(prefix, options);
  }
  grantLease(ttlSeconds: number): Promise<LeaseId> {
    this.ops++;
    return this.inner.grantLease(ttlSeconds);
  }
  keepAlive(lease: LeaseId): Promise<number> {
    this.ops++;
    return this.inner.keepAlive(lease);
  }
  revokeLease(lease: LeaseId): Promise<void> {
    this.ops++;
    return this.inner.revokeLease(lease);
  }
  leaseInfo(lease: LeaseId): Promise<LeaseInfo | undefined> {
    this.ops++;
    return this.inner.leaseInfo(lease);
  }
  revision(): Promise<number> {
    return this.inner.revision();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A simulated cluster plus the handles the checks need (the raw store for fault injection). */
export interface Harness {
  /**
   * The cluster, with its asynchronous operations (addNode, addNodes, addPod, removePod,
   * removeNode, restartAgent, close) driven: while one waits on a timer (a back-off, a retry), the
   * virtual clock jumps to that timer, as time would pass on a real cluster.
   */
  cluster: SimCluster<unknown>;
  /** The same cluster without driving: for operations started now and awaited later. */
  sim: SimCluster<unknown>;
  /** The in-memory cluster store (for fault injection); undefined when the run uses an external store. */
  memory: MemoryDatastore | undefined;
  /** The external cluster store (emptied and closed with the harness); undefined for the in-memory one. */
  external?: Datastore;
  store: CountingDatastore;
  clock: VirtualClock;
  /** Awaits `op` while letting virtual time flow (see `drive`). */
  drive<T>(op: Promise<T>): Promise<T>;
}

/** Virtual time an operation may wait (on back-offs and retries) before the suite gives up on it. */
export const DRIVE_LIMIT_MS = 300_000;

/**
 * Awaits `op` while letting virtual time flow: whenever the operation is blocked and a timer is
 * pending, the clock jumps to that timer. An operation that completes without waiting moves the
 * clock not at all. Throws an Error naming the limit when it is still pending after `limitMs` of
 * virtual time.
 */
export async function drive<T>(clock: VirtualClock, op: Promise<T>, what = "operation", limitMs = DRIVE_LIMIT_MS): Promise<T> {
  let settled = false;
  op.then(
    () => (settled = true),
    () => (settled = true),
  );
  const start = clock.now();
  await flushAsync();
  while (!settled) {
    // On an external store the operation may be waiting on I/O, not on a timer: let it land first.
    if (clock instanceof IoPacedClock) {
      await clock.quiet();
      if (settled) break;
    }
    const next = clock.nextAt();
    if (next === undefined) {
      await flushAsync(10);
      if (!settled && clock.nextAt() === undefined) break;
      continue;
    }
    if (next - start > limitMs) throw new Error(`${what} still had not completed after ${limitMs} ms of virtual time`);
    await clock.advance(Math.max(0, next - clock.now()));
  }
  return op;
}

const DRIVEN = new Set(["addNode", "addNodes", "addPod", "removePod", "removeNode", "restartAgent", "close"]);

/** A view of `cluster` whose asynchronous operations are driven on `clock`. */
function drivenCluster(cluster: SimCluster<unknown>, clock: VirtualClock): SimCluster<unknown> {
  return new Proxy(cluster, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (typeof prop === "string" && DRIVEN.has(prop)) {
        return (...args: unknown[]) => drive(clock, fn.apply(target, args) as Promise<unknown>, `${prop}()`);
      }
      return fn.bind(target);
    },
  });
}

/** A view of an agent whose asynchronous CNI operations are driven on `clock`. */
export function drivenAgent(agent: NodeAgent, clock: VirtualClock): NodeAgent {
  const ops = new Set(["start", "stop", "attach", "detach", "check", "gc"]);
  return new Proxy(agent, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (typeof prop === "string" && ops.has(prop)) {
        return (...args: unknown[]) => drive(clock, fn.apply(target, args) as Promise<unknown>, `agent.${prop}()`);
      }
      return fn.bind(target);
    },
  });
}

export interface HarnessOptions {
  /** A parsed config other than the run's (e.g. one the backend should refuse at start). */
  config?: unknown;
  /** An underlay other than `topologyFor(ctx)` (e.g. a small node subnet that runs out). */
  topology?: SimTopology;
}

/** Mixes a base seed with a salt (check id) into a 31-bit seed. */
export function seedFor(base: number, salt: string): number {
  let h = (0x811c9dc5 ^ (base | 0)) >>> 0;
  for (let i = 0; i < salt.length; i++) {
    h ^= salt.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0x7fffffff;
}

/**
 * The underlay the suite builds for a config: the run's own topology when given, else one L2
 * subnet when the backend's `topologyNeeds(config)` says so (core's `topologyNeedsOf`), else two
 * subnets joined by a router. Decided from the config alone: the suite needs it before any
 * cluster exists, and so before `summarize(config, cluster)` can be asked. Pure; throws what the
 * backend's `topologyNeeds` (or, for older backends, `summarize`) throws.
 */
export function topologyFor(ctx: { backend: CheckContext["backend"]; config: unknown; topology?: SimTopology | undefined }): SimTopology {
  return ctx.topology ?? (topologyNeedsOf(ctx.backend, ctx.config).singleSubnet ? singleSubnetTopology() : defaultTopology());
}

/**
 * What a config promises on the underlay the suite builds for it: `summarize(config, cluster)`
 * with that topology's node subnets and no nodes yet (promises must hold for any nodes on them).
 */
export function summaryFor(ctx: { backend: CheckContext["backend"]; config: unknown; topology?: SimTopology | undefined }): CheckContext["summary"] {
  return ctx.backend.summarize(ctx.config, clusterTopologyOf(topologyFor(ctx)));
}

/**
 * Creates an empty cluster with the topology the backend needs (`topologyFor`). The simulator
 * provides membership and runs the backend's cluster-level controller (if any) before the first
 * node joins.
 */
export function createHarness(ctx: CheckContext, salt: string, options: HarnessOptions = {}): Harness {
  const topology = options.topology ?? topologyFor(ctx);
  const config = "config" in options ? options.config : ctx.config;
  if (ctx.store) {
    // An external store: a fresh one per cluster, and a clock paced by its I/O (external-store.ts).
    const io = new IoTracker();
    const clock = new IoPacedClock(io);
    const external = ctx.store.create(`${salt}-${++externalClusters}`);
    const store = new CountingDatastore(io.wrap(external));
    const sim = SimCluster.create<unknown>({ backend: ctx.backend, config, topology, seed: seedFor(ctx.seed, salt), clock, store, ...(ctx.nodeMetadata ? { nodeMetadata: ctx.nodeMetadata } : {}) });
    return { cluster: drivenCluster(sim, clock), sim, memory: undefined, external, store, clock, drive: (op) => drive(clock, op) };
  }
  const clock = new VirtualClock();
  const memory = new MemoryDatastore({ clock });
  const store = new CountingDatastore(memory);
  const sim = SimCluster.create<unknown>({ backend: ctx.backend, config, topology, seed: seedFor(ctx.seed, salt), clock, store, ...(ctx.nodeMetadata ? { nodeMetadata: ctx.nodeMetadata } : {}) });
  return { cluster: drivenCluster(sim, clock), sim, memory, store, clock, drive: (op) => drive(clock, op) };
}

let externalClusters = 0;

/**
 * Lets the cluster run for the backend's convergence bound (less when it goes idle: no timer left)
 * and on until its desired state has settled: what a check does before it compares states. A
 * change late in the bound is waited out (the quiet period starts again from it); the result says
 * whether the state settled, and `virtualMs` when it last changed. A state that still changes after
 * the bound is `converged: false` with a "never settled" problem.
 */
export function settle(h: Harness, ctx: CheckContext, limitMs = ctx.summary.convergenceMs): Promise<ConvergeResult> {
  return converge(h, limitMs, () => undefined, { observeMs: limitMs });
}

/** Adds `perNode` pods on each given node (nodes in parallel, pods on one node one after another). */
export async function addPods(h: Harness, nodes: string[], perNode: number, prefix = "p"): Promise<SimPod[]> {
  const out: SimPod[][] = await h.drive(
    Promise.all(
      nodes.map(async (node) => {
        const pods: SimPod[] = [];
        for (let i = 0; i < perNode; i++) pods.push(await h.sim.addPod(node, { name: `${prefix}-${node}-${i}` }));
        return pods;
      }),
    ),
  );
  return out.flat();
}

/** A span's figures: `startedAt` is the clock's time at the start, `stop()` returns the figures. */
export function startMetrics(h: Harness): { startedAt: number; stop(): CheckMetrics } {
  const v0 = h.clock.now();
  const w0 = performance.now();
  const s0 = h.cluster.network.stats();
  const o0 = h.store.ops;
  return {
    startedAt: v0,
    stop(): CheckMetrics {
      const s1 = h.cluster.network.stats();
      return {
        virtualMs: h.clock.now() - v0,
        wallMs: Math.round((performance.now() - w0) * 10) / 10,
        messages: s1.messages - s0.messages,
        bytes: s1.bytes - s0.bytes,
        storeOps: h.store.ops - o0,
      };
    },
  };
}

/** What `converge` found. */
export interface ConvergeResult {
  /** The condition held and the desired state settled, both within the bound. */
  converged: boolean;
  /**
   * Virtual ms from the call until the state last changed and the condition held (the convergence
   * time); when not converged, until the harness gave up. Never includes the quiet period the
   * harness waited afterwards to see that nothing changed any more.
   */
  virtualMs: number;
  /** Wall ms of the whole call (the quiet period included). */
  wallMs: number;
  /** The clock's time at the convergence point (`virtualMs` after the call's start). */
  settledAt: number;
  /** Virtual ms the harness watched the cluster for (the convergence time plus the quiet period). */
  observedMs: number;
  /** How many times the desired state (every live node's canonical dataplane) changed while watched. */
  changes: number;
  /**
   * Why it did not converge: the condition's last problem, or that the desired state never settled
   * (the reason then says "never settled", which node's dataplane changed, when and how).
   */
  problem?: string;
}

/** Extra knobs of `converge`. */
export interface ConvergeOptions {
  /**
   * How long the desired state must stay unchanged (virtual ms) before it counts as settled;
   * default `quietPeriodMs(boundMs)`.
   */
  quietMs?: number;
  /**
   * Keep watching at least this long (virtual ms from the call), even when the state looks
   * settled earlier: a later change is still caught and the convergence time moves to it. `settle`
   * watches the whole bound this way. Default 0.
   */
  observeMs?: number;
}

/** Quiet periods never go below this much virtual time (debounces and watch retries are shorter). */
export const MIN_QUIET_MS = 1_000;
/** Nor above this much (crash and recovery bounds run to hours; a steady state shows in a minute). */
export const MAX_QUIET_MS = 60_000;

/**
 * The quiet period for a bound: a quarter of it, from 1 s to 60 s of virtual time. Longer than any
 * debounce the built-in backends use (flannel re-plans at most every 250 ms, calico on a 0 ms timer,
 * the watch loops retry after 1 s), short enough that a state changing on a periodic timer
 * (flannel's 10 s re-list) shows as never settled within a 30 s bound.
 */
export function quietPeriodMs(boundMs: number): number {
  return Math.min(MAX_QUIET_MS, Math.max(MIN_QUIET_MS, Math.floor(boundMs / 4)));
}

/**
 * One live node's desired dataplane as last seen: the object and its JSON as given (fast paths: a
 * backend hands out the same object, or an equal one, until its plan changes) and its canonical JSON.
 */
interface SeenDataplane {
  dp: unknown;
  raw: string;
  canon: string;
}

/** The live nodes' desired state; `changed` describes what differs from `before` (empty: nothing). */
function observeState(h: Harness, before: Map<string, SeenDataplane>, full: boolean): { now: Map<string, SeenDataplane>; changed: string[] } {
  const now = new Map<string, SeenDataplane>();
  const changed: string[] = [];
  for (const node of h.cluster.nodes()) {
    if (!node.alive) continue;
    let dp: unknown;
    try {
      dp = h.cluster.dataplane(node.name);
    } catch (err) {
      dp = undefined;
      const what = `dataplane() threw ${describeError(err)}`;
      now.set(node.name, { dp, raw: what, canon: what });
    }
    const prev = before.get(node.name);
    if (dp !== undefined) {
      if (!full && prev && prev.dp === dp) now.set(node.name, prev);
      else {
        const raw = rawJson(dp);
        now.set(node.name, prev && prev.raw === raw ? { ...prev, dp } : { dp, raw, canon: canonicalJson(dp) });
      }
    }
    const seen = now.get(node.name)!;
    if (!prev) changed.push(`node ${node.name} appeared`);
    else if (prev.canon !== seen.canon) changed.push(`node ${node.name}: ${describeChange(prev, seen)}`);
  }
  for (const name of before.keys()) if (!now.has(name)) changed.push(`node ${name} is gone`);
  return { now, changed };
}

function rawJson(dp: unknown): string {
  try {
    return JSON.stringify(dp) ?? "undefined";
  } catch (err) {
    return `unserialisable dataplane (${describeError(err)})`;
  }
}

function canonicalJson(dp: unknown): string {
  try {
    return JSON.stringify(canonicalDataplane(dp as NodeDataplane));
  } catch (err) {
    return `unreadable dataplane (${describeError(err)})`;
  }
}

/** "routes 3 -> 4 (+ 10.244.2.0/24 via 192.168.0.3)": which parts of a dataplane changed, briefly. */
function describeChange(before: SeenDataplane, after: SeenDataplane): string {
  let a: Record<string, unknown>;
  let b: Record<string, unknown>;
  try {
    a = JSON.parse(before.canon) as Record<string, unknown>;
    b = JSON.parse(after.canon) as Record<string, unknown>;
  } catch {
    return `${before.canon.slice(0, 80)} -> ${after.canon.slice(0, 80)}`;
  }
  const parts: string[] = [];
  for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[field];
    const y = b[field];
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    if (Array.isArray(x) && Array.isArray(y)) {
      const xs = new Set(x.map((e) => JSON.stringify(e)));
      const ys = new Set(y.map((e) => JSON.stringify(e)));
      const added = [...ys].filter((e) => !xs.has(e));
      const removed = [...xs].filter((e) => !ys.has(e));
      const show = (e: string | undefined) => (e === undefined ? "" : e.length > 100 ? `${e.slice(0, 97)}...` : e);
      parts.push(
        `${field} ${x.length} -> ${y.length}${added.length ? ` (+ ${show(added[0])}${added.length > 1 ? ` and ${added.length - 1} more` : ""})` : ""}${removed.length ? ` (- ${show(removed[0])}${removed.length > 1 ? ` and ${removed.length - 1} more` : ""})` : ""}`,
      );
    } else {
      const show = (v: unknown) => {
        const t = JSON.stringify(v) ?? "absent";
        return t.length > 100 ? `${t.slice(0, 97)}...` : t;
      };
      parts.push(`${field} ${show(x)} -> ${show(y)}`);
    }
  }
  return parts.length > 0 ? parts.join(", ") : "changed";
}

/**
 * Steps the virtual clock until the cluster has converged: `problem()` returns undefined AND the
 * desired state (every live node's `dataplane()`, canonicalised) has stopped changing. Stopped
 * changing means unchanged for the quiet period (`quietPeriodMs(boundMs)`, or `options.quietMs`),
 * or the cluster is idle (no timer pending: nothing can change any more). The convergence time
 * reported is when the state last changed (or, for a condition that turned true later without a
 * change of state, when it was first seen holding), never the end of the quiet period.
 *
 * Within the bound: the condition must hold and the state must have made its last change by
 * `boundMs` after the call; the quiet period that proves it may run past the bound. Fails (with
 * `problem`) when the condition still fails at the bound, when the state changes after the bound
 * ("never settled", naming the node and the change), or when the cluster goes idle with the
 * condition failing.
 *
 * The clock moves from timer to timer (so a change is dated to the timer that made it); the
 * condition is evaluated at the start, every 1/20 of the bound, at the bound and when the state
 * looks settled — a condition that depends on the state alone held since the state's last change.
 */
export async function converge(h: Harness, boundMs: number, problem: () => string | undefined, options: ConvergeOptions = {}): Promise<ConvergeResult> {
  const quietMs = Math.max(1, options.quietMs ?? quietPeriodMs(boundMs));
  const observeMs = Math.max(0, options.observeMs ?? 0);
  const pollMs = Math.max(10, Math.floor(boundMs / 20));
  // On an external store every step waits for the store's I/O: step coarser there.
  const minStepMs = h.clock instanceof IoPacedClock ? Math.max(10, Math.floor(quietMs / 20)) : 1;
  // While nothing changes, a step may take in more and more of the timers due next (dense periodic
  // timers cost one state comparison per window, not per timer); a change resets it, so a change
  // is dated to within one window, and a lone timer (a debounce) is always stepped to exactly.
  const maxWindowMs = Math.max(minStepMs, Math.min(pollMs, Math.floor(quietMs / 4)));
  let windowMs = minStepMs;
  const v0 = h.clock.now();
  const w0 = performance.now();
  const rel = () => h.clock.now() - v0;
  const result = (converged: boolean, at: number, why?: string): ConvergeResult => ({
    converged,
    virtualMs: at,
    wallMs: Math.round(performance.now() - w0),
    settledAt: v0 + at,
    observedMs: rel(),
    changes,
    ...(why === undefined ? {} : { problem: why }),
  });

  await flushAsync();
  let seen = observeState(h, new Map(), true).now;
  let changes = 0;
  let lastChange = 0;
  let lastChangeWhat = "";
  /** Time of the last evaluation at which the condition failed, and that problem. */
  let lastFailAt: number | undefined;
  let lastProblem: string | undefined;
  /** Time the condition was first seen holding after `lastFailAt`. */
  let heldSeenAt: number | undefined;
  let evaluatedAt = Number.NaN;
  let nextPoll = 0;
  const evaluate = (t: number): string | undefined => {
    evaluatedAt = t;
    nextPoll = t + pollMs;
    const p = problem();
    if (p !== undefined) {
      lastFailAt = t;
      lastProblem = p;
      heldSeenAt = undefined;
    } else if (heldSeenAt === undefined) heldSeenAt = t;
    return p;
  };
  /** When the condition started to hold: at the last change of state, or when first seen holding. */
  const convergedAt = (): number => {
    if (lastFailAt === undefined || lastChange > lastFailAt) return lastChange;
    return Math.max(lastChange, heldSeenAt ?? rel());
  };
  const stillChanging = (): string => (changes > 0 && rel() - lastChange < quietMs ? ` (the desired state was still changing: last change at ${lastChange} ms, ${lastChangeWhat})` : "");

  for (;;) {
    let t = rel();
    const step = observeState(h, seen, false);
    seen = step.now;
    if (step.changed.length > 0) {
      changes++;
      windowMs = minStepMs;
      lastChange = t;
      lastChangeWhat = summarizeProblems(step.changed, 2);
      if (t > boundMs) {
        const p = evaluate(t);
        return result(false, t, `the desired state never settled: ${lastChangeWhat} at ${t} ms, after the ${boundMs} ms bound${p === undefined ? "" : `; and ${p}`}`);
      }
    }
    if (t >= nextPoll && evaluatedAt !== t) evaluate(t);
    if (t >= boundMs && lastProblem !== undefined && heldSeenAt === undefined) {
      // The bound is over and the condition failed when last asked: ask once more, then give up.
      if (evaluatedAt !== t && evaluate(t) === undefined) continue;
      return result(false, t, `${lastProblem}${stillChanging()}`);
    }
    const next = h.clock.nextAt();
    const idle = next === undefined;
    if ((idle || t - lastChange >= quietMs) && (idle || t >= observeMs)) {
      // Looks settled: confirm with a full comparison (a backend may change its plan in place).
      const full = observeState(h, seen, true);
      seen = full.now;
      if (full.changed.length > 0) {
        changes++;
        lastChange = t;
        lastChangeWhat = summarizeProblems(full.changed, 2);
        if (t > boundMs) return result(false, t, `the desired state never settled: ${lastChangeWhat} at ${t} ms, after the ${boundMs} ms bound`);
        if (!idle) continue;
      }
      const p = evaluatedAt === t ? (lastFailAt === t ? lastProblem : undefined) : evaluate(t);
      if (p === undefined) return result(true, convergedAt());
      if (idle) return result(false, t, `${p} (and the cluster went idle: nothing more will change)`);
    }
    // Next stop: the next timer, but never past a point where a decision is due.
    const decisions = [nextPoll, lastChange + quietMs];
    if (t < boundMs) decisions.push(boundMs);
    if (t < observeMs) decisions.push(observeMs);
    const decideAt = Math.min(...decisions.filter((d) => d > t));
    const target = idle ? decideAt : Math.min(decideAt, Math.max(next - v0, t + windowMs));
    windowMs = Math.min(maxWindowMs, windowMs * 2);
    // Fires every timer due by `target` and ends there (or at the last timer, when none is left).
    await h.clock.runUntilIdle({ limitMs: Math.max(0, target - t) });
    t = rel();
  }
}

/** "pod ns/name (10.0.0.5) on node n2". */
export function describePod(pod: SimPod): string {
  return `pod ${pod.namespace}/${pod.name} (${pod.addresses.join(", ") || "no address"}) on node ${pod.node}`;
}

/** Describes an endpoint for a reason line. */
export function describeEndpoint(h: Harness, ep: Endpoint): string {
  if (ep.kind === "pod") {
    const pod = h.cluster.pods().find((p) => p.key === ep.key);
    return pod ? describePod(pod) : `pod ${ep.key}`;
  }
  if (ep.kind === "node") {
    const node = h.cluster.nodes().find((n) => n.name === ep.name);
    const addr = node?.info.underlay[0]?.address;
    return `node ${ep.name}${addr ? ` (${addr})` : ""}`;
  }
  return `external host ${ep.name}`;
}

/** "dropped at n3 (route): no route to 10.1.2.3 at node n3". */
export function describePacket(result: PacketResult): string {
  if (result.delivered) return `delivered${result.seenSource ? ` from ${result.seenSource}` : ""}`;
  const where = result.drop ? ` at ${result.drop.node} (${result.drop.stage}${result.drop.rule ? `, rule ${result.drop.rule}` : ""})` : "";
  return `dropped${where}: ${result.reason ?? "no reason given"}`;
}

/** Joins up to `max` problems, saying how many more there were. */
export function summarizeProblems(problems: string[], max = 3): string {
  if (problems.length <= max) return problems.join("; ");
  return `${problems.slice(0, max).join("; ")}; and ${problems.length - max} more`;
}

export function podEndpoint(pod: SimPod): Endpoint {
  return { kind: "pod", key: pod.key };
}

export function nodeEndpoint(name: string): Endpoint {
  return { kind: "node", name };
}

/**
 * Every reachability failure between the given endpoints, described (pairs with from === to
 * skipped), probed in every address family of the listed pods' addresses (one pass per family, so
 * a single-stack run costs one pass): each pod at its address of the family, each node at its
 * underlay address of it or else its host-side dataplane address of it (a node with neither is not
 * probed in that family). A listed pod without an address of a family the others have is a
 * problem. With more than one family, a reason names the family and the address probed.
 */
export function reachProblems(h: Harness, from: Endpoint[], to: Endpoint[], keep?: (a: Endpoint, b: Endpoint) => boolean): string[] {
  if (from.length === 0 || to.length === 0) return [];
  const keys = new Set([...from, ...to].flatMap((e) => (e.kind === "pod" ? [e.key] : [])));
  const linkLocal = (a: string): boolean => /^fe[89ab]/i.test(a) || a.startsWith("169.254.");
  const families = [
    ...new Set(
      h.cluster
        .pods()
        .filter((p) => keys.has(p.key))
        .flatMap((p) => p.addresses.filter((a) => !linkLocal(a)).map((a) => (a.includes(":") ? 6 : 4))),
    ),
  ].sort();
  const problems: string[] = [];
  for (const family of families.length > 0 ? families : [undefined]) {
    const report = h.cluster.reachability({ from, to, maxFailures: 10_000, ...(family !== undefined ? { family } : {}) });
    const tag = families.length > 1 ? ` (IPv${family})` : "";
    for (const s of report.skipped) if (s.endpoint.kind === "pod") problems.push(`${describeEndpoint(h, s.endpoint)}: not probed in IPv${family}: ${s.reason}, unlike the other pods`);
    for (const f of report.failures) {
      if (sameEndpoint(f.from, f.to)) continue;
      if (keep && !keep(f.from, f.to)) continue;
      const at = families.length > 1 ? ` at ${f.result.destination || "no address"}${tag}` : "";
      problems.push(`${describeEndpoint(h, f.from)} -> ${describeEndpoint(h, f.to)}${at}: ${describePacket(f.result)}`);
    }
  }
  return problems;
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "pod" && b.kind === "pod") return a.key === b.key;
  if (a.kind === "node" && b.kind === "node") return a.name === b.name;
  if (a.kind === "external" && b.kind === "external") return a.name === b.name;
  return false;
}

/** The node a pod endpoint lives on (undefined for other endpoints). */
export function nodeOfEndpoint(h: Harness, ep: Endpoint): string | undefined {
  if (ep.kind === "node") return ep.name;
  if (ep.kind !== "pod") return undefined;
  return h.cluster.pods().find((p) => p.key === ep.key)?.node;
}

/** Full pod-to-pod, node-to-pod and pod-to-node reachability problems of the live cluster. */
export function fullReachProblems(h: Harness): string[] {
  const pods = livePods(h).map(podEndpoint);
  const nodes = h.cluster
    .nodes()
    .filter((n) => n.alive)
    .map((n) => nodeEndpoint(n.name));
  return [...reachProblems(h, pods, pods), ...reachProblems(h, nodes, pods), ...reachProblems(h, pods, nodes)];
}

/** Pods whose node is alive (a crashed node's pods are gone with it). */
export function livePods(h: Harness): SimPod[] {
  const alive = new Set(
    h.cluster
      .nodes()
      .filter((n) => n.alive)
      .map((n) => n.name),
  );
  return h.cluster.pods().filter((p) => alive.has(p.node));
}

export type IpamProblemKind = "missing" | "range" | "reserved" | "duplicate";
export interface IpamProblem {
  kind: IpamProblemKind;
  text: string;
}

/**
 * Section-A address invariants over the given pods (default: every live pod): inside a pod range,
 * unique, and never a reserved address (the network or broadcast address of a pod range or of the
 * pod's own interface prefix, a gateway, or an address the backend put on a node's host side).
 */
export function ipamProblems(h: Harness, podRanges: string[], pods: SimPod[] = livePods(h)): IpamProblem[] {
  const problems: IpamProblem[] = [];
  const ranges = podRanges.map((r) => Prefix.parse(r));
  const owner = new Map<string, SimPod>();
  const reserved = new Map<string, string>();
  for (const r of ranges) {
    reserved.set(r.network, `the network address of pod range ${r.toString()}`);
    if (r.family === 4) reserved.set(r.broadcast, `the broadcast address of pod range ${r.toString()}`);
  }
  for (const node of h.cluster.nodes()) {
    if (!node.alive) continue;
    const dp = h.cluster.dataplane(node.name);
    for (const a of dp.addresses) reserved.set(a.cidr.split("/")[0]!, `an address of ${a.dev} on node ${node.name}`);
    for (const p of dp.pods) {
      for (const g of p.gateways ?? []) if (!reserved.has(g)) reserved.set(g, `the gateway of pods on node ${node.name}`);
      for (const cidr of p.addresses) {
        const pref = Prefix.parse(cidr, { allowHostBits: true });
        if (pref.family === 4 && pref.length <= 30) {
          reserved.set(pref.network, `the network address of ${pref.toString()}, the interface prefix of pods on node ${node.name}`);
          reserved.set(pref.broadcast, `the broadcast address of ${pref.toString()}, the interface prefix of pods on node ${node.name}`);
        }
      }
    }
  }
  for (const pod of pods) {
    if (pod.addresses.length === 0) problems.push({ kind: "missing", text: `${describePod(pod)} has no address` });
    for (const addr of pod.addresses) {
      if (!ranges.some((r) => r.contains(addr))) {
        problems.push({ kind: "range", text: `${describePod(pod)}: ${addr} is outside the pod range(s) ${podRanges.join(", ")}` });
      }
      const why = reserved.get(addr);
      if (why) problems.push({ kind: "reserved", text: `${describePod(pod)}: ${addr} is reserved (${why})` });
      const other = owner.get(addr);
      if (other) problems.push({ kind: "duplicate", text: `${addr} is held by two live pods: ${describePod(other)} and ${describePod(pod)}` });
      else owner.set(addr, pod);
    }
  }
  return problems;
}

/** The CNI error code of anything thrown (duck-typed, so errors from another copy of core count). */
export function errorCode(err: unknown): number | undefined {
  if (err !== null && typeof err === "object" && typeof (err as { code?: unknown }).code === "number") {
    return (err as { code: number }).code;
  }
  return undefined;
}

/** "ConfigError (code 7): [x] field: rule". */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = errorCode(err);
    return `${err.name}${code === undefined ? " (no CNI code)" : ` (code ${code})`}: ${err.message}`;
  }
  return `non-Error value thrown: ${String(err)}`;
}

/** Runs `fn` and returns what it threw (undefined when it resolved). */
export async function thrown(fn: () => Promise<unknown> | unknown): Promise<unknown> {
  try {
    await fn();
    return undefined;
  } catch (err) {
    return err ?? new Error("undefined was thrown");
  }
}

/** Every store key and value (no revisions), for "nothing changed" comparisons. */
export async function storeContents(store: Datastore): Promise<string> {
  const listing = await store.list("");
  return JSON.stringify(listing.items.map((kv) => [kv.key, kv.value]));
}
