// `cnikit-calico ipam check` / `ipam gc` against a store.
import { describe, expect, it } from "vitest";
import { MemoryDatastore } from "@cnikit/core";
import { parseCalicoConfig } from "../src/config.ts";
import { BlockIpam } from "../src/ipam.ts";
import { runCalicoCli } from "../src/cli.ts";

describe("cli", () => {
  it("ipam check passes on a consistent store and names each problem otherwise; gc repairs", async () => {
    const store = new MemoryDatastore();
    const pools = parseCalicoConfig([{ kind: "IPPool", metadata: { name: "p" }, spec: { cidr: "10.0.0.0/24" } }]).pools;
    const ipam = new BlockIpam({ store, node: "a", pools, config: { strictAffinity: false, maxBlocksPerHost: 20, autoAllocateBlocks: true } });
    await ipam.allocate("h1");
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
    expect(await runCalicoCli(["ipam", "check"], io, store)).toBe(0);
    await store.delete("/calico/ipam/v2/handle/h1");
    expect(await runCalicoCli(["ipam", "check"], io, store)).toBe(1);
    expect(lines.join("\n")).toMatch(/handle h1, which does not exist/);
    expect(await runCalicoCli(["ipam", "gc", "--nodes", "a"], io, store)).toBe(0);
    expect(await runCalicoCli(["ipam", "check"], io, store)).toBe(0);
    expect(await runCalicoCli(["nope"], io, store)).toBe(2);
  });
});
