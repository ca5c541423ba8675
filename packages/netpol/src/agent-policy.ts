/**
 * The agent kit's NetworkPolicy component: what a node agent plugs in to enforce NetworkPolicy,
 * whatever its network is (the reference bridge, Calico's BGP, Canal's flannel).
 *
 *  - It mirrors, by list + watch with a periodic re-list, the NetworkPolicies and namespaces under
 *    core's `KUBE_PREFIX` and the cluster's pod directory (see pod-directory.ts), and keeps a
 *    `PolicySnapshot` of them: plain data the backend's pure plan consumes with
 *    `compileNodeFilters(snapshot, local pods)`. The component compiles nothing itself.
 *  - With the default (`published`) directory it also publishes the agent's local pods, attached
 *    to the agent's lease, off the ADD path: `podAdded` / `podRemoved` never block, never fail and
 *    never throw; a failed write is logged and repaired at the next resync (every local pod
 *    re-published, this node's records of pods it no longer has deleted).
 *  - The agent learns of changes through `onChange` (one call per informer batch) and replans.
 *
 * The three mirrors are the kit's `Informer` (core): values decoded once per change, invalid
 * records ignored with one warning per version.
 */
import { ConfigError, Informer, KUBE_PREFIX, podKey } from "@cnikit/core";
import type { Clock, Datastore, InformerEvent, KeyValue, LeaseId, Logger, PodRef, TimerHandle } from "@cnikit/core";
import { decodeDirectoryPod, directoryPodOf, publishedPodKey } from "./pod-directory.ts";
import type { DirectoryPod, LocalPolicyPod, PodDirectory } from "./pod-directory.ts";
import type { PolicySnapshot } from "./policy-snapshot.ts";
import type { ClusterNamespace, NetworkPolicy } from "./types.ts";
import { decodeKubeNamespace, decodeKubePolicy } from "./view.ts";

/** Default period of the full re-list (and of retrying failed publishes). */
export const POLICY_RESYNC_MS = 60_000;
/** Default wait before re-listing after a failed watch. */
export const POLICY_RETRY_MS = 1_000;

export interface PolicyComponentOptions {
  /** The cluster store (`ctx.store`). */
  store: Datastore;
  /** `ctx.clock`: watch retries, re-lists and publish retries run on it. */
  clock: Clock;
  /** `ctx.log`: invalid records and failed writes are warned about here. */
  log: Logger;
  /** This node's name (`ctx.node.name`): non-empty, without `/`. */
  node: string;
  /** How the cluster learns about pods on other nodes. */
  directory: PodDirectory;
  /** Name in log messages (`[<component>] ...`), e.g. the backend's name. Default `netpol`. */
  component?: string;
  /** The lease published pods are attached to (published directory; see `setLease`). */
  lease?: LeaseId;
  /**
   * For an agent with no store lease of its own (a mesh, a cloud allocator): the component grants
   * one of `ttlSeconds` when it starts, keeps it alive every third of the TTL on `clock`, and
   * grants a new one (re-publishing every local pod under it) when the old one expired while the
   * store was out of reach. A dead node's published pods then leave the directory with its lease.
   * Exclusive with `lease`.
   */
  ownLease?: { ttlSeconds: number };
  /** Full re-list and publish-retry period on `clock` (ms, > 0). Default `POLICY_RESYNC_MS`. */
  resyncMs?: number;
  /** Wait before re-listing after a failed watch (ms, > 0). Default `POLICY_RETRY_MS`. */
  retryMs?: number;
}

type Phase = "idle" | "starting" | "running" | "stopped";

/** See the module comment. One per agent; not reusable after `stop()`. */
export class PolicyComponent {
  private readonly store: Datastore;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly node: string;
  private readonly directory: PodDirectory;
  private readonly component: string;
  private readonly resyncMs: number;
  private readonly retryMs: number;
  private policies: Informer<NetworkPolicy> | undefined;
  private namespaces: Informer<ClusterNamespace> | undefined;
  /** The pod directory, this node's records included (they are left out of snapshots). */
  private pods: Informer<DirectoryPod> | undefined;
  /** The version of each invalid record already warned about (key -> modRevision). */
  private readonly warned = new Map<string, number>();
  /** A change since the last batch that can alter compiled filters. */
  private relevant = false;
  /** This node's pods by attachment key, as the agent reported them. */
  private readonly local = new Map<string, DirectoryPod>();
  private readonly listeners = new Set<() => void>();
  private lease: LeaseId | undefined;
  private phase: Phase = "idle";
  private startPromise: Promise<void> | undefined;
  /** The current run's abort (each start attempt gets its own). */
  private run = new AbortController();
  private resyncTimer: TimerHandle | undefined;
  /** TTL of the lease the component holds itself (`ownLease`), else undefined. */
  private readonly ownLeaseTtl: number | undefined;
  private leaseTimer: TimerHandle | undefined;
  /** Store writes of the published directory, one at a time, in order. */
  private writes: Promise<void> = Promise.resolve();
  /** A write failed (or had no lease): re-publish everything at the next resync. */
  private dirty = false;
  private cached: PolicySnapshot | undefined;

