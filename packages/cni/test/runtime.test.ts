/**
 * The libcni-like runtime (src/runtime.ts) against fake plugins: small node scripts written to a
 * temp dir that record their environment and stdin and answer as told by a control file, so each
 * test can assert exactly what the runtime sent (checklist 40-48 of
 * DESIGN.md "The CNI rules"), plus version negotiation against the Debian reference plugins'
 * real VERSION answers (checklist 42, 62). The same operations against the real plugins on the real
 * kernel are in runtime-kernel.test.ts.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CniError, ConfigError, DecodeError, UnknownContainerError, VersionError } from "@cnikit/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  AddCleanupError,
  CniRuntime,
  GcError,
  PluginError,
  convertResult,
  loadConfList,
  pluginConfig,
  spawnExec,
  validateRuntimeConf,
  type NetworkConfigList,
  type PluginExec,
  type RuntimeConf,
} from "../src/runtime.ts";
import { KeyedMutex, SharedExclusiveGate } from "../src/runtime-lock.ts";

// ---------------------------------------------------------------------------------------------
// Fake plugins

/**
 * One fake plugin executable. Its name (the file's basename) selects its entry in control.json:
 * { versions?: string[], fail?: {ADD?: {code,msg,details}|"garbage"|"silent"|"hang"},
 *   resultVersion?: string, delayMs?: number, legacyVersion?: true }.
 * ADD re-emits prevResult with one interface `<name>-if` (and, when `ip` is set, an address).
 * Every call appends one line to log.jsonl: {plugin, command, env (CNI_*), conf, start, end}.
 */
const FAKE_PLUGIN = String.raw`
import { appendFileSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
const start = Number(process.hrtime.bigint() / 1000n);
const self = process.argv[1];
const dir = dirname(self);
const name = basename(self);
let control = {};
try { control = JSON.parse(readFileSync(join(dir, "control.json"), "utf8"))[name] ?? {}; } catch {}
const command = process.env.CNI_COMMAND ?? "";
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("CNI_")));
const stdin = command === "VERSION" ? "" : readFileSync(0, "utf8");
let conf = null;
try { conf = stdin === "" ? null : JSON.parse(stdin); } catch { conf = stdin; }
const log = (extra) => appendFileSync(join(dir, "log.jsonl"), JSON.stringify({ plugin: name, command, env, conf, start, end: Number(process.hrtime.bigint() / 1000n), ...extra }) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
if (control.delayMs) await sleep(control.delayMs);
const fail = control.fail?.[command];
if (fail === "hang") { await sleep(60000); }
if (fail === "garbage") { log({}); process.stdout.write("this is not json"); process.exit(1); }
if (fail === "silent") { log({}); process.stderr.write("something broke badly\n"); process.exit(2); }
if (fail) { log({}); process.stdout.write(JSON.stringify({ cniVersion: conf?.cniVersion, ...fail })); process.exit(1); }
if (command === "VERSION") {
  log({});
  if (control.legacyVersion) { process.stdout.write(JSON.stringify({ code: 4, msg: "unknown CNI_COMMAND: VERSION" })); process.exit(1); }
  const versions = control.versions ?? ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];
  process.stdout.write(JSON.stringify({ cniVersion: versions[versions.length - 1], supportedVersions: versions }));
  process.exit(0);
}
if (command === "ADD") {
  const prev = conf.prevResult ?? { interfaces: [], ips: [] };
  const out = { ...prev, cniVersion: control.resultVersion ?? conf.cniVersion };
  const legacy = (control.resultVersion ?? conf.cniVersion).startsWith("0.");
  out.interfaces = [...(prev.interfaces ?? []), { name: name + "-if", sandbox: env.CNI_NETNS }];
  if (control.ip) out.ips = [...(prev.ips ?? []), { ...(legacy ? { version: "4" } : {}), address: control.ip, interface: out.interfaces.length - 1 }];
  log({});
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}
log({});
process.exit(0);
`;

interface LogLine {
  plugin: string;
  command: string;
  env: Record<string, string>;
  conf: Record<string, unknown> | null;
  start: number;
  end: number;
}

let root: string;
let binDir: string;
let cacheDir: string;

function control(spec: Record<string, unknown>): void {
  writeFileSync(join(binDir, "control.json"), JSON.stringify(spec));
}

function logLines(): LogLine[] {
  const file = join(binDir, "log.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as LogLine);
}

function calls(command?: string): LogLine[] {
  return logLines().filter((l) => command === undefined || l.command === command);
}

function list(extra: Record<string, unknown> = {}, plugins?: Record<string, unknown>[]): NetworkConfigList {
  return loadConfList({
    cniVersion: "1.0.0",
    name: "fakenet",
    plugins: plugins ?? [{ type: "fake-a", capabilities: { portMappings: true }, color: "red" }, { type: "fake-b" }, { type: "fake-c", capabilities: { mac: true, bandwidth: true, ips: false } }],
    ...extra,
  });
}

function rt(containerId = "c1", extra: Partial<RuntimeConf> = {}): RuntimeConf {
  return {
    containerId,
    netns: `/var/run/netns/pod-${containerId}`,
    ifName: "eth0",
    args: [
      ["K8S_POD_NAMESPACE", "default"],
      ["K8S_POD_NAME", `web-${containerId}`],
    ],
    capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }], mac: "c2:00:00:00:00:01", ips: ["10.1.0.9/24"] },
    ...extra,
  };
}

