import { describe, expect, it } from "vitest";
import { NotReadyError, defineBackend, emptyDataplane } from "@cnikit/core";
import type { AgentContext, AgentStatus, AttachResult, NodeAgent, NodeDataplane, TimerHandle } from "@cnikit/core";
import { converge, createHarness, quietPeriodMs, settle } from "../src/harness.ts";
import type { Harness } from "../src/harness.ts";
import type { CheckContext } from "../src/types.ts";

/**
 * A toy backend whose desired state follows a script on the virtual clock: a route per entry of
 * `changes` (each added `at` ms after start, like a re-plan after a debounce), a no-op timer every
 * `tickMs` (a re-list or keep-alive that changes nothing), and a route toggled every `flapMs`.
 */
interface ToyConfig {
  changes?: { at: number; dst: string }[];
  tickMs?: number;
  flapMs?: number;
}

class ToyAgent implements NodeAgent {
  private plan: NodeDataplane;
  private readonly timers: TimerHandle[] = [];
  private readonly listeners = new Set<(dp: NodeDataplane) => void>();
  /** Ticks of the no-op timer (to show it really kept firing). */
  ticks = 0;

  constructor(private readonly ctx: AgentContext<ToyConfig>) {
    this.plan = emptyDataplane(ctx.node.name);
  }

  private publish(routes: NodeDataplane["routes"]): void {
    this.plan = { ...this.plan, routes };
    for (const l of this.listeners) l(this.plan);
  }

