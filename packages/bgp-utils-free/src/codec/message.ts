/**
 * Message framing and the encoders/decoders of every message type (RFC 4271 §4, RFC 2918 §3,
 * RFC 7313 §3). `decodeMessage` and `MessageReader` throw BgpNotificationError with the §6.1 header
 * error codes; the per-type decoders add §6.2/§6.3 codes. Nothing else is thrown for any input.
 */
import { BgpConfigError, BgpNotificationError } from "../errors.ts";
import { decodeAttributes, writeAttribute } from "./attributes.ts";
import { ByteWriter, u16 } from "./bytes.ts";
import { blockKey, internBlock, internedBlock } from "./intern.ts";
import {
  Afi,
  AttrType,
  ErrorCode,
  HEADER_LENGTH,
  HeaderErrorSubcode,
  MAX_EXTENDED_MESSAGE_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  MIN_MESSAGE_LENGTH,
  RouteRefreshErrorSubcode,
  Safi,
  UpdateErrorSubcode,
} from "./constants.ts";
import { decodeNlri, writeNlri } from "./nlri.ts";
import { decodeOpenBody, writeOpenBody } from "./open.ts";
import type { BgpMessage, CodecOptions, NotificationMessage, UpdateErrorNote, UpdateMessage } from "./types.ts";
import { familyKey } from "./types.ts";

const IPV4_UNICAST = familyKey(Afi.IPV4, Safi.UNICAST);

/** Codec options for a session before capabilities are known, and for tests. */
export const DEFAULT_CODEC: CodecOptions = { fourOctetAs: true };

function headerError(subcode: number, data: Uint8Array, reason: string): BgpNotificationError {
  return new BgpNotificationError({ code: ErrorCode.MESSAGE_HEADER, subcode, data, reason });
}

/**
 * Checks the header at `bytes[offset..offset+19)` and returns the message's total length. Throws
 * BgpNotificationError 1/1 (marker not all ones), 1/2 (length outside 19..max or wrong for the
 * type; data = the Length field), 1/3 (unknown type; data = the Type octet), RFC 4271 §6.1.
 * A ROUTE-REFRESH of the wrong length whose subtype is BoRR/EoRR is 7/1 (RFC 7313 §5), checked by
 * `decodeMessage` once the whole message is there.
 */
export function checkHeader(bytes: Uint8Array, offset: number, maxLength = MAX_MESSAGE_LENGTH): number {
  for (let k = 0; k < 16; k++) {
    if (bytes[offset + k] !== 0xff) throw headerError(HeaderErrorSubcode.CONNECTION_NOT_SYNCHRONIZED, new Uint8Array(0), "marker is not all ones");
  }
  const length = u16(bytes, offset + 16);
  const type = bytes[offset + 18]!;
  if (length < HEADER_LENGTH || length > maxLength)
    throw headerError(HeaderErrorSubcode.BAD_MESSAGE_LENGTH, bytes.slice(offset + 16, offset + 18), `message length ${length} outside ${HEADER_LENGTH}..${maxLength}`);
  const min = MIN_MESSAGE_LENGTH[type];
  if (min === undefined) throw headerError(HeaderErrorSubcode.BAD_MESSAGE_TYPE, new Uint8Array([type]), `unknown message type ${type}`);
  if (length < min) throw headerError(HeaderErrorSubcode.BAD_MESSAGE_LENGTH, bytes.slice(offset + 16, offset + 18), `message type ${type} shorter than ${min}`);
  if (type === MessageType.KEEPALIVE && length !== HEADER_LENGTH) throw headerError(HeaderErrorSubcode.BAD_MESSAGE_LENGTH, bytes.slice(offset + 16, offset + 18), `KEEPALIVE of length ${length}`);
  if (type === MessageType.OPEN && length > MAX_MESSAGE_LENGTH)
    throw headerError(HeaderErrorSubcode.BAD_MESSAGE_LENGTH, bytes.slice(offset + 16, offset + 18), `OPEN longer than ${MAX_MESSAGE_LENGTH}`);
  return length;
}

/**
 * Decodes one whole message (exactly `bytes`, header included). Throws BgpNotificationError with
 * the code/subcode/data to send when the message is malformed beyond what RFC 7606 lets us absorb.
 */
