// Error handling through a live session: session resets send the right NOTIFICATION, RFC 7606
// treat-as-withdraw and attribute discard keep the session, and the receive-side rules of the
// speaker (LOCAL_PREF from eBGP, next hop checks, first AS check, unknown attributes) apply.
import { describe, expect, it } from "vitest";
import { fromHex } from "../src/codec/bytes.ts";
import { encodeMessage } from "../src/codec/message.ts";
import type { PathAttribute, UpdateMessage } from "../src/codec/types.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { MemoryNetwork } from "../src/transport/memory.ts";
import { RawPeer } from "./support/raw-peer.ts";
import { settle, TestClock } from "./support/virtual-clock.ts";

const MARKER = "ff".repeat(16);

function attrs(extra: PathAttribute[] = [], options: { asPath?: number[]; nextHop?: string } = {}): PathAttribute[] {
  return [
    { type: "origin", flags: 0x40, value: 0 },
    { type: "as-path", flags: 0x40, segments: options.asPath ? [{ type: 2, asns: options.asPath }] : [] },
    { type: "next-hop", flags: 0x40, value: options.nextHop ?? "10.0.0.9" },
    ...extra,
  ];
}

function update(prefixes: string[], attributes: PathAttribute[]): UpdateMessage {
  return { type: "update", withdrawn: [], attributes, nlri: prefixes.map((prefix) => ({ prefix })) };
}

async function setup(peerAs = 64512): Promise<{ s: BgpSpeaker; raw: RawPeer; net: MemoryNetwork; clock: TestClock }> {
  const net = new MemoryNetwork();
  const clock = new TestClock();
  const s = new BgpSpeaker({
    asn: 64512,
    routerId: "10.0.0.1",
    transport: net.transport("10.0.0.1"),
    clock,
    jitter: false,
    gracefulRestart: false,
    peers: [
      { address: "10.0.0.9", asn: peerAs, passive: true },
      { address: "10.0.0.8", asn: 64512, passive: true },
    ],
  });
  await s.start();
  const raw = new RawPeer({ network: net, address: "10.0.0.9", asn: peerAs, routerId: "10.0.0.9" });
  await raw.dial("10.0.0.1");
  await raw.establish();
  return { s, raw, net, clock };
}

describe("session resets", () => {
  it.each([
    { name: "a bad marker", hex: `${"00".repeat(16)}001304`, code: 1, subcode: 1 },
    { name: "a bad length", hex: `${MARKER}001104`, code: 1, subcode: 2 },
    { name: "an unknown type", hex: `${MARKER}001307`, code: 1, subcode: 3 },
    { name: "a bad NLRI length", hex: `${MARKER}001c0200000000 21 0a000000 00`.replace(/ /g, ""), code: 3, subcode: 10 },
    { name: "an unrecognized well-known attribute", hex: `${MARKER}001e02 0000 0005 40630101ff 0a0a`.replace(/ /g, ""), code: 3, subcode: 2 },
  ])("$name → NOTIFICATION $code/$subcode, the peer's routes are withdrawn", async ({ hex, code, subcode }) => {
    const { s, raw } = await setup();
    raw.sendMessage(update(["10.1.0.0/16"], attrs([{ type: "local-pref", flags: 0x40, value: 100 }])));
    await settle();
    expect(s.routeCount).toBe(1);
    raw.send(fromHex(hex));
    await settle();
    expect(raw.lastNotification()).toMatchObject({ code, subcode });
    expect(raw.closed).toBeDefined();
    expect(s.routeCount).toBe(0);
    expect(s.internalErrors).toEqual([]);
  });

  it("a message split across many writes is reassembled", async () => {
    const { s, raw } = await setup();
    const m = update(["10.1.0.0/16", "10.2.0.0/16"], attrs([{ type: "local-pref", flags: 0x40, value: 100 }]));
    const wire = encodeMessage(m);
    for (let i = 0; i < wire.length; i++) raw.send(wire.subarray(i, i + 1));
    await settle();
    expect(s.routeCount).toBe(2);
  });
});

