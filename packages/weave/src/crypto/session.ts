/**
 * Session crypto for the mesh's connections and the sleeve: per-connection keys from an ephemeral
 * X25519 exchange mixed with the shared password, and an AEAD with sequence-number nonces and a
 * replay window — all from `node:crypto`, no dependencies.
 *
 * Weave's construction (weaveworks/weave docs/fastdp-crypto.md, weaveworks/mesh protocol_crypto.go): a fresh Curve25519 key pair
 * per side and connection, session key = SHA-256(DH secret ‖ password), NaCl secretbox with a nonce
 * made of the sequence number and a direction bit, the sleeve's sequence number sent in clear and a
 * replay window ≥ 2^20. Ours, the same shape with standard parts:
 *
 *  - `generateKeyPair()`: a fresh X25519 pair; the public key travels as its 32 raw bytes.
 *  - `deriveSessionKeys()`: HKDF-SHA256(ikm = X25519(ours, theirs), salt = SHA-256(password),
 *    info = "cnikit-weave v1" ‖ initiator's public key ‖ responder's public key) → 64 bytes: the
 *    first 32 encrypt initiator → responder, the last 32 responder → initiator. The direction lives
 *    in the key, so a frame reflected back at its sender does not open; the password never travels
 *    and a wrong one yields unrelated keys. Both sides must agree who initiated (the one that
 *    dialled): two initiators derive keys that never open each other's frames.
 *  - `Sealer.seal(plain, aad?)` → seq(8, big-endian) ‖ ciphertext ‖ tag(16), ChaCha20-Poly1305 with
 *    nonce = 4 zero bytes ‖ seq(8, big-endian); seq starts at 0 and never repeats: the sealer throws
 *    `CryptoError` "EXHAUSTED" instead of wrapping (rekey by reconnecting).
 *  - `Opener.open(frame, aad?)` → the plaintext, or `CryptoError` "TOO_SHORT" (shorter than seq +
 *    tag), "REPLAY" (seen already, or older than the window) or "DECRYPT_FAILED" (wrong key,
 *    tampered bytes or aad). The window is a ring bitmap of `windowSize` bits (default 2^20, as
 *    Weave's sleeve) that starts at 1024 bits and doubles only as far as the sequence numbers seen
 *    need, so an idle connection costs 128 bytes, a busy one at most windowSize/8 bytes (128 KiB).
 *    A frame is marked seen only after its tag verified, so forged frames cannot poison the window;
 *    out-of-order frames inside the window open exactly once.
 *  - `handshakeProof(keys, transcript)` → `{mine, theirs}`: HMAC-SHA256 of the handshake transcript
 *    under a proof key derived (HKDF) from each direction's session key. A side sends `mine` and
 *    compares what it receives with `theirs` (`proofMatches`, constant time): equal exactly when both
 *    derived the same keys, so a mismatch right after the exchange means "wrong password" (or a
 *    tampered key exchange) rather than a corrupted frame later.
 *
 * All failures are `CryptoError` with a string `code` ("BAD_KEY" for a malformed or low-order key
 * too); callers test `code`, never `instanceof`.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, timingSafeEqual } from "node:crypto";
import type { KeyObject } from "node:crypto";

/** An ephemeral X25519 key pair. */
export interface KeyPair {
  /** The 32 raw bytes sent to the peer. */
  publicKey: Uint8Array;
  privateKey: KeyObject;
}

/** One connection's keys: `send` seals what this side sends, `receive` opens what it receives. */
export interface SessionKeys {
  send: Uint8Array;
  receive: Uint8Array;
}

export type CryptoErrorCode = "DECRYPT_FAILED" | "REPLAY" | "TOO_SHORT" | "BAD_KEY" | "EXHAUSTED";

/** A frame that does not open, a replay, a bad key or an exhausted sequence. Test `code`. */
export class CryptoError extends Error {
  readonly code: CryptoErrorCode;
  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown }) {
    super(`[weave] ${message}`, options);
    this.name = "CryptoError";
    this.code = code;
  }
}

