/**
 * An in-memory `PeerTransport` network: every agent of a simulated cluster gets a transport from one
 * `MemoryNetwork`, and all traffic between them is scheduled on the injected `Clock`, so a
 * `VirtualClock` decides when anything arrives. Faults (loss, duplication, reordering, delay,
 * partitions, crashes) are injected deterministically from a seed.
 *
 * How faults show up, per channel:
 *
 *  - Datagrams (`sendDatagram` / `onDatagram`) are unreliable and unordered: they are lost,
 *    duplicated, reordered and delayed exactly as configured, and dropped silently across a
 *    partition (also when a partition starts while they are in flight) or when nobody listens.
 *  - Streams (`connect` / `listen`) behave like TCP: ordered, reliable, exactly once while open.
 *    `delayMs` applies per message, but a message is never delivered before an earlier one of the
 *    same direction of the same connection. "Loss" becomes a retransmission delay: each loss drawn
 *    for a message adds one retransmission timeout (`retransmitMs`, doubling per consecutive loss,
 *    at most 6 times). Duplication and reordering are invisible on streams (TCP hides them), so
 *    `duplicateRate` and `reorderRate` do not apply there.
 *  - A partition holds stream messages (nothing is lost); `heal()` delivers them in order. A
 *    connection whose messages have been held for `resetAfterMs` is reset: both ends get `onClose`
 *    with a reason that names the partition. `connect()` across a partition rejects with
 *    `TryAgainError`.
 *  - `disconnect(name)` resets every connection of a node (what its peers see when it crashes):
 *    both ends are closed at once with reason `"reset"` and anything in flight is dropped.
 *  - `PeerConnection.close()` is graceful: the remote side sees `onClose` after every message sent
 *    before the close has arrived (like a TCP FIN).
 *
 * Nothing is ever delivered synchronously inside the call that caused it: even a zero delay goes
 * through `clock.setTimeout(fn, 0)`. Handler exceptions are not caught; they propagate out of the
 * clock (`VirtualClock.advance` rejects), as an uncaught exception in a socket handler would.
 */
import { seededRandom } from "../random.ts";
import type { Clock, TimerHandle } from "../clock.ts";
import { AddressInUseError, ClosedError, ConfigError, TryAgainError } from "../errors.ts";
import type { PeerConnection, PeerTransport } from "../peers.ts";

const COMPONENT = "memory-network";
/** How often one stream message may be "lost" (and retransmitted) at most. */
const MAX_RETRANSMITS = 6;

/** Faults on a directed path; every field is optional and defaults to "no fault". */
export interface LinkFaults {
  /** Probability in [0, 1] that a datagram is lost (on streams: that a send needs a retransmission). */
  lossRate?: number;
  /** Probability in [0, 1] that a datagram is delivered twice (datagrams only). */
  duplicateRate?: number;
  /**
   * Probability in [0, 1] that a datagram is held back by an extra 1 to 10 + 2 x `delayMs.max` ms,
   * so that datagrams sent after it overtake it (datagrams only).
   */
  reorderRate?: number;
  /** One-way delay in ms, drawn uniformly from [min, max] per message (0 <= min <= max). */
  delayMs?: { min: number; max: number };
}

/**
 * Which directed paths `setFaults` applies to: both absent = every path; only `from` = everything
 * that node sends; only `to` = everything that node receives; both = that one direction.
 */
export interface FaultScope {
  from?: string;
  to?: string;
}

export interface MemoryNetworkOptions {
  /** Every delivery, connect and reset is scheduled on this clock. */
  clock: Clock;
  /** Seed of the network's pseudo-random generator (same seed + same calls = same trace). Default 1. */
  seed?: number;
  /** A stream whose messages have been held by a partition this long is reset. Default 30 000 ms. */
  resetAfterMs?: number;
  /** Extra delay per simulated loss of a stream message (doubling per repeat). Default 200 ms. */
  retransmitMs?: number;
}

