import { describe, expect, it } from "vitest";
import type { UpdateMessage } from "../src/codec/types.ts";
import { routesFromUpdate } from "../src/codec/update.ts";
import type { PeerConfig, SpeakerOptions } from "../src/config.ts";
import type { RouteEvent } from "../src/rib.ts";
import type { SessionEvent } from "../src/speaker.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { MemoryNetwork } from "../src/transport/memory.ts";
import { BgpConfigError } from "../src/errors.ts";
import { RawPeer } from "./support/raw-peer.ts";
import { settle, TestClock } from "./support/virtual-clock.ts";

function speaker(net: MemoryNetwork, clock: TestClock, address: string, asn: number, peers: PeerConfig[], extra: Partial<SpeakerOptions> = {}): BgpSpeaker {
  return new BgpSpeaker({ asn, routerId: address, localAddress: address, transport: net.transport(address), clock, jitter: false, peers, ...extra });
}

function rib(s: BgpSpeaker): Record<string, string> {
  return Object.fromEntries(s.routes().map((r) => [r.prefix, `${r.attributes.nextHop} [${r.attributes.asPath.flatMap((x) => x.asns).join(" ")}] lp=${r.attributes.localPref ?? "-"}`]));
}

describe("two speakers over the memory transport", () => {
  it("iBGP: the session comes up (one side passive), routes flow both ways, withdrawals propagate", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.2", asn: 64512, passive: true }]);
    const b = speaker(net, clock, "10.0.0.2", 64512, [{ address: "10.0.0.1", asn: 64512 }]);
    const states: SessionEvent[] = [];
    a.onSessionState((e) => states.push(e));
    await a.start();
    await b.start();
    a.announce("10.244.1.0/26");
    b.announce(["10.244.2.0/26", "10.244.3.0/26"], { communities: ["65000:7"], med: 5 });
    await clock.advance(10);
    expect(a.peerState("10.0.0.2")).toBe("Established");
    expect(states.map((s) => s.state)).toEqual(["Active", "OpenSent", "OpenConfirm", "Established"]);
    expect(rib(a)).toEqual({
      "10.244.1.0/26": "10.0.0.1 [] lp=-",
      "10.244.2.0/26": "10.0.0.2 [] lp=100",
      "10.244.3.0/26": "10.0.0.2 [] lp=100",
    });
    expect(a.route("10.244.2.0/26")!.attributes).toMatchObject({ med: 5, communities: [65000 * 65536 + 7] });
    expect(rib(b)["10.244.1.0/26"]).toBe("10.0.0.1 [] lp=100");
    b.withdraw("10.244.2.0/26");
    await clock.advance(10);
    expect(Object.keys(rib(a))).toEqual(["10.244.1.0/26", "10.244.3.0/26"]);
  });

  it("eBGP: prepends our AS, sets next hop self, drops LOCAL_PREF and received MED; the receiver sets the default LOCAL_PREF", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speaker(net, clock, "10.0.0.1", 65001, [{ address: "10.0.0.2", asn: 65002 }]);
    const b = speaker(net, clock, "10.0.0.2", 65002, [
      { address: "10.0.0.1", asn: 65001 },
      { address: "10.0.0.3", asn: 65003 },
    ]);
    const c = speaker(net, clock, "10.0.0.3", 65003, [{ address: "10.0.0.2", asn: 65002 }]);
    for (const s of [a, b, c]) await s.start();
    a.announce("192.168.0.0/24", { med: 10, localPref: 300, nextHop: "10.9.9.9" });
    await clock.advance(10);
    expect(rib(b)["192.168.0.0/24"]).toBe("10.9.9.9 [65001] lp=100");
    expect(b.route("192.168.0.0/24")!.attributes.med).toBe(10);
    expect(rib(c)["192.168.0.0/24"]).toBe("10.0.0.2 [65002 65001] lp=100");
    expect(c.route("192.168.0.0/24")!.attributes.med).toBeUndefined();
    // A route carrying our own AS comes back to nobody: c does not accept a's route via a loop.
    expect(a.candidates("192.168.0.0/24")).toHaveLength(1);
  });

  it("reports route events: added, changed, withdrawn", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.2", asn: 64512 }]);
    const b = speaker(net, clock, "10.0.0.2", 64512, [{ address: "10.0.0.1", asn: 64512 }]);
    const events: RouteEvent[] = [];
    a.onRouteChange((e) => events.push(e));
    await a.start();
    await b.start();
    b.announce("10.1.0.0/16");
    await clock.advance(1);
    b.announce("10.1.0.0/16", { localPref: 200 });
    await clock.advance(1);
    b.withdraw("10.1.0.0/16");
    await clock.advance(1);
    expect(events.map((e) => `${e.type} ${e.prefix} ${e.route?.attributes.localPref ?? ""}`)).toEqual(["added 10.1.0.0/16 100", "changed 10.1.0.0/16 200", "withdrawn 10.1.0.0/16 "]);
  });

  it("withdraws everything learned from a peer when its session drops", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.2", asn: 64512 }], { gracefulRestart: false });
    const b = speaker(net, clock, "10.0.0.2", 64512, [{ address: "10.0.0.1", asn: 64512 }], { gracefulRestart: false });
    await a.start();
    await b.start();
    b.announce(["10.1.0.0/16", "10.2.0.0/16"]);
    await clock.advance(1);
    expect(a.routeCount).toBe(2);
    net.reset("10.0.0.2");
    await clock.advance(0);
    expect(a.routeCount).toBe(0);
    expect(a.peerState("10.0.0.2")).not.toBe("Established");
    // And it comes back on its own.
    await clock.advance(5000);
    expect(a.peerState("10.0.0.2")).toBe("Established");
    expect(a.routeCount).toBe(2);
  });

  it("refuses bad options with BgpConfigError naming the field", () => {
    const cases: [Partial<SpeakerOptions>, string][] = [
      [{ asn: 0 }, "asn"],
      [{ routerId: "0.0.0.0" }, "routerId"],
      [{ holdTime: 2 }, "holdTime"],
      [{ peers: [{ address: "nope", asn: 1 }] }, "peers[0].address"],
      [
        {
          peers: [
            { address: "10.0.0.2", asn: 1 },
            { address: "10.0.0.2", asn: 2 },
          ],
        },
        "peers[1].address",
      ],
      [{ families: ["ipv5-unicast" as "ipv4-unicast"] }, "families[0]"],
    ];
    for (const [opts, field] of cases) {
      let err: unknown;
      try {
        new BgpSpeaker({ asn: 64512, routerId: "10.0.0.1", ...opts });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BgpConfigError);
      expect((err as BgpConfigError).field).toBe(field);
    }
    const s = new BgpSpeaker({ asn: 64512, routerId: "10.0.0.1" });
    expect(() => s.announce(["10.0.0.0/24", "10.0.0.1/24"])).toThrow(BgpConfigError);
    expect(s.routeCount).toBe(0);
  });
});

