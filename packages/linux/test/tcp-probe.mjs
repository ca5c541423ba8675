// A tiny TCP prober run inside a namespace by the kernel tests.
//   serve <port>                      listen on every address; print "ready"; answer each
//                                     connection with the peer address it saw, then close
//   connect <host> <port> <timeoutMs> connect, print what the server said, exit 0; exit 1 on
//                                     failure or timeout
import net from "node:net";

const [mode, a, b, c] = process.argv.slice(2);
if (mode === "serve") {
  const server = net.createServer((sock) => {
    sock.end(`${sock.remoteAddress?.replace(/^::ffff:/, "") ?? "?"}\n`);
  });
  server.listen({ port: Number(a), host: "::", ipv6Only: false }, () => process.stdout.write("ready\n"));
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
} else if (mode === "connect") {
  const timer = setTimeout(() => {
    process.stderr.write("timeout\n");
    process.exit(1);
  }, Number(c));
  const sock = net.connect({ host: a, port: Number(b) });
  let data = "";
  sock.on("data", (d) => (data += String(d)));
  sock.on("end", () => {
    clearTimeout(timer);
    process.stdout.write(data);
    process.exit(0);
  });
  sock.on("error", (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write(`usage: serve <port> | connect <host> <port> <timeoutMs>\n`);
  process.exit(2);
}
