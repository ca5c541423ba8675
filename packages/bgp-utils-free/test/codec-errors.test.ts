// Table-driven: each malformed message maps to the RFC 4271 §6 NOTIFICATION (session reset) or to
// the RFC 7606 treat-as-withdraw / attribute-discard handling.
import { describe, expect, it } from "vitest";
import { fromHex, toHex } from "../src/codec/bytes.ts";
import { decodeMessage, isTreatAsWithdraw, MessageReader } from "../src/codec/message.ts";
import type { UpdateMessage } from "../src/codec/types.ts";
import { BgpNotificationError } from "../src/errors.ts";

const MARKER = "ff".repeat(16);

function msg(type: number, bodyHex: string): Uint8Array {
  const body = bodyHex.replace(/\s+/g, "");
  return fromHex(`${MARKER}${(19 + body.length / 2).toString(16).padStart(4, "0")}${type.toString(16).padStart(2, "0")}${body}`);
}

function update(attrsHex: string, nlriHex = "", withdrawnHex = ""): Uint8Array {
  const a = attrsHex.replace(/\s+/g, "");
  const w = withdrawnHex.replace(/\s+/g, "");
  return msg(2, `${(w.length / 2).toString(16).padStart(4, "0")}${w}${(a.length / 2).toString(16).padStart(4, "0")}${a}${nlriHex}`);
}

const ORIGIN = "40010100";
const AS_PATH = "40020602010000fde9"; // AS_SEQUENCE [65001] (4-octet)
const NEXT_HOP = "400304c6336401";
const MANDATORY = ORIGIN + AS_PATH + NEXT_HOP;
const NLRI = "1a0a000000"; // 10.0.0.0/26
const MP_REACH = "800e1c000201 10 20010db8000000000000000000000001 00 30 20010db80001".replace(/ /g, ""); // 2001:db8:1::/48 via 2001:db8::1

function notificationOf(bytes: Uint8Array): { code: number; subcode: number; data: string } {
  try {
    decodeMessage(bytes, { fourOctetAs: true });
  } catch (e) {
    if (e instanceof BgpNotificationError) return { code: e.code, subcode: e.subcode, data: toHex(e.data) };
    throw e;
  }
  throw new Error("decoded without error");
}

