/**
 * The VNet allocator in dynamic mode (DynamicIndividual): NodeNetworkConfig specs in, statuses
 * out; every assigned address routed (/32 on the fabric) before the status lists it; only given
 * back addresses are taken back; short supply split fairly, the scaler collapsed everywhere, and
 * the flag cleared only once a full batch is free again.
 */
import { Prefix } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { RESYNC_MS, RETRY_MS } from "../src/controller.ts";
import { collapsedScaler } from "../src/pool.ts";
import { harness, node } from "./controller-harness.ts";

const GW = "198.51.100.1";
const SCALER = { batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150, maxIPCount: 250 };

describe("azure controller, dynamic", () => {
  it("a request of 32 gets 32 distinct addresses, each with a /32 fabric route to the node, none reserved, none a node's", async () => {
    // n9 sits inside the pod subnet: its address and gateway must never be handed out.
    const h = harness({ podSubnet: "10.1.0.0/24" }, [node("n1", "198.51.100.11", 24, GW), node("n9", "10.1.0.5", 24, "10.1.0.4")]);
    await h.start();
    expect((await h.statuses()).get("n1")).toMatchObject({ state: "Updated", assignedIPs: [], version: 0, subnet: "10.1.0.0/24", mode: "dynamic" });
    await h.writeSpec("n1", { requestedIPCount: 32 });
    await h.settle();
    const s = (await h.statuses()).get("n1")!;
    expect(s).toMatchObject({ state: "Updated", version: 1, subnetExhausted: false, scaler: SCALER });
    expect(new Set(s.assignedIPs).size).toBe(32);
    const pool = Prefix.parse("10.1.0.0/24");
    for (const a of s.assignedIPs) {
      expect(pool.contains(a)).toBe(true);
      expect(["10.1.0.0", "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.255", "10.1.0.4", "10.1.0.5"]).not.toContain(a);
    }
    const routes = await h.fabric.routes();
    expect(routes).toEqual(s.assignedIPs.map((a) => ({ dst: `${a}/32`, node: "n1" })).sort((x, y) => (x.dst < y.dst ? -1 : 1)));
    const [state] = await h.subnetStates();
    expect(state).toMatchObject({ cidr: "10.1.0.0/24", usable: 251, nodeAddresses: 2, assigned: 32, free: 251 - 2 - 32, exhausted: false });
  });

  it("takes back exactly the ipsNotInUse (routes deleted) and never an address the node did not give back", async () => {
    const h = harness({ podSubnet: "10.1.0.0/24" }, [node("n1", "198.51.100.11", 24, GW), node("n2", "198.51.100.12", 24, GW)]);
    await h.start();
    await h.writeSpec("n1", { requestedIPCount: 32 });
    await h.writeSpec("n2", { requestedIPCount: 16 });
    await h.settle();
    const first = await h.statuses();
    const n1 = first.get("n1")!.assignedIPs;
    const n2 = first.get("n2")!.assignedIPs;
    const back = n1.slice(24);
    // n1 gives back 8 and also names one of n2's addresses: that one stays n2's.
    await h.writeSpec("n1", { requestedIPCount: 24, ipsNotInUse: [...back, n2[0]!] });
    await h.settle();
    const second = await h.statuses();
    expect(second.get("n1")!.assignedIPs).toEqual(n1.slice(0, 24));
    expect(second.get("n1")!.version).toBe(2);
    expect(second.get("n2")).toEqual(first.get("n2"));
    const routes = new Set((await h.fabric.routes()).map((r) => r.dst));
    for (const a of back) expect(routes.has(`${a}/32`)).toBe(false);
    expect(routes.has(`${n2[0]}/32`)).toBe(true);
    // A lower request without ipsNotInUse removes nothing.
    await h.writeSpec("n1", { requestedIPCount: 8 });
    await h.settle();
    expect((await h.statuses()).get("n1")!.assignedIPs).toHaveLength(24);
  });

  it("an address a node gives back is not handed back to it while its spec still lists it (no flapping)", async () => {
    const h = harness({ podSubnet: "10.1.0.0/24" }, [node("n1", "198.51.100.11", 24, GW)]);
    await h.start();
    await h.writeSpec("n1", { requestedIPCount: 16 });
    await h.settle();
    const first = (await h.statuses()).get("n1")!.assignedIPs;
    // It gives back its lowest address but still wants 16: a replacement, never the same one.
    await h.writeSpec("n1", { requestedIPCount: 16, ipsNotInUse: [first[0]!] });
    await h.settle();
    const second = (await h.statuses()).get("n1")!;
    expect(second.assignedIPs).toHaveLength(16);
    expect(second.assignedIPs).not.toContain(first[0]);
    expect(second.state).toBe("Updated");
    expect((await h.fabric.routes()).map((r) => r.dst)).not.toContain(`${first[0]}/32`);
    const rev = await h.store.revision();
    await h.settle(RESYNC_MS);
    expect((await h.statuses()).get("n1")).toEqual(second);
    expect(await h.store.revision()).toBe(rev);
  });

  it("exhaustion: short supply split fewest-held first, every scaler collapsed; a release serves another node; the flag clears only once every node's full-scaler batch fits", async () => {
    // A /27: 32 − 5 = 27 usable.
    const h = harness({ podSubnet: "10.1.0.0/27" }, [node("n1", "198.51.100.11", 24, GW), node("n2", "198.51.100.12", 24, GW), node("n3", "198.51.100.13", 24, GW)]);
    await h.start();
    await h.writeSpec("n1", { requestedIPCount: 20 });
    await h.settle();
    expect((await h.statuses()).get("n1")!.assignedIPs).toHaveLength(20);
    // n2 asks 16 and n1 4 more with 7 free: n2 (holding 0) is served first.
    await h.writeSpec("n1", { requestedIPCount: 24 });
    await h.writeSpec("n2", { requestedIPCount: 16 });
    await h.settle();
    let st = await h.statuses();
    expect(st.get("n1")!.assignedIPs).toHaveLength(20);
    expect(st.get("n2")!.assignedIPs).toHaveLength(7);
    for (const name of ["n1", "n2", "n3"]) {
      expect(st.get(name)).toMatchObject({ subnetExhausted: true, scaler: collapsedScaler(SCALER) });
    }
    expect(st.get("n1")!.state).toBe("Updating");
    expect(st.get("n2")!.state).toBe("Updating");
    expect(st.get("n3")!.state).toBe("Updated");
    expect((await h.subnetStates())[0]).toMatchObject({ assigned: 27, free: 0, exhausted: true });

    // n1 gives back 12 and asks for 8: n2 gets its 9 more and n1's 4-more request is gone.
    const n1 = st.get("n1")!.assignedIPs;
    await h.writeSpec("n1", { requestedIPCount: 8, ipsNotInUse: n1.slice(8) });
    await h.settle();
    st = await h.statuses();
    expect(st.get("n1")!.assignedIPs).toEqual(n1.slice(0, 8));
    expect(st.get("n2")!.assignedIPs).toHaveLength(16);
    expect(st.get("n2")!.state).toBe("Updated");
    // Every request served, but only 3 free (< one batch of 16): still collapsed (hysteresis).
    expect((await h.subnetStates())[0]).toMatchObject({ free: 3, exhausted: true });
    expect(st.get("n2")!.subnetExhausted).toBe(true);
    const owners = new Map((await h.fabric.routes()).map((r) => [r.dst, r.node]));
    for (const [name, s] of st) for (const a of s.assignedIPs) expect(owners.get(`${a}/32`)).toBe(name);

    // n2 gives back everything: 19 free ≥ 16, but under Azure's scaler the three nodes would ask
    // a batch each (16 − 8 + 16 + 16 = 40 > 19) and exhaust it again: still collapsed, no flapping.
    await h.writeSpec("n2", { requestedIPCount: 0, ipsNotInUse: st.get("n2")!.assignedIPs });
    await h.settle();
    expect((await h.subnetStates())[0]).toMatchObject({ free: 19, exhausted: true });
    // n2 and n3 leave: n1's batch (8 more) fits in the 19 free: the flag clears, Azure's scaler again.
    h.members.remove("n2");
    h.members.remove("n3");
    await h.settle();
    st = await h.statuses();
    expect((await h.subnetStates())[0]).toMatchObject({ free: 19, exhausted: false });
    for (const s of st.values()) expect(s).toMatchObject({ subnetExhausted: false, scaler: SCALER });
  });

  it("a restarted controller keeps every node's addresses and writes nothing; a node that left loses them and its routes", async () => {
    const h = harness({ podSubnet: "10.1.0.0/24" }, [node("n1", "198.51.100.11", 24, GW), node("n2", "198.51.100.12", 24, GW)]);
    await h.start();
    await h.writeSpec("n1", { requestedIPCount: 16 });
    await h.writeSpec("n2", { requestedIPCount: 32 });
    await h.settle();
    await h.restartUnchanged();

    h.members.remove("n1");
    await h.settle();
    expect((await h.statuses()).has("n1")).toBe(false);
    expect((await h.fabric.routes()).every((r) => r.node === "n2")).toBe(true);
    expect(await h.fabric.routes()).toHaveLength(32);
  });

  it("a node without an IPv4 underlay gets an Error and nothing; the others are still served", async () => {
    const v6 = { name: "v6", underlay: [{ iface: "eth0", address: "fd00::5", prefixLength: 64 }] };
    const h = harness({ podSubnet: "10.1.0.0/24" }, [node("n1", "198.51.100.11", 24, GW), v6]);
    await h.start();
    await h.writeSpec("n1", { requestedIPCount: 16 });
    await h.writeSpec("v6", { requestedIPCount: 16 });
    await h.settle();
    const st = await h.statuses();
    expect(st.get("v6")).toMatchObject({ state: "Error", assignedIPs: [] });
    expect(st.get("v6")!.reason).toMatch(/no IPv4 underlay/);
    expect(st.get("n1")!.assignedIPs).toHaveLength(16);
    expect(h.controller.status()).toEqual({ ready: true });
  });

  it("a TryAgain from the fabric midway through a grant leaves no status listing an unrouted address; the retry completes", async () => {
    const h = harness({ podSubnet: "10.1.0.0/24" }, [node("n1", "198.51.100.11", 24, GW)]);
    await h.start();
    h.fabric.arm({ method: "setRoute", after: 10 });
    await h.writeSpec("n1", { requestedIPCount: 32 });
    await h.settle();
    expect((await h.statuses()).get("n1")!.assignedIPs).toEqual([]);
    expect(h.controller.status().ready).toBe(false);
    await h.settle(RETRY_MS);
    const s = (await h.statuses()).get("n1")!;
    expect(s.assignedIPs).toHaveLength(32);
    expect((await h.fabric.routes()).map((r) => r.dst).sort()).toEqual(s.assignedIPs.map((a) => `${a}/32`).sort());
    expect(h.controller.status()).toEqual({ ready: true });
  });
});
