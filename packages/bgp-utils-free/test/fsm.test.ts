// The RFC 4271 §8 FSM and its timers, driven on a virtual clock over the memory transport.
import { describe, expect, it } from "vitest";
import type { Capability } from "../src/codec/types.ts";
import type { SpeakerOptions } from "../src/config.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { MemoryNetwork } from "../src/transport/memory.ts";
import type { BgpTransport } from "../src/transport/types.ts";
import { RawPeer } from "./support/raw-peer.ts";
import { settle, TestClock } from "./support/virtual-clock.ts";

interface Rig {
  net: MemoryNetwork;
  clock: TestClock;
  s: BgpSpeaker;
  raw: RawPeer;
  dials: number[];
}

/** A speaker at 10.0.0.1 (AS 64512) with one peer 10.0.0.9, plus a raw peer at 10.0.0.9. */
async function rig(options: { peerAs?: number; rawAs?: number; rawId?: string; rawHold?: number; passive?: boolean; extra?: Partial<SpeakerOptions>; caps?: Capability[] } = {}): Promise<Rig> {
  const net = new MemoryNetwork();
  const clock = new TestClock();
  const dials: number[] = [];
  const inner = net.transport("10.0.0.1");
  const transport: BgpTransport = {
    listen: (fn) => inner.listen(fn),
    connect: (t) => {
      dials.push(clock.now());
      return inner.connect(t);
    },
  };
  const s = new BgpSpeaker({
    asn: 64512,
    routerId: "10.0.0.1",
    transport,
    clock,
    jitter: false,
    peers: [{ address: "10.0.0.9", asn: options.peerAs ?? 64512, passive: options.passive ?? true }],
    ...options.extra,
  });
  const rawAs = options.rawAs ?? 64512;
  const raw = new RawPeer({
    network: net,
    address: "10.0.0.9",
    asn: rawAs,
    routerId: options.rawId ?? "10.0.0.9",
    holdTime: options.rawHold ?? 90,
    capabilities: options.caps ?? RawPeer.defaultCapabilities(rawAs),
  });
  return { net, clock, s, raw, dials };
}

describe("OPEN handling and negotiation (RFC 4271 §4.2, §6.2)", () => {
  it("uses the smaller hold time and sends KEEPALIVE every hold/3", async () => {
    const { s, raw, clock } = await rig({ rawHold: 9 });
    await s.start();
    await raw.dial("10.0.0.1");
    await raw.establish();
    expect(s.peerState("10.0.0.9")).toBe("Established");
    expect(s.peerStatus()[0]!.negotiated).toMatchObject({ holdTime: 9, keepaliveTime: 3 });
    const before = raw.of("keepalive").length;
    for (let t = 0; t < 30; t++) {
      raw.sendMessage({ type: "keepalive" });
      await clock.advance(1000);
    }
    expect(raw.of("keepalive").length - before).toBe(10);
    expect(s.peerState("10.0.0.9")).toBe("Established");
  });

  it("hold time 0 means no keepalives and no hold timer", async () => {
    const { s, raw, clock } = await rig({ rawHold: 0 });
    await s.start();
    await raw.dial("10.0.0.1");
    await raw.establish();
    const before = raw.of("keepalive").length;
    await clock.advance(3_600_000);
    expect(raw.of("keepalive").length).toBe(before);
    expect(s.peerState("10.0.0.9")).toBe("Established");
  });

  it("the hold timer expires when the peer goes silent: NOTIFICATION 4/0, routes withdrawn", async () => {
    const { s, raw, clock } = await rig({ rawHold: 9, extra: { gracefulRestart: false } });
    await s.start();
    await raw.dial("10.0.0.1");
    await raw.establish();
    raw.sendMessage({
      type: "update",
      withdrawn: [],
      attributes: [
        { type: "origin", flags: 0x40, value: 0 },
        { type: "as-path", flags: 0x40, segments: [] },
        { type: "next-hop", flags: 0x40, value: "10.0.0.9" },
        { type: "local-pref", flags: 0x40, value: 100 },
      ],
      nlri: [{ prefix: "10.9.0.0/16" }],
    });
    await settle();
    expect(s.routeCount).toBe(1);
    await clock.advance(8_900);
    expect(s.peerState("10.0.0.9")).toBe("Established");
    await clock.advance(200);
    expect(raw.lastNotification()).toMatchObject({ code: 4, subcode: 0 });
    expect(s.routeCount).toBe(0);
    expect(s.peerStatus()[0]!.lastError).toMatch(/hold timer expired/);
  });

  it("in OpenSent the hold timer is the large startup value (240 s)", async () => {
    const { s, raw, clock } = await rig();
    await s.start();
    await raw.dial("10.0.0.1");
    await clock.advance(239_000);
    expect(s.peerState("10.0.0.9")).toBe("OpenSent");
    await clock.advance(2_000);
    expect(raw.lastNotification()).toMatchObject({ code: 4, subcode: 0 });
  });

  it.each([
    { name: "hold time 1", opts: { rawHold: 1 }, code: 2, subcode: 6 },
    { name: "hold time 2", opts: { rawHold: 2 }, code: 2, subcode: 6 },
    { name: "wrong peer AS", opts: { rawAs: 65000 }, code: 2, subcode: 2 },
    { name: "BGP Identifier 0.0.0.0", opts: { rawId: "0.0.0.0" }, code: 2, subcode: 3 },
    { name: "iBGP peer with our BGP Identifier", opts: { rawId: "10.0.0.1" }, code: 2, subcode: 3 },
    { name: "missing required capability", opts: { caps: [{ kind: "multiprotocol", afi: 1, safi: 1 }] as Capability[], extra: {} }, code: 2, subcode: 7, required: true },
  ])("refuses an OPEN with $name: NOTIFICATION $code/$subcode", async ({ opts, code, subcode, required }) => {
    const r = await rig(opts);
    if (required) {
      r.s.removePeer("10.0.0.9");
      r.s.addPeer({ address: "10.0.0.9", asn: 64512, passive: true, requiredCapabilities: [65] });
    }
    await r.s.start();
    await r.raw.dial("10.0.0.1");
    await r.raw.establish();
    expect(r.raw.lastNotification()).toMatchObject({ code, subcode });
    expect(r.raw.closed).toBeDefined();
    expect(r.s.peerState("10.0.0.9")).not.toBe("Established");
  });

  it("version 3 is refused with 2/1 and the version we support as data", async () => {
    const { s, raw } = await rig();
    await s.start();
    await raw.dial("10.0.0.1");
    raw.send(new Uint8Array([...new Array<number>(16).fill(255), 0, 29, 1, 3, 0xfc, 0, 0, 90, 10, 0, 0, 9, 0]));
    await settle();
    expect(raw.lastNotification()).toEqual({ type: "notification", code: 2, subcode: 1, data: new Uint8Array([0, 4]) });
  });

  it("accepts a 4-octet AS peer that puts AS_TRANS in My AS", async () => {
    const { s, raw } = await rig({ peerAs: 4200000001, rawAs: 4200000001 });
    await s.start();
    await raw.dial("10.0.0.1");
    await raw.establish();
    expect(s.peerState("10.0.0.9")).toBe("Established");
  });
});

