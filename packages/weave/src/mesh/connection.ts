/**
 * One mesh connection over a `PeerConnection` (the control stream) plus datagram heartbeats (the
 * data path), as weaveworks/mesh's LocalConnection:
 *
 *  1. both sides send a HELLO in clear (protocol version range, peer name, nickname, UID, a random
 *     connection id, short id, features, an ephemeral public key when a password is set, whether it
 *     trusts the remote's subnet); a handshake not finished within 10 s is dropped;
 *  2. the version is the highest both speak; none in common → refused ("protocol version
 *     mismatch …"); our own name → refused (duplicate peer name); one side with a password and the
 *     other without → refused ("encryption mismatch: <node> has no password / requires a password");
 *  3. with a password both sides derive the session keys and send a PROOF (an HMAC of the handshake
 *     transcript under keys derived from the session keys); a proof that does not match → "wrong
 *     password (the session keys do not agree)". Every later message is sealed, unless both sides
 *     trust each other's subnet (`trustedSubnets`: then the link is plain and status says so);
 *  4. ready: heartbeats go out as datagrams every 500 ms until the first one from the remote
 *     arrives (then the connection is "established") and every 10 s after; 6 intervals of 10 s
 *     without one (60 s) closes the connection as dead.
 *
 * The connection id both sides agree on is the initiator's (`id`), used for heartbeats and for
 * duplicate resolution.
 */
import type { Clock, Logger, PeerConnection, PeerTransport, TimerHandle } from "@cnikit/core";
import { MESSAGE, decodeHello, decodeHelloVersions, decodeMessage, decodeRefuse, encodeHeartbeat, encodeHello, encodeRefuse } from "./codec.ts";
import type { Hello, MeshMessage } from "./codec.ts";
import { randomUid } from "./identity.ts";
import type { PeerIdentity } from "./identity.ts";

export const HANDSHAKE_TIMEOUT_MS = 10_000;
export const HEARTBEAT_INITIAL_MS = 500;
export const HEARTBEAT_MS = 10_000;
export const HEARTBEATS_MISSED = 6;
/** The datagram service of heartbeats. */
export const HEARTBEAT_SERVICE = "weave-mesh-heartbeat";

export const WRONG_PASSWORD = "wrong password (the session keys do not agree)";

/** The keys of one encrypted connection (src/crypto/session.ts behind one seam: session.ts here). */
export interface SessionKeys {
  /** This side's proof of the exchange (sent in the PROOF message). */
  proof: Uint8Array;
  /** Whether the remote's proof shows it derived the same keys (same password). */
  proofMatches(received: Uint8Array): boolean;
  seal(plain: Uint8Array): Uint8Array;
  /** Throws when the frame does not open (wrong key, tampering, replay). */
  open(frame: Uint8Array): Uint8Array;
}

/** One side's ephemeral key pair; `agree` derives the session keys from the remote's public key. */
export interface SessionHandshake {
  publicKey: Uint8Array;
  /** `transcript`: what both sides saw, in the same order on both (binds the proof to this exchange). */
  agree(o: { theirPublic: Uint8Array; initiator: boolean; transcript: Uint8Array }): SessionKeys;
}

export type ConnState = "handshake" | "proof" | "pending" | "established" | "closed";

export interface ConnEvents {
  ready(c: MeshConn): void;
  established(c: MeshConn): void;
  message(c: MeshConn, m: MeshMessage): void;
  closed(c: MeshConn, reason: string): void;
  sent(bytes: number): void;
  received(bytes: number): void;
}

export interface MeshConnOptions {
  pc: PeerConnection;
  transport: PeerTransport;
  outbound: boolean;
  clock: Clock;
  log: Logger;
  random: () => number;
  self: () => PeerIdentity;
  versions: { min: number; max: number };
  features: Record<string, string>;
  /** Present when a password is set: a fresh key pair for this connection. */
  session: SessionHandshake | undefined;
  /** Whether the remote node's underlay address is in a trusted subnet. */
  trusts: boolean;
  events: ConnEvents;
}

