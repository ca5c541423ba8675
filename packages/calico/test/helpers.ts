// Test helpers: a store handle that dies after its k-th write (an agent killed mid-operation), and
// a driver that lets virtual time flow while a promise is pending.
import { ClosedError } from "@cnikit/core";
import type { Datastore, VirtualClock } from "@cnikit/core";
import { RR_CLUSTER_ID_ANNOTATION } from "../src/agent.ts";
import { calicoFixtures, withRouteReflectors } from "../src/fixtures.ts";

/** A Datastore whose writes stop (and every later call throws ClosedError) after `k` successful writes. */
export function killableStore(inner: Datastore, k: number): Datastore & { readonly killed: boolean } {
  let writes = 0;
  let killed = false;
  const gate = () => {
    if (killed) throw new ClosedError("[test] the agent was killed");
  };
  const write = <T>(fn: () => Promise<T>): Promise<T> => {
    gate();
    if (writes >= k) {
      killed = true;
      return Promise.reject(new ClosedError("[test] the agent was killed before this write"));
    }
    writes++;
    return fn();
  };
  return {
    get killed() {
      return killed;
    },
    get: async (key) => (gate(), inner.get(key)),
    list: async (p) => (gate(), inner.list(p)),
    put: (key, v, o) => write(() => inner.put(key, v, o)),
    delete: (key, o) => write(() => inner.delete(key, o)),
    txn: (c, s) => write(() => inner.txn(c, s)),
    watch: (p, o) => inner.watch(p, o),
    grantLease: (t) => write(() => inner.grantLease(t)),
    keepAlive: (l) => inner.keepAlive(l),
    revokeLease: (l) => write(() => inner.revokeLease(l)),
    leaseInfo: (l) => inner.leaseInfo(l),
    revision: () => inner.revision(),
    close: () => inner.close(),
  };
}

/** Awaits `promise` while advancing `clock` in steps (timers and back-offs run). */
export async function drive<T>(clock: VirtualClock, promise: Promise<T>, options: { stepMs?: number; limitMs?: number } = {}): Promise<T> {
  const step = options.stepMs ?? 100;
  const limit = options.limitMs ?? 600_000;
  let done = false;
  let value: T | undefined;
  let error: unknown;
  let failed = false;
  promise.then(
    (v) => {
      done = true;
      value = v;
    },
    (e: unknown) => {
      done = true;
      failed = true;
      error = e;
    },
  );
  for (let t = 0; !done && t <= limit; t += step) {
    await clock.advance(step);
    await new Promise((r) => setImmediate(r));
  }
  if (!done) throw new Error(`drive: not done after ${limit} virtual ms`);
  if (failed) throw error;
  return value as T;
}

/**
 * Route reflectors the Kubernetes way, for suites that name their own nodes: the first two nodes
 * of every cluster carry the label route-reflector=true and the RouteReflectorClusterID annotation.
 */
export const RR_NODE_METADATA = (ordinal: number): { labels?: Record<string, string>; annotations?: Record<string, string> } =>
  ordinal < 2 ? { labels: { "route-reflector": "true" }, annotations: { [RR_CLUSTER_ID_ANNOTATION]: "244.0.0.1" } } : {};

/** A fixture config with the mesh off and every node peering with the labelled reflectors (none named). */
export function reflectorConfig(label: string): unknown {
  return withRouteReflectors(calicoFixtures.configs.find((c) => c.label === label)!.config, []);
}