export function decodeMessage(bytes: Uint8Array, codec: CodecOptions = DEFAULT_CODEC): BgpMessage {
  if (bytes.length < HEADER_LENGTH) throw headerError(HeaderErrorSubcode.BAD_MESSAGE_LENGTH, new Uint8Array(0), `message of ${bytes.length} octets is shorter than a header`);
  const length = checkHeader(bytes, 0, codec.maxMessageLength ?? MAX_MESSAGE_LENGTH);
  if (length !== bytes.length) throw headerError(HeaderErrorSubcode.BAD_MESSAGE_LENGTH, bytes.slice(16, 18), `length field ${length} but ${bytes.length} octets given`);
  const type = bytes[18]!;
  switch (type) {
    case MessageType.OPEN:
      return decodeOpenBody(bytes, HEADER_LENGTH, length);
    case MessageType.UPDATE:
      return decodeUpdateBody(bytes, HEADER_LENGTH, length, codec);
    case MessageType.NOTIFICATION:
      return { type: "notification", code: bytes[19]!, subcode: bytes[20]!, data: bytes.slice(21, length) };
    case MessageType.KEEPALIVE:
      return { type: "keepalive" };
    default: {
      // ROUTE-REFRESH (checkHeader rejected every other type).
      const subtype = bytes[21]!;
      if (length !== 23) {
        if (subtype === 1 || subtype === 2) {
          throw new BgpNotificationError({
            code: ErrorCode.ROUTE_REFRESH_MESSAGE,
            subcode: RouteRefreshErrorSubcode.INVALID_MESSAGE_LENGTH,
            data: bytes.slice(),
            reason: `ROUTE-REFRESH of length ${length}`,
          });
        }
        throw headerError(HeaderErrorSubcode.BAD_MESSAGE_LENGTH, bytes.slice(16, 18), `ROUTE-REFRESH of length ${length}`);
      }
      return { type: "route-refresh", afi: u16(bytes, 19), safi: bytes[22]!, subtype };
    }
  }
}

function updateError(subcode: number, reason: string): BgpNotificationError {
  return new BgpNotificationError({ code: ErrorCode.UPDATE_MESSAGE, subcode, reason });
}

/**
 * Decodes an UPDATE body. Session-reset errors throw BgpNotificationError (3/1 when the Withdrawn
 * Routes Length or Total Path Attribute Length overrun the message, 3/10 for bad NLRI, and the
 * attribute cases of `decodeAttributes`); other errors come back in `errors`.
 */
export function decodeUpdateBody(bytes: Uint8Array, start: number, end: number, codec: CodecOptions): UpdateMessage {
  const wrl = u16(bytes, start);
  const wStart = start + 2;
  const wEnd = wStart + wrl;
  if (wEnd + 2 > end) throw updateError(UpdateErrorSubcode.MALFORMED_ATTRIBUTE_LIST, `Withdrawn Routes Length ${wrl} overruns the message`);
  const tal = u16(bytes, wEnd);
  const aStart = wEnd + 2;
  const aEnd = aStart + tal;
  if (aEnd > end) throw updateError(UpdateErrorSubcode.MALFORMED_ATTRIBUTE_LIST, `Total Path Attribute Length ${tal} overruns the message`);
  const addPath4 = codec.addPath !== undefined && codec.addPath.has(IPV4_UNICAST);
  const withdrawn = decodeNlri({ bytes, start: wStart, end: wEnd, afi: Afi.IPV4, addPath: addPath4 });
  const key = blockKey(bytes, aStart, aEnd, codec.fourOctetAs);
  let attributes = key === undefined ? undefined : internedBlock(key);
  let errors: UpdateErrorNote[] = [];
  if (attributes === undefined) {
    ({ attributes, errors } = decodeAttributes({ bytes, start: aStart, end: aEnd, codec }));
    if (key !== undefined && errors.length === 0) attributes = internBlock(key, attributes);
  }
  const nlri = decodeNlri({ bytes, start: aEnd, end, afi: Afi.IPV4, addPath: addPath4 });
  const msg: UpdateMessage = { type: "update", withdrawn, attributes, nlri };
  const hasMpReach = attributes.some((a) => a.type === "mp-reach");
  if ((nlri.length > 0 || hasMpReach) && !errors.some((e) => e.action === "treat-as-withdraw")) {
    const missing = missingMandatory(msg, nlri.length > 0);
    if (missing !== undefined) {
      errors.push({ action: "treat-as-withdraw", subcode: UpdateErrorSubcode.MISSING_WELL_KNOWN_ATTRIBUTE, attribute: missing, reason: `missing well-known attribute ${missing}` });
    }
  }
  if (errors.length > 0) msg.errors = errors;
  return msg;
}

function missingMandatory(msg: UpdateMessage, needNextHop: boolean): number | undefined {
  let origin = false;
  let asPath = false;
  let nextHop = false;
  for (const a of msg.attributes) {
    if (a.type === "origin") origin = true;
    else if (a.type === "as-path") asPath = true;
    else if (a.type === "next-hop") nextHop = true;
  }
  if (!origin) return AttrType.ORIGIN;
  if (!asPath) return AttrType.AS_PATH;
  if (needNextHop && !nextHop) return AttrType.NEXT_HOP;
  return undefined;
}

/** True when an UPDATE's errors require withdrawing what it announces (RFC 7606 treat-as-withdraw). */
export function isTreatAsWithdraw(msg: UpdateMessage): boolean {
  return msg.errors !== undefined && msg.errors.some((e: UpdateErrorNote) => e.action === "treat-as-withdraw");
}

function writeHeader(w: ByteWriter, type: number): number {
  w.ensure(HEADER_LENGTH);
  for (let k = 0; k < 16; k++) w.buf[w.pos++] = 0xff;
  const at = w.pos;
  w.u16(0);
  w.u8(type);
  return at;
}

