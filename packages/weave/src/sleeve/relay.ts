/**
 * `SleeveRelay`: Weave's sleeve in Node — userspace UDP encapsulation (port 6783) of the weave
 * bridge's L2 frames between peers. Frames the bridge sends out of the TAP port (a `FrameDevice`,
 * on a kernel the `TapDevice` helper) go to the peer their destination MAC was learned behind,
 * or to every peer when the destination is a broadcast/multicast or unknown MAC; frames received
 * from a peer are written to the TAP, and their source MAC is learned behind that peer.
 *
 * API (composed by the agent):
 *
 *   const relay = new SleeveRelay({ name, address, device: new TapDevice({ ifname: "vethwe-sl" }),
 *                                   encrypted, pathMtu, clock, log });
 *   await relay.start();                      // device ready, UDP socket bound on address:port
 *   relay.setPeers([{ name, address, session? }, ...]);   // whenever the mesh's view changes
 *   relay.stats();                            // counters for STATUS (formatSleeveStats: one line)
 *   await relay.stop();                       // closes the socket, stops the helper by its PID
 *
 * Choices and limits, stated:
 *  - Namespace: the relay binds its UDP socket in the namespace of the process it runs in; on a
 *    host that is the node's (cnikitd runs in it: the lab starts it under `ip netns exec`), and
 *    the TAP helper is spawned there too unless the device is given a `netns`.
 *  - Packet format: `packet.ts` (source and destination peer names, several frames per packet).
 *  - Only direct peers: frames are sent straight to the destination peer's underlay address and
 *    flooded to every peer in the table; a packet addressed to another peer is dropped
 *    ("not-for-us"), not relayed multi-hop as Weave's sleeve can.
 *  - MTU: no PMTU discovery of our own. `pathMtu` (the underlay's MTU, default 1500) bounds a
 *    packet to pathMtu − 28 bytes of UDP payload; frames are packed several to a packet up to that
 *    bound, and a frame that cannot fit alone is dropped ("too-big"). The caller sets the TAP's MTU
 *    to pathMtu − `sleeveOverhead(...)` so that this does not happen.
 *  - Encryption: with `encrypted`, every packet is sealed with the peer's `session`
 *    (`{seal, open}`; `sleeveSession(keys)` over the keys of that peer's mesh connection,
 *    src/crypto/session.ts), the header as additional data; a peer without a session yet gets and gives
 *    nothing ("no-session"), a plaintext packet is dropped ("unsealed"), one that fails to open
 *    (tamper, replay, wrong key) is dropped ("auth-failed"). Without `encrypted`, a sealed packet
 *    is dropped ("sealed-unexpected") and `setPeers` refuses sessions.
 *  - Sessions without a mesh (`password`): the relay agrees each peer's keys itself with a small
 *    UDP handshake on its socket (handshake.ts: X25519 + the password, a proof of the derived keys),
 *    re-handshakes when a peer restarts (a new key), and refuses a peer whose proof does not match
 *    (wrong password; `stats().handshake.refused` says so). Frames to a peer without keys yet are
 *    dropped ("no-session"), never sent in plaintext.
 *  - `addressNames`: peers (and this relay) are named by their underlay address, carried as raw
 *    bytes in the header (packet.ts), which keeps the header small enough for a pod-MTU frame.
 *  - A packet must come from the underlay address of the peer it names as source
 *    ("address-mismatch" otherwise).
 *  - Memory is bounded: the MAC table (`MacTable`, 10 min expiry, `macLimit` entries), the TAP's
 *    backlog ("tap-backlog") and the socket's send queue ("send-backlog").
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { CniCode, CniError, ConfigError, RealClock, silentLogger, type Clock, type Logger } from "@cnikit/core";
import { Opener, Sealer, type SessionKeys } from "../crypto/session.ts";
import { decodeHandshake, SleeveKeyExchange } from "./handshake.ts";
import { MacTable } from "./mac-table.ts";
import {
  decodeFrames,
  decodeSleevePacket,
  encodeFrames,
  encodeSleeveHeader,
  ETHERNET_HEADER_BYTES,
  FRAME_PREFIX_BYTES,
  isGroupMac,
  macAt,
  sleeveHeaderBytes,
  UNDERLAY_HEADER_BYTES,
} from "./packet.ts";
import type { FrameDevice } from "./tap.ts";

/** Weave's sleeve port (UDP). */
export const SLEEVE_PORT = 6783;

