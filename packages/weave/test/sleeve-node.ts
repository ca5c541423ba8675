/**
 * One node's sleeve for the kernel test and the bench, run inside the node's namespace
 * (`ip netns exec <node> node --import tsx sleeve-node.ts '<json>'`), as cnikitd runs there on a lab
 * node: so the relay's UDP socket and the TAP its helper creates both live in the node's
 * namespace. Config (argv[2], JSON): { name, address, tap, helper, encrypted, peers: [{name,
 * address}], keys?: { [peer]: { send, receive } } (hex, 32 bytes each: the session keys of the
 * connection to that peer) }.
 *
 * stdout: "ready <port>" once the relay runs; a JSON line of `stats()` for each "stats" line read
 * on stdin; when stdin closes, the relay stops (the helper by its PID), a final JSON line of stats
 * is printed, and the process exits 0.
 */
import { createInterface } from "node:readline";
import { SleeveRelay, sleeveSession, type SleevePeer } from "../src/sleeve/relay.ts";
import { TapDevice } from "../src/sleeve/tap.ts";

interface NodeConfig {
  name: string;
  address: string;
  tap: string;
  helper: string;
  encrypted: boolean;
  peers: { name: string; address: string }[];
  keys?: Record<string, { send: string; receive: string }>;
}

const cfg = JSON.parse(process.argv[2] ?? "{}") as NodeConfig;
const relay = new SleeveRelay({
  name: cfg.name,
  address: cfg.address,
  device: new TapDevice({ ifname: cfg.tap, helper: cfg.helper }),
  encrypted: cfg.encrypted,
  log: { debug() {}, info() {}, warn: (m, f) => process.stderr.write(`${m} ${JSON.stringify(f ?? {})}\n`), error: (m, f) => process.stderr.write(`${m} ${JSON.stringify(f ?? {})}\n`) },
});
await relay.start();
relay.setPeers(
  cfg.peers.map((p): SleevePeer => {
    const k = cfg.keys?.[p.name];
    return k ? { ...p, session: sleeveSession({ send: Buffer.from(k.send, "hex"), receive: Buffer.from(k.receive, "hex") }) } : p;
  }),
);
process.stdout.write(`ready ${relay.localPort}\n`);
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim() === "stats") process.stdout.write(`${JSON.stringify(relay.stats())}\n`);
});
lines.on("close", () => {
  void relay.stop().then(() => {
    process.stdout.write(`${JSON.stringify(relay.stats())}\n`);
    process.exit(0);
  });
});
