/**
 * Speaker and peer options, their defaults and validation. Every bad value throws BgpConfigError
 * naming the field and the rule, before anything is started.
 */
import type { BgpClock } from "./clock.ts";
import { canonicalAddress, parseIpv4 } from "./codec/address.ts";
import { WellKnownCommunity } from "./codec/constants.ts";
import type { RouteAttributes } from "./codec/update.ts";
import { BgpConfigError } from "./errors.ts";
import type { Route } from "./rib.ts";
import type { BgpTransport } from "./transport/types.ts";

/** Address families the speaker can carry. */
export type FamilyName = "ipv4-unicast" | "ipv6-unicast";

/** ADD-PATH modes (RFC 7911): receive several paths, send several paths, or both. */
export type AddPathSetting = "receive" | "send" | "both";

/** What an import or export policy sees about the peer involved. */
export interface PolicyPeer {
  address: string;
  asn: number;
  routerId: string;
  ibgp: boolean;
  routeReflectorClient: boolean;
}

/**
 * Import policy: called for every received route before it enters the Adj-RIB-In. Return the
 * attributes to store (the same object, or a modified copy), or `null` to reject the route. The
 * attributes given may be shared with other routes and sessions (interned, frozen): copy to change.
 */
export type ImportPolicy = (input: { prefix: string; attributes: RouteAttributes; peer: PolicyPeer }) => RouteAttributes | null;

/**
 * Export policy: called for every route about to be advertised to a peer, with the attributes as
 * they would be sent. Return them (same object or a modified copy), or `null` to not advertise.
 */
export type ExportPolicy = (input: { prefix: string; attributes: RouteAttributes; route: Route; peer: PolicyPeer }) => RouteAttributes | null;

/** One neighbour. Times in seconds; unset values come from the speaker. */
export interface PeerConfig {
  /** The peer's address: what we dial and how its incoming connections are recognised. */
  address: string;
  /** The peer's AS. Equal to ours = iBGP. */
  asn: number;
  /** TCP port to dial (default: the speaker's `port`, 179). */
  port?: number;
  /** Never dial; wait for the peer (Calico sets this on the lower address of each mesh pair). */
  passive?: boolean;
  /** Local address to bind when dialling (default: the speaker's `localAddress`). */
  localAddress?: string;
  holdTime?: number;
  keepaliveTime?: number;
  connectRetryTime?: number;
  connectDelayTime?: number;
  idleHoldTime?: number;
  /** This iBGP peer is a route-reflector client of ours (RFC 4456). */
  routeReflectorClient?: boolean;
  /** Advertise our own address as next hop even for routes whose next hop would pass unchanged. */
  nextHopSelf?: boolean;
  addPath?: AddPathSetting;
  /** Capability codes the peer must advertise, else OPEN error 2/7. */
  requiredCapabilities?: number[];
  /** Free text shown by the CLI. */
  description?: string;
}

/**
 * Graceful restart (RFC 4724). Every speaker with the capability is a receiving speaker: it keeps
 * a restarting peer's routes as stale (§4.2). With `preserveForwarding` it is a restarting speaker
 * too: it lists its families in the capability, so its peers keep its routes while it restarts
 * (`BgpSpeaker.stop({ graceful: true })` ends the sessions without a NOTIFICATION, as a process that
 * goes away); the speaker started after such a stop says `restarting` (§4.1).
 */
export interface GracefulRestartOptions {
  /** Seconds peers keep our routes while we restart (0-4095, default 120). */
  restartTime?: number;
  /** Advertise the N bit (RFC 8538): a NOTIFICATION other than Hard Reset keeps routes too. */
  notification?: boolean;
  /**
   * Our forwarding survives a restart of this speaker (the dataplane outlives it): list our
   * families in the capability (default false: receiving speaker only).
   */
  preserveForwarding?: boolean;
  /**
   * This speaker was restarted gracefully: its OPENs carry the Restart State (R) bit and the
   * Forwarding State (F) bit of every family, and it defers what it sends (each peer's initial
   * table and End-of-RIB) until every configured peer that is not itself restarting has sent
   * End-of-RIB, or `selectionDeferralTime` passed (§4.1). Needs `preserveForwarding`.
   */
  restarting?: boolean;
  /** Seconds the restarting speaker waits for its peers' End-of-RIB at most (default: restartTime). */
  selectionDeferralTime?: number;
}

