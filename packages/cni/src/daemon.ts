/**
 * `CniDaemon`: the node agent daemon behind `cnikit-cni` (cnikitd). It hosts the configured
 * backend's `NodeAgent`, applies every dataplane the agent plans through a `DataplaneApplier`
 * (coalesced by `ApplyLoop`), and serves CNI calls on a unix socket (wire.ts) or in process
 * (`handle`).
 *
 *  - ADD: agent.attach → wait until an applied dataplane contains the pod → the result in the
 *    config's version (merged after prevResult when chained). If applying fails, the attachment is
 *    detached again (nothing stays reserved) and the error returned. Over the socket the answer is
 *    written under the attachment's lock; when the plugin is gone (it timed out) the ADD is undone
 *    the same way before the runtime's DEL or next ADD runs.
 *  - DEL: agent.detach → apply. Succeeds for unknown containers, second DELs, gone netns and
 *    without prevResult; 11 when the interface could not be removed (the address is released).
 *  - CHECK: agent.check, the pod in the applied dataplane, the applier's checkPod, and the
 *    prevResult's addresses against the pod's.
 *  - STATUS: 50 while the agent is starting (or could not start), 51 while the last apply failed,
 *    else the agent's own status.
 *  - GC: exclusive (no ADD/DEL runs meanwhile, as SPEC §3 asks): agent.gc(valid) → apply.
 *
 * Operations on one (containerId, ifName) run one at a time; different attachments run
 * concurrently and share applies.
 */
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import {
  CheckFailedError,
  CniError,
  ConfigError,
  EnvError,
  KernelLacksError,
  NotReadyError,
  RealClock,
  TryAgainError,
  kubeNodeKey,
  podKey,
  seededRandom,
  silentLogger,
  watchStoreMembership,
} from "@cnikit/core";
import type { AgentContext, AttachResult, Backend, Clock, Datastore, Logger, Membership, NodeAgent, NodeDataplane, NodeInfo, PeerTransport, PodAttachment, PodRef } from "@cnikit/core";
import { ApplyLoop, type AppliedDataplane, type ApplyLoopStats, type DataplaneApplier } from "./applier.ts";
import {
  aboutText,
  errorJson,
  errorVersionOf,
  formatResult,
  fromAttachResult,
  mergeResults,
  parseInvocation,
  podAttachmentOf,
  requestedMac,
  resultDns,
  versionInfo,
  type CniEnv,
  type CniRequest,
  type CniResult,
  type StdinInput,
} from "./protocol.ts";
import { MAX_REQUEST_BYTES, decodeRequest, decodeResponse, encodeRequest, encodeResponse, type WireResponse } from "./wire.ts";

const C = "cnikitd";
/** How long `stop()` waits for the store to say whether this node's Node object still exists. */
const STOP_STORE_WAIT_MS = 5_000;

/**
 * Where `cnikit-cni` looks first when neither the netconf's `socketPath` nor $CNIKITD_SOCKET
 * names a socket (then the one `/run/cnikit/<node>/cnikitd.sock`, cnikitd's default: see
 * `daemonDefaults`).
 */
export const DEFAULT_SOCKET_PATH = "/run/cnikit/cnikitd.sock";

export interface CniDaemonOptions {
  /** The backend (e.g. `builtinBackend("flannel").backend`). */
  backend: Backend<unknown>;
  /** The backend's own config, unparsed (parsed with `backend.parseConfig` in the constructor). */
  backendConfig: unknown;
  node: NodeInfo;
  /** Cluster store (file store for one node, etcd for many). Not closed by the daemon. */
  store: Datastore;
  /** Node-local store. Not closed by the daemon. */
  local: Datastore;
  /** Peer transport (TcpPeerTransport on real hosts). Not closed by the daemon. */
  peers: PeerTransport;
  applier: DataplaneApplier;
  /** Unix socket to serve on; absent = in-process only (`handle`). */
  socketPath?: string;
  clock?: Clock;
  log?: Logger;
  random?: () => number;
  /** How long ADD/DEL/CHECK/GC wait for a starting agent before failing with 11. Default 10000 ms. */
  agentWaitMs?: number;
  /** First delay before retrying an agent start that failed with a transient error. Default 1000 ms. */
  startRetryMs?: number;
  /**
   * The agent's `ctx.members`. Absent: followed from the Node objects mirrored in `store` under
   * `KUBE_PREFIX.nodes` (with the fabric's secondary addresses; core's `watchStoreMembership`),
   * listed before the agent is created and re-listed every `membersResyncMs`.
   */
  members?: Membership;
  /** Re-list period of the store-backed membership (default 300000 ms). */
  membersResyncMs?: number;
}

