/**
 * Weave's IPAM weaknesses, each beaten by a test named after the issue (weaveworks/weave numbers).
 * All run N allocators over the fake gossip mesh in virtual time (src/ipam/testing.ts).
 */
import { MemoryDatastore, seededRandom } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { IPAM_KEYS } from "../src/ipam/allocator.ts";
import { IpamTestCluster } from "../src/ipam/testing.ts";

async function copyStore(from: MemoryDatastore): Promise<MemoryDatastore> {
  const to = new MemoryDatastore();
  for (const kv of (await from.list("weave/")).items) await to.put(kv.key, kv.value);
  return to;
}

function ringLine(status: string[]): string | undefined {
  return status.find((l) => l.startsWith("range "));
}

describe("IPAM ring: better than Weave", () => {
  it("weakness #3908 / #1720: rings seeded by different peers (two partitions that each reached consensus) hand over by identity when they meet — no manual reset, no address held twice", async () => {
    const names = ["p1", "p2", "p3", "p4"];
    // consensus=2 on four peers: a misconfiguration (like the launcher's consensus=0 on a lone
    // first node, #3908) that lets each half of a partition agree its own ring.
    const c = new IpamTestCluster({ names, range: "10.32.0.0/24", init: () => ({ mode: "consensus", quorum: 2 }), random: seededRandom(11) });
    for (const n of names) await c.start(n);
    c.mesh.partition([
      ["p1", "p2"],
      ["p3", "p4"],
    ]);
    const a = [await c.settle(c.get("p1").allocate("a1")), await c.settle(c.get("p1").allocate("a2")), await c.settle(c.get("p1").allocate("a3"))];
    const b = [await c.settle(c.get("p3").allocate("b1")), await c.settle(c.get("p3").allocate("b2"))];
    expect(a).toEqual(["10.32.0.1", "10.32.0.2", "10.32.0.3"]);
    expect(b).toEqual(["10.32.0.1", "10.32.0.2"]);
    const ringA = ringLine(c.get("p1").status());
    expect(ringA).not.toEqual(ringLine(c.get("p3").status()));

    c.mesh.heal();
    await c.clock.advance(15_000);
    // One ring everywhere, no connection dropped, no address held twice, every held address owned by its holder.
    const rings = new Set(names.map((n) => ringLine(c.get(n).status())));
    expect(rings.size).toBe(1);
    expect(names.map((n) => c.get(n).status()[0])).toEqual(["ready", "ready", "ready", "ready"]);
    expect(c.mesh.rejected).toEqual([]);
    expect(await c.duplicates()).toEqual([]);
    expect(c.ownershipErrors()).toEqual([]);
    // The yielding side reported its two conflicting addresses and kept the other one (claimed from
    // its owner in the winning ring); the winning side kept everything.
    const winner = [...rings][0] === ringA ? "p1" : "p3";
    const loser = winner === "p1" ? "p3" : "p1";
    const before = { p1: a, p3: b };
    const refused = c
      .get(loser)
      .status()
      .filter((l) => l.startsWith("refused allocation"));
    expect(refused).toHaveLength(2);
    for (const l of refused) expect(l).toMatch(/rings seeded by different peers met/);
    expect([...c.get(winner).allocations().values()]).toEqual(before[winner]);
    const kept = before[loser].filter((x) => !before[winner].includes(x));
    expect([...c.get(loser).allocations().values()]).toEqual(kept);
    for (const x of kept) expect(c.get(winner).owner(x)).toBe(loser);
    // Allocation goes on everywhere, without duplicates.
    for (const n of names) await c.settle(c.get(n).allocate(`after-${n}`));
    expect(await c.duplicates()).toEqual([]);
  });

  it("weakness #3908 (seed lists): peers given different seed lists converge on one ring without a reset", async () => {
    const names = ["p1", "p2", "p3"];
    const c = new IpamTestCluster({ names, range: "10.32.0.0/24", init: (n) => ({ mode: "seed", peers: n === "p3" ? ["p3"] : ["p1", "p2"] }), random: seededRandom(12) });
    for (const n of names) await c.start(n);
    await c.clock.advance(10_000);
    expect(new Set(names.map((n) => ringLine(c.get(n).status()))).size).toBe(1);
    // p3's one-peer ring yielded to the ring two peers agreed; p3 then gets space by donation.
    expect(ringLine(c.get("p3").status())).toContain("(agreed by 2)");
    const x = await c.settle(c.get("p3").allocate("x"));
    expect(c.get("p1").owner(x)).toBe("p3");
    expect(c.mesh.rejected).toEqual([]);
  });

  it("weakness #2797 / #3384: a departed node's space is reclaimed automatically, by exactly one claimant agreed by a quorum — a partition without a majority cannot claim it", async () => {
    const names = ["p1", "p2", "p3", "p4", "p5"];
    const c = new IpamTestCluster({ names, range: "10.32.0.0/24", init: () => ({ mode: "seed", peers: names }), random: seededRandom(13) });
    for (const n of names) await c.start(n);
    await c.clock.advance(1000);
    const p5Addr = await c.settle(c.get("p5").allocate("gone-pod"));
    await c.clock.advance(1000);
    const p5Space = c.get("p1").owner(p5Addr);
    expect(p5Space).toBe("p5");
    const p5Store = await copyStore(c.stores.get("p5")!);
    c.crash("p5");
    // Membership on one peer only: the others refuse to vote, nothing is claimed.
    c.get("p1").peersGone(["p5"]);
    await c.clock.advance(20_000);
    expect(c.get("p1").owner(p5Addr)).toBe("p5");
    // 2 + 2: neither side holds a majority of the 4 remaining owners.
    c.mesh.partition([
      ["p1", "p2"],
      ["p3", "p4"],
    ]);
    for (const n of ["p1", "p2", "p3", "p4"]) c.get(n).peersGone(["p5"]);
    await c.clock.advance(30_000);
    for (const n of ["p1", "p2", "p3", "p4"]) expect(c.get(n).owner(p5Addr)).toBe("p5");
    expect(
      c
        .get("p1")
        .status()
        .some((l) => l.startsWith("reclaiming space of p5 (quorum: 3)")),
    ).toBe(true);
    expect(
      c
        .get("p1")
        .status()
        .filter((l) => l.endsWith("free advertised)"))
        .map((l) => l.split(":")[0]),
    ).toEqual(["owner p3", "owner p4", "owner p5"]);
    c.mesh.heal();
    await c.clock.advance(30_000);
    const claimants = new Set(["p1", "p2", "p3", "p4"].map((n) => c.get(n).owner(p5Addr)));
    expect(claimants.size).toBe(1);
    const claimant = [...claimants][0]!;
    expect(["p1", "p2", "p3", "p4"]).toContain(claimant);
    for (const n of ["p1", "p2", "p3", "p4"]) expect(c.get(n).status()).toContain(`reclaimed p5 -> ${claimant}`);
    // The claimant allocates from the reclaimed space.
    expect(
      c
        .get(claimant)
        .status()
        .filter((l) => l.startsWith("owned")).length,
    ).toBeGreaterThanOrEqual(1);

    // p5 comes back under its old name with its old data: the tombstone wins, nothing is served twice.
    await c.start("p5", p5Store);
    await c.clock.advance(10_000);
    expect(c.get("p5").status()[0]).toBe(`removed: space reclaimed by ${claimant}`);
    expect(c.get("p5").allocations({ includeUnverified: true }).size).toBe(0);
    expect(
      c
        .get("p5")
        .status()
        .some((l) => l.startsWith("refused allocation gone-pod")),
    ).toBe(true);
    await expect(c.settle(c.get("p5").allocate("new"))).rejects.toMatchObject({ code: 11, message: expect.stringMatching(/restart it under a new peer name/) });
    expect(c.get("p1").owner(p5Addr)).toBe(claimant);
    expect(await c.duplicates()).toEqual([]);
    expect(c.mesh.rejected).toEqual([]);
  });

  it("weakness #3569 (name replaced): a node re-created under a new peer name gets the old name's space reclaimed and new space by donation", async () => {
    const c = new IpamTestCluster({
      names: ["p1", "p2", "old"],
      range: "10.32.0.0/24",
      init: (n) => (n === "new" ? { mode: "observer" } : { mode: "seed", peers: ["p1", "p2", "old"] }),
      random: seededRandom(14),
    });
    for (const n of ["p1", "p2", "old"]) await c.start(n);
    await c.clock.advance(1000);
    c.crash("old");
    await c.start("new");
    for (const n of ["p1", "p2", "new"]) c.get(n).peersGone(["old"]);
    await c.clock.advance(15_000);
    expect(
      c
        .get("p1")
        .status()
        .some((l) => /^reclaimed old -> p[12]$/.test(l)),
    ).toBe(true);
    const x = await c.settle(c.get("new").allocate("pod"));
    expect(c.get("p2").owner(x)).toBe("new");
    expect(await c.duplicates()).toEqual([]);
  });

  it("weakness #1949 / #3003: a restarted peer with stale persisted data never causes double ownership — versions win, its stale allocations are reported and refused, never served", async () => {
    const c = new IpamTestCluster({ names: ["p1", "p2"], range: "10.32.0.0/24", init: () => ({ mode: "seed", peers: ["p1", "p2"] }), random: seededRandom(15), grantTimeoutMs: 5000 });
    for (const n of ["p1", "p2"]) await c.start(n);
    await c.clock.advance(1000);
    expect(await c.settle(c.get("p1").allocate("k1"))).toBe("10.32.0.1");
    const stale = await copyStore(c.stores.get("p1")!);
    await c.get("p1").release("k1");
    // p2 asks for 10.32.0.1: p1 (its owner) donates it, p2 allocates it.
    expect(await c.settle(c.get("p2").allocate("k2", { address: "10.32.0.1" }))).toBe("10.32.0.1");
    c.crash("p1");
    // p1 comes back with the old disk (it still says: I own 10.32.0.0/25 and k1 holds 10.32.0.1), alone.
    c.mesh.partition([["p1"], ["p2"]]);
    await c.start("p1", stale);
    expect(c.get("p1").status()[0]).toBe("waiting for the ring from peers (restarted with persisted data)");
    expect(c.get("p1").allocations().size).toBe(0);
    await expect(c.settle(c.get("p1").allocate("k3"))).rejects.toMatchObject({ code: 11, message: expect.stringMatching(/restarted with persisted data/) });
    c.mesh.heal();
    await c.clock.advance(5000);
    expect(c.get("p1").status()[0]).toBe("ready");
    expect(c.get("p1").owner("10.32.0.1")).toBe("p2");
    expect(c.get("p1").allocations().size).toBe(0);
    expect(c.get("p1").status()).toContain("refused allocation k1 -> 10.32.0.1: outside the space this peer owns (owner: p2); persisted data was stale");
    expect((await c.stores.get("p1")!.list(IPAM_KEYS.alloc)).items).toEqual([]);
    expect(await c.settle(c.get("p1").allocate("k4"))).toBe("10.32.0.2");
    expect(await c.duplicates()).toEqual([]);
    expect(c.ownershipErrors()).toEqual([]);
    expect(c.mesh.rejected).toEqual([]);

    // Lost data altogether (seed mode re-seeds version 1): it waits for its peers, then versions win.
    c.crash("p2");
    await c.start("p2", new MemoryDatastore());
    await c.clock.advance(5000);
    expect(c.get("p2").owner("10.32.0.1")).toBe("p2");
    expect(c.get("p2").owner("10.32.0.2")).toBe("p1");
    expect(c.mesh.rejected).toEqual([]);
  });
});
