/**
 * The mesh's seam to src/crypto/session.ts: one ephemeral X25519 pair per connection, session keys
 * from the exchange and the password, a handshake proof (HMAC of the transcript) that tells a wrong
 * password apart, and sealing of every later control message (ChaCha20-Poly1305, sequence-number
 * nonces, replay window).
 */
import { Opener, Sealer, deriveSessionKeys, generateKeyPair, handshakeProof, proofMatches } from "../crypto/session.ts";
import type { SessionHandshake } from "./connection.ts";

/** A `SessionHandshake` for one connection of a mesh whose password is `password`. */
export function meshSession(password: string): SessionHandshake {
  const ours = generateKeyPair();
  return {
    publicKey: ours.publicKey,
    agree({ theirPublic, initiator, transcript }) {
      const keys = deriveSessionKeys({ password, ours, theirPublic, initiator });
      const sealer = new Sealer(keys.send);
      const opener = new Opener(keys.receive);
      const proof = handshakeProof(keys, transcript);
      return {
        proof: proof.mine,
        proofMatches: (received) => proofMatches(received, proof.theirs),
        seal: (plain) => sealer.seal(plain),
        open: (frame) => opener.open(frame),
      };
    },
  };
}