/** Options of `CniDaemon.handle`. */
export interface HandleOptions {
  /**
   * Hands a successful ADD's answer to the caller while the attachment is still locked; resolves
   * false when the caller is gone (the plugin timed out or was killed). The ADD is then undone
   * (released and its interface removed) before any later call on the attachment runs: the
   * runtime saw a failure and holds no result for it. Other answers are returned as usual.
   */
  deliver?: (response: WireResponse) => Promise<boolean>;
}

/** The daemon's state, for STATUS and for people. */
export type DaemonPhase = "new" | "starting" | "running" | "failed" | "stopped";

/** Counters of a daemon. */
export interface CniDaemonStats extends ApplyLoopStats {
  /** Requests served per command. */
  commands: Record<string, number>;
  /**
   * Where the time of the requests went, per stage: `ADD.attach` (the agent: IPAM and its store
   * writes), `ADD.apply` (waiting for an apply that contains the pod), `DEL.detach`, `DEL.apply`,
   * and `<CMD>.total` (from the request's arrival to the answer, protocol work included).
   */
  stages: Record<string, { count: number; totalMs: number; maxMs: number }>;
}

/** A tiny gate: GC runs alone; other operations run together but one per attachment. */
class OperationLocks {
  private tails = new Map<string, Promise<void>>();
  private inflight = 0;
  private idle: (() => void)[] = [];
  private gate: Promise<void> = Promise.resolve();

  async shared<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await this.gate;
    this.inflight++;
    try {
      const prev = this.tails.get(key) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      const tail = prev.then(() => mine);
      this.tails.set(key, tail);
      await prev;
      try {
        return await fn();
      } finally {
        release();
        if (this.tails.get(key) === tail) this.tails.delete(key);
      }
    } finally {
      this.inflight--;
      if (this.inflight === 0) for (const w of this.idle.splice(0)) w();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.gate;
    let open!: () => void;
    this.gate = before.then(() => new Promise<void>((r) => (open = r)));
    await before;
    try {
      if (this.inflight > 0) await new Promise<void>((r) => this.idle.push(r));
      return await fn();
    } finally {
      open();
    }
  }
}

/**
 * Who may attach and apply new pods: ADDs share it, so concurrent ADDs ride one apply; an ADD that
 * retries alone (its batched apply failed and other new pods were in it) holds it exclusively, so
 * its apply holds no other new pod and its failure is its own. Waiting exclusive holders go first.
 */
class SoloGate {
  private holders = 0;
  private solo = false;
  private readonly queue: { exclusive: boolean; grant: () => void }[] = [];

  async run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    if (!this.admits(exclusive)) await new Promise<void>((grant) => this.queue.push({ exclusive, grant }));
    else this.take(exclusive);
    try {
      return await fn();
    } finally {
      if (exclusive) this.solo = false;
      else this.holders--;
      this.pass();
    }
  }

  private admits(exclusive: boolean): boolean {
    if (this.solo) return false;
    if (exclusive) return this.holders === 0;
    return !this.queue.some((w) => w.exclusive);
  }

  private take(exclusive: boolean): void {
    if (exclusive) this.solo = true;
    else this.holders++;
  }

  /** Grants waiters in order: the first exclusive one once nobody holds the gate, shared ones up to the next exclusive one. */
  private pass(): void {
    while (this.queue.length > 0 && !this.solo) {
      const next = this.queue[0]!;
      if (next.exclusive && this.holders > 0) return;
      this.queue.shift();
      this.take(next.exclusive);
      next.grant();
      if (next.exclusive) return;
    }
  }
}

/**
 * The cnikitd daemon (see the module comment). Lifecycle: `start()` (socket + agent in the
 * background), `agentStarted` (resolves once the agent runs, rejects on a fatal start error),
 * `stop()`. Not re-startable.
 */
export class CniDaemon {
  private readonly options: CniDaemonOptions;
  private readonly config: unknown;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly locks = new OperationLocks();
  private readonly addGate = new SoloGate();
  private readonly loop: ApplyLoop;
  private agent: NodeAgent | undefined;
  private phaseValue: DaemonPhase = "new";
  private startError: unknown;
  private startPromise: Promise<void> | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private unsubscribe: (() => void) | undefined;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly commands: Record<string, number> = {};
  private readonly stages: CniDaemonStats["stages"] = {};
  private stopping = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private membersPromise: Promise<Membership> | undefined;
  private readonly membersAbort = new AbortController();
  /** This node's Node object was seen in the store-followed membership (see `leaveOnStop`). */
  private wasMember = false;
  private unsubscribeMembers: (() => void) | undefined;

