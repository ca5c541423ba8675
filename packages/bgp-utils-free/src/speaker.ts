/**
 * A BGP speaker: peers and their FSMs, Adj-RIB-In per peer, the Loc-RIB with the RFC 4271 §9.1
 * decision process, Adj-RIB-Out per peer with import/export policy hooks, iBGP/eBGP propagation
 * rules (§9.2, §5.1), route reflection (RFC 4456), graceful restart as receiving speaker (RFC 4724
 * §4.2) and, with `gracefulRestart.preserveForwarding`, as restarting speaker (§4.1: a graceful
 * stop without NOTIFICATION, then the Restart State and Forwarding State bits and a deferred initial
 * advertisement), route refresh (RFC 2918, RFC 7313), and an event API.
 *
 * Work is batched per tick: every change marks prefixes dirty; one microtask later the decision
 * process runs once for all of them, Adj-RIB-Outs are diffed, and each peer gets its UPDATEs packed
 * and written in one go (no MRAI; RFC 7938 §7.2).
 */
import type { BgpClock, BgpTimerHandle } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { afiOf, canonicalAddress, parseIpv4, parsePrefix } from "./codec/address.ts";
import { Afi, CeaseSubcode, ErrorCode, GR_FORWARDING_PRESERVED, GracefulRestartFlag, RouteRefreshSubtype, Safi, WellKnownCommunity } from "./codec/constants.ts";
import type { DerivedCache } from "./codec/intern.ts";
import { derived, derivedCache, isInterned } from "./codec/intern.ts";
import { encodeMessage, isTreatAsWithdraw } from "./codec/message.ts";
import type { Capability, Family, Nlri, RouteRefreshMessage, UpdateMessage } from "./codec/types.ts";
import { familyKey } from "./codec/types.ts";
import type { PackInput, RouteAttributes } from "./codec/update.ts";
import { announcedNlri, asPathContains, encodeEndOfRib, encodeRouteAttributes, endOfRibFamily, neighborAs, packUpdates, prependAs, routesFromUpdate, withdrawnFromUpdate } from "./codec/update.ts";
import type { AddPathSetting, AnnounceOptions, PeerConfig, PolicyPeer, SpeakerOptions } from "./config.ts";
import { checkAddress, checkInt, parseCommunity, parseLargeCommunity, validatePeerConfig, validateSpeakerOptions } from "./config.ts";
import type { DecisionContext } from "./decision.ts";
import { selectBest } from "./decision.ts";
import { BgpConfigError, BgpStateError } from "./errors.ts";
import type { PeerStateName } from "./fsm.ts";
import { Peer, PeerState } from "./fsm.ts";
import type { PrefixEntry, Route, RouteEvent, RouteSource } from "./rib.ts";
import type { CloseInfo, Negotiated, Session, SessionSettings, SessionStats } from "./session.ts";
import type { BgpStream } from "./transport/types.ts";

/** A session state change, as the event API reports it. */
export interface SessionEvent {
  peer: string;
  previous: PeerStateName;
  state: PeerStateName;
  /** Why the last connection ended, when the change is a drop. */
  reason?: string;
}

/** An End-of-RIB received from a peer. */
export interface EndOfRibEvent {
  peer: string;
  afi: number;
  safi: number;
}

/** What `peers()` reports about one neighbour. */
export interface PeerStatus {
  address: string;
  asn: number;
  description?: string;
  state: PeerStateName;
  /** The peer's BGP Identifier, once an OPEN was received. */
  routerId?: string;
  /** Clock time the current session reached Established. */
  establishedAt?: number;
  /** Clock time the peer's End-of-RIB of every negotiated family had arrived, in the current session. */
  endOfRibReceivedAt?: number;
  /** Routes of this peer kept as stale (it restarts gracefully, RFC 4724 §4.2). */
  staleRoutes: number;
  /** Routes in this peer's Adj-RIB-In. */
  prefixesReceived: number;
  /** Routes in this peer's Adj-RIB-Out. */
  prefixesAdvertised: number;
  negotiated?: {
    holdTime: number;
    keepaliveTime: number;
    fourOctetAs: boolean;
    families: string[];
    addPathReceive: string[];
    addPathSend: string[];
    routeRefresh: boolean;
    enhancedRouteRefresh: boolean;
    gracefulRestart: boolean;
  };
  stats?: SessionStats;
  /** Why the last connection of this peer ended. */
  lastError?: string;
  connectRetryCounter: number;
}

interface OutEntry {
  /** Unique per entry object: names the entry in the shared-message cache of a flush round. */
  readonly id: number;
  readonly attributes: RouteAttributes;
  readonly block: Uint8Array;
  readonly key: string;
  readonly nextHop: string[];
  /**
   * The last UPDATE built for this entry and one prefix (with that ADD-PATH setting and message
   * size): a reflected route is one entry and one prefix for every client of a class, in its own
   * round and in each initial table after it, so it is encoded once.
   */
  one: { prefix: string; ap: boolean; max: number; messages: Uint8Array[] } | undefined;
}

interface PeerRuntime {
  config: PeerConfig;
  fsm: Peer;
  ibgp: boolean;
  adjIn: Map<string, Route>;
  adjOut: Map<string, OutEntry>;
  pending: Map<string, OutEntry | null>;
  session: Session | undefined;
  negotiated: Negotiated | undefined;
  source: RouteSource | undefined;
  familyKeys: Set<string>;
  nextHop4: string;
  nextHop6: string;
  exportClass: string;
  /** Export-cache keys by (reflect, afi, explicit next hop); see `classKey`. */
  classKeys: string[];
  /** Queued for a flush in the current tick. */
  queued: boolean;
  sendEor: Family[];
  establishedAt: number | undefined;
  /** Families whose End-of-RIB arrived in the current session, and when the last one did. */
  eorReceived: Set<string>;
  eorAt: number | undefined;
  /** The session settings the FSM opens with (their capabilities change when a restart ends). */
  settings: SessionSettings;
  grTimer: BgpTimerHandle | undefined;
  staleTimer: BgpTimerHandle | undefined;
  lastError: string | undefined;
  policyPeer: PolicyPeer;
}

const LOCAL = "local";
const IPV4_UNICAST_KEY = familyKey(Afi.IPV4, Safi.UNICAST);
const IPV6_UNICAST_KEY = familyKey(Afi.IPV6, Safi.UNICAST);

