/**
 * The decoded form of BGP messages. It keeps what is needed to re-encode a valid message octet for
 * octet (attribute order and flags, capability grouping), so `encode(decode(bytes))` equals `bytes`
 * for every valid message and `decode(encode(m))` equals `m` for every message in this form.
 */

/** One NLRI entry: a prefix in canonical text (`10.0.0.0/26`, `2001:db8::/64`) and, with ADD-PATH, its path id. */
export interface Nlri {
  prefix: string;
  /** Path Identifier (RFC 7911 §3); present exactly when ADD-PATH applies to this family and direction. */
  pathId?: number;
}

/** One AFI/SAFI pair. */
export interface Family {
  afi: number;
  safi: number;
}

/** Capabilities (RFC 5492) this codec understands; anything else is kept raw as `unknown`. */
export type Capability =
  | { kind: "multiprotocol"; afi: number; safi: number }
  | { kind: "route-refresh" }
  | { kind: "enhanced-route-refresh" }
  | { kind: "extended-message" }
  | { kind: "extended-next-hop"; tuples: { afi: number; safi: number; nextHopAfi: number }[] }
  | {
      kind: "graceful-restart";
      /** Restart Flags, the top 4 bits of the first two octets (0x8 = R, 0x4 = N). */
      flags: number;
      /** Restart Time in seconds (0-4095). */
      restartTime: number;
      families: { afi: number; safi: number; flags: number }[];
    }
  | { kind: "four-octet-as"; asn: number }
  | { kind: "add-path"; families: { afi: number; safi: number; mode: number }[] }
  | { kind: "unknown"; code: number; value: Uint8Array };

/** OPEN (RFC 4271 §4.2). */
export interface OpenMessage {
  type: "open";
  version: number;
  /** The 2-octet My Autonomous System field (AS_TRANS when the real AS is 4-octet). */
  myAs: number;
  holdTime: number;
  /** BGP Identifier as a dotted quad. */
  bgpId: string;
  capabilities: Capability[];
  /**
   * How the capabilities are split into optional parameters: the count per parameter, in order.
   * Absent means "all in one parameter" (BIRD's style); `[1, 1, 1]` is one parameter each.
   */
  parameterGroups?: number[];
}

/** An AS_PATH / AS4_PATH segment (RFC 4271 §4.3): type 1 AS_SET, 2 AS_SEQUENCE (3, 4 confederations). */
export interface AsPathSegment {
  type: number;
  asns: number[];
}

/** A path attribute as decoded. `flags` is the whole flags octet as received (extended-length bit included). */
export type PathAttribute =
  | { type: "origin"; flags: number; value: number }
  | { type: "as-path"; flags: number; segments: AsPathSegment[] }
  | { type: "next-hop"; flags: number; value: string }
  | { type: "med"; flags: number; value: number }
  | { type: "local-pref"; flags: number; value: number }
  | { type: "atomic-aggregate"; flags: number }
  | { type: "aggregator"; flags: number; asn: number; address: string }
  | { type: "communities"; flags: number; values: number[] }
  | { type: "originator-id"; flags: number; value: string }
  | { type: "cluster-list"; flags: number; values: string[] }
  | {
      type: "mp-reach";
      flags: number;
      afi: number;
      safi: number;
      /** One address, or two for an IPv6 global + link-local next hop (RFC 2545 §3). */
      nextHop: string[];
      nlri: Nlri[];
    }
  | { type: "mp-unreach"; flags: number; afi: number; safi: number; withdrawn: Nlri[] }
  | { type: "as4-path"; flags: number; segments: AsPathSegment[] }
  | { type: "as4-aggregator"; flags: number; asn: number; address: string }
  | { type: "large-communities"; flags: number; values: [number, number, number][] }
  | { type: "unknown"; flags: number; code: number; value: Uint8Array };

/** What RFC 7606 says to do about an attribute error that does not reset the session. */
export interface UpdateErrorNote {
  /** `treat-as-withdraw`: every prefix the UPDATE announces is withdrawn; `attribute-discard`: the attribute is dropped. */
  action: "treat-as-withdraw" | "attribute-discard";
  /** The UPDATE Message Error subcode RFC 4271 §6.3 would have sent. */
  subcode: number;
  /** Attribute type code concerned, when there is one. */
  attribute?: number;
  reason: string;
}

/** UPDATE (RFC 4271 §4.3). */
export interface UpdateMessage {
  type: "update";
  withdrawn: Nlri[];
  attributes: PathAttribute[];
  nlri: Nlri[];
  /**
   * Errors handled the RFC 7606 way while decoding. Absent on a clean message. When any note is
   * `treat-as-withdraw`, the receiver must withdraw everything the message announces.
   */
  errors?: UpdateErrorNote[];
}

/** NOTIFICATION (RFC 4271 §4.5). */
export interface NotificationMessage {
  type: "notification";
  code: number;
  subcode: number;
  data: Uint8Array;
}

/** KEEPALIVE (RFC 4271 §4.4). */
export interface KeepaliveMessage {
  type: "keepalive";
}

/** ROUTE-REFRESH (RFC 2918 §3) with the RFC 7313 subtype in the former Reserved octet. */
export interface RouteRefreshMessage {
  type: "route-refresh";
  afi: number;
  safi: number;
  /** 0 request, 1 begin-of-route-refresh, 2 end-of-route-refresh. */
  subtype: number;
}

/** Any BGP message. */
export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/**
 * Per-session encoding choices that change the wire format. Both directions of one session use the
 * same `fourOctetAs`; ADD-PATH can differ per direction, so the receiving and sending sides pass the
 * families that apply to them.
 */
export interface CodecOptions {
  /** Both sides advertised the 4-octet AS capability (RFC 6793 §4): AS_PATH and AGGREGATOR use 4-octet ASNs. */
  fourOctetAs: boolean;
  /** Families (as `afi/safi` keys, e.g. `1/1`) whose NLRI carry a 4-octet path id (RFC 7911 §3). */
  addPath?: ReadonlySet<string>;
  /** Largest message accepted/produced: 4096, or 65535 with Extended Message (RFC 8654). */
  maxMessageLength?: number;
}

/** Key of a family in `CodecOptions.addPath` and similar sets. */
export function familyKey(afi: number, safi: number): string {
  // The common ones as constants: their hash is computed once, not per lookup (hot in the RIB code).
  if (safi === 1) {
    if (afi === 1) return "1/1";
    if (afi === 2) return "2/1";
  }
  return `${afi}/${safi}`;
}