/** Traffic counters, for conformance reports and benchmarks. */
export interface MemoryNetworkStats {
  /** Messages handed to the network: stream messages plus datagrams (duplicates not counted). */
  messages: number;
  /** Payload bytes of those messages. */
  bytes: number;
  /** How many of `messages` were datagrams. */
  datagrams: number;
  /**
   * Messages that never reached a handler: datagrams lost, cut by a partition or sent to nobody;
   * stream messages discarded by a reset or arriving at an already closed end.
   */
  dropped: number;
  /** Extra datagram copies created by `duplicateRate`. */
  duplicated: number;
  /** Simulated stream losses, each turned into a retransmission delay. */
  retransmitted: number;
}

interface ResolvedFaults {
  lossRate: number;
  duplicateRate: number;
  reorderRate: number;
  delayMin: number;
  delayMax: number;
}

const NO_FAULTS: ResolvedFaults = { lossRate: 0, duplicateRate: 0, reorderRate: 0, delayMin: 0, delayMax: 0 };

function checkName(value: unknown, field: string): asserts value is string {
  if (typeof value !== "string" || value.length === 0) {
    throw new ConfigError({ component: COMPONENT, field, rule: "must be a non-empty string", value });
  }
}

function checkMessage(value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new ConfigError({ component: COMPONENT, field: "message", rule: "must be a Uint8Array", value: typeof value });
  }
}

function checkNonNegative(value: unknown, field: string): asserts value is number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new ConfigError({ component: COMPONENT, field, rule: "must be a finite number >= 0", value });
  }
}

function validateFaults(faults: unknown): LinkFaults {
  if (typeof faults !== "object" || faults === null || Array.isArray(faults)) {
    throw new ConfigError({ component: COMPONENT, field: "faults", rule: "must be an object", value: faults });
  }
  const known = new Set(["lossRate", "duplicateRate", "reorderRate", "delayMs"]);
  for (const key of Object.keys(faults)) {
    if (!known.has(key)) {
      throw new ConfigError({
        component: COMPONENT,
        field: `faults.${key}`,
        rule: "is not a known fault (lossRate, duplicateRate, reorderRate, delayMs)",
      });
    }
  }
  const input = faults as Record<string, unknown>;
  const out: LinkFaults = {};
  for (const key of ["lossRate", "duplicateRate", "reorderRate"] as const) {
    const value = input[key];
    if (value === undefined) continue;
    if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
      throw new ConfigError({ component: COMPONENT, field: `faults.${key}`, rule: "must be a number in [0, 1]", value });
    }
    out[key] = value;
  }
  const delay = input["delayMs"];
  if (delay !== undefined) {
    if (typeof delay !== "object" || delay === null) {
      throw new ConfigError({ component: COMPONENT, field: "faults.delayMs", rule: "must be an object { min, max }", value: delay });
    }
    const { min, max } = delay as Record<string, unknown>;
    checkNonNegative(min, "faults.delayMs.min");
    checkNonNegative(max, "faults.delayMs.max");
    if (min > max) {
      throw new ConfigError({ component: COMPONENT, field: "faults.delayMs.min", rule: "must be <= faults.delayMs.max", value: { min, max } });
    }
    out.delayMs = { min, max };
  }
  return out;
}

function mergeFaults(base: ResolvedFaults, over: LinkFaults | undefined): ResolvedFaults {
  if (!over) return base;
  return {
    lossRate: over.lossRate ?? base.lossRate,
    duplicateRate: over.duplicateRate ?? base.duplicateRate,
    reorderRate: over.reorderRate ?? base.reorderRate,
    delayMin: over.delayMs?.min ?? base.delayMin,
    delayMax: over.delayMs?.max ?? base.delayMax,
  };
}

interface StreamEntry {
  seq: number;
  kind: "data" | "fin";
  bytes: Uint8Array;
  reason: string;
  timer: TimerHandle | undefined;
}

