import { describe, expect, it } from "vitest";
import {
  AZURE_RESERVED_PER_SUBNET,
  classicHeadroom,
  classicJoinRefusal,
  dynamicHeadroom,
  formatCount,
  formatSizingTable,
  requiredAddresses,
  sizingTable,
  smallestFittingPrefix,
  staticBlocksPerNode,
  usableAddresses,
  usableStaticBlocks,
} from "../src/sizing.ts";

function refusalOf(run: () => unknown): { code: number; field: string; rule: string } {
  try {
    run();
  } catch (err) {
    return err as { code: number; field: string; rule: string };
  }
  throw new Error("accepted");
}

describe("usable addresses", () => {
  it.each([
    ["10.0.0.0/24", 251],
    ["10.0.0.0/21", 2043],
    ["10.0.0.0/22", 1019],
    ["10.0.0.0/29", 3],
    ["10.0.0.0/30", 0],
    ["10.0.0.0/32", 0],
    ["10.0.0.0/16", 65531],
  ])("%s → %d", (cidr, usable) => {
    expect(AZURE_RESERVED_PER_SUBNET).toBe(5);
    expect(usableAddresses(cidr)).toBe(usable);
  });

  it("refuses an IPv6 or malformed subnet naming the argument", () => {
    expect(refusalOf(() => usableAddresses("fd00::/64"))).toMatchObject({ code: 7, field: "subnet", rule: expect.stringMatching(/IPv4/) as unknown });
    expect(refusalOf(() => usableAddresses("10.0.0.1/24"))).toMatchObject({ code: 7, field: "subnet", rule: expect.stringMatching(/host bits/) as unknown });
  });
});

describe("AKS's formula", () => {
  it("(n + surge) × (maxPods + 1)", () => {
    expect(requiredAddresses({ nodes: 50, maxPods: 30, surge: 1 })).toBe(1581);
    expect(requiredAddresses({ nodes: 9, maxPods: 30, surge: 1 })).toBe(310);
    expect(requiredAddresses({ nodes: 9, maxPods: 30, surge: 3 })).toBe(372);
    expect(requiredAddresses({ nodes: 3, maxPods: 250, surge: 0 })).toBe(753);
  });

  it("refuses bad inputs naming them", () => {
    expect(refusalOf(() => requiredAddresses({ nodes: -1, maxPods: 30, surge: 1 })).field).toBe("nodes");
    expect(refusalOf(() => requiredAddresses({ nodes: 1, maxPods: 251, surge: 1 })).field).toBe("maxPods");
    expect(refusalOf(() => requiredAddresses({ nodes: 1, maxPods: 30, surge: 0.5 })).field).toBe("surge");
  });
});

describe("smallestFittingPrefix", () => {
  it.each([
    [1581, 21],
    [310, 23],
    [251, 24],
    [252, 23],
    [1, 29],
    [3, 29],
    [4, 28],
    [0, 29],
  ])("required %d → /%d", (required, length) => {
    expect(smallestFittingPrefix({ required })).toBe(length);
  });

  it("never answers beyond Azure's largest subnet (/2)", () => {
    expect(smallestFittingPrefix({ required: 2 ** 30 - 5 })).toBe(2);
    expect(refusalOf(() => smallestFittingPrefix({ required: 2 ** 30 })).rule).toMatch(/no Azure subnet \(\/2 at the largest\) holds 1,073,741,824/);
  });
});

