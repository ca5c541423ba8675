/**
 * The real executables: `bin/cnikit-cni` run as a child process against a daemon on a temporary
 * socket (CNI calls end to end, every result version, error codes and exit statuses, daemon down),
 * and `bin/cnikitd` itself (config file, SIGTERM, a second daemon on the same socket, a stale socket
 * after kill -9, a bad config).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { builtinBackend } from "@cnikit/backends";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CNIKITD_BIN, CNI_PLUGIN_JS, buildNativeShim } from "../src/paths.ts";
import { SUPPORTED_VERSIONS } from "../src/protocol.ts";
import { cniEnv, flannelDaemon, gatedBackend, netconf, runExecutable, runPlugin, spawnCnikitd, tempDir, until, type CnikitdProcess, type TestDaemon } from "./helpers.ts";

const tmp = tempDir();
afterAll(() => tmp.remove());

/** Both shims run the same tests: the JavaScript one and the C one, compiled here with cc. */
const SHIMS: [string, string][] = [
  ["js", CNI_PLUGIN_JS],
  ["native", buildNativeShim({ out: join(tmp.dir, "cnikit-cni") })],
];

describe.each(SHIMS)("cnikit-cni (%s) against a daemon on a socket", (shimName, shim) => {
  let d: TestDaemon;
  const socket = join(tmp.dir, `d-${shimName}.sock`);
  const runPlugin = (env: Record<string, string | undefined>, stdin = "") => runExecutable(shim, env, stdin);
  const plugin = (env: Record<string, string | undefined>, stdin = netconf()) => runPlugin({ CNIKITD_SOCKET: socket, ...env }, stdin);

  beforeAll(async () => {
    d = await flannelDaemon({ socketPath: socket });
  });
  afterAll(async () => {
    await d.daemon.stop();
  });

  it("items 4-6: VERSION is answered by the shim with the supported versions, whatever stdin", async () => {
    for (const stdin of ["", "garbage"]) {
      const r = await runPlugin({ CNI_COMMAND: "VERSION", CNIKITD_SOCKET: join(tmp.dir, "nobody.sock") }, stdin);
      expect(r.code).toBe(0);
      expect(r.json).toEqual({ cniVersion: "1.1.0", supportedVersions: [...SUPPORTED_VERSIONS] });
    }
  });

  it("item 7: without CNI_COMMAND it prints the about text on stderr and exits 0", async () => {
    const r = await runPlugin({});
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
  });

  it.each(SUPPORTED_VERSIONS.filter((v) => v >= "0.3.0").map((v) => [v]))("item 23: ADD at %s answers in that version, exit 0", async (version) => {
    const cid = `v${version.replace(/\./g, "")}`;
    const r = await plugin(cniEnv("ADD", cid), netconf({ cniVersion: version }));
    expect(r.code).toBe(0);
    expect(r.json!["cniVersion"]).toBe(version);
    const ips = r.json!["ips"] as Record<string, unknown>[];
    expect(ips[0]!["address"]).toMatch(/^10\.244\.\d+\.\d+\/24$/);
    expect(ips[0]!["interface"]).toBe(2);
    expect("version" in ips[0]!).toBe(version < "1.0.0");
    const ifaces = r.json!["interfaces"] as { name: string; sandbox?: string }[];
    expect(ifaces[2]).toMatchObject({ name: "eth0", sandbox: `/var/run/netns/${cid}` });
    expect((await plugin(cniEnv("DEL", cid), netconf({ cniVersion: version }))).code).toBe(0);
  });

  it.each([
    ["item 9: ADD without the container variables", { CNI_COMMAND: "ADD" }, netconf(), 4, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"],
    ["item 8: an unknown command", cniEnv("FROB"), netconf(), 4, "unknown CNI_COMMAND: FROB"],
    ["item 13: a bad container id", cniEnv("ADD", "c1", { CNI_CONTAINERID: "-bad" }), netconf(), 4, "invalid characters in containerID"],
    ["item 14: a bad ifname", cniEnv("ADD", "c1", { CNI_IFNAME: "a/b" }), netconf(), 4, "interface name contains / or : or whitespace characters"],
    ["item 16: stdin that is not JSON", cniEnv("ADD"), "{oops", 6, "error unmarshall network config"],
    ["item 15: a bad network name", cniEnv("ADD"), netconf({ name: "a b" }), 7, "invalid characters found in network name"],
    ["item 19: an unsupported version", cniEnv("ADD"), netconf({ cniVersion: "0.9.0" }), 1, "incompatible CNI versions"],
    ["item 21: CHECK at 0.3.1", cniEnv("CHECK"), netconf({ cniVersion: "0.3.1", prevResult: {} }), 1, "config version does not allow CHECK"],
    ["item 31: CHECK without prevResult", cniEnv("CHECK"), netconf(), 7, "prevResult"],
    ["item 61: unknown CNI_ARGS", cniEnv("ADD", "c1", { CNI_ARGS: "FOO=1" }), netconf(), 4, 'ARGS: unknown args ["FOO=1"]'],
    ["item 12: GC without CNI_PATH", { CNI_COMMAND: "GC" }, netconf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [] }), 4, "required env variables [CNI_PATH] missing"],
    [
      "item 39: a 0.4.0 prevResult in a 1.0.0 config",
      cniEnv("ADD", "c1"),
      netconf({ prevResult: { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.9.0.2/24" }] } }),
      1,
      'could not parse prevResult: result type supports ["1.0.0" "1.1.0"] but unmarshalled CNIVersion is "0.4.0"',
    ],
  ])("items 1-3: %s fails with the spec's error JSON on stdout and exit 1", async (_label, env, stdin, code, msg) => {
    const r = await plugin(env, stdin);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code, msg: expect.stringContaining(msg) });
    expect(typeof r.json!["cniVersion"]).toBe("string");
  });

  it("item 17: an unreadable stdin fails with 5", async () => {
    const fd = openSync(tmp.dir, "r");
    try {
      const r = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
        const child = spawn(shim, [], { env: { PATH: process.env["PATH"] ?? "", ...cniEnv("ADD"), CNIKITD_SOCKET: socket } as Record<string, string>, stdio: [fd, "pipe", "pipe"] });
        let stdout = "";
        child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, stdout }));
      });
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 5, msg: expect.stringContaining("error reading from stdin") });
    } finally {
      closeSync(fd);
    }
  });

  it("items 28-30: DEL is idempotent, needs no NETNS and no prevResult, and releases the address", async () => {
    const add = await plugin(cniEnv("ADD", "del1"));
    expect(add.code).toBe(0);
    const address = (add.json!["ips"] as { address: string }[])[0]!.address.split("/")[0]!;
    expect(await plugin(cniEnv("DEL", "del1", { CNI_NETNS: undefined }))).toMatchObject({ code: 0, stdout: "" });
    expect((await plugin(cniEnv("DEL", "del1"), netconf({ prevResult: add.json }))).code).toBe(0);
    expect((await plugin(cniEnv("DEL", "never-added"))).code).toBe(0);
    const reuse = await plugin(cniEnv("ADD", "del2", { CNI_ARGS: `IP=${address}` }));
    expect((reuse.json!["ips"] as { address: string }[])[0]!.address).toBe(`${address}/24`);
  });

  it("items 27, 26: a failed ADD exits 1 and leaves nothing reserved; a second ADD exits 1 with 108 and hands out no second address", async () => {
    d.applier.failFor.add("fails");
    const r = await plugin(cniEnv("ADD", "fails"));
    d.applier.failFor.clear();
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 999, msg: expect.stringContaining("fake renderer") });
    expect(await d.local.get("/flannel/ipam/pods/fails/eth0")).toBeUndefined();
    const first = await plugin(cniEnv("ADD", "twice"));
    expect(first.code).toBe(0);
    const second = await plugin(cniEnv("ADD", "twice"));
    expect(second.code).toBe(1);
    expect(second.json).toMatchObject({ code: 108, msg: expect.stringContaining("interface eth0 already exists") });
    expect((await d.local.list("/flannel/ipam/pods/twice/")).items.map((kv) => kv.key)).toEqual(["/flannel/ipam/pods/twice/eth0"]);
  });

  it("items 32, 33: CHECK passes silently after ADD and fails with 106 when the interface is broken", async () => {
    const add = await plugin(cniEnv("ADD", "chk"));
    expect(await plugin(cniEnv("CHECK", "chk"), netconf({ prevResult: add.json }))).toMatchObject({ code: 0, stdout: "" });
    d.applier.broken.add("chk/eth0");
    const r = await plugin(cniEnv("CHECK", "chk"), netconf({ prevResult: add.json }));
    d.applier.broken.clear();
    expect(r.code).toBe(1);
    expect(r.json!["code"]).toBe(106);
  });

  it("items 35, 36: STATUS 0 when ready; GC keeps the listed attachments only", async () => {
    expect(await plugin({ CNI_COMMAND: "STATUS" }, netconf({ cniVersion: "1.1.0" }))).toMatchObject({ code: 0, stdout: "" });
    await plugin(cniEnv("ADD", "gc-keep"));
    await plugin(cniEnv("ADD", "gc-drop"));
    const gc = await plugin({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, netconf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: "gc-keep", ifname: "eth0" }] }));
    expect(gc).toMatchObject({ code: 0, stdout: "" });
    const keys = (await d.local.list("/flannel/ipam/pods/")).items.map((kv) => kv.key);
    expect(keys).toEqual(["/flannel/ipam/pods/gc-keep/eth0"]);
  });

  it("reads only the top-level socketPath: one nested in prevResult or inside a string is ignored", async () => {
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      trap: 'a\\"b}, "socketPath": "/wrong1" {',
      name: "cnikit",
      nested: { socketPath: "/wrong2", list: [1, { socketPath: "/wrong3" }] },
      prevResult: { cniVersion: "1.0.0", interfaces: [{ name: "vhost0", socketPath: "/wrong4" }] },
    });
    const r = await plugin(cniEnv("ADD", "nested"), conf);
    expect(r.code).toBe(0);
    const named = await runPlugin(
      { ...cniEnv("ADD", "nested2"), CNIKITD_SOCKET: join(tmp.dir, "wrong.sock") },
      JSON.stringify({ cniVersion: "1.0.0", name: "cnikit", nested: { a: "}" }, socketPath: socket }),
    );
    expect(named.code).toBe(0);
  });

  it("takes the socket from the netconf's socketPath over $CNIKITD_SOCKET", async () => {
    const r = await runPlugin({ ...cniEnv("ADD", "sp"), CNIKITD_SOCKET: join(tmp.dir, "wrong.sock") }, netconf({ socketPath: socket }));
    expect(r.code).toBe(0);
  });
});

