/**
 * TcpPeerTransport on 127.0.0.1: the PeerTransport contract over real sockets (framing, big
 * messages, buffering before onMessage, refusal, close reasons, resets, reconnect after a restart,
 * datagrams over UDP).
 */
import { createServer, type Server } from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { AddressInUseError, ClosedError, ConfigError, TryAgainError } from "../src/errors.ts";
import type { PeerConnection } from "../src/peers.ts";
import { TcpPeerTransport, type PeerAddress } from "../src/peers/tcp.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const open: { close(): void }[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const t of open.splice(0)) t.close();
  for (const s of servers.splice(0)) s.close();
});

/** A directory of names to addresses that transports resolve through. */
function directory() {
  const addrs = new Map<string, PeerAddress>();
  const resolve = async (peer: string): Promise<PeerAddress> => {
    const a = addrs.get(peer);
    if (!a) throw new Error(`no address for ${peer}`);
    return a;
  };
  const make = async (name: string, port = 0) => {
    const t = new TcpPeerTransport({ self: name, listen: { host: "127.0.0.1", port }, resolve, connectTimeoutMs: 2000 });
    open.push(t);
    addrs.set(name, await t.start());
    return t;
  };
  return { addrs, make };
}

function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > deadline) return reject(new Error("condition not met in time"));
      setTimeout(tick, 5);
    };
    tick();
  });
}

async function pair(a: TcpPeerTransport, bName: string, b: TcpPeerTransport, service = "svc") {
  let server: PeerConnection | undefined;
  b.listen(service, (c) => {
    server = c;
  });
  const client = await a.connect(bName, service);
  await until(() => server !== undefined);
  return { client, server: server! };
}

function record(c: PeerConnection) {
  const messages: string[] = [];
  const closes: string[] = [];
  c.onMessage((m) => messages.push(dec(m)));
  c.onClose((r) => closes.push(r));
  return { messages, closes };
}

