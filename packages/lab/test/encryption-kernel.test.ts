/**
 * Section G on the real kernel (root, tcpdump, the lab): `encryption.no-plaintext` captures every
 * node's underlay interface while pods exchange a random marker over TCP and UDP.
 *
 *  - the capture module on its own: pcap parsing, outer IPv4 headers, marker forms, and a real
 *    tcpdump in a namespace of its own that sees a ping carrying a pattern;
 *  - the gate, exactly as the simulator's: weave `fastdp` and `sleeve` (no password) and flannel
 *    (no encryption capability) are "not claimed" without a lab being built;
 *  - weave `encrypted` (the sealed sleeve, cnikitd's userspace relay): passes, every exchange seen
 *    both ways on both nodes and the marker in no packet;
 *  - weave `fastdp` wrapped as a backend module whose summary claims encryption (its vxlan port
 *    carries pod payloads in the clear): the check FAILS, naming the marker it saw, the pair,
 *    the protocol and the node; so does weave's sleeve without a password under the same claim;
 *    and with one pod's output muted, its exchanges fail because the
 *    captures saw nothing of them (silence is not proof of encryption).
 *
 * Labs are named `g<pid>...`; each run takes its lab down, and afterAll removes any left by a crash.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { renderTable, type CheckResult } from "@cnikit/conformance/runner";
import { createNetns, deleteNetns } from "@cnikit/linux";
import { UnderlayCapture, describePacket, ipv4Of, markerForms, packetsWith, parsePcap, type CapturedPacket } from "../src/capture.ts";
import { KERNEL_G_PAIRS, crossNodeSample, exchangeDirection, runLinuxConformance, type LinuxConformanceOptions, type LinuxConformanceReport } from "../src/conformance-linux.ts";
import { testLabs } from "./test-labs.ts";

const labs = testLabs("g");
const { labName, leftovers } = labs;
const tmp = mkdtempSync(join(tmpdir(), "cnikit-g-kernel-"));

afterAll(async () => {
  await labs.downAll();
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

function result(r: LinuxConformanceReport): CheckResult {
  const x = r.results.find((y) => y.id === "encryption.no-plaintext");
  if (!x) throw new Error(`no encryption.no-plaintext in the report:\n${renderTable([r])}`);
  return x;
}

/** A pcap stream (little-endian, microseconds, Ethernet) of `frames`. */
function pcapOf(frames: Buffer[], linkType = 1): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(linkType, 20);
  const recs = frames.map((f, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1_700_000_000 + i, 0);
    h.writeUInt32LE(250, 4);
    h.writeUInt32LE(f.length, 8);
    h.writeUInt32LE(f.length, 12);
    return Buffer.concat([h, f]);
  });
  return Buffer.concat([head, ...recs]);
}