/**
 * What seals and opens one peer's packets (both directions of that peer's connection). `open`
 * throws on tamper, replay or a wrong key. `sleeveSession(keys)` makes one from the connection's
 * session keys; the relay only needs this shape.
 */
export interface SleeveSession {
  seal(plain: Uint8Array, aad?: Uint8Array): Uint8Array;
  open(sealed: Uint8Array, aad?: Uint8Array): Uint8Array;
}

/**
 * The session of one peer's sleeve traffic from that connection's keys (src/crypto/session.ts):
 * ChaCha20-Poly1305 with sequence-number nonces, a 2^20 replay window. Its `seal` adds
 * `SEAL_OVERHEAD` (24) bytes.
 */
export function sleeveSession(keys: SessionKeys): SleeveSession {
  const sealer = new Sealer(keys.send);
  const opener = new Opener(keys.receive);
  return { seal: (plain, aad) => sealer.seal(plain, aad), open: (sealed, aad) => opener.open(sealed, aad) };
}

/** One entry of the relay's peer table. */
export interface SleevePeer {
  /** The peer's name (as it puts it in its packets). */
  name: string;
  /** Its underlay IPv4 or IPv6 address. */
  address: string;
  /** Its sleeve port; default `SLEEVE_PORT`. */
  port?: number;
  /** Its session when the sleeve is encrypted (may come later: until then, "no-session"). */
  session?: SleeveSession;
}

/** Why a frame or packet was dropped. */
export const SleeveDrop = {
  /** A packet that does not parse. */
  malformed: "malformed",
  /** A packet from a name not in the peer table. */
  unknownPeer: "unknown-peer",
  /** A packet whose source address is not the named peer's. */
  addressMismatch: "address-mismatch",
  /** A packet addressed to another peer (no multi-hop relaying). */
  notForUs: "not-for-us",
  /** Encrypted sleeve: a plaintext packet. */
  unsealed: "unsealed",
  /** Plain sleeve: a sealed packet. */
  sealedUnexpected: "sealed-unexpected",
  /** Encrypted sleeve: the peer has no session yet (either direction). */
  noSession: "no-session",
  /** Encrypted sleeve: `open` failed (tamper, replay, wrong key). */
  authFailed: "auth-failed",
  /** A frame shorter than an Ethernet header. */
  runt: "runt",
  /** A frame that does not fit in one packet on the path (`pathMtu`). */
  tooBig: "too-big",
  /** The TAP's backlog was full, or the device is gone. */
  tapBacklog: "tap-backlog",
  /** The UDP send queue was full. */
  sendBacklog: "send-backlog",
  /** The kernel refused a send (unreachable, …). */
  sendError: "send-error",
  /** A handshake message on a relay that does not do handshakes, or from a refused peer. */
  handshake: "handshake",
} as const;
export type SleeveDrop = (typeof SleeveDrop)[keyof typeof SleeveDrop];

/** The relay's counters, for STATUS. Frame counts are per copy (a flood to 3 peers counts 3). */
export interface SleeveStats {
  /** Frames received from peers and handed to the TAP, and their bytes. */
  framesIn: number;
  bytesIn: number;
  /** Frames sent to peers, and their bytes. */
  framesOut: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** Frames from the TAP that were flooded (group or unknown destination). */
  floods: number;
  /** MACs currently learned, and those evicted because the table was full. */
  macs: number;
  macsEvicted: number;
  peers: number;
  /** Drops by reason (frames, or packets for packet-level reasons). */
  drops: Record<SleeveDrop, number>;
  /** The device's helper PID, or why it ended. */
  device: { ifname: string; pid?: number; exited?: string };
  /** With `password`: peers with a session, sessions set up, re-keys (a peer restarted) and refused peers with why. */
  handshake?: { sessions: number; established: number; rekeys: number; refusals: number; refused: { peer: string; reason: string }[] };
}