let runtime: CniRuntime;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), `ck-${process.pid}-runtime-`));
  binDir = join(root, "bin");
  cacheDir = join(root, "cache");
  // One copy per name (not a symlink: the script reads its own basename from argv[1]).
  mkdirSync(binDir, { recursive: true });
  for (const name of ["fake-a", "fake-b", "fake-c", "fake-old"]) {
    writeFileSync(join(binDir, name), `#!${process.execPath}\n${FAKE_PLUGIN}`);
    chmodSync(join(binDir, name), 0o755);
  }
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  rmSync(join(binDir, "log.jsonl"), { force: true });
  rmSync(cacheDir, { recursive: true, force: true });
  control({});
  runtime = new CniRuntime({ cniPath: ["/nonexistent-cni-dir", binDir], cacheDir });
});

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection, got a result");
}

// ---------------------------------------------------------------------------------------------
// loadConfList and pluginConfig (pure)

describe("loadConfList", () => {
  const good = { cniVersion: "1.0.0", name: "net", plugins: [{ type: "bridge" }] };
  const rejected: [string, unknown, string][] = [
    ["no name", { ...good, name: undefined }, "name"],
    ["empty name", { ...good, name: "" }, "name"],
    ["bad characters in name", { ...good, name: "my net" }, "name"],
    ["no version at all", { name: "net", plugins: [{ type: "bridge" }] }, "cniVersion"],
    ["version not x.y.z", { ...good, cniVersion: "1.0" }, "cniVersion"],
    ["version a number", { ...good, cniVersion: 1 }, "cniVersion"],
    ["cniVersions not a list", { ...good, cniVersions: "1.0.0" }, "cniVersions"],
    ["cniVersions empty", { ...good, cniVersions: [] }, "cniVersions"],
    ["cniVersions entry bad", { ...good, cniVersions: ["1.0.0", "x"] }, "cniVersions[1]"],
    ["disableCheck not boolean", { ...good, disableCheck: "maybe" }, "disableCheck"],
    ["disableGC not boolean", { ...good, disableGC: 3 }, "disableGC"],
    ["no plugins", { cniVersion: "1.0.0", name: "net" }, "plugins"],
    ["plugins empty", { ...good, plugins: [] }, "plugins"],
    ["plugins not a list", { ...good, plugins: { type: "bridge" } }, "plugins"],
    ["plugin not an object", { ...good, plugins: [{ type: "bridge" }, "portmap"] }, "plugins[1]"],
    ["plugin without type", { ...good, plugins: [{ type: "bridge" }, { capabilities: {} }] }, "plugins[1].type"],
    ["plugin type a path", { ...good, plugins: [{ type: "../bridge" }] }, "plugins[0].type"],
    ["capabilities not an object", { ...good, plugins: [{ type: "portmap", capabilities: ["portMappings"] }] }, "plugins[0].capabilities"],
    ["capability not boolean", { ...good, plugins: [{ type: "portmap", capabilities: { portMappings: "yes" } }] }, "plugins[0].capabilities.portMappings"],
    ["root an array", [good], "(root)"],
  ];
  it.each(rejected)("refuses %s, naming the field", (_label, input, field) => {
    let err: unknown;
    try {
      loadConfList(input as Record<string, unknown>);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).code).toBe(7);
    expect((err as ConfigError).message).toContain(field);
  });

  it("refuses text that is not JSON with a DecodeError (6)", () => {
    expect(() => loadConfList("{not json")).toThrow(DecodeError);
  });

  it("reads text, bytes and objects alike, with defaults", () => {
    const text = JSON.stringify(good);
    for (const input of [text, new TextEncoder().encode(text), good]) {
      const l = loadConfList(input);
      expect(l.name).toBe("net");
      expect(l.candidateVersions).toEqual(["1.0.0"]);
      expect(l.disableCheck).toBe(false);
      expect(l.disableGC).toBe(false);
      expect(l.plugins.map((p) => p.type)).toEqual(["bridge"]);
    }
  });

  it("offers cniVersions and cniVersion together, highest first, once each", () => {
    const l = loadConfList({ ...good, cniVersion: "1.0.0", cniVersions: ["0.4.0", "1.1.0", "1.0.0"] });
    expect(l.candidateVersions).toEqual(["1.1.0", "1.0.0", "0.4.0"]);
  });

  it("accepts disableCheck/disableGC as libcni does (booleans or the strings)", () => {
    expect(loadConfList({ ...good, disableCheck: true, disableGC: "true" })).toMatchObject({ disableCheck: true, disableGC: true });
    expect(loadConfList({ ...good, disableCheck: "false" }).disableCheck).toBe(false);
  });

  it("turns a single-plugin config into a list of one (libcni ConfListFromConf)", () => {
    const l = loadConfList({ cniVersion: "0.4.0", name: "single", type: "bridge", bridge: "br9" });
    expect(l.plugins).toHaveLength(1);
    expect(l.plugins[0]!.type).toBe("bridge");
    expect(l.plugins[0]!.raw).toEqual({ type: "bridge", bridge: "br9" });
  });
});

