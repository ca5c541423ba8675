/**
 * `IpamAllocator`: Weave's IPAM — one range split among peers by a CRDT ring (ring.ts), agreed by
 * Paxos over gossip (paxos.ts), space moved between peers by donation, addresses allocated
 * lowest-free first-fit inside owned space (space.ts), the ring and the allocations persisted in
 * `local` (the node's Datastore) so a restart keeps both. It is a `GossipHandler`: the agent
 * registers it on the mesh channel "IPallocation" and hands the channel back with `attach`.
 *
 * Lifecycle and API
 *  - `start()` loads the persisted ring, allocations and Paxos acceptor state; `stop()` rejects
 *    waiting allocations with ClosedError and stops timers.
 *  - `allocate(key, {address?, signal?})`: idempotent per key. Waits for the ring (consensus, a
 *    seed, an observer's first ring) and for space (a donation) up to `grantTimeoutMs`, then
 *    rejects with TryAgainError ("awaiting consensus (quorum: q, known: k)", "waiting for IP range
 *    grant from peers", "all IP ranges owned by unreachable peers"); PoolExhaustedError when no
 *    peer advertises a free address; AddressInUseError for a specific address someone holds;
 *    ConfigError (field `address`) for an address outside the range or reserved (the range's first
 *    and last addresses are never handed out: pods take the whole range's netmask).
 *  - `release(key)` (idempotent), `owner(address)`, `allocations()`, `status()`, `peersGone(names)`.
 *
 * Initialisation (`init`): "consensus" — lazy single-value Paxos at the first allocation, quorum
 * floor(N/2)+1 of `quorum` N or of the peers the mesh knows (self included); the value is the set
 * of peers that promised, and the ring splits among them. "seed" — the ring is built at start from
 * the seed list (identical on every peer; a peer that starts without persisted data, or alone,
 * serves nothing before it has merged a peer's ring, since its share may have been donated since).
 * "observer" — never votes in the initial consensus, waits for a ring, then asks for space. Any
 * ring a peer without one hears is adopted; a Paxos prepare for "init" reaching a peer that has a
 * ring is answered with the ring.
 *
 * Getting space: a peer with no free owned address unicasts "want" to a donor picked at random
 * weighted by advertised free space (skipping unreachable ones); the donor gives its largest free
 * CIDR-aligned block of at most half its free space, persists, then unicasts its ring to the asker
 * and gossips the delta; a donor with nothing to give answers with its ring (a refusal refreshes
 * the asker's view). Specific addresses owned by another peer are asked for with "claim".
 *
 * Safety rules (better than Weave; each has a test named after the Weave issue):
 *  1. Rings seeded by different peers (#3908, #1720): the ring with the lower identity
 *     (weight = number of peers that agreed it, then seed id) yields WHOLE — its peers adopt the
 *     higher ring as it is, so no address is ever owned by two peers. A yielding peer's existing
 *     allocations are claimed, address by address, from their owner in the winning ring: a free
 *     address is donated to it (the pod keeps its address), one the owner has itself allocated is
 *     denied, and the yielding peer reports it (error log, status) and drops it from its
 *     allocations — never served twice, never re-homed silently. No manual reset. What this cannot
 *     undo: while apart, both sides may have handed the same address to a pod (only a correct
 *     consensus=N, which lets at most one side agree, prevents that); the merged state then keeps
 *     it on the winning side only and names the pod to re-create on the other.
 *  2. Departed peers (#2797, #3384): `peersGone` (membership says the peer left for good, or its
 *     name was replaced) starts a Paxos instance "reclaim:<peer>" among the ring's owners. Voters:
 *     the owners that membership has not declared gone; quorum: a majority of them; an acceptor
 *     votes only when its own membership also says the peer is gone, and a proposer counts only
 *     voters. Exactly one claimant is decided; the decision is a tombstone in the ring (gossiped,
 *     never removed): the dead peer's tokens belong to the claimant at once and a tombstoned name
 *     never owns space again, even if it comes back with old data. Safe because membership's
 *     "gone" only grows and a gone peer never votes again: a proposer with an older view needs a
 *     majority of a larger set, which then holds every live voter of the newer view. Liveness needs
 *     one live owner: when every owner is gone nobody may claim (the others wait with "all IP
 *     ranges owned by unreachable peers"), as any quorum system stops without its members.
 *  3. Restarts with stale data (#1949, #2719, #3003): every change of the ring or the
 *     allocations is persisted before it is sent or returned; a peer that starts from a persisted
 *     ring changes and serves nothing until it has merged a ring from a peer (unless it owns the
 *     whole ring), then versions win, and persisted allocations outside what it now owns are
 *     reported and refused, never served. Two states of one token under one version (impossible
 *     between honest peers) are ordered the same way everywhere and reported ("ring conflict" in
 *     status, an error log); allocations that lose their space that way are refused like stale ones.
 */
