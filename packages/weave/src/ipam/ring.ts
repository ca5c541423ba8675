/**
 * The IPAM ring: a CRDT of tokens {start, owner, version, free, end} over one address range
 * (offsets from the range's first address). A token owns the addresses from its start up to the
 * next token's start; the ring always holds a token at offset 0 (the initial split puts one there
 * and tokens are never deleted), so the wrap-around range from the last token to the end belongs to
 * the last token and nothing wraps past offset 0. Each token also carries `end`, the next token's
 * start as its owner wrote it: a peer that learns a token without having heard of the token after
 * it (a lost delta) still knows where the range stops, and treats the rest as a gap it knows no
 * owner of — never as the previous token's (found by the property test: a peer handed out an
 * address past a donated range's end).
 *
 * Rules (the invariants this file keeps):
 *  - Only a token's owner changes it, bumping its version: relabelling it to another peer (a
 *    donation), updating its advisory free count, or inserting new tokens inside its own range
 *    (a donation of part of a range). Tokens are never deleted.
 *  - Tombstones: `dead` maps a peer name removed by a quorum decision (a reclaim) to the peer that
 *    claimed its space. A tombstoned peer's tokens belong to its claimant (`effectiveOwner`), at
 *    once, without any token changing; the claimant then relabels them (as their owner now). A
 *    tombstone is never removed and a tombstoned name never owns space again.
 *  - Merge = union of tokens and tombstones; for the same start the winner is, in order: the token
 *    of a peer that is not tombstoned, then the higher version, then (a tie that cannot happen
 *    between honest peers: a version is bumped by the token's only owner, whose changes are
 *    persisted before they are sent, and a restarted peer changes nothing before it has merged its
 *    peers' ring) the total order `tieOrder` — so merging stays commutative — and the tie is
 *    recorded in `conflicts`, which the allocator reports as an alarm.
 *  - Identity: a ring is the outcome of one seeding (a consensus decision or a seed list),
 *    `{weight, seed}`. Rings of different identities never merge token by token (their tokens
 *    describe two unrelated divisions of the range): the allocator hands over by identity order,
 *    `compareIdentity`.
 *
 * Changes are tracked per token start, so a peer gossips only the tokens it changed (`takeDelta`),
 * each with the token that ends its range (so a peer that missed an earlier delta never takes a
 * range to run further than it does), and sends the whole ring (`snapshot`) to newcomers.
 */
import { GossipRejected } from "../mesh/gossip.ts";
import type { OffsetRange } from "./space.ts";
import { splitRange } from "./space.ts";

export interface Token {
  /** Offset of the token's first address. */
  start: number;
  /** Peer name. */
  owner: string;
  /** Bumped by the owner on each change. */
  version: number;
  /** Advisory: free addresses in the token's range, as last reported by its owner. */
  free: number;
  /**
   * Where the token's range ends (exclusive), as its owner wrote it: the next token's start. A peer
   * that has not heard of that next token still knows where the range stops (see the header).
   */
  end: number;
}

/** Which seeding a ring comes from: `weight` = number of peers that agreed it, `seed` = the decision's id. */
export interface RingIdentity {
  weight: number;
  seed: string;
}

/** The ring's state as exchanged (complete or a delta). */
export interface RingState {
  identity: RingIdentity;
  /** Tombstones: dead peer -> claimant. */
  dead: Array<[string, string]>;
  tokens: Token[];
}

/** Total order on identities: by weight, then seed (byte-wise). <0: a before b. */
export function compareIdentity(a: RingIdentity, b: RingIdentity): number {
  if (a.weight !== b.weight) return a.weight - b.weight;
  return a.seed < b.seed ? -1 : a.seed > b.seed ? 1 : 0;
}

/**
 * The total order of two states of one token under one version (which no honest peer makes):
 * by owner name, then end, then free count. >0: a wins.
 */
export function tieOrder(a: Token, b: Token): number {
  if (a.owner !== b.owner) return a.owner > b.owner ? 1 : -1;
  if (a.end !== b.end) return a.end - b.end;
  return a.free - b.free;
}

function describeToken(t: Token): string {
  return `${t.owner}, end ${t.end}, free ${t.free}`;
}

/** An update no honest peer can produce (malformed tokens, two claimants of one dead peer). */
export class RingConflictError extends GossipRejected {
  constructor(message: string) {
    super(message);
    this.name = "RingConflictError";
  }
}

