/**
 * The kernel FIB of a lab's nodes, as the benchmark judges convergence on it: each node's links'
 * addresses and main routing table read with `ip -j`, route events with their kernel timestamps
 * from one `ip -ts monitor route` per node, and the rule that says when a node's FIB holds exactly
 * the expected pod-network routes with the expected next hops (RFC 7747, per-node convergence).
 *
 * The expected routes are derived from what every live node's own rendered state says it owns,
 * not from a per-backend list: a node owns the prefixes of the addresses on its links that lie in
 * the pod ranges (flannel's cni0 subnet) and its blackhole/unreachable routes there (a Calico
 * block, a BIRD static block); its addresses are its underlay and link addresses (a VTEP or tunnel
 * address). The same identifiers the conformance suite's stale-state rule uses (`departedOf`) —
 * here read from the kernel, where the renderer (or BIRD) put the desired state.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Prefix } from "@cnikit/core";
import { execFileAsync } from "bgp-utils-free/testing";

/** A route of the main table as `ip -j route` prints it. */
export interface FibRoute {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}

/** What the kernel of one node holds: its addresses (host part) with prefix length, and its main table. */
export interface FibView {
  node: string;
  addresses: { address: string; prefixLength: number; dev: string }[];
  routes: FibRoute[];
}

/** A node's own identifiers (see the module comment). */
export interface Owned {
  addresses: Set<string>;
  ranges: Prefix[];
}

function prefixOf(cidr: string): Prefix | undefined {
  try {
    return Prefix.parse(cidr.includes("/") ? cidr : `${cidr}/${cidr.includes(":") ? 128 : 32}`, { allowHostBits: true });
  } catch {
    return undefined;
  }
}

/** Runs `ip -j -n <ns> ...` and parses its JSON. */
async function ipJson<T>(node: string, ns: string, args: readonly string[]): Promise<T[]> {
  try {
    const { stdout } = await execFileAsync("ip", ["-j", "-n", ns, ...args], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout.trim() === "" ? [] : (JSON.parse(stdout) as T[]);
  } catch (err) {
    throw new Error(`[bench] ip ${args.join(" ")} on node ${node} (netns ${ns}) failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** Reads a node namespace's addresses and main table. */
export async function readFib(node: string, ns: string): Promise<FibView> {
  const [links, routes] = await Promise.all([
    ipJson<{ ifname: string; addr_info?: { local: string; prefixlen: number }[] }>(node, ns, ["addr", "show"]),
    ipJson<FibRoute>(node, ns, ["route", "show", "table", "main"]),
  ]);
  return {
    node,
    addresses: (links ?? []).flatMap((l) => (l.addr_info ?? []).filter((a) => !/^fe[89ab]/i.test(a.local)).map((a) => ({ address: a.local, prefixLength: a.prefixlen, dev: l.ifname }))),
    routes: routes ?? [],
  };
}

function inside(ranges: readonly Prefix[], cidr: string): boolean {
  const p = prefixOf(cidr);
  return p !== undefined && ranges.some((r) => r.family === p.family && r.contains(p));
}

/** What `view`'s node owns inside `podRanges` (see the module comment). */
export function ownedBy(view: FibView, podRanges: readonly Prefix[]): Owned {
  const addresses = new Set(view.addresses.map((a) => a.address));
  const ranges: Prefix[] = [];
  const add = (p: Prefix | undefined): void => {
    if (p && p.length < p.bits && inside(podRanges, p.toString()) && !ranges.some((q) => q.equals(p))) ranges.push(p);
  };
  for (const a of view.addresses) add(prefixOf(`${a.address}/${a.prefixLength}`));
  for (const r of view.routes) if (r.type === "blackhole" || r.type === "unreachable") add(prefixOf(r.dst));
  return { addresses, ranges };
}

const routeText = (r: FibRoute): string =>
  `${r.type && r.type !== "unicast" ? `${r.type} ` : ""}${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}${r.dev ? ` dev ${r.dev}` : ""}${r.protocol ? ` proto ${r.protocol}` : ""}`;

/**
 * What keeps the live nodes' FIBs from being converged (empty: converged): every live node owns a
 * pod range; every live node X routes each range R of every other live node Y with exactly one
 * route whose destination is R and whose next hop is an address of Y; and X has no other route
 * with a next hop inside the pod ranges (one to a departed node, a wrong next hop, a duplicate).
 */
export function fibProblems(views: readonly FibView[], podRanges: readonly Prefix[]): string[] {
  const owned = new Map(views.map((v) => [v.node, ownedBy(v, podRanges)]));
  const problems: string[] = [];
  for (const v of views) if (owned.get(v.node)!.ranges.length === 0) problems.push(`node ${v.node} owns no pod range yet`);
  for (const x of views) {
    const remote = x.routes.filter((r) => r.gateway !== undefined && r.dst !== "default" && inside(podRanges, r.dst));
    const explained = new Set<FibRoute>();
    for (const y of views) {
      if (y.node === x.node) continue;
      const own = owned.get(y.node)!;
      for (const range of own.ranges) {
        const dst = range.toString();
        const to = remote.filter((r) => prefixOf(r.dst)?.equals(range));
        const good = to.filter((r) => own.addresses.has(r.gateway!));
        if (good.length === 0) problems.push(`node ${x.node} has no route to ${dst} (node ${y.node}'s) via an address of ${y.node}${to.length > 0 ? `; it has ${to.map(routeText).join(", ")}` : ""}`);
        else if (to.length > 1) problems.push(`node ${x.node} has ${to.length} routes to ${dst}: ${to.map(routeText).join(", ")}`);
        else explained.add(good[0]!);
      }
    }
    for (const r of remote)
      if (!explained.has(r) && !views.some((y) => y.node !== x.node && owned.get(y.node)!.ranges.some((p) => prefixOf(r.dst)?.equals(p))))
        problems.push(`node ${x.node} has a route no live node's range explains: ${routeText(r)}`);
  }
  return problems;
}

/** A route event of `ip -ts monitor route`, with its kernel-side wall timestamp (epoch ms). */
export interface RouteEvent {
  node: string;
  at: number;
  deleted: boolean;
  dst: string;
  line: string;
}

const EVENT_RE = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d+)\]\s+(Deleted\s+)?(?:(unicast|blackhole|unreachable|prohibit|local|broadcast|anycast|multicast|throw)\s+)?(\S+)(.*)$/;