interface Link {
  /** The connecting side. */
  a: MemoryConnection;
  /** The accepting side. */
  b: MemoryConnection;
}

/** Shared state of one network; transports and connections call into it. */
class Fabric {
  readonly clock: Clock;
  readonly resetAfterMs: number;
  readonly retransmitMs: number;
  readonly random: () => number;
  readonly transports = new Map<string, MemoryTransport>();
  readonly links = new Set<Link>();
  globalFaults: LinkFaults | undefined;
  readonly fromFaults = new Map<string, LinkFaults>();
  readonly toFaults = new Map<string, LinkFaults>();
  readonly pairFaults = new Map<string, LinkFaults>();
  groupOf: Map<string, number> | undefined;
  readonly isolated = new Set<string>();
  counters: MemoryNetworkStats = emptyStats();

  constructor(options: { clock: Clock; seed: number; resetAfterMs: number; retransmitMs: number }) {
    this.clock = options.clock;
    this.random = seededRandom(options.seed);
    this.resetAfterMs = options.resetAfterMs;
    this.retransmitMs = options.retransmitMs;
  }

  /** Whether traffic from `from` to `to` is cut by a partition or an isolation. */
  blocked(from: string, to: string): boolean {
    if (from === to) return false;
    if (this.isolated.has(from) || this.isolated.has(to)) return true;
    if (!this.groupOf) return false;
    return (this.groupOf.get(from) ?? -1) !== (this.groupOf.get(to) ?? -1);
  }

  faultsFor(from: string, to: string): ResolvedFaults {
    let f = mergeFaults(NO_FAULTS, this.globalFaults);
    f = mergeFaults(f, this.toFaults.get(to));
    f = mergeFaults(f, this.fromFaults.get(from));
    return mergeFaults(f, this.pairFaults.get(pairKey(from, to)));
  }

  roll(rate: number): boolean {
    return rate > 0 && this.random() < rate;
  }

  drawDelay(f: ResolvedFaults): number {
    return f.delayMax > f.delayMin ? f.delayMin + this.random() * (f.delayMax - f.delayMin) : f.delayMin;
  }

  /** Retransmission delay for one stream message: one RTO per simulated loss, doubling. */
  retransmitDelay(f: ResolvedFaults): number {
    let extra = 0;
    for (let k = 0; k < MAX_RETRANSMITS && this.roll(f.lossRate); k++) {
      extra += this.retransmitMs * 2 ** k;
      this.counters.retransmitted++;
    }
    return extra;
  }

  countSend(bytes: Uint8Array, datagram: boolean): void {
    this.counters.messages++;
    this.counters.bytes += bytes.byteLength;
    if (datagram) this.counters.datagrams++;
  }

  sendDatagram(from: string, to: string, service: string, bytes: Uint8Array): void {
    this.countSend(bytes, true);
    if (this.blocked(from, to)) {
      this.counters.dropped++;
      return;
    }
    const f = this.faultsFor(from, to);
    if (this.roll(f.lossRate)) {
      this.counters.dropped++;
      return;
    }
    const copies = this.roll(f.duplicateRate) ? 2 : 1;
    this.counters.duplicated += copies - 1;
    for (let i = 0; i < copies; i++) {
      let delay = this.drawDelay(f);
      if (this.roll(f.reorderRate)) delay += 1 + this.random() * (9 + 2 * f.delayMax);
      this.clock.setTimeout(() => this.deliverDatagram(from, to, service, bytes), delay);
    }
  }

  private deliverDatagram(from: string, to: string, service: string, bytes: Uint8Array): void {
    const handlers = this.blocked(from, to) ? undefined : this.transports.get(to)?.datagramHandlers.get(service);
    if (!handlers || handlers.size === 0) {
      this.counters.dropped++;
      return;
    }
    for (const entry of [...handlers]) {
      if (handlers.has(entry)) entry.handler(from, bytes.slice());
    }
  }

