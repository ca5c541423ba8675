/**
 * The bench's convergence check, evaluated cheaply. What it decides is exactly `convergenceProblem`
 * (run.ts): every live node (but the excluded) and its pods reach every other's pods, addresses are
 * unique and in range, no survivor still routes to a departed node. What makes it cheap at hundreds
 * of nodes, where one all-pairs walk takes seconds:
 *
 *  - **Same state, same answer.** The condition is a function of the cluster's state: every live
 *    node's agent, desired dataplane (the object the agent hands out, and how many times the agent
 *    told of a change) and node info, and the pods. When none of that changed since the last
 *    evaluation, its answer stands (passing or failing) and nothing is walked. A backend with a
 *    cluster-level controller (it programs the fabric's routes, which are not in that state) is
 *    always evaluated in full.
 *  - **Fail fast on the nodes that moved.** Before the full evaluation, a few nodes are probed: the
 *    ones a probe found failing last time, then nodes whose state changed since the last
 *    evaluation. A probe walks only pairs of the full check that start at the node (its pods
 *    and its host to every pod, its pods to every node): any failure it finds is one the full
 *    check would report too, so the answer "not converged" is real. Only when the probes pass does
 *    the full check run — so it runs about once per convergence, when the cluster has converged.
 *
 * The convergence time does not move by any of this: `converge` dates convergence at the state's
 * last change (or when the condition was first seen holding), and every evaluation here answers
 * what the full check would (a probe's "not converged" is the full check's too; a reused answer is
 * the full check's on the same state). The scenario's own condition (`own`: BGP sessions, route
 * loss seen meanwhile) depends on more than that state and is asked at every evaluation.
 */
import type { NodeAgent, NodeInfo } from "@cnikit/core";
import { livePods, nodeEndpoint, podEndpoint, reachProblems, summarizeProblems } from "@cnikit/conformance/runner";
import type { Harness } from "@cnikit/conformance/runner";
import type { Endpoint } from "@cnikit/sim";

/** Nodes probed before a full evaluation (each probe walks O(N) pairs; the full check O(N²)). */
export const PROBE_NODES = 8;
/** Failures a probe describes (as `summarizeProblems` shows them); the others are counted. */
const SHOWN = 3;

/** One node's part of the state the condition depends on. */
interface NodeSeen {
  agent: NodeAgent;
  dp: unknown;
  info: NodeInfo;
  /** Dataplane-change notifications of this node's agents so far. */
  told: number;
  alive: boolean;
}

export interface CheckerOptions {
  /** The condition on the state above (undefined: holds): what a probe's pairs are a part of. */
  full: () => string | undefined;
  /** The scenario's own condition, asked first at every evaluation (not reused). */
  own?: () => string | undefined;
  /** Nodes not judged (silent nodes): never probed. */
  excluded?: readonly string[];
  /** Whether the answer may be reused while the state is unchanged (false: every evaluation is full). */
  memo: boolean;
}

/** Counts of what the checker did (for tests and for the bench's own reports). */
export interface CheckerStats {
  evaluations: number;
  /** Evaluations answered from the unchanged state. */
  reused: number;
  /** Evaluations a probe answered "not converged". */
  probedFailures: number;
  /** Evaluations that ran the full condition. */
  full: number;
}

/**
 * The convergence condition of one `converge` call, evaluated as described above; `problem` is
 * what `converge` calls. `close()` drops its dataplane listeners.
 */
export class ConvergenceChecker {
  readonly stats: CheckerStats = { evaluations: 0, reused: 0, probedFailures: 0, full: 0 };
  private readonly excluded: ReadonlySet<string>;
  private readonly told = new Map<string, number>();
  private readonly listening = new WeakSet<NodeAgent>();
  private readonly unsubscribe: (() => void)[] = [];
  private seen = new Map<string, NodeSeen>();
  private podsSeen = "";
  private last: { answer: string | undefined } | undefined;
  /** Nodes whose probe failed last time: probed first next time. */
  private witnesses: string[] = [];

  constructor(
    private readonly h: Harness,
    private readonly options: CheckerOptions,
  ) {
    this.excluded = new Set(options.excluded ?? []);
  }

