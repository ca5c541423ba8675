// The composition point (createFlannelAgent's components and policy): what a component hears and
// when, and the policy part of the plan input reaching the dataplane.
import { describe, expect, it } from "vitest";
import { MemoryDatastore, VirtualClock } from "@cnikit/core";
import type { FilterPolicy, LeaseId, PlanPolicy, PodRef } from "@cnikit/core";
import { createFlannelAgent } from "../src/agent.ts";
import type { FlannelAgentComponent, FlannelPod } from "../src/components.ts";
import { parseFlannelConfig } from "../src/config.ts";
import { SUBNET_PREFIX } from "../src/leases.ts";
import { agentContext, drive, nodeInfo } from "./helpers.ts";

const VX = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } });

/** A component that records what it hears and drops ingress to pods labelled `deny`. */
class Recorder implements FlannelAgentComponent {
  readonly events: string[] = [];
  readonly pods = new Map<string, FlannelPod>();
  denyAll = false;
  private listener: (() => void) | undefined;
  constructor(readonly failStart = false) {}
  start(signal: AbortSignal): Promise<void> {
    this.events.push(`start pods=${this.pods.size}`);
    signal.addEventListener("abort", () => this.events.push("aborted"), { once: true });
    return this.failStart ? Promise.reject(new Error("component could not start")) : Promise.resolve();
  }
  stop(): Promise<void> {
    this.events.push("stop");
    return Promise.resolve();
  }
  setLease(lease: LeaseId | undefined): void {
    this.events.push(`lease ${lease === undefined ? "none" : "set"}`);
  }
  onChange(listener: () => void): () => void {
    this.listener = listener;
    return () => (this.listener = undefined);
  }
  podAdded(pod: FlannelPod): void {
    this.events.push(`added ${pod.containerId}`);
    this.pods.set(`${pod.containerId}/${pod.ifName}`, pod);
  }
  podRemoved(ref: PodRef): void {
    this.events.push(`removed ${ref.containerId}`);
    this.pods.delete(`${ref.containerId}/${ref.ifName}`);
  }
  change(): void {
    this.listener?.();
  }
  policy(): PlanPolicy<FlannelPod> {
    return {
      filtersFor: ({ pods, nodeAddresses }): FilterPolicy[] =>
        pods
          .filter((p) => this.denyAll || p.labels?.deny === "yes")
          .map((p): FilterPolicy => ({
            pod: `${p.containerId}/${p.ifName}`,
            direction: "ingress",
            defaultAction: "drop",
            rules: [{ id: "node", action: "accept", peers: [{ cidrs: nodeAddresses.map((a) => `${a}/32`) }] }],
          })),
    };
  }
}

async function setup(component: Recorder, local = new MemoryDatastore({ clock: new VirtualClock() })) {
  const clock = new VirtualClock();
  const store = new MemoryDatastore({ clock });
  const ctx = agentContext({ config: VX, node: nodeInfo("a1", "a", 10), store, clock, local });
  const agent = createFlannelAgent(ctx, { components: [component], policy: () => component.policy() });
  return { clock, store, local, agent };
}

describe("components: the composition point", () => {
  it("a component starts after the lease and the restored pods, hears ADD and DEL, and stops with the agent", async () => {
    const first = new Recorder();
    const { clock, local, agent } = await setup(first);
    await drive(clock, agent.start());
    expect(first.events).toEqual(["lease set", "start pods=0"]);
    const result = await agent.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/c1", labels: { app: "x" }, ports: [{ name: "http", containerPort: 80 }] });
    const pod = first.pods.get("c1/eth0")!;
    expect(pod).toMatchObject({ containerId: "c1", ifName: "eth0", labels: { app: "x" }, ports: [{ name: "http", containerPort: 80 }] });
    expect(pod.ips).toEqual([result.ips[0]!.address.split("/")[0]]);
    expect(pod.hostIf).toBe(agent.dataplane().pods[0]!.hostIf);
    await agent.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/c2" });
    await agent.detach({ containerId: "c2", ifName: "eth0" });
    await agent.detach({ containerId: "never", ifName: "eth0" });
    expect(first.events.slice(2)).toEqual(["added c1", "added c2", "removed c2"]);
    await agent.stop();
    expect(first.events.slice(-2).sort()).toEqual(["aborted", "stop"]);

    // A restarted agent on the same node-local state tells the next component its pods before start, ports included.
    const second = new Recorder();
    const again = await setup(second, local);
    await drive(again.clock, again.agent.start());
    expect(second.events).toEqual(["lease set", "added c1", "start pods=1"]);
    expect(second.pods.get("c1/eth0")?.ports).toEqual([{ name: "http", containerPort: 80 }]);
    await again.agent.stop({ release: true });
    expect(second.events).toContain("stop");
  });

  it("the policy's filters are in the dataplane; a component's change re-plans", async () => {
    const component = new Recorder();
    const { clock, agent } = await setup(component);
    await drive(clock, agent.start());
    await agent.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/c1", labels: { deny: "yes" } });
    await agent.attach({ containerId: "c2", ifName: "eth0", netns: "/ns/c2" });
    const gateway = agent
      .dataplane()
      .addresses.find((a) => a.dev === "cni0")!
      .cidr.split("/")[0]!;
    expect(agent.dataplane().filters).toEqual([
      { pod: "c1/eth0", direction: "ingress", defaultAction: "drop", rules: [{ id: "node", action: "accept", peers: [{ cidrs: ["198.51.100.10/32", `${gateway}/32`] }] }] },
    ]);
    const seen: string[][] = [];
    agent.onDataplaneChange((dp) => seen.push(dp.filters.map((f) => f.pod)));
    component.denyAll = true;
    component.change();
    await clock.advance(1_000);
    expect(agent.dataplane().filters.map((f) => f.pod)).toEqual(["c1/eth0", "c2/eth0"]);
    expect(seen.at(-1)).toEqual(["c1/eth0", "c2/eth0"]);
    await agent.stop();
  });

  it("plain flannel plans no filters; a component that fails to start fails start()", async () => {
    const clock = new VirtualClock();
    const store = new MemoryDatastore({ clock });
    const plain = createFlannelAgent(agentContext({ config: VX, node: nodeInfo("p1", "a", 11), store, clock }));
    await drive(clock, plain.start());
    await plain.attach({ containerId: "c1", ifName: "eth0", netns: "/ns/c1", labels: { deny: "yes" } });
    expect(plain.dataplane().filters).toEqual([]);
    await plain.stop();

    const broken = new Recorder(true);
    const { clock: c2, store: s2, agent } = await setup(broken);
    await expect(drive(c2, agent.start())).rejects.toThrow("component could not start");
    expect(agent.status()).toMatchObject({ ready: false, code: 50 });
    await agent.stop({ release: true });
    expect((await s2.list(SUBNET_PREFIX)).items).toEqual([]);
  });
});
