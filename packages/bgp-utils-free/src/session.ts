/**
 * One BGP connection (RFC 4271 §8, the per-connection part of the FSM: OpenSent → OpenConfirm →
 * Established): framing, the OPEN exchange and capability negotiation (RFC 5492, 4760, 6793, 7911,
 * 2918, 7313, 4724, 8654), KEEPALIVE and hold timers on the injected clock, and the mapping of
 * every malformed message to the NOTIFICATION RFC 4271 §6 / RFC 7606 / RFC 6608 prescribe.
 *
 * Invariant: nothing that arrives on the stream can make a method of this class throw. Decoder
 * errors become NOTIFICATIONs; an exception in a handler (a bug) closes the session with Cease/0
 * and is counted in `internalErrors`.
 */
import type { BgpClock, BgpTimerHandle } from "./clock.ts";
import { BgpNotificationError } from "./errors.ts";
import { concatBytes } from "./codec/bytes.ts";
import { AS_TRANS, Afi, ErrorCode, FsmErrorSubcode, GracefulRestartFlag, MAX_EXTENDED_MESSAGE_LENGTH, MAX_MESSAGE_LENGTH, MessageType, OpenErrorSubcode, Safi } from "./codec/constants.ts";
import { decodeMessage, encodeMessage, encodeNotification, KEEPALIVE_BYTES, MessageReader } from "./codec/message.ts";
import { BGP_VERSION } from "./codec/open.ts";
import type { Capability, CodecOptions, Family, OpenMessage, RouteRefreshMessage, UpdateMessage } from "./codec/types.ts";
import { familyKey } from "./codec/types.ts";
import type { BgpStream } from "./transport/types.ts";

/** The per-connection states (RFC 4271 §8.2.2); `Closed` once the connection is gone. */
export type ConnectionState = "OpenSent" | "OpenConfirm" | "Established" | "Closed";

/** A NOTIFICATION's content. */
export interface NotificationInfo {
  code: number;
  subcode: number;
  data: Uint8Array;
}

/** What the two OPENs agreed on. */
export interface Negotiated {
  peerAs: number;
  peerRouterId: string;
  /** Hold time in seconds (0 = no hold timer and no keepalives). */
  holdTime: number;
  /** Keepalive interval in seconds (0 when holdTime is 0). */
  keepaliveTime: number;
  fourOctetAs: boolean;
  /** Families both sides advertised (IPv4 unicast implied when a side sent no MP capability). */
  families: Family[];
  /** Families (keys `afi/safi`) in which we receive / send path identifiers (RFC 7911 §4). */
  addPathReceive: Set<string>;
  addPathSend: Set<string>;
  /** The peer accepts ROUTE-REFRESH (RFC 2918; code 2 or Cisco's 128). */
  routeRefresh: boolean;
  /** Both sides advertised Enhanced Route Refresh (RFC 7313). */
  enhancedRouteRefresh: boolean;
  /** Both sides advertised Extended Message (RFC 8654). */
  extendedMessage: boolean;
  /** The peer's Graceful Restart capability, if any (RFC 4724 §3). */
  peerGracefulRestart?: Extract<Capability, { kind: "graceful-restart" }>;
  /** Both sides set the N bit: GR also applies after a NOTIFICATION other than Hard Reset (RFC 8538). */
  notificationGracefulRestart: boolean;
  peerOpen: OpenMessage;
}

/** Why a connection ended. */
export interface CloseInfo {
  reason: string;
  /** The NOTIFICATION we sent, if any. */
  sent?: NotificationInfo;
  /** The NOTIFICATION the peer sent, if any. */
  received?: NotificationInfo;
  /** The connection had reached Established. */
  wasEstablished: boolean;
  /** Closed by collision resolution or replaced by a new connection (routes may be kept for GR). */
  replaced?: boolean;
  /** An exception from our own code (a bug) that closed the session with Cease/0. */
  internalError?: unknown;
}

/** Callbacks from a session to its owner. Called synchronously; must not throw. */
export interface SessionHandler {
  /**
   * The peer's OPEN passed validation; return a NOTIFICATION to refuse the connection (collision
   * resolution, §6.8), or undefined to go on to OpenConfirm.
   */
  onOpen(session: Session, negotiated: Negotiated): NotificationInfo | undefined;
  onEstablished(session: Session): void;
  onUpdate(session: Session, update: UpdateMessage): void;
  onRouteRefresh(session: Session, message: RouteRefreshMessage): void;
  onClose(session: Session, info: CloseInfo): void;
  /** The connection moved to another state (OpenConfirm, Established). Optional. */
  onStateChange?(session: Session): void;
}