/**
 * Encodes one message. Throws BgpConfigError when the message does not fit in `maxMessageLength`
 * (4096 unless Extended Message applies) or a field cannot be encoded.
 */
export function encodeMessage(m: BgpMessage, codec: CodecOptions = DEFAULT_CODEC): Uint8Array {
  const w = new ByteWriter(m.type === "update" ? 512 : 64);
  const lenAt = writeHeader(w, TYPE_OF[m.type]);
  switch (m.type) {
    case "open":
      writeOpenBody(w, m);
      break;
    case "update":
      writeUpdateBody(w, m, codec);
      break;
    case "notification":
      w.u8(m.code);
      w.u8(m.subcode);
      w.bytes(m.data);
      break;
    case "keepalive":
      break;
    case "route-refresh":
      w.u16(m.afi);
      w.u8(m.subtype);
      w.u8(m.safi);
      break;
  }
  const max = m.type === "open" || m.type === "keepalive" ? MAX_MESSAGE_LENGTH : (codec.maxMessageLength ?? MAX_MESSAGE_LENGTH);
  if (w.pos > max) throw new BgpConfigError(`${m.type} message`, `must fit in ${max} octets`, w.pos);
  w.patch16(lenAt, w.pos);
  return w.result();
}

const TYPE_OF: Readonly<Record<BgpMessage["type"], number>> = {
  open: MessageType.OPEN,
  update: MessageType.UPDATE,
  notification: MessageType.NOTIFICATION,
  keepalive: MessageType.KEEPALIVE,
  "route-refresh": MessageType.ROUTE_REFRESH,
};

function writeUpdateBody(w: ByteWriter, m: UpdateMessage, codec: CodecOptions): void {
  const addPath4 = codec.addPath !== undefined && codec.addPath.has(IPV4_UNICAST);
  const wAt = w.pos;
  w.u16(0);
  for (const n of m.withdrawn) writeNlri(w, n, Afi.IPV4, addPath4);
  w.patch16(wAt, w.pos - wAt - 2);
  const aAt = w.pos;
  w.u16(0);
  for (const a of m.attributes) writeAttribute(w, a, codec);
  w.patch16(aAt, w.pos - aAt - 2);
  for (const n of m.nlri) writeNlri(w, n, Afi.IPV4, addPath4);
}

/** The 19-octet KEEPALIVE, shared (never mutate it). */
export const KEEPALIVE_BYTES: Uint8Array = encodeMessage({ type: "keepalive" });

/** Encodes a NOTIFICATION. */
export function encodeNotification(n: Omit<NotificationMessage, "type">): Uint8Array {
  return encodeMessage({ type: "notification", code: n.code, subcode: n.subcode, data: n.data });
}

/**
 * Splits a byte stream into messages (RFC 4271 §4.1: reassemble across reads, split several per
 * read). `push` returns the complete messages received so far (views into an internal buffer that
 * stay valid until the next `push`). Header errors throw BgpNotificationError as soon as the 19
 * header octets are in, without waiting for the body.
 */
export class MessageReader {
  // Allocated on the first partial message only: a speaker with thousands of sessions whose chunks
  // hold whole messages (the usual case) keeps no buffer per session.
  private buf = new Uint8Array(0);
  private start = 0;
  private end = 0;
  /** Largest accepted message; raise to 65535 once Extended Message is negotiated. */
  maxMessageLength = MAX_MESSAGE_LENGTH;

  /**
   * Appends `chunk` and returns every message now complete (possibly none). The messages are views
   * of `chunk` or of the reader's buffer, valid until the next `push`. Throws `BgpNotificationError`
   * (Message Header Error) for a bad marker or length.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.end === this.start) return this.pushWhole(chunk);
    this.append(chunk);
    const out: Uint8Array[] = [];
    for (;;) {
      const avail = this.end - this.start;
      if (avail < HEADER_LENGTH) break;
      const len = checkHeader(this.buf, this.start, Math.min(this.maxMessageLength, MAX_EXTENDED_MESSAGE_LENGTH));
      if (avail < len) break;
      out.push(this.buf.subarray(this.start, this.start + len));
      this.start += len;
    }
    return out;
  }

  /** Octets received but not yet part of a complete message. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Nothing buffered: whole messages are cut out of `chunk` without a copy; a tail is buffered. */
  private pushWhole(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let pos = 0;
    for (;;) {
      const avail = chunk.length - pos;
      if (avail < HEADER_LENGTH) break;
      const len = checkHeader(chunk, pos, Math.min(this.maxMessageLength, MAX_EXTENDED_MESSAGE_LENGTH));
      if (avail < len) break;
      out.push(chunk.subarray(pos, pos + len));
      pos += len;
    }
    this.start = 0;
    this.end = 0;
    if (pos < chunk.length) this.append(chunk.subarray(pos));
    return out;
  }

  private append(chunk: Uint8Array): void {
    const live = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      // Messages handed out by the previous push are done with by now: compact or grow.
      const need = live + chunk.length;
      if (need <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const next = new Uint8Array(Math.max(need, this.buf.length * 2, 8192));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = live;
    } else if (live === 0) {
      this.start = 0;
      this.end = 0;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
}
