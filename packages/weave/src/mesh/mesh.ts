/**
 * `Mesh`: a Weave-like gossip mesh (weaveworks/mesh's router, local peer, routes, connection maker)
 * over the contract's `PeerTransport`. Streams for service `weave-mesh` are the control
 * connections, datagrams of `weave-mesh-heartbeat` the data-path heartbeats; every member node
 * (`Membership`) but ours is a candidate peer.
 *
 * ```ts
 * const mesh = new Mesh({ nodeName, transport: ctx.peers, members: ctx.members, clock, log, random,
 *   local: ctx.local, password, connLimit: 200, features: { fastdp: "1" } });
 * const ring = mesh.channel("IPallocation", handler);   // before or after start
 * await mesh.start();   mesh.status();   mesh.nextHop(peerName);   await mesh.stop();
 * ```
 *
 * Behaviour (see connection.ts for the handshake, topology.ts for merge and routes,
 * connection-maker.ts for back-off and the accept bucket):
 *  - Duplicate connections (two peers dialling each other at once) end with ONE: when a second
 *    connection to a peer completes its handshake, the one with the smaller connection id (the
 *    initiator's connection UID, known to both sides) is kept, on both sides alike.
 *  - CONN_LIMIT (`connLimit`) bounds this peer's connections: no dialling at the limit, inbound
 *    connections refused beyond it; inbound connections also pass a token bucket (burst 20, then
 *    one per 50 ms).
 *  - Topology gossip, DELTAS only: a change is tracked per peer record (base version + the
 *    connections set or removed); at most once per second (`GOSSIP_INTERVAL_MS`, coalescing
 *    everything changed meanwhile) the changed records go, each as a delta with its version, to
 *    min(⌈2·log2 N⌉, neighbours) random established neighbours (uniform: see `fanout`) plus any
 *    neighbour whose connection just came up.
 *    Receivers apply a delta to the record at its base (else ask for the full record) and relay
 *    only what was new to them. One changed link costs O(1) bytes per message, never the O(N²)
 *    topology (Weave sends the whole topology on every change).
 *  - Anti-entropy instead of Weave's full-topology pushes: on every new connection and every 30 s
 *    (to the same fan-out) a DIGEST (name, UID, version per peer: O(N)) goes out; the receiver
 *    REQUESTs the records that are newer there (a request per name at most every 5 s, so a
 *    newcomer with N neighbours pulls the full topology once, not N times) and answers a periodic
 *    digest with its own. A newcomer thus gets the full topology once; updates that name unknown
 *    peers are ignored and the unknown names requested from the sender.
 *  - Component channels (`GossipHandler`) ride the same connections: `gossip()` (complete state)
 *    to a newcomer and on the 30 s exchange, `onGossip` deltas relayed with the same fan-out and
 *    coalescing; broadcasts follow per-source BFS trees; unicasts go hop by hop (TTL 64). Updates
 *    queued before `start()` go out with the first flush; broadcasts and unicasts before `start()`
 *    (or to an unreachable peer: `gossipUnicast` returns false) are not sent.
 *  - Routes and `onChange` listeners are batched ≤ 100 ms, garbage collection (records of peers
 *    not reachable through any listed connection) runs in the same batch.
 *
 * Memory bounds: the topology holds at most 4096 records (the 12-bit short-id space); pending
 * gossip is a set of names ⊆ the topology plus per channel at most `MAX_PENDING_UPDATES` (256)
 * queued updates (older ones are dropped: the 30 s full exchange repairs); the request throttle
 * holds at most 4096 names and forgets them after 5 s; connections ≤ connLimit.
 */
import type { Clock, Datastore, Logger, Membership, PeerConnection, PeerTransport, TimerHandle } from "@cnikit/core";
import { ConfigError, Prefix, parseAddress } from "@cnikit/core";
import { MESSAGE, decodeHeartbeat, encodeMessage } from "./codec.ts";
import type { ConnectionEntry, DigestEntry, MeshMessage, PeerRecord, RecordDelta } from "./codec.ts";
import { ACCEPT_BURST, ACCEPT_REFILL_MS, ConnectionMaker, TokenBucket } from "./connection-maker.ts";
import type { TargetStatus } from "./connection-maker.ts";
import { HEARTBEAT_SERVICE, MeshConn } from "./connection.ts";
import type { SessionHandshake } from "./connection.ts";
import type { GossipChannel, GossipHandler } from "./gossip.ts";
import { MAX_PEERS, loadPeerName, preferredShortId, randomUid, resolveShortId } from "./identity.ts";
import type { PeerIdentity } from "./identity.ts";
import { meshSession } from "./session.ts";
import { Topology } from "./topology.ts";

