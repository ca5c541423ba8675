/**
 * OPEN message body (RFC 4271 §4.2) and capabilities (RFC 5492 §4). Parameters of type 2 carry one or
 * more capabilities; both BIRD's style (all in one parameter) and one parameter per capability are
 * accepted and re-encoded the way they came. Unknown capabilities are kept raw and ignored by the
 * session (RFC 5492 §4); a known capability with a malformed value is kept raw as well.
 */
import { BgpConfigError, BgpNotificationError } from "../errors.ts";
import { formatIpv4Bytes, parseIpv4 } from "./address.ts";
import { ByteWriter, u16, u32 } from "./bytes.ts";
import { CapabilityCode, ErrorCode, OPT_PARAM_CAPABILITIES, OpenErrorSubcode } from "./constants.ts";
import type { Capability, OpenMessage } from "./types.ts";

/** The BGP version this speaker implements. */
export const BGP_VERSION = 4;

/**
 * Decodes an OPEN body (`bytes[start, end)`, after the header). Throws BgpNotificationError:
 * 2/1 with data 0x0004 for a version other than 4, 2/4 for an optional parameter other than
 * capabilities, 2/0 when the parameter lengths do not add up.
 */
export function decodeOpenBody(bytes: Uint8Array, start: number, end: number): OpenMessage {
  const version = bytes[start]!;
  if (version !== BGP_VERSION) {
    throw new BgpNotificationError({
      code: ErrorCode.OPEN_MESSAGE,
      subcode: OpenErrorSubcode.UNSUPPORTED_VERSION,
      data: new Uint8Array([0, BGP_VERSION]),
      reason: `unsupported BGP version ${version}`,
    });
  }
  const myAs = u16(bytes, start + 1);
  const holdTime = u16(bytes, start + 3);
  const bgpId = formatIpv4Bytes(bytes, start + 5);
  const optLen = bytes[start + 9]!;
  const p0 = start + 10;
  if (p0 + optLen !== end) throw openUnspecific(`Opt Parm Len ${optLen} does not match the message length`);
  const capabilities: Capability[] = [];
  const groups: number[] = [];
  let i = p0;
  while (i < end) {
    if (i + 2 > end) throw openUnspecific("optional parameter header overruns the parameters");
    const type = bytes[i]!;
    const len = bytes[i + 1]!;
    const ve = i + 2 + len;
    if (ve > end) throw openUnspecific(`optional parameter of length ${len} overruns the parameters`);
    if (type !== OPT_PARAM_CAPABILITIES) {
      throw new BgpNotificationError({
        code: ErrorCode.OPEN_MESSAGE,
        subcode: OpenErrorSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
        reason: `unsupported optional parameter type ${type}`,
      });
    }
    let count = 0;
    let k = i + 2;
    while (k < ve) {
      if (k + 2 > ve) throw openUnspecific("capability header overruns its parameter");
      const code = bytes[k]!;
      const clen = bytes[k + 1]!;
      if (k + 2 + clen > ve) throw openUnspecific(`capability ${code} of length ${clen} overruns its parameter`);
      capabilities.push(decodeCapability(code, bytes.subarray(k + 2, k + 2 + clen)));
      count++;
      k += 2 + clen;
    }
    groups.push(count);
    i = ve;
  }
  const open: OpenMessage = { type: "open", version, myAs, holdTime, bgpId, capabilities };
  if (groups.length > 1 || (groups.length === 1 && groups[0] === 0)) open.parameterGroups = groups;
  return open;
}

function openUnspecific(reason: string): BgpNotificationError {
  return new BgpNotificationError({ code: ErrorCode.OPEN_MESSAGE, subcode: 0, reason: `OPEN: ${reason}` });
}

/** Decodes one capability value; malformed known capabilities come back as `unknown`. */
export function decodeCapability(code: number, v: Uint8Array): Capability {
  const raw = (): Capability => ({ kind: "unknown", code, value: v.slice() });
  switch (code) {
    case CapabilityCode.MULTIPROTOCOL:
      if (v.length !== 4 || v[2] !== 0) return raw();
      return { kind: "multiprotocol", afi: u16(v, 0), safi: v[3]! };
    case CapabilityCode.ROUTE_REFRESH:
      return v.length === 0 ? { kind: "route-refresh" } : raw();
    case CapabilityCode.ENHANCED_ROUTE_REFRESH:
      return v.length === 0 ? { kind: "enhanced-route-refresh" } : raw();
    case CapabilityCode.EXTENDED_MESSAGE:
      return v.length === 0 ? { kind: "extended-message" } : raw();
    case CapabilityCode.EXTENDED_NEXT_HOP: {
      if (v.length === 0 || v.length % 6 !== 0) return raw();
      const tuples: { afi: number; safi: number; nextHopAfi: number }[] = [];
      for (let i = 0; i < v.length; i += 6) tuples.push({ afi: u16(v, i), safi: u16(v, i + 2), nextHopAfi: u16(v, i + 4) });
      return { kind: "extended-next-hop", tuples };
    }
    case CapabilityCode.GRACEFUL_RESTART: {
      if (v.length < 2 || (v.length - 2) % 4 !== 0) return raw();
      const families: { afi: number; safi: number; flags: number }[] = [];
      for (let i = 2; i < v.length; i += 4) families.push({ afi: u16(v, i), safi: v[i + 2]!, flags: v[i + 3]! });
      return { kind: "graceful-restart", flags: v[0]! >> 4, restartTime: u16(v, 0) & 0x0fff, families };
    }
    case CapabilityCode.FOUR_OCTET_AS:
      return v.length === 4 ? { kind: "four-octet-as", asn: u32(v, 0) } : raw();
    case CapabilityCode.ADD_PATH: {
      if (v.length === 0 || v.length % 4 !== 0) return raw();
      const families: { afi: number; safi: number; mode: number }[] = [];
      for (let i = 0; i < v.length; i += 4) {
        const mode = v[i + 3]!;
        if (mode < 1 || mode > 3) return raw();
        families.push({ afi: u16(v, i), safi: v[i + 2]!, mode });
      }
      return { kind: "add-path", families };
    }
    default:
      return raw();
  }
}