export class MeshConn {
  readonly node: string;
  readonly outbound: boolean;
  readonly localConnUid: string;
  readonly openedAt: number;
  state: ConnState = "handshake";
  remote: Hello | undefined;
  version = 0;
  encrypted = false;
  /** Encryption was skipped because both sides trust each other's subnet. */
  trusted = false;
  readyAt: number | undefined;
  establishedAt: number | undefined;
  lastHeard: number | undefined;
  reason: string | undefined;
  private keys: SessionKeys | undefined;
  private timer: TimerHandle | undefined;

  constructor(private readonly o: MeshConnOptions) {
    this.node = o.pc.remote;
    this.outbound = o.outbound;
    this.localConnUid = randomUid(o.random);
    this.openedAt = o.clock.now();
    o.pc.onMessage((m) => this.onFrame(m));
    o.pc.onClose((reason) => this.finish(reason));
    const self = o.self();
    this.sendRaw(
      encodeHello({
        minVersion: o.versions.min,
        maxVersion: o.versions.max,
        name: self.name,
        nickname: self.nickname,
        uid: self.uid,
        connUid: this.localConnUid,
        shortId: self.shortId,
        features: o.features,
        publicKey: o.session?.publicKey,
        trustsRemote: o.trusts,
      }),
    );
    this.timer = o.clock.setTimeout(() => this.close(`handshake with ${this.node} not finished within ${HANDSHAKE_TIMEOUT_MS / 1000} s`), HANDSHAKE_TIMEOUT_MS);
  }

  /** The connection id both sides share: the initiator's connection UID. */
  get id(): string {
    return this.outbound ? this.localConnUid : (this.remote?.connUid ?? "");
  }

  get ready(): boolean {
    return this.state === "pending" || this.state === "established";
  }

  get established(): boolean {
    return this.state === "established";
  }

  /** Sends an encoded post-handshake message (sealed when encrypted); false when the connection is gone. */
  sendEncoded(plain: Uint8Array): boolean {
    if (!this.ready) return false;
    return this.sendRaw(this.keys ? this.keys.seal(plain) : plain);
  }

  private sendRaw(bytes: Uint8Array): boolean {
    if (this.o.pc.closed) return false;
    try {
      this.o.pc.send(bytes);
    } catch {
      return false;
    }
    this.o.events.sent(bytes.length);
    return true;
  }

  /** Refuses the connection: tells the remote why, then closes. */
  refuse(reason: string): void {
    if (this.state === "closed") return;
    this.sendRaw(encodeRefuse(reason));
    this.close(reason);
  }

  close(reason: string): void {
    if (this.state === "closed") return;
    this.o.pc.close(reason);
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.reason = reason;
    this.timer?.cancel();
    this.timer = undefined;
    this.o.events.closed(this, reason);
  }

  /** A heartbeat datagram for this connection arrived. */
  heard(): void {
    if (!this.ready) return;
    this.lastHeard = this.o.clock.now();
    if (this.state === "pending") {
      this.state = "established";
      this.establishedAt = this.lastHeard;
      this.o.events.established(this);
    }
  }

