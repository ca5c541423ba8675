/**
 * Section D: dynamics and convergence. Every scenario records its convergence time (virtual and
 * wall), and the peer messages, bytes and store operations it took.
 */
import { Prefix, canonicalDataplane } from "@cnikit/core";
import type { NodeDataplane } from "@cnikit/core";
import type { SimPod } from "@cnikit/sim";
import { SOURCES, fail, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv } from "../check.ts";
import { addPods, converge, describeError, fullReachProblems, ipamProblems, livePods, startMetrics, summarizeProblems, thrown } from "../harness.ts";
import type { Harness } from "../harness.ts";
import { departedOf, staleProblems } from "../stale.ts";
import type { Departed } from "../stale.ts";
import type { CheckMetrics, CheckOutcome } from "../types.ts";

/** `n` kept within [lo, hi] (node counts of a scenario). */
export function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}

/** Joins `count` nodes one after another (names `<prefix>-1`...), adds `pods` pods each, settles. */
export async function populate(h: Harness, env: CheckEnv, count: number, pods: number, prefix: string): Promise<string[]> {
  const names: string[] = [];
  for (let i = 1; i <= count; i++) names.push((await h.cluster.addNode({ name: `${prefix}-${i}` })).name);
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  await addPods(h, names, pods);
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  return names;
}

/** Reachability and address problems of the live cluster, joined; undefined when there are none. */
export function healthProblem(h: Harness, env: CheckEnv): string | undefined {
  const problems = [...ipamProblems(h, env.summary.podRanges).map((p) => p.text), ...fullReachProblems(h)];
  return problems.length > 0 ? summarizeProblems(problems) : undefined;
}

/**
 * The span's figures with the convergence time: virtual ms from the start of the span (the event)
 * until the desired state last changed and the condition held — never the quiet period `converge`
 * watched afterwards.
 */
/**
 * The check's metrics with the convergence figure: virtual time from `since` (the event the check
 * measures from — the join, the crash, the heal) to the point the state settled, and the wall time
 * convergence took. One helper for dynamics and scenarios.
 */
export function withConvergence(m: { stop(): CheckMetrics }, conv: { settledAt: number; wallMs: number }, since: number): CheckMetrics {
  return { ...m.stop(), virtualMs: conv.settledAt - since, wallMs: conv.wallMs };
}

/** A short description of what differs between two dataplanes. */
export function dataplaneDiff(before: NodeDataplane, after: NodeDataplane): string {
  const a = canonicalDataplane(before) as unknown as Record<string, unknown>;
  const b = canonicalDataplane(after) as unknown as Record<string, unknown>;
  const parts: string[] = [];
  for (const field of Object.keys(a)) {
    const x = JSON.stringify(a[field]);
    const y = JSON.stringify(b[field]);
    if (x !== y) parts.push(`${field}: ${x.length > 160 ? `${x.slice(0, 157)}...` : x} -> ${y.length > 160 ? `${y.slice(0, 157)}...` : y}`);
  }
  return parts.join("; ");
}

const NAME_EDGE = "A-Za-z0-9_.\\-";
const ADDRESS_EDGE = "0-9A-Za-z.:";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/**
 * Whether `text` names `token` as a whole: a node name not inside a longer name; an address not
 * inside a longer address nor the base of a prefix (`10.244.0.0/26` names a range, not the pod
 * 10.244.0.0; `/32` and `/128` do name the address).
 */
function namesToken(text: string, token: string, kind: "name" | "address"): boolean {
  const edge = kind === "name" ? NAME_EDGE : ADDRESS_EDGE;
  const re = new RegExp(`(?<![${edge}])${escapeRegExp(token)}(?![${edge}])(/\\d+)?`, "g");
  for (const m of text.matchAll(re)) {
    if (kind === "name" || m[1] === undefined) return true;
    if (m[1] === (token.includes(":") ? "/128" : "/32")) return true;
  }
  return false;
}

/**
 * What the cluster store still holds of a node that left cleanly: keys and values that name it,
 * its underlay address or one of its pods' addresses. A clean leave (`stop({ release: true })`)
 * gives the node's share back — flannel's lease, the reference's claim, Calico's block affinities,
 * handles and node record — so none of them should stay. What a live node owns now (its name, its
 * underlay address, its pods' addresses) is never counted; nor is a range whose base happens to be
 * a departed pod's address (a shared block that other nodes' pods still use).
 */