  openLink(client: MemoryTransport, server: MemoryTransport, service: string): Link {
    const a = new MemoryConnection({ fabric: this, transport: client, remote: server.self, service });
    const b = new MemoryConnection({ fabric: this, transport: server, remote: client.self, service });
    const link: Link = { a, b };
    a.attach(link, b);
    b.attach(link, a);
    this.links.add(link);
    return link;
  }

  /** Closes both ends at once, drops everything in flight, tells both ends (once) why. */
  reset(link: Link, reason: string): void {
    for (const end of [link.a, link.b]) end.abort(reason);
    this.links.delete(link);
  }

  /** Forgets a link once both ends are closed and nothing is left in flight. */
  maybeForget(link: Link): void {
    if (link.a.finished() && link.b.finished()) this.links.delete(link);
  }

  /** After a heal: delivers held stream messages, in order, from a fresh timer. */
  schedulePumpAll(): void {
    this.clock.setTimeout(() => {
      for (const link of [...this.links]) {
        link.a.pump();
        link.b.pump();
      }
    }, 0);
  }
}

function emptyStats(): MemoryNetworkStats {
  return { messages: 0, bytes: 0, datagrams: 0, dropped: 0, duplicated: 0, retransmitted: 0 };
}

function pairKey(from: string, to: string): string {
  return `${from}\u0000${to}`;
}

/** One end of a stream. Everything it sends goes through its own ordered queue to the other end. */
class MemoryConnection implements PeerConnection {
  readonly remote: string;
  readonly service: string;
  private readonly fabric: Fabric;
  readonly transport: MemoryTransport;
  private link!: Link;
  private peer!: MemoryConnection;
  private isClosed = false;
  private messageHandler: ((message: Uint8Array) => void) | undefined;
  private closeHandler: ((reason: string) => void) | undefined;
  private closeReason = "";
  private closeNotified = false;
  private notifyScheduled = false;
  /** Arrived but not yet handed to a handler (none registered yet). */
  private inbox: Uint8Array[] = [];
  private drainScheduled = false;
  /** Outgoing messages not yet delivered, in send order. */
  private out: StreamEntry[] = [];
  private seq = 0;
  /** Every entry with seq <= dueSeq has reached its delivery time. */
  private dueSeq = 0;
  /** Delivery time of the last queued entry: later entries never arrive before it. */
  private lastAt = Number.NEGATIVE_INFINITY;
  private holdTimer: TimerHandle | undefined;

  constructor(init: { fabric: Fabric; transport: MemoryTransport; remote: string; service: string }) {
    this.fabric = init.fabric;
    this.transport = init.transport;
    this.remote = init.remote;
    this.service = init.service;
  }

  attach(link: Link, peer: MemoryConnection): void {
    this.link = link;
    this.peer = peer;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private get self(): string {
    return this.transport.self;
  }

  /**
   * Queues one message for the remote end; the bytes are copied, so later changes to `message` are
   * not seen by the receiver. Never blocks. Throws `ClosedError` after close (either side's, or a
   * reset) and `ConfigError` when `message` is not a Uint8Array.
   */
  send(message: Uint8Array): void {
    if (this.isClosed) {
      throw new ClosedError(`[${COMPONENT}] connection ${this.self} -> ${this.remote} (${this.service}) is closed: ${this.closeReason}`);
    }
    checkMessage(message);
    const bytes = message.slice();
    this.fabric.countSend(bytes, false);
    this.enqueue("data", bytes, "");
  }

  /**
   * Registers the message handler (a second call replaces it). Messages that arrived before any
   * handler was registered are kept and handed over, in order, from a fresh clock timer.
   */
  onMessage(handler: (message: Uint8Array) => void): void {
    this.messageHandler = handler;
    if (this.inbox.length > 0 && !this.drainScheduled) {
      this.drainScheduled = true;
      this.fabric.clock.setTimeout(() => {
        this.drainScheduled = false;
        this.drain();
      }, 0);
    }
  }

  /**
   * Registers the close handler (a second call replaces it). It is called once, from a clock timer,
   * with the reason: the one given to `close()` by either side, `"reset"` after a crash, or a
   * partition reset's explanation. Registering after the close still gets the call.
   */
  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    if (this.isClosed) this.scheduleNotify();
  }

