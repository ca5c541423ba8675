// A probe helper that runs inside one pod network namespace (started with
// `ip netns exec <ns> node kernel-prober.mjs 80,81`): serves TCP and UDP on the given ports
// (TCP answers "ok" and closes, UDP echoes "ok"), and probes other pods on request.
// Protocol: one JSON request per stdin line {id, proto: "tcp"|"udp", host, port, timeoutMs};
// one JSON answer per stdout line {id, ok}. Prints "ready" once every server listens; exits when
// stdin closes (so it never outlives the test that started it).
import dgram from "node:dgram";
import net from "node:net";
import readline from "node:readline";

const ports = (process.argv[2] ?? "80,81").split(",").map(Number);
// Every probe uses a source port of its own (never reused in a run), so a new probe can never
// match a conntrack entry of an earlier probe (which would make it "established" and bypass the
// policy): UDP entries live 30-120 s, and the kernel would otherwise pick ports at random.
let nextSourcePort = 20000;
function sourcePort() {
  const p = nextSourcePort++;
  if (nextSourcePort > 59999) nextSourcePort = 20000;
  return p;
}
const listening = [];
for (const port of ports) {
  const server = net.createServer((c) => {
    c.on("error", () => {});
    c.end("ok\n");
  });
  listening.push(new Promise((resolve, reject) => server.once("error", reject).listen(port, "0.0.0.0", resolve)));
  const udp = dgram.createSocket("udp4");
  udp.on("message", (_m, r) => udp.send("ok", r.port, r.address));
  listening.push(new Promise((resolve, reject) => udp.once("error", reject).bind(port, "0.0.0.0", resolve)));
}

function probeTcp(host, port, timeoutMs) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port, localPort: sourcePort() });
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on("data", (d) => finish(String(d).includes("ok")));
    sock.on("error", () => finish(false));
  });
}

function probeUdp(host, port, timeoutMs) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket("udp4");
    let done = false;
    const timers = [];
    const finish = (ok) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      sock.close();
      resolve(ok);
    };
    sock.on("message", (m) => finish(String(m) === "ok"));
    sock.on("error", () => finish(false));
    const send = () => sock.send("ping", port, host, () => {});
    sock.bind(sourcePort(), () => {
      send();
      timers.push(setTimeout(send, timeoutMs / 2));
    });
    timers.push(setTimeout(() => finish(false), timeoutMs));
  });
}

Promise.all(listening).then(
  () => {
    process.stdout.write("ready\n");
    const rl = readline.createInterface({ input: process.stdin });
    rl.on("line", (line) => {
      const q = JSON.parse(line);
      const p = q.proto === "udp" ? probeUdp(q.host, q.port, q.timeoutMs) : probeTcp(q.host, q.port, q.timeoutMs);
      p.then((ok) => process.stdout.write(`${JSON.stringify({ id: q.id, ok })}\n`));
    });
    rl.on("close", () => process.exit(0));
  },
  (err) => {
    process.stderr.write(`prober: cannot listen: ${err.message}\n`);
    process.exit(1);
  },
);
