// Graceful restart as receiving speaker (RFC 4724 §4.2) and enhanced route refresh staleness (RFC 7313).
import { describe, expect, it } from "vitest";
import type { Capability, UpdateMessage } from "../src/codec/types.ts";
import type { SpeakerOptions } from "../src/config.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { MemoryNetwork } from "../src/transport/memory.ts";
import { RawPeer } from "./support/raw-peer.ts";
import { settle, TestClock } from "./support/virtual-clock.ts";

function grCaps(fBit: boolean, families = true): Capability[] {
  return [...RawPeer.defaultCapabilities(64512), { kind: "graceful-restart", flags: 0, restartTime: 30, families: families ? [{ afi: 1, safi: 1, flags: fBit ? 0x80 : 0 }] : [] }];
}

function announce(prefixes: string[]): UpdateMessage {
  return {
    type: "update",
    withdrawn: [],
    attributes: [
      { type: "origin", flags: 0x40, value: 0 },
      { type: "as-path", flags: 0x40, segments: [] },
      { type: "next-hop", flags: 0x40, value: "10.0.0.9" },
      { type: "local-pref", flags: 0x40, value: 100 },
    ],
    nlri: prefixes.map((prefix) => ({ prefix })),
  };
}

const EOR: UpdateMessage = { type: "update", withdrawn: [], attributes: [], nlri: [] };

async function setup(caps: Capability[]): Promise<{ s: BgpSpeaker; net: MemoryNetwork; clock: TestClock; connect: () => Promise<RawPeer> }> {
  const net = new MemoryNetwork();
  const clock = new TestClock();
  const s = new BgpSpeaker({ asn: 64512, routerId: "10.0.0.1", transport: net.transport("10.0.0.1"), clock, jitter: false, peers: [{ address: "10.0.0.9", asn: 64512, passive: true }] });
  await s.start();
  const connect = async (): Promise<RawPeer> => {
    const raw = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9", capabilities: caps });
    await raw.dial("10.0.0.1");
    await raw.establish();
    return raw;
  };
  return { s, net, clock, connect };
}

describe("graceful restart, receiving side", () => {
  it("keeps the routes as stale across a TCP reset, then drops what the restarted peer did not re-announce by End-of-RIB", async () => {
    const { s, net, clock, connect } = await setup(grCaps(true));
    const first = await connect();
    first.sendMessage(announce(["10.1.0.0/16", "10.2.0.0/16"]));
    await settle();
    expect(s.routeCount).toBe(2);
    net.reset("10.0.0.9");
    await clock.advance(10_000);
    expect(s.routes().map((r) => `${r.prefix} stale=${r.stale}`)).toEqual(["10.1.0.0/16 stale=true", "10.2.0.0/16 stale=true"]);
    const second = await connect();
    second.sendMessage(announce(["10.1.0.0/16"]));
    await settle();
    expect(s.routes().map((r) => `${r.prefix} stale=${r.stale}`)).toEqual(["10.1.0.0/16 stale=false", "10.2.0.0/16 stale=true"]);
    second.sendMessage(EOR);
    await settle();
    expect(s.routes().map((r) => r.prefix)).toEqual(["10.1.0.0/16"]);
  });

  it("a new connection while the old one is still Established counts as the restart (RFC 4724 §4.2)", async () => {
    const { s, connect } = await setup(grCaps(true));
    const first = await connect();
    first.sendMessage(announce(["10.1.0.0/16"]));
    await settle();
    const second = await connect();
    expect(s.peerState("10.0.0.9")).toBe("Established");
    expect(first.closed).toBeDefined();
    expect(s.route("10.1.0.0/16")?.stale).toBe(true);
    second.sendMessage(EOR);
    await settle();
    expect(s.routeCount).toBe(0);
  });

  it("deletes the stale routes when the restart time passes without the peer", async () => {
    const { s, net, clock, connect } = await setup(grCaps(true));
    const raw = await connect();
    raw.sendMessage(announce(["10.1.0.0/16"]));
    await settle();
    net.reset("10.0.0.9");
    await clock.advance(29_000);
    expect(s.routeCount).toBe(1);
    await clock.advance(2_000);
    expect(s.routeCount).toBe(0);
  });

  it("deletes the stale routes at once when the peer comes back without the forwarding-state bit", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const s = new BgpSpeaker({ asn: 64512, routerId: "10.0.0.1", transport: net.transport("10.0.0.1"), clock, jitter: false, peers: [{ address: "10.0.0.9", asn: 64512, passive: true }] });
    await s.start();
    const raw1 = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9", capabilities: grCaps(true) });
    await raw1.dial("10.0.0.1");
    await raw1.establish();
    raw1.sendMessage(announce(["10.1.0.0/16"]));
    await settle();
    net.reset("10.0.0.9");
    await clock.advance(1000);
    expect(s.routeCount).toBe(1);
    const raw2 = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9", capabilities: grCaps(false) });
    await raw2.dial("10.0.0.1");
    await raw2.establish();
    expect(s.routeCount).toBe(0);
  });

  it.each([
    { name: "the peer is only GR-aware (no families)", caps: grCaps(true, false), how: "reset" },
    { name: "the peer did not advertise GR", caps: RawPeer.defaultCapabilities(64512), how: "reset" },
    { name: "the session ended with a NOTIFICATION", caps: grCaps(true), how: "notification" },
  ])("withdraws at once when $name", async ({ caps, how }) => {
    const { s, net, clock, connect } = await setup(caps);
    const raw = await connect();
    raw.sendMessage(announce(["10.1.0.0/16"]));
    await settle();
    if (how === "reset") net.reset("10.0.0.9");
    else raw.sendMessage({ type: "notification", code: 6, subcode: 2, data: new Uint8Array(0) });
    await clock.advance(10);
    expect(s.routeCount).toBe(0);
  });
});

