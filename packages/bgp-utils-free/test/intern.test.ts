import { describe, expect, it } from "vitest";
import { internedBlockCount } from "../src/codec/intern.ts";
import { decodeMessage, encodeMessage } from "../src/codec/message.ts";
import type { PathAttribute, UpdateMessage } from "../src/codec/types.ts";
import { routesFromUpdate } from "../src/codec/update.ts";
import type { PeerConfig } from "../src/config.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { MemoryNetwork } from "../src/transport/memory.ts";
import { TestClock } from "./support/virtual-clock.ts";

const codec = { fourOctetAs: true };

function update(nextHop: string, prefixes: string[], extra: PathAttribute[] = []): Uint8Array {
  const attributes: PathAttribute[] = [
    { type: "origin", flags: 0x40, value: 0 },
    { type: "as-path", flags: 0x40, segments: [{ type: 2, asns: [65001, 65002] }] },
    { type: "next-hop", flags: 0x40, value: nextHop },
    { type: "local-pref", flags: 0x40, value: 100 },
    ...extra,
  ];
  return encodeMessage({ type: "update", withdrawn: [], attributes, nlri: prefixes.map((prefix) => ({ prefix })) }, codec);
}

describe("interned UPDATE decoding", () => {
  it("decodes the same attribute bytes once: one frozen attribute list and one RouteAttributes, whatever the NLRI", () => {
    const a = decodeMessage(update("192.0.2.1", ["10.1.0.0/24"]), codec) as UpdateMessage;
    const b = decodeMessage(update("192.0.2.1", ["10.2.0.0/24", "10.3.0.0/24"]), codec) as UpdateMessage;
    expect(b.attributes).toBe(a.attributes);
    expect(Object.isFrozen(a.attributes) && Object.isFrozen(a.attributes[1])).toBe(true);
    expect(b.nlri).toEqual([{ prefix: "10.2.0.0/24" }, { prefix: "10.3.0.0/24" }]);
    const ra = routesFromUpdate(a, true)[0]!.attributes;
    expect(routesFromUpdate(b, true)[0]!.attributes).toBe(ra);
    expect(ra).toEqual({ origin: 0, asPath: [{ type: 2, asns: [65001, 65002] }], nextHop: "192.0.2.1", localPref: 100 });
    expect(Object.isFrozen(ra) && Object.isFrozen(ra.asPath)).toBe(true);
    // The 2-octet AS reading of the same bytes is another entry, decoded differently.
    const two = decodeMessage(update("192.0.2.1", ["10.1.0.0/24"]), { fourOctetAs: false }) as UpdateMessage;
    expect(two.attributes).not.toBe(a.attributes);
    // Other bytes, other attributes.
    const c = decodeMessage(update("192.0.2.2", ["10.1.0.0/24"]), codec) as UpdateMessage;
    expect(c.attributes).not.toBe(a.attributes);
    expect(routesFromUpdate(c, true)[0]!.attributes.nextHop).toBe("192.0.2.2");
  });

  it("does not intern blocks with errors (each decode reports them) or with MP_REACH_NLRI", () => {
    const before = internedBlockCount();
    // ORIGIN 7 is malformed: treat-as-withdraw, on every decode.
    const bad = update("192.0.2.9", ["10.9.0.0/24"]);
    // Header (19), withdrawn routes length (2), path attribute length (2), then ORIGIN: flags, type 1, length 1, value.
    expect([bad[24], bad[25]]).toEqual([1, 1]);
    bad[26] = 7;
    for (let i = 0; i < 2; i++) {
      const m = decodeMessage(bad, codec) as UpdateMessage;
      expect(m.errors?.map((e) => e.action)).toEqual(["treat-as-withdraw"]);
      expect(Object.isFrozen(m.attributes)).toBe(false);
    }
    const mp = encodeMessage(
      {
        type: "update",
        withdrawn: [],
        attributes: [
          { type: "origin", flags: 0x40, value: 0 },
          { type: "as-path", flags: 0x40, segments: [] },
          { type: "mp-reach", flags: 0x80, afi: 2, safi: 1, nextHop: ["2001:db8::1"], nlri: [{ prefix: "2001:db8:1::/64" }] },
        ],
        nlri: [],
      },
      codec,
    );
    const m1 = decodeMessage(mp, codec) as UpdateMessage;
    const m2 = decodeMessage(mp, codec) as UpdateMessage;
    expect(m2.attributes).not.toBe(m1.attributes);
    expect(m2).toEqual(m1);
    expect(internedBlockCount()).toBe(before);
  });

  it("gives prefixes one text form however the bits past the length are set", () => {
    const bytes = update("192.0.2.3", ["10.4.0.0/23"]);
    bytes[bytes.length - 1] = 0x01; // 10.4.1.0: the bit past /23 set on the wire
    const m = decodeMessage(bytes, codec) as UpdateMessage;
    expect(m.nlri).toEqual([{ prefix: "10.4.0.0/23" }]);
  });
});

describe("interned attributes in the RIBs", () => {
  it("route-reflector clients in one process hold the reflected route's attributes once, frozen, and keep their own view of loops", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const mk = (address: string, peers: PeerConfig[], clusterId?: string): BgpSpeaker =>
      new BgpSpeaker({ asn: 64512, routerId: address, localAddress: address, transport: net.transport(address), clock, jitter: false, peers, ...(clusterId ? { clusterId } : {}) });
    const clients = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    const rr = mk(
      "10.0.0.100",
      clients.map((address) => ({ address, asn: 64512, passive: true, routeReflectorClient: true })),
      "244.0.0.1",
    );
    const cs = clients.map((a) => mk(a, [{ address: "10.0.0.100", asn: 64512 }]));
    for (const s of [rr, ...cs]) await s.start();
    cs[0]!.announce("10.244.1.0/26");
    await clock.advance(10);
    const at2 = cs[1]!.route("10.244.1.0/26")!;
    const at3 = cs[2]!.route("10.244.1.0/26")!;
    expect(at2.attributes).toBe(at3.attributes);
    expect(Object.isFrozen(at2.attributes)).toBe(true);
    expect(at2.attributes).toMatchObject({ nextHop: "10.0.0.1", originatorId: "10.0.0.1", clusterList: ["244.0.0.1"], localPref: 100 });
    expect(at2.source.address).toBe("10.0.0.100");
    // The originator's own route does not come back (ORIGINATOR_ID loop check per speaker, not per shared entry).
    expect(cs[0]!.candidates("10.244.1.0/26")).toHaveLength(1);
    await Promise.all([rr, ...cs].map((s) => s.stop()));
  });
});