describe("session-reset errors (RFC 4271 §6, RFC 7606 §3 and §5)", () => {
  const badMarker = msg(4, "");
  badMarker[3] = 0;
  const cases: [string, Uint8Array, number, number, string][] = [
    ["marker not all ones", badMarker, 1, 1, ""],
    ["length below 19", fromHex(`${MARKER}001204`), 1, 2, "0012"],
    ["length above 4096", fromHex(`${MARKER}138802${"00".repeat(4981)}`), 1, 2, "1388"],
    ["unknown message type", fromHex(`${MARKER}001309`), 1, 3, "09"],
    ["KEEPALIVE with a body", msg(4, "00"), 1, 2, "0014"],
    ["OPEN shorter than 29", msg(1, "04fde900f07f00000100".slice(0, 16)), 1, 2, "001b"],
    ["UPDATE shorter than 23", msg(2, "0000"), 1, 2, "0015"],
    ["NOTIFICATION shorter than 21", msg(3, "06"), 1, 2, "0014"],
    ["OPEN version 3", msg(1, "03fde900f07f00000100"), 2, 1, "0004"],
    ["OPEN with an unknown optional parameter", msg(1, "04fde900f07f00000104 0102 abcd"), 2, 4, ""],
    ["OPEN with Opt Parm Len past the end", msg(1, "04fde900f07f00000105 0202 0200"), 2, 0, ""],
    ["OPEN capability overrunning its parameter", msg(1, "04fde900f07f00000104 0202 0205"), 2, 0, ""],
    ["Withdrawn Routes Length overrun", msg(2, "00100000"), 3, 1, ""],
    ["Total Path Attribute Length overrun", msg(2, "00000040 40010100"), 3, 1, ""],
    ["NLRI prefix length 33", update(MANDATORY, "210a000000ff"), 3, 10, ""],
    ["NLRI overrunning the message", update(MANDATORY, "1a0a00"), 3, 10, ""],
    ["withdrawn prefix length 40", update("", "", "280a00000000"), 3, 10, ""],
    ["MP_REACH_NLRI twice", update(`${ORIGIN}${AS_PATH}${MP_REACH}${MP_REACH}`), 3, 1, ""],
    ["MP_REACH_NLRI with an IPv6 next hop of 5 octets", update(`800e0a0002010520010db80000`), 3, 9, "0002010520010db80000"],
    ["MP_UNREACH_NLRI with a bad prefix", update("800f050002018120"), 3, 9, ""],
    ["unrecognized well-known attribute", update(`${MANDATORY}4063020102`, NLRI), 3, 2, "4063020102"],
  ];
  it.each(cases.map(([name, bytes, code, subcode, data]) => ({ name, bytes, code, subcode, data })))("$name → $code/$subcode", ({ bytes, code, subcode, data }) => {
    const got = notificationOf(bytes);
    expect({ code: got.code, subcode: got.subcode }).toEqual({ code, subcode });
    if (data !== "") expect(got.data).toBe(data);
  });

  it("the ROUTE-REFRESH length error is 7/1 with the whole message as data for BoRR/EoRR (RFC 7313 §5)", () => {
    const bad = msg(5, "0001010100");
    expect(notificationOf(bad)).toEqual({ code: 7, subcode: 1, data: toHex(bad) });
    expect(notificationOf(msg(5, "0001000100"))).toMatchObject({ code: 1, subcode: 2 });
  });

  it("the stream reader reports a bad header before the body arrives", () => {
    const reader = new MessageReader();
    expect(() => reader.push(fromHex(`${MARKER}ffff02`))).toThrow(BgpNotificationError);
  });
});

