/**
 * Broken (every shape): a clean leave never gives the node's share back — `stop({ release: true })`
 * is treated as a plain stop (as an agent restart would do it). flannel's lease, calico's block
 * affinities, handles and node record, the reference's claim stay in the store after the node is
 * gone for good.
 */
import type { Backend, NodeAgent } from "@cnikit/core";
import { WrappedAgent, wrapBackend } from "./wrap.ts";

class NoReleaseAgent extends WrappedAgent {
  constructor(inner: NodeAgent) {
    super(inner);
  }

  override stop(): Promise<void> {
    return this.inner.stop({ release: false });
  }
}

/** `base` whose agents never release their share on a clean leave. */
export function leaveWithoutReleaseOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { agent: (inner) => new NoReleaseAgent(inner) });
}
