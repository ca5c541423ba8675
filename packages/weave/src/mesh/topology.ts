/**
 * The known topology: one record per peer (this peer's included), merged by version, and the
 * routes computed from it.
 *
 *  - Merge: a record replaces the held one when its version is higher (the peer alone bumps it); a
 *    DELTA (base version → version, connections set / removed) applies only to a held record at
 *    exactly its base, else the full record is asked for. A record or delta naming a peer that is
 *    neither known nor in the same update is ignored (the names are returned so the caller can ask
 *    the sender for them); a record of a peer this one is directly
 *    connected to under another UID is a stale incarnation and is ignored. A record of ourselves
 *    newer than ours (a previous incarnation's) makes us bump our version beyond it.
 *  - Routes (recomputed lazily after a change): unicast next hop by BFS from us over established
 *    SYMMETRIC links (both records list the link as established), neighbours visited in name order;
 *    per-source broadcast trees: the BFS tree rooted at the source, the same on every peer, so a
 *    broadcast forwarded to our children in the source's tree reaches each peer exactly once.
 *  - GC: records of peers no longer reachable from us through any listed connection are dropped.
 *
 *  - Changes are tracked per record since the last `takeChanges` (base version + connection edits),
 *    so a flush sends each changed record once, as a delta of what changed (O(edits), not O(degree))
 *    or in full when no base is shared (new peer, new UID, an answer to a request).
 *
 * Memory: at most `MAX_PEERS` (4096, the short-id space) records, each with its connection list
 * (O(N + E)); the broadcast-tree cache holds at most one child list per known source and is cleared
 * on every change.
 */
import type { ConnectionEntry, DigestEntry, PeerRecord, RecordDelta } from "./codec.ts";
import { MAX_PEERS } from "./identity.ts";

export interface MergeResult {
  /** Names whose record changed here (relayed by the next `takeChanges`). */
  changed: string[];
  /** Peers named by ignored records that we do not know (ask the sender). */
  unknown: string[];
  /** Deltas we could not apply (no record at their base version): ask for the full records. */
  needFull: string[];
  /** Peers seen under a new UID (a restart). */
  restarted: { name: string; from: string; to: string }[];
  /** Our own record came back newer (a previous incarnation): we bumped our version. */
  selfBumped: boolean;
  /** Records refused because the table is full. */
  overflow: number;
}

function sameConnections(a: ConnectionEntry[], b: ConnectionEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.to !== y.to || x.established !== y.established || x.outbound !== y.outbound) return false;
  }
  return true;
}

/** What changed in one record since the last `takeChanges`: the base version and connection edits. */
interface PendingChange {
  /** The version neighbours may hold; undefined = send the full record (new peer, new UID). */
  base: number | undefined;
  /** Connection edits since `base`: the new entry, or null when removed. */
  edits: Map<string, ConnectionEntry | null>;
}

export class Topology {
  private readonly records = new Map<string, PeerRecord>();
  private readonly changes = new Map<string, PendingChange>();
  private adjacency: Map<string, string[]> | undefined;
  private unicast: Map<string, string> | undefined;
  private readonly trees = new Map<string, string[]>();
  /** Bumped on every change; caches compare against it. */
  generation = 0;

  constructor(private readonly selfRecord: PeerRecord) {
    this.records.set(selfRecord.name, selfRecord);
  }

  get selfName(): string {
    return this.selfRecord.name;
  }

  get self(): PeerRecord {
    return this.selfRecord;
  }

  get size(): number {
    return this.records.size;
  }

  get(name: string): PeerRecord | undefined {
    return this.records.get(name);
  }

  all(): IterableIterator<PeerRecord> {
    return this.records.values();
  }

  /** Records the edit `before` → `after` of one record for the next `takeChanges`. */
  private note(before: PeerRecord | undefined, after: PeerRecord): void {
    let ch = this.changes.get(after.name);
    if (!ch) {
      ch = { base: before && before.uid === after.uid ? before.version : undefined, edits: new Map() };
      this.changes.set(after.name, ch);
    }
    if (!before || before.uid !== after.uid) {
      ch.base = undefined;
      ch.edits.clear();
      return;
    }
    if (ch.base === undefined) return;
    const old = new Map(before.connections.map((c) => [c.to, c]));
    for (const c of after.connections) {
      const o = old.get(c.to);
      old.delete(c.to);
      if (!o || o.established !== c.established || o.outbound !== c.outbound) ch.edits.set(c.to, c);
    }
    for (const gone of old.keys()) ch.edits.set(gone, null);
  }

  /** Marks a record to be sent in full by the next `takeChanges` (a request, a stub). */
  markFull(name: string): void {
    if (this.records.has(name)) this.changes.set(name, { base: undefined, edits: new Map() });
  }