export type { PeerIdentity } from "./identity.ts";

/** The stream service of control connections. */
export const MESH_SERVICE = "weave-mesh";
/** Protocol versions this implementation speaks. */
export const PROTOCOL_MIN_VERSION = 1;
export const PROTOCOL_MAX_VERSION = 2;
export const GOSSIP_INTERVAL_MS = 1_000;
export const FULL_EXCHANGE_MS = 30_000;
export const ROUTES_BATCH_MS = 100;
export const REQUEST_THROTTLE_MS = 5_000;
export const MAX_PENDING_UPDATES = 256;
export const UNICAST_TTL = 64;
/** Weave's default CONN_LIMIT. */
export const DEFAULT_CONN_LIMIT = 200;

export interface MeshOptions {
  nodeName: string;
  transport: PeerTransport;
  members: Membership;
  clock: Clock;
  log: Logger;
  random: () => number;
  /** Persists this peer's 48-bit name (created once, random). */
  local: Datastore;
  /** Encrypts every connection (ephemeral X25519 + password); all peers or none. */
  password?: string | undefined;
  /** CONN_LIMIT (Weave: 200). */
  connLimit: number;
  /** Peers whose underlay address is inside one of these skip encryption (when they trust us too). */
  trustedSubnets?: string[];
  /** Exchanged in the handshake (fastdp support, MTU, VTEP MAC …). */
  features?: Record<string, string>;
  /** Protocol versions spoken (default 1..2); for tests and rolling upgrades. */
  protocolVersions?: { min: number; max: number };
  /** Makes the per-connection key pair when `password` is set (default: `meshSession`, src/crypto). */
  sessionFactory?: (password: string) => SessionHandshake;
}

export interface MeshConnection {
  remote: PeerIdentity;
  node: string;
  outbound: boolean;
  established: boolean;
  encrypted: boolean;
  features: Record<string, string>;
  state: string;
  reason?: string;
}

export interface MeshPeer {
  identity: PeerIdentity;
  node: string;
  connections: { to: string; established: boolean }[];
}

export interface MeshStats {
  messagesSent: number;
  bytesSent: number;
  messagesReceived: number;
  bytesReceived: number;
}

/** Sent messages and bytes per kind (topology deltas, digests, requests, channel traffic). */
export type GossipCounters = Record<"topology" | "digest" | "request" | "channel" | "broadcast" | "unicast", { messages: number; bytes: number }>;

interface ChannelState {
  handler: GossipHandler;
  pending: Uint8Array[];
}

const KIND: Record<number, keyof GossipCounters> = {
  [MESSAGE.topology]: "topology",
  [MESSAGE.digest]: "digest",
  [MESSAGE.request]: "request",
  [MESSAGE.channelGossip]: "channel",
  [MESSAGE.broadcast]: "broadcast",
  [MESSAGE.unicast]: "unicast",
};

function checkOptions(o: MeshOptions): void {
  const field = (f: string, rule: string, value: unknown): ConfigError => new ConfigError({ component: "weave", field: `mesh.${f}`, rule, value });
  if (typeof o.nodeName !== "string" || o.nodeName === "") throw field("nodeName", "must be a non-empty node name", o.nodeName);
  if (!Number.isInteger(o.connLimit) || o.connLimit < 1) throw field("connLimit", "must be an integer >= 1 (Weave's CONN_LIMIT, default 200)", o.connLimit);
  if (o.password !== undefined && (typeof o.password !== "string" || o.password === "")) throw field("password", "must be a non-empty string when set", "(hidden)");
  const v = o.protocolVersions;
  if (v && !(Number.isInteger(v.min) && Number.isInteger(v.max) && v.min >= 1 && v.min <= v.max && v.max <= 255)) {
    throw field("protocolVersions", "must be integers with 1 <= min <= max <= 255", v);
  }
  for (const [k, val] of Object.entries(o.features ?? {})) if (typeof val !== "string") throw field(`features.${k}`, "must be a string", val);
}

