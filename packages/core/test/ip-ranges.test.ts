import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { describe, expect, it } from "vitest";
import { ADDRESS_RANGES, ConfigError, Prefix, addressRange, formatAddress, parseAddress, specialRanges } from "../src/index.ts";
import type { AddressRange } from "../src/index.ts";

describe("addressRange", () => {
  const table: [string, AddressRange][] = [
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["::1", "loopback"],
    ["169.254.1.1", "linkLocal"],
    ["fe80::1", "linkLocal"],
    ["febf:ffff::1", "linkLocal"],
    ["fec0::1", "deprecatedSiteLocal"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.255", "multicast"],
    ["ff02::1", "multicast"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["255.255.255.255", "broadcast"],
    ["10.244.0.1", "private"],
    ["172.16.0.1", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "carrierGradeNat"],
    ["fd00::1", "uniqueLocal"],
    ["::ffff:10.0.0.1", "ipv4Mapped"],
    ["192.0.2.1", "reserved"],
    ["240.0.0.1", "reserved"],
    ["2001:db8::1", "reserved"],
    ["8.8.8.8", "unicast"],
    ["2606:4700::1111", "unicast"],
  ];
  it.each(table)("%s is %s", (text, range) => {
    expect(addressRange(text)).toBe(range);
    expect(addressRange(parseAddress(text))).toBe(range);
  });

  it("goes through the front door: what node:net refuses is a ConfigError naming the field", () => {
    for (const text of ["127.1", "0x7f000001", "fe80::1%eth0", "0177.0.0.1"]) {
      let err: unknown;
      try {
        addressRange(text, { field: "spec.nodeAddress", component: "calico" });
      } catch (e) {
        err = e;
      }
      expect((err as ConfigError).name, text).toBe("ConfigError");
      expect((err as ConfigError).code).toBe(7);
      expect((err as ConfigError).field).toBe("spec.nodeAddress");
      expect((err as ConfigError).message.startsWith("[calico] spec.nodeAddress: must ")).toBe(true);
    }
  });

  it("answers one of ADDRESS_RANGES for every address", () => {
    const v4 = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }).map((value) => ({ family: 4 as const, value }));
    // The top 16 bits drawn from the special ranges' neighbourhoods, so classification is exercised.
    const v6 = fc
      .tuple(fc.constantFrom(0, 0x64, 0x100, 0x2001, 0x2002, 0xfc00, 0xfd12, 0xfe80, 0xfec0, 0xff02, 0x2606), fc.bigInt({ min: 0n, max: (1n << 112n) - 1n }))
      .map(([top, rest]) => ({ family: 6 as const, value: (BigInt(top) << 112n) | rest }));
    fc.assert(
      fc.property(fc.oneof(v4, v6), (a) => {
        const range = addressRange(a);
        expect(ADDRESS_RANGES).toContain(range);
        expect(addressRange(formatAddress(a.value, a.family))).toBe(range);
      }),
    );
  });

  it("ADDRESS_RANGES names every range of the installed ipaddr.js (an upgrade that adds one fails here)", () => {
    const tables = [ipaddr.IPv4.prototype, ipaddr.IPv6.prototype] as unknown as { SpecialRanges: Record<string, unknown> }[];
    const names = new Set(tables.flatMap((t) => Object.keys(t.SpecialRanges)));
    expect(names.size).toBeGreaterThan(10);
    for (const name of names) expect(ADDRESS_RANGES).toContain(name);
  });
});

describe("specialRanges", () => {
  it("linkLocal is 169.254.0.0/16 and fe80::/10", () => {
    expect(specialRanges("linkLocal").map(String)).toEqual(["169.254.0.0/16", "fe80::/10"]);
    expect(specialRanges("linkLocal", 6).map(String)).toEqual(["fe80::/10"]);
  });

  it("multicast, loopback and private are what the RFCs say", () => {
    expect(specialRanges("multicast").map(String)).toEqual(["224.0.0.0/4", "ff00::/8"]);
    expect(specialRanges("loopback").map(String)).toEqual(["127.0.0.0/8", "::1/128"]);
    expect(specialRanges("private", 4).map(String)).toEqual(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]);
    expect(specialRanges("uniqueLocal").map(String)).toEqual(["fc00::/7"]);
  });

  it("is empty for unicast and for a name the family lacks", () => {
    expect(specialRanges("unicast")).toEqual([]);
    expect(specialRanges("broadcast", 6)).toEqual([]);
    expect(specialRanges("uniqueLocal", 4)).toEqual([]);
  });

  it("agrees with addressRange at both ends of each prefix of the plain ranges", () => {
    const plain: AddressRange[] = ["unspecified", "linkLocal", "multicast", "loopback", "private", "uniqueLocal", "carrierGradeNat"];
    for (const name of plain) {
      const prefixes = specialRanges(name);
      expect(prefixes.length, name).toBeGreaterThan(0);
      for (const p of prefixes) {
        expect(p).toBeInstanceOf(Prefix);
        expect(addressRange(p.network), `${name} ${p.toString()}`).toBe(name);
        expect(addressRange(p.broadcast), `${name} ${p.toString()}`).toBe(name);
      }
    }
  });
});
