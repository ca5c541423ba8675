/**
 * The sleeve's UDP packet (port 6783): like Weave's, it carries the name of the peer that captured
 * the frames and the name of the peer they are for, and several Ethernet frames per packet.
 *
 *   byte 0      0x57 ('W')               magic
 *   byte 1      1                        version
 *   byte 2      flags                    bit 0: the body is sealed
 *                                        bit 1: the names are raw IP addresses (4 or 16 bytes)
 *                                        bit 2: the body is a handshake message (`handshake.ts`)
 *   byte 3      n                        length of the source peer's name (1-255, UTF-8)
 *   3+1..       source name
 *   next byte   m                        length of the destination peer's name (1-255)
 *   ..          destination name
 *   body        plain:  ( u16 big-endian length, frame )*
 *               sealed: session.seal(plain body, aad = the header above)
 *
 * With bit 1 a name is its peer's underlay address as 4 (IPv4) or 16 (IPv6) raw bytes instead of
 * UTF-8: the userspace datapath names peers by address (no mesh to agree on names), and two
 * 4-byte names keep an encrypted header at 13 bytes, so a frame of the pod MTU (underlay − 82)
 * still fits one packet: 28 + 13 + 2 + (MTU + 14) + 24 ≤ underlay MTU.
 *
 * The header stays in the clear (the receiver needs the source name to pick the session) and is
 * authenticated as the AEAD's additional data, so a tampered name fails `open`. Frames use the
 * same 2-byte length prefix as the TAP helper's stdio (native/weave-tap.c).
 *
 * Every decoder throws `SleevePacketError` (code "SLEEVE_MALFORMED") naming what is wrong.
 */

import { formatAddress, parseAddress } from "@cnikit/core";

export const SLEEVE_MAGIC = 0x57;
export const SLEEVE_VERSION = 1;
/** Flags bit: the body is sealed. */
export const SLEEVE_FLAG_SEALED = 0x01;
/** Flags bit: both names are raw IP addresses (4 or 16 bytes). */
export const SLEEVE_FLAG_ADDRESS_NAMES = 0x02;
/** Flags bit: the body is a handshake message, not frames. */
export const SLEEVE_FLAG_CONTROL = 0x04;
const KNOWN_FLAGS = SLEEVE_FLAG_SEALED | SLEEVE_FLAG_ADDRESS_NAMES | SLEEVE_FLAG_CONTROL;
/** The Ethernet header: frames shorter than this are not frames. */
export const ETHERNET_HEADER_BYTES = 14;
/** Per frame inside a packet: its 2-byte length. */
export const FRAME_PREFIX_BYTES = 2;
/** IPv4 + UDP headers around a sleeve packet on the underlay. */
export const UNDERLAY_HEADER_BYTES = 28;
/** Largest frame a 2-byte length can carry. */
export const MAX_FRAME_BYTES = 0xffff;

/** A packet (or a frame list) that does not parse. */
export class SleevePacketError extends Error {
  readonly code = "SLEEVE_MALFORMED";
  constructor(message: string) {
    super(`[weave] sleeve packet: ${message}`);
    this.name = "SleevePacketError";
  }
}