  /**
   * Closes both directions gracefully: this end stops at once (unread arrivals are dropped); the
   * remote end gets `onClose(reason)` after everything sent before the close. Idempotent.
   */
  close(reason = "closed"): void {
    if (this.isClosed) return;
    this.markClosed(reason);
    this.dropInbox();
    this.enqueue("fin", new Uint8Array(0), reason);
  }

  private enqueue(kind: StreamEntry["kind"], bytes: Uint8Array, reason: string): void {
    const clock = this.fabric.clock;
    const now = clock.now();
    const f = this.fabric.faultsFor(this.self, this.remote);
    const delay = this.fabric.drawDelay(f) + this.fabric.retransmitDelay(f);
    const at = Math.max(now + delay, this.lastAt);
    this.lastAt = at;
    const entry: StreamEntry = { seq: ++this.seq, kind, bytes, reason, timer: undefined };
    this.out.push(entry);
    entry.timer = clock.setTimeout(() => {
      entry.timer = undefined;
      this.dueSeq = Math.max(this.dueSeq, entry.seq);
      this.pump();
    }, at - now);
  }

  /** Delivers every due message at the head of the queue, unless a partition holds them. */
  pump(): void {
    for (;;) {
      const head = this.out[0];
      if (!head || head.seq > this.dueSeq) break;
      if (this.fabric.blocked(this.self, this.remote)) {
        this.startHold();
        return;
      }
      this.out.shift();
      if (head.kind === "data") this.peer.receive(head.bytes);
      else this.peer.receiveFin(head.reason);
    }
    this.stopHold();
    this.fabric.maybeForget(this.link);
  }

  private startHold(): void {
    if (this.holdTimer) return;
    const ms = this.fabric.resetAfterMs;
    this.holdTimer = this.fabric.clock.setTimeout(() => {
      this.holdTimer = undefined;
      const head = this.out[0];
      if (head && head.seq <= this.dueSeq && this.fabric.blocked(this.self, this.remote)) {
        this.fabric.reset(this.link, `reset: partition between ${this.self} and ${this.remote} held messages for ${ms} ms`);
      }
    }, ms);
  }

  private stopHold(): void {
    this.holdTimer?.cancel();
    this.holdTimer = undefined;
  }

  private receive(bytes: Uint8Array): void {
    if (this.isClosed) {
      this.fabric.counters.dropped++;
      return;
    }
    this.inbox.push(bytes);
    if (this.messageHandler && !this.drainScheduled) this.drain();
  }

  private receiveFin(reason: string): void {
    if (this.isClosed) return;
    if (this.messageHandler) this.drain();
    this.markClosed(reason);
    this.dropInbox();
  }

  private drain(): void {
    while (this.inbox.length > 0 && !this.isClosed) {
      const handler = this.messageHandler;
      if (!handler) return;
      handler(this.inbox.shift()!);
    }
  }

  /** Reset: closed at once, nothing in flight survives. */
  abort(reason: string): void {
    this.stopHold();
    for (const entry of this.out) {
      entry.timer?.cancel();
      if (entry.kind === "data") this.fabric.counters.dropped++;
    }
    this.out = [];
    this.dropInbox();
    if (!this.isClosed) this.markClosed(reason);
  }

  /** Closed and nothing of ours left in flight. */
  finished(): boolean {
    return this.isClosed && this.out.length === 0;
  }

  private markClosed(reason: string): void {
    this.isClosed = true;
    this.closeReason = reason;
    this.scheduleNotify();
  }

