/**
 * Path attributes (RFC 4271 §4.3, §5; RFC 1997; RFC 4456 §8; RFC 4760 §3-4; RFC 6793 §3; RFC 8092)
 * with the revised error handling of RFC 7606: most malformed attributes make the UPDATE
 * "treat-as-withdraw", a few are discarded, and only errors that stop us from finding the NLRI
 * (unparsable MP_REACH/MP_UNREACH, repeated MP attributes, unrecognized well-known attributes)
 * reset the session by throwing BgpNotificationError.
 */
import { BgpConfigError, BgpNotificationError } from "../errors.ts";
import { formatIpv4Bytes, formatIpv6Bytes, parseAddressBytes, parseIpv4 } from "./address.ts";
import { ByteWriter, u16, u32 } from "./bytes.ts";
import { Afi, AttrFlag, AttrType, ErrorCode, Safi, UpdateErrorSubcode } from "./constants.ts";
import { decodeNlri, writeNlri } from "./nlri.ts";
import type { AsPathSegment, CodecOptions, PathAttribute, UpdateErrorNote } from "./types.ts";
import { familyKey } from "./types.ts";

const WELL_KNOWN = AttrFlag.TRANSITIVE;
const OPT_TRANS = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE;
const OPT_NON_TRANS = AttrFlag.OPTIONAL;

/** The Optional/Transitive bits each known attribute must carry (RFC 4271 §5 and the attribute RFCs). */
export const EXPECTED_FLAGS: Readonly<Record<number, number>> = {
  [AttrType.ORIGIN]: WELL_KNOWN,
  [AttrType.AS_PATH]: WELL_KNOWN,
  [AttrType.NEXT_HOP]: WELL_KNOWN,
  [AttrType.MULTI_EXIT_DISC]: OPT_NON_TRANS,
  [AttrType.LOCAL_PREF]: WELL_KNOWN,
  [AttrType.ATOMIC_AGGREGATE]: WELL_KNOWN,
  [AttrType.AGGREGATOR]: OPT_TRANS,
  [AttrType.COMMUNITIES]: OPT_TRANS,
  [AttrType.ORIGINATOR_ID]: OPT_NON_TRANS,
  [AttrType.CLUSTER_LIST]: OPT_NON_TRANS,
  [AttrType.MP_REACH_NLRI]: OPT_NON_TRANS,
  [AttrType.MP_UNREACH_NLRI]: OPT_NON_TRANS,
  [AttrType.AS4_PATH]: OPT_TRANS,
  [AttrType.AS4_AGGREGATOR]: OPT_TRANS,
  [AttrType.LARGE_COMMUNITY]: OPT_TRANS,
};

/** Type code of each decoded attribute kind. */
export const ATTRIBUTE_CODE: Readonly<Record<Exclude<PathAttribute["type"], "unknown">, number>> = {
  origin: AttrType.ORIGIN,
  "as-path": AttrType.AS_PATH,
  "next-hop": AttrType.NEXT_HOP,
  med: AttrType.MULTI_EXIT_DISC,
  "local-pref": AttrType.LOCAL_PREF,
  "atomic-aggregate": AttrType.ATOMIC_AGGREGATE,
  aggregator: AttrType.AGGREGATOR,
  communities: AttrType.COMMUNITIES,
  "originator-id": AttrType.ORIGINATOR_ID,
  "cluster-list": AttrType.CLUSTER_LIST,
  "mp-reach": AttrType.MP_REACH_NLRI,
  "mp-unreach": AttrType.MP_UNREACH_NLRI,
  "as4-path": AttrType.AS4_PATH,
  "as4-aggregator": AttrType.AS4_AGGREGATOR,
  "large-communities": AttrType.LARGE_COMMUNITY,
};

/** The type code of an attribute. */
export function attributeCode(a: PathAttribute): number {
  return a.type === "unknown" ? a.code : ATTRIBUTE_CODE[a.type];
}

/** Attribute flags as a sender sets them for a known attribute (extended length added as needed). */
export function defaultFlags(code: number): number {
  const f = EXPECTED_FLAGS[code];
  if (f === undefined) throw new BgpConfigError("attribute.code", "has no default flags (unknown attribute)", code);
  return f;
}