export class Mesh {
  private readonly o: MeshOptions;
  private identity: PeerIdentity | undefined;
  private topology: Topology | undefined;
  private readonly trusted: Prefix[];
  private readonly channels = new Map<string, ChannelState>();
  /** Every live connection (handshaking or ready). */
  private readonly conns = new Set<MeshConn>();
  /** The kept ready connection per remote peer name. */
  private readonly byPeer = new Map<string, MeshConn>();
  private readonly forcedTargets = new Set<MeshConn>();
  private readonly requested = new Map<string, { version: number; at: number }>();
  private readonly listeners = new Set<() => void>();
  private readonly bucket: TokenBucket;
  private readonly maker: ConnectionMaker;
  private readonly counters: MeshStats = { messagesSent: 0, bytesSent: 0, messagesReceived: 0, bytesReceived: 0 };
  private readonly kinds: GossipCounters = {
    topology: { messages: 0, bytes: 0 },
    digest: { messages: 0, bytes: 0 },
    request: { messages: 0, bytes: 0 },
    channel: { messages: 0, bytes: 0 },
    broadcast: { messages: 0, bytes: 0 },
    unicast: { messages: 0, bytes: 0 },
  };
  private readonly refusals = new Map<string, string>();
  private flushTimer: TimerHandle | undefined;
  private lastFlush = Number.NEGATIVE_INFINITY;
  private batchTimer: TimerHandle | undefined;
  private periodic: TimerHandle | undefined;
  private offs: (() => void)[] = [];
  private running = false;
  /** Outbound connects in flight (count against the connection limit). */
  private dialling = 0;

  constructor(options: MeshOptions) {
    checkOptions(options);
    this.o = options;
    this.trusted = (options.trustedSubnets ?? []).map((s, i) => Prefix.parse(s, { component: "weave", field: `mesh.trustedSubnets[${i}]` }));
    this.bucket = new TokenBucket(options.clock, ACCEPT_BURST, ACCEPT_REFILL_MS);
    this.maker = new ConnectionMaker({
      clock: options.clock,
      random: options.random,
      log: options.log,
      dial: (node) => this.dial(node),
      isConnected: (node) => [...this.conns].some((c) => c.node === node),
      canDial: () => this.conns.size + this.dialling < options.connLimit,
    });
  }

  /** This peer's identity; throws before `start()`. */
  get self(): PeerIdentity {
    if (!this.identity) throw new Error("[weave] mesh: self is known after start()");
    return this.identity;
  }

  private get topo(): Topology {
    if (!this.topology) throw new Error("[weave] mesh: not started");
    return this.topology;
  }

  /** Loads (or creates) the peer name, listens, and starts dialling every member. Idempotent. */
  async start(): Promise<void> {
    if (this.running) return;
    const name = await loadPeerName(this.o.local, this.o.random);
    const record: PeerRecord = { name, nickname: this.o.nodeName, uid: randomUid(this.o.random), version: 1, shortId: preferredShortId(name), connections: [] };
    this.topology = new Topology(record);
    this.identity = this.identityOf(record);
    this.running = true;
    const t = this.o.transport;
    this.offs.push(t.listen(MESH_SERVICE, (pc) => this.accept(pc)));
    this.offs.push(t.onDatagram(HEARTBEAT_SERVICE, (from, bytes) => this.onHeartbeat(from, bytes)));
    this.offs.push(this.o.members.onChange(() => this.updateTargets()));
    this.periodic = this.o.clock.setInterval(() => this.fullExchange(), FULL_EXCHANGE_MS);
    this.updateTargets();
    if ([...this.channels.values()].some((ch) => ch.pending.length > 0)) this.scheduleFlush();
    this.o.log.info("mesh: started", { peer: name, uid: record.uid, node: this.o.nodeName });
  }

