// Interop with BIRD 2 (Debian bird2), started per test on its own loopback address and port and
// stopped by PID. Fails (does not skip) when bird2 is missing. Mind BIRD's traps: a 1 s connect
// delay (set here; its default is 5 s) and up to 3 s before the tail of its first table dump, so
// waits allow ≥ 5 s of slack.
import { afterEach, describe, expect, it } from "vitest";
import type { SpeakerOptions } from "../src/config.ts";
import { BgpSpeaker } from "../src/speaker.ts";
import { tcpTransport } from "../src/transport/tcp.ts";
import type { BirdConfig } from "../src/testing/bird.ts";
import { Bird } from "../src/testing/bird.ts";
import { requireBinary, waitFor } from "../src/testing/daemons.ts";
import { freePort } from "./support/ports.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Our speaker listening on `address` (free port), not started. */
async function ours(address: string, routerId: string, asn: number, extra: Partial<SpeakerOptions> = {}): Promise<{ s: BgpSpeaker; port: number }> {
  const transport = tcpTransport({ listenAddress: address, listenPort: 0 });
  const s = new BgpSpeaker({ asn, routerId, localAddress: address, transport, holdTime: 9, connectRetryTime: 1, ...extra });
  await s.listen();
  cleanups.push(() => s.stop());
  return { s, port: transport.boundPort()! };
}

async function bird(cfg: BirdConfig): Promise<Bird> {
  const b = await Bird.start(cfg);
  cleanups.push(() => b.stop());
  return b;
}

const T = 60_000;

