/**
 * The CNI protocol functions, table-driven. Each item of the checklist in
 * DESIGN.md ("The CNI rules" §8) that the protocol layer decides is its own test, named
 * with its number; the operations (25-36) are tested end to end in daemon.test.ts and
 * executable.test.ts, with the protocol half of 30, 31 and 36 here.
 */
import {
  AddressInUseError,
  CheckFailedError,
  CniError,
  ConfigError,
  DecodeError,
  EnvError,
  IoError,
  NotReadyError,
  PoolExhaustedError,
  TryAgainError,
  UnknownContainerError,
  VersionError,
} from "@cnikit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  SUPPORTED_VERSIONS,
  aboutText,
  checkVersion,
  errorJson,
  errorVersionOf,
  formatResult,
  mergeResults,
  parseCniArgs,
  parseEnvironment,
  parseInvocation,
  parseNetConf,
  parsePrevResult,
  podAttachmentOf,
  requestedIps,
  resultDns,
  versionInfo,
} from "../src/protocol.ts";
import type { CniEnv, CniRequest, CniResult, StdinInput } from "../src/protocol.ts";

const CONF = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: "1.0.0", name: "net", type: "cnikit-cni", ...extra });
const ENV = (command: string, extra: Record<string, string> = {}): CniEnv => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: "c1",
  CNI_NETNS: "/var/run/netns/p1",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
  ...extra,
});

/** The CniError an invocation throws (fails the test when it does not throw one). */
function failure(env: CniEnv, stdin: StdinInput = CONF()): CniError {
  try {
    parseInvocation(env, stdin);
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return err as CniError;
  }
  throw new Error(`expected ${JSON.stringify(env)} to fail`);
}

function request(env: CniEnv, stdin: StdinInput = CONF()): CniRequest {
  const inv = parseInvocation(env, stdin);
  if (inv.command === "VERSION" || inv.command === "ABOUT") throw new Error(`expected a request, got ${inv.command}`);
  return inv;
}

const RESULT: CniResult = {
  interfaces: [
    { name: "cni0", mac: "0a:00:00:00:00:01", mtu: 1450 },
    { name: "veth1234", mac: "0a:00:00:00:00:02", mtu: 1450 },
    { name: "eth0", mac: "0a:00:00:00:00:03", mtu: 1450, sandbox: "/var/run/netns/p1" },
  ],
  ips: [
    { address: "10.244.1.2/24", gateway: "10.244.1.1", interface: 2 },
    { address: "fd00:1::2/64", gateway: "fd00:1::1", interface: 2 },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "::/0", gw: "fd00:1::1" }, { dst: "10.96.0.0/12" }],
  dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"] },
};

