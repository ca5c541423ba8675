/**
 * From UPDATE messages to routes and back: the semantic attribute set a route carries
 * (`RouteAttributes`), the RFC 6793 §4.2.3 merge of AS_PATH and AS4_PATH from 2-octet peers, the
 * reverse split when sending to them, and the packing of prefixes that share attributes into as few
 * UPDATEs as fit in the message size (RFC 4271 Appendix F.1; 4096 octets unless RFC 8654 applies).
 */
import { BgpConfigError } from "../errors.ts";
import { parseAddressBytes } from "./address.ts";
import { EXPECTED_FLAGS, encodeAttributes } from "./attributes.ts";
import { ByteWriter } from "./bytes.ts";
import { derived, derivedCache, isInterned } from "./intern.ts";
import { AS_TRANS, Afi, AsPathSegmentType, AttrFlag, AttrType, HEADER_LENGTH, MAX_MESSAGE_LENGTH, MessageType, Safi } from "./constants.ts";
import { nlriSize, writeNlri } from "./nlri.ts";
import type { AsPathSegment, CodecOptions, Family, Nlri, PathAttribute, UpdateMessage } from "./types.ts";
import { familyKey } from "./types.ts";

/** The attributes of one route, as the RIBs and the decision process see them. */
export interface RouteAttributes {
  /** 0 IGP, 1 EGP, 2 INCOMPLETE. */
  origin: number;
  asPath: AsPathSegment[];
  /** IPv4 next hop for IPv4 routes; the global IPv6 address for IPv6 routes. */
  nextHop: string;
  /** Link-local IPv6 next hop, when the sender gave one (RFC 2545 §3). */
  nextHopLinkLocal?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: string };
  /** RFC 1997 communities as 32-bit numbers (`asn << 16 | value`). */
  communities?: number[];
  /** RFC 8092 large communities. */
  largeCommunities?: [number, number, number][];
  originatorId?: string;
  clusterList?: string[];
  /** Unrecognized optional transitive attributes, passed on with the Partial bit (RFC 4271 §5). */
  unknown?: { flags: number; code: number; value: Uint8Array }[];
}

/** Number of ASNs in a path as the decision process counts them (§9.1.2.2 a: an AS_SET counts 1; confederation segments 0). */
export function asPathLength(segments: readonly AsPathSegment[]): number {
  let n = 0;
  for (const s of segments) {
    if (s.type === AsPathSegmentType.AS_SEQUENCE) n += s.asns.length;
    else if (s.type === AsPathSegmentType.AS_SET) n += 1;
  }
  return n;
}

/** True when `asn` appears anywhere in the path (loop detection, §9.1.2). */
export function asPathContains(segments: readonly AsPathSegment[], asn: number): boolean {
  for (const s of segments) for (const a of s.asns) if (a === asn) return true;
  return false;
}

/** The neighbouring AS a route came from: the first ASN of the first AS_SEQUENCE (§9.1.2.2 c), or undefined. */
export function neighborAs(segments: readonly AsPathSegment[]): number | undefined {
  const first = segments[0];
  if (!first || first.type !== AsPathSegmentType.AS_SEQUENCE) return undefined;
  return first.asns[0];
}

/** Prepends `asn` as RFC 4271 §5.1.2 says (a new AS_SEQUENCE when the first segment is a set or full). */
export function prependAs(segments: readonly AsPathSegment[], asn: number): AsPathSegment[] {
  const first = segments[0];
  if (first && first.type === AsPathSegmentType.AS_SEQUENCE && first.asns.length < 255) {
    return [{ type: first.type, asns: [asn, ...first.asns] }, ...segments.slice(1)];
  }
  return [{ type: AsPathSegmentType.AS_SEQUENCE, asns: [asn] }, ...segments];
}

