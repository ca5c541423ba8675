/**
 * A two-node Weave-shaped lab on the real kernel, for the sleeve's kernel test and its bench
 * (scripts/bench/weave-sleeve.ts):
 *
 *   pod p1 (10.32.0.1/12) ─veth─ [bridge weave + port] node n1 ── ul 192.168.77.1/24
 *                                                               │ veth (the underlay)
 *   pod p2 (10.32.128.1/12) ─veth─ [bridge weave + port] node n2 ── ul 192.168.77.2/24
 *
 * The bridge's port towards the other node is, by `mode`: "sleeve" — the TAP `wtap` of a
 * SleeveRelay (UDP 6783) running in a child Node process inside the node namespace
 * (test/sleeve-node.ts), plain or `encrypted`; "fastdp" — a kernel vxlan `vx` (UDP 6784) with a
 * flood FDB entry for the other node, the yardstick. Pods and the port get the MTU the
 * encapsulation leaves of the underlay's 1500.
 *
 * Every namespace is named `cksl<pid>-<tag>-…`; `stop()` stops the processes it started by their
 * PIDs and deletes the namespaces it created (interfaces go with them), whatever state the lab
 * reached. Namespaces of earlier runs whose process is gone are removed at start.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { sleeveOverhead, type SleeveStats } from "../src/sleeve/relay.ts";
import { SEAL_OVERHEAD } from "../src/crypto/session.ts";
import { connectionKeys } from "./sleeve-fixtures.ts";
import { pidAlive } from "@cnikit/core";

const run = promisify(execFile);
const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
const NODE_CHILD = here("./sleeve-node.ts");
const TCP_TOOL = here("./sleeve-tcp.mjs");
const TSX_LOADER = pathToFileURL(here("../../../node_modules/tsx/dist/loader.mjs")).href;
const PREFIX_RE = /^cksl(\d+)-/;

export type SleeveLabMode = "sleeve" | "fastdp";

export interface SleeveLabOptions {
  /** Part of every namespace name (unique per lab in one process). */
  tag: string;
  mode: SleeveLabMode;
  /** Sleeve: seal with the session keys of an X25519 + password exchange (src/crypto/session.ts). */
  encrypted?: boolean;
  /** The TAP helper binary (sleeve mode). */
  helper?: string;
}

export interface LabPod {
  ns: string;
  ip: string;
}

