// Fuzz: sends CNIKIT_BGP_FUZZ_MESSAGES (default 100,000) random and mutated messages through live
// sessions of a speaker and checks that nothing escapes: every bad message is answered by a
// NOTIFICATION or absorbed per RFC 7606, no internal error happens, and the speaker still works.
// The run is deterministic for a given CNIKIT_BGP_FUZZ_SEED (printed on failure).
import { describe, expect, it } from "vitest";
import { encodeMessage } from "../src/codec/message.ts";
import type { BgpMessage, Capability, PathAttribute } from "../src/codec/types.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { MemoryNetwork } from "../src/transport/memory.ts";
import { RawPeer } from "./support/raw-peer.ts";
import { settle, TestClock } from "./support/virtual-clock.ts";

const COUNT = Number(process.env["CNIKIT_BGP_FUZZ_MESSAGES"] ?? 100_000);
const SEED = Number(process.env["CNIKIT_BGP_FUZZ_SEED"] ?? 20240601);

/** xorshift32: small, fast and reproducible. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

describe("fuzzing a live session", () => {
  it(`survives ${COUNT.toLocaleString("en-US")} random and mutated messages (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    const int = (n: number): number => Math.floor(rnd() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const v4 = (): string => `${int(224) || 1}.${int(256)}.${int(256)}.${int(256)}`;
    const prefix = (): string => {
      const len = int(33);
      const n = (int(0x100000000) & (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0)) >>> 0;
      return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${len}`;
    };
    const prefix6 = (): string => `2001:db8:${(1 + int(65535)).toString(16)}::/${48 + int(17)}`;

    const net = new MemoryNetwork();
    const clock = new TestClock();
    const s = new BgpSpeaker({
      asn: 64512,
      routerId: "10.0.0.1",
      transport: net.transport("10.0.0.1"),
      clock,
      jitter: false,
      addPath: "both",
      peers: [
        { address: "10.0.0.9", asn: 64512, passive: true, routeReflectorClient: true },
        { address: "10.0.0.8", asn: 64512, passive: true },
      ],
    });
    await s.start();
    s.announce(["192.168.0.0/24", "2001:db8:ffff::/48"]);
    // A second, well-behaved peer that receives whatever the fuzzed peer gets reflected.
    const observer = new RawPeer({ network: net, address: "10.0.0.8", asn: 64512, routerId: "10.0.0.8", holdTime: 0 });
    await observer.dial("10.0.0.1");
    await observer.establish();

    const caps: Capability[] = [
      ...RawPeer.defaultCapabilities(64512),
      {
        kind: "add-path",
        families: [
          { afi: 1, safi: 1, mode: 3 },
          { afi: 2, safi: 1, mode: 3 },
        ],
      },
      { kind: "graceful-restart", flags: 0, restartTime: 5, families: [{ afi: 1, safi: 1, flags: 0x80 }] },
    ];
    const codec = { fourOctetAs: true, addPath: new Set(["1/1", "2/1"]) };

    const attribute = (): PathAttribute => {
      switch (int(12)) {
        case 0:
          return { type: "med", flags: 0x80, value: int(1000) };
        case 1:
          return { type: "local-pref", flags: 0x40, value: int(1000) };
        case 2:
          return { type: "communities", flags: 0xc0, values: [int(0x100000000), 0xffffff01] };
        case 3:
          return { type: "originator-id", flags: 0x80, value: pick(["10.0.0.1", v4()]) };
        case 4:
          return { type: "cluster-list", flags: 0x80, values: [pick(["10.0.0.1", v4()])] };
        case 5:
          return { type: "aggregator", flags: 0xc0, asn: int(0x100000000), address: v4() };
        case 6:
          return { type: "atomic-aggregate", flags: 0x40 };
        case 7:
          return { type: "as4-path", flags: 0xc0, segments: [{ type: 2, asns: [int(0x100000000)] }] };
        case 8:
          return { type: "mp-reach", flags: 0x90, afi: 2, safi: 1, nextHop: ["2001:db8::9"], nlri: [{ prefix: prefix6(), pathId: int(4) }] };
        case 9:
          return { type: "mp-unreach", flags: 0x90, afi: 2, safi: 1, withdrawn: [{ prefix: prefix6(), pathId: int(4) }] };
        case 10:
          return { type: "large-communities", flags: 0xc0, values: [[1, 2, 3]] };
        default:
          return { type: "unknown", flags: pick([0xc0, 0x80, 0xe0]), code: 100 + int(100), value: new Uint8Array(int(8)) };
      }
    };
    const validUpdate = (): BgpMessage => {
      const extra: PathAttribute[] = [];
      const n = int(4);
      const used = new Set<string>();
      for (let i = 0; i < n; i++) {
        const a = attribute();
        const k = a.type === "unknown" ? `u${a.code}` : a.type;
        if (!used.has(k)) extra.push(a);
        used.add(k);
      }
      return {
        type: "update",
        withdrawn: Array.from({ length: int(3) }, () => ({ prefix: prefix(), pathId: int(4) })),
        attributes: [
          { type: "origin", flags: 0x40, value: int(3) },
          { type: "as-path", flags: 0x40, segments: int(2) ? [] : [{ type: pick([1, 2]), asns: [int(70000), int(70000)] }] },
          { type: "next-hop", flags: 0x40, value: pick(["10.0.0.9", v4(), "10.0.0.1"]) },
          ...extra,
        ],
        nlri: Array.from({ length: int(5) }, () => ({ prefix: prefix(), pathId: int(4) })),
      };
    };
    const validMessage = (): Uint8Array => {
      const r = int(10);
      if (r < 6) return encodeMessage(validUpdate(), codec);
      if (r === 6) return encodeMessage({ type: "keepalive" });
      if (r === 7) return encodeMessage({ type: "route-refresh", afi: pick([1, 2, 3]), safi: pick([1, 2]), subtype: int(4) });
      if (r === 8) return encodeMessage({ type: "update", withdrawn: [], attributes: [], nlri: [] });
      return encodeMessage({ type: "open", version: 4, myAs: 64512, holdTime: 90, bgpId: "10.0.0.9", capabilities: caps });
    };
    const mutate = (m: Uint8Array): Uint8Array => {
      const b = m.slice();
      switch (int(7)) {
        case 0: {
          // Flip 1-3 body octets; the header stays valid so the body decoders see it.
          for (let k = 1 + int(3); k > 0 && b.length > 19; k--) b[19 + int(b.length - 19)] = int(256);
          return b;
        }
        case 1: {
          b[int(b.length)] = int(256);
          return b;
        }
        case 2: {
          // Truncate and fix the length field.
          const len = 19 + int(Math.max(1, b.length - 19));
          const t = b.slice(0, len);
          t[16] = len >> 8;
          t[17] = len & 255;
          return t;
        }
        case 3: {
          // Append random octets and fix the length field.
          const extra = 1 + int(40);
          const t = new Uint8Array(b.length + extra);
          t.set(b);
          for (let i = b.length; i < t.length; i++) t[i] = int(256);
          t[16] = t.length >> 8;
          t[17] = t.length & 255;
          return t;
        }
        case 4: {
          // Random body under a valid header of a random type.
          const len = 19 + int(80);
          const t = new Uint8Array(len);
          t.fill(255, 0, 16);
          t[16] = len >> 8;
          t[17] = len & 255;
          t[18] = 1 + int(5);
          for (let i = 19; i < len; i++) t[i] = int(256);
          return t;
        }
        case 5: {
          // Corrupt a length inside the body (attribute or NLRI lengths live there).
          if (b.length > 23) b[21 + int(b.length - 21)] = pick([0, 1, 2, 3, 4, 0x20, 0x21, 0x80, 0xff]);
          return b;
        }
        default:
          return new Uint8Array(Array.from({ length: 1 + int(60) }, () => int(256)));
      }
    };

    let sent = 0;
    let sessions = 0;
    let notifications = 0;
    let raw: RawPeer | undefined;
    while (sent < COUNT) {
      if (!raw || raw.closed !== undefined) {
        if (raw) notifications += raw.of("notification").length;
        raw = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9", capabilities: caps });
        raw.codec = codec;
        await raw.dial("10.0.0.1");
        sessions++;
        if (int(5) === 0) {
          // Fuzz the OPEN path too.
          raw.send(mutate(encodeMessage({ type: "open", version: 4, myAs: 64512, holdTime: 90, bgpId: "10.0.0.9", capabilities: caps })));
          sent++;
          await settle(1);
          continue;
        }
        await raw.establish();
      }
      const batch = 1 + int(20);
      for (let i = 0; i < batch; i++) {
        raw.send(int(2) ? validMessage() : mutate(validMessage()));
        sent++;
      }
      await settle(1);
      if (int(50) === 0) await clock.advance(int(10_000));
    }
    await clock.advance(1000);
    expect(s.internalErrors).toEqual([]);
    expect(sessions).toBeGreaterThan(100);
    expect(notifications).toBeGreaterThan(100);
    // The speaker still works: a clean peer connects and its routes are taken and reflected.
    raw?.stream?.destroy();
    await clock.advance(60_000);
    const clean = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9", capabilities: RawPeer.defaultCapabilities(64512) });
    await clean.dial("10.0.0.1");
    await clean.establish();
    expect(s.peerState("10.0.0.9")).toBe("Established");
    clean.sendMessage({
      type: "update",
      withdrawn: [],
      attributes: [
        { type: "origin", flags: 0x40, value: 0 },
        { type: "as-path", flags: 0x40, segments: [] },
        { type: "next-hop", flags: 0x40, value: "10.0.0.9" },
      ],
      nlri: [{ prefix: "10.99.0.0/16" }],
    });
    await settle();
    expect(s.route("10.99.0.0/16")?.source.address).toBe("10.0.0.9");
    expect(observer.closed).toBeUndefined();
    expect(s.peerState("10.0.0.8")).toBe("Established");
    expect(s.route("192.168.0.0/24")?.source.kind).toBe("local");
  }, 600_000);
});