  /**
   * Validates the backend config (`ConfigError` 7 naming the field, from the backend's parser).
   * Does no I/O.
   */
  constructor(options: CniDaemonOptions) {
    this.options = options;
    this.config = options.backend.parseConfig(options.backendConfig);
    this.log = options.log ?? silentLogger;
    this.clock = options.clock ?? new RealClock();
    this.loop = new ApplyLoop({ applier: options.applier, source: () => this.currentDataplane(), log: this.log });
  }

  /** Where the daemon is in its life. */
  get phase(): DaemonPhase {
    return this.phaseValue;
  }

  /** The running agent (after `agentStarted`). */
  get nodeAgent(): NodeAgent | undefined {
    return this.phaseValue === "running" ? this.agent : undefined;
  }

  /** The last dataplane applied successfully. */
  get appliedDataplane(): NodeDataplane | undefined {
    return this.loop.lastApplied;
  }

  /** Counters: applies, failures, requests per command. */
  stats(): CniDaemonStats {
    const stages: CniDaemonStats["stages"] = {};
    for (const [k, v] of Object.entries(this.stages)) stages[k] = { ...v };
    return { ...this.loop.stats(), commands: { ...this.commands }, stages };
  }

  private time(stage: string, since: number): number {
    const now = performance.now();
    const ms = now - since;
    const s = (this.stages[stage] ??= { count: 0, totalMs: 0, maxMs: 0 });
    s.count++;
    s.totalMs += ms;
    if (ms > s.maxMs) s.maxMs = ms;
    return now;
  }

  private currentDataplane(): NodeDataplane {
    if (!this.agent || this.phaseValue !== "running") throw new TryAgainError(`[${C}] the agent is not running yet`);
    return this.agent.dataplane();
  }

  /**
   * Binds the socket (when `socketPath` is set) and starts the agent in the background. Throws
   * `ConfigError` (field `socketPath`) when another daemon serves the socket or the path is not a
   * socket; a stale socket file of a dead daemon is replaced. Call once.
   */
  async start(): Promise<void> {
    if (this.phaseValue !== "new") throw new ConfigError({ component: C, field: "start", rule: "may be called once" });
    this.phaseValue = "starting";
    if (this.options.socketPath !== undefined) await this.listen(this.options.socketPath);
    this.startPromise = this.startAgent();
  }