function mergeAs4Path(path: AsPathSegment[], as4: AsPathSegment[]): AsPathSegment[] {
  const n2 = asPathLength(path);
  const n4 = asPathLength(as4);
  if (n2 < n4) return path;
  let need = n2 - n4;
  const out: AsPathSegment[] = [];
  for (const s of path) {
    if (need <= 0) break;
    if (s.type === AsPathSegmentType.AS_SEQUENCE) {
      const take = Math.min(need, s.asns.length);
      out.push({ type: s.type, asns: s.asns.slice(0, take) });
      need -= take;
    } else if (s.type === AsPathSegmentType.AS_SET) {
      out.push(s);
      need -= 1;
    } else {
      out.push(s);
    }
  }
  return [...out, ...as4];
}

/** The routes an UPDATE announces, per family, with their attributes. */
export interface AnnouncedRoutes {
  afi: number;
  safi: number;
  attributes: RouteAttributes;
  nlri: Nlri[];
}

/**
 * Turns a decoded (error-free) UPDATE into per-family route sets. `fourOctetAs` says whether the
 * session negotiated 4-octet ASNs; when it did not, AS4_PATH and AS4_AGGREGATOR are merged in
 * (RFC 6793 §4.2.3), otherwise they are ignored (§4.1). Non-transitive unknown attributes are
 * dropped; transitive ones are kept with the Partial bit set, ready to pass on.
 */
export function routesFromUpdate(update: UpdateMessage, fourOctetAs: boolean): AnnouncedRoutes[] {
  // An interned attribute block (no MP_REACH: IPv4 NLRI only) gives the same frozen attributes every time.
  if (update.nlri.length > 0 && isInterned(update.attributes)) {
    const attributes = derived(fourOctetAs ? ROUTES_4 : ROUTES_2, update.attributes, () => decodeRoutes(update, fourOctetAs)[0]!.attributes);
    return [{ afi: Afi.IPV4, safi: Safi.UNICAST, attributes, nlri: update.nlri }];
  }
  return decodeRoutes(update, fourOctetAs);
}

const ROUTES_2 = derivedCache<RouteAttributes>("routesFromUpdate/2-octet AS");
const ROUTES_4 = derivedCache<RouteAttributes>("routesFromUpdate/4-octet AS");

function decodeRoutes(update: UpdateMessage, fourOctetAs: boolean): AnnouncedRoutes[] {
  const base: RouteAttributes = { origin: 0, asPath: [], nextHop: "" };
  let asPath: AsPathSegment[] = [];
  let as4Path: AsPathSegment[] | undefined;
  let aggregator: { asn: number; address: string } | undefined;
  let as4Aggregator: { asn: number; address: string } | undefined;
  let ipv4NextHop = "";
  const mp: Extract<PathAttribute, { type: "mp-reach" }>[] = [];
  for (const a of update.attributes) {
    switch (a.type) {
      case "origin":
        base.origin = a.value;
        break;
      case "as-path":
        asPath = a.segments;
        break;
      case "next-hop":
        ipv4NextHop = a.value;
        break;
      case "med":
        base.med = a.value;
        break;
      case "local-pref":
        base.localPref = a.value;
        break;
      case "atomic-aggregate":
        base.atomicAggregate = true;
        break;
      case "aggregator":
        aggregator = { asn: a.asn, address: a.address };
        break;
      case "communities":
        base.communities = a.values;
        break;
      case "large-communities":
        base.largeCommunities = a.values;
        break;
      case "originator-id":
        base.originatorId = a.value;
        break;
      case "cluster-list":
        base.clusterList = a.values;
        break;
      case "as4-path":
        as4Path = a.segments;
        break;
      case "as4-aggregator":
        as4Aggregator = { asn: a.asn, address: a.address };
        break;
      case "mp-reach":
        mp.push(a);
        break;
      case "mp-unreach":
        break;
      case "unknown":
        if ((a.flags & AttrFlag.OPTIONAL) !== 0 && (a.flags & AttrFlag.TRANSITIVE) !== 0) {
          (base.unknown ??= []).push({ flags: (a.flags | AttrFlag.PARTIAL) & 0xe0, code: a.code, value: a.value });
        }
        break;
    }
  }
  if (!fourOctetAs) {
    let useAs4 = as4Path !== undefined;
    if (aggregator && aggregator.asn !== AS_TRANS && as4Aggregator) {
      useAs4 = false; // §4.2.3: AS4_AGGREGATOR and AS4_PATH are ignored
      as4Aggregator = undefined;
    }
    if (aggregator && aggregator.asn === AS_TRANS && as4Aggregator) aggregator = as4Aggregator;
    if (useAs4 && as4Path) asPath = mergeAs4Path(asPath, as4Path);
  }
  base.asPath = asPath;
  if (aggregator) base.aggregator = aggregator;
  const out: AnnouncedRoutes[] = [];
  if (update.nlri.length > 0) out.push({ afi: Afi.IPV4, safi: Safi.UNICAST, attributes: { ...base, nextHop: ipv4NextHop }, nlri: update.nlri });
  for (const m of mp) {
    const attrs: RouteAttributes = { ...base, nextHop: m.nextHop[0]! };
    if (m.nextHop[1] !== undefined) attrs.nextHopLinkLocal = m.nextHop[1];
    out.push({ afi: m.afi, safi: m.safi, attributes: attrs, nlri: m.nlri });
  }
  return out;
}

