/**
 * Broken (reference): after an agent restart, DEL of a pod whose reservation was restored from
 * `ctx.local` removes the pod but keeps its address reserved (re-held under an owner the reported
 * dataplane leaves out) — the restored reservations are not linked to what DEL releases. Pods ADDed
 * by the running agent are released properly.
 */
import { podKey } from "@cnikit/core";
import type { AttachResult, Backend, NodeAgent, PodAttachment, PodRef } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import type { ReferenceConfig } from "@cnikit/reference";
import { HidingAgent } from "./leak-on-del.ts";
import { wrapBackend } from "./wrap.ts";

const HIDDEN = "restored-leak-";
let hiddenCount = 0;

class RestoredLeakAgent extends HidingAgent {
  /** Attachments this incarnation of the agent made (a restart starts with none). */
  private readonly attachedHere = new Set<string>();

  constructor(inner: NodeAgent) {
    super(inner, HIDDEN);
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
    await this.hold(String(++hiddenCount), ref.ifName, addresses);
  }
}

export const restoredPodLeaksOnDel: Backend<ReferenceConfig> = wrapBackend(reference, "broken-reference-restored-pod-leaks-on-del", {
  agent: (inner) => new RestoredLeakAgent(inner),
});
