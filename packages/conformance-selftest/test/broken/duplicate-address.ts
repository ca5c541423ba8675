/**
 * Broken: every second new attachment on a node is handed the address of the one before it (in
 * the ADD result and in the dataplane), so two live pods share an address.
 */
import { podKey } from "@cnikit/core";
import type { AttachResult, NodeAgent, NodeDataplane, PodAttachment } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, copy, wrapBackend } from "./wrap.ts";

class DuplicatingAgent extends WrappedAgent {
  private count = 0;
  private previous: string | undefined;
  private readonly override = new Map<string, string>();

  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const key = podKey(pod);
    const known = this.inner.dataplane().pods.some((p) => p.key === key);
    const result = await this.inner.attach(pod);
    const ip = result.ips[0];
    if (!ip) return result;
    const [own, len] = ip.address.split("/");
    if (!known) {
      this.count++;
      if (this.count % 2 === 0 && this.previous) this.override.set(key, this.previous);
      this.previous = own;
    }
    const dup = this.override.get(key);
    return dup ? { ...result, ips: [{ ...ip, address: `${dup}/${len}` }, ...result.ips.slice(1)] } : result;
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (this.override.size === 0) return dp;
    const out = copy(dp);
    for (const p of out.pods) {
      const dup = this.override.get(p.key);
      if (dup) p.addresses = p.addresses.map((a) => `${dup}/${a.split("/")[1]}`);
    }
    return out;
  }
}

export const duplicateAddress = wrapBackend(reference, "broken-duplicate-address", {
  agent: (inner) => new DuplicatingAgent(inner),
});