  private dropInbox(): void {
    this.fabric.counters.dropped += this.inbox.length;
    this.inbox = [];
  }

  private scheduleNotify(): void {
    if (this.closeNotified || this.notifyScheduled || !this.closeHandler) return;
    this.notifyScheduled = true;
    this.fabric.clock.setTimeout(() => {
      this.notifyScheduled = false;
      const handler = this.closeHandler;
      if (this.closeNotified || !handler) return;
      this.closeNotified = true;
      handler(this.closeReason);
    }, 0);
  }
}

interface ListenerEntry {
  onConnection: (connection: PeerConnection) => void;
}

interface DatagramEntry {
  handler: (from: string, message: Uint8Array) => void;
}

/** One agent's view of the network. */
class MemoryTransport implements PeerTransport {
  readonly self: string;
  private readonly fabric: Fabric;
  private isClosed = false;
  readonly listeners = new Map<string, ListenerEntry>();
  readonly datagramHandlers = new Map<string, Set<DatagramEntry>>();

  constructor(fabric: Fabric, self: string) {
    this.fabric = fabric;
    this.self = self;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private closedError(what: string): ClosedError {
    return new ClosedError(`[${COMPONENT}] ${what}: the transport of ${this.self} is closed; ask the network for a new one`);
  }

  /**
   * Accepts connections for `service`; returns an idempotent function that stops listening (open
   * connections stay open). Throws `AddressInUseError` when already listening on `service`,
   * `ClosedError` after close, `ConfigError` for an empty service name.
   */
  listen(service: string, onConnection: (connection: PeerConnection) => void): () => void {
    if (this.isClosed) throw this.closedError(`listen(${service})`);
    checkName(service, "service");
    if (this.listeners.has(service)) {
      throw new AddressInUseError(`${this.self}/${service}`, `[${COMPONENT}] ${this.self} already listens on service ${service}; stop the first listener before listening again`);
    }
    const entry: ListenerEntry = { onConnection };
    this.listeners.set(service, entry);
    return () => {
      if (this.listeners.get(service) === entry) this.listeners.delete(service);
    };
  }

  /**
   * Opens a connection to `peer`'s `service` after one one-way delay of that path. The listener's
   * callback gets its end in the same clock timer in which this promise resolves. Rejects with
   * `TryAgainError` (code 11) when the peer has no open transport, is not listening on `service`, or
   * is partitioned away; `ClosedError` when this transport is closed; `ConfigError` for empty names.
   */
  connect(peer: string, service: string): Promise<PeerConnection> {
    if (this.isClosed) return Promise.reject(this.closedError(`connect(${peer}, ${service})`));
    try {
      checkName(peer, "peer");
      checkName(service, "service");
    } catch (err) {
      return Promise.reject(err);
    }
    const fabric = this.fabric;
    const delay = fabric.drawDelay(fabric.faultsFor(this.self, peer));
    return new Promise<PeerConnection>((resolve, reject) => {
      fabric.clock.setTimeout(() => {
        if (this.isClosed) {
          reject(this.closedError(`connect(${peer}, ${service})`));
          return;
        }
        if (fabric.blocked(this.self, peer)) {
          reject(new TryAgainError(`[${COMPONENT}] ${this.self} cannot reach ${peer} (service ${service}): partitioned; retry after the partition heals`));
          return;
        }
        const target = fabric.transports.get(peer);
        const listener = target?.listeners.get(service);
        if (!target || !listener) {
          reject(new TryAgainError(`[${COMPONENT}] ${peer} is not listening on service ${service}; retry later`));
          return;
        }
        const link = fabric.openLink(this, target, service);
        resolve(link.a);
        listener.onConnection(link.b);
      }, delay);
    });
  }

  /**
   * Sends one datagram (copied). Lost, duplicated, reordered and delayed as the network's faults
   * say; dropped silently when `peer` is unreachable or has no handler for `service`. Throws
   * `ClosedError` after close and `ConfigError` for bad arguments.
   */
  sendDatagram(peer: string, service: string, message: Uint8Array): void {
    if (this.isClosed) throw this.closedError(`sendDatagram(${peer}, ${service})`);
    checkName(peer, "peer");
    checkName(service, "service");
    checkMessage(message);
    this.fabric.sendDatagram(this.self, peer, service, message.slice());
  }

  /**
   * Adds a datagram handler for `service` (several may coexist; each gets its own copy). Returns an
   * idempotent unsubscribe function. Throws `ClosedError` after close.
   */
  onDatagram(service: string, handler: (from: string, message: Uint8Array) => void): () => void {
    if (this.isClosed) throw this.closedError(`onDatagram(${service})`);
    checkName(service, "service");
    let set = this.datagramHandlers.get(service);
    if (!set) {
      set = new Set();
      this.datagramHandlers.set(service, set);
    }
    const entry: DatagramEntry = { handler };
    set.add(entry);
    return () => {
      const current = this.datagramHandlers.get(service);
      if (!current?.delete(entry)) return;
      if (current.size === 0) this.datagramHandlers.delete(service);
    };
  }

  /**
   * Closes every connection of this agent gracefully (peers get `onClose("transport closed")` after
   * what was already sent), stops listeners and datagram handlers, and frees the name for a new
   * transport. Idempotent.
   */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.listeners.clear();
    this.datagramHandlers.clear();
    for (const link of [...this.fabric.links]) {
      for (const end of [link.a, link.b]) {
        if (end.transport === this) end.close("transport closed");
      }
    }
    if (this.fabric.transports.get(this.self) === this) this.fabric.transports.delete(this.self);
  }
}

