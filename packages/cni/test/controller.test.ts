/**
 * Contract v2 wiring of the processes: cnikitd's agents see the Node objects mirrored under
 * KUBE_PREFIX.nodes through ctx.members, and cnikit-controller runs a backend's cluster-level
 * controller against the store (its default fabric port records intents under /cnikit/fabric/; a
 * fabric module replaces it) and stops cleanly on SIGTERM.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FABRIC_PREFIX, FileDatastore, MemoryDatastore, MemoryNetwork, RealClock, defineBackend, fabricRouteKey, kubeNodeKey, kubeNodeValue, silentLogger } from "@cnikit/core";
import type { AgentContext, NodeAgent, NodeInfo } from "@cnikit/core";
import { describe, expect, it } from "vitest";
import { loadControllerConfig, parseControllerConfig, runController } from "../src/controller.ts";
import { CniDaemon } from "../src/daemon.ts";
import { FakeApplier, NODE, tempDir } from "./helpers.ts";
import { builtinBackend } from "@cnikit/backends";

/** Waits (wall time, polling) until `ok()` holds; fails naming `what` after `ms`. */
async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A JavaScript backend module (duck-typed, no imports) whose controller routes one /24 per member. */
const BACKEND_MODULE = `
const members = (ctx) => ctx.members.list().map((m) => m.name);
export const routed = {
  name: "test-routed",
  capabilities: { networkPolicy: false, encryption: false, encapsulations: ["none"], families: [4] },
  parseConfig: (input) => ({ net: "10.70", ...(input ?? {}) }),
  summarize: (config) => ({ podRanges: [config.net + ".0.0/16"], natOutgoing: false, encapsulations: ["none"], convergenceMs: 1000, crashDetectionMs: 1000 }),
  createAgent: () => { throw new Error("test-routed has no agent here"); },
  createController: (ctx) => {
    let ready = false;
    let off;
    const reconcile = async () => {
      let i = 0;
      for (const name of members(ctx)) await ctx.fabric.setRoute({ dst: ctx.config.net + "." + ++i + ".0/24", node: name });
    };
    return {
      async start() { off = ctx.members.onChange(() => void reconcile()); await reconcile(); ready = true; },
      async stop() { off?.(); ready = false; },
      status: () => (ready ? { ready: true } : { ready: false, reason: "stopped" }),
    };
  },
};
`;

const FABRIC_MODULE = `
export const calls = [];
export function createFabricPort(ctx) {
  const routes = new Map();
  return {
    async setRoute(r) { calls.push(["setRoute", r.dst, r.node, ctx.options.region]); routes.set(r.dst, r); },
    async deleteRoute(dst) { routes.delete(dst); },
    async routes() { return [...routes.values()]; },
    async addSecondaryAddress() {},
    async removeSecondaryAddress() {},
    async secondaryAddresses() { return []; },
  };
}
`;

const NODE_2: NodeInfo = { name: "node-2", underlay: [{ iface: "eth0", address: "192.0.2.11", prefixLength: 24 }], labels: { zone: "b" } };

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect((err as { code?: number }).code).toBe(7);
    expect(String((err as Error).message)).toMatch(/^\[cnikit-controller\]/);
    return (err as { field?: string }).field;
  }
  return undefined;
}

describe("cnikitd membership", () => {
  it("a Node object put under KUBE_PREFIX.nodes shows up in the agent's ctx.members, and a deleted one leaves", async () => {
    const clock = new RealClock();
    const store = new MemoryDatastore({ clock });
    await store.put(kubeNodeKey(NODE.name), kubeNodeValue(NODE));
    const contexts: AgentContext<unknown>[] = [];
    const flannel = builtinBackend("flannel").backend;
    const spy = defineBackend<unknown>({
      ...flannel,
      name: "flannel-spy",
      createAgent: (ctx): NodeAgent => {
        contexts.push(ctx);
        return flannel.createAgent(ctx);
      },
    });
    const daemon = new CniDaemon({
      backend: spy,
      backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } },
      node: NODE,
      store,
      local: new MemoryDatastore({ clock }),
      peers: new MemoryNetwork({ clock }).transport(NODE.name),
      applier: new FakeApplier(),
      clock,
      log: silentLogger,
      membersResyncMs: 60_000,
    });
    await daemon.start();
    try {
      await daemon.agentStarted;
      const members = contexts[0]!.members;
      expect(members.list().map((n) => n.name)).toEqual([NODE.name]);
      expect(members.get(NODE.name)?.underlay).toEqual(NODE.underlay);
      const seen: string[] = [];
      members.onChange((e) => seen.push(`${e.type} ${e.node.name}`));
      await store.put(kubeNodeKey(NODE_2.name), kubeNodeValue(NODE_2));
      await until("node-2 to join the membership", () => members.get("node-2") !== undefined);
      expect(members.get("node-2")?.labels).toEqual({ zone: "b" });
      await store.delete(kubeNodeKey(NODE_2.name));
      await until("node-2 to leave the membership", () => members.get("node-2") === undefined);
      await until("the events", () => seen.length === 2);
      expect(seen).toEqual(["joined node-2", "left node-2"]);
    } finally {
      await daemon.stop();
    }
  });
});