/** Local settings a session needs. Times in seconds. */
export interface SessionSettings {
  asn: number;
  routerId: string;
  /** Proposed hold time (0 or ≥ 3). */
  holdTime: number;
  /** Keepalive interval; default holdTime / 3. */
  keepaliveTime?: number;
  /** Hold time while waiting for the peer's OPEN (§8.2.2 suggests 4 minutes). */
  openHoldTime: number;
  /** Capabilities we advertise (four-octet-as, multiprotocol, ...). */
  capabilities: Capability[];
  /** The AS we expect the peer to be in; undefined accepts any. */
  peerAs?: number;
  /** Capability codes the peer must advertise, else 2/7. */
  requiredCapabilities?: number[];
  /** Smallest acceptable non-zero hold time proposed by the peer (RFC 4271: 3). */
  minHoldTime?: number;
}

/** Options of `new Session`. */
export interface SessionOptions {
  stream: BgpStream;
  /** Who opened the TCP connection (for collision resolution). */
  direction: "outgoing" | "incoming";
  settings: SessionSettings;
  clock: BgpClock;
  handler: SessionHandler;
  /** Random source in [0, 1) for timer jitter (RFC 4271 §10). Default Math.random. */
  random?: () => number;
  /** Apply the 0.75-1.0 jitter to the keepalive timer (default true). */
  jitter?: boolean;
}