/**
 * One simulated cluster network. Hand each agent `network.transport(name)`; drive time with the
 * clock; inject faults with `setFaults`, `partition`, `isolate`, `disconnect`. Not thread-safe
 * (nothing in one JS realm is); all methods are synchronous and take effect at once.
 */
export class MemoryNetwork {
  private readonly fabric: Fabric;

  /**
   * Throws `ConfigError` when `seed` is not a finite number or `resetAfterMs` / `retransmitMs` is
   * negative or not finite.
   */
  constructor(options: MemoryNetworkOptions) {
    const seed = options.seed ?? 1;
    if (typeof seed !== "number" || !Number.isFinite(seed)) {
      throw new ConfigError({ component: COMPONENT, field: "seed", rule: "must be a finite number", value: seed });
    }
    const resetAfterMs = options.resetAfterMs ?? 30_000;
    checkNonNegative(resetAfterMs, "resetAfterMs");
    const retransmitMs = options.retransmitMs ?? 200;
    checkNonNegative(retransmitMs, "retransmitMs");
    this.fabric = new Fabric({ clock: options.clock, seed, resetAfterMs, retransmitMs });
  }

  /**
   * Creates the transport of agent `name`. A name can be reused only after its previous transport
   * was closed (an agent restart); otherwise throws `ConfigError` (field `name`).
   */
  transport(name: string): PeerTransport {
    checkName(name, "name");
    const live = this.fabric.transports.get(name);
    if (live && !live.closed) {
      throw new ConfigError({
        component: COMPONENT,
        field: "name",
        rule: "already has an open transport on this network; close it before asking for a new one",
        value: name,
      });
    }
    const transport = new MemoryTransport(this.fabric, name);
    this.fabric.transports.set(name, transport);
    return transport;
  }

