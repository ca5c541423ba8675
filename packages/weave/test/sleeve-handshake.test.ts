// The sleeve's own key exchange (src/sleeve/handshake.ts) inside SleeveRelay, without root: two
// relays named by their loopback addresses (127.0.0.1, 127.0.0.2) with in-memory TAPs. Sessions
// come up from the password alone, a wrong password is refused with its reason on both sides and
// nothing crosses, a restarted peer is re-keyed, and an encrypted relay never sends plaintext.
import { afterEach, describe, expect, it } from "vitest";
import { decodeHandshake, encodeHandshake, HANDSHAKE_BYTES, SleeveKeyExchange } from "../src/sleeve/handshake.ts";
import { decodeSleevePacket, encodeSleeveHeader, sleeveHeaderBytes } from "../src/sleeve/packet.ts";
import { formatSleeveStats, SleeveRelay } from "../src/sleeve/relay.ts";
import { frame, MemoryDevice, until } from "./sleeve-fixtures.ts";

const A = "127.0.0.1";
const B = "127.0.0.2";
const A_MAC = "02:00:00:00:00:0a";
const B_MAC = "02:00:00:00:00:0b";
const running: SleeveRelay[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
});

async function relay(name: string, password: string | undefined, device = new MemoryDevice(`tap-${name}`)): Promise<{ relay: SleeveRelay; device: MemoryDevice }> {
  const r = new SleeveRelay({ name, address: name, port: 0, device, encrypted: password !== undefined, ...(password !== undefined ? { password } : {}), addressNames: true, handshakeIntervalMs: 50 });
  await r.start();
  running.push(r);
  return { relay: r, device };
}

function link(x: SleeveRelay, y: SleeveRelay, yName: string): void {
  x.setPeers([{ name: yName, address: yName, port: y.localPort! }]);
}

describe("sleeve header with address names", () => {
  it("carries IPv4 and IPv6 names as raw bytes and reads them back canonical", () => {
    const h = encodeSleeveHeader({ src: "10.0.0.1", dst: "fd00::0:2", sealed: true, addressNames: true });
    expect(h.length).toBe(5 + 4 + 16);
    expect(sleeveHeaderBytes("10.0.0.1", "10.0.0.2", true)).toBe(13);
    expect(decodeSleevePacket(h).header).toEqual({ src: "10.0.0.1", dst: "fd00::2", sealed: true, addressNames: true });
    expect(() => encodeSleeveHeader({ src: "node-1", dst: "10.0.0.2", sealed: false, addressNames: true })).toThrow(/source name "node-1" must be an IP address/);
    const bad = Buffer.from([0x57, 1, 2, 3, 10, 0, 0, 4, 10, 0, 0, 2]);
    expect(() => decodeSleevePacket(bad)).toThrow(expect.objectContaining({ code: "SLEEVE_MALFORMED", message: expect.stringMatching(/address name of 3 bytes/) }));
  });
});

describe("sleeve key exchange", () => {
  it("agrees in three messages, and a lost reply is answered again", () => {
    const a = new SleeveKeyExchange({ self: A, password: "pw" });
    const b = new SleeveKeyExchange({ self: B, password: "pw" });
    const r1 = b.receive(A, decodeHandshake(a.hello(B)));
    expect(r1.established).toBeUndefined();
    const r2 = a.receive(B, decodeHandshake(r1.reply!));
    expect(r2.established).toBeDefined();
    const r3 = b.receive(A, decodeHandshake(r2.reply!));
    expect(r3.established).toBeDefined();
    expect(r3.reply).toBeUndefined();
    expect(Buffer.from(r2.established!.send)).toEqual(Buffer.from(r3.established!.receive));
    // b's "verified" message was lost: a asks again and b answers, keeping its session.
    const again = b.receive(A, decodeHandshake(encodeHandshake({ ...decodeHandshake(a.hello(B)), verified: false })));
    expect(again.established).toBeUndefined();
    expect(decodeHandshake(again.reply!).verified).toBe(true);
    expect(b.established(A)).toBe(true);
  });

  it("refuses a peer with another password, and a malformed message", () => {
    const a = new SleeveKeyExchange({ self: A, password: "right" });
    const b = new SleeveKeyExchange({ self: B, password: "wrong" });
    const r1 = b.receive(A, decodeHandshake(a.hello(B)));
    const r2 = a.receive(B, decodeHandshake(r1.reply!));
    expect(r2.refused).toMatch(/wrong password/);
    expect(a.refusal(B)).toMatch(/wrong password/);
    expect(a.established(B)).toBe(false);
    expect(a.counters.refusals).toBe(1);
    expect(() => decodeHandshake(new Uint8Array(HANDSHAKE_BYTES - 1))).toThrow(/handshake of 97 bytes/);
    expect(() => decodeHandshake(new Uint8Array(HANDSHAKE_BYTES))).toThrow(/type 0/);
  });
});