/** Counters of one session. */
export interface SessionStats {
  messagesIn: number;
  messagesOut: number;
  updatesIn: number;
  updatesOut: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * Computes what two OPENs agree on. Throws BgpNotificationError for the §6.2 errors: 2/2 bad peer
 * AS, 2/3 bad BGP Identifier, 2/6 unacceptable hold time, 2/7 missing required capability.
 */
export function negotiate(settings: SessionSettings, open: OpenMessage): Negotiated {
  const caps = open.capabilities;
  const as4 = caps.find((c): c is Extract<Capability, { kind: "four-octet-as" }> => c.kind === "four-octet-as");
  const peerAs = as4 ? as4.asn : open.myAs;
  if (settings.peerAs !== undefined && peerAs !== settings.peerAs) {
    throw new BgpNotificationError({ code: ErrorCode.OPEN_MESSAGE, subcode: OpenErrorSubcode.BAD_PEER_AS, reason: `peer AS ${peerAs}, expected ${settings.peerAs}` });
  }
  if (open.bgpId === "0.0.0.0" || (peerAs === settings.asn && open.bgpId === settings.routerId)) {
    throw new BgpNotificationError({ code: ErrorCode.OPEN_MESSAGE, subcode: OpenErrorSubcode.BAD_BGP_IDENTIFIER, reason: `bad BGP identifier ${open.bgpId}` });
  }
  const minHold = settings.minHoldTime ?? 3;
  if (open.holdTime !== 0 && open.holdTime < minHold) {
    throw new BgpNotificationError({ code: ErrorCode.OPEN_MESSAGE, subcode: OpenErrorSubcode.UNACCEPTABLE_HOLD_TIME, reason: `hold time ${open.holdTime} (must be 0 or ≥ ${minHold})` });
  }
  for (const code of settings.requiredCapabilities ?? []) {
    if (!caps.some((c) => (c.kind === "unknown" ? c.code : capabilityCodeOf(c)) === code)) {
      throw new BgpNotificationError({
        code: ErrorCode.OPEN_MESSAGE,
        subcode: OpenErrorSubcode.UNSUPPORTED_CAPABILITY,
        data: new Uint8Array([code, 0]),
        reason: `peer lacks required capability ${code}`,
      });
    }
  }
  const holdTime = Math.min(settings.holdTime, open.holdTime);
  let keepaliveTime = 0;
  if (holdTime > 0) {
    const third = holdTime / 3;
    keepaliveTime = Math.max(1, Math.min(settings.keepaliveTime ?? third, third));
  }
  const mine = settings.capabilities;
  const fams = (list: Capability[]): Family[] => {
    const f = list.filter((c): c is Extract<Capability, { kind: "multiprotocol" }> => c.kind === "multiprotocol").map((c) => ({ afi: c.afi, safi: c.safi }));
    return f.length > 0 ? f : [{ afi: Afi.IPV4, safi: Safi.UNICAST }];
  };
  const theirs = fams(caps);
  const families = fams(mine).filter((f) => theirs.some((t) => t.afi === f.afi && t.safi === f.safi));
  const addPathMode = (list: Capability[], f: Family): number => {
    let mode = 0;
    for (const c of list) if (c.kind === "add-path") for (const e of c.families) if (e.afi === f.afi && e.safi === f.safi) mode = e.mode;
    return mode;
  };
  const addPathReceive = new Set<string>();
  const addPathSend = new Set<string>();
  for (const f of families) {
    const m = addPathMode(mine, f);
    const t = addPathMode(caps, f);
    if (m & 1 && t & 2) addPathReceive.add(familyKey(f.afi, f.safi));
    if (m & 2 && t & 1) addPathSend.add(familyKey(f.afi, f.safi));
  }
  const has = (list: Capability[], kind: Capability["kind"]): boolean => list.some((c) => c.kind === kind);
  const peerGr = caps.find((c): c is Extract<Capability, { kind: "graceful-restart" }> => c.kind === "graceful-restart");
  const myGr = mine.find((c): c is Extract<Capability, { kind: "graceful-restart" }> => c.kind === "graceful-restart");
  const n: Negotiated = {
    peerAs,
    peerRouterId: open.bgpId,
    holdTime,
    keepaliveTime,
    fourOctetAs: has(mine, "four-octet-as") && as4 !== undefined,
    families,
    addPathReceive,
    addPathSend,
    routeRefresh: has(caps, "route-refresh") || caps.some((c) => c.kind === "unknown" && c.code === 128),
    enhancedRouteRefresh: has(caps, "enhanced-route-refresh") && has(mine, "enhanced-route-refresh"),
    extendedMessage: has(caps, "extended-message") && has(mine, "extended-message"),
    notificationGracefulRestart: peerGr !== undefined && myGr !== undefined && (peerGr.flags & GracefulRestartFlag.NOTIFICATION) !== 0 && (myGr.flags & GracefulRestartFlag.NOTIFICATION) !== 0,
    peerOpen: open,
  };
  if (peerGr) n.peerGracefulRestart = peerGr;
  return n;
}

function capabilityCodeOf(c: Capability): number {
  const codes: Record<Exclude<Capability["kind"], "unknown">, number> = {
    multiprotocol: 1,
    "route-refresh": 2,
    "extended-next-hop": 5,
    "extended-message": 6,
    "graceful-restart": 64,
    "four-octet-as": 65,
    "add-path": 69,
    "enhanced-route-refresh": 70,
  };
  return c.kind === "unknown" ? c.code : codes[c.kind];
}

const MESSAGE_NAMES: Readonly<Record<number, string>> = { 1: "OPEN", 2: "UPDATE", 4: "KEEPALIVE", 5: "ROUTE-REFRESH" };

/** One BGP connection. Create it with a connected stream, then call `start()`. */
export class Session {
  readonly stream: BgpStream;
  readonly direction: "outgoing" | "incoming";
  state: ConnectionState = "OpenSent";
  negotiated: Negotiated | undefined;
  /** Codec for what we receive (ADD-PATH receive families) and what we send. */
  recvCodec: CodecOptions = { fourOctetAs: false };
  sendCodec: CodecOptions = { fourOctetAs: false };
  readonly stats: SessionStats = { messagesIn: 0, messagesOut: 0, updatesIn: 0, updatesOut: 0, bytesIn: 0, bytesOut: 0 };
  /** Exceptions thrown by handlers (bugs), each of which closed the session. */
  internalErrors: unknown[] = [];
  private readonly settings: SessionSettings;
  private readonly clock: BgpClock;
  private readonly handler: SessionHandler;
  private readonly random: () => number;
  private readonly jitter: boolean;
  private readonly reader = new MessageReader();
  private holdTimer: BgpTimerHandle | undefined;
  private keepaliveTimer: BgpTimerHandle | undefined;
  private holdMs = 0;
  private lastReceived = 0;
  private outQueue: Uint8Array[] = [];
  private flushScheduled = false;
  private closedInfo: CloseInfo | undefined;
  private started = false;
  /** Bytes that arrived before `start()` (some transports deliver as soon as a handler is set). */
  private early: Uint8Array[] = [];

  /** Wraps `options.stream`; nothing is sent until `start()`. */
  constructor(options: SessionOptions) {
    this.stream = options.stream;
    this.direction = options.direction;
    this.settings = options.settings;
    this.clock = options.clock;
    this.handler = options.handler;
    this.random = options.random ?? Math.random;
    this.jitter = options.jitter ?? true;
    this.stream.onData((chunk) => this.onData(chunk));
    this.stream.onClose((reason) => this.finish({ reason, wasEstablished: this.state === "Established" }));
  }

