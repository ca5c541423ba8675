/** cnikitd's config file, table-driven: what is accepted, and the field each bad config names. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "@cnikit/core";
import { afterAll, describe, expect, it } from "vitest";
import { daemonBackend, loadDaemonConfig, parseDaemonConfig, parseHostPort, parseStoreSpec, resolveBackend, resolveDaemonConfig, resolvePackageFrom } from "../src/daemon-config.ts";
import { tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(() => tmp.remove());

const BASE = {
  node: { name: "node-1", underlay: [{ iface: "eth0", address: "192.0.2.10", prefixLength: 24, gateway: "192.0.2.1" }], labels: { zone: "a" } },
  backend: "flannel",
  backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } },
  renderer: { type: "linux", netns: "cnikit-node-1" },
};

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).field;
  }
  throw new Error("expected a ConfigError");
}

describe("parseDaemonConfig", () => {
  it("applies the defaults, every path holding the node's name", () => {
    const c = parseDaemonConfig(BASE, { baseDir: "/etc/cnikit" });
    expect(c).toEqual({
      node: BASE.node,
      backend: "flannel",
      backendConfig: BASE.backendConfig,
      store: { kind: "file", dir: "/var/lib/cnikit/node-1/store" },
      localStateDir: "/var/lib/cnikit/node-1/local",
      socketPath: "/run/cnikit/node-1/cnikitd.sock",
      renderer: { type: "linux", options: { netns: "cnikit-node-1", stateDir: "/run/cnikit/node-1/linux" } },
      logLevel: "info",
    });
    const other = parseDaemonConfig({ ...BASE, node: { ...BASE.node, name: "node-2" } }, { baseDir: "/etc/cnikit" });
    const paths = (x: typeof c) => [x.store.kind === "file" ? x.store.dir : "", x.localStateDir, x.socketPath, String(x.renderer.options["stateDir"])];
    for (const p of paths(other)) expect(paths(c)).not.toContain(p);
  });

  it("asks for the renderer explicitly: without one it names renderer and the choices, never defaulting to the host's namespace", () => {
    const { renderer: _r, ...noRenderer } = BASE;
    expect(() => parseDaemonConfig(noRenderer, { baseDir: "/etc/cnikit" })).toThrow(/renderer.*is required.*"netns".*"type": "none"/s);
    expect(fieldOf(() => parseDaemonConfig(noRenderer, { baseDir: "/etc/cnikit" }))).toBe("renderer");
    expect(fieldOf(() => parseDaemonConfig({ ...BASE, renderer: {} }, { baseDir: "/etc/cnikit" }))).toBe("renderer.type");
    expect(parseDaemonConfig({ ...BASE, renderer: { type: "linux", stateDir: "run/linux" } }, { baseDir: "/etc/cnikit" }).renderer).toEqual({
      type: "linux",
      options: { stateDir: "/etc/cnikit/run/linux" },
    });
  });

  it("reads every setting, resolving relative paths against the config's directory", () => {
    const c = parseDaemonConfig(
      {
        ...BASE,
        backend: "@cnikit/flannel",
        store: "file:state/store",
        localStateDir: "state/local",
        socketPath: "run/d.sock",
        peers: { listen: "0.0.0.0:7946", advertise: "[fd00::1]:7946" },
        renderer: { type: "none", mtu: 1400 },
        logLevel: "debug",
        seed: 7,
        localFsync: true,
      },
      { baseDir: "/etc/cnikit" },
    );
    expect(c.store).toEqual({ kind: "file", dir: "/etc/cnikit/state/store" });
    expect(c.localStateDir).toBe("/etc/cnikit/state/local");
    expect(c.socketPath).toBe("/etc/cnikit/run/d.sock");
    expect(c.peers).toEqual({ listen: { host: "0.0.0.0", port: 7946 }, advertise: { host: "fd00::1", port: 7946 } });
    expect(c.renderer).toEqual({ type: "none", options: { mtu: 1400 } });
    expect([c.backend, c.logLevel, c.seed, c.localFsync]).toEqual(["flannel", "debug", 7, true]);
  });

  it("reads backendConfig from a .json file, and hands other files (calico YAML) to the backend as text", () => {
    writeFileSync(join(tmp.dir, "net-conf.json"), JSON.stringify(BASE.backendConfig));
    expect(parseDaemonConfig({ ...BASE, backendConfig: "net-conf.json" }, { baseDir: tmp.dir }).backendConfig).toEqual(BASE.backendConfig);
    const yaml = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: default-ipv4-ippool\nspec:\n  cidr: 10.244.0.0/16\n";
    writeFileSync(join(tmp.dir, "calico.yaml"), yaml);
    const c = parseDaemonConfig({ ...BASE, backend: "calico", backendConfig: "calico.yaml" }, { baseDir: tmp.dir });
    expect(c.backendConfig).toBe(yaml);
    expect(c.backend).toBe("calico");
    expect(parseDaemonConfig({ ...BASE, backend: "calico", backendConfig: yaml }, { baseDir: "/nonexistent" }).backendConfig).toBe(yaml);
  });

  it.each([
    ["not an object", [], "(root)"],
    ["an unknown key", { ...BASE, sockPath: "/x" }, "sockPath"],
    ["no node", { ...BASE, node: undefined }, "node"],
    ["no node name", { ...BASE, node: { ...BASE.node, name: "" } }, "node.name"],
    ["no underlay", { ...BASE, node: { name: "n", underlay: [] } }, "node.underlay"],
    ["a bad underlay address", { ...BASE, node: { name: "n", underlay: [{ iface: "eth0", address: "192.0.2.300", prefixLength: 24 }] } }, "node.underlay[0].address"],
    ["a bad prefix length", { ...BASE, node: { name: "n", underlay: [{ iface: "eth0", address: "192.0.2.1", prefixLength: 33 }] } }, "node.underlay[0].prefixLength"],
    ["no iface", { ...BASE, node: { name: "n", underlay: [{ address: "192.0.2.1", prefixLength: 24 }] } }, "node.underlay[0].iface"],
    ["a bad gateway", { ...BASE, node: { name: "n", underlay: [{ iface: "eth0", address: "192.0.2.1", prefixLength: 24, gateway: "x" }] } }, "node.underlay[0].gateway"],
    ["a bad mtu", { ...BASE, node: { name: "n", underlay: [{ iface: "eth0", address: "192.0.2.1", prefixLength: 24, mtu: 100 }] } }, "node.underlay[0].mtu"],
    ["labels that are not strings", { ...BASE, node: { ...BASE.node, labels: { a: 1 } } }, "node.labels"],
    ["an unknown backend", { ...BASE, backend: "cilium" }, "backend"],
    ["no backendConfig", { ...BASE, backendConfig: undefined }, "backendConfig"],
    ["a backendConfig file that does not exist", { ...BASE, backendConfig: "missing.json" }, "backendConfig"],
    ["a backendConfig the backend refuses", { ...BASE, backendConfig: { Network: "10.244.0.0/16", SubnetLen: 31 } }, "backendConfig.SubnetLen"],
    ["a bad store", { ...BASE, store: "redis://x:1" }, "store"],
    ["an etcd store without a port", { ...BASE, store: "etcd://127.0.0.1" }, "store"],
    ["the same directory for both stores", { ...BASE, store: "file:/var/lib/x", localStateDir: "/var/lib/x" }, "localStateDir"],
    ["peers without listen", { ...BASE, peers: {} }, "peers.listen"],
    ["peers listen without a port", { ...BASE, peers: { listen: "10.0.0.1" } }, "peers.listen"],
    ["a bad advertise", { ...BASE, peers: { listen: "10.0.0.1:1", advertise: "x:99999" } }, "peers.advertise"],
    ["an unknown renderer", { ...BASE, renderer: { type: "ebpf" } }, "renderer.type"],
    ["a bad log level", { ...BASE, logLevel: "loud" }, "logLevel"],
    ["a fractional seed", { ...BASE, seed: 1.5 }, "seed"],
    ["a localFsync that is not a boolean", { ...BASE, localFsync: "yes" }, "localFsync"],
    ["a node name that is a path", { ...BASE, node: { ...BASE.node, name: "../etc" } }, "node.name"],
  ])("refuses a config with %s, naming the field", (_label, raw, field) => {
    expect(fieldOf(() => parseDaemonConfig(raw, { baseDir: tmp.dir }))).toBe(field);
  });

  it("loadDaemonConfig names --config for a file that is missing or not JSON", async () => {
    expect(await fieldOfAsync(() => loadDaemonConfig(join(tmp.dir, "none.json")))).toBe("--config");
    writeFileSync(join(tmp.dir, "bad.json"), "{");
    expect(await fieldOfAsync(() => loadDaemonConfig(join(tmp.dir, "bad.json")))).toBe("--config");
  });
});

async function fieldOfAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    // Duck-typed: code 7 and the field.
    expect((err as { code?: unknown }).code).toBe(7);
    return (err as { field: string }).field;
  }
  throw new Error("expected a ConfigError");
}

/**
 * A backend module of one's own, in plain JavaScript with no imports (its own "copy" of the
 * contract): \`size\` must be 1-9, refused like a ConfigError would be (code 7, field), not an
 * instance of this package's ConfigError class.
 */
