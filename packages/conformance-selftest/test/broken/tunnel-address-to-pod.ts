/**
 * Broken (calico with IPIP): the first pod on every node is handed the node's own tunnel address
 * (the address on tunl0, allocated from the same block at start), in the ADD result and in the
 * dataplane: the IPAM handle of the tunnel address was lost, so the address looked free.
 */
import { podKey } from "@cnikit/core";
import type { AttachResult, Backend, NodeAgent, NodeDataplane, PodAttachment } from "@cnikit/core";
import { IPIP_DEVICE, calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { WrappedAgent, copy, wrapBackend } from "./wrap.ts";

class TunnelAddressAgent extends WrappedAgent {
  private victim: { key: string; address: string } | undefined;

  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    const ip = result.ips[0];
    const tunnel = this.inner
      .dataplane()
      .addresses.find((a) => a.dev === IPIP_DEVICE)
      ?.cidr.split("/")[0];
    if (!ip || tunnel === undefined) return result;
    this.victim ??= { key: podKey(pod), address: tunnel };
    if (this.victim.key !== podKey(pod)) return result;
    return { ...result, ips: [{ ...ip, address: `${this.victim.address}/${ip.address.split("/")[1]}` }, ...result.ips.slice(1)] };
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const victim = this.victim;
    if (!victim || !dp.pods.some((p) => p.key === victim.key)) return dp;
    const out = copy(dp);
    for (const p of out.pods) if (p.key === victim.key) p.addresses = p.addresses.map((a) => `${victim.address}/${a.split("/")[1]}`);
    return out;
  }
}

export const tunnelAddressToPod: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-tunnel-address-to-pod", {
  agent: (inner) => new TunnelAddressAgent(inner),
});
