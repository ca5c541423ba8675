/**
 * Userspace links on the kernel: a renderer given a `UserspaceDatapath` renders a `sleeve` link by
 * having the datapath make it (here a fake that makes a TAP with `ip tuntap` in the scratch
 * namespace and records every call), then configures it like any owned link (MAC, MTU, alias,
 * master, up), hands it the link's FDB instead of `bridge fdb`, reads the TAP back as the link
 * (a resync changes nothing), configures a device made anew (a crashed helper), and removes the
 * device when the link goes. Weave's real datapath runs in packages/weave/test/kernel.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emptyDataplane, type FdbEntry, type Link, type NodeDataplane, type UserspaceDatapath } from "@cnikit/core";
import { LinuxRenderer, runIpBatch } from "../src/index.ts";
import { Scratch, checkRequirements, cleanupLeftovers, ipJson } from "./lab.ts";

const scratch = new Scratch("u");

beforeAll(async () => {
  checkRequirements();
  await cleanupLeftovers();
});
afterAll(async () => {
  await scratch.cleanup();
});

/** A datapath that makes TAPs in `ns` and records what the renderer asked. */
class FakeDatapath implements UserspaceDatapath {
  readonly kinds: readonly Link["kind"][] = ["sleeve"];
  readonly calls: string[] = [];
  readonly fdb = new Map<string, FdbEntry[]>();
  private readonly running = new Set<string>();
  constructor(private readonly ns: string) {}

  async ensure(link: Link): Promise<boolean> {
    this.calls.push(`ensure ${link.name}`);
    if (this.running.has(link.name)) return false;
    await runIpBatch(this.ns, [`tuntap add name ${link.name} mode tap`]);
    this.running.add(link.name);
    return true;
  }
  setFdb(link: string, entries: readonly FdbEntry[]): void {
    this.calls.push(`fdb ${link} ${entries.length}`);
    this.fdb.set(link, [...entries]);
  }
  has(link: string): boolean {
    return this.running.has(link);
  }
  async remove(link: string): Promise<void> {
    this.calls.push(`remove ${link}`);
    if (!this.running.delete(link)) return;
    await runIpBatch(this.ns, [`link del dev ${link}`], { force: true });
  }
  /** The helper died: its TAP is gone and `has` says so. */
  async crash(link: string): Promise<void> {
    this.running.delete(link);
    await runIpBatch(this.ns, [`link del dev ${link}`]);
  }
  status(): string[] {
    return [...this.running].map((n) => `${n}: fake`);
  }
  async stop(): Promise<void> {
    for (const n of [...this.running]) await this.remove(n);
  }
}

const SLEEVE_MAC = "02:00:00:00:00:5e";

function sleeveDataplane(peers: string[]): NodeDataplane {
  return {
    ...emptyDataplane("n1"),
    links: [
      { kind: "bridge", name: "weave", mtu: 1418 },
      { kind: "sleeve", name: "sleeve0", master: "weave", mtu: 1418, mac: SLEEVE_MAC, port: 6783, encrypted: false },
    ],
    fdb: peers.map((dst) => ({ dev: "sleeve0", mac: "00:00:00:00:00:00", dst, permanent: true })),
  };
}

interface IpLink {
  ifname: string;
  mtu: number;
  address: string;
  master?: string;
  flags: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

async function sleeveLink(ns: string): Promise<IpLink | undefined> {
  const links = await ipJson<IpLink[]>(ns, ["-d", "link", "show"]);
  return links.find((l) => l.ifname === "sleeve0");
}

describe("LinuxRenderer with a userspace datapath", () => {
  it("has the datapath make the sleeve link, configures it, feeds it the FDB, converges, rebuilds and removes it", async () => {
    const ns = await scratch.ns("sleeve");
    const fake = new FakeDatapath(ns);
    const renderer = new LinuxRenderer({ netns: ns, owner: "t", userspace: fake });

    const first = await renderer.apply(sleeveDataplane(["192.0.2.2", "192.0.2.3"]));
    expect(fake.calls).toEqual(["ensure sleeve0", "fdb sleeve0 2"]);
    expect(fake.fdb.get("sleeve0")!.map((e) => e.dst)).toEqual(["192.0.2.2", "192.0.2.3"]);
    expect(first.commands.filter((c) => c.tool === "bridge")).toEqual([]);
    expect(first.commands.filter((c) => c.tool === "userspace").map((c) => c.line)).toEqual(["ensure sleeve0"]);
    const link = await sleeveLink(ns);
    expect(link).toMatchObject({ linkinfo: { info_kind: "tun" }, master: "weave", mtu: 1418, address: SLEEVE_MAC, ifalias: "cnikit:t" });
    expect(link!.flags).toContain("UP");

    // The same dataplane again, and after a kernel read: nothing to do (the TAP reads back as the sleeve link).
    fake.calls.length = 0;
    expect((await renderer.apply(sleeveDataplane(["192.0.2.2", "192.0.2.3"]))).commands).toEqual([]);
    const resynced = await renderer.resync();
    expect(resynced!.readKernel).toBe(true);
    expect(resynced!.commands).toEqual([]);
    expect(fake.calls).toEqual(["ensure sleeve0", "fdb sleeve0 2", "ensure sleeve0", "fdb sleeve0 2"]);

    // A peer goes: only the datapath hears of it.
    fake.calls.length = 0;
    expect((await renderer.apply(sleeveDataplane(["192.0.2.3"]))).commands).toEqual([]);
    expect(fake.calls).toEqual(["ensure sleeve0", "fdb sleeve0 1"]);

    // The helper crashed: ensure makes a new TAP, and the renderer configures it again.
    await fake.crash("sleeve0");
    const rebuilt = await renderer.apply(sleeveDataplane(["192.0.2.3"]));
    expect(rebuilt.commands.map((c) => c.line)).toEqual(expect.arrayContaining(["ensure sleeve0", "link set dev sleeve0 master weave", "link set dev sleeve0 up"]));
    expect(await sleeveLink(ns)).toMatchObject({ master: "weave", mtu: 1418, address: SLEEVE_MAC, ifalias: "cnikit:t" });

    // The link goes: the datapath removes it before the batch, and nothing is left.
    fake.calls.length = 0;
    await renderer.apply({ ...emptyDataplane("n1"), links: [{ kind: "bridge", name: "weave" }] });
    expect(fake.calls).toEqual(["remove sleeve0"]);
    expect(await sleeveLink(ns)).toBeUndefined();

    await renderer.apply(sleeveDataplane(["192.0.2.3"]));
    fake.calls.length = 0;
    await renderer.teardown();
    expect(fake.calls).toEqual(["remove sleeve0"]);
    expect((await ipJson<IpLink[]>(ns, ["link", "show"])).map((l) => l.ifname)).toEqual(["lo"]);
  });

  it("without a datapath the sleeve link is still refused before anything changes", async () => {
    const ns = await scratch.ns("none");
    await expect(new LinuxRenderer({ netns: ns, owner: "t" }).apply(sleeveDataplane(["192.0.2.2"]))).rejects.toThrow(
      /^kernel lacks sleeve: cannot create link sleeve0 of kind sleeve \(.*no userspace datapath/,
    );
    expect((await ipJson<IpLink[]>(ns, ["link", "show"])).map((l) => l.ifname)).toEqual(["lo"]);
  });
});
