// `cnikit-calico ipam check` / `ipam gc` against a store.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryDatastore } from "@cnikit/core";
import { parseCalicoConfig } from "../src/config.ts";
import { BlockIpam } from "../src/ipam.ts";
import { main, runCalicoCli } from "../src/cli.ts";

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

describe("cli arguments and config files", () => {
  const dir = mkdtempSync(join(tmpdir(), "calico-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const collect = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
  };
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const pool = (name: string, cidr: string, extra = "") => `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n  cidr: ${cidr}\n${extra}`;

  it("--help exits 0 with the usage on stdout, for the program and each command", async () => {
    for (const argv of [["--help"], ["-h"], ["ipam", "check", "--help"], ["ipam", "gc", "-h"]]) {
      const c = collect();
      expect(await main(argv, c.io), argv.join(" ")).toBe(0);
      expect(c.out.join("\n")).toMatch(/^Usage: cnikit-calico /);
      expect(c.err).toEqual([]);
    }
  });

  it("refuses an unknown flag with exit 2, naming it and listing the known ones (it used to be ignored)", async () => {
    const c = collect();
    expect(await runCalicoCli(["ipam", "check", "--confg", "x.yaml"], c.io, new MemoryDatastore())).toBe(2);
    expect(c.err.join("\n")).toMatch(/cnikit-calico ipam check: unknown option --confg; known options: --store, --config, --help \(-h\)/);
    const gc = collect();
    expect(await runCalicoCli(["ipam", "gc", "--node", "a"], gc.io, new MemoryDatastore())).toBe(2);
    expect(gc.err.join("\n")).toMatch(/unknown option --node; known options: --store, --nodes, --handles, --help \(-h\)/);
  });

  it("main needs --store, and opens that file store", async () => {
    const none = collect();
    expect(await main(["ipam", "check"], none.io)).toBe(2);
    expect(none.err.join("\n")).toMatch(/--store <dir> is required/);
    const ok = collect();
    expect(await main(["ipam", "check", "--store", join(dir, "store")], ok.io)).toBe(0);
    expect(ok.out).toEqual(["IPAM is consistent"]);
    const gc = collect();
    expect(await main(["ipam", "gc", "--store", join(dir, "store"), "--nodes", "a,b", "--handles", "h1"], gc.io)).toBe(0);
    expect(gc.out).toEqual(["released 0 handle(s), 0 block(s)"]);
  });

  it("reads --config as Calico's multi-document YAML (leading and empty documents skipped)", async () => {
    const store = new MemoryDatastore();
    const pools = parseCalicoConfig([{ kind: "IPPool", metadata: { name: "a" }, spec: { cidr: "10.244.0.0/16" } }]).pools;
    const ipam = new BlockIpam({ store, node: "n1", pools, config: { strictAffinity: false, maxBlocksPerHost: 20, autoAllocateBlocks: true } });
    await ipam.allocate("h1");
    const config = file("pools.yaml", `---\n${pool("a", "10.244.0.0/16")}---\n---\n${pool("b", "10.245.0.0/16")}\n---\n`);
    const c = collect();
    expect(await runCalicoCli(["ipam", "check", "--config", config], c.io, store)).toBe(0);
    expect(c.out).toEqual(["IPAM is consistent"]);
    // Without pool a, the block allocated from it no longer belongs to any pool.
    const onlyB = file("only-b.yaml", `---\n${pool("b", "10.245.0.0/16")}---\n`);
    const d = collect();
    expect(await runCalicoCli(["ipam", "check", "--config", onlyB], d.io, store)).toBe(1);
  });

  it("a bad resource in a multi-document file exits 2 naming the file, the document and the field", async () => {
    const bad = file("bad.yaml", `${pool("a", "10.244.0.0/16")}---\n---\n${pool("b", "10.245.0.0/16", "  blockSize: 40\n")}`);
    const c = collect();
    expect(await runCalicoCli(["ipam", "check", "--config", bad], c.io, new MemoryDatastore())).toBe(2);
    expect(c.err.join("\n").split("\n")[0]).toBe(`cnikit-calico ipam check: --config ${bad}: [calico] IPPool/b.spec.blockSize: must be an integer from 20 to 32, in document 3 (got 40)`);
    const kind = file("kind.yaml", `${pool("a", "10.244.0.0/16")}---\n---\napiVersion: projectcalico.org/v3\nkind: Felix\nmetadata:\n  name: x\n`);
    const k = collect();
    expect(await runCalicoCli(["ipam", "check", "--config", kind], k.io, new MemoryDatastore())).toBe(2);
    expect(k.err[0]).toMatch(/\(document 3\)\.kind: must be IPPool, /);
    const missing = collect();
    expect(await runCalicoCli(["ipam", "check", "--config", join(dir, "nope.yaml")], missing.io, new MemoryDatastore())).toBe(2);
    expect(missing.err[0]).toMatch(/--config: cannot read .*nope\.yaml/);
  });
});
