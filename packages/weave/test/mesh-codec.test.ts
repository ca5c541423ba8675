/** The mesh's wire format, identity helpers and option checks. */
import { MemoryDatastore, MemoryNetwork, MemoryMembership, VirtualClock, seededRandom, silentLogger } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { MESSAGE, decodeHeartbeat, decodeHello, decodeMessage, encodeHeartbeat, encodeHello, encodeMessage } from "../src/mesh/codec.ts";
import type { MeshMessage, PeerRecord } from "../src/mesh/codec.ts";
import { PEER_NAME_KEY, isPeerName, loadPeerName, randomPeerName, randomUid, resolveShortId } from "../src/mesh/identity.ts";
import { Mesh } from "../src/mesh/mesh.ts";

const rnd = seededRandom(11);
const name = (): string => randomPeerName(rnd);
const record = (conns: number): PeerRecord => ({
  name: name(),
  nickname: `node-${Math.floor(rnd() * 1000)}`,
  uid: randomUid(rnd),
  version: Math.floor(rnd() * 2 ** 40),
  shortId: Math.floor(rnd() * 4096),
  connections: Array.from({ length: conns }, () => ({ to: name(), established: rnd() < 0.5, outbound: rnd() < 0.5 })),
});

describe("mesh codec", () => {
  it("round-trips every message type", () => {
    const messages: MeshMessage[] = [
      { type: MESSAGE.topology, records: [record(0), record(5)], deltas: [{ name: name(), uid: randomUid(rnd), base: 3, version: 9, shortId: 7, set: record(2).connections, removed: [name()] }] },
      { type: MESSAGE.digest, replyWanted: true, entries: [{ name: name(), uid: randomUid(rnd), version: 2 ** 50 }] },
      { type: MESSAGE.request, names: [name(), name()] },
      { type: MESSAGE.channelGossip, channel: "IPallocation", updates: [new Uint8Array([1, 2, 3]), new Uint8Array(0)] },
      { type: MESSAGE.broadcast, channel: "dir", source: name(), payload: new Uint8Array([9]) },
      { type: MESSAGE.unicast, channel: "dir", source: name(), dest: name(), ttl: 64, payload: new Uint8Array(300).fill(7) },
    ];
    for (const m of messages) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it("round-trips a hello and a heartbeat", () => {
    const hello = {
      minVersion: 1,
      maxVersion: 2,
      name: name(),
      nickname: "n1",
      uid: randomUid(rnd),
      connUid: randomUid(rnd),
      shortId: 12,
      features: { fastdp: "1", mtu: "1376" },
      publicKey: new Uint8Array(32).fill(5),
      trustsRemote: true,
    };
    expect(decodeHello(encodeHello(hello))).toEqual(hello);
    const plain = { ...hello, publicKey: undefined, trustsRemote: false };
    expect(decodeHello(encodeHello(plain))).toEqual(plain);
    const uid = randomUid(rnd);
    const sender = name();
    expect(decodeHeartbeat(encodeHeartbeat(uid, sender))).toEqual({ connUid: uid, sender });
    expect(decodeHeartbeat(new Uint8Array([1, 2, 3]))).toBeUndefined();
  });

  it("refuses truncated, trailing and unknown bytes with DecodeError (code 6)", () => {
    const bytes = encodeMessage({ type: MESSAGE.request, names: [name()] });
    for (const bad of [bytes.subarray(0, bytes.length - 1), new Uint8Array([...bytes, 0]), new Uint8Array([99])]) {
      let caught: unknown;
      try {
        decodeMessage(bad);
      } catch (err) {
        caught = err;
      }
      expect((caught as { code?: number }).code).toBe(6);
    }
  });
});

describe("mesh identity", () => {
  it("makes locally administered unicast names and keeps the first one in the local store", async () => {
    for (let i = 0; i < 50; i++) {
      const n = name();
      expect(isPeerName(n)).toBe(true);
      expect(Number.parseInt(n.slice(0, 2), 16) & 0x03).toBe(0x02);
    }
    const local = new MemoryDatastore();
    const first = await loadPeerName(local, rnd);
    expect(await loadPeerName(local, rnd)).toBe(first);
    await local.put(PEER_NAME_KEY, "not-a-name");
    await expect(loadPeerName(local, rnd)).rejects.toMatchObject({ code: 7, field: PEER_NAME_KEY });
  });

  it("resolves a short-id collision the same way on both sides: the smaller name keeps it", () => {
    const a = { name: "02:00:00:00:00:01", shortId: 5 };
    const b = { name: "02:00:00:00:00:02", shortId: 5 };
    expect(resolveShortId(a, [a, b])).toBe(5);
    expect(resolveShortId(b, [a, b])).toBe(0);
    expect(resolveShortId(b, [a, b, { name: "02:00:00:00:00:03", shortId: 0 }])).toBe(1);
  });
});

describe("mesh options", () => {
  it("refuses bad options naming the field and the rule", () => {
    const clock = new VirtualClock();
    const base = {
      nodeName: "n0",
      transport: new MemoryNetwork({ clock }).transport("n0"),
      members: new MemoryMembership({ clock }),
      clock,
      log: silentLogger,
      random: rnd,
      local: new MemoryDatastore(),
      connLimit: 200,
    };
    expect(() => new Mesh({ ...base, connLimit: 0 })).toThrow(/mesh\.connLimit: must be an integer >= 1/);
    expect(() => new Mesh({ ...base, password: "" })).toThrow(/mesh\.password: must be a non-empty string/);
    expect(() => new Mesh({ ...base, trustedSubnets: ["10.0.0.0/33"] })).toThrow(/mesh\.trustedSubnets\[0\]/);
    expect(() => new Mesh({ ...base, protocolVersions: { min: 3, max: 2 } })).toThrow(/mesh\.protocolVersions/);
    expect(() => new Mesh(base).self).toThrow(/after start/);
  });
});
