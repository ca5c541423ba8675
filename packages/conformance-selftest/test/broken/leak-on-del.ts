/**
 * Broken: DEL removes the pod but never gives its address back (it stays reserved, invisibly:
 * re-held under a hidden attachment that the reported dataplane leaves out).
 */
import { podKey } from "@cnikit/core";
import type { AttachResult, Backend, NodeAgent, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const HIDDEN = "leaked-";

export class LeakingAgent extends WrappedAgent {
  private readonly addresses = new Map<string, string>();

  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    const ip = result.ips[0];
    if (ip) this.addresses.set(podKey(pod), ip.address.split("/")[0]!);
    return result;
  }

  override async detach(ref: PodRef): Promise<void> {
    await this.inner.detach(ref);
    const key = podKey(ref);
    const addr = this.addresses.get(key);
    if (!addr) return;
    this.addresses.delete(key);
    await this.inner.attach({ containerId: `${HIDDEN}${ref.containerId}`, ifName: ref.ifName, netns: "/leaked", requestedIps: [addr] }).catch(() => undefined);
  }

  override gc(valid: PodRef[]): Promise<void> {
    const hidden = this.inner
      .dataplane()
      .pods.filter((p) => p.containerId.startsWith(HIDDEN))
      .map((p) => ({ containerId: p.containerId, ifName: p.ifName }));
    return this.inner.gc([...valid, ...hidden]);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (!dp.pods.some((p) => p.containerId.startsWith(HIDDEN))) return dp;
    return { ...dp, pods: dp.pods.filter((p) => !p.containerId.startsWith(HIDDEN)) };
  }
}

/** `base` with the leak (its own allocator keeps the address: it is re-held through `requestedIps`). */
export function leakOnDelOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new LeakingAgent(inner) });
}

export const leakOnDel = leakOnDelOf(reference, "broken-leak-on-del");