describe("unexpected messages (RFC 6608 FSM error subcodes)", () => {
  it("UPDATE in OpenSent is 5/1", async () => {
    const { s, raw } = await rig();
    await s.start();
    await raw.dial("10.0.0.1");
    raw.sendMessage({ type: "update", withdrawn: [], attributes: [], nlri: [] });
    await settle();
    expect(raw.lastNotification()).toMatchObject({ code: 5, subcode: 1 });
  });

  it("UPDATE in OpenConfirm is 5/2", async () => {
    const { s, raw } = await rig();
    await s.start();
    await raw.dial("10.0.0.1");
    raw.sendMessage({ type: "open", version: 4, myAs: 64512, holdTime: 90, bgpId: "10.0.0.9", capabilities: RawPeer.defaultCapabilities(64512) });
    raw.sendMessage({ type: "update", withdrawn: [], attributes: [], nlri: [] });
    await settle();
    expect(raw.lastNotification()).toMatchObject({ code: 5, subcode: 2 });
  });

  it("OPEN in Established is 5/3", async () => {
    const { s, raw } = await rig();
    await s.start();
    await raw.dial("10.0.0.1");
    await raw.establish();
    raw.sendMessage({ type: "open", version: 4, myAs: 64512, holdTime: 90, bgpId: "10.0.0.9", capabilities: [] });
    await settle();
    expect(raw.lastNotification()).toMatchObject({ code: 5, subcode: 3 });
  });
});

