/**
 * Single-value basic Paxos (Lamport's "Paxos Made Simple") over the mesh: every participant is
 * proposer, acceptor and learner of any number of named instances ("init" for the ring's initial
 * split, "reclaim:<peer>" for a departed peer's space). Transport-agnostic: the owner passes
 * `broadcast` (prepare / accept / decided, down the broadcast tree) and `unicast` (promise /
 * accepted / nack, back to the proposer), and feeds every received message to `receive`.
 *
 *  - Ballots are (round, proposer id) with the id = peer name + a per-start random suffix, so a
 *    restarted proposer never reuses a ballot with a different value.
 *  - Acceptor state (promised ballot, accepted ballot and value) is persisted through `persist`
 *    before any reply leaves (a restarted acceptor keeps its promises), and restored with `restore`.
 *  - A proposer retries with a higher round after `retryMs` (+ jitter) until the instance is
 *    decided, so lost messages and duelling proposers only delay it; `abandon` stops it.
 *  - Which peers may vote in an instance, whose votes a proposer counts and the quorum are the
 *    owner's policy (`canVote`, `counts`, `quorum`), asked at each step.
 *  - The value chosen by a proposer that is free to choose comes from `choose(promisers)`.
 */
import type { Clock, TimerHandle } from "@cnikit/core";

export interface Ballot {
  round: number;
  /** Proposer id: peer name + "/" + per-start suffix. */
  by: string;
}

export type PaxosOp = "prepare" | "promise" | "accept" | "accepted" | "nack" | "decided";

export interface PaxosMessage {
  inst: string;
  op: PaxosOp;
  b: Ballot;
  /** promise: the acceptor's accepted ballot and value, if any; accept / decided: the value. */
  ab?: Ballot;
  v?: unknown;
}

export interface AcceptorState {
  promised?: Ballot;
  accepted?: Ballot;
  value?: unknown;
}

export interface PaxosOptions {
  /** This peer's name. */
  self: string;
  clock: Clock;
  random: () => number;
  broadcast(msg: PaxosMessage): void;
  unicast(to: string, msg: PaxosMessage): void;
  /** Stores an acceptor state durably; replies wait for it. */
  persist(inst: string, state: AcceptorState): Promise<void>;
  /** Whether this peer votes (as acceptor) in `inst` now. */
  canVote(inst: string): boolean;
  /** Learner callback: `inst` decided `value` (called once per instance). */
  decided(inst: string, value: unknown): void;
  /** Base retry delay of a proposer (ms); default 1500. */
  retryMs?: number;
}

interface Proposal {
  quorum: () => number;
  counts: (peer: string) => boolean;
  choose: (promisers: string[]) => unknown;
  ballot: Ballot;
  phase: "prepare" | "accept";
  promises: Map<string, { ab?: Ballot; v?: unknown }>;
  accepts: Set<string>;
  value?: unknown;
  timer?: TimerHandle;
}

/** <0 when a orders before b. */
export function compareBallot(a: Ballot | undefined, b: Ballot | undefined): number {
  if (!a || !b) return (a ? 1 : 0) - (b ? 1 : 0);
  if (a.round !== b.round) return a.round - b.round;
  return a.by < b.by ? -1 : a.by > b.by ? 1 : 0;
}

/** Peer name of a proposer id. */
export function proposerPeer(by: string): string {
  const i = by.lastIndexOf("/");
  return i < 0 ? by : by.slice(0, i);
}

export class Paxos {
  private readonly o: PaxosOptions;
  private readonly id: string;
  private readonly acceptor = new Map<string, AcceptorState>();
  private readonly proposals = new Map<string, Proposal>();
  private readonly learned = new Map<string, unknown>();
  /** Highest round seen per instance (a new ballot goes above it). */
  private readonly seen = new Map<string, number>();
  /** Per-instance chain so an acceptor handles one message at a time (persist, then reply). */
  private readonly chains = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(o: PaxosOptions) {
    this.o = o;
    this.id = `${o.self}/${Math.floor(o.random() * 2 ** 32)
      .toString(16)
      .padStart(8, "0")}`;
  }

  /** Restores persisted acceptor states (at start). */
  restore(states: Iterable<[string, AcceptorState]>): void {
    for (const [inst, s] of states) {
      this.acceptor.set(inst, s);
      this.see(inst, s.promised);
    }
  }

  /** The value `inst` decided, if learned. */
  learnedValue(inst: string): unknown {
    return this.learned.get(inst);
  }

  isDecided(inst: string): boolean {
    return this.learned.has(inst);
  }

  isProposing(inst: string): boolean {
    return this.proposals.has(inst);
  }

  /**
   * Starts proposing in `inst` (no-op when already proposing or decided): `quorum()` replies from
   * peers that `counts` (default: any) are needed in each phase; `choose` picks the value when no
   * acceptor has accepted one; the first round starts after `delayMs`.
   */
  propose(inst: string, quorum: () => number, choose: (promisers: string[]) => unknown, delayMs = 0, counts: (peer: string) => boolean = () => true): void {
    if (this.stopped || this.proposals.has(inst) || this.learned.has(inst)) return;
    const p: Proposal = { quorum, counts, choose, ballot: { round: 0, by: this.id }, phase: "prepare", promises: new Map(), accepts: new Set() };
    this.proposals.set(inst, p);
    if (delayMs > 0) p.timer = this.o.clock.setTimeout(() => this.startRound(inst), delayMs);
    else this.startRound(inst);
  }

  /** Stops proposing in `inst`. */
  abandon(inst: string): void {
    this.proposals.get(inst)?.timer?.cancel();
    this.proposals.delete(inst);
  }