/** A BGP-4 speaker. Create, then `start()`. Not for concurrent use from several threads (there are none in Node). */
export class BgpSpeaker {
  readonly asn: number;
  readonly routerId: string;
  readonly clusterId: string;
  /**
   * Exceptions from our own code (bugs) that closed a session with Cease/0, at most 100. Malformed
   * input never lands here; it is answered with the NOTIFICATION the RFCs prescribe.
   */
  readonly internalErrors: unknown[] = [];
  private readonly options: SpeakerOptions;
  private readonly clock: BgpClock;
  private readonly random: () => number;
  private readonly peers = new Map<string, PeerRuntime>();
  private readonly table = new Map<string, PrefixEntry>();
  private readonly local = new Map<string, Route>();
  private readonly localSource: RouteSource;
  /** Prefixes whose candidates changed since the last decision run, with their Loc-RIB entry. */
  private readonly dirty = new Map<string, PrefixEntry>();
  private flushQueue: PeerRuntime[] = [];
  private readonly established = new Set<PeerRuntime>();
  /** Prefixes with a selected route. */
  private selected = 0;
  /** The last export-cache hit, reused while the same route goes to peers of the same class. */
  private lastExport: { attributes: RouteAttributes; cls: string; entry: OutEntry | null } | undefined;
  private scheduled = false;
  private nextEntryId = 1;
  /**
   * UPDATEs packed in the current flush round, by content (family, ADD-PATH, message size, the
   * withdrawn prefixes and each attribute entry with its prefixes): peers that are due the same
   * change get the same bytes, encoded once (RFC 4456 §6: every client gets the same reflected
   * attributes). Cleared when the round ends.
   */
  private readonly packed = new Map<string, Uint8Array[]>();
  /** The last one-prefix withdrawal built (`flushOne`): every peer of a round is due the same one. */
  private lastWithdraw: { prefix: string; ap: boolean; max: number; messages: Uint8Array[] } | undefined;
  private readonly runProcess = (): void => this.process();
  private readonly exportCache = new WeakMap<RouteAttributes, Map<string, OutEntry | null>>();
  private readonly localAttrs = new Map<string, RouteAttributes>();
  private readonly attrKeys = new WeakMap<RouteAttributes, string>();
  private readonly routeListeners = new Set<(e: RouteEvent) => void>();
  private readonly sessionListeners = new Set<(e: SessionEvent) => void>();
  private readonly eorListeners = new Set<(e: EndOfRibEvent) => void>();
  private readonly decision: DecisionContext;
  /** What `importCopy` made of interned attributes, from iBGP and from eBGP peers (they depend on nothing else but the default LOCAL_PREF). */
  private readonly importCaches: [DerivedCache<RouteAttributes>, DerivedCache<RouteAttributes>];
  private stopListening: (() => Promise<void>) | undefined;
  private running = false;
  private accepting = false;
  private readonly families: Family[];
  /** Restarting speaker (RFC 4724 §4.1): initial advertisements wait for the peers' End-of-RIB. */
  private deferring: boolean;
  private deferTimer: BgpTimerHandle | undefined;