  /** The condition's problem now (undefined: holds). */
  problem(): string | undefined {
    this.stats.evaluations++;
    const own = this.options.own?.();
    const answer = this.stateProblem();
    return own !== undefined ? (answer !== undefined ? `${own}; ${answer}` : own) : answer;
  }

  private stateProblem(): string | undefined {
    const { changed, podsChanged } = this.observe();
    if (this.options.memo && this.last && changed.length === 0 && !podsChanged) {
      this.stats.reused++;
      return this.last.answer;
    }
    const probe = this.options.memo ? this.probe(changed) : undefined;
    if (probe !== undefined) {
      this.stats.probedFailures++;
      this.last = { answer: probe };
      return probe;
    }
    this.stats.full++;
    const answer = this.options.full();
    this.last = { answer };
    return answer;
  }

  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }

  /** Reads the state; returns the nodes whose part changed since the last call, and whether the pods did. */
  private observe(): { changed: string[]; podsChanged: boolean } {
    const now = new Map<string, NodeSeen>();
    const changed: string[] = [];
    for (const node of this.h.cluster.nodes()) {
      const agent = node.agent;
      if (!this.listening.has(agent)) {
        this.listening.add(agent);
        const name = node.name;
        this.unsubscribe.push(agent.onDataplaneChange(() => this.told.set(name, (this.told.get(name) ?? 0) + 1)));
      }
      let dp: unknown;
      try {
        dp = node.alive ? this.h.cluster.dataplane(node.name) : undefined;
      } catch {
        dp = undefined;
      }
      const s: NodeSeen = { agent, dp, info: node.info, told: this.told.get(node.name) ?? 0, alive: node.alive };
      now.set(node.name, s);
      const p = this.seen.get(node.name);
      if (!p || p.agent !== s.agent || p.dp !== s.dp || p.info !== s.info || p.told !== s.told || p.alive !== s.alive) changed.push(node.name);
    }
    for (const name of this.seen.keys()) if (!now.has(name)) changed.push(name);
    this.seen = now;
    const pods = this.h.cluster
      .pods()
      .map((p) => `${p.key}@${p.node}=${p.addresses.join(",")}`)
      .join(";");
    const podsChanged = pods !== this.podsSeen;
    this.podsSeen = pods;
    return { changed, podsChanged };
  }

  /**
   * Probes the witnesses, then the nodes that changed, newest first (up to `PROBE_NODES` in all),
   * and stops at the first failure: a problem found (real: pairs the full check walks too), or
   * undefined when every probe passed. A probe walks the node's own packets only (its pods and its
   * host to every pod, its pods to every node: one sender class each, O(N) pairs); packets *to* a
   * node are walked from every sender, which costs about as much as the full check, and a node that
   * others cannot reach yet is found from their side when they are probed.
   */
  private probe(changed: readonly string[]): string | undefined {
    const live = new Set(
      this.h.cluster
        .nodes()
        .filter((n) => n.alive && !this.excluded.has(n.name))
        .map((n) => n.name),
    );
    const chosen: string[] = [];
    for (const name of [...this.witnesses, ...[...changed].reverse()]) {
      if (chosen.length >= PROBE_NODES) break;
      if (live.has(name) && !chosen.includes(name)) chosen.push(name);
    }
    this.witnesses = [];
    if (chosen.length === 0) return undefined;
    const pods = livePods(this.h).filter((p) => live.has(p.node));
    const podEps = pods.map(podEndpoint);
    const nodeEps = [...live].map(nodeEndpoint);
    for (const name of chosen) {
      const mine = pods.filter((p) => p.node === name).map(podEndpoint);
      const self: Endpoint[] = [nodeEndpoint(name)];
      const walks: [Endpoint[], Endpoint[]][] = [
        [mine, podEps],
        [self, podEps],
        [mine, nodeEps],
      ];
      for (const [from, to] of walks) {
        // Only the first few failures are described (describing one looks its endpoints up among
        // every pod: O(N) each, O(N²) for a node that reaches nobody yet); the rest are counted.
        let failed = 0;
        const found = reachProblems(this.h, from, to, () => ++failed <= SHOWN);
        if (found.length > 0) {
          this.witnesses.push(name);
          return failed > found.length ? `${found.join("; ")}; and ${failed - found.length} more` : summarizeProblems(found);
        }
      }
    }
    return undefined;
  }
}