/** The prefixes an UPDATE withdraws, per family (withdrawn routes field and MP_UNREACH_NLRI). */
export function withdrawnFromUpdate(update: UpdateMessage): { afi: number; safi: number; nlri: Nlri[] }[] {
  const out: { afi: number; safi: number; nlri: Nlri[] }[] = [];
  if (update.withdrawn.length > 0) out.push({ afi: Afi.IPV4, safi: Safi.UNICAST, nlri: update.withdrawn });
  for (const a of update.attributes) if (a.type === "mp-unreach" && a.withdrawn.length > 0) out.push({ afi: a.afi, safi: a.safi, nlri: a.withdrawn });
  return out;
}

/** Every prefix an UPDATE announces (NLRI field and MP_REACH_NLRI), for treat-as-withdraw. */
export function announcedNlri(update: UpdateMessage): { afi: number; safi: number; nlri: Nlri[] }[] {
  const out: { afi: number; safi: number; nlri: Nlri[] }[] = [];
  if (update.nlri.length > 0) out.push({ afi: Afi.IPV4, safi: Safi.UNICAST, nlri: update.nlri });
  for (const a of update.attributes) if (a.type === "mp-reach" && a.nlri.length > 0) out.push({ afi: a.afi, safi: a.safi, nlri: a.nlri });
  return out;
}

/** The family of an End-of-RIB marker (RFC 4724 §2), or undefined when `update` is not one. */
export function endOfRibFamily(update: UpdateMessage): Family | undefined {
  if (update.withdrawn.length > 0 || update.nlri.length > 0 || update.errors) return undefined;
  if (update.attributes.length === 0) return { afi: Afi.IPV4, safi: Safi.UNICAST };
  if (update.attributes.length === 1) {
    const a = update.attributes[0]!;
    if (a.type === "mp-unreach" && a.withdrawn.length === 0) return { afi: a.afi, safi: a.safi };
  }
  return undefined;
}

/** The End-of-RIB marker for a family (RFC 4724 §2). */
export function encodeEndOfRib(afi: number, safi: number): Uint8Array {
  const w = new ByteWriter(32);
  writeHeader(w);
  if (afi === Afi.IPV4 && safi === Safi.UNICAST) {
    w.u16(0);
    w.u16(0);
  } else {
    w.u16(0);
    w.u16(6);
    w.u8(AttrFlag.OPTIONAL);
    w.u8(AttrType.MP_UNREACH_NLRI);
    w.u8(3);
    w.u16(afi);
    w.u8(safi);
  }
  w.patch16(16, w.pos);
  return w.result();
}