  /** Validates `options` (BgpConfigError naming the field) and creates the peers in Idle. Nothing runs until `start()`. */
  constructor(options: SpeakerOptions) {
    validateSpeakerOptions(options);
    this.options = { ...options };
    this.asn = options.asn;
    this.routerId = options.routerId;
    this.clusterId = options.clusterId ?? options.routerId;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.localSource = { kind: "local", address: LOCAL, asn: this.asn, routerId: this.routerId, ibgp: false, rrClient: false };
    this.decision = { defaultLocalPref: options.defaultLocalPref ?? 100 };
    this.importCaches = [derivedCache(`import/iBGP/${this.decision.defaultLocalPref}`), derivedCache(`import/eBGP/${this.decision.defaultLocalPref}`)];
    if (options.resolveNextHop) this.decision.igpCost = options.resolveNextHop;
    const names = options.families ?? ["ipv4-unicast", "ipv6-unicast"];
    this.families = names.map((n) => (n === "ipv4-unicast" ? { afi: Afi.IPV4, safi: Safi.UNICAST } : { afi: Afi.IPV6, safi: Safi.UNICAST }));
    this.deferring = options.gracefulRestart !== false && options.gracefulRestart?.restarting === true;
    for (const p of options.peers ?? []) this.createPeer(validatePeerConfig(p, "peer"));
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Starts listening (when a transport is given and `listen` is not false) and starts every peer.
   * Rejects with the transport's error when the listening address is taken. Idempotent.
   */
  async start(): Promise<void> {
    if (this.running) return;
    await this.listen();
    this.running = true;
    if (this.deferring && !this.deferTimer) {
      const gr = this.options.gracefulRestart || {};
      this.deferTimer = this.clock.setTimeout(
        () => {
          this.deferTimer = undefined;
          this.endDeferral();
        },
        (gr.selectionDeferralTime ?? gr.restartTime ?? 120) * 1000,
      );
    }
    for (const p of this.peers.values()) p.fsm.start();
  }

  /**
   * Starts accepting connections without starting the peers yet (connections from configured peers
   * are taken; `start()` then dials). Lets a set of speakers all listen before any of them dials.
   * Idempotent; rejects with the transport's error when the address is taken.
   */
  async listen(): Promise<void> {
    if (this.stopListening || !this.options.transport || this.options.listen === false) return;
    this.stopListening = await this.options.transport.listen((stream) => this.acceptStream(stream));
    this.accepting = true;
  }

  /**
   * Sends Cease/2 (Administrative Shutdown) on every session, stops listening and leaves every peer
   * Idle. Learned routes are withdrawn from the Loc-RIB (events fire). Idempotent.
   * `graceful: true` (a restart, RFC 4724): the sessions end without a NOTIFICATION, so peers that
   * negotiated graceful restart keep our routes as stale until the restarted speaker (created with
   * `gracefulRestart.restarting`) sends them again and End-of-RIB. Throws BgpStateError without
   * `gracefulRestart.preserveForwarding` (peers would keep nothing).
   */
  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    const gr = this.options.gracefulRestart;
    if (options.graceful && (gr === false || gr?.preserveForwarding !== true)) throw new BgpStateError("[bgp] a graceful stop needs gracefulRestart.preserveForwarding");
    this.running = false;
    this.accepting = false;
    this.deferTimer?.cancel();
    this.deferTimer = undefined;
    for (const p of this.peers.values()) {
      if (options.graceful) p.fsm.halt("graceful restart: stopped without NOTIFICATION");
      else p.fsm.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN);
      p.grTimer?.cancel();
      p.staleTimer?.cancel();
      for (const key of [...p.adjIn.keys()]) this.removeAdjIn(p, key);
    }
    this.process();
    const stop = this.stopListening;
    this.stopListening = undefined;
    if (stop) await stop();
  }

  /**
   * Hands the speaker an already connected stream (e.g. from a custom listener). It is matched to a
   * peer by `stream.remoteAddress`; streams from unknown addresses are closed. Never throws.
   */
  connectStream(stream: BgpStream): void {
    this.acceptStream(stream);
  }

  private acceptStream(stream: BgpStream): void {
    const addr = canonicalAddress(stream.remoteAddress) ?? stream.remoteAddress;
    const p = this.peers.get(addr);
    if (!p || !(this.running || this.accepting)) {
      stream.destroy();
      return;
    }
    // A configured peer dialled in before `start()`: start it (AutomaticStart, RFC 4271 §8.1.2).
    if (!this.running) p.fsm.start();
    p.fsm.accept(stream);
  }

  // ---------------------------------------------------------------- peers

  /** Adds a neighbour (started at once if the speaker runs). Throws BgpConfigError for bad options or a duplicate address. */
  addPeer(config: PeerConfig): void {
    const c = validatePeerConfig(config, "peer");
    if (this.peers.has(c.address)) throw new BgpConfigError("peer.address", "is already configured", c.address);
    const p = this.createPeer(c);
    if (this.running) p.fsm.start();
  }

  /** Removes a neighbour: Cease/3 (Peer De-configured), its routes withdrawn. Throws BgpConfigError when unknown. */
  removePeer(address: string): void {
    const p = this.peers.get(canonicalAddress(address) ?? address);
    if (!p) throw new BgpConfigError("peer.address", "is not a configured peer", address);
    p.fsm.stop(CeaseSubcode.PEER_DECONFIGURED);
    p.grTimer?.cancel();
    p.staleTimer?.cancel();
    for (const key of [...p.adjIn.keys()]) this.removeAdjIn(p, key);
    this.peers.delete(p.config.address);
    this.established.delete(p);
    this.checkDeferral();
    this.schedule();
  }

  private capabilitiesFor(c: PeerConfig): Capability[] {
    const caps: Capability[] = this.families.map((f) => ({ kind: "multiprotocol", afi: f.afi, safi: f.safi }));
    caps.push({ kind: "route-refresh" });
    if (this.options.enhancedRouteRefresh !== false) caps.push({ kind: "enhanced-route-refresh" });
    if (this.options.extendedMessage) caps.push({ kind: "extended-message" });
    const gr = this.options.gracefulRestart;
    if (gr !== false) {
      // §3: R while the restart is in progress; our families (F once forwarding survived a restart)
      // only when peers are to keep our routes while we restart.
      const flags = (gr?.notification ? GracefulRestartFlag.NOTIFICATION : 0) | (this.deferring ? GracefulRestartFlag.RESTART : 0);
      const families = gr?.preserveForwarding ? this.families.map((f) => ({ afi: f.afi, safi: f.safi, flags: gr.restarting ? GR_FORWARDING_PRESERVED : 0 })) : [];
      caps.push({ kind: "graceful-restart", flags, restartTime: gr?.restartTime ?? 120, families });
    }
    caps.push({ kind: "four-octet-as", asn: this.asn });
    const ap: AddPathSetting | undefined = c.addPath ?? this.options.addPath;
    if (ap) {
      const mode = ap === "receive" ? 1 : ap === "send" ? 2 : 3;
      caps.push({ kind: "add-path", families: this.families.map((f) => ({ afi: f.afi, safi: f.safi, mode })) });
    }
    return caps;
  }

  private createPeer(c: PeerConfig): PeerRuntime {
    const o = this.options;
    const holdTime = c.holdTime ?? o.holdTime ?? 90;
    const settings: SessionSettings = {
      asn: this.asn,
      routerId: this.routerId,
      holdTime,
      openHoldTime: o.openHoldTime ?? 240,
      capabilities: this.capabilitiesFor(c),
      peerAs: c.asn,
      ...((c.keepaliveTime ?? o.keepaliveTime) !== undefined ? { keepaliveTime: (c.keepaliveTime ?? o.keepaliveTime)! } : {}),
      ...(c.requiredCapabilities ? { requiredCapabilities: c.requiredCapabilities } : {}),
    };
    const ibgp = c.asn === this.asn;
    const runtime: PeerRuntime = {
      config: c,
      ibgp,
      adjIn: new Map(),
      adjOut: new Map(),
      pending: new Map(),
      session: undefined,
      negotiated: undefined,
      source: undefined,
      familyKeys: new Set(),
      nextHop4: "",
      nextHop6: "",
      exportClass: "",
      classKeys: [],
      queued: false,
      sendEor: [],
      establishedAt: undefined,
      eorReceived: new Set(),
      eorAt: undefined,
      settings,
      grTimer: undefined,
      staleTimer: undefined,
      lastError: undefined,
      policyPeer: { address: c.address, asn: c.asn, routerId: "", ibgp, routeReflectorClient: c.routeReflectorClient === true },
      fsm: undefined as unknown as Peer,
    };
    runtime.fsm = new Peer({
      address: c.address,
      passive: c.passive === true,
      settings,
      timers: {
        connectRetryTime: c.connectRetryTime ?? o.connectRetryTime ?? 5,
        connectDelayTime: c.connectDelayTime ?? o.connectDelayTime ?? 0,
        idleHoldTime: c.idleHoldTime ?? o.idleHoldTime ?? 1,
      },
      clock: this.clock,
      random: this.random,
      jitter: o.jitter !== false,
      dial: () => {
        if (!o.transport) return Promise.reject(new BgpStateError("[bgp] no transport to dial with"));
        const target = { address: c.address, port: c.port ?? o.port ?? 179 };
        const bind = c.localAddress ?? o.localAddress;
        return o.transport.connect(bind !== undefined && afiOf(bind) === afiOf(c.address) ? { ...target, localAddress: bind } : target);
      },
      events: {
        onStateChange: (_peer, previous, state) => this.emitSession(runtime, previous, state),
        onEstablished: (_peer, session) => this.onEstablished(runtime, session),
        onDown: (_peer, _session, info) => this.onDown(runtime, info),
        onUpdate: (_peer, _session, update) => this.onUpdate(runtime, update),
        onRouteRefresh: (_peer, _session, m) => this.onRouteRefresh(runtime, m),
        onConnectionClosed: (_peer, session, info) => {
          runtime.lastError = info.reason;
          for (const e of session.internalErrors) if (this.internalErrors.length < 100) this.internalErrors.push(e);
        },
      },
    });
    this.peers.set(c.address, runtime);
    return runtime;
  }

  // ---------------------------------------------------------------- local routes

  /**
   * Originates `prefixes` (canonical `address/length`, IPv4 or IPv6) with `options`. Announcing a
   * prefix again replaces its attributes. Throws BgpConfigError (and changes nothing) when any
   * prefix or option is invalid. Idempotent.
   */
  announce(prefixes: string | readonly string[], options: AnnounceOptions = {}): void {
    const list = typeof prefixes === "string" ? [prefixes] : prefixes;
    const parsed = list.map((p, i) => {
      const pp = typeof p === "string" ? parsePrefix(p) : undefined;
      if (!pp) throw new BgpConfigError(`prefixes[${i}]`, "must be a prefix address/length with no host bits set", p);
      return { text: p.includes(":") ? `${canonicalAddress(p.slice(0, p.indexOf("/")))}${p.slice(p.indexOf("/"))}` : p, afi: pp.afi };
    });
    const byAfi = new Map<number, RouteAttributes>();
    const attrsFor = (afi: number): RouteAttributes => {
      let a = byAfi.get(afi);
      if (!a) {
        a = this.localAttributes(options, afi);
        byAfi.set(afi, a);
      }
      return a;
    };
    for (const { afi } of parsed) attrsFor(afi);
    const now = this.clock.now();
    for (const { text, afi } of parsed) {
      const route: Route = {
        prefix: text,
        afi,
        safi: Safi.UNICAST,
        pathId: 0,
        attributes: attrsFor(afi),
        source: this.localSource,
        receivedAt: now,
        stale: false,
        explicitNextHop: options.nextHop !== undefined,
      };
      const old = this.local.get(text);
      this.local.set(text, route);
      this.replaceCandidate(text, afi, Safi.UNICAST, old, route);
    }
  }

  /** Stops originating `prefixes`; unknown prefixes are ignored. Idempotent. */
  withdraw(prefixes: string | readonly string[]): void {
    const list = typeof prefixes === "string" ? [prefixes] : prefixes;
    for (const p of list) {
      const key = p.includes(":") ? `${canonicalAddress(p.slice(0, p.indexOf("/"))) ?? p}${p.slice(p.indexOf("/"))}` : p;
      const old = this.local.get(key);
      if (!old) continue;
      this.local.delete(key);
      this.replaceCandidate(key, old.afi, old.safi, old, undefined);
    }
  }

  private localAttributes(o: AnnounceOptions, afi: number): RouteAttributes {
    const origin = o.origin === undefined || o.origin === "igp" ? 0 : o.origin === "egp" ? 1 : o.origin === "incomplete" ? 2 : -1;
    if (origin < 0) throw new BgpConfigError("origin", "must be igp, egp or incomplete", o.origin);
    let nextHop: string;
    if (o.nextHop !== undefined) {
      nextHop = checkAddress(o.nextHop, "nextHop");
    } else {
      nextHop = afi === Afi.IPV4 ? (this.options.localAddress ?? "") : (this.options.localAddress6 ?? "");
    }
    const a: RouteAttributes = { origin, asPath: [], nextHop };
    if (o.asPath && o.asPath.length > 0) {
      o.asPath.forEach((x, i) => checkInt(x, `asPath[${i}]`, 1, 0xffffffff));
      a.asPath = [{ type: 2, asns: [...o.asPath] }];
    }
    if (o.med !== undefined) a.med = checkInt(o.med, "med", 0, 0xffffffff);
    if (o.localPref !== undefined) a.localPref = checkInt(o.localPref, "localPref", 0, 0xffffffff);
    if (o.communities && o.communities.length > 0) a.communities = o.communities.map((c, i) => parseCommunity(c, `communities[${i}]`));
    if (o.largeCommunities && o.largeCommunities.length > 0) a.largeCommunities = o.largeCommunities.map((c, i) => parseLargeCommunity(c, `largeCommunities[${i}]`));
    if (o.atomicAggregate) a.atomicAggregate = true;
    // Intern, so that prefixes announced with equal options share one attribute object (and one UPDATE).
    const key = `${afi}|${o.nextHop !== undefined}|${this.attrKey(a)}`;
    const known = this.localAttrs.get(key);
    if (known) return known;
    this.localAttrs.set(key, a);
    return a;
  }

  // ---------------------------------------------------------------- events

  /** Calls `fn` for every Loc-RIB change (best route added, changed, withdrawn). Returns an unsubscribe function. */
  onRouteChange(fn: (event: RouteEvent) => void): () => void {
    this.routeListeners.add(fn);
    return () => this.routeListeners.delete(fn);
  }

  /** Calls `fn` for every peer state change. Returns an unsubscribe function. */
  onSessionState(fn: (event: SessionEvent) => void): () => void {
    this.sessionListeners.add(fn);
    return () => this.sessionListeners.delete(fn);
  }

  /** Calls `fn` when a peer sends End-of-RIB for a family. Returns an unsubscribe function. */
  onEndOfRib(fn: (event: EndOfRibEvent) => void): () => void {
    this.eorListeners.add(fn);
    return () => this.eorListeners.delete(fn);
  }

  private emit<T>(set: Set<(e: T) => void>, event: T): void {
    for (const fn of set) {
      try {
        fn(event);
      } catch (e) {
        (this.options.onListenerError ?? ((err: unknown) => console.error("[bgp] event listener threw:", err)))(e);
      }
    }
  }

  private emitSession(p: PeerRuntime, previous: PeerStateName, state: PeerStateName): void {
    const ev: SessionEvent = { peer: p.config.address, previous, state };
    if (previous === PeerState.ESTABLISHED && p.lastError) ev.reason = p.lastError;
    this.emit(this.sessionListeners, ev);
  }

  // ---------------------------------------------------------------- queries

  /** The selected route of every prefix in the Loc-RIB, sorted by prefix. */
  routes(): Route[] {
    const out: Route[] = [];
    for (const e of this.table.values()) if (e.best) out.push(e.best);
    return out.sort((a, b) => comparePrefixes(a.prefix, b.prefix));
  }

  /** The selected route for `prefix`, if any. */
  route(prefix: string): Route | undefined {
    return this.table.get(prefix)?.best;
  }

  /** Every candidate for `prefix` (Loc-RIB entry), if the prefix is known. */
  candidates(prefix: string): readonly Route[] {
    return this.table.get(prefix)?.routes ?? [];
  }

  /** Number of prefixes with a selected route (O(1)). */
  get routeCount(): number {
    return this.selected;
  }

  /** The routes a peer sent us (after import policy). Throws BgpConfigError for an unknown peer. */
  adjRibIn(peer: string): Route[] {
    return [...this.runtime(peer).adjIn.values()];
  }

  /** What we advertised to a peer: prefix and attributes as sent. Throws BgpConfigError for an unknown peer. */
  adjRibOut(peer: string): { prefix: string; attributes: RouteAttributes }[] {
    return [...this.runtime(peer).adjOut.entries()].map(([prefix, e]) => ({ prefix, attributes: e.attributes }));
  }

  /** Status of every configured peer. */
  peerStatus(): PeerStatus[] {
    return [...this.peers.values()].map((p) => this.status(p));
  }

  /** State of one peer. Throws BgpConfigError for an unknown peer. */
  peerState(peer: string): PeerStateName {
    return this.runtime(peer).fsm.state;
  }

  private runtime(peer: string): PeerRuntime {
    const p = this.peers.get(canonicalAddress(peer) ?? peer);
    if (!p) throw new BgpConfigError("peer", "is not a configured peer", peer);
    return p;
  }

  private status(p: PeerRuntime): PeerStatus {
    const s: PeerStatus = {
      address: p.config.address,
      asn: p.config.asn,
      state: p.fsm.state,
      prefixesReceived: p.adjIn.size,
      prefixesAdvertised: p.adjOut.size,
      staleRoutes: 0,
      connectRetryCounter: p.fsm.connectRetryCounter,
    };
    for (const r of p.adjIn.values()) if (r.stale) s.staleRoutes++;
    if (p.config.description !== undefined) s.description = p.config.description;
    if (p.lastError !== undefined) s.lastError = p.lastError;
    if (p.source) s.routerId = p.source.routerId;
    if (p.establishedAt !== undefined && p.session) s.establishedAt = p.establishedAt;
    if (p.eorAt !== undefined && p.session) s.endOfRibReceivedAt = p.eorAt;
    const n = p.negotiated;
    if (n && p.session) {
      s.negotiated = {
        holdTime: n.holdTime,
        keepaliveTime: n.keepaliveTime,
        fourOctetAs: n.fourOctetAs,
        families: n.families.map((f) => familyKey(f.afi, f.safi)),
        addPathReceive: [...n.addPathReceive],
        addPathSend: [...n.addPathSend],
        routeRefresh: n.routeRefresh,
        enhancedRouteRefresh: n.enhancedRouteRefresh,
        gracefulRestart: n.peerGracefulRestart !== undefined,
      };
      s.stats = { ...p.session.stats };
    }
    return s;
  }

  // ---------------------------------------------------------------- route refresh

  /**
   * Asks a peer to send its routes again (ROUTE-REFRESH, RFC 2918), for one family or all negotiated
   * ones. Throws BgpStateError when the session is not Established or the peer did not advertise
   * route refresh; BgpConfigError for an unknown peer.
   */
  refresh(peer: string, family?: Family): void {
    const p = this.runtime(peer);
    if (!p.session || !p.negotiated) throw new BgpStateError(`[bgp] peer ${peer} is not Established`);
    if (!p.negotiated.routeRefresh) throw new BgpStateError(`[bgp] peer ${peer} did not advertise route refresh`);
    const fams = family ? [family] : p.negotiated.families;
    for (const f of fams) p.session.send(encodeMessage({ type: "route-refresh", afi: f.afi, safi: f.safi, subtype: RouteRefreshSubtype.REQUEST }));
  }

  private onRouteRefresh(p: PeerRuntime, m: RouteRefreshMessage): void {
    const key = familyKey(m.afi, m.safi);
    if (!p.familyKeys.has(key) || !p.session) return; // RFC 2918 §4: ignore families not negotiated
    if (m.subtype === RouteRefreshSubtype.REQUEST) {
      const err = p.negotiated?.enhancedRouteRefresh === true;
      if (err) p.session.send(encodeMessage({ type: "route-refresh", afi: m.afi, safi: m.safi, subtype: RouteRefreshSubtype.BEGIN }));
      // Send the Adj-RIB-Out for the family again.
      for (const [prefix, entry] of p.adjOut) {
        if (familyKey(afiOf(prefix), Safi.UNICAST) !== key) continue;
        p.adjOut.delete(prefix);
        p.pending.set(prefix, entry);
      }
      this.flushPeer(p);
      this.endRound();
      if (err) p.session.send(encodeMessage({ type: "route-refresh", afi: m.afi, safi: m.safi, subtype: RouteRefreshSubtype.END }));
    } else if (m.subtype === RouteRefreshSubtype.BEGIN && p.negotiated?.enhancedRouteRefresh) {
      for (const r of p.adjIn.values()) if (familyKey(r.afi, r.safi) === key) r.stale = true;
    } else if (m.subtype === RouteRefreshSubtype.END && p.negotiated?.enhancedRouteRefresh) {
      this.dropStale(p, (r) => familyKey(r.afi, r.safi) === key);
    }
    // Other subtypes are ignored (RFC 7313 §5).
  }

  // ---------------------------------------------------------------- session up / down

  private onEstablished(p: PeerRuntime, session: Session): void {
    const n = session.negotiated!;
    p.session = session;
    p.negotiated = n;
    p.establishedAt = this.clock.now();
    p.eorReceived = new Set();
    p.eorAt = undefined;
    p.familyKeys = new Set(n.families.map((f) => familyKey(f.afi, f.safi)));
    p.source = { kind: "peer", address: p.config.address, asn: n.peerAs, routerId: n.peerRouterId, ibgp: p.ibgp, rrClient: p.config.routeReflectorClient === true };
    p.policyPeer = { ...p.policyPeer, routerId: n.peerRouterId };
    const local = session.stream.localAddress;
    const local4 = parseIpv4(local) !== undefined ? local : (this.options.localAddress ?? "");
    const local6 = this.options.localAddress6 ?? (local.includes(":") ? (canonicalAddress(local) ?? "") : local4 ? `::ffff:${local4}` : "");
    p.nextHop4 = local4;
    p.nextHop6 = local6;
    p.exportClass = `${p.ibgp ? "i" : "e"}|${p.config.routeReflectorClient ? "c" : ""}|${p.config.nextHopSelf ? "s" : ""}|${n.fourOctetAs ? 4 : 2}|${local4}|${local6}`;
    p.classKeys = [];
    for (let i = 0; i < 8; i++) p.classKeys.push(`${p.exportClass}|${i & 4 ? "r" : ""}|${i & 2 ? 2 : 1}|${i & 1 ? "x" : ""}`);
    this.established.add(p);
    // Graceful restart: the peer is back. Families it no longer preserves lose their stale routes now.
    p.grTimer?.cancel();
    p.grTimer = undefined;
    const gr = n.peerGracefulRestart;
    this.dropStale(p, (r) => {
      const f = gr?.families.find((x) => x.afi === r.afi && x.safi === r.safi);
      return !f || (f.flags & GR_FORWARDING_PRESERVED) === 0 || !p.familyKeys.has(familyKey(r.afi, r.safi));
    });
    if ([...p.adjIn.values()].some((r) => r.stale)) {
      p.staleTimer?.cancel();
      p.staleTimer = this.clock.setTimeout(
        () => {
          p.staleTimer = undefined;
          this.dropStale(p, () => true);
        },
        (this.options.staleRoutesTime ?? 360) * 1000,
      );
    }
    if (this.deferring) {
      // §4.1: a restarting speaker sends nothing until its peers' End-of-RIB (endDeferral).
      p.adjOut.clear();
      p.pending.clear();
      p.sendEor = [];
    } else {
      this.sendInitialTable(p);
    }
    this.schedule();
  }

  /** Initial table: every selected route we may send, then End-of-RIB per family (RFC 4724 §2). */
  private sendInitialTable(p: PeerRuntime): void {
    p.adjOut.clear();
    p.pending.clear();
    for (const [prefix, e] of this.table) {
      if (!e.best) continue;
      const out = this.exportEntry(e.best, p);
      if (out) p.pending.set(prefix, out);
    }
    p.sendEor = [...p.negotiated!.families];
    this.queueFlush(p);
  }

  /**
   * Ends the restarting speaker's deferral (RFC 4724 §4.1) once every configured peer is Established
   * and has sent End-of-RIB for each negotiated family — peers without graceful restart or that
   * restart themselves (R bit) are not waited for.
   */
  private checkDeferral(): void {
    if (!this.deferring || !this.running) return;
    for (const p of this.peers.values()) {
      const n = p.session ? p.negotiated : undefined;
      if (!n) return;
      const gr = n.peerGracefulRestart;
      if (!gr || (gr.flags & GracefulRestartFlag.RESTART) !== 0) continue;
      if (!n.families.every((f) => p.eorReceived.has(familyKey(f.afi, f.safi)))) return;
    }
    this.endDeferral();
  }

  /** The restart is over: every Established peer gets its initial table and End-of-RIB; later OPENs carry no R bit. */
  private endDeferral(): void {
    if (!this.deferring) return;
    this.deferring = false;
    this.deferTimer?.cancel();
    this.deferTimer = undefined;
    for (const p of this.peers.values()) {
      p.settings.capabilities = this.capabilitiesFor(p.config);
      if (p.session && p.session.state === "Established") this.sendInitialTable(p);
    }
    this.schedule();
  }

  private onDown(p: PeerRuntime, info: CloseInfo): void {
    const n = p.negotiated;
    this.established.delete(p);
    p.session = undefined;
    p.adjOut.clear();
    p.pending.clear();
    p.sendEor = [];
    p.staleTimer?.cancel();
    p.staleTimer = undefined;
    // RFC 4724 §4.2 (and RFC 8538 with the N bit): keep the routes of preserved families as stale.
    const gr = n?.peerGracefulRestart;
    const notified = info.sent ?? info.received;
    const hardReset = notified !== undefined && notified.code === ErrorCode.CEASE && notified.subcode === CeaseSubcode.HARD_RESET;
    const graceful = gr !== undefined && gr.families.length > 0 && !hardReset && (notified === undefined || n!.notificationGracefulRestart);
    const keep = new Set<string>();
    if (graceful) for (const f of gr.families) if (p.familyKeys.has(familyKey(f.afi, f.safi))) keep.add(familyKey(f.afi, f.safi));
    for (const [key, r] of [...p.adjIn]) {
      if (keep.has(familyKey(r.afi, r.safi))) {
        if (!r.stale) {
          r.stale = true;
          const e = this.table.get(r.prefix);
          if (e) this.markDirty(e);
        }
      } else {
        this.removeAdjIn(p, key);
      }
    }
    if (keep.size > 0 && gr) {
      p.grTimer?.cancel();
      p.grTimer = this.clock.setTimeout(() => {
        p.grTimer = undefined;
        if (!p.session) this.dropStale(p, () => true);
      }, gr.restartTime * 1000);
    }
    this.schedule();
  }

  private dropStale(p: PeerRuntime, which: (r: Route) => boolean): void {
    for (const [key, r] of [...p.adjIn]) if (r.stale && which(r)) this.removeAdjIn(p, key);
    this.schedule();
  }

  // ---------------------------------------------------------------- receiving UPDATEs

  private onUpdate(p: PeerRuntime, update: UpdateMessage): void {
    const eor = endOfRibFamily(update);
    if (eor) {
      this.dropStale(p, (r) => r.afi === eor.afi && r.safi === eor.safi);
      p.eorReceived.add(familyKey(eor.afi, eor.safi));
      if (p.eorAt === undefined && p.negotiated!.families.every((f) => p.eorReceived.has(familyKey(f.afi, f.safi)))) p.eorAt = this.clock.now();
      this.emit(this.eorListeners, { peer: p.config.address, afi: eor.afi, safi: eor.safi });
      this.checkDeferral();
      return;
    }
    for (const w of withdrawnFromUpdate(update)) for (const n of w.nlri) this.removeAdjIn(p, adjKey(n));
    if (isTreatAsWithdraw(update)) {
      // RFC 7606 §2: withdraw everything the UPDATE announced; the session stays up.
      for (const a of announcedNlri(update)) for (const n of a.nlri) this.removeAdjIn(p, adjKey(n));
      return;
    }
    const n = p.negotiated!;
    const now = this.clock.now();
    for (const group of routesFromUpdate(update, n.fourOctetAs)) {
      const fkey = familyKey(group.afi, group.safi);
      if (!p.familyKeys.has(fkey)) continue;
      const imported = this.importAttributes(p, group.attributes, group.afi);
      if (imported.withdraw) {
        for (const x of group.nlri) this.removeAdjIn(p, adjKey(x));
        continue;
      }
      for (const x of group.nlri) {
        let attrs = imported.attributes;
        if (this.options.importPolicy) {
          const res = this.options.importPolicy({ prefix: x.prefix, attributes: attrs, peer: p.policyPeer });
          if (res === null) {
            this.removeAdjIn(p, adjKey(x));
            continue;
          }
          attrs = res;
        }
        const route: Route =
          imported.ineligible === undefined
            ? { prefix: x.prefix, afi: group.afi, safi: group.safi, pathId: x.pathId ?? 0, attributes: attrs, source: p.source!, receivedAt: now, stale: false }
            : { prefix: x.prefix, afi: group.afi, safi: group.safi, pathId: x.pathId ?? 0, attributes: attrs, source: p.source!, receivedAt: now, stale: false, ineligible: imported.ineligible };
        const key = adjKey(x);
        const old = p.adjIn.get(key);
        p.adjIn.set(key, route);
        this.replaceCandidate(x.prefix, group.afi, group.safi, old, route);
      }
    }
  }

  /**
   * Applies the receive-side rules to the attributes of one UPDATE: LOCAL_PREF from eBGP peers is
   * discarded (RFC 7606 §7.5) and routes without one get the default; a semantically wrong NEXT_HOP
   * or an eBGP AS_PATH that does not start with the peer's AS makes the routes withdrawn (RFC 7606
   * §7.3, §7.2); AS_PATH / ORIGINATOR_ID / CLUSTER_LIST loops make them ineligible (§9.1.2,
   * RFC 4456 §8).
   */
  private importAttributes(p: PeerRuntime, base: RouteAttributes, afi: number): { attributes: RouteAttributes; withdraw?: string; ineligible?: string } {
    // Interned attributes (the same bytes from any session of the process) are copied once.
    const a = isInterned(base) ? derived(p.ibgp ? this.importCaches[0] : this.importCaches[1], base, () => this.importCopy(p, base)) : this.importCopy(p, base);
    if (!p.ibgp) {
      const first = neighborAs(a.asPath);
      if (first !== p.negotiated!.peerAs) return { attributes: a, withdraw: `AS_PATH does not start with the peer's AS ${p.negotiated!.peerAs}` };
    }
    const bad = badNextHop(a.nextHop, afi, p.session?.stream.localAddress);
    if (bad) return { attributes: a, withdraw: bad };
    if (asPathContains(a.asPath, this.asn)) return { attributes: a, ineligible: "AS_PATH contains our AS" };
    if (a.originatorId === this.routerId) return { attributes: a, ineligible: "ORIGINATOR_ID is our BGP Identifier" };
    if (a.clusterList?.includes(this.clusterId)) return { attributes: a, ineligible: "CLUSTER_LIST contains our CLUSTER_ID" };
    return { attributes: a };
  }

  /** The attributes as stored: LOCAL_PREF from eBGP peers replaced by the default, and the default where an iBGP peer sent none; the reflection attributes dropped from eBGP. */
  private importCopy(p: PeerRuntime, base: RouteAttributes): RouteAttributes {
    if (p.ibgp) return base.localPref === undefined ? { ...base, localPref: this.decision.defaultLocalPref } : base;
    const a: RouteAttributes = { ...base, localPref: this.decision.defaultLocalPref };
    delete a.originatorId;
    delete a.clusterList;
    return a;
  }

  private removeAdjIn(p: PeerRuntime, key: string): void {
    const old = p.adjIn.get(key);
    if (!old) return;
    p.adjIn.delete(key);
    this.replaceCandidate(old.prefix, old.afi, old.safi, old, undefined);
  }

  /** Swaps `old` for `route` among the candidates of `prefix` (either may be undefined) and marks it dirty. */
  private replaceCandidate(prefix: string, afi: number, safi: number, old: Route | undefined, route: Route | undefined): void {
    let e = this.table.get(prefix);
    if (!e) {
      if (!route) return;
      e = { prefix, afi, safi, routes: [], best: undefined };
      this.table.set(prefix, e);
    }
    if (old) {
      const i = e.routes.indexOf(old);
      if (i >= 0) {
        if (route) e.routes[i] = route;
        else e.routes.splice(i, 1);
      } else if (route) {
        e.routes.push(route);
      }
    } else if (route) {
      e.routes.push(route);
    }
    this.markDirty(e);
  }

  // ---------------------------------------------------------------- decision and sending

  private markDirty(e: PrefixEntry): void {
    this.dirty.set(e.prefix, e);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.runProcess);
  }

  /** Runs the decision process for every dirty prefix, then sends what changed to every peer. */
  private process(): void {
    this.scheduled = false;
    // iBGP peers that are not our clients never get a route learned from another such peer (split
    // horizon): a prefix whose old and new best are both such routes skips them as a group, so a
    // full mesh costs nothing per UPDATE for the peers it is not exported to. Grouped on first use.
    let mesh: PeerRuntime[] | undefined;
    const others: PeerRuntime[] = [];
    const listening = this.routeListeners.size > 0;
    for (const [prefix, e] of this.dirty) {
      const old = e.best;
      const best = selectBest(e.routes, this.decision);
      if (e.routes.length === 0) this.table.delete(prefix);
      if (best === old) continue;
      e.best = best;
      if (!old) this.selected++;
      else if (!best) this.selected--;
      if (!listening) {
        // No listener: no event objects.
      } else if (!best) this.emit(this.routeListeners, { type: "withdrawn", prefix, previous: old! });
      else if (!old) this.emit(this.routeListeners, { type: "added", prefix, route: best });
      else if (old.source !== best.source || old.pathId !== best.pathId || this.attrKey(old.attributes) !== this.attrKey(best.attributes)) {
        this.emit(this.routeListeners, { type: "changed", prefix, route: best, previous: old });
      }
      if (mesh === undefined) {
        mesh = [];
        for (const p of this.established) {
          if (!p.session || p.session.state !== "Established") continue;
          if (p.ibgp && !p.config.routeReflectorClient) mesh.push(p);
          else others.push(p);
        }
      }
      // The only change of this round (routes trickling in): peers with nothing else pending get it
      // at once, without the pending map and the flush queue (the same UPDATE either way).
      const alone = this.dirty.size === 1;
      for (let g = 0; g < 2; g++) {
        const group = g === 0 ? others : mesh;
        if (g === 1 && (mesh.length === 0 || (splitHorizon(old) && splitHorizon(best)))) break;
        for (const p of group) {
          const entry = best ? this.exportEntry(best, p) : null;
          // Nothing to send and nothing sent before: skip the flush.
          if (entry === null && !p.adjOut.has(prefix) && !p.pending.has(prefix)) continue;
          if (alone && !p.queued && !this.deferring) {
            // Not queued: nothing else pending (`flushPeer` empties it; `queueFlush` goes with every `pending.set`).
            const s = p.session;
            if (s && s.state === "Established") {
              this.flushOne(p, s, prefix, entry);
              this.sendEndOfRib(p, s);
            }
            continue;
          }
          p.pending.set(prefix, entry);
          this.queueFlush(p);
        }
      }
      this.lastExport = undefined;
    }
    this.dirty.clear();
    const queue = this.flushQueue;
    this.flushQueue = [];
    for (const p of queue) {
      p.queued = false;
      this.flushPeer(p);
    }
    this.endRound();
  }

  /** Forgets the UPDATEs packed in a flush round. */
  private endRound(): void {
    if (this.packed.size > 0) this.packed.clear();
    this.lastWithdraw = undefined;
  }

  private queueFlush(p: PeerRuntime): void {
    if (p.queued) return;
    p.queued = true;
    this.flushQueue.push(p);
  }

  /** Diffs a peer's pending changes against its Adj-RIB-Out and sends the difference, packed. */
  private flushPeer(p: PeerRuntime): void {
    const s = p.session;
    if (!s || s.state !== "Established" || this.deferring) {
      p.pending.clear();
      return;
    }
    if (p.pending.size === 1) {
      // One prefix (the common case while routes trickle in): no grouping, a short cache key.
      for (const [prefix, desired] of p.pending) this.flushOne(p, s, prefix, desired);
      p.pending.clear();
      this.sendEndOfRib(p, s);
      return;
    }
    type Fam = { afi: number; withdraw: Nlri[]; groups: Map<string, { entry: OutEntry; nlri: Nlri[] }> };
    // Families are few (IPv4, IPv6): index 0 and 1, created on first use.
    const fams: (Fam | undefined)[] = [undefined, undefined];
    const addPath = s.sendCodec.addPath;
    const ap4 = addPath !== undefined && addPath.has(IPV4_UNICAST_KEY);
    const ap6 = addPath !== undefined && addPath.has(IPV6_UNICAST_KEY);
    for (const [prefix, desired] of p.pending) {
      const cur = p.adjOut.get(prefix);
      if (desired === null ? !cur : cur !== undefined && cur.key === desired.key) continue;
      const v6 = prefix.includes(":");
      const nlri: Nlri = (v6 ? ap6 : ap4) ? { prefix, pathId: 1 } : { prefix };
      const idx = v6 ? 1 : 0;
      let f = fams[idx];
      if (!f) {
        f = { afi: v6 ? Afi.IPV6 : Afi.IPV4, withdraw: [], groups: new Map() };
        fams[idx] = f;
      }
      if (desired === null) {
        p.adjOut.delete(prefix);
        f.withdraw.push(nlri);
      } else {
        p.adjOut.set(prefix, desired);
        const g = f.groups.get(desired.key);
        if (g) g.nlri.push(nlri);
        else f.groups.set(desired.key, { entry: desired, nlri: [nlri] });
      }
    }
    p.pending.clear();
    const codec = s.sendCodec;
    for (const f of fams) {
      if (!f) continue;
      if (f.withdraw.length === 0) {
        // Announcements only: packing is per attribute group, so each group's UPDATEs are built (or
        // found) alone — a single-prefix group is its entry's cached UPDATE (initial tables).
        const ap = f.afi === Afi.IPV6 ? ap6 : ap4;
        const max = codec.maxMessageLength ?? 0;
        for (const g of f.groups.values()) {
          let messages: Uint8Array[] | undefined;
          if (g.nlri.length === 1) {
            messages = this.oneUpdate(g.entry, g.nlri[0]!.prefix, f.afi, ap, codec);
          } else {
            const key = `g|${f.afi}|${ap}|${max}|${g.entry.id}:${joinPrefixes(g.nlri)}`;
            messages = this.packed.get(key);
            if (!messages) {
              messages = packUpdates({ afi: f.afi, safi: Safi.UNICAST, withdraw: [], announce: [{ attributes: g.entry.block, nextHop: g.entry.nextHop, nlri: g.nlri }], codec });
              this.packed.set(key, messages);
            }
          }
          for (const m of messages) s.send(m);
        }
        continue;
      }
      let key = `${f.afi}|${f.afi === Afi.IPV6 ? ap6 : ap4}|${codec.maxMessageLength ?? 0}|${joinPrefixes(f.withdraw)}`;
      for (const g of f.groups.values()) key += `|${g.entry.id}:${joinPrefixes(g.nlri)}`;
      let messages = this.packed.get(key);
      if (!messages) {
        const announce: PackInput["announce"][number][] = [];
        for (const g of f.groups.values()) announce.push({ attributes: g.entry.block, nextHop: g.entry.nextHop, nlri: g.nlri });
        messages = packUpdates({ afi: f.afi, safi: Safi.UNICAST, withdraw: f.withdraw, announce, codec });
        this.packed.set(key, messages);
      }
      for (const m of messages) s.send(m);
    }
    this.sendEndOfRib(p, s);
  }

  private sendEndOfRib(p: PeerRuntime, s: Session): void {
    if (p.sendEor.length > 0) {
      for (const f of p.sendEor) s.send(encodeEndOfRib(f.afi, f.safi));
      p.sendEor = [];
    }
  }

  /** `flushPeer` for a single pending prefix: the same messages, shared by the peers due the same change in this round. */
  private flushOne(p: PeerRuntime, s: Session, prefix: string, desired: OutEntry | null): void {
    const cur = p.adjOut.get(prefix);
    if (desired === null ? !cur : cur !== undefined && cur.key === desired.key) return;
    if (desired === null) p.adjOut.delete(prefix);
    else p.adjOut.set(prefix, desired);
    const codec = s.sendCodec;
    const v6 = prefix.includes(":");
    const afi = v6 ? Afi.IPV6 : Afi.IPV4;
    const ap = codec.addPath !== undefined && codec.addPath.has(v6 ? IPV6_UNICAST_KEY : IPV4_UNICAST_KEY);
    if (desired !== null) {
      for (const m of this.oneUpdate(desired, prefix, afi, ap, codec)) s.send(m);
      return;
    }
    // A withdrawal: the same bytes for every peer due it in this round.
    const max = codec.maxMessageLength ?? 0;
    let w = this.lastWithdraw;
    if (w === undefined || w.prefix !== prefix || w.ap !== ap || w.max !== max) {
      const nlri: Nlri = ap ? { prefix, pathId: 1 } : { prefix };
      w = { prefix, ap, max, messages: packUpdates({ afi, safi: Safi.UNICAST, withdraw: [nlri], announce: [], codec }) };
      this.lastWithdraw = w;
    }
    for (const m of w.messages) s.send(m);
  }

  /** The UPDATEs announcing `prefix` alone with `entry` (cached on the entry; `ap`: ADD-PATH for the family). */
  private oneUpdate(entry: OutEntry, prefix: string, afi: number, ap: boolean, codec: Session["sendCodec"]): Uint8Array[] {
    const max = codec.maxMessageLength ?? 0;
    const c = entry.one;
    if (c !== undefined && c.prefix === prefix && c.ap === ap && c.max === max) return c.messages;
    const nlri: Nlri = ap ? { prefix, pathId: 1 } : { prefix };
    const messages = packUpdates({ afi, safi: Safi.UNICAST, withdraw: [], announce: [{ attributes: entry.block, nextHop: entry.nextHop, nlri: [nlri] }], codec });
    entry.one = { prefix, ap, max, messages };
    return messages;
  }

  /**
   * What to advertise of `route` to peer `p`, or null for nothing (§9.2 and RFC 4456 §6 rules,
   * RFC 1997 well-known communities, negotiated families, export policy).
   */
  private exportEntry(route: Route, p: PeerRuntime): OutEntry | null {
    if (!p.familyKeys.has(familyKey(route.afi, route.safi))) return null;
    const src = route.source;
    if (src.kind === "peer") {
      if (src.address === p.config.address) return null;
      if (src.ibgp && p.ibgp && !src.rrClient && !p.config.routeReflectorClient) return null; // iBGP split horizon
    }
    const comms = route.attributes.communities;
    if (comms) {
      if (comms.includes(WellKnownCommunity.NO_ADVERTISE)) return null;
      if (!p.ibgp && (comms.includes(WellKnownCommunity.NO_EXPORT) || comms.includes(WellKnownCommunity.NO_EXPORT_SUBCONFED))) return null;
    }
    const reflect = src.kind === "peer" && src.ibgp && p.ibgp;
    const cls = p.classKeys[(reflect ? 4 : 0) + (route.afi === Afi.IPV6 ? 2 : 0) + (route.explicitNextHop ? 1 : 0)]!;
    // Many peers share a class: remember the last lookup (reset per prefix by `process`).
    const last = this.lastExport;
    if (last && last.attributes === route.attributes && last.cls === cls && !this.options.exportPolicy) return last.entry;
    let perAttrs = this.exportCache.get(route.attributes);
    if (!perAttrs) {
      perAttrs = new Map();
      this.exportCache.set(route.attributes, perAttrs);
    }
    let entry = perAttrs.get(cls);
    if (entry === undefined) {
      const attrs = this.exportAttributes(route, p, reflect);
      entry = this.makeEntry(attrs, p, route.afi);
      perAttrs.set(cls, entry);
    }
    this.lastExport = { attributes: route.attributes, cls, entry };
    if (!this.options.exportPolicy || !entry) return entry;
    const res = this.options.exportPolicy({ prefix: route.prefix, attributes: entry.attributes, route, peer: p.policyPeer });
    if (res === null) return null;
    return res === entry.attributes ? entry : this.makeEntry(res, p, route.afi);
  }

  private makeEntry(attrs: RouteAttributes, p: PeerRuntime, afi: number): OutEntry {
    const block = encodeRouteAttributes(attrs, { fourOctetAs: p.negotiated!.fourOctetAs, afi });
    const nextHop = afi === Afi.IPV4 ? [attrs.nextHop] : attrs.nextHopLinkLocal ? [attrs.nextHop, attrs.nextHopLinkLocal] : [attrs.nextHop];
    const key = `${Buffer.from(block.buffer, block.byteOffset, block.length).toString("latin1")}|${nextHop.join(",")}`;
    return { id: this.nextEntryId++, attributes: attrs, block, key, nextHop, one: undefined };
  }

  /** The attributes as sent to `p` (RFC 4271 §5.1, RFC 4456 §8). */
  private exportAttributes(route: Route, p: PeerRuntime, reflect: boolean): RouteAttributes {
    const src = route.attributes;
    const a: RouteAttributes = { ...src };
    const selfHop = route.afi === Afi.IPV4 ? p.nextHop4 : p.nextHop6;
    const isLocal = route.source.kind === "local";
    if (!p.ibgp) {
      a.asPath = prependAs(src.asPath, this.asn);
      if (!(isLocal && route.explicitNextHop)) {
        a.nextHop = selfHop;
        delete a.nextHopLinkLocal;
      }
      delete a.localPref;
      delete a.originatorId;
      delete a.clusterList;
      if (!isLocal) delete a.med; // §5.1.4: MED is not passed on to other ASes
    } else {
      if (a.localPref === undefined) a.localPref = this.decision.defaultLocalPref;
      if ((isLocal && !route.explicitNextHop) || (p.config.nextHopSelf && !reflect)) {
        a.nextHop = selfHop;
        delete a.nextHopLinkLocal;
      }
      if (reflect) {
        a.originatorId = src.originatorId ?? route.source.routerId;
        a.clusterList = [this.clusterId, ...(src.clusterList ?? [])];
      }
    }
    return a;
  }

  private attrKey(a: RouteAttributes): string {
    let k = this.attrKeys.get(a);
    if (k === undefined) {
      k = JSON.stringify(a, (_key, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v));
      this.attrKeys.set(a, k);
    }
    return k;
  }
}