/** An Ethernet frame with an IPv4 UDP packet (optionally behind a VLAN tag) carrying `payload`. */
function udpFrame(src: string, dst: string, ports: [number, number], payload: Buffer, vlan = false): Buffer {
  const eth = Buffer.from(vlan ? "02000000000102000000000281000064" + "0800" : "020000000001020000000002" + "0800", "hex");
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  src.split(".").forEach((o, i) => (ip[12 + i] = Number(o)));
  dst.split(".").forEach((o, i) => (ip[16 + i] = Number(o)));
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(ports[0], 0);
  udp.writeUInt16BE(ports[1], 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([eth, ip, udp, payload]);
}

describe("capture.ts: reading what tcpdump wrote", () => {
  it("parses a pcap stream, the outer IPv4 header (also behind a VLAN tag), and finds a marker raw or in hex", () => {
    const marker = "cnikit-g-tcp-0123456789abcdef";
    const frames = [
      udpFrame("198.51.100.10", "203.0.113.10", [40000, 8472], Buffer.from(`inner ${marker} inner`)),
      udpFrame("203.0.113.10", "198.51.100.10", [6783, 6783], Buffer.from(`x${Buffer.from(marker).toString("hex").toUpperCase()}x`), true),
      udpFrame("203.0.113.10", "198.51.100.10", [6783, 6783], Buffer.from("sealed bytes with no marker")),
    ];
    const buf = pcapOf(frames);
    // A stream cut in the middle of a record keeps the whole records only.
    expect(parsePcap(buf.subarray(0, buf.length - 5)).packets).toHaveLength(2);
    const { linkType, packets } = parsePcap(buf);
    expect(linkType).toBe(1);
    expect(packets.map((p) => ipv4Of(p))).toEqual([
      { src: "198.51.100.10", dst: "203.0.113.10", protocol: 17, srcPort: 40000, dstPort: 8472 },
      { src: "203.0.113.10", dst: "198.51.100.10", protocol: 17, srcPort: 6783, dstPort: 6783 },
      { src: "203.0.113.10", dst: "198.51.100.10", protocol: 17, srcPort: 6783, dstPort: 6783 },
    ]);
    expect(packetsWith(packets, markerForms(marker))).toEqual([packets[0], packets[1]]);
    expect(describePacket(packets[0]!)).toBe(`198.51.100.10 → 203.0.113.10 udp 40000→8472, ${frames[0]!.length} bytes`);
    expect(() => parsePcap(Buffer.alloc(24, 7))).toThrow(/not a pcap stream/);
    // Not IPv4 (an ARP frame): no header.
    const arp: CapturedPacket = { timeUs: 0, linkType: 1, wireLength: 42, data: Buffer.concat([Buffer.from("0200000000010200000000020806", "hex"), Buffer.alloc(28)]) };
    expect(ipv4Of(arp)).toBeUndefined();
  });

  it("exchangeDirection counts only packets long enough to carry the payload, between the pair's nodes (not their peer transport) or the pods, and says which way", () => {
    const o = { nodes: ["198.51.100.10", "203.0.113.10"] as [string, string], pods: ["10.40.0.1", "10.32.0.2"] as [string, string], peerPorts: new Set([7946]), minBytes: 600 };
    const pkt = (src: string, dst: string, ports: [number, number], bytes: number): CapturedPacket => {
      const data = udpFrame(src, dst, ports, Buffer.alloc(bytes - 42));
      return { timeUs: 0, linkType: 1, wireLength: data.length, data };
    };
    expect(exchangeDirection(pkt("198.51.100.10", "203.0.113.10", [40000, 6784], 700), o)).toBe("there");
    expect(exchangeDirection(pkt("203.0.113.10", "198.51.100.10", [40000, 6784], 700), o)).toBe("back");
    // Routed as they are (no overlay): the pods' own packets.
    expect(exchangeDirection(pkt("10.32.0.2", "10.40.0.1", [8080, 40000], 650), o)).toBe("back");
    // Overlay chatter (an MLD report flooded over vxlan) is too short to carry the payload.
    expect(exchangeDirection(pkt("198.51.100.10", "203.0.113.10", [40000, 6784], 140), o)).toBeUndefined();
    // Another node, the datastore, or a UDP packet on the peer port's number is not the pair's... only TCP on the peer port is the control plane.
    expect(exchangeDirection(pkt("198.51.100.10", "198.51.100.254", [40000, 2379], 700), o)).toBeUndefined();
    expect(exchangeDirection(pkt("198.51.100.10", "203.0.113.10", [7946, 7946], 700), o)).toBe("there");
    const tcp = pkt("198.51.100.10", "203.0.113.10", [52614, 7946], 700);
    tcp.data[14 + 9] = 6;
    expect(exchangeDirection(tcp, o)).toBeUndefined();
  });

  it("crossNodeSample takes every direction between nodes before a second pair of any, up to the bound", () => {
    const pods = ["a1", "a2", "b1", "b2", "c1"].map((name) => ({ name, node: name[0]! }));
    const all = crossNodeSample(pods, 100);
    expect(all).toHaveLength(5 * 4 - 2 - 2);
    for (const [x, y] of all) expect(x.node).not.toBe(y.node);
    const six = crossNodeSample(pods, 6).map(([x, y]) => `${x.node}>${y.node}`);
    expect(new Set(six).size).toBe(6);
    expect(crossNodeSample(pods, KERNEL_G_PAIRS)).toHaveLength(KERNEL_G_PAIRS);
    expect(crossNodeSample([{ node: "a" }, { node: "a" }], 8)).toEqual([]);
  });
});

describe("capture.ts: a real tcpdump in a namespace (root)", () => {
  it("is capturing once started, catches up to a given packet, and stops by its PID with what it saw", async () => {
    const ns = `ckg-${process.pid}-cap`;
    await createNetns(ns);
    try {
      expect(spawnSync("ip", ["-n", ns, "link", "set", "lo", "up"]).status).toBe(0);
      const cap = await UnderlayCapture.start({ ns, ifName: "lo", maxMs: 60_000 });
      expect(cap.pid).toBeGreaterThan(0);
      // ping -p fills the payload with a pattern (16 bytes of it): the capture must show it.
      const pattern = "c0ffee00deadbeef5a5aa5a5c3c3f00f";
      const ping = spawnSync("ip", ["netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "2", "-p", pattern, "127.0.0.1"], { encoding: "utf8" });
      expect(ping.status, ping.stderr).toBe(0);
      expect(await cap.waitFor(Buffer.from(pattern, "hex"), 10_000)).toBe(true);
      const res = await cap.stop();
      expect(res.stderr).toMatch(/listening on lo/);
      expect(res.droppedByKernel).toBe(0);
      const hits = packetsWith(res.packets, [Buffer.from(pattern, "hex")]);
      // The echo request and its reply.
      expect(hits.length).toBeGreaterThanOrEqual(2);
      expect(ipv4Of(hits[0]!)).toMatchObject({ src: "127.0.0.1", dst: "127.0.0.1", protocol: 1 });
      // Stopped: the PID it started is gone, and stop is idempotent.
      expect(existsSync(`/proc/${cap.pid}/cmdline`) && spawnSync("cat", [`/proc/${cap.pid}/cmdline`], { encoding: "utf8" }).stdout.includes("tcpdump")).toBe(false);
      expect((await cap.stop()).packets.length).toBe(res.packets.length);
    } finally {
      await deleteNetns(ns);
    }
  }, 60_000);

  it("refuses an interface that does not exist, in tcpdump's words", async () => {
    const ns = `ckg-${process.pid}-bad`;
    await createNetns(ns);
    try {
      await expect(UnderlayCapture.start({ ns, ifName: "nosuch0" })).rejects.toThrow(/tcpdump on nosuch0 in ckg-\d+-bad is not capturing: .*nosuch0/s);
    } finally {
      await deleteNetns(ns);
    }
  }, 60_000);
});

/**
 * A project outside the workspace whose module wraps weave in a backend that says it encrypts
 * whatever its config: its summary claims `encrypted: true`, its datapath does what the config says.
 */
function claimsEncryptionProject(): { dir: string; module: string } {
  const dir = join(tmp, "liar");
  const root = fileURLToPath(new URL("../../", import.meta.url));
  mkdirSync(join(dir, "node_modules", "@cnikit"), { recursive: true });
  for (const pkg of ["core", "weave"]) {
    if (!existsSync(join(dir, "node_modules", "@cnikit", pkg))) symlinkSync(resolve(root, pkg), join(dir, "node_modules", "@cnikit", pkg));
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "liar-cni", type: "module", private: true }));
  const module = join(dir, "weave-claims-encryption.mjs");
  writeFileSync(
    module,
    `import { defineBackend } from "@cnikit/core";
import { weave } from "@cnikit/weave";
export const liar = defineBackend({
  ...weave,
  name: "weave-claims-encryption",
  summarize: (config, cluster) => ({ ...weave.summarize(config, cluster), encrypted: true }),
});
`,
  );
  return { dir, module };
}

/** Section G alone on a 2-node lab of weave with `config`, wrapped to claim encryption; the lab is gone afterwards. */
async function runClaimer(o: {
  config: Record<string, string>;
  label: string;
  podsPerNode: number;
  suffix: string;
  prepare?: LinuxConformanceOptions["prepare"];
}): Promise<{ report: LinuxConformanceReport; g: CheckResult }> {
  const { dir, module } = claimsEncryptionProject();
  const mod = (await import(module)) as { liar: LinuxConformanceOptions["backend"] };
  const name = labName(o.suffix);
  const report = await runLinuxConformance({
    backend: mod.liar,
    backendModule: { module: "./weave-claims-encryption.mjs", from: dir, export: "liar" },
    config: o.config,
    configLabel: o.label,
    nodes: 2,
    podsPerNode: o.podsPerNode,
    name,
    checks: ["encryption.no-plaintext"],
    ...(o.prepare ? { prepare: o.prepare } : {}),
  });
  expect(report.backend).toBe("weave-claims-encryption");
  expect(await leftovers(name)).toEqual([]);
  return { report, g: result(report) };
}

describe("encryption.no-plaintext on the kernel", () => {
  it("is 'not claimed' exactly as in the simulator: weave fastdp (no password) and flannel (no encryption capability), without building a lab", async () => {
    const t0 = performance.now();
    const w = await runLinuxConformance({ backend: "weave", mode: "fastdp", nodes: 2, name: labName("n"), checks: ["G"] });
    expect(result(w)).toMatchObject({ status: "not claimed", reason: "this config does not encrypt (summarize says encrypted: false)" });
    expect(w.lab).toBeUndefined();
    const sl = await runLinuxConformance({ backend: "weave", mode: "sleeve", nodes: 2, name: labName("o"), checks: ["G"] });
    expect(result(sl)).toMatchObject({ status: "not claimed", reason: "this config does not encrypt (summarize says encrypted: false)" });
    const f = await runLinuxConformance({ backend: "flannel", mode: "vxlan", nodes: 2, name: labName("m"), checks: ["encryption.no-plaintext"] });
    expect(result(f)).toMatchObject({ status: "not claimed", reason: "capabilities.encryption is false" });
    expect(performance.now() - t0).toBeLessThan(20_000);
  }, 60_000);

  it("FAILS on weave fastdp wrapped to claim encryption: the marker is seen in plaintext on the underlay, naming it, the pair, the protocol and the node", async () => {
    const { report: r, g } = await runClaimer({ config: {}, label: "fastdp-claims-encryption", podsPerNode: 2, suffix: "l" });
    expect(g.status, renderTable([r])).toBe("failed");
    expect(g.reason).toMatch(/^\d+ of 16 exchanges: /);
    expect(g.reason).toMatch(
      /(tcp|udp) from pod default\/pod-\d-\d \(10\.[\d.]+\) on node node-\d to pod default\/pod-\d-\d \(10\.[\d.]+\) on node node-\d: the marker cnikit-g-(tcp|udp)-[0-9a-f]{32} crosses the underlay in plaintext on node node-1 \(eth0, \d+ packet\(s\), e.g. [\d.]+ → [\d.]+ udp \d+→\d+, \d+ bytes\) and on node node-2 \(eth0, /,
    );
    // 4 pods on 2 nodes: all 8 ordered cross-node pairs, TCP and UDP each, every one caught in the clear on both nodes.
    const subs = g.subResults ?? [];
    expect(subs).toHaveLength(16);
    for (const s of subs) {
      expect(s.status, s.label).toBe("failed");
      expect(s.reason, s.label).toMatch(/ crosses the underlay in plaintext on node node-1 \(eth0, .* and on node node-2 \(eth0, /);
      // The capture saw the exchange on both nodes (the proof it could see).
      expect(s.label).toMatch(/: packets of the exchange \(600\+ bytes between the nodes\) [1-9]\d* there, [1-9]\d* back on node-1, [1-9]\d* there, [1-9]\d* back on node-2$/);
    }
    expect(subs.filter((s) => s.label.startsWith("tcp ")).length).toBe(8);
  }, 300_000);

  it("FAILS on weave's sleeve without a password wrapped to claim encryption too (the userspace relay's UDP carries the marker in the clear)", async () => {
    const { report: r, g } = await runClaimer({ config: { WEAVE_NO_FASTDP: "1" }, label: "sleeve-claims-encryption", podsPerNode: 1, suffix: "v" });
    expect(g.status, renderTable([r])).toBe("failed");
    expect(g.reason).toMatch(/^4 of 4 exchanges: /);
    // Weave's sleeve port, both ends.
    expect(g.reason).toMatch(/the marker cnikit-g-(tcp|udp)-[0-9a-f]{32} crosses the underlay in plaintext on node node-1 \(eth0, \d+ packet\(s\), e.g. [\d.]+ → [\d.]+ udp 6783→6783, /);
  }, 300_000);

  it("passes on weave `encrypted` (the sealed sleeve): no marker in any captured packet, every exchange seen both ways on both nodes", async () => {
    const name = labName("e");
    const r = await runLinuxConformance({ backend: "weave", mode: "encrypted", nodes: 2, podsPerNode: 2, name, checks: ["G"] });
    const g = result(r);
    expect(g.status, `${renderTable([r])}\n${g.reason ?? ""}`).toBe("passed");
    const subs = g.subResults ?? [];
    expect(subs).toHaveLength(16);
    for (const s of subs) {
      expect(s.status, s.reason).toBe("passed");
      expect(s.label).toMatch(
        /^(tcp|udp) pod-\d-\d \(node-\d\) → pod-\d-\d \(node-\d\): packets of the exchange \(600\+ bytes between the nodes\) [1-9]\d* there, [1-9]\d* back on node-1, [1-9]\d* there, [1-9]\d* back on node-2; the marker in none$/,
      );
    }
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it("a marker that never reaches the underlay does not pass: with pod-1-1 sending nothing (nft drops its output and ARP), its exchanges fail as not completed and not seen by the captures, not as clean", async () => {
    const { report: r, g } = await runClaimer({
      config: {},
      label: "fastdp-claims-encryption",
      podsPerNode: 1,
      suffix: "s",
      prepare: async (lab) => {
        const nft = await lab.exec("pod-1-1", ["nft", "-f", "-"], {
          input:
            'table inet gmute {\n chain o {\n  type filter hook output priority 0; policy accept;\n  oifname "eth0" drop\n }\n}\ntable arp gmutearp {\n chain o {\n  type filter hook output priority 0; policy drop;\n }\n}\n',
        });
        expect(nft.code, nft.stderr).toBe(0);
      },
    });
    expect(g.status, renderTable([r])).toBe("failed");
    const silent = (g.subResults ?? []).filter((s) => / pod-1-1 \(node-1\) → /.test(s.label));
    expect(silent.map((s) => s.label)).toEqual([
      "tcp pod-1-1 (node-1) → pod-2-1 (node-2): packets of the exchange (600+ bytes between the nodes) 0 there, 0 back on node-1, 0 there, 0 back on node-2",
      "udp pod-1-1 (node-1) → pod-2-1 (node-2): packets of the exchange (600+ bytes between the nodes) 0 there, 0 back on node-1, 0 there, 0 back on node-2",
    ]);
    for (const s of silent) {
      expect(s.status).toBe("failed");
      expect(s.reason).toMatch(/: the exchange did not complete \(.+\), so the capture cannot vouch for it/);
      for (const node of ["node-1", "node-2"]) {
        expect(s.reason).toContain(
          `the capture on node ${node}'s eth0 saw no packet of 600+ bytes from 198.51.100.10 to 203.0.113.10 nor from 203.0.113.10 to 198.51.100.10 (nor between the pods) during the exchange`,
        );
      }
      expect(s.reason).not.toMatch(/crosses the underlay in plaintext/);
    }
  }, 300_000);
});
