// fast-check arbitraries for BGP messages: the decoded model (for decode(encode(x)) = x) and raw
// wire bytes built independently of the package's encoders (for encode(decode(b)) = b).
import fc from "fast-check";
import { formatIpv4, formatIpv6Bytes } from "../../src/codec/address.ts";
import type { AsPathSegment, Capability, CodecOptions, Nlri, OpenMessage, PathAttribute, UpdateMessage } from "../../src/codec/types.ts";

const KNOWN_CAPS = new Set([1, 2, 5, 6, 64, 65, 69, 70]);
const KNOWN_ATTRS = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 17, 18, 32]);

export const u8 = fc.integer({ min: 0, max: 255 });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const ipv4 = u32.map(formatIpv4);
export const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIpv6Bytes(b));

/** A canonical prefix of family `afi` as the codec prints it. */
export function prefixArb(afi: 1 | 2): fc.Arbitrary<string> {
  const bits = afi === 1 ? 32 : 128;
  return fc.tuple(fc.uint8Array({ minLength: bits / 8, maxLength: bits / 8 }), fc.integer({ min: 0, max: bits })).map(([b, len]) => {
    const m = b.slice();
    for (let bit = len; bit < bits; bit++) m[bit >> 3] = m[bit >> 3]! & ~(1 << (7 - (bit & 7)));
    if (afi === 1) return `${m[0]}.${m[1]}.${m[2]}.${m[3]}/${len}`;
    return `${formatIpv6Bytes(m)}/${len}`;
  });
}

export function nlriArb(afi: 1 | 2, addPath: boolean, max = 20): fc.Arbitrary<Nlri[]> {
  const one = addPath ? fc.record({ prefix: prefixArb(afi), pathId: u32 }) : prefixArb(afi).map((prefix) => ({ prefix }));
  return fc.array(one, { maxLength: max });
}

function segmentsArb(width: 2 | 4, types: number[]): fc.Arbitrary<AsPathSegment[]> {
  const asn = width === 2 ? u16 : u32;
  return fc.array(fc.record({ type: fc.constantFrom(...types), asns: fc.array(asn, { minLength: 1, maxLength: 12 }) }), { maxLength: 4 });
}

/** Random codec options (4-octet AS on/off, ADD-PATH per family). */
export const codecArb: fc.Arbitrary<CodecOptions> = fc.record({ fourOctetAs: fc.boolean(), ap4: fc.boolean(), ap6: fc.boolean() }).map(({ fourOctetAs, ap4, ap6 }) => {
  const addPath = new Set<string>();
  if (ap4) addPath.add("1/1");
  if (ap6) addPath.add("2/1");
  return { fourOctetAs, addPath, maxMessageLength: 65535 };
});

const ext = fc.boolean().map((b) => (b ? 0x10 : 0));

/** One attribute of each kind the model knows, valid for `codec`. */
function attributeArbs(codec: CodecOptions): Record<string, fc.Arbitrary<PathAttribute>> {
  const w = codec.fourOctetAs ? 4 : 2;
  const ap = (afi: number): boolean => codec.addPath?.has(`${afi}/1`) ?? false;
  const optTrans = fc.tuple(ext, fc.boolean()).map(([e, p]) => 0xc0 | e | (p ? 0x20 : 0));
  return {
    origin: fc.record({ type: fc.constant("origin" as const), flags: ext.map((e) => 0x40 | e), value: fc.integer({ min: 0, max: 2 }) }),
    asPath: fc.record({ type: fc.constant("as-path" as const), flags: ext.map((e) => 0x40 | e), segments: segmentsArb(w, [1, 2, 3, 4]) }),
    nextHop: fc.record({ type: fc.constant("next-hop" as const), flags: ext.map((e) => 0x40 | e), value: ipv4 }),
    med: fc.record({ type: fc.constant("med" as const), flags: ext.map((e) => 0x80 | e), value: u32 }),
    localPref: fc.record({ type: fc.constant("local-pref" as const), flags: ext.map((e) => 0x40 | e), value: u32 }),
    atomic: fc.record({ type: fc.constant("atomic-aggregate" as const), flags: ext.map((e) => 0x40 | e) }),
    aggregator: fc.record({ type: fc.constant("aggregator" as const), flags: optTrans, asn: w === 4 ? u32 : u16, address: ipv4 }),
    communities: fc.record({ type: fc.constant("communities" as const), flags: optTrans, values: fc.array(u32, { minLength: 1, maxLength: 10 }) }),
    originatorId: fc.record({ type: fc.constant("originator-id" as const), flags: ext.map((e) => 0x80 | e), value: ipv4 }),
    clusterList: fc.record({ type: fc.constant("cluster-list" as const), flags: ext.map((e) => 0x80 | e), values: fc.array(ipv4, { minLength: 1, maxLength: 6 }) }),
    mpReach: fc.constantFrom(1 as const, 2 as const).chain((afi) =>
      fc.record({
        type: fc.constant("mp-reach" as const),
        flags: ext.map((e) => 0x80 | e),
        afi: fc.constant(afi),
        safi: fc.constant(1),
        nextHop:
          afi === 1
            ? fc.oneof(
                ipv4.map((a) => [a]),
                ipv6.map((a) => [a]),
              )
            : fc.oneof(
                ipv6.map((a) => [a]),
                fc.tuple(ipv6, ipv6).map(([a, b]) => [a, b]),
              ),
        nlri: nlriArb(afi, ap(afi)),
      }),
    ),
    mpUnreach: fc
      .constantFrom(1 as const, 2 as const)
      .chain((afi) => fc.record({ type: fc.constant("mp-unreach" as const), flags: ext.map((e) => 0x80 | e), afi: fc.constant(afi), safi: fc.constant(1), withdrawn: nlriArb(afi, ap(afi)) })),
    as4Path: fc.record({ type: fc.constant("as4-path" as const), flags: optTrans, segments: segmentsArb(4, [1, 2]) }),
    as4Aggregator: fc.record({ type: fc.constant("as4-aggregator" as const), flags: optTrans, asn: u32, address: ipv4 }),
    large: fc.record({ type: fc.constant("large-communities" as const), flags: optTrans, values: fc.array(fc.tuple(u32, u32, u32), { minLength: 1, maxLength: 4 }) }),
  };
}

