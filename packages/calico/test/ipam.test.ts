// Block IPAM: allocation order, claims, borrowing, strict affinity, caps, selectors, release, GC,
// concurrent allocation from many nodes (property-based) and agents killed mid-allocation.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { AddressInUseError, ConfigError, MemoryDatastore, PoolExhaustedError, Prefix } from "@cnikit/core";
import type { Datastore } from "@cnikit/core";
import { parseCalicoConfig } from "../src/config.ts";
import { BlockIpam, checkIpam, gcIpam, putPool, readIpam, reservedOrdinals, POOL_PREFIX } from "../src/ipam.ts";
import type { IpamConfig, IpPool } from "../src/config.ts";
import { killableStore } from "./helpers.ts";

const poolOf = (spec: Record<string, unknown>, name = "p"): IpPool => parseCalicoConfig([{ kind: "IPPool", metadata: { name }, spec }]).pools[0]!;
const LOOSE: IpamConfig = { strictAffinity: false, maxBlocksPerHost: 20, autoAllocateBlocks: true };

function ipam(store: Datastore, node: string, pools: IpPool[], config: IpamConfig = LOOSE, labels: Record<string, string> = {}): BlockIpam {
  let seed = 1;
  return new BlockIpam({ store, node, pools, config, labels, random: () => (seed = (seed * 16807) % 2147483647) / 2147483647 });
}

describe("allocation", () => {
  it("claims a block, fills it FIFO, then claims the next", async () => {
    const store = new MemoryDatastore();
    const pool = poolOf({ cidr: "10.0.0.0/24", blockSize: 30 });
    const a = ipam(store, "a", [pool]);
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await a.allocate(`h${i}`));
    expect(new Set(got.map((g) => g.address)).size).toBe(6);
    expect(new Set(got.map((g) => g.block)).size).toBe(2);
    expect(got.every((g) => !g.borrowed)).toBe(true);
    expect(Prefix.parse(got[0]!.block).nth(0)).toBe(got[0]!.address);
    expect(await a.affineBlocks()).toHaveLength(2);
    expect(await checkIpam(store, [pool])).toEqual([]);
  });

  it("never hands out the pool's network or broadcast address, also when asked for them", async () => {
    const store = new MemoryDatastore();
    const pool = poolOf({ cidr: "10.0.0.0/28", blockSize: 30 });
    const a = ipam(store, "a", [pool], { ...LOOSE, maxBlocksPerHost: 4 });
    const got: string[] = [];
    for (;;) {
      try {
        got.push((await a.allocate(`h${got.length}`)).address);
      } catch (err) {
        expect(err).toBeInstanceOf(PoolExhaustedError);
        break;
      }
    }
    // 16 addresses in four /30 blocks, less 10.0.0.0 and 10.0.0.15.
    expect(got).toHaveLength(14);
    expect(got).not.toContain("10.0.0.0");
    expect(got).not.toContain("10.0.0.15");
    expect(await checkIpam(store, [pool])).toEqual([]);
    const b = ipam(new MemoryDatastore(), "b", [pool]);
    await expect(b.allocateSpecific("net", "10.0.0.0")).rejects.toThrow(/network or broadcast address of IPPool 10\.0\.0\.0\/28/);
    await expect(b.allocateSpecific("bcast", "10.0.0.15")).rejects.toBeInstanceOf(AddressInUseError);
    expect((await b.allocateSpecific("ok", "10.0.0.1")).address).toBe("10.0.0.1");
  });

  it("checkIpam flags a reserved ordinal that is free or allocated", async () => {
    const store = new MemoryDatastore();
    const pool = poolOf({ cidr: "10.0.0.0/28", blockSize: 30 });
    await ipam(store, "a", [pool]).allocate("h0");
    const kv = (await store.list("/calico/ipam/v2/assignment/")).items[0]!;
    const rec = JSON.parse(kv.value) as { unallocated: number[]; reserved?: number[] };
    expect(rec.reserved).toEqual([0]);
    await store.put(kv.key, JSON.stringify({ ...rec, unallocated: [0, ...rec.unallocated] }));
    expect((await checkIpam(store, [pool])).map((p) => p.problem)).toContain("reserved ordinal 0 (10.0.0.0) is on the free list");
  });

  it("is idempotent per handle", async () => {
    const store = new MemoryDatastore();
    const a = ipam(store, "a", [poolOf({ cidr: "10.0.0.0/24" })]);
    const x = await a.allocate("h");
    expect(await a.allocate("h")).toEqual(x);
  });

  it("borrows from another node's block when its own cap is reached, unless strictAffinity", async () => {
    const store = new MemoryDatastore();
    const pool = poolOf({ cidr: "10.0.0.0/29", blockSize: 30 });
    const a = ipam(store, "a", [pool]);
    const b = ipam(store, "b", [pool], { ...LOOSE, maxBlocksPerHost: 1 });
    await a.allocate("a1");
    await a.allocate("a2");
    const b1 = await b.allocate("b1");
    expect(b1.borrowed).toBe(false);
    // Each /30 block of the /29 pool has one reserved ordinal (the pool's network or broadcast address).
    expect(reservedOrdinals(b1.block, pool.cidr)).toHaveLength(1);
    for (const h of ["b2", "b3"]) expect((await b.allocate(h)).borrowed).toBe(false);
    const b5 = await b.allocate("b5");
    expect(b5.borrowed).toBe(true);
    expect(b5.block).not.toBe(b1.block);
    const strict = ipam(store, "c", [pool], { strictAffinity: true, maxBlocksPerHost: 1, autoAllocateBlocks: true });
    await expect(strict.allocate("c1")).rejects.toBeInstanceOf(PoolExhaustedError);
    expect(await checkIpam(store, [pool])).toEqual([]);
  });

  it("refuses when the pool is exhausted, and the error says so", async () => {
    const store = new MemoryDatastore();
    const a = ipam(store, "a", [poolOf({ cidr: "10.0.0.0/30", blockSize: 30 })]);
    // Four addresses less the pool's network and broadcast address.
    for (let i = 0; i < 2; i++) await a.allocate(`h${i}`);
    await expect(a.allocate("h2")).rejects.toBeInstanceOf(PoolExhaustedError);
  });

  it("honours nodeSelector and disabled pools", async () => {
    const store = new MemoryDatastore();
    const pools = [poolOf({ cidr: "10.1.0.0/24", nodeSelector: "zone == 'x'" }, "x"), poolOf({ cidr: "10.2.0.0/24", disabled: true }, "off"), poolOf({ cidr: "10.3.0.0/24" }, "all")];
    const inX = await ipam(store, "a", pools, LOOSE, { zone: "x" }).allocate("h1");
    expect(inX.address.startsWith("10.1.") || inX.address.startsWith("10.3.")).toBe(true);
    const other = await ipam(store, "b", pools.slice(0, 2), LOOSE, { zone: "y" })
      .allocate("h2")
      .catch((e: unknown) => e);
    expect(other).toBeInstanceOf(PoolExhaustedError);
  });

  it("allocates a requested address, and refuses one in use", async () => {
    const store = new MemoryDatastore();
    const pool = poolOf({ cidr: "10.0.0.0/24" });
    const a = ipam(store, "a", [pool]);
    expect((await a.allocateSpecific("h1", "10.0.0.77")).address).toBe("10.0.0.77");
    await expect(ipam(store, "b", [pool]).allocateSpecific("h2", "10.0.0.77")).rejects.toBeInstanceOf(AddressInUseError);
    await expect(a.allocateSpecific("h3", "10.9.0.1")).rejects.toBeInstanceOf(AddressInUseError);
  });

  it("release puts the ordinal at the tail of the FIFO and is idempotent", async () => {
    const store = new MemoryDatastore();
    const a = ipam(store, "a", [poolOf({ cidr: "10.0.0.0/24", blockSize: 30 })]);
    const first = await a.allocate("h1");
    expect(await a.release("h1")).toBe(true);
    expect(await a.release("h1")).toBe(false);
    const next = await a.allocate("h2");
    expect(next.address).not.toBe(first.address); // FIFO: the freed address is reused last
    expect(await checkIpam(store)).toEqual([]);
  });
});

