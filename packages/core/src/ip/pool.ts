/**
 * An address allocator over one range, with CNI host-local's rules (see
 * containernetworking/plugins plugins/ipam/host-local; stated in README.md): defaults start = network + 1, end = broadcast − 1
 * (IPv6: the last address), gateway = network + 1; network, IPv4 broadcast and gateway are never
 * handed out; round-robin from the last reserved address, wrapping, so a freed address is not
 * handed out again at once. Unlike host-local it holds no files: state is in memory and goes out
 * as a plain JSON snapshot, and releasing by owner frees everything an owner holds (no leaks).
 *
 * Storage is a two-level bitmap (one bit per address, plus one bit per 32-address word that is
 * full) when the range spans at most 2^24 addresses, so the next free address is found by
 * skipping full words 32 at a time and full groups of words 1024 at a time. Larger ranges (an IPv6
 * /64) use a sparse set whose memory grows with the number of allocations, scanned from the
 * round-robin cursor.
 */
import { AddressInUseError, CniCode, CniError, ConfigError, PoolExhaustedError } from "../errors.ts";
import type { Family } from "../dataplane.ts";
import { Prefix, formatAddress, parseAddress } from "./prefix.ts";

/** Options of an address pool; each field is validated, errors name it. */
export interface AddressPoolOptions {
  /** The subnet addresses come from, e.g. `10.244.1.0/24`. Length must be at most bits − 2. */
  range: string | Prefix;
  /** First address handed out (default network + 1). Inside the range, not its network/broadcast. */
  rangeStart?: string;
  /** Last address handed out (default broadcast − 1; IPv6: the last address). Not before rangeStart. */
  rangeEnd?: string;
  /** Never handed out. Default network + 1; `null` = no gateway. Inside the range. */
  gateway?: string | null;
  /** Further addresses never handed out (each inside the range). */
  reserved?: readonly string[];
  /** Shown in error messages, e.g. `range set 0`. */
  name?: string;
  /** Component shown in brackets at the start of error messages, e.g. `host-local`. */
  component?: string;
}

/** The pool's state as plain JSON. Restore it with `AddressPool.restore(options, snapshot)`. */
export interface AddressPoolSnapshot {
  /** The range (canonical CIDR); restore refuses a snapshot of another range. */
  range: string;
  /** host-local's `last_reserved_ip`: round-robin continues after it. */
  lastReserved: string | null;
  /** `[address, owner]` pairs in address order. */
  allocations: [address: string, owner: string][];
}

/** Largest span (rangeEnd − rangeStart + 1) kept as a bitmap: 2^24 addresses = 2 MiB of bits. */
const BITMAP_MAX_SPAN = 1n << 24n;

/**
 * Map/Set key of an offset: a number while it is a safe integer (hashing numbers is several times
 * cheaper than hashing bigints), the bigint beyond. Deterministic, so a given offset always has
 * the same key.
 */
type Key = number | bigint;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
function keyOf(off: bigint): Key {
  return off <= MAX_SAFE ? Number(off) : off;
}

/** Which occupied/free bookkeeping a pool uses (see the module comment). */
export type AddressPoolStorage = "bitmap" | "sparse";

/** Offsets (0 = rangeStart) that are taken: allocated or excluded (gateway, reserved). */
interface Slots {
  readonly kind: AddressPoolStorage;
  isTaken(off: bigint): boolean;
  take(off: bigint): void;
  clear(off: bigint): void;
  /** Lowest free offset in [from, to), or -1n. */
  findFree(from: bigint, to: bigint): bigint;
}

/** Index of the lowest set bit of a non-zero 32-bit value. */
function lowestBit(x: number): number {
  return 31 - Math.clz32(x & -x);
}

const ALL_ONES = 0xffffffff;

class BitmapSlots implements Slots {
  readonly kind = "bitmap";
  /** Bit set = taken. Padding bits past the span are set, so they are never found free. */
  private readonly words: Uint32Array;
  /** Bit w set = words[w] is all ones. */
  private readonly full: Uint32Array;
  private readonly nWords: number;

  constructor(span: number) {
    this.nWords = Math.ceil(span / 32);
    this.words = new Uint32Array(this.nWords);
    this.full = new Uint32Array(Math.ceil(this.nWords / 32));
    const rem = span % 32;
    if (rem !== 0) this.setWord(this.nWords - 1, (ALL_ONES << rem) >>> 0);
  }

  private setWord(w: number, value: number): void {
    this.words[w] = value;
    const sw = w >>> 5;
    const bit = 1 << (w & 31);
    this.full[sw] = value === ALL_ONES ? this.full[sw]! | bit : this.full[sw]! & ~bit;
  }