export class Ring {
  /** Addresses in the range. */
  readonly size: number;
  readonly identity: RingIdentity;
  /** Sorted by start. */
  private tokens: Token[] = [];
  private readonly dead = new Map<string, string>();
  /** Starts of tokens changed since the last `takeDelta`, and tombstones added since then. */
  private readonly changed = new Set<number>();
  private readonly deadChanged = new Set<string>();
  /**
   * Ties seen (equal version, different state): impossible between honest peers, so each is an
   * alarm the allocator reports; merging still converges (`tieOrder` picks the same winner
   * everywhere) and the loser's allocations there are refused by the allocator, never served twice.
   */
  readonly conflicts: string[] = [];

  constructor(size: number, identity: RingIdentity) {
    this.size = size;
    this.identity = identity;
  }

  /** The initial split among `members` (sorted here), each block's free count set by `freeOf`. */
  static seed(size: number, identity: RingIdentity, members: readonly string[], freeOf: (r: OffsetRange) => number): Ring {
    const ring = new Ring(size, identity);
    const blocks = splitRange(size, [...new Set(members)].sort());
    blocks.forEach(([start, owner], i) => {
      const end = blocks[i + 1]?.[0] ?? size;
      ring.tokens.push({ start, owner, version: 1, free: freeOf([start, end]), end });
    });
    return ring;
  }

  /** A ring from a complete state (persisted or received). Validates it. */
  static from(size: number, state: RingState): Ring {
    const ring = new Ring(size, state.identity);
    for (const [d, c] of state.dead) ring.dead.set(d, c);
    ring.tokens = [...state.tokens].map((t) => ({ ...t })).sort((a, b) => a.start - b.start);
    ring.check();
    return ring;
  }

  /** Copies of the tokens, sorted. */
  all(): Token[] {
    return this.tokens.map((t) => ({ ...t }));
  }

  tombstones(): Array<[string, string]> {
    return [...this.dead];
  }

  isDead(peer: string): boolean {
    return this.dead.has(peer);
  }

  /** The peer that holds `peer`'s space: itself, or (following tombstones) its claimant. */
  effectiveOwner(peer: string): string {
    let at = peer;
    for (let hops = 0; hops <= this.dead.size; hops++) {
      const next = this.dead.get(at);
      if (next === undefined) return at;
      at = next;
    }
    throw new RingConflictError(`[weave] IPAM ring: tombstones form a cycle through ${peer}`);
  }

  /** Index of the token whose range holds `offset`. */
  private indexOf(offset: number): number {
    let lo = 0;
    let hi = this.tokens.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.tokens[mid]!.start <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * The (effective) owner of `offset`; undefined for an empty ring, an offset out of range, or one
   * in a gap of this peer's view (past a token's end, before a token it has not heard of yet).
   */
  ownerOf(offset: number): string | undefined {
    if (this.tokens.length === 0 || offset < 0 || offset >= this.size) return undefined;
    const i = this.indexOf(offset);
    if (offset < this.tokens[i]!.start || offset >= this.endOf(i)) return undefined;
    return this.effectiveOwner(this.tokens[i]!.owner);
  }

  /** End (exclusive) of token i's range in this view: its own end, or the next known token. */
  private endOf(i: number): number {
    return Math.min(this.tokens[i]!.end, this.tokens[i + 1]?.start ?? this.size);
  }

  /** The ranges `peer` effectively owns, ascending, adjacent ones joined. */
  rangesOf(peer: string): OffsetRange[] {
    const out: Array<[number, number]> = [];
    this.tokens.forEach((t, i) => {
      if (this.effectiveOwner(t.owner) !== peer) return;
      const last = out[out.length - 1];
      if (last && last[1] === t.start) last[1] = this.endOf(i);
      else out.push([t.start, this.endOf(i)]);
    });
    return out;
  }

  /** Each token's range with its (effective) owner and advisory free count. */
  entries(): Array<{ start: number; end: number; owner: string; free: number; version: number }> {
    return this.tokens.map((t, i) => ({ start: t.start, end: this.endOf(i), owner: this.effectiveOwner(t.owner), free: t.free, version: t.version }));
  }

  /** Effective owners of space (distinct, sorted). */
  owners(): string[] {
    return [...new Set(this.tokens.map((t) => this.effectiveOwner(t.owner)))].sort();
  }

