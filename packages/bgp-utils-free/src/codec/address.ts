/**
 * IPv4/IPv6 addresses and prefixes in the textual forms the public API uses: dotted quads,
 * RFC 5952 IPv6 text, and `address/length` prefixes with no host bits set. Small and allocation-light
 * because the NLRI codec calls these once per prefix.
 */
import { Afi } from "./constants.ts";

/** A parsed prefix: family, network octets (4 or 16, host bits zero) and length in bits. */
export interface ParsedPrefix {
  afi: typeof Afi.IPV4 | typeof Afi.IPV6;
  bytes: Uint8Array;
  length: number;
}

/** Parses a dotted-quad IPv4 address into an unsigned 32-bit number; undefined when malformed. */
export function parseIpv4(text: string): number | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || parts === 3) return undefined;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return undefined; // leading zero
      part = part * 10 + (c - 48);
      if (part > 255) return undefined;
      digits++;
    } else {
      return undefined;
    }
  }
  if (digits === 0 || parts !== 3) return undefined;
  return value * 256 + part;
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatIpv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** Formats 4 octets at `offset` of `bytes` as a dotted quad. */
export function formatIpv4Bytes(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** Parses IPv6 text (with `::` and an optional trailing dotted quad) into 16 octets; undefined when malformed. */
export function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const out = new Uint8Array(16);
  const dbl = text.indexOf("::");
  if (dbl !== -1 && text.indexOf("::", dbl + 1) !== -1) return undefined;
  const headText = dbl === -1 ? text : text.slice(0, dbl);
  const tailText = dbl === -1 ? "" : text.slice(dbl + 2);
  const head = headText === "" ? [] : headText.split(":");
  const tail = tailText === "" ? [] : tailText.split(":");
  const groups: number[] = [];
  const parseGroups = (list: string[], into: number[], allowV4Last: boolean): boolean => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i]!;
      if (allowV4Last && i === list.length - 1 && g.includes(".")) {
        const v4 = parseIpv4(g);
        if (v4 === undefined) return false;
        into.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      if (g.length === 0 || g.length > 4) return false;
      let v = 0;
      for (let j = 0; j < g.length; j++) {
        const c = g.charCodeAt(j);
        let d: number;
        if (c >= 48 && c <= 57) d = c - 48;
        else if (c >= 97 && c <= 102) d = c - 87;
        else if (c >= 65 && c <= 70) d = c - 55;
        else return false;
        v = v * 16 + d;
      }
      into.push(v);
    }
    return true;
  };
  const headGroups: number[] = [];
  const tailGroups: number[] = [];
  if (dbl === -1) {
    if (!parseGroups(head, headGroups, true)) return undefined;
    if (headGroups.length !== 8) return undefined;
    groups.push(...headGroups);
  } else {
    if (!parseGroups(head, headGroups, false)) return undefined;
    if (!parseGroups(tail, tailGroups, true)) return undefined;
    const zeros = 8 - headGroups.length - tailGroups.length;
    if (zeros < 1) return undefined;
    groups.push(...headGroups);
    for (let i = 0; i < zeros; i++) groups.push(0);
    groups.push(...tailGroups);
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >>> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

/** Formats 16 octets at `offset` as RFC 5952 text (`::ffff:a.b.c.d` for IPv4-mapped addresses). */
export function formatIpv6Bytes(bytes: Uint8Array, offset = 0): string {
  const g: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) g[i] = (bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIpv4Bytes(bytes, offset + 12)}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return g.map((x) => x.toString(16)).join(":");
  const left = g
    .slice(0, bestStart)
    .map((x) => x.toString(16))
    .join(":");
  const right = g
    .slice(bestStart + bestLen)
    .map((x) => x.toString(16))
    .join(":");
  return `${left}::${right}`;
}

/** Parses an IPv4 or IPv6 address into its octets (4 or 16); undefined when malformed. */
export function parseAddressBytes(text: string): Uint8Array | undefined {
  if (text.includes(":")) return parseIpv6(text);
  const v4 = parseIpv4(text);
  if (v4 === undefined) return undefined;
  return new Uint8Array([v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255]);
}

/** Canonical text of an IPv4 or IPv6 address, or undefined when `text` is not one. */
export function canonicalAddress(text: string): string | undefined {
  const b = parseAddressBytes(text);
  if (!b) return undefined;
  return b.length === 4 ? formatIpv4Bytes(b) : formatIpv6Bytes(b);
}

/** Formats a prefix given its network octets (at least ⌈length/8⌉ of them at `offset`). */
export function formatPrefix(afi: number, bytes: Uint8Array, offset: number, length: number): string {
  if (afi === Afi.IPV4) {
    const n = (length + 7) >> 3;
    const a = n > 0 ? bytes[offset]! : 0;
    const b = n > 1 ? bytes[offset + 1]! : 0;
    const c = n > 2 ? bytes[offset + 2]! : 0;
    const d = n > 3 ? bytes[offset + 3]! : 0;
    return `${a}.${b}.${c}.${d}/${length}`;
  }
  const full = new Uint8Array(16);
  full.set(bytes.subarray(offset, offset + ((length + 7) >> 3)));
  return `${formatIpv6Bytes(full)}/${length}`;
}

/**
 * Parses `address/length`. Returns undefined when malformed, when the length is out of range, or
 * when host bits are set (so every prefix has exactly one text form).
 */
export function parsePrefix(text: string): ParsedPrefix | undefined {
  const slash = text.indexOf("/");
  if (slash <= 0 || slash === text.length - 1 || slash < text.length - 4) return undefined;
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
  const length = Number(lenText);
  const bytes = parseAddressBytes(text.slice(0, slash));
  if (!bytes) return undefined;
  const afi = bytes.length === 4 ? Afi.IPV4 : Afi.IPV6;
  if (length > bytes.length * 8) return undefined;
  for (let bit = length; bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) return undefined;
  }
  return { afi, bytes, length };
}

/** The family of a prefix or address text: IPv6 if it has a colon. No validation. */
export function afiOf(text: string): typeof Afi.IPV4 | typeof Afi.IPV6 {
  return text.includes(":") ? Afi.IPV6 : Afi.IPV4;
}
