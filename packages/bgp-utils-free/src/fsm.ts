/**
 * The per-peer part of the RFC 4271 §8 FSM: Idle → Connect (dialling) / Active (waiting for the peer
 * to dial, or for ConnectRetry) → OpenSent → OpenConfirm → Established. A peer can have two
 * connections at once (ours and theirs); connection collisions are resolved per §6.8 by comparing
 * BGP Identifiers, and a new connection that replaces an Established one is how a graceful restart
 * shows itself (RFC 4724 §4.2). All timers run on the injected clock.
 */
import type { BgpClock, BgpTimerHandle } from "./clock.ts";
import { CeaseSubcode } from "./codec/constants.ts";
import { parseIpv4 } from "./codec/address.ts";
import type { RouteRefreshMessage, UpdateMessage } from "./codec/types.ts";
import type { CloseInfo, Negotiated, NotificationInfo, SessionSettings } from "./session.ts";
import { cease, Session } from "./session.ts";
import type { BgpStream } from "./transport/types.ts";

/** The FSM states of RFC 4271 §8.2.2, as the speaker reports them. */
export const PeerState = {
  IDLE: "Idle",
  CONNECT: "Connect",
  ACTIVE: "Active",
  OPEN_SENT: "OpenSent",
  OPEN_CONFIRM: "OpenConfirm",
  ESTABLISHED: "Established",
} as const;
/** One of the PeerState values. */
export type PeerStateName = (typeof PeerState)[keyof typeof PeerState];

/** Timer settings of one peer, in seconds. */
export interface PeerTimers {
  /** ConnectRetryTime (§10 suggests 120 s; default here 5 s, as data-centre speakers use). */
  connectRetryTime: number;
  /** Delay before the first dial after start (BIRD's `connect delay time`; default 0). */
  connectDelayTime: number;
  /** Wait in Idle after a connection failed before starting again; doubles per consecutive failure up to 60 s. */
  idleHoldTime: number;
}

/** What a Peer tells its owner. Called synchronously; must not throw. */
export interface PeerEvents {
  onStateChange(peer: Peer, previous: PeerStateName, next: PeerStateName): void;
  onEstablished(peer: Peer, session: Session): void;
  /** The Established session ended (`info.replaced` when a new connection of the same peer replaced it). */
  onDown(peer: Peer, session: Session, info: CloseInfo): void;
  onUpdate(peer: Peer, session: Session, update: UpdateMessage): void;
  onRouteRefresh(peer: Peer, session: Session, message: RouteRefreshMessage): void;
  /** Any connection of this peer closed (before or after Established). Optional. */
  onConnectionClosed?(peer: Peer, session: Session, info: CloseInfo): void;
}

/** Options of `new Peer`. */
export interface PeerOptions {
  /** Key of the peer (its address). */
  address: string;
  /** Never dial; only accept the peer's connections. */
  passive: boolean;
  settings: SessionSettings;
  timers: PeerTimers;
  clock: BgpClock;
  random: () => number;
  jitter: boolean;
  /** Opens a connection to the peer. */
  dial: () => Promise<BgpStream>;
  events: PeerEvents;
}

/** One configured neighbour and its connections. */
export class Peer {
  readonly address: string;
  readonly passive: boolean;
  settings: SessionSettings;
  /** ConnectRetryCounter (§8): connections that failed or were lost since the last Established. */
  connectRetryCounter = 0;
  /** Consecutive failures, for the Idle hold back-off. */
  private failures = 0;
  private readonly sessions = new Set<Session>();
  private established: Session | undefined;
  private started = false;
  private dialing = false;
  private dialGeneration = 0;
  private retryTimer: BgpTimerHandle | undefined;
  private idleTimer: BgpTimerHandle | undefined;
  private lastState: PeerStateName = PeerState.IDLE;
  private readonly options: PeerOptions;

  /** Creates the peer in Idle; call `start()` (ManualStart, §8.1.2 event 1). */
  constructor(options: PeerOptions) {
    this.options = options;
    this.address = options.address;
    this.passive = options.passive;
    this.settings = options.settings;
  }