describe("pluginConfig (checklist 41)", () => {
  const l = list();
  it("injects cniVersion and name, strips capabilities, passes other keys through", () => {
    const conf = pluginConfig(l, l.plugins[0]!, { cniVersion: "1.0.0" });
    expect(conf).toEqual({ cniVersion: "1.0.0", name: "fakenet", type: "fake-a", color: "red" });
  });
  it("runtimeConfig holds only the capabilities the plugin declares and the runtime has", () => {
    const capabilityArgs = { portMappings: [{ hostPort: 1 }], mac: "c2:00:00:00:00:01", ips: ["10.0.0.1/24"], dns: { nameservers: ["10.0.0.10"] } };
    expect(pluginConfig(l, l.plugins[0]!, { cniVersion: "1.0.0", capabilityArgs })["runtimeConfig"]).toEqual({ portMappings: [{ hostPort: 1 }] });
    // fake-c declares mac, bandwidth and ips:false: only mac is both declared (true) and given.
    expect(pluginConfig(l, l.plugins[2]!, { cniVersion: "1.0.0", capabilityArgs })["runtimeConfig"]).toEqual({ mac: "c2:00:00:00:00:01" });
    // fake-b declares nothing: no runtimeConfig key at all.
    expect("runtimeConfig" in pluginConfig(l, l.plugins[1]!, { cniVersion: "1.0.0", capabilityArgs })).toBe(false);
  });
  it("overrides a plugin's own cniVersion/name and never forwards its own prevResult", () => {
    const own = loadConfList({ cniVersion: "1.0.0", name: "n", plugins: [{ type: "x", cniVersion: "0.3.1", name: "other", prevResult: { ips: [] } }] });
    const conf = pluginConfig(own, own.plugins[0]!, { cniVersion: "1.0.0" });
    expect(conf).toEqual({ cniVersion: "1.0.0", name: "n", type: "x" });
  });
});