  /**
   * Resolves once the agent runs and its first dataplane was applied; rejects with the start
   * error when it is fatal (anything but `TryAgainError`, which is retried with back-off).
   */
  get agentStarted(): Promise<void> {
    if (this.phaseValue === "running") return Promise.resolve();
    if (this.phaseValue === "failed") return Promise.reject(this.startError);
    return new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** The agent's membership: the given one, or one followed from the store (see `members`). */
  private membership(): Promise<Membership> {
    if (this.options.members) return Promise.resolve(this.options.members);
    this.membersPromise ??= watchStoreMembership({
      store: this.options.store,
      clock: this.clock,
      signal: this.membersAbort.signal,
      resyncMs: this.options.membersResyncMs ?? 300_000,
      onError: (err, key) =>
        this.log.warn(key ? "a mirrored Node object does not parse; left out of the membership" : "the membership watch failed; re-listing", { error: err, ...(key ? { key } : {}) }),
    }).then(
      (members) => {
        const self = this.options.node.name;
        this.wasMember ||= members.get(self) !== undefined;
        this.unsubscribeMembers ??= members.onChange((ev) => {
          if (ev.node.name === self && ev.type !== "left") this.wasMember = true;
        });
        return members;
      },
      (err: unknown) => {
        this.membersPromise = undefined;
        throw err;
      },
    );
    return this.membersPromise;
  }

  private async startAgent(): Promise<void> {
    let delay = this.options.startRetryMs ?? 1000;
    for (;;) {
      if (this.stopping) return;
      let agent: NodeAgent | undefined;
      try {
        const ctx: AgentContext<unknown> = {
          config: this.config,
          node: this.options.node,
          store: this.options.store,
          local: this.options.local,
          peers: this.options.peers,
          clock: this.clock,
          log: this.log,
          members: await this.membership(),
          random: this.options.random ?? seededRandom(Date.now() >>> 0),
        };
        agent = this.options.backend.createAgent(ctx);
        this.agent = agent;
        await agent.start();
      } catch (err) {
        await agent?.stop().catch(() => undefined);
        if (err instanceof TryAgainError && !this.stopping) {
          this.startError = err;
          this.log.warn("the agent could not start yet; retrying", { error: err, retryInMs: delay });
          await new Promise<void>((r) => {
            this.retryTimer = setTimeout(r, delay);
          });
          delay = Math.min(delay * 2, 30_000);
          continue;
        }
        this.startError = err;
        this.phaseValue = this.stopping ? "stopped" : "failed";
        this.log.error("the agent failed to start", { error: err });
        for (const w of this.readyWaiters.splice(0)) w.reject(err);
        return;
      }
      if (this.stopping) {
        await agent.stop().catch(() => undefined);
        return;
      }
      this.phaseValue = "running";
      this.startError = undefined;
      this.unsubscribe = agent.onDataplaneChange(() => this.loop.kick());
      try {
        await this.loop.request();
      } catch (err) {
        if (err instanceof KernelLacksError || err instanceof ConfigError) {
          // This dataplane can never be rendered here (e.g. calico IPIP on a kernel without ipip):
          // say so and stop, rather than serve ADDs that all fail.
          this.startError = err;
          this.phaseValue = "failed";
          this.unsubscribe();
          this.unsubscribe = undefined;
          this.log.error("the renderer cannot build this node's dataplane", { error: err });
          for (const w of this.readyWaiters.splice(0)) w.reject(err);
          return;
        }
        this.log.warn("the first apply failed; retrying in the background", { error: err });
      }
      this.log.info("agent running", { node: this.options.node.name, backend: this.options.backend.name });
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      return;
    }
  }

  /** Waits (bounded) for a starting agent; throws `TryAgainError` (11) when it does not come up in time. */
  private async runningAgent(command: string): Promise<NodeAgent> {
    if (this.phaseValue === "running" && this.agent) return this.agent;
    if (this.phaseValue === "starting") {
      const wait = this.options.agentWaitMs ?? 10_000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ok = await Promise.race([
        this.agentStarted.then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), wait);
        }),
      ]);
      clearTimeout(timer);
      if (ok && this.agent) return this.agent;
    }
    if (this.phaseValue === "failed" && this.startError instanceof CniError && !this.startError.retryable) {
      // A start that can never succeed (bad config for this node, kernel lacks a feature): its code.
      throw new CniError(this.startError.code, `[${C}] ${command}: ${this.notRunningReason()}`, { cause: this.startError });
    }
    throw new TryAgainError(`[${C}] ${command}: ${this.notRunningReason()}; try again later`);
  }

  private notRunningReason(): string {
    const why = this.startError instanceof Error ? `: ${this.startError.message}` : "";
    switch (this.phaseValue) {
      case "new":
      case "starting":
        return `the ${this.options.backend.name} agent of node ${this.options.node.name} is still starting${why}`;
      case "failed":
        return `the ${this.options.backend.name} agent of node ${this.options.node.name} failed to start${why}`;
      default:
        return `cnikitd on node ${this.options.node.name} is stopping`;
    }
  }

  /**
   * Serves one plugin invocation: `env` (the CNI_* variables) and `stdin` in, what the plugin
   * prints and its exit status out. Never throws: errors become the spec's error JSON on stdout
   * with status 1.
   */
  async handle(env: CniEnv, stdin: StdinInput, options: HandleOptions = {}): Promise<WireResponse> {
    const started = performance.now();
    const command = env["CNI_COMMAND"] ?? "";
    this.commands[command || "ABOUT"] = (this.commands[command || "ABOUT"] ?? 0) + 1;
    try {
      return await this.handleTimed(env, stdin, command, options);
    } finally {
      this.time(`${command || "ABOUT"}.total`, started);
    }
  }

  private async handleTimed(env: CniEnv, stdin: StdinInput, command: string, options: HandleOptions): Promise<WireResponse> {
    let version = errorVersionOf(stdin);
    try {
      const inv = parseInvocation(env, stdin);
      if (inv.command === "ABOUT") return { exitCode: 0, stdout: "", stderr: aboutText() };
      if (inv.command === "VERSION") return { exitCode: 0, stdout: `${JSON.stringify(versionInfo())}\n`, stderr: "" };
      version = inv.cniVersion;
      if (this.stopping) {
        const msg = `[${C}] ${inv.command}: cnikitd on node ${this.options.node.name} is stopping`;
        throw inv.command === "STATUS" ? new NotReadyError(msg) : new TryAgainError(`${msg}; try again later`);
      }
      const stdout = await this.dispatch(inv, options);
      return { exitCode: 0, stdout, stderr: "" };
    } catch (err) {
      const e = CniError.from(err);
      if (e.code >= 100 || e.code === 11) this.log.warn(`${command} failed`, { error: e, containerId: env["CNI_CONTAINERID"], ifName: env["CNI_IFNAME"] });
      return { exitCode: 1, stdout: `${JSON.stringify(errorJson(e, version))}\n`, stderr: "" };
    }
  }

  private dispatch(req: CniRequest, options: HandleOptions): Promise<string> {
    switch (req.command) {
      case "ADD":
        return this.locks.shared(this.keyOf(req), () => this.add(req, options.deliver));
      case "DEL":
        return this.locks.shared(this.keyOf(req), () => this.del(req));
      case "CHECK":
        return this.locks.shared(this.keyOf(req), () => this.check(req));
      case "STATUS":
        return this.status();
      case "GC":
        return this.locks.exclusive(() => this.gc(req));
    }
  }

  private keyOf(req: CniRequest): string {
    return podKey({ containerId: req.env.containerId ?? "", ifName: req.env.ifName ?? "" });
  }

  private refOf(req: CniRequest): PodRef {
    return { containerId: req.env.containerId ?? "", ifName: req.env.ifName ?? "" };
  }

  private async add(req: CniRequest, deliver?: HandleOptions["deliver"]): Promise<string> {
    const agent = await this.runningAgent("ADD");
    const pod = podAttachmentOf(req);
    const key = podKey(pod);
    const existed = await this.loop.admitAdd(pod, agent.dataplane());
    const { attached, applied } = await this.attachApplied(agent, req, pod, existed);
    try {
      let result: CniResult = fromAttachResult(attached);
      const planned = applied.dataplane.pods.find((p) => p.key === key);
      const rendered = applied.outcome.pods?.find((p) => p.key === key);
      for (const iface of result.interfaces) {
        if (iface.name === pod.ifName && iface.sandbox === undefined) iface.sandbox = pod.netns;
        if (iface.mac === undefined && planned && iface.name === planned.hostIf && rendered?.hostMac !== undefined) iface.mac = rendered.hostMac;
        if (iface.mac === undefined && iface.name === pod.ifName && rendered?.containerMac !== undefined) iface.mac = rendered.containerMac;
      }
      const dns = resultDns(req, attached.dns);
      if (dns) result.dns = dns;
      else delete result.dns;
      if (req.prevResult) result = mergeResults(req.prevResult, result);
      const stdout = `${JSON.stringify(formatResult(result, req.cniVersion))}\n`;
      // Answered while this attachment's lock is held, so a DEL or a new ADD the runtime sends
      // after giving up runs after the undo below, never before it.
      if (deliver && !(await deliver({ exitCode: 0, stdout, stderr: "" }))) {
        throw new TryAgainError(`[${C}] ADD ${key}: the plugin gave up before the answer (it timed out or was killed); the attachment was undone`);
      }
      return stdout;
    } catch (err) {
      if (!existed) await this.undoAdd(agent, pod);
      throw applyError(err, `ADD ${key}`);
    }
  }

  /**
   * ADD's attach and its apply, under the add gate (concurrent ADDs share it and so their applies).
   * When the apply fails (the renderer threw) while other new pods rode in it, the failure may be
   * theirs: the pod is undone and attached again alone (the gate held exclusively), so one bad ADD
   * in a batch fails only itself. A failure after the attach undoes the attachment (unless it
   * `existed` before this ADD) before it is thrown (as a `CniError`: the renderer's code, else 999):
   * nothing stays reserved or half-created. The agent's own attach errors are thrown as they are.
   */
  private async attachApplied(agent: NodeAgent, req: CniRequest, pod: PodAttachment, existed: boolean): Promise<{ attached: AttachResult; applied: AppliedDataplane }> {
    const key = podKey(pod);
    for (let alone = false; ; alone = true) {
      const r = await this.addGate.run(alone, async () => {
        let t = performance.now();
        const attached = await agent.attach(pod).catch((err: unknown) => {
          throw err instanceof NotReadyError ? new TryAgainError(err.msg, { cause: err }) : err;
        });
        t = this.time("ADD.attach", t);
        try {
          const wanted = requestedMac(req);
          if (wanted) {
            // The plan picks the pod's MAC; one asked for is honoured only when it is that one (podman
            // network reload asks again for the MAC the container had), else refused, never ignored.
            const plannedMac = agent
              .dataplane()
              .pods.find((p) => p.key === key)
              ?.mac.toLowerCase();
            if (plannedMac !== wanted.mac) {
              const advice =
                "cnikit-cni does not set a MAC of the runtime's choosing (the backend's plan picks it); chain the tuning plugin after cnikit-cni to set one, or run the container without a fixed MAC";
              throw wanted.from === "CNI_ARGS MAC"
                ? new EnvError(`ARGS: MAC=${wanted.mac}: ${key} gets ${plannedMac ?? "a MAC of the plan's"}; ${advice}`, "CNI_ARGS MAC")
                : new ConfigError({ component: C, field: "runtimeConfig.mac", rule: `${key} gets ${plannedMac ?? "a MAC of the plan's"}: ${advice}`, value: wanted.mac });
            }
          }
          const applied = await this.applyContaining(key);
          this.time(alone ? "ADD.applyAlone" : "ADD.apply", t);
          return { attached, applied };
        } catch (err) {
          const own = err instanceof SharedApplyFailure ? err.cause : err;
          if (!existed) {
            await this.undoAdd(agent, pod);
            if (err instanceof SharedApplyFailure && !alone) return { retry: err };
          }
          throw applyError(own, `ADD ${key}`);
        }
      });
      if (!("retry" in r)) return r;
      this.log.info("an apply shared with other new pods failed; adding the pod again on its own", { pod: key, others: r.retry.others, error: r.retry.cause });
    }
  }

  /** Undoes an ADD: releases the attachment and applies without it (nothing reserved, no half-created veth). */
  private async undoAdd(agent: NodeAgent, ref: PodRef): Promise<void> {
    const key = podKey(ref);
    await agent.detach({ containerId: ref.containerId, ifName: ref.ifName }).catch((e: unknown) => this.log.error("could not undo a failed ADD", { error: e, pod: key }));
    await this.loop.request().catch((e: unknown) => this.log.warn("could not remove the interface of a failed ADD yet", { error: e, pod: key }));
  }

  /**
   * Applies until the applied dataplane holds `key` (the agent planned it before this call).
   * Throws the renderer's error — wrapped in `SharedApplyFailure` when the failed apply also held
   * other pods not applied before (whose fault it may be) —, or a `CniError` when the renderer
   * reports this pod as failed.
   */
  private async applyContaining(key: string): Promise<AppliedDataplane> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const tried = await this.loop.attempt();
      if (!tried.ok) {
        // The last success is the one before the failed apply (a failure does not replace it).
        const known = new Set(this.loop.lastApplied?.pods.map((p) => p.key));
        const others = tried.dataplane?.pods.filter((p) => p.key !== key && !known.has(p.key)).length ?? 0;
        throw others > 0 ? new SharedApplyFailure(tried.error, others) : tried.error;
      }
      const applied = tried.applied;
      const failed = applied.outcome.failedPods?.find((f) => f.key === key);
      if (failed) throw new CniError(999, `[${C}] could not set up the interfaces of ${key}: ${failed.error}`);
      if (applied.dataplane.pods.some((p) => p.key === key)) return applied;
    }
    throw new CniError(999, `[${C}] the ${this.options.backend.name} agent attached ${key} but its dataplane does not contain the pod`);
  }

  private async del(req: CniRequest): Promise<string> {
    const agent = await this.runningAgent("DEL");
    const ref = this.refOf(req);
    let t = performance.now();
    await agent.detach(ref).catch((err: unknown) => {
      throw err instanceof NotReadyError ? new TryAgainError(err.msg, { cause: err }) : err;
    });
    t = this.time("DEL.detach", t);
    try {
      await this.loop.request();
      this.time("DEL.apply", t);
    } catch (err) {
      throw new TryAgainError(`[${C}] DEL ${podKey(ref)}: the address is released but removing the interface failed: ${errorText(err)}; retry DEL`, { cause: err });
    }
    return "";
  }

  private async check(req: CniRequest): Promise<string> {
    const agent = await this.runningAgent("CHECK");
    const ref = this.refOf(req);
    const key = podKey(ref);
    await agent.check(ref);
    const applied = this.loop.lastApplied;
    const pod = applied?.pods.find((p) => p.key === key);
    if (!pod)
      throw new CheckFailedError(
        `[${C}] ${key} is not in the dataplane applied on node ${this.options.node.name}${this.loop.lastError ? ` (last apply failed: ${errorText(this.loop.lastError)})` : ""}`,
      );
    const problems: string[] = [];
    const prev = req.prevResult;
    if (this.options.applier.checkPod) {
      // The chain's final result is the truth for the container interface: a later plugin (tuning)
      // may have changed its MAC or MTU and reported it there.
      const iface = prev?.interfaces.find((i) => i.name === pod.ifName && i.sandbox !== undefined);
      const expect = { ...(iface?.mac ? { mac: iface.mac } : {}), ...(iface?.mtu !== undefined ? { mtu: iface.mtu } : {}) };
      problems.push(...(await this.options.applier.checkPod(pod, Object.keys(expect).length > 0 ? expect : undefined)));
    }
    if (prev) {
      const have = new Set(pod.addresses.map((a) => a.split("/")[0]));
      for (const ip of prev.ips) {
        const iface = ip.interface === undefined ? undefined : prev.interfaces[ip.interface];
        if (!iface || iface.name !== pod.ifName || iface.sandbox === undefined) continue;
        if (!have.has(ip.address.split("/")[0])) problems.push(`prevResult address ${ip.address} is not on ${key} (it has ${pod.addresses.join(", ") || "none"})`);
      }
    }
    if (problems.length > 0) throw new CheckFailedError(`[${C}] CHECK ${key}: ${problems.join("; ")}`, { details: problems.join("\n") });
    return "";
  }

  private async status(): Promise<string> {
    if (this.phaseValue !== "running" || !this.agent) throw new NotReadyError(`[${C}] ${this.notRunningReason()}`);
    if (this.loop.lastError !== undefined) {
      throw new NotReadyError(`[${C}] applying the dataplane of node ${this.options.node.name} failed: ${errorText(this.loop.lastError)}`, { impaired: true });
    }
    const s = this.agent.status();
    if (!s.ready) throw new NotReadyError(s.reason ?? `[${C}] the ${this.options.backend.name} agent is not ready`, { impaired: s.code === 51 });
    return "";
  }

  private async gc(req: CniRequest): Promise<string> {
    const agent = await this.runningAgent("GC");
    let gcError: unknown;
    try {
      await agent.gc(req.validAttachments ?? []);
    } catch (err) {
      gcError = err;
    }
    try {
      await this.loop.request();
    } catch (err) {
      if (gcError === undefined) throw new TryAgainError(`[${C}] GC: attachments released but applying the dataplane failed: ${errorText(err)}; retry`, { cause: err });
    }
    if (gcError !== undefined) throw gcError;
    return "";
  }

  // ------------------------------------------------------------------------------------------
  // Socket

  private async listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      stat = undefined;
    }
    if (stat) {
      if (!stat.isSocket()) throw new ConfigError({ component: C, field: "socketPath", rule: "exists and is not a unix socket; remove it or choose another path", value: path });
      if (await socketIsLive(path)) {
        throw new ConfigError({ component: C, field: "socketPath", rule: "is served by another running cnikitd; stop it first or choose another path", value: path });
      }
      this.log.info("replacing a stale socket", { socketPath: path });
      unlinkSync(path);
    }
    const server = createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new ConfigError({ component: C, field: "socketPath", rule: `cannot listen: ${errorText(err)}`, value: path, cause: err });
    });
    server.on("error", (err) => this.log.error("socket server error", { error: err }));
    this.server = server;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    const chunks: Buffer[] = [];
    let size = 0;
    socket.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        socket.destroy();
        return;
      }
      chunks.push(chunk);
    });
    socket.on("error", () => undefined);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("end", () => {
      const work = (async () => {
        let response: WireResponse;
        let answered = false;
        const deliver = (r: WireResponse): Promise<boolean> => {
          answered = true;
          return answer(socket, r);
        };
        try {
          const req = decodeRequest(Buffer.concat(chunks));
          response = await this.handle(req.env, req.stdin, { deliver });
        } catch (err) {
          response = { exitCode: 1, stdout: `${JSON.stringify(errorJson(err))}\n`, stderr: "" };
        }
        if (answered) {
          if (response.exitCode !== 0) this.log.warn("an ADD was undone: its plugin was gone before the answer", { response: response.stdout.trim() });
          return;
        }
        await answer(socket, response);
      })();
      this.inflight.add(work);
      void work.finally(() => this.inflight.delete(work));
    });
  }

  /**
   * Whether stopping now is the node leaving the cluster: the membership is followed from the store,
   * this node's Node object was seen there, and the store says it is gone now (`kubectl delete
   * node`). Otherwise (the Node object is still there, was never there, or the store does not
   * answer within `STOP_STORE_WAIT_MS`) the stop is a restart. Logs which one it is and why.
   */
  private async leaveOnStop(): Promise<boolean> {
    const name = this.options.node.name;
    if (this.options.members !== undefined) return false;
    if (!this.wasMember) {
      this.log.info("stopping for a restart (share kept): this node's Node object was never seen in the store", { node: name, key: kubeNodeKey(name) });
      return false;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const kv = await Promise.race([
        this.options.store.get(kubeNodeKey(name)),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new TryAgainError(`[${C}] the store did not answer within ${STOP_STORE_WAIT_MS} ms`)), STOP_STORE_WAIT_MS))),
      ]);
      if (kv !== undefined) {
        this.log.info("stopping for a restart (share kept): this node's Node object is still in the store", { node: name });
        return false;
      }
      this.log.info("leaving the cluster: this node's Node object was deleted, so the agent stops with release (share given back, peers told)", { node: name });
      return true;
    } catch (err) {
      this.log.warn("stopping for a restart (share kept): could not read this node's Node object from the store", { node: name, error: err });
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops: closes the socket (new calls fail fast in the shim; calls in progress finish first,
   * bounded by `graceMs`), stops the agent and stops applying. The dataplane stays as it is, so
   * pods keep working. The agent keeps its share of the address space (a restart) unless this
   * node's Node object was deleted from the store (see `leaveOnStop`): then the node is leaving the
   * cluster and the agent stops with `release: true`, giving its share back and telling its peers
   * (as flannel's kube subnet manager drops a deleted Node's subnet and Calico's kube-controllers
   * free its blocks). Idempotent.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.membersAbort.abort();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    if (server && this.options.socketPath) {
      try {
        unlinkSync(this.options.socketPath);
      } catch {
        // already gone
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const s of this.sockets) s.destroy();
    await closed;
    this.unsubscribe?.();
    await this.startPromise?.catch(() => undefined);
    const release = this.phaseValue === "running" && this.agent !== undefined && (await this.leaveOnStop());
    this.unsubscribeMembers?.();
    await this.agent?.stop(release ? { release: true } : undefined).catch((err: unknown) => this.log.warn("agent stop failed", { error: err }));
    await this.loop.close();
    await this.options.applier.close?.().catch((err: unknown) => this.log.warn("renderer close failed", { error: err }));
    if (this.phaseValue !== "failed") this.phaseValue = "stopped";
    for (const w of this.readyWaiters.splice(0)) w.reject(new TryAgainError(`[${C}] stopped before the agent started`));
  }
}

