/**
 * Broken (flannel, calico): the agent applies additions but ignores removals. What it once
 * installed for a peer stays after the peer is gone: flannel ignoring lease-removed events (the
 * neighbour, FDB entry and onlink route of a departed VTEP stay), calico ignoring BGP withdraws (a
 * departed node's block route stays). `kinds` says which entries are kept.
 */
import type { Backend, FdbEntry, NeighbourEntry, NodeAgent, NodeDataplane, RouteEntry } from "@cnikit/core";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

export interface KeptKinds {
  /** Keep routes (by destination) that pass this filter. */
  routes?: (r: RouteEntry) => boolean;
  neighbours?: boolean;
  fdb?: boolean;
}

export class ForgetsNothingAgent extends WrappedAgent {
  private readonly routes = new Map<string, RouteEntry>();
  private readonly neighbours = new Map<string, NeighbourEntry>();
  private readonly fdb = new Map<string, FdbEntry>();

  constructor(
    inner: NodeAgent,
    private readonly kinds: KeptKinds,
  ) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const keep = this.kinds.routes;
    let routes = dp.routes;
    if (keep) {
      for (const r of dp.routes) if (keep(r)) this.routes.set(r.dst, r);
      const current = new Set(dp.routes.map((r) => r.dst));
      const stale = [...this.routes.values()].filter((r) => !current.has(r.dst));
      if (stale.length > 0) routes = [...dp.routes, ...stale];
    }
    let neighbours = dp.neighbours;
    if (this.kinds.neighbours) {
      for (const n of dp.neighbours) this.neighbours.set(`${n.dev} ${n.ip}`, n);
      const current = new Set(dp.neighbours.map((n) => `${n.dev} ${n.ip}`));
      const stale = [...this.neighbours.entries()].filter(([k]) => !current.has(k)).map(([, n]) => n);
      if (stale.length > 0) neighbours = [...dp.neighbours, ...stale];
    }
    let fdb = dp.fdb;
    if (this.kinds.fdb) {
      for (const f of dp.fdb) this.fdb.set(`${f.dev} ${f.mac}`, f);
      const current = new Set(dp.fdb.map((f) => `${f.dev} ${f.mac}`));
      const stale = [...this.fdb.entries()].filter(([k]) => !current.has(k)).map(([, f]) => f);
      if (stale.length > 0) fdb = [...dp.fdb, ...stale];
    }
    return routes === dp.routes && neighbours === dp.neighbours && fdb === dp.fdb ? dp : { ...dp, routes, neighbours, fdb };
  }
}

/** `base` whose agents never remove the entries `kinds` names. */
export function forgetsNothingOf<C>(base: Backend<C>, name: string, kinds: KeptKinds): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new ForgetsNothingAgent(inner, kinds) });
}