describe("validateRuntimeConf", () => {
  const base: RuntimeConf = { containerId: "c1", netns: "/var/run/netns/p", ifName: "eth0" };
  const rejected: [string, RuntimeConf, "ADD" | "DEL" | "CHECK", string][] = [
    ["empty container id", { ...base, containerId: "" }, "ADD", "rt.containerId"],
    ["container id with a slash", { ...base, containerId: "a/b" }, "ADD", "rt.containerId"],
    ["ifname too long", { ...base, ifName: "a-very-long-ifname" }, "ADD", "rt.ifName"],
    ["ifname with a colon", { ...base, ifName: "eth:0" }, "DEL", "rt.ifName"],
    ["no netns on ADD", { ...base, netns: "" }, "ADD", "rt.netns"],
    ["no netns on CHECK", { ...base, netns: "" }, "CHECK", "rt.netns"],
    ["arg key with =", { ...base, args: [["A=B", "c"]] }, "ADD", "rt.args[0]"],
    ["arg value with ;", { ...base, args: [["A", "b;c"]] }, "ADD", "rt.args[0]"],
  ];
  it.each(rejected)("refuses %s", (_label, conf, command, field) => {
    let err: unknown;
    try {
      validateRuntimeConf(conf, command);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
  });
  it("accepts DEL without a netns (the namespace may be gone)", () => {
    expect(() => validateRuntimeConf({ ...base, netns: "" }, "DEL")).not.toThrow();
  });
});

describe("convertResult (checklist 39: the runtime converts between result families)", () => {
  it("rewrites only cniVersion within one family", () => {
    expect(convertResult({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }], extra: 1 }, "1.0.0", "1.1.0")).toEqual({ cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24" }], extra: 1 });
  });
  it("converts 0.4.0 to 1.0.0 and back", () => {
    const old = { cniVersion: "0.4.0", interfaces: [{ name: "eth0", sandbox: "/ns" }], ips: [{ version: "4", interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }] };
    const modern = convertResult(old, "0.4.0", "1.0.0");
    expect(modern).toEqual({ cniVersion: "1.0.0", interfaces: [{ name: "eth0", sandbox: "/ns" }], ips: [{ interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }] });
    expect(convertResult(modern, "1.0.0", "0.4.0")).toEqual(old);
  });
  it("refuses a version nobody knows", () => {
    expect(() => convertResult({}, "9.9.9", "1.0.0")).toThrow(VersionError);
  });
});

// ---------------------------------------------------------------------------------------------
// Operations against fake plugins

describe("ADD / DEL / CHECK against fake plugins", () => {
  it("ADD runs in list order, chaining prevResult (none for the first), with the CNI_* environment (40)", async () => {
    control({ "fake-a": { ip: "10.1.0.2/24" } });
    const result = await runtime.add(list(), rt());
    const adds = calls("ADD");
    expect(adds.map((c) => c.plugin)).toEqual(["fake-a", "fake-b", "fake-c"]);
    expect(adds[0]!.conf).not.toHaveProperty("prevResult");
    // Each later plugin gets exactly what the previous one printed.
    expect((adds[1]!.conf!["prevResult"] as { interfaces: { name: string }[] }).interfaces.map((i) => i.name)).toEqual(["fake-a-if"]);
    expect((adds[2]!.conf!["prevResult"] as { interfaces: { name: string }[] }).interfaces.map((i) => i.name)).toEqual(["fake-a-if", "fake-b-if"]);
    expect(result.cniVersion).toBe("1.0.0");
    expect(result.interfaces!.map((i) => i.name)).toEqual(["fake-a-if", "fake-b-if", "fake-c-if"]);
    expect(result.ips).toEqual([{ address: "10.1.0.2/24", interface: 0 }]);
    for (const call of adds) {
      expect(call.conf).toMatchObject({ cniVersion: "1.0.0", name: "fakenet" });
      expect(call.conf).not.toHaveProperty("capabilities");
      expect(call.env).toEqual({
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "c1",
        CNI_NETNS: "/var/run/netns/pod-c1",
        CNI_IFNAME: "eth0",
        CNI_ARGS: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-c1",
        CNI_PATH: `/nonexistent-cni-dir:${binDir}`,
      });
    }
  });

  it("sends runtimeConfig with declared capabilities only, none when a plugin declares none (41)", async () => {
    await runtime.add(list(), rt());
    const [a, b, c] = calls("ADD");
    expect(a!.conf!["runtimeConfig"]).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] });
    expect(b!.conf).not.toHaveProperty("runtimeConfig");
    expect(c!.conf!["runtimeConfig"]).toEqual({ mac: "c2:00:00:00:00:01" });
    expect(a!.conf!["color"]).toBe("red");
  });

  it("caches the final result until DEL; DEL runs in reverse with it; a second DEL works (40, 44)", async () => {
    const l = list();
    const result = await runtime.add(l, rt());
    const file = runtime.cachePath(l, rt());
    expect(existsSync(file)).toBe(true);
    const cached = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    expect(cached).toMatchObject({ kind: "cnikitCacheV1", networkName: "fakenet", containerId: "c1", ifName: "eth0", netns: "/var/run/netns/pod-c1", cniVersion: "1.0.0", result });
    expect(await runtime.cachedAttachments("fakenet")).toHaveLength(1);

    await runtime.del(l, rt());
    const dels = calls("DEL");
    expect(dels.map((c) => c.plugin)).toEqual(["fake-c", "fake-b", "fake-a"]);
    for (const d of dels) {
      expect(d.conf!["prevResult"]).toEqual(result);
      expect(d.env["CNI_COMMAND"]).toBe("DEL");
    }
    expect(existsSync(file)).toBe(false);

    await runtime.del(l, rt());
    const second = calls("DEL").slice(3);
    expect(second.map((c) => c.plugin)).toEqual(["fake-c", "fake-b", "fake-a"]);
    for (const d of second) expect(d.conf).not.toHaveProperty("prevResult");
  });

  it("DEL without netns leaves CNI_NETNS unset", async () => {
    await runtime.del(list(), rt("c1", { netns: "" }));
    for (const d of calls("DEL")) expect(d.env).not.toHaveProperty("CNI_NETNS");
  });

  it("CHECK runs in order with the cached result (40)", async () => {
    const l = list();
    const result = await runtime.add(l, rt());
    await runtime.check(l, rt());
    const checks = calls("CHECK");
    expect(checks.map((c) => c.plugin)).toEqual(["fake-a", "fake-b", "fake-c"]);
    for (const c of checks) expect(c.conf!["prevResult"]).toEqual(result);
  });

  it("disableCheck skips CHECK entirely (43)", async () => {
    const l = list({ disableCheck: true });
    await runtime.add(l, rt());
    await runtime.check(l, rt());
    expect(calls("CHECK")).toHaveLength(0);
  });

  it("CHECK without a cached result fails with code 3, below 0.4.0 with code 1", async () => {
    const err = await rejection(runtime.check(list(), rt()));
    expect(err).toBeInstanceOf(UnknownContainerError);
    const old = await rejection(runtime.check(list({ cniVersion: "0.3.1" }), rt()));
    expect(old).toBeInstanceOf(VersionError);
    expect(old.message).toContain("does not support the CHECK command");
    expect(calls("CHECK")).toHaveLength(0);
  });

  it("a failed ADD throws the plugin's code, msg and details naming the plugin, and caches nothing (48)", async () => {
    control({ "fake-b": { fail: { ADD: { code: 107, msg: "no more coffee", details: "refill" } } } });
    const l = list();
    const err = await rejection(runtime.add(l, rt()));
    expect(err).toBeInstanceOf(PluginError);
    const pe = err as PluginError;
    expect(pe).toMatchObject({ code: 107, details: "refill", plugin: "fake-b", index: 1, command: "ADD", network: "fakenet", pluginMsg: "no more coffee", exitCode: 1 });
    expect(pe.message).toContain("fake-b (plugins[1]) failed ADD: no more coffee");
    expect(calls("ADD").map((c) => c.plugin)).toEqual(["fake-a", "fake-b"]);
    expect(existsSync(runtime.cachePath(l, rt()))).toBe(false);
    // add() leaves the DEL to the caller.
    expect(calls("DEL")).toHaveLength(0);
  });

  it("addOrCleanup issues DEL (reverse, every plugin) after a failed ADD and rethrows (48)", async () => {
    control({ "fake-c": { fail: { ADD: { code: 11, msg: "try later" } } } });
    const err = await rejection(runtime.addOrCleanup(list(), rt()));
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).code).toBe(11);
    expect(calls("DEL").map((c) => c.plugin)).toEqual(["fake-c", "fake-b", "fake-a"]);
  });

  it("addOrCleanup reports both errors when the cleanup DEL fails too", async () => {
    control({ "fake-c": { fail: { ADD: { code: 11, msg: "try later" } } }, "fake-a": { fail: { DEL: { code: 999, msg: "stuck" } } } });
    const err = await rejection(runtime.addOrCleanup(list(), rt()));
    expect(err).toBeInstanceOf(AddCleanupError);
    expect((err as AddCleanupError).addError.code).toBe(11);
    expect((err as AddCleanupError).cleanupError.message).toContain("stuck");
  });

  it("addOrCleanup does not DEL when nothing ran (bad RuntimeConf)", async () => {
    const err = await rejection(runtime.addOrCleanup(list(), rt("bad/id")));
    expect(err).toBeInstanceOf(ConfigError);
    expect(calls()).toHaveLength(0);
  });

  it("a failing plugin without error JSON becomes code 999 with libcni's wording", async () => {
    control({ "fake-a": { fail: { ADD: "garbage" } }, "fake-b": { fail: { ADD: "silent" } } });
    const garbage = (await rejection(runtime.add(list(), rt()))) as PluginError;
    expect(garbage.code).toBe(999);
    expect(garbage.pluginMsg).toBe('netplugin failed: "this is not json"');
    const silent = (await rejection(runtime.add(list({}, [{ type: "fake-b" }]), rt()))) as PluginError;
    expect(silent.code).toBe(999);
    expect(silent.pluginMsg).toBe("netplugin failed with no error message: exit status 2");
    expect(silent.details).toContain("something broke badly");
    expect(silent.stderr).toContain("something broke badly");
  });

  it("a DEL failure stops DEL and keeps the cached result for the retry", async () => {
    const l = list();
    const result = await runtime.add(l, rt());
    control({ "fake-b": { fail: { DEL: { code: 11, msg: "busy" } } } });
    const err = (await rejection(runtime.del(l, rt()))) as PluginError;
    expect(err.plugin).toBe("fake-b");
    expect(calls("DEL").map((c) => c.plugin)).toEqual(["fake-c", "fake-b"]);
    expect(existsSync(runtime.cachePath(l, rt()))).toBe(true);
    control({});
    await runtime.del(l, rt());
    expect(
      calls("DEL")
        .slice(2)
        .map((c) => [c.plugin, c.conf!["prevResult"]]),
    ).toEqual([
      ["fake-c", result],
      ["fake-b", result],
      ["fake-a", result],
    ]);
    expect(existsSync(runtime.cachePath(l, rt()))).toBe(false);
  });

  it("a corrupt cache entry does not block DEL", async () => {
    const l = list();
    await runtime.add(l, rt());
    writeFileSync(runtime.cachePath(l, rt()), "{broken");
    await runtime.del(l, rt());
    for (const d of calls("DEL")) expect(d.conf).not.toHaveProperty("prevResult");
    expect(existsSync(runtime.cachePath(l, rt()))).toBe(false);
  });

  it("a plugin missing from the CNI path is a ConfigError naming the entry", async () => {
    const err = await rejection(runtime.add(list({}, [{ type: "fake-a" }, { type: "no-such-plugin" }]), rt()));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe("plugins[1].type");
    expect(calls("ADD")).toHaveLength(0);
  });

  it("a plugin that answers in an older result version is converted to the list's version", async () => {
    control({ "fake-a": { ip: "10.1.0.2/24", resultVersion: "0.4.0" } });
    const result = await runtime.add(list(), rt());
    expect(result.cniVersion).toBe("1.0.0");
    expect(result.ips).toEqual([{ interface: 0, address: "10.1.0.2/24" }]);
    const b = calls("ADD")[1]!;
    expect(b.conf!["prevResult"]).toMatchObject({ cniVersion: "1.0.0", ips: [{ interface: 0, address: "10.1.0.2/24" }] });
  });

  it("an ADD result that is not JSON is a PluginError with code 6", async () => {
    const exec: PluginExec = async (call) => {
      const out = await spawnExec()(call);
      return call.env["CNI_COMMAND"] === "ADD" ? { ...out, stdout: "oops" } : out;
    };
    const r = new CniRuntime({ cniPath: [binDir], cacheDir, exec });
    const err = (await rejection(r.add(list(), rt()))) as PluginError;
    expect(err).toBeInstanceOf(PluginError);
    expect(err.code).toBe(6);
    expect(err.plugin).toBe("fake-a");
  });

  it("a plugin that runs past the timeout is killed and reported", async () => {
    control({ "fake-a": { fail: { ADD: "hang" } } });
    const r = new CniRuntime({ cniPath: [binDir], cacheDir, timeoutMs: 1500 });
    const err = (await rejection(r.add(list(), rt()))) as PluginError;
    expect(err.code).toBe(999);
    expect(err.signal).toBe("SIGKILL");
    expect(err.pluginMsg).toContain("timed out");
  });
});

