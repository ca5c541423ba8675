// BGP benchmarks for bgp-utils-free, side by side with BIRD 2 where it makes sense. Wall-clock
// figures from performance.now() on this machine; nothing here asserts a speed.
//
//  (a) codec throughput: decode and encode of 10,000 IPv4 /26 sharing attributes (13 UPDATEs);
//  (b) K-node iBGP full mesh (K = 5, 10, 20; each node originates one /26; Calico-like: the lower
//      address of each pair is passive): cold start (t0 = before the speakers are created / the
//      daemons spawned; done when every node's Loc-RIB holds all K /26 with the right next hops)
//      and one-announce convergence (t0 = the announce call / the `enable` on BIRD's control
//      socket; done when every other node has it). Ours: K speakers in this process over TCP on
//      127.0.3.x. BIRD: K daemons on 127.0.4.x with Calico's timers (connect delay 1 s, retry 3 s),
//      and once more with connect delay 0; BIRD's cold start is polled over the control sockets,
//      its one-announce is timed at an eBGP monitor speaker of ours peered with every BIRD (so it
//      includes one extra BIRD→monitor hop). Median of BGP_BENCH_RUNS (default 3) runs.
//  (c) 10,000 routes over one established session: ours → BIRD (polled over BIRD's control
//      socket) and BIRD → ours (t0 = `enable` of a static protocol, done at our 10,000th route).
//  (d) route reflection with BGP_BENCH_RR_CLIENTS (default 1,000) in-process clients over the
//      memory transport, each originating one /26: cold start and one-announce, with the number of
//      UPDATEs the reflector sent.
//      Then the same clients over TCP on loopback against a reflector in its own process: ours (the
//      package's command, `bgp-utils-free run <config> --quiet`, from source) and BIRD 2, in the same
//      run: cold start wall, the reflector process's CPU, and the ratios.
//
// Run alone: pnpm exec tsx --conditions=source scripts/bench/bgp.ts
// Needs the Debian packages bird2 (for b and c). BGP_BENCH_K=5,10 limits the mesh sizes.
// BGP_BENCH_SECTIONS=a,b,c,d (default all) runs only the listed sections.
import { BgpSpeaker, decodeMessage, encodeRouteAttributes, MemoryNetwork, packUpdates, tcpTransport } from "../../packages/bgp-utils-free/src/index.ts";
import type { UpdateMessage } from "../../packages/bgp-utils-free/src/index.ts";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Bird, type BirdControl, Daemon, removeDir, tempDir, waitFor } from "bgp-utils-free/testing";
import { writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { processCpuMs } from "./figures.ts";
import { freePort } from "../../packages/bgp-utils-free/test/support/ports.ts";

export interface BgpFigure {
  name: string;
  value: number;
  unit: string;
}

const RUNS = Number(process.env["BGP_BENCH_RUNS"] ?? 3);
const KS = (process.env["BGP_BENCH_K"] ?? "5,10,20").split(",").map(Number);
const RR_CLIENTS = Number(process.env["BGP_BENCH_RR_CLIENTS"] ?? 1000);
const SECTIONS = new Set((process.env["BGP_BENCH_SECTIONS"] ?? "a,b,c,d").split(","));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves once `check()` holds, re-checking whenever `subscribe`'s callback fires; rejects after `timeoutMs`. */
function until(what: string, check: () => boolean, subscribe: (fn: () => void) => () => void, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    if (check()) {
      resolve(performance.now());
      return;
    }
    const timer = setTimeout(() => {
      off();
      reject(new Error(`bench: timed out waiting for ${what}`));
    }, timeoutMs);
    const off = subscribe(() => {
      if (check()) {
        const t = performance.now();
        clearTimeout(timer);
        off();
        resolve(t);
      }
    });
  });
}

/** Polls `check` as fast as it answers; resolves to the time it first held. */
async function poll(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now();
    if (performance.now() - start > timeoutMs) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(1);
  }
}

function prefixes(n: number, firstOctet2: number): string[] {
  return Array.from({ length: n }, (_, i) => `10.${firstOctet2 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`);
}

// ---------------------------------------------------------------- (a) codec