/** Families whose MP_REACH/MP_UNREACH this codec parses; others stay raw (`unknown`). */
export function isSupportedFamily(afi: number, safi: number): boolean {
  return safi === Safi.UNICAST && (afi === Afi.IPV4 || afi === Afi.IPV6);
}

/** Result of decoding an attribute block. */
export interface DecodedAttributes {
  attributes: PathAttribute[];
  errors: UpdateErrorNote[];
}

/**
 * Decodes the path attributes in `bytes[start, end)`. Never throws for errors RFC 7606 handles by
 * treat-as-withdraw or attribute discard (they are returned in `errors`); throws
 * BgpNotificationError for the session-reset cases: a repeated or unparsable MP_REACH_NLRI /
 * MP_UNREACH_NLRI (3/1, 3/9) and an unrecognized well-known attribute (3/2).
 */
export function decodeAttributes(options: { bytes: Uint8Array; start: number; end: number; codec: CodecOptions }): DecodedAttributes {
  const { bytes, end, codec } = options;
  const attributes: PathAttribute[] = [];
  const errors: UpdateErrorNote[] = [];
  const seen = new Set<number>();
  let i = options.start;
  while (i < end) {
    if (i + 2 > end) {
      errors.push(withdrawNote(UpdateErrorSubcode.MALFORMED_ATTRIBUTE_LIST, undefined, "attribute header overruns the attribute list"));
      break;
    }
    const flags = bytes[i]!;
    const code = bytes[i + 1]!;
    const ext = (flags & AttrFlag.EXTENDED_LENGTH) !== 0;
    const hdr = ext ? 4 : 3;
    if (i + hdr > end) {
      errors.push(withdrawNote(UpdateErrorSubcode.MALFORMED_ATTRIBUTE_LIST, code, "attribute length field overruns the attribute list"));
      break;
    }
    const len = ext ? u16(bytes, i + 2) : bytes[i + 2]!;
    const vs = i + hdr;
    const ve = vs + len;
    if (ve > end) {
      if (code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI) {
        throw new BgpNotificationError({
          code: ErrorCode.UPDATE_MESSAGE,
          subcode: UpdateErrorSubcode.OPTIONAL_ATTRIBUTE_ERROR,
          data: bytes.slice(i, end),
          reason: `attribute ${code} overruns the attribute list, so its NLRI cannot be located`,
        });
      }
      errors.push(withdrawNote(UpdateErrorSubcode.MALFORMED_ATTRIBUTE_LIST, code, `attribute ${code} of length ${len} overruns the attribute list`));
      break;
    }
    const at = i;
    i = ve;
    if (seen.has(code)) {
      if (code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI) {
        throw new BgpNotificationError({
          code: ErrorCode.UPDATE_MESSAGE,
          subcode: UpdateErrorSubcode.MALFORMED_ATTRIBUTE_LIST,
          reason: `attribute ${code} appears more than once (RFC 7606 §3(g))`,
        });
      }
      errors.push({ action: "attribute-discard", subcode: UpdateErrorSubcode.MALFORMED_ATTRIBUTE_LIST, attribute: code, reason: `repeated attribute ${code}: later copies discarded` });
      continue;
    }
    seen.add(code);
    const expected = EXPECTED_FLAGS[code];
    if (expected === undefined) {
      if ((flags & AttrFlag.OPTIONAL) === 0) {
        throw new BgpNotificationError({
          code: ErrorCode.UPDATE_MESSAGE,
          subcode: UpdateErrorSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
          data: bytes.slice(at, ve),
          reason: `unrecognized well-known attribute ${code}`,
        });
      }
      attributes.push({ type: "unknown", flags, code, value: bytes.slice(vs, ve) });
      continue;
    }
    const flagsWrong =
      (flags & (AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE)) !== expected ||
      (expected === WELL_KNOWN && (flags & AttrFlag.PARTIAL) !== 0) ||
      (expected === OPT_NON_TRANS && (flags & AttrFlag.PARTIAL) !== 0);
    const result = decodeOne({ bytes, flags, code, vs, ve, codec });
    if (result.kind === "raw-family") {
      attributes.push({ type: "unknown", flags, code, value: bytes.slice(vs, ve) });
      continue;
    }
    if (flagsWrong) {
      if (result.kind === "ok" && (code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI)) {
        // Keep the parsed NLRI so that treat-as-withdraw can withdraw them.
        attributes.push(result.attribute);
      }
      errors.push(flagsNote(code, flags));
      continue;
    }
    if (result.kind === "ok") attributes.push(result.attribute);
    else errors.push(result.note);
  }
  return { attributes, errors };
}