async function leftInStore(h: Harness, gone: Departed, departedPods: readonly SimPod[]): Promise<string[]> {
  const live = h.cluster.nodes().filter((n) => n.alive);
  const liveNames = new Set(live.map((n) => n.name));
  const liveAddresses = new Set([...live.flatMap((n) => n.info.underlay.map((u) => u.address)), ...livePods(h).flatMap((p) => p.addresses)]);
  const tokens: { token: string; kind: "name" | "address"; what: string }[] = [];
  if (!liveNames.has(gone.name)) tokens.push({ token: gone.name, kind: "name", what: "its name" });
  if (gone.address !== "" && !liveAddresses.has(gone.address)) tokens.push({ token: gone.address, kind: "address", what: "its underlay address" });
  for (const a of gone.podAddresses) {
    if (liveAddresses.has(a)) continue;
    const pod = departedPods.find((p) => p.addresses.includes(a));
    tokens.push({ token: a, kind: "address", what: pod ? `the address of its pod ${pod.namespace}/${pod.name}` : "the address of one of its pods" });
  }
  // Most specific first: a record holding a pod's address is reported with the pod.
  tokens.reverse();
  const problems: string[] = [];
  for (const kv of (await h.store.list("")).items) {
    for (const t of tokens) {
      const inKey = namesToken(kv.key, t.token, t.kind);
      if (!inKey && !namesToken(kv.value, t.token, t.kind)) continue;
      const value = kv.value.length > 160 ? `${kv.value.slice(0, 157)}...` : kv.value;
      problems.push(`the store still holds ${kv.key}${inKey ? "" : ` = ${value}`}, which names ${t.token} (${t.what}) of departed node ${gone.name}`);
      break;
    }
  }
  return problems;
}

async function leaveOrCrash(env: CheckEnv, mode: "clean" | "crash"): Promise<CheckOutcome> {
  const id = mode === "clean" ? "dyn.leave" : "dyn.crash";
  const bound = mode === "clean" ? env.summary.convergenceMs : env.summary.crashDetectionMs;
  const h = env.harness(id);
  const names = await populate(h, env, clamp(env.nodes, 3, 6), 2, mode === "clean" ? "l" : "x");
  const baseline = healthProblem(h, env);
  if (baseline) return fail(`before the ${mode === "clean" ? "leave" : "crash"}: ${baseline}`);
  const victim = names[1]!;
  const gone = departedOf(h, victim);
  const victimPods = h.cluster.pods().filter((p) => p.node === victim);
  const m = startMetrics(h);
  await h.cluster.removeNode(victim, { mode });
  const conv = await converge(h, bound, () => {
    const stale = staleProblems(h, gone);
    return stale.length > 0 ? summarizeProblems(stale) : undefined;
  });
  const metrics = withConvergence(m, conv, m.startedAt);
  const what = mode === "clean" ? `node ${victim} left cleanly` : `node ${victim} crashed`;
  if (!conv.converged) return fail(`${bound} ms after ${what}: ${conv.problem}`, { metrics });
  if (mode === "clean") {
    // Its share went back: given the rest of the bound, the store no longer names it.
    let left = await leftInStore(h, gone, victimPods);
    const remaining = m.startedAt + bound - h.clock.now();
    if (left.length > 0 && remaining > 0) {
      await h.cluster.settle({ limitMs: remaining });
      left = await leftInStore(h, gone, victimPods);
    }
    if (left.length > 0) return fail(`${bound} ms after ${what} (stop with release), its share was not given back: ${summarizeProblems(left)}`, { metrics });
  }
  const after = healthProblem(h, env);
  if (after) return fail(`after ${what}, the remaining cluster is broken: ${after}`, { metrics });
  // The space is reusable and nothing is handed out twice: a newcomer and its pods.
  const joined = await h.cluster.addNode({ name: `${mode === "clean" ? "l" : "x"}-new` });
  await addPods(h, [joined.name, names[0]!], 2, "after");
  const healed = await converge(h, env.summary.convergenceMs, () => healthProblem(h, env));
  if (!healed.converged) return fail(`after ${what}, a new node ${joined.name} and new pods: ${healed.problem}`, { metrics });
  return pass({ metrics });
}

interface ScenarioEvent {
  kind: "join" | "pod" | "leave" | "unpod";
  node?: string;
  pod?: string;
}

