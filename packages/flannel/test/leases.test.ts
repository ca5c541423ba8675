import { seededRandom } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MemoryDatastore, PoolExhaustedError, Prefix, TryAgainError, VirtualClock, silentLogger } from "@cnikit/core";
import type { Datastore, KeyValue } from "@cnikit/core";
import { parseFlannelConfig } from "../src/config.ts";
import {
  LEASE_TTL_SECONDS,
  SUBNET_PREFIX,
  decodeLease,
  encodeAttrs,
  firstFreeSubnets,
  flannelLeaseKeeper,
  leaseOfClaim,
  parseSubnetKey,
  pickSubnet,
  readLease,
  subnetKey,
  takenRanges,
} from "../src/leases.ts";
import type { FlannelConfig } from "../src/config.ts";
import type { AcquiredLease, LeaseAttrs, LeaseSubnets } from "../src/leases.ts";
import { drive, hookedStore } from "./helpers.ts";

interface AcquireOptions {
  store: Datastore;
  config: FlannelConfig;
  attrs: LeaseAttrs & { NodeName: string };
  clock: VirtualClock;
  random: () => number;
  /** Subnets remembered in node-local state (flannel's subnet.env). */
  previous?: LeaseSubnets;
  maxAttempts?: number;
}

/** One node's acquisition through flannel's keeper (a fresh node-local store), read as flannel's lease. */
async function acquireLease(o: AcquireOptions): Promise<AcquiredLease> {
  const local = new MemoryDatastore({ clock: o.clock });
  if (o.previous) await local.put("/flannel/lease", JSON.stringify({ key: subnetKey(o.previous) }));
  const keeper = flannelLeaseKeeper({ ...o, local, localKey: "/flannel/lease", log: silentLogger });
  try {
    return leaseOfClaim(await keeper.acquire());
  } finally {
    keeper.stop();
  }
}

const CONFIG = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } });

function attrs(name: string, ip: string): LeaseAttrs & { NodeName: string } {
  return { PublicIP: ip, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" }, NodeName: name };
}

function setup(config: FlannelConfig = CONFIG) {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  const acquire = (name: string, ip: string, extra: Partial<AcquireOptions> = {}) =>
    drive(clock, acquireLease({ store, config, attrs: attrs(name, ip), clock, random: seededRandom(name.length * 7919 + ip.length), ...extra }));
  return { clock, store, acquire };
}

describe("lease keys and values (flannel's etcd layout)", () => {
  const keys: { subnets: { subnet?: string; ipv6Subnet?: string }; key: string }[] = [
    { subnets: { subnet: "10.244.3.0/24" }, key: "/coreos.com/network/subnets/10.244.3.0-24" },
    { subnets: { subnet: "10.5.52.0/24", ipv6Subnet: "fc00::/64" }, key: "/coreos.com/network/subnets/10.5.52.0-24&fc00::-64" },
    { subnets: { ipv6Subnet: "fd00:0:0:3::/64" }, key: "/coreos.com/network/subnets/0.0.0.0-0&fd00:0:0:3::-64" },
  ];
  it.each(keys)("$key", ({ subnets, key }) => {
    expect(subnetKey(subnets)).toBe(key);
    expect(parseSubnetKey(key)).toEqual(subnets);
  });

  it.each(["/coreos.com/network/config", "/coreos.com/network/subnets/10.244.3.0", "/coreos.com/network/subnets/10.244.3.1-24", "/coreos.com/network/subnets/fd00::-64", "/other/10.0.0.0-8"])(
    "not a subnet key: %s",
    (key) => {
      expect(parseSubnetKey(key)).toBeUndefined();
    },
  );

  it("reads a value written by flannel itself (no NodeName) and ignores unknown attributes", () => {
    const value = '{"PublicIP":"198.51.100.5","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"AA:BB:CC:DD:EE:01"},"Extra":true}';
    const lease = decodeLease({ key: `${SUBNET_PREFIX}10.244.3.0-24`, value, createRevision: 3, modRevision: 4, version: 2 });
    expect(lease).toEqual({
      key: `${SUBNET_PREFIX}10.244.3.0-24`,
      subnet: "10.244.3.0/24",
      attrs: { PublicIP: "198.51.100.5", BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:01" } },
      createRevision: 3,
      modRevision: 4,
    });
    expect(decodeLease({ key: `${SUBNET_PREFIX}10.244.3.0-24`, value: "not json", createRevision: 1, modRevision: 1, version: 1 })).toBeUndefined();
  });

  it("encodes the attributes in flannel's field names", () => {
    expect(JSON.parse(encodeAttrs(attrs("n1", "198.51.100.5")))).toEqual({
      PublicIP: "198.51.100.5",
      BackendType: "vxlan",
      BackendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" },
      NodeName: "n1",
    });
  });
});

describe("readLease: one decode per stored version for the whole process", () => {
  const key = "/coreos.com/network/subnets/10.244.77.0-24";
  const value = encodeAttrs({ PublicIP: "198.51.100.77", BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "02:00:00:00:00:77" }, NodeName: "n77" });
  const kv: KeyValue = { key, value, createRevision: 7, modRevision: 7, version: 1, lease: "l7" };

  it("gives decodeLease's lease, frozen, and the same object for the same version (record or copy)", () => {
    const first = readLease(kv);
    expect(first).toEqual(decodeLease(kv));
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first!.attrs)).toBe(true);
    expect(readLease(kv)).toBe(first);
    expect(readLease({ ...kv })).toBe(first);
  });

  it("decodes again when the value, a revision or the store lease differs", () => {
    const first = readLease(kv)!;
    const moved = readLease({ ...kv, modRevision: 8 })!;
    expect(moved).not.toBe(first);
    expect(moved.modRevision).toBe(8);
    const renamed = readLease({ ...kv, modRevision: 8, value: value.replace("n77", "n78") })!;
    expect(renamed.attrs.NodeName).toBe("n78");
    expect(readLease({ ...kv, modRevision: 8, value: value.replace("n77", "n78"), lease: "l9" })!.storeLease).toBe("l9");
    expect(readLease({ ...kv, value: "not json" })).toBeUndefined();
  });
});

