import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DEFAULT_REPLAY_WINDOW, KEY_BYTES, Opener, SEAL_OVERHEAD, Sealer, deriveSessionKeys, generateKeyPair, handshakeProof, proofMatches } from "../src/crypto/session.ts";
import type { CryptoErrorCode, SessionKeys } from "../src/crypto/session.ts";

/** The `code` of the CryptoError thrown by `fn` (duck-typed by code and name). */
function codeOf(fn: () => unknown): CryptoErrorCode {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: unknown; name?: unknown };
    expect(e.name).toBe("CryptoError");
    return e.code as CryptoErrorCode;
  }
  throw new Error("expected a CryptoError");
}

/** Both ends of one connection: the initiator's and the responder's keys. */
function exchange(initiatorPassword: string, responderPassword = initiatorPassword): { a: SessionKeys; b: SessionKeys; transcript: Uint8Array } {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const a = deriveSessionKeys({ password: initiatorPassword, ours: ka, theirPublic: kb.publicKey, initiator: true });
  const b = deriveSessionKeys({ password: responderPassword, ours: kb, theirPublic: ka.publicKey, initiator: false });
  return { a, b, transcript: Buffer.concat([ka.publicKey, kb.publicKey, Buffer.from("peer-a|peer-b|v2")]) };
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("key exchange", () => {
  it("a key pair's public key is 32 raw bytes, fresh every time", () => {
    const x = generateKeyPair();
    const y = generateKeyPair();
    expect(x.publicKey).toHaveLength(KEY_BYTES);
    expect(Buffer.from(x.publicKey).equals(Buffer.from(y.publicKey))).toBe(false);
  });

  it("the two sides' keys agree: the initiator's send is the responder's receive and back", () => {
    const { a, b } = exchange("pw");
    expect(a.send).toHaveLength(KEY_BYTES);
    expect(Buffer.from(a.send).equals(Buffer.from(b.receive))).toBe(true);
    expect(Buffer.from(a.receive).equals(Buffer.from(b.send))).toBe(true);
    expect(Buffer.from(a.send).equals(Buffer.from(a.receive))).toBe(false);
  });

  it("two connections between the same peers get different keys (ephemeral pairs)", () => {
    expect(Buffer.from(exchange("pw").a.send).equals(Buffer.from(exchange("pw").a.send))).toBe(false);
  });

  it("a wrong password gives keys that do not open (DECRYPT_FAILED) and a different proof", () => {
    const { a, b, transcript } = exchange("right", "wrong");
    expect(Buffer.from(a.send).equals(Buffer.from(b.receive))).toBe(false);
    const frame = new Sealer(a.send).seal(text("hello"));
    expect(codeOf(() => new Opener(b.receive).open(frame))).toBe("DECRYPT_FAILED");
    expect(proofMatches(handshakeProof(a, transcript).mine, handshakeProof(b, transcript).theirs)).toBe(false);
    expect(proofMatches(handshakeProof(b, transcript).mine, handshakeProof(a, transcript).theirs)).toBe(false);
  });

  it("the proofs match with the same password and the same transcript, and differ per direction", () => {
    const { a, b, transcript } = exchange("pw");
    const pa = handshakeProof(a, transcript);
    const pb = handshakeProof(b, transcript);
    expect(proofMatches(pa.mine, pb.theirs)).toBe(true);
    expect(proofMatches(pb.mine, pa.theirs)).toBe(true);
    expect(proofMatches(pa.mine, pb.mine)).toBe(false);
    const other = Uint8Array.from(transcript);
    other[0] = other[0]! ^ 1;
    expect(proofMatches(handshakeProof(b, other).theirs, pa.mine)).toBe(false);
  });

  it("two sides that both believe they initiated cannot talk", () => {
    const ka = generateKeyPair();
    const kb = generateKeyPair();
    const a = deriveSessionKeys({ password: "pw", ours: ka, theirPublic: kb.publicKey, initiator: true });
    const b = deriveSessionKeys({ password: "pw", ours: kb, theirPublic: ka.publicKey, initiator: true });
    expect(codeOf(() => new Opener(b.receive).open(new Sealer(a.send).seal(text("x"))))).toBe("DECRYPT_FAILED");
  });

  it.each([
    ["31 bytes", new Uint8Array(31)],
    ["the all-zero point (low order)", new Uint8Array(32)],
    ["the point of order 1 (u = 1)", Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))],
  ])("a peer key of %s is refused (BAD_KEY)", (_label, theirPublic) => {
    expect(codeOf(() => deriveSessionKeys({ password: "pw", ours: generateKeyPair(), theirPublic, initiator: true }))).toBe("BAD_KEY");
  });

  it("session keys must be 32 bytes", () => {
    expect(codeOf(() => new Sealer(new Uint8Array(16)))).toBe("BAD_KEY");
    expect(codeOf(() => new Opener(new Uint8Array(33)))).toBe("BAD_KEY");
  });
});