async function expectReject(p: Promise<unknown>, type: new (...args: never[]) => Error, text?: RegExp): Promise<Error> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    if (text) expect((err as Error).message).toMatch(text);
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("TcpPeerTransport streams", () => {
  it("carry messages both ways in order, with names and service from the hello", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    const { client, server } = await pair(a, "b", b);
    expect([client.remote, client.service, server.remote, server.service]).toEqual(["b", "svc", "a", "svc"]);
    const atServer = record(server);
    const atClient = record(client);
    const buf = enc("one");
    client.send(buf);
    buf[0] = 0;
    for (let i = 0; i < 100; i++) client.send(enc(`m${i}`));
    server.send(enc("back"));
    await until(() => atServer.messages.length === 101 && atClient.messages.length === 1);
    expect(atServer.messages).toEqual(["one", ...Array.from({ length: 100 }, (_, i) => `m${i}`)]);
    expect(atClient.messages).toEqual(["back"]);
  });

  it("carry big messages (8 MiB) and empty ones intact", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    const { client, server } = await pair(a, "b", b);
    const got: Uint8Array[] = [];
    server.onMessage((m) => got.push(m));
    const big = new Uint8Array(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
    client.send(big);
    client.send(new Uint8Array(0));
    client.send(enc("after"));
    await until(() => got.length === 3, 20_000);
    expect(got[0]!.byteLength).toBe(big.byteLength);
    expect(Buffer.compare(Buffer.from(got[0]!), Buffer.from(big))).toBe(0);
    expect(got[1]!.byteLength).toBe(0);
    expect(dec(got[2]!)).toBe("after");
  });

  it("property: any sequence of messages arrives whole and in order", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 40 }), async (messages) => {
        const service = `p${run++}`;
        const { client, server } = await pair(a, "b", b, service);
        const got: Uint8Array[] = [];
        server.onMessage((m) => got.push(m));
        for (const m of messages) client.send(m);
        client.send(enc("end"));
        await until(() => got.length === messages.length + 1);
        expect(got.slice(0, -1).map((m) => Buffer.from(m).toString("hex"))).toEqual(messages.map((m) => Buffer.from(m).toString("hex")));
        client.close();
      }),
      { numRuns: 25 },
    );
  });

  it("keep messages that arrive before onMessage and hand them over in order", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    let server: PeerConnection | undefined;
    b.listen("svc", (c) => {
      server = c;
    });
    const client = await a.connect("b", "svc");
    client.send(enc("1"));
    client.send(enc("2"));
    await until(() => server !== undefined);
    await new Promise((r) => setTimeout(r, 50));
    const got: string[] = [];
    server!.onMessage((m) => got.push(dec(m)));
    client.send(enc("3"));
    await until(() => got.length === 3);
    expect(got).toEqual(["1", "2", "3"]);
  });

  it("a graceful close reaches the peer after what was sent, with its reason; both ends notified once", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    const { client, server } = await pair(a, "b", b);
    const atServer = record(server);
    const clientCloses: string[] = [];
    client.onClose((r) => clientCloses.push(r));
    client.send(enc("x"));
    client.send(enc("y"));
    client.close("bye now");
    client.close("again");
    expect(client.closed).toBe(true);
    expect(() => client.send(enc("z"))).toThrow(ClosedError);
    await until(() => atServer.closes.length === 1 && clientCloses.length === 1);
    expect(atServer.messages).toEqual(["x", "y"]);
    expect(atServer.closes).toEqual(["bye now"]);
    expect(clientCloses).toEqual(["bye now"]);
    expect(server.closed).toBe(true);
    expect(() => server.send(enc("z"))).toThrow(ClosedError);
    await new Promise((r) => setTimeout(r, 30));
    expect(atServer.closes).toEqual(["bye now"]);
  });

  it("onClose registered after the close is still called once", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    const { client, server } = await pair(a, "b", b);
    client.close("done");
    await until(() => server.closed);
    const late: string[] = [];
    server.onClose((r) => late.push(r));
    await until(() => late.length === 1);
    await new Promise((r) => setTimeout(r, 30));
    expect(late).toEqual(["done"]);
  });

  it("connect rejects with TryAgainError: service not listened on, peer unknown, nobody at the address", async () => {
    const d = directory();
    const a = await d.make("a");
    await d.make("b");
    await expectReject(a.connect("b", "nothing"), TryAgainError, /refused: b is not listening on service nothing/);
    await expectReject(a.connect("ghost", "svc"), TryAgainError, /cannot find peer ghost/);
    // A port that was bound and released: nothing listens there now.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    d.addrs.set("gone", { host: "127.0.0.1", port });
    await expectReject(a.connect("gone", "svc"), TryAgainError, /ECONNREFUSED/);
  });

  it("connect rejects with TryAgainError when the peer never answers the hello", async () => {
    const silent = createServer(() => undefined);
    servers.push(silent);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    const t = new TcpPeerTransport({ self: "a", listen: { host: "127.0.0.1", port: 0 }, resolve: async () => ({ host: "127.0.0.1", port }), connectTimeoutMs: 200 });
    open.push(t);
    await expectReject(t.connect("s", "svc"), TryAgainError, /no answer within 200 ms/);
  });

  it("a peer that resets the connection closes it with a reset reason", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    const { client, server } = await pair(a, "b", b);
    const closes: string[] = [];
    client.onClose((r) => closes.push(r));
    // Reach under the contract: destroy b's socket as a crash would.
    (server as unknown as { reset(reason: string): void }).reset("crash");
    await until(() => closes.length === 1);
    expect(closes[0]).toMatch(/^(reset|closed)/);
    expect(client.closed).toBe(true);
  });

  it("a peer that sends garbage is reset", async () => {
    const bad = createServer((s) => {
      s.once("data", () => {
        // WELCOME, then a frame of an unknown type.
        const welcome = Buffer.from(JSON.stringify({ v: 1, from: "bad" }));
        const head = Buffer.alloc(5);
        head.writeUInt32BE(welcome.length + 1, 0);
        head.writeUInt8(2, 4);
        s.write(Buffer.concat([head, welcome, Buffer.from([0, 0, 0, 1, 99])]));
      });
    });
    servers.push(bad);
    await new Promise<void>((r) => bad.listen(0, "127.0.0.1", r));
    const port = (bad.address() as { port: number }).port;
    const t = new TcpPeerTransport({ self: "a", listen: { host: "127.0.0.1", port: 0 }, resolve: async () => ({ host: "127.0.0.1", port }) });
    open.push(t);
    const c = await t.connect("bad", "svc");
    const closes: string[] = [];
    c.onClose((r) => closes.push(r));
    await until(() => closes.length === 1);
    expect(closes[0]).toMatch(/unexpected frame type 99/);
  });

  it("reconnects after the peer restarts on the same port", async () => {
    const d = directory();
    const a = await d.make("a");
    const b1 = await d.make("b");
    const port = d.addrs.get("b")!.port;
    const first = await pair(a, "b", b1);
    const closes: string[] = [];
    first.client.onClose((r) => closes.push(r));
    b1.close();
    await until(() => closes.length === 1);
    expect(closes).toEqual(["transport closed"]);
    await expectReject(a.connect("b", "svc"), TryAgainError);
    const b2 = await d.make("b", port);
    const second = await pair(a, "b", b2);
    const got = record(second.server);
    second.client.send(enc("again"));
    await until(() => got.messages.length === 1);
    expect(got.messages).toEqual(["again"]);
  });

  it("listen twice throws; stop frees the service; transport close closes connections and refuses use", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    const stop = b.listen("svc", () => undefined);
    expect(() => b.listen("svc", () => undefined)).toThrow(AddressInUseError);
    stop();
    const { client } = await pair(a, "b", b);
    const closes: string[] = [];
    client.onClose((r) => closes.push(r));
    a.close();
    a.close();
    await until(() => closes.length === 1);
    expect(closes).toEqual(["transport closed"]);
    await expectReject(a.connect("b", "svc"), ClosedError);
    expect(() => a.listen("x", () => undefined)).toThrow(ClosedError);
    expect(() => a.sendDatagram("b", "g", enc("x"))).toThrow(ClosedError);
  });

  it("refuses bad options and a taken port, naming the field", async () => {
    const bad = (opts: unknown, field: string) => {
      try {
        new TcpPeerTransport(opts as never);
        throw new Error("expected a ConfigError");
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).field).toBe(field);
      }
    };
    const resolve = async () => ({ host: "127.0.0.1", port: 1 });
    bad({ self: "", listen: { host: "127.0.0.1", port: 0 }, resolve }, "self");
    bad({ self: "a", listen: { host: "127.0.0.1", port: 70000 }, resolve }, "listen.port");
    bad({ self: "a", listen: { host: "", port: 0 }, resolve }, "listen.host");
    bad({ self: "a", listen: { host: "127.0.0.1", port: 0 } }, "resolve");
    const d = directory();
    await d.make("a");
    const taken = new TcpPeerTransport({ self: "x", listen: d.addrs.get("a")!, resolve });
    open.push(taken);
    await expectReject(taken.start(), AddressInUseError);
  });
});

describe("TcpPeerTransport datagrams", () => {
  it("go over UDP with the sender's name; unsubscribed or unknown services get nothing", async () => {
    const d = directory();
    const a = await d.make("a");
    const b = await d.make("b");
    const got: string[] = [];
    const other: string[] = [];
    const off = b.onDatagram("gossip", (from, m) => got.push(`${from}:${dec(m)}`));
    b.onDatagram("gossip", (from, m) => other.push(`${from}:${dec(m)}`));
    a.sendDatagram("b", "gossip", enc("hello"));
    a.sendDatagram("b", "unknown", enc("lost"));
    a.sendDatagram("ghost", "gossip", enc("lost too"));
    await until(() => got.length === 1 && other.length === 1);
    expect(got).toEqual(["a:hello"]);
    off();
    off();
    a.sendDatagram("b", "gossip", enc("second"));
    await until(() => other.length === 2);
    expect(got).toEqual(["a:hello"]);
    expect(other).toEqual(["a:hello", "a:second"]);
  });

  it("refuse a datagram that does not fit in one UDP packet", async () => {
    const d = directory();
    const a = await d.make("a");
    expect(() => a.sendDatagram("b", "g", new Uint8Array(70_000))).toThrow(ConfigError);
  });
});