/** Bytes of X25519 public keys, session keys and the sequence number prefix. */
export const KEY_BYTES = 32;
export const SEQ_BYTES = 8;
export const TAG_BYTES = 16;
/** Bytes a sealed frame adds to its plaintext (seq + tag). */
export const SEAL_OVERHEAD = SEQ_BYTES + TAG_BYTES;
/** Default replay window in sequence numbers (Weave's sleeve: ≥ 2^20). */
export const DEFAULT_REPLAY_WINDOW = 1 << 20;
const LABEL = "cnikit-weave v1";
const MAX_SEQ = (1n << 64n) - 1n;

/** A fresh X25519 pair for one connection. */
export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync("x25519");
  const x = publicKey.export({ format: "jwk" }).x;
  if (x === undefined) throw new CryptoError("BAD_KEY", "X25519 public key without its raw bytes");
  return { publicKey: new Uint8Array(Buffer.from(x, "base64url")), privateKey };
}

/**
 * This side's send and receive keys for one connection.
 * @param o.password the shared secret (WEAVE_PASSWORD); never sent
 * @param o.ours this side's ephemeral pair for this connection
 * @param o.theirPublic the peer's 32-byte public key from the handshake
 * @param o.initiator true on the side that dialled; the two sides must disagree
 * @throws CryptoError "BAD_KEY" when `theirPublic` is not 32 bytes or is a low-order point
 */
export function deriveSessionKeys(o: { password: string; ours: KeyPair; theirPublic: Uint8Array; initiator: boolean }): SessionKeys {
  if (o.theirPublic.length !== KEY_BYTES) throw new CryptoError("BAD_KEY", `peer public key must be ${KEY_BYTES} bytes, got ${o.theirPublic.length}`);
  let shared: Buffer;
  try {
    const theirs = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: Buffer.from(o.theirPublic).toString("base64url") }, format: "jwk" });
    shared = diffieHellman({ privateKey: o.ours.privateKey, publicKey: theirs });
  } catch (err) {
    throw new CryptoError("BAD_KEY", `X25519 exchange failed (a low-order or malformed peer key): ${(err as Error).message}`, { cause: err });
  }
  if (shared.every((b) => b === 0)) throw new CryptoError("BAD_KEY", "X25519 exchange gave the all-zero secret (low-order peer key)");
  const salt = createHash("sha256").update(o.password, "utf8").digest();
  const [first, second] = o.initiator ? [o.ours.publicKey, o.theirPublic] : [o.theirPublic, o.ours.publicKey];
  const info = Buffer.concat([Buffer.from(LABEL, "utf8"), first, second]);
  const okm = new Uint8Array(hkdfSync("sha256", shared, salt, info, 2 * KEY_BYTES));
  const toResponder = okm.slice(0, KEY_BYTES);
  const toInitiator = okm.slice(KEY_BYTES);
  return o.initiator ? { send: toResponder, receive: toInitiator } : { send: toInitiator, receive: toResponder };
}

/**
 * Both proofs of a finished exchange: `mine` to send, `theirs` to expect from the peer.
 * @param keys this side's session keys
 * @param transcript what both sides saw in the handshake, in the same order on both (both public
 *   keys, peer names, UIDs, protocol version): binds the proof to this exchange
 */
