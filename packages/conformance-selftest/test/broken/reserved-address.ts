/**
 * Broken: the first pod on every node is handed the node subnet's gateway address (which the
 * bridge holds), in the ADD result and in the dataplane.
 */
import { podKey } from "@cnikit/core";
import type { AttachResult, Backend, NodeAgent, NodeDataplane, PodAttachment } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, copy, wrapBackend } from "./wrap.ts";

export class GatewayGivingAgent extends WrappedAgent {
  private victim: { key: string; gateway: string } | undefined;

  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    const ip = result.ips[0];
    if (!ip?.gateway) return result;
    this.victim ??= { key: podKey(pod), gateway: ip.gateway };
    if (this.victim.key !== podKey(pod)) return result;
    return { ...result, ips: [{ ...ip, address: `${this.victim.gateway}/${ip.address.split("/")[1]}` }, ...result.ips.slice(1)] };
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const victim = this.victim;
    if (!victim) return dp;
    const out = copy(dp);
    for (const p of out.pods) if (p.key === victim.key) p.addresses = p.addresses.map((a) => `${victim.gateway}/${a.split("/")[1]}`);
    return out;
  }
}

/** `base` that hands its first pod on every node the gateway address its ADD result names. */
export function reservedAddressOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new GatewayGivingAgent(inner) });
}

export const reservedAddress = reservedAddressOf(reference, "broken-reserved-address");