function writeHeader(w: ByteWriter): void {
  w.ensure(HEADER_LENGTH);
  for (let k = 0; k < 16; k++) w.buf[w.pos++] = 0xff;
  w.u16(0);
  w.u8(MessageType.UPDATE);
}

function attr(code: number): number {
  return EXPECTED_FLAGS[code]!;
}

/**
 * The path attributes (in type-code order, without MP_REACH_NLRI) that carry `attrs` on a session.
 * For IPv4 routes NEXT_HOP is included; for other families the next hop goes into MP_REACH_NLRI.
 * Without 4-octet AS on the session, ASNs above 65535 become AS_TRANS and the real path goes into
 * AS4_PATH / AS4_AGGREGATOR (RFC 6793 §4.2.2).
 */
export function toPathAttributes(attrs: RouteAttributes, options: { fourOctetAs: boolean; afi: number }): PathAttribute[] {
  const out: PathAttribute[] = [];
  out.push({ type: "origin", flags: attr(AttrType.ORIGIN), value: attrs.origin });
  let as4Path: AsPathSegment[] | undefined;
  if (options.fourOctetAs) {
    out.push({ type: "as-path", flags: attr(AttrType.AS_PATH), segments: attrs.asPath });
  } else {
    let big = false;
    const segments = attrs.asPath.map((s) => ({
      type: s.type,
      asns: s.asns.map((a) => {
        if (a > 0xffff) {
          big = true;
          return AS_TRANS;
        }
        return a;
      }),
    }));
    out.push({ type: "as-path", flags: attr(AttrType.AS_PATH), segments });
    if (big) as4Path = attrs.asPath.filter((s) => s.type === AsPathSegmentType.AS_SEQUENCE || s.type === AsPathSegmentType.AS_SET);
  }
  if (options.afi === Afi.IPV4) out.push({ type: "next-hop", flags: attr(AttrType.NEXT_HOP), value: attrs.nextHop });
  if (attrs.med !== undefined) out.push({ type: "med", flags: attr(AttrType.MULTI_EXIT_DISC), value: attrs.med });
  if (attrs.localPref !== undefined) out.push({ type: "local-pref", flags: attr(AttrType.LOCAL_PREF), value: attrs.localPref });
  if (attrs.atomicAggregate) out.push({ type: "atomic-aggregate", flags: attr(AttrType.ATOMIC_AGGREGATE) });
  let as4Aggregator: { asn: number; address: string } | undefined;
  if (attrs.aggregator) {
    const { asn, address } = attrs.aggregator;
    if (!options.fourOctetAs && asn > 0xffff) {
      out.push({ type: "aggregator", flags: attr(AttrType.AGGREGATOR), asn: AS_TRANS, address });
      as4Aggregator = { asn, address };
    } else {
      out.push({ type: "aggregator", flags: attr(AttrType.AGGREGATOR), asn, address });
    }
  }
  if (attrs.communities && attrs.communities.length > 0) out.push({ type: "communities", flags: attr(AttrType.COMMUNITIES), values: attrs.communities });
  if (attrs.originatorId !== undefined) out.push({ type: "originator-id", flags: attr(AttrType.ORIGINATOR_ID), value: attrs.originatorId });
  if (attrs.clusterList && attrs.clusterList.length > 0) out.push({ type: "cluster-list", flags: attr(AttrType.CLUSTER_LIST), values: attrs.clusterList });
  if (as4Path && as4Path.length > 0) out.push({ type: "as4-path", flags: attr(AttrType.AS4_PATH), segments: as4Path });
  if (as4Aggregator) out.push({ type: "as4-aggregator", flags: attr(AttrType.AS4_AGGREGATOR), ...as4Aggregator });
  if (attrs.largeCommunities && attrs.largeCommunities.length > 0) out.push({ type: "large-communities", flags: attr(AttrType.LARGE_COMMUNITY), values: attrs.largeCommunities });
  if (attrs.unknown) {
    const sorted = [...attrs.unknown].sort((a, b) => a.code - b.code);
    for (const u of sorted) out.push({ type: "unknown", flags: u.flags, code: u.code, value: u.value });
  }
  // Keep type-code order overall (unknown codes may sort between known ones).
  out.sort((a, b) => codeOf(a) - codeOf(b));
  return out;
}