import {
  AddressInUseError,
  ClosedError,
  ConfigError,
  PoolExhaustedError,
  Prefix,
  TryAgainError,
  FNV1A_OFFSET,
  fnv1a32Hex,
  formatAddress,
  parseAddress,
  type Clock,
  type Datastore,
  type Logger,
  type TimerHandle,
} from "@cnikit/core";
import type { GossipChannel, GossipHandler } from "../mesh/gossip.ts";
import { GossipRejected } from "../mesh/gossip.ts";
import { decodeMessage, encodeMessage, fromWire, toWire, type IpamMessage } from "./codec.ts";
import { Paxos, type AcceptorState, type PaxosMessage } from "./paxos.ts";
import { Ring, compareIdentity, type RingIdentity, type RingState } from "./ring.ts";
import { firstFree, freeIn, largestFreeBlock, type OffsetRange } from "./space.ts";

export type IpallocInit = { mode: "consensus"; quorum?: number } | { mode: "seed"; peers: string[] } | { mode: "observer" };

export interface RingOptions {
  /** IPALLOC_RANGE: an IPv4 CIDR of at least 4 addresses. */
  range: string;
  /** This peer's name. */
  self: string;
  /** This peer's node name. */
  nickname: string;
  init: IpallocInit;
  clock: Clock;
  log: Logger;
  random: () => number;
  /** Node-local persistent store (ring, allocations, Paxos acceptor state). */
  local: Datastore;
  /** Peer names the mesh currently knows (the consensus quorum when N is absent). */
  knownPeers: () => string[];
  /** How long `allocate` waits for a ring or space before TryAgainError. Default 30 000 ms. */
  grantTimeoutMs?: number;
  /** How often a waiting allocation asks again (another donor, a lost request). Default 2 000 ms. */
  askEveryMs?: number;
  /** Paxos proposer retry base. Default 1 500 ms. */
  paxosRetryMs?: number;
}

/** Keys in `local`. */
export const IPAM_KEYS = { ring: "weave/ipam/ring", alloc: "weave/ipam/alloc/", paxos: "weave/ipam/paxos/" } as const;

const INIT = "init";
const RECLAIM = "reclaim:";
const COMPONENT = "weave";

interface InitValue {
  members: string[];
  seed: string;
}

export class IpamAllocator implements GossipHandler {
  private readonly o: RingOptions;
  private readonly prefix: Prefix;
  private readonly base: number;
  private readonly size: number;
  private ring: Ring | undefined;
  private channel: GossipChannel | undefined;
  private readonly allocs = new Map<string, number>();
  private readonly byOffset = new Map<number, string>();
  /** Offsets of our allocations being claimed from their owner after our ring yielded -> owner. */
  private readonly claiming = new Map<number, string>();
  /** Offsets a peer refused to give us (it holds them itself). */
  private readonly denied = new Set<number>();
  private readonly reports: string[] = [];
  private readonly gone = new Set<string>();
  private readonly unreachable = new Set<string>();
  /** False while a ring loaded from disk has not yet been merged with a peer's. */
  private synced = true;
  private readonly paxos: Paxos;
  private waiters = new Set<() => void>();
  private writes: Promise<void> = Promise.resolve();
  private tick: TimerHandle | undefined;
  private started = false;
  /** Messages that arrived before `start()` had loaded the persisted state: handled after it. */
  private early: Array<() => void> | undefined = [];
  private stopped = false;
  private lastPush = Number.NEGATIVE_INFINITY;
  /** When this peer last answered a proposer's "init" prepare with its ring. */
  private readonly ringSentTo = new Map<string, number>();

  constructor(o: RingOptions) {
    this.prefix = Prefix.parse(o.range, { field: "IPALLOC_RANGE", component: COMPONENT });
    if (this.prefix.family !== 4) throw new ConfigError({ component: COMPONENT, field: "IPALLOC_RANGE", rule: "must be an IPv4 CIDR (the ring is IPv4 only)", value: o.range });
    if (this.prefix.length > 30) throw new ConfigError({ component: COMPONENT, field: "IPALLOC_RANGE", rule: "must hold at least 4 addresses (/30 or shorter)", value: o.range });
    if (typeof o.self !== "string" || o.self === "") throw new ConfigError({ component: COMPONENT, field: "self", rule: "must be a non-empty peer name", value: o.self });
    const init = o.init as { mode?: unknown; quorum?: unknown; peers?: unknown };
    if (init?.mode === "consensus") {
      if (init.quorum !== undefined && !(Number.isInteger(init.quorum) && (init.quorum as number) >= 0)) {
        throw new ConfigError({ component: COMPONENT, field: "IPALLOC_INIT", rule: "consensus=N needs an integer N >= 0", value: init.quorum });
      }
    } else if (init?.mode === "seed") {
      if (!Array.isArray(init.peers) || init.peers.length === 0 || !init.peers.every((p) => typeof p === "string" && p !== "")) {
        throw new ConfigError({ component: COMPONENT, field: "IPALLOC_INIT", rule: "seed= needs a non-empty list of peer names", value: init.peers });
      }
    } else if (init?.mode !== "observer") {
      throw new ConfigError({ component: COMPONENT, field: "IPALLOC_INIT", rule: "mode must be consensus, seed or observer", value: init?.mode });
    }
    this.o = o;
    this.base = Number(this.prefix.base);
    this.size = Number(this.prefix.size);
    this.paxos = new Paxos({
      self: o.self,
      clock: o.clock,
      random: o.random,
      retryMs: o.paxosRetryMs ?? 1500,
      broadcast: (msg) => this.broadcast({ k: "paxos", msg }),
      unicast: (to, msg) => void this.unicast(to, { k: "paxos", msg }),
      persist: (inst, state) => this.persistPaxos(inst, state),
      canVote: (inst) => this.canVote(inst),
      decided: (inst, value) => this.onDecided(inst, value),
    });
  }

