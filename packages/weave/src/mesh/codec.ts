/**
 * The mesh's wire format: compact binary (peer names as 6 bytes, UIDs as 8, varints), so that the
 * byte counts the tests and the benchmark report are the ones a real deployment would send.
 *
 * Stream messages start with a type byte (`MESSAGE`). The first message on a connection is a
 * HELLO in clear; when the connection is encrypted every later message is sealed whole.
 * Heartbeats are datagrams: "H", the connection id (8 bytes), the sender's peer name (6 bytes).
 * Anything malformed throws `DecodeError` (code 6) saying what was wrong.
 */
import { DecodeError } from "@cnikit/core";

export const MESSAGE = {
  hello: 1,
  refuse: 2,
  proof: 3,
  topology: 10,
  digest: 11,
  request: 12,
  channelGossip: 20,
  broadcast: 21,
  unicast: 22,
} as const;
export type MessageType = (typeof MESSAGE)[keyof typeof MESSAGE];

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder("utf-8", { fatal: true });

/** A growable byte buffer. */
export class Writer {
  private buf = new Uint8Array(64);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  /** Unsigned integer up to 2^53 as LEB128. */
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint: ${v} is not a safe unsigned integer`);
    while (v >= 0x80) {
      this.u8((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    return this.u8(v);
  }

  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    return this;
  }

  bytes(bytes: Uint8Array): this {
    return this.varint(bytes.length).raw(bytes);
  }

  string(text: string): this {
    return this.bytes(TEXT_ENCODER.encode(text));
  }

  /** A peer name "aa:bb:cc:dd:ee:ff" as 6 bytes. */
  peerName(name: string): this {
    return this.raw(hexBytes(name, 6));
  }

  /** A 64-bit id (16 hex digits) as 8 bytes. */
  uid(uid: string): this {
    return this.raw(hexBytes(uid, 8));
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function nibble(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** `n` bytes from lowercase hex, skipping ':' separators. */
function hexBytes(text: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let k = 0;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) === 58) continue;
    const hi = nibble(text.charCodeAt(i));
    const lo = nibble(text.charCodeAt(++i));
    if (hi < 0 || lo < 0 || k >= n) throw new RangeError(`expected ${n} bytes of lowercase hex, got "${text}"`);
    out[k++] = (hi << 4) | lo;
  }
  if (k !== n) throw new RangeError(`expected ${n} bytes of lowercase hex, got "${text}"`);
  return out;
}

function toHex(bytes: Uint8Array, sep: string): string {
  let out = HEX[bytes[0]!]!;
  for (let i = 1; i < bytes.length; i++) out += sep + HEX[bytes[i]!]!;
  return out;
}

/** Reads what `Writer` wrote; every read past the end throws `DecodeError`. */
export class Reader {
  private pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new DecodeError(`[weave] ${this.what}: truncated (wanted ${n} more bytes at offset ${this.pos} of ${this.buf.length})`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let out = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      out += (b & 0x7f) * scale;
      if (b < 0x80) return out;
      scale *= 0x80;
    }
    throw new DecodeError(`[weave] ${this.what}: varint longer than 8 bytes`);
  }

  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  bytes(): Uint8Array {
    return this.raw(this.varint()).slice();
  }

  string(): string {
    try {
      return TEXT_DECODER.decode(this.raw(this.varint()));
    } catch (err) {
      if ((err as { code?: unknown }).code === 6) throw err;
      throw new DecodeError(`[weave] ${this.what}: a string is not valid UTF-8`);
    }
  }

  peerName(): string {
    return toHex(this.raw(6), ":");
  }

  uid(): string {
    return toHex(this.raw(8), "");
  }

  /** Throws unless every byte was read. */
  end(): void {
    if (this.pos !== this.buf.length) throw new DecodeError(`[weave] ${this.what}: ${this.buf.length - this.pos} trailing bytes`);
  }
}

// ---- messages ----

export interface Hello {
  minVersion: number;
  maxVersion: number;
  name: string;
  nickname: string;
  uid: string;
  /** This side's random id for this connection. */
  connUid: string;
  shortId: number;
  features: Record<string, string>;
  /** Ephemeral X25519 public key; present iff this side has a password. */
  publicKey: Uint8Array | undefined;
  /** Whether this side considers the remote's underlay address trusted (no encryption needed). */
  trustsRemote: boolean;
}

const HELLO_MAGIC = "weave-mesh";

export function encodeHello(h: Hello): Uint8Array {
  const w = new Writer().u8(MESSAGE.hello).string(HELLO_MAGIC).u8(h.minVersion).u8(h.maxVersion);
  w.peerName(h.name).string(h.nickname).uid(h.uid).uid(h.connUid).varint(h.shortId);
  const keys = Object.keys(h.features).sort();
  w.varint(keys.length);
  for (const k of keys) w.string(k).string(h.features[k]!);
  w.u8((h.publicKey ? 1 : 0) | (h.trustsRemote ? 2 : 0));
  if (h.publicKey) w.bytes(h.publicKey);
  return w.finish();
}

/**
 * Decodes a HELLO. Only the magic and the version range are read before the version check, so a
 * peer speaking another protocol version still gets a clear refusal: `decodeHelloVersions` first.
 */
export function decodeHelloVersions(bytes: Uint8Array): { minVersion: number; maxVersion: number } {
  const r = new Reader(bytes, "hello");
  if (r.u8() !== MESSAGE.hello) throw new DecodeError("[weave] the first message of a connection must be a hello");
  if (r.string() !== HELLO_MAGIC) throw new DecodeError(`[weave] hello: not a ${HELLO_MAGIC} peer`);
  return { minVersion: r.u8(), maxVersion: r.u8() };
}

export function decodeHello(bytes: Uint8Array): Hello {
  const r = new Reader(bytes, "hello");
  r.u8();
  r.string();
  const minVersion = r.u8();
  const maxVersion = r.u8();
  const name = r.peerName();
  const nickname = r.string();
  const uid = r.uid();
  const connUid = r.uid();
  const shortId = r.varint();
  const features: Record<string, string> = {};
  const n = r.varint();
  for (let i = 0; i < n; i++) {
    const k = r.string();
    features[k] = r.string();
  }
  const flags = r.u8();
  const publicKey = flags & 1 ? r.bytes() : undefined;
  r.end();
  return { minVersion, maxVersion, name, nickname, uid, connUid, shortId, features, publicKey, trustsRemote: (flags & 2) !== 0 };
}

export function encodeRefuse(reason: string): Uint8Array {
  return new Writer().u8(MESSAGE.refuse).string(reason).finish();
}

/** The refusal reason if `bytes` is a REFUSE, else undefined. */
export function decodeRefuse(bytes: Uint8Array): string | undefined {
  if (bytes[0] !== MESSAGE.refuse) return undefined;
  const r = new Reader(bytes, "refuse");
  r.u8();
  return r.string();
}

/** One connection of a peer record. */
export interface ConnectionEntry {
  to: string;
  established: boolean;
  outbound: boolean;
}

/** A peer record as gossiped: identity plus the peer's connections. */
export interface PeerRecord {
  name: string;
  nickname: string;
  uid: string;
  version: number;
  shortId: number;
  connections: ConnectionEntry[];
}

export function writeRecord(w: Writer, p: PeerRecord): void {
  w.peerName(p.name).string(p.nickname).uid(p.uid).varint(p.version).varint(p.shortId).varint(p.connections.length);
  for (const c of p.connections) w.peerName(c.to).u8((c.established ? 1 : 0) | (c.outbound ? 2 : 0));
}

function readRecord(r: Reader): PeerRecord {
  const name = r.peerName();
  const nickname = r.string();
  const uid = r.uid();
  const version = r.varint();
  const shortId = r.varint();
  const n = r.varint();
  const connections: ConnectionEntry[] = [];
  for (let i = 0; i < n; i++) {
    const to = r.peerName();
    const flags = r.u8();
    connections.push({ to, established: (flags & 1) !== 0, outbound: (flags & 2) !== 0 });
  }
  return { name, nickname, uid, version, shortId, connections };
}

/**
 * A change of one peer record: from version `base` to `version`, the connections added or changed
 * (`set`) and the ones removed. Applies only to a held record at exactly `base` (same UID); anyone
 * else asks for the full record.
 */
export interface RecordDelta {
  name: string;
  uid: string;
  base: number;
  version: number;
  shortId: number;
  set: ConnectionEntry[];
  removed: string[];
}

function writeDelta(w: Writer, d: RecordDelta): void {
  w.peerName(d.name).uid(d.uid).varint(d.base).varint(d.version).varint(d.shortId).varint(d.set.length);
  for (const c of d.set) w.peerName(c.to).u8((c.established ? 1 : 0) | (c.outbound ? 2 : 0));
  w.varint(d.removed.length);
  for (const n of d.removed) w.peerName(n);
}

function readDelta(r: Reader): RecordDelta {
  const name = r.peerName();
  const uid = r.uid();
  const base = r.varint();
  const version = r.varint();
  const shortId = r.varint();
  const set: ConnectionEntry[] = [];
  for (let i = r.varint(); i > 0; i--) {
    const to = r.peerName();
    const flags = r.u8();
    set.push({ to, established: (flags & 1) !== 0, outbound: (flags & 2) !== 0 });
  }
  const removed: string[] = [];
  for (let i = r.varint(); i > 0; i--) removed.push(r.peerName());
  return { name, uid, base, version, shortId, set, removed };
}

export interface DigestEntry {
  name: string;
  uid: string;
  version: number;
}

/** A decoded post-handshake message. */
export type MeshMessage =
  | { type: typeof MESSAGE.topology; records: PeerRecord[]; deltas: RecordDelta[] }
  | { type: typeof MESSAGE.digest; replyWanted: boolean; entries: DigestEntry[] }
  | { type: typeof MESSAGE.request; names: string[] }
  | { type: typeof MESSAGE.channelGossip; channel: string; updates: Uint8Array[] }
  | { type: typeof MESSAGE.broadcast; channel: string; source: string; payload: Uint8Array }
  | { type: typeof MESSAGE.unicast; channel: string; source: string; dest: string; ttl: number; payload: Uint8Array };

export function encodeMessage(m: MeshMessage): Uint8Array {
  const w = new Writer().u8(m.type);
  switch (m.type) {
    case MESSAGE.topology:
      w.varint(m.records.length);
      for (const p of m.records) writeRecord(w, p);
      w.varint(m.deltas.length);
      for (const d of m.deltas) writeDelta(w, d);
      break;
    case MESSAGE.digest:
      w.u8(m.replyWanted ? 1 : 0).varint(m.entries.length);
      for (const e of m.entries) w.peerName(e.name).uid(e.uid).varint(e.version);
      break;
    case MESSAGE.request:
      w.varint(m.names.length);
      for (const n of m.names) w.peerName(n);
      break;
    case MESSAGE.channelGossip:
      w.string(m.channel).varint(m.updates.length);
      for (const u of m.updates) w.bytes(u);
      break;
    case MESSAGE.broadcast:
      w.string(m.channel).peerName(m.source).bytes(m.payload);
      break;
    case MESSAGE.unicast:
      w.string(m.channel).peerName(m.source).peerName(m.dest).u8(m.ttl).bytes(m.payload);
      break;
  }
  return w.finish();
}

export function decodeMessage(bytes: Uint8Array): MeshMessage {
  const r = new Reader(bytes, "mesh message");
  const type = r.u8();
  let out: MeshMessage;
  switch (type) {
    case MESSAGE.topology: {
      const records: PeerRecord[] = [];
      for (let i = r.varint(); i > 0; i--) records.push(readRecord(r));
      const deltas: RecordDelta[] = [];
      for (let i = r.varint(); i > 0; i--) deltas.push(readDelta(r));
      out = { type, records, deltas };
      break;
    }
    case MESSAGE.digest: {
      const replyWanted = r.u8() === 1;
      const n = r.varint();
      const entries: DigestEntry[] = [];
      for (let i = 0; i < n; i++) entries.push({ name: r.peerName(), uid: r.uid(), version: r.varint() });
      out = { type, replyWanted, entries };
      break;
    }
    case MESSAGE.request: {
      const n = r.varint();
      const names: string[] = [];
      for (let i = 0; i < n; i++) names.push(r.peerName());
      out = { type, names };
      break;
    }
    case MESSAGE.channelGossip: {
      const channel = r.string();
      const n = r.varint();
      const updates: Uint8Array[] = [];
      for (let i = 0; i < n; i++) updates.push(r.bytes());
      out = { type, channel, updates };
      break;
    }
    case MESSAGE.broadcast:
      out = { type, channel: r.string(), source: r.peerName(), payload: r.bytes() };
      break;
    case MESSAGE.unicast:
      out = { type, channel: r.string(), source: r.peerName(), dest: r.peerName(), ttl: r.u8(), payload: r.bytes() };
      break;
    default:
      throw new DecodeError(`[weave] unknown mesh message type ${type}`);
  }
  r.end();
  return out;
}

/** The encoded size of a topology message (for the size tests and the bench). */
export function topologyMessageSize(records: PeerRecord[], deltas: RecordDelta[] = []): number {
  return encodeMessage({ type: MESSAGE.topology, records, deltas }).length;
}

const HEARTBEAT_TAG = 0x48;

export function encodeHeartbeat(connUid: string, sender: string): Uint8Array {
  return new Writer().u8(HEARTBEAT_TAG).uid(connUid).peerName(sender).finish();
}

/** The heartbeat's connection id and sender, or undefined for anything else. */
export function decodeHeartbeat(bytes: Uint8Array): { connUid: string; sender: string } | undefined {
  if (bytes.length !== 15 || bytes[0] !== HEARTBEAT_TAG) return undefined;
  const r = new Reader(bytes, "heartbeat");
  r.u8();
  return { connUid: r.uid(), sender: r.peerName() };
}