function codeOf(a: PathAttribute): number {
  switch (a.type) {
    case "origin":
      return 1;
    case "as-path":
      return 2;
    case "next-hop":
      return 3;
    case "med":
      return 4;
    case "local-pref":
      return 5;
    case "atomic-aggregate":
      return 6;
    case "aggregator":
      return 7;
    case "communities":
      return 8;
    case "originator-id":
      return 9;
    case "cluster-list":
      return 10;
    case "mp-reach":
      return 14;
    case "mp-unreach":
      return 15;
    case "as4-path":
      return 17;
    case "as4-aggregator":
      return 18;
    case "large-communities":
      return 32;
    case "unknown":
      return a.code;
  }
}

/** Encodes `attrs` for a session into the attribute block `packUpdates` takes. */
export function encodeRouteAttributes(attrs: RouteAttributes, options: { fourOctetAs: boolean; afi: number }): Uint8Array {
  return encodeAttributes(toPathAttributes(attrs, options), { fourOctetAs: options.fourOctetAs });
}

/** What to pack into UPDATEs for one family. */
export interface PackInput {
  afi: number;
  safi: number;
  /** Prefixes to withdraw. */
  withdraw: readonly Nlri[];
  /** Groups of prefixes to announce, each sharing one encoded attribute block (from `encodeRouteAttributes`). */
  announce: readonly { attributes: Uint8Array; nextHop: string[]; nlri: readonly Nlri[] }[];
  codec: CodecOptions;
}

/**
 * Builds the UPDATE messages for `input`, filling each up to the message size: withdrawals first,
 * riding along in the first announcement messages when there is room, then one attribute set with
 * as many prefixes as fit (RFC 4271 App. F.1). For families other than IPv4 unicast the prefixes
 * go into MP_REACH_NLRI / MP_UNREACH_NLRI, placed first among the attributes (RFC 7606 §5.1).
 * Throws BgpConfigError when an attribute block alone does not fit in a message.
 */
export function packUpdates(input: PackInput): Uint8Array[] {
  const max = input.codec.maxMessageLength ?? MAX_MESSAGE_LENGTH;
  const ap = input.codec.addPath !== undefined && input.codec.addPath.has(familyKey(input.afi, input.safi));
  const classic = input.afi === Afi.IPV4 && input.safi === Safi.UNICAST;
  return classic ? packClassic(input, max, ap) : packMp(input, max, ap);
}

const UPDATE_FIXED = HEADER_LENGTH + 4;