/** RFC 7606: flags that contradict the attribute. Discard for the attributes whose errors are discards. */
function flagsNote(code: number, flags: number): UpdateErrorNote {
  const discard = code === AttrType.ATOMIC_AGGREGATE || code === AttrType.AGGREGATOR || code === AttrType.AS4_PATH || code === AttrType.AS4_AGGREGATOR;
  return {
    action: discard ? "attribute-discard" : "treat-as-withdraw",
    subcode: UpdateErrorSubcode.ATTRIBUTE_FLAGS_ERROR,
    attribute: code,
    reason: `attribute ${code} has flags 0x${flags.toString(16)}, expected optional/transitive bits 0x${EXPECTED_FLAGS[code]!.toString(16)}`,
  };
}

function withdrawNote(subcode: number, attribute: number | undefined, reason: string): UpdateErrorNote {
  return attribute === undefined ? { action: "treat-as-withdraw", subcode, reason } : { action: "treat-as-withdraw", subcode, attribute, reason };
}

type OneResult = { kind: "ok"; attribute: PathAttribute } | { kind: "error"; note: UpdateErrorNote } | { kind: "raw-family" };

function decodeOne(o: { bytes: Uint8Array; flags: number; code: number; vs: number; ve: number; codec: CodecOptions }): OneResult {
  const { bytes: b, flags, code, vs, ve, codec } = o;
  const len = ve - vs;
  switch (code) {
    case AttrType.ORIGIN:
      if (len !== 1) return lengthErr("treat-as-withdraw", code, `ORIGIN: bad length ${len}`);
      if (b[vs]! > 2) {
        return { kind: "error", note: { action: "treat-as-withdraw", subcode: UpdateErrorSubcode.INVALID_ORIGIN_ATTRIBUTE, attribute: code, reason: `ORIGIN value ${b[vs]} is not 0, 1 or 2` } };
      }
      return { kind: "ok", attribute: { type: "origin", flags, value: b[vs]! } };
    case AttrType.AS_PATH: {
      const segments = decodeSegments(b, vs, ve, codec.fourOctetAs ? 4 : 2);
      if (!segments) {
        return { kind: "error", note: { action: "treat-as-withdraw", subcode: UpdateErrorSubcode.MALFORMED_AS_PATH, attribute: code, reason: "malformed AS_PATH" } };
      }
      return { kind: "ok", attribute: { type: "as-path", flags, segments } };
    }
    case AttrType.NEXT_HOP:
      if (len !== 4) return lengthErr("treat-as-withdraw", code, `NEXT_HOP: bad length ${len}`);
      return { kind: "ok", attribute: { type: "next-hop", flags, value: formatIpv4Bytes(b, vs) } };
    case AttrType.MULTI_EXIT_DISC:
      if (len !== 4) return lengthErr("treat-as-withdraw", code, `MULTI_EXIT_DISC: bad length ${len}`);
      return { kind: "ok", attribute: { type: "med", flags, value: u32(b, vs) } };
    case AttrType.LOCAL_PREF:
      if (len !== 4) return lengthErr("treat-as-withdraw", code, `LOCAL_PREF: bad length ${len}`);
      return { kind: "ok", attribute: { type: "local-pref", flags, value: u32(b, vs) } };
    case AttrType.ATOMIC_AGGREGATE:
      if (len !== 0) return lengthErr("attribute-discard", code, `ATOMIC_AGGREGATE: bad length ${len}`);
      return { kind: "ok", attribute: { type: "atomic-aggregate", flags } };
    case AttrType.AGGREGATOR: {
      const w = codec.fourOctetAs ? 4 : 2;
      if (len !== w + 4) return lengthErr("attribute-discard", code, `AGGREGATOR: bad length ${len}`);
      return { kind: "ok", attribute: { type: "aggregator", flags, asn: w === 4 ? u32(b, vs) : u16(b, vs), address: formatIpv4Bytes(b, vs + w) } };
    }
    case AttrType.COMMUNITIES: {
      if (len === 0 || len % 4 !== 0) return lengthErr("treat-as-withdraw", code, `COMMUNITIES: bad length ${len}`);
      const values: number[] = [];
      for (let k = vs; k < ve; k += 4) values.push(u32(b, k));
      return { kind: "ok", attribute: { type: "communities", flags, values } };
    }
    case AttrType.ORIGINATOR_ID:
      if (len !== 4) return lengthErr("treat-as-withdraw", code, `ORIGINATOR_ID: bad length ${len}`);
      return { kind: "ok", attribute: { type: "originator-id", flags, value: formatIpv4Bytes(b, vs) } };
    case AttrType.CLUSTER_LIST: {
      if (len === 0 || len % 4 !== 0) return lengthErr("treat-as-withdraw", code, `CLUSTER_LIST: bad length ${len}`);
      const values: string[] = [];
      for (let k = vs; k < ve; k += 4) values.push(formatIpv4Bytes(b, k));
      return { kind: "ok", attribute: { type: "cluster-list", flags, values } };
    }
    case AttrType.MP_REACH_NLRI:
      return decodeMpReach(b, flags, vs, ve, codec);
    case AttrType.MP_UNREACH_NLRI: {
      if (len < 3) throw mpError(b, vs, ve, "MP_UNREACH_NLRI shorter than 3 octets");
      const afi = u16(b, vs);
      const safi = b[vs + 2]!;
      if (!isSupportedFamily(afi, safi)) return { kind: "raw-family" };
      const withdrawn = decodeNlri({ bytes: b, start: vs + 3, end: ve, afi, addPath: hasAddPath(codec, afi, safi), subcode: UpdateErrorSubcode.OPTIONAL_ATTRIBUTE_ERROR });
      return { kind: "ok", attribute: { type: "mp-unreach", flags, afi, safi, withdrawn } };
    }
    case AttrType.AS4_PATH: {
      const segments = decodeSegments(b, vs, ve, 4);
      if (!segments || segments.some((s) => s.type > 2)) {
        return { kind: "error", note: { action: "attribute-discard", subcode: UpdateErrorSubcode.OPTIONAL_ATTRIBUTE_ERROR, attribute: code, reason: "malformed AS4_PATH (RFC 6793 §6)" } };
      }
      return { kind: "ok", attribute: { type: "as4-path", flags, segments } };
    }
    case AttrType.AS4_AGGREGATOR:
      if (len !== 8) return lengthErr("attribute-discard", code, `AS4_AGGREGATOR: bad length ${len}`);
      return { kind: "ok", attribute: { type: "as4-aggregator", flags, asn: u32(b, vs), address: formatIpv4Bytes(b, vs + 4) } };
    case AttrType.LARGE_COMMUNITY: {
      if (len === 0 || len % 12 !== 0) return lengthErr("treat-as-withdraw", code, `LARGE_COMMUNITY: bad length ${len}`);
      const values: [number, number, number][] = [];
      for (let k = vs; k < ve; k += 12) values.push([u32(b, k), u32(b, k + 4), u32(b, k + 8)]);
      return { kind: "ok", attribute: { type: "large-communities", flags, values } };
    }
    default:
      throw new BgpConfigError("attribute.code", "is not a known attribute", code);
  }
}

