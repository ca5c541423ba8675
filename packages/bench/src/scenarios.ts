/**
 * The benchmark's scenarios: what each one sets up, the event at t0, what "converged" means after
 * it, the virtual-time bound past which the run "did not converge", and the lower bound of
 * messages beside which the measured count is printed. Definitions follow
 * RFC 7747, as packages/bench/README.md states it (trigger t0; per-node convergence = the node's desired state holds
 * exactly the expected routes with the expected next hops; network convergence only after a quiet
 * period; "did not converge" otherwise).
 */
import { canonicalDataplane, flushAsync } from "@cnikit/core";
import type { NetworkSummary } from "@cnikit/core";
import type { Departed, Harness } from "@cnikit/conformance/runner";
import { addPods, departedOf } from "@cnikit/conformance/runner";
import { NO_BGP_SESSIONS, allSessions, figuresOf, incomplete, speaksBgp } from "./bgp.ts";
import type { BgpFigures } from "./bgp.ts";

export const SCENARIO_IDS = ["cold-start", "join", "leave", "crash", "silent", "flap", "partition-heal", "pod-churn", "graceful-restart", "bgp-session"] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

/**
 * The fewest per-route announcements (or withdrawals) a full mesh must deliver for the event, one
 * route per UPDATE (RFC 7747: routes with different next hops cannot share one). A store listing
 * hands a newcomer many routes in one response, so store-based backends can go below it there.
 */
export interface LowerBound {
  /** Announcements/withdrawals delivered to nodes (peer messages or store watch events alike). */
  messages: number;
  /** The formula with N filled in and where it comes from. */
  rule: string;
}

/** What a scenario's trigger leaves for the convergence condition to judge. */
export interface Triggered {
  /** Nodes whose routes must be gone everywhere else (left, crashed, silent). */
  departed: Departed[];
  /** Nodes still running in the simulator whose pods are not expected to be reachable (silent). */
  excluded: string[];
  /** A further condition of the scenario (graceful-restart: no route lost meanwhile). */
  problem?: () => string | undefined;
  /**
   * The scenario does not apply to this backend (`bgp-session` for a backend without BGP sessions):
   * the run is reported "not applicable: <backend> <this>", never as passed or as a figure.
   */
  notApplicable?: string;
  /** BGP figures of the run, read once it converged (BGP backends). */
  bgp?: () => BgpFigures;
}

/** What a scenario gets: the harness of one run, the config's promises and the run's knobs. */
export interface ScenarioEnv {
  h: Harness;
  summary: NetworkSummary;
  /** N: the cluster size the scenario is measured at. */
  nodes: number;
}

export interface Scenario {
  id: ScenarioId;
  /** One line for tables and --help. */
  title: string;
  /** The virtual-time bound after t0 (a bound from `summarize`). */
  boundMs(summary: NetworkSummary): number;
  /** The bound's name, published with the figures. */
  boundName: "convergenceMs" | "crashDetectionMs";
  lowerBound(n: number): LowerBound;
  /**
   * Builds the cluster before t0 (nodes, one pod each) without measuring it; the runner then waits
   * until it has converged. Returns the names of the nodes it added.
   */
  setup(env: ScenarioEnv): Promise<string[]>;
  /**
   * What happens after setup converged and before t0, unmeasured (partition-heal: the split and
   * its detection). Absent: nothing.
   */
  beforeT0?(env: ScenarioEnv, names: string[]): Promise<void>;
  /** The event at t0 (and what follows it without waiting for convergence). */
  trigger(env: ScenarioEnv, names: string[]): Promise<Triggered>;
}

/** Pods added per node before t0, and the pod-churn wave's ADD/DEL pairs per node. */
export const PODS_PER_NODE = 1;
export const CHURN_PER_NODE = 100;
/** A flapping node is isolated and rejoined this many times, each outage this long (virtual ms). */
export const FLAP_COUNT = 3;
export const FLAP_OUTAGE_MS = 1_000;

const none: Triggered = { departed: [], excluded: [] };

async function cluster(env: ScenarioEnv, count: number): Promise<string[]> {
  const names = (await env.h.cluster.addNodes(count)).map((n) => n.name);
  await addPods(env.h, names, PODS_PER_NODE, "p");
  return names;
}