describe("iBGP full mesh and route reflection", () => {
  it("a 5-node full mesh: every node has every /26; iBGP-learned routes are not passed on", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const addrs = [1, 2, 3, 4, 5].map((i) => `10.0.0.${i}`);
    const nodes = addrs.map((me) =>
      speaker(
        net,
        clock,
        me,
        64512,
        addrs.filter((x) => x !== me).map((x) => ({ address: x, asn: 64512, passive: x < me })),
      ),
    );
    await Promise.all(nodes.map((n) => n.listen()));
    for (const n of nodes) await n.start();
    nodes.forEach((n, i) => n.announce(`10.244.${i}.0/26`));
    await clock.advance(10);
    for (const [i, n] of nodes.entries()) {
      expect(Object.keys(rib(n)).sort()).toEqual([0, 1, 2, 3, 4].map((k) => `10.244.${k}.0/26`));
      for (const peer of addrs.filter((x) => x !== addrs[i])) {
        expect(n.adjRibOut(peer).map((r) => r.prefix)).toEqual([`10.244.${i}.0/26`]);
      }
    }
  });

  it("a route reflector passes client routes to everyone and non-client routes to clients, adding ORIGINATOR_ID and CLUSTER_LIST", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const rr = speaker(
      net,
      clock,
      "10.0.0.100",
      64512,
      [
        { address: "10.0.0.1", asn: 64512, routeReflectorClient: true },
        { address: "10.0.0.2", asn: 64512, routeReflectorClient: true },
        { address: "10.0.0.3", asn: 64512 },
        { address: "10.0.0.4", asn: 64512 },
      ],
      { clusterId: "244.0.0.1" },
    );
    const mk = (a: string): BgpSpeaker => speaker(net, clock, a, 64512, [{ address: "10.0.0.100", asn: 64512 }]);
    const c1 = mk("10.0.0.1");
    const c2 = mk("10.0.0.2");
    const n3 = mk("10.0.0.3");
    const n4 = mk("10.0.0.4");
    for (const s of [rr, c1, c2, n3, n4]) await s.start();
    c1.announce("10.244.1.0/26");
    n3.announce("10.244.3.0/26");
    await clock.advance(10);
    expect(Object.keys(rib(c2)).sort()).toEqual(["10.244.1.0/26", "10.244.3.0/26"]);
    expect(Object.keys(rib(n4)).sort()).toEqual(["10.244.1.0/26"]);
    expect(Object.keys(rib(n3)).sort()).toEqual(["10.244.1.0/26", "10.244.3.0/26"]);
    const reflected = c2.route("10.244.1.0/26")!.attributes;
    expect(reflected).toMatchObject({ nextHop: "10.0.0.1", originatorId: "10.0.0.1", clusterList: ["244.0.0.1"], asPath: [] });
    expect(c2.route("10.244.3.0/26")!.attributes).toMatchObject({ nextHop: "10.0.0.3", originatorId: "10.0.0.3" });
    // The client's own route does not come back to it.
    expect(c1.candidates("10.244.1.0/26")).toHaveLength(1);
  });

  it("reflects a client's UPDATE as the same bytes to every other client (one UPDATE for routes of equal attributes), never back to its originator", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const rr = speaker(
      net,
      clock,
      "10.0.0.100",
      64512,
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map((address) => ({ address, asn: 64512, passive: true, routeReflectorClient: true })),
      { clusterId: "244.0.0.1" },
    );
    await rr.start();
    const raws = ["10.0.0.2", "10.0.0.3"].map((a) => new RawPeer({ network: net, address: a, asn: 64512, routerId: a }));
    for (const r of raws) {
      await r.dial("10.0.0.100");
      await r.establish();
    }
    const a = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.100", asn: 64512 }]);
    await a.start();
    await clock.advance(1);
    a.announce(["10.244.1.0/26", "10.244.1.64/26"]);
    await clock.advance(1);
    const reflected = raws.map((r) => r.raw.filter((m, i) => m[18] === 2 && (r.received[i] as UpdateMessage).nlri.length > 0));
    expect(reflected.map((list) => list.length)).toEqual([1, 1]);
    expect(reflected[1]![0]).toEqual(reflected[0]![0]);
    const update = raws[0]!.of("update").find((u) => u.nlri.length > 0)!;
    const [group] = routesFromUpdate(update, true);
    expect(group!.nlri.map((n) => n.prefix)).toEqual(["10.244.1.0/26", "10.244.1.64/26"]);
    expect(group!.attributes).toMatchObject({ nextHop: "10.0.0.1", originatorId: "10.0.0.1", clusterList: ["244.0.0.1"], asPath: [], localPref: 100 });
    expect(rr.adjRibOut("10.0.0.1")).toEqual([]);
    expect(a.candidates("10.244.1.0/26")).toHaveLength(1);
  });

  it("a reflected route is the same bytes for clients that were up before it and for a client whose initial table carries it; never sent to its originator; its withdrawal reaches every client that had it", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const clientAddrs = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
    const rr = speaker(
      net,
      clock,
      "10.0.0.100",
      64512,
      clientAddrs.map((address) => ({ address, asn: 64512, passive: true, routeReflectorClient: true })),
      { clusterId: "244.0.0.1" },
    );
    await rr.start();
    const early = ["10.0.0.3", "10.0.0.4"].map((a) => new RawPeer({ network: net, address: a, asn: 64512, routerId: a }));
    for (const r of early) {
      await r.dial("10.0.0.100");
      await r.establish();
    }
    const [c1, c2] = ["10.0.0.1", "10.0.0.2"].map((a) => speaker(net, clock, a, 64512, [{ address: "10.0.0.100", asn: 64512 }]));
    await c1!.start();
    await c2!.start();
    await clock.advance(1);
    // One route per round (the one-prefix path), then two prefixes of equal attributes in one round.
    c1!.announce("10.244.1.0/26");
    await clock.advance(1);
    c2!.announce("10.244.2.0/26");
    await clock.advance(1);
    c1!.announce(["10.244.1.64/26", "10.244.1.128/26"]);
    await clock.advance(1);
    // A client that comes up now gets all of it in its initial table.
    const late = new RawPeer({ network: net, address: "10.0.0.5", asn: 64512, routerId: "10.0.0.5" });
    await late.dial("10.0.0.100");
    await late.establish();
    await clock.advance(1);
    const announcements = (r: RawPeer): Map<string, Uint8Array> => {
      const out = new Map<string, Uint8Array>();
      r.received.forEach((m, i) => {
        if (m.type === "update" && m.nlri.length > 0) out.set(m.nlri.map((n) => n.prefix).join(" "), r.raw[i]!);
      });
      return out;
    };
    const seen = [...early, late].map(announcements);
    const expected = ["10.244.1.0/26", "10.244.2.0/26", "10.244.1.64/26 10.244.1.128/26"];
    expect([...seen[0]!.keys()]).toEqual(expected);
    expect([...seen[1]!.keys()]).toEqual(expected);
    for (const key of expected) expect(seen[1]!.get(key)).toEqual(seen[0]!.get(key));
    // The initial table packs prefixes of equal attributes together; c2's route is the same bytes.
    expect([...seen[2]!.keys()]).toEqual(["10.244.1.0/26 10.244.1.64/26 10.244.1.128/26", "10.244.2.0/26"]);
    expect(seen[2]!.get("10.244.2.0/26")).toEqual(seen[0]!.get("10.244.2.0/26"));
    const first = early[0]!.of("update").find((u) => u.nlri.length === 1 && u.nlri[0]!.prefix === "10.244.2.0/26")!;
    expect(routesFromUpdate(first, true)[0]!.attributes).toMatchObject({ nextHop: "10.0.0.2", originatorId: "10.0.0.2", clusterList: ["244.0.0.1"] });
    // Never back to the originator: each client speaker holds its own prefixes as its only candidates.
    expect(rr.adjRibOut("10.0.0.1").map((r) => r.prefix)).toEqual(["10.244.2.0/26"]);
    expect(
      rr
        .adjRibOut("10.0.0.2")
        .map((r) => r.prefix)
        .sort(),
    ).toEqual(["10.244.1.0/26", "10.244.1.128/26", "10.244.1.64/26"]);
    for (const p of ["10.244.1.0/26", "10.244.1.64/26", "10.244.1.128/26"]) expect(c1!.candidates(p)).toHaveLength(1);
    expect(c2!.candidates("10.244.2.0/26")).toHaveLength(1);
    expect(c2!.route("10.244.1.0/26")?.attributes.originatorId).toBe("10.0.0.1");
    // A withdrawal reaches every client that had the route, the late one included, and nobody else.
    const before = [...early, late].map((r) => r.of("update").length);
    c1!.withdraw("10.244.1.0/26");
    await clock.advance(1);
    [...early, late].forEach((r, i) => {
      const fresh = r.of("update").slice(before[i]);
      expect(fresh).toEqual([{ type: "update", withdrawn: [{ prefix: "10.244.1.0/26" }], attributes: [], nlri: [] }]);
    });
    expect(c2!.route("10.244.1.0/26")).toBeUndefined();
    expect(c1!.route("10.244.1.0/26")).toBeUndefined();
    for (const a of ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]) expect(rr.adjRibOut(a).map((r) => r.prefix)).not.toContain("10.244.1.0/26");
    await Promise.all([rr.stop(), c1!.stop(), c2!.stop()]);
  });

  it("full mesh: a prefix whose best flips between an iBGP-learned and a local route is announced to and withdrawn from the other peers", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const addrs = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    const [x, y, z] = addrs.map((me) =>
      speaker(
        net,
        clock,
        me,
        64512,
        addrs.filter((o) => o !== me).map((o) => ({ address: o, asn: 64512, passive: o < me })),
      ),
    ) as [BgpSpeaker, BgpSpeaker, BgpSpeaker];
    await Promise.all([x, y, z].map((n) => n.listen()));
    for (const n of [x, y, z]) await n.start();
    y.announce("10.244.9.0/26");
    await clock.advance(10);
    expect(x.route("10.244.9.0/26")?.source.address).toBe("10.0.0.2");
    expect(x.adjRibOut("10.0.0.3")).toEqual([]);
    x.announce("10.244.9.0/26");
    await clock.advance(1);
    expect(
      z
        .candidates("10.244.9.0/26")
        .map((r) => r.source.address)
        .sort(),
    ).toEqual(["10.0.0.1", "10.0.0.2"]);
    x.withdraw("10.244.9.0/26");
    await clock.advance(1);
    expect(x.route("10.244.9.0/26")?.source.address).toBe("10.0.0.2");
    expect(x.adjRibOut("10.0.0.3")).toEqual([]);
    expect(z.candidates("10.244.9.0/26").map((r) => r.source.address)).toEqual(["10.0.0.2"]);
  });

  it("two reflectors of one cluster ignore each other's reflections of their clients (CLUSTER_LIST loop)", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const rrPeers = (other: string): PeerConfig[] => [
      { address: "10.0.0.1", asn: 64512, routeReflectorClient: true },
      { address: other, asn: 64512 },
    ];
    const rr1 = speaker(net, clock, "10.0.0.101", 64512, rrPeers("10.0.0.102"), { clusterId: "244.0.0.1" });
    const rr2 = speaker(net, clock, "10.0.0.102", 64512, rrPeers("10.0.0.101"), { clusterId: "244.0.0.1" });
    const c = speaker(net, clock, "10.0.0.1", 64512, [
      { address: "10.0.0.101", asn: 64512 },
      { address: "10.0.0.102", asn: 64512 },
    ]);
    for (const s of [rr1, rr2, c]) await s.start();
    c.announce("10.244.1.0/26");
    await clock.advance(10);
    const viaRr1 = rr2.candidates("10.244.1.0/26").find((r) => r.source.address === "10.0.0.101");
    expect(viaRr1?.ineligible).toBe("CLUSTER_LIST contains our CLUSTER_ID");
    expect(rr2.route("10.244.1.0/26")!.source.address).toBe("10.0.0.1");
    // The client hears its own route from neither reflector (it is the source).
    expect(c.candidates("10.244.1.0/26")).toHaveLength(1);
  });

  it("a route carrying our own BGP Identifier as ORIGINATOR_ID is ignored", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const s = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.9", asn: 64512, passive: true }]);
    await s.start();
    const raw = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9" });
    await raw.dial("10.0.0.1");
    await raw.establish();
    raw.sendMessage({
      type: "update",
      withdrawn: [],
      attributes: [
        { type: "origin", flags: 0x40, value: 0 },
        { type: "as-path", flags: 0x40, segments: [] },
        { type: "next-hop", flags: 0x40, value: "10.0.0.5" },
        { type: "local-pref", flags: 0x40, value: 100 },
        { type: "originator-id", flags: 0x80, value: "10.0.0.1" },
        { type: "cluster-list", flags: 0x80, values: ["1.1.1.1"] },
      ],
      nlri: [{ prefix: "10.7.0.0/16" }],
    });
    await settle();
    expect(s.candidates("10.7.0.0/16")[0]?.ineligible).toBe("ORIGINATOR_ID is our BGP Identifier");
    expect(s.route("10.7.0.0/16")).toBeUndefined();
  });
});

