import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AddressInUseError, AddressPool, ConfigError, PoolExhaustedError, Prefix, formatAddress, parseAddress } from "../src/index.ts";
import type { AddressPoolOptions, AddressPoolSnapshot } from "../src/index.ts";

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error, nothing was thrown");
}

function configError(fn: () => unknown): ConfigError {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

/** Allocates until exhausted; returns the addresses in the order handed out. */
function drain(pool: AddressPool, owner = "o"): string[] {
  const out: string[] = [];
  for (;;) {
    try {
      out.push(pool.allocate(owner));
    } catch (err) {
      if (err instanceof PoolExhaustedError) return out;
      throw err;
    }
  }
}

describe("AddressPool defaults (host-local)", () => {
  const table: [AddressPoolOptions, string, string, string | null, bigint, "bitmap" | "sparse"][] = [
    // options, rangeStart, rangeEnd, gateway, capacity, storage
    [{ range: "10.0.0.0/24" }, "10.0.0.1", "10.0.0.254", "10.0.0.1", 253n, "bitmap"],
    [{ range: Prefix.parse("10.0.0.0/24") }, "10.0.0.1", "10.0.0.254", "10.0.0.1", 253n, "bitmap"],
    [{ range: "10.0.0.0/24", gateway: null }, "10.0.0.1", "10.0.0.254", null, 254n, "bitmap"],
    [{ range: "10.0.0.0/24", gateway: "10.0.0.254" }, "10.0.0.1", "10.0.0.254", "10.0.0.254", 253n, "bitmap"],
    [{ range: "10.0.0.0/30" }, "10.0.0.1", "10.0.0.2", "10.0.0.1", 1n, "bitmap"],
    [{ range: "10.0.0.0/29" }, "10.0.0.1", "10.0.0.6", "10.0.0.1", 5n, "bitmap"],
    [{ range: "10.0.0.0/8" }, "10.0.0.1", "10.255.255.254", "10.0.0.1", (1n << 24n) - 3n, "bitmap"],
    [{ range: "10.0.0.0/7" }, "10.0.0.1", "11.255.255.254", "10.0.0.1", (1n << 25n) - 3n, "sparse"],
    [{ range: "fd00::/126" }, "fd00::1", "fd00::3", "fd00::1", 2n, "bitmap"],
    [{ range: "fd00::/64" }, "fd00::1", "fd00::ffff:ffff:ffff:ffff", "fd00::1", (1n << 64n) - 2n, "sparse"],
    [{ range: "10.1.0.0/16", rangeStart: "10.1.1.0", rangeEnd: "10.1.1.255", gateway: "10.1.0.1" }, "10.1.1.0", "10.1.1.255", "10.1.0.1", 256n, "bitmap"],
    [{ range: "10.1.0.0/16", rangeStart: "10.1.1.0", rangeEnd: "10.1.1.255", reserved: ["10.1.1.5", "10.1.1.5", "10.1.2.1"] }, "10.1.1.0", "10.1.1.255", "10.1.0.1", 255n, "bitmap"],
  ];
  it.each(table)("%j -> %s-%s gw %s, capacity %s, %s", (options, start, end, gw, capacity, storage) => {
    const pool = new AddressPool(options);
    expect(pool.rangeStart).toBe(start);
    expect(pool.rangeEnd).toBe(end);
    expect(pool.gateway).toBe(gw);
    expect(pool.capacity).toBe(capacity);
    expect(pool.free).toBe(capacity);
    expect(pool.used).toBe(0);
    expect(pool.storage).toBe(storage);
    expect(pool.lastReserved).toBeNull();
  });

  it("canonicalises and deduplicates reserved addresses", () => {
    const pool = new AddressPool({ range: "fd00::/120", reserved: ["FD00::0:9", "fd00::5", "fd00::9"] });
    expect(pool.reserved).toEqual(["fd00::5", "fd00::9"]);
    expect(pool.capacity).toBe(255n - 1n - 2n);
  });
});

describe("AddressPool option validation", () => {
  const table: [string, AddressPoolOptions, string, RegExp][] = [
    ["range host bits", { range: "10.0.0.1/24" }, "range", /did you mean 10\.0\.0\.0\/24/],
    ["range garbage", { range: "ten/8" }, "range", /address part/],
    ["range not a CIDR", { range: "10.0.0.0" }, "range", /CIDR notation/],
    ["IPv4 /31", { range: "10.0.0.0/31" }, "range", /^Network 10\.0\.0\.0\/31 too small to allocate from/],
    ["IPv4 /32", { range: "10.0.0.1/32" }, "range", /^Network 10\.0\.0\.1\/32 too small to allocate from/],
    ["IPv6 /127", { range: "fd00::/127" }, "range", /^Network fd00::\/127 too small to allocate from/],
    ["IPv6 /128", { range: "fd00::1/128" }, "range", /too small to allocate from/],
    ["rangeStart outside", { range: "10.0.0.0/24", rangeStart: "10.0.1.1" }, "rangeStart", /must lie inside range 10\.0\.0\.0\/24/],
    ["rangeStart network", { range: "10.0.0.0/24", rangeStart: "10.0.0.0" }, "rangeStart", /network address 10\.0\.0\.0/],
    ["rangeStart broadcast", { range: "10.0.0.0/24", rangeStart: "10.0.0.255" }, "rangeStart", /broadcast address 10\.0\.0\.255/],
    ["rangeStart other family", { range: "10.0.0.0/24", rangeStart: "::a00:5" }, "rangeStart", /must be an IPv4 address/],
    ["rangeStart garbage", { range: "10.0.0.0/24", rangeStart: "10.0.0.x" }, "rangeStart", /valid IPv4/],
    ["rangeEnd outside", { range: "10.0.0.0/24", rangeEnd: "10.0.1.0" }, "rangeEnd", /must lie inside range/],
    ["rangeEnd broadcast", { range: "10.0.0.0/24", rangeEnd: "10.0.0.255" }, "rangeEnd", /broadcast address/],
    ["rangeEnd network v6", { range: "fd00::/120", rangeStart: "fd00::1", rangeEnd: "fd00::" }, "rangeEnd", /network address fd00::/],
    ["rangeEnd before rangeStart", { range: "10.0.0.0/24", rangeStart: "10.0.0.100", rangeEnd: "10.0.0.50" }, "rangeEnd", /must not be before rangeStart 10\.0\.0\.100/],
    ["rangeEnd before default start", { range: "fd00::/120", rangeEnd: "fd00::" }, "rangeEnd", /network address/],
    ["gateway outside", { range: "10.0.0.0/24", gateway: "10.0.1.1" }, "gateway", /must lie inside range/],
    ["gateway network", { range: "10.0.0.0/24", gateway: "10.0.0.0" }, "gateway", /network address/],
    ["gateway other family", { range: "fd00::/64", gateway: "10.0.0.1" }, "gateway", /must be an IPv6 address/],
    ["reserved outside", { range: "10.0.0.0/24", reserved: ["10.0.0.7", "10.0.9.7"] }, "reserved[1]", /must lie inside range/],
    ["reserved garbage", { range: "10.0.0.0/24", reserved: [""] }, "reserved[0]", /must not be empty/],
    ["reserved not a list", { range: "10.0.0.0/24", reserved: "10.0.0.7" as unknown as string[] }, "reserved", /must be a list/],
  ];
  it.each(table)("%s", (_name, options, field, rule) => {
    const err = configError(() => new AddressPool({ ...options, component: "host-local", name: "range set 0" }));
    expect(err.field).toBe(field);
    expect(err.rule).toMatch(rule);
    expect(err.message.startsWith(`[host-local] ${field}: `)).toBe(true);
    expect(err.code).toBe(7);
  });

  it("the pool's name appears in the rule", () => {
    const err = configError(() => new AddressPool({ range: "10.0.0.0/31", name: "range set 2" }));
    expect(err.message).toBe('range: Network 10.0.0.0/31 too small to allocate from (range set 2) (got "10.0.0.0/31")');
  });

  it("refuses a missing options object", () => {
    expect(configError(() => new AddressPool(undefined as unknown as AddressPoolOptions)).field).toBe("options");
  });
});

describe("AddressPool.allocate round-robin", () => {
  it("fresh /24: .2 first (gateway .1); ADD .2, DEL, ADD -> .3", () => {
    const pool = new AddressPool({ range: "10.0.0.0/24" });
    const first = pool.allocate("c1");
    expect(first).toBe("10.0.0.2");
    expect(pool.lastReserved).toBe("10.0.0.2");
    expect(pool.release(first)).toBe(true);
    expect(pool.lastReserved).toBe("10.0.0.2"); // DEL never resets it
    expect(pool.allocate("c2")).toBe("10.0.0.3");
  });

  it("hands out in order, skipping used and reserved addresses", () => {
    const pool = new AddressPool({ range: "10.0.0.0/28", reserved: ["10.0.0.4", "10.0.0.5"] });
    pool.allocateSpecific("10.0.0.7", "x");
    expect(pool.lastReserved).toBe("10.0.0.7");
    // Continues after the last reserved address (the requested one), wraps, skips .1 (gateway), .4, .5, .7.
    expect(drain(pool)).toEqual(["10.0.0.8", "10.0.0.9", "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14", "10.0.0.2", "10.0.0.3", "10.0.0.6"]);
  });

  it("wraps around and tries the last reserved address last", () => {
    const pool = new AddressPool({ range: "10.0.0.0/29" }); // .2 .. .6
    expect(drain(pool)).toEqual(["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
    pool.release("10.0.0.6");
    pool.release("10.0.0.3");
    // Cursor at .6: next try .2 (taken), .3 free.
    expect(pool.allocate("o")).toBe("10.0.0.3");
    // Cursor at .3: .4 .5 taken, .6 free.
    expect(pool.allocate("o")).toBe("10.0.0.6");
    pool.release("10.0.0.6");
    // Only .6 is free and it is the last reserved one: found last, after a full wrap.
    expect(pool.allocate("o")).toBe("10.0.0.6");
  });

  it("a freed address is not handed out again at once", () => {
    const pool = new AddressPool({ range: "10.0.0.0/24" });
    const a = pool.allocate("a");
    const b = pool.allocate("b");
    pool.release(a);
    pool.release(b);
    const next = pool.allocate("c");
    expect([a, b]).not.toContain(next);
    expect(next).toBe("10.0.0.4");
  });

  it("IPv6 starts at ::2 with the default gateway and uses the last address", () => {
    const pool = new AddressPool({ range: "fd00::/126" });
    expect(drain(pool)).toEqual(["fd00::2", "fd00::3"]);
  });

  it("a stale lastReserved outside [rangeStart, rangeEnd] restarts at rangeStart", () => {
    const options = { range: "10.0.0.0/24", rangeStart: "10.0.0.100", rangeEnd: "10.0.0.110" };
    const pool = AddressPool.restore(options, { range: "10.0.0.0/24", lastReserved: "10.0.0.200", allocations: [] });
    expect(pool.lastReserved).toBe("10.0.0.200");
    expect(pool.allocate("a")).toBe("10.0.0.100");
  });

  it("round-robin crosses many full 32-address words and the word summary", () => {
    // /18: 16381 usable addresses (.1 is the gateway), 512 words, 16 summary words.
    const pool = new AddressPool({ range: "10.0.0.0/18" });
    const all = drain(pool);
    expect(all).toHaveLength(16381);
    expect(all.at(-1)).toBe("10.0.63.254");
    expect(new Set(all).size).toBe(all.length);
    // Holes far apart, in different words and summary groups; the cursor is at the end.
    const holes = ["10.0.0.33", "10.0.4.0", "10.0.4.1", "10.0.31.255", "10.0.63.253"];
    for (const h of [...holes].reverse()) expect(pool.release(h)).toBe(true);
    expect(drain(pool)).toEqual(holes);
    expect(pool.free).toBe(0n);
  });

  it("a range that does not end on a word boundary never hands out the padding", () => {
    const pool = new AddressPool({ range: "10.0.0.0/24", rangeStart: "10.0.0.30", rangeEnd: "10.0.0.66", gateway: null });
    const all = drain(pool);
    expect(all).toHaveLength(37);
    expect(all[0]).toBe("10.0.0.30");
    expect(all.at(-1)).toBe("10.0.0.66");
  });

  it("a sparse /64 pool hands out in order and wraps at the end", () => {
    const pool = new AddressPool({ range: "fd00::/64" });
    expect(pool.storage).toBe("sparse");
    expect([pool.allocate("a"), pool.allocate("b"), pool.allocate("c")]).toEqual(["fd00::2", "fd00::3", "fd00::4"]);
    pool.allocateSpecific("fd00::ffff:ffff:ffff:fffe", "d");
    expect(pool.allocate("e")).toBe("fd00::ffff:ffff:ffff:ffff");
    // Wraps: ::1 is the gateway, ::2-::4 are taken.
    expect(pool.allocate("f")).toBe("fd00::5");
    expect(pool.used).toBe(6);
    expect(pool.free).toBe((1n << 64n) - 2n - 6n);
  });

  it("refuses an empty owner", () => {
    const pool = new AddressPool({ range: "10.0.0.0/24" });
    expect(configError(() => pool.allocate("")).field).toBe("owner");
    expect(configError(() => pool.allocateSpecific("10.0.0.9", "")).field).toBe("owner");
    expect(configError(() => pool.releaseOwner(7 as unknown as string)).field).toBe("owner");
    expect(pool.used).toBe(0);
    expect(pool.lastReserved).toBeNull();
  });
});

describe("AddressPool exhaustion leaves state unchanged", () => {
  const table: [AddressPoolOptions, number, string][] = [
    [{ range: "10.0.0.0/30" }, 1, "10.0.0.1-10.0.0.2"],
    [{ range: "10.0.0.0/29" }, 5, "10.0.0.1-10.0.0.6"],
    [{ range: "fd00::/126" }, 2, "fd00::1-fd00::3"],
    [{ range: "10.0.0.0/24", rangeStart: "10.0.0.10", rangeEnd: "10.0.0.10", gateway: null }, 1, "10.0.0.10-10.0.0.10"],
    [{ range: "10.0.0.0/24", rangeStart: "10.0.0.1", rangeEnd: "10.0.0.1" }, 0, "10.0.0.1-10.0.0.1"],
  ];
  it.each(table)("%j: %s addresses, then PoolExhaustedError", (options, n, set) => {
    const pool = new AddressPool({ ...options, component: "host-local", name: "range set 0" });
    expect(drain(pool)).toHaveLength(n);
    const before = JSON.stringify(pool.snapshot());
    const err = thrown(() => pool.allocate("late"));
    expect(err).toBeInstanceOf(PoolExhaustedError);
    const e = err as PoolExhaustedError;
    expect(e.code).toBe(100);
    expect(e.pool).toBe("range set 0");
    expect(e.message).toBe(`[host-local] failed to allocate for range set 0: no IP addresses available in range set: ${set}`);
    expect(JSON.stringify(pool.snapshot())).toBe(before);
    expect(pool.free).toBe(0n);
    expect(pool.used).toBe(n);
    expect(pool.addressesOf("late")).toEqual([]);
    // Freeing one makes exactly that one available again.
    if (n > 0) {
      const one = pool.snapshot().allocations[0]![0];
      pool.release(one);
      expect(pool.allocate("again")).toBe(one);
    }
  });

  it("without name or component the message is host-local's bare text", () => {
    const pool = new AddressPool({ range: "10.0.0.0/30" });
    pool.allocate("a");
    const err = thrown(() => pool.allocate("b")) as PoolExhaustedError;
    expect(err.message).toBe("no IP addresses available in range set: 10.0.0.1-10.0.0.2");
    expect(err.pool).toBe("10.0.0.0/30");
  });
});

describe("AddressPool.allocateSpecific", () => {
  const pool = (): AddressPool => new AddressPool({ range: "10.0.0.0/24", rangeEnd: "10.0.0.200", reserved: ["10.0.0.50"], component: "host-local" });

  it("hands out the requested address, canonical, and moves the cursor there", () => {
    const p = new AddressPool({ range: "fd00::/120" });
    expect(p.allocateSpecific("FD00::0:10", "a")).toBe("fd00::10");
    expect(p.ownerOf("fd00::10")).toBe("a");
    expect(p.lastReserved).toBe("fd00::10");
    expect(p.allocate("b")).toBe("fd00::11");
  });

  const inUse: [string, string, RegExp][] = [
    ["gateway", "10.0.0.1", /^\[host-local\] requested ip 10\.0\.0\.1 is subnet's gateway$/],
    ["reserved", "10.0.0.50", /requested ip 10\.0\.0\.50 is reserved/],
    ["taken", "10.0.0.7", /requested IP address 10\.0\.0\.7 is not available in range set 10\.0\.0\.1-10\.0\.0\.200/],
  ];
  it.each(inUse)("AddressInUseError for the %s", (_name, address, message) => {
    const p = pool();
    p.allocateSpecific("10.0.0.7", "holder");
    const before = JSON.stringify(p.snapshot());
    const err = thrown(() => p.allocateSpecific(address, "other"));
    expect(err).toBeInstanceOf(AddressInUseError);
    expect((err as AddressInUseError).address).toBe(address);
    expect((err as AddressInUseError).code).toBe(101);
    expect((err as Error).message).toMatch(message);
    expect(JSON.stringify(p.snapshot())).toBe(before);
  });

  it("taken by the same owner is still an error (not silently idempotent)", () => {
    const p = pool();
    p.allocateSpecific("10.0.0.7", "a");
    const err = thrown(() => p.allocateSpecific("10.0.0.7", "a")) as AddressInUseError;
    expect(err).toBeInstanceOf(AddressInUseError);
    expect(err.details).toBe("held by a");
  });

  const outside: [string, unknown, RegExp][] = [
    ["network", "10.0.0.0", /must lie in range set 10\.0\.0\.1-10\.0\.0\.200/],
    ["broadcast", "10.0.0.255", /must lie in range set/],
    ["past rangeEnd", "10.0.0.201", /must lie in range set/],
    ["outside the prefix", "10.0.1.5", /must lie in range set/],
    ["other family", "fd00::5", /must be an IPv4 address/],
    ["garbage", "10.0.0.300", /valid IPv4/],
    ["not a string", 5, /must be an IP address string/],
  ];
  it.each(outside)("ConfigError for %s", (_name, address, rule) => {
    const p = pool();
    const err = configError(() => p.allocateSpecific(address as string, "x"));
    expect(err.field).toBe("address");
    expect(err.rule).toMatch(rule);
    expect(p.used).toBe(0);
    expect(p.lastReserved).toBeNull();
  });

  it("the gateway is refused even when outside [rangeStart, rangeEnd]", () => {
    const p = new AddressPool({ range: "10.0.0.0/24", rangeStart: "10.0.0.100" });
    expect(thrown(() => p.allocateSpecific("10.0.0.1", "x"))).toBeInstanceOf(AddressInUseError);
  });
});

describe("AddressPool release, owners and queries", () => {
  it("release returns whether the address was held", () => {
    const pool = new AddressPool({ range: "10.0.0.0/24" });
    const a = pool.allocate("a");
    expect(pool.has(a)).toBe(true);
    expect(pool.release(a)).toBe(true);
    expect(pool.release(a)).toBe(false);
    expect(pool.has(a)).toBe(false);
    expect(pool.release("10.0.0.1")).toBe(false); // gateway
    expect(pool.release("10.0.0.0")).toBe(false); // network
    expect(pool.release("10.0.9.9")).toBe(false); // outside
    expect(pool.release("fd00::2")).toBe(false); // other family
    expect(configError(() => pool.release("nope")).field).toBe("address");
    expect(pool.used).toBe(0);
    expect(pool.free).toBe(pool.capacity);
  });

  it("releaseOwner frees everything an owner holds, in address order", () => {
    const pool = new AddressPool({ range: "10.0.0.0/24" });
    pool.allocateSpecific("10.0.0.20", "a");
    pool.allocate("b"); // .21
    pool.allocateSpecific("10.0.0.5", "a");
    pool.allocate("a"); // .6
    expect(pool.addressesOf("a")).toEqual(["10.0.0.5", "10.0.0.6", "10.0.0.20"]);
    expect(pool.releaseOwner("a")).toEqual(["10.0.0.5", "10.0.0.6", "10.0.0.20"]);
    expect(pool.releaseOwner("a")).toEqual([]);
    expect(pool.addressesOf("a")).toEqual([]);
    expect(pool.used).toBe(1);
    expect(pool.ownerOf("10.0.0.21")).toBe("b");
    expect(pool.ownerOf("10.0.0.20")).toBeUndefined();
    expect(pool.releaseOwner("nobody")).toEqual([]);
  });

  it("ownerOf and has accept any spelling", () => {
    const pool = new AddressPool({ range: "fd00::/64" });
    const a = pool.allocate("x");
    expect(a).toBe("fd00::2");
    expect(pool.ownerOf("FD00:0:0:0::2")).toBe("x");
    expect(pool.has("fd00:0::2")).toBe(true);
    expect(pool.has("10.0.0.2")).toBe(false);
  });
});

describe("AddressPool snapshot / restore", () => {
  const options: AddressPoolOptions = { range: "10.0.0.0/24", reserved: ["10.0.0.9"] };

  it("round-trips through JSON and continues round-robin", () => {
    const pool = new AddressPool(options);
    pool.allocate("a");
    pool.allocate("b");
    pool.allocateSpecific("10.0.0.7", "c");
    pool.release("10.0.0.3");
    const snap = pool.snapshot();
    expect(snap).toEqual({
      range: "10.0.0.0/24",
      lastReserved: "10.0.0.7",
      allocations: [
        ["10.0.0.2", "a"],
        ["10.0.0.7", "c"],
      ],
    });
    const copy = AddressPool.restore(options, JSON.parse(JSON.stringify(snap)));
    expect(copy.snapshot()).toEqual(snap);
    expect(copy.used).toBe(2);
    expect(copy.free).toBe(pool.free);
    expect(copy.allocate("d")).toBe("10.0.0.8");
    expect(copy.allocate("e")).toBe("10.0.0.10");
    expect(pool.allocate("d")).toBe("10.0.0.8");
  });

  it("restores a sparse pool", () => {
    const o = { range: "fd00::/64" };
    const pool = new AddressPool(o);
    pool.allocate("a");
    pool.allocateSpecific("fd00::1:0", "b");
    const copy = AddressPool.restore(o, pool.snapshot());
    expect(copy.storage).toBe("sparse");
    expect(copy.allocate("c")).toBe("fd00::1:1");
    expect(copy.ownerOf("fd00::2")).toBe("a");
  });

  const bad: [string, unknown, string, RegExp][] = [
    ["not an object", "x", "snapshot", /must be an object/],
    ["array", [], "snapshot", /must be an object/],
    ["other range", { range: "10.0.1.0/24", lastReserved: null, allocations: [] }, "snapshot.range", /must be the pool's range 10\.0\.0\.0\/24/],
    ["range garbage", { range: 5, lastReserved: null, allocations: [] }, "snapshot.range", /CIDR string/],
    ["lastReserved outside", { range: "10.0.0.0/24", lastReserved: "10.0.1.1", allocations: [] }, "snapshot.lastReserved", /must lie inside/],
    ["lastReserved garbage", { range: "10.0.0.0/24", lastReserved: 3, allocations: [] }, "snapshot.lastReserved", /IP address string/],
    ["allocations missing", { range: "10.0.0.0/24", lastReserved: null }, "snapshot.allocations", /list of \[address, owner\]/],
    ["entry not a pair", { range: "10.0.0.0/24", lastReserved: null, allocations: [["10.0.0.2"]] }, "snapshot.allocations[0]", /pair/],
    [
      "address outside",
      {
        range: "10.0.0.0/24",
        lastReserved: null,
        allocations: [
          ["10.0.0.2", "a"],
          ["10.0.1.2", "b"],
        ],
      },
      "snapshot.allocations[1][0]",
      /must lie in range set/,
    ],
    ["network address", { range: "10.0.0.0/24", lastReserved: null, allocations: [["10.0.0.0", "a"]] }, "snapshot.allocations[0][0]", /must lie in range set/],
    ["gateway", { range: "10.0.0.0/24", lastReserved: null, allocations: [["10.0.0.1", "a"]] }, "snapshot.allocations[0][0]", /gateway or a reserved/],
    ["reserved", { range: "10.0.0.0/24", lastReserved: null, allocations: [["10.0.0.9", "a"]] }, "snapshot.allocations[0][0]", /gateway or a reserved/],
    [
      "duplicate (other spelling)",
      {
        range: "10.0.0.0/24",
        lastReserved: null,
        allocations: [
          ["10.0.0.2", "a"],
          ["10.0.0.3", "b"],
          ["10.0.0.2", "c"],
        ],
      },
      "snapshot.allocations[2][0]",
      /duplicates snapshot\.allocations\[0\]/,
    ],
    ["empty owner", { range: "10.0.0.0/24", lastReserved: null, allocations: [["10.0.0.2", ""]] }, "snapshot.allocations[0][1]", /owner must be a non-empty string/],
  ];
  it.each(bad)("refuses %s", (_name, snapshot, field, rule) => {
    const err = configError(() => AddressPool.restore(options, snapshot));
    expect(err.field).toBe(field);
    expect(err.rule).toMatch(rule);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: the pool against a deliberately naive model of host-local's rules.

interface Config {
  options: AddressPoolOptions;
  /** Addresses (as numbers) the ops pick from: the whole prefix for small pools, windows otherwise. */
  candidates: bigint[];
}

type Op = { kind: "allocate"; owner: string } | { kind: "allocateSpecific"; pick: number; owner: string } | { kind: "release"; pick: number } | { kind: "releaseOwner"; owner: string };

/** Straight from the rules, one address at a time. */
class Model {
  readonly family: 4 | 6;
  readonly start: bigint;
  readonly end: bigint;
  readonly excluded = new Set<bigint>();
  readonly gateway: bigint | undefined;
  readonly alloc = new Map<bigint, string>();
  last: bigint | undefined;

  constructor(pool: AddressPool) {
    const s = parseAddress(pool.rangeStart);
    this.family = s.family;
    this.start = s.value;
    this.end = parseAddress(pool.rangeEnd).value;
    this.gateway = pool.gateway === null ? undefined : parseAddress(pool.gateway).value;
    if (this.gateway !== undefined) this.excluded.add(this.gateway);
    for (const r of pool.reserved) this.excluded.add(parseAddress(r).value);
  }

  allocate(owner: string): bigint | "exhausted" {
    const span = this.end - this.start + 1n;
    const first = this.last !== undefined && this.last >= this.start && this.last <= this.end ? this.last + 1n : this.start;
    for (let k = 0n; k < span; k++) {
      let c = first + k;
      if (c > this.end) c -= span;
      if (!this.excluded.has(c) && !this.alloc.has(c)) {
        this.alloc.set(c, owner);
        this.last = c;
        return c;
      }
    }
    return "exhausted";
  }

  allocateSpecific(v: bigint, owner: string): bigint | "in-use" | "config" {
    if (v === this.gateway) return "in-use";
    if (v < this.start || v > this.end) return "config";
    if (this.excluded.has(v) || this.alloc.has(v)) return "in-use";
    this.alloc.set(v, owner);
    this.last = v;
    return v;
  }
}

const smallConfig: fc.Arbitrary<Config> = fc
  .record({
    family: fc.constantFrom(4 as const, 6 as const),
    hostBits: fc.integer({ min: 2, max: 7 }),
    net: fc.nat(255),
    lo: fc.nat(),
    hi: fc.nat(),
    gateway: fc.oneof(fc.constant("default" as const), fc.constant(null), fc.nat()),
    reserved: fc.array(fc.nat(), { maxLength: 4 }),
  })
  .map(({ family, hostBits, net, lo, hi, gateway, reserved }) => {
    const bits = family === 4 ? 32 : 128;
    const base = family === 4 ? (10n << 24n) | (BigInt(net) << 8n) : (0xfd00n << 112n) | (BigInt(net) << 16n);
    const range = Prefix.of(family, base, bits - hostBits);
    const size = Number(range.size);
    const at = (n: number): string => formatAddress(range.base + BigInt(n), family);
    // Host addresses: 1 .. size-2 (v4) or 1 .. size-1 (v6).
    const hosts = family === 4 ? size - 2 : size - 1;
    let a = 1 + (lo % hosts);
    let b = 1 + (hi % hosts);
    if (a > b) [a, b] = [b, a];
    const options: AddressPoolOptions = { range: range.toString(), rangeStart: at(a), rangeEnd: at(b) };
    if (gateway === null) options.gateway = null;
    else if (gateway !== "default") options.gateway = at(1 + (gateway % hosts));
    options.reserved = reserved.map((r) => at(r % size));
    const candidates = Array.from({ length: size }, (_, i) => range.base + BigInt(i));
    return { options, candidates };
  });

/** A sparse IPv6 pool; ops pick near both ends so wrap-around is exercised. */
const sparseConfig: fc.Arbitrary<Config> = fc.record({ reserved: fc.array(fc.nat(15), { maxLength: 3 }) }).map(({ reserved }) => {
  const range = Prefix.parse("fd00:1::/100");
  const last = range.last;
  const candidates: bigint[] = [];
  for (let i = 0n; i < 16n; i++) candidates.push(range.base + i, last - i);
  return {
    options: { range: range.toString(), reserved: reserved.map((r) => formatAddress(last - BigInt(r) * 2n, 6)) },
    candidates,
  };
});

const owners = fc.constantFrom("a", "b", "c", "d");
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: owners.map((owner) => ({ kind: "allocate" as const, owner })) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("allocateSpecific" as const), pick: fc.nat(), owner: owners }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: owners.map((owner) => ({ kind: "releaseOwner" as const, owner })) },
);

/** Runs one op on the pool; returns a comparable outcome. */
function runOp(pool: AddressPool, cfg: Config, op: Op, family: 4 | 6): string {
  const pick = (n: number): string => formatAddress(cfg.candidates[n % cfg.candidates.length]!, family);
  try {
    switch (op.kind) {
      case "allocate":
        return pool.allocate(op.owner);
      case "allocateSpecific":
        return pool.allocateSpecific(pick(op.pick), op.owner);
      case "release":
        return String(pool.release(pick(op.pick)));
      case "releaseOwner":
        return pool.releaseOwner(op.owner).join(",");
    }
  } catch (err) {
    if (err instanceof PoolExhaustedError) return "exhausted";
    if (err instanceof AddressInUseError) return "in-use";
    if (err instanceof ConfigError) return "config";
    throw err;
  }
}

function checkInvariants(pool: AddressPool, model: Model): void {
  const snap = pool.snapshot();
  const seen = new Set<bigint>();
  const problems: string[] = [];
  for (const [address, owner] of snap.allocations) {
    const v = parseAddress(address).value;
    if (seen.has(v)) problems.push(`${address} handed out twice`);
    seen.add(v);
    if (v < model.start || v > model.end) problems.push(`${address} outside [rangeStart, rangeEnd]`);
    if (model.excluded.has(v)) problems.push(`${address} is the gateway or reserved`);
    if (v === pool.range.base) problems.push(`${address} is the network address`);
    if (pool.range.family === 4 && v === pool.range.last) problems.push(`${address} is the broadcast address`);
    if (pool.ownerOf(address) !== owner) problems.push(`${address}: ownerOf disagrees with the snapshot`);
  }
  expect(problems).toEqual([]);
  expect(pool.used).toBe(snap.allocations.length);
  expect(pool.free + BigInt(pool.used)).toBe(pool.capacity);
  expect(new Map(snap.allocations.map(([a, o]) => [parseAddress(a).value, o]))).toEqual(model.alloc);
  expect(pool.lastReserved).toBe(model.last === undefined ? null : formatAddress(model.last, model.family));
}

function propertyFor(config: fc.Arbitrary<Config>): void {
  fc.assert(
    fc.property(config, fc.array(opArb, { maxLength: 80 }), fc.nat(80), (cfg, ops, cut) => {
      const pool = new AddressPool(cfg.options);
      const model = new Model(pool);
      const family = pool.range.family;
      const outcomes: string[] = [];
      ops.forEach((op, i) => {
        const before = JSON.stringify(pool.snapshot());
        const got = runOp(pool, cfg, op, family);
        outcomes.push(got);
        // The model's verdict for the same op.
        let want: string;
        const pickValue = (n: number): bigint => cfg.candidates[n % cfg.candidates.length]!;
        switch (op.kind) {
          case "allocate": {
            const r = model.allocate(op.owner);
            want = r === "exhausted" ? r : formatAddress(r, family);
            break;
          }
          case "allocateSpecific": {
            const r = model.allocateSpecific(pickValue(op.pick), op.owner);
            want = typeof r === "string" ? r : formatAddress(r, family);
            break;
          }
          case "release": {
            const v = pickValue(op.pick);
            want = String(model.alloc.delete(v));
            break;
          }
          case "releaseOwner": {
            const mine = [...model.alloc].filter(([, o]) => o === op.owner).map(([v]) => v);
            mine.sort((x, y) => (x < y ? -1 : 1));
            for (const v of mine) model.alloc.delete(v);
            want = mine.map((v) => formatAddress(v, family)).join(",");
            break;
          }
        }
        expect(got, `op ${i} ${JSON.stringify(op)}`).toBe(want);
        if (["exhausted", "in-use", "config"].includes(got)) expect(JSON.stringify(pool.snapshot())).toBe(before);
        checkInvariants(pool, model);
      });
      // Snapshot at `cut`, restore, and run the rest on both: identical outcomes and states.
      const at = Math.min(cut, ops.length);
      const a = new AddressPool(cfg.options);
      for (const op of ops.slice(0, at)) runOp(a, cfg, op, family);
      const snap: AddressPoolSnapshot = JSON.parse(JSON.stringify(a.snapshot()));
      const b = AddressPool.restore(cfg.options, snap);
      expect(b.snapshot()).toEqual(a.snapshot());
      for (const op of ops.slice(at)) {
        expect(runOp(b, cfg, op, family)).toBe(runOp(a, cfg, op, family));
      }
      expect(b.snapshot()).toEqual(a.snapshot());
      expect(b.snapshot()).toEqual(pool.snapshot());
    }),
    { numRuns: 300 },
  );
}

describe("AddressPool properties", () => {
  it("small bitmap pools (IPv4 /25-/30, IPv6 /121-/126) follow the model exactly", () => {
    propertyFor(smallConfig);
  });

  it("sparse IPv6 pools follow the model exactly, including the wrap at the end", () => {
    propertyFor(sparseConfig);
  });

  it("bitmap search over many words agrees with a linear scan after random fill and frees", () => {
    fc.assert(
      fc.property(fc.integer({ min: 40, max: 3000 }), fc.array(fc.nat(), { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 40 }), (spanLen, takes, steps) => {
        const range = Prefix.parse("10.64.0.0/20");
        const start = 7;
        const options = {
          range: range.toString(),
          rangeStart: range.nth(start),
          rangeEnd: range.nth(start + spanLen - 1),
          gateway: null,
        };
        const pool = new AddressPool(options);
        const model = new Model(pool);
        // Fill everything, then free a random set: holes scattered over many words.
        const all = drain(pool);
        for (const v of all) model.alloc.set(parseAddress(v).value, "o");
        for (const t of takes) {
          const v = range.base + BigInt(start + (t % spanLen));
          pool.release(formatAddress(v, 4));
          model.alloc.delete(v);
        }
        model.last = parseAddress(pool.lastReserved!).value;
        for (const f of steps) {
          const got = runOp(pool, { options, candidates: [] }, { kind: "allocate", owner: "n" }, 4);
          const r = model.allocate("n");
          expect(got).toBe(r === "exhausted" ? r : formatAddress(r, 4));
          if (f % 3 === 0 && got !== "exhausted") {
            pool.release(got);
            model.alloc.delete(parseAddress(got).value);
          }
        }
        checkInvariants(pool, model);
      }),
      { numRuns: 100 },
    );
  });
});
