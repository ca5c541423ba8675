/**
 * Prefix and address math for IPv4 and IPv6. Addresses are handled as bigint internally so both
 * families share one code path; strings in and out are canonical (`10.0.0.1`, `fd00::1`, RFC 5952).
 *
 * Text goes through a strict front door before ipaddr.js sees it: `node:net`'s `isIP` decides what
 * is an address (ipaddr.js alone also reads `10.1`, `0x0a000001`, `010.0.0.1` as octal, and zone
 * ids), zones are refused, and only then ipaddr.js parses the text (into the numbers the prefix
 * math and the allocator work on) and classifies it (addressRange, specialRanges).
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { ConfigError } from "../errors.ts";
import type { Family } from "../dataplane.ts";

export interface ParseContext {
  /** Field path named in errors (default `address` / `prefix`). */
  field?: string;
  /** Component named in brackets at the start of error messages. */
  component?: string;
}

const BITS = { 4: 32, 6: 128 } as const;

function bitsOf(family: Family): 32 | 128 {
  return BITS[family];
}

/** An address as a family and a number (what parseAddress returns). */
export interface ParsedAddress {
  family: Family;
  value: bigint;
}

/**
 * The front door: the address `text` spells, or the rule it breaks. Accepts exactly what `isIP`
 * accepts, less zone ids (`fe80::1%eth0`): a zone names an interface of one host, which a cluster
 * config or a policy cannot mean, so configs refuse it with a rule that says so.
 */
/**
 * Parsed addresses by text: a cluster's agents and controllers read the same few thousand address
 * and CIDR strings over and over (node subnets, gateways, pod IPs in every record), and the front
 * door plus ipaddr.js cost microseconds each. Bounded: emptied when full. Entries are never handed
 * out (callers get copies), so nothing a caller does can change them.
 */
const PARSED_MAX = 16_384;
const parsedAddresses = new Map<string, ParsedAddress | { rule: string }>();

function readAddress(text: unknown): ParsedAddress | { rule: string } {
  if (typeof text !== "string") return { rule: "must be an IP address string" };
  const hit = parsedAddresses.get(text);
  if (hit !== undefined) return "rule" in hit ? { rule: hit.rule } : { family: hit.family, value: hit.value };
  const read = readAddressText(text);
  if (parsedAddresses.size >= PARSED_MAX) parsedAddresses.clear();
  parsedAddresses.set(text, read);
  return "rule" in read ? { rule: read.rule } : { family: read.family, value: read.value };
}

function readAddressText(text: string): ParsedAddress | { rule: string } {
  if (text === "") return { rule: "must not be empty: give an IPv4 or IPv6 address" };
  if (text.trim() !== text) return { rule: "must be an IP address without surrounding spaces" };
  if (text.includes("/")) return { rule: "must be a plain IP address, not a CIDR" };
  const zone = text.indexOf("%");
  if (zone >= 0 && isIP(text.slice(0, zone)) === 6) return { rule: "must not carry an IPv6 zone (the %... suffix)" };
  // isIP takes a zone only after a valid IPv6 address, which the line above refused.
  const family = isIP(text) as 0 | Family;
  if (family === 0) return { rule: "must be a valid IPv4 (dotted quad) or IPv6 address" };
  if (family === 4) return { family, value: valueOf(ipaddr.IPv4.parse(text)) };
  // ipaddr.js reads `::a.b.c.d` (RFC 4291's deprecated IPv4-compatible form) as the IPv4-mapped
  // `::ffff:a.b.c.d`; the text spells ::a.b.c.d, so that one form takes its IPv4 tail's value.
  if (text.startsWith("::") && text.lastIndexOf(":") === 1 && text.includes(".")) {
    return { family, value: valueOf(ipaddr.IPv4.parse(text.slice(2))) };
  }
  return { family, value: valueOf(ipaddr.IPv6.parse(text)) };
}

