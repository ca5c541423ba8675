import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIpv6Bytes, parseIpv6, parsePrefix } from "../src/codec/address.ts";
import { fromHex, toHex } from "../src/codec/bytes.ts";
import { decodeMessage, encodeMessage, KEEPALIVE_BYTES, MessageReader } from "../src/codec/message.ts";
import type { BgpMessage, CodecOptions, OpenMessage, UpdateMessage } from "../src/codec/types.ts";
import { encodeEndOfRib, encodeRouteAttributes, endOfRibFamily, packUpdates, routesFromUpdate, toPathAttributes } from "../src/codec/update.ts";
import { BgpNotificationError } from "../src/errors.ts";
import { codecArb, openArb, rawOpenArb, rawUpdateArb, updateArb } from "./support/arbitraries.ts";

const MARKER = "ff".repeat(16);
const v4codec: CodecOptions = { fourOctetAs: true };

describe("wire vectors", () => {
  it("KEEPALIVE is the bare 19-octet header", () => {
    expect(toHex(KEEPALIVE_BYTES)).toBe(`${MARKER}001304`);
    expect(decodeMessage(KEEPALIVE_BYTES)).toEqual({ type: "keepalive" });
  });

  it("decodes BIRD 2.0.12's eBGP OPEN (all capabilities in one parameter) and re-encodes it", () => {
    // MP 1/1, Route Refresh, GR (aware, 120 s), 4-octet AS 65001, Enhanced RR, LLGR (empty).
    const caps = "010400010001" + "0200" + "40020078" + "410400 00fde9".replace(" ", "") + "4600" + "4700";
    const params = `02${(caps.length / 2).toString(16).padStart(2, "0")}${caps}`;
    const body = `04fde900f07f000001${(params.length / 2).toString(16).padStart(2, "0")}${params}`;
    const bytes = fromHex(`${MARKER}${(19 + body.length / 2).toString(16).padStart(4, "0")}01${body}`);
    const m = decodeMessage(bytes) as OpenMessage;
    expect(m).toMatchObject({ type: "open", version: 4, myAs: 65001, holdTime: 240, bgpId: "127.0.0.1" });
    expect(m.parameterGroups).toBeUndefined();
    expect(m.capabilities).toEqual([
      { kind: "multiprotocol", afi: 1, safi: 1 },
      { kind: "route-refresh" },
      { kind: "graceful-restart", flags: 0, restartTime: 120, families: [] },
      { kind: "four-octet-as", asn: 65001 },
      { kind: "enhanced-route-refresh" },
      { kind: "unknown", code: 71, value: new Uint8Array(0) },
    ]);
    expect(toHex(encodeMessage(m))).toBe(toHex(bytes));
  });

  it("decodes Calico's GR value with an IPv4 tuple and ADD-PATH send+receive", () => {
    const caps = "4006007800010100" + "450400010103";
    const body = `04fc00005a0a000001${((caps.length / 2 + 2) as number).toString(16).padStart(2, "0")}02${(caps.length / 2).toString(16).padStart(2, "0")}${caps}`;
    const bytes = fromHex(`${MARKER}${(19 + body.length / 2).toString(16).padStart(4, "0")}01${body}`);
    const m = decodeMessage(bytes) as OpenMessage;
    expect(m.capabilities).toEqual([
      { kind: "graceful-restart", flags: 0, restartTime: 120, families: [{ afi: 1, safi: 1, flags: 0 }] },
      { kind: "add-path", families: [{ afi: 1, safi: 1, mode: 3 }] },
    ]);
    expect(toHex(encodeMessage(m))).toBe(toHex(bytes));
  });

  it("decodes GoBGP-style OPENs (one parameter per capability) and tolerates codes 5, 6, 9, 71, 73, 128", () => {
    const caps = ["010400010001", "0200", "0506000100010002", "0600", "0900", "4700", "49050361626300", "8000", "410400000064"];
    const params = caps.map((c) => `02${(c.length / 2).toString(16).padStart(2, "0")}${c}`).join("");
    const body = `040064005a0a000002${(params.length / 2).toString(16).padStart(2, "0")}${params}`;
    const bytes = fromHex(`${MARKER}${(19 + body.length / 2).toString(16).padStart(4, "0")}01${body}`);
    const m = decodeMessage(bytes) as OpenMessage;
    expect(m.parameterGroups).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(m.capabilities.map((c) => c.kind)).toEqual(["multiprotocol", "route-refresh", "extended-next-hop", "extended-message", "unknown", "unknown", "unknown", "unknown", "four-octet-as"]);
    expect(toHex(encodeMessage(m))).toBe(toHex(bytes));
  });

  it("decodes an UPDATE with AS4_PATH from a 2-octet peer and merges the paths (RFC 6793 §4.2.3)", () => {
    // AS_PATH [65001 23456 23456], AS4_PATH [4200000001 4200000002]
    const asPath = "40020802 03 fde9 5ba0 5ba0".replace(/ /g, "");
    const as4 = "c0110a02 02 fa56ea01 fa56ea02".replace(/ /g, "");
    const attrs = `40010100${asPath}400304c6336401${as4}`;
    const body = `0000${(attrs.length / 2).toString(16).padStart(4, "0")}${attrs}1a0a000000`;
    const bytes = fromHex(`${MARKER}${(19 + body.length / 2).toString(16).padStart(4, "0")}02${body}`);
    const m = decodeMessage(bytes, { fourOctetAs: false }) as UpdateMessage;
    expect(m.errors).toBeUndefined();
    expect(m.nlri).toEqual([{ prefix: "10.0.0.0/26" }]);
    const [routes] = routesFromUpdate(m, false);
    expect(routes!.attributes.asPath).toEqual([
      { type: 2, asns: [65001] },
      { type: 2, asns: [4200000001, 4200000002] },
    ]);
    expect(routes!.attributes.nextHop).toBe("198.51.100.1");
    expect(toHex(encodeMessage(m, { fourOctetAs: false }))).toBe(toHex(bytes));
  });

  it("splits 4-octet ASNs into AS_TRANS + AS4_PATH towards a 2-octet peer and back", () => {
    const attrs = { origin: 0, asPath: [{ type: 2, asns: [64512, 4200000001] }], nextHop: "192.0.2.1", aggregator: { asn: 4200000009, address: "192.0.2.9" } };
    const pa = toPathAttributes(attrs, { fourOctetAs: false, afi: 1 });
    expect(pa.find((a) => a.type === "as-path")).toMatchObject({ segments: [{ type: 2, asns: [64512, 23456] }] });
    expect(pa.find((a) => a.type === "as4-path")).toMatchObject({ segments: [{ type: 2, asns: [64512, 4200000001] }] });
    const msg: UpdateMessage = { type: "update", withdrawn: [], attributes: pa, nlri: [{ prefix: "10.1.0.0/16" }] };
    const back = decodeMessage(encodeMessage(msg, { fourOctetAs: false }), { fourOctetAs: false }) as UpdateMessage;
    const [r] = routesFromUpdate(back, false);
    expect(r!.attributes.asPath).toEqual(attrs.asPath);
    expect(r!.attributes.aggregator).toEqual(attrs.aggregator);
  });

  it.each([
    ["IPv4", 1, `${MARKER}001702` + "00000000"],
    ["IPv6", 2, `${MARKER}001d02` + "0000000680" + "0f03000201"],
  ])("End-of-RIB for %s is recognised", (_name, afi, hex) => {
    const bytes = encodeEndOfRib(afi, 1);
    expect(toHex(bytes)).toBe(hex);
    expect(endOfRibFamily(decodeMessage(bytes) as UpdateMessage)).toEqual({ afi, safi: 1 });
  });

  it("ROUTE-REFRESH carries AFI, subtype and SAFI in 23 octets", () => {
    const bytes = encodeMessage({ type: "route-refresh", afi: 2, safi: 1, subtype: 1 });
    expect(toHex(bytes)).toBe(`${MARKER}00170500020101`);
    expect(decodeMessage(bytes)).toEqual({ type: "route-refresh", afi: 2, safi: 1, subtype: 1 });
  });
});