  /** Advertised free space per effective owner. */
  freeByOwner(): Map<string, number> {
    const out = new Map<string, number>();
    for (const t of this.tokens) {
      const o = this.effectiveOwner(t.owner);
      out.set(o, (out.get(o) ?? 0) + t.free);
    }
    return out;
  }

  /**
   * `self` gives [start, end) — space it effectively owns, possibly across several of its tokens —
   * to `to`: tokens are split at `end` (the rest stays self's) and at `start` when needed, the
   * tokens in [start, end) are relabelled to `to`, and every token changed gets a new version.
   * `freeOf` gives the free count of a range after the change. Throws RangeError when self does not
   * own all of it.
   */
  give(self: string, range: OffsetRange, to: string, freeOf: (r: OffsetRange) => number): void {
    const [start, end] = range;
    if (!(start >= 0 && end <= this.size && start < end)) throw new RangeError(`give: bad range [${start}, ${end})`);
    if (!this.rangesOf(self).some(([a, b]) => a <= start && end <= b)) throw new RangeError(`give: ${self} does not own all of [${start}, ${end})`);
    const bumped = new Set<number>();
    const touch = (t: Token): void => {
      if (!bumped.has(t.start)) t.version++;
      bumped.add(t.start);
      this.changed.add(t.start);
    };
    const split = (at: number, owner: string): void => {
      const i = this.indexOf(at);
      const t = this.tokens[i]!;
      if (t.start === at) return;
      this.insert({ start: at, owner, version: t.version + 1, free: 0, end: t.end });
      bumped.add(at);
      t.end = at;
      touch(t);
    };
    if (end < this.size && this.ownerOf(end) === self) split(end, self);
    split(start, to);
    this.tokens.forEach((t, i) => {
      if (t.start < start || t.start >= end) return;
      if (t.owner !== to) {
        t.owner = to;
        touch(t);
      }
      t.free = freeOf([t.start, this.endOf(i)]);
      this.changed.add(t.start);
    });
    this.refreshFree(self, freeOf);
  }

  private insert(t: Token): void {
    const i = this.tokens.findIndex((x) => x.start > t.start);
    if (i < 0) this.tokens.push(t);
    else this.tokens.splice(i, 0, t);
    this.changed.add(t.start);
  }

  /**
   * `self` brings its tokens up to date: relabels the tokens of tombstoned peers it now holds, and
   * sets the advisory free count of each of its tokens (bumping the version of those that changed).
   * Returns whether anything changed.
   */
  refreshFree(self: string, freeOf: (r: OffsetRange) => number): boolean {
    let any = false;
    this.tokens.forEach((t, i) => {
      if (this.effectiveOwner(t.owner) !== self) return;
      const free = freeOf([t.start, this.endOf(i)]);
      if (t.owner !== self || t.free !== free) {
        t.owner = self;
        t.free = free;
        t.version++;
        this.changed.add(t.start);
        any = true;
      }
    });
    return any;
  }

  /** Records a quorum's reclaim decision: `dead`'s space goes to `claimant`. Returns whether new. */
  bury(dead: string, claimant: string): boolean {
    if (this.dead.has(dead)) {
      if (this.dead.get(dead) !== claimant) {
        throw new RingConflictError(`[weave] IPAM ring: ${dead} reclaimed by both ${this.dead.get(dead)} and ${claimant}`);
      }
      return false;
    }
    this.dead.set(dead, claimant);
    this.effectiveOwner(dead);
    this.deadChanged.add(dead);
    return true;
  }

  /** Whether token `a` beats token `b` at the same start (see the header). */
  private beats(a: Token, b: Token): boolean {
    const aLive = !this.dead.has(a.owner);
    const bLive = !this.dead.has(b.owner);
    if (aLive !== bLive) return aLive;
    if (a.version !== b.version) return a.version > b.version;
    const order = tieOrder(a, b);
    if (order !== 0) {
      const [win, lose] = order > 0 ? [a, b] : [b, a];
      const line = `token at offset ${a.start} has two states under version ${a.version} (${describeToken(win)} kept, ${describeToken(lose)} dropped): one peer reused a version`;
      if (!this.conflicts.includes(line)) this.conflicts.push(line);
      if (this.conflicts.length > 20) this.conflicts.shift();
    }
    return order > 0;
  }