const TINY = (name: string): string => `const refuse${name} = (field, rule, value) => Object.assign(new Error(field + ": " + rule), { name: "ConfigError", code: 7, field, rule, value });
export const ${name} = {
  name: "${name.toLowerCase()}",
  capabilities: { families: [4], encapsulations: ["none"], networkPolicy: false, encryption: false },
  parseConfig(raw) {
    if (!raw || typeof raw !== "object" || !Number.isInteger(raw.size) || raw.size < 1 || raw.size > 9) throw refuse${name}("size", "must be an integer 1-9", raw && raw.size);
    return { size: raw.size };
  },
  summarize: (c) => ({ podRanges: ["10.9.0.0/16"], natOutgoing: false, encapsulations: ["none"], convergenceMs: 1000, crashDetectionMs: 1000 }),
  createAgent() { throw new Error("not in this test"); },
};
`;

describe("a backend module named by the config", () => {
  const mods = join(tmp.dir, "mods");
  mkdirSync(mods, { recursive: true });
  writeFileSync(join(mods, "tiny.mjs"), `${TINY("Tiny")}export const notABackend = { name: "x" };\n`);
  writeFileSync(join(mods, "two.mjs"), `${TINY("One")}${TINY("Two")}`);
  writeFileSync(join(mods, "none.mjs"), "export const nothing = 1;\n");
  writeFileSync(join(mods, "throws.mjs"), 'throw new Error("the module fails at load");\n');
  // An ESM-only package (exports with "import" only) in a project's node_modules.
  const pkg = join(tmp.dir, "project", "node_modules", "@acme", "cni-backend");
  mkdirSync(join(pkg, "lib"), { recursive: true });
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "@acme/cni-backend", type: "module", exports: { ".": { import: "./lib/index.mjs" } } }));
  writeFileSync(join(pkg, "lib", "index.mjs"), TINY("Acme"));
  const raw = (backend: unknown, backendConfig: unknown = { size: 3 }): Record<string, unknown> => ({ ...BASE, backend, backendConfig });

  it("loads it by absolute path, relative path (from the config's directory) or package name (from 'from'), and validates the backend config with its parser", async () => {
    const abs = await resolveDaemonConfig(raw({ module: join(mods, "tiny.mjs"), export: "Tiny" }), { baseDir: "/etc/cnikit" });
    expect(abs.backend).toBe("tiny");
    expect(abs.backendModule).toEqual({ module: join(mods, "tiny.mjs"), from: "/etc/cnikit", export: "Tiny" });
    const rel = await resolveDaemonConfig(raw({ module: "./mods/tiny.mjs" }), { baseDir: tmp.dir });
    expect(rel.backendModule?.module).toBe(join(mods, "tiny.mjs"));
    expect((await daemonBackend(rel)).name).toBe("tiny");
    const byPkg = await resolveDaemonConfig(raw({ module: "@acme/cni-backend", from: "project" }), { baseDir: tmp.dir });
    expect(byPkg).toMatchObject({ backend: "acme", backendModule: { module: "@acme/cni-backend", from: join(tmp.dir, "project") } });
    expect(resolvePackageFrom("@acme/cni-backend", join(tmp.dir, "project", "deep", "er"))).toBe(join(pkg, "lib", "index.mjs"));
    expect(resolvePackageFrom("@acme/cni-backend", tmp.dir)).toBeUndefined();
    // A built-in name still works as before.
    expect((await resolveDaemonConfig(BASE, { baseDir: tmp.dir })).backendModule).toBeUndefined();
  });

  it("loadDaemonConfig reads a file naming a module relative to itself", async () => {
    const file = join(tmp.dir, "mod-config.json");
    writeFileSync(file, JSON.stringify(raw({ module: "./mods/tiny.mjs" })));
    expect(await loadDaemonConfig(file)).toMatchObject({ backend: "tiny", backendModule: { module: join(mods, "tiny.mjs"), from: tmp.dir } });
  });

  it.each([
    ["a module that does not exist", raw({ module: "./mods/missing.mjs" }), "backend.module"],
    ["a package not installed where 'from' says", raw({ module: "@acme/cni-backend", from: "/" }), "backend.module"],
    ["a module that throws while loading", raw({ module: "./mods/throws.mjs" }), "backend.module"],
    ["an empty module", raw({ module: "" }), "backend.module"],
    ["a module without it", raw({ module: 42 }), "backend.module"],
    ["an export that is not a Backend", raw({ module: "./mods/tiny.mjs", export: "notABackend" }), "backend.export"],
    ["an export that does not exist", raw({ module: "./mods/tiny.mjs", export: "Nope" }), "backend.export"],
    ["an export that is not a name", raw({ module: "./mods/tiny.mjs", export: "a-b" }), "backend.export"],
    ["a module with two backends and no export named", raw({ module: "./mods/two.mjs" }), "backend.export"],
    ["a module with no backend", raw({ module: "./mods/none.mjs" }), "backend.export"],
    ["a 'from' that is not a string", raw({ module: "x", from: 3 }), "backend.from"],
    ["an unknown key", raw({ module: "./mods/tiny.mjs", version: 2 }), "backend.version"],
    ["a backend that is neither a name nor an object", raw(["tiny"]), "backend"],
    ["a config the module's parser refuses (its own ConfigError, duck-typed)", raw({ module: "./mods/tiny.mjs" }, { size: 12 }), "backendConfig.size"],
  ])("refuses %s, naming the field", async (_label, config, field) => {
    expect(await fieldOfAsync(() => resolveDaemonConfig(config, { baseDir: tmp.dir }))).toBe(field);
  });

  it("says what to do about a TypeScript module this Node cannot load", async () => {
    writeFileSync(join(mods, "typed.ts"), "export const x: number = 1;\n");
    const refuse = (url: string): Promise<unknown> => Promise.reject(Object.assign(new Error(`Unknown file extension ".ts" for ${url}`), { code: "ERR_UNKNOWN_FILE_EXTENSION" }));
    await expect(resolveDaemonConfig(raw({ module: "./mods/typed.ts" }), { baseDir: tmp.dir, importer: refuse })).rejects.toMatchObject({
      code: 7,
      field: "backend.module",
      message: expect.stringMatching(/Unknown file extension "\.ts".*a TypeScript module: compile it to JavaScript/),
    });
  });

  it("parseDaemonConfig (synchronous) refuses a module it was not given loaded, naming backend", () => {
    expect(fieldOf(() => parseDaemonConfig(raw({ module: "./mods/tiny.mjs" }), { baseDir: tmp.dir }))).toBe("backend");
  });
});