function benchCodec(): BgpFigure[] {
  const nlri = prefixes(10_000, 128).map((prefix) => ({ prefix }));
  const attrs = encodeRouteAttributes({ origin: 0, asPath: [], nextHop: "198.51.100.1", localPref: 100 }, { fourOctetAs: true, afi: 1 });
  const codec = { fourOctetAs: true };
  const pack = (): Uint8Array[] => packUpdates({ afi: 1, safi: 1, withdraw: [], announce: [{ attributes: attrs, nextHop: ["198.51.100.1"], nlri }], codec });
  const messages = pack();
  const rate = (fn: () => void): number => {
    for (let i = 0; i < 3; i++) fn();
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < 1500) {
      fn();
      n++;
    }
    return (n * 10_000) / ((performance.now() - start) / 1000);
  };
  const decode = rate(() => {
    let count = 0;
    for (const m of messages) count += (decodeMessage(m, codec) as UpdateMessage).nlri.length;
    if (count !== 10_000) throw new Error("bench: decode lost prefixes");
  });
  const encode = rate(() => {
    if (pack().length !== messages.length) throw new Error("bench: encode changed");
  });
  return [
    { name: `codec decode (10,000 /26 in ${messages.length} UPDATEs)`, value: decode, unit: "prefixes/s" },
    { name: `codec encode + pack (10,000 /26 into ${messages.length} UPDATEs)`, value: encode, unit: "prefixes/s" },
  ];
}

// ---------------------------------------------------------------- (b) full mesh, ours

interface MeshResult {
  cold: number;
  announce: number;
}

