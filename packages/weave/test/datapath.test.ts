// weave's userspace datapath (src/datapath.ts) without root: two nodes at 127.0.0.1 and 127.0.0.2
// with in-memory TAPs. ensure() starts a relay once (again when the link changes), setFdb() gives it
// its peers from the sleeve link's flood entries, keys come from the password alone, status() has a
// line per device, and bad links are refused naming the field. The real TAP runs in kernel.test.ts.
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger, type FdbEntry, type Link, type NodeInfo } from "@cnikit/core";
import { parseWeaveConfig } from "../src/config.ts";
import { WeaveSleeveDatapath } from "../src/datapath.ts";
import { frame, MemoryDevice, until } from "./sleeve-fixtures.ts";

const PORT = 20000 + (process.pid % 20000);
const started: WeaveSleeveDatapath[] = [];
afterEach(async () => {
  for (const d of started.splice(0)) await d.stop();
});

function node(address: string): NodeInfo {
  return { name: `n-${address}`, underlay: [{ iface: "eth0", address, prefixLength: 8 }] };
}

function datapath(address: string, env: Record<string, string>): { dp: WeaveSleeveDatapath; devices: MemoryDevice[] } {
  const devices: MemoryDevice[] = [];
  const dp = new WeaveSleeveDatapath(
    { config: parseWeaveConfig(env), node: node(address), log: silentLogger },
    {
      device: (ifname) => {
        const d = new MemoryDevice(ifname);
        devices.push(d);
        return d;
      },
      relay: { handshakeIntervalMs: 50 },
    },
  );
  started.push(dp);
  return { dp, devices };
}

const sleeve = (encrypted: boolean): Link => ({ kind: "sleeve", name: "sleeve-6783", master: "weave", mtu: 1418, port: PORT, encrypted });
const flood = (dst: string): FdbEntry => ({ dev: "sleeve-6783", mac: "00:00:00:00:00:00", dst, permanent: true });

describe("WeaveSleeveDatapath", () => {
  it("carries frames between two nodes over the encrypted sleeve, peers from the FDB, keys from the password", async () => {
    const env = { WEAVE_PASSWORD: "datapath-test-password" };
    const a = datapath("127.0.0.1", env);
    const b = datapath("127.0.0.2", env);
    expect(await a.dp.ensure(sleeve(true))).toBe(true);
    expect(await a.dp.ensure(sleeve(true))).toBe(false);
    expect(await b.dp.ensure(sleeve(true))).toBe(true);
    expect(a.dp.has("sleeve-6783")).toBe(true);
    // Its own address in the FDB is not a peer; duplicates count once.
    a.dp.setFdb("sleeve-6783", [flood("127.0.0.2"), flood("127.0.0.2"), flood("127.0.0.1")]);
    b.dp.setFdb("sleeve-6783", [flood("127.0.0.1")]);
    await until("sessions", () => a.dp.status()[0]!.includes("sessions 1/1") && b.dp.status()[0]!.includes("sessions 1/1"));
    a.devices[0]!.emit(frame("02:00:00:00:00:0b", "02:00:00:00:00:0a", "over the sleeve"));
    await b.devices[0]!.until(1);
    expect(Buffer.from(b.devices[0]!.received[0]!).subarray(14).toString()).toBe("over the sleeve");
    expect(a.dp.status()).toEqual([expect.stringMatching(/^sleeve sleeve-6783: 1 peer, 0 MACs; in 0 frames\/0 B, out 1 frames.*sessions 1\/1/)]);
  });

  it("starts a new relay when the link changes, keeps the peers, removes and stops", async () => {
    const a = datapath("127.0.0.1", { WEAVE_PASSWORD: "pw-for-the-test" });
    await a.dp.ensure(sleeve(false));
    a.dp.setFdb("sleeve-6783", [flood("127.0.0.2")]);
    expect(await a.dp.ensure(sleeve(true))).toBe(true);
    expect(a.devices).toHaveLength(2);
    expect(a.devices[0]!.stopped).toBe(true);
    expect(a.dp.status()[0]).toMatch(/1 peer/);
    await a.dp.remove("sleeve-6783");
    expect(a.dp.has("sleeve-6783")).toBe(false);
    expect(a.devices[1]!.stopped).toBe(true);
    await a.dp.stop();
    await expect(a.dp.ensure(sleeve(false))).rejects.toThrow(/stopped/);
  });

  it("refuses an encrypted link without WEAVE_PASSWORD and a link of another kind, naming the field", async () => {
    const a = datapath("127.0.0.1", { WEAVE_NO_FASTDP: "1" });
    await expect(a.dp.ensure(sleeve(true))).rejects.toMatchObject({ code: 7, field: "links(sleeve-6783).encrypted" });
    await expect(a.dp.ensure({ kind: "vxlan", name: "vxlan-6784", vni: 1, port: 6784, local: "127.0.0.1", learning: true })).rejects.toMatchObject({ code: 7, field: "links(vxlan-6784).kind" });
    expect(a.devices).toHaveLength(0);
  });
});