/** The order-independence scenario: joins, pods, a leave, a pod deletion, a late join. */
const SCENARIO: ScenarioEvent[] = [
  { kind: "join", node: "o-1" },
  { kind: "join", node: "o-2" },
  { kind: "join", node: "o-3" },
  { kind: "join", node: "o-4" },
  { kind: "pod", node: "o-1", pod: "a" },
  { kind: "pod", node: "o-1", pod: "b" },
  { kind: "pod", node: "o-2", pod: "c" },
  { kind: "pod", node: "o-3", pod: "d" },
  { kind: "pod", node: "o-3", pod: "e" },
  { kind: "pod", node: "o-4", pod: "f" },
  { kind: "leave", node: "o-2" },
  { kind: "unpod", pod: "e" },
  { kind: "join", node: "o-5" },
  { kind: "pod", node: "o-5", pod: "g" },
];

/** The same end state, squashed: only what survives. */
const SQUASHED: ScenarioEvent[] = [
  { kind: "join", node: "o-1" },
  { kind: "join", node: "o-3" },
  { kind: "join", node: "o-4" },
  { kind: "join", node: "o-5" },
  { kind: "pod", node: "o-1", pod: "a" },
  { kind: "pod", node: "o-1", pod: "b" },
  { kind: "pod", node: "o-3", pod: "d" },
  { kind: "pod", node: "o-4", pod: "f" },
  { kind: "pod", node: "o-5", pod: "g" },
];

function ready(e: ScenarioEvent, done: ScenarioEvent[]): boolean {
  const has = (p: (x: ScenarioEvent) => boolean) => done.some(p);
  switch (e.kind) {
    case "join":
      return true;
    case "pod":
      return has((x) => x.kind === "join" && x.node === e.node);
    case "leave":
      return SCENARIO.filter((x) => x.kind === "pod" && x.node === e.node).every((p) => done.includes(p)) && has((x) => x.kind === "join" && x.node === e.node);
    case "unpod":
      return has((x) => x.kind === "pod" && x.pod === e.pod);
  }
}

/** A random order of the scenario that respects its dependencies (seeded). */
function shuffledScenario(seed: number): ScenarioEvent[] {
  let state = seed >>> 0 || 1;
  const rand = () => {
    state = (Math.imul(state, 48271) >>> 0) % 2147483647;
    return state / 2147483647;
  };
  const left = [...SCENARIO];
  const out: ScenarioEvent[] = [];
  while (left.length > 0) {
    const candidates = left.filter((e) => ready(e, out));
    const pick = candidates[Math.floor(rand() * candidates.length)]!;
    out.push(pick);
    left.splice(left.indexOf(pick), 1);
  }
  return out;
}

/**
 * A node's underlay subnet, fixed by its name (o-1 on the first node subnet, o-2 on the second,
 * ...): which nodes share an L2 subnet must not depend on the order they joined in.
 */
function subnetFor(h: Harness, node: string): string {
  const external = new Set((h.cluster.topology.externals ?? []).map((e) => e.subnet));
  const subnets = h.cluster.topology.subnets.filter((s) => !external.has(s.name)).map((s) => s.name);
  const index = Number(node.split("-").pop() ?? "1") - 1;
  return subnets[index % subnets.length]!;
}

async function applyScenario(h: Harness, env: CheckEnv, events: ScenarioEvent[], settleEach: boolean): Promise<void> {
  for (const e of events) {
    if (e.kind === "join") await h.cluster.addNode({ name: e.node!, subnet: subnetFor(h, e.node!) });
    else if (e.kind === "pod") await h.cluster.addPod(e.node!, { name: e.pod!, containerId: `c-${e.pod!}` });
    else if (e.kind === "leave") await h.cluster.removeNode(e.node!, { mode: "clean" });
    else {
      const pod = h.cluster.pods().find((p) => p.name === e.pod);
      if (pod) await h.cluster.removePod(pod);
    }
    if (settleEach) await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  }
}

/**
 * The end state in terms that do not depend on which address or subnet a node happened to get
 * (addresses legitimately follow the order nodes joined in), without losing what the routes mean.
 * Per live node: its pods; each route as "whose addresses it covers -> which node it goes via"
 * (owners are the live nodes whose pod or host-side addresses fall inside the destination; the next
 * hop's owner by its underlay or host-side address); the node each FDB entry sends to; each
 * neighbour as "whose address -> the node its MAC's FDB entry sends to"; the links; and how many
 * NAT rules, filters and pod interfaces it has.
 */