describe("store, address and backend specs", () => {
  it.each([
    ["file:/var/lib/s", { kind: "file", dir: "/var/lib/s" }],
    ["etcd://127.0.0.1:2379", { kind: "etcd", endpoints: ["http://127.0.0.1:2379"], prefix: "" }],
    ["etcd://a:2379,b:2379/cnikit/", { kind: "etcd", endpoints: ["http://a:2379", "http://b:2379"], prefix: "/cnikit/" }],
    ["etcd://[fd00::1]:2379/x", { kind: "etcd", endpoints: ["http://[fd00::1]:2379"], prefix: "/x/" }],
  ])("store %s", (text, expected) => {
    expect(parseStoreSpec(text, "/base")).toEqual(expected);
  });

  it.each([
    ["10.0.0.1:179", { host: "10.0.0.1", port: 179 }],
    ["[fd00::1]:179", { host: "fd00::1", port: 179 }],
    ["node-1.example:7946", { host: "node-1.example", port: 7946 }],
  ])("host:port %s", (text, expected) => {
    expect(parseHostPort(text, "f")).toEqual(expected);
  });

  it("resolves backends by name and by package", () => {
    expect(resolveBackend("calico").name).toBe("calico");
    expect(resolveBackend("@cnikit/reference").name).toBe("reference");
    expect(fieldOf(() => resolveBackend("nope"))).toBe("backend");
  });
});