/** Options of `new BgpSpeaker`. Times in seconds. */
export interface SpeakerOptions {
  /** Our AS (1..4294967295). */
  asn: number;
  /** Our BGP Identifier, a non-zero dotted quad. */
  routerId: string;
  /** Opens and accepts connections. Without one the speaker can only be driven through `connectStream`. */
  transport?: BgpTransport;
  /** Accept incoming connections (default true when a transport is given). */
  listen?: boolean;
  /** Our IPv4 address: next hop of our routes when the session's own address is not an IPv4 address, and default bind address. */
  localAddress?: string;
  /** Our IPv6 next hop for IPv6 routes sent over an IPv4 session (default: the IPv4-mapped local address). */
  localAddress6?: string;
  /** Default port to dial (179). */
  port?: number;
  /** Families to advertise (default both IPv4 and IPv6 unicast). */
  families?: FamilyName[];
  /** Hold time proposed in our OPEN (default 90; 0 = no keepalives). */
  holdTime?: number;
  /** Keepalive interval (default holdTime / 3). */
  keepaliveTime?: number;
  /** ConnectRetryTime (default 5). */
  connectRetryTime?: number;
  /** Delay before the first dial (default 0: no artificial delay). */
  connectDelayTime?: number;
  /** Idle hold time after a failed connection, doubled per consecutive failure up to 60 (default 1). */
  idleHoldTime?: number;
  /** Hold time while waiting for the peer's OPEN (default 240). */
  openHoldTime?: number;
  /**
   * Graceful restart (RFC 4724); `false` to not advertise the capability. Default: receiving
   * speaker only, restart time 120 s. See `GracefulRestartOptions`.
   */
  gracefulRestart?: false | GracefulRestartOptions;
  /** Longest we keep stale routes after the peer came back without sending End-of-RIB (default 360). */
  staleRoutesTime?: number;
  /** ADD-PATH default for every peer. */
  addPath?: AddPathSetting;
  /** Advertise Enhanced Route Refresh (default true). */
  enhancedRouteRefresh?: boolean;
  /** Advertise Extended Message (RFC 8654; default false, as BIRD). */
  extendedMessage?: boolean;
  /** CLUSTER_ID when reflecting (default: routerId). We reflect as soon as one peer is a client. */
  clusterId?: string;
  /** LOCAL_PREF of routes that carry none (default 100). */
  defaultLocalPref?: number;
  /** IGP cost to a next hop, or undefined when unreachable (§9.1.2.1). Default: every next hop resolvable at cost 0. */
  resolveNextHop?: (nextHop: string) => number | undefined;
  importPolicy?: ImportPolicy;
  exportPolicy?: ExportPolicy;
  peers?: PeerConfig[];
  clock?: BgpClock;
  /** Random source for timer jitter (default Math.random). */
  random?: () => number;
  /** Jitter timers by 0.75-1.0 as RFC 4271 §10 asks (default true). */
  jitter?: boolean;
  /** Receives exceptions thrown by event listeners (default: console.error). */
  onListenerError?: (error: unknown) => void;
}

/** Options of a locally originated route. */
export interface AnnounceOptions {
  /** Next hop to advertise (default: our address on each session). */
  nextHop?: string;
  origin?: "igp" | "egp" | "incomplete";
  med?: number;
  localPref?: number;
  /** `asn:value` strings, `no-export` / `no-advertise` / `no-export-subconfed`, or 32-bit numbers. */
  communities?: (string | number)[];
  /** `global:local1:local2` strings. */
  largeCommunities?: string[];
  /** ASNs to put in the AS_PATH as one AS_SEQUENCE (default empty). */
  asPath?: number[];
  atomicAggregate?: boolean;
}

/** Checks a value and throws BgpConfigError naming `field` when it is not an integer in [min, max]. */
export function checkInt(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new BgpConfigError(field, `must be an integer in ${min}..${max}`, value);
  }
  return value;
}

/** Checks a time in seconds (finite, ≥ 0). */
export function checkSeconds(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new BgpConfigError(field, "must be a number of seconds ≥ 0", value);
  return value;
}