describe("sealing and opening", () => {
  it("a round trip, with and without aad, in both directions", () => {
    const { a, b } = exchange("pw");
    const plain = randomBytes(1400);
    const frame = new Sealer(a.send).seal(plain);
    expect(frame).toHaveLength(plain.length + SEAL_OVERHEAD);
    expect(Buffer.from(frame).includes(plain.subarray(0, 32))).toBe(false);
    expect(Buffer.from(new Opener(b.receive).open(frame)).equals(plain)).toBe(true);

    const aad = text("src=aa:bb:cc:dd:ee:01 dst=aa:bb:cc:dd:ee:02");
    const back = new Sealer(b.send).seal(text("reply"), aad);
    expect(new TextDecoder().decode(new Opener(a.receive).open(back, aad))).toBe("reply");
    expect(new Opener(a.receive).open(new Sealer(b.send).seal(new Uint8Array(0)))).toHaveLength(0);
  });

  it("the frame starts with the big-endian sequence number, 0, 1, 2, …", () => {
    const sealer = new Sealer(exchange("pw").a.send);
    for (let i = 0n; i < 3n; i++) expect(Buffer.from(sealer.seal(text("x"))).readBigUInt64BE(0)).toBe(i);
  });

  it("a frame sealed for one direction does not open in the other (reflection)", () => {
    const { a } = exchange("pw");
    expect(codeOf(() => new Opener(a.receive).open(new Sealer(a.send).seal(text("x"))))).toBe("DECRYPT_FAILED");
  });

  it("tampering any one byte (sequence number, ciphertext, tag) fails", () => {
    const { a, b } = exchange("pw");
    const frame = new Sealer(a.send).seal(text("pod payload"));
    for (let i = 0; i < frame.length; i++) {
      const bad = Uint8Array.from(frame);
      bad[i] = bad[i]! ^ 0x40;
      // A fresh opener per attempt: the tampered sequence number must not be mistaken for a replay.
      expect(
        codeOf(() => new Opener(b.receive).open(bad)),
        `byte ${i}`,
      ).toBe("DECRYPT_FAILED");
    }
  });

  it("a different aad fails, and a missing one", () => {
    const { a, b } = exchange("pw");
    const frame = new Sealer(a.send).seal(text("x"), text("aad-1"));
    expect(codeOf(() => new Opener(b.receive).open(frame, text("aad-2")))).toBe("DECRYPT_FAILED");
    expect(codeOf(() => new Opener(b.receive).open(frame))).toBe("DECRYPT_FAILED");
  });

  it.each([0, 1, 23])("a frame of %i bytes is TOO_SHORT", (n) => {
    expect(codeOf(() => new Opener(exchange("pw").b.receive).open(new Uint8Array(n)))).toBe("TOO_SHORT");
  });

  it("a failed frame does not mark its sequence number: the genuine frame still opens", () => {
    const { a, b } = exchange("pw");
    const frame = new Sealer(a.send).seal(text("x"));
    const opener = new Opener(b.receive);
    const forged = Uint8Array.from(frame);
    forged[frame.length - 1] = forged[frame.length - 1]! ^ 1;
    expect(codeOf(() => opener.open(forged))).toBe("DECRYPT_FAILED");
    expect(new TextDecoder().decode(opener.open(frame))).toBe("x");
  });
});