const unknownAttrArb: fc.Arbitrary<PathAttribute> = fc.record({
  type: fc.constant("unknown" as const),
  flags: fc.tuple(fc.boolean(), fc.boolean(), ext).map(([t, p, e]) => 0x80 | (t ? 0x40 : 0) | (p ? 0x20 : 0) | e),
  code: fc.integer({ min: 0, max: 255 }).filter((c) => !KNOWN_ATTRS.has(c)),
  value: fc.uint8Array({ maxLength: 300 }),
});

/** A valid UPDATE (no RFC 7606 notes) for `codec`. */
export function updateArb(codec: CodecOptions): fc.Arbitrary<UpdateMessage> {
  const arbs = attributeArbs(codec);
  const ap4 = codec.addPath?.has("1/1") ?? false;
  const optional = fc.subarray(["med", "localPref", "atomic", "aggregator", "communities", "originatorId", "clusterList", "mpUnreach", "as4Path", "as4Aggregator", "large"]);
  return fc
    .record({
      withdrawn: nlriArb(1, ap4),
      nlri: nlriArb(1, ap4),
      withMp: fc.boolean(),
      mandatory: fc.boolean(),
      optional,
      unknown: fc.array(unknownAttrArb, { maxLength: 2 }),
      order: fc.array(fc.nat(), { minLength: 20, maxLength: 20 }),
    })
    .chain(({ withdrawn, nlri, withMp, mandatory, optional: opt, unknown, order }) => {
      const names: string[] = [...opt];
      if (withMp) names.push("mpReach");
      if (nlri.length > 0 || withMp || mandatory) names.push("origin", "asPath");
      if (nlri.length > 0 || mandatory) names.push("nextHop");
      const picked = names.map((n) => arbs[n]!);
      return fc.tuple(...picked).map((attrs) => {
        const codes = new Set<number>();
        const uniqueUnknown = unknown.filter((u) => u.type === "unknown" && !codes.has(u.code) && (codes.add(u.code), true));
        const all = [...attrs, ...uniqueUnknown];
        const keyed = all.map((a, i) => ({ a, k: order[i % order.length]! * 100 + i }));
        keyed.sort((x, y) => x.k - y.k);
        return { type: "update" as const, withdrawn, attributes: keyed.map((x) => x.a), nlri };
      });
    });
}

