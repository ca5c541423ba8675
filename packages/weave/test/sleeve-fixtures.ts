/**
 * Test fixtures of the sleeve: Ethernet frames, a `FrameDevice` in memory, and a pair of sleeve
 * sessions agreed the way the mesh agrees them (X25519 + password, src/crypto/session.ts).
 */
import { deriveSessionKeys, generateKeyPair, type SessionKeys } from "../src/crypto/session.ts";
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

/** Both sides' keys of one connection between `initiator` and `responder`, as the mesh's handshake derives them. */
export function connectionKeys(password = "sleeve-test-password"): { initiator: SessionKeys; responder: SessionKeys } {
  const a = generateKeyPair();
  const b = generateKeyPair();
  return {
    initiator: deriveSessionKeys({ password, ours: a, theirPublic: b.publicKey, initiator: true }),
    responder: deriveSessionKeys({ password, ours: b, theirPublic: a.publicKey, initiator: false }),
  };
}

/** Resolves once `cond()` holds, polling every 10 ms of wall time (UDP on loopback); rejects naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