/** The numeric value of an ipaddr.js address (its octets or 16-bit parts, 32 bits at a time). */
function valueOf(address: ipaddr.IPv4 | ipaddr.IPv6): bigint {
  if (address instanceof ipaddr.IPv4) {
    const [a, b, c, d] = address.octets as [number, number, number, number];
    return BigInt(((a * 256 + b) * 256 + c) * 256 + d);
  }
  let n = 0n;
  for (let i = 0; i < 8; i += 2) n = (n << 32n) | BigInt(address.parts[i]! * 65536 + address.parts[i + 1]!);
  return n;
}

/** The ipaddr.js address of a value that fits the family (the inverse of valueOf). */
function addressOf(value: bigint, family: Family): ipaddr.IPv4 | ipaddr.IPv6 {
  if (family === 4) {
    const n = Number(value);
    return new ipaddr.IPv4([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  }
  const parts: number[] = [];
  for (let shift = 96n; shift >= 0n; shift -= 32n) {
    const w = Number((value >> shift) & 0xffffffffn);
    parts.push(w >>> 16, w & 0xffff);
  }
  return new ipaddr.IPv6(parts);
}

/**
 * Parses a plain address (no prefix length) into its family and numeric value.
 *
 * Accepts what `node:net`'s `isIP` accepts: IPv4 as a dotted quad of decimal octets without
 * leading zeros (`010.0.0.1` is refused: other parsers read it as octal; `10.1` and `0x0a000001`
 * too); IPv6 as RFC 4291 section 2.2 says (1-4 hex digits per group, at most one `::` that stands
 * for at least one zero group, an optional dotted-quad tail), no brackets. Zone ids (`%eth0`) are
 * refused. IPv4-mapped (`::ffff:1.2.3.4`) and IPv4-compatible (`::1.2.3.4`) addresses stay IPv6
 * with the value they spell.
 *
 * @throws ConfigError naming `ctx.field` (default `address`) when `text` is not such a string.
 */
export function parseAddress(text: unknown, ctx: ParseContext = {}): ParsedAddress {
  const read = readAddress(text);
  if ("rule" in read) throw new ConfigError(withComponent(ctx, { field: ctx.field ?? "address", rule: read.rule, value: text }));
  return read;
}

/** Whether `text` is an address `parseAddress` accepts (of `family`, when given). Never throws. */
export function isAddress(text: unknown, family?: Family): boolean {
  const read = readAddress(text);
  return !("rule" in read) && (family === undefined || read.family === family);
}

function withComponent<T extends object>(ctx: ParseContext, init: T): T & { component?: string } {
  return ctx.component === undefined ? init : { ...init, component: ctx.component };
}

/**
 * Formats a numeric address of the given family canonically: dotted quad for IPv4, RFC 5952 for
 * IPv6 (lower case, the longest run of two or more zero groups compressed, the first one on a tie;
 * IPv4-mapped addresses in the mixed notation of section 5, `::ffff:192.0.2.1`, where ipaddr.js
 * prints `::ffff:c000:201`).
 * @throws RangeError when `value` does not fit the family.
 */
export function formatAddress(value: bigint, family: Family): string {
  const bits = bitsOf(family);
  if (value < 0n || value >= 1n << BigInt(bits)) throw new RangeError(`address value out of range for IPv${family}`);
  if (family === 4) {
    // Dotted-quad text of a 32-bit value: the octets joined (what ipaddr.js's IPv4 toString does,
    // without building an object per call on the allocator's hot path).
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const address = addressOf(value, family);
  if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress()) return `::ffff:${address.toIPv4Address().toString()}`;
  return address.toString();
}

/** Canonical form of an address string (throws ConfigError like parseAddress). */
export function canonicalAddress(text: string, ctx: ParseContext = {}): string {
  const { family, value } = parseAddress(text, ctx);
  return formatAddress(value, family);
}

/** The family (4 or 6) of an address string; throws ConfigError like parseAddress. */
export function addressFamily(text: string): Family {
  return parseAddress(text).family;
}

/**
 * The special-purpose ranges ipaddr.js classifies by (after IANA's IPv4 and IPv6 Special-Purpose
 * Address Registries), and `unicast` for an address in none of them.
 */
export const ADDRESS_RANGES = [
  "unicast",
  "unspecified",
  "broadcast",
  "multicast",
  "linkLocal",
  "loopback",
  "carrierGradeNat",
  "private",
  "reserved",
  "as112",
  "amt",
  "uniqueLocal",
  "ipv4Mapped",
  "deprecatedSiteLocal",
  "discard",
  "rfc6145",
  "rfc6052",
  "6to4",
  "teredo",
  "benchmarking",
  "as112v6",
  "deprecatedOrchid",
  "orchid2",
  "droneRemoteIdProtocolEntityTags",
  "segmentRouting",
] as const;

/** The name of a special-purpose range, or `unicast` (see ADDRESS_RANGES). */
export type AddressRange = (typeof ADDRESS_RANGES)[number];

/**
 * The special-purpose range an address lies in (ipaddr.js's `range()`: `loopback`, `linkLocal`,
 * `multicast`, `unspecified`, `broadcast`, `private`, `uniqueLocal`, `ipv4Mapped`, `reserved`...),
 * or `unicast`. Text goes through parseAddress first (and throws ConfigError like it).
 */
export function addressRange(address: string | ParsedAddress, ctx: ParseContext = {}): AddressRange {
  const { family, value } = typeof address === "string" ? parseAddress(address, ctx) : address;
  return addressOf(value, family).range() as AddressRange;
}

type RangeEntry = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * The prefixes of a special-purpose range, of one family or both (IPv4 first), from the table
 * ipaddr.js's `range()` reads: `specialRanges("linkLocal")` is 169.254.0.0/16 and fe80::/10.
 * Empty for `unicast` and for a name the family does not have. (That table, `SpecialRanges` on
 * each class's prototype, is not in ipaddr.js's typings, hence the cast; test/ip-ranges.test.ts
 * checks it against `range()`.)
 */
export function specialRanges(name: AddressRange, family?: Family): Prefix[] {
  const out: Prefix[] = [];
  for (const f of family === undefined ? ([4, 6] as const) : [family]) {
    const proto = (f === 4 ? ipaddr.IPv4.prototype : ipaddr.IPv6.prototype) as unknown as { SpecialRanges: Record<string, RangeEntry | RangeEntry[]> };
    const entry = Object.hasOwn(proto.SpecialRanges, name) ? proto.SpecialRanges[name] : undefined;
    if (entry === undefined) continue;
    const list = (Array.isArray(entry[0]) ? entry : [entry]) as RangeEntry[];
    for (const [address, length] of list) out.push(Prefix.of(f, valueOf(address), length));
  }
  return out;
}

/** A network prefix with zero host bits. Immutable. */
export class Prefix {
  readonly family: Family;
  /** Network address as a number. */
  readonly base: bigint;
  readonly length: number;

  private constructor(family: Family, base: bigint, length: number) {
    this.family = family;
    this.base = base;
    this.length = length;
  }

  /**
   * Parses `a.b.c.d/len` or `x::/len` (address as for `parseAddress`, length a decimal integer
   * 0..32 or 0..128 without leading zeros). Host bits must be zero unless `allowHostBits` (then
   * they are cleared, as for an interface address).
   *
   * @throws ConfigError naming `ctx.field` (default `prefix`); for host bits set, the rule
   *   suggests the network prefix (`did you mean 10.0.0.0/8?`).
   */
  static parse(text: unknown, ctx: ParseContext & { allowHostBits?: boolean } = {}): Prefix {
    const { family, value, length } = readCidr(text, ctx, ctx.field ?? "prefix");
    const base = value & Prefix.maskOf(family, length);
    if (base !== value && !ctx.allowHostBits) {
      throw new ConfigError(
        withComponent(ctx, {
          field: ctx.field ?? "prefix",
          rule: `host bits must be zero (did you mean ${formatAddress(base, family)}/${length}?)`,
          value: text,
        }),
      );
    }
    return new Prefix(family, base, length);
  }

  /**
   * Builds a prefix from parts; clears host bits.
   * @throws RangeError when `length` or `base` does not fit the family.
   */
  static of(family: Family, base: bigint, length: number): Prefix {
    const bits = bitsOf(family);
    if (!Number.isInteger(length) || length < 0 || length > bits) throw new RangeError(`prefix length ${length} out of 0..${bits}`);
    if (base < 0n || base >= 1n << BigInt(bits)) throw new RangeError(`address value out of range for IPv${family}`);
    return new Prefix(family, base & Prefix.maskOf(family, length), length);
  }

  /**
   * The single-address prefix (/32 or /128) of an address string.
   * @throws ConfigError (field `address`) when `address` is not a valid address.
   */
  static host(address: string): Prefix {
    const { family, value } = parseAddress(address);
    return new Prefix(family, value, bitsOf(family));
  }

  /** The netmask of `length` bits for the family, as a number (`/24` -> 0xffffff00). */
  static maskOf(family: Family, length: number): bigint {
    const bits = BigInt(bitsOf(family));
    const all = (1n << bits) - 1n;
    return (all << (bits - BigInt(length))) & all;
  }

  /** Address width of the family: 32 or 128. */
  get bits(): 32 | 128 {
    return bitsOf(this.family);
  }

  /** Number of addresses (2^(bits − length)). */
  get size(): bigint {
    return 1n << BigInt(this.bits - this.length);
  }

  /** Last address as a number. */
  get last(): bigint {
    return this.base + this.size - 1n;
  }

  /** Network (first) address, canonical text. */
  get network(): string {
    return formatAddress(this.base, this.family);
  }

  /** Last address (IPv4 broadcast). */
  get broadcast(): string {
    return formatAddress(this.last, this.family);
  }

  /** Canonical CIDR text, e.g. `fd00::/64`. */
  toString(): string {
    return `${this.network}/${this.length}`;
  }

  /** JSON form: the canonical CIDR text. */
  toJSON(): string {
    return this.toString();
  }

  /** Same family, network and length. */
  equals(other: Prefix): boolean {
    return this.family === other.family && this.base === other.base && this.length === other.length;
  }

  /** Whether an address (string or number of the same family) or a whole prefix lies inside. */
  contains(x: string | bigint | Prefix): boolean {
    if (x instanceof Prefix) {
      return x.family === this.family && x.length >= this.length && x.base >= this.base && x.last <= this.last;
    }
    if (typeof x === "bigint") return x >= this.base && x <= this.last;
    const parsed = readAddress(x);
    return !("rule" in parsed) && parsed.family === this.family && parsed.value >= this.base && parsed.value <= this.last;
  }

  /** Whether the two prefixes share at least one address (never across families). */
  overlaps(other: Prefix): boolean {
    return this.family === other.family && this.base <= other.last && other.base <= this.last;
  }

  /** The n-th address (0 = network address). Throws RangeError outside the prefix. */
  nth(n: bigint | number): string {
    const i = BigInt(n);
    if (i < 0n || i >= this.size) throw new RangeError(`address index ${i} outside ${this.toString()}`);
    return formatAddress(this.base + i, this.family);
  }

  /** Index of an address inside this prefix (0 = network). Throws RangeError when outside. */
  indexOf(address: string): bigint {
    const { family, value } = parseAddress(address);
    if (family !== this.family || value < this.base || value > this.last) {
      throw new RangeError(`${address} is not inside ${this.toString()}`);
    }
    return value - this.base;
  }

  /** How many subnets of `newLength` fit. Throws RangeError when `newLength` is shorter than this prefix or too long. */
  subnetCount(newLength: number): bigint {
    this.checkSubLength(newLength);
    return 1n << BigInt(newLength - this.length);
  }

  /** The n-th subnet of `newLength` (0-based). Throws RangeError when `n` or `newLength` is out of range. */
  nthSubnet(newLength: number, n: bigint | number): Prefix {
    const count = this.subnetCount(newLength);
    const i = BigInt(n);
    if (i < 0n || i >= count) throw new RangeError(`subnet index ${i} outside 0..${count - 1n} of ${this.toString()} split into /${newLength}`);
    return new Prefix(this.family, this.base + i * (1n << BigInt(this.bits - newLength)), newLength);
  }

  /** Index of `sub` among this prefix's subnets of `sub.length` (inverse of nthSubnet). Throws RangeError when outside. */
  subnetIndex(sub: Prefix): bigint {
    if (!this.contains(sub)) throw new RangeError(`${sub.toString()} is not inside ${this.toString()}`);
    return (sub.base - this.base) >> BigInt(this.bits - sub.length);
  }

  /** Iterates the subnets of `newLength` in address order (lazily). Throws RangeError like subnetCount. */
  *subnets(newLength: number): Generator<Prefix> {
    const count = this.subnetCount(newLength);
    const step = 1n << BigInt(this.bits - newLength);
    for (let i = 0n; i < count; i++) yield new Prefix(this.family, this.base + i * step, newLength);
  }

  /** Iterates every address in order (beware of large prefixes). */
  *addresses(): Generator<string> {
    for (let v = this.base; v <= this.last; v++) yield formatAddress(v, this.family);
  }

  private checkSubLength(newLength: number): void {
    if (!Number.isInteger(newLength) || newLength < this.length || newLength > this.bits) {
      throw new RangeError(`subnet length /${newLength} must be between /${this.length} and /${this.bits} for ${this.toString()}`);
    }
  }
}

/** An interface address: an address plus the prefix it sits in, e.g. `10.244.1.1/24`. */
export interface InterfaceAddress {
  address: string;
  prefix: Prefix;
}

/** Parses `10.244.1.1/24` (host bits allowed: they are the address). */
export function parseInterfaceAddress(text: unknown, ctx: ParseContext = {}): InterfaceAddress {
  const { family, value, length } = readCidr(text, ctx, ctx.field ?? "address");
  return { address: formatAddress(value, family), prefix: Prefix.of(family, value, length) };
}

/**
 * `address/length`: the address through the front door (its rule prefixed `address part`), the
 * length decimal digits without leading zeros within the family's width. Host bits are the
 * caller's business.
 */
/** Parsed CIDRs by text (as `parsedAddresses`; only what was accepted: a refusal names its caller's field). */
const parsedCidrs = new Map<string, ParsedAddress & { length: number }>();

function readCidr(text: unknown, ctx: ParseContext, field: string): ParsedAddress & { length: number } {
  const hit = typeof text === "string" ? parsedCidrs.get(text) : undefined;
  if (hit !== undefined) return { family: hit.family, value: hit.value, length: hit.length };
  const read = readCidrText(text, ctx, field);
  if (parsedCidrs.size >= PARSED_MAX) parsedCidrs.clear();
  parsedCidrs.set(text as string, read);
  return { family: read.family, value: read.value, length: read.length };
}

function readCidrText(text: unknown, ctx: ParseContext, field: string): ParsedAddress & { length: number } {
  const fail = (rule: string): never => {
    throw new ConfigError(withComponent(ctx, { field, rule, value: text }));
  };
  if (typeof text !== "string") return fail("must be a CIDR string such as 10.244.0.0/16");
  if (text.trim() !== text) return fail("must be a CIDR without surrounding spaces");
  const slash = text.indexOf("/");
  if (slash < 0 || slash !== text.lastIndexOf("/")) return fail("must be in CIDR notation address/length, e.g. 10.244.0.0/16");
  const address = readAddress(text.slice(0, slash));
  if ("rule" in address) return fail(`address part ${address.rule}`);
  const bits = bitsOf(address.family);
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(lenText) || Number(lenText) > bits) {
    return fail(`prefix length must be an integer from 0 to ${bits} without leading zeros`);
  }
  return { ...address, length: Number(lenText) };
}

/** Canonical CIDR text of a prefix string (throws ConfigError like Prefix.parse). */
export function canonicalPrefix(text: string, ctx: ParseContext = {}): string {
  return Prefix.parse(text, ctx).toString();
}
