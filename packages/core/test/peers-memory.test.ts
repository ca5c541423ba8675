import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AddressInUseError, ClosedError, CniError, ConfigError, MemoryNetwork, TryAgainError, VirtualClock, type LinkFaults, type PeerConnection, type PeerTransport } from "../src/index.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

function setup(options: { seed?: number; resetAfterMs?: number; names?: string[] } = {}) {
  const clock = new VirtualClock();
  const net = new MemoryNetwork({
    clock,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.resetAfterMs === undefined ? {} : { resetAfterMs: options.resetAfterMs }),
  });
  const t: Record<string, PeerTransport> = {};
  for (const name of options.names ?? ["a", "b", "c"]) t[name] = net.transport(name);
  return { clock, net, t: t as Record<string, PeerTransport> & { a: PeerTransport; b: PeerTransport; c: PeerTransport } };
}

/** Opens a connection from `from` to `to`'s service and lets the handshake complete. */
async function connectPair(clock: VirtualClock, from: PeerTransport, to: PeerTransport, service = "svc"): Promise<{ client: PeerConnection; server: PeerConnection }> {
  let server: PeerConnection | undefined;
  to.listen(service, (c) => {
    server = c;
  });
  const pending = from.connect(to.self, service);
  await clock.runUntilIdle();
  const client = await pending;
  if (!server) throw new Error("listener was not called");
  return { client, server };
}

/** Collects a connection's messages (as text) and its close reasons. */
function record(conn: PeerConnection): { messages: string[]; closes: string[] } {
  const out = { messages: [] as string[], closes: [] as string[] };
  conn.onMessage((m) => out.messages.push(dec(m)));
  conn.onClose((r) => out.closes.push(r));
  return out;
}

/** Attaches a handler at once (so a rejection is never unhandled) and yields the rejection reason. */
function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );
}

function collectDatagrams(transport: PeerTransport, service = "g"): string[] {
  const got: string[] = [];
  transport.onDatagram(service, (from, m) => got.push(`${from}:${dec(m)}`));
  return got;
}