describe("packing, End-of-RIB and route refresh as seen on the wire", () => {
  async function setup(extra: Partial<SpeakerOptions> = {}): Promise<{ s: BgpSpeaker; raw: RawPeer; net: MemoryNetwork }> {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const s = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.9", asn: 64512, passive: true }], extra);
    await s.start();
    const raw = new RawPeer({ network: net, address: "10.0.0.9", asn: 64512, routerId: "10.0.0.9" });
    await raw.dial("10.0.0.1");
    return { s, raw, net };
  }

  it("sends 10,000 /26 in 13 UPDATEs and then End-of-RIB for each family", async () => {
    const { s, raw } = await setup();
    s.announce(Array.from({ length: 10_000 }, (_, i) => `10.${128 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`));
    await raw.establish();
    const updates = raw.of("update");
    const withNlri = updates.filter((u) => u.nlri.length > 0);
    expect(withNlri).toHaveLength(13);
    expect(withNlri.reduce((n, u) => n + u.nlri.length, 0)).toBe(10_000);
    expect(raw.raw.filter((m) => m[18] === 2).every((m) => m.length <= 4096)).toBe(true);
    // Then End-of-RIB: IPv4 (empty UPDATE) and IPv6 (empty MP_UNREACH_NLRI).
    const tail = updates.slice(withNlri.length);
    expect(tail).toHaveLength(2);
    expect(tail[0]).toEqual({ type: "update", withdrawn: [], attributes: [], nlri: [] });
    expect(tail[1]!.attributes).toEqual([{ type: "mp-unreach", flags: 0x80, afi: 2, safi: 1, withdrawn: [] }]);
  });

  it("answers ROUTE-REFRESH by sending the table again between BoRR and EoRR (RFC 7313)", async () => {
    const { s, raw } = await setup();
    s.announce(["10.1.0.0/16", "10.2.0.0/16"]);
    await raw.establish();
    const before = raw.received.length;
    raw.sendMessage({ type: "route-refresh", afi: 1, safi: 1, subtype: 0 });
    await settle();
    const after = raw.received.slice(before);
    expect(after.map((m) => (m.type === "route-refresh" ? `rr${m.subtype}` : m.type))).toEqual(["rr1", "update", "rr2"]);
    expect((after[1] as UpdateMessage).nlri.map((n) => n.prefix)).toEqual(["10.1.0.0/16", "10.2.0.0/16"]);
  });

  it("carries IPv6 routes in MP_REACH_NLRI with the configured IPv6 next hop", async () => {
    const { s, raw } = await setup({ localAddress6: "2001:db8::1" });
    s.announce("2001:db8:100::/56");
    await raw.establish();
    const u = raw.of("update").find((m) => m.attributes.some((a) => a.type === "mp-reach"))!;
    expect(routesFromUpdate(u, true)).toEqual([{ afi: 2, safi: 1, attributes: { origin: 0, asPath: [], nextHop: "2001:db8::1", localPref: 100 }, nlri: [{ prefix: "2001:db8:100::/56" }] }]);
  });

  it("ADD-PATH: path ids from the peer keep several paths of one prefix apart", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const s = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.9", asn: 64512, passive: true }], { addPath: "receive" });
    await s.start();
    const raw = new RawPeer({
      network: net,
      address: "10.0.0.9",
      asn: 64512,
      routerId: "10.0.0.9",
      capabilities: [...RawPeer.defaultCapabilities(64512), { kind: "add-path", families: [{ afi: 1, safi: 1, mode: 3 }] }],
    });
    await raw.dial("10.0.0.1");
    await raw.establish();
    expect(s.peerStatus()[0]!.negotiated!.addPathReceive).toEqual(["1/1"]);
    raw.codec = { fourOctetAs: true, addPath: new Set(["1/1"]) };
    const attrs = (nh: string, lp: number): UpdateMessage["attributes"] => [
      { type: "origin", flags: 0x40, value: 0 },
      { type: "as-path", flags: 0x40, segments: [] },
      { type: "next-hop", flags: 0x40, value: nh },
      { type: "local-pref", flags: 0x40, value: lp },
    ];
    raw.sendMessage({ type: "update", withdrawn: [], attributes: attrs("10.0.0.5", 100), nlri: [{ prefix: "10.7.0.0/16", pathId: 1 }] });
    raw.sendMessage({ type: "update", withdrawn: [], attributes: attrs("10.0.0.6", 200), nlri: [{ prefix: "10.7.0.0/16", pathId: 2 }] });
    await settle();
    expect(s.candidates("10.7.0.0/16")).toHaveLength(2);
    expect(s.route("10.7.0.0/16")!.attributes.nextHop).toBe("10.0.0.6");
    raw.sendMessage({ type: "update", withdrawn: [{ prefix: "10.7.0.0/16", pathId: 2 }], attributes: [], nlri: [] });
    await settle();
    expect(s.route("10.7.0.0/16")!.attributes.nextHop).toBe("10.0.0.5");
  });
});