describe("replay window", () => {
  function stream(n: number, windowSize?: number): { frames: Uint8Array[]; opener: Opener } {
    const { a, b } = exchange("pw");
    const sealer = new Sealer(a.send);
    const frames = Array.from({ length: n }, (_, i) => sealer.seal(text(`frame ${i}`)));
    return { frames, opener: windowSize === undefined ? new Opener(b.receive) : new Opener(b.receive, windowSize) };
  }

  it("the default window is 2^20, as Weave's sleeve", () => {
    expect(DEFAULT_REPLAY_WINDOW).toBe(2 ** 20);
  });

  it("a replay of the last or of an old frame fails", () => {
    const { frames, opener } = stream(5);
    for (const f of frames) opener.open(f);
    expect(codeOf(() => opener.open(frames[4]!))).toBe("REPLAY");
    expect(codeOf(() => opener.open(frames[0]!))).toBe("REPLAY");
  });

  it("out of order within the window is accepted once", () => {
    const { frames, opener } = stream(10);
    const order = [9, 3, 0, 7, 1, 8, 2, 6, 4, 5];
    for (const i of order) expect(new TextDecoder().decode(opener.open(frames[i]!))).toBe(`frame ${i}`);
    for (const i of order) expect(codeOf(() => opener.open(frames[i]!))).toBe("REPLAY");
    expect(opener.highest).toBe(9n);
  });

  it("a frame older than the window fails even if never seen; the oldest inside still opens", () => {
    const { frames, opener } = stream(100, 32);
    opener.open(frames[99]!);
    expect(codeOf(() => opener.open(frames[67]!))).toBe("REPLAY");
    expect(codeOf(() => opener.open(frames[0]!))).toBe("REPLAY");
    opener.open(frames[68]!);
    opener.open(frames[98]!);
  });

  it("a jump ahead by more than the window clears it: in-window numbers open, older fail", () => {
    const { frames, opener } = stream(200, 64);
    for (let i = 0; i < 10; i++) opener.open(frames[i]!);
    opener.open(frames[199]!);
    expect(codeOf(() => opener.open(frames[5]!))).toBe("REPLAY");
    opener.open(frames[150]!);
    expect(codeOf(() => opener.open(frames[150]!))).toBe("REPLAY");
  });

  it("agrees with a set model over a long shuffled stream with duplicates, across bitmap growth", () => {
    const window = 4096;
    const n = 20_000;
    const { frames, opener } = stream(n, window);
    // Deterministic shuffle-ish order: mostly ascending with local reordering, lost frames and duplicates.
    let seed = 42;
    const rand = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const order: number[] = [];
    for (let i = 0; i < n; i++) {
      if (rand() < 0.05) continue;
      order.push(Math.min(n - 1, Math.max(0, i + Math.floor((rand() - 0.5) * 600))));
      if (rand() < 0.05 && order.length > 10) order.push(order[order.length - 1 - Math.floor(rand() * 10)]!);
      if (rand() < 0.01 && i > 6000) order.push(i - 4000 - Math.floor(rand() * 2000)); // straddles the window's edge
    }
    const seen = new Set<number>();
    let highest = -1;
    let accepted = 0;
    let seenAgain = 0;
    let tooOld = 0;
    for (const i of order) {
      const expectOk = !seen.has(i) && (i > highest || highest - i < window);
      if (seen.has(i)) seenAgain++;
      else if (!expectOk) tooOld++;
      if (expectOk) {
        opener.open(frames[i]!);
        seen.add(i);
        highest = Math.max(highest, i);
        accepted++;
      } else {
        expect(
          codeOf(() => opener.open(frames[i]!)),
          `frame ${i} (highest ${highest})`,
        ).toBe("REPLAY");
      }
    }
    // Every path was taken many times: fresh frames, replays inside the window, frames behind it.
    expect(accepted).toBeGreaterThan(n / 2);
    expect(seenAgain).toBeGreaterThan(100);
    expect(tooOld).toBeGreaterThan(20);
    expect(opener.windowBytes).toBe(window / 8);
  });

  it("memory follows use: an idle opener holds 128 bytes, never more than window/8", () => {
    const { frames, opener } = stream(3000);
    expect(opener.windowBytes).toBe(128);
    for (const f of frames) opener.open(f);
    expect(opener.windowBytes).toBe(4096 / 8);
    expect(codeOf(() => opener.open(frames[0]!))).toBe("REPLAY");
    expect(codeOf(() => opener.open(frames[2999]!))).toBe("REPLAY");
  });

  it.each([0, 31, 48, 100])("a window of %i is refused", (size) => {
    expect(() => new Opener(new Uint8Array(32), size)).toThrow(/power of two/);
  });
});

describe("sequence exhaustion", () => {
  it("a sealer never repeats a sequence number: it throws before wrapping", () => {
    const { a, b } = exchange("pw");
    const sealer = new Sealer(a.send, { firstSeq: 2n ** 64n - 2n });
    const opener = new Opener(b.receive);
    expect(sealer.remaining).toBe(2n);
    opener.open(sealer.seal(text("second to last")));
    const last = sealer.seal(text("last"));
    expect(Buffer.from(last).readBigUInt64BE(0)).toBe(2n ** 64n - 1n);
    opener.open(last);
    expect(sealer.remaining).toBe(0n);
    expect(codeOf(() => sealer.seal(text("one too many")))).toBe("EXHAUSTED");
    expect(codeOf(() => sealer.seal(text("still")))).toBe("EXHAUSTED");
  });

  it("firstSeq outside 64 bits is refused", () => {
    expect(() => new Sealer(new Uint8Array(32), { firstSeq: -1n })).toThrow(RangeError);
    expect(() => new Sealer(new Uint8Array(32), { firstSeq: 2n ** 64n })).toThrow(RangeError);
  });
});