describe("SleeveRelay with its own handshake", () => {
  it("sets up sessions from the password and carries frames sealed", async () => {
    const a = await relay(A, "shared");
    const b = await relay(B, "shared");
    link(a.relay, b.relay, B);
    link(b.relay, a.relay, A);
    await until("sessions", () => a.relay.hasSession(B) && b.relay.hasSession(A));
    a.device.emit(frame(B_MAC, A_MAC, "hello"));
    await b.device.until(1);
    expect(Buffer.from(b.device.received[0]!).subarray(14).toString()).toBe("hello");
    const s = a.relay.stats();
    expect(s.handshake).toMatchObject({ sessions: 1, established: 1, rekeys: 0, refusals: 0, refused: [] });
    expect(formatSleeveStats(s)).toMatch(/sessions 1\/1 \(1 set up, 0 re-keyed\)/);
  });

  it("refuses a peer with a wrong password on both sides, with the reason in STATUS, and sends no plaintext", async () => {
    const a = await relay(A, "right");
    const b = await relay(B, "wrong");
    link(a.relay, b.relay, B);
    link(b.relay, a.relay, A);
    await until("refusals", () => a.relay.stats().handshake!.refused.length === 1 && b.relay.stats().handshake!.refused.length === 1);
    a.device.emit(frame(B_MAC, A_MAC, "secret"));
    expect(a.relay.stats().drops["no-session"]).toBe(1);
    expect(a.relay.stats().framesOut).toBe(0);
    expect(formatSleeveStats(b.relay.stats())).toMatch(/refused: 127\.0\.0\.1 \(its handshake proof does not match ours: wrong password/);
    expect(b.device.received).toHaveLength(0);
  });

  it("re-keys a peer that restarted (a new key), and frames flow again", async () => {
    const a = await relay(A, "shared");
    let b = await relay(B, "shared");
    link(a.relay, b.relay, B);
    link(b.relay, a.relay, A);
    await until("sessions", () => a.relay.hasSession(B) && b.relay.hasSession(A));
    const port = b.relay.localPort!;
    await b.relay.stop();
    const device = new MemoryDevice("tap-b2");
    b = { relay: new SleeveRelay({ name: B, address: B, port, device, encrypted: true, password: "shared", addressNames: true, handshakeIntervalMs: 50 }), device };
    await b.relay.start();
    running.push(b.relay);
    link(b.relay, a.relay, A);
    await until("re-key", () => a.relay.stats().handshake!.rekeys === 1 && a.relay.hasSession(B) && b.relay.hasSession(A));
    a.device.emit(frame(B_MAC, A_MAC, "again"));
    await b.device.until(1);
    expect(Buffer.from(b.device.received[0]!).subarray(14).toString()).toBe("again");
  });

  it("a plain relay drops handshakes it is sent; an encrypted one drops plaintext", async () => {
    const plain = await relay(A, undefined);
    const enc = await relay(B, "pw");
    link(plain.relay, enc.relay, B);
    link(enc.relay, plain.relay, A);
    await until("a handshake reached the plain relay", () => plain.relay.stats().drops.handshake > 0);
    plain.device.emit(frame(B_MAC, A_MAC, "clear"));
    await until("the plaintext was dropped", () => enc.relay.stats().drops.unsealed > 0);
    expect(enc.device.received).toHaveLength(0);
  });

  it("refuses a password without encryption and a name that is not an address", () => {
    expect(() => new SleeveRelay({ name: A, address: A, device: new MemoryDevice("t"), password: "x" })).toThrow(
      expect.objectContaining({ code: 7, message: expect.stringMatching(/sleeve\.password.*encrypted/) }),
    );
    expect(() => new SleeveRelay({ name: "node-1", address: A, device: new MemoryDevice("t"), addressNames: true })).toThrow(/sleeve\.name/);
  });
});
