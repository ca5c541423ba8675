/**
 * The VNet allocator's block modes: overlay (a /24 of podCidr per node, routed on the fabric, kept
 * across controller restarts) and static-block (ceil(maxPods / 16) /28s of podSubnet per node,
 * never a block holding one of the subnet's reserved addresses).
 */
import { describe, expect, it } from "vitest";
import { harness, node } from "./controller-harness.ts";

const GW = "198.51.100.1";
const nodes = (n: number, from = 1): ReturnType<typeof node>[] => Array.from({ length: n }, (_, i) => node(`n${from + i}`, `198.51.100.${10 + from + i}`, 24, GW));

describe("azure controller, overlay", () => {
  it("gives each member the lowest free /24 of podCidr with a fabric route; a leave frees it and withdraws the route", async () => {
    const h = harness({ networkPluginMode: "overlay", podCidr: "10.244.0.0/16" }, nodes(3));
    await h.start();
    const st = await h.statuses();
    expect([...st].map(([n, s]) => [n, s.blocks, s.state, s.subnet])).toEqual([
      ["n1", ["10.244.0.0/24"], "Updated", "10.244.0.0/16"],
      ["n2", ["10.244.1.0/24"], "Updated", "10.244.0.0/16"],
      ["n3", ["10.244.2.0/24"], "Updated", "10.244.0.0/16"],
    ]);
    expect(await h.fabric.routes()).toEqual([
      { dst: "10.244.0.0/24", node: "n1" },
      { dst: "10.244.1.0/24", node: "n2" },
      { dst: "10.244.2.0/24", node: "n3" },
    ]);
    h.members.remove("n2");
    await h.settle();
    expect((await h.statuses()).has("n2")).toBe(false);
    expect((await h.fabric.routes()).map((r) => r.dst)).toEqual(["10.244.0.0/24", "10.244.2.0/24"]);
    h.members.set(node("n4", "198.51.100.40", 24, GW));
    await h.settle();
    expect((await h.statuses()).get("n4")!.blocks).toEqual(["10.244.1.0/24"]);
  });

  it("a restarted controller keeps every node's /24 (a node that sorts first does not reshuffle them) and writes nothing", async () => {
    const h = harness({ networkPluginMode: "overlay", podCidr: "10.244.0.0/16" }, nodes(3));
    await h.start();
    h.members.remove("n1");
    await h.settle();
    const before = await h.restartUnchanged();
    h.members.set(node("a0", "198.51.100.50", 24, GW));
    await h.settle();
    const after = await h.statuses();
    expect(after.get("a0")!.blocks).toEqual(["10.244.0.0/24"]);
    expect(after.get("n2")).toEqual(before.get("n2"));
    expect(after.get("n3")).toEqual(before.get("n3"));
  });

  it("podCidr with no /24 left refuses the node with the numbers; routes no member holds are deleted", async () => {
    const h = harness({ networkPluginMode: "overlay", podCidr: "10.244.0.0/23" }, nodes(3));
    // A route for a /24 of podCidr that no member holds (a former controller's leftover).
    await h.ctx.fabric.setRoute({ dst: "10.244.1.0/24", node: "n3" });
    await h.start();
    const st = await h.statuses();
    expect(st.get("n3")).toMatchObject({ state: "Error", blocks: [], subnetExhausted: true });
    expect(st.get("n3")!.reason).toBe("podCidr 10.244.0.0/23 has no free /24 for node n3 (2 nodes hold all 2)");
    expect(await h.fabric.routes()).toEqual([
      { dst: "10.244.0.0/24", node: "n1" },
      { dst: "10.244.1.0/24", node: "n2" },
    ]);
    h.members.remove("n1");
    await h.settle();
    expect((await h.statuses()).get("n3")).toMatchObject({ state: "Updated", blocks: ["10.244.0.0/24"] });
    expect(await h.fabric.routes()).toEqual([
      { dst: "10.244.0.0/24", node: "n3" },
      { dst: "10.244.1.0/24", node: "n2" },
    ]);
  });
});

describe("azure controller, static-block", () => {
  it("gives ceil(maxPods / 16) /28s per node, never the first or last block; exhaustion names podSubnet and the numbers", async () => {
    // A /25 holds 8 /28s; the first and last hold reserved addresses, so 6 are usable: 3 nodes of 2.
    const h = harness({ podSubnet: "10.1.0.0/25", podIpAllocationMode: "StaticBlock", maxPods: 30 }, nodes(4));
    await h.start();
    const st = await h.statuses();
    expect(st.get("n1")!.blocks).toEqual(["10.1.0.16/28", "10.1.0.32/28"]);
    expect(st.get("n2")!.blocks).toEqual(["10.1.0.48/28", "10.1.0.64/28"]);
    expect(st.get("n3")!.blocks).toEqual(["10.1.0.80/28", "10.1.0.96/28"]);
    expect(st.get("n4")).toMatchObject({ state: "Error", blocks: [] });
    expect(st.get("n4")!.reason).toBe("podSubnet 10.1.0.0/25 has 0 free /28 blocks but node n4 needs 2 (3 nodes hold 6 of the 6 usable /28 blocks)");
    const routes = await h.fabric.routes();
    expect(routes).toHaveLength(6);
    for (const [name, s] of st) for (const b of s.blocks) expect(routes).toContainEqual({ dst: b, node: name });
    const [state] = await h.subnetStates();
    expect(state).toMatchObject({ cidr: "10.1.0.0/25", usable: 123, assigned: 96, free: 0, exhausted: true });
  });
});
