/**
 * cnikitd and a backend's userspace datapath (core `Backend.userspaceDatapath`): with the linux
 * renderer the daemon asks the backend for it once (parsed config, its node), hands it to the
 * renderer factory, and stops it when it stops; a renderer with `netns` gets one that refuses to
 * make devices (they would be in the wrong namespace), naming renderer.netns; renderer `none` gets none.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger, type UserspaceDatapath } from "@cnikit/core";
import { RecordingApplier } from "../src/applier.ts";
import { resolveDaemonConfig, runDaemon, type ApplierFactory } from "../src/daemon-config.ts";
import { tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(() => tmp.remove());

const mods = join(tmp.dir, "mods");
mkdirSync(mods, { recursive: true });
// A backend whose datapath records what happens to it in globalThis.userspaceCalls.
writeFileSync(
  join(mods, "tap.mjs"),
  `export const Tap = {
  name: "tap",
  capabilities: { families: [4], encapsulations: ["sleeve"], networkPolicy: false, encryption: false },
  parseConfig(raw) { return { port: raw.port }; },
  summarize: () => ({ podRanges: ["10.9.0.0/16"], natOutgoing: false, encapsulations: ["sleeve"], convergenceMs: 1000, crashDetectionMs: 1000 }),
  createAgent() { throw new Error("no agent in this test"); },
  userspaceDatapath(ctx) {
    const calls = (globalThis.userspaceCalls ??= []);
    calls.push("create " + ctx.node.name + " port " + ctx.config.port);
    return {
      kinds: ["sleeve"],
      async ensure() { return true; },
      setFdb() {},
      has: () => false,
      async remove() {},
      status: () => ["sleeve-6783: fake"],
      async stop() { calls.push("stop"); },
    };
  },
};
`,
);

function raw(renderer: Record<string, unknown>, n: number): Record<string, unknown> {
  const dir = join(tmp.dir, `node-${n}`);
  return {
    node: { name: `node-${n}`, underlay: [{ iface: "eth0", address: "192.0.2.10", prefixLength: 24 }] },
    backend: { module: "./mods/tap.mjs" },
    backendConfig: { port: 6783 },
    store: `file:${join(dir, "store")}`,
    localStateDir: join(dir, "local"),
    socketPath: join(dir, "cnikitd.sock"),
    renderer,
    logLevel: "error",
  };
}

const calls = (): string[] => ((globalThis as { userspaceCalls?: string[] }).userspaceCalls ??= []);

describe("cnikitd with a backend's userspace datapath", () => {
  it("passes it to the linux renderer, runs it in the daemon and stops it with the daemon", async () => {
    calls().length = 0;
    const given: (UserspaceDatapath | undefined)[] = [];
    const applierFactory: ApplierFactory = async (_spec, context) => {
      given.push(context.userspace);
      return new RecordingApplier();
    };
    const config = await resolveDaemonConfig(raw({ type: "linux" }, 1), { baseDir: tmp.dir });
    const running = await runDaemon(config, { applierFactory, log: silentLogger });
    await running.daemon.agentStarted.catch(() => undefined);
    expect(calls()).toEqual(["create node-1 port 6783"]);
    expect(given).toHaveLength(1);
    expect(given[0]!.kinds).toEqual(["sleeve"]);
    expect(running.userspace).toBe(given[0]);
    expect(running.userspace!.status()).toEqual(["sleeve-6783: fake"]);
    await running.stop();
    expect(calls()).toEqual(["create node-1 port 6783", "stop"]);
  });

  it("with a renderer aimed at another namespace, a link that needs the datapath is refused naming renderer.netns", async () => {
    calls().length = 0;
    const given: (UserspaceDatapath | undefined)[] = [];
    const config = await resolveDaemonConfig(raw({ type: "linux", netns: "elsewhere" }, 3), { baseDir: tmp.dir });
    const running = await runDaemon(config, {
      log: silentLogger,
      applierFactory: async (_spec, context) => {
        given.push(context.userspace);
        return new RecordingApplier();
      },
    });
    await running.daemon.agentStarted.catch(() => undefined);
    await expect(given[0]!.ensure({ kind: "sleeve", name: "sleeve-6783", port: 6783, encrypted: false })).rejects.toMatchObject({ code: 7, field: "renderer.netns" });
    expect(given[0]!.status()).toEqual(["sleeve-6783: fake"]);
    await running.stop();
    expect(calls()).toEqual(["create node-3 port 6783", "stop"]);
  });

  it("makes none for renderer none", async () => {
    calls().length = 0;
    const given: (UserspaceDatapath | undefined)[] = [];
    const config = await resolveDaemonConfig(raw({ type: "none" }, 2), { baseDir: tmp.dir });
    const running = await runDaemon(config, {
      log: silentLogger,
      applierFactory: async (_spec, context) => {
        given.push(context.userspace);
        return new RecordingApplier();
      },
    });
    await running.daemon.agentStarted.catch(() => undefined);
    expect(given).toEqual([undefined]);
    expect(running.userspace).toBeUndefined();
    await running.stop();
    expect(calls()).toEqual([]);
  });
});
