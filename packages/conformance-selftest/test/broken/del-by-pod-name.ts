/**
 * Broken (reference): DEL finds what to tear down by pod namespace/name instead of by container id,
 * so the DEL of an old sandbox also removes the new sandbox of the same pod (created, as the
 * kubelet does, before the old one is deleted).
 */
import type { Backend, NodeAgent, PodRef } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import type { ReferenceConfig } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class DelByPodNameAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async detach(ref: PodRef): Promise<void> {
    const pods = this.inner.dataplane().pods;
    const own = pods.find((p) => p.containerId === ref.containerId && p.ifName === ref.ifName);
    const siblings = own?.podName === undefined ? [] : pods.filter((p) => p.containerId !== ref.containerId && p.namespace === own.namespace && p.podName === own.podName);
    await this.inner.detach(ref);
    for (const s of siblings) await this.inner.detach({ containerId: s.containerId, ifName: s.ifName });
  }
}

export const delByPodName: Backend<ReferenceConfig> = wrapBackend(reference, "broken-reference-del-by-pod-name", {
  agent: (inner) => new DelByPodNameAgent(inner),
});
