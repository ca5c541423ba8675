// Graceful restart as receiving speaker (RFC 4724 §4.2) and enhanced route refresh staleness (RFC 7313).
import { describe, expect, it } from "vitest";
import type { Capability, UpdateMessage } from "../src/codec/types.ts";
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