  /** Closes every connection and stops every timer. Idempotent. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.maker.stop();
    for (const off of this.offs) off();
    this.offs = [];
    for (const tm of [this.flushTimer, this.batchTimer, this.periodic]) tm?.cancel();
    for (const c of [...this.conns]) c.close(`${this.o.nodeName} is stopping`);
    this.conns.clear();
    this.byPeer.clear();
  }

  channel(name: string, handler: GossipHandler): GossipChannel {
    if (typeof name !== "string" || name === "") throw new ConfigError({ component: "weave", field: "channel", rule: "must be a non-empty name", value: name });
    if (this.channels.has(name)) throw new ConfigError({ component: "weave", field: "channel", rule: "is already registered", value: name });
    const state: ChannelState = { handler, pending: [] };
    this.channels.set(name, state);
    if (this.running) {
      // Registered after start: the neighbours already connected get its complete state now, as a
      // newcomer would (from a timer, so the caller finishes wiring the handler first).
      this.o.clock.setTimeout(() => {
        if (!this.running || this.channels.get(name) !== state) return;
        const full = this.safeGossip(name, state);
        if (full) this.sendAll([...this.byPeer.values()], { type: MESSAGE.channelGossip, channel: name, updates: [full] });
      }, 0);
    }
    return {
      gossip: (update) => {
        this.queueChannel(state, update);
      },
      gossipBroadcast: (update) => {
        if (!this.running) return;
        this.forwardBroadcast(name, this.self.name, update);
      },
      gossipUnicast: (peer, message) => this.sendUnicast(name, this.running ? this.self.name : "", peer, message, UNICAST_TTL),
    };
  }

  connections(): MeshConnection[] {
    const out: MeshConnection[] = [];
    for (const c of this.conns) {
      if (!c.remote) continue;
      const r = c.remote;
      const entry: MeshConnection = {
        remote: { name: r.name, nickname: r.nickname, uid: r.uid, version: this.topology?.get(r.name)?.version ?? 0, shortId: r.shortId },
        node: c.node,
        outbound: c.outbound,
        established: c.established,
        encrypted: c.encrypted,
        features: { ...r.features },
        state: c.state,
      };
      if (c.reason !== undefined) entry.reason = c.reason;
      out.push(entry);
    }
    return out;
  }

  peers(): MeshPeer[] {
    if (!this.topology) return [];
    return [...this.topology.all()].map((r) => ({ identity: this.identityOf(r), node: r.nickname, connections: r.connections.map((c) => ({ to: c.to, established: c.established })) }));
  }

  /** One known peer's identity (cheap: no copy of the topology), or undefined. */
  knows(peerName: string): PeerIdentity | undefined {
    const r = this.topology?.get(peerName);
    return r ? this.identityOf(r) : undefined;
  }

  /** The names of every known peer, this one included (cheaper than `peers()`). */
  peerNames(): string[] {
    return this.topology ? [...this.topology.all()].map((r) => r.name) : [];
  }

  /** How many peers the topology holds (this one included). */
  knownPeers(): number {
    return this.topology?.size ?? 0;
  }

  nextHop(peerName: string): string | undefined {
    return this.topology?.routes().get(peerName);
  }

  reachable(peerName: string): boolean {
    if (!this.topology) return false;
    return peerName === this.topology.selfName || this.topology.routes().has(peerName);
  }