/** Cuts a node off from peers and store without a reset: it keeps running but nobody hears it. */
function silence(h: Harness, name: string, on: boolean): void {
  if (on) h.cluster.network.isolate(name);
  else h.cluster.network.rejoin(name);
  h.cluster.setStoreCutOff(name, on);
}

/** Runs the clock for `ms` of virtual time (timers fire; nothing is judged). */
async function pass(h: Harness, ms: number): Promise<void> {
  await h.cluster.settle({ limitMs: ms });
}

/** Removes the last node added (cleanly or by a crash): its routes must go everywhere. */
async function removeLast(env: ScenarioEnv, names: string[], mode: "clean" | "crash"): Promise<Triggered> {
  const victim = names[names.length - 1]!;
  const gone = departedOf(env.h, victim);
  await env.h.cluster.removeNode(victim, { mode });
  return { departed: [gone], excluded: [] };
}

/**
 * Restarts the agent of the last node added (node-local state kept) and steps the clock timer by
 * timer while it restarts. Every other node's desired dataplane is compared with what it was before
 * at every change it makes (its agent's `onDataplaneChange`), from t0 until the run ends, and at
 * every clock step: any difference is route loss (RFC 4724 graceful restart: success means zero route loss).
 * For a BGP backend (agents exposing `bgpSessions`) the restart is BGP graceful restart (RFC 4724):
 * the run converges only once every other node's session with the restarted node is Established
 * again, its End-of-RIB has arrived and no stale route is left; the figures are those sessions'.
 */
async function restartLast(env: ScenarioEnv, names: string[]): Promise<Triggered> {
  const { h } = env;
  const victim = names[names.length - 1]!;
  const others = names.filter((n) => n !== victim);
  const bgp = speaksBgp(h, names);
  const view = (n: string) => canonicalDataplane(h.cluster.dataplane(n));
  const before = new Map(others.map((n) => [n, view(n)]));
  const t0 = h.clock.now();
  const lost: string[] = [];
  const look = (n: string): void => {
    const was = before.get(n)!;
    const now = view(n);
    if (JSON.stringify(now) === JSON.stringify(was)) return;
    const routes = new Set(now.routes.map((r) => JSON.stringify(r)));
    const gone = was.routes.filter((r) => !routes.has(JSON.stringify(r))).map((r) => r.dst);
    const at = `${h.clock.now() - t0} ms after the restart began`;
    lost.push(gone.length > 0 ? `node ${n} lost its route(s) to ${gone.join(", ")} ${at}` : `node ${n}'s dataplane changed ${at}`);
  };
  const lookAll = (): void => others.forEach(look);
  for (const n of others) h.cluster.node(n).agent.onDataplaneChange(() => look(n));
  let done = false;
  const op = h.sim.restartAgent(victim);
  op.then(
    () => (done = true),
    () => (done = true),
  );
  await flushAsync();
  lookAll();
  while (!done) {
    const next = h.clock.nextAt();
    if (next === undefined) {
      await flushAsync(10);
      if (!done && h.clock.nextAt() === undefined) break;
      continue;
    }
    await h.clock.advance(Math.max(0, next - h.clock.now()));
    lookAll();
  }
  await op;
  const sessions = () => allSessions(h, others).filter((s) => s.peer === victim);
  return {
    departed: [],
    excluded: [],
    problem: () => {
      lookAll();
      if (lost.length > 0) return `route loss while the agent of ${victim} restarted: ${[...new Set(lost)].slice(0, 2).join("; ")}${lost.length > 2 ? ` (${lost.length} observations)` : ""}`;
      if (!bgp) return undefined;
      const open = sessions()
        .map((s) => incomplete(s, t0))
        .filter((p) => p !== undefined);
      return open.length > 0 ? `graceful restart of ${victim} not complete: ${open.slice(0, 2).join("; ")}${open.length > 2 ? ` (${open.length} sessions)` : ""}` : undefined;
    },
    ...(bgp ? { bgp: () => figuresOf(sessions(), t0) } : {}),
  };
}