describe("free subnet search", () => {
  it("first 100 free subnets from SubnetMin upward, skipping taken ones (property)", () => {
    const range = CONFIG.ipv4!;
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 200 }), (thirds) => {
        const keys = thirds.map((t) => subnetKey({ subnet: `10.244.${t}.0/24` }));
        const taken = takenRanges(keys, 4);
        const free = firstFreeSubnets(range, taken);
        const takenSet = new Set(thirds);
        const expected = Array.from({ length: 255 }, (_, i) => i + 1)
          .filter((t) => !takenSet.has(t))
          .slice(0, 100);
        expect(free.map((p) => Number(p.network.split(".")[2]))).toEqual(expected);
      }),
    );
  });

  it("a taken prefix of another length (old config) blocks every subnet it overlaps", () => {
    const taken = takenRanges([subnetKey({ subnet: "10.244.0.0/22" })], 4);
    expect(firstFreeSubnets(CONFIG.ipv4!, taken, 2).map(String)).toEqual(["10.244.4.0/24", "10.244.5.0/24"]);
  });

  it("picks uniformly among the free candidates with the given randomness", () => {
    const range = CONFIG.ipv4!;
    expect(pickSubnet(range, [], () => 0)?.toString()).toBe("10.244.1.0/24");
    expect(pickSubnet(range, [], () => 0.999999)?.toString()).toBe("10.244.100.0/24");
    const small = parseFlannelConfig({ Network: "10.9.0.0/28" }).ipv4!;
    expect(
      pickSubnet(
        small,
        takenRanges(
          ["10.9.0.4-30", "10.9.0.8-30", "10.9.0.12-30"].map((k) => `${SUBNET_PREFIX}${k}`),
          4,
        ),
        Math.random,
      ),
    ).toBeUndefined();
  });
});

