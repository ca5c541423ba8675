/**
 * Prefix and address math for IPv4 and IPv6. Addresses are handled as bigint internally so both
 * families share one code path; strings in and out are canonical (`10.0.0.1`, `fd00::1`, RFC 5952).
 * Text is parsed and printed here rather than with ipaddr.js, which is lenient where we must not be
 * and prints some IPv6 addresses against RFC 5952 (see parseIPv6 and formatIPv6).
 */
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

/**
 * Parses a plain address (no prefix length) into its family and numeric value.
 *
 * IPv4 must be a dotted quad of decimal octets without leading zeros (`010.0.0.1` is refused: other
 * parsers read it as octal). IPv6 follows RFC 4291 section 2.2 strictly: 1-4 hex digits per group,
 * at most one `::` that stands for at least one zero group, an optional dotted-quad tail; no zone
 * (`%eth0`), no brackets. IPv4-mapped (`::ffff:1.2.3.4`) and IPv4-compatible (`::1.2.3.4`)
 * addresses stay IPv6 with the value they spell.
 *
 * @throws ConfigError naming `ctx.field` (default `address`) when `text` is not such a string.
 */
export function parseAddress(text: unknown, ctx: ParseContext = {}): { family: Family; value: bigint } {
  const field = ctx.field ?? "address";
  if (typeof text !== "string") {
    throw new ConfigError(withComponent(ctx, { field, rule: "must be an IP address string", value: text }));
  }
  if (text === "") {
    throw new ConfigError(withComponent(ctx, { field, rule: "must not be empty: give an IPv4 or IPv6 address", value: text }));
  }
  if (text.trim() !== text) {
    throw new ConfigError(withComponent(ctx, { field, rule: "must be an IP address without surrounding spaces", value: text }));
  }
  if (text.includes("/")) {
    throw new ConfigError(withComponent(ctx, { field, rule: "must be a plain IP address, not a CIDR", value: text }));
  }
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const zone = text.indexOf("%");
  if (zone >= 0 && parseIPv6(text.slice(0, zone)) !== undefined) {
    throw new ConfigError(withComponent(ctx, { field, rule: "must not carry an IPv6 zone (the %... suffix)", value: text }));
  }
  const v6 = parseIPv6(text);
  if (v6 !== undefined) return { family: 6, value: v6 };
  throw new ConfigError(withComponent(ctx, { field, rule: "must be a valid IPv4 (dotted quad) or IPv6 address", value: text }));
}

function withComponent<T extends object>(ctx: ParseContext, init: T): T & { component?: string } {
  return ctx.component === undefined ? init : { ...init, component: ctx.component };
}

/**
 * Dotted quad, decimal octets 0-255 without leading zeros; undefined when `text` is not one.
 * Hand-written (one pass over the characters): it sits on every pool operation's path.
 */
function parseIPv4(text: string): bigint | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return undefined; // leading zero
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return undefined;
    } else if (c === 46) {
      if (digits === 0 || dots === 3) return undefined;
      value = value * 256 + octet;
      dots++;
      octet = 0;
      digits = 0;
    } else {
      return undefined;
    }
  }
  if (digits === 0 || dots !== 3) return undefined;
  return BigInt(value * 256 + octet);
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * RFC 4291 section 2.2 text form; undefined when `text` is not one. Written out here because
 * ipaddr.js is lenient where we must not be: it accepts `00001::` and `1:2:3:4:5:6:7::8`, and reads
 * `::1.2.3.4` as `::ffff:1.2.3.4`.
 */
