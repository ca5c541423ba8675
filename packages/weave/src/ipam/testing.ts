/**
 * Test kit for the IPAM ring without the real mesh: `FakeGossipMesh` delivers a channel's gossip,
 * broadcasts and unicasts between handlers over a VirtualClock (latency with jitter), with
 * partitions (messages in flight across a new cut are lost), random loss, crash (a node leaves;
 * messages to its old incarnation are dropped) and a periodic full exchange (each peer's
 * `gossip()` to every reachable peer), plus the full exchange on join and on heal — as the mesh
 * gives a newcomer the full state. `IpamTestCluster` runs N allocators on it, each with its own
 * MemoryDatastore that survives crashes, and checks the invariants (no address held twice).
 */
import { MemoryDatastore, VirtualClock, seededRandom, silentLogger, type Logger } from "@cnikit/core";
import type { GossipChannel, GossipHandler } from "../mesh/gossip.ts";
import { IPAM_KEYS, IpamAllocator, type IpallocInit } from "./allocator.ts";

export interface FakeGossipMeshOptions {
  clock: VirtualClock;
  random: () => number;
  /** One-way delay (ms), plus up to the same again as jitter. Default 5. */
  latencyMs?: number;
  /** Probability that a message is lost. Default 0. */
  lossRate?: number;
  /** Period of the full exchange (ms). Default 5 000. */
  fullEveryMs?: number;
}

interface MeshNode {
  handler: GossipHandler;
  incarnation: number;
}

export class FakeGossipMesh {
  private readonly o: FakeGossipMeshOptions;
  private readonly nodes = new Map<string, MeshNode>();
  private groups = new Map<string, number>();
  private incarnations = 0;
  readonly stats = { delivered: 0, lost: 0, bytes: 0 };
  /** Errors thrown by handlers (a GossipRejected would drop the connection in the real mesh). */
  readonly rejected: string[] = [];

  constructor(o: FakeGossipMeshOptions) {
    this.o = o;
    o.clock.setInterval(() => this.fullExchange(), o.fullEveryMs ?? 5000);
  }

  /** Registers `name`'s handler (a start or restart) and gives it its channel. */
  join(name: string, handler: GossipHandler): GossipChannel {
    const node = { handler, incarnation: ++this.incarnations };
    this.nodes.set(name, node);
    const channel: GossipChannel = {
      gossip: (update) => this.toAll(name, (h) => h.onGossip(update), update.length),
      gossipBroadcast: (update) => this.toAll(name, (h) => h.onGossipBroadcast(name, update), update.length),
      gossipUnicast: (to, message) => {
        if (!this.reachable(name, to)) return false;
        this.send(name, to, (h) => h.onGossipUnicast(name, message), message.length);
        return true;
      },
    };
    this.exchangeWith(name);
    return channel;
  }

  /** A crash: the node is gone, messages in flight to it are dropped. */
  leave(name: string): void {
    this.nodes.delete(name);
  }

  /** Cuts the mesh into groups (nodes not listed form one more group). */
  partition(groups: string[][]): void {
    this.groups = new Map();
    groups.forEach((g, i) => g.forEach((n) => this.groups.set(n, i + 1)));
  }

  heal(): void {
    this.groups = new Map();
    for (const name of this.nodes.keys()) this.exchangeWith(name);
  }

  reachable(a: string, b: string): boolean {
    return a !== b && this.nodes.has(a) && this.nodes.has(b) && (this.groups.get(a) ?? 0) === (this.groups.get(b) ?? 0);
  }

  names(): string[] {
    return [...this.nodes.keys()];
  }

  private toAll(from: string, fn: (h: GossipHandler) => unknown, bytes: number): void {
    for (const to of this.nodes.keys()) if (this.reachable(from, to)) this.send(from, to, fn, bytes);
  }

  private send(from: string, to: string, fn: (h: GossipHandler) => unknown, bytes: number): void {
    const target = this.nodes.get(to);
    if (!target) return;
    const incarnation = target.incarnation;
    const latency = this.o.latencyMs ?? 5;
    this.o.clock.setTimeout(
      () => {
        const now = this.nodes.get(to);
        if (!now || now.incarnation !== incarnation || !this.reachable(from, to) || this.o.random() < (this.o.lossRate ?? 0)) {
          this.stats.lost++;
          return;
        }
        this.stats.delivered++;
        this.stats.bytes += bytes;
        try {
          fn(now.handler);
        } catch (err) {
          this.rejected.push(`${from} -> ${to}: ${(err as Error).message}`);
        }
      },
      latency * (1 + this.o.random()),
    );
  }

