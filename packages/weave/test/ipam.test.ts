/**
 * The IPAM ring's parts (space math, ring CRDT, codec, Paxos) and the allocator's flows over a fake
 * mesh in virtual time: consensus, donation, specific addresses, release, persistence, status.
 */
import { MemoryDatastore, VirtualClock, seededRandom, silentLogger } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { IpamAllocator } from "../src/ipam/allocator.ts";
import { decodeMessage, encodeMessage } from "../src/ipam/codec.ts";
import { Paxos, type AcceptorState, type PaxosMessage } from "../src/ipam/paxos.ts";
import { Ring, RingConflictError, tieOrder } from "../src/ipam/ring.ts";
import { firstFree, largestFreeBlock, splitRange } from "../src/ipam/space.ts";
import { IpamTestCluster } from "../src/ipam/testing.ts";

describe("space", () => {
  it("first-fit takes the lowest free offset across owned ranges", () => {
    expect(
      firstFree(
        [
          [8, 16],
          [0, 4],
        ],
        new Set([0, 1]),
      ),
    ).toBe(2);
    expect(firstFree([[0, 2]], new Set([0, 1]))).toBeUndefined();
  });

  it("largestFreeBlock gives the largest aligned free block within the limit, the highest among equals", () => {
    expect(largestFreeBlock([[0, 16]], new Set([0]), 8)).toEqual([8, 16]);
    expect(largestFreeBlock([[0, 16]], new Set([0, 13]), 8)).toEqual([8, 12]);
    expect(largestFreeBlock([[0, 16]], new Set([0, 9]), 8)).toEqual([12, 16]);
    expect(largestFreeBlock([[0, 16]], new Set([0]), 5)).toEqual([12, 16]);
    expect(largestFreeBlock([[0, 2]], new Set([0, 1]), 1)).toBeUndefined();
  });

  it("splitRange halves into aligned blocks, one per member, leftovers to the first members", () => {
    expect(splitRange(16, ["a", "b", "c"])).toEqual([
      [0, "a"],
      [4, "b"],
      [8, "c"],
      [12, "a"],
    ]);
    expect(splitRange(16, ["a", "b"])).toEqual([
      [0, "a"],
      [8, "b"],
    ]);
    expect(splitRange(2, ["a", "b", "c"]).map(([, m]) => m)).toEqual(["a", "b"]);
  });
});

