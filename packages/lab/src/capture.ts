/**
 * Packet capture on a lab interface, for checks that must see what crosses the wire (section G:
 * no pod payload in plaintext on the underlay).
 *
 *   const cap = await UnderlayCapture.start({ ns: node.ns, ifName: "eth0" });  // "listening on" seen
 *   ... traffic ...
 *   await cap.waitFor(Buffer.from(sentinel), 10_000);  // the capture has caught up to a packet sent last
 *   const { packets, droppedByKernel } = await cap.stop();
 *   const hits = packetsWith(packets, markerForms(marker));
 *
 * `tcpdump` (Debian package tcpdump) runs inside the namespace as `ip netns exec <ns> timeout
 * <s> tcpdump -i <if> -n -U --immediate-mode -s 0 -w -`: the pcap stream comes back on its stdout
 * (no file, nothing to clean up), packet by packet. `start` resolves once tcpdump prints its
 * "listening on" line (the capture is live from then on) and rejects with tcpdump's own words if it
 * exits or stays silent first. `stop` signals the process this module started, by its PID (never
 * by name), and resolves when it has exited, with every packet it wrote and the kernel drop count
 * from its statistics. `timeout` bounds the capture (default 120 s) even if the caller dies
 * without stopping it.
 *
 * Packets are read with `parsePcap` (classic pcap, either byte order, micro- or nanosecond
 * stamps) and `ipv4Of` (Ethernet with VLAN tags, Linux cooked v1/v2, raw IP): addresses, protocol
 * and ports of the outer IPv4 header, which is what the underlay carries.
 */
import { spawn, type ChildProcess } from "node:child_process";

/** One captured packet: its link type and the bytes captured. */
export interface CapturedPacket {
  /** Capture time, microseconds since the epoch. */
  timeUs: number;
  /** The pcap link type of the capture (1 Ethernet, 113 Linux cooked, ...). */
  linkType: number;
  /** Its original length on the wire. */
  wireLength: number;
  data: Buffer;
}

/** The outer IPv4 header of a packet (ports for TCP and UDP). */
export interface Ipv4Info {
  src: string;
  dst: string;
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP, 4 IPIP, 50 ESP, ...). */
  protocol: number;
  srcPort?: number;
  dstPort?: number;
}

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;

/**
 * The packets of a classic pcap stream (24-byte file header, 16-byte record headers). A trailing
 * record not yet complete is left out (the stream may still be growing). Throws on a stream that
 * does not start with a pcap magic number.
 */
export function parsePcap(buf: Buffer): { linkType: number; packets: CapturedPacket[] } {
  if (buf.length < 24) return { linkType: -1, packets: [] };
  const le = buf.readUInt32LE(0);
  const be = buf.readUInt32BE(0);
  let little: boolean;
  let nano: boolean;
  if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) [little, nano] = [true, le === PCAP_MAGIC_NS];
  else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) [little, nano] = [false, be === PCAP_MAGIC_NS];
  else throw new Error(`[lab] not a pcap stream (magic 0x${be.toString(16).padStart(8, "0")})`);
  const u32 = (off: number): number => (little ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const linkType = u32(20) & 0x0fffffff;
  const packets: CapturedPacket[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    const orig = u32(off + 12);
    if (off + 16 + incl > buf.length) break;
    packets.push({ timeUs: sec * 1e6 + (nano ? Math.floor(frac / 1000) : frac), linkType, wireLength: orig, data: buf.subarray(off + 16, off + 16 + incl) });
    off += 16 + incl;
  }
  return { linkType, packets };
}

