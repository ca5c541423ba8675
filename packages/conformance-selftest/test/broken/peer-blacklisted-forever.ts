/**
 * Broken (calico, routed + BGP): a peer the agent once failed to reach is remembered as dead for
 * good — no further connects to it, and its incoming sessions are closed. A node that joins while
 * the network is partitioned never peers with the other side after the heal.
 */
import { TryAgainError } from "@cnikit/core";
import type { AgentContext, Backend, PeerConnection, PeerTransport } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import { wrapBackend } from "./wrap.ts";

function blacklisting(inner: PeerTransport): PeerTransport {
  const dead = new Set<string>();
  return {
    get self() {
      return inner.self;
    },
    listen(service: string, onConnection: (c: PeerConnection) => void) {
      return inner.listen(service, (c) => {
        if (dead.has(c.remote)) c.close("peer remembered as dead");
        else onConnection(c);
      });
    },
    async connect(peer: string, service: string) {
      if (dead.has(peer)) throw new TryAgainError(`[broken] ${peer} is remembered as dead`);
      try {
        return await inner.connect(peer, service);
      } catch (err) {
        dead.add(peer);
        throw err;
      }
    },
    sendDatagram: (peer, service, message) => inner.sendDatagram(peer, service, message),
    onDatagram: (service, handler) => inner.onDatagram(service, handler),
    close: () => inner.close(),
  };
}

export const peerBlacklistedForever = wrapBackend(calico, "broken-calico-peer-blacklisted-forever", {
  context: (ctx: AgentContext<unknown>) => ({ ...ctx, peers: blacklisting(ctx.peers) }) as never,
}) as Backend<unknown>;