/** The route is learned from an iBGP peer that is not our client (so iBGP non-clients never get it), or there is none. */
function splitHorizon(r: Route | undefined): boolean {
  return r === undefined || (r.source.kind === "peer" && r.source.ibgp && !r.source.rrClient);
}

function joinPrefixes(list: readonly Nlri[]): string {
  let s = "";
  for (const n of list) s += `${n.prefix},`;
  return s;
}

function adjKey(n: Nlri): string {
  return n.pathId ? `${n.prefix}#${n.pathId}` : n.prefix;
}

/** Why a next hop cannot be used (RFC 4271 §5.1.3, §6.3; RFC 7606 §7.3), or undefined when it can. */
function badNextHop(nextHop: string, afi: number, ownAddress: string | undefined): string | undefined {
  if (afi === Afi.IPV4) {
    const v = parseIpv4(nextHop);
    if (v === undefined) {
      // IPv4 NLRI with an IPv6 next hop (RFC 8950) is acceptable when it parses.
      return canonicalAddress(nextHop) === undefined ? `NEXT_HOP ${nextHop} is not an address` : undefined;
    }
    if (v === 0 || v >= 0xe0000000) return `NEXT_HOP ${nextHop} is not a unicast address`;
  } else if (canonicalAddress(nextHop) === undefined || nextHop === "::") {
    return `next hop ${nextHop} is not a unicast address`;
  }
  if (ownAddress !== undefined && nextHop === ownAddress) return `NEXT_HOP ${nextHop} is our own address`;
  return undefined;
}

/** Orders prefixes: IPv4 before IPv6, then by address, then by length. */
export function comparePrefixes(a: string, b: string): number {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  if (!pa || !pb) return a < b ? -1 : a > b ? 1 : 0;
  if (pa.afi !== pb.afi) return pa.afi - pb.afi;
  for (let i = 0; i < pa.bytes.length; i++) if (pa.bytes[i] !== pb.bytes[i]) return pa.bytes[i]! - pb.bytes[i]!;
  return pa.length - pb.length;
}