describe.each(SHIMS)("cnikit-cni (%s) with the daemon down", (shimName, shim) => {
  const runPlugin = (env: Record<string, string | undefined>, stdin = "") => runExecutable(shim, env, stdin);

  it.each([
    ["ADD", 11],
    ["DEL", 11],
    ["CHECK", 11],
    ["GC", 11],
    ["STATUS", 50],
  ])("%s fails fast with code %i saying cnikitd is not running", async (command, code) => {
    const socket = join(tmp.dir, "absent.sock");
    const r = await runPlugin({ ...cniEnv(command), CNIKITD_SOCKET: socket }, netconf({ cniVersion: "1.1.0", prevResult: {} }));
    expect(r.code).toBe(1);
    expect(r.json).toEqual({ cniVersion: "1.1.0", code, msg: `cnikitd is not running (connect ${socket}: ENOENT)`, details: expect.any(String) });
  });

  it("STATUS is 50 while the daemon is up but its agent has not started", async () => {
    const socket = join(tmp.dir, `gated-${shimName}.sock`);
    const gated = gatedBackend(builtinBackend("flannel").backend);
    const d = await flannelDaemon({ backend: gated.backend, socketPath: socket, start: false });
    await d.daemon.start();
    try {
      const r = await runPlugin({ CNI_COMMAND: "STATUS", CNIKITD_SOCKET: socket }, netconf({ cniVersion: "1.1.0" }));
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ code: 50, msg: expect.stringContaining("still starting") });
    } finally {
      gated.open();
      await d.daemon.stop();
    }
  });
});