  /** Stops every proposer (the owner is stopping). */
  stop(): void {
    this.stopped = true;
    for (const inst of [...this.proposals.keys()]) this.abandon(inst);
  }

  /** Records that `inst` decided `value` (from a decided message or the owner's own knowledge). */
  learn(inst: string, value: unknown): void {
    if (this.learned.has(inst)) return;
    this.learned.set(inst, value);
    this.abandon(inst);
    this.o.decided(inst, value);
  }

  private see(inst: string, b: Ballot | undefined): void {
    if (b && b.round > (this.seen.get(inst) ?? 0)) this.seen.set(inst, b.round);
  }

  private startRound(inst: string): void {
    const p = this.proposals.get(inst);
    if (!p || this.stopped) return;
    p.timer?.cancel();
    p.ballot = { round: (this.seen.get(inst) ?? 0) + 1, by: this.id };
    this.see(inst, p.ballot);
    p.phase = "prepare";
    p.promises.clear();
    p.accepts.clear();
    delete p.value;
    const base = this.o.retryMs ?? 1500;
    p.timer = this.o.clock.setTimeout(() => this.startRound(inst), base * (1 + this.o.random()));
    const msg: PaxosMessage = { inst, op: "prepare", b: p.ballot };
    this.o.broadcast(msg);
    // This peer's own acceptor answers too (when it votes).
    this.receive(this.o.self, msg);
  }

  /** Handles a message from peer `from` (this peer's own messages included). */
  receive(from: string, msg: PaxosMessage): void {
    if (this.stopped) return;
    this.see(msg.inst, msg.b);
    switch (msg.op) {
      case "prepare":
      case "accept":
        this.enqueue(msg.inst, () => this.actAsAcceptor(from, msg));
        return;
      case "promise":
        this.onPromise(from, msg);
        return;
      case "accepted":
        this.onAccepted(from, msg);
        return;
      case "nack":
        this.onNack(msg);
        return;
      case "decided":
        this.learn(msg.inst, msg.v);
        return;
    }
  }

  private enqueue(inst: string, step: () => Promise<void>): void {
    const prev = this.chains.get(inst) ?? Promise.resolve();
    const next = prev.then(step, step).catch(() => undefined);
    this.chains.set(inst, next);
  }

  private reply(to: string, msg: PaxosMessage): void {
    if (to === this.o.self) this.receive(to, msg);
    else this.o.unicast(to, msg);
  }

  private async actAsAcceptor(from: string, msg: PaxosMessage): Promise<void> {
    if (this.stopped) return;
    if (this.learned.has(msg.inst)) {
      this.reply(from, { inst: msg.inst, op: "decided", b: msg.b, v: this.learned.get(msg.inst) });
      return;
    }
    if (!this.o.canVote(msg.inst)) return;
    const cur = this.acceptor.get(msg.inst) ?? {};
    const cmp = compareBallot(msg.b, cur.promised);
    if (msg.op === "prepare" ? cmp <= 0 : cmp < 0) {
      this.reply(from, { inst: msg.inst, op: "nack", b: cur.promised! });
      return;
    }
    const next: AcceptorState = msg.op === "prepare" ? { ...cur, promised: msg.b } : { promised: msg.b, accepted: msg.b, value: msg.v };
    this.acceptor.set(msg.inst, next);
    await this.o.persist(msg.inst, next);
    if (this.stopped) return;
    if (msg.op === "prepare") {
      const out: PaxosMessage = { inst: msg.inst, op: "promise", b: msg.b };
      if (next.accepted) {
        out.ab = next.accepted;
        out.v = next.value;
      }
      this.reply(from, out);
    } else {
      this.reply(from, { inst: msg.inst, op: "accepted", b: msg.b });
    }
  }

  private current(msg: PaxosMessage): Proposal | undefined {
    const p = this.proposals.get(msg.inst);
    return p && compareBallot(p.ballot, msg.b) === 0 ? p : undefined;
  }

  private onPromise(from: string, msg: PaxosMessage): void {
    const p = this.current(msg);
    if (!p || p.phase !== "prepare" || !p.counts(from)) return;
    p.promises.set(from, msg.ab ? { ab: msg.ab, v: msg.v } : {});
    if (p.promises.size < p.quorum()) return;
    let best: { ab?: Ballot; v?: unknown } | undefined;
    for (const pr of p.promises.values()) if (pr.ab && compareBallot(pr.ab, best?.ab) > 0) best = pr;
    p.value = best ? best.v : p.choose([...p.promises.keys()]);
    p.phase = "accept";
    const out: PaxosMessage = { inst: msg.inst, op: "accept", b: p.ballot, v: p.value };
    this.o.broadcast(out);
    this.receive(this.o.self, out);
  }

  private onAccepted(from: string, msg: PaxosMessage): void {
    const p = this.current(msg);
    if (!p || p.phase !== "accept" || !p.counts(from)) return;
    p.accepts.add(from);
    if (p.accepts.size < p.quorum()) return;
    const value = p.value;
    this.o.broadcast({ inst: msg.inst, op: "decided", b: p.ballot, v: value });
    this.learn(msg.inst, value);
  }

  private onNack(msg: PaxosMessage): void {
    const p = this.proposals.get(msg.inst);
    if (!p || compareBallot(msg.b, p.ballot) <= 0) return;
    // Someone promised a higher ballot: back off and retry above it.
    p.timer?.cancel();
    const base = this.o.retryMs ?? 1500;
    p.timer = this.o.clock.setTimeout(() => this.startRound(msg.inst), base * this.o.random());
  }
}
