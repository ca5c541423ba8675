// The sleeve on the real kernel (root): two node namespaces joined by a veth underlay, a `weave`
// bridge in each with the sleeve's TAP as a port, one pod per node on the bridge (flat L2,
// 10.32.0.1/12 and 10.32.128.1/12). A SleeveRelay runs per node in a child Node process inside the
// node namespace (test/sleeve-node.ts), as cnikitd does on a lab node, so its UDP socket and its
// TAP are the node's. Ping and TCP between the pods pass plaintext and encrypted; tcpdump on the
// underlay veth sees a marker string in the plaintext run (the capture can see) and never in the
// encrypted one. Everything is torn down by the names it created, even on failure.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildWeaveTap, TapDevice } from "../src/sleeve/tap.ts";
import { pcapPackets, SleeveLab, startIn } from "./sleeve-lab.ts";

const MARKER = "CNIKIT-WEAVE-SLEEVE-MARKER-7f3a";
let dir: string;
let helper: string;
const labs: SleeveLab[] = [];

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("the sleeve's kernel test needs root (namespaces, /dev/net/tun)");
  for (const [tool, pkg] of [
    ["ip", "iproute2"],
    ["tcpdump", "tcpdump"],
    ["ping", "iputils-ping"],
    ["cc", "gcc"],
  ] as const) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`\`${tool}\` not found: install the Debian package ${pkg}`);
  }
  dir = mkdtempSync(join(tmpdir(), "weave-sleeve-"));
  helper = buildWeaveTap({ out: join(dir, "weave-tap") });
});

afterAll(async () => {
  for (const lab of labs.splice(0)) await lab.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function lab(tag: string, encrypted: boolean): Promise<SleeveLab> {
  const l = await SleeveLab.start({ tag, mode: "sleeve", encrypted, helper });
  labs.push(l);
  return l;
}

describe.each([
  ["plaintext", false],
  ["encrypted", true],
])("sleeve on the kernel, %s", (_name, encrypted) => {
  it("pods on two nodes ping and talk TCP over the sleeve; the underlay capture shows the marker only when plaintext", async () => {
    const l = await lab(encrypted ? "enc" : "plain", encrypted);
    try {
      expect(await l.pingUntil(0, 1)).toBe(true);
      expect(await l.pingUntil(1, 0)).toBe(true);

      const cap = await l.capture(0);
      await l.serve(1, 5000);
      const payload = `${MARKER} `.repeat(40);
      const answer = await l.send(0, 1, 5000, payload);
      expect(answer).toBe(`${payload.length}\n${payload}`);
      await cap.stop("SIGINT");
      const packets = pcapPackets(cap.stdoutBytes());
      // Both directions crossed the underlay as sleeve packets (UDP 6783) that the capture saw.
      expect(packets.length).toBeGreaterThanOrEqual(4);
      const seen = packets.some((p) => p.includes(MARKER));
      expect(seen).toBe(!encrypted);

      const [s1, s2] = [await l.stats(0), await l.stats(1)];
      for (const s of [s1, s2]) {
        expect(s.framesOut).toBeGreaterThan(0);
        expect(s.framesIn).toBeGreaterThan(0);
        expect(s.macs).toBe(1); // the other pod's MAC, learned behind the other node
        expect(s.drops["auth-failed"] + s.drops.malformed + s.drops["too-big"] + s.drops.unsealed + s.drops["no-session"]).toBe(0);
        expect(s.device.ifname).toBe("wtap");
        expect(s.device.pid).toBeGreaterThan(0);
      }
    } finally {
      await l.stop();
    }
    // gone: the namespaces it made, and with them the TAPs (the helpers exited)
    const left = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout;
    expect(left).not.toContain(l.prefix);
  });
});

describe("the TAP helper on its own", () => {
  it("refuses a name longer than an interface name, exits cleanly when stdin closes, and its TAP goes with it", async () => {
    const bad = spawnSync(helper, ["a-name-far-too-long"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/longer than 15 characters/);
    const l = await SleeveLab.start({ tag: "tap", mode: "fastdp" }); // only for its namespaces
    labs.push(l);
    try {
      const ns = l.nodes[0]!.ns;
      const p = startIn(ns, [helper, "wt0"], "weave-tap wt0");
      await p.until(() => p.stderr.includes("ready wt0\n"), 20_000, "ready line");
      expect(spawnSync("ip", ["-n", ns, "-d", "link", "show", "wt0"], { encoding: "utf8" }).stdout).toMatch(/tun type tap/);
      // A second helper cannot take a TAP that is attached already: the error names the call and errno.
      const busy = spawnSync("ip", ["netns", "exec", ns, helper, "wt0"], { encoding: "utf8", input: "" });
      expect(busy.status).toBe(1);
      expect(busy.stderr).toMatch(/ioctl TUNSETIFF wt0 on \/dev\/net\/tun .*EBUSY/);
      // TapDevice (with its netns option) reports the helper's own words
      const dev = new TapDevice({ ifname: "wt0", helper, netns: ns });
      await expect(dev.start(() => {})).rejects.toThrow(/\[weave\] the TAP helper could not open wt0: weave-tap: ioctl TUNSETIFF wt0 on \/dev\/net\/tun .*EBUSY/);
      p.child.stdin.end();
      expect(await p.exit).toBe(0);
      expect(p.stderr).toMatch(/wt0 closed/);
      expect(spawnSync("ip", ["-n", ns, "link", "show", "wt0"]).status).not.toBe(0);
    } finally {
      await l.stop();
    }
  });
});
