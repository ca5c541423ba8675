/**
 * Broken: DEL removes the pod but never gives its address back (it stays reserved, invisibly:
 * re-held under a hidden attachment that the reported dataplane leaves out).
 */
import { podKey } from "@cnikit/core";
import type { AttachResult, Backend, NodeAgent, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const HIDDEN = "leaked-";

/**
 * An agent that keeps addresses reserved invisibly: `hold` re-holds them under an attachment whose
 * container id starts with `prefix`, which GC never releases and the reported dataplane leaves out.
 */
export class HidingAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly prefix: string,
  ) {
    super(inner);
  }

  /** Re-holds `addresses` under the hidden container id `prefix + id` (failures ignored). */
  protected async hold(id: string, ifName: string, addresses: string[]): Promise<void> {
    await this.inner.attach({ containerId: `${this.prefix}${id}`, ifName, netns: "/leaked", requestedIps: addresses }).catch(() => undefined);
  }

  override gc(valid: PodRef[]): Promise<void> {
    const hidden = this.inner
      .dataplane()
      .pods.filter((p) => p.containerId.startsWith(this.prefix))
      .map((p) => ({ containerId: p.containerId, ifName: p.ifName }));
    return this.inner.gc([...valid, ...hidden]);
  }

  protected override transform(dp: NodeDataplane): NodeDataplane {
    if (!dp.pods.some((p) => p.containerId.startsWith(this.prefix))) return dp;
    return { ...dp, pods: dp.pods.filter((p) => !p.containerId.startsWith(this.prefix)) };
  }
}

export class LeakingAgent extends HidingAgent {
  private readonly addresses = new Map<string, string>();

  constructor(inner: NodeAgent) {
    super(inner, HIDDEN);
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
    await this.hold(ref.containerId, ref.ifName, [addr]);
  }
}

/** `base` with the leak (its own allocator keeps the address: it is re-held through `requestedIps`). */
export function leakOnDelOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new LeakingAgent(inner) });
}

export const leakOnDel = leakOnDelOf(reference, "broken-leak-on-del");