describe("MemoryNetwork transports", () => {
  it("refuses a second transport for a live name and allows one after close", () => {
    const { net, t } = setup();
    expect(() => net.transport("a")).toThrow(ConfigError);
    t.a.close();
    const again = net.transport("a");
    expect(again.self).toBe("a");
    expect(() => net.transport("a")).toThrow(/close it before/);
  });

  it("refuses an empty name", () => {
    const { net } = setup();
    const err = (() => {
      try {
        net.transport("");
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe("name");
  });

  it.each([
    [{ seed: Number.NaN }, "seed"],
    [{ resetAfterMs: -1 }, "resetAfterMs"],
    [{ retransmitMs: Number.POSITIVE_INFINITY }, "retransmitMs"],
  ])("constructor option %o is refused naming %s", (bad, field) => {
    const clock = new VirtualClock();
    expect(() => new MemoryNetwork({ clock, ...bad })).toThrow(expect.objectContaining({ field }));
  });
});

describe("datagrams", () => {
  it("are never delivered synchronously, even with zero delay", async () => {
    const { clock, t } = setup();
    const got = collectDatagrams(t.b);
    t.a.sendDatagram("b", "g", enc("x"));
    expect(got).toEqual([]);
    expect(clock.pending()).toBe(1);
    await clock.advance(0);
    expect(got).toEqual(["a:x"]);
  });

  it("are copied on send", async () => {
    const { clock, t } = setup();
    const got = collectDatagrams(t.b);
    const buf = enc("abc");
    t.a.sendDatagram("b", "g", buf);
    buf[0] = "z".charCodeAt(0);
    await clock.runUntilIdle();
    expect(got).toEqual(["a:abc"]);
  });

  it("give every handler its own copy and stop after unsubscribe", async () => {
    const { clock, t } = setup();
    const seen: string[] = [];
    const off1 = t.b.onDatagram("g", (_f, m) => {
      seen.push(`1:${dec(m)}`);
      m[0] = 0;
    });
    t.b.onDatagram("g", (_f, m) => seen.push(`2:${dec(m)}`));
    t.a.sendDatagram("b", "g", enc("hi"));
    await clock.runUntilIdle();
    off1();
    off1();
    t.a.sendDatagram("b", "g", enc("yo"));
    await clock.runUntilIdle();
    expect(seen).toEqual(["1:hi", "2:hi", "2:yo"]);
  });

  it("to nobody are dropped silently and counted", async () => {
    const { clock, net, t } = setup();
    t.a.sendDatagram("b", "nobody-listens", enc("x"));
    t.a.sendDatagram("ghost", "g", enc("x"));
    await clock.runUntilIdle();
    expect(net.stats()).toMatchObject({ messages: 2, datagrams: 2, dropped: 2 });
  });

  it("are delayed by the configured delay", async () => {
    const { clock, net, t } = setup();
    net.setFaults({ delayMs: { min: 50, max: 50 } });
    const got = collectDatagrams(t.b);
    t.a.sendDatagram("b", "g", enc("x"));
    await clock.advance(49);
    expect(got).toEqual([]);
    await clock.advance(1);
    expect(got).toEqual(["a:x"]);
  });

  it("are lost at close to the configured rate (fixed seed)", async () => {
    const { clock, net, t } = setup({ seed: 7 });
    net.setFaults({ lossRate: 0.3 });
    const got = collectDatagrams(t.b);
    const n = 10_000;
    for (let i = 0; i < n; i++) t.a.sendDatagram("b", "g", enc(String(i)));
    await clock.advance(0);
    const lossObserved = 1 - got.length / n;
    // Binomial standard deviation at n = 10 000, p = 0.3 is about 0.0046; allow ~4 sigma.
    expect(lossObserved).toBeGreaterThan(0.28);
    expect(lossObserved).toBeLessThan(0.32);
    expect(net.stats()).toMatchObject({ messages: n, datagrams: n, dropped: n - got.length, duplicated: 0 });
  });

  it("are duplicated at the configured rate", async () => {
    const { clock, net, t } = setup({ seed: 3 });
    net.setFaults({ duplicateRate: 1 });
    const got = collectDatagrams(t.b);
    t.a.sendDatagram("b", "g", enc("x"));
    t.a.sendDatagram("b", "g", enc("y"));
    await clock.runUntilIdle();
    expect([...got].sort()).toEqual(["a:x", "a:x", "a:y", "a:y"]);
    expect(net.stats()).toMatchObject({ messages: 2, duplicated: 2, dropped: 0 });
  });

  it("are reordered when reorderRate > 0 and stay in order without it", async () => {
    const run = async (faults: LinkFaults): Promise<number[]> => {
      const { clock, net, t } = setup({ seed: 11 });
      net.setFaults(faults);
      const got: number[] = [];
      t.b.onDatagram("g", (_f, m) => got.push(Number(dec(m))));
      for (let i = 0; i < 200; i++) t.a.sendDatagram("b", "g", enc(String(i)));
      await clock.runUntilIdle();
      return got;
    };
    const inOrder = Array.from({ length: 200 }, (_, i) => i);
    expect(await run({ delayMs: { min: 5, max: 5 } })).toEqual(inOrder);
    const shuffled = await run({ reorderRate: 0.3 });
    expect([...shuffled].sort((x, y) => x - y)).toEqual(inOrder);
    expect(shuffled).not.toEqual(inOrder);
  });

  it("honour scoped faults, the most specific scope winning", async () => {
    const { clock, net, t } = setup();
    net.setFaults({ lossRate: 1 });
    net.setFaults({ lossRate: 0 }, { to: "c" });
    net.setFaults({ lossRate: 1 }, { from: "b", to: "c" });
    const atA = collectDatagrams(t.a);
    const atB = collectDatagrams(t.b);
    const atC = collectDatagrams(t.c);
    t.a.sendDatagram("b", "g", enc("ab"));
    t.a.sendDatagram("c", "g", enc("ac"));
    t.b.sendDatagram("c", "g", enc("bc"));
    t.c.sendDatagram("a", "g", enc("ca"));
    await clock.runUntilIdle();
    expect({ atA, atB, atC }).toEqual({ atA: [], atB: [], atC: ["a:ac"] });
    net.clearFaults();
    t.c.sendDatagram("a", "g", enc("ca"));
    await clock.runUntilIdle();
    expect(atA).toEqual(["c:ca"]);
  });

  it("after close: sendDatagram and onDatagram throw ClosedError", () => {
    const { t } = setup();
    t.a.close();
    expect(() => t.a.sendDatagram("b", "g", enc("x"))).toThrow(ClosedError);
    expect(() => t.a.onDatagram("g", () => {})).toThrow(ClosedError);
  });
});

describe("setFaults validation", () => {
  it.each<[unknown, unknown, string]>([
    [{ lossRate: 1.5 }, undefined, "faults.lossRate"],
    [{ lossRate: -0.1 }, undefined, "faults.lossRate"],
    [{ duplicateRate: Number.NaN }, undefined, "faults.duplicateRate"],
    [{ reorderRate: "0.1" }, undefined, "faults.reorderRate"],
    [{ delayMs: { min: -1, max: 5 } }, undefined, "faults.delayMs.min"],
    [{ delayMs: { min: 1, max: Number.POSITIVE_INFINITY } }, undefined, "faults.delayMs.max"],
    [{ delayMs: { min: 10, max: 5 } }, undefined, "faults.delayMs.min"],
    [{ delayMs: 5 }, undefined, "faults.delayMs"],
    [{ jitter: 1 }, undefined, "faults.jitter"],
    [null, undefined, "faults"],
    [{ lossRate: 0.5 }, { from: "" }, "scope.from"],
    [{ lossRate: 0.5 }, { to: 3 }, "scope.to"],
  ])("%o (scope %o) is refused naming %s and changes nothing", async (faults, scope, field) => {
    const { clock, net, t } = setup();
    const got = collectDatagrams(t.b);
    let caught: unknown;
    try {
      net.setFaults(faults as LinkFaults, scope as { from?: string; to?: string });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
    expect((caught as ConfigError).code).toBe(7);
    t.a.sendDatagram("b", "g", enc("x"));
    await clock.runUntilIdle();
    expect(got).toEqual(["a:x"]);
  });
});

describe("streams", () => {
  it("carry messages both ways, in order, copied on send, never synchronously", async () => {
    const { clock, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    expect([client.remote, client.service, server.remote, server.service]).toEqual(["b", "svc", "a", "svc"]);
    const atServer = record(server);
    const atClient = record(client);
    const buf = enc("one");
    client.send(buf);
    buf[0] = 0;
    client.send(enc("two"));
    server.send(enc("back"));
    expect(atServer.messages).toEqual([]);
    await clock.runUntilIdle();
    expect(atServer.messages).toEqual(["one", "two"]);
    expect(atClient.messages).toEqual(["back"]);
  });

  it("keep messages that arrive before onMessage and hand them over in order", async () => {
    const { clock, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    client.send(enc("1"));
    client.send(enc("2"));
    await clock.runUntilIdle();
    const got: string[] = [];
    server.onMessage((m) => got.push(dec(m)));
    expect(got).toEqual([]);
    client.send(enc("3"));
    await clock.runUntilIdle();
    expect(got).toEqual(["1", "2", "3"]);
  });

  it("apply the configured delay to each message without letting it overtake an earlier one", async () => {
    const { clock, net, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    const atServer = record(server);
    net.setFaults({ delayMs: { min: 50, max: 50 } });
    client.send(enc("m1"));
    await clock.advance(30);
    client.send(enc("m2"));
    await clock.advance(19);
    expect(atServer.messages).toEqual([]);
    await clock.advance(1);
    expect(atServer.messages).toEqual(["m1"]);
    await clock.advance(29);
    expect(atServer.messages).toEqual(["m1"]);
    await clock.advance(1);
    expect(atServer.messages).toEqual(["m1", "m2"]);
    // A short delay after a long one still waits for the long one.
    net.setFaults({ delayMs: { min: 100, max: 100 } });
    client.send(enc("slow"));
    net.setFaults({ delayMs: { min: 0, max: 0 } });
    client.send(enc("fast"));
    await clock.advance(99);
    expect(atServer.messages).toEqual(["m1", "m2"]);
    await clock.advance(1);
    expect(atServer.messages).toEqual(["m1", "m2", "slow", "fast"]);
  });

  it("hand buffered messages to a late handler before the close that followed them", async () => {
    const { clock, net, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    net.setFaults({ delayMs: { min: 10, max: 10 } });
    const events: string[] = [];
    const start = clock.now();
    // Registers the handler at start+14, in a timer created before the FIN (also due at start+14),
    // so the hand-over of the buffered messages is still pending when the FIN arrives.
    clock.setTimeout(() => server.onMessage((m) => events.push(dec(m))), 14);
    server.onClose((r) => events.push(`close:${r}`));
    client.send(enc("1"));
    client.send(enc("2"));
    await clock.advance(4);
    client.close("fin");
    await clock.runUntilIdle();
    expect(clock.now() - start).toBe(14);
    expect(events).toEqual(["1", "2", "close:fin"]);
  });

  it("connect to a node that is not listening rejects with TryAgainError naming peer and service", async () => {
    const { clock, t } = setup();
    const pending = rejection(t.a.connect("b", "bgp"));
    const ghost = rejection(t.a.connect("nowhere", "bgp"));
    await clock.runUntilIdle();
    const err = await pending;
    expect(err).toBeInstanceOf(TryAgainError);
    expect(err).toMatchObject({ code: 11, message: expect.stringMatching(/\bb\b.*\bbgp\b/) });
    expect(await ghost).toMatchObject({ code: 11, message: expect.stringContaining("nowhere") });
  });

  it("listen twice on one service throws; stop frees the service; a stale stop does nothing", async () => {
    const { clock, t } = setup();
    const stop1 = t.b.listen("svc", () => {});
    expect(() => t.b.listen("svc", () => {})).toThrow(AddressInUseError);
    expect(() => t.b.listen("svc", () => {})).toThrow(CniError);
    stop1();
    let accepted = 0;
    t.b.listen("svc", () => accepted++);
    stop1();
    const conn = t.a.connect("b", "svc");
    await clock.runUntilIdle();
    await conn;
    expect(accepted).toBe(1);
  });

  it("send after close throws ClosedError on both ends; close is idempotent; onClose fires once", async () => {
    const { clock, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    const atClient = record(client);
    const atServer = record(server);
    client.close("bye");
    client.close("again");
    expect(client.closed).toBe(true);
    expect(() => client.send(enc("x"))).toThrow(ClosedError);
    await clock.runUntilIdle();
    expect(server.closed).toBe(true);
    expect(() => server.send(enc("x"))).toThrow(ClosedError);
    server.close();
    await clock.runUntilIdle();
    expect(atClient.closes).toEqual(["bye"]);
    expect(atServer.closes).toEqual(["bye"]);
  });

  it("onClose registered after the close is still called once", async () => {
    const { clock, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    client.close("done");
    await clock.runUntilIdle();
    const reasons: string[] = [];
    server.onClose((r) => reasons.push(r));
    await clock.runUntilIdle();
    server.onClose((r) => reasons.push(`second:${r}`));
    await clock.runUntilIdle();
    expect(reasons).toEqual(["done"]);
  });

  it("a graceful close reaches the peer only after the messages sent before it", async () => {
    const { clock, net, t } = setup({ seed: 5 });
    const { client, server } = await connectPair(clock, t.a, t.b);
    net.setFaults({ delayMs: { min: 1, max: 100 }, lossRate: 0.3 });
    const events: string[] = [];
    server.onMessage((m) => events.push(dec(m)));
    server.onClose((r) => events.push(`close:${r}`));
    for (let i = 0; i < 20; i++) client.send(enc(String(i)));
    client.close("fin");
    await clock.runUntilIdle();
    expect(events).toEqual([...Array.from({ length: 20 }, (_, i) => String(i)), "close:fin"]);
  });

  it("messages sent towards an end that already closed are dropped and counted", async () => {
    const { clock, net, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    net.setFaults({ delayMs: { min: 10, max: 10 } });
    const atClient = record(client);
    client.close();
    server.send(enc("late")); // the FIN has not reached b yet
    await clock.runUntilIdle();
    expect(atClient.messages).toEqual([]);
    expect(net.stats().dropped).toBe(1);
  });

  it("turn loss into retransmission delay, never into a missing message", async () => {
    const { clock, net, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    net.setFaults({ lossRate: 1 });
    const atServer = record(server);
    client.send(enc("x"));
    // Six simulated losses, RTO 200 ms doubling: 200 * (1 + 2 + 4 + 8 + 16 + 32) = 12 600 ms.
    await clock.advance(12_599);
    expect(atServer.messages).toEqual([]);
    await clock.advance(1);
    expect(atServer.messages).toEqual(["x"]);
    expect(net.stats()).toMatchObject({ retransmitted: 6, dropped: 0 });
  });

  it("ignore duplication and reordering", async () => {
    const { clock, net, t } = setup({ seed: 9 });
    const { client, server } = await connectPair(clock, t.a, t.b);
    net.setFaults({ duplicateRate: 1, reorderRate: 1 });
    const atServer = record(server);
    for (let i = 0; i < 10; i++) client.send(enc(String(i)));
    await clock.runUntilIdle();
    expect(atServer.messages).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
    expect(net.stats().duplicated).toBe(0);
  });

  it("deliver every message exactly once and in order under any delay/loss/dup/reorder settings", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer(),
          lossRate: fc.double({ min: 0, max: 1, noNaN: true }),
          duplicateRate: fc.double({ min: 0, max: 1, noNaN: true }),
          reorderRate: fc.double({ min: 0, max: 1, noNaN: true }),
          min: fc.integer({ min: 0, max: 100 }),
          span: fc.integer({ min: 0, max: 300 }),
          gaps: fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 25 }),
        }),
        async (p) => {
          const { clock, net, t } = setup({ seed: p.seed });
          net.setFaults({
            lossRate: p.lossRate,
            duplicateRate: p.duplicateRate,
            reorderRate: p.reorderRate,
            delayMs: { min: p.min, max: p.min + p.span },
          });
          const { client, server } = await connectPair(clock, t.a, t.b);
          const atServer = record(server);
          const atClient = record(client);
          const sent: string[] = [];
          for (const [i, gap] of p.gaps.entries()) {
            await clock.advance(gap);
            client.send(enc(`c${i}`));
            server.send(enc(`s${i}`));
            sent.push(String(i));
          }
          await clock.runUntilIdle();
          expect(atServer.messages).toEqual(sent.map((i) => `c${i}`));
          expect(atClient.messages).toEqual(sent.map((i) => `s${i}`));
          expect(atServer.closes).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("transport close closes its connections (peers get onClose) and listeners; idempotent", async () => {
    const { clock, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    const atClient = record(client);
    const atServer = record(server);
    t.b.close();
    t.b.close();
    expect(server.closed).toBe(true);
    await clock.runUntilIdle();
    expect(client.closed).toBe(true);
    expect(atClient.closes).toEqual(["transport closed"]);
    expect(atServer.closes).toEqual(["transport closed"]);
    const again = rejection(t.a.connect("b", "svc"));
    await clock.runUntilIdle();
    expect(await again).toBeInstanceOf(TryAgainError);
    expect(() => t.b.listen("other", () => {})).toThrow(ClosedError);
    await expect(t.b.connect("a", "svc")).rejects.toBeInstanceOf(ClosedError);
  });

  it("a connect still in flight when the connecting transport closes rejects with ClosedError", async () => {
    const { clock, t } = setup();
    t.b.listen("svc", () => {});
    const pending = rejection(t.a.connect("b", "svc"));
    t.a.close();
    await clock.runUntilIdle();
    expect(await pending).toBeInstanceOf(ClosedError);
  });
});

describe("partitions", () => {
  it("drop datagrams, hold stream messages, refuse connects; heal delivers held messages in order", async () => {
    const { clock, net, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    const atServer = record(server);
    const dgrams = collectDatagrams(t.b);
    t.c.listen("svc", () => {});
    client.send(enc("before"));
    net.partition([["a"], ["b", "c"]]);
    expect(net.canReach("a", "b")).toBe(false);
    expect(net.canReach("b", "c")).toBe(true);
    client.send(enc("during-1"));
    t.a.sendDatagram("b", "g", enc("lost"));
    const refused = rejection(t.a.connect("c", "svc"));
    await clock.advance(1000);
    client.send(enc("during-2"));
    await clock.advance(1000);
    expect(await refused).toMatchObject({ code: 11, message: expect.stringContaining("partitioned") });
    expect(atServer.messages).toEqual([]);
    expect(dgrams).toEqual([]);
    net.heal();
    expect(atServer.messages).toEqual([]); // not synchronously
    await clock.advance(0);
    expect(atServer.messages).toEqual(["before", "during-1", "during-2"]);
    expect(atServer.closes).toEqual([]);
    expect(net.stats().dropped).toBe(1);
  });

  it("cut datagrams already in flight", async () => {
    const { clock, net, t } = setup();
    net.setFaults({ delayMs: { min: 10, max: 10 } });
    const got = collectDatagrams(t.b);
    t.a.sendDatagram("b", "g", enc("x"));
    net.isolate("b");
    await clock.runUntilIdle();
    expect(got).toEqual([]);
  });

  it("reset a connection whose messages are held longer than resetAfterMs, on both ends", async () => {
    const { clock, net, t } = setup({ resetAfterMs: 5000 });
    const { client, server } = await connectPair(clock, t.a, t.b);
    const atClient = record(client);
    const atServer = record(server);
    net.partition([["a"], ["b"]]);
    client.send(enc("stuck"));
    await clock.advance(4999);
    expect(client.closed).toBe(false);
    await clock.advance(1);
    expect(client.closed).toBe(true);
    expect(server.closed).toBe(true);
    expect(atClient.closes).toHaveLength(1);
    expect(atClient.closes[0]).toMatch(/partition/);
    expect(atServer.closes).toEqual(atClient.closes);
    net.heal();
    await clock.runUntilIdle();
    expect(atServer.messages).toEqual([]);
    expect(net.stats().dropped).toBe(1);
    expect(() => client.send(enc("x"))).toThrow(ClosedError);
  });

  it("leave an idle connection across a partition open, and one healed in time", async () => {
    const { clock, net, t } = setup({ resetAfterMs: 5000 });
    const idle = await connectPair(clock, t.a, t.b, "idle");
    const busy = await connectPair(clock, t.a, t.c, "busy");
    const atC = record(busy.server);
    net.partition([["a"], ["b", "c"]]);
    busy.client.send(enc("m"));
    await clock.advance(4000);
    net.heal();
    await clock.advance(10_000);
    expect(idle.client.closed).toBe(false);
    expect(busy.client.closed).toBe(false);
    expect(atC.messages).toEqual(["m"]);
  });

  it("put nodes named in no group into one more group", async () => {
    const { net } = setup({ names: ["a", "b", "c", "d"] });
    net.partition([["a", "b"]]);
    expect([net.canReach("a", "b"), net.canReach("c", "d"), net.canReach("a", "c"), net.canReach("d", "b")]).toEqual([true, true, false, false]);
  });

  it.each<[unknown, string]>([
    [[["a"], ["b", "a"]], "groups[1][1]"],
    [[["a"], "b"], "groups[1]"],
    [[[""]], "groups[0][0]"],
    ["a", "groups"],
  ])("partition(%o) is refused naming %s and changes nothing", (groups, field) => {
    const { net } = setup();
    net.partition([["a"], ["b"]]);
    expect(() => net.partition(groups as string[][])).toThrow(expect.objectContaining({ field }));
    expect(net.canReach("a", "b")).toBe(false);
    expect(net.canReach("a", "c")).toBe(false);
  });

  it("isolate cuts one node off and rejoin lets held messages through", async () => {
    const { clock, net, t } = setup();
    const { client, server } = await connectPair(clock, t.a, t.b);
    const atServer = record(server);
    const atC = collectDatagrams(t.c);
    net.isolate("a");
    expect([net.canReach("a", "b"), net.canReach("c", "a"), net.canReach("b", "c")]).toEqual([false, false, true]);
    client.send(enc("held"));
    t.a.sendDatagram("c", "g", enc("lost"));
    t.b.sendDatagram("c", "g", enc("ok"));
    await clock.advance(100);
    expect(atServer.messages).toEqual([]);
    net.rejoin("a");
    await clock.advance(0);
    expect(atServer.messages).toEqual(["held"]);
    expect(atC).toEqual(["b:ok"]);
  });
});

describe("disconnect (crash as seen by peers)", () => {
  it("resets every connection of the node: both ends closed with reason reset, in-flight dropped", async () => {
    const { clock, net, t } = setup();
    const ab = await connectPair(clock, t.a, t.b);
    const ca = await connectPair(clock, t.c, t.a);
    const bc = await connectPair(clock, t.b, t.c, "other");
    const atB = record(ab.server);
    const atA = record(ab.client);
    const atC = record(ca.client);
    net.setFaults({ delayMs: { min: 50, max: 50 } });
    ab.client.send(enc("in-flight"));
    net.disconnect("a");
    expect([ab.client.closed, ab.server.closed, ca.client.closed, ca.server.closed, bc.client.closed]).toEqual([true, true, true, true, false]);
    await clock.runUntilIdle();
    expect(atB).toEqual({ messages: [], closes: ["reset"] });
    expect(atA.closes).toEqual(["reset"]);
    expect(atC.closes).toEqual(["reset"]);
    expect(() => ab.server.send(enc("x"))).toThrow(ClosedError);
    expect(net.stats().dropped).toBe(1);
    // The transport itself stays: the node can be connected to again.
    const again = await connectPair(clock, t.b, t.a, "fresh");
    expect(again.client.closed).toBe(false);
  });
});

describe("stats", () => {
  it("count messages, bytes and datagrams, and reset to zero", async () => {
    const { clock, net, t } = setup();
    const { client } = await connectPair(clock, t.a, t.b);
    client.send(enc("12345"));
    t.a.sendDatagram("b", "g", enc("123"));
    await clock.runUntilIdle();
    expect(net.stats()).toEqual({ messages: 2, bytes: 8, datagrams: 1, dropped: 1, duplicated: 0, retransmitted: 0 });
    net.resetStats();
    expect(net.stats()).toEqual({ messages: 0, bytes: 0, datagrams: 0, dropped: 0, duplicated: 0, retransmitted: 0 });
  });
});

describe("determinism", () => {
  async function trace(seed: number): Promise<string[]> {
    const { clock, net, t } = setup({ seed });
    const out: string[] = [];
    const { client, server } = await connectPair(clock, t.a, t.b);
    net.setFaults({ lossRate: 0.2, duplicateRate: 0.2, reorderRate: 0.2, delayMs: { min: 1, max: 80 } });
    server.onMessage((m) => out.push(`${clock.now()} stream ${dec(m)}`));
    t.c.onDatagram("g", (from, m) => out.push(`${clock.now()} dgram ${from} ${dec(m)}`));
    for (let i = 0; i < 40; i++) {
      client.send(enc(String(i)));
      t.a.sendDatagram("c", "g", enc(String(i)));
      t.b.sendDatagram("c", "g", enc(String(i)));
      await clock.advance(7);
    }
    await clock.runUntilIdle();
    out.push(JSON.stringify(net.stats()));
    return out;
  }

  it("the same seed gives the same delivery trace; another seed another", async () => {
    const first = await trace(42);
    expect(await trace(42)).toEqual(first);
    expect(await trace(43)).not.toEqual(first);
  });
});