  /** The peer name of the peer on node `node`, when known. */
  peerOfNode(node: string): string | undefined {
    if (!this.topology) return undefined;
    for (const r of this.topology.all()) if (r.nickname === node) return r.name;
    return undefined;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** The connection maker's view: failures, next attempt and last error per target node. */
  targets(): TargetStatus[] {
    return this.maker.status();
  }

  stats(): MeshStats {
    return { ...this.counters };
  }

  /** Sent messages and bytes per kind. */
  gossipCounters(): GossipCounters {
    return structuredClone(this.kinds);
  }

  status(): string[] {
    if (!this.topology || !this.identity) return ["mesh: not started"];
    const me = this.topology.self;
    const lines = [`mesh: peer ${me.name} (${me.nickname}) uid ${me.uid} version ${me.version} shortId ${me.shortId}${this.o.password ? ", encrypted" : ", not encrypted"}`];
    const known = this.topology.size;
    const reachable = this.topology.routes().size + 1;
    lines.push(`mesh: ${known} peers known, ${reachable} reachable; ${this.conns.size} connections (limit ${this.o.connLimit}), ${[...this.conns].filter((c) => c.established).length} established`);
    for (const c of [...this.conns].sort((a, b) => (a.node < b.node ? -1 : 1))) {
      const crypt = c.encrypted ? "encrypted" : c.trusted ? "plain (trusted subnet)" : "plain";
      const dir = c.outbound ? "->" : "<-";
      lines.push(`mesh: connection ${dir} ${c.node}${c.remote ? ` ${c.remote.name}` : ""} ${c.state} ${crypt}${c.remote ? ` v${c.version}` : ""}`);
    }
    for (const t of this.maker.status()) {
      if (t.failures === 0 && !this.refusals.has(t.node)) continue;
      const next = t.nextAttemptAt === undefined ? "" : `, retry in ${Math.max(0, Math.round((t.nextAttemptAt - this.o.clock.now()) / 1000))} s`;
      lines.push(`mesh: ${t.node} failing (${t.failures} failures${next}): ${this.refusals.get(t.node) ?? t.lastError ?? "unknown"}`);
    }
    const s = this.counters;
    lines.push(`mesh: gossip sent ${s.messagesSent} msgs / ${s.bytesSent} B, received ${s.messagesReceived} msgs / ${s.bytesReceived} B`);
    return lines;
  }

  // ---- identity ----

  private identityOf(r: PeerRecord): PeerIdentity {
    return { name: r.name, nickname: r.nickname, uid: r.uid, version: r.version, shortId: r.shortId };
  }

  // ---- connections ----

  private updateTargets(): void {
    if (!this.running) return;
    const members = new Set(this.o.members.list().map((n) => n.name));
    members.delete(this.o.nodeName);
    this.maker.setTargets(members);
    for (const node of this.refusals.keys()) if (!members.has(node)) this.refusals.delete(node);
    for (const c of [...this.conns]) if (!members.has(c.node)) c.close(`${c.node} left the cluster`);
  }

  private trusts(node: string): boolean {
    if (this.trusted.length === 0) return false;
    const info = this.o.members.get(node);
    return (info?.underlay ?? []).some((u) => {
      const addr = parseAddress(u.address);
      return this.trusted.some((p) => p.family === addr.family && p.contains(addr.value));
    });
  }

  private freeSlots(): number {
    return this.o.connLimit - this.conns.size - this.dialling;
  }

  private async dial(node: string): Promise<void> {
    this.dialling++;
    let pc: PeerConnection;
    try {
      pc = await this.o.transport.connect(node, MESH_SERVICE);
    } catch (err) {
      this.dialling--;
      this.maker.slotFreed(this.freeSlots());
      throw err;
    }
    this.dialling--;
    if (!this.running) {
      pc.close(`${this.o.nodeName} is stopping`);
      return;
    }
    if (this.conns.size >= this.o.connLimit) {
      pc.close(`connection limit reached at ${this.o.nodeName} (${this.o.connLimit})`);
      return;
    }
    this.open(pc, true);
  }

  private accept(pc: PeerConnection): void {
    if (!this.running) {
      pc.close(`${this.o.nodeName} is stopping`);
      return;
    }
    if (!this.bucket.take()) {
      this.o.log.debug("mesh: accept rate limit", { node: pc.remote });
      pc.close(`accept rate limit at ${this.o.nodeName}: burst ${ACCEPT_BURST}, then one per ${ACCEPT_REFILL_MS} ms; retry later`);
      return;
    }
    if (this.conns.size >= this.o.connLimit) {
      pc.close(`connection limit reached at ${this.o.nodeName} (${this.o.connLimit})`);
      return;
    }
    this.open(pc, false);
  }

  private open(pc: PeerConnection, outbound: boolean): void {
    const password = this.o.password;
    const conn = new MeshConn({
      pc,
      transport: this.o.transport,
      outbound,
      clock: this.o.clock,
      log: this.o.log,
      random: this.o.random,
      self: () => this.identityOf(this.topo.self),
      versions: this.o.protocolVersions ?? { min: PROTOCOL_MIN_VERSION, max: PROTOCOL_MAX_VERSION },
      features: this.o.features ?? {},
      session: password !== undefined ? (this.o.sessionFactory ?? meshSession)(password) : undefined,
      trusts: this.trusts(pc.remote),
      events: {
        ready: (c) => this.onReady(c),
        established: (c) => this.onEstablished(c),
        message: (c, m) => this.onMessage(c, m),
        closed: (c, reason) => this.onClosed(c, reason),
        sent: (bytes) => {
          this.counters.messagesSent++;
          this.counters.bytesSent += bytes;
        },
        received: (bytes) => {
          this.counters.messagesReceived++;
          this.counters.bytesReceived += bytes;
        },
      },
    });
    if (conn.state !== "closed") this.conns.add(conn);
  }

  private onReady(c: MeshConn): void {
    const r = c.remote!;
    const existing = this.byPeer.get(r.name);
    if (existing && existing !== c) {
      const [keep, drop] = existing.id <= c.id ? [existing, c] : [c, existing];
      drop.close(`duplicate connection to ${c.node} (keeping connection ${keep.id})`);
      if (drop === c) return;
    }
    this.refusals.delete(c.node);
    this.byPeer.set(r.name, c);
    this.maker.connected(c.node);
    const previous = this.topo.learnNeighbour({ name: r.name, nickname: r.nickname, uid: r.uid, shortId: r.shortId });
    if (previous) {
      // A restart: show the new incarnation its old record, so it bumps its version beyond it and
      // peers that still hold the old one (not connected to it) take the new one.
      this.o.log.info("mesh: peer restarted", { peer: r.name, node: c.node, from: previous.uid, to: r.uid });
      this.sendTo(c, { type: MESSAGE.topology, records: [previous], deltas: [] });
    }
    this.o.log.info("mesh: connection up", { node: c.node, peer: r.name, outbound: c.outbound, encrypted: c.encrypted, version: c.version });
    this.localChanged();
    // Anti-entropy with the newcomer: our digest (it pulls what it lacks) and our channels' state.
    this.sendTo(c, { type: MESSAGE.digest, replyWanted: false, entries: this.topo.digest() });
    for (const [name, ch] of this.channels) {
      const full = this.safeGossip(name, ch);
      if (full) this.sendTo(c, { type: MESSAGE.channelGossip, channel: name, updates: [full] });
    }
  }

  private onEstablished(c: MeshConn): void {
    if (this.byPeer.get(c.remote!.name) !== c) return;
    this.forcedTargets.add(c);
    this.localChanged();
  }

  private onClosed(c: MeshConn, reason: string): void {
    this.conns.delete(c);
    this.forcedTargets.delete(c);
    const duplicate = reason.startsWith("duplicate connection");
    const name = c.remote?.name;
    const wasKept = name !== undefined && this.byPeer.get(name) === c;
    if (wasKept) this.byPeer.delete(name);
    if (!duplicate) {
      if (c.readyAt === undefined) {
        this.refusals.set(c.node, reason);
        this.o.log.warn("mesh: connection refused", { node: c.node, reason });
      } else {
        this.o.log.info("mesh: connection down", { node: c.node, peer: name, reason });
      }
    }
    if (!this.running) return;
    this.maker.slotFreed(this.freeSlots());
    this.maker.disconnected(c.node, { upMs: c.readyAt === undefined ? undefined : this.o.clock.now() - c.readyAt, reason, duplicate });
    if (wasKept) this.localChanged();
  }

  private onHeartbeat(from: string, bytes: Uint8Array): void {
    this.counters.messagesReceived++;
    this.counters.bytesReceived += bytes.length;
    const hb = decodeHeartbeat(bytes);
    if (!hb) return;
    for (const c of this.conns) if (c.node === from && c.id === hb.connUid && c.remote?.name === hb.sender) c.heard();
  }

  /** Our connections changed: rebuild our record, gossip it, recompute routes. */
  private localChanged(): void {
    if (!this.running) return;
    const entries: ConnectionEntry[] = [];
    for (const [name, c] of this.byPeer) entries.push({ to: name, established: c.established, outbound: c.outbound });
    if (this.topo.setLocalConnections(entries)) this.identity = this.identityOf(this.topo.self);
    if (this.topo.hasChanges) this.scheduleFlush();
    this.topologyChanged();
  }

  // ---- gossip ----

  private sendTo(c: MeshConn, m: MeshMessage): void {
    const bytes = encodeMessage(m);
    if (c.sendEncoded(bytes)) this.count(m.type, bytes.length);
  }

  private count(type: number, bytes: number): void {
    const k = this.kinds[KIND[type]!];
    k.messages++;
    k.bytes += bytes;
  }

  /** Sends one message to many connections, encoding it once. */
  private sendAll(targets: Iterable<MeshConn>, m: MeshMessage): void {
    const bytes = encodeMessage(m);
    for (const c of targets) if (c.sendEncoded(bytes)) this.count(m.type, bytes.length);
  }

  /**
   * min(⌈2·log2 N⌉, neighbours) established neighbours, drawn uniformly. (Weave weights the draw by
   * how many unicast routes a neighbour carries; our BFS routes tie-break by name, so that weight
   * would pile onto the neighbours whose names sort first.)
   */
  private fanout(): MeshConn[] {
    const neighbours = [...this.byPeer.values()].filter((c) => c.established);
    const k = Math.min(Math.max(1, Math.ceil(2 * Math.log2(Math.max(2, this.topo.size)))), neighbours.length);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.o.random() * (neighbours.length - i));
      [neighbours[i], neighbours[j]] = [neighbours[j]!, neighbours[i]!];
    }
    return neighbours.slice(0, k);
  }

  private scheduleFlush(): void {
    if (this.flushTimer || !this.running) return;
    const delay = Math.max(0, this.lastFlush + GOSSIP_INTERVAL_MS - this.o.clock.now());
    this.flushTimer = this.o.clock.setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, delay);
  }

  /** Sends the coalesced deltas: changed records, then each channel's queued updates. */
  private flush(): void {
    if (!this.running) return;
    this.lastFlush = this.o.clock.now();
    const targets = new Set(this.fanout());
    for (const c of this.forcedTargets) if (c.ready) targets.add(c);
    this.forcedTargets.clear();
    // Nobody to tell yet: keep the changes (bounded by the topology) for the first neighbour.
    if (targets.size === 0) return;
    const { records, deltas } = this.topo.takeChanges();
    if (records.length + deltas.length > 0) this.sendAll(targets, { type: MESSAGE.topology, records, deltas });
    for (const [name, ch] of this.channels) {
      if (ch.pending.length === 0) continue;
      const updates = ch.pending;
      ch.pending = [];
      this.sendAll(targets, { type: MESSAGE.channelGossip, channel: name, updates });
    }
  }

  private queueChannel(ch: ChannelState, update: Uint8Array): void {
    ch.pending.push(update);
    if (ch.pending.length > MAX_PENDING_UPDATES) ch.pending.splice(0, ch.pending.length - MAX_PENDING_UPDATES);
    this.scheduleFlush();
  }

  /** Every 30 s: a digest to the fan-out (answered with theirs) and each channel's full state. */
  private fullExchange(): void {
    if (!this.running) return;
    const targets = this.fanout();
    if (targets.length === 0) return;
    this.sendAll(targets, { type: MESSAGE.digest, replyWanted: true, entries: this.topo.digest() });
    for (const [name, ch] of this.channels) {
      const full = this.safeGossip(name, ch);
      if (full) this.sendAll(targets, { type: MESSAGE.channelGossip, channel: name, updates: [full] });
    }
  }

  private safeGossip(name: string, ch: ChannelState): Uint8Array | undefined {
    try {
      return ch.handler.gossip();
    } catch (err) {
      this.o.log.error("mesh: a channel's gossip() threw", { channel: name, error: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  }

  private onMessage(c: MeshConn, m: MeshMessage): void {
    switch (m.type) {
      case MESSAGE.topology:
        this.onTopology(c, m.records, m.deltas);
        break;
      case MESSAGE.digest:
        this.onDigest(c, m.entries, m.replyWanted);
        break;
      case MESSAGE.request: {
        const records = m.names.map((n) => this.topo.get(n)).filter((r): r is PeerRecord => r !== undefined);
        if (records.length > 0) this.sendTo(c, { type: MESSAGE.topology, records, deltas: [] });
        break;
      }
      case MESSAGE.channelGossip:
        this.onChannelGossip(c, m.channel, m.updates);
        break;
      case MESSAGE.broadcast:
        this.onBroadcast(c, m.channel, m.source, m.payload);
        break;
      case MESSAGE.unicast:
        this.onUnicast(c, m.channel, m.source, m.dest, m.ttl, m.payload);
        break;
    }
  }

  private onTopology(c: MeshConn, records: PeerRecord[], deltas: RecordDelta[]): void {
    const result = this.topo.merge(records, deltas, (name) => this.byPeer.get(name)?.remote?.uid);
    if (result.selfBumped) this.identity = this.identityOf(this.topo.self);
    for (const r of result.restarted) this.o.log.info("mesh: peer restarted", { peer: r.name, from: r.from, to: r.to });
    if (result.overflow > 0) this.o.log.warn("mesh: topology full, records ignored", { limit: MAX_PEERS, ignored: result.overflow });
    const wanted = new Map<string, number>();
    for (const r of records) wanted.set(r.name, r.version);
    for (const d of deltas) wanted.set(d.name, Math.max(d.version, wanted.get(d.name) ?? 0));
    const ask = (names: string[]): { name: string; version: number }[] => names.map((name) => ({ name, version: wanted.get(name) ?? Number.MAX_SAFE_INTEGER }));
    if (result.unknown.length > 0) this.request(c, ask(result.unknown.concat(result.needFull)), true);
    else if (result.needFull.length > 0) this.request(c, ask(result.needFull), false);
    if (result.changed.length > 0 || result.selfBumped) {
      this.scheduleFlush();
      this.topologyChanged();
    }
  }

  private onDigest(c: MeshConn, entries: DigestEntry[], replyWanted: boolean): void {
    const versions = new Map(entries.map((e) => [e.name, e.version]));
    this.request(
      c,
      this.topo.newerIn(entries).map((name) => ({ name, version: versions.get(name)! })),
      false,
    );
    if (replyWanted) this.sendTo(c, { type: MESSAGE.digest, replyWanted: false, entries: this.topo.digest() });
  }

  /**
   * Asks `c` for full records, skipping a name already asked for (at that version or later) within
   * the last 5 s unless `force`: a newcomer hearing N digests at once pulls each record once.
   */
  private request(c: MeshConn, items: { name: string; version: number }[], force: boolean): void {
    const now = this.o.clock.now();
    for (const [n, r] of this.requested) if (now - r.at >= REQUEST_THROTTLE_MS) this.requested.delete(n);
    const ask = new Set<string>();
    for (const { name, version } of items) {
      const asked = this.requested.get(name);
      if (!force && asked && asked.version >= version) continue;
      if (!asked && this.requested.size >= MAX_PEERS) continue;
      this.requested.set(name, { version, at: now });
      ask.add(name);
    }
    if (ask.size > 0) this.sendTo(c, { type: MESSAGE.request, names: [...ask] });
  }

  private onChannelGossip(c: MeshConn, channel: string, updates: Uint8Array[]): void {
    const ch = this.channels.get(channel);
    if (!ch) return;
    for (const u of updates) {
      let delta: Uint8Array | undefined;
      try {
        delta = ch.handler.onGossip(u);
      } catch (err) {
        this.rejected(c, channel, err);
        return;
      }
      if (delta) this.queueChannel(ch, delta);
    }
  }

  private rejected(c: MeshConn, channel: string, err: unknown): void {
    const msg = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown } | null)?.code;
    this.o.log.warn("mesh: gossip rejected", { channel, node: c.node, code, error: msg });
    c.close(`${channel} gossip from ${c.node} rejected: ${msg}`);
  }

  private forwardBroadcast(channel: string, source: string, payload: Uint8Array): void {
    const children = this.topo.broadcastChildren(source);
    const targets = children.map((n) => this.byPeer.get(n)).filter((c): c is MeshConn => c !== undefined);
    this.sendAll(targets, { type: MESSAGE.broadcast, channel, source, payload });
  }

  private onBroadcast(c: MeshConn, channel: string, source: string, payload: Uint8Array): void {
    if (source === this.topo.selfName) return;
    const ch = this.channels.get(channel);
    if (ch) {
      try {
        ch.handler.onGossipBroadcast(source, payload);
      } catch (err) {
        this.rejected(c, channel, err);
        return;
      }
    }
    this.forwardBroadcast(channel, source, payload);
  }

  private sendUnicast(channel: string, source: string, dest: string, payload: Uint8Array, ttl: number): boolean {
    if (!this.running) return false;
    if (dest === this.topo.selfName) {
      this.o.clock.setTimeout(() => this.deliverUnicast(undefined, channel, source, payload), 0);
      return true;
    }
    const hop = this.topo.routes().get(dest);
    const c = hop === undefined ? undefined : this.byPeer.get(hop);
    if (!c) return false;
    this.sendTo(c, { type: MESSAGE.unicast, channel, source, dest, ttl, payload });
    return true;
  }

  private onUnicast(c: MeshConn, channel: string, source: string, dest: string, ttl: number, payload: Uint8Array): void {
    if (dest === this.topo.selfName) {
      this.deliverUnicast(c, channel, source, payload);
      return;
    }
    if (ttl <= 1 || !this.sendUnicast(channel, source, dest, payload, ttl - 1)) {
      this.o.log.debug("mesh: unicast dropped", { channel, source, dest, ttl, reason: ttl <= 1 ? "ttl" : "no route" });
    }
  }

  private deliverUnicast(c: MeshConn | undefined, channel: string, source: string, payload: Uint8Array): void {
    const ch = this.channels.get(channel);
    if (!ch) return;
    try {
      ch.handler.onGossipUnicast(source, payload);
    } catch (err) {
      if (c) this.rejected(c, channel, err);
      else this.o.log.warn("mesh: unicast handler threw", { channel, error: err instanceof Error ? err.message : String(err) });
    }
  }

  // ---- batched topology work ----

  /** Routes, GC, short-id collisions and listeners, batched ≤ 100 ms. */
  private topologyChanged(): void {
    if (this.batchTimer || !this.running) return;
    this.batchTimer = this.o.clock.setTimeout(() => {
      this.batchTimer = undefined;
      if (!this.running) return;
      const removed = this.topo.collectGarbage();
      if (removed.length > 0) this.o.log.info("mesh: peers forgotten (unreachable)", { peers: removed });
      const me = this.topo.self;
      const shortId = resolveShortId(me, this.topo.all());
      if (shortId !== me.shortId) {
        this.topo.setLocalShortId(shortId);
        this.identity = this.identityOf(me);
        this.scheduleFlush();
      }
      for (const l of [...this.listeners]) {
        try {
          l();
        } catch (err) {
          this.o.log.warn("mesh: an onChange listener threw", { error: err instanceof Error ? err.message : String(err) });
        }
      }
    }, ROUTES_BATCH_MS);
  }
}