/** The decoded header of a sleeve packet, and where its body starts. */
export interface SleeveHeader {
  /** The peer that captured the frames. */
  src: string;
  /** The peer the frames are for. */
  dst: string;
  sealed: boolean;
  /** Both names are IP addresses, carried as raw bytes (flag bit 1). */
  addressNames?: boolean;
  /** The body is a handshake message (flag bit 2). */
  control?: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function nameBytes(name: string, field: string): Uint8Array {
  const b = encoder.encode(name);
  if (b.length === 0 || b.length > 255) throw new RangeError(`[weave] sleeve ${field} "${name}" must be 1-255 bytes of UTF-8 (is ${b.length})`);
  return b;
}

/** An IP address as its 4 or 16 raw bytes. */
function addressBytes(name: string, field: string): Uint8Array {
  let parsed: { family: 4 | 6; value: bigint };
  try {
    parsed = parseAddress(name);
  } catch {
    throw new RangeError(`[weave] sleeve ${field} "${name}" must be an IP address (the header carries addresses as names)`);
  }
  const n = parsed.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = parsed.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function addressText(bytes: Uint8Array): string {
  if (bytes.length !== 4 && bytes.length !== 16) throw new SleevePacketError(`an address name of ${bytes.length} bytes is neither IPv4 (4) nor IPv6 (16)`);
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return formatAddress(v, bytes.length === 4 ? 4 : 6);
}

/** The header bytes (also the AEAD's additional data when sealed). */
export function encodeSleeveHeader(header: SleeveHeader): Uint8Array {
  const name = header.addressNames === true ? addressBytes : nameBytes;
  const src = name(header.src, "source name");
  const dst = name(header.dst, "destination name");
  const out = new Uint8Array(5 + src.length + dst.length);
  out[0] = SLEEVE_MAGIC;
  out[1] = SLEEVE_VERSION;
  out[2] = (header.sealed ? SLEEVE_FLAG_SEALED : 0) | (header.addressNames === true ? SLEEVE_FLAG_ADDRESS_NAMES : 0) | (header.control === true ? SLEEVE_FLAG_CONTROL : 0);
  out[3] = src.length;
  out.set(src, 4);
  out[4 + src.length] = dst.length;
  out.set(dst, 5 + src.length);
  return out;
}

/** Splits a packet into header, header bytes (the AAD) and body. */
export function decodeSleevePacket(packet: Uint8Array): { header: SleeveHeader; headerBytes: Uint8Array; body: Uint8Array } {
  if (packet.length < 5) throw new SleevePacketError(`${packet.length} bytes is shorter than any header`);
  if (packet[0] !== SLEEVE_MAGIC) throw new SleevePacketError(`magic 0x${packet[0]!.toString(16)} is not 0x57`);
  if (packet[1] !== SLEEVE_VERSION) throw new SleevePacketError(`version ${packet[1]} is not ${SLEEVE_VERSION}`);
  const flags = packet[2]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new SleevePacketError(`unknown flags 0x${flags.toString(16)}`);
  const srcLen = packet[3]!;
  const dstAt = 4 + srcLen;
  if (srcLen === 0 || packet.length < dstAt + 1) throw new SleevePacketError("source name truncated or empty");
  const dstLen = packet[dstAt]!;
  const bodyAt = dstAt + 1 + dstLen;
  if (dstLen === 0 || packet.length < bodyAt) throw new SleevePacketError("destination name truncated or empty");
  let src: string;
  let dst: string;
  const addressNames = (flags & SLEEVE_FLAG_ADDRESS_NAMES) !== 0;
  if (addressNames) {
    src = addressText(packet.subarray(4, dstAt));
    dst = addressText(packet.subarray(dstAt + 1, bodyAt));
  } else {
    try {
      src = decoder.decode(packet.subarray(4, dstAt));
      dst = decoder.decode(packet.subarray(dstAt + 1, bodyAt));
    } catch {
      throw new SleevePacketError("a peer name is not UTF-8");
    }
  }
  const header: SleeveHeader = { src, dst, sealed: (flags & SLEEVE_FLAG_SEALED) !== 0 };
  if (addressNames) header.addressNames = true;
  if ((flags & SLEEVE_FLAG_CONTROL) !== 0) header.control = true;
  return { header, headerBytes: packet.subarray(0, bodyAt), body: packet.subarray(bodyAt) };
}

/** Size of the header for these two names (`addressNames`: carried as raw addresses). */
export function sleeveHeaderBytes(src: string, dst: string, addressNames = false): number {
  if (addressNames) return 5 + addressBytes(src, "source name").length + addressBytes(dst, "destination name").length;
  return 5 + encoder.encode(src).length + encoder.encode(dst).length;
}

/** `( u16 length, frame )*`: the plain body of a packet, and the TAP helper's stdio format. */
export function encodeFrames(frames: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const f of frames) {
    if (f.length > MAX_FRAME_BYTES) throw new RangeError(`[weave] a frame of ${f.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit of its length prefix`);
    total += FRAME_PREFIX_BYTES + f.length;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const f of frames) {
    out.writeUInt16BE(f.length, at);
    out.set(f, at + FRAME_PREFIX_BYTES);
    at += FRAME_PREFIX_BYTES + f.length;
  }
  return out;
}

/** The frames of a whole body. Throws SleevePacketError when a length runs past the end. */
export function decodeFrames(body: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const { consumed } = splitFrames(body, frames);
  if (consumed !== body.length) throw new SleevePacketError(`frame list truncated: ${body.length - consumed} byte(s) left after ${frames.length} frame(s)`);
  return frames;
}

/**
 * Appends to `out` the whole frames at the start of `bytes` (views, not copies) and returns how
 * many bytes they took: a stream reader keeps the rest for the next chunk.
 */
export function splitFrames(bytes: Uint8Array, out: Uint8Array[]): { consumed: number } {
  let at = 0;
  while (bytes.length - at >= FRAME_PREFIX_BYTES) {
    const n = (bytes[at]! << 8) | bytes[at + 1]!;
    if (bytes.length - at - FRAME_PREFIX_BYTES < n) break;
    out.push(bytes.subarray(at + FRAME_PREFIX_BYTES, at + FRAME_PREFIX_BYTES + n));
    at += FRAME_PREFIX_BYTES + n;
  }
  return { consumed: at };
}

/** The 48-bit MAC at `offset` of `frame` as a number (0: destination, 6: source). */
export function macAt(frame: Uint8Array, offset: 0 | 6): number {
  return frame[offset]! * 2 ** 40 + frame[offset + 1]! * 2 ** 32 + ((frame[offset + 2]! << 24) >>> 0) + (frame[offset + 3]! << 16) + (frame[offset + 4]! << 8) + frame[offset + 5]!;
}

/** Whether the MAC (as `macAt` returns it) is a group address: broadcast or multicast. */
export function isGroupMac(mac: number): boolean {
  return Math.floor(mac / 2 ** 40) % 2 === 1;
}

/** `aa:bb:cc:dd:ee:ff` for a MAC number (for logs and STATUS). */
export function formatMac(mac: number): string {
  return mac
    .toString(16)
    .padStart(12, "0")
    .replace(/(..)(?!$)/g, "$1:");
}