describe("RFC 7606 through the session", () => {
  it("treat-as-withdraw: a malformed ORIGIN withdraws the UPDATE's prefixes and keeps the session", async () => {
    const { s, raw } = await setup();
    raw.sendMessage(update(["10.1.0.0/16", "10.2.0.0/16"], attrs([{ type: "local-pref", flags: 0x40, value: 100 }])));
    await settle();
    expect(s.routeCount).toBe(2);
    // ORIGIN value 7 for 10.1.0.0/16.
    raw.send(fromHex(`${MARKER}002f02 0000 0015 40010107 400200 4003040a000009 40050400000064 100a01`.replace(/ /g, "")));
    await settle();
    expect(s.routes().map((r) => r.prefix)).toEqual(["10.2.0.0/16"]);
    expect(s.peerState("10.0.0.9")).toBe("Established");
    expect(raw.lastNotification()).toBeUndefined();
  });

  it("attribute discard: a bad AGGREGATOR is dropped, the route stays", async () => {
    const { s, raw } = await setup();
    raw.sendMessage(
      update(
        ["10.1.0.0/16"],
        attrs([
          { type: "local-pref", flags: 0x40, value: 100 },
          { type: "unknown", flags: 0xc0, code: 7, value: new Uint8Array([1, 2, 3]) },
        ]),
      ),
    );
    await settle();
    expect(s.route("10.1.0.0/16")?.attributes.aggregator).toBeUndefined();
    expect(s.peerState("10.0.0.9")).toBe("Established");
  });

  it("LOCAL_PREF from an eBGP peer is ignored; the route gets the default", async () => {
    const { s, raw } = await setup(65009);
    raw.sendMessage(update(["10.1.0.0/16"], attrs([{ type: "local-pref", flags: 0x40, value: 999 }], { asPath: [65009] })));
    await settle();
    expect(s.route("10.1.0.0/16")?.attributes.localPref).toBe(100);
  });

  it("an eBGP AS_PATH that does not start with the peer's AS is treated as withdraw", async () => {
    const { s, raw } = await setup(65009);
    raw.sendMessage(update(["10.1.0.0/16"], attrs([], { asPath: [65010] })));
    await settle();
    expect(s.routeCount).toBe(0);
    expect(s.peerState("10.0.0.9")).toBe("Established");
  });

  it.each(["10.0.0.1", "0.0.0.0", "224.0.0.5"])("a NEXT_HOP of %s is ignored without a reset (RFC 7606 §7.3)", async (nh) => {
    const { s, raw } = await setup();
    raw.sendMessage(update(["10.1.0.0/16"], attrs([], { nextHop: nh })));
    await settle();
    expect(s.routeCount).toBe(0);
    expect(s.peerState("10.0.0.9")).toBe("Established");
  });

  it("a route whose AS_PATH holds our AS is kept but never selected (§9.1.2)", async () => {
    const { s, raw } = await setup(65009);
    raw.sendMessage(update(["10.1.0.0/16"], attrs([], { asPath: [65009, 64512] })));
    await settle();
    expect(s.candidates("10.1.0.0/16")[0]?.ineligible).toBe("AS_PATH contains our AS");
    expect(s.routeCount).toBe(0);
  });

  it("unknown optional transitive attributes are passed on with the Partial bit; non-transitive ones are dropped", async () => {
    const { s, raw, net } = await setup(65009);
    const other = new RawPeer({ network: net, address: "10.0.0.8", asn: 64512, routerId: "10.0.0.8" });
    await other.dial("10.0.0.1");
    await other.establish();
    raw.sendMessage(
      update(
        ["10.1.0.0/16"],
        attrs(
          [
            { type: "unknown", flags: 0xc0, code: 99, value: new Uint8Array([1, 2]) },
            { type: "unknown", flags: 0x80, code: 98, value: new Uint8Array([3]) },
          ],
          { asPath: [65009] },
        ),
      ),
    );
    await settle();
    const got = other.of("update").find((u) => u.nlri.length > 0)!;
    expect(got.attributes.filter((a) => a.type === "unknown")).toEqual([{ type: "unknown", flags: 0xe0, code: 99, value: new Uint8Array([1, 2]) }]);
    expect(s.internalErrors).toEqual([]);
  });

  it("a ROUTE-REFRESH for a family that was not negotiated is ignored", async () => {
    const { raw } = await setup();
    const before = raw.received.length;
    raw.sendMessage({ type: "route-refresh", afi: 25, safi: 70, subtype: 0 });
    await settle();
    expect(raw.received.length).toBe(before);
    expect(raw.closed).toBeUndefined();
  });
});
