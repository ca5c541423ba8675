// The sleeve without root: its packet codec, the MAC table in virtual time, and SleeveRelay between
// relays on loopback with in-memory TAPs (learning, flooding, packing, MTU, sealing, drops). The
// real kernel (TAP helper, bridges, pods, capture) is sleeve.integration.test.ts.
import { createSocket, type Socket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { VirtualClock } from "@cnikit/core";
import { MacTable, MAC_TTL_MS } from "../src/sleeve/mac-table.ts";
import { decodeFrames, decodeSleevePacket, encodeFrames, encodeSleeveHeader, formatMac, isGroupMac, macAt, SleevePacketError } from "../src/sleeve/packet.ts";
import { formatSleeveStats, SleeveRelay, sleeveOverhead, sleeveSession, type SleeveRelayOptions, type SleeveSession } from "../src/sleeve/relay.ts";
import { TapDevice } from "../src/sleeve/tap.ts";
import { connectionKeys, frame, MemoryDevice } from "./sleeve-fixtures.ts";

const A_MAC = "02:00:00:00:00:0a";
const B_MAC = "02:00:00:00:00:0b";
const C_MAC = "02:00:00:00:00:0c";
const BROADCAST = "ff:ff:ff:ff:ff:ff";

describe("sleeve packet", () => {
  it("round-trips the header and several frames per packet", () => {
    const frames = [frame(B_MAC, A_MAC, "one"), frame(BROADCAST, A_MAC, "two"), frame(C_MAC, A_MAC, "")];
    const header = encodeSleeveHeader({ src: "aa:bb:cc:dd:ee:01", dst: "peer-2", sealed: true });
    const packet = Buffer.concat([header, encodeFrames(frames)]);
    const d = decodeSleevePacket(packet);
    expect(d.header).toEqual({ src: "aa:bb:cc:dd:ee:01", dst: "peer-2", sealed: true });
    expect(Buffer.from(d.headerBytes)).toEqual(Buffer.from(header));
    expect(decodeFrames(d.body).map((f) => Buffer.from(f))).toEqual(frames.map((f) => Buffer.from(f)));
  });

  it.each([
    ["short", Buffer.from([0x57, 1, 0]), /shorter than any header/],
    ["magic", Buffer.from([0x58, 1, 0, 1, 0x61, 1, 0x62]), /magic 0x58/],
    ["version", Buffer.from([0x57, 2, 0, 1, 0x61, 1, 0x62]), /version 2/],
    ["flags", Buffer.from([0x57, 1, 0x18, 1, 0x61, 1, 0x62]), /unknown flags 0x18/],
    ["source name", Buffer.from([0x57, 1, 0, 9, 0x61, 1, 0x62]), /source name truncated/],
    ["destination name", Buffer.from([0x57, 1, 0, 1, 0x61, 0, 0x62]), /destination name truncated or empty/],
    ["name encoding", Buffer.from([0x57, 1, 0, 1, 0xff, 1, 0x62]), /not UTF-8/],
  ])("refuses a bad header (%s) with SLEEVE_MALFORMED", (_what, bytes, message) => {
    expect(() => decodeSleevePacket(bytes)).toThrow(message);
    expect(() => decodeSleevePacket(bytes)).toThrow(expect.objectContaining({ code: "SLEEVE_MALFORMED", name: "SleevePacketError" }));
  });

  it("refuses a frame list whose last length runs past the end", () => {
    const body = encodeFrames([frame(B_MAC, A_MAC, "abc")]);
    expect(() => decodeFrames(body.subarray(0, body.length - 1))).toThrow(SleevePacketError);
    expect(() => decodeFrames(body.subarray(0, body.length - 1))).toThrow(/truncated: 18 byte\(s\) left after 0 frame/);
  });

  it("reads MACs, tells group addresses, formats them", () => {
    const f = frame("01:00:5e:00:00:fb", "fe:dc:ba:98:76:54", "x");
    expect(formatMac(macAt(f, 0))).toBe("01:00:5e:00:00:fb");
    expect(formatMac(macAt(f, 6))).toBe("fe:dc:ba:98:76:54");
    expect(isGroupMac(macAt(f, 0))).toBe(true);
    expect(isGroupMac(macAt(f, 6))).toBe(false);
    expect(isGroupMac(macAt(frame(BROADCAST, A_MAC, ""), 0))).toBe(true);
  });

  it("overhead: IP+UDP 28, header 5 + names, 2 per frame, plus the seal's", () => {
    expect(sleeveOverhead({ src: "n1", dst: "n2" })).toBe(28 + 9 + 2);
    expect(sleeveOverhead({ src: "aa:bb:cc:dd:ee:01", dst: "aa:bb:cc:dd:ee:02", sealOverhead: 24 })).toBe(28 + 39 + 2 + 24);
  });
});

describe("MacTable", () => {
  it("expires an entry 10 minutes after it was last seen", async () => {
    const clock = new VirtualClock();
    const t = new MacTable({ clock });
    t.learn(1, "p1");
    await clock.advance(MAC_TTL_MS - 1);
    expect(t.lookup(1)).toBe("p1");
    t.learn(1, "p1");
    await clock.advance(MAC_TTL_MS - 1);
    expect(t.lookup(1)).toBe("p1");
    await clock.advance(1);
    expect(t.lookup(1)).toBeUndefined();
    expect(t.size).toBe(0);
  });

  it("stays within its limit, evicting the least recently seen", async () => {
    const clock = new VirtualClock();
    const t = new MacTable({ clock, limit: 3 });
    for (let mac = 1; mac <= 3; mac++) {
      t.learn(mac, `p${mac}`);
      await clock.advance(1);
    }
    t.learn(1, "p1"); // seen again: now the youngest
    t.learn(4, "p4");
    expect(t.size).toBe(3);
    expect(t.evicted).toBe(1);
    expect([1, 2, 3, 4].map((m) => t.lookup(m))).toEqual(["p1", undefined, "p3", "p4"]);
    for (let mac = 100; mac < 10_100; mac++) t.learn(mac, "flood");
    expect(t.size).toBe(3);
  });

  it("moves a MAC to the peer it was last seen behind, forgets a peer's MACs", () => {
    const t = new MacTable({ clock: new VirtualClock() });
    t.learn(1, "p1");
    t.learn(2, "p1");
    t.learn(1, "p2");
    t.forgetPeer("p1");
    expect([t.lookup(1), t.lookup(2)]).toEqual(["p2", undefined]);
  });

  it.each([
    [{ ttlMs: 0 }, "sleeve.macTtlMs"],
    [{ limit: 0.5 }, "sleeve.macLimit"],
  ])("refuses %j naming %s", (bad, field) => {
    expect(() => new MacTable({ clock: new VirtualClock(), ...bad })).toThrow(expect.objectContaining({ code: 7, field }));
  });
});

describe("SleeveRelay on loopback", () => {
  const started: SleeveRelay[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const r of started.splice(0)) await r.stop();
    for (const s of sockets.splice(0)) s.close();
  });

  async function relay(name: string, extra: Partial<SleeveRelayOptions> = {}): Promise<{ relay: SleeveRelay; tap: MemoryDevice }> {
    const tap = new MemoryDevice(`tap-${name}`);
    const r = new SleeveRelay({ name, address: "127.0.0.1", port: 0, device: tap, clock: new VirtualClock(), ...extra });
    started.push(r);
    await r.start();
    return { relay: r, tap };
  }

  async function mesh(names: string[], extra: (name: string) => Partial<SleeveRelayOptions> = () => ({})) {
    const nodes = await Promise.all(names.map((n) => relay(n, extra(n))));
    return nodes;
  }

  function connect(nodes: { relay: SleeveRelay }[], names: string[], session?: (from: string) => SleeveSession): void {
    nodes.forEach((n, i) => {
      n.relay.setPeers(names.flatMap((name, j) => (j === i ? [] : [{ name, address: "127.0.0.1", port: nodes[j]!.relay.localPort!, ...(session ? { session: session(names[i]!) } : {}) }])));
    });
  }

  /** A UDP socket on loopback that records what it receives. */
  async function sniffer(): Promise<{ socket: Socket; port: number; got: Buffer[]; until(n: number): Promise<void> }> {
    const socket = createSocket("udp4");
    sockets.push(socket);
    const got: Buffer[] = [];
    socket.on("message", (m) => got.push(m));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    const until = async (n: number): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (got.length < n) {
        if (Date.now() > deadline) throw new Error(`sniffer: ${got.length} packet(s), waited for ${n}`);
        await new Promise<void>((resolve) => socket.once("message", () => resolve()));
      }
    };
    return { socket, port: socket.address().port, got, until };
  }

  async function send(socket: Socket, bytes: Uint8Array, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => socket.send(bytes, port, "127.0.0.1", (err) => (err ? reject(err) : resolve())));
  }

  /** Waits until `relay`'s stats satisfy `ok` (packets cross loopback asynchronously). */
  async function statsUntil(r: SleeveRelay, ok: (s: ReturnType<SleeveRelay["stats"]>) => boolean): Promise<ReturnType<SleeveRelay["stats"]>> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const s = r.stats();
      if (ok(s)) return s;
      if (Date.now() > deadline) throw new Error(`stats never matched: ${JSON.stringify(s)}`);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  it("floods unknown and broadcast destinations to every peer, then sends to the peer a MAC was learned behind", async () => {
    const names = ["a", "b", "c"];
    const [a, b, c] = await mesh(names);
    connect([a!, b!, c!], names);
    a!.tap.emit(frame(BROADCAST, A_MAC, "arp who-has"), frame(B_MAC, A_MAC, "unknown yet"));
    await b!.tap.until(2);
    await c!.tap.until(2);
    expect(a!.relay.stats()).toMatchObject({ floods: 2, framesOut: 4, packetsOut: 2 }); // both frames in one packet per peer
    expect(b!.relay.stats().macs).toBe(1); // A_MAC, learned from a's flood
    b!.tap.emit(frame(A_MAC, B_MAC, "reply")); // so b sends it to a only; it teaches a that B_MAC is behind b
    await a!.tap.until(1);
    expect(b!.relay.stats()).toMatchObject({ floods: 0, framesOut: 1 });
    expect(a!.relay.stats().macs).toBe(1);
    a!.tap.emit(frame(B_MAC, A_MAC, "now direct"));
    await b!.tap.until(3);
    expect(Buffer.from(b!.tap.received[2]!).subarray(14).toString()).toBe("now direct");
    expect(a!.relay.stats()).toMatchObject({ floods: 2, framesOut: 5 });
    expect(c!.tap.received).toHaveLength(2); // c saw the floods only
    // A_MAC shows up locally at c (the pod moved): c forgets it was behind a
    c!.tap.emit(frame(BROADCAST, A_MAC, "gratuitous arp"));
    expect(c!.relay.stats().macs).toBe(0);
  });

  it("packs several frames per packet up to the path MTU, drops a frame too big for the path", async () => {
    const names = ["a", "b"];
    const [a, b] = await mesh(names, () => ({ pathMtu: 576 }));
    connect([a!, b!], names);
    const room = 576 - 28 - 7; // UDP payload minus the header for names "a", "b"
    const big = frame(B_MAC, A_MAC, Buffer.alloc(room - 2 - 14 + 1)); // one byte too many
    const fits = frame(B_MAC, A_MAC, Buffer.alloc(room - 2 - 14)); // exactly fits
    const small = Array.from({ length: 10 }, (_, i) => frame(B_MAC, A_MAC, `small ${i}`));
    a!.tap.emit(big, fits, ...small);
    await b!.tap.until(11);
    const s = a!.relay.stats();
    expect(s.drops["too-big"]).toBe(1);
    expect(s.packetsOut).toBe(2); // `fits` alone, then the ten small ones together
    expect(b!.tap.received[0]!.length).toBe(fits.length);
  });

  it("encrypted: the wire carries no payload in the clear, tamper and replay are refused, a sealed packet cannot pass as plaintext", async () => {
    const names = ["a", "b"];
    const keys = connectionKeys(); // a dialled b
    const session = (from: string) => sleeveSession(from === "a" ? keys.initiator : keys.responder);
    const [a, b] = await mesh(names, () => ({ encrypted: true }));
    const wire = await sniffer();
    a!.relay.setPeers([{ name: "b", address: "127.0.0.1", port: wire.port, session: session("a") }]);
    b!.relay.setPeers([{ name: "a", address: "127.0.0.1", port: a!.relay.localPort!, session: session("b") }]);
    const marker = "CNIKIT-MARKER-SEALED";
    a!.tap.emit(frame(B_MAC, A_MAC, marker));
    await wire.until(1);
    const packet = wire.got[0]!;
    expect(packet.includes(marker)).toBe(false);
    expect(decodeSleevePacket(packet).header).toEqual({ src: "a", dst: "b", sealed: true });
    // forwarded unchanged from the same address: delivered
    await send(wire.socket, packet, b!.relay.localPort!);
    await b!.tap.until(1);
    expect(Buffer.from(b!.tap.received[0]!).subarray(14).toString()).toBe(marker);
    // the same packet again: a replay
    await send(wire.socket, packet, b!.relay.localPort!);
    await statsUntil(b!.relay, (s) => s.drops["auth-failed"] === 1);
    // a flipped ciphertext byte; a header that claims plaintext
    a!.tap.emit(frame(B_MAC, A_MAC, marker));
    await wire.until(2);
    const tampered = Buffer.from(wire.got[1]!);
    tampered[tampered.length - 20]! ^= 1;
    await send(wire.socket, tampered, b!.relay.localPort!);
    await statsUntil(b!.relay, (s) => s.drops["auth-failed"] === 2);
    const flagsOff = Buffer.from(wire.got[1]!);
    flagsOff[2] = 0; // claims plaintext
    await send(wire.socket, flagsOff, b!.relay.localPort!);
    await statsUntil(b!.relay, (s) => s.drops.unsealed === 1);
    expect(b!.tap.received).toHaveLength(1);
    // b → a directly: sealed both ways
    b!.tap.emit(frame(A_MAC, B_MAC, "back"));
    await a!.tap.until(1);
    expect(a!.relay.stats().drops["auth-failed"]).toBe(0);
  });

  it("encrypted with a wrong password on one side: nothing opens, nothing reaches the TAP", async () => {
    const names = ["a", "b"];
    const [a, b] = await mesh(names, () => ({ encrypted: true }));
    const ka = connectionKeys("right");
    const kb = connectionKeys("wrong");
    connect([a!, b!], names, (from) => sleeveSession(from === "a" ? ka.initiator : kb.responder));
    a!.tap.emit(frame(BROADCAST, A_MAC, "arp"));
    b!.tap.emit(frame(BROADCAST, B_MAC, "arp"));
    await statsUntil(a!.relay, (s) => s.drops["auth-failed"] === 1);
    await statsUntil(b!.relay, (s) => s.drops["auth-failed"] === 1);
    expect([a!.tap.received.length, b!.tap.received.length]).toEqual([0, 0]);
  });

  it("drops by reason: unknown peer, wrong source address, not for us, sealed on a plain sleeve, no session yet, TAP backlog, runts", async () => {
    const [a] = await mesh(["a"]);
    const wire = await sniffer();
    a!.relay.setPeers([{ name: "b", address: "127.0.0.2", port: wire.port }]);
    const body = encodeFrames([frame(A_MAC, B_MAC, "x")]);
    const packet = (src: string, dst: string, sealed = false) => Buffer.concat([encodeSleeveHeader({ src, dst, sealed }), body]);
    await send(wire.socket, packet("z", "a"), a!.relay.localPort!);
    await send(wire.socket, packet("b", "a"), a!.relay.localPort!); // b is 127.0.0.2, this came from 127.0.0.1
    await send(wire.socket, packet("b", "q"), a!.relay.localPort!);
    await send(wire.socket, Buffer.from("not a sleeve packet"), a!.relay.localPort!);
    await statsUntil(a!.relay, (s) => s.drops["unknown-peer"] === 1 && s.drops["address-mismatch"] === 1 && s.drops["not-for-us"] === 1 && s.drops.malformed === 1);
    a!.relay.setPeers([{ name: "b", address: "127.0.0.1", port: wire.port }]);
    await send(wire.socket, packet("b", "a", true), a!.relay.localPort!);
    await statsUntil(a!.relay, (s) => s.drops["sealed-unexpected"] === 1);
    a!.tap.accept = false;
    await send(wire.socket, packet("b", "a"), a!.relay.localPort!);
    await statsUntil(a!.relay, (s) => s.drops["tap-backlog"] === 1);
    a!.tap.accept = true;
    await send(wire.socket, Buffer.concat([encodeSleeveHeader({ src: "b", dst: "a", sealed: false }), encodeFrames([Buffer.alloc(13), frame(A_MAC, B_MAC, "ok")])]), a!.relay.localPort!);
    await a!.tap.until(1);
    expect(a!.relay.stats()).toMatchObject({ framesIn: 1, bytesIn: 16 });
    expect(a!.relay.stats().drops.runt).toBe(1);
    expect(formatSleeveStats(a!.relay.stats())).toMatch(
      /^sleeve tap-a: 1 peer, 1 MAC; in 1 frames\/16 B, out 0 frames\/0 B \(0 flooded\); drops: malformed 1, unknown-peer 1, address-mismatch 1, not-for-us 1, sealed-unexpected 1, runt 1, tap-backlog 1$/,
    );
    expect(a!.tap.received).toHaveLength(1);

    const [e] = await mesh(["e"], () => ({ encrypted: true }));
    e!.relay.setPeers([{ name: "b", address: "127.0.0.1", port: wire.port }]); // keys not agreed yet
    e!.tap.emit(frame(BROADCAST, A_MAC, "arp"));
    await send(wire.socket, packet("b", "e", true), e!.relay.localPort!);
    await send(wire.socket, packet("b", "e", false), e!.relay.localPort!);
    const s = await statsUntil(e!.relay, (x) => x.drops["no-session"] === 2 && x.drops.unsealed === 1);
    expect(s.packetsOut).toBe(0);
    expect(wire.got).toHaveLength(0);
  });

  it("setPeers refuses bad entries naming the field; stop is idempotent and stops the device", async () => {
    const { relay: r, tap } = await relay("a");
    expect(() => r.setPeers([{ name: "a", address: "127.0.0.1" }])).toThrow(expect.objectContaining({ code: 7, field: "peers[0].name", message: expect.stringMatching(/own name/) }));
    expect(() =>
      r.setPeers([
        { name: "b", address: "127.0.0.1" },
        { name: "b", address: "127.0.0.2" },
      ]),
    ).toThrow(expect.objectContaining({ field: "peers[1].name" }));
    expect(() => r.setPeers([{ name: "b", address: "node-2" }])).toThrow(expect.objectContaining({ field: "peers[0].address" }));
    expect(() => r.setPeers([{ name: "b", address: "127.0.0.1", port: 0 }])).toThrow(expect.objectContaining({ field: "peers[0].port" }));
    expect(() => r.setPeers([{ name: "b", address: "127.0.0.1", session: sleeveSession({ send: randomBytes(32), receive: randomBytes(32) }) }])).toThrow(
      expect.objectContaining({ field: "peers[0].session", message: expect.stringMatching(/not encrypted/) }),
    );
    expect(formatSleeveStats(r.stats())).toBe("sleeve tap-a: 0 peers, 0 MACs; in 0 frames/0 B, out 0 frames/0 B (0 flooded)");
    expect(() => new SleeveRelay({ name: "a", address: "10.0.0.0.1", device: tap })).toThrow(expect.objectContaining({ field: "sleeve.address" }));
    expect(() => new SleeveRelay({ name: "a", address: "10.0.0.1", device: tap, pathMtu: 100 })).toThrow(expect.objectContaining({ field: "sleeve.pathMtu" }));
    await r.stop();
    await r.stop();
    expect(tap.stopped).toBe(true);
    await expect(r.start()).rejects.toThrow(/start\(\) after stop/);
  });

  it("a port already bound is refused naming the address and port, and the device is stopped again", async () => {
    const { relay: first } = await relay("a");
    const tap = new MemoryDevice("tap-x");
    const second = new SleeveRelay({ name: "x", address: "127.0.0.1", port: first.localPort!, device: tap });
    await expect(second.start()).rejects.toThrow(new RegExp(`cannot bind UDP 127\\.0\\.0\\.1:${first.localPort}: .*EADDRINUSE`));
    expect(tap.stopped).toBe(true);
  });
});

describe("TapDevice", () => {
  it("refuses a name that cannot be an interface name (code 7)", () => {
    expect(() => new TapDevice({ ifname: "a-name-far-too-long" })).toThrow(expect.objectContaining({ code: 7, message: expect.stringMatching(/sleeve\.tap: .* 1-15 letters/) }));
    expect(() => new TapDevice({ ifname: "we ave" })).toThrow(expect.objectContaining({ code: 7 }));
  });

  it("a missing helper is named with how to build it; send before start drops", async () => {
    const tap = new TapDevice({ ifname: "wtap", helper: "/nonexistent/weave-tap" });
    await expect(tap.start(() => {})).rejects.toThrow(/TAP helper \/nonexistent\/weave-tap is missing or not executable: build it \(pnpm --filter @cnikit\/weave build, needs gcc\)/);
    expect(tap.send([frame(B_MAC, A_MAC, "x")])).toBe(false);
    await tap.stop();
    const relay = new SleeveRelay({ name: "a", address: "127.0.0.1", port: 0, device: tap });
    await expect(relay.start()).rejects.toThrow(/missing or not executable/);
    await relay.stop();
    await expect(relay.start()).rejects.toThrow(/start\(\) after stop/);
  });
});