function parseIPv6(text: string): bigint | undefined {
  const lastColon = text.lastIndexOf(":");
  if (lastColon < 0) return undefined;
  let head = text;
  let v4: bigint | undefined;
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    v4 = parseIPv4(tail);
    if (v4 === undefined) return undefined;
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const want = v4 === undefined ? 8 : 6;
  const gap = head.indexOf("::");
  if (gap !== head.lastIndexOf("::")) return undefined;
  let groups: string[];
  if (gap < 0) {
    groups = head.split(":");
    if (groups.length !== want) return undefined;
  } else {
    const left = head.slice(0, gap);
    const right = head.slice(gap + 2);
    const l = left === "" ? [] : left.split(":");
    const r = right === "" ? [] : right.split(":");
    // "::" stands for one or more zero groups.
    if (l.length + r.length > want - 1) return undefined;
    groups = [...l, ...Array.from({ length: want - l.length - r.length }, () => "0"), ...r];
  }
  let n = 0n;
  for (const g of groups) {
    if (!HEX_GROUP.test(g)) return undefined;
    n = (n << 16n) | BigInt(Number.parseInt(g, 16));
  }
  return v4 === undefined ? n : (n << 32n) | v4;
}

/**
 * Formats a numeric address of the given family canonically: dotted quad for IPv4, RFC 5952 for
 * IPv6 (lower case, longest zero run compressed).
 * @throws RangeError when `value` does not fit the family.
 */
export function formatAddress(value: bigint, family: Family): string {
  const bits = bitsOf(family);
  if (value < 0n || value >= 1n << BigInt(bits)) throw new RangeError(`address value out of range for IPv${family}`);
  if (family === 4) {
    const n = Number(value);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  return formatIPv6(value);
}

/**
 * RFC 5952 section 4: lower-case hex without leading zeros; the longest run of two or more zero
 * groups becomes `::`, the first one when runs tie. (ipaddr.js picks the last one on a tie.)
 */
function formatIPv6(value: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(":");
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
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
    const field = ctx.field ?? "prefix";
    if (typeof text !== "string") {
      throw new ConfigError(withComponent(ctx, { field, rule: "must be a CIDR string such as 10.244.0.0/16", value: text }));
    }
    if (text.trim() !== text) {
      throw new ConfigError(withComponent(ctx, { field, rule: "must be a CIDR without surrounding spaces", value: text }));
    }
    const slash = text.indexOf("/");
    if (slash < 0 || slash !== text.lastIndexOf("/")) {
      throw new ConfigError(withComponent(ctx, { field, rule: "must be in CIDR notation address/length, e.g. 10.244.0.0/16", value: text }));
    }
    const addrText = text.slice(0, slash);
    const lenText = text.slice(slash + 1);
    let parsed: { family: Family; value: bigint };
    try {
      parsed = parseAddress(addrText, { ...ctx, field });
    } catch (err) {
      const rule = err instanceof ConfigError ? `address part ${err.rule}` : "address part must be a valid IP address";
      throw new ConfigError(withComponent(ctx, { field, rule, value: text, cause: err }));
    }
    const { family, value } = parsed;
    const bits = bitsOf(family);
    if (!/^(0|[1-9]\d{0,2})$/.test(lenText) || Number(lenText) > bits) {
      throw new ConfigError(
        withComponent(ctx, { field, rule: `prefix length must be an integer from 0 to ${bits} without leading zeros`, value: text }),
      );
    }
    const length = Number(lenText);
    const mask = Prefix.maskOf(family, length);
    const base = value & mask;
    if (base !== value && !ctx.allowHostBits) {
      throw new ConfigError(
        withComponent(ctx, {
          field,
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
    let parsed: { family: Family; value: bigint };
    try {
      parsed = parseAddress(x);
    } catch {
      return false;
    }
    return parsed.family === this.family && parsed.value >= this.base && parsed.value <= this.last;
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
  const prefix = Prefix.parse(text, { ...ctx, allowHostBits: true, field: ctx.field ?? "address" });
  const address = canonicalAddress(String(text).split("/")[0]!, { ...ctx, field: ctx.field ?? "address" });
  return { address, prefix };
}

/** Canonical CIDR text of a prefix string (throws ConfigError like Prefix.parse). */
export function canonicalPrefix(text: string, ctx: ParseContext = {}): string {
  return Prefix.parse(text, ctx).toString();
}