/** Code of a capability. */
export function capabilityCode(c: Capability): number {
  switch (c.kind) {
    case "multiprotocol":
      return CapabilityCode.MULTIPROTOCOL;
    case "route-refresh":
      return CapabilityCode.ROUTE_REFRESH;
    case "enhanced-route-refresh":
      return CapabilityCode.ENHANCED_ROUTE_REFRESH;
    case "extended-message":
      return CapabilityCode.EXTENDED_MESSAGE;
    case "extended-next-hop":
      return CapabilityCode.EXTENDED_NEXT_HOP;
    case "graceful-restart":
      return CapabilityCode.GRACEFUL_RESTART;
    case "four-octet-as":
      return CapabilityCode.FOUR_OCTET_AS;
    case "add-path":
      return CapabilityCode.ADD_PATH;
    case "unknown":
      return c.code;
  }
}

/** Encodes one capability (code, length, value). Throws BgpConfigError for out-of-range fields. */
export function encodeCapability(c: Capability): Uint8Array {
  const w = new ByteWriter(16);
  w.u8(capabilityCode(c));
  w.u8(0);
  switch (c.kind) {
    case "multiprotocol":
      w.u16(c.afi);
      w.u8(0);
      w.u8(c.safi);
      break;
    case "extended-next-hop":
      for (const t of c.tuples) {
        w.u16(t.afi);
        w.u16(t.safi);
        w.u16(t.nextHopAfi);
      }
      break;
    case "graceful-restart":
      if (c.restartTime < 0 || c.restartTime > 4095) throw new BgpConfigError("gracefulRestart.restartTime", "must be 0..4095 seconds", c.restartTime);
      w.u16(((c.flags & 0xf) << 12) | c.restartTime);
      for (const f of c.families) {
        w.u16(f.afi);
        w.u8(f.safi);
        w.u8(f.flags);
      }
      break;
    case "four-octet-as":
      w.u32(c.asn);
      break;
    case "add-path":
      for (const f of c.families) {
        w.u16(f.afi);
        w.u8(f.safi);
        w.u8(f.mode);
      }
      break;
    case "unknown":
      w.bytes(c.value);
      break;
    default:
      break;
  }
  if (w.pos - 2 > 255) throw new BgpConfigError(`capability ${capabilityCode(c)}`, "value must be at most 255 octets", w.pos - 2);
  w.buf[1] = w.pos - 2;
  return w.result();
}

/**
 * Appends an OPEN body. Capabilities go into parameters as `parameterGroups` says, or all into one
 * (split only when longer than 255 octets). Throws BgpConfigError when the parameters exceed the
 * 255 octets of Opt Parm Len (RFC 9072 extended parameters are not implemented) or a field is out of range.
 */
export function writeOpenBody(w: ByteWriter, m: OpenMessage): void {
  if (m.myAs < 0 || m.myAs > 0xffff) throw new BgpConfigError("open.myAs", "must be 0..65535 (AS_TRANS for 4-octet ASNs)", m.myAs);
  if (m.holdTime < 0 || m.holdTime > 0xffff) throw new BgpConfigError("open.holdTime", "must be 0..65535", m.holdTime);
  const id = parseIpv4(m.bgpId);
  if (id === undefined) throw new BgpConfigError("open.bgpId", "must be a dotted-quad IPv4 address", m.bgpId);
  w.u8(m.version);
  w.u16(m.myAs);
  w.u16(m.holdTime);
  w.u32(id);
  const encoded = m.capabilities.map(encodeCapability);
  const params: Uint8Array[][] = [];
  if (m.parameterGroups) {
    let k = 0;
    for (const n of m.parameterGroups) {
      params.push(encoded.slice(k, k + n));
      k += n;
    }
    if (k !== encoded.length) throw new BgpConfigError("open.parameterGroups", "must add up to the number of capabilities", m.parameterGroups);
  } else if (encoded.length > 0) {
    let cur: Uint8Array[] = [];
    let size = 0;
    for (const e of encoded) {
      if (size + e.length > 255 && cur.length > 0) {
        params.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(e);
      size += e.length;
    }
    params.push(cur);
  }
  const lenAt = w.pos;
  w.u8(0);
  let total = 0;
  for (const p of params) {
    let plen = 0;
    for (const e of p) plen += e.length;
    if (plen > 255) throw new BgpConfigError("open.capabilities", "one optional parameter holds at most 255 octets", plen);
    w.u8(OPT_PARAM_CAPABILITIES);
    w.u8(plen);
    for (const e of p) w.bytes(e);
    total += 2 + plen;
  }
  if (total > 255) throw new BgpConfigError("open.capabilities", "optional parameters must fit in 255 octets", total);
  w.buf[lenAt] = total;
}