function packClassic(input: PackInput, max: number, ap: boolean): Uint8Array[] {
  const out: Uint8Array[] = [];
  const wd = input.withdraw;
  let wi = 0;
  for (const group of input.announce) {
    const alen = group.attributes.length;
    if (UPDATE_FIXED + alen + 5 + (ap ? 4 : 0) > max) throw new BgpConfigError("attributes", `must leave room for a prefix in a ${max}-octet UPDATE`, alen);
    const list = group.nlri;
    let ai = 0;
    while (ai < list.length) {
      const w = new ByteWriter(Math.min(max, 512));
      writeHeader(w);
      // Withdrawals that fit while leaving room for the attributes and one prefix.
      let budget = max - UPDATE_FIXED - alen - nlriSize(list[ai]!, ap);
      const wAt = w.pos;
      w.u16(0);
      while (wi < wd.length) {
        const s = nlriSize(wd[wi]!, ap);
        if (s > budget) break;
        writeNlri(w, wd[wi]!, Afi.IPV4, ap);
        budget -= s;
        wi++;
      }
      w.patch16(wAt, w.pos - wAt - 2);
      w.u16(alen);
      w.bytes(group.attributes);
      let room = max - w.pos;
      while (ai < list.length) {
        const s = nlriSize(list[ai]!, ap);
        if (s > room) break;
        writeNlri(w, list[ai]!, Afi.IPV4, ap);
        room -= s;
        ai++;
      }
      w.patch16(16, w.pos);
      out.push(w.result());
    }
  }
  while (wi < wd.length) {
    const w = new ByteWriter(Math.min(max, 512));
    writeHeader(w);
    const wAt = w.pos;
    w.u16(0);
    let room = max - UPDATE_FIXED;
    while (wi < wd.length) {
      const s = nlriSize(wd[wi]!, ap);
      if (s > room) break;
      writeNlri(w, wd[wi]!, Afi.IPV4, ap);
      room -= s;
      wi++;
    }
    w.patch16(wAt, w.pos - wAt - 2);
    w.u16(0);
    w.patch16(16, w.pos);
    out.push(w.result());
  }
  return out;
}

function packMp(input: PackInput, max: number, ap: boolean): Uint8Array[] {
  const out: Uint8Array[] = [];
  const { afi, safi } = input;
  const wd = input.withdraw;
  let wi = 0;
  while (wi < wd.length) {
    const w = new ByteWriter(Math.min(max, 512));
    writeHeader(w);
    w.u16(0);
    const talAt = w.pos;
    w.u16(0);
    w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH);
    w.u8(AttrType.MP_UNREACH_NLRI);
    const lenAt = w.pos;
    w.u16(0);
    w.u16(afi);
    w.u8(safi);
    let room = max - w.pos;
    while (wi < wd.length) {
      const s = nlriSize(wd[wi]!, ap);
      if (s > room) break;
      writeNlri(w, wd[wi]!, afi, ap);
      room -= s;
      wi++;
    }
    w.patch16(lenAt, w.pos - lenAt - 2);
    w.patch16(talAt, w.pos - talAt - 2);
    w.patch16(16, w.pos);
    out.push(w.result());
  }
  for (const group of input.announce) {
    const hops: Uint8Array[] = [];
    for (const h of group.nextHop) {
      const b = parseAddressBytes(h);
      if (!b) throw new BgpConfigError("nextHop", "must be an IP address", h);
      hops.push(b);
    }
    let nhLen = 0;
    for (const h of hops) nhLen += h.length;
    const alen = group.attributes.length;
    const overhead = UPDATE_FIXED + 4 + 3 + 1 + nhLen + 1 + alen;
    if (overhead + 17 + (ap ? 4 : 0) > max) throw new BgpConfigError("attributes", `must leave room for a prefix in a ${max}-octet UPDATE`, alen);
    const list = group.nlri;
    let ai = 0;
    while (ai < list.length) {
      const w = new ByteWriter(Math.min(max, 512));
      writeHeader(w);
      w.u16(0);
      const talAt = w.pos;
      w.u16(0);
      w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH);
      w.u8(AttrType.MP_REACH_NLRI);
      const lenAt = w.pos;
      w.u16(0);
      w.u16(afi);
      w.u8(safi);
      w.u8(nhLen);
      for (const h of hops) w.bytes(h);
      w.u8(0);
      let room = max - overhead;
      while (ai < list.length) {
        const s = nlriSize(list[ai]!, ap);
        if (s > room) break;
        writeNlri(w, list[ai]!, afi, ap);
        room -= s;
        ai++;
      }
      w.patch16(lenAt, w.pos - lenAt - 2);
      w.bytes(group.attributes);
      w.patch16(talAt, w.pos - talAt - 2);
      w.patch16(16, w.pos);
      out.push(w.result());
    }
  }
  return out;
}
