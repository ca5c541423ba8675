// Interop with GoBGP (Debian gobgpd), one gobgpd per test on its own loopback address, its gRPC API
// on a free loopback port, driven with the `gobgp` CLI and stopped by PID. Fails (does not skip)
// when gobgpd is missing. Trap: gobgpd treats a 127/8 NEXT_HOP as a withdraw, so the routes we send
// it carry 198.51.100.x next hops.
import { afterEach, describe, expect, it } from "vitest";
import type { SpeakerOptions } from "../src/config.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { tcpTransport } from "../src/transport/tcp.ts";
import { requireBinary, waitFor } from "../src/testing/daemons.ts";
import type { GobgpConfig, GobgpPath } from "./support/gobgp.ts";
import { Gobgp } from "./support/gobgp.ts";
import { freePort } from "./support/ports.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function ours(address: string, routerId: string, asn: number, extra: Partial<SpeakerOptions> = {}): Promise<{ s: BgpSpeaker; port: number }> {
  const transport = tcpTransport({ listenAddress: address, listenPort: 0 });
  const s = new BgpSpeaker({ asn, routerId, localAddress: address, transport, holdTime: 9, connectRetryTime: 1, ...extra });
  await s.listen();
  cleanups.push(() => s.stop());
  return { s, port: transport.boundPort()! };
}

async function gobgp(cfg: GobgpConfig): Promise<Gobgp> {
  const g = await Gobgp.start(cfg);
  cleanups.push(() => g.stop());
  return g;
}

function attr(p: GobgpPath | undefined, type: number): GobgpPath["attrs"][number] | undefined {
  return p?.attrs.find((a) => a.type === type);
}

const T = 60_000;

