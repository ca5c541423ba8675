/**
 * The lifecycle driver seam: section B (CNI lifecycle) is written once, in checks/lifecycle.ts, as
 * rules judged over what a `LifecycleDriver` lets a check do and observe, and runs on either driver:
 *
 *  - the simulator (`simLifecycleDriver`: a fresh two-node SimCluster per check, the agent API —
 *    NodeAgent.attach / detach / check / gc / status —, virtual time);
 *  - the real kernel (@cnikit/lab's driver: the cnikit-cni executable against each node's
 *    cnikitd, real network namespaces, the kernel read with `ip`, etcd and the node-local store
 *    read from disk), which this package never imports (the lab depends on it).
 *
 * A driver acts and observes; the check judges. Errors are the agent's (or the plugin's JSON
 * error's) with their CNI `code`, thrown as they are.
 */
import { MemoryDatastore, MemoryMembership, MemoryNetwork, VirtualClock, flushAsync, silentLogger } from "@cnikit/core";
import type { AgentStatus, AttachResult, NodeAgent, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";
import type { SimPod } from "@cnikit/sim";
import type { CheckEnv } from "./check.ts";
import { converge, drivenAgent, livePods, nodeEndpoint, podEndpoint, reachProblems } from "./harness.ts";
import type { Harness } from "./harness.ts";

/** Every entry of the cluster store and of one node's `ctx.local`, labelled, with its value (no revisions). */
export type StoreSnapshot = Map<string, string>;

/** The label prefix of cluster-store entries in a `StoreSnapshot` (the rest are the node's `ctx.local`). */
export const CLUSTER_STORE_LABEL = "cluster store key ";

/** A status as the agent (or the plugin's STATUS) reports it. */
export type StatusView = Pick<AgentStatus, "ready" | "reason"> & { code?: number };

/** What a check may do against a cluster of two started nodes, and what it observes. */
export interface LifecycleDriver {
  /** "simulator" or "linux" (reasons may say which). */
  readonly name: string;
  /** The two nodes the checks use. */
  readonly nodes: readonly [string, string];
  /** Whether the node's agent sits behind a daemon the plugin talks to (the kernel: cnikitd). */
  readonly daemon: boolean;
  /**
   * ADD/DEL pairs each churn leg runs (checks/lifecycle.ts; absent: `CHURN_PAIRS`, 200). A driver
   * whose every ADD is a real namespace and plugin run asks for fewer; never fewer than `MIN_CHURN_PAIRS`.
   */
  readonly churnPairs?: number;
  /** The attachment a runtime would send for (containerId, ifName): the driver picks the netns. */
  attachment(containerId: string, ifName?: string, pod?: { namespace?: string; podName?: string }): PodAttachment;
  /** ADD. Throws the agent's (or plugin's) error, with its CNI code. */
  attach(node: string, pod: PodAttachment): Promise<AttachResult>;
  /** ADDs started at once; each one's outcome, in order. */
  attachConcurrently(node: string, pods: PodAttachment[]): Promise<PromiseSettledResult<AttachResult>[]>;
  /** DEL. */
  detach(node: string, ref: PodRef): Promise<void>;
  /** CHECK. */
  check(node: string, ref: PodRef): Promise<void>;
  /** GC with `valid` listed (what the driver's own fixture holds is always listed too). */
  gc(node: string, valid: PodRef[]): Promise<void>;
  /** STATUS of the node's running agent. */
  status(node: string): Promise<StatusView>;
  /** STATUS of agents that are not running (stopped, never started), each named. */
  statusesNotRunning(node: string): Promise<{ what: string; status: StatusView }[]>;
  /** ADD against an agent that is not running: what was done, and the error (undefined: it succeeded). */
  attachNotRunning(node: string, pod: PodAttachment): Promise<{ what: string; error: unknown }>;
  /** Restarts the node's agent (node-local state kept, pods stay). */
  restartAgent(node: string): Promise<void>;
  /**
   * ADD of a pod whose reachability is then judged (`reachProblems`); `podName` and `namespace`
   * come with it. Returns its addresses.
   */
  addPod(node: string, pod: PodAttachment): Promise<string[]>;
  /** DEL of a pod made by `addPod`. */
  removePod(node: string, ref: PodRef): Promise<void>;
  /** Pairs between the pod (made by `addPod`) and every other live pod (other containers) and node, both ways, that did not reach. */
  reachProblems(node: string, ref: PodRef): Promise<string[]>;
  /**
   * The node's dataplane as the driver observes it: the simulator, the agent's desired state; the
   * kernel, what it holds (owned links, addresses, routes, neighbours, FDB, NAT, sysctls, and the
   * pod interfaces of this driver's attachments read from their netns).
   */
  dataplane(node: string): Promise<NodeDataplane>;
  /** Keys (`containerId/ifName`) of the attachments present in the node's dataplane, the driver's own fixture left out. */
  podKeys(node: string): Promise<string[]>;
  /** The cluster store and the node's `ctx.local`. */
  stores(node: string): Promise<StoreSnapshot>;
  /** Lets up to `ms` of time pass (the simulator: its virtual clock, stopping early when idle). */
  passTime(ms: number): Promise<void>;
  /** The driver's clock, in ms (virtual or wall). */
  now(): number;
  /**
   * Waits (up to `boundMs`) until the desired state of both nodes has settled: unchanged for a
   * quiet period. Returns whether it did and, if not, what kept changing.
   */
  settle(boundMs: number): Promise<{ settled: boolean; problem?: string }>;
  /** Cuts the node off from the cluster store (undefined: the driver cannot). */
  setStoreCutOff?: (node: string, cut: boolean) => Promise<void>;
  /** Undoes what the check left. Never throws. */
  close(): Promise<void>;
}

/** Opens a driver per check (`salt` names the check: the simulator seeds its cluster with it). */
export type LifecycleDriverFactory = (salt: string) => Promise<LifecycleDriver>;

// ---- the simulator's driver ----------------------------------------------------------------------

/** A fresh cluster of two started nodes, driven through the agent API on its virtual clock. */
export async function simLifecycleDriver(env: Pick<CheckEnv, "harness" | "summary" | "backend" | "config" | "seed">, salt: string): Promise<LifecycleDriver> {
  const h = env.harness(salt);
  await h.cluster.addNode({ name: "b-1" });
  await h.cluster.addNode({ name: "b-2" });
  await h.cluster.settle({ limitMs: env.summary.convergenceMs });
  const agentOf = (node: string): NodeAgent => drivenAgent(h.cluster.node(node).agent, h.clock);
  const simPods = new Map<string, SimPod>();
  const keyOf = (r: PodRef): string => `${r.containerId}/${r.ifName}`;
  return {
    name: "simulator",
    nodes: ["b-1", "b-2"],
    daemon: false,
    attachment: (containerId, ifName = "eth0", pod) => ({ containerId, ifName, netns: `/var/run/netns/${containerId}`, namespace: pod?.namespace ?? "default", podName: pod?.podName ?? containerId }),
    attach: (node, pod) => agentOf(node).attach(pod),
    attachConcurrently: (node, pods) => {
      const raw = h.cluster.node(node).agent;
      return h.drive(Promise.allSettled(pods.map((p) => raw.attach(p))));
    },
    detach: (node, ref) => agentOf(node).detach(ref),
    check: (node, ref) => agentOf(node).check(ref),
    gc: (node, valid) => agentOf(node).gc(valid),
    status: async (node) => agentOf(node).status(),
    async statusesNotRunning(node) {
      const old = agentOf(node);
      await h.cluster.restartAgent(node);
      return [
        { what: `the stopped agent on node ${node}`, status: old.status() },
        { what: "an agent that was never started", status: standaloneAgent(env).status() },
      ];
    },
    async attachNotRunning(_node, pod) {
      let error: unknown;
      try {
        await standaloneAgent(env).attach(pod);
      } catch (err) {
        error = err;
      }
      return { what: "ADD before start", error };
    },
    restartAgent: (node) => h.cluster.restartAgent(node),
    async addPod(node, pod) {
      const p = await h.cluster.addPod(node, {
        name: pod.podName ?? pod.containerId,
        ...(pod.namespace !== undefined ? { namespace: pod.namespace } : {}),
        containerId: pod.containerId,
        ifName: pod.ifName,
      });
      simPods.set(p.key, p);
      return [...p.addresses];
    },
    async removePod(_node, ref) {
      const p = simPods.get(keyOf(ref));
      await h.cluster.removePod(p ?? keyOf(ref));
      simPods.delete(keyOf(ref));
    },
    async reachProblems(_node, ref) {
      const pod = simPods.get(keyOf(ref));
      if (!pod) return [`${keyOf(ref)} was not made by addPod`];
      return simPodReachProblems(h, pod);
    },
    dataplane: async (node) => agentOf(node).dataplane(),
    podKeys: async (node) =>
      agentOf(node)
        .dataplane()
        .pods.map((p) => p.key)
        .sort(),
    async stores(node) {
      await flushAsync();
      const out: StoreSnapshot = new Map();
      for (const kv of (await h.store.list("")).items) out.set(`${CLUSTER_STORE_LABEL}${kv.key}`, kv.value);
      for (const kv of (await h.cluster.localStore(node).list("")).items) out.set(`node ${node}'s local store key ${kv.key}`, kv.value);
      return out;
    },
    passTime: async (ms) => {
      await h.cluster.settle({ limitMs: ms });
    },
    now: () => h.clock.now(),
    async settle(boundMs) {
      const r = await converge(h, boundMs, () => undefined);
      return r.converged ? { settled: true } : { settled: false, ...(r.problem !== undefined ? { problem: r.problem } : {}) };
    },
    setStoreCutOff: async (node, cut) => h.cluster.setStoreCutOff(node, cut),
    close: () => h.cluster.close().catch(() => undefined),
  };
}

/** Reachability between one pod and every other live pod (other containers) and every live node, both ways. */
function simPodReachProblems(h: Harness, pod: SimPod): string[] {
  const others = livePods(h)
    .filter((p) => p.containerId !== pod.containerId)
    .map(podEndpoint);
  const nodes = h.cluster
    .nodes()
    .filter((n) => n.alive)
    .map((n) => nodeEndpoint(n.name));
  const me = [podEndpoint(pod)];
  return [...reachProblems(h, me, [...others, ...nodes]), ...reachProblems(h, [...others, ...nodes], me)];
}

/** An agent made outside the simulator and never started (for STATUS and "ADD before start"). */
function standaloneAgent(env: Pick<CheckEnv, "backend" | "config" | "seed">): NodeAgent {
  const clock = new VirtualClock();
  const network = new MemoryNetwork({ clock, seed: env.seed });
  let state = env.seed >>> 0 || 1;
  const node = { name: "unstarted", underlay: [{ iface: "eth0", address: "198.51.100.250", prefixLength: 24, gateway: "198.51.100.1", mtu: 1500 }] };
  return env.backend.createAgent({
    config: env.config,
    node,
    members: new MemoryMembership({ clock, nodes: [node] }),
    store: new MemoryDatastore({ clock }),
    local: new MemoryDatastore({ clock }),
    peers: network.transport("unstarted"),
    clock,
    log: silentLogger,
    random: () => {
      state = (Math.imul(state, 48271) >>> 0) % 2147483647;
      return state / 2147483647;
    },
  });
}