describe("ring", () => {
  const id = { weight: 2, seed: "s" };
  const free = (r: readonly [number, number]): number => r[1] - r[0];

  it("merge is a union where the higher version wins, and reports only what was new", () => {
    const a = Ring.seed(16, id, ["a", "b"], free);
    const b = Ring.seed(16, id, ["a", "b"], free);
    a.give("a", [4, 8], "b", free);
    const delta = a.takeDelta()!;
    // The changed tokens, and the token that ends the last changed range (8).
    expect(delta.tokens.map((t) => t.start)).toEqual([0, 4, 8]);
    const news = b.merge(delta)!;
    expect(news.tokens.map((t) => t.start)).toEqual([0, 4, 8]);
    expect(b.merge(delta)).toBeUndefined();
    expect(b.rangesOf("b")).toEqual([[4, 16]]);
    expect(b.rangesOf("a")).toEqual([[0, 4]]);
    // A stale token (lower version) changes nothing.
    expect(b.merge(Ring.seed(16, id, ["a", "b"], free).snapshot())).toBeUndefined();
  });

  it("a token learned without the token after it leaves a gap, never a longer range (its end is carried)", () => {
    const donor = Ring.seed(16, id, ["a", "b"], free);
    const other = Ring.seed(16, id, ["a", "b"], free);
    donor.give("a", [5, 6], "c", free);
    donor.takeDelta(); // lost on its way to `other`
    donor.give("a", [4, 5], "c", free);
    const second = donor.takeDelta()!;
    // What reaches `other`: the second delta without the token at 6 (as if the boundary were missing too).
    other.merge({ ...second, tokens: second.tokens.filter((t) => t.start !== 6) });
    expect(other.ownerOf(4)).toBe("c");
    expect(other.ownerOf(5)).toBe("c");
    expect(other.ownerOf(6)).toBeUndefined();
    expect(other.rangesOf("c")).toEqual([[4, 6]]);
    other.merge(donor.snapshot());
    expect(other.ownerOf(6)).toBe("a");
    expect(other.rangesOf("a")).toEqual([
      [0, 4],
      [6, 8],
    ]);
  });

  it("two states of one token under one version (no honest peer makes them): one total order everywhere, reported as a conflict", () => {
    const a = Ring.seed(16, id, ["a", "b"], free);
    const b = Ring.seed(16, id, ["a", "b"], free);
    const forged = a.snapshot();
    forged.tokens[0] = { ...forged.tokens[0]!, owner: "b" };
    const honest = a.snapshot();
    a.merge(forged);
    b.merge(forged);
    b.merge(honest);
    expect(a.ownerOf(0)).toBe("b");
    expect(b.ownerOf(0)).toBe("b");
    expect(a.conflicts).toEqual(["token at offset 0 has two states under version 1 (b, end 8, free 8 kept, a, end 8, free 8 dropped): one peer reused a version"]);
    expect(b.conflicts.length).toBe(1);
    expect(tieOrder(forged.tokens[0]!, honest.tokens[0]!)).toBeGreaterThan(0);
  });

  it("a tombstone hands the dead peer's space to its claimant; the dead peer's tokens lose even with higher versions", () => {
    const a = Ring.seed(16, id, ["a", "d"], free);
    const stale = a.snapshot();
    expect(a.bury("d", "a")).toBe(true);
    expect(a.ownerOf(9)).toBe("a");
    a.refreshFree("a", free);
    stale.tokens[1] = { ...stale.tokens[1]!, version: 99 };
    a.merge(stale);
    expect(a.ownerOf(9)).toBe("a");
    expect(() => a.bury("d", "x")).toThrow(RingConflictError);
  });
});

describe("codec", () => {
  it("round-trips ring and Paxos messages and names the bad field", () => {
    const ring = Ring.seed(16, { weight: 1, seed: "s" }, ["a"], () => 3);
    const m = { k: "ring", range: "10.0.0.0/28", full: true, state: ring.snapshot() } as const;
    expect(decodeMessage(encodeMessage(m))).toEqual(m);
    const p = { k: "paxos", msg: { inst: "init", op: "promise", b: { round: 2, by: "a/1" }, ab: { round: 1, by: "b/2" }, v: { x: 1 } } } as const;
    expect(decodeMessage(encodeMessage(p))).toEqual(p);
    const bad = new TextEncoder().encode(JSON.stringify({ v: 1, k: "ring", r: "10.0.0.0/28", f: 1, id: [1, "s"], d: [], o: ["a"], t: [[0, 5, 1, 1, 16]] }));
    expect(() => decodeMessage(bad)).toThrow(/t\[0\]\[1\]/);
  });
});