/** Checks a hold time: 0, or an integer ≥ 3 (RFC 4271 §4.2). */
export function checkHoldTime(value: unknown, field: string): number {
  const v = checkInt(value, field, 0, 65535);
  if (v === 1 || v === 2) throw new BgpConfigError(field, "must be 0 or at least 3 seconds (RFC 4271 §4.2)", value);
  return v;
}

/** Checks a BGP identifier / cluster id: a dotted quad other than 0.0.0.0. */
export function checkRouterId(value: unknown, field: string): string {
  if (typeof value !== "string" || parseIpv4(value) === undefined || parseIpv4(value) === 0) {
    throw new BgpConfigError(field, "must be a non-zero dotted-quad IPv4 address", value);
  }
  return value;
}

/** Checks an IP address and returns its canonical text. */
export function checkAddress(value: unknown, field: string, family?: 4 | 6): string {
  const c = typeof value === "string" ? canonicalAddress(value) : undefined;
  if (c === undefined || (family === 4 && c.includes(":")) || (family === 6 && !c.includes(":"))) {
    throw new BgpConfigError(field, `must be an ${family === 4 ? "IPv4" : family === 6 ? "IPv6" : "IP"} address`, value);
  }
  return c;
}

/** Parses one community: `asn:value` (each 0..65535), a well-known name, or a 32-bit number. */
export function parseCommunity(value: string | number, field: string): number {
  if (typeof value === "number") return checkInt(value, field, 0, 0xffffffff);
  const named: Record<string, number> = {
    "no-export": WellKnownCommunity.NO_EXPORT,
    "no-advertise": WellKnownCommunity.NO_ADVERTISE,
    "no-export-subconfed": WellKnownCommunity.NO_EXPORT_SUBCONFED,
  };
  const n = named[value.toLowerCase()];
  if (n !== undefined) return n;
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(value);
  if (!m || Number(m[1]) > 0xffff || Number(m[2]) > 0xffff) throw new BgpConfigError(field, "must be asn:value with both in 0..65535, or no-export / no-advertise", value);
  return Number(m[1]) * 0x10000 + Number(m[2]);
}

/** Formats a community as `asn:value` (or its well-known name). */
export function formatCommunity(c: number): string {
  if (c === WellKnownCommunity.NO_EXPORT) return "no-export";
  if (c === WellKnownCommunity.NO_ADVERTISE) return "no-advertise";
  if (c === WellKnownCommunity.NO_EXPORT_SUBCONFED) return "no-export-subconfed";
  return `${Math.floor(c / 0x10000)}:${c & 0xffff}`;
}

/** Parses a large community `global:local1:local2` (each 0..4294967295). */
export function parseLargeCommunity(value: string, field: string): [number, number, number] {
  const m = /^(\d{1,10}):(\d{1,10}):(\d{1,10})$/.exec(value);
  const parts = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (!m || parts.some((p) => p > 0xffffffff)) throw new BgpConfigError(field, "must be global:local1:local2 with each in 0..4294967295", value);
  return parts as [number, number, number];
}

/** Validates a peer's options (BgpConfigError on the first bad field); returns them with the address canonical. */
export function validatePeerConfig(p: PeerConfig, field: string): PeerConfig {
  if (typeof p !== "object" || p === null) throw new BgpConfigError(field, "must be an object", p);
  const out: PeerConfig = { ...p, address: checkAddress(p.address, `${field}.address`) };
  checkInt(p.asn, `${field}.asn`, 1, 0xffffffff);
  if (p.port !== undefined) checkInt(p.port, `${field}.port`, 1, 65535);
  if (p.passive !== undefined && typeof p.passive !== "boolean") throw new BgpConfigError(`${field}.passive`, "must be true or false", p.passive);
  if (p.localAddress !== undefined) out.localAddress = checkAddress(p.localAddress, `${field}.localAddress`);
  if (p.holdTime !== undefined) checkHoldTime(p.holdTime, `${field}.holdTime`);
  if (p.keepaliveTime !== undefined) checkSeconds(p.keepaliveTime, `${field}.keepaliveTime`);
  if (p.connectRetryTime !== undefined) checkSeconds(p.connectRetryTime, `${field}.connectRetryTime`);
  if (p.connectDelayTime !== undefined) checkSeconds(p.connectDelayTime, `${field}.connectDelayTime`);
  if (p.idleHoldTime !== undefined) checkSeconds(p.idleHoldTime, `${field}.idleHoldTime`);
  if (p.addPath !== undefined && !["receive", "send", "both"].includes(p.addPath)) throw new BgpConfigError(`${field}.addPath`, "must be receive, send or both", p.addPath);
  if (p.requiredCapabilities !== undefined) {
    if (!Array.isArray(p.requiredCapabilities)) throw new BgpConfigError(`${field}.requiredCapabilities`, "must be a list of capability codes", p.requiredCapabilities);
    p.requiredCapabilities.forEach((c, i) => checkInt(c, `${field}.requiredCapabilities[${i}]`, 0, 255));
  }
  return out;
}