  // ---------------------------------------------------------------- lifecycle

  attach(channel: GossipChannel): void {
    this.channel = channel;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const local = this.o.local;
    const stored = await local.get(IPAM_KEYS.ring);
    if (stored) {
      const m = fromWire(JSON.parse(stored.value));
      if (m.k !== "ring" || m.range !== this.prefix.toString()) {
        throw new ConfigError({
          component: COMPONENT,
          field: "IPALLOC_RANGE",
          rule: `differs from the range of the persisted ring (${m.k === "ring" ? m.range : "?"}): reset the node's IPAM data to change it`,
          value: this.o.range,
        });
      }
      this.ring = Ring.from(this.size, m.state);
    }
    for (const kv of (await local.list(IPAM_KEYS.alloc)).items) {
      const key = decodeURIComponent(kv.key.slice(IPAM_KEYS.alloc.length));
      const offset = this.offsetOf(kv.value, "persisted allocation");
      this.allocs.set(key, offset);
      this.byOffset.set(offset, key);
    }
    const states: Array<[string, AcceptorState]> = [];
    for (const kv of (await local.list(IPAM_KEYS.paxos)).items) {
      states.push([decodeURIComponent(kv.key.slice(IPAM_KEYS.paxos.length)), JSON.parse(kv.value) as AcceptorState]);
    }
    this.paxos.restore(states);
    if (this.ring) {
      // A ring from disk may be stale: serve nothing from it before a peer's ring was merged.
      const owners = this.ring.owners();
      this.synced = owners.length === 1 && owners[0] === this.o.self;
      if (!this.synced) this.o.log.info("[weave] IPAM: restarted with a persisted ring; waiting for a peer's ring before serving", { allocations: this.allocs.size });
    } else if (this.o.init.mode === "seed") {
      const peers = [...new Set(this.o.init.peers)].sort();
      // The seed list's id: 64 bits of FNV-1a (two independent hashes), not the list itself, so every message stays small.
      const list = peers.join(",");
      const seed = `seed:${fnv1a32Hex(list)}${fnv1a32Hex(list, FNV1A_OFFSET ^ 0x5eed5eed)}`;
      this.ring = Ring.seed(this.size, { weight: peers.length, seed }, peers, (r) => this.seedFree(r));
      // Seeding again after lost data would hand out donated space: wait for a peer unless alone.
      this.synced = this.allocs.size === 0 && peers.length === 1 && peers[0] === this.o.self;
      this.ring.takeDelta();
      await this.persistRing();
    } else {
      this.synced = this.allocs.size === 0;
    }
    this.tick = this.o.clock.setInterval(() => this.onTick(), this.o.askEveryMs ?? 2000);
    if (this.ring) this.afterRingChange();
    const early = this.early ?? [];
    this.early = undefined;
    for (const handle of early) {
      try {
        handle();
      } catch (err) {
        this.o.log.warn("[weave] IPAM: refused an update received during start", { err });
      }
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.tick?.cancel();
    this.paxos.stop();
    this.wake();
  }

  // ---------------------------------------------------------------- public API

  async allocate(key: string, o: { address?: string; signal?: AbortSignal } = {}): Promise<string> {
    this.checkRunning();
    if (typeof key !== "string" || key === "") throw new ConfigError({ component: COMPONENT, field: "key", rule: "must be a non-empty string", value: key });
    const want = o.address === undefined ? undefined : this.offsetOf(o.address, "address");
    const timeout = this.o.grantTimeoutMs ?? 30_000;
    const askEvery = this.o.askEveryMs ?? 2000;
    const deadline = this.o.clock.now() + timeout;
    let lastAsk = Number.NEGATIVE_INFINITY;
    let reason = "waiting for IP range grant from peers";
    for (;;) {
      this.checkRunning();
      o.signal?.throwIfAborted();
      const held = this.allocs.get(key);
      if (held !== undefined && !this.claiming.has(held)) {
        if (want !== undefined && held !== want) throw new AddressInUseError(this.fmt(want), `[weave] ${key} already holds ${this.fmt(held)}, not ${this.fmt(want)}: release it first`);
        return this.fmt(held);
      }
      const removedBy = this.ring?.isDead(this.o.self) ? this.ring.effectiveOwner(this.o.self) : undefined;
      if (removedBy !== undefined) {
        throw new TryAgainError(`[weave] this peer (${this.o.self}) was removed from the IPAM ring and its space reclaimed by ${removedBy}: restart it under a new peer name`);
      }
      const now = this.o.clock.now();
      if (!this.ring) {
        reason = this.phase();
        this.ensureConsensus();
      } else if (!this.synced) {
        reason = "waiting for the ring from peers (this peer restarted with persisted data)";
      } else if (want !== undefined) {
        const owner = this.ring.ownerOf(want);
        if (owner === undefined) {
          reason = `the owner of ${this.fmt(want)} is not known here yet`;
        } else if (owner === this.o.self) {
          if (this.byOffset.has(want)) throw new AddressInUseError(this.fmt(want), `[weave] ${this.fmt(want)} is already allocated to ${this.byOffset.get(want)}`);
          return await this.take(key, want);
        } else if (this.denied.has(want)) {
          this.denied.delete(want);
          throw new AddressInUseError(this.fmt(want), `[weave] ${this.fmt(want)} is in use on peer ${owner}`);
        } else if (now - lastAsk >= askEvery) {
          lastAsk = now;
          reason = this.unicast(owner, { k: "claim", offsets: [want] }) ? `waiting for ${this.fmt(want)} from its owner ${owner}` : `the owner of ${this.fmt(want)} (${owner}) is unreachable`;
        }
      } else {
        const offset = firstFree(this.ring.rangesOf(this.o.self), this.taken());
        if (offset !== undefined) return await this.take(key, offset);
        if (this.totalFree() === 0) {
          throw new PoolExhaustedError(this.prefix.toString(), `[weave] IPALLOC_RANGE ${this.prefix} is full: no peer advertises a free address`);
        }
        if (now - lastAsk >= askEvery) {
          lastAsk = now;
          reason = this.askForSpace() ? "waiting for IP range grant from peers" : "all IP ranges owned by unreachable peers";
        }
      }
      const left = deadline - this.o.clock.now();
      if (left <= 0) throw new TryAgainError(`[weave] cannot allocate for ${key}: ${reason}`);
      await this.waitChange(Math.min(left, askEvery), o.signal);
    }
  }

  async release(key: string): Promise<void> {
    this.checkRunning();
    const offset = this.allocs.get(key);
    if (offset === undefined) return;
    this.allocs.delete(key);
    this.byOffset.delete(offset);
    this.claiming.delete(offset);
    const done = this.queue(() => this.o.local.delete(IPAM_KEYS.alloc + encodeURIComponent(key)));
    this.refresh();
    await done;
    await this.commit();
  }

  owner(address: string): string | undefined {
    let v: number;
    try {
      v = Number(parseAddress(address).value);
    } catch {
      return undefined;
    }
    if (!this.prefix.contains(address)) return undefined;
    return this.ring?.ownerOf(v - this.base);
  }

  /**
   * key -> address of the allocations this peer serves. After a restart from persisted data they
   * are unverified until the ring was merged with a peer's (then kept, or refused and reported):
   * until then the map is empty unless `includeUnverified`.
   */
  allocations(o: { includeUnverified?: boolean } = {}): Map<string, string> {
    const out = new Map<string, string>();
    if (!this.synced && !o.includeUnverified) return out;
    for (const [k, off] of this.allocs) out.set(k, this.fmt(off));
    return out;
  }

  status(): string[] {
    const out = [this.phase()];
    const ring = this.ring;
    if (ring) {
      out.push(`range ${this.prefix} ring ${ring.identity.seed} (agreed by ${ring.identity.weight})`);
      const taken = this.taken();
      for (const r of ring.rangesOf(this.o.self)) out.push(`owned ${this.fmt(r[0])}-${this.fmt(r[1] - 1)}: ${freeIn(r, taken)} free`);
      const known = new Set(this.o.knownPeers());
      for (const [peer, free] of ring.freeByOwner()) {
        if (peer !== this.o.self && (this.unreachable.has(peer) || !known.has(peer))) out.push(`owner ${peer}: unreachable! (${free} free advertised)`);
      }
      for (const [d, c] of ring.tombstones()) out.push(`reclaimed ${d} -> ${c}`);
    }
    for (const inst of [...this.gone].map((g) => RECLAIM + g)) {
      if (this.paxos.isProposing(inst)) out.push(`reclaiming space of ${inst.slice(RECLAIM.length)} (quorum: ${this.reclaimQuorum(inst.slice(RECLAIM.length))})`);
    }
    for (const [o, owner] of this.claiming) out.push(`claiming ${this.fmt(o)} (${this.byOffset.get(o)}) from ${owner}`);
    for (const c of this.ring?.conflicts ?? []) out.push(`ring conflict: ${c}`);
    if (!this.synced && this.allocs.size > 0) out.push(`unverified: ${this.allocs.size} persisted allocation(s) wait for the ring from peers`);
    out.push(...this.reports);
    return out;
  }

  peersGone(names: string[]): void {
    for (const n of names) if (n !== this.o.self) this.gone.add(n);
    this.startReclaims();
  }

  // ---------------------------------------------------------------- GossipHandler

  gossip(): Uint8Array | undefined {
    if (!this.ring || this.stopped) return undefined;
    return encodeMessage({ k: "ring", range: this.prefix.toString(), full: true, state: this.ring.snapshot() });
  }

  onGossip(update: Uint8Array): Uint8Array | undefined {
    if (this.stopped) return undefined;
    const m = decodeMessage(update);
    if (this.early) {
      this.early.push(() => void this.onGossip(update));
      return undefined;
    }
    if (m.k !== "ring") throw new GossipRejected(`[weave] IPAM gossip carries rings only, got ${m.k}`);
    const news = this.onRing(m, undefined);
    return news ? encodeMessage({ k: "ring", range: this.prefix.toString(), full: false, state: news }) : undefined;
  }

  onGossipBroadcast(source: string, update: Uint8Array): void {
    this.onMessage(source, update);
  }

  onGossipUnicast(source: string, message: Uint8Array): void {
    this.onMessage(source, message);
  }

  private onMessage(source: string, bytes: Uint8Array): void {
    if (this.stopped) return;
    const m = decodeMessage(bytes);
    if (this.early) this.early.push(() => this.dispatch(source, m));
    else this.dispatch(source, m);
  }

  // ---------------------------------------------------------------- messages

  private dispatch(source: string, m: IpamMessage): void {
    this.unreachable.delete(source);
    switch (m.k) {
      case "ring":
        this.onRing(m, source);
        return;
      case "paxos":
        this.onPaxos(source, m.msg);
        return;
      case "want":
        this.onWant(source);
        return;
      case "claim":
        this.onClaim(source, m.offsets);
        return;
      case "deny":
        this.onDeny(source, m.offsets);
        return;
    }
  }

  /** Merges a ring; returns what was new (for relay), undefined when nothing was. */
  private onRing(m: Extract<IpamMessage, { k: "ring" }>, source: string | undefined): RingState | undefined {
    if (m.range !== this.prefix.toString()) {
      throw new GossipRejected(`[weave] Incompatible IP allocation ranges (received: ${m.range}, ours: ${this.prefix})`);
    }
    const ring = this.ring;
    if (!ring) {
      if (!m.full) return undefined;
      this.adopt(m.state);
      return m.state;
    }
    const cmp = compareIdentity(m.state.identity, ring.identity);
    if (cmp === 0) {
      const conflicts = ring.conflicts.length;
      const news = ring.merge(m.state);
      for (const c of ring.conflicts.slice(conflicts)) this.o.log.error(`[weave] IPAM ring conflict (a peer reused a version): ${c}`);
      const wasSynced = this.synced;
      this.synced = true;
      if (news || !wasSynced) {
        this.afterRingChange();
        void this.commit();
      }
      return news;
    }
    if (cmp < 0) {
      // Theirs yields to ours: make sure they hear ours (at most once a second).
      const now = this.o.clock.now();
      if (source !== undefined) this.unicast(source, this.ringMessage(true));
      else if (now - this.lastPush >= 1000 && this.channel) {
        this.lastPush = now;
        this.channel.gossip(encodeMessage(this.ringMessage(true)));
      }
      return undefined;
    }
    if (!m.full) {
      if (source !== undefined) this.unicast(source, { k: "want" });
      return undefined;
    }
    this.o.log.warn(`[weave] IP allocation was seeded by different peers (received: ${describe(m.state.identity)}, ours: ${describe(ring.identity)}): ours yields`, {
      allocations: this.allocs.size,
    });
    this.adopt(m.state);
    return m.state;
  }

  /** Takes a complete ring of another identity (or the first ring); claims our allocations in it. */
  private adopt(state: RingState): void {
    const ring = Ring.from(this.size, state);
    this.ring = ring;
    this.synced = true;
    this.paxos.abandon(INIT);
    this.claiming.clear();
    const byOwner = new Map<string, number[]>();
    for (const offset of this.allocs.values()) {
      const owner = ring.ownerOf(offset);
      if (owner === this.o.self) continue;
      this.claiming.set(offset, owner ?? "");
      if (owner !== undefined) byOwner.set(owner, [...(byOwner.get(owner) ?? []), offset]);
    }
    this.afterRingChange();
    void this.commit().then(() => {
      for (const [owner, offsets] of byOwner) this.unicast(owner, { k: "claim", offsets });
    });
  }

  private onPaxos(source: string, msg: PaxosMessage): void {
    if (msg.inst === INIT && this.ring && msg.op === "prepare") {
      // Already have a ring: the proposer should take it rather than seed another one (at most
      // once a second per proposer: its retries need no second copy in flight).
      const now = this.o.clock.now();
      if (now - (this.ringSentTo.get(source) ?? Number.NEGATIVE_INFINITY) >= 1000) {
        this.ringSentTo.set(source, now);
        this.unicast(source, this.ringMessage(true));
      }
      return;
    }
    this.paxos.receive(source, msg);
  }

  private onWant(source: string): void {
    const ring = this.ring;
    if (!ring || !this.synced) {
      if (ring) this.unicast(source, this.ringMessage(true));
      return;
    }
    const mine = ring.rangesOf(this.o.self);
    const taken = this.taken();
    const free = mine.reduce((n, r) => n + freeIn(r, taken), 0);
    const block = free >= 2 ? largestFreeBlock(mine, taken, Math.floor(free / 2)) : undefined;
    if (!block) {
      this.refresh();
      this.unicast(source, this.ringMessage(true));
      return;
    }
    ring.give(this.o.self, block, source, (r) => this.freeOf(r));
    this.o.log.info(`[weave] IPAM: donated ${this.fmt(block[0])}-${this.fmt(block[1] - 1)} to ${source}`);
    void this.commit().then(() => this.unicast(source, this.ringMessage(true)));
  }

  private onClaim(source: string, offsets: number[]): void {
    const ring = this.ring;
    if (!ring || !this.synced) {
      if (ring) this.unicast(source, this.ringMessage(true));
      return;
    }
    const deny: number[] = [];
    let gave = false;
    for (const o of offsets) {
      if (o >= this.size || ring.ownerOf(o) !== this.o.self) continue;
      if (this.taken().has(o)) {
        deny.push(o);
        continue;
      }
      ring.give(this.o.self, [o, o + 1], source, (r) => this.freeOf(r));
      gave = true;
    }
    void (gave ? this.commit() : Promise.resolve()).then(() => {
      this.unicast(source, this.ringMessage(true));
      if (deny.length > 0) this.unicast(source, { k: "deny", offsets: deny });
    });
  }

  private onDeny(source: string, offsets: number[]): void {
    for (const o of offsets) {
      if (this.ring?.ownerOf(o) !== source) continue;
      const key = this.byOffset.get(o);
      if (key !== undefined && this.claiming.has(o)) {
        this.refuse(key, o, `owned by ${source} in the ring this peer adopted, which holds it itself (rings seeded by different peers met)`);
      } else {
        this.denied.add(o);
      }
    }
    this.wake();
  }

  // ---------------------------------------------------------------- consensus and reclaim

  private knownCount(): number {
    return new Set([...this.o.knownPeers(), this.o.self]).size;
  }

  private initQuorum(): number {
    const init = this.o.init;
    const n = init.mode === "consensus" && init.quorum !== undefined ? init.quorum : this.knownCount();
    return Math.floor(n / 2) + 1;
  }

  private phase(): string {
    if (this.ring) {
      if (this.ring.isDead(this.o.self)) return `removed: space reclaimed by ${this.ring.effectiveOwner(this.o.self)}`;
      return this.synced ? "ready" : "waiting for the ring from peers (restarted with persisted data)";
    }
    if (this.o.init.mode === "observer") return "awaiting a ring from peers (observer)";
    if (this.paxos.isProposing(INIT)) return `awaiting consensus (quorum: ${this.initQuorum()}, known: ${this.knownCount()})`;
    return "idle";
  }

  private ensureConsensus(): void {
    if (this.o.init.mode !== "consensus" || this.ring) return;
    this.paxos.propose(
      INIT,
      () => this.initQuorum(),
      (promisers): InitValue => ({
        members: [...new Set([...promisers, this.o.self])].sort(),
        seed: `consensus:${this.o.self}:${Math.floor(this.o.random() * 2 ** 32).toString(16)}`,
      }),
    );
  }

  private canVote(inst: string): boolean {
    if (this.stopped) return false;
    if (inst === INIT) return this.o.init.mode !== "observer" && !this.ring;
    if (inst.startsWith(RECLAIM)) {
      const dead = inst.slice(RECLAIM.length);
      const ring = this.ring;
      return !!ring && this.synced && this.gone.has(dead) && dead !== this.o.self && ring.owners().includes(this.o.self);
    }
    return false;
  }

  /** Who votes on reclaiming `dead`'s space: the ring's owners that membership has not said are gone. */
  private reclaimVoters(dead: string): Set<string> {
    return new Set((this.ring?.owners() ?? []).filter((p) => p !== dead && !this.gone.has(p)));
  }

  private reclaimQuorum(dead: string): number {
    return Math.floor(this.reclaimVoters(dead).size / 2) + 1;
  }

  private startReclaims(): void {
    const ring = this.ring;
    if (!ring || !this.synced || this.stopped) return;
    const owners = ring.owners();
    if (!owners.includes(this.o.self)) return;
    const live = owners.filter((p) => !this.gone.has(p));
    for (const dead of this.gone) {
      const inst = RECLAIM + dead;
      if (!owners.includes(dead) || ring.isDead(dead)) {
        this.paxos.abandon(inst);
        continue;
      }
      // The first live owner (by name) proposes at once, the others later as backups.
      const rank = Math.max(0, live.indexOf(this.o.self));
      const delay = rank === 0 ? 0 : rank * 3000 + this.o.random() * 1000;
      this.paxos.propose(
        inst,
        () => this.reclaimQuorum(dead),
        () => ({ claimant: this.o.self }),
        delay,
        (p) => this.reclaimVoters(dead).has(p),
      );
    }
  }

  private onDecided(inst: string, value: unknown): void {
    if (inst === INIT) {
      const v = value as Partial<InitValue> | undefined;
      if (this.ring || !v || !Array.isArray(v.members) || typeof v.seed !== "string" || v.members.length === 0) return;
      const members = v.members.filter((m): m is string => typeof m === "string");
      const ring = Ring.seed(this.size, { weight: members.length, seed: v.seed }, members, (r) => this.seedFree(r));
      ring.takeDelta();
      this.o.log.info(`[weave] IPAM: consensus reached, ring split among ${members.length} peer(s)`, { members });
      // Every learner builds the same ring from the value: nothing to gossip (peers that missed the
      // decision get the ring in answer to their own prepare, or from the mesh's full exchange).
      this.adopt(ring.snapshot());
      return;
    }
    if (inst.startsWith(RECLAIM)) {
      const dead = inst.slice(RECLAIM.length);
      const claimant = (value as { claimant?: unknown } | undefined)?.claimant;
      if (typeof claimant !== "string" || !this.ring) return;
      if (this.ring.bury(dead, claimant)) {
        this.o.log.info(`[weave] IPAM: space of departed peer ${dead} reclaimed by ${claimant} (quorum decision)`);
        this.afterRingChange();
        void this.commit();
      }
    }
  }

  // ---------------------------------------------------------------- space

  /** Offsets not to hand out: allocations and the range's first and last addresses. */
  private taken(): Set<number> {
    const t = new Set(this.byOffset.keys());
    t.add(0);
    t.add(this.size - 1);
    return t;
  }

  private freeOf(r: OffsetRange): number {
    return freeIn(r, this.taken());
  }

  /** Free count of a block of a fresh split: the same on every peer (only the reserved offsets). */
  private seedFree(r: OffsetRange): number {
    return freeIn(r, new Set([0, this.size - 1]));
  }

  private totalFree(): number {
    let n = 0;
    for (const [peer, free] of this.ring?.freeByOwner() ?? []) if (peer !== this.o.self) n += free;
    const taken = this.taken();
    for (const r of this.ring?.rangesOf(this.o.self) ?? []) n += freeIn(r, taken);
    return n;
  }

  /** Asks a donor (weighted by advertised free space) for space; false when none is reachable. */
  private askForSpace(): boolean {
    const candidates = [...(this.ring?.freeByOwner() ?? [])].filter(([p, free]) => p !== this.o.self && free > 0 && !this.ring!.isDead(p));
    while (candidates.length > 0) {
      const total = candidates.reduce((n, [, f]) => n + f, 0);
      let pick = this.o.random() * total;
      let i = 0;
      while (i < candidates.length - 1 && pick >= candidates[i]![1]) pick -= candidates[i++]![1];
      const [donor] = candidates[i]!;
      if (this.unicast(donor, { k: "want" })) return true;
      candidates.splice(i, 1);
    }
    return false;
  }

  private async take(key: string, offset: number): Promise<string> {
    this.allocs.set(key, offset);
    this.byOffset.set(offset, key);
    const done = this.queue(() => this.o.local.put(IPAM_KEYS.alloc + encodeURIComponent(key), this.fmt(offset)));
    this.refresh();
    await done;
    await this.commit();
    return this.fmt(offset);
  }

  /** After any ring change: relabel/refresh own tokens, refuse what we no longer own, wake waiters. */
  private afterRingChange(): void {
    const ring = this.ring;
    if (!ring) return;
    if (ring.isDead(this.o.self)) {
      for (const [key, o] of [...this.allocs]) this.refuse(key, o, `this peer was removed from the ring (space reclaimed by ${ring.effectiveOwner(this.o.self)})`);
    } else if (this.synced) {
      for (const [key, o] of [...this.allocs]) {
        const owner = ring.ownerOf(o);
        if (owner === this.o.self) {
          this.claiming.delete(o);
          continue;
        }
        if (this.claiming.has(o)) {
          this.claiming.set(o, owner ?? "");
          continue;
        }
        // A gap in this view (a token not heard of yet) proves nothing: wait for the full ring.
        if (owner === undefined) continue;
        this.refuse(key, o, `outside the space this peer owns (owner: ${owner}); persisted data was stale`);
      }
      ring.refreshFree(this.o.self, (r) => this.freeOf(r));
      this.startReclaims();
    }
    this.wake();
  }

  /** Reports and drops an allocation this peer must not serve. */
  private refuse(key: string, offset: number, why: string): void {
    this.allocs.delete(key);
    this.byOffset.delete(offset);
    this.claiming.delete(offset);
    const line = `refused allocation ${key} -> ${this.fmt(offset)}: ${why}`;
    this.reports.push(line);
    if (this.reports.length > 100) this.reports.shift();
    this.o.log.error(`[weave] IPAM ${line}`);
    void this.queue(() => this.o.local.delete(IPAM_KEYS.alloc + encodeURIComponent(key)));
  }

  /** Updates our tokens' advisory free counts (only when the ring is ours to change). */
  private refresh(): void {
    if (this.ring && this.synced && !this.ring.isDead(this.o.self)) this.ring.refreshFree(this.o.self, (r) => this.freeOf(r));
  }

  private onTick(): void {
    if (this.stopped) return;
    const byOwner = new Map<string, number[]>();
    for (const [o, owner] of this.claiming) if (owner !== "") byOwner.set(owner, [...(byOwner.get(owner) ?? []), o]);
    for (const [owner, offsets] of byOwner) this.unicast(owner, { k: "claim", offsets });
    this.startReclaims();
  }

  // ---------------------------------------------------------------- persistence and transport

  private queue(step: () => Promise<unknown>): Promise<void> {
    const next = this.writes.then(step).then(() => undefined);
    this.writes = next.catch((err: unknown) => this.o.log.error("[weave] IPAM: write to the local store failed", { err }));
    return next;
  }

  private persistRing(): Promise<void> {
    return this.queue(async () => {
      if (!this.ring) return;
      await this.o.local.put(IPAM_KEYS.ring, JSON.stringify(toWire(this.ringMessage(true))));
    });
  }

  /** Persists the ring, then gossips what this peer changed in it. */
  private async commit(): Promise<void> {
    const delta = this.ring?.takeDelta();
    await this.persistRing();
    if (delta && this.channel && !this.stopped) this.channel.gossip(encodeMessage({ k: "ring", range: this.prefix.toString(), full: false, state: delta }));
  }

  private persistPaxos(inst: string, state: AcceptorState): Promise<void> {
    return this.queue(() => this.o.local.put(IPAM_KEYS.paxos + encodeURIComponent(inst), JSON.stringify(state)));
  }

  private ringMessage(full: boolean): Extract<IpamMessage, { k: "ring" }> {
    return { k: "ring", range: this.prefix.toString(), full, state: this.ring!.snapshot() };
  }

  private broadcast(m: IpamMessage): void {
    if (!this.stopped) this.channel?.gossipBroadcast(encodeMessage(m));
  }

  private unicast(to: string, m: IpamMessage): boolean {
    if (this.stopped || !this.channel) return false;
    const ok = this.channel.gossipUnicast(to, encodeMessage(m));
    if (ok) this.unreachable.delete(to);
    else this.unreachable.add(to);
    return ok;
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
  }

  private waitChange(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const done = (): void => {
        timer?.cancel();
        this.waiters.delete(done);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = (): void => {
        timer?.cancel();
        this.waiters.delete(done);
        reject(signal?.reason);
      };
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      this.waiters.add(done);
      timer = this.o.clock.setTimeout(done, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private checkRunning(): void {
    if (!this.started) throw new ClosedError("[weave] IPAM allocator used before start()");
    if (this.stopped) throw new ClosedError("[weave] IPAM allocator stopped");
  }

  private fmt(offset: number): string {
    return formatAddress(BigInt(this.base + offset), 4);
  }

  /** Offset of an address in the range; ConfigError naming `field` when outside or reserved. */
  private offsetOf(text: string, field: string): number {
    const { family, value } = parseAddress(text, { field, component: COMPONENT });
    if (family !== 4 || !this.prefix.contains(value)) {
      throw new ConfigError({ component: COMPONENT, field, rule: `must be inside IPALLOC_RANGE ${this.prefix}`, value: text });
    }
    const offset = Number(value) - this.base;
    if (offset === 0 || offset === this.size - 1) {
      throw new ConfigError({ component: COMPONENT, field, rule: `must not be the first or last address of IPALLOC_RANGE ${this.prefix} (reserved)`, value: text });
    }
    return offset;
  }
}

function describe(id: RingIdentity): string {
  return `${id.seed} agreed by ${id.weight}`;
}