describe("version negotiation (42, 62)", () => {
  it("runs at the highest offered version every plugin supports", async () => {
    control({ "fake-b": { versions: ["0.3.1", "0.4.0", "1.0.0"] } });
    expect(await runtime.negotiate(list({ cniVersion: undefined, cniVersions: ["0.4.0", "1.0.0", "1.1.0"] }))).toBe("1.0.0");
    control({});
    const fresh = new CniRuntime({ cniPath: [binDir], cacheDir });
    expect(await fresh.negotiate(list({ cniVersion: undefined, cniVersions: ["0.4.0", "1.0.0", "1.1.0"] }))).toBe("1.1.0");
  });

  it("refuses a list whose only version one plugin lacks, naming it and what would work", async () => {
    control({ "fake-b": { versions: ["0.3.1", "0.4.0", "1.0.0"] } });
    const err = await rejection(runtime.add(list({ cniVersion: "1.1.0" }), rt()));
    expect(err).toBeInstanceOf(VersionError);
    expect((err as VersionError).code).toBe(1);
    expect(err.message).toContain("fake-b supports [0.3.1, 0.4.0, 1.0.0]");
    expect(err.message).not.toContain("fake-a supports");
    expect(err.message).toContain("versions every plugin supports: [0.3.1, 0.4.0, 1.0.0]");
    expect(calls("ADD")).toHaveLength(0);
  });

  it("refuses a version the runtime does not know", async () => {
    const err = await rejection(runtime.negotiate(list({ cniVersion: "2.0.0" })));
    expect(err).toBeInstanceOf(VersionError);
    expect(err.message).toContain("this runtime supports");
  });

  it("counts a plugin without VERSION as 0.1.0-only, as libcni does", async () => {
    control({ "fake-old": { legacyVersion: true } });
    expect(await runtime.version("fake-old")).toEqual({ cniVersion: "0.1.0", supportedVersions: ["0.1.0"] });
  });

  it("asks each executable for VERSION once, again only after it changed on disk", async () => {
    const l = list();
    await runtime.negotiate(l);
    await runtime.negotiate(l);
    await runtime.add(l, rt());
    expect(
      calls("VERSION")
        .map((c) => c.plugin)
        .sort(),
    ).toEqual(["fake-a", "fake-b", "fake-c"]);
    const later = new Date(Date.now() + 5000);
    utimesSync(join(binDir, "fake-b"), later, later);
    await runtime.negotiate(l);
    expect(
      calls("VERSION")
        .map((c) => c.plugin)
        .sort(),
    ).toEqual(["fake-a", "fake-b", "fake-b", "fake-c"]);
    expect(calls("VERSION")[0]!.env).toEqual({ CNI_COMMAND: "VERSION" });
  });
});