  /**
   * Sets the faults of a scope (replacing what that scope had; `{}` clears it). For one directed
   * path the most specific setting wins per field: from+to, then from, then to, then global.
   * Applies to messages sent from now on. Throws `ConfigError` naming the field (`faults.lossRate`,
   * `faults.delayMs.min`, `scope.from`, ...) when a rate is outside [0, 1], a delay is negative or
   * min > max; nothing changes then.
   */
  setFaults(faults: LinkFaults, scope: FaultScope = {}): void {
    const valid = validateFaults(faults);
    if (typeof scope !== "object" || scope === null) {
      throw new ConfigError({ component: COMPONENT, field: "scope", rule: "must be an object { from?, to? }", value: scope });
    }
    if (scope.from !== undefined) checkName(scope.from, "scope.from");
    if (scope.to !== undefined) checkName(scope.to, "scope.to");
    const f = this.fabric;
    if (scope.from !== undefined && scope.to !== undefined) f.pairFaults.set(pairKey(scope.from, scope.to), valid);
    else if (scope.from !== undefined) f.fromFaults.set(scope.from, valid);
    else if (scope.to !== undefined) f.toFaults.set(scope.to, valid);
    else f.globalFaults = valid;
  }

  /** Removes every fault setting of every scope (partitions are separate: see `heal`). */
  clearFaults(): void {
    const f = this.fabric;
    f.globalFaults = undefined;
    f.fromFaults.clear();
    f.toFaults.clear();
    f.pairFaults.clear();
  }

  /**
   * Splits the network: nodes in different groups cannot exchange anything; nodes named in no group
   * form one more group together. Replaces any previous partition (isolations stay). Throws
   * `ConfigError` when `groups` is not a list of lists of names or a name is in two groups.
   */
  partition(groups: string[][]): void {
    if (!Array.isArray(groups)) {
      throw new ConfigError({ component: COMPONENT, field: "groups", rule: "must be an array of arrays of node names", value: groups });
    }
    const groupOf = new Map<string, number>();
    groups.forEach((group, i) => {
      if (!Array.isArray(group)) {
        throw new ConfigError({ component: COMPONENT, field: `groups[${i}]`, rule: "must be an array of node names", value: group });
      }
      group.forEach((name, j) => {
        checkName(name, `groups[${i}][${j}]`);
        if (groupOf.has(name) && groupOf.get(name) !== i) {
          throw new ConfigError({ component: COMPONENT, field: `groups[${i}][${j}]`, rule: "names a node that is already in another group", value: name });
        }
        groupOf.set(name, i);
      });
    });
    this.fabric.groupOf = groupOf;
    // Changing groups may reconnect some pairs: let held messages through where that is so.
    this.fabric.schedulePumpAll();
  }

  /** Removes the partition and every isolation; held stream messages are delivered in order. */
  heal(): void {
    this.fabric.groupOf = undefined;
    this.fabric.isolated.clear();
    this.fabric.schedulePumpAll();
  }

  /** Cuts `name` off from every other node (on top of any partition). Idempotent. */
  isolate(name: string): void {
    checkName(name, "name");
    this.fabric.isolated.add(name);
  }

  /** Undoes `isolate(name)`; held stream messages flow again where no partition remains. Idempotent. */
  rejoin(name: string): void {
    checkName(name, "name");
    if (this.fabric.isolated.delete(name)) this.fabric.schedulePumpAll();
  }

  /** Whether `from` can currently send to `to` (no partition or isolation between them). */
  canReach(from: string, to: string): boolean {
    return !this.fabric.blocked(from, to);
  }

  /**
   * Resets every connection of `name` at once, as its peers see a crash: both ends get
   * `onClose("reset")`, everything in flight is dropped. Listeners and the transport stay (close
   * the transport too to model the process dying). Idempotent; unknown names are ignored.
   */
  disconnect(name: string): void {
    for (const link of [...this.fabric.links]) {
      if (link.a.transport.self === name || link.b.transport.self === name) this.fabric.reset(link, "reset");
    }
  }

  /** Counters since creation or the last `resetStats()` (a copy). */
  stats(): MemoryNetworkStats {
    return { ...this.fabric.counters };
  }

  /** Sets every counter back to 0. */
  resetStats(): void {
    this.fabric.counters = emptyStats();
  }
}