function normalizedView(h: Harness): string {
  const alive = [...h.cluster.nodes()].filter((n) => n.alive).sort((a, b) => (a.name < b.name ? -1 : 1));
  const owner = new Map<string, string>();
  /** Addresses that say which node a destination prefix belongs to: pods' and host-side ones. */
  const held: { address: string; node: string }[] = [];
  for (const node of alive) {
    for (const u of node.info.underlay) owner.set(u.address, node.name);
    for (const a of h.cluster.dataplane(node.name).addresses) {
      const address = a.cidr.split("/")[0]!;
      owner.set(address, node.name);
      held.push({ address, node: node.name });
    }
  }
  for (const pod of livePods(h)) for (const address of pod.addresses) held.push({ address, node: pod.node });
  const ownerOf = (address: string): string => owner.get(address) ?? "(outside the cluster)";
  const coveredBy = (dst: string): string => {
    let prefix: Prefix;
    try {
      prefix = Prefix.parse(dst, { allowHostBits: true });
    } catch {
      return `(unparsable ${dst})`;
    }
    const names = [...new Set(held.filter((x) => prefix.contains(x.address)).map((x) => x.node))].sort();
    return names.length > 0 ? names.join("+") : "(no live node)";
  };
  const view: Record<string, unknown> = {};
  for (const node of alive) {
    const dp = h.cluster.dataplane(node.name);
    const fdbTo = new Map(dp.fdb.map((f) => [f.mac.toLowerCase(), ownerOf(f.dst)]));
    view[node.name] = {
      pods: livePods(h)
        .filter((p) => p.node === node.name)
        .map((p) => p.name)
        .sort(),
      routes: dp.routes.map((r) => `${r.type ?? "unicast"} ${coveredBy(r.dst)}${r.table === undefined ? "" : ` table ${r.table}`} -> ${r.via === undefined ? "direct" : ownerOf(r.via)}`).sort(),
      fdb: dp.fdb.map((f) => ownerOf(f.dst)).sort(),
      neighbours: dp.neighbours.map((n) => `${ownerOf(n.ip)} -> ${fdbTo.get(n.mac.toLowerCase()) ?? "(no FDB entry)"}`).sort(),
      links: dp.links.map((l) => `${l.kind}:${l.name}`).sort(),
      nat: dp.nat.length,
      filters: dp.filters.length,
      podInterfaces: dp.pods.length,
    };
  }
  return JSON.stringify(view);
}

function firstDifference(a: string, b: string): string {
  const x = JSON.parse(a) as Record<string, unknown>;
  const y = JSON.parse(b) as Record<string, unknown>;
  for (const node of new Set([...Object.keys(x), ...Object.keys(y)])) {
    const p = JSON.stringify(x[node]);
    const q = JSON.stringify(y[node]);
    if (p !== q) return `node ${node}: ${p ?? "absent"} vs ${q ?? "absent"}`;
  }
  return "no difference";
}