describe("STATUS (46)", () => {
  it("is skipped below 1.1.0: no plugin is asked", async () => {
    expect(await runtime.status(list())).toEqual({ cniVersion: "1.0.0", skipped: true });
    expect(calls("STATUS")).toHaveLength(0);
  });

  it("asks every plugin in order at 1.1.0 with CNI_COMMAND and CNI_PATH only", async () => {
    expect(await runtime.status(list({ cniVersion: "1.1.0" }))).toEqual({ cniVersion: "1.1.0", skipped: false });
    const s = calls("STATUS");
    expect(s.map((c) => c.plugin)).toEqual(["fake-a", "fake-b", "fake-c"]);
    expect(s[0]!.env).toEqual({ CNI_COMMAND: "STATUS", CNI_PATH: `/nonexistent-cni-dir:${binDir}` });
    expect(s[0]!.conf).toMatchObject({ cniVersion: "1.1.0", name: "fakenet" });
  });

  it("stops at the first plugin that is not ready and throws its code", async () => {
    control({ "fake-b": { fail: { STATUS: { code: 50, msg: "datastore down" } } } });
    const err = (await rejection(runtime.status(list({ cniVersion: "1.1.0" })))) as PluginError;
    expect(err.code).toBe(50);
    expect(err.plugin).toBe("fake-b");
    expect(calls("STATUS").map((c) => c.plugin)).toEqual(["fake-a", "fake-b"]);
  });
});