function lengthErr(action: UpdateErrorNote["action"], code: number, reason: string): OneResult {
  return { kind: "error", note: { action, subcode: UpdateErrorSubcode.ATTRIBUTE_LENGTH_ERROR, attribute: code, reason } };
}

function hasAddPath(codec: CodecOptions, afi: number, safi: number): boolean {
  return codec.addPath !== undefined && codec.addPath.size > 0 && codec.addPath.has(familyKey(afi, safi));
}

function mpError(b: Uint8Array, vs: number, ve: number, reason: string): BgpNotificationError {
  return new BgpNotificationError({
    code: ErrorCode.UPDATE_MESSAGE,
    subcode: UpdateErrorSubcode.OPTIONAL_ATTRIBUTE_ERROR,
    data: b.slice(vs, ve),
    reason,
  });
}

function decodeMpReach(b: Uint8Array, flags: number, vs: number, ve: number, codec: CodecOptions): OneResult {
  if (ve - vs < 5) throw mpError(b, vs, ve, "MP_REACH_NLRI shorter than 5 octets");
  const afi = u16(b, vs);
  const safi = b[vs + 2]!;
  const nhLen = b[vs + 3]!;
  if (vs + 4 + nhLen + 1 > ve) throw mpError(b, vs, ve, `MP_REACH_NLRI next hop length ${nhLen} overruns the attribute`);
  if (!isSupportedFamily(afi, safi)) return { kind: "raw-family" };
  const nh = vs + 4;
  let nextHop: string[];
  if (afi === Afi.IPV4 && nhLen === 4) nextHop = [formatIpv4Bytes(b, nh)];
  else if (nhLen === 16) nextHop = [formatIpv6Bytes(b, nh)];
  else if (afi === Afi.IPV6 && nhLen === 32) nextHop = [formatIpv6Bytes(b, nh), formatIpv6Bytes(b, nh + 16)];
  else throw mpError(b, vs, ve, `MP_REACH_NLRI next hop length ${nhLen} is invalid for AFI ${afi} (RFC 7606 §7.11)`);
  const nlri = decodeNlri({ bytes: b, start: nh + nhLen + 1, end: ve, afi, addPath: hasAddPath(codec, afi, safi), subcode: UpdateErrorSubcode.OPTIONAL_ATTRIBUTE_ERROR });
  return { kind: "ok", attribute: { type: "mp-reach", flags, afi, safi, nextHop, nlri } };
}

