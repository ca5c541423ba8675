/**
 * Broken (flannel): DEL of one interface tears down every interface of the container (state keyed
 * by container id only), so DEL of net1 also removes eth0.
 */
import type { Backend, NodeAgent, PodRef } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import type { FlannelConfig } from "@cnikit/flannel";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class ContainerWideDelAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async detach(ref: PodRef): Promise<void> {
    const others = this.inner
      .dataplane()
      .pods.filter((p) => p.containerId === ref.containerId && p.ifName !== ref.ifName)
      .map((p) => ({ containerId: p.containerId, ifName: p.ifName }));
    await this.inner.detach(ref);
    for (const o of others) await this.inner.detach(o);
  }
}

export const delTearsDownContainer: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-del-tears-down-container", {
  agent: (inner) => new ContainerWideDelAgent(inner),
});