describe("GC (45)", () => {
  it("DELs stale cached attachments, then sends GC with the valid ones to every plugin (1.1.0)", async () => {
    const l = list({ cniVersion: "1.1.0" });
    await runtime.add(l, rt("keep"));
    await runtime.add(l, rt("stale1"));
    await runtime.add(l, rt("stale2", { netns: "/var/run/netns/elsewhere", args: [["IgnoreUnknown", "1"]] }));
    const report = await runtime.gc(l, [{ containerId: "keep", ifName: "eth0" }]);
    expect(report.deleted.map((d) => d.containerId).sort()).toEqual(["stale1", "stale2"]);
    expect(report.pluginsCollected).toBe(true);
    const dels = calls("DEL");
    expect(dels.map((d) => d.env["CNI_CONTAINERID"])).toEqual(["stale1", "stale1", "stale1", "stale2", "stale2", "stale2"]);
    expect(dels.map((d) => d.plugin).slice(0, 3)).toEqual(["fake-c", "fake-b", "fake-a"]);
    // The stale attachment is deleted with what it was added with.
    expect(dels[3]!.env).toMatchObject({ CNI_NETNS: "/var/run/netns/elsewhere", CNI_ARGS: "IgnoreUnknown=1" });
    const gcs = calls("GC");
    expect(gcs.map((g) => g.plugin)).toEqual(["fake-a", "fake-b", "fake-c"]);
    for (const g of gcs) {
      expect(g.conf!["cni.dev/valid-attachments"]).toEqual([{ containerID: "keep", ifname: "eth0" }]);
      expect(g.conf!["cni.dev/attachments"]).toEqual([{ containerID: "keep", ifname: "eth0" }]);
      expect(g.env).toEqual({ CNI_COMMAND: "GC", CNI_PATH: `/nonexistent-cni-dir:${binDir}` });
    }
    expect((await runtime.cachedAttachments("fakenet")).map((a) => a.containerId)).toEqual(["keep"]);
  });

  it("below 1.1.0 still DELs stale attachments but sends no GC", async () => {
    const l = list();
    await runtime.add(l, rt("stale"));
    const report = await runtime.gc(l, []);
    expect(report).toEqual({ deleted: [{ containerId: "stale", ifName: "eth0" }], pluginsCollected: false, disabled: false });
    expect(calls("GC")).toHaveLength(0);
  });

  it("only touches its own network's attachments", async () => {
    await runtime.add(list(), rt("mine"));
    const other = list({ name: "othernet" });
    await runtime.add(other, rt("theirs"));
    await runtime.gc(list(), []);
    expect((await runtime.cachedAttachments()).map((a) => `${a.networkName}/${a.containerId}`)).toEqual(["othernet/theirs"]);
  });

  it("disableGC does nothing at all (43)", async () => {
    const l = list({ cniVersion: "1.1.0", disableGC: true });
    await runtime.add(l, rt("stale"));
    const before = calls().length;
    expect(await runtime.gc(l, [])).toEqual({ deleted: [], pluginsCollected: false, disabled: true });
    expect(calls()).toHaveLength(before);
    expect(await runtime.cachedAttachments()).toHaveLength(1);
  });

  it("continues past failures and reports them all", async () => {
    const l = list({ cniVersion: "1.1.0" });
    await runtime.add(l, rt("stale"));
    control({ "fake-a": { fail: { DEL: { code: 999, msg: "del broke" }, GC: { code: 999, msg: "gc broke" } } } });
    const err = (await rejection(runtime.gc(l, []))) as GcError;
    expect(err).toBeInstanceOf(GcError);
    expect(err.errors).toHaveLength(2);
    expect(err.message).toContain("del broke");
    expect(err.message).toContain("gc broke");
    expect(calls("GC").map((g) => g.plugin)).toEqual(["fake-a", "fake-b", "fake-c"]);
  });
});