describe("enhanced route refresh, receiving side", () => {
  it("routes not re-sent between BoRR and EoRR are removed", async () => {
    const { s, connect } = await setup(RawPeer.defaultCapabilities(64512));
    const raw = await connect();
    raw.sendMessage(announce(["10.1.0.0/16", "10.2.0.0/16"]));
    raw.sendMessage({ type: "route-refresh", afi: 1, safi: 1, subtype: 1 });
    raw.sendMessage(announce(["10.2.0.0/16"]));
    await settle();
    expect(s.routeCount).toBe(2);
    raw.sendMessage({ type: "route-refresh", afi: 1, safi: 1, subtype: 2 });
    await settle();
    expect(s.routes().map((r) => r.prefix)).toEqual(["10.2.0.0/16"]);
  });

  it("our refresh() sends a ROUTE-REFRESH request per negotiated family", async () => {
    const { s, connect } = await setup(RawPeer.defaultCapabilities(64512));
    const raw = await connect();
    s.refresh("10.0.0.9");
    await settle();
    expect(raw.of("route-refresh")).toEqual([
      { type: "route-refresh", afi: 1, safi: 1, subtype: 0 },
      { type: "route-refresh", afi: 2, safi: 1, subtype: 0 },
    ]);
  });
});

describe("graceful restart, restarting side (RFC 4724 §4.1)", () => {
  const A = "10.0.0.1";
  const B = "10.0.0.2";
  const C = "10.0.0.3";

  /** Speaker `address` peering with `peers` (iBGP), GR with preserved forwarding unless told otherwise. */
  function speakerAt(net: MemoryNetwork, clock: TestClock, address: string, peers: string[], gr: SpeakerOptions["gracefulRestart"] = { restartTime: 120, preserveForwarding: true }): BgpSpeaker {
    return new BgpSpeaker({
      asn: 64512,
      routerId: address,
      localAddress: address,
      transport: net.transport(address),
      clock,
      jitter: false,
      families: ["ipv4-unicast"],
      gracefulRestart: gr,
      peers: peers.map((p) => ({ address: p, asn: 64512, passive: address > p })),
    });
  }

  /** A and B peering, both running. */
  async function pair(): Promise<{ net: MemoryNetwork; clock: TestClock; a: BgpSpeaker; b: BgpSpeaker }> {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speakerAt(net, clock, A, [B]);
    const b = speakerAt(net, clock, B, [A]);
    await b.start();
    await a.start();
    return { net, clock, a, b };
  }

  /** Every Loc-RIB event of `s` that lost a route (withdrawn). */
  function losses(s: BgpSpeaker): string[] {
    const lost: string[] = [];
    s.onRouteChange((e) => {
      if (e.type === "withdrawn") lost.push(e.prefix);
    });
    return lost;
  }

  it("a graceful stop keeps the routes at the peer as stale; the restarted speaker (R and F bits) re-announces and sends End-of-RIB; nothing is withdrawn meanwhile", async () => {
    const { net, clock, a, b } = await pair();
    a.announce(["10.244.1.0/26", "10.244.9.0/26"]);
    await clock.advance(1000);
    expect(b.routes().map((r) => r.prefix)).toEqual(["10.244.1.0/26", "10.244.9.0/26"]);
    expect(b.peerStatus()[0]!.negotiated?.gracefulRestart).toBe(true);
    const lost = losses(b);

    await a.stop({ graceful: true });
    await clock.advance(30_000);
    expect(b.peerState(A)).not.toBe("Established");
    expect(b.routes().map((r) => `${r.prefix} stale=${r.stale}`)).toEqual(["10.244.1.0/26 stale=true", "10.244.9.0/26 stale=true"]);
    expect(b.peerStatus()[0]!.staleRoutes).toBe(2);

    // The restarted speaker no longer originates 10.244.9.0/26: End-of-RIB flushes that one only.
    const a2 = speakerAt(net, clock, A, [B], { restartTime: 120, preserveForwarding: true, restarting: true });
    a2.announce("10.244.1.0/26");
    await a2.start();
    await clock.advance(5_000);
    expect(b.peerState(A)).toBe("Established");
    expect(b.routes().map((r) => `${r.prefix} stale=${r.stale}`)).toEqual(["10.244.1.0/26 stale=false"]);
    const st = b.peerStatus()[0]!;
    expect(st.staleRoutes).toBe(0);
    expect(st.endOfRibReceivedAt).toBeGreaterThanOrEqual(st.establishedAt!);
    expect(lost).toEqual(["10.244.9.0/26"]);
    expect(a2.peerStatus()[0]!.endOfRibReceivedAt).toBeDefined();
  });

  it("an ordinary stop (Cease) loses the routes at once: the loss the graceful stop avoids", async () => {
    const { clock, a, b } = await pair();
    a.announce("10.244.1.0/26");
    await clock.advance(1000);
    const lost = losses(b);
    await a.stop();
    await clock.advance(10);
    expect(lost).toEqual(["10.244.1.0/26"]);
    expect(b.routeCount).toBe(0);
  });

  it("the restarting speaker defers its initial table until every peer's End-of-RIB, or the selection deferral timer", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speakerAt(net, clock, A, [B, C]);
    const b = speakerAt(net, clock, B, [A, C]);
    const c = speakerAt(net, clock, C, [A, B]);
    for (const s of [a, b, c]) await s.start();
    a.announce("10.244.1.0/26");
    await clock.advance(10_000);
    expect(b.route("10.244.1.0/26")?.stale).toBe(false);
    await a.stop({ graceful: true });
    await c.stop(); // C is gone for good: A's restart must not wait for it forever
    await clock.advance(1000);
    const a2 = speakerAt(net, clock, A, [B, C], { restartTime: 120, preserveForwarding: true, restarting: true, selectionDeferralTime: 60 });
    a2.announce("10.244.1.0/26");
    await a2.start();
    await clock.advance(10_000);
    // Established with B, B's End-of-RIB received, but C never comes: A sends B nothing yet.
    expect(b.peerState(A)).toBe("Established");
    expect(a2.peerStatus().find((p) => p.address === B)!.endOfRibReceivedAt).toBeDefined();
    expect(b.route("10.244.1.0/26")?.stale).toBe(true);
    expect(b.peerStatus().find((p) => p.address === A)!.endOfRibReceivedAt).toBeUndefined();
    await clock.advance(60_000);
    expect(b.route("10.244.1.0/26")?.stale).toBe(false);
    expect(b.peerStatus().find((p) => p.address === A)!.endOfRibReceivedAt).toBeDefined();
  });

  it("refuses a graceful stop without preserveForwarding, and restarting without it", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speakerAt(net, clock, A, [B], { restartTime: 120 });
    await a.start();
    await expect(a.stop({ graceful: true })).rejects.toThrow(/graceful stop needs gracefulRestart.preserveForwarding/);
    await a.stop();
    expect(() => speakerAt(net, clock, B, [A], { restarting: true })).toThrow(/gracefulRestart.restarting.*needs preserveForwarding/);
  });
});