describe("addresses", () => {
  it.each([
    ["::", "::"],
    ["2001:db8::1", "2001:db8::1"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["fe80::", "fe80::"],
    ["1::", "1::"],
  ])("IPv6 %s prints as %s (RFC 5952)", (input, want) => {
    expect(formatIpv6Bytes(parseIpv6(input)!)).toBe(want);
  });

  it.each(["10.0.0.1/24", "10.0.0.0/33", "2001:db8::1/64", "10.0.0/24", "010.0.0.0/8", "::/129", "1:2:3:4:5:6:7:8:9/64"])("rejects the prefix %s", (p) => {
    expect(parsePrefix(p)).toBeUndefined();
  });

  it("parses and prints every IPv6 address the same way (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(parseIpv6(formatIpv6Bytes(b))).toEqual(b);
      }),
    );
  });
});

describe("round trips (fast-check)", () => {
  it("decode(encode(update)) = update for any valid UPDATE and codec options", () => {
    fc.assert(
      fc.property(
        codecArb.chain((codec) => updateArb(codec).map((m) => [codec, m] as const)),
        ([codec, m]) => {
          expect(decodeMessage(encodeMessage(m, codec), codec)).toEqual(m);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("decode(encode(open)) = open", () => {
    fc.assert(
      fc.property(openArb, (m) => {
        expect(decodeMessage(encodeMessage(m))).toEqual(m);
      }),
      { numRuns: 400 },
    );
  });

  it("decode(encode(m)) = m for NOTIFICATION, KEEPALIVE and ROUTE-REFRESH", () => {
    const arb: fc.Arbitrary<BgpMessage> = fc.oneof(
      fc.record({ type: fc.constant("notification" as const), code: fc.integer({ min: 0, max: 255 }), subcode: fc.integer({ min: 0, max: 255 }), data: fc.uint8Array({ maxLength: 100 }) }),
      fc.constant({ type: "keepalive" as const }),
      fc.record({ type: fc.constant("route-refresh" as const), afi: fc.integer({ min: 0, max: 0xffff }), safi: fc.integer({ min: 0, max: 255 }), subtype: fc.integer({ min: 0, max: 255 }) }),
    );
    fc.assert(
      fc.property(arb, (m) => {
        expect(decodeMessage(encodeMessage(m))).toEqual(m);
      }),
    );
  });

  it("encode(decode(bytes)) = bytes for valid UPDATE bytes built independently", () => {
    fc.assert(
      fc.property(rawUpdateArb, (bytes) => {
        const m = decodeMessage(bytes, v4codec) as UpdateMessage;
        expect(m.errors).toBeUndefined();
        expect(toHex(encodeMessage(m, v4codec))).toBe(toHex(bytes));
      }),
      { numRuns: 400 },
    );
  });

  it("encode(decode(bytes)) = bytes for valid OPEN bytes in BIRD and GoBGP layouts", () => {
    fc.assert(
      fc.property(rawOpenArb, (bytes) => {
        expect(toHex(encodeMessage(decodeMessage(bytes)))).toBe(toHex(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it("the reader splits and reassembles messages however the stream is cut", () => {
    fc.assert(
      fc.property(fc.array(rawUpdateArb, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 20 }), (msgs, cuts) => {
        const stream = new Uint8Array(msgs.reduce((n, m) => n + m.length, 0));
        let o = 0;
        for (const m of msgs) {
          stream.set(m, o);
          o += m.length;
        }
        const reader = new MessageReader();
        const got: string[] = [];
        let pos = 0;
        let c = 0;
        while (pos < stream.length) {
          const n = cuts[c++ % cuts.length]!;
          for (const m of reader.push(stream.subarray(pos, pos + n))) got.push(toHex(m));
          pos += n;
        }
        expect(got).toEqual(msgs.map(toHex));
        expect(reader.buffered).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it("random octets either decode or raise BgpNotificationError, never anything else", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.uint8Array({ maxLength: 200 }), codecArb, (type, body, codec) => {
        const bytes = new Uint8Array(19 + body.length);
        bytes.fill(0xff, 0, 16);
        bytes[16] = bytes.length >> 8;
        bytes[17] = bytes.length & 255;
        bytes[18] = type;
        bytes.set(body, 19);
        try {
          decodeMessage(bytes, codec);
        } catch (e) {
          expect(e).toBeInstanceOf(BgpNotificationError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("packing UPDATEs", () => {
  const attrs = { origin: 0, asPath: [], nextHop: "198.51.100.1", localPref: 100 };

  it("packs 10,000 IPv4 /26 sharing attributes into the fewest 4096-octet UPDATEs", () => {
    const nlri = Array.from({ length: 10_000 }, (_, i) => ({ prefix: `10.${(i >> 10) & 255}.${(i >> 2) & 255}.${(i & 3) * 64}/26` }));
    const block = encodeRouteAttributes(attrs, { fourOctetAs: true, afi: 1 });
    const msgs = packUpdates({ afi: 1, safi: 1, withdraw: [], announce: [{ attributes: block, nextHop: [attrs.nextHop], nlri }], codec: v4codec });
    const perMessage = Math.floor((4096 - 23 - block.length) / 5);
    expect(msgs.length).toBe(Math.ceil(10_000 / perMessage));
    const back: string[] = [];
    for (const m of msgs) {
      expect(m.length).toBeLessThanOrEqual(4096);
      const u = decodeMessage(m) as UpdateMessage;
      expect(u.errors).toBeUndefined();
      back.push(...u.nlri.map((n) => n.prefix));
    }
    expect(back).toEqual(nlri.map((n) => n.prefix));
  });

  it("withdrawals ride in the first announcement UPDATE when there is room", () => {
    const block = encodeRouteAttributes(attrs, { fourOctetAs: true, afi: 1 });
    const msgs = packUpdates({ afi: 1, safi: 1, withdraw: [{ prefix: "10.9.0.0/24" }], announce: [{ attributes: block, nextHop: [], nlri: [{ prefix: "10.8.0.0/24" }] }], codec: v4codec });
    expect(msgs).toHaveLength(1);
    const u = decodeMessage(msgs[0]!) as UpdateMessage;
    expect(u.withdrawn).toEqual([{ prefix: "10.9.0.0/24" }]);
    expect(u.nlri).toEqual([{ prefix: "10.8.0.0/24" }]);
  });

  it("packs IPv6 prefixes into MP_REACH_NLRI (first attribute) and withdrawals into MP_UNREACH_NLRI, with ADD-PATH ids", () => {
    const codec: CodecOptions = { fourOctetAs: true, addPath: new Set(["2/1"]) };
    const a6 = { ...attrs, nextHop: "2001:db8::1" };
    const block = encodeRouteAttributes(a6, { fourOctetAs: true, afi: 2 });
    const nlri = Array.from({ length: 2000 }, (_, i) => ({ prefix: i === 0 ? "2001:db8::/64" : `2001:db8:${i.toString(16)}::/64`, pathId: i + 1 }));
    const wd = Array.from({ length: 700 }, (_, i) => ({ prefix: i === 0 ? "2001:db9::/48" : `2001:db9:${i.toString(16)}::/48`, pathId: 7 }));
    const msgs = packUpdates({ afi: 2, safi: 1, withdraw: wd, announce: [{ attributes: block, nextHop: [a6.nextHop], nlri }], codec });
    const got: typeof nlri = [];
    const gotWd: typeof wd = [];
    for (const m of msgs) {
      expect(m.length).toBeLessThanOrEqual(4096);
      const u = decodeMessage(m, codec) as UpdateMessage;
      expect(u.errors).toBeUndefined();
      for (const r of routesFromUpdate(u, true)) {
        expect(r.attributes.nextHop).toBe("2001:db8::1");
        got.push(...(r.nlri as typeof nlri));
      }
      const un = u.attributes.find((a) => a.type === "mp-unreach");
      if (un && un.type === "mp-unreach") gotWd.push(...(un.withdrawn as typeof wd));
      const reachIndex = u.attributes.findIndex((a) => a.type === "mp-reach");
      expect(reachIndex === -1 || reachIndex === 0).toBe(true);
    }
    expect(got).toEqual(nlri);
    expect(gotWd).toEqual(wd);
  });
});