describe("concurrency (47)", () => {
  function overlaps(a: LogLine, b: LogLine): boolean {
    return a.start < b.end && b.start < a.end;
  }

  it("never runs two operations on one container at once", async () => {
    control({ "fake-a": { delayMs: 150 }, "fake-b": { delayMs: 150 } });
    const l = list({}, [{ type: "fake-a" }, { type: "fake-b" }]);
    await runtime.negotiate(l);
    await Promise.all([runtime.add(l, rt("same")), runtime.del(l, rt("same")), runtime.add(l, rt("same", { ifName: "eth1" }))]);
    const ops = calls().filter((c) => c.command !== "VERSION");
    expect(ops.map((c) => `${c.command} ${c.plugin}`)).toEqual(["ADD fake-a", "ADD fake-b", "DEL fake-b", "DEL fake-a", "ADD fake-a", "ADD fake-b"]);
    for (let i = 1; i < ops.length; i++) expect(ops[i]!.start).toBeGreaterThanOrEqual(ops[i - 1]!.end);
  });

  it("GC waits for running operations and runs alone", async () => {
    control({ "fake-a": { delayMs: 200 } });
    const l = list({ cniVersion: "1.1.0" }, [{ type: "fake-a" }, { type: "fake-b" }]);
    await runtime.negotiate(l);
    await Promise.all([runtime.add(l, rt("x1")), runtime.gc(l, [{ containerId: "x1", ifName: "eth0" }]), runtime.add(l, rt("x2"))]);
    const gcs = calls("GC");
    const others = calls().filter((c) => c.command === "ADD");
    expect(gcs).toHaveLength(2);
    expect(others).toHaveLength(4);
    for (const g of gcs) for (const o of others) expect(overlaps(g, o)).toBe(false);
  });

  it("KeyedMutex is FIFO per key and lets other keys through", async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    let releaseA!: () => void;
    const a = m.run(
      "k",
      () =>
        new Promise<void>(
          (r) =>
            (releaseA = () => {
              order.push("a");
              r();
            }),
        ),
    );
    const b = m.run("k", async () => {
      order.push("b");
    });
    const c = m.run("other", async () => {
      order.push("c");
    });
    await c;
    expect(order).toEqual(["c"]);
    releaseA();
    await Promise.all([a, b]);
    expect(order).toEqual(["c", "a", "b"]);
    expect(m.busyKeys).toBe(0);
  });

  it("SharedExclusiveGate serves a queued exclusive before later shared holders", async () => {
    const g = new SharedExclusiveGate();
    const order: string[] = [];
    let releaseFirst!: () => void;
    const first = g.withShared(
      () =>
        new Promise<void>(
          (r) =>
            (releaseFirst = () => {
              order.push("s1");
              r();
            }),
        ),
    );
    const ex = g.withExclusive(async () => {
      order.push("x");
    });
    const later = g.withShared(async () => {
      order.push("s2");
    });
    await Promise.resolve();
    expect(order).toEqual([]);
    releaseFirst();
    await Promise.all([first, ex, later]);
    expect(order).toEqual(["s1", "x", "s2"]);
  });
});

// ---------------------------------------------------------------------------------------------
// The Debian reference plugins' real VERSION answers

describe("negotiation with the Debian reference plugins (62)", () => {
  const CNI_DIR = "/usr/lib/cni";
  const refList = (versions: Record<string, unknown>): NetworkConfigList =>
    loadConfList({ name: "refnet", ...versions, plugins: [{ type: "bridge" }, { type: "portmap", capabilities: { portMappings: true } }, { type: "tuning" }] });

  beforeAll(() => {
    for (const p of ["bridge", "portmap", "tuning", "host-local"]) {
      if (!existsSync(join(CNI_DIR, p))) throw new Error(`${CNI_DIR}/${p} is missing: install the Debian package containernetworking-plugins`);
    }
  });

  it("refuses a 1.1.0-only list with an error naming the plugins and the 1.0.0 they support", async () => {
    const r = new CniRuntime({ cniPath: [CNI_DIR], cacheDir });
    const err = await rejection(r.negotiate(refList({ cniVersion: "1.1.0" })));
    expect(err).toBeInstanceOf(VersionError);
    for (const p of ["bridge", "portmap", "tuning"]) expect(err.message).toContain(`${p} supports [0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0]`);
    expect(err.message).toContain("versions every plugin supports: [0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0]");
  });

  it("negotiates 1.0.0 for a list offering 1.0.0 and 1.1.0", async () => {
    const r = new CniRuntime({ cniPath: [CNI_DIR], cacheDir });
    expect(await r.negotiate(refList({ cniVersions: ["1.0.0", "1.1.0"] }))).toBe("1.0.0");
    expect(await r.version("portmap")).toEqual({ cniVersion: "1.0.0", supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] });
  });

  it("a mixed list with a 1.1.0 plugin runs at 1.0.0 (the fake plugin sees 1.0.0)", async () => {
    const r = new CniRuntime({ cniPath: [binDir, CNI_DIR], cacheDir });
    const l = loadConfList({ name: "mixed", cniVersions: ["1.0.0", "1.1.0"], plugins: [{ type: "fake-a" }, { type: "tuning" }] });
    expect(await r.negotiate(l)).toBe("1.0.0");
    expect(await r.status(l)).toEqual({ cniVersion: "1.0.0", skipped: true });
    expect(calls("STATUS")).toHaveLength(0);
  });
});

describe("errors are CniErrors", () => {
  it("every runtime error carries a spec code", async () => {
    const errs = [await rejection(runtime.add(list({}, [{ type: "nope" }]), rt())), await rejection(runtime.check(list(), rt())), await rejection(runtime.negotiate(list({ cniVersion: "3.0.0" })))];
    for (const e of errs) {
      expect(e).toBeInstanceOf(CniError);
      expect((e as CniError).code).toBeGreaterThan(0);
    }
  });
});
