/**
 * bgp-utils-free: a BGP-4 speaker for Node.js. See DESIGN.md for the invariants and the RFC
 * sections each part implements.
 */
export { BgpConfigError, BgpError, BgpNotificationError, BgpStateError } from "./errors.ts";
export type { BgpClock, BgpTimerHandle } from "./clock.ts";
export { systemClock } from "./clock.ts";

export * from "./codec/constants.ts";
export type {
  AsPathSegment,
  BgpMessage,
  Capability,
  CodecOptions,
  Family,
  KeepaliveMessage,
  Nlri,
  NotificationMessage,
  OpenMessage,
  PathAttribute,
  RouteRefreshMessage,
  UpdateErrorNote,
  UpdateMessage,
} from "./codec/types.ts";
export { familyKey } from "./codec/types.ts";
export { afiOf, canonicalAddress, formatIpv4, formatIpv6Bytes, formatPrefix, parseAddressBytes, parseIpv4, parseIpv6, parsePrefix } from "./codec/address.ts";
export type { ParsedPrefix } from "./codec/address.ts";
export { fromHex, toHex } from "./codec/bytes.ts";
export { checkHeader, decodeMessage, DEFAULT_CODEC, encodeMessage, encodeNotification, isTreatAsWithdraw, KEEPALIVE_BYTES, MessageReader } from "./codec/message.ts";
export { decodeAttributes, encodeAttributes } from "./codec/attributes.ts";
export { decodeNlri } from "./codec/nlri.ts";
export type { AnnouncedRoutes, PackInput, RouteAttributes } from "./codec/update.ts";
export {
  announcedNlri,
  asPathContains,
  asPathLength,
  encodeEndOfRib,
  encodeRouteAttributes,
  endOfRibFamily,
  neighborAs,
  packUpdates,
  prependAs,
  routesFromUpdate,
  toPathAttributes,
  withdrawnFromUpdate,
} from "./codec/update.ts";

export type { CloseInfo, ConnectionState, Negotiated, NotificationInfo, SessionHandler, SessionOptions, SessionSettings, SessionStats } from "./session.ts";
export { cease, negotiate, Session } from "./session.ts";
export type { PeerEvents, PeerOptions, PeerStateName, PeerTimers } from "./fsm.ts";
export { Peer, PeerState } from "./fsm.ts";

export type { PrefixEntry, Route, RouteEvent, RouteSource } from "./rib.ts";
export type { DecisionContext } from "./decision.ts";
export { selectBest } from "./decision.ts";
export type { AddPathSetting, AnnounceOptions, ExportPolicy, FamilyName, GracefulRestartOptions, ImportPolicy, PeerConfig, PolicyPeer, SpeakerOptions } from "./config.ts";
export { formatCommunity, parseCommunity, parseLargeCommunity } from "./config.ts";
export type { EndOfRibEvent, PeerStatus, SessionEvent } from "./speaker.ts";
export { BgpSpeaker, comparePrefixes } from "./speaker.ts";

export type { BgpStream, BgpTransport, ConnectTarget } from "./transport/types.ts";
export { ConnectionRefusedError, MemoryNetwork } from "./transport/memory.ts";
export type { TcpTransport, TcpTransportOptions } from "./transport/tcp.ts";
export { BGP_PORT, tcpTransport } from "./transport/tcp.ts";
export type { PeerConnectionLike, PeerTransportAdapterOptions, PeerTransportLike } from "./transport/peer-connection.ts";
export { peerTransportAdapter } from "./transport/peer-connection.ts";