/**
 * Cold start of N nodes measured per BGP session: every node's every session must be Established
 * with the peer's End-of-RIB received (besides the network's convergence). Not applicable to a
 * backend whose agents expose no BGP sessions.
 */
async function sessionsFromColdStart(env: ScenarioEnv): Promise<Triggered> {
  const t0 = env.h.clock.now();
  const names = await cluster(env, env.nodes);
  if (!speaksBgp(env.h, names)) return { ...none, notApplicable: NO_BGP_SESSIONS };
  const live = () =>
    env.h.cluster
      .nodes()
      .filter((n) => n.alive)
      .map((n) => n.name);
  return {
    ...none,
    problem: () => {
      const all = allSessions(env.h, live());
      const bare = live().filter((n) => !all.some((s) => s.node === n));
      const open = all.map((s) => incomplete(s, t0)).filter((p) => p !== undefined);
      if (bare.length > 0) open.unshift(`${bare.join(", ")} ha${bare.length === 1 ? "s" : "ve"} no BGP session`);
      return open.length > 0 ? `BGP sessions not complete: ${open.slice(0, 2).join("; ")}${open.length > 2 ? ` (${open.length} in all)` : ""}` : undefined;
    },
    bgp: () => figuresOf(allSessions(env.h, live()), t0),
  };
}

/** The smaller half of a partition: the last ⌊N/2⌋ nodes. */
function minorityOf(names: string[]): string[] {
  return names.slice(names.length - Math.floor(names.length / 2));
}

const announce = (n: number) => `${n}(${n}−1)`;

