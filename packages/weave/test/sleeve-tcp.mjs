// TCP between the sleeve tests' pods, run inside a pod namespace (`ip netns exec <pod> node …`).
//   serve <port>                      prints "ready"; per connection reads until the client ends,
//                                     answers "<bytes received>\n" followed by the data when it was
//                                     at most 64 KiB, then closes. Exits when its stdin closes.
//   send <host> <port> <text> <ms>    sends <text>, prints the answer, exit 0 (1 on error/timeout)
//   blast <host> <port> <bytes> <ms>  sends <bytes> bytes, prints {"bytes","ms"} (ms from connect to
//                                     the server's count, so every byte crossed), exit 0 (1 on error)
import { createConnection, createServer } from "node:net";

const [mode, ...args] = process.argv.slice(2);

if (mode === "serve") {
  const server = createServer((sock) => {
    let bytes = 0;
    const kept = [];
    sock.on("data", (d) => {
      bytes += d.length;
      if (bytes <= 65536) kept.push(d);
    });
    sock.on("end", () => sock.end(Buffer.concat([Buffer.from(`${bytes}\n`), bytes <= 65536 ? Buffer.concat(kept) : Buffer.alloc(0)])));
    sock.on("error", () => {});
  });
  server.listen(Number(args[0]), "0.0.0.0", () => process.stdout.write("ready\n"));
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
} else if (mode === "send" || mode === "blast") {
  const [host, port, what, ms] = args;
  const timer = setTimeout(() => {
    process.stderr.write(`no answer from ${host}:${port} within ${ms} ms\n`);
    process.exit(1);
  }, Number(ms));
  const sock = createConnection({ host, port: Number(port) });
  const reply = [];
  let started = 0;
  sock.on("connect", () => {
    started = performance.now();
    if (mode === "send") {
      sock.end(what);
      return;
    }
    const total = Number(what);
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    let left = total;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void sock.once("drain", pump);
      }
      sock.end();
    };
    pump();
  });
  sock.on("data", (d) => reply.push(d));
  sock.on("end", () => {
    clearTimeout(timer);
    const text = Buffer.concat(reply).toString();
    if (mode === "send") process.stdout.write(text);
    else process.stdout.write(`${JSON.stringify({ bytes: Number(text.split("\n")[0]), ms: performance.now() - started })}\n`);
    process.exit(0);
  });
  sock.on("error", (err) => {
    process.stderr.write(`${host}:${port}: ${err.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write("usage: sleeve-tcp.mjs serve <port> | send <host> <port> <text> <ms> | blast <host> <port> <bytes> <ms>\n");
  process.exit(2);
}