  /** The FSM state (§8.2.2), derived from the connections. */
  get state(): PeerStateName {
    if (this.established) return PeerState.ESTABLISHED;
    let best: PeerStateName | undefined;
    for (const s of this.sessions) {
      if (s.state === "OpenConfirm") best = PeerState.OPEN_CONFIRM;
      else if (s.state === "OpenSent" && best === undefined) best = PeerState.OPEN_SENT;
    }
    if (best) return best;
    if (!this.started || this.idleTimer) return PeerState.IDLE;
    return this.dialing ? PeerState.CONNECT : PeerState.ACTIVE;
  }

  /** The Established session, if any. */
  get session(): Session | undefined {
    return this.established;
  }

  /** ManualStart: leaves Idle and dials (after the connect delay) unless passive. Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.begin(this.options.timers.connectDelayTime);
    this.report();
  }

  /**
   * ManualStop: closes every connection with Cease `subcode` (default 2, Administrative Shutdown)
   * and stays Idle until `start()`. Idempotent.
   */
  stop(subcode: number = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN): void {
    this.end((s) => s.close(cease(subcode), "administratively stopped"));
  }

  /**
   * Stops as `stop()` does, but ends every connection without a NOTIFICATION (the transport is
   * closed, as when the BGP process goes away): a peer that negotiated graceful restart keeps our
   * routes as stale (RFC 4724 §4.2). Idempotent.
   */
  halt(reason: string): void {
    this.end((s) => s.abort(reason));
  }

  private end(close: (s: Session) => void): void {
    this.started = false;
    this.dialGeneration++;
    this.dialing = false;
    this.retryTimer?.cancel();
    this.idleTimer?.cancel();
    this.retryTimer = undefined;
    this.idleTimer = undefined;
    for (const s of [...this.sessions]) close(s);
    this.report();
  }

  /**
   * Takes an incoming connection from this peer's address (TcpConnectionConfirmed, event 17).
   * Refused (destroyed) while stopped. Never throws.
   */
  accept(stream: BgpStream): void {
    if (!this.started) {
      stream.destroy();
      return;
    }
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    this.open(stream, "incoming");
  }

  private begin(delaySeconds: number): void {
    if (this.passive || !this.started) return;
    if (delaySeconds > 0) {
      this.armRetry(delaySeconds);
      return;
    }
    this.dial();
  }

  private armRetry(seconds: number): void {
    this.retryTimer?.cancel();
    const factor = this.options.jitter ? 0.75 + 0.25 * this.options.random() : 1;
    this.retryTimer = this.options.clock.setTimeout(
      () => {
        this.retryTimer = undefined;
        if (!this.started || this.established) return;
        // RFC 4271 §8.2.2, Connect state, ConnectRetryTimer_Expires (event 9): a dial still pending
        // (a peer that went silent: no SYN-ACK, no RST) is dropped and a new one starts, so that the
        // session comes back as soon as the peer is reachable again.
        if (this.dialing) {
          this.dialGeneration++;
          this.dialing = false;
        }
        if (this.hasOutgoing()) return;
        this.dial();
      },
      seconds * 1000 * factor,
    );
  }

  private hasOutgoing(): boolean {
    for (const s of this.sessions) if (s.direction === "outgoing") return true;
    return this.dialing;
  }

  private dial(): void {
    if (!this.started || this.passive || this.dialing) return;
    this.dialing = true;
    const generation = ++this.dialGeneration;
    this.armRetry(this.options.timers.connectRetryTime);
    this.report();
    let promise: Promise<BgpStream>;
    try {
      promise = this.options.dial();
    } catch (e) {
      promise = Promise.reject(e);
    }
    promise.then(
      (stream) => {
        if (generation !== this.dialGeneration || !this.started || this.established) {
          stream.destroy();
          if (generation === this.dialGeneration) this.dialing = false;
          this.report();
          return;
        }
        this.dialing = false;
        this.open(stream, "outgoing");
      },
      () => {
        if (generation !== this.dialGeneration) return;
        this.dialing = false;
        // TcpConnectionFails (event 18): wait for ConnectRetry in Active.
        this.report();
      },
    );
  }