/** Parses AS_PATH segments of `width`-octet ASNs; undefined when malformed (RFC 7606 §7.2). */
function decodeSegments(b: Uint8Array, start: number, end: number, width: number): AsPathSegment[] | undefined {
  const segments: AsPathSegment[] = [];
  let i = start;
  while (i < end) {
    if (i + 2 > end) return undefined;
    const type = b[i]!;
    const count = b[i + 1]!;
    if (type < 1 || type > 4 || count === 0) return undefined;
    if (i + 2 + count * width > end) return undefined;
    const asns: number[] = new Array<number>(count);
    let k = i + 2;
    for (let n = 0; n < count; n++, k += width) asns[n] = width === 4 ? u32(b, k) : u16(b, k);
    segments.push({ type, asns });
    i = k;
  }
  return segments;
}

/**
 * Appends one attribute. The flags are written as given, with the Extended Length bit added when the
 * value is longer than 255 octets. Throws BgpConfigError for values that cannot be encoded (an ASN
 * above 65535 in a 2-octet AS_PATH, a malformed address, a value out of range).
 */
export function writeAttribute(w: ByteWriter, a: PathAttribute, codec: CodecOptions): void {
  const code = attributeCode(a);
  const start = w.pos;
  // Reserve a 2-octet length; compact to 1 octet afterwards when allowed.
  w.u8(a.flags | AttrFlag.EXTENDED_LENGTH);
  w.u8(code);
  w.u16(0);
  const vs = w.pos;
  writeValue(w, a, codec);
  const len = w.pos - vs;
  if (len > 0xffff) throw new BgpConfigError(`attribute ${code}`, "value must be at most 65535 octets", len);
  if ((a.flags & AttrFlag.EXTENDED_LENGTH) !== 0 || len > 255) {
    w.patch16(vs - 2, len);
  } else {
    w.buf[start] = a.flags;
    w.buf[start + 2] = len;
    w.buf.copyWithin(start + 3, vs, w.pos);
    w.pos -= 1;
  }
}

function writeIpv4(w: ByteWriter, text: string, field: string): void {
  const v = parseIpv4(text);
  if (v === undefined) throw new BgpConfigError(field, "must be an IPv4 address", text);
  w.u32(v);
}