  /** Throws `ConfigError` naming the field for an invalid node name or period. */
  constructor(options: PolicyComponentOptions) {
    if (options.node === "" || options.node.includes("/")) {
      throw new ConfigError({ component: "netpol", field: "node", rule: "must be a non-empty node name without '/'", value: options.node });
    }
    for (const field of ["resyncMs", "retryMs"] as const) {
      const v = options[field];
      if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new ConfigError({ component: "netpol", field, rule: "must be a finite number of milliseconds > 0", value: v });
    }
    this.store = options.store;
    this.clock = options.clock;
    this.log = options.log;
    this.node = options.node;
    this.directory = options.directory;
    this.component = options.component ?? "netpol";
    this.resyncMs = options.resyncMs ?? POLICY_RESYNC_MS;
    this.retryMs = options.retryMs ?? POLICY_RETRY_MS;
    this.lease = options.lease;
    if (options.ownLease !== undefined) {
      const ttl = options.ownLease.ttlSeconds;
      if (options.lease !== undefined) throw new ConfigError({ component: "netpol", field: "ownLease", rule: "cannot be given together with lease", value: options.ownLease });
      if (!(Number.isInteger(ttl) && ttl >= 3)) throw new ConfigError({ component: "netpol", field: "ownLease.ttlSeconds", rule: "must be an integer number of seconds >= 3", value: ttl });
      this.ownLeaseTtl = ttl;
    }
  }

  /**
   * Lists policies, namespaces and the pod directory, then watches them (re-listing after a failed
   * watch and every `resyncMs`) until `signal` aborts or `stop()`. Resolves once the first
   * listings are in `snapshot()`; then publishes the local pods (published directory), in the
   * background. A second call returns the first call's promise. Rejects with what the store throws
   * on a first listing (e.g. `TryAgainError`); a failed start may be retried. Rejects with
   * `ConfigError` after `stop()`.
   */
  start(signal?: AbortSignal): Promise<void> {
    if (this.phase === "stopped") return Promise.reject(new ConfigError({ component: this.component, field: "start", rule: "the policy component was stopped; create a new one" }));
    this.startPromise ??= this.doStart(signal).catch((err: unknown) => {
      this.run.abort();
      if (this.phase === "starting") this.phase = "idle";
      this.startPromise = undefined;
      throw err;
    });
    return this.startPromise;
  }

  private async doStart(signal: AbortSignal | undefined): Promise<void> {
    this.phase = "starting";
    const run = new AbortController();
    this.run = run;
    if (signal) {
      if (signal.aborted) run.abort();
      else signal.addEventListener("abort", () => void this.stop(), { once: true });
    }
    this.cached = undefined;
    if (this.ownLeaseTtl !== undefined && this.lease === undefined) this.lease = await this.store.grantLease(this.ownLeaseTtl);
    this.policies = this.informer(run.signal, KUBE_PREFIX.networkPolicies, "NetworkPolicy", decodeKubePolicy);
    this.namespaces = this.informer(run.signal, KUBE_PREFIX.namespaces, "namespace", decodeKubeNamespace);
    this.pods = this.informer(run.signal, this.directory.prefix, "pod record", (key, value) => this.decodePod(key, value));
    await Promise.all([this.policies.start(), this.namespaces.start(), this.pods.start()]);
    if (run.signal.aborted || this.phase !== "starting") return;
    this.phase = "running";
    this.resyncTimer = this.clock.setInterval(() => {
      if (this.dirty) this.republishAll();
    }, this.resyncMs);
    if (this.ownLeaseTtl !== undefined) this.leaseTimer = this.clock.setInterval(() => void this.renewOwnLease(this.ownLeaseTtl!), (this.ownLeaseTtl * 1000) / 3);
    this.republishAll();
  }

  /**
   * With `ownLease`: revokes the component's lease, so this node's published pods leave the
   * directory at once (a clean leave with release). Call after `stop()`. Never throws (a lease the
   * store cannot revoke expires after its TTL); a no-op without `ownLease`.
   */
  async revokeOwnLease(): Promise<void> {
    const lease = this.lease;
    if (this.ownLeaseTtl === undefined || lease === undefined) return;
    this.lease = undefined;
    await this.store.revokeLease(lease).catch((err: unknown) => {
      this.log.warn(`[${this.component}] could not revoke the pod directory's lease; it expires after ${this.ownLeaseTtl} s`, { error: err instanceof Error ? err.message : String(err) });
    });
  }