describe("protocol / skel (checklist items 1-24)", () => {
  it("item 1: errors become JSON (for stdout) and the invocation fails; success returns a request", () => {
    const err = failure(ENV("ADD"), "not json");
    const json = JSON.parse(JSON.stringify(errorJson(err, "1.0.0"))) as Record<string, unknown>;
    expect(json).toEqual({ cniVersion: "1.0.0", code: 6, msg: expect.stringContaining("error unmarshall network config") });
    expect(request(ENV("ADD")).command).toBe("ADD");
  });

  it("item 2: the error JSON has a numeric code, msg, details when useful, and cniVersion", () => {
    const err = failure(ENV("ADD"), CONF({ cniVersion: "9.9.9" }));
    const json = errorJson(err, errorVersionOf(CONF({ cniVersion: "9.9.9" })));
    expect(json).toEqual({
      cniVersion: "1.1.0",
      code: 1,
      msg: "incompatible CNI versions",
      details: 'config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]',
    });
    expect(errorJson(new Error("boom"))).toEqual({ cniVersion: "1.1.0", code: 999, msg: "boom" });
    expect(errorJson(new EnvError("x"), "0.4.0")).toEqual({ cniVersion: "0.4.0", code: 4, msg: "x" });
  });

  it.each([
    ["VersionError", new VersionError("v"), 1],
    ["UnsupportedField (2) via CniError", new CniError(2, "f"), 2],
    ["UnknownContainerError", new UnknownContainerError("u"), 3],
    ["EnvError", new EnvError("e"), 4],
    ["IoError", new IoError("i"), 5],
    ["DecodeError", new DecodeError("d"), 6],
    ["ConfigError", new ConfigError({ field: "f", rule: "r" }), 7],
    ["TryAgainError", new TryAgainError("t"), 11],
    ["NotReadyError", new NotReadyError("n"), 50],
    ["NotReadyError impaired", new NotReadyError("n", { impaired: true }), 51],
    ["PoolExhaustedError", new PoolExhaustedError("p", "p"), 100],
    ["AddressInUseError", new AddressInUseError("10.0.0.1", "a"), 101],
    ["CheckFailedError", new CheckFailedError("c"), 106],
    ["untyped Error", new Error("x"), 999],
    ["a thrown string", "oops", 999],
  ])("item 3: %s maps to code %i", (_label, err, code) => {
    expect(errorJson(err).code).toBe(code);
  });

  it("item 4: VERSION answers cniVersion and supportedVersions", () => {
    expect(parseInvocation({ CNI_COMMAND: "VERSION" }, "")).toEqual({ command: "VERSION" });
    expect(versionInfo()).toEqual({ cniVersion: "1.1.0", supportedVersions: [...SUPPORTED_VERSIONS] });
  });

  it.each([
    ["empty stdin", ""],
    ["garbage stdin", "{{{ not json"],
    ["an unreadable stdin", { error: "EIO" }],
    ["a config of an unsupported version", CONF({ cniVersion: "7.0.0" })],
  ])("item 5: VERSION needs only CNI_COMMAND and takes %s", (_label, stdin) => {
    expect(parseInvocation({ CNI_COMMAND: "VERSION" }, stdin)).toEqual({ command: "VERSION" });
  });

  it("item 6: supportedVersions lists every version accepted, 1.1.0 included, and only those", () => {
    const listed = versionInfo().supportedVersions;
    expect(listed).toContain("1.1.0");
    for (const v of listed) expect(() => checkVersion("ADD", v)).not.toThrow();
    for (const v of ["0.5.0", "1.2.0", "2.0.0", "0.3.2"]) expect(() => checkVersion("ADD", v)).toThrow(VersionError);
  });

  it("item 7: no CNI_COMMAND means the about text (stderr, exit 0), listing the versions", () => {
    expect(parseInvocation({}, "")).toEqual({ command: "ABOUT" });
    expect(parseInvocation({ CNI_COMMAND: "" }, "garbage")).toEqual({ command: "ABOUT" });
    expect(aboutText()).toContain("CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
  });

  it("item 8: an unknown command fails with 4 naming it (after the config is read, as skel does)", () => {
    const err = failure(ENV("FROB"));
    expect(err.code).toBe(4);
    expect(err.msg).toBe("unknown CNI_COMMAND: FROB");
    expect(failure(ENV("FROB"), "bad json").code).toBe(6);
  });

  it("item 9: ADD without CONTAINERID, NETNS and IFNAME fails with 4 naming all three, in skel's order", () => {
    const err = failure({ CNI_COMMAND: "ADD" });
    expect(err.code).toBe(4);
    expect(err.msg).toBe("required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing");
    expect(failure({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "c", CNI_NETNS: "", CNI_IFNAME: "eth0" }).msg).toBe("required env variables [CNI_NETNS] missing");
  });

  it("item 10: CHECK without NETNS fails with 4", () => {
    const err = failure({ ...ENV("CHECK"), CNI_NETNS: undefined }, CONF({ prevResult: {} }));
    expect(err.code).toBe(4);
    expect(err.msg).toBe("required env variables [CNI_NETNS] missing");
  });

  it("item 11: DEL without NETNS is accepted", () => {
    const r = request({ ...ENV("DEL"), CNI_NETNS: undefined });
    expect(r.command).toBe("DEL");
    expect(r.env.netns).toBeUndefined();
    expect(failure({ CNI_COMMAND: "DEL" }).msg).toBe("required env variables [CNI_CONTAINERID,CNI_IFNAME] missing");
  });

  it("item 12: GC needs only CNI_COMMAND and CNI_PATH (SPEC §2); without CNI_PATH it fails with 4 naming it", () => {
    const gc = request({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, CONF({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [] }));
    expect(gc.validAttachments).toEqual([]);
    expect(parseEnvironment({ CNI_COMMAND: "GC", CNI_PATH: "/a::/b" }).path).toEqual(["/a", "/b"]);
    for (const env of [{ CNI_COMMAND: "GC" }, { CNI_COMMAND: "GC", CNI_PATH: "" }, { CNI_COMMAND: "GC", CNI_PATH: "::" }]) {
      const err = failure(env, CONF({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [] }));
      expect(err).toBeInstanceOf(EnvError);
      expect(err.code).toBe(4);
      expect(err.msg).toBe("required env variables [CNI_PATH] missing");
    }
    // Environment before stdin (skel's order): a missing CNI_PATH is reported even with a bad config.
    expect(failure({ CNI_COMMAND: "GC" }, "not json").msg).toBe("required env variables [CNI_PATH] missing");
  });

  it("item 12: STATUS needs only CNI_COMMAND; ADD, DEL and CHECK accept a missing CNI_PATH (cnikit-cni delegates to nobody)", () => {
    expect(request({ CNI_COMMAND: "STATUS" }, CONF({ cniVersion: "1.1.0" })).command).toBe("STATUS");
    for (const cmd of ["ADD", "DEL", "CHECK"]) {
      expect(request({ ...ENV(cmd), CNI_PATH: undefined }, CONF({ prevResult: {} })).command).toBe(cmd);
    }
  });

  it.each([
    ["leading dash", "-abc"],
    ["slash", "ab/c"],
    ["space", "ab c"],
    ["colon", "ab:c"],
    ["leading dot", ".abc"],
  ])("item 13: a bad container id (%s) fails with 4, the id in details", (_label, id) => {
    const err = failure(ENV("ADD", { CNI_CONTAINERID: id }));
    expect(err.code).toBe(4);
    expect(err.msg).toBe("invalid characters in containerID");
    expect(err.details).toBe(id);
  });

  it("item 13: a bad id fails before missing variables are reported, and only for commands that need it", () => {
    expect(failure({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "-x" }).msg).toBe("invalid characters in containerID");
    expect(request({ CNI_COMMAND: "GC", CNI_CONTAINERID: "-x", CNI_PATH: "/opt/cni/bin" }, CONF({ cniVersion: "1.1.0", "cni.dev/valid-attachments": null })).command).toBe("GC");
  });

  it.each([
    ["16 bytes", "abcdefghijklmnop", "interface name is too long"],
    ["15 ASCII ok, 16 bytes with a multibyte char", "abcdefghijklmné", "interface name is too long"],
    [".", ".", "interface name is . or .."],
    ["..", "..", "interface name is . or .."],
    ["slash", "eth/0", "interface name contains / or : or whitespace characters"],
    ["colon", "eth:0", "interface name contains / or : or whitespace characters"],
    ["space", "eth 0", "interface name contains / or : or whitespace characters"],
    ["tab", "eth\t0", "interface name contains / or : or whitespace characters"],
  ])("item 14: a bad ifname (%s) fails with 4", (_label, ifName, msg) => {
    const err = failure(ENV("ADD", { CNI_IFNAME: ifName }));
    expect(err.code).toBe(4);
    expect(err.msg).toBe(msg);
  });

  it("item 14: a 15-byte ifname is accepted", () => {
    expect(request(ENV("ADD", { CNI_IFNAME: "abcdefghijklmno" })).env.ifName).toBe("abcdefghijklmno");
  });

  it.each([
    ["missing", { name: undefined }, "missing network name", undefined],
    ["empty", { name: "" }, "missing network name", undefined],
    ["bad characters", { name: "my net" }, "invalid characters found in network name", "my net"],
    ["leading dash", { name: "-net" }, "invalid characters found in network name", "-net"],
  ])("item 15: name %s fails with 7", (_label, extra, msg, details) => {
    const err = failure(ENV("ADD"), CONF(extra));
    expect(err.code).toBe(7);
    expect(err.msg).toBe(msg);
    expect(err.details).toBe(details);
  });

  it.each([
    ["not JSON", "{"],
    ["a JSON array", "[]"],
    ["a JSON string", '"x"'],
    ["a name that is a number", JSON.stringify({ cniVersion: "1.0.0", name: 5 })],
  ])("item 16: stdin that is %s fails with 6", (_label, stdin) => {
    const err = failure(ENV("ADD"), stdin);
    expect(err.code).toBe(6);
    expect(err.msg).toMatch(/^error unmarshall network config: /);
  });

  it("item 17: an unreadable stdin fails with 5", () => {
    const err = failure(ENV("ADD"), { error: "read /dev/stdin: EIO" });
    expect(err.code).toBe(5);
    expect(err.msg).toBe("error reading from stdin: read /dev/stdin: EIO");
  });

  it("item 18: no cniVersion means 0.1.0 (and a 0.1.0 result)", () => {
    const r = request(ENV("ADD"), JSON.stringify({ name: "net" }));
    expect(r.cniVersion).toBe("0.1.0");
    expect(errorVersionOf(JSON.stringify({ name: "net" }))).toBe("0.1.0");
    expect(formatResult(RESULT, r.cniVersion)).toHaveProperty("ip4");
  });

  it.each(["0.5.0", "1.2.0", "2.0.0"])("item 19: unsupported version %s fails with 1 listing the supported ones", (v) => {
    for (const cmd of ["ADD", "DEL"]) {
      const err = failure(ENV(cmd), CONF({ cniVersion: v }));
      expect(err.code).toBe(1);
      expect(err.msg).toBe("incompatible CNI versions");
      expect(err.details).toBe(`config is "${v}", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]`);
    }
  });

  it.each([["1.0"], ["abc"], ["1.0.0-rc1"], ["01.0.0"], [5]])("item 20: unparseable version %j fails with 6", (v) => {
    for (const cmd of ["ADD", "DEL", "CHECK", "GC", "STATUS"]) {
      const err = failure(ENV(cmd), CONF({ cniVersion: v, prevResult: {}, "cni.dev/valid-attachments": [] }));
      expect(err.code).toBe(6);
    }
  });

  it.each(["0.1.0", "0.2.0", "0.3.0", "0.3.1"])("item 21: CHECK at %s fails with 1", (v) => {
    const err = failure(ENV("CHECK"), CONF({ cniVersion: v, prevResult: {} }));
    expect(err.code).toBe(1);
    expect(err.msg).toBe("config version does not allow CHECK");
  });

  it("item 21: CHECK at 0.4.0 and later is accepted", () => {
    for (const v of ["0.4.0", "1.0.0", "1.1.0"]) {
      expect(request(ENV("CHECK"), CONF({ cniVersion: v, prevResult: { cniVersion: v } })).command).toBe("CHECK");
    }
  });

  it.each([
    ["GC", "1.0.0"],
    ["GC", "0.4.0"],
    ["STATUS", "1.0.0"],
    ["STATUS", "0.3.1"],
  ])("item 22: %s at %s fails with 1", (cmd, v) => {
    const err = failure({ CNI_COMMAND: cmd, CNI_PATH: "/opt/cni/bin" }, CONF({ cniVersion: v, "cni.dev/valid-attachments": [] }));
    expect(err.code).toBe(1);
    expect(err.msg).toBe(`config version does not allow ${cmd}`);
  });

  it.each([
    [
      "1.1.0",
      {
        cniVersion: "1.1.0",
        interfaces: [
          { name: "cni0", mac: "0a:00:00:00:00:01", mtu: 1450 },
          { name: "veth1234", mac: "0a:00:00:00:00:02", mtu: 1450 },
          { name: "eth0", mac: "0a:00:00:00:00:03", mtu: 1450, sandbox: "/var/run/netns/p1" },
        ],
        ips: [
          { interface: 2, address: "10.244.1.2/24", gateway: "10.244.1.1" },
          { interface: 2, address: "fd00:1::2/64", gateway: "fd00:1::1" },
        ],
        routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "::/0", gw: "fd00:1::1" }, { dst: "10.96.0.0/12" }],
        dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"] },
      },
    ],
    [
      "0.4.0",
      {
        cniVersion: "0.4.0",
        interfaces: [
          { name: "cni0", mac: "0a:00:00:00:00:01" },
          { name: "veth1234", mac: "0a:00:00:00:00:02" },
          { name: "eth0", mac: "0a:00:00:00:00:03", sandbox: "/var/run/netns/p1" },
        ],
        ips: [
          { version: "4", interface: 2, address: "10.244.1.2/24", gateway: "10.244.1.1" },
          { version: "6", interface: 2, address: "fd00:1::2/64", gateway: "fd00:1::1" },
        ],
        routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "::/0", gw: "fd00:1::1" }, { dst: "10.96.0.0/12" }],
        dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"] },
      },
    ],
    [
      "0.2.0",
      {
        cniVersion: "0.2.0",
        ip4: { ip: "10.244.1.2/24", gateway: "10.244.1.1", routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }, { dst: "10.96.0.0/12" }] },
        ip6: { ip: "fd00:1::2/64", gateway: "fd00:1::1", routes: [{ dst: "::/0", gw: "fd00:1::1" }] },
        dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"] },
      },
    ],
  ])("item 23: a result rendered at %s has that version's shape", (version, expected) => {
    expect(formatResult(RESULT, version)).toEqual(expected);
  });

  it("item 23: 1.0.0 equals 1.1.0, 0.3.0 and 0.3.1 equal 0.4.0, and 0.1.0 equals 0.2.0, up to cniVersion", () => {
    const without = (r: Record<string, unknown>) => ({ ...r, cniVersion: undefined });
    expect(without(formatResult(RESULT, "1.0.0"))).toEqual(without(formatResult(RESULT, "1.1.0")));
    expect(without(formatResult(RESULT, "0.3.0"))).toEqual(without(formatResult(RESULT, "0.4.0")));
    expect(without(formatResult(RESULT, "0.3.1"))).toEqual(without(formatResult(RESULT, "0.4.0")));
    expect(without(formatResult(RESULT, "0.1.0"))).toEqual(without(formatResult(RESULT, "0.2.0")));
  });

  it("item 23: a 0.x result needs an address; empty dns and empty lists are omitted; 1.1.0 route fields kept", () => {
    expect(() => formatResult({ interfaces: [{ name: "eth0" }], ips: [], routes: [] }, "0.2.0")).toThrow(/cannot convert: no valid IP addresses/);
    expect(formatResult({ interfaces: [], ips: [], routes: [], dns: {} }, "1.0.0")).toEqual({ cniVersion: "1.0.0" });
    const r = formatResult({ interfaces: [], ips: [], routes: [{ dst: "10.0.0.0/8", gw: "10.1.0.1", mtu: 1400, table: 100, scope: 0 }] }, "1.1.0");
    expect(r["routes"]).toEqual([{ dst: "10.0.0.0/8", gw: "10.1.0.1", mtu: 1400, table: 100, scope: 0 }]);
    expect(formatResult({ interfaces: [], ips: [], routes: [{ dst: "10.0.0.0/8", mtu: 1400 }] }, "0.4.0")["routes"]).toEqual([{ dst: "10.0.0.0/8" }]);
  });

  it("item 24: ips[].interface 0 is emitted and an unset index is omitted", () => {
    const r = formatResult({ interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.2/24", interface: 0 }, { address: "10.0.1.2/24" }], routes: [] }, "1.0.0");
    const ips = r["ips"] as Record<string, unknown>[];
    expect(ips[0]).toHaveProperty("interface", 0);
    expect(ips[1]).not.toHaveProperty("interface");
    const old = formatResult({ interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.2/24", interface: 0 }], routes: [] }, "0.3.1");
    expect((old["ips"] as Record<string, unknown>[])[0]).toEqual({ version: "4", interface: 0, address: "10.0.0.2/24" });
  });
});

describe("protocol / operations (checklist items 30, 31, 36, 61)", () => {
  it("item 30: DEL works with a prevResult, without one, and with a malformed one (ignored)", () => {
    expect(request(ENV("DEL")).prevResult).toBeUndefined();
    const prev = formatResult(RESULT, "1.0.0");
    expect(request(ENV("DEL"), CONF({ prevResult: prev })).prevResult?.ips).toHaveLength(2);
    const broken = request(ENV("DEL"), CONF({ prevResult: { ips: "nope" } }));
    expect(broken.command).toBe("DEL");
    expect(broken.prevResult).toBeUndefined();
  });

  it("item 31: CHECK without prevResult fails with 7 naming prevResult; a malformed one with 6", () => {
    const err = failure(ENV("CHECK"));
    expect(err.code).toBe(7);
    expect(err.msg).toContain("prevResult");
    expect(failure(ENV("CHECK"), CONF({ prevResult: { ips: [{ address: "10.0.0.300/24" }] } })).code).toBe(6);
  });

  it.each([
    ["an empty list", [], []],
    ["null", null, []],
    [
      "a list",
      [
        { containerID: "a", ifname: "eth0" },
        { containerID: "b", ifname: "net1" },
      ],
      [
        { containerId: "a", ifName: "eth0" },
        { containerId: "b", ifName: "net1" },
      ],
    ],
  ])("item 36: GC takes %s of valid attachments", (_label, list, expected) => {
    const r = request({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, CONF({ cniVersion: "1.1.0", "cni.dev/valid-attachments": list, "cni.dev/attachments": [] }));
    expect(r.validAttachments).toEqual(expected);
  });

  it.each([
    ["missing", {}, "cni.dev/valid-attachments"],
    ["not a list", { "cni.dev/valid-attachments": {} }, "cni.dev/valid-attachments"],
    ["an entry without ifname", { "cni.dev/valid-attachments": [{ containerID: "a" }] }, "cni.dev/valid-attachments[0]"],
  ])("item 36: GC with valid attachments %s fails with 7 naming the field", (_label, extra, field) => {
    const err = failure({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, CONF({ cniVersion: "1.1.0", ...extra }));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
  });

  it.each([
    ["an unknown key", "FOO=bar", 'ARGS: unknown args ["FOO=bar"]'],
    ["two unknown keys", "K8S_POD_NAME=p;A=1;B=2", 'ARGS: unknown args ["A=1" "B=2"]'],
    ["IgnoreUnknown=0", "IgnoreUnknown=0;FOO=bar", 'ARGS: unknown args ["FOO=bar"]'],
    ["a pair without =", "FOO", 'ARGS: invalid pair "FOO"'],
    ["a pair with two =", "A=b=c", 'ARGS: invalid pair "A=b=c"'],
    ["a trailing ;", "IgnoreUnknown=1;", 'ARGS: invalid pair ""'],
    ["a bad IgnoreUnknown", "IgnoreUnknown=maybe", "ARGS: IgnoreUnknown=maybe: must be 1, 0, true or false"],
    ["a bad IP", "IP=10.0.0.300", 'ARGS: IP=10.0.0.300: "10.0.0.300" is not an IP address'],
  ])("item 61: CNI_ARGS with %s fails with 4", (_label, args, msg) => {
    const err = failure(ENV("ADD", { CNI_ARGS: args }));
    expect(err.code).toBe(4);
    expect(err.msg).toBe(msg);
  });

  it.each([["IgnoreUnknown=1"], ["IgnoreUnknown=true"], ["IgnoreUnknown=TRUE"]])("item 61: unknown keys are accepted with %s", (flag) => {
    const args = parseCniArgs(`${flag};FOO=bar;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u1`);
    expect(args).toEqual({
      ignoreUnknown: true,
      podNamespace: "default",
      podName: "web-0",
      podInfraContainerId: "c1",
      podUid: "u1",
      raw: { IgnoreUnknown: flag.split("=")[1], FOO: "bar", K8S_POD_NAMESPACE: "default", K8S_POD_NAME: "web-0", K8S_POD_INFRA_CONTAINER_ID: "c1", K8S_POD_UID: "u1" },
    });
  });

  it("item 61: CNI_ARGS are not parsed for GC and STATUS", () => {
    expect(request({ CNI_COMMAND: "STATUS", CNI_ARGS: "FOO" }, CONF({ cniVersion: "1.1.0" })).command).toBe("STATUS");
  });
});

describe("protocol / attachments", () => {
  it("builds the PodAttachment from env, K8S args, args.cni and runtimeConfig", () => {
    const r = request(
      ENV("ADD", { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;IP=10.244.1.9" }),
      CONF({ args: { cni: { ips: ["10.244.1.9", "fd00::9/64"], labels: [{ key: "app", value: "web" }] } }, runtimeConfig: { ips: ["10.244.1.10/24"] } }),
    );
    expect(podAttachmentOf(r)).toEqual({
      containerId: "c1",
      ifName: "eth0",
      netns: "/var/run/netns/p1",
      namespace: "ns",
      podName: "web",
      labels: { app: "web" },
      requestedIps: ["10.244.1.9", "fd00::9", "10.244.1.10"],
    });
  });

  it.each([
    ["args.cni.ips not a list", { args: { cni: { ips: "10.0.0.1" } } }, "args.cni.ips"],
    ["args.cni.ips entry bad", { args: { cni: { ips: ["x"] } } }, "args.cni.ips[0]"],
    ["runtimeConfig.ips entry bad", { runtimeConfig: { ips: ["10.0.0.1", 7] } }, "runtimeConfig.ips[1]"],
    ["args.cni.labels bad", { args: { cni: { labels: [{ key: "a" }] } } }, "args.cni.labels[0]"],
  ])("refuses %s with 7 naming the field", (_label, extra, field) => {
    const r = request(ENV("ADD"), CONF(extra));
    try {
      podAttachmentOf(r);
      throw new Error("expected a ConfigError");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe(field);
    }
  });

  it.each([
    ["socketPath not a string", { socketPath: 5 }, "socketPath"],
    ["runtimeConfig not an object", { runtimeConfig: [] }, "runtimeConfig"],
    ["dns.nameservers not a list", { dns: { nameservers: "1.1.1.1" } }, "dns.nameservers"],
  ])("a config with %s fails with 7 naming the field", (_label, extra, field) => {
    const err = failure(ENV("ADD"), CONF(extra));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
  });

  it("DNS: runtimeConfig.dns over the config's dns over the agent's", () => {
    const conf = parseNetConf(CONF({ dns: { nameservers: ["1.1.1.1"] }, runtimeConfig: { dns: { nameservers: ["9.9.9.9"], search: ["a"] } } }));
    expect(resultDns({ conf }, { nameservers: ["8.8.8.8"] })).toEqual({ nameservers: ["9.9.9.9"], search: ["a"] });
    expect(resultDns({ conf: parseNetConf(CONF({ dns: { nameservers: ["1.1.1.1"] } })) }, { nameservers: ["8.8.8.8"] })).toEqual({ nameservers: ["1.1.1.1"] });
    expect(resultDns({ conf: parseNetConf(CONF({ dns: {} })) }, { nameservers: ["8.8.8.8"] })).toEqual({ nameservers: ["8.8.8.8"] });
    expect(resultDns({ conf: parseNetConf(CONF()) }, undefined)).toBeUndefined();
  });

  it("requestedIps drops duplicates and keeps order", () => {
    const r = request(ENV("ADD", { CNI_ARGS: "IP=10.0.0.5,10.0.0.6" }), CONF({ runtimeConfig: { ips: ["10.0.0.6/24", "10.0.0.7/24"] } }));
    expect(requestedIps(r)).toEqual(["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
  });
});

describe("protocol / prevResult and chaining", () => {
  it.each(SUPPORTED_VERSIONS.map((v) => [v]))("parses a %s prevResult back from its own rendering", (version) => {
    const rendered = formatResult(RESULT, version);
    const parsed = parsePrevResult(rendered, version);
    expect(formatResult(parsed, version)).toEqual(rendered);
  });

  it.each([
    ["ip4 in a 1.0.0 result", "1.0.0", { ip4: { ip: "10.0.0.2/24" } }, "ip4"],
    ["ips in a 0.2.0 result", "0.2.0", { ips: [{ address: "10.0.0.2/24" }] }, "ips"],
    ["an address without prefix", "1.0.0", { ips: [{ address: "10.0.0.2" }] }, "ips[0].address"],
    ["an interface index out of range", "1.0.0", { interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.2/24", interface: 1 }] }, "ips[0].interface"],
    ["a negative index", "1.0.0", { interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.2/24", interface: -1 }] }, "ips[0].interface"],
    ["a version that contradicts the address", "0.4.0", { ips: [{ version: "6", address: "10.0.0.2/24" }] }, "ips[0].version"],
    ["a bad route dst", "1.0.0", { routes: [{ dst: "nope" }] }, "routes[0].dst"],
    ["a bad gateway", "1.0.0", { ips: [{ address: "10.0.0.2/24", gateway: "x" }] }, "ips[0].gateway"],
    ["an interface without name", "1.0.0", { interfaces: [{ mac: "aa" }] }, "interfaces[0].name"],
    ["an ip6 block with an IPv4 address", "0.2.0", { ip6: { ip: "10.0.0.2/24" } }, "ip6.ip"],
  ])("refuses a prevResult with %s (6, naming the field)", (_label, version, raw, field) => {
    try {
      parsePrevResult(raw, version);
      throw new Error("expected a DecodeError");
    } catch (err) {
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).details).toBe(`prevResult.${field}`);
    }
  });

  it.each([
    ["0.4.0 inside a 1.0.0 config", "1.0.0", "0.4.0", '["1.0.0" "1.1.0"]'],
    ["1.0.0 inside a 0.4.0 config", "0.4.0", "1.0.0", '["0.3.0" "0.3.1" "0.4.0"]'],
    ["0.2.0 inside a 1.1.0 config", "1.1.0", "0.2.0", '["1.0.0" "1.1.0"]'],
    ["0.4.0 inside a 0.2.0 config", "0.2.0", "0.4.0", '["0.1.0" "0.2.0"]'],
    ["a version nobody knows", "1.0.0", "9.9.9", '["1.0.0" "1.1.0"]'],
  ])("item 39: ADD and CHECK refuse a prevResult labelled %s with 1, as libcni's ParsePrevResult does", (_label, confVersion, prevVersion, covered) => {
    const prev = { ...formatResult(RESULT, confVersion), cniVersion: prevVersion };
    for (const cmd of confVersion === "0.2.0" ? ["ADD"] : ["ADD", "CHECK"]) {
      const err = failure(ENV(cmd), CONF({ cniVersion: confVersion, prevResult: prev }));
      expect(err).toBeInstanceOf(VersionError);
      expect(err.code).toBe(1);
      expect(err.msg).toBe(`could not parse prevResult: result type supports ${covered} but unmarshalled CNIVersion is "${prevVersion}"`);
      expect(err.details).toContain("prevResult.cniVersion");
      expect(errorJson(err, confVersion)).toMatchObject({ cniVersion: confVersion, code: 1 });
    }
    // DEL must succeed: the unusable prevResult is ignored.
    expect(request(ENV("DEL"), CONF({ cniVersion: confVersion, prevResult: prev })).prevResult).toBeUndefined();
  });

  it.each([
    ["the config's own version", "1.0.0", "1.0.0"],
    ["the other version of the same result type (1.0.0 in 1.1.0)", "1.1.0", "1.0.0"],
    ["0.3.1 in a 0.4.0 config", "0.4.0", "0.3.1"],
    ["no version at all (libcni injects the config's)", "1.0.0", undefined],
    ["an empty version", "0.4.0", ""],
  ])("item 39: a prevResult labelled with %s is accepted", (_label, confVersion, prevVersion) => {
    const prev: Record<string, unknown> = { ...formatResult(RESULT, confVersion) };
    if (prevVersion === undefined) delete prev["cniVersion"];
    else prev["cniVersion"] = prevVersion;
    const r = request(ENV("ADD"), CONF({ cniVersion: confVersion, prevResult: prev }));
    expect(r.prevResult?.ips).toHaveLength(2);
  });

  it("item 39: a prevResult cniVersion that is not a string fails with 6 naming the field", () => {
    const err = failure(ENV("ADD"), CONF({ prevResult: { ...formatResult(RESULT, "1.0.0"), cniVersion: 1 } }));
    expect(err).toBeInstanceOf(DecodeError);
    expect(err.details).toBe("prevResult.cniVersion");
  });

  it("ADD and CHECK refuse an ipam section with 7 naming ipam and where addresses come from; DEL, GC and STATUS ignore it", () => {
    const ipam = { type: "host-local", subnet: "usePodCidr" };
    for (const conf of [CONF({ ipam }), CONF({ ipam, prevResult: formatResult(RESULT, "1.0.0") })]) {
      for (const command of ["ADD", "CHECK"]) {
        if (command === "CHECK" && !conf.includes("prevResult")) continue;
        const err = failure(ENV(command), conf);
        expect(err).toBeInstanceOf(ConfigError);
        expect(err.code).toBe(7);
        expect((err as ConfigError).field).toBe("ipam");
        expect(err.message).toContain("addresses come from the backend's IPAM in cnikitd");
      }
    }
    expect((parseInvocation(ENV("DEL"), CONF({ ipam })) as CniRequest).command).toBe("DEL");
    expect((parseInvocation({ CNI_COMMAND: "STATUS" }, CONF({ cniVersion: "1.1.0", ipam })) as CniRequest).command).toBe("STATUS");
  });

  it("the plugin's waits (timeoutSeconds, statusTimeoutSeconds) are validated by name", () => {
    expect(parseNetConf(CONF({ timeoutSeconds: 90, statusTimeoutSeconds: 2.5 }))).toMatchObject({ timeoutSeconds: 90, statusTimeoutSeconds: 2.5 });
    for (const [key, value] of [
      ["timeoutSeconds", 0],
      ["timeoutSeconds", "60"],
      ["statusTimeoutSeconds", 86400],
    ] as const) {
      const err = failure(ENV("ADD"), CONF({ [key]: value }));
      expect((err as ConfigError).field).toBe(key);
    }
  });

  it("mergeResults appends our interfaces and shifts our indexes", () => {
    const prev: CniResult = { interfaces: [{ name: "dummy0" }], ips: [{ address: "192.168.0.2/24", interface: 0 }], routes: [{ dst: "0.0.0.0/0", gw: "192.168.0.1" }] };
    const ours: CniResult = {
      interfaces: [{ name: "veth1" }, { name: "eth0", sandbox: "/ns" }],
      ips: [{ address: "10.0.0.2/24", interface: 1 }],
      routes: [{ dst: "0.0.0.0/0", gw: "192.168.0.1" }, { dst: "10.0.0.0/8" }],
    };
    expect(mergeResults(prev, ours)).toEqual({
      interfaces: [{ name: "dummy0" }, { name: "veth1" }, { name: "eth0", sandbox: "/ns" }],
      ips: [
        { address: "192.168.0.2/24", interface: 0 },
        { address: "10.0.0.2/24", interface: 2 },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "192.168.0.1" }, { dst: "10.0.0.0/8" }],
    });
  });

  it("property: rendering then parsing at 1.x keeps every field; at 0.3/0.4 keeps the 0.4 fields", () => {
    const octet = fc.integer({ min: 0, max: 255 });
    const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
    const cidr = fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, l]) => `${a}/${l}`);
    const iface = fc.record(
      { name: fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/), mac: fc.constant("0a:00:00:00:00:01"), mtu: fc.integer({ min: 68, max: 9000 }), sandbox: fc.constant("/ns") },
      { requiredKeys: ["name"] },
    );
    const result = fc.array(iface, { minLength: 1, maxLength: 3 }).chain((interfaces) =>
      fc.record({
        interfaces: fc.constant(interfaces),
        ips: fc.array(fc.record({ address: cidr, gateway: v4, interface: fc.integer({ min: 0, max: interfaces.length - 1 }) }, { requiredKeys: ["address"] }), { maxLength: 3 }),
        routes: fc.array(fc.record({ dst: cidr.map((c) => c), gw: v4, mtu: fc.integer({ min: 68, max: 9000 }), table: fc.integer({ min: 1, max: 250 }) }, { requiredKeys: ["dst"] }), { maxLength: 3 }),
      }),
    );
    fc.assert(
      fc.property(result, fc.constantFrom(...SUPPORTED_VERSIONS.filter((v) => v !== "0.1.0" && v !== "0.2.0")), (r, version) => {
        const parsed = parsePrevResult(JSON.parse(JSON.stringify(formatResult(r, version))), version);
        if (version === "1.0.0" || version === "1.1.0") {
          expect(parsed).toEqual(r);
        } else {
          expect(parsed.interfaces).toEqual(r.interfaces.map((i) => ({ name: i.name, ...(i.mac ? { mac: i.mac } : {}), ...(i.sandbox ? { sandbox: i.sandbox } : {}) })));
          expect(parsed.ips).toEqual(r.ips);
          expect(parsed.routes).toEqual(r.routes.map((x) => ({ dst: x.dst, ...(x.gw ? { gw: x.gw } : {}) })));
        }
      }),
    );
  });
});