/** Where the network-layer header starts and its ethertype, per link type (undefined: not IP-bearing or unknown). */
function networkLayer(p: CapturedPacket): { offset: number; ethertype: number } | undefined {
  const d = p.data;
  switch (p.linkType) {
    case 1: {
      // Ethernet, skipping 802.1Q / 802.1ad tags.
      let off = 12;
      if (d.length < off + 2) return undefined;
      let type = d.readUInt16BE(off);
      while ((type === 0x8100 || type === 0x88a8) && d.length >= off + 6) {
        off += 4;
        type = d.readUInt16BE(off);
      }
      return { offset: off + 2, ethertype: type };
    }
    case 113:
      return d.length >= 16 ? { offset: 16, ethertype: d.readUInt16BE(14) } : undefined;
    case 276:
      return d.length >= 20 ? { offset: 20, ethertype: d.readUInt16BE(0) } : undefined;
    case 101:
    case 12:
    case 228:
      return d.length >= 1 && d[0]! >> 4 === 4 ? { offset: 0, ethertype: 0x0800 } : undefined;
    default:
      return undefined;
  }
}

/** The outer IPv4 header of `p` (undefined for anything else: ARP, IPv6, a truncated packet). */
export function ipv4Of(p: CapturedPacket): Ipv4Info | undefined {
  const l = networkLayer(p);
  if (!l || l.ethertype !== 0x0800) return undefined;
  const d = p.data;
  const o = l.offset;
  if (d.length < o + 20 || d[o]! >> 4 !== 4) return undefined;
  const ihl = (d[o]! & 0x0f) * 4;
  const protocol = d[o + 9]!;
  const addr = (at: number): string => `${d[at]}.${d[at + 1]}.${d[at + 2]}.${d[at + 3]}`;
  const out: Ipv4Info = { src: addr(o + 12), dst: addr(o + 16), protocol };
  // Ports only in the first fragment.
  const fragOffset = d.readUInt16BE(o + 6) & 0x1fff;
  if ((protocol === 6 || protocol === 17) && fragOffset === 0 && d.length >= o + ihl + 4) {
    out.srcPort = d.readUInt16BE(o + ihl);
    out.dstPort = d.readUInt16BE(o + ihl + 2);
  }
  return out;
}

/** How a marker string may show on the wire in plaintext: its bytes, and its hex (lower and upper case). */
export function markerForms(marker: string): Buffer[] {
  const raw = Buffer.from(marker, "utf8");
  const hex = raw.toString("hex");
  return [raw, Buffer.from(hex, "ascii"), Buffer.from(hex.toUpperCase(), "ascii")];
}

/** The packets whose captured bytes contain any of `forms`. */
export function packetsWith(packets: readonly CapturedPacket[], forms: readonly Buffer[]): CapturedPacket[] {
  return packets.filter((p) => forms.some((f) => p.data.includes(f)));
}

/** One line about a packet: "198.51.100.10 → 203.0.113.10 udp 45678→8472, 148 bytes". */
export function describePacket(p: CapturedPacket): string {
  const ip = ipv4Of(p);
  if (!ip) return `a non-IPv4 frame of ${p.wireLength} bytes`;
  const proto = ip.protocol === 6 ? "tcp" : ip.protocol === 17 ? "udp" : ip.protocol === 1 ? "icmp" : `ip proto ${ip.protocol}`;
  const ports = ip.srcPort !== undefined ? ` ${ip.srcPort}→${ip.dstPort}` : "";
  return `${ip.src} → ${ip.dst} ${proto}${ports}, ${p.wireLength} bytes`;
}

/** Options of `UnderlayCapture.start`. */
export interface CaptureOptions {
  /** The network namespace (`ip netns exec <ns>`). */
  ns: string;
  /** The interface inside it. */
  ifName: string;
  /** The capture ends by itself after this long (tcpdump under `timeout`). Default 120 000 ms. */
  maxMs?: number;
  /** How long to wait for tcpdump's "listening on" line. Default 15 000 ms. */
  readyTimeoutMs?: number;
  /** The tcpdump binary. Default `tcpdump` on PATH. */
  tcpdump?: string;
}