export const SCENARIOS: readonly Scenario[] = [
  {
    id: "cold-start",
    title: "N nodes join at once, one pod each",
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs,
    lowerBound: (n) => ({ messages: n * (n - 1), rule: `${announce(n)}: every node's route to every other node once (RFC 7747, "everyone announces once")` }),
    setup: async () => [],
    async trigger(env) {
      await cluster(env, env.nodes);
      return none;
    },
  },
  {
    id: "join",
    title: "one node joins a converged cluster of N−1",
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs,
    lowerBound: (n) => ({ messages: 2 * (n - 1), rule: `2(${n}−1): the newcomer's route to N−1 nodes and their N−1 routes to it (RFC 7747, full mesh)` }),
    setup: (env) => cluster(env, env.nodes - 1),
    async trigger(env) {
      const node = await env.h.cluster.addNode();
      await addPods(env.h, [node.name], PODS_PER_NODE, "new");
      return none;
    },
  },
  {
    id: "leave",
    title: "one node of N leaves cleanly",
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs,
    lowerBound: (n) => ({ messages: n - 1, rule: `${n}−1: one withdrawal to each survivor (RFC 7747, "one route", withdrawn)` }),
    setup: (env) => cluster(env, env.nodes),
    trigger: (env, names) => removeLast(env, names, "clean"),
  },
  {
    id: "crash",
    title: "one node of N crashes (connections reset, no goodbye)",
    boundName: "crashDetectionMs",
    boundMs: (s) => s.crashDetectionMs,
    lowerBound: (n) => ({ messages: n - 1, rule: `${n}−1: one withdrawal to each survivor (RFC 7747, peer failure with a TCP reset)` }),
    setup: (env) => cluster(env, env.nodes),
    trigger: (env, names) => removeLast(env, names, "crash"),
  },
  {
    id: "silent",
    title: "one node of N goes silent (peers and store cut, no reset): detection by timer",
    boundName: "crashDetectionMs",
    boundMs: (s) => s.crashDetectionMs,
    lowerBound: (n) => ({ messages: n - 1, rule: `${n}−1: one withdrawal to each survivor, after a timer (RFC 7747, hold-timer expiry)` }),
    setup: (env) => cluster(env, env.nodes),
    async trigger(env, names) {
      const victim = names[names.length - 1]!;
      const gone = departedOf(env.h, victim);
      silence(env.h, victim, true);
      return { departed: [gone], excluded: [victim] };
    },
  },
  {
    id: "flap",
    title: `one node of N isolated and rejoined ${FLAP_COUNT} times (${FLAP_OUTAGE_MS} ms outages and gaps, peers and store; t0 is the first outage, so the schedule's ${(2 * FLAP_COUNT - 1) * FLAP_OUTAGE_MS} ms are inside the figure)`,
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs + 2 * FLAP_COUNT * FLAP_OUTAGE_MS,
    lowerBound: () => ({ messages: 0, rule: `0: outages shorter than any detection timer need no update (a damped flap); the network only has to end where it began` }),
    setup: (env) => cluster(env, env.nodes),
    async trigger(env, names) {
      const victim = names[names.length - 1]!;
      for (let i = 0; i < FLAP_COUNT; i++) {
        silence(env.h, victim, true);
        await pass(env.h, FLAP_OUTAGE_MS);
        silence(env.h, victim, false);
        if (i < FLAP_COUNT - 1) await pass(env.h, FLAP_OUTAGE_MS);
      }
      return none;
    },
  },
  {
    id: "partition-heal",
    title: "the network splits in two halves (the smaller one also loses the store) past the crash bound, then heals at t0",
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs,
    lowerBound: (n) => {
      const m = Math.floor(n / 2);
      return { messages: 2 * m * (n - m), rule: `2·${m}·${n - m}: each half learns the other half's routes again (RFC 7747, one route per node, to every node across the cut)` };
    },
    setup: (env) => cluster(env, env.nodes),
    async beforeT0(env, names) {
      // Split, cut the smaller half off from the store too, and let the crash bound run out so the
      // cut is detected on both sides.
      const minority = minorityOf(names);
      env.h.cluster.network.partition([names.filter((n) => !minority.includes(n)), minority]);
      for (const name of minority) env.h.cluster.setStoreCutOff(name, true);
      await pass(env.h, env.summary.crashDetectionMs);
    },
    async trigger(env, names) {
      env.h.cluster.network.heal();
      for (const name of minorityOf(names)) env.h.cluster.setStoreCutOff(name, false);
      return none;
    },
  },
  {
    id: "pod-churn",
    title: `a wave of ${CHURN_PER_NODE} pod ADD+DEL per node on all N nodes at once`,
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs,
    lowerBound: () => ({ messages: 0, rule: `0: pods take addresses from their node's own share, so no other node must learn of them (per-pod routes would need 2·${CHURN_PER_NODE}·(N−1) per node)` }),
    setup: (env) => cluster(env, env.nodes),
    async trigger(env, names) {
      await env.h.drive(
        Promise.all(
          names.map(async (node) => {
            for (let i = 0; i < CHURN_PER_NODE; i++) {
              const pod = await env.h.sim.addPod(node, { name: `churn-${node}-${i}` });
              await env.h.sim.removePod(pod);
            }
          }),
        ),
      );
      return none;
    },
  },
  {
    id: "graceful-restart",
    title: "one node's agent restarts (node-local state kept); the other nodes must lose no route meanwhile, sampled at every change (BGP: until its End-of-RIB flushed their stale routes)",
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs,
    lowerBound: () => ({
      messages: 0,
      rule: "0: nothing changes for the other nodes (RFC 4724 graceful restart: success means zero route loss; a BGP speaker still re-opens its sessions and re-sends its table)",
    }),
    setup: (env) => cluster(env, env.nodes),
    trigger: restartLast,
  },
  {
    id: "bgp-session",
    title: "BGP backends: N nodes start at once; every session from t0 to Established and to the peer's End-of-RIB (RFC 4724), and the network's convergence",
    boundName: "convergenceMs",
    boundMs: (s) => s.convergenceMs,
    lowerBound: (n) => ({
      messages: 3 * n * (n - 1),
      rule: `3·${n}(${n}−1): a full mesh of ${n}(${n}−1)/2 sessions, each way an OPEN, a KEEPALIVE and the initial table, whose routes (every node's to every other once) and End-of-RIB can share one write (RFC 4271 §8, RFC 4724 §2)`,
    }),
    setup: async () => [],
    trigger: sessionsFromColdStart,
  },
];

/** The scenario of an id; throws a TypeError listing the known ids. */
export function scenarioById(id: string): Scenario {
  const found = SCENARIOS.find((s) => s.id === id);
  if (!found) throw new TypeError(`unknown scenario ${JSON.stringify(id)}; known: ${SCENARIO_IDS.join(", ")}`);
  return found;
}
