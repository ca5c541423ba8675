/**
 * Broken (reference): after an agent restart, DEL of a pod whose reservation was restored from
 * `ctx.local` removes the pod but keeps its address reserved (re-held under an owner the reported
 * dataplane leaves out) — the restored reservations are not linked to what DEL releases. Pods ADDed
 * by the running agent are released properly.
 */
import { podKey } from "@cnikit/core";
import type { AttachResult, Backend, NodeAgent, NodeDataplane, PodAttachment, PodRef } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import type { ReferenceConfig } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const HIDDEN = "restored-leak-";
let hiddenCount = 0;

class RestoredLeakAgent extends WrappedAgent {
  /** Attachments this incarnation of the agent made (a restart starts with none). */
  private readonly attachedHere = new Set<string>();

  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const result = await this.inner.attach(pod);
    this.attachedHere.add(podKey(pod));
    return result;
  }

  override async detach(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    const restored = this.attachedHere.has(key) ? undefined : this.inner.dataplane().pods.find((p) => p.key === key);
    await this.inner.detach(ref);
    this.attachedHere.delete(key);
    if (!restored) return;
    const addresses = restored.addresses.map((a) => a.split("/")[0]!);
    await this.inner.attach({ containerId: `${HIDDEN}${++hiddenCount}`, ifName: ref.ifName, netns: "/leaked", requestedIps: addresses }).catch(() => undefined);
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

export const restoredPodLeaksOnDel: Backend<ReferenceConfig> = wrapBackend(reference, "broken-reference-restored-pod-leaks-on-del", {
  agent: (inner) => new RestoredLeakAgent(inner),
});