  /** Whether anything waits for `takeChanges`. */
  get hasChanges(): boolean {
    return this.changes.size > 0;
  }

  /** The changes since the last call: deltas where a base is known, full records otherwise. */
  takeChanges(): { records: PeerRecord[]; deltas: RecordDelta[] } {
    const records: PeerRecord[] = [];
    const deltas: RecordDelta[] = [];
    for (const [name, ch] of this.changes) {
      const rec = this.records.get(name);
      if (!rec) continue;
      if (ch.base === undefined) {
        records.push(rec);
        continue;
      }
      if (ch.base === rec.version) continue;
      const set: ConnectionEntry[] = [];
      const removed: string[] = [];
      for (const [to, e] of ch.edits) {
        if (e) set.push(e);
        else removed.push(to);
      }
      deltas.push({ name, uid: rec.uid, base: ch.base, version: rec.version, shortId: rec.shortId, set, removed });
    }
    this.changes.clear();
    return { records, deltas };
  }

  private changedNow(): void {
    this.generation++;
    this.adjacency = undefined;
    this.unicast = undefined;
    this.trees.clear();
  }

  /** Sets our own connections (sorted by name here); bumps our version when they changed. */
  setLocalConnections(connections: ConnectionEntry[]): boolean {
    const sorted = [...connections].sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
    if (sameConnections(sorted, this.selfRecord.connections)) return false;
    const before = { ...this.selfRecord };
    this.selfRecord.connections = sorted;
    this.selfRecord.version++;
    this.note(before, this.selfRecord);
    this.changedNow();
    return true;
  }

  /** Changes our short id (a collision lost); bumps our version. */
  setLocalShortId(shortId: number): void {
    const before = { ...this.selfRecord };
    this.selfRecord.shortId = shortId;
    this.selfRecord.version++;
    this.note(before, this.selfRecord);
    this.changedNow();
  }

  /**
   * Adds what a handshake told us about a neighbour when we hold nothing newer: a record with no
   * connections at version 0 (its own gossip brings the real one). A different UID than the held
   * record's replaces it (a restart). Returns the replaced record when it was a restart.
   */
  learnNeighbour(identity: { name: string; nickname: string; uid: string; shortId: number }): PeerRecord | undefined {
    const held = this.records.get(identity.name);
    if (held && held.uid === identity.uid) return undefined;
    if (!held && this.records.size >= MAX_PEERS) return undefined;
    const stub = { ...identity, version: 0, connections: [] };
    this.records.set(identity.name, stub);
    this.note(held, stub);
    this.changedNow();
    return held;
  }

  /**
   * Merges records received from a neighbour (see the header). `pinnedUid(name)` is the UID of a
   * directly connected peer, whose records under other UIDs are stale.
   */
  merge(records: PeerRecord[], deltas: RecordDelta[], pinnedUid: (name: string) => string | undefined): MergeResult {
    const out: MergeResult = { changed: [], unknown: [], needFull: [], restarted: [], selfBumped: false, overflow: 0 };
    const inUpdate = new Set(records.map((r) => r.name));
    const unknown = new Set<string>();
    const needFull = new Set<string>();
    const isMissing = (to: string): boolean => to !== this.selfRecord.name && !this.records.has(to) && !inUpdate.has(to);
    const aboutSelf = (uid: string, version: number): void => {
      if (uid !== this.selfRecord.uid ? version >= this.selfRecord.version : version > this.selfRecord.version) {
        const before = { ...this.selfRecord };
        this.selfRecord.version = version + 1;
        this.note(before, this.selfRecord);
        out.selfBumped = true;
        this.changedNow();
      }
    };
    for (const rec of records) {
      if (rec.name === this.selfRecord.name) {
        aboutSelf(rec.uid, rec.version);
        continue;
      }
      const missing = rec.connections.filter((c) => isMissing(c.to));
      if (missing.length > 0) {
        for (const c of missing) unknown.add(c.to);
        needFull.add(rec.name);
        continue;
      }
      const pinned = pinnedUid(rec.name);
      if (pinned !== undefined && pinned !== rec.uid) continue;
      const held = this.records.get(rec.name);
      if (held && rec.version <= held.version) continue;
      if (!held && this.records.size >= MAX_PEERS) {
        out.overflow++;
        continue;
      }
      if (held && held.uid !== rec.uid) out.restarted.push({ name: rec.name, from: held.uid, to: rec.uid });
      const next = { ...rec, connections: [...rec.connections] };
      this.records.set(rec.name, next);
      this.note(held, next);
      out.changed.push(rec.name);
    }
    for (const d of deltas) {
      if (d.name === this.selfRecord.name) {
        aboutSelf(d.uid, d.version);
        continue;
      }
      const pinned = pinnedUid(d.name);
      if (pinned !== undefined && pinned !== d.uid) continue;
      const held = this.records.get(d.name);
      if (held && held.uid === d.uid && d.version <= held.version) continue;
      if (!held || held.uid !== d.uid || held.version !== d.base) {
        needFull.add(d.name);
        continue;
      }
      const missing = d.set.filter((c) => isMissing(c.to));
      if (missing.length > 0) {
        for (const c of missing) unknown.add(c.to);
        needFull.add(d.name);
        continue;
      }
      const conns = new Map(held.connections.map((c) => [c.to, c]));
      for (const c of d.set) conns.set(c.to, c);
      for (const n of d.removed) conns.delete(n);
      const connections = [...conns.values()].sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
      const next: PeerRecord = { ...held, version: d.version, shortId: d.shortId, connections };
      this.records.set(d.name, next);
      this.note(held, next);
      out.changed.push(d.name);
    }
    if (out.changed.length > 0) this.changedNow();
    out.unknown = [...unknown];
    out.needFull = [...needFull];
    return out;
  }