describe("flannelLeaseKeeper: the kit's keeper with flannel's leases", () => {
  it("creates the key by CAS with a 24 h store lease, inside [SubnetMin, SubnetMax]", async () => {
    const { store, acquire } = setup();
    const got = await acquire("n1", "198.51.100.10");
    expect(got.source).toBe("new");
    expect(got.key).toBe(subnetKey({ subnet: got.subnet! }));
    const p = Prefix.parse(got.subnet!);
    expect(p.length).toBe(24);
    expect(p.network).not.toBe("10.244.0.0");
    const kv = await store.get(got.key);
    expect(kv?.version).toBe(1);
    expect(kv?.lease).toBe(got.storeLease);
    expect((await store.leaseInfo(got.storeLease!))?.ttlSeconds).toBe(LEASE_TTL_SECONDS);
    expect(JSON.parse(kv!.value).NodeName).toBe("n1");
  });

  it("the node's own lease is reused after a restart: same key, same store lease kept alive", async () => {
    const { store, clock, acquire } = setup();
    const first = await acquire("n1", "198.51.100.10");
    await clock.advance(3_600_000);
    const again = await acquire("n1", "198.51.100.10");
    expect(again).toMatchObject({ key: first.key, storeLease: first.storeLease, source: "own" });
    expect((await store.leaseInfo(first.storeLease!))?.remainingSeconds).toBe(LEASE_TTL_SECONDS);
    expect((await store.list(SUBNET_PREFIX)).items).toHaveLength(1);
  });

  it("weakness: identity = public IP (an address change keeps the subnet; the lease names the node)", async () => {
    const { store, acquire } = setup();
    const first = await acquire("n1", "198.51.100.10");
    const moved = await acquire("n1", "203.0.113.77");
    expect(moved.key).toBe(first.key);
    expect(JSON.parse((await store.get(first.key))!.value).PublicIP).toBe("203.0.113.77");
    // and another node that now has n1's old address does not get n1's subnet
    const other = await acquire("n2", "198.51.100.10");
    expect(other.key).not.toBe(first.key);
  });

  it("a lease written by flannel (no NodeName) is matched by PublicIP; a reservation stays without TTL", async () => {
    const { store, acquire } = setup();
    const key = subnetKey({ subnet: "10.244.42.0/24" });
    await store.put(key, '{"PublicIP":"198.51.100.10","BackendType":"vxlan"}');
    const got = await acquire("n1", "198.51.100.10");
    expect(got).toMatchObject({ key, source: "reservation" });
    expect(got.storeLease).toBeUndefined();
    const kv = await store.get(key);
    expect(kv?.lease).toBeUndefined();
    expect(JSON.parse(kv!.value).NodeName).toBe("n1");
    expect((await store.list(SUBNET_PREFIX)).items).toHaveLength(1);
  });

  it("an own lease that no longer fits the config is deleted and a fitting one leased", async () => {
    const { store, acquire } = setup(parseFlannelConfig({ Network: "10.244.0.0/16", SubnetLen: 25 }));
    const old = subnetKey({ subnet: "10.244.9.0/24" });
    const lease = await store.grantLease(LEASE_TTL_SECONDS);
    await store.put(old, encodeAttrs(attrs("n1", "198.51.100.10")), { lease });
    const got = await acquire("n1", "198.51.100.10");
    expect(got.subnet?.endsWith("/25")).toBe(true);
    expect(await store.get(old)).toBeUndefined();
  });

  it("the previous subnet (node-local state, flannel's subnet.env) is taken again when free", async () => {
    const { acquire } = setup();
    const got = await acquire("n1", "198.51.100.10", { previous: { subnet: "10.244.77.0/24" } });
    expect(got).toMatchObject({ subnet: "10.244.77.0/24", source: "previous" });
    const outside = await acquire("n2", "198.51.100.11", { previous: { subnet: "10.99.0.0/24" } });
    expect(outside.source).toBe("new");
  });

  it("out of subnets: PoolExhaustedError when every subnet is leased, and nothing left behind", async () => {
    const { store, acquire } = setup(parseFlannelConfig({ Network: "10.9.0.0/28" }));
    const got = await Promise.all(["n1", "n2", "n3"].map((n, i) => acquire(n, `198.51.100.${10 + i}`)));
    expect(new Set(got.map((g) => g.subnet)).size).toBe(3);
    const before = await store.revision();
    await expect(acquire("n4", "198.51.100.14")).rejects.toBeInstanceOf(PoolExhaustedError);
    await expect(acquire("n4", "198.51.100.14")).rejects.toThrow(/out of subnets/);
    expect((await store.list(SUBNET_PREFIX)).items).toHaveLength(3);
    // the lease granted for the attempt was revoked: at most grant + revoke happened, no key written
    expect(await store.revision()).toBeGreaterThanOrEqual(before);
  });

  it("weakness: lost CAS exits the daemon — a lost race is retried after a jittered back-off", async () => {
    const clock = new VirtualClock();
    const inner = new MemoryDatastore({ clock });
    let stolen = 0;
    const store = hookedStore(inner, {
      async beforePut(key, _value, options) {
        if (options?.ifRevision === 0 && stolen < 3) {
          stolen++;
          await inner.put(key, encodeAttrs(attrs(`thief${stolen}`, `198.51.100.${200 + stolen}`)));
        }
      },
    });
    const started = clock.now();
    const got = await drive(clock, acquireLease({ store, config: CONFIG, attrs: attrs("n1", "198.51.100.10"), clock, random: seededRandom(3) }));
    expect(got.conflicts).toBe(3);
    expect(got.attempts).toBe(4);
    expect(clock.now() - started).toBeGreaterThan(0); // it waited on the clock between attempts
    const items = (await inner.list(SUBNET_PREFIX)).items;
    expect(items).toHaveLength(4);
    expect(new Set(items.map((kv) => kv.key)).size).toBe(4);
  });

  it("the first lost races are re-picked at once, without waiting on the clock", async () => {
    const clock = new VirtualClock();
    const inner = new MemoryDatastore({ clock });
    let stolen = 0;
    const store = hookedStore(inner, {
      async beforePut(key, _value, options) {
        if (options?.ifRevision === 0 && stolen < 2) {
          stolen++;
          await inner.put(key, encodeAttrs(attrs(`thief${stolen}`, `198.51.100.${200 + stolen}`)));
        }
      },
    });
    // Nobody advances the clock: this resolves only if no sleep was needed.
    const got = await acquireLease({ store, config: CONFIG, attrs: attrs("n1", "198.51.100.10"), clock, random: seededRandom(3) });
    expect(got).toMatchObject({ conflicts: 2, attempts: 3 });
    expect(clock.now()).toBe(0);
  });

  it("bounded: TryAgainError (code 11) after maxAttempts lost races, and the granted store lease is revoked", async () => {
    const clock = new VirtualClock();
    const inner = new MemoryDatastore({ clock });
    let n = 0;
    const store = hookedStore(inner, {
      async beforePut(key, _v, options) {
        if (options?.ifRevision === 0) await inner.put(key, encodeAttrs(attrs(`thief${++n}`, "192.0.2.9")));
      },
    });
    const p = acquireLease({ store, config: CONFIG, attrs: attrs("n1", "198.51.100.10"), clock, random: seededRandom(4), maxAttempts: 5 });
    const err = await drive(clock, p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TryAgainError);
    expect((err as TryAgainError).code).toBe(11);
    expect((err as Error).message).toMatch(/after 5 attempts \(5 lost races\)/);
    const leased = (await inner.list(SUBNET_PREFIX)).items.filter((kv) => kv.lease !== undefined);
    expect(leased).toHaveLength(0);
  });

  it("transient store errors are retried too", async () => {
    const clock = new VirtualClock();
    const inner = new MemoryDatastore({ clock });
    inner.setAvailable(false);
    clock.setTimeout(() => inner.setAvailable(true), 1_000);
    const got = await drive(clock, acquireLease({ store: inner, config: CONFIG, attrs: attrs("n1", "198.51.100.10"), clock, random: seededRandom(5) }));
    expect(got.attempts).toBeGreaterThan(1);
    expect(got.conflicts).toBe(0);
  });

  it("many nodes at once never share a subnet (property over seeds and sizes)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 60 }), fc.integer(), async (n, seed) => {
        const clock = new VirtualClock();
        const store: Datastore = new MemoryDatastore({ clock });
        const all = Promise.all(Array.from({ length: n }, (_, i) => acquireLease({ store, config: CONFIG, attrs: attrs(`n${i}`, `198.51.100.${i + 2}`), clock, random: seededRandom(seed + i) })));
        const got = await drive(clock, all);
        expect(new Set(got.map((g) => g.subnet)).size).toBe(n);
        expect((await store.list(SUBNET_PREFIX)).items).toHaveLength(n);
      }),
      { numRuns: 15 },
    );
  });

  it("dual stack: one key per node with both halves; no half is shared under contention", async () => {
    // Every node draws the same IPv4 pick and its own IPv6 pick: the keys differ, so only the
    // after-write check keeps two nodes off one IPv4 subnet.
    const sameV4DifferentV6 = (i: number) => {
      const own = seededRandom(i + 1);
      let calls = 0;
      return () => (calls++ % 2 === 0 ? 0 : own());
    };
    const config = parseFlannelConfig({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56" });
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const got = await drive(
      clock,
      Promise.all(Array.from({ length: 40 }, (_, i) => acquireLease({ store, config, attrs: attrs(`n${i}`, `198.51.100.${i + 2}`), clock, random: sameV4DifferentV6(i) }))),
    );
    expect(new Set(got.map((g) => g.subnet)).size).toBe(40);
    expect(new Set(got.map((g) => g.ipv6Subnet)).size).toBe(40);
    for (const g of got) expect(g.key).toBe(subnetKey({ subnet: g.subnet!, ipv6Subnet: g.ipv6Subnet! }));
    expect((await store.list(SUBNET_PREFIX)).items).toHaveLength(40);
  });
});
