/**
 * The sleeve's own key exchange, for a relay that has no mesh connection to take keys from (the
 * userspace datapath on a kernel node: peers are only addresses from FDB entries). Small UDP
 * messages on the sleeve's socket (a packet with the control flag, `packet.ts`), one state per peer:
 *
 *   body (98 bytes):  type 1 | flags (bit 0: "I verified your proof") | my X25519 public key (32)
 *                     | your public key as I know it (32, zeros: none yet) | my proof (32, zeros: none)
 *
 *  - Keys: `deriveSessionKeys` (src/crypto/session.ts) over a fresh X25519 pair per peer and relay
 *    life, mixed with the password; the initiator is the peer whose name sorts first (both ends
 *    agree without a dialler). Proof: `handshakeProof(keys, transcript)`, transcript = both public
 *    keys and both names in initiator order, so a proof only matches when both sides derived the
 *    same keys — i.e. they share the password.
 *  - A side sends its message to every peer without a session (on `setPeers` and then every
 *    `intervalMs`); it answers a message whose sender does not know its current key or has not
 *    verified it yet, and only then, so an exchange ends after at most three messages.
 *  - A session is established (`receive` returns it) once the peer's proof matched ours; a proof
 *    that does not match refuses the peer ("wrong password") until it shows a new key.
 *  - A new public key from a peer (it restarted) starts a new exchange; the old session is dropped,
 *    so frames wait for the new keys instead of failing to open on the other side.
 *
 * Limits, stated: the messages are not protected against replay (a replayed old message makes a
 * side re-key, costing a round trip of traffic, never a key), and there is no identity beyond the
 * password — as in Weave, whoever knows the password is a peer.
 */
import { CryptoError, deriveSessionKeys, generateKeyPair, handshakeProof, KEY_BYTES, proofMatches, type KeyPair, type SessionKeys } from "../crypto/session.ts";
import { SleevePacketError } from "./packet.ts";

/** Bytes of a handshake message. */
export const HANDSHAKE_BYTES = 2 + 3 * KEY_BYTES;
const TYPE_HELLO = 1;
const FLAG_VERIFIED = 0x01;
const ZERO = new Uint8Array(KEY_BYTES);

/** A decoded handshake message. */
export interface HandshakeMessage {
  /** The sender verified our proof (it holds a session with us). */
  verified: boolean;
  /** The sender's public key. */
  publicKey: Uint8Array;
  /** Our public key as the sender knows it (undefined: none yet). */
  yourKey: Uint8Array | undefined;
  /** The sender's proof (undefined: it has not derived keys yet). */
  proof: Uint8Array | undefined;
}

export function encodeHandshake(m: HandshakeMessage): Uint8Array {
  const out = new Uint8Array(HANDSHAKE_BYTES);
  out[0] = TYPE_HELLO;
  out[1] = m.verified ? FLAG_VERIFIED : 0;
  out.set(m.publicKey, 2);
  if (m.yourKey) out.set(m.yourKey, 2 + KEY_BYTES);
  if (m.proof) out.set(m.proof, 2 + 2 * KEY_BYTES);
  return out;
}

/** @throws SleevePacketError for a message of the wrong size, type or flags. */
export function decodeHandshake(body: Uint8Array): HandshakeMessage {
  if (body.length !== HANDSHAKE_BYTES) throw new SleevePacketError(`handshake of ${body.length} bytes (expected ${HANDSHAKE_BYTES})`);
  if (body[0] !== TYPE_HELLO) throw new SleevePacketError(`handshake type ${body[0]} is not ${TYPE_HELLO}`);
  if ((body[1]! & ~FLAG_VERIFIED) !== 0) throw new SleevePacketError(`unknown handshake flags 0x${body[1]!.toString(16)}`);
  const field = (i: number): Uint8Array | undefined => {
    const v = body.slice(2 + i * KEY_BYTES, 2 + (i + 1) * KEY_BYTES);
    return equal(v, ZERO) ? undefined : v;
  };
  const publicKey = field(0);
  if (!publicKey) throw new SleevePacketError("handshake without the sender's public key");
  return { verified: (body[1]! & FLAG_VERIFIED) !== 0, publicKey, yourKey: field(1), proof: field(2) };
}