describe("connecting: active, passive, ConnectRetry, connect delay", () => {
  it("an active peer dials at once (no connect delay by default), then every ConnectRetry while refused", async () => {
    const { s, dials, clock } = await rig({ passive: false });
    await s.start();
    await clock.advance(16_000);
    expect(dials).toEqual([0, 5000, 10000, 15000]);
    expect(s.peerState("10.0.0.9")).toBe("Active");
  });

  it("a dial that never completes (silent peer) is dropped at ConnectRetry and a new one establishes (§8.2.2 event 9)", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const dials: number[] = [];
    const inner = net.transport("10.0.0.1");
    const s = new BgpSpeaker({
      asn: 64512,
      routerId: "10.0.0.1",
      // The first connect hangs forever (no SYN-ACK, no RST); later ones go through.
      transport: { listen: (fn) => inner.listen(fn), connect: (t) => (dials.push(clock.now()), dials.length === 1 ? new Promise(() => undefined) : inner.connect(t)) },
      clock,
      jitter: false,
      peers: [{ address: "10.0.0.9", asn: 64512 }],
    });
    const raw = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9" });
    await raw.listen();
    await s.start();
    await clock.advance(4_000);
    expect(s.peerState("10.0.0.9")).not.toBe("Established");
    await clock.advance(2_000);
    await settle();
    expect(dials).toEqual([0, 5000]);
    expect(raw.stream).toBeDefined();
  });

  it("the connect delay knob postpones the first dial", async () => {
    const { s, dials, clock } = await rig({ passive: false, extra: { connectDelayTime: 2 } });
    await s.start();
    await clock.advance(2_500);
    expect(dials).toEqual([2000]);
  });

  it("a passive peer never dials, and takes the peer's connection", async () => {
    const { s, raw, dials, clock } = await rig({ passive: true });
    await s.start();
    await clock.advance(60_000);
    expect(dials).toEqual([]);
    expect(s.peerState("10.0.0.9")).toBe("Active");
    await raw.dial("10.0.0.1");
    await raw.establish();
    expect(s.peerState("10.0.0.9")).toBe("Established");
  });

  it("connects to a listening raw peer and walks Idle → Connect → OpenSent → OpenConfirm → Established", async () => {
    const { s, raw } = await rig({ passive: false });
    const states: string[] = [];
    s.onSessionState((e) => states.push(e.state));
    await raw.listen();
    await s.start();
    await settle();
    expect(raw.of("open")).toHaveLength(1);
    await raw.establish();
    expect(states).toEqual(["Connect", "OpenSent", "OpenConfirm", "Established"]);
  });

  it("connection collision (§6.8): both sides dial, one connection survives, the other gets Cease/7", async () => {
    for (const [idA, idB] of [
      ["10.0.0.1", "10.0.0.2"],
      ["10.0.0.2", "10.0.0.1"],
    ]) {
      const net = new MemoryNetwork();
      const clock = new TestClock();
      const mk = (addr: string, id: string, peer: string): BgpSpeaker =>
        new BgpSpeaker({ asn: 64512, routerId: id, localAddress: addr, transport: net.transport(addr), clock, jitter: false, peers: [{ address: peer, asn: 64512 }] });
      const a = mk("10.0.0.1", idA!, "10.0.0.2");
      const b = mk("10.0.0.2", idB!, "10.0.0.1");
      await a.listen();
      await b.listen();
      await Promise.all([a.start(), b.start()]);
      await clock.advance(100);
      expect(a.peerState("10.0.0.2")).toBe("Established");
      expect(b.peerState("10.0.0.1")).toBe("Established");
      expect(net.openStreams).toBe(2);
      const reasons = [a.peerStatus()[0]!.lastError, b.peerStatus()[0]!.lastError].join(" / ");
      for (const r of reasons.split(" / ")) expect(r).toMatch(/collision resolution|NOTIFICATION 6\/7/);
      const stats = a.peerStatus()[0]!;
      expect(stats.stats!.messagesIn).toBeGreaterThan(0);
      a.announce("10.1.0.0/16");
      await clock.advance(10);
      expect(b.route("10.1.0.0/16")).toBeDefined();
    }
  });

  it("after a NOTIFICATION the peer goes Idle and tries again after the idle hold time, backing off", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const dials: number[] = [];
    const inner = net.transport("10.0.0.1");
    const s = new BgpSpeaker({
      asn: 64512,
      routerId: "10.0.0.1",
      transport: { listen: (fn) => inner.listen(fn), connect: (t) => (dials.push(clock.now()), inner.connect(t)) },
      clock,
      jitter: false,
      peers: [{ address: "10.0.0.9", asn: 65009 }],
    });
    const raw = new RawPeer({ network: net, address: "10.0.0.9", asn: 65000, routerId: "10.0.0.9" });
    await net.transport("10.0.0.9").listen((stream) => {
      // Answer every connection with a wrong-AS OPEN.
      raw.stream = stream;
      raw.sendMessage({ type: "open", version: 4, myAs: 65000, holdTime: 90, bgpId: "10.0.0.9", capabilities: [] });
    });
    await s.start();
    await clock.advance(10_000);
    expect(dials).toEqual([0, 1000, 3000, 7000]);
    expect(s.peerStatus()[0]!.lastError).toMatch(/peer AS 65000, expected 65009/);
  });
});
