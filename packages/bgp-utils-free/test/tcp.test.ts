// The same speaker code over real TCP sockets on loopback (127.0.0.x addresses, free ports).
import { describe, expect, it } from "vitest";
import { BgpSpeaker } from "../src/speaker.ts";
import { tcpTransport } from "../src/transport/tcp.ts";

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("TCP transport", () => {
  it("two speakers on 127.0.0.x peer over TCP, exchange 10,000 routes, and see the Cease when one stops", async () => {
    const ta = tcpTransport({ listenAddress: "127.0.0.11", listenPort: 0 });
    const tb = tcpTransport({ listenAddress: "127.0.0.12", listenPort: 0 });
    const a = new BgpSpeaker({ asn: 64512, routerId: "10.0.0.11", localAddress: "127.0.0.11", transport: ta, holdTime: 9 });
    const b = new BgpSpeaker({ asn: 64512, routerId: "10.0.0.12", localAddress: "127.0.0.12", transport: tb, holdTime: 9 });
    await a.listen();
    await b.listen();
    a.addPeer({ address: "127.0.0.12", asn: 64512, port: tb.boundPort()! });
    b.addPeer({ address: "127.0.0.11", asn: 64512, port: ta.boundPort()!, passive: true });
    const prefixes = Array.from({ length: 10_000 }, (_, i) => `10.${128 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`);
    a.announce(prefixes);
    b.announce("10.0.0.0/24");
    try {
      await a.start();
      await b.start();
      await waitFor("10,000 routes at b", () => b.routeCount === 10_001);
      await waitFor("b's route at a", () => a.route("10.0.0.0/24") !== undefined);
      expect(b.route(prefixes[9_999]!)!.attributes).toMatchObject({ nextHop: "127.0.0.11", localPref: 100, asPath: [] });
      const st = b.peerStatus()[0]!;
      expect(st.negotiated).toMatchObject({ holdTime: 9, fourOctetAs: true, families: ["1/1", "2/1"] });
      // 10,000 /26 fit in 13 UPDATEs (+ End-of-RIB for two families).
      expect(st.stats!.updatesIn).toBe(15);
      a.withdraw(prefixes.slice(0, 5000));
      await waitFor("withdrawals at b", () => b.routeCount === 5001);
      await a.stop();
      await waitFor("b to see the session go", () => b.peerState("127.0.0.11") !== "Established");
      expect(b.peerStatus()[0]!.lastError).toBe("NOTIFICATION 6/2 received");
      expect(b.routeCount).toBe(1);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("rejects connections from addresses that are not peers", async () => {
    const ta = tcpTransport({ listenAddress: "127.0.0.13", listenPort: 0 });
    const a = new BgpSpeaker({ asn: 64512, routerId: "10.0.0.13", transport: ta });
    await a.start();
    try {
      const intruder = tcpTransport();
      const stream = await intruder.connect({ address: "127.0.0.13", port: ta.boundPort()!, localAddress: "127.0.0.14" });
      const closed = await new Promise<string>((resolve) => stream.onClose(resolve));
      expect(closed).toMatch(/closed|ECONNRESET/);
    } finally {
      await a.stop();
    }
  });
});