function checkU32(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new BgpConfigError(field, "must be an integer in 0..4294967295", v);
  return v;
}

function writeSegments(w: ByteWriter, segments: AsPathSegment[], width: number, field: string): void {
  for (const s of segments) {
    if (s.asns.length < 1 || s.asns.length > 255) throw new BgpConfigError(field, "segments hold 1..255 ASNs", s.asns.length);
    w.u8(s.type);
    w.u8(s.asns.length);
    for (const asn of s.asns) {
      if (width === 2) {
        if (!Number.isInteger(asn) || asn < 0 || asn > 0xffff) throw new BgpConfigError(field, "2-octet AS_PATH holds ASNs 0..65535 (use AS_TRANS and AS4_PATH)", asn);
        w.u16(asn);
      } else {
        w.u32(checkU32(asn, field));
      }
    }
  }
}

function writeValue(w: ByteWriter, a: PathAttribute, codec: CodecOptions): void {
  switch (a.type) {
    case "origin":
      w.u8(a.value);
      return;
    case "as-path":
      writeSegments(w, a.segments, codec.fourOctetAs ? 4 : 2, "AS_PATH");
      return;
    case "as4-path":
      writeSegments(w, a.segments, 4, "AS4_PATH");
      return;
    case "next-hop":
      writeIpv4(w, a.value, "NEXT_HOP");
      return;
    case "med":
      w.u32(checkU32(a.value, "MULTI_EXIT_DISC"));
      return;
    case "local-pref":
      w.u32(checkU32(a.value, "LOCAL_PREF"));
      return;
    case "atomic-aggregate":
      return;
    case "aggregator":
      if (codec.fourOctetAs) w.u32(checkU32(a.asn, "AGGREGATOR.asn"));
      else {
        if (a.asn > 0xffff) throw new BgpConfigError("AGGREGATOR.asn", "2-octet AGGREGATOR holds ASNs 0..65535", a.asn);
        w.u16(a.asn);
      }
      writeIpv4(w, a.address, "AGGREGATOR.address");
      return;
    case "as4-aggregator":
      w.u32(checkU32(a.asn, "AS4_AGGREGATOR.asn"));
      writeIpv4(w, a.address, "AS4_AGGREGATOR.address");
      return;
    case "communities":
      for (const c of a.values) w.u32(checkU32(c, "COMMUNITIES"));
      return;
    case "large-communities":
      for (const [g, l1, l2] of a.values) {
        w.u32(checkU32(g, "LARGE_COMMUNITY"));
        w.u32(checkU32(l1, "LARGE_COMMUNITY"));
        w.u32(checkU32(l2, "LARGE_COMMUNITY"));
      }
      return;
    case "originator-id":
      writeIpv4(w, a.value, "ORIGINATOR_ID");
      return;
    case "cluster-list":
      for (const c of a.values) writeIpv4(w, c, "CLUSTER_LIST");
      return;
    case "mp-reach": {
      w.u16(a.afi);
      w.u8(a.safi);
      const hops = a.nextHop.map((t) => parseAddressBytes(t));
      let total = 0;
      for (const h of hops) {
        if (!h) throw new BgpConfigError("MP_REACH_NLRI.nextHop", "must hold IP addresses", a.nextHop);
        total += h.length;
      }
      w.u8(total);
      for (const h of hops) w.bytes(h!);
      w.u8(0);
      const ap = hasAddPath(codec, a.afi, a.safi);
      for (const n of a.nlri) writeNlri(w, n, a.afi, ap);
      return;
    }
    case "mp-unreach": {
      w.u16(a.afi);
      w.u8(a.safi);
      const ap = hasAddPath(codec, a.afi, a.safi);
      for (const n of a.withdrawn) writeNlri(w, n, a.afi, ap);
      return;
    }
    case "unknown":
      w.bytes(a.value);
      return;
  }
}

/** Encodes a list of attributes into one block (no length prefix). */
export function encodeAttributes(attributes: readonly PathAttribute[], codec: CodecOptions): Uint8Array {
  const w = new ByteWriter(64);
  for (const a of attributes) writeAttribute(w, a, codec);
  return w.result();
}