/** Parses one line of `ip -ts monitor route` (undefined: not a route line). Timestamps are local time, as `ip` prints them. */
export function parseRouteEvent(node: string, line: string): RouteEvent | undefined {
  const m = EVENT_RE.exec(line.trim());
  if (!m) return undefined;
  const at = new Date(`${m[1]!}.${m[2]!.slice(0, 3).padEnd(3, "0")}`).getTime();
  if (!Number.isFinite(at)) return undefined;
  return { node, at, deleted: m[3] !== undefined, dst: m[5]!, line: line.trim() };
}

/** Is the event about the main table (not `table local` or another table)? */
const mainTable = (e: RouteEvent): boolean => !/\btable\s+(?!main\b)\S+/.test(e.line);

/**
 * One `ip -ts monitor route` per node namespace: keeps every route event of the main table inside
 * the pod ranges, with the kernel-side timestamp `ip` printed for it. Started before t0 and proven
 * to listen (a marker route added and deleted in each namespace must show up), stopped by the PIDs
 * it started.
 */
export class FibMonitor {
  readonly events: RouteEvent[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly seen = new Set<string>();
  private waiters: (() => void)[] = [];

  private constructor(private readonly podRanges: readonly Prefix[]) {}

  /** Starts a monitor in each of `nodes`' namespaces and waits until each one hears. */
  static async start(nodes: readonly { name: string; ns: string }[], podRanges: readonly Prefix[]): Promise<FibMonitor> {
    const m = new FibMonitor(podRanges);
    try {
      for (const n of nodes) m.listen(n.name, n.ns);
      await m.prove(nodes);
    } catch (err) {
      await m.stop();
      throw err;
    }
    return m;
  }

  private listen(node: string, ns: string): void {
    const child = spawn("ip", ["-ts", "-n", ns, "monitor", "route"], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.push(child);
    let buffer = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const e = parseRouteEvent(node, line);
        if (!e) continue;
        if (e.dst === MARKER) this.seen.add(node);
        else if (mainTable(e) && inside(this.podRanges, e.dst)) this.events.push(e);
        this.wake();
      }
    });
    child.stderr!.resume();
    child.on("error", () => undefined);
  }

  /** Adds and deletes a marker route in every namespace until every monitor has reported it. */
  private async prove(nodes: readonly { name: string; ns: string }[]): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (nodes.some((n) => !this.seen.has(n.name))) {
      for (const n of nodes.filter((x) => !this.seen.has(x.name))) {
        await execFileAsync("ip", ["-n", n.ns, "route", "replace", "unreachable", `${MARKER}/32`]);
        await execFileAsync("ip", ["-n", n.ns, "route", "del", "unreachable", `${MARKER}/32`]);
      }
      if (Date.now() > deadline)
        throw new Error(
          `[bench] ip monitor route did not report in ${nodes
            .filter((n) => !this.seen.has(n.name))
            .map((n) => n.ns)
            .join(", ")} within 20 s`,
        );
      await this.next(100);
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next event or after `ms`, whichever comes first. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** The last pod-range event at or after `since` on any of `nodes` (undefined: none). */
  lastEvent(nodes: ReadonlySet<string>, since: number): RouteEvent | undefined {
    let last: RouteEvent | undefined;
    for (const e of this.events) if (e.at >= since && nodes.has(e.node) && (!last || e.at >= last.at)) last = e;
    return last;
  }

  /** Stops every monitor by the PID it started. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all(
      this.children.splice(0).map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
          }),
      ),
    );
  }
}

/** A route the monitors are proven with (240.0.0.0/4 is reserved: nothing else uses it). */
const MARKER = "240.0.0.1";