  async start(): Promise<void> {
    const { changes = [], tickMs, flapMs } = this.ctx.config;
    for (const c of changes) {
      this.timers.push(this.ctx.clock.setTimeout(() => this.publish([...this.plan.routes, { dst: c.dst, dev: "eth0" }]), c.at));
    }
    if (tickMs) this.timers.push(this.ctx.clock.setInterval(() => void this.ticks++, tickMs));
    if (flapMs) {
      this.timers.push(
        this.ctx.clock.setInterval(() => {
          const has = this.plan.routes.some((r) => r.dst === "10.66.0.0/16");
          this.publish(has ? this.plan.routes.filter((r) => r.dst !== "10.66.0.0/16") : [...this.plan.routes, { dst: "10.66.0.0/16", dev: "eth0" }]);
        }, flapMs),
      );
    }
  }
  async stop(): Promise<void> {
    for (const t of this.timers) t.cancel();
  }
  attach(): Promise<AttachResult> {
    return Promise.reject(new NotReadyError("[toy] takes no pods"));
  }
  async detach(): Promise<void> {}
  async check(): Promise<void> {}
  async gc(): Promise<void> {}
  status(): AgentStatus {
    return { ready: true };
  }
  dataplane(): NodeDataplane {
    return this.plan;
  }
  onDataplaneChange(listener: (dp: NodeDataplane) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const BOUND_MS = 30_000;

const toy = defineBackend<ToyConfig>({
  name: "toy-scripted",
  capabilities: { networkPolicy: false, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: (input) => (input ?? {}) as ToyConfig,
  summarize: () => ({ podRanges: ["10.244.0.0/16"], natOutgoing: false, encapsulations: ["none"], convergenceMs: BOUND_MS, crashDetectionMs: 60_000 }),
  createAgent: (ctx) => new ToyAgent(ctx),
});

function toyContext(config: ToyConfig): CheckContext {
  return {
    backend: toy as never,
    config,
    rawConfig: config,
    summary: toy.summarize(config),
    nodes: 2,
    seed: 1,
    propertyRuns: 1,
    invalidConfigs: undefined,
    anchorConfigs: undefined,
    store: undefined,
    nodeMetadata: undefined,
  };
}

async function toyCluster(config: ToyConfig): Promise<{ h: Harness; ctx: CheckContext; started: number }> {
  const ctx = toyContext(config);
  const h = createHarness(ctx, "converge-test");
  await h.cluster.addNode({ name: "t-1" });
  await h.cluster.addNode({ name: "t-2" });
  return { h, ctx, started: h.clock.now() };
}

function routesOf(h: Harness, node: string): string[] {
  return h.cluster
    .dataplane(node)
    .routes.map((r) => r.dst)
    .sort();
}

describe("converge: settled, not the first moment the condition holds", () => {
  it("waits out a re-plan after a debounce although the condition already holds at the start", async () => {
    const { h, started } = await toyCluster({ changes: [{ at: 250, dst: "10.1.0.0/16" }], tickMs: 10_000 });
    try {
      const conv = await converge(h, BOUND_MS, () => undefined);
      expect(conv.converged).toBe(true);
      // The state changed 250 ms after the nodes started: that is when it converged, not at 0 ms.
      expect(conv.settledAt - started).toBe(250);
      expect(conv.changes).toBe(1);
      // The harness watched the quiet period after the change before saying so.
      expect(conv.observedMs).toBeGreaterThanOrEqual(250 + quietPeriodMs(BOUND_MS));
      expect(routesOf(h, "t-1")).toEqual(["10.1.0.0/16"]);
      expect(routesOf(h, "t-2")).toEqual(["10.1.0.0/16"]);
    } finally {
      await h.cluster.close();
    }
  });

  it("reports the last change as the convergence time, never the end of the quiet period", async () => {
    const { h, started } = await toyCluster({
      changes: [
        { at: 400, dst: "10.1.0.0/16" },
        { at: 2_600, dst: "10.2.0.0/16" },
      ],
      tickMs: 1_000,
    });
    try {
      // The condition holds from the first change on; the state changes once more after it.
      const conv = await converge(h, BOUND_MS, () => (routesOf(h, "t-1").length === 0 ? "node t-1 has no route yet" : undefined));
      expect(conv.converged).toBe(true);
      expect(conv.settledAt - started).toBe(2_600);
      expect(conv.virtualMs).toBe(conv.settledAt - started);
      expect(conv.observedMs - conv.virtualMs).toBeGreaterThanOrEqual(quietPeriodMs(BOUND_MS));
      expect(routesOf(h, "t-2")).toEqual(["10.1.0.0/16", "10.2.0.0/16"]);
    } finally {
      await h.cluster.close();
    }
  });

  it("judges a backend with periodic timers that change nothing as settled", async () => {
    const { h } = await toyCluster({ tickMs: 500 });
    try {
      const conv = await converge(h, BOUND_MS, () => undefined);
      expect(conv).toMatchObject({ converged: true, virtualMs: 0, changes: 0 });
      expect(conv.observedMs).toBeGreaterThanOrEqual(quietPeriodMs(BOUND_MS));
      // The timers kept firing all along, and are still pending: the cluster was never idle.
      expect((h.cluster.node("t-1").agent as unknown as ToyAgent).ticks).toBeGreaterThanOrEqual(Math.floor(quietPeriodMs(BOUND_MS) / 500));
      expect(h.clock.nextAt()).toBeDefined();
    } finally {
      await h.cluster.close();
    }
  });

  it("returns at once, with the last answer, when the cluster is idle (no timer left)", async () => {
    const { h, started } = await toyCluster({});
    try {
      const conv = await converge(h, BOUND_MS, () => undefined);
      expect(conv).toMatchObject({ converged: true, virtualMs: 0, observedMs: 0 });
      const stuck = await converge(h, BOUND_MS, () => "node t-1 lacks a route");
      expect(stuck.converged).toBe(false);
      expect(stuck.problem).toMatch(/node t-1 lacks a route.*went idle/);
      expect(h.clock.now()).toBe(started);
    } finally {
      await h.cluster.close();
    }
  });

  it("fails a state that never stops flapping with 'never settled', naming the node and the change", async () => {
    const { h, started } = await toyCluster({ flapMs: 700 });
    try {
      const conv = await converge(h, 5_000, () => undefined);
      expect(conv.converged).toBe(false);
      expect(conv.problem).toMatch(/never settled/);
      expect(conv.problem).toMatch(/node t-[12]: routes/);
      expect(conv.problem).toContain("10.66.0.0/16");
      // It gave up at the first change after the bound, not later.
      expect(h.clock.now() - started).toBeGreaterThan(5_000);
      expect(h.clock.now() - started).toBeLessThanOrEqual(5_700);
    } finally {
      await h.cluster.close();
    }
  });

  it("fails with the condition's problem when it still fails at the bound", async () => {
    const { h, started } = await toyCluster({ changes: [{ at: 100, dst: "10.1.0.0/16" }], tickMs: 1_000 });
    try {
      const conv = await converge(h, 3_000, () => "pod x on node t-2 is unreachable");
      expect(conv.converged).toBe(false);
      expect(conv.problem).toBe("pod x on node t-2 is unreachable");
      expect(h.clock.now() - started).toBe(3_000);
    } finally {
      await h.cluster.close();
    }
  });

  it("settle() watches the whole bound: a re-plan later than the quiet period is still waited for", async () => {
    const late = quietPeriodMs(BOUND_MS) + 2_000;
    const { h, ctx, started } = await toyCluster({ changes: [{ at: late, dst: "10.9.0.0/16" }], tickMs: 10_000 });
    try {
      const r = await settle(h, ctx);
      expect(r.converged).toBe(true);
      expect(r.settledAt - started).toBe(late);
      expect(routesOf(h, "t-1")).toEqual(["10.9.0.0/16"]);
    } finally {
      await h.cluster.close();
    }
  });

  it("dates a change among dense periodic timers to within 1/20 of the bound, never before it happened", async () => {
    const { h, started } = await toyCluster({ changes: [{ at: 9_500, dst: "10.9.0.0/16" }], tickMs: 7 });
    try {
      const conv = await converge(h, BOUND_MS, () => (routesOf(h, "t-1").length === 0 ? "node t-1 has no route yet" : undefined));
      expect(conv.converged).toBe(true);
      expect(conv.settledAt - started).toBeGreaterThanOrEqual(9_500);
      expect(conv.settledAt - started).toBeLessThanOrEqual(9_500 + BOUND_MS / 20);
    } finally {
      await h.cluster.close();
    }
  });
});
