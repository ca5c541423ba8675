/**
 * Test fixtures of the sleeve: Ethernet frames, a `FrameDevice` in memory, and a `SleeveSession`
 * for the relay's tests and the kernel test — a real AEAD (ChaCha20-Poly1305 from node:crypto,
 * sequence-number nonces, strictly increasing sequence numbers accepted) standing in for
 * src/crypto/session.ts's Sealer/Opener, which the relay only sees through `{seal, open}`.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import type { SleeveSession } from "../src/sleeve/relay.ts";
import type { FrameDevice } from "../src/sleeve/tap.ts";

/** An Ethernet frame from `src` to `dst` (MACs as "aa:bb:…") carrying `payload` (EtherType 0x88b5, local experimental). */
export function frame(dst: string, src: string, payload: string | Uint8Array): Uint8Array {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  const out = Buffer.alloc(14 + body.length);
  Buffer.from(dst.replaceAll(":", ""), "hex").copy(out, 0);
  Buffer.from(src.replaceAll(":", ""), "hex").copy(out, 6);
  out.writeUInt16BE(0x88b5, 12);
  out.set(body, 14);
  return out;
}

/** A `FrameDevice` in memory: `emit` plays the bridge sending out of the port, `received` what the relay wrote to it. */
export class MemoryDevice implements FrameDevice {
  readonly received: Uint8Array[] = [];
  private onFrames: ((frames: Uint8Array[]) => void) | undefined;
  stopped = false;
  accept = true;
  private waiters: (() => void)[] = [];

  constructor(readonly ifname: string) {}

  start(onFrames: (frames: Uint8Array[]) => void): Promise<void> {
    this.onFrames = onFrames;
    return Promise.resolve();
  }

  send(frames: readonly Uint8Array[]): boolean {
    if (!this.accept) return false;
    for (const f of frames) this.received.push(Uint8Array.from(f));
    for (const w of this.waiters.splice(0)) w();
    return true;
  }

  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  emit(...frames: Uint8Array[]): void {
    this.onFrames!(frames);
  }

  /** Resolves once `n` frames were received in all (rejects after `ms` of wall time: UDP on loopback). */
  async until(n: number, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.received.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.ifname}: ${this.received.length} frame(s) received, waited for ${n}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

const SEQ_BYTES = 8;
const TAG_BYTES = 16;

/** Bytes `aeadSession` adds to a body: the sequence number and the tag. */
export const AEAD_OVERHEAD = SEQ_BYTES + TAG_BYTES;

/**
 * A ChaCha20-Poly1305 session over two 32-byte keys (`send` seals, `receive` opens): the nonce is
 * the 8-byte sequence number (sent in the clear before the ciphertext) padded to 12 bytes; `open`
 * throws on a bad tag, a wrong key, changed additional data, or a sequence number not above the
 * highest seen (replay).
 */
export function aeadSession(keys: { send: Uint8Array; receive: Uint8Array }): SleeveSession {
  let sent = 0n;
  let highest = 0n;
  const nonce = (seq: bigint): Buffer => {
    const n = Buffer.alloc(12);
    n.writeBigUInt64BE(seq, 4);
    return n;
  };
  return {
    seal(plain, aad) {
      sent++;
      const c = createCipheriv("chacha20-poly1305", keys.send, nonce(sent), { authTagLength: TAG_BYTES });
      if (aad) c.setAAD(aad, { plaintextLength: plain.length });
      const seq = Buffer.alloc(SEQ_BYTES);
      seq.writeBigUInt64BE(sent);
      return Buffer.concat([seq, c.update(plain), c.final(), c.getAuthTag()]);
    },
    open(sealed, aad) {
      if (sealed.length < AEAD_OVERHEAD) throw new Error("sealed body too short");
      const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
      const seq = buf.readBigUInt64BE(0);
      if (seq <= highest) throw new Error(`replayed sequence number ${seq}`);
      const d = createDecipheriv("chacha20-poly1305", keys.receive, nonce(seq), { authTagLength: TAG_BYTES });
      d.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
      const body = buf.subarray(SEQ_BYTES, buf.length - TAG_BYTES);
      if (aad) d.setAAD(aad, { plaintextLength: body.length });
      const plain = Buffer.concat([d.update(body), d.final()]);
      highest = seq;
      return plain;
    },
  };
}
