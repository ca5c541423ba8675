#!/usr/bin/env node
// cnikit-lab-probe: the lab's responder and prober, one per namespace (pod, node, infra, external
// host), started detached with `ip netns exec <ns> node cnikit-lab-probe.mjs --control <sock>
// --port <p>` so it lives in that namespace until `lab down` kills it by its recorded PID.
// Plain JavaScript with node built-ins only, so it starts fast and needs no TypeScript loader.
//
// Responder (in the namespace): TCP <port> reads one line and answers one JSON line
// {"echo": <line>, "peer": <remote address as seen>}, then closes; UDP <port> answers each datagram
// with the same JSON. The peer address is how `lab check` proves there is no NAT between pods.
//
// Control (a unix socket, reachable from the host's namespace since sockets live in the file
// system): one JSON request per line, one JSON answer per line with the same `id`:
//   {id, op: "tcp"|"udp", host, port, payload, timeoutMs} -> {id, ok, seen?, error?, ms}
//   {id, op: "ping", host, timeoutMs}                       -> {id, ok, error?, ms}
//   {id, op: "http", url, timeoutMs}                        -> {id, ok, status?, body?, error?}
//   {id, op: "info"}                                        -> {id, ok, pid}
// `ok` is true for tcp/udp only when the echo came back unchanged.
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const control = arg("--control");
const port = Number(arg("--port", "8080"));
if (!control || !Number.isInteger(port)) {
  process.stderr.write("usage: cnikit-lab-probe.mjs --control <unix socket> [--port 8080]\n");
  process.exit(2);
}

const reply = (payload, peer) => JSON.stringify({ echo: payload, peer });

// ---- responder -------------------------------------------------------------------------------
const tcpServer = net.createServer((c) => {
  let buf = "";
  c.setEncoding("utf8");
  c.on("error", () => {});
  c.setTimeout(5000, () => c.destroy());
  c.on("data", (d) => {
    buf += d;
    const nl = buf.indexOf("\n");
    if (nl < 0) {
      if (buf.length > 65536) c.destroy();
      return;
    }
    c.end(`${reply(buf.slice(0, nl), c.remoteAddress)}\n`);
  });
});
const udpServer = dgram.createSocket("udp4");
udpServer.on("message", (m, r) => udpServer.send(reply(String(m), r.address), r.port, r.address));
udpServer.on("error", () => {});

// ---- prober ----------------------------------------------------------------------------------
function parseEcho(text) {
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" ? v : undefined;
  } catch {
    return undefined;
  }
}

function probeTcp(q) {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = net.connect({ host: q.host, port: q.port });
    let buf = "";
    let done = false;
    const finish = (out) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...out, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish({ ok: false, error: "timeout" }), q.timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(`${q.payload}\n`));
    sock.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const v = parseEcho(buf.slice(0, nl));
      if (!v) return finish({ ok: false, error: "bad answer" });
      finish({ ok: v.echo === q.payload, seen: v.peer, ...(v.echo === q.payload ? {} : { error: "payload changed" }) });
    });
    sock.on("end", () => finish({ ok: false, error: "closed without an answer" }));
    sock.on("error", (e) => finish({ ok: false, error: e.code || e.message }));
  });
}

function probeUdp(q) {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = dgram.createSocket("udp4");
    let done = false;
    const timers = [];
    const finish = (out) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      try {
        sock.close();
      } catch {
        // already closed
      }
      resolve({ ...out, ms: Date.now() - started });
    };
    sock.on("message", (m) => {
      const v = parseEcho(String(m));
      if (v && v.echo === q.payload) finish({ ok: true, seen: v.peer });
    });
    sock.on("error", (e) => finish({ ok: false, error: e.code || e.message }));
    const send = () => sock.send(q.payload, q.port, q.host, () => {});
    sock.bind(0, () => {
      send();
      timers.push(setTimeout(send, q.timeoutMs / 3));
      timers.push(setTimeout(send, (2 * q.timeoutMs) / 3));
    });
    timers.push(setTimeout(() => finish({ ok: false, error: "timeout" }), q.timeoutMs));
  });
}

// One echo per second of the timeout (at least one), stopping at the first reply: like TCP's SYN
// retransmissions and the UDP probe's resends, so one packet lost while routes converge does not
// fail a pair that works.
async function probePing(q) {
  const started = Date.now();
  let last = "no reply";
  while (Date.now() - started < q.timeoutMs) {
    const wait = Math.max(1, Math.min(2, Math.ceil((q.timeoutMs - (Date.now() - started)) / 1000)));
    const r = await pingOnce(q.host, wait);
    if (r.ok) return { ok: true, ms: Date.now() - started };
    last = r.error;
    if (r.fatal) break;
  }
  return { ok: false, error: last, ms: Date.now() - started };
}

function pingOnce(host, waitSeconds) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn("ping", ["-n", "-q", "-c", "1", "-W", String(waitSeconds), host], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    child.on("error", (e) => resolve({ ok: false, fatal: true, error: `ping: ${e.message}` }));
    child.on("exit", async (code) => {
      if (code === 0) return resolve({ ok: true });
      // An immediate error (no route: "Network is unreachable") would spin: pace it like a timeout.
      const spent = Date.now() - started;
      if (spent < 1000) await new Promise((r) => setTimeout(r, 1000 - spent));
      resolve({ ok: false, fatal: false, error: err.trim() || `no reply (ping exit ${code})` });
    });
  });
}

function probeHttp(q) {
  return new Promise((resolve) => {
    const req = http.get(q.url, { timeout: q.timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ ok: true, status: res.statusCode, body }));
      res.on("error", (e) => resolve({ ok: false, error: e.message }));
    });
    req.on("error", (e) => resolve({ ok: false, error: e.code || e.message }));
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

async function answer(q) {
  const timeoutMs = Number.isFinite(q.timeoutMs) ? q.timeoutMs : 2000;
  switch (q.op) {
    case "tcp":
      return probeTcp({ ...q, timeoutMs });
    case "udp":
      return probeUdp({ ...q, timeoutMs });
    case "ping":
      return probePing({ ...q, timeoutMs });
    case "http":
      return probeHttp({ ...q, timeoutMs });
    case "info":
      return { ok: true, pid: process.pid };
    default:
      return { ok: false, error: `unknown op ${JSON.stringify(q.op)}` };
  }
}

const controlServer = net.createServer((c) => {
  let buf = "";
  c.setEncoding("utf8");
  c.on("error", () => {});
  c.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let q;
      try {
        q = JSON.parse(line);
      } catch {
        c.write(`${JSON.stringify({ id: null, ok: false, error: "bad request" })}\n`);
        continue;
      }
      answer(q).then((a) => {
        if (!c.destroyed) c.write(`${JSON.stringify({ id: q.id, ...a })}\n`);
      });
    }
  });
});

function listen(server, ...args) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(...args, resolve);
  });
}

try {
  await listen(tcpServer, port, "0.0.0.0");
  await new Promise((resolve, reject) => {
    udpServer.once("error", reject);
    udpServer.bind(port, "0.0.0.0", resolve);
  });
  rmSync(control, { force: true });
  await listen(controlServer, control);
  process.stderr.write(`cnikit-lab-probe: pid ${process.pid} serving tcp+udp ${port}, control ${control}\n`);
} catch (e) {
  process.stderr.write(`cnikit-lab-probe: cannot start: ${e.message}\n`);
  process.exit(1);
}
const stop = () => {
  rmSync(control, { force: true });
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