  private exchangeWith(name: string): void {
    for (const other of this.nodes.keys()) {
      if (!this.reachable(name, other)) continue;
      for (const [a, b] of [
        [name, other],
        [other, name],
      ] as const) {
        const state = this.nodes.get(a)?.handler.gossip();
        if (state) this.send(a, b, (h) => h.onGossip(state), state.length);
      }
    }
  }

  private fullExchange(): void {
    for (const [name, node] of this.nodes) {
      const state = node.handler.gossip();
      if (!state) continue;
      for (const other of this.nodes.keys()) if (this.reachable(name, other)) this.send(name, other, (h) => h.onGossip(state), state.length);
    }
  }
}

export interface IpamTestClusterOptions {
  names: string[];
  range: string;
  init: (name: string) => IpallocInit;
  random: () => number;
  latencyMs?: number;
  lossRate?: number;
  grantTimeoutMs?: number;
  log?: (name: string) => Logger;
}

/** N allocators on a FakeGossipMesh; stores survive crashes. */
export class IpamTestCluster {
  readonly clock = new VirtualClock(0);
  readonly mesh: FakeGossipMesh;
  readonly stores = new Map<string, MemoryDatastore>();
  readonly live = new Map<string, IpamAllocator>();
  private readonly o: IpamTestClusterOptions;

  constructor(o: IpamTestClusterOptions) {
    this.o = o;
    const meshOptions: FakeGossipMeshOptions = { clock: this.clock, random: o.random };
    if (o.latencyMs !== undefined) meshOptions.latencyMs = o.latencyMs;
    if (o.lossRate !== undefined) meshOptions.lossRate = o.lossRate;
    this.mesh = new FakeGossipMesh(meshOptions);
  }

  /** Starts (or restarts, from its store) the allocator of `name`. */
  async start(name: string, store?: MemoryDatastore): Promise<IpamAllocator> {
    if (store) this.stores.set(name, store);
    let local = this.stores.get(name);
    if (!local) {
      local = new MemoryDatastore({ clock: this.clock });
      this.stores.set(name, local);
    }
    const a = new IpamAllocator({
      range: this.o.range,
      self: name,
      nickname: `node-${name}`,
      init: this.o.init(name),
      clock: this.clock,
      log: this.o.log?.(name) ?? silentLogger,
      random: this.o.random,
      local,
      knownPeers: () => this.mesh.names().filter((n) => this.mesh.reachable(name, n)),
      grantTimeoutMs: this.o.grantTimeoutMs ?? 30_000,
    });
    await a.start();
    a.attach(this.mesh.join(name, a));
    this.live.set(name, a);
    return a;
  }

  /** A node deleted for good: its store (and so its pods' addresses) goes with it. */
  forget(name: string): void {
    this.crash(name);
    this.stores.delete(name);
  }

  crash(name: string): void {
    this.live.get(name)?.stop();
    this.live.delete(name);
    this.mesh.leave(name);
  }

  get(name: string): IpamAllocator {
    const a = this.live.get(name);
    if (!a) throw new Error(`${name} is not running`);
    return a;
  }

  /** Advances virtual time until `p` settles (or `maxMs` passed: then throws). */
  async settle<T>(p: Promise<T>, maxMs = 120_000, stepMs = 100): Promise<T> {
    let done = false;
    const watched = p.finally(() => {
      done = true;
    });
    watched.catch(() => undefined);
    for (let t = 0; !done && t < maxMs; t += stepMs) await this.clock.advance(stepMs);
    if (!done) throw new Error(`did not settle within ${maxMs} ms of virtual time`);
    return watched;
  }

