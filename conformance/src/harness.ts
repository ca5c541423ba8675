/**
 * Building blocks the checks share: clusters with the right topology and a counted store, figures
 * (virtual/wall time, messages, bytes, store operations), stepping the clock until a condition
 * holds, the section-A invariants, and readable descriptions of pods, endpoints and errors.
 */
import { MemoryDatastore, Prefix, VirtualClock, flushAsync } from "@cnikit/core";
import type {
  Datastore,
  DeleteOptions,
  DeleteResult,
  KeyValue,
  LeaseId,
  LeaseInfo,
  ListResult,
  NodeAgent,
  PutOptions,
  TxnCompare,
  TxnOp,
  TxnResult,
  WatchEvent,
  WatchOptions,
  WriteResult,
} from "@cnikit/core";
import { SimCluster, defaultTopology, singleSubnetTopology } from "@cnikit/sim";
import type { Endpoint, PacketResult, SimPod } from "@cnikit/sim";
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

/** Creates an empty cluster with the topology the backend needs (one L2 subnet when it says so). */
export function createHarness(ctx: CheckContext, salt: string, options: HarnessOptions = {}): Harness {
  const topology = ctx.summary.requiresSingleSubnet ? singleSubnetTopology() : defaultTopology();
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

/** Settles for the backend's convergence bound (timers pending forever make "idle" never come). */
export async function settle(h: Harness, ctx: CheckContext, limitMs = ctx.summary.convergenceMs): Promise<void> {
  await h.cluster.settle({ limitMs });
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

/** A span's figures. `stop()` returns them. */
export function startMetrics(h: Harness): { stop(): CheckMetrics } {
  const v0 = h.clock.now();
  const w0 = performance.now();
  const s0 = h.cluster.network.stats();
  const o0 = h.store.ops;
  return {
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

export interface ConvergeResult {
  converged: boolean;
  /** Virtual ms from the call until the condition held (or until giving up). */
  virtualMs: number;
  wallMs: number;
  /** The last problem seen when not converged. */
  problem?: string;
}

/**
 * Steps the clock (in 1/20 of the bound, at least 10 ms) until `problem()` returns undefined or the
 * bound passes. When the cluster goes idle (no timer left) nothing can change any more, so the
 * last answer stands.
 */
export async function converge(h: Harness, boundMs: number, problem: () => string | undefined): Promise<ConvergeResult> {
  const v0 = h.clock.now();
  const w0 = performance.now();
  const step = Math.max(10, Math.floor(boundMs / 20));
  for (;;) {
    const p = problem();
    const elapsed = h.clock.now() - v0;
    if (p === undefined) return { converged: true, virtualMs: elapsed, wallMs: Math.round(performance.now() - w0) };
    if (elapsed >= boundMs) return { converged: false, virtualMs: elapsed, wallMs: Math.round(performance.now() - w0), problem: p };
    const r = await h.cluster.settle({ limitMs: Math.min(step, boundMs - elapsed) });
    if (r.virtualMs === 0 && h.clock.now() - v0 === elapsed) {
      const last = problem();
      return last === undefined
        ? { converged: true, virtualMs: elapsed, wallMs: Math.round(performance.now() - w0) }
        : { converged: false, virtualMs: elapsed, wallMs: Math.round(performance.now() - w0), problem: `${last} (and the cluster went idle: nothing more will change)` };
    }
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

/** Every reachability failure between the given endpoints, described (pairs with from === to skipped). */
export function reachProblems(h: Harness, from: Endpoint[], to: Endpoint[], keep?: (a: Endpoint, b: Endpoint) => boolean): string[] {
  if (from.length === 0 || to.length === 0) return [];
  const report = h.cluster.reachability({ from, to, maxFailures: 10_000 });
  const problems: string[] = [];
  for (const f of report.failures) {
    if (sameEndpoint(f.from, f.to)) continue;
    if (keep && !keep(f.from, f.to)) continue;
    problems.push(`${describeEndpoint(h, f.from)} -> ${describeEndpoint(h, f.to)}: ${describePacket(f.result)}`);
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
  const nodes = h.cluster.nodes().filter((n) => n.alive).map((n) => nodeEndpoint(n.name));
  return [...reachProblems(h, pods, pods), ...reachProblems(h, nodes, pods), ...reachProblems(h, pods, nodes)];
}

/** Pods whose node is alive (a crashed node's pods are gone with it). */
export function livePods(h: Harness): SimPod[] {
  const alive = new Set(h.cluster.nodes().filter((n) => n.alive).map((n) => n.name));
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