export function handshakeProof(keys: SessionKeys, transcript: Uint8Array): { mine: Uint8Array; theirs: Uint8Array } {
  const proof = (key: Uint8Array): Uint8Array => {
    const proofKey = Buffer.from(hkdfSync("sha256", key, new Uint8Array(0), `${LABEL} proof`, KEY_BYTES));
    return new Uint8Array(createHmac("sha256", proofKey).update(transcript).digest());
  };
  return { mine: proof(keys.send), theirs: proof(keys.receive) };
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(received: Uint8Array, expected: Uint8Array): boolean {
  return received.length === expected.length && timingSafeEqual(received, expected);
}

function checkKey(key: Uint8Array): Buffer {
  if (key.length !== KEY_BYTES) throw new CryptoError("BAD_KEY", `session key must be ${KEY_BYTES} bytes, got ${key.length}`);
  return Buffer.from(key);
}

function nonceOf(seq: Uint8Array): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.set(seq, 4);
  return nonce;
}

/** Seals frames in one direction of one connection. */
export class Sealer {
  private readonly key: Buffer;
  private next: bigint;

  /**
   * @param key the direction's 32-byte key (`SessionKeys.send`)
   * @param options.firstSeq the first sequence number to use (default 0); for resuming a direction
   */
  constructor(key: Uint8Array, options: { firstSeq?: bigint } = {}) {
    this.key = checkKey(key);
    const first = options.firstSeq ?? 0n;
    if (first < 0n || first > MAX_SEQ) throw new RangeError(`firstSeq ${first} outside 0..2^64-1`);
    this.next = first;
  }

  /** Sequence numbers this sealer can still use before it must be replaced. */
  get remaining(): bigint {
    return MAX_SEQ + 1n - this.next;
  }

  /**
   * seq(8) ‖ ciphertext ‖ tag(16) of `plain`, authenticated together with `aad` (not included).
   * @throws CryptoError "EXHAUSTED" once every 64-bit sequence number was used (never wraps)
   */
  seal(plain: Uint8Array, aad?: Uint8Array): Uint8Array {
    if (this.next > MAX_SEQ) throw new CryptoError("EXHAUSTED", "sequence numbers exhausted: reconnect to rekey");
    const out = Buffer.allocUnsafe(SEQ_BYTES + plain.length + TAG_BYTES);
    out.writeBigUInt64BE(this.next, 0);
    const cipher = createCipheriv("chacha20-poly1305", this.key, nonceOf(out.subarray(0, SEQ_BYTES)), { authTagLength: TAG_BYTES });
    if (aad !== undefined) cipher.setAAD(aad, { plaintextLength: plain.length });
    const body = cipher.update(plain);
    cipher.final();
    out.set(body, SEQ_BYTES);
    out.set(cipher.getAuthTag(), SEQ_BYTES + plain.length);
    this.next++;
    return out;
  }
}

/** Opens frames of one direction of one connection, refusing replays. */
export class Opener {
  private readonly key: Buffer;
  private readonly window: ReplayWindow;

  /**
   * @param key the direction's 32-byte key (`SessionKeys.receive`)
   * @param windowSize sequence numbers behind the highest seen that are still accepted once
   *   (a power of two ≥ 32; default 2^20)
   */
  constructor(key: Uint8Array, windowSize: number = DEFAULT_REPLAY_WINDOW) {
    this.key = checkKey(key);
    this.window = new ReplayWindow(windowSize);
  }

  /** Highest sequence number opened so far (-1 before the first). */
  get highest(): bigint {
    return this.window.highest;
  }

  /** Bytes the replay bitmap holds now (grows with the sequence numbers seen, up to windowSize/8). */
  get windowBytes(): number {
    return this.window.bytes;
  }