  isTaken(off: bigint): boolean {
    const i = Number(off);
    return ((this.words[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  take(off: bigint): void {
    const i = Number(off);
    const w = i >>> 5;
    this.setWord(w, (this.words[w]! | (1 << (i & 31))) >>> 0);
  }

  clear(off: bigint): void {
    const i = Number(off);
    const w = i >>> 5;
    this.setWord(w, (this.words[w]! & ~(1 << (i & 31))) >>> 0);
  }

  findFree(fromBig: bigint, toBig: bigint): bigint {
    const from = Number(fromBig);
    const to = Number(toBig);
    if (from >= to) return -1n;
    let w = from >>> 5;
    // Free bits of the first word at or above `from`.
    const first = ~this.words[w]! & (ALL_ONES << (from & 31));
    if (first !== 0) return this.within(w * 32 + lowestBit(first), to);
    w++;
    // Then the first word that is not full, found through the summary 32 words at a time.
    while (w < this.nWords) {
      const sw = w >>> 5;
      const notFull = ~this.full[sw]! & (ALL_ONES << (w & 31));
      if (notFull === 0) {
        w = (sw + 1) << 5;
        continue;
      }
      w = (sw << 5) + lowestBit(notFull);
      if (w >= this.nWords) break;
      return this.within(w * 32 + lowestBit(~this.words[w]!), to);
    }
    return -1n;
  }

  private within(i: number, to: number): bigint {
    return i < to ? BigInt(i) : -1n;
  }
}

class SparseSlots implements Slots {
  readonly kind = "sparse";
  private readonly taken = new Set<Key>();

  isTaken(off: bigint): boolean {
    return this.taken.has(keyOf(off));
  }

  take(off: bigint): void {
    this.taken.add(keyOf(off));
  }

  clear(off: bigint): void {
    this.taken.delete(keyOf(off));
  }

  findFree(from: bigint, to: bigint): bigint {
    // Each step past a taken offset is one entry of the set: at most size + 1 steps.
    for (let off = from; off < to; off++) if (!this.taken.has(keyOf(off))) return off;
    return -1n;
  }
}

/**
 * Allocates addresses of one range to owners (a container ID, `cid/ifname`, a node name, ...).
 *
 * Synchronous and single-threaded: every method completes or throws before the next one runs, and
 * a method that throws changes nothing. Persisting the pool (via `snapshot()`) and serialising
 * access across processes is the caller's job.
 */
export class AddressPool {
  /** The range addresses come from. */
  readonly range: Prefix;
  /** First address handed out. */
  readonly rangeStart: string;
  /** Last address handed out. */
  readonly rangeEnd: string;
  /** The gateway (never handed out), or null. */
  readonly gateway: string | null;
  /** Reserved addresses (canonical, deduplicated, in address order); never handed out. */
  readonly reserved: readonly string[];
  /** Name used in error messages, if any. */
  readonly name: string | undefined;
  /** Component shown in error messages, if any. */
  readonly component: string | undefined;

  private readonly family: Family;
  private readonly start: bigint;
  private readonly end: bigint;
  private readonly span: bigint;
  private readonly gatewayValue: bigint | undefined;
  /** Offsets of reserved addresses inside [start, end] (the gateway is not among them). */
  private readonly reservedOffsets: ReadonlySet<bigint>;
  private readonly excludedCount: bigint;
  private readonly slots: Slots;
  /** Offset key -> owner. */
  private readonly owners = new Map<Key, string>();
  /** Owner -> offset keys it holds. */
  private readonly byOwner = new Map<string, Set<Key>>();
  /** Value of host-local's last_reserved_ip (inside the range), or undefined. */
  private last: bigint | undefined;

  /**
   * Validates the options and builds an empty pool.
   * @throws ConfigError naming the option (`range`, `rangeStart`, `rangeEnd`, `gateway`,
   *   `reserved[i]`) and the rule: range host bits set or too small (`Network <cidr> too small to
   *   allocate from` when length > bits − 2), bounds outside the range or on its network/broadcast
   *   address, rangeEnd before rangeStart, mixed families.
   */
  constructor(options: AddressPoolOptions) {
    if (typeof options !== "object" || options === null) {
      throw new ConfigError({ field: "options", rule: "must be an object with at least `range`", value: options });
    }
    this.name = options.name;
    this.component = options.component;
    const range = options.range instanceof Prefix ? options.range : Prefix.parse(options.range, this.ctx("range"));
    this.range = range;
    this.family = range.family;
    if (range.length > range.bits - 2) {
      throw this.configError("range", `Network ${range.toString()} too small to allocate from`, range.toString());
    }
    const network = range.base;
    const broadcast = range.family === 4 ? range.last : undefined;

    const start = options.rangeStart === undefined ? network + 1n : this.hostAddress("rangeStart", options.rangeStart);
    const end = options.rangeEnd === undefined ? (broadcast === undefined ? range.last : broadcast - 1n) : this.hostAddress("rangeEnd", options.rangeEnd);
    if (end < start) {
      throw this.configError("rangeEnd", `must not be before rangeStart ${formatAddress(start, this.family)}`, options.rangeEnd);
    }
    this.start = start;
    this.end = end;
    this.span = end - start + 1n;
    this.rangeStart = formatAddress(start, this.family);
    this.rangeEnd = formatAddress(end, this.family);

    if (options.gateway === null) {
      this.gatewayValue = undefined;
    } else {
      this.gatewayValue = options.gateway === undefined ? network + 1n : this.hostAddress("gateway", options.gateway);
    }
    this.gateway = this.gatewayValue === undefined ? null : formatAddress(this.gatewayValue, this.family);

    const reserved = options.reserved ?? [];
    if (!Array.isArray(reserved)) {
      throw this.configError("reserved", "must be a list of IP addresses", reserved);
    }
    const reservedValues = new Set<bigint>();
    reserved.forEach((text, i) => reservedValues.add(this.inRange(`reserved[${i}]`, text)));
    this.reserved = [...reservedValues].sort(compareBig).map((v) => formatAddress(v, this.family));

    this.slots = this.span <= BITMAP_MAX_SPAN ? new BitmapSlots(Number(this.span)) : new SparseSlots();
    const reservedOffsets = new Set<bigint>();
    let excluded = 0n;
    for (const v of reservedValues) {
      if (v >= start && v <= end && v !== this.gatewayValue) {
        reservedOffsets.add(v - start);
        this.slots.take(v - start);
        excluded++;
      }
    }
    if (this.gatewayValue !== undefined && this.gatewayValue >= start && this.gatewayValue <= end) {
      this.slots.take(this.gatewayValue - start);
      excluded++;
    }
    this.reservedOffsets = reservedOffsets;
    this.excludedCount = excluded;
  }

  /** Which bookkeeping this pool uses: a bitmap up to 2^24 addresses, a sparse set beyond. */
  get storage(): AddressPoolStorage {
    return this.slots.kind;
  }

  /** Number of addresses handed out. */
  get used(): number {
    return this.owners.size;
  }

  /** Usable addresses: [rangeStart, rangeEnd] minus the gateway and reserved ones. */
  get capacity(): bigint {
    return this.span - this.excludedCount;
  }

  /** Usable addresses not handed out (capacity − used). */
  get free(): bigint {
    return this.capacity - BigInt(this.owners.size);
  }

  /** host-local's `last_reserved_ip`: the address round-robin continues after, or null. */
  get lastReserved(): string | null {
    return this.last === undefined ? null : formatAddress(this.last, this.family);
  }

  /**
   * Hands out the next free address after the last reserved one (wrapping to rangeStart; the last
   * reserved address itself is tried last), records `owner` and moves the round-robin cursor there.
   * Not idempotent: each call takes another address.
   * @throws ConfigError (field `owner`) when owner is not a non-empty string.
   * @throws PoolExhaustedError `no IP addresses available in range set: <start>-<end>`; nothing changes.
   */
  allocate(owner: string): string {
    this.checkOwner(owner);
    if (this.free === 0n) {
      const where = this.name === undefined ? "" : `failed to allocate for ${this.name}: `;
      throw new PoolExhaustedError(this.name ?? this.range.toString(), `${this.bracket()}${where}no IP addresses available in range set: ${this.rangeStart}-${this.rangeEnd}`);
    }
    const from = this.last !== undefined && this.last >= this.start && this.last < this.end ? this.last - this.start + 1n : 0n;
    let off = this.slots.findFree(from, this.span);
    if (off < 0n) off = this.slots.findFree(0n, from);
    if (off < 0n) {
      throw new CniError(CniCode.Internal, `${this.bracket()}address pool ${this.range.toString()}: free count says ${this.free} but no free slot found`);
    }
    this.take(off, owner);
    return formatAddress(this.start + off, this.family);
  }

  /**
   * Hands out the given address to `owner` and moves the round-robin cursor there (as host-local
   * does for a requested IP). Returns it in canonical form.
   * @throws ConfigError (field `address`) for an invalid address or one outside
   *   [rangeStart, rangeEnd]; (field `owner`) for an empty owner.
   * @throws AddressInUseError when it is the gateway (`requested ip <ip> is subnet's gateway`),
   *   reserved, or already held (by anyone, `owner` included). Nothing changes on error.
   */
  allocateSpecific(address: string, owner: string): string {
    this.checkOwner(owner);
    const value = this.parse("address", address);
    const text = formatAddress(value, this.family);
    if (value === this.gatewayValue) {
      throw new AddressInUseError(text, `${this.bracket()}requested ip ${text} is subnet's gateway`);
    }
    if (value < this.start || value > this.end) {
      throw this.configError("address", `must lie in range set ${this.rangeStart}-${this.rangeEnd}`, address);
    }
    const off = value - this.start;
    if (this.reservedOffsets.has(off)) {
      throw new AddressInUseError(text, `${this.bracket()}requested ip ${text} is reserved in range set ${this.rangeStart}-${this.rangeEnd}`);
    }
    const holder = this.owners.get(keyOf(off));
    if (holder !== undefined) {
      throw new AddressInUseError(text, `${this.bracket()}requested IP address ${text} is not available in range set ${this.rangeStart}-${this.rangeEnd}`, { details: `held by ${holder}` });
    }
    this.take(off, owner);
    return text;
  }

  /**
   * Frees one address. Idempotent: returns false when it was not handed out (free, reserved,
   * outside the range, other family). The round-robin cursor stays where it is.
   * @throws ConfigError (field `address`) when `address` is not an IP address.
   */
  release(address: string): boolean {
    const off = this.offsetOf(address);
    if (off === undefined) return false;
    const owner = this.owners.get(keyOf(off));
    if (owner === undefined) return false;
    this.drop(off, owner);
    return true;
  }

  /**
   * Frees every address `owner` holds; returns them in address order (empty when none).
   * Idempotent. @throws ConfigError (field `owner`) when owner is not a non-empty string.
   */
  releaseOwner(owner: string): string[] {
    this.checkOwner(owner);
    const held = this.byOwner.get(owner);
    if (held === undefined) return [];
    const offsets = [...held].map(BigInt).sort(compareBig);
    for (const off of offsets) this.drop(off, owner);
    return offsets.map((off) => formatAddress(this.start + off, this.family));
  }

  /**
   * Who holds `address`, or undefined when nobody does.
   * @throws ConfigError (field `address`) when `address` is not an IP address.
   */
  ownerOf(address: string): string | undefined {
    const off = this.offsetOf(address);
    return off === undefined ? undefined : this.owners.get(keyOf(off));
  }

  /**
   * Whether `address` is handed out (reserved and gateway addresses are not "handed out").
   * @throws ConfigError (field `address`) when `address` is not an IP address.
   */
  has(address: string): boolean {
    return this.ownerOf(address) !== undefined;
  }

  /** Addresses `owner` holds, in address order. */
  addressesOf(owner: string): string[] {
    const held = this.byOwner.get(owner);
    if (held === undefined) return [];
    return [...held]
      .map(BigInt)
      .sort(compareBig)
      .map((off) => formatAddress(this.start + off, this.family));
  }

  /** The state as plain JSON (allocations in address order). Does not change the pool. */
  snapshot(): AddressPoolSnapshot {
    const entries = [...this.owners].map(([key, owner]) => [BigInt(key), owner] as const).sort((a, b) => compareBig(a[0], b[0]));
    return {
      range: this.range.toString(),
      lastReserved: this.lastReserved,
      allocations: entries.map(([off, owner]) => [formatAddress(this.start + off, this.family), owner]),
    };
  }

  /**
   * Builds a pool from options and a snapshot taken by `snapshot()` (possibly of an earlier pool
   * with other reserved addresses; it must be of the same range). Round-robin continues exactly
   * where the snapshot left off. A `lastReserved` inside the range but outside [rangeStart,
   * rangeEnd] is kept but ignored, as host-local ignores a stale last_reserved_ip.
   * @throws ConfigError as the constructor does, and naming `snapshot.*` when the snapshot is
   *   malformed, of another range, or lists an address outside [rangeStart, rangeEnd], the gateway,
   *   a reserved address, or the same address twice.
   */
  static restore(options: AddressPoolOptions, snapshot: unknown): AddressPool {
    const pool = new AddressPool(options);
    if (typeof snapshot !== "object" || snapshot === null || Array.isArray(snapshot)) {
      throw pool.configError("snapshot", "must be an object {range, lastReserved, allocations}", snapshot);
    }
    const s = snapshot as Record<string, unknown>;
    const range = Prefix.parse(s.range, pool.ctx("snapshot.range"));
    if (!range.equals(pool.range)) {
      throw pool.configError("snapshot.range", `must be the pool's range ${pool.range.toString()}`, s.range);
    }
    let last: bigint | undefined;
    if (s.lastReserved !== null && s.lastReserved !== undefined) {
      last = pool.inRange("snapshot.lastReserved", s.lastReserved);
    }
    if (!Array.isArray(s.allocations)) {
      throw pool.configError("snapshot.allocations", "must be a list of [address, owner] pairs", s.allocations);
    }
    const seen = new Map<bigint, number>();
    const entries: [bigint, string][] = [];
    s.allocations.forEach((entry: unknown, i: number) => {
      const field = `snapshot.allocations[${i}]`;
      if (!Array.isArray(entry) || entry.length !== 2) {
        throw pool.configError(field, "must be an [address, owner] pair", entry);
      }
      const value = pool.parse(`${field}[0]`, entry[0]);
      if (value < pool.start || value > pool.end) {
        throw pool.configError(`${field}[0]`, `must lie in range set ${pool.rangeStart}-${pool.rangeEnd}`, entry[0]);
      }
      const off = value - pool.start;
      if (value === pool.gatewayValue || pool.reservedOffsets.has(off)) {
        throw pool.configError(`${field}[0]`, "must not be the gateway or a reserved address", entry[0]);
      }
      const dup = seen.get(off);
      if (dup !== undefined) {
        throw pool.configError(`${field}[0]`, `duplicates snapshot.allocations[${dup}]`, entry[0]);
      }
      seen.set(off, i);
      const owner: unknown = entry[1];
      if (typeof owner !== "string" || owner === "") {
        throw pool.configError(`${field}[1]`, "owner must be a non-empty string", owner);
      }
      entries.push([off, owner]);
    });
    for (const [off, owner] of entries) pool.take(off, owner);
    pool.last = last;
    return pool;
  }

  // ---- internals ----

  private take(off: bigint, owner: string): void {
    const key = keyOf(off);
    this.slots.take(off);
    this.owners.set(key, owner);
    let held = this.byOwner.get(owner);
    if (held === undefined) {
      held = new Set();
      this.byOwner.set(owner, held);
    }
    held.add(key);
    this.last = this.start + off;
  }

  private drop(off: bigint, owner: string): void {
    const key = keyOf(off);
    this.slots.clear(off);
    this.owners.delete(key);
    const held = this.byOwner.get(owner);
    held?.delete(key);
    if (held?.size === 0) this.byOwner.delete(owner);
  }

  /** Offset of an address inside [start, end], undefined when outside or of the other family. */
  private offsetOf(address: string): bigint | undefined {
    const { family, value } = parseAddress(address, this.ctx("address"));
    if (family !== this.family || value < this.start || value > this.end) return undefined;
    return value - this.start;
  }

  private checkOwner(owner: unknown): void {
    if (typeof owner !== "string" || owner === "") {
      throw this.configError("owner", "must be a non-empty string", owner);
    }
  }

  /** Parses an address of the pool's family. */
  private parse(field: string, text: unknown): bigint {
    const { family, value } = parseAddress(text, this.ctx(field));
    if (family !== this.family) {
      throw this.configError(field, `must be an IPv${this.family} address like range ${this.range.toString()}`, text);
    }
    return value;
  }

  /** An address of the pool's family inside the range prefix. */
  private inRange(field: string, text: unknown): bigint {
    const value = this.parse(field, text);
    if (!this.range.contains(value)) {
      throw this.configError(field, `must lie inside range ${this.range.toString()}`, text);
    }
    return value;
  }

  /** An address inside the range that is neither its network nor (IPv4) its broadcast address. */
  private hostAddress(field: string, text: unknown): bigint {
    const value = this.inRange(field, text);
    if (value === this.range.base) {
      throw this.configError(field, `must not be the network address ${this.range.network} of range ${this.range.toString()}`, text);
    }
    if (this.family === 4 && value === this.range.last) {
      throw this.configError(field, `must not be the broadcast address ${this.range.broadcast} of range ${this.range.toString()}`, text);
    }
    return value;
  }

  private ctx(field: string): { field: string; component?: string } {
    return this.component === undefined ? { field } : { field, component: this.component };
  }

  private configError(field: string, rule: string, value: unknown): ConfigError {
    const where = this.name === undefined ? "" : ` (${this.name})`;
    const init = { field, rule: `${rule}${where}`, value };
    return new ConfigError(this.component === undefined ? init : { ...init, component: this.component });
  }

  private bracket(): string {
    return this.component ? `[${this.component}] ` : "";
  }
}

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