  private onFrame(frame: Uint8Array): void {
    if (this.state === "closed") return;
    this.o.events.received(frame.length);
    try {
      if (this.state === "handshake") this.onHello(frame);
      else if (this.state === "proof") this.onProof(frame);
      else {
        const plain = this.keys ? this.open(frame) : frame;
        if (plain) this.o.events.message(this, decodeMessage(plain));
      }
    } catch (err) {
      this.close(`protocol error from ${this.node}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private open(frame: Uint8Array): Uint8Array | undefined {
    try {
      return this.keys!.open(frame);
    } catch (err) {
      this.close(`a message from ${this.node} did not decrypt: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
  }

  private onHello(frame: Uint8Array): void {
    const refused = decodeRefuse(frame);
    if (refused !== undefined) {
      this.close(`refused by ${this.node}: ${refused}`);
      return;
    }
    const { minVersion, maxVersion } = decodeHelloVersions(frame);
    const version = Math.min(maxVersion, this.o.versions.max);
    if (version < Math.max(minVersion, this.o.versions.min)) {
      this.refuse(`protocol version mismatch: ${this.node} speaks versions ${minVersion}..${maxVersion}, we speak ${this.o.versions.min}..${this.o.versions.max}`);
      return;
    }
    const hello = decodeHello(frame);
    this.remote = hello;
    this.version = version;
    const self = this.o.self();
    if (hello.name === self.name) {
      this.refuse(`${this.node} uses our own peer name ${self.name} (duplicate peer name, or a connection to ourselves)`);
      return;
    }
    const session = this.o.session;
    if (session && !hello.publicKey) {
      this.refuse(`encryption mismatch: ${this.node} has no password`);
      return;
    }
    if (!session && hello.publicKey) {
      this.refuse(`encryption mismatch: ${this.node} requires a password`);
      return;
    }
    if (session && hello.publicKey) {
      const keys = session.agree({ theirPublic: hello.publicKey, initiator: this.outbound, transcript: this.transcript(session.publicKey, hello.publicKey) });
      if (this.o.trusts && hello.trustsRemote) this.trusted = true;
      else this.encrypted = true;
      // Both sides prove the password even on a trusted link: a wrong one is refused everywhere.
      this.pendingKeys = keys;
      this.state = "proof";
      this.sendRaw(new Uint8Array([MESSAGE.proof, ...keys.proof]));
      return;
    }
    this.becomeReady();
  }

  private pendingKeys: SessionKeys | undefined;

  /** Initiator's then responder's public key and connection id, and the negotiated version. */
  private transcript(ours: Uint8Array, theirs: Uint8Array): Uint8Array {
    const [k1, k2] = this.outbound ? [ours, theirs] : [theirs, ours];
    const [u1, u2] = this.outbound ? [this.localConnUid, this.remote!.connUid] : [this.remote!.connUid, this.localConnUid];
    const tail = new TextEncoder().encode(`weave-mesh ${u1} ${u2} v${this.version}`);
    return new Uint8Array([...k1, ...k2, ...tail]);
  }

  private onProof(frame: Uint8Array): void {
    const refused = decodeRefuse(frame);
    if (refused !== undefined) {
      this.close(`refused by ${this.node}: ${refused}`);
      return;
    }
    const keys = this.pendingKeys!;
    if (frame[0] !== MESSAGE.proof || !keys.proofMatches(frame.subarray(1))) {
      this.refuse(WRONG_PASSWORD);
      return;
    }
    if (this.encrypted) this.keys = keys;
    this.pendingKeys = undefined;
    this.becomeReady();
  }

  private becomeReady(): void {
    this.timer?.cancel();
    this.state = "pending";
    this.readyAt = this.o.clock.now();
    this.o.events.ready(this);
    if (this.ready) this.beat();
  }

  /** Sends a heartbeat and re-arms; closes the connection when the remote has gone quiet. */
  private beat(): void {
    this.timer = undefined;
    if (!this.ready) return;
    const now = this.o.clock.now();
    const since = this.lastHeard ?? this.readyAt!;
    const deadline = HEARTBEATS_MISSED * HEARTBEAT_MS;
    if (now - since >= deadline) {
      this.close(
        this.lastHeard === undefined
          ? `no heartbeat from ${this.node} within ${deadline / 1000} s: its data path never answered`
          : `${HEARTBEATS_MISSED} heartbeats missed: nothing heard from ${this.node} for ${deadline / 1000} s`,
      );
      return;
    }
    try {
      this.o.transport.sendDatagram(this.node, HEARTBEAT_SERVICE, encodeHeartbeat(this.id, this.o.self().name));
      this.o.events.sent(15);
    } catch {
      // The transport is closing: the connection's own close follows.
    }
    this.timer = this.o.clock.setTimeout(() => this.beat(), this.established ? HEARTBEAT_MS : HEARTBEAT_INITIAL_MS);
  }
}