export interface SleeveRelayOptions {
  /** This peer's name. */
  name: string;
  /** The underlay address to bind (the node's). */
  address: string;
  /** UDP port; default `SLEEVE_PORT` (0: any, for tests). */
  port?: number;
  /** The TAP side. */
  device: FrameDevice;
  /** Seal every packet (WEAVE_PASSWORD set). Default false. */
  encrypted?: boolean;
  /**
   * Agree each peer's session with the relay's own handshake, mixed with this password (needs
   * `encrypted`; peers then come without `session`). Absent: sessions come with `setPeers`.
   */
  password?: string;
  /** How often a peer without a session is sent a handshake message; default 1000 ms. */
  handshakeIntervalMs?: number;
  /** Names (own and peers') are IP addresses, carried as raw bytes (packet.ts). Default false. */
  addressNames?: boolean;
  /** The underlay path MTU; default 1500. */
  pathMtu?: number;
  /** MAC expiry (default 10 min) and bound (default 8192). */
  macTtlMs?: number;
  macLimit?: number;
  /** Most packets waiting in the socket's send queue before sends drop (default 4096). */
  sendQueueLimit?: number;
  clock?: Clock;
  log?: Logger;
}

/**
 * One line for STATUS: `sleeve wtap (pid 123): 2 peers, 3 MACs; in 10 frames/1.2 kB, out 12
 * frames/1.5 kB (4 flooded); drops: too-big 1` (drops only when there were any; the device's exit
 * reason when it ended by itself).
 */
export function formatSleeveStats(s: SleeveStats): string {
  const kb = (n: number): string => (n < 1000 ? `${n} B` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);
  const device = s.device.exited !== undefined ? `${s.device.ifname} (${s.device.exited})` : s.device.pid !== undefined ? `${s.device.ifname} (pid ${s.device.pid})` : s.device.ifname;
  const drops = Object.entries(s.drops)
    .filter(([, n]) => n > 0)
    .map(([why, n]) => `${why} ${n}`);
  return (
    `sleeve ${device}: ${s.peers} peer${s.peers === 1 ? "" : "s"}, ${s.macs} MAC${s.macs === 1 ? "" : "s"}; ` +
    `in ${s.framesIn} frames/${kb(s.bytesIn)}, out ${s.framesOut} frames/${kb(s.bytesOut)} (${s.floods} flooded)` +
    (s.handshake ? `; sessions ${s.handshake.sessions}/${s.peers} (${s.handshake.established} set up, ${s.handshake.rekeys} re-keyed)` : "") +
    (s.handshake && s.handshake.refused.length > 0 ? `; refused: ${s.handshake.refused.map((r) => `${r.peer} (${r.reason})`).join(", ")}` : "") +
    (drops.length > 0 ? `; drops: ${drops.join(", ")}` : "")
  );
}

/**
 * Bytes the sleeve adds around a frame on the underlay: IP + UDP + header (both names) + the
 * frame's length prefix + `sealOverhead` (the AEAD's nonce/sequence and tag when encrypted). The
 * TAP's MTU is the path MTU minus this minus the 14-byte Ethernet header.
 */
export function sleeveOverhead(options: { src: string; dst: string; sealOverhead?: number; addressNames?: boolean }): number {
  return UNDERLAY_HEADER_BYTES + sleeveHeaderBytes(options.src, options.dst, options.addressNames ?? false) + FRAME_PREFIX_BYTES + (options.sealOverhead ?? 0);
}

interface PeerEntry {
  name: string;
  address: string;
  port: number;
  session: SleeveSession | undefined;
  header: Uint8Array;
  /** The header of handshake messages to this peer. */
  control: Uint8Array;
}

const C = "weave";

