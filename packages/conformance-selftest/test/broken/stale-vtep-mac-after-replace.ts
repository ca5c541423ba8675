/**
 * Broken (flannel, vxlan + FDB): a peer's neighbour and FDB entries keep the first VTEP MAC they
 * were programmed with. The VTEP MAC here is the one a new device gets (random, kept in the
 * node-local store, as the kernel assigns it to a fresh flannel.1), so a node replaced with fresh
 * local state (same name, same address) comes back with a new MAC; its lease is updated, but every
 * survivor keeps sending to the old one.
 */
import type { AgentContext, Backend, Datastore, KeyValue, NodeAgent, NodeDataplane } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import { LOCAL_KEYS } from "@cnikit/flannel/internal";
import type { FlannelConfig } from "@cnikit/flannel";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class FirstMacAgent extends WrappedAgent {
  /** First MAC seen per neighbour address and per FDB destination. */
  private readonly neighbourMac = new Map<string, string>();
  private readonly fdbMac = new Map<string, string>();

  constructor(inner: NodeAgent) {
    super(inner);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const neighbours = dp.neighbours.map((n) => {
      const key = `${n.dev} ${n.ip}`;
      if (!this.neighbourMac.has(key)) this.neighbourMac.set(key, n.mac);
      return { ...n, mac: this.neighbourMac.get(key)! };
    });
    const fdb = dp.fdb.map((f) => {
      if (f.mac === "00:00:00:00:00:00") return f;
      const key = `${f.dev} ${f.dst}`;
      if (!this.fdbMac.has(key)) this.fdbMac.set(key, f.mac);
      return { ...f, mac: this.fdbMac.get(key)! };
    });
    return { ...dp, neighbours, fdb };
  }
}

/** A node-local store in which the IPv4 VTEP MAC, when absent, is a random one (a fresh device's). */
export function randomVtepMac(local: Datastore, random: () => number): Datastore {
  const key = LOCAL_KEYS.vtepMac(4);
  return new Proxy(local, {
    get(target, prop, receiver) {
      if (prop !== "get") return Reflect.get(target, prop, receiver) as unknown;
      return async (k: string): Promise<KeyValue | undefined> => {
        const found = await target.get(k);
        if (found || k !== key) return found;
        const bytes = Array.from({ length: 6 }, () => Math.floor(random() * 256));
        bytes[0] = (bytes[0]! & 0xfe) | 0x02;
        await target.put(key, bytes.map((b) => b.toString(16).padStart(2, "0")).join(":"));
        return target.get(k);
      };
    },
  });
}

export const staleVtepMacAfterReplace: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-stale-vtep-mac-after-replace", {
  context: (ctx: AgentContext<FlannelConfig>) => ({ ...ctx, local: randomVtepMac(ctx.local, ctx.random) }),
  agent: (inner) => new FirstMacAgent(inner),
});