  /** Sends our OPEN and starts the OpenSent hold timer (§8.2.2). Idempotent. */
  start(): void {
    if (this.started || this.state === "Closed") return;
    this.started = true;
    const s = this.settings;
    const open: OpenMessage = {
      type: "open",
      version: BGP_VERSION,
      myAs: s.asn > 0xffff ? AS_TRANS : s.asn,
      holdTime: s.holdTime,
      bgpId: s.routerId,
      capabilities: s.capabilities,
    };
    this.lastReceived = this.clock.now();
    this.armHold(s.openHoldTime);
    this.send(encodeMessage(open));
    const early = this.early;
    this.early = [];
    for (const chunk of early) this.onData(chunk);
  }

  /** How this connection ended, once it has. */
  get closeInfo(): CloseInfo | undefined {
    return this.closedInfo;
  }

  /** Queues one encoded message; all messages queued in one tick go out in one write. */
  send(bytes: Uint8Array): void {
    if (this.state === "Closed") return;
    this.outQueue.push(bytes);
    this.stats.messagesOut++;
    this.stats.bytesOut += bytes.length;
    if (bytes[18] === MessageType.UPDATE) this.stats.updatesOut++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushQueued);
    }
  }

  /** `flush` as one function made once (a microtask per tick with sends, no closure each time). */
  private readonly flushQueued = (): void => this.flush();

  /** Writes whatever is queued now. */
  flush(): void {
    this.flushScheduled = false;
    if (this.outQueue.length === 0) return;
    const out = this.outQueue;
    this.outQueue = [];
    this.stream.write(concatBytes(out));
  }

  /**
   * Sends `notification` (if given) after anything queued, closes the connection and reports
   * `reason`. Idempotent; does nothing once closed.
   */
  close(notification: NotificationInfo | undefined, reason: string, replaced = false, internalError?: unknown): void {
    if (this.state === "Closed") return;
    const wasEstablished = this.state === "Established";
    if (notification) {
      this.outQueue.push(encodeNotification(notification));
      this.stats.messagesOut++;
      this.flush();
    } else {
      this.flush();
    }
    this.stream.end();
    const info: CloseInfo = { reason, wasEstablished };
    if (notification) info.sent = notification;
    if (replaced) info.replaced = true;
    if (internalError !== undefined) info.internalError = internalError;
    this.finish(info);
  }

  /** Drops the connection without a NOTIFICATION (as a restarting peer's old connection is dropped). */
  abort(reason: string, replaced = false): void {
    if (this.state === "Closed") return;
    const info: CloseInfo = { reason, wasEstablished: this.state === "Established" };
    if (replaced) info.replaced = true;
    this.stream.destroy();
    this.finish(info);
  }

  private finish(info: CloseInfo): void {
    if (this.state === "Closed") return;
    this.state = "Closed";
    this.closedInfo = info;
    this.outQueue = [];
    this.holdTimer?.cancel();
    this.keepaliveTimer?.cancel();
    this.holdTimer = undefined;
    this.keepaliveTimer = undefined;
    this.guard(() => this.handler.onClose(this, info), false);
  }

  private onData(chunk: Uint8Array): void {
    if (this.state === "Closed") return;
    if (!this.started) {
      this.early.push(chunk.slice());
      return;
    }
    this.stats.bytesIn += chunk.length;
    let messages: Uint8Array[];
    try {
      messages = this.reader.push(chunk);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (messages.length > 0) this.lastReceived = this.clock.now();
    for (const raw of messages) {
      if ((this.state as ConnectionState) === "Closed") return;
      this.stats.messagesIn++;
      this.handleRaw(raw);
    }
  }

  private fail(e: unknown): void {
    if (e instanceof BgpNotificationError) {
      this.close({ code: e.code, subcode: e.subcode, data: e.data }, e.message);
    } else {
      this.internalErrors.push(e);
      this.close({ code: ErrorCode.CEASE, subcode: 0, data: new Uint8Array(0) }, `internal error: ${e instanceof Error ? e.message : String(e)}`, false, e);
    }
  }

  /** Runs handler code; an exception (a bug) closes the session instead of escaping. */
  private guard(fn: () => void, closeOnError = true): void {
    try {
      fn();
    } catch (e) {
      if (closeOnError) this.fail(e);
      else this.internalErrors.push(e);
    }
  }

  private fsmError(subcode: number, what: string): void {
    this.close({ code: ErrorCode.FSM, subcode, data: new Uint8Array(0) }, `unexpected ${what} in ${this.state}`);
  }

  private handleRaw(raw: Uint8Array): void {
    const type = raw[18]!;
    if (type === MessageType.NOTIFICATION) {
      const received: NotificationInfo = { code: raw[19]!, subcode: raw[20]!, data: raw.slice(21) };
      const wasEstablished = this.state === "Established";
      this.stream.end();
      this.finish({ reason: `NOTIFICATION ${received.code}/${received.subcode} received`, received, wasEstablished });
      return;
    }
    switch (this.state) {
      case "OpenSent":
        if (type !== MessageType.OPEN) return this.fsmError(FsmErrorSubcode.UNEXPECTED_IN_OPEN_SENT, MESSAGE_NAMES[type] ?? `type ${type}`);
        return this.onOpenMessage(raw);
      case "OpenConfirm":
        if (type !== MessageType.KEEPALIVE) return this.fsmError(FsmErrorSubcode.UNEXPECTED_IN_OPEN_CONFIRM, MESSAGE_NAMES[type] ?? `type ${type}`);
        this.state = "Established";
        this.armHold(this.negotiated!.holdTime);
        this.guard(() => this.handler.onEstablished(this));
        return;
      case "Established":
        if (type === MessageType.KEEPALIVE) return;
        if (type === MessageType.OPEN) return this.fsmError(FsmErrorSubcode.UNEXPECTED_IN_ESTABLISHED, "OPEN");
        return this.onEstablishedMessage(raw);
      default:
        return;
    }
  }

  private onOpenMessage(raw: Uint8Array): void {
    let negotiated: Negotiated;
    try {
      const open = decodeMessage(raw) as OpenMessage;
      negotiated = negotiate(this.settings, open);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.negotiated = negotiated;
    const max = negotiated.extendedMessage ? MAX_EXTENDED_MESSAGE_LENGTH : MAX_MESSAGE_LENGTH;
    this.recvCodec = { fourOctetAs: negotiated.fourOctetAs, addPath: negotiated.addPathReceive, maxMessageLength: max };
    this.sendCodec = { fourOctetAs: negotiated.fourOctetAs, addPath: negotiated.addPathSend, maxMessageLength: max };
    this.reader.maxMessageLength = max;
    let refusal: NotificationInfo | undefined;
    try {
      refusal = this.handler.onOpen(this, negotiated);
    } catch (e) {
      this.fail(e);
      return;
    }
    if ((this.state as ConnectionState) !== "OpenSent") return;
    if (refusal) {
      this.close(refusal, `connection refused (NOTIFICATION ${refusal.code}/${refusal.subcode})`);
      return;
    }
    this.state = "OpenConfirm";
    this.guard(() => this.handler.onStateChange?.(this));
    this.send(KEEPALIVE_BYTES);
    this.armHold(negotiated.holdTime);
    this.armKeepalive();
  }

  private onEstablishedMessage(raw: Uint8Array): void {
    let msg;
    try {
      msg = decodeMessage(raw, this.recvCodec);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (msg.type === "update") {
      this.stats.updatesIn++;
      this.guard(() => this.handler.onUpdate(this, msg));
    } else if (msg.type === "route-refresh") {
      this.guard(() => this.handler.onRouteRefresh(this, msg));
    }
  }

  private armHold(seconds: number): void {
    this.holdTimer?.cancel();
    this.holdTimer = undefined;
    this.holdMs = seconds * 1000;
    if (seconds <= 0) return;
    this.holdTimer = this.clock.setTimeout(() => this.checkHold(), this.holdMs);
  }

  private checkHold(): void {
    if (this.state === "Closed") return;
    const idle = this.clock.now() - this.lastReceived;
    if (idle + 0.5 >= this.holdMs) {
      this.close({ code: ErrorCode.HOLD_TIMER_EXPIRED, subcode: 0, data: new Uint8Array(0) }, `hold timer expired (${this.holdMs / 1000} s without a message)`);
      return;
    }
    this.holdTimer = this.clock.setTimeout(() => this.checkHold(), this.holdMs - idle);
  }

  private armKeepalive(): void {
    this.keepaliveTimer?.cancel();
    this.keepaliveTimer = undefined;
    const seconds = this.negotiated?.keepaliveTime ?? 0;
    if (seconds <= 0 || this.state === "Closed") return;
    const factor = this.jitter ? 0.75 + 0.25 * this.random() : 1;
    this.keepaliveTimer = this.clock.setTimeout(
      () => {
        if (this.state === "Closed") return;
        this.send(KEEPALIVE_BYTES);
        this.armKeepalive();
      },
      Math.max(1000, seconds * 1000 * factor),
    );
  }
}

/** The NOTIFICATION for a cease with a subcode (RFC 4486). */
export function cease(subcode: number, data: Uint8Array = new Uint8Array(0)): NotificationInfo {
  return { code: ErrorCode.CEASE, subcode, data };
}
