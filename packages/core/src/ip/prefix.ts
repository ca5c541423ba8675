/**
 * Prefix and address math for IPv4 and IPv6, on ipaddr.js for parsing. Addresses are handled as
 * bigint internally so both families share one code path; strings in and out are canonical
 * (`10.0.0.1`, `fd00::1`).
 */
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

/** Parses a plain address (no prefix length). IPv4-mapped IPv6 stays IPv6. */
export function parseAddress(text: unknown, ctx: ParseContext = {}): { family: Family; value: bigint } {
  const field = ctx.field ?? "address";
  if (typeof text !== "string") {
    throw new ConfigError(withComponent(ctx, { field, rule: "must be an IP address string", value: text }));
  }
  const trimmed = text.trim();
  if (trimmed !== text || text === "") {
    throw new ConfigError(withComponent(ctx, { field, rule: "must be an IP address without surrounding spaces", value: text }));
  }
  if (text.includes("/")) {
    throw new ConfigError(withComponent(ctx, { field, rule: "must be a plain IP address, not a CIDR", value: text }));
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    return { family: 4, value: bytesToBigInt(ipaddr.IPv4.parse(text).toByteArray()) };
  }
  if (ipaddr.IPv6.isValid(text) && !text.includes("%")) {
    return { family: 6, value: bytesToBigInt(ipaddr.IPv6.parse(text).toByteArray()) };
  }
  throw new ConfigError(withComponent(ctx, { field, rule: "must be a valid IPv4 (dotted quad) or IPv6 address", value: text }));
}

function withComponent<T extends object>(ctx: ParseContext, init: T): T & { component?: string } {
  return ctx.component === undefined ? init : { ...init, component: ctx.component };
}

function bytesToBigInt(bytes: number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** Formats a bigint address of the given family canonically. */
export function formatAddress(value: bigint, family: Family): string {
  const bits = bitsOf(family);
  if (value < 0n || value >= 1n << BigInt(bits)) throw new RangeError(`address value out of range for IPv${family}`);
  if (family === 4) {
    const n = Number(value);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((value >> BigInt(i * 8)) & 255n));
  return ipaddr.fromByteArray(bytes).toString();
}

/** Canonical form of an address string (throws ConfigError like parseAddress). */
export function canonicalAddress(text: string, ctx: ParseContext = {}): string {
  const { family, value } = parseAddress(text, ctx);
  return formatAddress(value, family);
}

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
   * Parses `a.b.c.d/len` or `x::/len`. Host bits must be zero unless `allowHostBits` (then they
   * are cleared, as for an interface address).
   */
  static parse(text: unknown, ctx: ParseContext & { allowHostBits?: boolean } = {}): Prefix {
    const field = ctx.field ?? "prefix";
    if (typeof text !== "string") {
      throw new ConfigError(withComponent(ctx, { field, rule: "must be a CIDR string such as 10.244.0.0/16", value: text }));
    }
    const slash = text.indexOf("/");
    if (slash < 0 || slash !== text.lastIndexOf("/")) {
      throw new ConfigError(withComponent(ctx, { field, rule: "must be in CIDR notation address/length, e.g. 10.244.0.0/16", value: text }));
    }
    const addrText = text.slice(0, slash);
    const lenText = text.slice(slash + 1);
    const { family, value } = parseAddress(addrText, { ...ctx, field });
    const bits = bitsOf(family);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) {
      throw new ConfigError(withComponent(ctx, { field, rule: `prefix length must be an integer from 0 to ${bits}`, value: text }));
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

  /** Builds a prefix from parts; clears host bits. */
  static of(family: Family, base: bigint, length: number): Prefix {
    const bits = bitsOf(family);
    if (!Number.isInteger(length) || length < 0 || length > bits) throw new RangeError(`prefix length ${length} out of 0..${bits}`);
    return new Prefix(family, base & Prefix.maskOf(family, length), length);
  }

  /** The single-address prefix (/32 or /128) of an address string. */
  static host(address: string): Prefix {
    const { family, value } = parseAddress(address);
    return new Prefix(family, value, bitsOf(family));
  }

  static maskOf(family: Family, length: number): bigint {
    const bits = BigInt(bitsOf(family));
    const all = (1n << bits) - 1n;
    return (all << (bits - BigInt(length))) & all;
  }

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

  get network(): string {
    return formatAddress(this.base, this.family);
  }

  /** Last address (IPv4 broadcast). */
  get broadcast(): string {
    return formatAddress(this.last, this.family);
  }

  toString(): string {
    return `${this.network}/${this.length}`;
  }

  toJSON(): string {
    return this.toString();
  }

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

  /** How many subnets of `newLength` fit. */
  subnetCount(newLength: number): bigint {
    this.checkSubLength(newLength);
    return 1n << BigInt(newLength - this.length);
  }

  /** The n-th subnet of `newLength` (0-based). */
  nthSubnet(newLength: number, n: bigint | number): Prefix {
    const count = this.subnetCount(newLength);
    const i = BigInt(n);
    if (i < 0n || i >= count) throw new RangeError(`subnet index ${i} outside 0..${count - 1n} of ${this.toString()} split into /${newLength}`);
    return new Prefix(this.family, this.base + i * (1n << BigInt(this.bits - newLength)), newLength);
  }

  /** Index of a subnet of `newLength` inside this prefix. */
  subnetIndex(sub: Prefix): bigint {
    if (!this.contains(sub)) throw new RangeError(`${sub.toString()} is not inside ${this.toString()}`);
    return (sub.base - this.base) >> BigInt(this.bits - sub.length);
  }

  /** Iterates the subnets of `newLength` in address order. */
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
