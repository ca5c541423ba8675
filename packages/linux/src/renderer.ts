/**
 * LinuxRenderer: reconciles a NodeDataplane into one network namespace. See DESIGN.md for the
 * ownership marks, the reconcile and the process counts per pod.
 *
 * Userspace links (option `userspace`, core's `UserspaceDatapath`): a link of one of the
 * datapath's kinds (weave's `sleeve`) is made by the datapath (`ensure`: a TAP named as the link, in
 * the namespace of the renderer's process — so render into that one) before the node batch, which
 * then sets its MAC, MTU, alias, master and up like any owned link's; the link's FDB entries go to
 * the datapath (`setFdb`) instead of `bridge fdb`; a link that goes is `remove`d before its
 * `link del`. A kernel read takes the owned TAP (`tun`) the datapath runs as the link it stands for,
 * so diffs converge; a device that `ensure` had to make again is configured again. Without a
 * datapath such a link is refused before anything changes ("kernel lacks sleeve: ...").
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import {
  ClosedError,
  CniCode,
  CniError,
  ConfigError,
  ConflictError,
  emptyDataplane,
  silentLogger,
  type FdbEntry,
  type Link,
  type Logger,
  type NodeDataplane,
  type PodInterface,
  type UserspaceDatapath,
} from "@cnikit/core";
import { IpChannel, NETLINK_HELPER, PodSideChannel, helperBuilt } from "./channel.ts";
import { MissingToolError, runIpBatch, runBridgeBatch, runNft, type BatchFailure, type BatchResult, type SpawnCounter } from "./exec.ts";
import { KernelFeatureError, detectKernelFeatures, missingFeatures, type KernelFeatures } from "./features.ts";
import { checkNetnsName } from "./netns.ts";
import { planApply, type ApplyPlan, type PlannedLine } from "./plan.ts";
import { podProblems, readKernel } from "./read.ts";
import { OWNER_RE, cloneState, desiredState, proxyArpKey, type DesiredState, type KernelState } from "./state.ts";
import { writeSysctls } from "./sysctl.ts";
import { hash32 } from "./util.ts";

/** Options of `LinuxRenderer`. */
export interface LinuxRendererOptions {
  /** Named namespace (`ip netns`) to render into; undefined = the current process's namespace. */
  netns?: string;
  /** Ownership mark (link aliases `cnikit:<owner>`, table `inet cnikit-<owner>`). Default `cnikit`. */
  owner?: string;
  log?: Logger;
  /** Protocol number of our routes and neighbours. Default: derived from the owner (200-249). */
  routeProtocol?: number;
  /** Where addresses added to links we do not own are recorded. Default `/run/cnikit/linux`. */
  stateDir?: string;
  /** Kernel features to assume instead of probing (tests). */
  features?: KernelFeatures;
  /** On a kernel read, check the container side of every existing pod and rebuild broken ones. Default true. */
  verifyPods?: boolean;
  /** Builds links of kinds the kernel has no device for (see the header). The renderer never stops it: its owner does. */
  userspace?: UserspaceDatapath;
  /**
   * The netlink helper that sets up new pods' container sides without a process per pod (built by
   * `pnpm build`: dist/cnikit-nl). Default: that one when it is built; `false` (or not built): one
   * `ip -batch` process per new pod, in its namespace.
   */
  netlinkHelper?: string | false;
}

/** One command the renderer issued. */
export interface IssuedCommand {
  /** `userspace`: a call on the userspace datapath (`ensure <link>`, `remove <link>`). */
  tool: "ip" | "bridge" | "nft" | "sysctl" | "userspace";
  /** `node`, or `pod:<key>` for a pod's container side. */
  where: string;
  /** The batch line, the nft script, or `key=value`. */
  line: string;
}

/** What a CNI result needs to know about one attached pod. */
export interface PodResult {
  key: string;
  hostIf: string;
  /** MAC of the host-side veth (derived from its name; stable). */
  hostMac: string;
  ifName: string;
  containerMac: string;
  netns: string;
  mtu: number;
  /** Whether this apply created (or rebuilt) its veth pair. */
  created: boolean;
}