  /**
   * The plaintext of a frame made by `Sealer.seal` with the same key and `aad`.
   * @throws CryptoError "TOO_SHORT" | "REPLAY" | "DECRYPT_FAILED"
   */
  open(frame: Uint8Array, aad?: Uint8Array): Uint8Array {
    if (frame.length < SEAL_OVERHEAD) throw new CryptoError("TOO_SHORT", `frame of ${frame.length} bytes is shorter than sequence number + tag (${SEAL_OVERHEAD})`);
    const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
    const seq = buf.readBigUInt64BE(0);
    const verdict = this.window.check(seq);
    if (verdict !== "new") {
      throw new CryptoError(
        "REPLAY",
        verdict === "seen" ? `frame ${seq} was already received` : `frame ${seq} is older than the replay window (highest ${this.window.highest}, window ${this.window.size})`,
      );
    }
    const bodyEnd = frame.length - TAG_BYTES;
    const decipher = createDecipheriv("chacha20-poly1305", this.key, nonceOf(buf.subarray(0, SEQ_BYTES)), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(buf.subarray(bodyEnd));
    if (aad !== undefined) decipher.setAAD(aad, { plaintextLength: bodyEnd - SEQ_BYTES });
    const plain = decipher.update(buf.subarray(SEQ_BYTES, bodyEnd));
    try {
      decipher.final();
    } catch (err) {
      throw new CryptoError("DECRYPT_FAILED", `frame ${seq} failed authentication (wrong key or password, or tampered bytes)`, { cause: err });
    }
    this.window.mark(seq);
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.length);
  }
}

/**
 * Sliding anti-replay window over 64-bit sequence numbers (RFC 4303 §3.4.3 / RFC 6479 style): a ring
 * bitmap indexed by seq mod capacity, covering [highest − size + 1, highest]. The capacity starts at
 * 1024 bits and doubles, up to `size`, when the numbers seen need more room, so memory follows use.
 */
class ReplayWindow {
  readonly size: number;
  highest = -1n;
  private capacity = 0;
  private bits = new Uint32Array(0);

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 32 || (size & (size - 1)) !== 0 || size > 2 ** 30) {
      throw new RangeError(`replay window ${size} must be a power of two from 32 to 2^30`);
    }
    this.size = size;
    this.resize(Math.min(size, 1024));
  }

  get bytes(): number {
    return this.bits.byteLength;
  }

  /** "new" (may open), "seen" (a replay) or "old" (behind the window). */
  check(seq: bigint): "new" | "seen" | "old" {
    if (seq > this.highest) return "new";
    const behind = this.highest - seq;
    if (behind >= BigInt(this.size)) return "old";
    // The capacity covers min(size, highest + 1) numbers, so every number in the window has its bit.
    return this.get(seq) ? "seen" : "new";
  }

  /** Records `seq` as received (after it authenticated). */
  mark(seq: bigint): void {
    if (seq > this.highest) {
      this.grow(seq);
      const ahead = this.highest < 0n ? BigInt(this.capacity) : seq - this.highest;
      if (ahead >= BigInt(this.capacity)) this.bits.fill(0);
      else for (let s = this.highest + 1n; s <= seq; s++) this.set(s, false);
      this.highest = seq;
    }
    this.set(seq, true);
  }

  /** Doubles the capacity (keeping the bits of [highest − capacity + 1, highest]) until it covers 0..top or the whole window. */
  private grow(top: bigint): void {
    let want = this.capacity;
    while (want < this.size && BigInt(want) <= top) want *= 2;
    if (want === this.capacity) return;
    const old = this.bits;
    const oldCap = this.capacity;
    const from = this.highest - BigInt(oldCap) + 1n;
    this.resize(want);
    for (let s = from < 0n ? 0n : from; s <= this.highest; s++) {
      const i = Number(s % BigInt(oldCap));
      if ((old[i >>> 5]! >>> (i & 31)) & 1) this.set(s, true);
    }
  }

  private resize(capacity: number): void {
    this.capacity = capacity;
    this.bits = new Uint32Array(capacity / 32);
  }

  private get(seq: bigint): boolean {
    const i = Number(seq % BigInt(this.capacity));
    return ((this.bits[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  private set(seq: bigint, on: boolean): void {
    const i = Number(seq % BigInt(this.capacity));
    const w = i >>> 5;
    if (on) this.bits[w] = this.bits[w]! | (1 << (i & 31));
    else this.bits[w] = this.bits[w]! & ~(1 << (i & 31));
  }
}