function capabilityArb(): fc.Arbitrary<Capability> {
  return fc.oneof(
    fc.record({ kind: fc.constant("multiprotocol" as const), afi: u16, safi: u8 }),
    fc.constant({ kind: "route-refresh" as const }),
    fc.constant({ kind: "enhanced-route-refresh" as const }),
    fc.constant({ kind: "extended-message" as const }),
    fc.record({ kind: fc.constant("extended-next-hop" as const), tuples: fc.array(fc.record({ afi: u16, safi: u16, nextHopAfi: u16 }), { minLength: 1, maxLength: 3 }) }),
    fc.record({
      kind: fc.constant("graceful-restart" as const),
      flags: fc.integer({ min: 0, max: 15 }),
      restartTime: fc.integer({ min: 0, max: 4095 }),
      families: fc.array(fc.record({ afi: u16, safi: u8, flags: u8 }), { maxLength: 3 }),
    }),
    fc.record({ kind: fc.constant("four-octet-as" as const), asn: u32 }),
    fc.record({ kind: fc.constant("add-path" as const), families: fc.array(fc.record({ afi: u16, safi: u8, mode: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant("unknown" as const), code: u8.filter((c) => !KNOWN_CAPS.has(c)), value: fc.uint8Array({ maxLength: 20 }) }),
  );
}

/** A valid OPEN, capabilities grouped into parameters in the normalized form the decoder produces. */
export const openArb: fc.Arbitrary<OpenMessage> = fc
  .record({ myAs: u16, holdTime: u16, bgpId: ipv4, capabilities: fc.array(capabilityArb(), { maxLength: 6 }), split: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 6 }) })
  .map(({ myAs, holdTime, bgpId, capabilities, split }) => {
    const m: OpenMessage = { type: "open", version: 4, myAs, holdTime, bgpId, capabilities };
    const groups: number[] = [];
    let left = capabilities.length;
    for (const s of split) {
      if (left === 0) break;
      const n = Math.min(s, left);
      groups.push(n);
      left -= n;
    }
    if (left > 0) groups.push(left);
    if (groups.length > 1) m.parameterGroups = groups;
    return m;
  });

// ---- raw wire bytes, built without the package's encoders ----

function be16(v: number): number[] {
  return [(v >>> 8) & 255, v & 255];
}
function be32(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}

/** Wraps a body in a header of `type`. */
export function rawMessage(type: number, body: number[]): Uint8Array {
  return new Uint8Array([...new Array<number>(16).fill(0xff), ...be16(19 + body.length), type, ...body]);
}

function rawAttr(flags: number, code: number, value: number[]): number[] {
  const extLen = (flags & 0x10) !== 0 || value.length > 255;
  const f = extLen ? flags | 0x10 : flags;
  return extLen ? [f, code, ...be16(value.length), ...value] : [f, code, value.length, ...value];
}

const rawPrefix4 = fc.tuple(fc.integer({ min: 0, max: 32 }), u32).map(([len, v]) => {
  const bytes = be32(len === 0 ? 0 : (v & (0xffffffff << (32 - len))) >>> 0).slice(0, (len + 7) >> 3);
  return [len, ...bytes];
});

/** Raw bytes of a valid UPDATE (4-octet AS session, no ADD-PATH). */
export const rawUpdateArb: fc.Arbitrary<Uint8Array> = fc
  .record({
    withdrawn: fc.array(rawPrefix4, { maxLength: 10 }),
    nlri: fc.array(rawPrefix4, { maxLength: 10 }),
    origin: fc.integer({ min: 0, max: 2 }),
    path: fc.array(fc.tuple(fc.constantFrom(1, 2), fc.array(u32, { minLength: 1, maxLength: 5 })), { maxLength: 3 }),
    nextHop: u32,
    med: fc.option(u32, { nil: undefined }),
    lp: fc.option(u32, { nil: undefined }),
    communities: fc.array(u32, { maxLength: 5 }),
    unknown: fc.option(fc.tuple(fc.integer({ min: 100, max: 200 }), fc.uint8Array({ maxLength: 40 })), { nil: undefined }),
    extOrigin: fc.boolean(),
  })
  .map((r) => {
    const attrs: number[] = [];
    const hasNlri = r.nlri.length > 0;
    if (hasNlri) {
      attrs.push(...rawAttr(r.extOrigin ? 0x50 : 0x40, 1, [r.origin]));
      attrs.push(
        ...rawAttr(
          0x40,
          2,
          r.path.flatMap(([t, asns]) => [t, asns.length, ...asns.flatMap(be32)]),
        ),
      );
      attrs.push(...rawAttr(0x40, 3, be32(r.nextHop)));
    }
    if (r.med !== undefined) attrs.push(...rawAttr(0x80, 4, be32(r.med)));
    if (r.lp !== undefined) attrs.push(...rawAttr(0x40, 5, be32(r.lp)));
    if (r.communities.length > 0) attrs.push(...rawAttr(0xc0, 8, r.communities.flatMap(be32)));
    if (r.unknown) attrs.push(...rawAttr(0xe0, r.unknown[0], [...r.unknown[1]]));
    const wd = r.withdrawn.flat();
    const body = [...be16(wd.length), ...wd, ...be16(attrs.length), ...attrs, ...r.nlri.flat()];
    return rawMessage(2, body);
  });

/** Raw bytes of a valid OPEN, one capability per parameter or all in one, BIRD- and GoBGP-like. */
export const rawOpenArb: fc.Arbitrary<Uint8Array> = fc
  .record({
    asn: u16,
    hold: u16,
    id: u32,
    caps: fc.array(
      fc.oneof(
        fc.constant([1, 4, 0, 1, 0, 1]),
        fc.constant([1, 4, 0, 2, 0, 1]),
        fc.constant([2, 0]),
        fc.constant([70, 0]),
        fc.constant([71, 0]),
        fc.constant([128, 0]),
        u32.map((a) => [65, 4, ...be32(a)]),
        fc.constant([64, 2, 0, 0x78]),
        fc.constant([64, 6, 0, 0x78, 0, 1, 1, 0]),
        fc.constant([69, 4, 0, 1, 1, 3]),
        fc.constant([5, 6, 0, 1, 0, 1, 0, 2]),
        fc.constant([73, 5, 3, 97, 98, 99, 0]),
      ),
      { maxLength: 8 },
    ),
    single: fc.boolean(),
  })
  .map((r) => {
    const params: number[] = [];
    if (r.single && r.caps.length > 0) {
      const flat = r.caps.flat();
      params.push(2, flat.length, ...flat);
    } else {
      for (const c of r.caps) params.push(2, c.length, ...c);
    }
    return rawMessage(1, [4, ...be16(r.asn), ...be16(r.hold), ...be32(r.id), params.length, ...params]);
  });