  /** Every address held (key -> address) per peer: live peers' allocations, crashed peers' persisted ones. */
  async holdings(): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    for (const [name, store] of this.stores) {
      const live = this.live.get(name);
      if (live) {
        out.set(name, live.allocations({ includeUnverified: true }));
        continue;
      }
      const m = new Map<string, string>();
      for (const kv of (await store.list(IPAM_KEYS.alloc)).items) m.set(decodeURIComponent(kv.key.slice(IPAM_KEYS.alloc.length)), kv.value);
      out.set(name, m);
    }
    return out;
  }

  /** Addresses held by more than one peer (or twice by one), as "address: peer/key, peer/key". */
  async duplicates(): Promise<string[]> {
    const seen = new Map<string, string[]>();
    for (const [peer, m] of await this.holdings()) {
      for (const [key, addr] of m) seen.set(addr, [...(seen.get(addr) ?? []), `${peer}/${key}`]);
    }
    return [...seen].filter(([, h]) => h.length > 1).map(([a, h]) => `${a}: ${h.join(", ")}`);
  }

  /** Addresses whose owner differs between live peers' rings, or that a live peer holds without owning. */
  ownershipErrors(): string[] {
    const out: string[] = [];
    for (const [name, a] of this.live) {
      for (const addr of a.allocations().values()) {
        for (const [other, b] of this.live) {
          const owner = b.owner(addr);
          if (owner !== undefined && owner !== name && b.status()[0] === "ready" && a.status()[0] === "ready") {
            out.push(`${addr} held by ${name} but owned by ${owner} in ${other}'s ring`);
          }
        }
      }
    }
    return out;
  }
}

export interface RingScheduleOptions {
  /** Steps per schedule. Default 24. */
  steps?: number;
  /** Message loss rate of the fake mesh. Default 0.05. */
  lossRate?: number;
  /** Most founding peers (at least 3 are drawn). Default 5. */
  maxPeers?: number;
  /** Per-peer loggers (to follow one schedule). Default silent. */
  log?: (name: string) => Logger;
}

export interface RingScheduleResult {
  seed: number;
  /** One compact line: the schedule tried and its outcome. */
  line: string;
  /** Empty when every invariant held. */
  failures: string[];
  allocations: number;
}

/**
 * One random schedule of partitions, heals, crashes, restarts, allocations and releases over 3-5
 * peers on a small range (so donations and exhaustion happen), from `seed` (core's seededRandom).
 * After every step: no address held twice (live peers' allocations, crashed peers' persisted
 * ones). At the end (healed, everyone restarted, settled): the same again, every address held by
 * its owner in every ring, nothing refused, no update rejected, every granted allocation still held.
 */