describe("RFC 7606 treat-as-withdraw and attribute discard", () => {
  type Row = [string, Uint8Array, "treat-as-withdraw" | "attribute-discard", number, number | undefined];
  const rows: Row[] = [
    ["ORIGIN value 3", update(`40010103${AS_PATH}${NEXT_HOP}`, NLRI), "treat-as-withdraw", 6, 1],
    ["ORIGIN of length 2", update(`4001020000${AS_PATH}${NEXT_HOP}`, NLRI), "treat-as-withdraw", 5, 1],
    ["AS_PATH segment overrunning", update(`${ORIGIN}40020602020000fde9${NEXT_HOP}`, NLRI), "treat-as-withdraw", 11, 2],
    ["AS_PATH segment type 7", update(`${ORIGIN}40020607010000fde9${NEXT_HOP}`, NLRI), "treat-as-withdraw", 11, 2],
    ["AS_PATH segment of zero ASNs", update(`${ORIGIN}4002020200${NEXT_HOP}`, NLRI), "treat-as-withdraw", 11, 2],
    ["NEXT_HOP of 5 octets", update(`${ORIGIN}${AS_PATH}400305c633640100`, NLRI), "treat-as-withdraw", 5, 3],
    ["MED of 3 octets", update(`${MANDATORY}800403000001`, NLRI), "treat-as-withdraw", 5, 4],
    ["LOCAL_PREF of 3 octets", update(`${MANDATORY}400503000064`, NLRI), "treat-as-withdraw", 5, 5],
    ["ATOMIC_AGGREGATE of 1 octet", update(`${MANDATORY}40060100`, NLRI), "attribute-discard", 5, 6],
    ["AGGREGATOR of 5 octets", update(`${MANDATORY}c007050000fde9c6`, NLRI), "attribute-discard", 5, 7],
    ["AGGREGATOR marked well-known", update(`${MANDATORY}400708 0000fde9 c6336401`, NLRI), "attribute-discard", 4, 7],
    ["COMMUNITIES of 0 octets", update(`${MANDATORY}c00800`, NLRI), "treat-as-withdraw", 5, 8],
    ["COMMUNITIES of 5 octets", update(`${MANDATORY}c008050000000001`, NLRI), "treat-as-withdraw", 5, 8],
    ["ORIGINATOR_ID of 3 octets", update(`${MANDATORY}800903c63364`, NLRI), "treat-as-withdraw", 5, 9],
    ["CLUSTER_LIST of 6 octets", update(`${MANDATORY}800a06c63364010000`, NLRI), "treat-as-withdraw", 5, 10],
    ["AS4_PATH overrunning", update(`${MANDATORY}c0110602020000fde9`, NLRI), "attribute-discard", 9, 17],
    ["AS4_AGGREGATOR of 6 octets", update(`${MANDATORY}c012060000fde9c633`, NLRI), "attribute-discard", 5, 18],
    ["LARGE_COMMUNITY of 13 octets", update(`${MANDATORY}c0200d${"00".repeat(13)}`, NLRI), "treat-as-withdraw", 5, 32],
    ["ORIGIN marked optional", update(`c0010100${AS_PATH}${NEXT_HOP}`, NLRI), "treat-as-withdraw", 4, 1],
    ["MED marked transitive", update(`${MANDATORY}c00404 00000001`, NLRI), "treat-as-withdraw", 4, 4],
    ["ORIGIN missing", update(`${AS_PATH}${NEXT_HOP}`, NLRI), "treat-as-withdraw", 3, 1],
    ["AS_PATH missing", update(`${ORIGIN}${NEXT_HOP}`, NLRI), "treat-as-withdraw", 3, 2],
    ["NEXT_HOP missing", update(`${ORIGIN}${AS_PATH}`, NLRI), "treat-as-withdraw", 3, 3],
    ["attribute length overrunning the list", update(`${MANDATORY}c00810 00000001`, NLRI), "treat-as-withdraw", 1, 8],
    ["repeated COMMUNITIES", update(`${MANDATORY}c0080400000001c0080400000002`, NLRI), "attribute-discard", 1, 8],
  ];
  it.each(rows.map(([name, bytes, action, subcode, attribute]) => ({ name, bytes, action, subcode, attribute })))("$name → $action (3/$subcode)", ({ bytes, action, subcode, attribute }) => {
    const m = decodeMessage(bytes, { fourOctetAs: true }) as UpdateMessage;
    expect(m.errors).toBeDefined();
    const note = m.errors!.find((e) => e.subcode === subcode && e.attribute === attribute);
    expect(note?.action).toBe(action);
    expect(isTreatAsWithdraw(m)).toBe(action === "treat-as-withdraw");
    // The NLRI are still parsed, so treat-as-withdraw can withdraw them.
    expect(m.nlri).toEqual([{ prefix: "10.0.0.0/26" }]);
  });

  it("a repeated attribute keeps the first copy", () => {
    const m = decodeMessage(update(`${MANDATORY}c0080400000001c0080400000002`, NLRI)) as UpdateMessage;
    expect(m.attributes.find((a) => a.type === "communities")).toMatchObject({ values: [1] });
  });

  it("an UPDATE whose only NLRI is in MP_REACH_NLRI needs no NEXT_HOP", () => {
    const m = decodeMessage(update(`${ORIGIN}${AS_PATH}${MP_REACH}`)) as UpdateMessage;
    expect(m.errors).toBeUndefined();
    expect(m.attributes.find((a) => a.type === "mp-reach")).toMatchObject({ nextHop: ["2001:db8::1"], nlri: [{ prefix: "2001:db8:1::/48" }] });
  });

  it("unknown optional attributes are kept (transitive ones are passed on by the speaker)", () => {
    const m = decodeMessage(update(`${MANDATORY}c0c703010203 80c80100`, NLRI)) as UpdateMessage;
    expect(m.errors).toBeUndefined();
    expect(m.attributes.filter((a) => a.type === "unknown")).toEqual([
      { type: "unknown", flags: 0xc0, code: 0xc7, value: new Uint8Array([1, 2, 3]) },
      { type: "unknown", flags: 0x80, code: 0xc8, value: new Uint8Array([0]) },
    ]);
  });
});