describe("cnikit-controller config", () => {
  const base = { backend: { module: "./routed.mjs" }, backendConfig: {} };

  it("refuses what it cannot run, naming the field", async () => {
    const t = tempDir();
    try {
      writeFileSync(join(t.dir, "routed.mjs"), BACKEND_MODULE);
      const file = join(t.dir, "c.json");
      writeFileSync(file, JSON.stringify({ ...base, store: `file:${join(t.dir, "store")}` }));
      const ok = await loadControllerConfig(file);
      expect(ok).toMatchObject({ backend: "test-routed", fabric: { kind: "store" }, store: { kind: "file" } });
      const flannel = { backend: "flannel", backendConfig: { Network: "10.244.0.0/16" } };
      expect(fieldOf(() => parseControllerConfig(flannel, { baseDir: t.dir }))).toBe("backend");
      expect(fieldOf(() => parseControllerConfig({ ...flannel, node: {} }, { baseDir: t.dir }))).toBe("node");
      expect(fieldOf(() => parseControllerConfig({ ...flannel, backendConfig: { Network: "nope" } }, { baseDir: t.dir }))).toBe("backendConfig.Network");
      const moduleBackend = (await import(join(t.dir, "routed.mjs"))).routed;
      const parse = (extra: object) => parseControllerConfig({ ...base, ...extra }, { baseDir: t.dir, moduleBackend });
      expect(fieldOf(() => parse({ fabric: 3 }))).toBe("fabric");
      expect(fieldOf(() => parse({ fabric: { module: "./f.mjs", colour: "red" } }))).toBe("fabric.colour");
      expect(fieldOf(() => parse({ fabric: { module: "./f.mjs", options: [] } }))).toBe("fabric.options");
      expect(fieldOf(() => parse({ membersResyncMs: 5 }))).toBe("membersResyncMs");
      expect(fieldOf(() => parse({ store: "s3://x" }))).toBe("store");
      expect(parse({ fabric: { module: "./f.mjs", options: { region: "west" } } }).fabric).toEqual({
        kind: "module",
        spec: { module: join(t.dir, "f.mjs"), from: t.dir },
        options: { region: "west" },
      });
    } finally {
      t.remove();
    }
  });

  it("runs the controller with a fabric module of the config's choosing", async () => {
    const t = tempDir();
    try {
      writeFileSync(join(t.dir, "routed.mjs"), BACKEND_MODULE);
      writeFileSync(join(t.dir, "fabric.mjs"), FABRIC_MODULE);
      const store = await FileDatastore.open({ dir: join(t.dir, "store"), clock: new RealClock() });
      await store.put(kubeNodeKey(NODE.name), kubeNodeValue(NODE));
      await store.close();
      const file = join(t.dir, "c.json");
      writeFileSync(file, JSON.stringify({ ...base, store: `file:${join(t.dir, "store")}`, fabric: { module: "./fabric.mjs", options: { region: "west" } } }));
      const running = await runController(await loadControllerConfig(file), { log: silentLogger });
      try {
        expect(running.controller.status()).toEqual({ ready: true });
        const mod = (await import(join(t.dir, "fabric.mjs"))) as { calls: unknown[][] };
        expect(mod.calls).toEqual([["setRoute", "10.70.1.0/24", NODE.name, "west"]]);
        expect((await running.store.list(FABRIC_PREFIX.routes)).items).toEqual([]);
      } finally {
        await running.stop();
      }
    } finally {
      t.remove();
    }
  });
});

describe("cnikit-controller process", () => {
  it("starts, records the controller's fabric intent in the store, and stops cleanly on SIGTERM", async () => {
    const t = tempDir();
    try {
      writeFileSync(join(t.dir, "routed.mjs"), BACKEND_MODULE);
      const storeDir = join(t.dir, "store");
      const before = await FileDatastore.open({ dir: storeDir, clock: new RealClock() });
      await before.put(kubeNodeKey(NODE.name), kubeNodeValue(NODE));
      await before.close();
      const file = join(t.dir, "controller.json");
      writeFileSync(file, JSON.stringify({ backend: { module: "./routed.mjs" }, backendConfig: {}, store: `file:${storeDir}`, logLevel: "info" }));
      const bin = fileURLToPath(new URL("../bin/cnikit-controller", import.meta.url));
      const child = spawn(process.execPath, [bin, "--config", file], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, CNIKIT_FROM_SOURCE: "1" } });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      try {
        await until("the controller to be ready", () => /cnikit-controller: ready/.test(stderr) || child.exitCode !== null, 60_000);
        expect(stderr).toMatch(/cnikit-controller: ready \(backend test-routed, 1 members\)/);
        expect(stderr).toMatch(/fabric route/);
        child.kill("SIGTERM");
        expect(await exited).toBe(0);
        expect(stderr).toMatch(/cnikit-controller: stopped/);
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      const after = await FileDatastore.open({ dir: storeDir, clock: new RealClock() });
      try {
        const kv = await after.get(fabricRouteKey("10.70.1.0/24"));
        expect(JSON.parse(kv!.value)).toEqual({ dst: "10.70.1.0/24", node: NODE.name });
      } finally {
        await after.close();
      }
    } finally {
      t.remove();
    }
  }, 90_000);
});