describe("import and export policy hooks", () => {
  it("import policy can reject or rewrite routes; export policy can hide routes from one peer", async () => {
    const net = new MemoryNetwork();
    const clock = new TestClock();
    const a = speaker(net, clock, "10.0.0.1", 64512, [{ address: "10.0.0.2", asn: 64512 }], {
      importPolicy: ({ prefix, attributes }) => (prefix.startsWith("10.66.") ? null : { ...attributes, localPref: 555 }),
    });
    const b = speaker(
      net,
      clock,
      "10.0.0.2",
      64512,
      [
        { address: "10.0.0.1", asn: 64512 },
        { address: "10.0.0.3", asn: 64512 },
      ],
      { exportPolicy: ({ prefix, attributes, peer }) => (peer.address === "10.0.0.3" && prefix === "10.5.0.0/16" ? null : attributes) },
    );
    const c = speaker(net, clock, "10.0.0.3", 64512, [{ address: "10.0.0.2", asn: 64512 }]);
    for (const s of [a, b, c]) await s.start();
    b.announce(["10.5.0.0/16", "10.66.0.0/16", "10.6.0.0/16"]);
    await clock.advance(10);
    expect(rib(a)).toEqual({ "10.5.0.0/16": "10.0.0.2 [] lp=555", "10.6.0.0/16": "10.0.0.2 [] lp=555" });
    expect(Object.keys(rib(c))).toEqual(["10.6.0.0/16", "10.66.0.0/16"]);
  });
});
