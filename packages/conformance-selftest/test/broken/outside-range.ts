/**
 * Broken: pods get addresses from 172.31.0.0/16, outside the configured network (in the ADD
 * result and in the dataplane).
 */
import type { AttachResult, NodeAgent, NodeDataplane, PodAttachment } from "@cnikit/core";
import { podKey } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, copy, wrapBackend } from "./wrap.ts";

let next = 10;

class OutsideAgent extends WrappedAgent {
  private readonly moved = new Map<string, string>();

  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    const key = podKey(pod);
    let addr = this.moved.get(key);
    if (!addr) {
      addr = `172.31.${Math.floor(next / 250)}.${(next % 250) + 2}`;
      next++;
      this.moved.set(key, addr);
    }
    return { ...result, ips: result.ips.map((ip, i) => (i === 0 ? { ...ip, address: `${addr}/${ip.address.split("/")[1]}` } : ip)) };
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    const out = copy(dp);
    for (const p of out.pods) {
      const addr = this.moved.get(p.key);
      if (addr) p.addresses = p.addresses.map((a) => `${addr}/${a.split("/")[1]}`);
    }
    return out;
  }
}

export const outsideRange = wrapBackend(reference, "broken-outside-range", {
  agent: (inner) => new OutsideAgent(inner),
});