async function ourMesh(k: number): Promise<MeshResult> {
  const addrs = Array.from({ length: k }, (_, i) => `127.0.3.${i + 1}`);
  const ports = await Promise.all(addrs.map((a) => freePort(a)));
  const routes = addrs.map((_, i) => `10.${100 + k}.${i}.0/26`);
  const t0 = performance.now();
  const nodes = addrs.map((a, i) => {
    const s = new BgpSpeaker({
      asn: 64512,
      routerId: `10.254.3.${i + 1}`,
      localAddress: a,
      transport: tcpTransport({ listenAddress: a, listenPort: ports[i]! }),
      holdTime: 240,
      connectRetryTime: 3,
      peers: addrs.flatMap((b, j) => (j === i ? [] : [{ address: b, port: ports[j]!, asn: 64512, passive: j > i }])),
    });
    s.announce(routes[i]!);
    return s;
  });
  // Calico: on each pair the lower address is passive and the higher one dials.
  const complete = (n: BgpSpeaker): boolean => routes.every((p, j) => n.route(p)?.attributes.nextHop === addrs[j]);
  const subscribeAll = (fn: () => void): (() => void) => {
    const offs = nodes.map((n) => n.onRouteChange(fn));
    return () => offs.forEach((o) => o());
  };
  try {
    await Promise.all(nodes.map((n) => n.listen()));
    for (const n of nodes) await n.start();
    const tc = await until(`our ${k}-mesh to converge`, () => nodes.every(complete), subscribeAll, 60_000);
    const extra = `10.${100 + k}.250.0/26`;
    await sleep(300); // quiet period: every ACK is in before the trigger
    const t1 = performance.now();
    nodes[0]!.announce(extra);
    const ta = await until("the announcement to reach everyone", () => nodes.every((n) => n.route(extra) !== undefined), subscribeAll, 30_000);
    return { cold: tc - t0, announce: ta - t1 };
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

// ---------------------------------------------------------------- (b) full mesh, BIRD

async function birdMesh(k: number, connectDelay: number): Promise<MeshResult> {
  const addrs = Array.from({ length: k }, (_, i) => `127.0.4.${i + 1}`);
  const ports = await Promise.all(addrs.map((a) => freePort(a)));
  const routes = addrs.map((_, i) => `10.${150 + k}.${i}.0/26`);
  const extra = `10.${150 + k}.250.0/26`;
  // The monitor: one eBGP session per BIRD, timestamps what each BIRD exports.
  const monAddr = "127.0.4.250";
  const monTransport = tcpTransport({ listenAddress: monAddr, listenPort: 0 });
  const arrivals = new Map<string, number>();
  const monitor = new BgpSpeaker({
    asn: 65535,
    routerId: "10.254.4.250",
    localAddress: monAddr,
    transport: monTransport,
    holdTime: 240,
    connectRetryTime: 1,
    importPolicy: ({ prefix, attributes, peer }) => {
      const key = `${peer.address}|${prefix}`;
      if (!arrivals.has(key)) arrivals.set(key, performance.now());
      return attributes;
    },
  });
  await monitor.listen();
  const monPort = monTransport.boundPort()!;
  const birds: Bird[] = [];
  const controls: BirdControl[] = [];
  try {
    const t0 = performance.now();
    const started = await Promise.all(
      addrs.map((a, i) =>
        Bird.start(
          {
            routerId: `10.254.4.${i + 1}`,
            address: a,
            port: ports[i]!,
            asn: 64512,
            routes: [routes[i]!],
            disabledRoutes: i === 0 ? [extra] : [],
            peers: [
              ...addrs.flatMap((b, j) =>
                j === i ? [] : [{ name: `mesh${j}`, address: b, port: ports[j]!, asn: 64512, passive: j > i, holdTime: 240, connectDelay, gracefulRestart: true, addPaths: true }],
              ),
              { name: "monitor", address: monAddr, port: monPort, asn: 65535, passive: true, holdTime: 240, exportFilter: "all" },
            ],
          },
          { check: false },
        ),
      ),
    );
    birds.push(...started);
    controls.push(...(await Promise.all(birds.map((b) => b.control()))));
    const has = async (c: BirdControl): Promise<boolean> => {
      const out = await c.command("show route");
      return routes.every((p) => out.includes(p));
    };
    const tc = await poll(`BIRD ${k}-mesh to converge`, async () => (await Promise.all(controls.map(has))).every(Boolean), 60_000);
    // One-announce: wait until the monitor has every BIRD's view, then enable `extra` on BIRD 0.
    for (const [i, a] of addrs.entries()) monitor.addPeer({ address: a, port: ports[i]!, asn: 64512 });
    await monitor.start();
    await poll("the monitor to hear every BIRD", async () => addrs.every((a) => routes.every((p) => arrivals.has(`${a}|${p}`))), 30_000);
    await sleep(300); // quiet period: every ACK is in before the trigger
    const t1 = performance.now();
    await controls[0]!.command("enable extra");
    await poll("the announcement at every BIRD (seen by the monitor)", async () => addrs.slice(1).every((a) => arrivals.has(`${a}|${extra}`)), 30_000);
    const ta = Math.max(...addrs.slice(1).map((a) => arrivals.get(`${a}|${extra}`)!));
    return { cold: tc - t0, announce: ta - t1 };
  } finally {
    for (const c of controls) c.close();
    await monitor.stop();
    await Promise.all(birds.map((b) => b.stop()));
  }
}

// ---------------------------------------------------------------- (c) 10k over one session

async function tenThousand(): Promise<{ toBird: number; fromBird: number }> {
  const birdPort = await freePort("127.0.5.1");
  const transport = tcpTransport({ listenAddress: "127.0.5.2", listenPort: 0 });
  const s = new BgpSpeaker({ asn: 64512, routerId: "10.254.5.2", localAddress: "127.0.5.2", transport, holdTime: 240 });
  await s.listen();
  const ours = prefixes(10_000, 192);
  const theirs = prefixes(10_000, 128);
  const b = await Bird.start({
    routerId: "10.254.5.1",
    address: "127.0.5.1",
    port: birdPort,
    asn: 64512,
    disabledRoutes: theirs,
    peers: [{ name: "ours", address: "127.0.5.2", port: transport.boundPort()!, asn: 64512, passive: true, holdTime: 240 }],
  });
  const c = await b.control();
  try {
    s.addPeer({ address: "127.0.5.1", port: birdPort, asn: 64512 });
    await s.start();
    await until(
      "the session",
      () => s.peerState("127.0.5.1") === "Established",
      (fn) => s.onSessionState(fn),
      20_000,
    );
    await sleep(500);
    // BIRD -> ours
    const t2 = performance.now();
    await c.command("enable extra");
    const t3 = await until(
      "10,000 routes from BIRD",
      () => s.routeCount === 10_000,
      (fn) => s.onRouteChange(fn),
      60_000,
    );
    if (!theirs.every((p) => s.route(p)?.attributes.nextHop === "127.0.5.1")) throw new Error("bench: our table differs from what BIRD sent");
    await sleep(500);
    // ours -> BIRD
    const t0 = performance.now();
    s.announce(ours);
    const t1 = await poll("10,000 routes in BIRD", async () => /(\d+) of \d+ routes/.exec(await c.command("show route protocol ours count"))?.[1] === "10000", 60_000);
    const inBird = (await b.routes("ours")).map((r) => r.prefix).sort();
    if (inBird.join() !== [...ours].sort().join()) throw new Error("bench: BIRD's table differs from what we sent");
    return { toBird: t1 - t0, fromBird: t3 - t2 };
  } finally {
    c.close();
    await s.stop();
    await b.stop();
  }
}

// ---------------------------------------------------------------- (d) route reflection, in-process

/** A route reflector (cluster 244.0.0.1, AS 64512) on a memory network, with `n` passive RR clients configured at `addr(i)`. */
function memoryReflector(n: number): { net: MemoryNetwork; rrAddr: string; addr: (i: number) => string; rr: BgpSpeaker } {
  const net = new MemoryNetwork();
  const rrAddr = "10.0.0.1";
  const addr = (i: number): string => `10.1.${i >> 8}.${i & 255}`;
  const rr = new BgpSpeaker({
    asn: 64512,
    routerId: rrAddr,
    localAddress: rrAddr,
    transport: net.transport(rrAddr),
    holdTime: 240,
    clusterId: "244.0.0.1",
    peers: Array.from({ length: n }, (_, i) => ({ address: addr(i), asn: 64512, passive: true, routeReflectorClient: true })),
  });
  return { net, rrAddr, addr, rr };
}

async function reflection(n: number): Promise<{ cold: number; coldCpu: number; announce: number; updates: number; routes: number }> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const { net, rrAddr, addr, rr } = memoryReflector(n);
  const clients = Array.from({ length: n }, (_, i) => {
    const s = new BgpSpeaker({ asn: 64512, routerId: addr(i), localAddress: addr(i), transport: net.transport(addr(i)), listen: false, holdTime: 240, peers: [{ address: rrAddr, asn: 64512 }] });
    s.announce(`10.${64 + (i >> 8)}.${i & 255}.0/26`);
    return s;
  });
  let complete = 0;
  const counts = new Array<number>(n).fill(0);
  let announced = 0;
  const extra = "10.200.0.0/26";
  let resolveCold: (t: number) => void = () => undefined;
  let resolveAnnounce: (t: number) => void = () => undefined;
  const cold = new Promise<number>((r) => (resolveCold = r));
  const ann = new Promise<number>((r) => (resolveAnnounce = r));
  clients.forEach((c, i) =>
    c.onRouteChange((e) => {
      if (e.type !== "added") return;
      if (e.prefix === extra) {
        if (++announced === n - 1) resolveAnnounce(performance.now());
        return;
      }
      if (++counts[i]! === n && ++complete === n) resolveCold(performance.now());
    }),
  );
  try {
    await rr.start();
    for (const c of clients) await c.start();
    const tc = await cold;
    const cpu = process.cpuUsage(cpu0);
    await sleep(300);
    const t1 = performance.now();
    clients[0]!.announce(extra);
    const ta = await ann;
    const updates = rr.peerStatus().reduce((sum, p) => sum + (p.stats?.updatesOut ?? 0), 0);
    return { cold: tc - t0, coldCpu: (cpu.user + cpu.system) / 1000, announce: ta - t1, updates, routes: clients.reduce((s, c) => s + c.routeCount, 0) };
  } finally {
    await Promise.all([rr.stop(), ...clients.map((c) => c.stop())]);
  }
}

// ---------------------------------------------------------------- (d) reflector heap per route

/** A full garbage collection (V8's gc exposed for this process). */
function collect(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/**
 * The reflector's heap per route: `n` clients over the memory transport that keep nothing they
 * receive (import policy rejects all), so what grows is the reflector's. Heap after a full GC with
 * every session Established and no route, then after every client announced its /26 and the
 * reflector advertised all of them; the growth divided by the routes the reflector holds: n in its
 * Adj-RIB-Ins and Loc-RIB, n·(n−1) in its Adj-RIB-Outs.
 */
async function reflectorHeap(n: number): Promise<{ perRoute: number; bytes: number; routes: number }> {
  const { net, rrAddr, addr, rr } = memoryReflector(n);
  const clients = Array.from(
    { length: n },
    (_, i) =>
      new BgpSpeaker({
        asn: 64512,
        routerId: addr(i),
        localAddress: addr(i),
        transport: net.transport(addr(i)),
        listen: false,
        holdTime: 240,
        importPolicy: () => null,
        peers: [{ address: rrAddr, asn: 64512 }],
      }),
  );
  const advertised = (): number => rr.peerStatus().reduce((sum, p) => sum + p.prefixesAdvertised, 0);
  try {
    await rr.start();
    for (const c of clients) await c.start();
    await until(
      "every client session Established",
      () => rr.peerStatus().every((p) => p.state === "Established"),
      (fn) => rr.onSessionState(fn),
      120_000,
    );
    await sleep(200);
    collect();
    const h0 = process.memoryUsage().heapUsed;
    clients.forEach((c, i) => c.announce(`10.${64 + (i >> 8)}.${i & 255}.0/26`));
    await poll("the reflector to advertise every route", async () => advertised() === n * (n - 1), 120_000);
    await sleep(200);
    collect();
    const bytes = process.memoryUsage().heapUsed - h0;
    const routes = n + n * (n - 1);
    return { perRoute: bytes / routes, bytes, routes };
  } finally {
    await Promise.all([rr.stop(), ...clients.map((c) => c.stop())]);
  }
}

// ---------------------------------------------------------------- (d) reflector side by side over TCP: ours and BIRD

interface RrTcpResult {
  cold: number;
  /** CPU time of the reflector's process during the cold start. */
  cpu: number;
  /** CPU time of this process (the clients) during the cold start. */
  clientsCpu: number;
  /** UPDATEs the clients received (the reflector sent), End-of-RIB included. */
  updates: number;
}

/**
 * The same `n` clients (our speakers in this process, each on its own 127.7.x.y, dialling) against
 * one reflector on loopback in its own process: ours (`bgp-utils-free run`) or BIRD 2 (rr client
 * per neighbour). The reflector is up first; t0 = the clients start; done when every client's Loc-RIB
 * holds all n /26.
 */
async function reflectionTcp(n: number, which: "ours" | "bird"): Promise<RrTcpResult> {
  const rrAddr = which === "ours" ? "127.0.6.1" : "127.0.6.2";
  const rrPort = await freePort(rrAddr);
  const addr = (i: number): string => `127.7.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  const route = (i: number): string => `10.${64 + (i >> 8)}.${i & 255}.0/26`;
  let ours: Daemon | undefined;
  let dir: string | undefined;
  let bird: Bird | undefined;
  const clients: BgpSpeaker[] = [];
  try {
    if (which === "ours") {
      // The package's command, the way a user runs a reflector: its own process (like BIRD), from source.
      dir = await tempDir("cnikit-bench-rr-");
      const config = join(dir, "rr.json");
      await writeFile(
        config,
        JSON.stringify({
          asn: 64512,
          routerId: "10.254.6.1",
          localAddress: rrAddr,
          listen: { port: rrPort, backlog: 4096 },
          holdTime: 240,
          clusterId: "244.0.0.1",
          peers: Array.from({ length: n }, (_, i) => ({ address: addr(i), asn: 64512, passive: true, routeReflectorClient: true })),
        }),
      );
      const cli = fileURLToPath(new URL("../../packages/bgp-utils-free/src/cli.ts", import.meta.url));
      const execArgv = process.execArgv.some((a) => a.startsWith("--conditions")) ? process.execArgv : [...process.execArgv, "--conditions=source"];
      ours = Daemon.spawn("bgp-utils-free run", process.execPath, [...execArgv, cli, "run", config, "--quiet"], fileURLToPath(new URL("../..", import.meta.url)));
      await waitFor(
        "our reflector to listen",
        () =>
          new Promise<boolean>((resolve) => {
            if (ours!.exited !== undefined) return resolve(true);
            const probe = connect({ host: rrAddr, port: rrPort }, () => {
              probe.destroy();
              resolve(true);
            });
            probe.on("error", () => resolve(false));
          }),
        60_000,
      );
      if (ours.exited !== undefined) throw new Error(`bench: our reflector exited (${ours.exited}): ${ours.output.join("")}`);
    } else {
      bird = await Bird.start(
        {
          routerId: "10.254.6.2",
          address: rrAddr,
          port: rrPort,
          asn: 64512,
          rrClusterId: "244.0.0.1",
          // The clients' next hops resolve through a device route (else BIRD holds the routes unreachable).
          nextHopNetworks: ["127.7.0.0/16"],
          peers: Array.from({ length: n }, (_, i) => ({
            name: `c${i}`,
            address: addr(i),
            port: 179,
            asn: 64512,
            passive: true,
            rrClient: true,
            holdTime: 240,
            exportFilter: `if proto = "nexthops" then reject; accept;`,
          })),
        },
        { check: false },
      );
    }
    let complete = 0;
    const counts = new Array<number>(n).fill(0);
    let resolveCold: (t: number) => void = () => undefined;
    const cold = new Promise<number>((r) => (resolveCold = r));
    const reflectorPid = bird ? bird.daemon.pid : ours!.pid;
    const reflectorCpu = (): number => processCpuMs(reflectorPid);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const rcpu0 = reflectorCpu();
    for (let i = 0; i < n; i++) {
      const c = new BgpSpeaker({
        asn: 64512,
        routerId: addr(i),
        localAddress: addr(i),
        transport: tcpTransport({}),
        listen: false,
        holdTime: 240,
        connectRetryTime: 1,
        peers: [{ address: rrAddr, port: rrPort, asn: 64512 }],
      });
      c.announce(route(i));
      c.onRouteChange((e) => {
        if (e.type === "added" && ++counts[i]! === n && ++complete === n) resolveCold(performance.now());
      });
      clients.push(c);
    }
    for (const c of clients) await c.start();
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`bench: ${which} reflector with ${n} TCP clients did not converge in 900 s`)), 900_000).unref());
    const tc = await Promise.race([cold, timeout]);
    const own = process.cpuUsage(cpu0);
    const cpu = reflectorCpu() - rcpu0;
    const updates = clients.reduce((sum, c) => sum + (c.peerStatus()[0]?.stats?.updatesIn ?? 0), 0);
    return { cold: tc - t0, cpu, clientsCpu: (own.user + own.system) / 1000, updates };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await ours?.stop();
    if (dir !== undefined) await removeDir(dir);
    await bird?.stop();
  }
}

// ---------------------------------------------------------------- driver

/** Runs every BGP benchmark and returns the figures (see the header for what each one is). */
export async function benchBgp(): Promise<BgpFigure[]> {
  const figures: BgpFigure[] = [];
  if (SECTIONS.has("a")) figures.push(...benchCodec());

  for (const k of SECTIONS.has("b") ? KS : []) {
    const ours: MeshResult[] = [];
    const bird1: MeshResult[] = [];
    const bird0: MeshResult[] = [];
    for (let r = 0; r < RUNS; r++) {
      ours.push(await ourMesh(k));
      bird1.push(await birdMesh(k, 1));
      bird0.push(await birdMesh(k, 0));
    }
    const oc = median(ours.map((x) => x.cold));
    const oa = median(ours.map((x) => x.announce));
    const bc = median(bird1.map((x) => x.cold));
    const bc0 = median(bird0.map((x) => x.cold));
    figures.push(
      { name: `mesh K=${k} cold start, ours (TCP, no connect delay)`, value: oc, unit: "ms" },
      { name: `mesh K=${k} cold start, BIRD (Calico: connect delay 1 s)`, value: bc, unit: "ms" },
      { name: `mesh K=${k} cold start, BIRD (connect delay 0)`, value: bc0, unit: "ms" },
      { name: `mesh K=${k} cold start, ratio ours/BIRD (delay 1 s)`, value: oc / bc, unit: "x" },
      { name: `mesh K=${k} cold start, ratio ours/BIRD (delay 0)`, value: oc / bc0, unit: "x" },
      { name: `mesh K=${k} one-announce, ours`, value: oa, unit: "ms" },
      { name: `mesh K=${k} one-announce, BIRD (+1 hop to monitor)`, value: median([...bird1, ...bird0].map((x) => x.announce)), unit: "ms" },
      { name: `mesh K=${k} one-announce, ratio ours/BIRD`, value: oa / median([...bird1, ...bird0].map((x) => x.announce)), unit: "x" },
    );
  }

  if (SECTIONS.has("c")) {
    const tk: { toBird: number; fromBird: number }[] = [];
    for (let r = 0; r < RUNS; r++) tk.push(await tenThousand());
    figures.push(
      { name: "10,000 routes ours -> BIRD (session up)", value: median(tk.map((x) => x.toBird)), unit: "ms" },
      { name: "10,000 routes BIRD -> ours (session up)", value: median(tk.map((x) => x.fromBird)), unit: "ms" },
    );
  }

  if (!SECTIONS.has("d")) return figures;
  const rr = await reflection(RR_CLIENTS);
  figures.push(
    { name: `route reflector, ${RR_CLIENTS} in-process clients: cold start until all have all routes`, value: rr.cold, unit: "ms" },
    { name: `route reflector, ${RR_CLIENTS} in-process clients: CPU time of that cold start (RR + clients, this process)`, value: rr.coldCpu, unit: "ms" },
    { name: `route reflector, ${RR_CLIENTS} clients: one-announce to all`, value: rr.announce, unit: "ms" },
    { name: `route reflector, ${RR_CLIENTS} clients: UPDATEs sent by the RR`, value: rr.updates, unit: "msgs" },
    { name: `route reflector, ${RR_CLIENTS} clients: routes in all clients' Loc-RIBs`, value: rr.routes, unit: "routes" },
  );
  const heap = await reflectorHeap(RR_CLIENTS);
  figures.push(
    { name: `route reflector, ${RR_CLIENTS} clients: RR heap growth for ${heap.routes.toLocaleString("en-US")} routes (Adj-RIB-In + Adj-RIB-Out)`, value: heap.bytes / 1e6, unit: "MB" },
    { name: `route reflector, ${RR_CLIENTS} clients: RR heap per route`, value: heap.perRoute, unit: "B" },
  );
  const tcpOurs = await reflectionTcp(RR_CLIENTS, "ours");
  const tcpBird = await reflectionTcp(RR_CLIENTS, "bird");
  figures.push(
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: cold start, ours`, value: tcpOurs.cold, unit: "ms" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: cold start, BIRD`, value: tcpBird.cold, unit: "ms" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: cold start, ratio ours/BIRD`, value: tcpOurs.cold / tcpBird.cold, unit: "x" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: CPU time of the reflector's process, ours`, value: tcpOurs.cpu, unit: "ms" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: CPU time of the reflector's process, BIRD`, value: tcpBird.cpu, unit: "ms" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: CPU time of the reflector's process, ratio ours/BIRD`, value: tcpOurs.cpu / tcpBird.cpu, unit: "x" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: CPU time of the clients' process, with ours / with BIRD`, value: tcpOurs.clientsCpu / tcpBird.clientsCpu, unit: "x" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: UPDATEs received, ours`, value: tcpOurs.updates, unit: "msgs" },
    { name: `route reflector over TCP, ${RR_CLIENTS} clients: UPDATEs received, BIRD`, value: tcpBird.updates, unit: "msgs" },
  );
  return figures;
}

function printTable(figures: BgpFigure[]): void {
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const f of figures) {
    const value = f.value >= 100 ? Math.round(f.value).toLocaleString("en-US") : f.value.toFixed(2);
    console.log(`  ${f.name.padEnd(width)}  ${value.padStart(14)} ${f.unit}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`bgp benchmarks — node ${process.version}, ${process.platform}/${process.arch}, runs=${RUNS}, K=${KS.join(",")}, RR clients=${RR_CLIENTS}`);
  const started = performance.now();
  printTable(await benchBgp());
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