  /**
   * Merges a state of the same identity; returns what was new here (tombstones and tokens), or
   * undefined. Throws RingConflictError (nothing merged) for an impossible update.
   */
  merge(state: RingState): RingState | undefined {
    if (compareIdentity(state.identity, this.identity) !== 0) throw new RangeError("merge: rings of different identities do not merge");
    for (const t of state.tokens) {
      if (!(Number.isInteger(t.start) && t.start >= 0 && t.start < this.size)) throw new RingConflictError(`[weave] IPAM ring: token start ${t.start} outside the range`);
      if (!(t.end > t.start && t.end <= this.size)) throw new RingConflictError(`[weave] IPAM ring: token at ${t.start} ends at ${t.end}, outside (${t.start}, ${this.size}]`);
    }
    const newDead: Array<[string, string]> = [];
    for (const [d, c] of state.dead) {
      const known = this.dead.get(d);
      if (known === undefined) newDead.push([d, c]);
      else if (known !== c) throw new RingConflictError(`[weave] IPAM ring: ${d} reclaimed by both ${known} and ${c}`);
    }
    for (const [d, c] of newDead) this.dead.set(d, c);
    const newTokens: Token[] = [];
    try {
      for (const t of state.tokens) {
        const i = this.tokens.length === 0 ? -1 : this.indexOf(t.start);
        const cur = i >= 0 && this.tokens[i]!.start === t.start ? this.tokens[i] : undefined;
        if (cur === undefined || this.beats(t, cur)) newTokens.push({ ...t });
      }
      this.effectiveOwner(newDead[0]?.[0] ?? "");
    } catch (err) {
      for (const [d] of newDead) this.dead.delete(d);
      throw err;
    }
    for (const t of newTokens) {
      const i = this.tokens.length === 0 ? -1 : this.indexOf(t.start);
      if (i >= 0 && this.tokens[i]!.start === t.start) this.tokens[i] = t;
      else this.insert(t);
      this.changed.delete(t.start);
    }
    if (newDead.length === 0 && newTokens.length === 0) return undefined;
    return { identity: this.identity, dead: newDead, tokens: this.withBoundaries(newTokens) };
  }

  /** The whole ring. */
  snapshot(): RingState {
    return { identity: this.identity, dead: this.tombstones(), tokens: this.all() };
  }

  /** What this peer changed since the last call (its own edits, not merged ones), or undefined. */
  takeDelta(): RingState | undefined {
    if (this.changed.size === 0 && this.deadChanged.size === 0) return undefined;
    const tokens = this.withBoundaries(this.tokens.filter((t) => this.changed.has(t.start)));
    const dead = [...this.deadChanged].map((d): [string, string] => [d, this.dead.get(d)!]);
    this.changed.clear();
    this.deadChanged.clear();
    return { identity: this.identity, dead, tokens };
  }

  /**
   * `tokens` (copied) plus, for each, the token that ends its range here: a delta must say where
   * each changed range ends, or a peer that missed an earlier delta would take a relabelled range
   * to run on over a token it never heard of (and hand out, or give away, another peer's space).
   */
  private withBoundaries(tokens: readonly Token[]): Token[] {
    const out = new Map<number, Token>();
    for (const t of tokens) out.set(t.start, { ...t });
    for (const t of tokens) {
      const i = this.indexOf(t.start);
      const next = this.tokens[i + 1];
      if (next && !out.has(next.start)) out.set(next.start, { ...next });
    }
    return [...out.values()].sort((a, b) => a.start - b.start);
  }

  /** Structural checks of a complete ring: a token at 0, distinct starts inside the range, ends after starts. */
  private check(): void {
    if (this.tokens.length > 0 && this.tokens[0]!.start !== 0) throw new RingConflictError("[weave] IPAM ring: a complete ring must hold a token at the range's first address");
    for (let i = 0; i < this.tokens.length; i++) {
      const t = this.tokens[i]!;
      if (!(Number.isInteger(t.start) && t.start >= 0 && t.start < this.size)) throw new RingConflictError(`[weave] IPAM ring: token start ${t.start} outside the range`);
      if (i > 0 && this.tokens[i - 1]!.start === t.start) throw new RingConflictError(`[weave] IPAM ring: two tokens at offset ${t.start}`);
      if (!(t.end > t.start && t.end <= this.size)) throw new RingConflictError(`[weave] IPAM ring: token at ${t.start} ends at ${t.end}, outside (${t.start}, ${this.size}]`);
    }
  }
}