/** A pod whose veth could not be set up; its host side was removed again. */
export interface PodFailure {
  key: string;
  hostIf: string;
  error: string;
}

/** What one apply did. */
export interface ApplyReport {
  node: string;
  /** Every change issued, in order (reads are not listed). Empty when the kernel was already right. */
  commands: IssuedCommand[];
  /** Processes spawned, reads included. */
  processes: number;
  /** Whether the kernel was read (first apply, after resync() or a failure). */
  readKernel: boolean;
  /** Every pod of the dataplane that is in place. */
  pods: PodResult[];
  /** Pods of the dataplane that could not be attached (rolled back; retried on the next apply). */
  failedPods: PodFailure[];
  /** Whether the nft table was loaded, replaced or removed. */
  nftChanged: boolean;
  /** How many apply() calls this report answers (later calls supersede queued ones). */
  coalesced: number;
  durationMs: number;
  /**
   * Wall time per step: `read` (kernel read, first apply only), `plan` (validate + diff), `node`
   * (nft and the node's ip batch, concurrently), `pods` (container sides, sysctls and FDB,
   * concurrently), `rollback` (failed pods). Steps that did not run are absent.
   */
  stepsMs: Partial<Record<"read" | "plan" | "node" | "pods" | "rollback", number>>;
}

/**
 * A node-level apply failure (a link, route, address, FDB entry, sysctl or nft table the kernel
 * refused). The renderer forgets its cache, so the next apply re-reads the kernel and converges.
 */
