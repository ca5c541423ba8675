/**
 * Broken (reference): ADD first writes an "in progress" record to the node-local store and removes
 * it only when the ADD succeeds — a failed ADD (address held, outside the range, node exhausted)
 * leaves the record in `ctx.local`, where nothing ever removes it.
 */
import type { AgentContext, AttachResult, Backend, NodeAgent, PodAttachment } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import type { ReferenceConfig } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

const INTENT_PREFIX = "/intent/";

class IntentLeakAgent extends WrappedAgent {
  constructor(
    inner: NodeAgent,
    private readonly ctx: AgentContext<ReferenceConfig>,
  ) {
    super(inner);
  }

  override async attach(pod: PodAttachment): Promise<AttachResult> {
    const key = `${INTENT_PREFIX}${pod.containerId}/${pod.ifName}`;
    await this.ctx.local.put(key, JSON.stringify({ containerId: pod.containerId, ifName: pod.ifName, netns: pod.netns }));
    const result = await this.inner.attach(pod);
    await this.ctx.local.delete(key);
    return result;
  }
}

export const failedAddLeavesIntent: Backend<ReferenceConfig> = wrapBackend(reference, "broken-reference-failed-add-leaves-intent", {
  agent: (inner, ctx) => new IntentLeakAgent(inner, ctx),
});