  /** (name, uid, version) of every record: what the periodic exchange compares. */
  digest(): DigestEntry[] {
    return [...this.records.values()].map((r) => ({ name: r.name, uid: r.uid, version: r.version }));
  }

  /** Names in a neighbour's digest that are newer there (or unknown here): what to request. */
  newerIn(entries: DigestEntry[]): string[] {
    const out: string[] = [];
    for (const e of entries) {
      if (e.name === this.selfRecord.name) continue;
      const held = this.records.get(e.name);
      if (!held || e.version > held.version) out.push(e.name);
    }
    return out;
  }

  /** Drops records of peers not reachable from us through any listed connection; returns them. */
  collectGarbage(): string[] {
    const seen = new Set<string>([this.selfRecord.name]);
    const queue = [this.selfRecord.name];
    while (queue.length > 0) {
      const rec = this.records.get(queue.pop()!);
      for (const c of rec?.connections ?? []) {
        if (!seen.has(c.to) && this.records.has(c.to)) {
          seen.add(c.to);
          queue.push(c.to);
        }
      }
    }
    const removed: string[] = [];
    for (const name of this.records.keys()) if (!seen.has(name)) removed.push(name);
    for (const name of removed) {
      this.records.delete(name);
      this.changes.delete(name);
    }
    if (removed.length > 0) this.changedNow();
    return removed;
  }

  /** Established symmetric links, neighbours sorted by name. */
  private links(): Map<string, string[]> {
    if (this.adjacency) return this.adjacency;
    const established = new Map<string, Set<string>>();
    for (const rec of this.records.values()) {
      established.set(rec.name, new Set(rec.connections.filter((c) => c.established).map((c) => c.to)));
    }
    const adj = new Map<string, string[]>();
    for (const [name, outs] of established) {
      const list = [...outs].filter((to) => established.get(to)?.has(name) === true).sort();
      adj.set(name, list);
    }
    this.adjacency = adj;
    return adj;
  }

  /** BFS from `root`: parent of each reached peer (root's parent is itself). */
  private bfs(root: string): Map<string, string> {
    const adj = this.links();
    const parent = new Map<string, string>([[root, root]]);
    let frontier = [root];
    while (frontier.length > 0) {
      const next: string[] = [];
      for (const p of frontier) {
        for (const q of adj.get(p) ?? []) {
          if (parent.has(q)) continue;
          parent.set(q, p);
          next.push(q);
        }
      }
      frontier = next;
    }
    return parent;
  }

  /** Unicast routes: destination → next hop (a neighbour), for every reachable peer but us. */
  routes(): Map<string, string> {
    if (this.unicast) return this.unicast;
    const parent = this.bfs(this.selfRecord.name);
    const hop = new Map<string, string>();
    const me = this.selfRecord.name;
    const resolve = (dest: string): string => {
      const known = hop.get(dest);
      if (known !== undefined) return known;
      const p = parent.get(dest)!;
      const h = p === me ? dest : resolve(p);
      hop.set(dest, h);
      return h;
    };
    for (const dest of parent.keys()) if (dest !== me) resolve(dest);
    this.unicast = hop;
    return hop;
  }

  /** Our children in `source`'s broadcast tree: where to forward a broadcast from `source`. */
  broadcastChildren(source: string): string[] {
    const cached = this.trees.get(source);
    if (cached) return cached;
    const me = this.selfRecord.name;
    const parent = this.bfs(source);
    const children: string[] = [];
    if (parent.has(me)) for (const [child, p] of parent) if (p === me && child !== me) children.push(child);
    children.sort();
    this.trees.set(source, children);
    return children;
  }
}