describe("cnikitd executable", () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  function config(name: string, extra: Record<string, unknown> = {}): { file: string; socket: string } {
    const dir = join(tmp.dir, name);
    const socket = join(dir, "cnikitd.sock");
    const file = join(tmp.dir, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        node: { name: "node-1", underlay: [{ iface: "eth0", address: "192.0.2.10", prefixLength: 24 }] },
        backend: "flannel",
        backendConfig: { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } },
        store: `file:${name}/store`,
        localStateDir: `${name}/local`,
        socketPath: socket,
        renderer: { type: "none" },
        ...extra,
      }),
    );
    return { file, socket };
  }

  const start = (file: string): CnikitdProcess => spawnCnikitd(["--config", file], children);

  async function ready(socket: string, stderr: () => string): Promise<void> {
    await until(async () => (await runPlugin({ CNI_COMMAND: "STATUS", CNIKITD_SOCKET: socket }, netconf({ cniVersion: "1.1.0" }))).code === 0, 30_000, `cnikitd ready (stderr: ${stderr()})`);
  }

  it("serves ADD, stops on SIGTERM (exit 0, socket removed), and keeps its pods across a restart", async () => {
    const { file, socket } = config("run");
    const first = start(file);
    await ready(socket, first.stderr);
    const add = await runPlugin({ ...cniEnv("ADD", "pod1"), CNIKITD_SOCKET: socket }, netconf());
    expect(add.code).toBe(0);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    const down = await runPlugin({ ...cniEnv("ADD", "pod1"), CNIKITD_SOCKET: socket }, netconf());
    expect(down.json!["code"]).toBe(11);
    const second = start(file);
    await ready(socket, second.stderr);
    // The pod is still there: CHECK with its result passes, a second ADD is refused (item 26).
    const check = await runPlugin({ ...cniEnv("CHECK", "pod1"), CNIKITD_SOCKET: socket }, netconf({ prevResult: add.json }));
    expect(check.code, check.stdout).toBe(0);
    const again = await runPlugin({ ...cniEnv("ADD", "pod1"), CNIKITD_SOCKET: socket }, netconf());
    expect(again.json).toMatchObject({ code: 108, msg: expect.stringContaining((add.json!["ips"] as { address: string }[])[0]!.address) });
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  it("refuses to start on a socket another cnikitd serves, and replaces the stale socket of a killed one", async () => {
    const { file, socket } = config("twice");
    const first = start(file);
    await ready(socket, first.stderr);
    const other = config("twice-b", { socketPath: socket });
    const second = start(other.file);
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toMatch(/socketPath: is served by another running cnikitd/);
    first.child.kill("SIGKILL");
    await first.exited;
    expect(existsSync(socket)).toBe(true);
    const stale = await runPlugin({ ...cniEnv("ADD", "x"), CNIKITD_SOCKET: socket }, netconf());
    expect(stale.json).toMatchObject({ code: 11, msg: `cnikitd is not running (connect ${socket}: ECONNREFUSED)` });
    const third = start(file);
    await ready(socket, third.stderr);
    third.child.kill("SIGTERM");
    expect(await third.exited).toBe(0);
  });

  it.each([
    ["a missing node name", { node: { underlay: [{ iface: "eth0", address: "192.0.2.10", prefixLength: 24 }] } }, "node.name"],
    ["an unknown backend", { backend: "cilium" }, "backend"],
    ["a bad backend config", { backendConfig: { Network: "10.244.0.0/16", SubnetLen: 31 } }, "backendConfig.SubnetLen"],
    ["a bad store", { store: "redis://x" }, "store"],
    ["an unknown key", { sockPath: "/x" }, "sockPath"],
  ])("exits 2 naming the field for a config with %s", async (_label, extra, field) => {
    const { file } = config(`bad-${field.replace(/\W/g, "")}`, extra);
    const r = await runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${field}:`);
  });

  it("runs a backend module its config names (not built in: the reference re-exported as 'acme' by a project of its own) and serves ADD with it; a module that cannot load is exit 2 naming backend.module", async () => {
    // A project outside the workspace whose node_modules links @cnikit/core and @cnikit/reference.
    const project = join(tmp.dir, "acme-project");
    const packages = fileURLToPath(new URL("../../", import.meta.url));
    mkdirSync(join(project, "node_modules", "@cnikit"), { recursive: true });
    for (const pkg of ["core", "reference"]) symlinkSync(join(packages, pkg), join(project, "node_modules", "@cnikit", pkg));
    writeFileSync(
      join(project, "acme.mjs"),
      'import { defineBackend } from "@cnikit/core";\nimport { reference } from "@cnikit/reference";\nexport const acme = defineBackend({ ...reference, name: "acme" });\n',
    );
    const { file, socket } = config("acme", { backend: { module: join(project, "acme.mjs"), export: "acme" }, backendConfig: { network: "10.250.0.0/16" } });
    const check = await runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--config", file, "--check"]);
    expect(check.stderr).toContain("ok (node node-1, backend acme)");
    expect(check.code).toBe(0);
    const daemon = start(file);
    await ready(socket, daemon.stderr);
    const add = await runPlugin({ ...cniEnv("ADD", "pod-acme"), CNIKITD_SOCKET: socket }, netconf());
    expect(add.code, JSON.stringify(add.json)).toBe(0);
    expect(String((add.json!["ips"] as { address: string }[])[0]!.address)).toMatch(/^10\.250\./);
    expect(daemon.stderr()).toMatch(/node node-1 ready \(backend acme,/);
    daemon.child.kill("SIGTERM");
    expect(await daemon.exited).toBe(0);
    const missing = config("acme-missing", { backend: { module: join(project, "nope.mjs") }, backendConfig: { network: "10.250.0.0/16" } });
    const bad = await runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--config", missing.file, "--check"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("backend.module:");
  });

  it("--check validates the config and exits 0; bad usage exits 2", async () => {
    const { file } = config("check");
    const ok = await runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--config", file, "--check"]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain("ok (node node-1, backend flannel)");
    const usage = await runExecutable(CNIKITD_BIN, { CNIKIT_FROM_SOURCE: "1" }, "", ["--frob"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("cnikitd: unknown option --frob; known options: --config, --check, --wait-ready, --timeout, --help (-h)");
  });
});