describe("paxos", () => {
  /** Five peers, all proposing at once; messages lost (20 %), duplicated and reordered; acceptors crash and restart from their persisted state. */
  async function duel(seed: number): Promise<{ decided: Map<string, unknown>; values: Set<unknown> }> {
    const clock = new VirtualClock();
    const random = seededRandom(seed);
    const names = ["a", "b", "c", "d", "e"];
    const nodes = new Map<string, Paxos>();
    const disk = new Map<string, Map<string, AcceptorState>>();
    const decided = new Map<string, unknown>();
    /** Every value any incarnation of any peer learned. */
    const values = new Set<unknown>();
    const deliver = (from: string, to: string, msg: PaxosMessage): void => {
      for (let copies = random() < 0.1 ? 2 : 1; copies > 0; copies--) {
        if (random() < 0.2) continue;
        const target = nodes.get(to)!;
        clock.setTimeout(() => nodes.get(to) === target && target.receive(from, structuredClone(msg)), 1 + random() * 40);
      }
    };
    const boot = (n: string): void => {
      const p = new Paxos({
        self: n,
        clock,
        random,
        retryMs: 200,
        broadcast: (msg) => names.filter((x) => x !== n).forEach((x) => deliver(n, x, msg)),
        unicast: (to, msg) => deliver(n, to, msg),
        persist: async (inst, state) => void disk.get(n)!.set(inst, structuredClone(state)),
        canVote: () => true,
        decided: (_inst, v) => {
          decided.set(n, v);
          values.add(v);
        },
      });
      decided.delete(n);
      p.restore(disk.get(n)!);
      nodes.set(n, p);
      p.propose(
        "x",
        () => 3,
        () => `value-of-${n}-${seed}`,
      );
    };
    for (const n of names) disk.set(n, new Map());
    for (const n of names) boot(n);
    for (let i = 0; i < 300 && decided.size < names.length; i++) {
      if (i < 40 && random() < 0.7) {
        // Any peer, decided or not: a restarted acceptor forgets all but its persisted state.
        const victim = names[Math.floor(random() * names.length)]!;
        nodes.get(victim)!.stop();
        boot(victim);
      }
      await clock.advance(50);
    }
    return { decided, values };
  }

  it("a restarted acceptor keeps what it accepted (persisted before replying), so a later proposer cannot choose another value", async () => {
    const clock = new VirtualClock();
    const random = seededRandom(9);
    const disk = new Map<string, Map<string, AcceptorState>>([
      ["a", new Map()],
      ["b", new Map()],
      ["c", new Map()],
    ]);
    const queue: Array<{ from: string; to: string; msg: PaxosMessage }> = [];
    const learned = new Map<string, unknown>();
    const nodes = new Map<string, Paxos>();
    const boot = (n: string): Paxos => {
      const p = new Paxos({
        self: n,
        clock,
        random,
        broadcast: (msg) => ["a", "b", "c"].filter((x) => x !== n).forEach((to) => queue.push({ from: n, to, msg })),
        unicast: (to, msg) => queue.push({ from: n, to, msg }),
        persist: async (inst, state) => void disk.get(n)!.set(inst, structuredClone(state)),
        canVote: () => true,
        decided: (_inst, v) => learned.set(n, v),
      });
      p.restore(disk.get(n)!);
      nodes.set(n, p);
      return p;
    };
    for (const n of ["a", "b", "c"]) boot(n);
    /** Delivers queued messages that `pass` lets through (others are dropped), until none is left. */
    const pump = async (pass: (m: { from: string; to: string; msg: PaxosMessage }) => boolean): Promise<void> => {
      for (let guard = 0; guard < 100; guard++) {
        await clock.advance(0);
        const batch = queue.splice(0);
        if (batch.length === 0) return;
        for (const m of batch) if (pass(m)) nodes.get(m.to)!.receive(m.from, m.msg);
      }
    };
    // a proposes V; only b hears it (c is cut off): a and b accept, a learns V.
    nodes.get("a")!.propose(
      "x",
      () => 2,
      () => "V",
    );
    await pump((m) => m.to !== "c" && m.from !== "c");
    expect(learned.get("a")).toBe("V");
    // b restarts; c proposes with a higher ballot and only b answers (a is cut off).
    nodes.get("b")!.stop();
    boot("b");
    nodes.get("a")!.stop();
    nodes.get("c")!.propose(
      "x",
      () => 2,
      () => "W",
    );
    await pump((m) => m.to !== "a" && m.from !== "a");
    expect(learned.get("c")).toBe("V");
  });

  it("decides one value among duelling proposers despite lost, duplicated and reordered messages and acceptor restarts (30 seeds)", async () => {
    for (let seed = 1; seed <= 30; seed++) {
      const { decided, values } = await duel(seed);
      expect(decided.size, `seed ${seed}`).toBe(5);
      expect(values.size, `seed ${seed}: ${[...values].join(", ")}`).toBe(1);
    }
  });
});