export class SleeveRelay {
  private readonly name: string;
  private readonly address: string;
  private readonly port: number;
  private readonly device: FrameDevice;
  private readonly encrypted: boolean;
  private readonly addressNames: boolean;
  private readonly exchange: SleeveKeyExchange | undefined;
  private readonly handshakeIntervalMs: number;
  private readonly clock: Clock;
  private handshakeTimer: { cancel(): void } | undefined;
  private readonly refusalLogged = new Map<string, string>();
  private readonly maxPayload: number;
  private readonly sendQueueLimit: number;
  private readonly log: Logger;
  private readonly macs: MacTable;
  private peers = new Map<string, PeerEntry>();
  private socket: Socket | undefined;
  private boundPort: number | undefined;
  private state: "new" | "running" | "stopped" = "new";
  private readonly counters = {
    framesIn: 0,
    bytesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    packetsIn: 0,
    packetsOut: 0,
    floods: 0,
  };
  private readonly drops = Object.fromEntries(Object.values(SleeveDrop).map((r) => [r, 0])) as Record<SleeveDrop, number>;

  /** @throws ConfigError naming the field for a bad name, address, port or MTU. */
  constructor(options: SleeveRelayOptions) {
    if (typeof options.name !== "string" || options.name.length === 0 || Buffer.byteLength(options.name) > 255) {
      throw new ConfigError({ component: C, field: "sleeve.name", rule: "must be a peer name of 1-255 bytes", value: options.name });
    }
    if (options.addressNames === true && isIP(options.name) === 0)
      throw new ConfigError({ component: C, field: "sleeve.name", rule: "must be an IP address (addressNames: peers are named by their underlay address)", value: options.name });
    if (options.password !== undefined && (typeof options.password !== "string" || options.password.length === 0))
      throw new ConfigError({ component: C, field: "sleeve.password", rule: "must be a non-empty string" });
    if (options.password !== undefined && options.encrypted !== true) throw new ConfigError({ component: C, field: "sleeve.password", rule: "needs encrypted: true (the password keys the sealing)" });
    const interval = options.handshakeIntervalMs ?? 1000;
    if (!Number.isFinite(interval) || interval <= 0) throw new ConfigError({ component: C, field: "sleeve.handshakeIntervalMs", rule: "must be a number of milliseconds above 0", value: interval });
    if (isIP(options.address) === 0) throw new ConfigError({ component: C, field: "sleeve.address", rule: "must be an IP address (the node's underlay address)", value: options.address });
    const port = options.port ?? SLEEVE_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError({ component: C, field: "sleeve.port", rule: "must be a UDP port 0-65535", value: port });
    const mtu = options.pathMtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw new ConfigError({ component: C, field: "sleeve.pathMtu", rule: "must be an integer MTU 576-65535", value: mtu });
    this.name = options.name;
    this.address = options.address;
    this.port = port;
    this.device = options.device;
    this.encrypted = options.encrypted ?? false;
    this.addressNames = options.addressNames ?? false;
    this.exchange = options.password === undefined ? undefined : new SleeveKeyExchange({ self: options.name, password: options.password });
    this.handshakeIntervalMs = interval;
    this.clock = options.clock ?? new RealClock();
    this.maxPayload = mtu - UNDERLAY_HEADER_BYTES;
    this.sendQueueLimit = options.sendQueueLimit ?? 4096;
    this.log = options.log ?? silentLogger;
    this.macs = new MacTable({ clock: this.clock, ...(options.macTtlMs !== undefined ? { ttlMs: options.macTtlMs } : {}), ...(options.macLimit !== undefined ? { limit: options.macLimit } : {}) });
  }

  /** The UDP port the relay is bound to (after `start`). */
  get localPort(): number | undefined {
    return this.boundPort;
  }