export const dynamicsChecks: CheckDefinition[] = [
  {
    id: "dyn.join",
    section: "D",
    rule: "After a node joins, within the backend's convergence bound every node and pod reaches the new node's pods and back.",
    source: SOURCES.dynamics,
    required: true,
    async run(env) {
      const h = env.harness("dyn.join");
      const names = await populate(h, env, clamp(env.nodes - 1, 2, 5), 2, "j");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the join: ${baseline}`);
      const m = startMetrics(h);
      const joined = await h.cluster.addNode({ name: `j-${names.length + 1}` });
      await addPods(h, [joined.name], 2, "new");
      const conv = await converge(h, env.summary.convergenceMs, () => healthProblem(h, env));
      const metrics = withConvergence(m, conv, m.startedAt);
      if (!conv.converged) return fail(`${env.summary.convergenceMs} ms after node ${joined.name} joined: ${conv.problem}`, { metrics });
      return pass({ metrics });
    },
  },
  {
    id: "dyn.join-concurrent",
    section: "D",
    rule: "Nodes that join at the same moment all get their own share of the address space and converge within the bound.",
    source: SOURCES.dynamics,
    required: true,
    async run(env) {
      const h = env.harness("dyn.join-concurrent");
      const m = startMetrics(h);
      const nodes = await h.cluster.addNodes(clamp(env.nodes, 3, 6));
      await addPods(
        h,
        nodes.map((n) => n.name),
        2,
        "cc",
      );
      const conv = await converge(h, env.summary.convergenceMs, () => healthProblem(h, env));
      const metrics = withConvergence(m, conv, m.startedAt);
      if (!conv.converged) return fail(`${env.summary.convergenceMs} ms after ${nodes.length} nodes joined at once: ${conv.problem}`, { metrics });
      return pass({ metrics });
    },
  },
  {
    id: "dyn.leave",
    section: "D",
    rule: "After a node leaves cleanly, within the convergence bound no node routes to it any more, and its space can be used again.",
    source: SOURCES.dynamics,
    required: true,
    run: (env) => leaveOrCrash(env, "clean"),
  },
  {
    id: "dyn.crash",
    section: "D",
    rule: "A node that crashes (no goodbye) is detected within the crash bound, its routes withdrawn, and nothing is double-allocated afterwards.",
    source: SOURCES.dynamics,
    required: true,
    run: (env) => leaveOrCrash(env, "crash"),
  },
  {
    id: "dyn.restart",
    section: "D",
    rule: "A restarted agent keeps its share and its pods' addresses, hands out no address twice, and renders the same dataplane.",
    source: SOURCES.dynamics,
    required: true,
    async run(env) {
      const h = env.harness("dyn.restart");
      const names = await populate(h, env, 3, 2, "r");
      const baseline = healthProblem(h, env);
      if (baseline) return fail(`before the restart: ${baseline}`);
      const victim = names[1]!;
      const before = new Map(names.map((n) => [n, JSON.parse(JSON.stringify(h.cluster.dataplane(n))) as NodeDataplane]));
      const m = startMetrics(h);
      await h.cluster.restartAgent(victim);
      const conv = await converge(
        h,
        env.summary.convergenceMs,
        () => {
          const diffs = names
            .map((n) => [n, dataplaneDiff(before.get(n)!, h.cluster.dataplane(n))] as const)
            .filter(([, d]) => d !== "")
            .map(([n, d]) => `the dataplane of node ${n} changed: ${d}`);
          return diffs.length > 0 ? summarizeProblems(diffs, 2) : undefined;
        },
        { observeMs: env.summary.convergenceMs },
      );
      const metrics = withConvergence(m, conv, m.startedAt);
      if (!conv.converged) return fail(`${env.summary.convergenceMs} ms after the agent on node ${victim} restarted: ${conv.problem}`, { metrics });
      const problems: string[] = [];
      for (const pod of h.cluster.pods().filter((p) => p.node === victim)) {
        const err = await thrown(() => h.drive(h.cluster.node(victim).agent.check({ containerId: pod.containerId, ifName: pod.ifName })));
        if (err) problems.push(`after the restart, CHECK of ${pod.key} on node ${victim} fails: ${describeError(err)}`);
      }
      await addPods(h, [victim], 2, "post-restart");
      const health = healthProblem(h, env);
      if (health) problems.push(`after the restart and new pods on node ${victim}: ${health}`);
      return problems.length > 0 ? fail(summarizeProblems(problems), { metrics }) : pass({ metrics });
    },
  },
  {
    id: "dyn.order-independent",
    section: "D",
    rule: "The same events (joins, pods, a leave, a deletion) applied in different orders, or squashed, end in the same state.",
    source: `${SOURCES.dynamics}; style.md state-sequence tests`,
    required: true,
    budgetMs: 120_000,
    async run(env) {
      const orders: { label: string; events: ScenarioEvent[]; settleEach: boolean }[] = [
        { label: "in order, settling after each event", events: SCENARIO, settleEach: true },
        { label: `shuffled (seed ${env.seed}), without settling between events`, events: shuffledScenario(env.seed), settleEach: false },
        { label: "squashed to the surviving state", events: SQUASHED, settleEach: false },
      ];
      const views: { label: string; view: string }[] = [];
      let metrics: CheckMetrics | undefined;
      for (const [i, order] of orders.entries()) {
        const h = env.harness(`dyn.order-independent#${i}`);
        const m = startMetrics(h);
        await applyScenario(h, env, order.events, order.settleEach);
        // Settled, not merely healthy: the states compared are final (watched for the whole bound,
        // so a re-plan after a debounce or on a periodic re-list is in them).
        const conv = await converge(h, env.summary.convergenceMs, () => healthProblem(h, env), { observeMs: env.summary.convergenceMs });
        if (i === 1) metrics = withConvergence(m, conv, m.startedAt);
        if (!conv.converged) return fail(`events ${order.label}: ${conv.problem}`, metrics ? { metrics } : {});
        views.push({ label: order.label, view: normalizedView(h) });
      }
      const reference = views[0]!;
      for (const other of views.slice(1)) {
        if (other.view !== reference.view) {
          return fail(`events ${reference.label} and ${other.label} end differently: ${firstDifference(reference.view, other.view)}`, metrics ? { metrics } : {});
        }
      }
      return pass(metrics ? { metrics } : {});
    },
  },
];