/** Validates speaker options (not the peers); throws BgpConfigError on the first bad field. */
export function validateSpeakerOptions(o: SpeakerOptions): void {
  if (typeof o !== "object" || o === null) throw new BgpConfigError("options", "must be an object", o);
  checkInt(o.asn, "asn", 1, 0xffffffff);
  checkRouterId(o.routerId, "routerId");
  if (o.localAddress !== undefined) checkAddress(o.localAddress, "localAddress", 4);
  if (o.localAddress6 !== undefined) checkAddress(o.localAddress6, "localAddress6", 6);
  if (o.port !== undefined) checkInt(o.port, "port", 1, 65535);
  if (o.families !== undefined) {
    if (!Array.isArray(o.families) || o.families.length === 0) throw new BgpConfigError("families", "must be a non-empty list of ipv4-unicast / ipv6-unicast", o.families);
    o.families.forEach((f, i) => {
      if (f !== "ipv4-unicast" && f !== "ipv6-unicast") throw new BgpConfigError(`families[${i}]`, "must be ipv4-unicast or ipv6-unicast", f);
    });
  }
  if (o.holdTime !== undefined) checkHoldTime(o.holdTime, "holdTime");
  for (const k of ["keepaliveTime", "connectRetryTime", "connectDelayTime", "idleHoldTime", "openHoldTime", "staleRoutesTime"] as const) {
    if (o[k] !== undefined) checkSeconds(o[k], k);
  }
  if (o.gracefulRestart !== undefined && o.gracefulRestart !== false) {
    const gr = o.gracefulRestart;
    if (typeof gr !== "object" || gr === null) throw new BgpConfigError("gracefulRestart", "must be false or { restartTime, notification, preserveForwarding, restarting, selectionDeferralTime }", gr);
    if (gr.restartTime !== undefined) checkInt(gr.restartTime, "gracefulRestart.restartTime", 0, 4095);
    if (gr.selectionDeferralTime !== undefined) checkSeconds(gr.selectionDeferralTime, "gracefulRestart.selectionDeferralTime");
    for (const k of ["notification", "preserveForwarding", "restarting"] as const) {
      if (gr[k] !== undefined && typeof gr[k] !== "boolean") throw new BgpConfigError(`gracefulRestart.${k}`, "must be a boolean", gr[k]);
    }
    if (gr.restarting && !gr.preserveForwarding)
      throw new BgpConfigError("gracefulRestart.restarting", "needs preserveForwarding: only a speaker whose forwarding survived can restart gracefully", gr.restarting);
  }
  if (o.addPath !== undefined && !["receive", "send", "both"].includes(o.addPath)) throw new BgpConfigError("addPath", "must be receive, send or both", o.addPath);
  if (o.clusterId !== undefined) checkRouterId(o.clusterId, "clusterId");
  if (o.defaultLocalPref !== undefined) checkInt(o.defaultLocalPref, "defaultLocalPref", 0, 0xffffffff);
  if (o.peers !== undefined && !Array.isArray(o.peers)) throw new BgpConfigError("peers", "must be a list", o.peers);
  const seen = new Set<string>();
  (o.peers ?? []).forEach((p, i) => {
    const v = validatePeerConfig(p, `peers[${i}]`);
    if (seen.has(v.address)) throw new BgpConfigError(`peers[${i}].address`, "must be unique among peers", p.address);
    seen.add(v.address);
  });
}