export class ApplyError extends CniError {
  readonly failures: readonly { where: string; command: string; message: string }[];
  constructor(node: string, failures: { where: string; command: string; message: string }[]) {
    const first = failures[0];
    super(
      CniCode.IoFailure,
      `[linux] apply of node ${node} failed: ${first ? `\`${first.command}\` (${first.where}): ${first.message}` : "unknown"}${failures.length > 1 ? ` (and ${failures.length - 1} more)` : ""}`,
      {
        details: failures.map((f) => `${f.where}: ${f.command}: ${f.message}`).join("\n"),
      },
    );
    this.failures = failures;
  }
}

/** A desired object exists in the kernel but belongs to someone else; the renderer will not take it. */
export class ForeignObjectError extends ConflictError {}

const GONE_RE = /No such process|No such file or directory|Cannot find device|[Aa]ddress not found|No such device/;

type Op = { kind: "apply"; dp: NodeDataplane; waiters: Waiter[] } | { kind: "teardown"; waiters: Waiter[] } | { kind: "resync"; waiters: Waiter[] };
interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** The route/neighbour protocol number derived from an owner name: 200..249. */
export function defaultRouteProtocol(owner: string): number {
  return 200 + (parseInt(hash32(`cnikit-proto/${owner}`).slice(0, 6), 16) % 50);
}

/**
 * Renders NodeDataplanes into one network namespace by reconciling: it reads the kernel's owned
 * objects on the first apply (and after `resync()` or a failure), otherwise diffs against what it
 * applied last, and issues only the delta — one `ip -batch` in the node namespace, one per new
 * pod in the pod's namespace, `bridge -batch` for FDB, one sysctl write, one `nft -f`.
 *
 * Concurrency: apply, teardown and resync are serialized; an apply queued behind a running one is
 * superseded by any later apply (every caller of the coalesced calls gets the report of the apply
 * that ran with the latest dataplane). Never touches objects it does not own.
 */
export class LinuxRenderer {
  /** The namespace rendered into (undefined = current). */
  readonly netns: string | undefined;
  readonly owner: string;
  readonly routeProtocol: number;
  private readonly log: Logger;
  private readonly stateFile: string;
  private readonly options: LinuxRendererOptions;
  private readonly userspaceKinds: ReadonlySet<string>;
  private cache: KernelState | undefined;
  private foreignAddrs = new Set<string>();
  private recorded = new Set<string>();
  private lastDp: NodeDataplane | undefined;
  private podResults = new Map<string, PodResult>();
  private readonly queue: Op[] = [];
  private running = false;
  private closed = false;
  /** The persistent `ip -batch` of the node namespace (node batches and rollbacks go through it: no process per apply). */
  private channel: IpChannel | undefined;
  /** The netlink helper for pod sides (undefined until first used, or when there is none). */
  private podChannel: PodSideChannel | undefined;

  /** @throws ConfigError for a bad owner, netns name or routeProtocol. */
  constructor(options: LinuxRendererOptions = {}) {
    this.options = options;
    this.userspaceKinds = new Set(options.userspace?.kinds ?? []);
    this.owner = options.owner ?? "cnikit";
    if (!OWNER_RE.test(this.owner))
      throw new ConfigError({ component: "linux", field: "owner", rule: "must be 1-32 lower-case letters, digits, '_' or '-', starting with a letter or digit", value: this.owner });
    if (options.netns !== undefined) checkNetnsName(options.netns);
    this.netns = options.netns;
    const proto = options.routeProtocol ?? defaultRouteProtocol(this.owner);
    if (!Number.isInteger(proto) || proto < 5 || proto > 254)
      throw new ConfigError({ component: "linux", field: "routeProtocol", rule: "must be an integer from 5 to 254 (0-4 are the kernel's)", value: proto });
    this.routeProtocol = proto;
    this.log = options.log ?? silentLogger;
    const dir = options.stateDir ?? "/run/cnikit/linux";
    this.stateFile = `${dir}/${this.netns ?? "self"}--${this.owner}.json`;
  }

  /**
   * Makes the namespace hold exactly what `dp` asks for among owned objects; removes owned
   * objects `dp` no longer has. Idempotent: applying the same dataplane again issues no command.
   * Pods that fail are rolled back and listed in `failedPods` (the rest is applied).
   * @throws ConfigError for a dataplane it cannot render and KernelFeatureError for one the kernel
   *   cannot build — both before anything is changed; ForeignObjectError when a link it must create
   *   exists and is not owned; ApplyError when the kernel refuses a node-level change;
   *   MissingToolError when iproute2/nftables/util-linux/procps are missing; ClosedError after close().
   */
  apply(dp: NodeDataplane): Promise<ApplyReport> {
    return this.enqueue({ kind: "apply", dp, waiters: [] }) as Promise<ApplyReport>;
  }

  /**
   * Forgets the cache: the next apply (run now with the last dataplane, when there was one)
   * re-reads the kernel, so changes made behind the renderer's back are repaired.
   */
  resync(): Promise<ApplyReport | undefined> {
    return this.enqueue({ kind: "resync", waiters: [] }) as Promise<ApplyReport | undefined>;
  }

  /**
   * Removes everything this owner holds in the namespace (pod veths, links, routes, neighbours,
   * recorded addresses, the nft table), read from the kernel. Idempotent. Global sysctls are left
   * as they are (they are shared, not owned).
   */
  teardown(): Promise<void> {
    return this.enqueue({ kind: "teardown", waiters: [] }) as Promise<void>;
  }

  /**
   * Problems with `pod`'s veth pair as the kernel holds it (empty = as asked): host side exists,
   * is owned, on its bridge and up; container side exists in `pod.netns`, is its peer, has the MAC,
   * MTU, addresses and routes. For CNI CHECK. Reads only (two processes); safe at any time.
   */
  checkPod(pod: PodInterface, expect?: { mac?: string; mtu?: number }): Promise<string[]> {
    return podProblems({ ns: this.netns, owner: this.owner, pod, ...(expect ? { attributes: expect } : {}) });
  }

  /**
   * Waits for queued work to finish, then refuses further calls (ClosedError). Leaves the
   * dataplane in place: pods keep working. Idempotent.
   */
  async close(): Promise<void> {
    this.closed = true;
    while (this.running || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    const ch = this.channel;
    const pc = this.podChannel;
    this.channel = undefined;
    this.podChannel = undefined;
    await Promise.all([ch?.close(), pc?.close()]);
  }

  /** PID of the netlink helper setting up pod sides, while one runs (for tests and ops). */
  get podChannelPid(): number | undefined {
    return this.podChannel?.pid;
  }

  /** The container side of a new pod: through the netlink helper when there is one, else one `ip -batch` in its namespace. */
  private podSide(netns: string, lines: readonly string[], counter: SpawnCounter): Promise<BatchResult> {
    const helper = this.options.netlinkHelper ?? NETLINK_HELPER;
    if (helper === false || !helperBuilt(helper)) return runIpBatch(netns, lines, { counter });
    this.podChannel ??= new PodSideChannel({ helper });
    return this.podChannel.run(netns, lines, counter);
  }

  /** PID of the node namespace's persistent `ip -batch` child, while one runs (for tests and ops). */
  get channelPid(): number | undefined {
    return this.channel?.pid;
  }

  /** Runs node-namespace lines through the persistent channel (started on first use, restarted when it died). */
  private nodeBatch(lines: readonly string[], counter: SpawnCounter): Promise<BatchResult> {
    this.channel ??= new IpChannel({ netns: this.netns });
    return this.channel.run(lines, counter);
  }

  /** What the last apply reported for pod `key` (undefined when not in place). */
  podInfo(key: string): PodResult | undefined {
    const r = this.podResults.get(key);
    return r === undefined ? undefined : { ...r };
  }

  private enqueue(op: Op): Promise<unknown> {
    if (this.closed) return Promise.reject(new ClosedError(`[linux] renderer for ${this.where()} is closed`));
    return new Promise((resolve, reject) => {
      const last = this.queue[this.queue.length - 1];
      if (op.kind === "apply" && last?.kind === "apply") {
        last.dp = op.dp;
        last.waiters.push({ resolve, reject });
      } else {
        op.waiters.push({ resolve, reject });
        this.queue.push(op);
      }
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const op = this.queue.shift()!;
        try {
          let result: unknown;
          if (op.kind === "apply") {
            const report = await this.doApply(op.dp);
            report.coalesced = op.waiters.length;
            result = report;
          } else if (op.kind === "resync") {
            this.cache = undefined;
            if (this.lastDp) {
              const report = await this.doApply(this.lastDp);
              report.coalesced = 1;
              result = report;
            }
          } else {
            await this.doTeardown();
          }
          for (const w of op.waiters) w.resolve(result);
        } catch (err) {
          for (const w of op.waiters) w.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async loadRecorded(): Promise<void> {
    try {
      const data = JSON.parse(await readFile(this.stateFile, "utf8")) as { addrs?: unknown };
      this.recorded = new Set(Array.isArray(data.addrs) ? data.addrs.filter((x): x is string => typeof x === "string") : []);
    } catch {
      this.recorded = new Set();
    }
  }

  private async saveRecorded(): Promise<void> {
    if (this.recorded.size === 0) {
      if (existsSync(this.stateFile)) await rm(this.stateFile, { force: true });
      return;
    }
    await mkdir(this.stateFile.slice(0, this.stateFile.lastIndexOf("/")), { recursive: true });
    await writeFile(this.stateFile, `${JSON.stringify({ addrs: [...this.recorded].sort() })}\n`);
  }

  /** Reads the kernel into a fresh observed state (recorded foreign addresses count as owned). */
  private async read(desired: DesiredState, counter: SpawnCounter): Promise<{ observed: KernelState; rebuild: Set<string> }> {
    await this.loadRecorded();
    const r = await readKernel({ ns: this.netns, owner: this.owner, proto: this.routeProtocol, sysctlKeys: [...desired.sysctls.keys()], counter });
    const observed = r.state;
    this.foreignAddrs = new Set();
    for (const k of r.foreignAddrs) {
      if (this.recorded.has(k)) {
        const sp = k.indexOf(" ");
        const cidr = k.slice(sp + 1);
        observed.addrs.set(k, { dev: k.slice(0, sp), cidr, family: cidr.includes(":") ? 6 : 4 });
      } else this.foreignAddrs.add(k);
    }
    for (const k of [...this.recorded]) if (!r.foreignAddrs.has(k)) this.recorded.delete(k);
    this.adoptUserspaceLinks(observed, desired);
    for (const name of [...desired.links.keys(), ...desired.pods.keys()]) {
      // A device our userspace datapath runs is ours even before the batch gave it the alias.
      if (this.options.userspace?.has(name) && !observed.links.has(name)) continue;
      if (r.allLinks.has(name) && !observed.links.has(name) && !observed.pods.has(name)) {
        throw new ForeignObjectError(name, `[linux] link ${name} exists in ${this.where()} and is not owned by cnikit:${this.owner}: remove it or choose another name`);
      }
    }
    const rebuild = new Set<string>();
    if (this.options.verifyPods !== false) {
      const check = [...desired.pods.values()].filter((d) => observed.pods.get(d.hostIf)?.hash === d.hash);
      await mapLimit(check, 8, async (d) => {
        // MAC and MTU are left out: a chained plugin (tuning) may have changed them after the ADD,
        // and rebuilding would undo its work and cut the pod off.
        const problems = await podProblems({ ns: this.netns, owner: this.owner, pod: d.spec!, counter, hostSide: false, attributes: false });
        if (problems.length > 0) {
          this.log.warn("pod veth drifted; rebuilding", { pod: d.spec!.key, problems });
          rebuild.add(d.hostIf);
        }
      });
    }
    return { observed, rebuild };
  }

  /** Owned TAPs the userspace datapath runs stand for the desired links of its kinds (so the diff converges). */
  private adoptUserspaceLinks(observed: KernelState, desired: DesiredState): void {
    const u = this.options.userspace;
    if (!u) return;
    for (const [name, o] of observed.links) {
      const d = desired.links.get(name);
      if (o.kind === "tun" && d && this.userspaceKinds.has(d.kind) && u.has(name)) o.kind = d.kind;
    }
  }

  /**
   * Before the node batch: stops the userspace devices of links that go (or change kind) and has
   * the datapath make those `dp` wants; a device made anew is dropped from `observed` so the plan
   * configures it. Returns the FDB entries of the userspace links (taken out of `desired`).
   */
  private async userspaceBefore(dp: NodeDataplane, desired: DesiredState, observed: KernelState, report: ApplyReport): Promise<Map<string, FdbEntry[]>> {
    const u = this.options.userspace;
    const fdb = new Map<string, FdbEntry[]>();
    if (!u) return fdb;
    const wanted = new Map<string, Link>();
    for (const l of dp.links) if (this.userspaceKinds.has(l.kind)) wanted.set(l.name, l);
    const names = new Set([...observed.links.keys(), ...(this.lastDp?.links.map((l) => l.name) ?? [])]);
    for (const name of names) {
      if (wanted.has(name) || !u.has(name)) continue;
      report.commands.push({ tool: "userspace", where: "node", line: `remove ${name}` });
      await u.remove(name);
    }
    for (const [name, link] of wanted) {
      if (await u.ensure(link)) {
        report.commands.push({ tool: "userspace", where: "node", line: `ensure ${name}` });
        observed.links.delete(name);
        for (const [k, a] of observed.addrs) if (a.dev === name) observed.addrs.delete(k);
      }
      fdb.set(name, []);
    }
    for (const [k, e] of desired.fdb) {
      const list = fdb.get(e.dev);
      if (!list) continue;
      list.push({ dev: e.dev, mac: e.mac, dst: e.dst, permanent: true });
      desired.fdb.delete(k);
    }
    return fdb;
  }

  private where(): string {
    return this.netns === undefined ? "the current netns" : `netns ${this.netns}`;
  }

  private async doApply(dp: NodeDataplane, teardown = false): Promise<ApplyReport> {
    const started = performance.now();
    const desired = desiredState(dp, { owner: this.owner });
    if (!teardown) {
      const features = this.options.features ?? (await detectKernelFeatures());
      const missing = missingFeatures(dp, features, this.userspaceKinds);
      if (missing.length > 0) throw new KernelFeatureError(missing);
    }
    const validateMs = performance.now() - started;
    const counter: SpawnCounter = { spawned: 0 };
    let readKernelNow = false;
    let observed = this.cache;
    let rebuild = new Set<string>();
    const steps: ApplyReport["stepsMs"] = {};
    if (observed === undefined) {
      // The kernel may have changed behind our back: the node channel's `ip` looks names up afresh.
      this.channel?.recycle();
      const t = performance.now();
      const r = await this.read(desired, counter);
      observed = r.observed;
      rebuild = r.rebuild;
      readKernelNow = true;
      steps.read = performance.now() - t;
    }
    if (this.options.userspace && observed === this.cache) {
      observed = cloneState(observed);
      this.adoptUserspaceLinks(observed, desired);
    }
    const report: ApplyReport = {
      node: dp.node,
      commands: [],
      processes: 0,
      readKernel: readKernelNow,
      pods: [],
      failedPods: [],
      nftChanged: false,
      coalesced: 1,
      durationMs: 0,
      stepsMs: { ...steps },
    };
    const userspaceFdb = await this.userspaceBefore(dp, desired, observed, report);
    const planStarted = performance.now();
    // A veth whose peer cannot be moved into its netns would abort the whole batch (ip exits on a
    // bad argument): such pods fail before the plan, and nothing of theirs is issued.
    const early = new Map<string, string>();
    for (const d of [...desired.pods.values()]) {
      const o = observed.pods.get(d.hostIf);
      const creates = !o || o.hash !== d.hash || rebuild.has(d.hostIf);
      if (creates && !existsSync(d.spec!.netns!)) {
        early.set(d.hostIf, `netns ${d.spec!.netns} does not exist`);
        dropPod(desired, d.hostIf);
      }
    }
    const plan = planApply({ observed, desired, owner: this.owner, proto: this.routeProtocol, foreignAddrs: this.foreignAddrs, rebuildPods: rebuild, userspaceKinds: this.userspaceKinds });
    report.nftChanged = plan.nft !== undefined;
    report.stepsMs.plan = validateMs + performance.now() - planStarted;
    this.cache = undefined;
    try {
      const failed = await this.execute(plan, desired, report, counter);
      for (const [name, entries] of userspaceFdb) this.options.userspace!.setFdb(name, entries);
      for (const [hostIf, error] of early) failed.set(hostIf, error);
      const after = cloneState(plan.after);
      for (const [hostIf, error] of failed) {
        const spec = dp.pods.find((p) => p.hostIf === hostIf);
        report.failedPods.push({ key: spec?.key ?? hostIf, hostIf, error });
        dropPod(after, hostIf);
      }
      this.cache = after;
    } finally {
      report.processes = counter.spawned;
      report.durationMs = performance.now() - started;
    }
    this.lastDp = teardown ? undefined : dp;
    this.podResults = new Map();
    const created = new Set(plan.createdPods);
    for (const d of desired.pods.values()) {
      if (!this.cache?.pods.has(d.hostIf)) continue;
      const p = d.spec!;
      const r: PodResult = { key: p.key, hostIf: d.hostIf, hostMac: d.hostMac, ifName: p.ifName, containerMac: p.mac.toLowerCase(), netns: p.netns!, mtu: p.mtu, created: created.has(d.hostIf) };
      report.pods.push(r);
      this.podResults.set(p.key, r);
    }
    if (report.commands.length > 0 || report.failedPods.length > 0) {
      this.log.info("applied dataplane", { node: dp.node, commands: report.commands.length, processes: report.processes, failedPods: report.failedPods.length, ms: Math.round(report.durationMs) });
    }
    return report;
  }

  /** Runs a plan; returns the pods that failed (host interface -> message). Throws ApplyError for node-level failures. */
  private async execute(plan: ApplyPlan, desired: DesiredState, report: ApplyReport, counter: SpawnCounter): Promise<Map<string, string>> {
    const errors: { where: string; command: string; message: string }[] = [];
    const podFailed = new Map<string, string>();
    const issue = (tool: IssuedCommand["tool"], where: string, line: string) => report.commands.push({ tool, where, line });
    const sortFailures = (lines: readonly PlannedLine[], failures: readonly BatchFailure[], where: string) => {
      for (const f of failures) {
        const pl = lines[f.line - 1];
        if (pl?.del && GONE_RE.test(f.message)) continue;
        if (pl?.pod !== undefined) {
          if (!podFailed.has(pl.pod)) podFailed.set(pl.pod, `\`${pl.line}\`: ${f.message}`);
          continue;
        }
        errors.push({ where, command: pl?.line ?? f.command, message: f.message });
      }
    };
    if (plan.foreignAdded.length > 0) {
      for (const k of plan.foreignAdded) this.recorded.add(k);
      await this.saveRecorded();
    }
    // nft first (or alongside the links): filters are in place before a new pod has an address.
    const nftP =
      plan.nft === undefined
        ? Promise.resolve()
        : (issue("nft", "node", plan.nft),
          runNft(this.netns, plan.nft, counter).catch((err: unknown) => {
            errors.push({ where: "node", command: "nft -f -", message: err instanceof CniError ? err.msg : String(err) });
          }));
    for (const l of plan.node) issue("ip", "node", l.line);
    const nodeP = this.nodeBatch(
      plan.node.map((l) => l.line),
      counter,
    ).then(
      (r) => sortFailures(plan.node, r.failures, "node"),
      (err: unknown) => {
        if (err instanceof MissingToolError) throw err;
        errors.push({ where: "node", command: "ip -batch", message: err instanceof CniError ? err.msg : String(err) });
      },
    );
    let t = performance.now();
    await Promise.all([nftP, nodeP]);
    if (plan.nft !== undefined || plan.node.length > 0) report.stepsMs.node = performance.now() - t;
    if (errors.length > 0) throw new ApplyError(report.node, errors);
    const sides = plan.podSides.filter((s) => !podFailed.has(s.hostIf));
    for (const s of sides) for (const l of s.lines) issue("ip", `pod:${s.key}`, l);
    const sysctls = plan.sysctls.filter((s) => s.pod === undefined || !podFailed.has(s.pod));
    for (const s of sysctls) issue("sysctl", "node", `${s.key}=${s.value}`);
    for (const l of plan.fdb) issue("bridge", "node", l.line);
    t = performance.now();
    await Promise.all([
      mapLimit(sides, 8, async (s) => {
        try {
          await this.podSide(s.netns, s.lines, counter);
        } catch (err) {
          podFailed.set(s.hostIf, err instanceof CniError ? err.msg : String(err));
        }
      }),
      writeSysctls(
        this.netns,
        sysctls.map((s) => ({ key: s.key, value: s.value })),
        counter,
      ).catch((err: unknown) => {
        errors.push({ where: "node", command: "sysctl -w", message: err instanceof CniError ? err.msg : String(err) });
      }),
      plan.fdb.length === 0
        ? Promise.resolve()
        : runBridgeBatch(
            this.netns,
            plan.fdb.map((l) => l.line),
            { force: true, counter },
          ).then((r) => sortFailures(plan.fdb, r.failures, "node")),
    ]);
    if (sides.length > 0 || sysctls.length > 0 || plan.fdb.length > 0) report.stepsMs.pods = performance.now() - t;
    if (podFailed.size > 0) {
      t = performance.now();
      const rollback = [...podFailed.keys()].map((h) => `link del dev ${h}`);
      for (const l of rollback) issue("ip", "node", l);
      await this.nodeBatch(rollback, counter).catch((err: unknown) => this.log.warn("rolling back failed pods failed", { error: err }));
      report.stepsMs.rollback = performance.now() - t;
      for (const [hostIf, error] of podFailed) this.log.warn("pod attach failed; rolled back", { hostIf, pod: desired.pods.get(hostIf)?.spec?.key, error });
    }
    if (errors.length > 0) throw new ApplyError(report.node, errors);
    if (plan.foreignRemoved.length > 0) {
      for (const k of plan.foreignRemoved) this.recorded.delete(k);
      await this.saveRecorded();
    }
    return podFailed;
  }

  private async doTeardown(): Promise<void> {
    this.cache = undefined;
    const node = this.lastDp?.node ?? "teardown";
    await this.doApply(emptyDataplane(node), true);
    this.cache = undefined;
    this.lastDp = undefined;
    this.podResults = new Map();
    this.recorded = new Set();
    await rm(this.stateFile, { force: true });
  }
}

function dropPod(s: KernelState, hostIf: string): void {
  s.pods.delete(hostIf);
  for (const [k, a] of s.addrs) if (a.dev === hostIf) s.addrs.delete(k);
  for (const [k, r] of s.routes) if (r.dev === hostIf) s.routes.delete(k);
  for (const [k, n] of s.neigh) if (n.dev === hostIf) s.neigh.delete(k);
  s.sysctls.delete(proxyArpKey(hostIf));
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