  private open(stream: BgpStream, direction: "outgoing" | "incoming"): void {
    const session = new Session({
      stream,
      direction,
      settings: this.settings,
      clock: this.options.clock,
      random: this.options.random,
      jitter: this.options.jitter,
      handler: {
        onOpen: (s, n) => this.onOpen(s, n),
        onEstablished: (s) => this.onEstablished(s),
        onUpdate: (s, u) => {
          if (s === this.established) this.options.events.onUpdate(this, s, u);
        },
        onRouteRefresh: (s, m) => {
          if (s === this.established) this.options.events.onRouteRefresh(this, s, m);
        },
        onClose: (s, info) => this.onClose(s, info),
        onStateChange: () => this.report(),
      },
    });
    this.sessions.add(session);
    session.start();
    this.report();
  }

  /** Connection collision detection (§6.8), run when an OPEN arrives on `session`. */
  private onOpen(session: Session, negotiated: Negotiated): NotificationInfo | undefined {
    for (const other of this.sessions) {
      if (other === session || other.state === "Closed") continue;
      if (other === this.established) {
        if (other.negotiated?.peerGracefulRestart) {
          // RFC 4724 §4.2: the peer restarted; drop the old connection and keep its routes as stale.
          other.abort("replaced by a new connection from the restarting peer", true);
          continue;
        }
        return cease(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
      }
      if (other.state === "OpenConfirm") {
        const local = parseIpv4(this.settings.routerId) ?? 0;
        const remote = parseIpv4(negotiated.peerRouterId) ?? 0;
        // Keep the connection opened by the side with the higher identifier.
        const keepDirection = local > remote ? "outgoing" : "incoming";
        if (session.direction === other.direction || other.direction !== keepDirection) {
          other.close(cease(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION), "connection collision resolution", true);
        } else {
          return cease(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION);
        }
      }
    }
    this.report();
    return undefined;
  }

  private onEstablished(session: Session): void {
    for (const other of [...this.sessions]) {
      if (other !== session) other.close(cease(CeaseSubcode.CONNECTION_COLLISION_RESOLUTION), "connection collision resolution", true);
    }
    this.established = session;
    this.failures = 0;
    this.connectRetryCounter = 0;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.dialGeneration++;
    this.dialing = false;
    this.report();
    this.options.events.onEstablished(this, session);
  }

  private onClose(session: Session, info: CloseInfo): void {
    this.sessions.delete(session);
    const wasEstablished = session === this.established;
    if (wasEstablished) this.established = undefined;
    this.options.events.onConnectionClosed?.(this, session, info);
    if (wasEstablished) this.options.events.onDown(this, session, info);
    if (!info.replaced) {
      this.connectRetryCounter++;
      this.failures++;
    }
    if (this.sessions.size === 0 && !this.established && this.started) {
      if (info.replaced) {
        this.begin(0);
      } else {
        // Any error: back to Idle, then start again after the Idle hold time (§8.1.1 IdleHoldTimer).
        const base = this.options.timers.idleHoldTime;
        const wait = Math.min(60, base * 2 ** Math.max(0, Math.min(this.failures - 1, 6)));
        this.dialGeneration++;
        this.dialing = false;
        this.retryTimer?.cancel();
        this.retryTimer = undefined;
        if (wait <= 0) {
          this.begin(0);
        } else {
          this.idleTimer?.cancel();
          this.idleTimer = this.options.clock.setTimeout(() => {
            this.idleTimer = undefined;
            this.begin(0);
            this.report();
          }, wait * 1000);
        }
      }
    }
    this.report();
  }

  /** Emits onStateChange when the derived state changed. */
  private report(): void {
    const next = this.state;
    if (next === this.lastState) return;
    const prev = this.lastState;
    this.lastState = next;
    this.options.events.onStateChange(this, prev, next);
  }
}
