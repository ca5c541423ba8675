// Shared test helpers: drive a VirtualClock until a promise settles, a seeded PRNG, a store wrapper
// that lets a test intercept calls.
import { seededRandom } from "@cnikit/core";
import { MemoryDatastore, MemoryMembership, VirtualClock, flushAsync, memoryLogger, silentLogger } from "@cnikit/core";
import type { AgentContext, Datastore, Logger, NodeInfo, PutOptions, WatchEvent, WatchOptions } from "@cnikit/core";
import type { FlannelConfig } from "../src/config.ts";

/** Advances the clock in `stepMs` steps until `promise` settles (at most `limitMs` of virtual time). */
export async function drive<T>(clock: VirtualClock, promise: Promise<T>, options: { stepMs?: number; limitMs?: number } = {}): Promise<T> {
  let settled = false;
  const tracked = promise.finally(() => {
    settled = true;
  });
  tracked.catch(() => undefined);
  const step = options.stepMs ?? 50;
  const limit = options.limitMs ?? 600_000;
  await flushAsync();
  for (let t = 0; !settled && t <= limit; t += step) await clock.advance(step);
  if (!settled) throw new Error(`drive: still pending after ${limit} ms of virtual time`);
  return tracked;
}

/** Hooks a test may set on a wrapped store. */
export interface StoreHooks {
  /** Runs before each put; may write to the inner store first (to lose a race on purpose). */
  beforePut?: (key: string, value: string, options: PutOptions | undefined) => Promise<void> | void;
  /** Return false to drop a watch event (a missed event). */
  deliver?: (event: WatchEvent) => boolean;
}

/** A Datastore that forwards to `inner` with the test's hooks applied. */
export function hookedStore(inner: Datastore, hooks: StoreHooks): Datastore {
  return {
    get: (k) => inner.get(k),
    async put(k, v, o) {
      await hooks.beforePut?.(k, v, o);
      return inner.put(k, v, o);
    },
    delete: (k, o) => inner.delete(k, o),
    list: (p) => inner.list(p),
    txn: (c, s) => inner.txn(c, s),
    watch(prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> {
      const source = inner.watch(prefix, options);
      return {
        async *[Symbol.asyncIterator]() {
          for await (const ev of source) {
            if (hooks.deliver && !hooks.deliver(ev)) continue;
            yield ev;
          }
        },
      };
    },
    grantLease: (t) => inner.grantLease(t),
    keepAlive: (l) => inner.keepAlive(l),
    revokeLease: (l) => inner.revokeLease(l),
    leaseInfo: (l) => inner.leaseInfo(l),
    revision: () => inner.revision(),
    close: () => inner.close(),
  };
}

/** Node `name` on 198.51.100.0/24 (subnet "a") or 203.0.113.0/24 ("b"), host number `host`. */
export function nodeInfo(name: string, subnet: "a" | "b", host: number, mtu?: number): NodeInfo {
  const base = subnet === "a" ? "198.51.100" : "203.0.113";
  return { name, underlay: [{ iface: "eth0", address: `${base}.${host}`, prefixLength: 24, gateway: `${base}.1`, ...(mtu ? { mtu } : {}) }] };
}

/** A fake peer transport (flannel never uses peers). */
const noPeers = {
  self: "",
  listen: () => () => undefined,
  connect: () => Promise.reject(new Error("flannel uses no peers")),
} as unknown as AgentContext<FlannelConfig>["peers"];

/** An agent context on a shared store and clock, with a fresh node-local store unless given. */
export function agentContext(options: {
  config: FlannelConfig;
  node: NodeInfo;
  store: Datastore;
  clock: VirtualClock;
  local?: Datastore;
  random?: () => number;
  log?: Logger;
}): AgentContext<FlannelConfig> {
  return {
    config: options.config,
    node: options.node,
    store: options.store,
    local: options.local ?? new MemoryDatastore({ clock: options.clock }),
    peers: noPeers,
    clock: options.clock,
    log: options.log ?? silentLogger,
    random: options.random ?? seededRandom(1),
    members: new MemoryMembership({ clock: options.clock, nodes: [options.node] }),
  };
}

export { memoryLogger };