/** Runs `argv`; rejects with the command and its stderr. */
export async function sh(argv: string[]): Promise<string> {
  try {
    return (await run(argv[0]!, argv.slice(1), { encoding: "utf8" })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(" ")}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** A process the lab started: lines of its stdout, waited on by condition, stopped by PID. */
export class LabProcess {
  readonly lines: string[] = [];
  stderr = "";
  private readonly waiters = new Set<() => void>();
  readonly exit: Promise<number | null>;
  private readonly stdoutChunks: Buffer[] = [];

  constructor(
    readonly what: string,
    readonly child: ChildProcessWithoutNullStreams,
  ) {
    let partial = "";
    child.stdout.on("data", (d: Buffer) => {
      this.stdoutChunks.push(d);
      partial += d.toString("latin1");
      const parts = partial.split("\n");
      partial = parts.pop()!;
      this.lines.push(...parts);
      this.wake();
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      this.stderr = (this.stderr + d).slice(-16384);
      this.wake();
    });
    child.stdin.on("error", () => {});
    this.exit = new Promise((resolve) =>
      child.once("close", (code) => {
        resolve(code);
        this.wake();
      }),
    );
  }

  /** Everything it wrote to stdout, as bytes. */
  stdoutBytes(): Buffer {
    return Buffer.concat(this.stdoutChunks);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves when `ok()` holds (checked on every output), rejects when it exits first or after `ms`. */
  async until(ok: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    let exited = false;
    void this.exit.then(() => (exited = true));
    while (!ok()) {
      if (exited) throw new Error(`${this.what} exited before ${what}: ${this.stderr.trim()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.what}: no ${what} within ${ms} ms (stderr: ${this.stderr.trim()})`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          this.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  /** Closes stdin, then signals its PID if it has not exited after `graceMs`; resolves when it exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
    this.child.stdin.end();
    const exited = await Promise.race([this.exit.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs))]);
    if (exited || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, signal);
    } catch {
      // already gone
    }
    await this.exit;
  }
}

/** Starts `argv` inside namespace `ns` (`ip netns exec` execs it: the PID is the program's own). */
export function startIn(ns: string, argv: string[], what: string): LabProcess {
  return new LabProcess(what, spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["pipe", "pipe", "pipe"] }));
}

export class SleeveLab {
  readonly prefix: string;
  readonly pods: LabPod[];
  readonly nodes: { ns: string; underlay: string; name: string }[];
  /** The MTU of the pods and the bridge's port towards the other node. */
  readonly mtu: number;
  readonly relays: LabProcess[] = [];
  private readonly namespaces: string[] = [];
  private readonly processes: LabProcess[] = [];

  private constructor(readonly options: SleeveLabOptions) {
    this.prefix = `cksl${process.pid}-${options.tag}`;
    this.nodes = [1, 2].map((i) => ({ ns: `${this.prefix}-n${i}`, underlay: `192.168.77.${i}`, name: `n${i}` }));
    this.pods = [
      { ns: `${this.prefix}-p1`, ip: "10.32.0.1" },
      { ns: `${this.prefix}-p2`, ip: "10.32.128.1" },
    ];
    this.mtu = options.mode === "fastdp" ? 1500 - 50 : 1500 - 14 - sleeveOverhead({ src: "n1", dst: "n2", ...(options.encrypted ? { sealOverhead: SEAL_OVERHEAD } : {}) });
  }

  /** Builds the lab; on failure tears down what it made and rethrows. */
  static async start(options: SleeveLabOptions): Promise<SleeveLab> {
    await removeLeftovers();
    const lab = new SleeveLab(options);
    try {
      await lab.build();
    } catch (err) {
      await lab.stop();
      throw err;
    }
    return lab;
  }

  private async ns(name: string): Promise<void> {
    this.namespaces.push(name);
    await sh(["ip", "netns", "add", name]);
    await sh(["ip", "-n", name, "link", "set", "lo", "up"]);
    // No IPv6: the bridge and the TAP would otherwise send neighbour discovery of their own, and
    // the only frames crossing are the pods' (so the relays learn exactly the other pod's MAC).
    await sh(["ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
  }

  private async build(): Promise<void> {
    const [n1, n2] = this.nodes as [(typeof this.nodes)[0], (typeof this.nodes)[0]];
    for (const n of this.nodes) await this.ns(n.ns);
    for (const p of this.pods) await this.ns(p.ns);
    await sh(["ip", "-n", n1.ns, "link", "add", "ul", "type", "veth", "peer", "name", "ul", "netns", n2.ns]);
    for (const [i, n] of this.nodes.entries()) {
      const pod = this.pods[i]!;
      await sh(["ip", "-n", n.ns, "addr", "add", `${n.underlay}/24`, "dev", "ul"]);
      await sh(["ip", "-n", n.ns, "link", "set", "ul", "up"]);
      await sh(["ip", "-n", n.ns, "link", "add", "weave", "type", "bridge"]);
      await sh(["ip", "-n", n.ns, "link", "set", "weave", "up"]);
      await sh(["ip", "-n", n.ns, "link", "add", "vpod", "mtu", String(this.mtu), "type", "veth", "peer", "name", "eth0", "mtu", String(this.mtu), "netns", pod.ns]);
      await sh(["ip", "-n", n.ns, "link", "set", "vpod", "master", "weave", "up"]);
      await sh(["ip", "-n", pod.ns, "addr", "add", `${pod.ip}/12`, "dev", "eth0"]);
      await sh(["ip", "-n", pod.ns, "link", "set", "eth0", "up"]);
    }
    if (this.options.mode === "fastdp") {
      for (const [i, n] of this.nodes.entries()) {
        const other = this.nodes[1 - i]!;
        await sh(["ip", "-n", n.ns, "link", "add", "vx", "mtu", String(this.mtu), "type", "vxlan", "id", "42", "dstport", "6784", "local", n.underlay, "dev", "ul"]);
        await sh(["bridge", "-n", n.ns, "fdb", "append", "00:00:00:00:00:00", "dev", "vx", "dst", other.underlay]);
        await sh(["ip", "-n", n.ns, "link", "set", "vx", "master", "weave", "up"]);
      }
      return;
    }
    const helper = this.options.helper;
    if (!helper) throw new Error("sleeve mode needs the TAP helper's path (buildWeaveTap())");
    // n1 dialled n2: the session keys of that connection, as each side's handshake derives them
    const conn = connectionKeys();
    const hex = (k: { send: Uint8Array; receive: Uint8Array }) => ({ send: Buffer.from(k.send).toString("hex"), receive: Buffer.from(k.receive).toString("hex") });
    const keys = { n1: hex(conn.initiator), n2: hex(conn.responder) };
    for (const [i, n] of this.nodes.entries()) {
      const other = this.nodes[1 - i]!;
      const cfg = {
        name: n.name,
        address: n.underlay,
        tap: "wtap",
        helper,
        encrypted: this.options.encrypted === true,
        peers: [{ name: other.name, address: other.underlay }],
        ...(this.options.encrypted ? { keys: { [other.name]: keys[n.name as "n1"] } } : {}),
      };
      const p = startIn(n.ns, [process.execPath, "--conditions=source", "--import", TSX_LOADER, NODE_CHILD, JSON.stringify(cfg)], `sleeve relay ${n.name}`);
      this.processes.push(p);
      this.relays.push(p);
      await p.until(() => p.lines.some((l) => l.startsWith("ready ")), 30_000, "ready line");
      await sh(["ip", "-n", n.ns, "link", "set", "wtap", "mtu", String(this.mtu), "master", "weave", "up"]);
    }
  }

  /** A relay's counters now. */
  async stats(node: 0 | 1): Promise<SleeveStats> {
    const p = this.relays[node];
    if (!p) throw new Error(`no sleeve relay on node ${node + 1} (mode ${this.options.mode})`);
    const before = p.lines.length;
    p.child.stdin.write("stats\n");
    await p.until(() => p.lines.length > before, 10_000, "stats line");
    return JSON.parse(p.lines[before]!) as SleeveStats;
  }

  /** Whether pod `from` gets an answer to a ping of pod `to`, trying for up to `ms`. */
  async pingUntil(from: 0 | 1, to: 0 | 1, ms = 20_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      try {
        await sh(["ip", "netns", "exec", this.pods[from]!.ns, "ping", "-c", "1", "-W", "1", this.pods[to]!.ip]);
        return true;
      } catch {
        // not yet: ARP and the relays' first flood can take a moment on a loaded machine
      }
    }
    return false;
  }

  /** Starts the TCP server of sleeve-tcp.mjs in pod `on` on `port`, ready to accept. */
  async serve(on: 0 | 1, port: number): Promise<void> {
    const p = startIn(this.pods[on]!.ns, [process.execPath, TCP_TOOL, "serve", String(port)], `tcp server in ${this.pods[on]!.ns}`);
    this.processes.push(p);
    await p.until(() => p.lines.includes("ready"), 20_000, "ready line");
  }

  /** Sends `text` from pod `from` to the server on pod `to`; the server's answer ("<bytes>\n<text>"). */
  async send(from: 0 | 1, to: 0 | 1, port: number, text: string, ms = 20_000): Promise<string> {
    return sh(["ip", "netns", "exec", this.pods[from]!.ns, process.execPath, TCP_TOOL, "send", this.pods[to]!.ip, String(port), text, String(ms)]);
  }

  /** Sends `bytes` from pod `from` to the server on pod `to`; wall ms until the server counted them all. */
  async blast(from: 0 | 1, to: 0 | 1, port: number, bytes: number, ms = 120_000): Promise<{ bytes: number; ms: number }> {
    const out = await sh(["ip", "netns", "exec", this.pods[from]!.ns, process.execPath, TCP_TOOL, "blast", this.pods[to]!.ip, String(port), String(bytes), String(ms)]);
    return JSON.parse(out) as { bytes: number; ms: number };
  }

  /**
   * Starts tcpdump on node `on`'s underlay veth (pcap to its stdout) for UDP on the encapsulation's
   * port; resolves once it listens. `stop()` of the result ends it by PID (SIGINT: it flushes).
   */
  async capture(on: 0 | 1): Promise<LabProcess> {
    const port = this.options.mode === "fastdp" ? "6784" : "6783";
    const p = startIn(this.nodes[on]!.ns, ["tcpdump", "-i", "ul", "-n", "-U", "-s", "0", "-Z", "root", "-w", "-", "udp", "port", port], `tcpdump on ${this.nodes[on]!.ns}/ul`);
    this.processes.push(p);
    await p.until(() => p.stderr.includes("listening on"), 20_000, "'listening on' from tcpdump");
    return p;
  }

  /** Stops every process it started (by PID) and deletes every namespace it created. Idempotent. */
  async stop(): Promise<void> {
    for (const p of this.processes.splice(0).reverse()) await p.stop(p.what.startsWith("tcpdump") ? "SIGINT" : "SIGTERM");
    for (const ns of this.namespaces.splice(0).reverse()) await deleteNs(ns);
  }
}

async function deleteNs(name: string): Promise<void> {
  try {
    await sh(["ip", "netns", "delete", name]);
  } catch (err) {
    if (readdirSync("/var/run/netns").includes(name)) throw err;
  }
}

/** Deletes namespaces of earlier runs (`cksl<pid>-…`) whose process is gone. */
async function removeLeftovers(): Promise<void> {
  let names: string[] = [];
  try {
    names = readdirSync("/var/run/netns");
  } catch {
    return;
  }
  for (const name of names) {
    const m = PREFIX_RE.exec(name);
    if (m && !pidAlive(Number(m[1]))) await deleteNs(name);
  }
}

/** The packets of a pcap stream (the payload bytes of each record, little-endian pcap as tcpdump writes here). */
export function pcapPackets(pcap: Buffer): Buffer[] {
  if (pcap.length < 24) return [];
  const le = pcap.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (at: number): number => (le ? pcap.readUInt32LE(at) : pcap.readUInt32BE(at));
  const out: Buffer[] = [];
  let at = 24;
  while (at + 16 <= pcap.length) {
    const len = u32(at + 8);
    if (at + 16 + len > pcap.length) break;
    out.push(pcap.subarray(at + 16, at + 16 + len));
    at += 16 + len;
  }
  return out;
}
