/**
 * The VNet allocator in the simulator, through the simulator's own fabric port (which refuses a
 * router's, an external host's or another node's address): a tiny backend whose agents do nothing,
 * so what is checked is the controller alone — the secondary addresses nodes see in their member
 * records (classic) and the routes the fabric carries (overlay).
 */
import { NotReadyError, defineBackend, emptyDataplane, type AgentContext, type NodeAgent } from "@cnikit/core";
import { SimCluster, defaultTopology } from "@cnikit/sim";
import { describe, expect, it } from "vitest";
import { parseAzureConfig, type AzureConfig } from "../src/config.ts";
import { createAzureController } from "../src/controller.ts";

function idleAgent(ctx: AgentContext<AzureConfig>): NodeAgent {
  return {
    start: async () => undefined,
    stop: async () => undefined,
    attach: async () => {
      throw new NotReadyError("[test] this agent attaches nothing");
    },
    detach: async () => undefined,
    check: async () => undefined,
    gc: async () => undefined,
    status: () => ({ ready: true }),
    dataplane: () => emptyDataplane(ctx.node.name),
    onDataplaneChange: () => () => undefined,
  };
}

const controllerOnly = defineBackend<AzureConfig>({
  name: "azure-controller-test",
  capabilities: { networkPolicy: false, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: parseAzureConfig,
  summarize: () => ({ podRanges: [], natOutgoing: false, encapsulations: ["none"], convergenceMs: 1_000, crashDetectionMs: 1_000 }),
  createAgent: idleAgent,
  createController: createAzureController,
});

describe("azure controller in the simulator", () => {
  it("classic: every node sees exactly maxPods secondary addresses of its own subnet; a clean leave gives them back", async () => {
    const c = SimCluster.create({ backend: controllerOnly, config: parseAzureConfig({ maxPods: 10 }), topology: defaultTopology(), seed: 1 });
    await c.addNodes(4);
    await c.settle();
    expect(c.controllerStatus()).toEqual({ ready: true });
    const all = new Set<string>();
    for (const m of c.members.list()) {
      const u = m.underlay[0]!;
      expect(u.secondaryAddresses).toHaveLength(10);
      for (const a of u.secondaryAddresses!) {
        expect(a.split(".").slice(0, 3).join(".")).toBe(u.address.split(".").slice(0, 3).join("."));
        expect(a).not.toBe(u.gateway);
        all.add(a);
      }
    }
    expect(all.size).toBe(40);
    const gone = c.members.list()[0]!.name;
    await c.removeNode(gone, { mode: "clean" });
    await c.settle();
    expect((await c.fabricPort.secondaryAddresses()).filter((a) => a.node === gone)).toEqual([]);
    expect(await c.fabricPort.secondaryAddresses()).toHaveLength(30);
    await c.close();
  });

  it("overlay: every node's /24 is routed on the fabric; a crashed node keeps it, a clean leave withdraws it", async () => {
    const c = SimCluster.create({ backend: controllerOnly, config: parseAzureConfig({ networkPluginMode: "overlay" }), topology: defaultTopology(), seed: 1 });
    await c.addNodes(3);
    await c.settle();
    const names = c.members.list().map((m) => m.name);
    expect(await c.fabricPort.routes()).toEqual(names.map((node, i) => ({ dst: `10.244.${i}.0/24`, node })));
    await c.removeNode(names[1]!, { mode: "crash" });
    await c.settle();
    expect((await c.fabricPort.routes()).map((r) => r.node)).toEqual(names);
    await c.removeNode(names[2]!, { mode: "clean" });
    await c.settle();
    expect((await c.fabricPort.routes()).map((r) => r.node)).toEqual(names.slice(0, 2));
    await c.close();
  });
});