describe("interop with BIRD 2", () => {
  it("bird2 is installed", () => {
    expect(requireBinary("bird", "bird2")).toMatch(/bird$/);
    expect(requireBinary("birdc", "bird2")).toMatch(/birdc$/);
  });

  it(
    "session up with us active (BIRD passive); routes flow both ways with their attributes",
    async () => {
      const birdPort = await freePort("127.0.1.1");
      const { s, port } = await ours("127.0.1.2", "10.255.1.2", 64512);
      const b = await bird({
        routerId: "10.255.1.1",
        address: "127.0.1.1",
        port: birdPort,
        asn: 64512,
        routes: ["10.128.0.0/26", "10.128.0.64/26"],
        nextHopNetworks: ["198.51.100.0/24"],
        peers: [{ name: "ours", address: "127.0.1.2", port, asn: 64512, passive: true }],
      });
      s.announce("10.200.0.0/24", { nextHop: "198.51.100.7", med: 12, communities: ["64512:99"] });
      s.announce("10.201.0.0/24");
      s.addPeer({ address: "127.0.1.1", port: birdPort, asn: 64512 });
      await s.start();
      await waitFor("Established", () => s.peerState("127.0.1.1") === "Established");
      await waitFor("BIRD's routes", () => s.routeCount === 4, 10_000);
      expect(s.route("10.128.0.64/26")!.attributes).toEqual({ origin: 0, asPath: [], nextHop: "127.0.1.1", localPref: 100 });
      await waitFor("our routes in BIRD", async () => (await b.count("ours")) === 2, 10_000);
      const routes = await b.routes("ours");
      const r200 = routes.find((r) => r.prefix === "10.200.0.0/24")!;
      expect(r200.kind).toBe("unicast");
      expect(r200.attrs).toMatchObject({ origin: "IGP", as_path: "", next_hop: "198.51.100.7", local_pref: "100", med: "12", community: "(64512,99)" });
      expect(routes.find((r) => r.prefix === "10.201.0.0/24")!.attrs["next_hop"]).toBe("127.0.1.2");
      expect(await b.bgpState("ours")).toBe("Established");
    },
    T,
  );

  it(
    "session up with us passive (BIRD dials after its connect delay)",
    async () => {
      const birdPort = await freePort("127.0.1.3");
      const { s, port } = await ours("127.0.1.4", "10.255.1.4", 64512);
      s.addPeer({ address: "127.0.1.3", port: birdPort, asn: 64512, passive: true });
      s.announce("10.202.0.0/24", { nextHop: "198.51.100.8" });
      await s.start();
      const b = await bird({
        routerId: "10.255.1.3",
        address: "127.0.1.3",
        port: birdPort,
        asn: 64512,
        routes: ["10.129.0.0/26"],
        nextHopNetworks: ["198.51.100.0/24"],
        peers: [{ name: "ours", address: "127.0.1.4", port, asn: 64512 }],
      });
      await waitFor("Established", () => s.peerState("127.0.1.3") === "Established", 15_000);
      await waitFor("BIRD's route", () => s.route("10.129.0.0/26") !== undefined, 10_000);
      await waitFor("our route in BIRD", async () => (await b.count("ours")) === 1, 10_000);
    },
    T,
  );

  it(
    "eBGP: 10,000 prefixes each way with the right content, then withdrawals each way",
    async () => {
      const birdPort = await freePort("127.0.1.5");
      const { s, port } = await ours("127.0.1.6", "10.255.1.6", 65002);
      const birdRoutes = Array.from({ length: 10_000 }, (_, i) => `10.${128 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`);
      const ourRoutes = Array.from({ length: 10_000 }, (_, i) => `10.${192 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`);
      const b = await bird({
        routerId: "10.255.1.5",
        address: "127.0.1.5",
        port: birdPort,
        asn: 65001,
        routes: birdRoutes,
        peers: [{ name: "ours", address: "127.0.1.6", port, asn: 65002, passive: true }],
      });
      s.announce(ourRoutes, { communities: ["65002:1"] });
      s.addPeer({ address: "127.0.1.5", port: birdPort, asn: 65001 });
      await s.start();
      await waitFor("10,000 routes from BIRD", () => s.routeCount === 20_000, 30_000);
      const got = s.routes().filter((r) => r.source.kind === "peer");
      expect(got.map((r) => r.prefix).sort()).toEqual([...birdRoutes].sort());
      for (const r of got) expect(r.attributes).toEqual({ origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: "127.0.1.5", localPref: 100 });
      await waitFor("10,000 routes in BIRD", async () => (await b.count("ours")) === 10_000, 30_000);
      const inBird = await b.routes("ours");
      expect(inBird.map((r) => r.prefix).sort()).toEqual([...ourRoutes].sort());
      for (const r of inBird) expect(r.attrs).toMatchObject({ origin: "IGP", as_path: "65002", next_hop: "127.0.1.6", community: "(65002,1)" });
      // Withdrawals: half of ours, then all of BIRD's.
      s.withdraw(ourRoutes.slice(0, 5_000));
      await waitFor("BIRD to drop 5,000", async () => (await b.count("ours")) === 5_000, 30_000);
      expect((await b.routes("ours")).map((r) => r.prefix).sort()).toEqual(ourRoutes.slice(5_000).sort());
      await b.setEnabled("announce", false);
      await waitFor("BIRD's routes withdrawn", () => s.routeCount === 5_000, 30_000);
      expect(s.peerState("127.0.1.5")).toBe("Established");
    },
    T * 2,
  );

  it(
    "iBGP with LOCAL_PREF: BIRD sees ours, we see BIRD's",
    async () => {
      const birdPort = await freePort("127.0.1.7");
      const { s, port } = await ours("127.0.1.8", "10.255.1.8", 64512);
      const b = await bird({
        routerId: "10.255.1.7",
        address: "127.0.1.7",
        port: birdPort,
        asn: 64512,
        routes: ["10.130.0.0/26"],
        nextHopNetworks: ["198.51.100.0/24"],
        peers: [{ name: "ours", address: "127.0.1.8", port, asn: 64512, passive: true, exportFilter: `if proto = "announce" then { bgp_local_pref = 300; accept; } reject;` }],
      });
      s.announce("10.203.0.0/24", { nextHop: "198.51.100.9", localPref: 250 });
      s.addPeer({ address: "127.0.1.7", port: birdPort, asn: 64512 });
      await s.start();
      await waitFor("BIRD's route", () => s.route("10.130.0.0/26") !== undefined, 15_000);
      expect(s.route("10.130.0.0/26")!.attributes.localPref).toBe(300);
      await waitFor("our route in BIRD", async () => (await b.count("ours")) === 1, 10_000);
      expect((await b.routes("ours"))[0]!.attrs["local_pref"]).toBe("250");
    },
    T,
  );

  it(
    "hold timer expiry when BIRD is frozen with SIGSTOP, and recovery after SIGCONT",
    async () => {
      const birdPort = await freePort("127.0.1.9");
      const { s, port } = await ours("127.0.1.10", "10.255.1.10", 64512, { holdTime: 3, gracefulRestart: false });
      const b = await bird({
        routerId: "10.255.1.9",
        address: "127.0.1.9",
        port: birdPort,
        asn: 64512,
        routes: ["10.131.0.0/26"],
        peers: [{ name: "ours", address: "127.0.1.10", port, asn: 64512, passive: true, holdTime: 3 }],
      });
      s.addPeer({ address: "127.0.1.9", port: birdPort, asn: 64512 });
      await s.start();
      await waitFor("BIRD's route", () => s.route("10.131.0.0/26") !== undefined, 15_000);
      expect(s.peerStatus()[0]!.negotiated!.holdTime).toBe(3);
      b.daemon.freeze();
      const took = await waitFor("the session to drop", () => s.peerState("127.0.1.9") !== "Established", 10_000);
      expect(took).toBeGreaterThan(1_500);
      expect(s.peerStatus()[0]!.lastError).toMatch(/hold timer expired/);
      expect(s.route("10.131.0.0/26")).toBeUndefined();
      b.daemon.thaw();
      await waitFor("the session to come back", () => s.peerState("127.0.1.9") === "Established", 30_000);
      await waitFor("BIRD's route again", () => s.route("10.131.0.0/26") !== undefined, 10_000);
    },
    T,
  );

  it(
    "a wrong AS is answered with NOTIFICATION 2/2 in both directions",
    async () => {
      const birdPort = await freePort("127.0.1.11");
      const { s, port } = await ours("127.0.1.12", "10.255.1.12", 64512);
      const b = await bird({
        routerId: "10.255.1.11",
        address: "127.0.1.11",
        port: birdPort,
        asn: 64512,
        peers: [{ name: "ours", address: "127.0.1.12", port, asn: 64512, passive: true }],
      });
      // We expect AS 65099, BIRD is 64512: we send Bad Peer AS.
      s.addPeer({ address: "127.0.1.11", port: birdPort, asn: 65099 });
      await s.start();
      await waitFor("BIRD to report our NOTIFICATION", async () => /Bad peer AS/i.test((await b.lastError("ours")) ?? ""), 15_000);
      expect(s.peerStatus()[0]!.lastError).toMatch(/peer AS 64512, expected 65099/);
      await s.stop();

      // BIRD expects AS 65098 for us: BIRD sends Bad Peer AS.
      const birdPort2 = await freePort("127.0.1.13");
      const second = await ours("127.0.1.14", "10.255.1.14", 64512);
      await bird({
        routerId: "10.255.1.13",
        address: "127.0.1.13",
        port: birdPort2,
        asn: 64512,
        peers: [{ name: "ours", address: "127.0.1.14", port: second.port, asn: 65098, passive: true }],
      });
      second.s.addPeer({ address: "127.0.1.13", port: birdPort2, asn: 64512 });
      await second.s.start();
      await waitFor("BIRD's NOTIFICATION", () => second.s.peerStatus()[0]!.lastError === "NOTIFICATION 2/2 received", 15_000);
    },
    T,
  );

  it(
    "BIRD as route reflector with our speakers as clients",
    async () => {
      const birdPort = await freePort("127.0.1.20");
      const clients = await Promise.all([21, 22, 23].map((i) => ours(`127.0.1.${i}`, `10.255.1.${i}`, 64512)));
      await bird({
        routerId: "10.255.1.20",
        address: "127.0.1.20",
        port: birdPort,
        asn: 64512,
        rrClusterId: "10.255.0.1",
        nextHopNetworks: ["198.51.100.0/24"],
        peers: clients.map((c, k) => ({
          name: `c${k}`,
          address: `127.0.1.${21 + k}`,
          port: c.port,
          asn: 64512,
          passive: true,
          rrClient: true,
          exportFilter: `if proto = "nexthops" then reject; accept;`,
        })),
      });
      for (const [k, c] of clients.entries()) {
        c.s.addPeer({ address: "127.0.1.20", port: birdPort, asn: 64512 });
        c.s.announce(`10.60.${k}.0/24`, { nextHop: `198.51.100.${21 + k}` });
        await c.s.start();
      }
      for (const [k, c] of clients.entries()) {
        await waitFor(`client ${k} to have all three routes`, () => c.s.routeCount === 3, 15_000);
        for (const j of [0, 1, 2].filter((x) => x !== k)) {
          expect(c.s.route(`10.60.${j}.0/24`)!.attributes).toMatchObject({ nextHop: `198.51.100.${21 + j}`, originatorId: `10.255.1.${21 + j}`, clusterList: ["10.255.0.1"], localPref: 100 });
        }
      }
    },
    T,
  );

  it(
    "our speaker as route reflector with BIRD instances as clients",
    async () => {
      const { s, port } = await ours("127.0.1.30", "10.255.1.30", 64512, { clusterId: "10.255.0.2" });
      const ports = [await freePort("127.0.1.31"), await freePort("127.0.1.32")];
      const birds = await Promise.all(
        [0, 1].map((k) =>
          bird({
            routerId: `10.255.1.${31 + k}`,
            address: `127.0.1.${31 + k}`,
            port: ports[k]!,
            asn: 64512,
            routes: [`10.61.${k}.0/24`],
            peers: [{ name: "reflector", address: "127.0.1.30", port, asn: 64512, passive: true }],
          }),
        ),
      );
      for (const k of [0, 1]) s.addPeer({ address: `127.0.1.${31 + k}`, port: ports[k]!, asn: 64512, routeReflectorClient: true });
      await s.start();
      for (const [k, b] of birds.entries()) {
        const other = 1 - k;
        await waitFor(`BIRD ${k} to learn the other client's route`, async () => (await b.count("reflector")) === 1, 15_000);
        const [r] = await b.routes("reflector");
        expect(r!.prefix).toBe(`10.61.${other}.0/24`);
        expect(r!.attrs).toMatchObject({ next_hop: `127.0.1.${31 + other}`, originator_id: `10.255.1.${31 + other}`, cluster_list: "10.255.0.2", local_pref: "100" });
      }
    },
    T,
  );
});
