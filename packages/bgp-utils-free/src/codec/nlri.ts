/**
 * NLRI encoding (RFC 4271 §4.3 "Network Layer Reachability Information", RFC 4760 §5, RFC 7911 §3):
 * each prefix is a length in bits and ⌈length/8⌉ octets, preceded by a 4-octet Path Identifier when
 * ADD-PATH applies. Trailing bits past the length are irrelevant (§4.3) and are cleared on decode,
 * so each prefix has one text form.
 */
import { BgpConfigError, BgpNotificationError } from "../errors.ts";
import { formatPrefix, parsePrefix } from "./address.ts";
import { ByteWriter, u32 } from "./bytes.ts";
import { Afi, ErrorCode, UpdateErrorSubcode } from "./constants.ts";
import { internPrefix4 } from "./intern.ts";
import type { Nlri } from "./types.ts";

const scratch = new Uint8Array(16);

/**
 * Decodes the NLRI in `bytes[start, end)`. Throws BgpNotificationError 3/`subcode` (default 10,
 * Invalid Network Field) when a length exceeds the family's maximum or overruns the field: RFC 7606
 * §5.3 keeps a session reset for these, as the rest of the field can no longer be parsed.
 */
export function decodeNlri(options: { bytes: Uint8Array; start: number; end: number; afi: number; addPath: boolean; subcode?: number }): Nlri[] {
  const { bytes, end, afi, addPath } = options;
  const subcode = options.subcode ?? UpdateErrorSubcode.INVALID_NETWORK_FIELD;
  const maxLen = afi === Afi.IPV4 ? 32 : 128;
  const out: Nlri[] = [];
  let i = options.start;
  while (i < end) {
    let pathId: number | undefined;
    if (addPath) {
      if (i + 4 > end) throw nlriError(subcode, "path identifier overruns the NLRI field");
      pathId = u32(bytes, i);
      i += 4;
      if (i >= end) throw nlriError(subcode, "path identifier without a prefix");
    }
    const len = bytes[i]!;
    if (len > maxLen) throw nlriError(subcode, `prefix length ${len} exceeds ${maxLen}`);
    const n = (len + 7) >> 3;
    if (i + 1 + n > end) throw nlriError(subcode, `prefix of length ${len} overruns the NLRI field`);
    let prefix: string;
    const rem = len & 7;
    let src = bytes;
    let at = i + 1;
    if (rem !== 0) {
      for (let k = 0; k < n; k++) scratch[k] = bytes[i + 1 + k]!;
      scratch[n - 1] = scratch[n - 1]! & ((0xff << (8 - rem)) & 0xff);
      src = scratch;
      at = 0;
    }
    if (afi === Afi.IPV4) prefix = internPrefix4(src, at, len, () => formatPrefix(afi, src, at, len));
    else prefix = formatPrefix(afi, src, at, len);
    out.push(pathId === undefined ? { prefix } : { prefix, pathId });
    i += 1 + n;
  }
  return out;
}

function nlriError(subcode: number, reason: string): BgpNotificationError {
  return new BgpNotificationError({ code: ErrorCode.UPDATE_MESSAGE, subcode, reason: `NLRI: ${reason}` });
}

/** Octets one NLRI entry takes on the wire. */
export function nlriSize(entry: Nlri, addPath: boolean): number {
  const slash = entry.prefix.lastIndexOf("/");
  const len = Number(entry.prefix.slice(slash + 1));
  return 1 + ((len + 7) >> 3) + (addPath ? 4 : 0);
}

/**
 * Appends one NLRI entry. Throws BgpConfigError when the prefix text is not a canonical prefix of
 * family `afi`, or when `addPath` is set and the entry has no path id (or the reverse).
 */
export function writeNlri(w: ByteWriter, entry: Nlri, afi: number, addPath: boolean): void {
  const p = parsePrefix(entry.prefix);
  if (!p || p.afi !== afi) {
    throw new BgpConfigError("nlri.prefix", `must be a canonical ${afi === Afi.IPV4 ? "IPv4" : "IPv6"} prefix`, entry.prefix);
  }
  if (addPath) {
    if (entry.pathId === undefined) throw new BgpConfigError("nlri.pathId", "is required when ADD-PATH applies");
    w.u32(entry.pathId);
  } else if (entry.pathId !== undefined) {
    throw new BgpConfigError("nlri.pathId", "must be absent when ADD-PATH does not apply", entry.pathId);
  }
  const n = (p.length + 7) >> 3;
  w.ensure(1 + n);
  w.buf[w.pos++] = p.length;
  for (let k = 0; k < n; k++) w.buf[w.pos++] = p.bytes[k]!;
}
