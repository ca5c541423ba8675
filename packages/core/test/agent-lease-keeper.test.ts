import { describe, expect, it } from "vitest";
import { MemoryDatastore, PoolExhaustedError, SubnetLeaseKeeper, VirtualClock, flushAsync, seededRandom, silentLogger } from "../src/index.ts";
import type { Datastore, KeyValue, SubnetLeaseKeeperOptions } from "../src/index.ts";

const PREFIX = "/coreos.com/network/subnets/";
const SUBNETS = ["10.244.0.0-24", "10.244.1.0-24", "10.244.2.0-24"];

function nodeOf(kv: KeyValue): string | undefined {
  try {
    return (JSON.parse(kv.value) as { NodeName?: string }).NodeName;
  } catch {
    return undefined;
  }
}

/** A flannel-shaped keeper: key `<prefix>10.244.N.0-24`, value with NodeName, first free subnet (or the previous one). */
function keeperFor(node: string, store: Datastore, local: Datastore, clock: VirtualClock, extra: Partial<SubnetLeaseKeeperOptions> = {}) {
  const lost: (string | undefined)[] = [];
  const renewed: string[] = [];
  const keeper = new SubnetLeaseKeeper({
    store,
    local,
    clock,
    log: silentLogger,
    random: seededRandom(7),
    component: "test",
    prefix: PREFIX,
    localKey: "/lease",
    ttlSeconds: 86_400,
    renewEveryMs: 23 * 3_600_000,
    retryMs: 60_000,
    value: () => JSON.stringify({ PublicIP: "198.51.100.1", BackendType: "vxlan", NodeName: node }),
    isMine: (kv) => nodeOf(kv) === node,
    pick: ({ listing, previous }) => {
      const taken = new Set(listing.map((kv) => kv.key));
      if (previous !== undefined && !taken.has(previous)) return previous;
      const free = SUBNETS.map((s) => PREFIX + s).find((k) => !taken.has(k));
      if (free === undefined) throw new PoolExhaustedError("10.244.0.0/22", "out of subnets");
      return free;
    },
    onLost: ({ holder }) => lost.push(holder ? nodeOf(holder) : undefined),
    onRenewedLease: (c) => renewed.push(c.lease ?? ""),
    ...extra,
  });
  return { keeper, lost, renewed };
}

function setup() {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  return { clock, store, localA: new MemoryDatastore({ clock }), localB: new MemoryDatastore({ clock }) };
}