/** An apply failed while pods of other ADDs, never applied before, rode in it: whose fault it was is not known. */
class SharedApplyFailure extends Error {
  constructor(
    override readonly cause: unknown,
    /** How many such other pods the failed apply held. */
    readonly others: number,
  ) {
    super(`an apply shared with ${others} other new pod(s) failed: ${errorText(cause)}`);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A renderer failure becomes a CniError; CniErrors (e.g. 104 kernel lacks a feature) keep their code. */
function applyError(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  return new CniError(999, `[${C}] ${what}: applying the dataplane failed: ${errorText(err)}`, { cause: err });
}

/**
 * Writes one response and closes the connection; resolves whether the peer was still there to
 * take it (a unix socket whose peer closed fails the write with EPIPE).
 */
function answer(socket: Socket, response: WireResponse): Promise<boolean> {
  if (socket.destroyed || !socket.writable) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    socket.once("error", () => resolve(false));
    socket.end(encodeResponse(response), (...args: unknown[]) => resolve(args[0] == null && socket.errored === null));
  });
}

/** Whether something accepts connections on the unix socket at `path` (within 1 s). */
export function socketIsLive(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = netConnect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 1000);
    s.once("connect", () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** What STATUS over a daemon socket answered. */
export interface SocketStatus {
  /** STATUS exited 0: the agent runs, its last apply succeeded and it says it is ready. */
  ready: boolean;
  /** The CNI error code when not ready (50 not available, 51 impaired; 11 when unreachable or silent). */
  code?: number;
  msg?: string;
}

/**
 * Asks the cnikitd serving `socketPath` for STATUS, as `cnikit-cni` does, and reports the answer
 * (code 11 when nothing answers within `timeoutMs`, or nothing listens). Never throws.
 */
export function socketStatus(socketPath: string, timeoutMs = 10_000): Promise<SocketStatus> {
  const conf = JSON.stringify({ cniVersion: "1.1.0", name: "cnikit", type: "cnikit-cni" });
  const request = encodeRequest({ env: { CNI_COMMAND: "STATUS" }, stdin: Buffer.from(conf) });
  return new Promise<SocketStatus>((resolve) => {
    const chunks: Buffer[] = [];
    const socket = netConnect(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ready: false, code: 11, msg: `cnikitd did not answer STATUS within ${timeoutMs / 1000} s (socket ${socketPath})` });
    }, timeoutMs);
    socket.on("connect", () => socket.end(request));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", (err) => {
      clearTimeout(timer);
      resolve({ ready: false, code: 11, msg: `cannot reach cnikitd (connect ${socketPath}: ${(err as { code?: string }).code ?? err.message})` });
    });
    socket.on("close", () => {
      clearTimeout(timer);
      let response: WireResponse;
      try {
        response = decodeResponse(Buffer.concat(chunks));
      } catch (err) {
        resolve({ ready: false, code: 11, msg: `cnikitd closed the connection without a complete answer (socket ${socketPath}): ${errorText(err)}` });
        return;
      }
      if (response.exitCode === 0) {
        resolve({ ready: true });
        return;
      }
      try {
        const e = JSON.parse(response.stdout) as { code?: number; msg?: string };
        resolve({ ready: false, code: e.code ?? 999, msg: e.msg ?? response.stdout.trim() });
      } catch {
        resolve({ ready: false, code: 999, msg: response.stdout.trim() });
      }
    });
  });
}
