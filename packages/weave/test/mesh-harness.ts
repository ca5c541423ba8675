/**
 * Test and benchmark harness for the mesh: N peers named n0, n1, … on one MemoryNetwork and one
 * VirtualClock, each with its own local MemoryDatastore (its persisted peer name) and a membership
 * view — the whole member list by default, or only the listed neighbours (a partial mesh: a line,
 * a ring). Helpers wait on conditions in virtual time.
 */
import { MemoryDatastore, MemoryMembership, MemoryNetwork, VirtualClock, seededRandom, silentLogger } from "@cnikit/core";
import type { Logger, NodeInfo } from "@cnikit/core";
import { Mesh } from "../src/mesh/mesh.ts";
import type { MeshOptions } from "../src/mesh/mesh.ts";

export function nodeInfo(i: number): NodeInfo {
  return { name: `n${i}`, underlay: [{ iface: "eth0", address: `198.51.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`, prefixLength: 16 }] };
}

export interface HarnessPeer {
  node: string;
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
  private readonly o: HarnessOptions;
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
    const mesh = new Mesh({
      nodeName: node,
      transport: this.network.transport(node),
      members,
      clock: this.clock,
      log: this.o.log?.(i) ?? silentLogger,
      random: seededRandom((this.o.seed ?? 1) * 1000 + i * 7 + this.generation++ * 7919),
      local,
      connLimit: 200,
      ...this.o.options?.(i),
      ...extra,
    });
    return { node, mesh, local, members };
  }

  async startAll(): Promise<void> {
    for (const p of this.peers) await p.mesh.start();
  }

  /** Stops peer i and starts a new incarnation with the same local store (same name, new UID). */
  async restart(i: number): Promise<HarnessPeer> {
    const old = this.peers[i]!;
    await old.mesh.stop();
    this.network.disconnect(old.node);
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

  /** Every running peer knows every other running peer and every established link between them. */
  converged(alive: HarnessPeer[] = this.peers): boolean {
    const names = alive.map((p) => p.mesh.self.name).sort();
    for (const p of alive) {
      const known = p.mesh.peers();
      if (known.length !== names.length) return false;
      const byName = new Map(known.map((k) => [k.identity.name, k]));
      for (const q of alive) {
        const rec = byName.get(q.mesh.self.name);
        if (!rec || rec.identity.uid !== q.mesh.self.uid || rec.identity.version !== q.mesh.self.version) return false;
      }
      for (const q of alive) if (q !== p && !p.mesh.reachable(q.mesh.self.name)) return false;
    }
    return true;
  }

  async stopAll(): Promise<void> {
    for (const p of this.peers) await p.mesh.stop();
  }
}
