/**
 * IpChannel on the real kernel: one long-lived `ip -batch` per namespace. Answers per request
 * (failures with their command and message, in request-relative line numbers), concurrent
 * requests each get their own answer, a child that dies is replaced and requests queued behind the
 * fatal one still run, a hung child is killed at the timeout, close stops the child.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pidAlive } from "@cnikit/core";
import { mkdtempSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IpChannel, PodSideChannel, buildNetlinkHelper } from "../src/channel.ts";
import { podSideLines, runIpBatch } from "../src/index.ts";
import { ipJson, Scratch, checkRequirements, cleanupLeftovers } from "./lab.ts";

const scratch = new Scratch("ch");
let ns = "";

beforeAll(async () => {
  checkRequirements();
  await cleanupLeftovers();
  ns = await scratch.ns("a");
});
afterAll(async () => {
  await scratch.cleanup();
});

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("IpChannel", () => {
  it("runs requests in the namespace through one child; a failing line is reported with its command and message", async () => {
    const ch = new IpChannel({ netns: ns });
    try {
      const ok = await ch.run(["link add ckc0 type bridge", "link set dev ckc0 up"]);
      expect(ok.failures).toEqual([]);
      const pid = ch.pid!;
      const r = await ch.run(["addr add 198.51.100.1/24 dev ckc0", "addr add 198.51.100.1/24 dev ckc0", "addr add 198.51.100.2/24 dev ckc0"]);
      expect(r.failures).toEqual([{ line: 2, command: "addr add 198.51.100.1/24 dev ckc0", message: expect.stringMatching(/already assigned|File exists/) }]);
      expect(ch.pid).toBe(pid);
      expect(ch.starts).toBe(1);
      const addrs = await ipJson<{ addr_info: { local: string }[] }[]>(ns, ["addr", "show", "dev", "ckc0"]);
      expect(
        addrs[0]!.addr_info
          .map((a) => a.local)
          .filter((a) => !a.startsWith("fe80:"))
          .sort(),
      ).toEqual(["198.51.100.1", "198.51.100.2"]);
    } finally {
      await ch.close();
    }
  });

  it("concurrent requests each get their own answer, in one child", async () => {
    const ch = new IpChannel({ netns: ns });
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => ch.run(i % 3 === 0 ? [`link set dev ckc-missing${i} up`, "link set dev lo up"] : ["link set dev lo up", `route replace 203.0.113.${i}/32 dev lo`])),
      );
      results.forEach((r, i) => {
        if (i % 3 === 0) expect(r.failures).toEqual([{ line: 1, command: `link set dev ckc-missing${i} up`, message: expect.stringContaining(`ckc-missing${i}`) }]);
        else expect(r.failures).toEqual([]);
      });
      expect(ch.starts).toBe(1);
    } finally {
      await ch.close();
    }
  });

  it("a line that makes ip exit fails its request with the command and ip's message; the requests behind it run on a new child", async () => {
    const ch = new IpChannel({ netns: ns });
    try {
      const fatal = ch.run(["link set dev lo up", "addr add not-an-address dev lo"]);
      const behind = ch.run(["link set dev ckc-gone up"]);
      await expect(fatal).rejects.toMatchObject({ netns: ns, message: expect.stringMatching(/addr add not-an-address dev lo.*not-an-address/) });
      expect((await behind).failures).toEqual([{ line: 1, command: "link set dev ckc-gone up", message: expect.stringContaining("ckc-gone") }]);
      expect(ch.starts).toBe(2);
    } finally {
      await ch.close();
    }
  });

  it("after a line failed on a missing device, the next request goes to a fresh child (ip caches names for its life)", async () => {
    const ch = new IpChannel({ netns: ns });
    try {
      expect((await ch.run(["link set dev lo up"])).failures).toEqual([]);
      expect((await ch.run(["link set dev ckc-absent up"])).failures).toHaveLength(1);
      expect((await ch.run(["link set dev lo up"])).failures).toEqual([]);
      expect(ch.starts).toBe(2);
    } finally {
      await ch.close();
    }
  });

  it("a child killed from outside is restarted on the next request", async () => {
    const ch = new IpChannel({ netns: ns });
    try {
      await ch.run(["link set dev lo up"]);
      const pid = ch.pid!;
      process.kill(pid, "SIGKILL");
      await waitFor(() => ch.pid === undefined, "the channel to see its child die");
      expect((await ch.run(["link set dev lo up"])).failures).toEqual([]);
      expect(ch.pid).not.toBe(pid);
      expect(ch.starts).toBe(2);
    } finally {
      await ch.close();
    }
  });

  it("a child that does not answer within the timeout is killed and the request fails, never hangs", async () => {
    const ch = new IpChannel({ netns: ns, timeoutMs: 3000 });
    try {
      await ch.run(["link set dev lo up"]);
      const pid = ch.pid!;
      process.kill(pid, "SIGSTOP");
      await expect(ch.run(["link set dev lo up"])).rejects.toMatchObject({ message: expect.stringContaining("no answer within 3010 ms") });
      await waitFor(() => !pidAlive(pid), "the stopped child to be killed");
      expect((await ch.run(["link set dev lo up"])).failures).toEqual([]);
    } finally {
      await ch.close();
    }
  });

  it("close stops the child and refuses further requests", async () => {
    const ch = new IpChannel({ netns: ns });
    await ch.run(["link set dev lo up"]);
    const pid = ch.pid!;
    expect(pidAlive(pid)).toBe(true);
    await ch.close();
    await waitFor(() => !pidAlive(pid), "the child to exit");
    expect(ch.pid).toBeUndefined();
    await expect(ch.run(["link set dev lo up"])).rejects.toMatchObject({ name: "ClosedError" });
  });
});

describe("PodSideChannel (the netlink helper)", () => {
  let helper = "";
  beforeAll(() => {
    helper = buildNetlinkHelper({ out: join(mkdtempSync(join(tmpdir(), "ck-nl-")), "cnikit-nl") });
  });

  /** A pod namespace with the container end `eth0` of a veth whose host end is `host` in `ns`. */
  async function podNs(suffix: string, host: string): Promise<string> {
    const pod = await scratch.ns(suffix);
    await runIpBatch(ns, [`link add ${host} type veth peer name eth0 netns ${scratch.path(pod)}`, `link set dev ${host} up`]);
    return pod;
  }

  it("sets up a pod's container side exactly as `ip -batch` of the same lines does", async () => {
    const viaHelper = await podNs("h1", "ckh1");
    const viaIp = await podNs("h2", "ckh2");
    const spec = {
      key: "c1/eth0",
      containerId: "c1",
      ifName: "eth0",
      netns: "",
      mac: "0a:58:0a:f4:01:05",
      mtu: 1450,
      addresses: ["10.244.1.5/24", "fd00:10:244:1::5/64"],
      routes: [
        { dst: "10.244.0.0/16", via: "10.244.1.1" },
        { dst: "0.0.0.0/0", via: "10.244.1.1" },
        { dst: "169.254.1.1/32", scopeLink: true },
      ],
    } as unknown as Parameters<typeof podSideLines>[0];
    for (const rank of [0, 1]) {
      const lines = podSideLines(spec, rank);
      const ch = new PodSideChannel({ helper });
      try {
        expect((await ch.run(scratch.path(viaHelper), lines)).failures).toEqual([]);
      } finally {
        await ch.close();
      }
      await runIpBatch(viaIp, lines);
      const view = async (n: string) => ({
        addrs: await ipJson(n, ["addr", "show"]).then((l) =>
          (l as { ifname: string; flags: string[]; addr_info: { local: string; prefixlen: number; scope: string }[] }[]).map((i) => [
            i.ifname,
            i.flags.includes("UP"),
            i.addr_info.map((a) => `${a.local}/${a.prefixlen} ${a.scope}`),
          ]),
        ),
        v4: await ipJson(n, ["-4", "route", "show", "table", "all"]),
        v6: await ipJson(n, ["-6", "route", "show", "table", "all"]),
      });
      // The link-local addresses come from the (random) MACs of the two veths: named alike.
      const same = async (n: string) => JSON.parse(JSON.stringify(await view(n)).replace(/fe80::[0-9a-f:]+/g, "fe80::LL")) as unknown;
      expect(await same(viaHelper)).toEqual(await same(viaIp));
      // Once more: the addresses exist now, so the first `addr add` fails in both.
      const again = new PodSideChannel({ helper });
      try {
        await expect(again.run(scratch.path(viaHelper), lines)).rejects.toMatchObject({
          netns: scratch.path(viaHelper),
          message: expect.stringMatching(/line 2 `addr add 10\.244\.1\.5\/24 dev eth0.*`.*(already assigned|exists)/),
        });
      } finally {
        await again.close();
      }
      if (rank === 0) {
        for (const n of [viaHelper, viaIp]) await runIpBatch(n, ["addr flush dev eth0", "route flush table main"]);
      }
    }
  });

  it("concurrent requests for different namespaces each get their own answer; a missing namespace and an unknown device are named", async () => {
    const pods = [await podNs("c1", "ckc1"), await podNs("c2", "ckc2"), await podNs("c3", "ckc3")];
    const ch = new PodSideChannel({ helper });
    try {
      const results = await Promise.allSettled([
        ...pods.map((p, i) => ch.run(scratch.path(p), ["link set dev lo up", `addr add 10.9.${i}.2/24 dev eth0`, "link set dev eth0 up"])),
        ch.run("/var/run/netns/ckl-no-such-ns", ["link set dev lo up"]),
        ch.run(scratch.path(pods[0]!), ["link set dev lo up", "link set dev eth9 up"]),
      ]);
      expect(results.slice(0, 3).map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
      for (const [i, p] of pods.entries()) {
        const a = await ipJson<{ addr_info: { local: string }[] }[]>(p, ["-4", "addr", "show", "dev", "eth0"]);
        expect(a[0]!.addr_info.map((x) => x.local)).toEqual([`10.9.${i}.2`]);
      }
      expect(results[3]).toMatchObject({ status: "rejected", reason: { message: expect.stringContaining("/var/run/netns/ckl-no-such-ns") } });
      expect(results[4]).toMatchObject({ status: "rejected", reason: { message: expect.stringMatching(/line 2 `link set dev eth9 up`.*Cannot find device "eth9"/) } });
      expect(ch.starts).toBe(1);
    } finally {
      await ch.close();
    }
  });

  it("between requests the helper is back in its own namespace (it keeps no pod's namespace alive)", async () => {
    const pod = await podNs("b1", "ckb1");
    const ch = new PodSideChannel({ helper });
    try {
      await ch.run(scratch.path(pod), ["link set dev eth0 up"]);
      expect(readlinkSync(`/proc/${ch.pid!}/ns/net`)).toBe(readlinkSync("/proc/self/ns/net"));
    } finally {
      await ch.close();
    }
  });

  it("a helper killed from outside is restarted; close stops it", async () => {
    const pod = await podNs("k1", "ckk1");
    const ch = new PodSideChannel({ helper });
    await ch.run(scratch.path(pod), ["link set dev lo up"]);
    const pid = ch.pid!;
    process.kill(pid, "SIGKILL");
    await waitFor(() => ch.pid === undefined, "the channel to see its helper die");
    expect((await ch.run(scratch.path(pod), ["link set dev eth0 up"])).failures).toEqual([]);
    const second = ch.pid!;
    expect(second).not.toBe(pid);
    await ch.close();
    await waitFor(() => !pidAlive(second), "the helper to exit");
  });
});