describe("classicJoinRefusal", () => {
  it("AKS#456: a /24 at maxPods 30 refuses the 9th node with AKS's own text and the arithmetic", () => {
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 9, maxPods: 30, surge: 1 })).toBe(
      "Pre-allocated IPs 310 exceeds IPs available 251: (n + 1) × (maxPods + 1) = (9 + 1) × (30 + 1) = 310 with n = 9 nodes and 1 surge node; the smallest subnet that fits is a /23 (507 usable)",
    );
  });

  it("a /24 at maxPods 30 holds 7 nodes and refuses the 8th", () => {
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 7, maxPods: 30, surge: 1 })).toBeUndefined();
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 8, maxPods: 30, surge: 1 })).toMatch(/^Pre-allocated IPs 279 exceeds IPs available 251: /);
  });

  it("the reference's worked example: n = 50, maxPods 30 needs 1,581 → a /21; a /22 refuses", () => {
    expect(classicJoinRefusal({ subnet: "10.240.0.0/21", nodes: 50, maxPods: 30, surge: 1 })).toBeUndefined();
    expect(classicJoinRefusal({ subnet: "10.240.0.0/22", nodes: 50, maxPods: 30, surge: 1 })).toBe(
      "Pre-allocated IPs 1581 exceeds IPs available 1019: (n + 1) × (maxPods + 1) = (50 + 1) × (30 + 1) = 1,581 with n = 50 nodes and 1 surge node; the smallest subnet that fits is a /21 (2,043 usable)",
    );
  });

  it("adapts the formula to another surge", () => {
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 1, maxPods: 110, surge: 2 })).toBe(
      "Pre-allocated IPs 333 exceeds IPs available 251: (n + 2) × (maxPods + 1) = (1 + 2) × (110 + 1) = 333 with n = 1 node and 2 surge nodes; the smallest subnet that fits is a /23 (507 usable)",
    );
    expect(classicJoinRefusal({ subnet: "10.240.0.0/25", nodes: 4, maxPods: 30, surge: 0 })).toBe(
      "Pre-allocated IPs 124 exceeds IPs available 123: (n + 0) × (maxPods + 1) = (4 + 0) × (30 + 1) = 124 with n = 4 nodes and 0 surge nodes; the smallest subnet that fits is a /24 (251 usable)",
    );
  });

  it("refuses a join the formula allows when fewer than maxPods addresses are free", () => {
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 5, maxPods: 30, surge: 1, free: 12 })).toBe(
      "Pre-allocated IPs 30 exceeds IPs available 12: the join needs maxPods = 30 addresses for its pods but only 12 of the subnet's 251 usable addresses are free (the formula allows 7 nodes)",
    );
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 5, maxPods: 30, surge: 1, free: 30 })).toBeUndefined();
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 5, maxPods: 30, surge: 1, free: 29 })).toMatch(/^Pre-allocated IPs 30 exceeds IPs available 29: /);
  });

  it("the formula's refusal comes first (it is what AKS checks up front)", () => {
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 9, maxPods: 30, surge: 1, free: 0 })).toMatch(/^Pre-allocated IPs 310 exceeds IPs available 251: \(n \+ 1\)/);
  });
});

describe("sizingTable", () => {
  it("reproduces the reference's worked table for n = 50, maxPods 30", () => {
    expect(sizingTable({ nodes: 50, maxPods: 30, surge: 1 })).toEqual([
      { step: "node addresses, incl. surge", formula: "50 + 1", value: 51 },
      { step: "pod addresses", formula: "51 × 30", value: 1530 },
      { step: "required", formula: "51 + 1,530", value: 1581, note: "= 51 × 31" },
      { step: "plus Azure reserved", formula: "1,581 + 5", value: 1586 },
      { step: "/22 usable", formula: "1,024 − 5", value: 1019, prefixLength: 22, verdict: "too small" },
      { step: "/21 usable", formula: "2,048 − 5", value: 2043, prefixLength: 21, verdict: "fits", spare: 462 },
    ]);
  });

  it("has no too-small row when Azure's smallest subnet already fits", () => {
    const rows = sizingTable({ nodes: 0, maxPods: 1, surge: 1 });
    expect(rows.map((r) => r.step)).toEqual(["node addresses, incl. surge", "pod addresses", "required", "plus Azure reserved", "/29 usable"]);
    expect(rows.at(-1)).toMatchObject({ verdict: "fits", value: 3, spare: 1 });
  });

  it("formats aligned columns with thousands separators", () => {
    const text = formatSizingTable(sizingTable({ nodes: 50, maxPods: 30, surge: 1 }));
    const lines = text.split("\n");
    expect(lines).toHaveLength(7);
    expect(lines[3]).toMatch(/^required\s+51 \+ 1,530\s+=\s+1,581 {2}\(= 51 × 31\)$/);
    expect(lines[5]).toMatch(/^\/22 usable\s+1,024 − 5\s+=\s+1,019 {2}→ too small$/);
    expect(lines[6]).toMatch(/^\/21 usable\s+2,048 − 5\s+=\s+2,043 {2}→ fits \(462 spare\)$/);
    // Every "=" sits in the same column, and every value ends in the same column.
    const eqColumns = new Set(lines.slice(1).map((l) => l.indexOf(" = ")));
    expect(eqColumns.size).toBe(1);
    const valueEnds = new Set(
      lines.slice(1).map((l) => {
        const m = / = +[\d,]+/.exec(l);
        return m === null ? -1 : m.index + m[0].length;
      }),
    );
    expect(valueEnds.size).toBe(1);
  });

  it("formatCount groups thousands", () => {
    expect([0, 999, 1000, 1581, 65531, 1234567, -2048].map(formatCount)).toEqual(["0", "999", "1,000", "1,581", "65,531", "1,234,567", "-2,048"]);
  });
});