describe("SubnetLeaseKeeper", () => {
  it("claims a free key by CAS under a TTL lease in flannel's key format, and remembers it locally", async () => {
    const t = setup();
    const { keeper } = keeperFor("a", t.store, t.localA, t.clock);
    const claim = await keeper.acquire();
    expect(claim).toMatchObject({ key: `${PREFIX}10.244.0.0-24`, source: "new", attempts: 1, conflicts: 0 });
    const kv = await t.store.get(claim.key);
    expect(kv?.lease).toBe(claim.lease);
    expect((await t.store.leaseInfo(claim.lease!))?.ttlSeconds).toBe(86_400);
    expect(JSON.parse((await t.localA.get("/lease"))!.value)).toEqual({ key: claim.key, lease: claim.lease });
    keeper.stop();
  });

  it("re-takes its own claim on restart (same key, same lease, kept alive), and the previous key after it expired", async () => {
    const t = setup();
    const first = keeperFor("a", t.store, t.localA, t.clock).keeper;
    const held = await first.acquire();
    first.stop();
    const again = keeperFor("a", t.store, t.localA, t.clock).keeper;
    expect(await again.acquire()).toMatchObject({ key: held.key, lease: held.lease, source: "own" });
    again.stop();
    // Gone for longer than the TTL: the key expired; another node took the first free subnet meanwhile
    // only if ours was not free — ours is free, so the remembered key is taken again.
    await t.clock.advance(86_400_000 + 1);
    expect(await t.store.get(held.key)).toBeUndefined();
    const b = keeperFor("b", t.store, t.localB, t.clock).keeper;
    await b.acquire(); // takes 10.244.0.0-24 (the first free one)
    const third = keeperFor("a", t.store, t.localA, t.clock).keeper;
    const claim = await third.acquire();
    expect(claim.key).not.toBe(held.key); // the previous key was taken by b
    expect(claim.source).toBe("new");
    b.stop();
    third.stop();
  });

  it("keeps the lease alive before expiry and re-creates it for the same key when it expired anyway", async () => {
    const t = setup();
    const { keeper, renewed } = keeperFor("a", t.store, t.localA, t.clock);
    const held = await keeper.acquire();
    // Renewal at 23 h keeps a 24 h lease alive across several days.
    await t.clock.advance(3 * 86_400_000);
    expect((await t.store.get(held.key))?.lease).toBe(held.lease);
    // The store loses the lease (expired while unreachable): the next renewal re-creates the claim.
    await t.store.revokeLease(held.lease!);
    expect(await t.store.get(held.key)).toBeUndefined();
    await t.clock.advance(23 * 3_600_000);
    await flushAsync();
    const kv = await t.store.get(held.key);
    expect(kv && nodeOf(kv)).toBe("a");
    expect(kv?.lease).not.toBe(held.lease);
    expect(renewed).toEqual([kv?.lease]);
    expect(keeper.claim?.lease).toBe(kv?.lease);
    keeper.stop();
  });

  it("verify() writes a vanished key back, and reports a key another node took as lost", async () => {
    const t = setup();
    const { keeper, lost } = keeperFor("a", t.store, t.localA, t.clock);
    const held = await keeper.acquire();
    await t.store.delete(held.key);
    await keeper.verify();
    expect((await t.store.get(held.key))?.lease).toBe(held.lease);
    expect(lost).toEqual([]);
    await t.store.delete(held.key);
    await t.store.put(held.key, JSON.stringify({ NodeName: "b" }));
    await keeper.verify();
    expect(lost).toEqual(["b"]);
    expect(keeper.lost).toBe(true);
    keeper.stop();
  });

  it("two nodes racing for the same subnet end with different keys (the loser re-picks)", async () => {
    const t = setup();
    const a = keeperFor("a", t.store, t.localA, t.clock).keeper;
    const b = keeperFor("b", t.store, t.localB, t.clock).keeper;
    const [ca, cb] = await Promise.all([a.acquire(), b.acquire()]);
    expect(ca.key).not.toBe(cb.key);
    expect(ca.conflicts + cb.conflicts).toBeGreaterThanOrEqual(1);
    const listing = await t.store.list(PREFIX);
    expect(listing.items.map(nodeOf).sort()).toEqual(["a", "b"]);
    // No lease granted for a lost attempt is left behind.
    const leases = new Set(listing.items.map((kv) => kv.lease));
    expect(leases.size).toBe(2);
    a.stop();
    b.stop();
  });

  it("release() revokes the lease (the key goes with it) and forgets the key locally; exhaustion is PoolExhaustedError", async () => {
    const t = setup();
    const { keeper } = keeperFor("a", t.store, t.localA, t.clock);
    const held = await keeper.acquire();
    await keeper.release();
    expect(await t.store.get(held.key)).toBeUndefined();
    expect(await t.localA.get("/lease")).toBeUndefined();
    expect(t.clock.pending()).toBe(0);
    for (const s of SUBNETS) await t.store.put(PREFIX + s, JSON.stringify({ NodeName: `other-${s}` }));
    const c = keeperFor("c", t.store, new MemoryDatastore({ clock: t.clock }), t.clock).keeper;
    await expect(c.acquire()).rejects.toMatchObject({ code: 100 });
  });

  it("gives up with TryAgainError after maxAttempts when the store stays unavailable, leaving nothing behind", async () => {
    const t = setup();
    const { keeper } = keeperFor("a", t.store, t.localA, t.clock, { maxAttempts: 3 });
    t.store.setAvailable(false);
    const done = keeper.acquire().then(
      () => "resolved",
      (err: { code?: number }) => err.code,
    );
    await t.clock.runUntilIdle();
    expect(await done).toBe(11);
  });
});
