// BGP over a message transport shaped like cnikit's PeerTransport (agents reach each other by name).
import { describe, expect, it } from "vitest";
import { BgpSpeaker } from "../src/speaker.ts";
import type { PeerConnectionLike, PeerTransportLike } from "../src/transport/peer-connection.ts";
import { peerTransportAdapter } from "../src/transport/peer-connection.ts";
import { settle, TestClock } from "./support/virtual-clock.ts";

/** A tiny message network: ordered delivery in microtasks, by agent name. */
function messageNetwork(): (self: string) => PeerTransportLike {
  const listeners = new Map<string, (c: PeerConnectionLike) => void>();
  interface End extends PeerConnectionLike {
    other: End | undefined;
    deliver(m: Uint8Array): void;
    shut(r: string): void;
  }
  const end = (remote: string): End => {
    let onMsg: ((m: Uint8Array) => void) | undefined;
    let onClose: ((r: string) => void) | undefined;
    const inbox: Uint8Array[] = [];
    const self: End = {
      remote,
      closed: false,
      other: undefined,
      send(m: Uint8Array) {
        const o = self.other!;
        queueMicrotask(() => o.deliver(m.slice()));
      },
      onMessage(h: (m: Uint8Array) => void) {
        onMsg = h;
        // Like cnikit's memory transport: what arrived before the handler is delivered now.
        for (const m of inbox.splice(0)) h(m);
      },
      onClose(h: (r: string) => void) {
        onClose = h;
      },
      close(reason = "closed") {
        if (self.closed) return;
        self.shut(reason);
        const o = self.other!;
        queueMicrotask(() => o.shut(reason));
      },
      deliver(m: Uint8Array) {
        if (self.closed) return;
        if (onMsg) onMsg(m);
        else inbox.push(m);
      },
      shut(r: string) {
        if (self.closed) return;
        (self as { closed: boolean }).closed = true;
        onClose?.(r);
      },
    };
    return self;
  };
  return (me) => ({
    self: me,
    listen(service, cb) {
      listeners.set(`${me}/${service}`, cb);
      return () => listeners.delete(`${me}/${service}`);
    },
    async connect(peer, service) {
      const l = listeners.get(`${peer}/${service}`);
      if (!l) throw new Error(`unreachable ${peer}`);
      const a = end(peer);
      const b = end(me);
      a.other = b;
      b.other = a;
      l(b);
      return a;
    },
  });
}

describe("BGP over a PeerTransport-shaped message transport", () => {
  it("two speakers named node-a and node-b peer by IP and exchange routes", async () => {
    const net = messageNetwork();
    const ips: Record<string, string> = { "node-a": "198.51.100.1", "node-b": "198.51.100.2" };
    const names = Object.fromEntries(Object.entries(ips).map(([n, ip]) => [ip, n]));
    const clock = new TestClock();
    const mk = (name: string, peerIp: string): BgpSpeaker =>
      new BgpSpeaker({
        asn: 64512,
        routerId: ips[name]!,
        localAddress: ips[name]!,
        clock,
        transport: peerTransportAdapter(net(name), { nameOf: (ip) => names[ip]!, addressOf: (n) => ips[n]! }),
        peers: [{ address: peerIp, asn: 64512, passive: name === "node-a" }],
      });
    const a = mk("node-a", "198.51.100.2");
    const b = mk("node-b", "198.51.100.1");
    await a.start();
    await b.start();
    a.announce("10.244.1.0/26");
    b.announce("10.244.2.0/26");
    await clock.advance(10);
    await settle();
    expect(a.route("10.244.2.0/26")?.attributes.nextHop).toBe("198.51.100.2");
    expect(b.route("10.244.1.0/26")?.attributes.nextHop).toBe("198.51.100.1");
  });
});