describe("headroom", () => {
  it("classic: exact more-nodes count with the surge kept free", () => {
    // /24, 5 nodes of 31: 155 used, 96 free, 31 kept for the surge → 2 more nodes, 3 spare.
    expect(classicHeadroom({ subnet: "10.240.0.0/24", nodes: 5, maxPods: 30, surge: 1 })).toEqual({
      subnet: "10.240.0.0/24",
      usable: 251,
      used: 155,
      free: 96,
      perNode: 31,
      surgeReserve: 31,
      nodesThatFit: 2,
      spare: 3,
      surgeShort: false,
    });
  });

  it("classic: agrees with the join refusal at the boundary", () => {
    const h = classicHeadroom({ subnet: "10.240.0.0/24", nodes: 5, maxPods: 30, surge: 1 });
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 5 + h.nodesThatFit, maxPods: 30, surge: 1 })).toBeUndefined();
    expect(classicJoinRefusal({ subnet: "10.240.0.0/24", nodes: 5 + h.nodesThatFit + 1, maxPods: 30, surge: 1 })).toBeDefined();
  });

  it("classic: addresses held outside the formula shrink the headroom, and a missing surge reserve is flagged", () => {
    expect(classicHeadroom({ subnet: "10.240.0.0/24", nodes: 5, maxPods: 30, surge: 1, used: 200 })).toMatchObject({ free: 51, nodesThatFit: 0, spare: 20, surgeShort: false });
    expect(classicHeadroom({ subnet: "10.240.0.0/24", nodes: 7, maxPods: 30, surge: 1, used: 240 })).toMatchObject({ free: 11, nodesThatFit: 0, spare: 0, surgeShort: true });
  });

  it("dynamic: free addresses of the pod subnet and whole batches", () => {
    expect(dynamicHeadroom({ subnet: "10.241.0.0/24", assigned: 96, batchSize: 16 })).toEqual({ subnet: "10.241.0.0/24", usable: 251, assigned: 96, free: 155, batches: 9 });
    expect(dynamicHeadroom({ subnet: "10.241.0.0/28", assigned: 11, batchSize: 16 })).toMatchObject({ free: 0, batches: 0 });
    expect(refusalOf(() => dynamicHeadroom({ subnet: "10.241.0.0/24", assigned: 0, batchSize: 0 })).field).toBe("batchSize");
  });

  it("static blocks: /28s clear of the reserved addresses, ceil(maxPods / 16) per node", () => {
    expect(["10.0.0.0/29", "10.0.0.0/28", "10.0.0.0/27", "10.0.0.0/26", "10.0.0.0/24", "10.0.0.0/16"].map((c) => usableStaticBlocks(c))).toEqual([0, 0, 0, 2, 14, 4094]);
    expect([10, 16, 17, 30, 250].map(staticBlocksPerNode)).toEqual([1, 1, 2, 2, 16]);
  });
});