  /**
   * Starts the device, then binds the UDP socket on `address:port`. On failure everything started
   * is stopped again and the error rethrown (the socket's names the address and port).
   */
  async start(): Promise<void> {
    if (this.state !== "new") throw new CniError(CniCode.Closed, `[weave] sleeve relay ${this.name}: start() after ${this.state === "running" ? "start" : "stop"}`);
    this.state = "running";
    try {
      await this.device.start((frames) => this.fromDevice(frames));
    } catch (err) {
      this.state = "stopped";
      throw err;
    }
    const socket = createSocket({ type: isIP(this.address) === 6 ? "udp6" : "udp4", reuseAddr: false });
    this.socket = socket;
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.bind({ address: this.address, port: this.port, exclusive: true }, () => {
          socket.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      this.socket = undefined;
      socket.close();
      await this.device.stop();
      this.state = "stopped";
      throw new CniError(CniCode.Internal, `[weave] sleeve: cannot bind UDP ${this.address}:${this.port}: ${(err as Error).message}`, { cause: err });
    }
    this.boundPort = socket.address().port;
    socket.on("message", (msg, rinfo) => this.fromPeer(msg, rinfo));
    socket.on("error", (err) => this.log.warn("sleeve socket error", { error: err.message }));
    if (this.exchange) {
      this.handshakeTimer = this.clock.setInterval(() => this.sendHandshakes(), this.handshakeIntervalMs);
      this.sendHandshakes();
    }
  }

  /**
   * Replaces the peer table. MACs learned behind peers that are no longer listed are forgotten.
   * @throws ConfigError naming `peers[i].<field>` for a bad entry, a duplicate name, our own name,
   *   or a session on an unencrypted sleeve.
   */
  setPeers(peers: readonly SleevePeer[]): void {
    const next = new Map<string, PeerEntry>();
    peers.forEach((p, i) => {
      if (typeof p.name !== "string" || p.name.length === 0 || Buffer.byteLength(p.name) > 255)
        throw new ConfigError({ component: C, field: `peers[${i}].name`, rule: "must be a peer name of 1-255 bytes", value: p.name });
      if (p.name === this.name) throw new ConfigError({ component: C, field: `peers[${i}].name`, rule: "must not be this peer's own name", value: p.name });
      if (next.has(p.name)) throw new ConfigError({ component: C, field: `peers[${i}].name`, rule: "must be unique in the peer table", value: p.name });
      if (isIP(p.address) === 0) throw new ConfigError({ component: C, field: `peers[${i}].address`, rule: "must be an IP address", value: p.address });
      const port = p.port ?? SLEEVE_PORT;
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError({ component: C, field: `peers[${i}].port`, rule: "must be a UDP port 1-65535", value: port });
      if (p.session !== undefined && !this.encrypted) throw new ConfigError({ component: C, field: `peers[${i}].session`, rule: "must be absent: this sleeve is not encrypted (no WEAVE_PASSWORD)" });
      if (p.session !== undefined && this.exchange) throw new ConfigError({ component: C, field: `peers[${i}].session`, rule: "must be absent: this relay agrees sessions itself (password)" });
      if (this.addressNames && isIP(p.name) === 0) throw new ConfigError({ component: C, field: `peers[${i}].name`, rule: "must be an IP address (addressNames)", value: p.name });
      const names = { src: this.name, dst: p.name, addressNames: this.addressNames };
      // With its own handshake the relay keeps a peer's session across setPeers calls.
      const session = this.exchange ? this.peers.get(p.name)?.session : p.session;
      next.set(p.name, {
        name: p.name,
        address: p.address,
        port,
        session,
        header: encodeSleeveHeader({ ...names, sealed: this.encrypted }),
        control: encodeSleeveHeader({ ...names, sealed: false, control: true }),
      });
    });
    const added: PeerEntry[] = [];
    for (const [name, entry] of next) if (!this.peers.has(name)) added.push(entry);
    for (const old of this.peers.keys()) {
      if (next.has(old)) continue;
      this.macs.forgetPeer(old);
      this.exchange?.forget(old);
    }
    this.peers = next;
    if (this.exchange && this.socket) for (const p of added) this.sendHandshake(p);
  }

  /** Whether `peer` has a session (always true on a plain sleeve). */
  hasSession(peer: string): boolean {
    return !this.encrypted || this.peers.get(peer)?.session !== undefined;
  }

  private sendHandshakes(): void {
    for (const p of this.peers.values()) if (p.session === undefined) this.sendHandshake(p);
  }

  private sendHandshake(peer: PeerEntry, body?: Uint8Array): void {
    const socket = this.socket;
    if (!socket || !this.exchange) return;
    socket.send([peer.control, body ?? this.exchange.hello(peer.name)], peer.port, peer.address, (err) => {
      if (err) this.log.debug("sleeve handshake send failed", { peer: peer.name, error: err.message });
    });
  }

  private fromPeerHandshake(peer: PeerEntry, body: Uint8Array): void {
    if (!this.exchange) {
      this.drops[SleeveDrop.handshake]++;
      return;
    }
    let outcome: ReturnType<SleeveKeyExchange["receive"]>;
    try {
      outcome = this.exchange.receive(peer.name, decodeHandshake(body));
    } catch {
      this.drops[SleeveDrop.malformed]++;
      return;
    }
    if (outcome.rekey) {
      peer.session = undefined;
      this.log.info("sleeve peer restarted: new handshake", { peer: peer.name });
    }
    if (outcome.refused !== undefined) {
      if (peer.session !== undefined) peer.session = undefined;
      this.drops[SleeveDrop.handshake]++;
      // Logged once per reason: the peer keeps sending its handshake every interval.
      if (this.refusalLogged.get(peer.name) !== outcome.refused) {
        this.refusalLogged.set(peer.name, outcome.refused);
        this.log.warn("sleeve peer refused", { peer: peer.name, reason: outcome.refused });
      }
      return;
    }
    if (outcome.established) {
      this.refusalLogged.delete(peer.name);
      peer.session = sleeveSession(outcome.established);
      this.log.info("sleeve session established", { peer: peer.name });
    }
    if (outcome.reply) this.sendHandshake(peer, outcome.reply);
  }

  /** The counters (a snapshot). */
  stats(): SleeveStats {
    const device: SleeveStats["device"] = { ifname: this.device.ifname };
    if (this.device.pid !== undefined) device.pid = this.device.pid;
    if (this.device.exited !== undefined) device.exited = this.device.exited;
    const out: SleeveStats = { ...this.counters, macs: this.macs.size, macsEvicted: this.macs.evicted, peers: this.peers.size, drops: { ...this.drops }, device };
    if (this.exchange) {
      const refused: { peer: string; reason: string }[] = [];
      let sessions = 0;
      for (const p of this.peers.values()) {
        if (p.session !== undefined) sessions++;
        const why = this.exchange.refusal(p.name);
        if (why !== undefined) refused.push({ peer: p.name, reason: why });
      }
      out.handshake = { sessions, ...this.exchange.counters, refused };
    }
    return out;
  }

  /** Closes the socket and stops the device (its helper by PID). Idempotent. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    await this.device.stop();
  }

  // ---- TAP → peers ----

  private fromDevice(frames: Uint8Array[]): void {
    if (!this.socket) return;
    const perPeer = new Map<PeerEntry, Uint8Array[]>();
    const add = (peer: PeerEntry, frame: Uint8Array): void => {
      const list = perPeer.get(peer);
      if (list) list.push(frame);
      else perPeer.set(peer, [frame]);
    };
    for (const frame of frames) {
      if (frame.length < ETHERNET_HEADER_BYTES) {
        this.drops[SleeveDrop.runt]++;
        continue;
      }
      const src = macAt(frame, 6);
      if (!isGroupMac(src)) this.macs.forget(src); // the MAC is here now, not behind a peer
      const dst = macAt(frame, 0);
      const owner = isGroupMac(dst) ? undefined : this.macs.lookup(dst);
      const peer = owner === undefined ? undefined : this.peers.get(owner);
      if (peer) {
        add(peer, frame);
      } else {
        this.counters.floods++;
        for (const p of this.peers.values()) add(p, frame);
      }
    }
    for (const [peer, list] of perPeer) this.sendTo(peer, list);
  }

  /** Packs `frames` into as few packets as fit the path and sends them to `peer`. */
  private sendTo(peer: PeerEntry, frames: Uint8Array[]): void {
    if (this.encrypted && peer.session === undefined) {
      this.drops[SleeveDrop.noSession] += frames.length;
      return;
    }
    const room = this.maxPayload - peer.header.length;
    let batch: Uint8Array[] = [];
    let size = 0;
    for (const frame of frames) {
      const need = FRAME_PREFIX_BYTES + frame.length;
      if (need > room) {
        this.drops[SleeveDrop.tooBig]++;
        continue;
      }
      if (size + need > room) {
        this.sendPacket(peer, batch);
        batch = [];
        size = 0;
      }
      batch.push(frame);
      size += need;
    }
    if (batch.length > 0) this.sendPacket(peer, batch);
  }

  private sendPacket(peer: PeerEntry, frames: Uint8Array[]): void {
    const socket = this.socket;
    if (!socket) return;
    if (socket.getSendQueueCount() >= this.sendQueueLimit) {
      this.drops[SleeveDrop.sendBacklog] += frames.length;
      return;
    }
    const plain = encodeFrames(frames);
    let body: Uint8Array = plain;
    if (this.encrypted) {
      body = peer.session!.seal(plain, peer.header);
      if (peer.header.length + body.length > this.maxPayload) {
        // The seal's own overhead pushed it past the path: split, or drop a lone frame.
        if (frames.length === 1) {
          this.drops[SleeveDrop.tooBig]++;
          return;
        }
        const half = frames.length >> 1;
        this.sendPacket(peer, frames.slice(0, half));
        this.sendPacket(peer, frames.slice(half));
        return;
      }
    }
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    this.counters.packetsOut++;
    this.counters.framesOut += frames.length;
    this.counters.bytesOut += bytes;
    socket.send([peer.header, body], peer.port, peer.address, (err) => {
      if (err) {
        this.drops[SleeveDrop.sendError] += frames.length;
        this.counters.framesOut -= frames.length;
        this.counters.bytesOut -= bytes;
        this.counters.packetsOut--;
      }
    });
  }

  // ---- peers → TAP ----

  private fromPeer(msg: Buffer, rinfo: RemoteInfo): void {
    let decoded: ReturnType<typeof decodeSleevePacket>;
    try {
      decoded = decodeSleevePacket(msg);
    } catch {
      this.drops[SleeveDrop.malformed]++;
      return;
    }
    const { header, headerBytes } = decoded;
    if (header.dst !== this.name) {
      this.drops[SleeveDrop.notForUs]++;
      return;
    }
    const peer = this.peers.get(header.src);
    if (!peer) {
      this.drops[SleeveDrop.unknownPeer]++;
      return;
    }
    if (!sameAddress(rinfo.address, peer.address)) {
      this.drops[SleeveDrop.addressMismatch]++;
      return;
    }
    if (header.control === true) {
      this.fromPeerHandshake(peer, decoded.body);
      return;
    }
    let body = decoded.body;
    if (this.encrypted) {
      if (!header.sealed) {
        this.drops[SleeveDrop.unsealed]++;
        return;
      }
      if (!peer.session) {
        this.drops[SleeveDrop.noSession]++;
        return;
      }
      try {
        body = peer.session.open(body, headerBytes);
      } catch {
        this.drops[SleeveDrop.authFailed]++;
        return;
      }
    } else if (header.sealed) {
      this.drops[SleeveDrop.sealedUnexpected]++;
      return;
    }
    let frames: Uint8Array[];
    try {
      frames = decodeFrames(body);
    } catch {
      this.drops[SleeveDrop.malformed]++;
      return;
    }
    this.counters.packetsIn++;
    const good: Uint8Array[] = [];
    let bytes = 0;
    for (const frame of frames) {
      if (frame.length < ETHERNET_HEADER_BYTES) {
        this.drops[SleeveDrop.runt]++;
        continue;
      }
      const src = macAt(frame, 6);
      if (!isGroupMac(src)) this.macs.learn(src, peer.name);
      good.push(frame);
      bytes += frame.length;
    }
    if (good.length === 0) return;
    if (this.device.send(good)) {
      this.counters.framesIn += good.length;
      this.counters.bytesIn += bytes;
    } else {
      this.drops[SleeveDrop.tapBacklog] += good.length;
    }
  }
}

/** Compares addresses as the socket reports them (an IPv4-mapped IPv6 source matches its IPv4). */
function sameAddress(seen: string, expected: string): boolean {
  return seen === expected || seen === `::ffff:${expected}`;
}