/** What a stopped capture holds. */
export interface CaptureResult {
  linkType: number;
  packets: CapturedPacket[];
  /** "N packets dropped by kernel" from tcpdump's statistics (undefined when it did not say). */
  droppedByKernel?: number;
  /** tcpdump's stderr (its listening line and statistics). */
  stderr: string;
}

/** A running tcpdump on one interface of one namespace (see the module comment). */
export class UnderlayCapture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private stderrText = "";
  private exited = false;
  private readonly exit: Promise<void>;
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly child: ChildProcess,
    readonly ns: string,
    readonly ifName: string,
  ) {
    child.stdout!.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      this.wake();
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      this.stderrText += d;
      this.wake();
    });
    this.exit = new Promise((resolve) => {
      child.on("close", () => {
        this.exited = true;
        this.wake();
        resolve();
      });
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves when `cond()` holds (checked on every byte tcpdump writes and at exit), or false after `timeoutMs`. */
  private until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    if (this.exited) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (v: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      const check = (): void => {
        if (cond()) done(true);
        else if (this.exited) done(false);
      };
      const timer = setTimeout(() => done(cond()), timeoutMs);
      this.waiters.add(check);
    });
  }

  /**
   * Starts tcpdump on `ifName` inside `ns` and resolves once it is capturing (its "listening on"
   * line). Rejects, naming the namespace and interface with tcpdump's stderr, when it exits first
   * or says nothing within `readyTimeoutMs` (the process is stopped then).
   */
  static async start(o: CaptureOptions): Promise<UnderlayCapture> {
    const seconds = Math.max(1, Math.ceil((o.maxMs ?? 120_000) / 1000));
    const argv = ["netns", "exec", o.ns, "timeout", "-s", "TERM", String(seconds), o.tcpdump ?? "tcpdump", "-i", o.ifName, "-n", "-U", "--immediate-mode", "-s", "0", "-w", "-"];
    const child = spawn("ip", argv, { stdio: ["ignore", "pipe", "pipe"] });
    const cap = new UnderlayCapture(child, o.ns, o.ifName);
    let spawnError: Error | undefined;
    child.on("error", (e) => {
      spawnError = e;
      cap.exited = true;
      cap.wake();
    });
    const listening = await cap.until(() => /listening on /.test(cap.stderrText), o.readyTimeoutMs ?? 15_000);
    if (!listening) {
      await cap.stop();
      const why = spawnError?.message ?? (cap.stderrText.trim() || "no output");
      throw new Error(`[lab] tcpdump on ${o.ifName} in ${o.ns} is not capturing${cap.exited ? "" : ` after ${o.readyTimeoutMs ?? 15_000} ms`}: ${why}`);
    }
    return cap;
  }

  /** The PID this module signals (`timeout`, which passes the signal on to tcpdump). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Everything tcpdump has written so far (a pcap stream). */
  private bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks.splice(0, this.chunks.length, Buffer.concat(this.chunks, this.size));
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Resolves true once the capture holds `bytes` (in any packet), false after `timeoutMs` or when tcpdump has exited without it. */
  waitFor(bytes: Buffer, timeoutMs: number): Promise<boolean> {
    return this.until(() => this.bytes().includes(bytes), timeoutMs);
  }

  /**
   * Stops the capture (SIGTERM to the PID it started; SIGKILL if it has not exited within 5 s)
   * and returns what it caught. Idempotent.
   */
  async stop(): Promise<CaptureResult> {
    if (!this.exited && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      const gone = await this.until(() => this.exited, 5_000);
      if (!gone) {
        this.child.kill("SIGKILL");
        await this.exit;
      }
    }
    const { linkType, packets } = parsePcap(this.bytes());
    const dropped = /(\d+) packets? dropped by kernel/.exec(this.stderrText);
    const out: CaptureResult = { linkType, packets, stderr: this.stderrText };
    if (dropped) out.droppedByKernel = Number(dropped[1]);
    return out;
  }
}