describe("interop with GoBGP", () => {
  it("gobgpd is installed", () => {
    expect(requireBinary("gobgpd", "gobgpd")).toMatch(/gobgpd$/);
    expect(requireBinary("gobgp", "gobgpd")).toMatch(/gobgp$/);
  });

  it(
    "session up with us active (gobgpd passive); routes flow both ways; withdrawals both ways",
    async () => {
      const gport = await freePort("127.0.2.1");
      const { s, port } = await ours("127.0.2.2", "10.255.2.2", 64512);
      const g = await gobgp({ routerId: "10.255.2.1", address: "127.0.2.1", port: gport, asn: 64512, peers: [{ address: "127.0.2.2", port, asn: 64512, passive: true }] });
      await g.addRoute("10.50.0.0/24", "198.51.100.50", "med", "20", "community", "65000:1");
      await g.addRoute("10.51.0.0/24", "198.51.100.51");
      s.announce(["10.210.0.0/24", "10.211.0.0/24"], { nextHop: "198.51.100.7", communities: ["64512:5"] });
      s.addPeer({ address: "127.0.2.1", port: gport, asn: 64512 });
      await s.start();
      await waitFor("Established", () => s.peerState("127.0.2.1") === "Established", 15_000);
      expect(await g.state("127.0.2.2")).toBe("established");
      await waitFor("gobgp's routes", () => s.routeCount === 4, 10_000);
      expect(s.route("10.50.0.0/24")!.attributes).toEqual({ origin: 2, asPath: [], nextHop: "198.51.100.50", med: 20, localPref: 100, communities: [65000 * 65536 + 1] });
      await waitFor("our routes in gobgp", async () => Object.keys(await g.adjIn("127.0.2.2")).length === 2, 10_000);
      const adj = await g.adjIn("127.0.2.2");
      const p = adj["10.210.0.0/24"]![0];
      expect(attr(p, 3)?.nexthop).toBe("198.51.100.7");
      expect(attr(p, 1)?.value).toBe(0);
      expect(attr(p, 8)?.communities).toEqual([64512 * 65536 + 5]);
      // Withdrawals: gobgp deletes one, we withdraw one.
      await g.deleteRoute("10.51.0.0/24");
      s.withdraw("10.211.0.0/24");
      await waitFor("gobgp's withdrawal", () => s.route("10.51.0.0/24") === undefined, 10_000);
      await waitFor("our withdrawal in gobgp", async () => Object.keys(await g.adjIn("127.0.2.2")).join() === "10.210.0.0/24", 10_000);
    },
    T,
  );

  it(
    "session up with us passive (gobgpd dials)",
    async () => {
      const gport = await freePort("127.0.2.3");
      const { s, port } = await ours("127.0.2.4", "10.255.2.4", 64512);
      s.addPeer({ address: "127.0.2.3", port: gport, asn: 64512, passive: true });
      s.announce("10.212.0.0/24", { nextHop: "198.51.100.8" });
      await s.start();
      const g = await gobgp({ routerId: "10.255.2.3", address: "127.0.2.3", port: gport, asn: 64512, peers: [{ address: "127.0.2.4", port, asn: 64512 }] });
      await waitFor("Established", () => s.peerState("127.0.2.3") === "Established", 15_000);
      await waitFor("our route in gobgp", async () => "10.212.0.0/24" in (await g.adjIn("127.0.2.4")), 10_000);
    },
    T,
  );

  it(
    "10,000 prefixes each way with the right content, then 5,000 withdrawn each way (gobgpd as eBGP transit between two of our speakers)",
    async () => {
      const gport = await freePort("127.0.2.5");
      const src = await ours("127.0.2.6", "10.255.2.6", 65010);
      const dst = await ours("127.0.2.7", "10.255.2.7", 65030);
      const g = await gobgp({
        routerId: "10.255.2.5",
        address: "127.0.2.5",
        port: gport,
        asn: 65020,
        peers: [
          { address: "127.0.2.6", port: src.port, asn: 65010, passive: true },
          { address: "127.0.2.7", port: dst.port, asn: 65030, passive: true },
        ],
      });
      const prefixes = Array.from({ length: 10_000 }, (_, i) => `10.${128 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`);
      src.s.announce(prefixes, { nextHop: "198.51.100.6", med: 3 });
      src.s.addPeer({ address: "127.0.2.5", port: gport, asn: 65020 });
      dst.s.addPeer({ address: "127.0.2.5", port: gport, asn: 65020 });
      await src.s.start();
      await dst.s.start();
      // Us -> gobgpd: 10,000 in its Adj-RIB-In from src, with our attributes.
      await waitFor("10,000 routes in gobgpd", async () => (await g.accepted("127.0.2.6")) === 10_000, 40_000, 200);
      const adj = await g.adjIn("127.0.2.6");
      expect(Object.keys(adj).sort()).toEqual([...prefixes].sort());
      for (const pfx of prefixes) {
        const p = adj[pfx]![0];
        expect(attr(p, 3)?.nexthop).toBe("198.51.100.6");
        expect(attr(p, 2)?.as_paths?.[0]?.asns).toEqual([65010]);
        expect(attr(p, 4)?.metric).toBe(3);
      }
      // gobgpd -> us: the same 10,000 at dst, through gobgpd's eBGP export.
      await waitFor("10,000 routes at dst", () => dst.s.routeCount === 10_000, 40_000);
      expect(
        dst.s
          .routes()
          .map((r) => r.prefix)
          .sort(),
      ).toEqual([...prefixes].sort());
      for (const r of dst.s.routes()) expect(r.attributes).toEqual({ origin: 0, asPath: [{ type: 2, asns: [65020, 65010] }], nextHop: "127.0.2.5", localPref: 100 });
      // Withdraw half: gobgpd drops them from its Adj-RIB-In and withdraws them towards dst.
      src.s.withdraw(prefixes.slice(0, 5_000));
      await waitFor("5,000 left in gobgpd", async () => (await g.accepted("127.0.2.6")) === 5_000, 40_000, 200);
      await waitFor("5,000 left at dst", () => dst.s.routeCount === 5_000, 40_000);
      expect(
        dst.s
          .routes()
          .map((r) => r.prefix)
          .sort(),
      ).toEqual(prefixes.slice(5_000).sort());
    },
    T * 2,
  );

  it(
    "iBGP with LOCAL_PREF both ways",
    async () => {
      const gport = await freePort("127.0.2.8");
      const { s, port } = await ours("127.0.2.9", "10.255.2.9", 64512);
      const g = await gobgp({ routerId: "10.255.2.8", address: "127.0.2.8", port: gport, asn: 64512, peers: [{ address: "127.0.2.9", port, asn: 64512, passive: true }] });
      await g.addRoute("10.52.0.0/24", "198.51.100.52", "local-pref", "300");
      s.announce("10.213.0.0/24", { nextHop: "198.51.100.9", localPref: 250 });
      s.addPeer({ address: "127.0.2.8", port: gport, asn: 64512 });
      await s.start();
      await waitFor("gobgp's route", () => s.route("10.52.0.0/24") !== undefined, 15_000);
      expect(s.route("10.52.0.0/24")!.attributes.localPref).toBe(300);
      await waitFor("our route in gobgp", async () => "10.213.0.0/24" in (await g.adjIn("127.0.2.9")), 10_000);
      expect(attr((await g.adjIn("127.0.2.9"))["10.213.0.0/24"]![0], 5)?.value).toBe(250);
    },
    T,
  );

  it(
    "hold timer expiry when gobgpd is frozen with SIGSTOP, and recovery after SIGCONT",
    async () => {
      const gport = await freePort("127.0.2.10");
      const { s, port } = await ours("127.0.2.11", "10.255.2.11", 64512, { holdTime: 3, gracefulRestart: false });
      const g = await gobgp({ routerId: "10.255.2.10", address: "127.0.2.10", port: gport, asn: 64512, peers: [{ address: "127.0.2.11", port, asn: 64512, passive: true, holdTime: 3 }] });
      await g.addRoute("10.53.0.0/24", "198.51.100.53");
      s.addPeer({ address: "127.0.2.10", port: gport, asn: 64512 });
      await s.start();
      await waitFor("gobgp's route", () => s.route("10.53.0.0/24") !== undefined, 15_000);
      g.daemon.freeze();
      const took = await waitFor("the session to drop", () => s.peerState("127.0.2.10") !== "Established", 10_000);
      expect(took).toBeGreaterThan(1_500);
      expect(s.peerStatus()[0]!.lastError).toMatch(/hold timer expired/);
      expect(s.route("10.53.0.0/24")).toBeUndefined();
      g.daemon.thaw();
      await waitFor("the session to come back", () => s.peerState("127.0.2.10") === "Established", 30_000);
      await waitFor("gobgp's route again", () => s.route("10.53.0.0/24") !== undefined, 10_000);
    },
    T,
  );

  it(
    "a wrong AS is answered with NOTIFICATION 2/2 in both directions",
    async () => {
      const gport = await freePort("127.0.2.12");
      const { s, port } = await ours("127.0.2.13", "10.255.2.13", 64512);
      const g = await gobgp({ routerId: "10.255.2.12", address: "127.0.2.12", port: gport, asn: 64512, peers: [{ address: "127.0.2.13", port, asn: 64512, passive: true }] });
      s.addPeer({ address: "127.0.2.12", port: gport, asn: 65099 });
      await s.start();
      await waitFor("our NOTIFICATION", () => /peer AS 64512, expected 65099/.test(s.peerStatus()[0]!.lastError ?? ""), 15_000);
      await waitFor("gobgpd to count the NOTIFICATION", async () => (await g.messagesReceived("127.0.2.13", "notification")) >= 1, 10_000);
      await s.stop();

      const gport2 = await freePort("127.0.2.14");
      const second = await ours("127.0.2.15", "10.255.2.15", 64512);
      await gobgp({ routerId: "10.255.2.14", address: "127.0.2.14", port: gport2, asn: 64512, peers: [{ address: "127.0.2.15", port: second.port, asn: 65098, passive: true }] });
      second.s.addPeer({ address: "127.0.2.14", port: gport2, asn: 64512 });
      await second.s.start();
      await waitFor("gobgpd's NOTIFICATION", () => second.s.peerStatus()[0]!.lastError === "NOTIFICATION 2/2 received", 15_000);
    },
    T,
  );
});