export async function runRingSchedule(seed: number, o: RingScheduleOptions = {}): Promise<RingScheduleResult> {
  const random = seededRandom(seed);
  const n = 3 + Math.floor(random() * (Math.max(3, o.maxPeers ?? 5) - 2));
  const founders = Array.from({ length: n }, (_, i) => `p${i + 1}`);
  /** Peers running or crashed so far: the founders, then observers that join on the way. */
  const names = [...founders];
  const joiners = ["o1", "o2"];
  const tag = (x: string): string => (x.startsWith("p") ? x.slice(1) : x);
  const seeded = random() < 0.4;
  const size = random() < 0.5 ? 16 : 32;
  const range = `10.32.0.0/${32 - Math.log2(size)}`;
  const c = new IpamTestCluster({
    names,
    range,
    init: (name) => (name.startsWith("o") ? { mode: "observer" } : seeded ? { mode: "seed", peers: founders } : { mode: "consensus", quorum: n }),
    random,
    lossRate: o.lossRate ?? 0.05,
    grantTimeoutMs: 8000,
    ...(o.log ? { log: o.log } : {}),
  });
  const log: string[] = [`seed=${seed} n=${n} ${seeded ? "seed" : `consensus=${n}`} ${range}:`];
  const failures: string[] = [];
  const granted = new Map<string, { peer: string; address: string }>();
  const pending: Array<Promise<unknown>> = [];
  const down = new Set<string>();
  const gone = new Set<string>();
  let keyNo = 0;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  for (const name of names) await c.start(name);
  const check = async (when: string): Promise<void> => {
    const dups = await c.duplicates();
    if (dups.length > 0) failures.push(`${when}: duplicate ${dups.join("; ")}`);
  };
  for (let step = 0; step < (o.steps ?? 24) && failures.length === 0; step++) {
    const up = names.filter((x) => !down.has(x) && !gone.has(x));
    const r = random();
    if (r < 0.4) {
      // A burst of 1-3 allocations on one peer; some ask for a specific address (a claim when another peer owns it).
      const peer = pick(up);
      const burst = 1 + Math.floor(random() * 3);
      for (let i = 0; i < burst; i++) {
        const key = `k${++keyNo}`;
        const specific = random() < 0.2 ? `10.32.0.${1 + Math.floor(random() * (size - 2))}` : undefined;
        log.push(`${specific === undefined ? "a" : "s"}${tag(peer)}`);
        pending.push(
          c
            .get(peer)
            .allocate(key, specific === undefined ? {} : { address: specific })
            .then((address) => void granted.set(key, { peer, address }))
            .catch(() => undefined),
        );
      }
    } else if (r < 0.52) {
      const held = [...granted].filter(([, g]) => !down.has(g.peer));
      if (held.length > 0) {
        const [key, g] = pick(held);
        log.push(`r${tag(g.peer)}`);
        granted.delete(key);
        pending.push(
          c
            .get(g.peer)
            .release(key)
            .catch(() => undefined),
        );
      }
    } else if (r < 0.62) {
      const shuffled = [...names].sort(() => random() - 0.5);
      const cut = 1 + Math.floor(random() * (n - 1));
      const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
      c.mesh.partition(groups);
      log.push(`P[${groups.map((g) => g.map(tag).join("")).join("|")}]`);
    } else if (r < 0.7) {
      c.mesh.heal();
      log.push("H");
    } else if (r < 0.8 && up.length > 1) {
      const peer = pick(up);
      c.crash(peer);
      down.add(peer);
      log.push(`C${tag(peer)}`);
    } else if (r < 0.9 && down.size > 0) {
      const peer = pick([...down]);
      down.delete(peer);
      (await c.start(peer)).peersGone([...gone]);
      log.push(`R${tag(peer)}`);
    } else if (r < 0.94 && down.size > 0 && names.length - gone.size > 2) {
      // A crashed node is deleted for good: membership tells the others, its pods are gone with it.
      const peer = pick([...down]);
      down.delete(peer);
      gone.add(peer);
      c.forget(peer);
      for (const [key, g] of [...granted]) if (g.peer === peer) granted.delete(key);
      for (const a of c.live.values()) a.peersGone([...gone]);
      log.push(`G${tag(peer)}`);
    } else if (r < 0.97 && joiners.length > 0) {
      // A new node joins as an observer: it owns nothing until a donation.
      const peer = joiners.shift()!;
      names.push(peer);
      (await c.start(peer)).peersGone([...gone]);
      log.push(`J${peer}`);
    } else {
      log.push("t");
    }
    await c.clock.advance(50 + Math.floor(random() * 3000));
    await check(`after step ${step + 1}`);
  }
  c.mesh.heal();
  for (const peer of down) (await c.start(peer)).peersGone([...gone]);
  down.clear();
  for (let t = 0; t < 60; t++) await c.clock.advance(1000);
  await Promise.all(pending);
  await check("at the end");
  if (failures.length === 0) {
    failures.push(...c.ownershipErrors());
    failures.push(...c.mesh.rejected.map((x) => `rejected ${x}`));
    const holdings = await c.holdings();
    for (const [key, g] of granted) {
      if (holdings.get(g.peer)?.get(key) !== g.address) failures.push(`granted ${key} -> ${g.address} on ${g.peer} but no longer held`);
    }
    for (const name of names.filter((x) => !gone.has(x))) {
      for (const l of c.get(name).status()) if (l.startsWith("refused") || l.startsWith("ring conflict")) failures.push(`${name}: ${l}`);
    }
    // Space of deleted nodes ends with one claimant.
    for (const d of gone) {
      const lines = [...c.live.values()].map((a) => a.status().find((l) => l.startsWith(`reclaimed ${d} -> `)));
      const ownersSeen = new Set([...c.live.values()].flatMap((a) => Array.from({ length: size }, (_, i) => a.owner(`10.32.0.${i}`))));
      const stillOwns = ownersSeen.has(d);
      // With no live owner left nobody may claim (documented in allocator.ts): then waiting is right.
      const liveOwner = [...c.live.keys()].some((n) => ownersSeen.has(n));
      if (new Set(lines).size > 1 || (stillOwns && liveOwner)) failures.push(`space of deleted ${d}: claimants ${lines.join(" / ")}${stillOwns ? ", still owns space" : ""}`);
    }
  }
  for (const name of names) c.crash(name);
  const line = `${log.join(" ")} -> granted ${granted.size}, ${failures.length === 0 ? "ok" : `FAILED: ${failures[0]}`}`;
  return { seed, line, failures, allocations: granted.size };
}