/** What `receive` decided. */
export interface HandshakeOutcome {
  /** Keys of a session established by this message (install them: the peer has the same). */
  established?: SessionKeys;
  /** The peer showed a new key while a session was up (it restarted): drop the old session now. */
  rekey?: boolean;
  /** A message to send back to the peer. */
  reply?: Uint8Array;
  /** Why the peer is refused (its proof did not match, or its key is unusable). */
  refused?: string;
}

interface PeerState {
  ours: KeyPair;
  theirs: Uint8Array | undefined;
  keys: SessionKeys | undefined;
  proof: { mine: Uint8Array; theirs: Uint8Array } | undefined;
  established: boolean;
  refused: string | undefined;
}

/** The key exchanges of one relay with each of its peers. */
export class SleeveKeyExchange {
  private readonly self: string;
  private readonly password: string;
  private readonly peers = new Map<string, PeerState>();
  /** Sessions established (first ones and re-keys), re-keys, refusals. */
  readonly counters = { established: 0, rekeys: 0, refusals: 0 };

  constructor(options: { self: string; password: string }) {
    this.self = options.self;
    this.password = options.password;
  }

  private state(peer: string): PeerState {
    let s = this.peers.get(peer);
    if (!s) {
      s = { ours: generateKeyPair(), theirs: undefined, keys: undefined, proof: undefined, established: false, refused: undefined };
      this.peers.set(peer, s);
    }
    return s;
  }

  /** Whether a session with `peer` is up. */
  established(peer: string): boolean {
    return this.peers.get(peer)?.established === true;
  }

  /** Why `peer` is refused, if it is. */
  refusal(peer: string): string | undefined {
    return this.peers.get(peer)?.refused;
  }

  /** The message to send to `peer` now (our key, theirs as we know it, our proof when we have keys). */
  hello(peer: string): Uint8Array {
    const s = this.state(peer);
    return encodeHandshake({ verified: s.established, publicKey: s.ours.publicKey, yourKey: s.theirs, proof: s.proof?.mine });
  }

  /** Forgets `peer` (it left the peer table). */
  forget(peer: string): void {
    this.peers.delete(peer);
  }

  /**
   * Handles a message from `peer` (already decoded).
   */
  receive(peer: string, m: HandshakeMessage): HandshakeOutcome {
    const s = this.state(peer);
    const out: HandshakeOutcome = {};
    if (!s.theirs || !equal(s.theirs, m.publicKey)) {
      if (s.established) {
        out.rekey = true;
        this.counters.rekeys++;
      }
      s.theirs = m.publicKey;
      s.established = false;
      s.refused = undefined;
      s.keys = undefined;
      s.proof = undefined;
      const initiator = this.self < peer;
      try {
        s.keys = deriveSessionKeys({ password: this.password, ours: s.ours, theirPublic: m.publicKey, initiator });
      } catch (err) {
        const code = (err as CryptoError).code;
        s.refused = `its public key is unusable (${code ?? "error"}: ${(err as Error).message})`;
        this.counters.refusals++;
        out.refused = s.refused;
        return out;
      }
      const [first, second] = initiator ? [s.ours.publicKey, m.publicKey] : [m.publicKey, s.ours.publicKey];
      const names = Buffer.from(initiator ? `${this.self}\n${peer}` : `${peer}\n${this.self}`, "utf8");
      s.proof = handshakeProof(s.keys, Buffer.concat([first, second, names]));
    }
    if (s.refused !== undefined) {
      out.refused = s.refused;
      return out;
    }
    const knowsUs = m.yourKey !== undefined && equal(m.yourKey, s.ours.publicKey);
    if (knowsUs && m.proof !== undefined && !s.established) {
      if (!proofMatches(m.proof, s.proof!.theirs)) {
        s.refused = "its handshake proof does not match ours: wrong password (or a tampered exchange)";
        this.counters.refusals++;
        out.refused = s.refused;
        return out;
      }
      s.established = true;
      this.counters.established++;
      out.established = s.keys!;
    }
    if (!knowsUs || !m.verified) out.reply = this.hello(peer);
    return out;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
