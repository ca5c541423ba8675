/**
 * The VNet allocator in classic mode (Node Subnet): every node holds exactly maxPods secondary
 * addresses of its own subnet, a join that the AKS formula refuses allocates nothing, a leave gives
 * everything back, a failed fabric call midway through a join leaves no partial reservation.
 */
import { describe, expect, it } from "vitest";
import { RESYNC_MS, RETRY_MS } from "../src/controller.ts";
import { harness, node } from "./controller-harness.ts";

const GW = "198.51.100.1";
const seven = Array.from({ length: 7 }, (_, i) => node(`n${i + 1}`, `198.51.100.${10 + i}`, 24, GW));
const eighth = node("n8", "198.51.100.17", 24, GW);
const reserved = ["198.51.100.0", "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.255"];

describe("azure controller, classic", () => {
  it("AKS#456: a /24 at maxPods 30 and surge 1 takes 7 nodes; the 8th is refused with AKS's text and allocates nothing", async () => {
    const h = harness({ maxPods: 30 }, seven);
    await h.start();
    const before = await h.fabric.secondaryAddresses();
    expect(before).toHaveLength(7 * 30);
    const statuses = await h.statuses();
    for (const m of seven) {
      const s = statuses.get(m.name)!;
      expect(s.state).toBe("Updated");
      expect(s.assignedIPs).toHaveLength(30);
      expect(s.subnet).toBe("198.51.100.0/24");
      expect(s.blocks).toEqual([]);
      expect(s.version).toBe(1);
      expect(s.assignedIPs.some((a) => reserved.includes(a) || seven.some((n) => n.underlay[0]!.address === a))).toBe(false);
    }
    expect(new Set(before.map((a) => a.address)).size).toBe(210);

    h.members.set(eighth);
    await h.settle();
    const refused = (await h.statuses()).get("n8")!;
    expect(refused.state).toBe("Error");
    expect(refused.reason).toMatch(/^Pre-allocated IPs 279 exceeds IPs available 251: /);
    expect(refused.assignedIPs).toEqual([]);
    expect(await h.fabric.secondaryAddresses()).toEqual(before);
    const [state] = await h.subnetStates();
    expect(state).toMatchObject({ cidr: "198.51.100.0/24", usable: 251, nodeAddresses: 8, assigned: 210, free: 251 - 8 - 210, nodesThatFit: 0, exhausted: true });
    expect(h.controller.report().nodes.find((n) => n.name === "n8")).toMatchObject({ assigned: 0, state: "Error" });

    // Retried on every reconcile, and still refused: still nothing allocated.
    await h.settle(RESYNC_MS);
    expect(await h.fabric.secondaryAddresses()).toEqual(before);
  });

  it("a node that leaves gives back all maxPods; the refused node then fits", async () => {
    const h = harness({ maxPods: 30 }, [...seven, eighth]);
    await h.start();
    const st = await h.statuses();
    expect(st.get("n8")!.state).toBe("Error");
    const n3 = st.get("n3")!.assignedIPs;

    h.members.remove("n3");
    await h.settle();
    const after = await h.statuses();
    expect(after.has("n3")).toBe(false);
    const held = await h.fabric.secondaryAddresses();
    expect(held.filter((a) => a.node === "n3")).toEqual([]);
    // The refused node was retried in the same reconcile and took exactly maxPods.
    const n8 = after.get("n8")!;
    expect(n8.state).toBe("Updated");
    expect(n8.reason).toBeUndefined();
    expect(n8.assignedIPs).toHaveLength(30);
    expect(
      held
        .filter((a) => a.node === "n8")
        .map((a) => a.address)
        .sort(),
    ).toEqual([...n8.assignedIPs].sort());
    // It got the lowest free addresses: the ones n3 gave back, and n3's own address.
    expect(n8.assignedIPs.every((a) => n3.includes(a) || a === "198.51.100.12")).toBe(true);
    expect(held).toHaveLength(7 * 30);
    const [state] = await h.subnetStates();
    expect(state).toMatchObject({ assigned: 210, exhausted: false, nodesThatFit: 0 });
  });

  it("a TryAgain from the fabric midway through a join leaves no partial reservation; the retry completes it", async () => {
    const h = harness({ maxPods: 30 }, seven.slice(0, 2));
    await h.start();
    const before = await h.fabric.secondaryAddresses();
    h.fabric.arm({ method: "addSecondaryAddress", after: 12 });
    h.members.set(seven[2]!);
    await h.settle();
    expect(await h.fabric.secondaryAddresses()).toEqual(before);
    expect((await h.statuses()).has("n3")).toBe(false);
    const status = h.controller.status();
    expect(status.ready).toBe(false);
    expect(status.reason).toMatch(/fabric unreachable/);
    expect(h.controller.report()).toMatchObject({ failures: 1 });

    await h.settle(RETRY_MS);
    expect(h.controller.status()).toEqual({ ready: true });
    const held = await h.fabric.secondaryAddresses();
    expect(held.filter((a) => a.node === "n3")).toHaveLength(30);
    expect((await h.statuses()).get("n3")!.state).toBe("Updated");
  });

  it("an address the fabric refuses (in use outside our view) is skipped from then on and counted as used", async () => {
    const h = harness({ maxPods: 30 }, seven.slice(0, 1));
    h.fabric.refuse.add("198.51.100.6");
    await h.start();
    expect(h.controller.status().ready).toBe(false);
    expect(await h.fabric.secondaryAddresses()).toEqual([]);
    await h.settle(RETRY_MS);
    expect(h.controller.status()).toEqual({ ready: true });
    const mine = (await h.statuses()).get("n1")!.assignedIPs;
    expect(mine).toHaveLength(30);
    expect(mine).not.toContain("198.51.100.6");
    const [state] = await h.subnetStates();
    // 251 usable − n1's address − 30 − the refused one = 219 free; minus the surge's 31: 6 nodes more.
    expect(state).toMatchObject({ assigned: 30, free: 219, nodesThatFit: 6 });
  });

  it("a restarted controller keeps every reservation and the refusal, and writes nothing", async () => {
    const h = harness({ maxPods: 30 }, [...seven, eighth]);
    await h.start();
    const before = await h.restartUnchanged();
    expect(before.get("n8")!.state).toBe("Error");
    expect(h.controller.report().subnets).toEqual(await h.subnetStates());
  });

  it("a reconcile that changes nothing writes nothing", async () => {
    const h = harness({ maxPods: 30 }, seven.slice(0, 3));
    await h.start();
    const rev = await h.store.revision();
    const reconciles = h.controller.report().reconciles;
    await h.settle(RESYNC_MS);
    expect(h.controller.report().reconciles).toBeGreaterThan(reconciles);
    expect(await h.store.revision()).toBe(rev);
  });

  it("a node outside vnetSubnet gets an Error naming vnetSubnet and no address", async () => {
    const h = harness({ maxPods: 30, vnetSubnet: "198.51.100.0/24" }, [seven[0]!, node("far", "203.0.113.10", 24, "203.0.113.1")]);
    await h.start();
    const st = await h.statuses();
    expect(st.get("far")).toMatchObject({ state: "Error", assignedIPs: [] });
    expect(st.get("far")!.reason).toMatch(/vnetSubnet 198\.51\.100\.0\/24/);
    expect((await h.fabric.secondaryAddresses()).filter((a) => a.node === "far")).toEqual([]);
    expect(st.get("n1")!.assignedIPs).toHaveLength(30);
  });

  it("a burst of changes while a reconcile runs merges into one next reconcile", async () => {
    const h = harness({ maxPods: 10 }, [node("a0", "198.51.100.20", 24, GW)]);
    await h.start();
    const first = h.controller.report().reconciles;
    const release = h.fabric.hold();
    h.members.set(node("a1", "198.51.100.21", 24, GW));
    await h.clock.advance(0);
    // The reconcile for a1 now waits on the fabric; nine more joins arrive meanwhile.
    for (let i = 2; i < 11; i++) h.members.set(node(`a${i}`, `198.51.100.${20 + i}`, 24, GW));
    await h.clock.advance(0);
    expect(h.controller.report().reconciles - first).toBe(1);
    release();
    await h.settle();
    expect(h.controller.report().reconciles - first).toBe(2);
    expect(await h.fabric.secondaryAddresses()).toHaveLength(110);
  });

  it("nodes on two subnets are sized per subnet, with exact headroom", async () => {
    const h = harness({ maxPods: 10 }, []);
    await h.start();
    for (let i = 0; i < 5; i++) h.members.set(node(`a${i}`, `198.51.100.${20 + i}`, 24, GW));
    for (let i = 0; i < 5; i++) h.members.set(node(`b${i}`, `203.0.113.${20 + i}`, 24, "203.0.113.1"));
    await h.settle();
    const held = await h.fabric.secondaryAddresses();
    expect(held).toHaveLength(100);
    for (const a of held) expect(a.address.startsWith(a.node.startsWith("a") ? "198.51.100." : "203.0.113.")).toBe(true);
    const states = await h.subnetStates();
    expect(states.map((s) => [s.cidr, s.assigned])).toEqual([
      ["198.51.100.0/24", 50],
      ["203.0.113.0/24", 50],
    ]);
    // Exact headroom: floor((251 − 5 − 50 − 11 surge) / 11) = 16 more nodes on each.
    expect(states.map((s) => s.nodesThatFit)).toEqual([16, 16]);
  });
});
