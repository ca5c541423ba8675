/**
 * Test and benchmark harness for the mesh: N peers named n0, n1, … on one MemoryNetwork and one
 * VirtualClock, each with its own local MemoryDatastore (its persisted peer name) and a membership
 * view — the whole member list by default, or only the listed neighbours (a partial mesh: a line,
 * a ring). Helpers wait on conditions in virtual time.
 */
import { MemoryDatastore, MemoryMembership, MemoryNetwork, VirtualClock, seededRandom, silentLogger } from "@cnikit/core";
import type { Logger, NodeInfo, PeerTransport } from "@cnikit/core";
import { Mesh } from "../src/mesh/mesh.ts";
import type { MeshOptions } from "../src/mesh/mesh.ts";

export function nodeInfo(i: number): NodeInfo {
  return { name: `n${i}`, underlay: [{ iface: "eth0", address: `198.51.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`, prefixLength: 16 }] };
}

export interface HarnessPeer {
  node: string;
  transport: PeerTransport;
  mesh: Mesh;
  local: MemoryDatastore;
  members: MemoryMembership;
}

export interface HarnessOptions {
  n: number;
  seed?: number;
  /** Neighbour lists by index: peer i only knows (dials) these members. Default: everyone. */
  neighbours?: (i: number) => number[];
  /** Extra mesh options per peer. */
  options?: (i: number) => Partial<MeshOptions>;
  resetAfterMs?: number;
  log?: (i: number) => Logger;
}

export class Harness {
  readonly clock = new VirtualClock(0);
  readonly network: MemoryNetwork;
  readonly peers: HarnessPeer[] = [];
  private o: HarnessOptions;
  private generation = 0;

  constructor(o: HarnessOptions) {
    this.o = o;
    this.network = new MemoryNetwork({ clock: this.clock, seed: o.seed ?? 1, resetAfterMs: o.resetAfterMs ?? 30_000 });
    for (let i = 0; i < o.n; i++) this.peers.push(this.make(i, new MemoryDatastore()));
  }

  private membersOf(i: number): NodeInfo[] {
    const list = this.o.neighbours ? [i, ...this.o.neighbours(i)] : Array.from({ length: this.o.n }, (_, k) => k);
    return [...new Set(list)].map(nodeInfo);
  }

  private make(i: number, local: MemoryDatastore, extra: Partial<MeshOptions> = {}): HarnessPeer {
    const node = `n${i}`;
    const members = new MemoryMembership({ clock: this.clock, nodes: this.membersOf(i) });
    const transport = this.network.transport(node);
    const mesh = new Mesh({
      nodeName: node,
      transport,
      members,
      clock: this.clock,
      log: this.o.log?.(i) ?? silentLogger,
      random: seededRandom((this.o.seed ?? 1) * 1000 + i * 7 + this.generation++ * 7919),
      local,
      connLimit: 200,
      ...this.o.options?.(i),
      ...extra,
    });
    return { node, transport, mesh, local, members };
  }

  async startAll(): Promise<void> {
    for (const p of this.peers) await p.mesh.start();
  }

  /** Stops peer i and starts a new incarnation with the same local store (same name, new UID). */
  async restart(i: number): Promise<HarnessPeer> {
    const old = this.peers[i]!;
    await old.mesh.stop();
    old.transport.close();
    const fresh = this.make(i, old.local);
    this.peers[i] = fresh;
    await fresh.mesh.start();
    return fresh;
  }

  /** Advances virtual time in steps until `cond` holds; returns the virtual time it took. */
  async until(cond: () => boolean, limitMs: number, stepMs = 100): Promise<number> {
    const start = this.clock.now();
    while (!cond()) {
      if (this.clock.now() - start > limitMs) throw new Error(`condition not met within ${limitMs} ms of virtual time`);
      await this.clock.advance(stepMs);
    }
    return this.clock.now() - start;
  }

  /**
   * Every running peer knows every other running peer at its current UID and version (so every
   * link the others have), nothing else, and can route to each.
   */
  converged(alive: HarnessPeer[] = this.peers): boolean {
    for (const p of alive) {
      if (p.mesh.knownPeers() !== alive.length) return false;
      for (const q of alive) {
        const seen = p.mesh.knows(q.mesh.self.name);
        if (!seen || seen.uid !== q.mesh.self.uid || seen.version !== q.mesh.self.version) return false;
        if (q !== p && !p.mesh.reachable(q.mesh.self.name)) return false;
      }
    }
    return true;
  }

  /** Adds peer n<i> (a newcomer) to every membership and to the harness; not started. */
  addPeer(): HarnessPeer {
    const i = this.peers.length;
    this.o = { ...this.o, n: i + 1 };
    const p = this.make(i, new MemoryDatastore());
    this.peers.push(p);
    for (const q of this.peers) if (q !== p && (!this.o.neighbours || this.o.neighbours(i).includes(Number(q.node.slice(1))))) q.members.set(nodeInfo(i));
    return p;
  }

  /** Every peer has an established connection to every member it knows. */
  fullyConnected(): boolean {
    return this.peers.every((p) => p.mesh.connections().filter((c) => c.established).length === p.members.list().length - 1);
  }

  async stopAll(): Promise<void> {
    for (const p of this.peers) await p.mesh.stop();
  }
}

/** A grow-only set of strings over a mesh channel: what a component does with `GossipHandler`. */
export class SetChannel {
  readonly items = new Set<string>();
  readonly broadcasts: { source: string; text: string }[] = [];
  readonly unicasts: { source: string; text: string }[] = [];
  rejectWith: Error | undefined;

  static encode(items: Iterable<string>): Uint8Array {
    return new TextEncoder().encode([...items].join("\n"));
  }

  static decode(bytes: Uint8Array): string[] {
    const text = new TextDecoder().decode(bytes);
    return text === "" ? [] : text.split("\n");
  }

  gossip(): Uint8Array | undefined {
    return this.items.size === 0 ? undefined : SetChannel.encode(this.items);
  }

  onGossip(update: Uint8Array): Uint8Array | undefined {
    if (this.rejectWith) throw this.rejectWith;
    const fresh = SetChannel.decode(update).filter((x) => !this.items.has(x));
    for (const x of fresh) this.items.add(x);
    return fresh.length === 0 ? undefined : SetChannel.encode(fresh);
  }

  onGossipBroadcast(source: string, update: Uint8Array): void {
    this.broadcasts.push({ source, text: new TextDecoder().decode(update) });
  }

  onGossipUnicast(source: string, message: Uint8Array): void {
    this.unicasts.push({ source, text: new TextDecoder().decode(message) });
  }
}