  /** Keeps the component's own lease alive; one that expired meanwhile is replaced (every pod re-published). */
  private async renewOwnLease(ttlSeconds: number): Promise<void> {
    const lease = this.lease;
    try {
      if (lease !== undefined) {
        await this.store.keepAlive(lease);
        return;
      }
    } catch {
      // Expired while the store was out of reach: a new lease below.
    }
    try {
      const fresh = await this.store.grantLease(ttlSeconds);
      if (this.phase === "stopped") return;
      this.setLease(fresh);
    } catch (err) {
      this.log.warn(`[${this.component}] could not renew the pod directory's lease; retrying in ${Math.round((ttlSeconds * 1000) / 3)} ms`, {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /**
   * Stops watches, the resync timer and queued writes; no `onChange` call and no store write
   * starts afterwards. Resolves once a write in flight has settled. Published pods stay in the
   * store (they go with the lease, or the agent revokes it). Idempotent; never throws.
   */
  async stop(): Promise<void> {
    this.phase = "stopped";
    this.run.abort();
    this.resyncTimer?.cancel();
    this.resyncTimer = undefined;
    this.leaseTimer?.cancel();
    this.leaseTimer = undefined;
    this.listeners.clear();
    await this.writes;
  }

  /**
   * A pod was attached on this node (CNI ADD succeeded, or the agent restored it). Records it and,
   * with the published directory, queues its publication. Never blocks, fails or throws; a failed
   * publication is retried at the next resync. Idempotent (the latest record wins).
   */
  podAdded(pod: LocalPolicyPod): void {
    if (this.phase === "stopped") return;
    const record = directoryPodOf(this.node, pod);
    this.local.set(record.key, record);
    if (this.phase === "running") this.publish(record);
  }

  /** A pod was detached on this node (CNI DEL, GC). Like `podAdded`: never blocks or throws. */
  podRemoved(ref: PodRef): void {
    if (this.phase === "stopped") return;
    const key = podKey(ref);
    if (!this.local.delete(key)) return;
    if (this.phase === "running") this.unpublish(key);
  }

  /**
   * The lease published pods are attached to. A different lease (e.g. re-granted after the old one
   * expired) re-publishes every local pod under it; undefined stops publishing until one is set.
   */
  setLease(lease: LeaseId | undefined): void {
    if (lease === this.lease) return;
    this.lease = lease;
    if (this.phase === "running") this.republishAll();
  }

  /** This node's pods as reported through `podAdded`, sorted by key (the `local` of `compileNodeFilters`). */
  localPods(): DirectoryPod[] {
    return [...this.local.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** The policies, namespaces and other nodes' pods now. Immutable; a new object after each change. */
  snapshot(): PolicySnapshot {
    const byKey = <T>(informer: Informer<T> | undefined, keep: (v: T) => boolean = () => true): T[] =>
      (informer?.keys() ?? [])
        .sort()
        .map((k) => informer!.get(k)!)
        .filter(keep);
    this.cached ??= Object.freeze({
      node: this.node,
      policies: Object.freeze(byKey(this.policies)),
      namespaces: Object.freeze(byKey(this.namespaces)),
      remotePods: Object.freeze(byKey(this.pods, (p) => p.node !== this.node)),
    });
    return this.cached;
  }

  /**
   * Calls `listener` after changes that can alter the compiled filters (a policy; a namespace or
   * another node's pod while a policy is in force), once per batch (one watch event, or one whole
   * re-listing), only while running; `snapshot()` already shows the change. Local pods are the
   * agent's own news: they notify nobody. Returns the unsubscribe.
   */
  onChange(listener: () => void): () => void {
    if (this.phase !== "stopped") this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** An informer over `prefix` whose invalid records are ignored with one warning per version. */
  private informer<T>(signal: AbortSignal, prefix: string, what: string, decode: (key: string, value: string) => T | undefined): Informer<T> {
    return new Informer<T>({
      store: this.store,
      prefix,
      clock: this.clock,
      signal,
      retryMs: this.retryMs,
      maxRetryMs: Math.max(this.retryMs, this.resyncMs), // back off while the store is away (a cut-off node re-lists at most once per resync period)
      resyncMs: this.resyncMs,
      decode: (kv) => {
        try {
          const value = decode(kv.key, kv.value);
          this.warned.delete(kv.key);
          return value;
        } catch (err) {
          if (this.warned.get(kv.key) !== kv.modRevision) this.warn(`ignoring invalid ${what} ${kv.key}`, err);
          this.warned.set(kv.key, kv.modRevision);
          return undefined;
        }
      },
      onEvent: (ev) => this.onEvent(prefix, ev),
      onBatch: () => this.onBatch(),
      onError: (err) => this.warn(`watch of ${prefix} failed; re-listing`, err),
    });
  }

  private onEvent<T>(prefix: string, ev: InformerEvent<T>): void {
    this.cached = undefined;
    if (prefix === KUBE_PREFIX.networkPolicies) {
      this.relevant = true;
      return;
    }
    if (prefix === this.directory.prefix) {
      const pod = (ev.type === "delete" ? ev.prev : ev.value) as DirectoryPod;
      if (pod.node === this.node) {
        this.noticeOwnRecord(ev.key, ev.type === "delete" ? undefined : ev.kv);
        return;
      }
    }
    if ((this.policies?.size ?? 0) > 0) this.relevant = true;
  }

  private onBatch(): void {
    if (!this.relevant || this.phase !== "running") return;
    this.relevant = false;
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (err) {
        this.warn("a policy change listener threw", err);
      }
    }
  }

  private decodePod(key: string, value: string): DirectoryPod | undefined {
    if (this.directory.kind === "external") return this.directory.decode(key, value);
    const pod = decodeDirectoryPod(key, value);
    const expected = publishedPodKey(this.directory.prefix, pod.node, pod.key);
    if (expected !== key) {
      throw new ConfigError({ component: this.component, field: `${key}: node/key`, rule: `must match the record's key (it says ${expected})`, value: `${pod.node} ${pod.key}` });
    }
    return pod;
  }

  /** Our own published record vanished or changed under us while the pod lives: repair at resync. */
  private noticeOwnRecord(key: string, kv: KeyValue | undefined): void {
    if (this.directory.kind !== "published" || this.phase !== "running") return;
    const mine = publishedPodKey(this.directory.prefix, this.node, "");
    if (!key.startsWith(mine)) return;
    const pod = this.local.get(key.slice(mine.length));
    if (pod && (kv === undefined || kv.value !== JSON.stringify(pod))) this.dirty = true;
  }

  /** Queues one store write (published directory only); a failure marks the directory dirty. */
  private enqueue(what: string, write: () => Promise<void>): void {
    if (this.directory.kind !== "published") return;
    const signal = this.run.signal;
    this.writes = this.writes.then(async () => {
      if (signal.aborted) return;
      try {
        await write();
      } catch (err) {
        if (signal.aborted) return;
        this.dirty = true;
        this.warn(`${what}; retrying at the next resync`, err);
      }
    });
  }

  private publish(pod: DirectoryPod): void {
    if (this.directory.kind !== "published") return;
    const key = publishedPodKey(this.directory.prefix, this.node, pod.key);
    const value = JSON.stringify(pod);
    this.enqueue(`could not publish pod ${pod.key}`, async () => {
      const lease = this.lease;
      if (lease === undefined) {
        this.dirty = true;
        return;
      }
      await this.store.put(key, value, { lease });
    });
  }

  private unpublish(podKeyText: string): void {
    if (this.directory.kind !== "published") return;
    const key = publishedPodKey(this.directory.prefix, this.node, podKeyText);
    this.enqueue(`could not unpublish pod ${podKeyText}`, async () => {
      await this.store.delete(key);
    });
  }

  /** Deletes this node's records of pods it no longer has; writes every local pod that differs. */
  private republishAll(): void {
    if (this.directory.kind !== "published") return;
    this.dirty = false;
    const mine = publishedPodKey(this.directory.prefix, this.node, "");
    this.enqueue("could not re-publish this node's pods", async () => {
      const listing = await this.store.list(mine);
      const held = new Map(listing.items.map((kv) => [kv.key, kv]));
      for (const kv of listing.items) if (!this.local.has(kv.key.slice(mine.length))) await this.store.delete(kv.key);
      const lease = this.lease;
      if (lease === undefined) {
        if (this.local.size > 0) this.dirty = true;
        return;
      }
      for (const pod of this.local.values()) {
        const key = publishedPodKey(this.directory.prefix, this.node, pod.key);
        const value = JSON.stringify(pod);
        const kv = held.get(key);
        if (kv?.value === value && kv.lease === lease) continue;
        await this.store.put(key, value, { lease });
      }
    });
  }

  private warn(msg: string, err: unknown): void {
    this.log.warn(`[${this.component}] ${msg}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
