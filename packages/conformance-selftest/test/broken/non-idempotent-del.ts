/** Broken: DEL of an attachment the agent does not hold (a second DEL, an unknown one) throws. */
import { podKey } from "@cnikit/core";
import type { Backend, NodeAgent, PodRef } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

export class StrictDelAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  override async detach(ref: PodRef): Promise<void> {
    const key = podKey(ref);
    if (!this.inner.dataplane().pods.some((p) => p.key === key)) throw new Error(`container ${key} not found`);
    await this.inner.detach(ref);
  }
}

/** `base` whose DEL throws for an attachment it does not hold ("container not found"). */
export function nonIdempotentDelOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new StrictDelAgent(inner) });
}

export const nonIdempotentDel = nonIdempotentDelOf(reference, "broken-non-idempotent-del");