describe("pools in the store", () => {
  it("refuses overlap on create and on update, atomically", async () => {
    const store = new MemoryDatastore();
    await putPool(store, poolOf({ cidr: "10.0.0.0/16" }, "a"));
    await putPool(store, poolOf({ cidr: "10.1.0.0/16" }, "b"));
    await expect(putPool(store, poolOf({ cidr: "10.0.128.0/17" }, "c"))).rejects.toBeInstanceOf(ConfigError);
    // update of b to overlap a: refused too (Calico checks on create only)
    const err = await putPool(store, poolOf({ cidr: "10.0.0.0/8" }, "b")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    // two racing creates of overlapping pools: exactly one wins
    const results = await Promise.allSettled([putPool(store, poolOf({ cidr: "10.5.0.0/16" }, "x")), putPool(store, poolOf({ cidr: "10.5.0.0/17" }, "y"))]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await store.list(POOL_PREFIX)).items).toHaveLength(3);
  });
});

describe("properties", () => {
  it("concurrent allocations from many nodes never hand out an address twice and keep IPAM consistent", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 8 }), fc.array(fc.tuple(fc.nat(7), fc.boolean()), { minLength: 10, maxLength: 80 }), fc.boolean(), async (nodes, ops, strict) => {
        const store = new MemoryDatastore();
        const pool = poolOf({ cidr: "10.0.0.0/24", blockSize: 28 });
        const config: IpamConfig = strict ? { strictAffinity: true, maxBlocksPerHost: 3, autoAllocateBlocks: true } : { ...LOOSE, maxBlocksPerHost: 2 };
        const agents = Array.from({ length: nodes }, (_, i) => ipam(store, `n${i}`, [pool], config));
        const live = new Map<string, string>();
        let n = 0;
        const tasks = ops.map(async ([who, release], i) => {
          const agent = agents[who % nodes]!;
          const handle = `h${i}`;
          try {
            const got = await agent.allocate(handle);
            live.set(handle, got.address);
            n++;
            if (release && n % 3 === 0) {
              await agent.release(handle);
              live.delete(handle);
            }
          } catch (err) {
            if (!(err instanceof PoolExhaustedError)) throw err;
          }
        });
        await Promise.all(tasks);
        expect(new Set(live.values()).size).toBe(live.size);
        expect(await checkIpam(store, [pool])).toEqual([]);
        const snap = await readIpam(store);
        expect(new Set(snap.handles.keys())).toEqual(new Set(live.keys()));
      }),
      { numRuns: 60 },
    );
  });

  it("an agent killed after its k-th write leaks and duplicates nothing once GC has run (hundreds of kills)", async () => {
    let kills = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 1, max: 20 }), fc.nat(1000), async (killAt, pods, seed) => {
        const store = new MemoryDatastore();
        const pool = poolOf({ cidr: "10.0.0.0/24", blockSize: 27 });
        const victimStore = killableStore(store, killAt);
        const victim = ipam(victimStore, "victim", [pool], LOOSE);
        const other = ipam(store, "other", [pool], LOOSE);
        const acknowledged = new Map<string, string>();
        const run = async (agent: BlockIpam, prefix: string, k: number) => {
          for (let i = 0; i < k; i++) {
            const h = `${prefix}${i}`;
            try {
              const a = await agent.allocate(h);
              acknowledged.set(h, a.address);
              if ((i + seed) % 4 === 0) {
                await agent.release(h);
                acknowledged.delete(h);
              }
            } catch (err) {
              if (victimStore.killed && agent === victim) return; // the process is gone
              throw err;
            }
          }
        };
        await Promise.all([run(victim, "v", pods), run(other, "o", pods)]);
        if (victimStore.killed) kills++;
        expect(await checkIpam(store, [pool])).toEqual([]);
        // GC: only the acknowledged pods of the other node exist; the victim node is gone.
        const liveHandles = new Set([...acknowledged.keys()].filter((h) => h.startsWith("o")));
        await gcIpam({ store, liveNodes: new Set(["other"]), liveHandles });
        expect(await checkIpam(store, [pool])).toEqual([]);
        const snap = await readIpam(store);
        expect(new Set(snap.handles.keys())).toEqual(liveHandles);
        expect(new Set([...snap.handles.values()].map((h) => h.record.address)).size).toBe(liveHandles.size);
        expect(snap.affinities.has("victim")).toBe(false);
        // Every address the GC freed can be allocated again.
        // Every address of the pool but its network and broadcast address.
        const total = Number(Prefix.parse(pool.cidr).size) - 2;
        const fresh = ipam(store, "fresh", [pool], LOOSE);
        let extra = 0;
        for (;;) {
          try {
            await fresh.allocate(`f${extra}`);
            extra++;
          } catch (err) {
            expect(err).toBeInstanceOf(PoolExhaustedError);
            break;
          }
        }
        expect(extra + liveHandles.size).toBe(total);
      }),
      { numRuns: 200 },
    );
    expect(kills).toBeGreaterThan(100);
  });
});

