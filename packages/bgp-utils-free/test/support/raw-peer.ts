// A hand-driven BGP peer on the memory network: sends whatever bytes a test wants and records every
// message it receives, so tests can check what the speaker sends and how it answers bad input.
import { decodeMessage, encodeMessage, MessageReader } from "../../src/codec/message.ts";
import type { BgpMessage, Capability, CodecOptions } from "../../src/codec/types.ts";
import type { MemoryNetwork } from "../../src/transport/memory.ts";
import type { BgpStream } from "../../src/transport/types.ts";
import { settle } from "./virtual-clock.ts";

export interface RawPeerOptions {
  network: MemoryNetwork;
  /** The raw peer's own address. */
  address: string;
  asn: number;
  routerId: string;
  holdTime?: number;
  capabilities?: Capability[];
}

export class RawPeer {
  stream: BgpStream | undefined;
  received: BgpMessage[] = [];
  raw: Uint8Array[] = [];
  closed: string | undefined;
  codec: CodecOptions = { fourOctetAs: true };
  private readonly reader = new MessageReader();

  constructor(readonly options: RawPeerOptions) {}

  static defaultCapabilities(asn: number): Capability[] {
    return [{ kind: "multiprotocol", afi: 1, safi: 1 }, { kind: "multiprotocol", afi: 2, safi: 1 }, { kind: "route-refresh" }, { kind: "enhanced-route-refresh" }, { kind: "four-octet-as", asn }];
  }

  /** Listens at its address and takes the speaker's connection. */
  async listen(): Promise<void> {
    await this.options.network.transport(this.options.address).listen((s) => this.attach(s));
  }

  /** Dials the speaker at `to`. */
  async dial(to: string): Promise<void> {
    this.attach(await this.options.network.transport(this.options.address).connect({ address: to, port: 179 }));
  }

  private attach(s: BgpStream): void {
    this.stream = s;
    this.closed = undefined;
    s.onData((chunk) => {
      for (const m of this.reader.push(chunk)) {
        this.raw.push(m.slice());
        try {
          this.received.push(decodeMessage(m, { ...this.codec, maxMessageLength: 65535 }));
        } catch {
          this.received.push({ type: "notification", code: 255, subcode: 255, data: m.slice() });
        }
      }
    });
    s.onClose((reason) => {
      this.closed = reason;
    });
  }

  send(bytes: Uint8Array): void {
    this.stream!.write(bytes);
  }

  sendMessage(m: BgpMessage): void {
    this.send(encodeMessage(m, this.codec));
  }

  /** Sends OPEN + KEEPALIVE and waits for the speaker's. */
  async establish(): Promise<void> {
    const o = this.options;
    this.sendMessage({
      type: "open",
      version: 4,
      myAs: o.asn > 0xffff ? 23456 : o.asn,
      holdTime: o.holdTime ?? 90,
      bgpId: o.routerId,
      capabilities: o.capabilities ?? RawPeer.defaultCapabilities(o.asn),
    });
    this.sendMessage({ type: "keepalive" });
    await settle();
  }

  of<T extends BgpMessage["type"]>(type: T): Extract<BgpMessage, { type: T }>[] {
    return this.received.filter((m): m is Extract<BgpMessage, { type: T }> => m.type === type);
  }

  lastNotification(): Extract<BgpMessage, { type: "notification" }> | undefined {
    const n = this.of("notification");
    return n[n.length - 1];
  }
}
