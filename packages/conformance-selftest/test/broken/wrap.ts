/**
 * Tools to make deliberately broken backends by wrapping a correct one (reference, flannel, calico):
 * a wrapper agent that delegates everything, with hooks to bend one behaviour (the result of ADD,
 * the dataplane it reports, DEL, ...), and bent views of the agent's store. The base backend's code
 * is never copied.
 */
import { defineBackend } from "@cnikit/core";
import type {
  AgentContext,
  AgentStatus,
  AttachResult,
  Backend,
  Datastore,
  KeyValue,
  ListResult,
  NodeAgent,
  NodeDataplane,
  PodAttachment,
  PodRef,
  PutOptions,
  TxnCompare,
  TxnOp,
  TxnResult,
  WatchEvent,
  WatchOptions,
  WriteResult,
} from "@cnikit/core";

/** A NodeAgent that forwards to `inner`; subclasses override one thing. */
export class WrappedAgent implements NodeAgent {
  constructor(protected readonly inner: NodeAgent) {}

  start(): Promise<void> {
    return this.inner.start();
  }
  stop(options?: { release?: boolean }): Promise<void> {
    return this.inner.stop(options);
  }
  attach(pod: PodAttachment): Promise<AttachResult> {
    return this.inner.attach(pod);
  }
  detach(pod: PodRef): Promise<void> {
    return this.inner.detach(pod);
  }
  check(pod: PodRef): Promise<void> {
    return this.inner.check(pod);
  }
  gc(valid: PodRef[]): Promise<void> {
    return this.inner.gc(valid);
  }
  status(): AgentStatus {
    return this.inner.status();
  }
  /** The dataplane this agent reports: `transform` of the inner one. */
  dataplane(): NodeDataplane {
    return this.transform(this.inner.dataplane());
  }
  onDataplaneChange(listener: (dataplane: NodeDataplane) => void): () => void {
    return this.inner.onDataplaneChange((dp) => listener(this.transform(dp)));
  }
  /** Override to bend the reported dataplane. Must not mutate `dp`. */
  protected transform(dp: NodeDataplane): NodeDataplane {
    return dp;
  }
}

/**
 * A copy of the base backend under another name, with a bent parser, a bent view of the agent's
 * context (e.g. of the cluster store) and/or a bent agent.
 */
export function wrapBackend<C>(
  base: Backend<C>,
  name: string,
  hooks: {
    parseConfig?: (input: unknown) => C;
    context?: (ctx: AgentContext<C>) => AgentContext<C>;
    agent?: (inner: NodeAgent, ctx: AgentContext<C>) => NodeAgent;
  },
): Backend<C> {
  return defineBackend<C>({
    name,
    capabilities: base.capabilities,
    parseConfig: hooks.parseConfig ?? ((input) => base.parseConfig(input)),
    summarize: (config) => base.summarize(config),
    ...(base.topologyNeeds ? { topologyNeeds: (config: C) => base.topologyNeeds!(config) } : {}),
    createAgent: (ctx) => {
      const inner = base.createAgent(hooks.context ? hooks.context(ctx) : ctx);
      return hooks.agent ? hooks.agent(inner, ctx) : inner;
    },
  });
}

/** Deep copy of a dataplane (wrappers never mutate what the inner agent returned). */
export function copy(dp: NodeDataplane): NodeDataplane {
  return JSON.parse(JSON.stringify(dp)) as NodeDataplane;
}

/** What a bent view of a Datastore overrides; every other method passes to the real store. */
export interface StoreBends {
  put?: (store: Datastore, key: string, value: string, options?: PutOptions) => Promise<WriteResult>;
  txn?: (store: Datastore, compares: TxnCompare[], success: TxnOp[]) => Promise<TxnResult>;
  list?: (store: Datastore, prefix: string) => Promise<ListResult>;
}

/**
 * A view of `store` with some methods bent (how a broken agent misuses its store: a write without
 * compare-and-swap, a release that is never written). The store itself is never changed.
 */
export function bentStore(store: Datastore, bends: StoreBends): Datastore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "put" && bends.put) return (key: string, value: string, options?: PutOptions) => bends.put!(target, key, value, options);
      if (prop === "txn" && bends.txn) return (compares: TxnCompare[], success: TxnOp[]) => bends.txn!(target, compares, success);
      if (prop === "list" && bends.list) return (prefix: string) => bends.list!(target, prefix);
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** How a read view bends what the agent reads: values rewritten, keys hidden. */
export interface ReadBends {
  /** Rewrites a key's value as the agent sees it (get, list, watch). */
  rewrite?: (kv: KeyValue) => KeyValue;
  /** Keys the agent never sees (get, list and watch skip them). */
  hide?: (key: string) => boolean;
}

/**
 * A view of `store` in which the agent reads bent values and misses hidden keys (how an agent with
 * a broken informer or parser sees the cluster). Writes pass to the real store unchanged.
 */
export function readView(store: Datastore, bends: ReadBends): Datastore {
  const hidden = (key: string) => bends.hide?.(key) === true;
  const bend = (kv: KeyValue) => (bends.rewrite ? bends.rewrite(kv) : kv);
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "get") {
        return async (key: string) => {
          if (hidden(key)) return undefined;
          const kv = await target.get(key);
          return kv ? bend(kv) : kv;
        };
      }
      if (prop === "list") {
        return async (prefix: string) => {
          const listing = await target.list(prefix);
          return { ...listing, items: listing.items.filter((kv) => !hidden(kv.key)).map(bend) };
        };
      }
      if (prop === "watch") {
        return (prefix: string, options?: WatchOptions): AsyncIterable<WatchEvent> => {
          const inner = target.watch(prefix, options);
          return {
            async *[Symbol.asyncIterator]() {
              for await (const ev of inner) {
                if (hidden(ev.type === "put" ? ev.kv.key : ev.key)) continue;
                yield ev.type === "put" ? { ...ev, kv: bend(ev.kv) } : ev;
              }
            },
          };
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