describe("gc", () => {
  it("releases addresses of pods that no longer exist and returns empty blocks, keeping one per live node", async () => {
    const store = new MemoryDatastore();
    const pool = poolOf({ cidr: "10.0.0.0/24", blockSize: 30 });
    const a = ipam(store, "a", [pool]);
    for (let i = 0; i < 9; i++) await a.allocate(`h${i}`);
    expect(await a.affineBlocks()).toHaveLength(3);
    const report = await gcIpam({ store, liveNodes: new Set(["a"]), liveHandles: new Set(["h0"]) });
    expect(report.releasedHandles).toHaveLength(8);
    expect(report.releasedBlocks).toHaveLength(2);
    expect(await a.affineBlocks()).toHaveLength(1);
    expect(await checkIpam(store, [pool])).toEqual([]);
    // idempotent
    expect(await gcIpam({ store, liveNodes: new Set(["a"]), liveHandles: new Set(["h0"]) })).toEqual({ releasedHandles: [], releasedBlocks: [] });
  });

  it("checkIpam reports hand-made corruption", async () => {
    const store = new MemoryDatastore();
    const a = ipam(store, "a", [poolOf({ cidr: "10.0.0.0/24" })]);
    await a.allocate("h1");
    await store.delete("/calico/ipam/v2/handle/h1");
    const problems = await checkIpam(store);
    expect(problems.map((p) => p.problem).join("\n")).toMatch(/handle h1, which does not exist/);
    await gcIpam({ store, liveNodes: new Set(["a"]), liveHandles: new Set() });
    expect(await checkIpam(store)).toEqual([]);
  });
});