const names = ["p1", "p2", "p3"];

describe("IpamAllocator", () => {
  it("refuses bad options naming the field", () => {
    const base = { self: "a", nickname: "a", clock: new VirtualClock(), log: silentLogger, random: Math.random, local: new MemoryDatastore(), knownPeers: () => [] };
    expect(() => new IpamAllocator({ ...base, range: "10.32.0.0/31", init: { mode: "observer" } })).toThrow(/IPALLOC_RANGE: must hold at least 4/);
    expect(() => new IpamAllocator({ ...base, range: "fd00::/64", init: { mode: "observer" } })).toThrow(/IPALLOC_RANGE: must be an IPv4/);
    expect(() => new IpamAllocator({ ...base, range: "10.32.0.0/12", init: { mode: "consensus", quorum: -1 } })).toThrow(/IPALLOC_INIT/);
    expect(() => new IpamAllocator({ ...base, range: "10.32.0.0/12", init: { mode: "seed", peers: [] } })).toThrow(/IPALLOC_INIT/);
  });

  it("consensus: idle, then awaiting consensus, then ready; the range splits among the peers; first-fit", async () => {
    const c = new IpamTestCluster({ names, range: "10.32.0.0/12", init: () => ({ mode: "consensus", quorum: 3 }), random: seededRandom(1) });
    for (const n of names) await c.start(n);
    expect(c.get("p1").status()[0]).toBe("idle");
    const p = c.get("p1").allocate("pod-a");
    await c.clock.advance(0);
    expect(c.get("p1").status()[0]).toBe("awaiting consensus (quorum: 2, known: 3)");
    expect(await c.settle(p)).toBe("10.32.0.1");
    expect(c.get("p1").status()[0]).toBe("ready");
    expect(await c.settle(c.get("p1").allocate("pod-b"))).toBe("10.32.0.2");
    expect(await c.settle(c.get("p1").allocate("pod-a"))).toBe("10.32.0.1");
    await c.clock.advance(6000);
    const owners = names.map((n) => c.get(n).owner("10.40.0.0"));
    expect(new Set(owners).size).toBe(1);
    const a2 = await c.settle(c.get("p2").allocate("pod-c"));
    expect(c.get("p1").owner(a2)).toBe("p2");
    expect(await c.duplicates()).toEqual([]);
    expect(c.mesh.rejected).toEqual([]);
  });

  it("consensus without N: the quorum is a majority of the peers the mesh knows, self included", async () => {
    const c = new IpamTestCluster({ names: ["p1", "p2", "p3", "p4"], range: "10.32.0.0/24", init: () => ({ mode: "consensus" }), random: seededRandom(21) });
    for (const n of ["p1", "p2", "p3", "p4"]) await c.start(n);
    const p = c.get("p4").allocate("k");
    await c.clock.advance(0);
    expect(c.get("p4").status()[0]).toBe("awaiting consensus (quorum: 3, known: 4)");
    expect(await c.settle(p)).toMatch(/^10\.32\.0\./);
  });

  it("gossips only what changed: an allocation's delta carries a few tokens, the full ring goes to newcomers", async () => {
    const c = new IpamTestCluster({ names: ["p1"], range: "10.32.0.0/16", init: () => ({ mode: "seed", peers: Array.from({ length: 64 }, (_, i) => `p${i + 1}`) }), random: seededRandom(22) });
    const a = await c.start("p1");
    const sent: Uint8Array[] = [];
    a.attach({ gossip: (u) => void sent.push(u), gossipBroadcast: () => undefined, gossipUnicast: () => true });
    // Alone with a seed list of 64 peers it waits for a peer's ring: give it one.
    const peer = await c.start("p2");
    a.onGossip(peer.gossip()!);
    await c.settle(a.allocate("k"));
    const full = a.gossip()!;
    expect(sent.length).toBeGreaterThan(0);
    const delta = decodeMessage(sent[sent.length - 1]!);
    expect(delta.k === "ring" && !delta.full && delta.state.tokens.length <= 2).toBe(true);
    expect(decodeMessage(full)).toMatchObject({ k: "ring", full: true });
    expect(sent[sent.length - 1]!.length * 10).toBeLessThan(full.length);
  });

  it("a waiting allocation ends on its AbortSignal, and with ClosedError on stop", async () => {
    const c = new IpamTestCluster({ names: ["a"], range: "10.32.0.0/24", init: () => ({ mode: "observer" }), random: seededRandom(23) });
    const a = await c.start("a");
    const ctl = new AbortController();
    const p = a.allocate("k", { signal: ctl.signal });
    await c.clock.advance(1000);
    ctl.abort(new Error("cancelled by the runtime"));
    await expect(p).rejects.toThrow("cancelled by the runtime");
    const q = a.allocate("k2");
    await c.clock.advance(1000);
    expect(a.status()[0]).toBe("awaiting a ring from peers (observer)");
    a.stop();
    await expect(q).rejects.toMatchObject({ code: 107 });
    await expect(a.allocate("k3")).rejects.toMatchObject({ code: 107 });
  });

  it("a lone consensus peer without quorum times out with TryAgainError naming the wait", async () => {
    const c = new IpamTestCluster({ names: ["a"], range: "10.32.0.0/24", init: () => ({ mode: "consensus", quorum: 3 }), random: seededRandom(2), grantTimeoutMs: 5000 });
    await c.start("a");
    await expect(c.settle(c.get("a").allocate("k"))).rejects.toMatchObject({ code: 11, message: expect.stringMatching(/awaiting consensus \(quorum: 2, known: 1\)/) });
  });

  it("donation: a newcomer (observer) gets the largest free aligned block, at most half the donor's space", async () => {
    const c = new IpamTestCluster({ names, range: "10.32.0.0/24", init: (n) => (n === "p3" ? { mode: "observer" } : { mode: "seed", peers: ["p1", "p2"] }), random: seededRandom(3) });
    for (const n of names) await c.start(n);
    await c.clock.advance(100);
    expect(c.get("p3").status()[0]).toBe("ready");
    const addr = await c.settle(c.get("p3").allocate("x"));
    expect(c.get("p3").owner(addr)).toBe("p3");
    const mine = c
      .get("p3")
      .status()
      .filter((l) => l.startsWith("owned"));
    expect(mine).toHaveLength(1);
    // A /25 share of 127 free addresses: at most 63 may go, so the largest aligned block is a /27 (32).
    expect(mine[0]).toMatch(/owned 10\.32\.0\.(96-10\.32\.0\.127|224-10\.32\.0\.254): 3[01] free/);
    await c.clock.advance(6000);
    expect(c.get("p2").owner(addr)).toBe("p3");
    expect(c.mesh.rejected).toEqual([]);
  });

  it("specific addresses: owned -> taken, held -> AddressInUse, another peer's free address -> donated to the asker", async () => {
    const c = new IpamTestCluster({ names: ["p1", "p2"], range: "10.32.0.0/24", init: () => ({ mode: "seed", peers: ["p1", "p2"] }), random: seededRandom(4) });
    for (const n of ["p1", "p2"]) await c.start(n);
    await c.clock.advance(100);
    expect(await c.settle(c.get("p1").allocate("a", { address: "10.32.0.9" }))).toBe("10.32.0.9");
    await expect(c.settle(c.get("p1").allocate("b", { address: "10.32.0.9" }))).rejects.toMatchObject({ code: 101 });
    expect(await c.settle(c.get("p2").allocate("c", { address: "10.32.0.10" }))).toBe("10.32.0.10");
    expect(c.get("p2").owner("10.32.0.10")).toBe("p2");
    await expect(c.settle(c.get("p2").allocate("d", { address: "10.32.0.9" }))).rejects.toMatchObject({ code: 101 });
    await expect(c.get("p1").allocate("e", { address: "10.33.0.1" })).rejects.toMatchObject({ code: 7, field: "address" });
    await expect(c.get("p1").allocate("e", { address: "10.32.0.0" })).rejects.toMatchObject({ code: 7, field: "address" });
  });

  it("release is idempotent and frees the address for first-fit; PoolExhausted when the whole range is full", async () => {
    const c = new IpamTestCluster({ names: ["p1"], range: "10.32.0.0/29", init: () => ({ mode: "consensus", quorum: 1 }), random: seededRandom(5) });
    await c.start("p1");
    const a = c.get("p1");
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await c.settle(a.allocate(`k${i}`)));
    expect(got).toEqual(["10.32.0.1", "10.32.0.2", "10.32.0.3", "10.32.0.4", "10.32.0.5", "10.32.0.6"]);
    await expect(c.settle(a.allocate("k6"))).rejects.toMatchObject({ code: 100 });
    await a.release("k2");
    await a.release("k2");
    expect(await c.settle(a.allocate("k7"))).toBe("10.32.0.3");
  });

  it("a restart keeps the ring and the allocations (persisted in local)", async () => {
    const c = new IpamTestCluster({ names: ["p1", "p2"], range: "10.32.0.0/24", init: () => ({ mode: "consensus", quorum: 2 }), random: seededRandom(6) });
    for (const n of ["p1", "p2"]) await c.start(n);
    const addr = await c.settle(c.get("p1").allocate("k"));
    c.crash("p1");
    await c.start("p1");
    await c.clock.advance(100);
    expect(c.get("p1").status()[0]).toBe("ready");
    expect(c.get("p1").allocations()).toEqual(new Map([["k", addr]]));
    expect(await c.settle(c.get("p1").allocate("k"))).toBe(addr);
    expect(await c.settle(c.get("p1").allocate("k2"))).not.toBe(addr);
  });

  it("messages that arrive while start() loads the persisted ring are handled after it, not lost or overwritten", async () => {
    const c = new IpamTestCluster({ names: ["p1", "p2"], range: "10.32.0.0/24", init: () => ({ mode: "consensus", quorum: 2 }), random: seededRandom(9) });
    for (const n of ["p1", "p2"]) await c.start(n);
    await c.settle(c.get("p1").allocate("k"));
    c.crash("p1");
    const x = await c.settle(c.get("p2").allocate("x"));
    const a = new IpamAllocator({
      range: "10.32.0.0/24",
      self: "p1",
      nickname: "p1",
      init: { mode: "consensus", quorum: 2 },
      clock: c.clock,
      log: silentLogger,
      random: seededRandom(1),
      local: c.stores.get("p1")!,
      knownPeers: () => ["p2"],
    });
    a.attach({ gossip: () => undefined, gossipBroadcast: () => undefined, gossipUnicast: () => true });
    const starting = a.start();
    expect(a.onGossip(c.get("p2").gossip()!)).toBeUndefined();
    await starting;
    expect(a.status()[0]).toBe("ready");
    expect(a.owner(x)).toBe("p2");
    expect(a.allocations().get("k")).toBe("10.32.0.1");
  });

  it("rejects an incompatible range from a peer", async () => {
    const c = new IpamTestCluster({ names: ["p1"], range: "10.32.0.0/24", init: () => ({ mode: "seed", peers: ["p1"] }), random: seededRandom(8) });
    const a = await c.start("p1");
    const other = new IpamAllocator({
      range: "10.33.0.0/24",
      self: "q",
      nickname: "q",
      init: { mode: "seed", peers: ["q"] },
      clock: c.clock,
      log: silentLogger,
      random: Math.random,
      local: new MemoryDatastore(),
      knownPeers: () => [],
    });
    await other.start();
    expect(() => a.onGossip(other.gossip()!)).toThrow(/Incompatible IP allocation ranges \(received: 10\.33\.0\.0\/24, ours: 10\.32\.0\.0\/24\)/);
  });
});
