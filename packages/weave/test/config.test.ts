import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CniCode } from "@cnikit/core";
import { REFUSED_WEAVE_ENV, WEAVE, WEAVE_DEFAULTS, WEAVE_ENV_NAMES, isWeavePeerName, parseWeaveConfig } from "../src/config.ts";
import type { WeaveConfig } from "../src/config.ts";

/** The ConfigError thrown for `input` (duck-typed by code and name, never instanceof). */
function refusal(input: unknown): { field: string; rule: string; message: string } {
  try {
    parseWeaveConfig(input);
  } catch (err) {
    const e = err as { code?: unknown; name?: unknown; field?: unknown; rule?: unknown; message: string };
    expect(e.code).toBe(CniCode.InvalidNetworkConfig);
    expect(e.name).toBe("ConfigError");
    expect(e.message.startsWith(`[${WEAVE}] `)).toBe(true);
    return { field: String(e.field), rule: String(e.rule), message: e.message };
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(input)}`);
}

/** The same settings as a container env list. */
function envList(o: Record<string, string>): { name: string; value: string }[] {
  return Object.entries(o).map(([name, value]) => ({ name, value }));
}

const dir = mkdtempSync(join(tmpdir(), "weave-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, contents: string): string {
  const path = join(dir, name);
  writeFileSync(path, contents);
  return path;
}

const DEFAULTS: WeaveConfig = {
  ipallocRange: "10.32.0.0/12",
  defaultSubnet: "10.32.0.0/12",
  init: { mode: "consensus" },
  connLimit: 200,
  noMasqLocal: true,
  fastdp: true,
  trustedSubnets: [],
  expectNpc: true,
  metricsAddr: "0.0.0.0:6782",
};

describe("defaults (launch.sh, weaver main.go)", () => {
  it.each([
    ["an empty object", {}],
    ["an empty env list", []],
    ["empty strings (unset in launch.sh's ${X:-default})", { IPALLOC_RANGE: "", CONN_LIMIT: "", WEAVE_MTU: "", NO_MASQ_LOCAL: "", WEAVE_NO_FASTDP: "", IPALLOC_INIT: "" }],
    ["null values in the object form", { IPALLOC_RANGE: null, WEAVE_MTU: null }],
    ["an env entry without value", [{ name: "WEAVE_MTU" }]],
  ])("%s gives Weave's defaults", (_label, input) => {
    expect(parseWeaveConfig(input)).toEqual(DEFAULTS);
  });

  it("the defaults table matches what the parser fills in", () => {
    const c = parseWeaveConfig({});
    expect(c.ipallocRange).toBe(WEAVE_DEFAULTS.ipallocRange);
    expect(c.connLimit).toBe(WEAVE_DEFAULTS.connLimit);
    expect(c.noMasqLocal).toBe(WEAVE_DEFAULTS.noMasqLocal);
    expect(c.fastdp).toBe(WEAVE_DEFAULTS.fastdp);
    expect(c.metricsAddr).toBe(WEAVE_DEFAULTS.metricsAddr);
    expect(c.password).toBeUndefined();
    expect(c.mtu).toBeUndefined();
  });

  it("the real weave-kube manifest's env list (INIT_CONTAINER, HOSTNAME from spec.nodeName) is accepted unchanged", () => {
    const manifest = [
      { name: "INIT_CONTAINER", value: "true" },
      { name: "HOSTNAME", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "spec.nodeName" } } },
    ];
    expect(parseWeaveConfig(manifest)).toEqual(DEFAULTS);
  });
});

describe("both input forms give the same config", () => {
  const settings: Record<string, string>[] = [
    { IPALLOC_RANGE: "10.0.0.0/16", IPALLOC_DEFAULT_SUBNET: "10.0.4.0/22", IPALLOC_INIT: "consensus=3" },
    { IPALLOC_INIT: "seed=aa:bb:cc:dd:ee:01,node-b", WEAVE_PASSWORD: "s3cret", WEAVE_MTU: "8916" },
    { CONN_LIMIT: "0", NO_MASQ_LOCAL: "0", WEAVE_NO_FASTDP: "1", WEAVE_TRUSTED_SUBNETS: "192.168.0.0/16,172.16.1.0/24" },
    { EXPECT_NPC: "0", HOSTNAME: "node-1", WEAVE_EXPOSE_IP: "10.32.0.1", WEAVE_STATUS_ADDR: "127.0.0.1:6782", IPTABLES_BACKEND: "nft" },
    { CHECKPOINT_DISABLE: "1", INIT_CONTAINER: "true", WEAVE_METRICS_ADDR: "127.0.0.1:9782", IPALLOC_INIT: "observer" },
  ];
  it.each(settings)("%o", (o) => {
    expect(parseWeaveConfig(envList(o))).toEqual(parseWeaveConfig(o));
  });

  it("JSON numbers and booleans in the object form mean what their strings mean", () => {
    expect(parseWeaveConfig({ WEAVE_MTU: 1400, CONN_LIMIT: 50, NO_MASQ_LOCAL: false, EXPECT_NPC: true, WEAVE_NO_FASTDP: true })).toEqual(
      parseWeaveConfig({ WEAVE_MTU: "1400", CONN_LIMIT: "50", NO_MASQ_LOCAL: "false", EXPECT_NPC: "true", WEAVE_NO_FASTDP: "1" }),
    );
    expect(parseWeaveConfig({ WEAVE_NO_FASTDP: false }).fastdp).toBe(true);
    expect(parseWeaveConfig({ NO_MASQ_LOCAL: 1, EXPECT_NPC: 0 })).toMatchObject({ noMasqLocal: true, expectNpc: false });
  });
});

describe("names", () => {
  it("an unknown name is refused by name, listing the known ones", () => {
    const e = refusal({ IPALLOC_RANG: "10.0.0.0/8" });
    expect(e.field).toBe("IPALLOC_RANG");
    expect(e.rule).toContain('unknown variable "IPALLOC_RANG"');
    for (const name of WEAVE_ENV_NAMES) expect(e.rule).toContain(name);
  });

  it("an unknown name in the env list names its entry", () => {
    const e = refusal([
      { name: "WEAVE_MTU", value: "1400" },
      { name: "WEAVE_PASSWROD", value: "x" },
    ]);
    expect(e.field).toBe("env[1].name");
    expect(e.rule).toContain("WEAVE_PASSWROD");
  });

  it.each(Object.keys(REFUSED_WEAVE_ENV))("%s is refused with the reason", (name) => {
    const e = refusal({ [name]: "--log-level=debug" });
    expect(e.field).toBe(name);
    expect(e.rule).toBe(REFUSED_WEAVE_ENV[name]);
  });

  it("every known name is accepted with a valid value in both forms", () => {
    const valid: Record<(typeof WEAVE_ENV_NAMES)[number], string> = {
      CHECKPOINT_DISABLE: "1",
      CONN_LIMIT: "100",
      IPALLOC_RANGE: "10.32.0.0/12",
      EXPECT_NPC: "1",
      IPALLOC_INIT: "consensus",
      WEAVE_EXPOSE_IP: "10.32.0.1",
      WEAVE_METRICS_ADDR: "0.0.0.0:6782",
      WEAVE_PASSWORD: "pw",
      WEAVE_STATUS_ADDR: "127.0.0.1:6782",
      WEAVE_MTU: "1376",
      NO_MASQ_LOCAL: "1",
      IPTABLES_BACKEND: "legacy",
      WEAVE_NO_FASTDP: "1",
      HOSTNAME: "host-0",
      INIT_CONTAINER: "true",
      IPALLOC_DEFAULT_SUBNET: "10.32.0.0/16",
      WEAVE_PASSWORD_FILE: "",
      WEAVE_TRUSTED_SUBNETS: "10.0.0.0/8",
    };
    for (const name of WEAVE_ENV_NAMES) {
      expect(() => parseWeaveConfig({ [name]: valid[name] }), name).not.toThrow();
      expect(() => parseWeaveConfig([{ name, value: valid[name] }]), name).not.toThrow();
    }
  });

  it.each([
    ["a string", "IPALLOC_RANGE=10.0.0.0/8", "env"],
    ["null", null, "env"],
    ["a number", 7, "env"],
  ])("input that is %s is refused", (_label, input, field) => {
    expect(refusal(input).field).toBe(field);
  });
});

describe("env list shape", () => {
  it.each([
    ["an entry that is not an object", ["WEAVE_MTU=1400"], "env[0]", "must be an object"],
    ["an entry without a name", [{ value: "1" }], "env[0].name", "non-empty string"],
    ["an empty name", [{ name: "", value: "1" }], "env[0].name", "non-empty string"],
    ["an unknown key", [{ name: "WEAVE_MTU", value: "1400", valueFrm: {} }], "env[0].valueFrm", "unknown key"],
    ["a number value (the API server refuses it)", [{ name: "WEAVE_MTU", value: 1400 }], "WEAVE_MTU", "quote it"],
    [
      "a duplicate name",
      [
        { name: "WEAVE_MTU", value: "1400" },
        { name: "WEAVE_MTU", value: "1300" },
      ],
      "WEAVE_MTU",
      "appears twice",
    ],
    ["value and valueFrom together", [{ name: "HOSTNAME", value: "a", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }], "HOSTNAME", "give one"],
    ["valueFrom for a password", [{ name: "WEAVE_PASSWORD", valueFrom: { secretKeyRef: { name: "weave-passwd", key: "weave-passwd" } } }], "WEAVE_PASSWORD", "WEAVE_PASSWORD_FILE"],
    ["valueFrom for the range", [{ name: "IPALLOC_RANGE", valueFrom: { configMapKeyRef: { name: "c", key: "k" } } }], "IPALLOC_RANGE", "give the value literally"],
    ["HOSTNAME from another field", [{ name: "HOSTNAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }], "HOSTNAME", "spec.nodeName"],
  ])("%s is refused", (_label, input, field, rule) => {
    const e = refusal(input);
    expect(e.field).toBe(field);
    expect(e.rule).toContain(rule);
  });

  it("an object-form value that is an object is refused", () => {
    expect(refusal({ WEAVE_MTU: { value: 1 } }).field).toBe("WEAVE_MTU");
  });
});

describe("IPALLOC_RANGE and IPALLOC_DEFAULT_SUBNET (ipam.ParseCIDRSubnet, createAllocator)", () => {
  it.each(["10.0.0.0/8", "192.168.0.0/16", "10.32.0.0/30", "100.64.0.0/10"])("%s is accepted as is", (range) => {
    expect(parseWeaveConfig({ IPALLOC_RANGE: range })).toMatchObject({ ipallocRange: range, defaultSubnet: range });
  });

  it.each([
    ["10.32.0.1/12", "host bits must be zero (did you mean 10.32.0.0/12?)"],
    ["10.32.0.0/31", "smaller than minimum size 4"],
    ["10.32.0.0/32", "smaller than minimum size 4"],
    ["fd00::/64", "IPv4 only"],
    ["10.32.0.0", "CIDR notation"],
    ["10.32.0.0/33", "prefix length"],
    [" 10.32.0.0/12", "surrounding spaces"],
    ["010.32.0.0/12", "address part"],
  ])("IPALLOC_RANGE %s is refused", (range, rule) => {
    const e = refusal({ IPALLOC_RANGE: range });
    expect(e.field).toBe("IPALLOC_RANGE");
    expect(e.rule).toContain(rule);
  });

  it("a default subnet inside the range is kept", () => {
    expect(parseWeaveConfig({ IPALLOC_RANGE: "10.0.0.0/16", IPALLOC_DEFAULT_SUBNET: "10.0.128.0/17" })).toMatchObject({
      ipallocRange: "10.0.0.0/16",
      defaultSubnet: "10.0.128.0/17",
    });
    expect(parseWeaveConfig({ IPALLOC_DEFAULT_SUBNET: "10.32.0.0/12" }).defaultSubnet).toBe("10.32.0.0/12");
  });

  it.each([
    ["10.48.0.0/16", "must lie inside allocation range 10.32.0.0/12"],
    ["10.0.0.0/8", "must lie inside allocation range 10.32.0.0/12"],
    ["10.33.0.1/16", "host bits must be zero"],
    ["10.33.0.0/31", "smaller than minimum size 4"],
    ["fd00::/64", "IPv4 only"],
  ])("IPALLOC_DEFAULT_SUBNET %s is refused", (subnet, rule) => {
    const e = refusal({ IPALLOC_DEFAULT_SUBNET: subnet });
    expect(e.field).toBe("IPALLOC_DEFAULT_SUBNET");
    expect(e.rule).toContain(rule);
  });
});

describe("IPALLOC_INIT (main.go parseMode)", () => {
  it.each([
    ["consensus", { mode: "consensus" }],
    ["consensus=1", { mode: "consensus", peerCount: 1, quorum: 1 }],
    ["consensus=2", { mode: "consensus", peerCount: 2, quorum: 2 }],
    ["consensus=3", { mode: "consensus", peerCount: 3, quorum: 2 }],
    ["consensus=100", { mode: "consensus", peerCount: 100, quorum: 51 }],
    ["observer", { mode: "observer" }],
    ["seed=aa:bb:cc:dd:ee:ff", { mode: "seed", peers: ["aa:bb:cc:dd:ee:ff"] }],
    ["seed=AA:BB:CC:DD:EE:01,node-b,node-c.example", { mode: "seed", peers: ["aa:bb:cc:dd:ee:01", "node-b", "node-c.example"] }],
    ["seed=::1,a::b,1:2::", { mode: "seed", peers: ["00:00:00:00:00:01", "0a:00:00:00:00:0b", "01:02:00:00:00:00"] }],
    ["seed=1:2:3:4:5:6", { mode: "seed", peers: ["01:02:03:04:05:06"] }],
  ])("%s", (text, init) => {
    expect(parseWeaveConfig({ IPALLOC_INIT: text }).init).toEqual(init);
  });

  it.each([
    ["consensus=0", 'write plain "consensus"'],
    ["consensus=-1", "integer ≥ 1"],
    ["consensus=two", "integer ≥ 1"],
    ["consensus=", "integer ≥ 1"],
    ["consensus=01", "integer ≥ 1"],
    ["seed", "seed mode requires peer name list"],
    ["seed=", "seed mode requires peer name list"],
    ["seed=a,,b", "empty name"],
    ["seed=aa:bb:cc:dd:ee:ff,AA:BB:CC:DD:EE:FF", "twice"],
    ["seed=node-a,node-a", "twice"],
    ["seed=aa:bb:cc:dd:ee", "invalid peer name format"],
    ["seed=aa:bb:cc:dd:ee:ff:00", "invalid peer name format"],
    ["seed=aa::bb::cc", "invalid peer name format"],
    ["seed=aa:bb:cc:dd:ee:fg", "invalid peer name format"],
    ["seed=1:2:3:4:5::6", "invalid peer name format"],
    ["seed=::", "unknown peer name"],
    ["seed=Node_A", "neither a peer name"],
    ["observer=1", "observer mode takes no parameter"],
    ["paxos", "unknown mode: paxos"],
    ["Consensus", "unknown mode"],
  ])("%s is refused", (text, rule) => {
    const e = refusal({ IPALLOC_INIT: text });
    expect(e.field).toBe("IPALLOC_INIT");
    expect(e.rule).toContain(rule);
  });

  it("isWeavePeerName tells a canonical peer name from a node name", () => {
    const init = parseWeaveConfig({ IPALLOC_INIT: "seed=a::1,node-1" }).init;
    expect(init.mode === "seed" && init.peers.map(isWeavePeerName)).toEqual([true, false]);
    expect(isWeavePeerName("AA:BB:CC:DD:EE:FF")).toBe(false);
  });
});

describe("WEAVE_PASSWORD / WEAVE_PASSWORD_FILE", () => {
  it("a literal password is kept exactly", () => {
    expect(parseWeaveConfig({ WEAVE_PASSWORD: " with spaces\n" }).password).toBe(" with spaces\n");
  });

  it.each([
    ["no trailing newline", "hunter2", "hunter2"],
    ["a trailing newline trimmed", "hunter2\n", "hunter2"],
    ["a trailing CRLF trimmed", "hunter2\r\n", "hunter2"],
    ["only one newline trimmed", "hunter2\n\n", "hunter2\n"],
    ["inner newlines kept", "line1\nline2\n", "line1\nline2"],
  ])("a password file with %s", (_label, contents, password) => {
    expect(parseWeaveConfig({ WEAVE_PASSWORD_FILE: file(`pw-${password.length}-${contents.length}`, contents) }).password).toBe(password);
  });

  it("both set is refused", () => {
    const e = refusal({ WEAVE_PASSWORD: "a", WEAVE_PASSWORD_FILE: file("both", "b") });
    expect(e.field).toBe("WEAVE_PASSWORD");
    expect(e.rule).toContain("not both");
  });

  it("an empty password is refused", () => {
    const e = refusal({ WEAVE_PASSWORD: "" });
    expect(e.field).toBe("WEAVE_PASSWORD");
    expect(e.rule).toContain("must not be empty");
    expect(refusal([{ name: "WEAVE_PASSWORD", value: "" }]).field).toBe("WEAVE_PASSWORD");
  });

  it.each([
    ["empty", ""],
    ["only a newline", "\n"],
  ])("a password file that is %s is refused", (_label, contents) => {
    const e = refusal({ WEAVE_PASSWORD_FILE: file(`empty-${contents.length}`, contents) });
    expect(e.field).toBe("WEAVE_PASSWORD_FILE");
    expect(e.rule).toContain("empty");
  });

  it("a missing file is refused naming WEAVE_PASSWORD_FILE and the cause", () => {
    const e = refusal({ WEAVE_PASSWORD_FILE: join(dir, "absent") });
    expect(e.field).toBe("WEAVE_PASSWORD_FILE");
    expect(e.rule).toContain("ENOENT");
  });

  it("a password that is not a string is refused without echoing it", () => {
    for (const input of [{ WEAVE_PASSWORD: 918_273 }, [{ name: "WEAVE_PASSWORD", value: 918_273 }], { WEAVE_PASSWORD: { secret: "918273" } }]) {
      const e = refusal(input);
      expect(e.field).toBe("WEAVE_PASSWORD");
      expect(e.message).not.toContain("918273");
    }
  });
});

describe("numbers: WEAVE_MTU (576..65535), CONN_LIMIT (≥ 0, 0 = unlimited)", () => {
  it.each([
    [{ WEAVE_MTU: "576" }, { mtu: 576 }],
    [{ WEAVE_MTU: "65535" }, { mtu: 65_535 }],
    [{ WEAVE_MTU: 8916 }, { mtu: 8916 }],
    [{ CONN_LIMIT: "0" }, { connLimit: 0 }],
    [{ CONN_LIMIT: "1" }, { connLimit: 1 }],
    [{ CONN_LIMIT: 500 }, { connLimit: 500 }],
  ])("%o", (input, want) => {
    expect(parseWeaveConfig(input)).toMatchObject(want);
  });

  it.each([
    ["WEAVE_MTU", "575"],
    ["WEAVE_MTU", "65536"],
    ["WEAVE_MTU", "1376.5"],
    ["WEAVE_MTU", "01376"],
    ["WEAVE_MTU", "-1"],
    ["WEAVE_MTU", "jumbo"],
    ["WEAVE_MTU", 1400.5],
    ["WEAVE_MTU", true],
    ["CONN_LIMIT", "-1"],
    ["CONN_LIMIT", "ten"],
    ["CONN_LIMIT", " 5"],
    ["CONN_LIMIT", -3],
  ])("%s %o is refused", (name, value) => {
    const e = refusal({ [name]: value });
    expect(e.field).toBe(name);
    expect(e.rule).toContain(name === "WEAVE_MTU" ? "from 576 to 65535" : "≥ 0 (0 = unlimited)");
  });
});

describe("switches: NO_MASQ_LOCAL, EXPECT_NPC, WEAVE_NO_FASTDP", () => {
  it.each([
    ["0", false],
    ["false", false],
    ["1", true],
    ["true", true],
  ])("NO_MASQ_LOCAL and EXPECT_NPC %s", (value, on) => {
    expect(parseWeaveConfig({ NO_MASQ_LOCAL: value, EXPECT_NPC: value })).toMatchObject({ noMasqLocal: on, expectNpc: on });
  });

  it.each([
    ["NO_MASQ_LOCAL", "yes"],
    ["NO_MASQ_LOCAL", "TRUE"],
    ["EXPECT_NPC", "off"],
    ["EXPECT_NPC", 2],
  ])("%s %o is refused", (name, value) => {
    const e = refusal({ [name]: value });
    expect(e.field).toBe(name);
    expect(e.rule).toContain('"0", "1", "true" or "false"');
  });

  it.each(["1", "true", "yes", "anything"])("WEAVE_NO_FASTDP=%s disables the fast datapath, as in Weave", (value) => {
    expect(parseWeaveConfig({ WEAVE_NO_FASTDP: value }).fastdp).toBe(false);
  });

  it.each(["0", "false", 0])("WEAVE_NO_FASTDP=%o is refused as a trap (Weave reads it as 'disable')", (value) => {
    const e = refusal({ WEAVE_NO_FASTDP: value });
    expect(e.field).toBe("WEAVE_NO_FASTDP");
    expect(e.rule).toContain("remove the variable to keep fastdp");
  });
});

describe("WEAVE_TRUSTED_SUBNETS (main.go parseTrustedSubnets)", () => {
  it.each([
    ["10.0.0.0/8", ["10.0.0.0/8"]],
    ["192.168.1.0/24,172.16.0.0/12", ["192.168.1.0/24", "172.16.0.0/12"]],
    ["10.1.2.3/8", ["10.0.0.0/8"]],
    ["10.0.0.0/8,10.0.0.0/8", ["10.0.0.0/8"]],
  ])("%s", (text, subnets) => {
    expect(parseWeaveConfig({ WEAVE_TRUSTED_SUBNETS: text }).trustedSubnets).toEqual(subnets);
  });

  it.each([
    ["10.0.0.0/8,", "empty element"],
    ["10.0.0.0/8, 192.168.0.0/16", "surrounding spaces"],
    ["10.0.0.0", "CIDR notation"],
    ["fd00::/8", "not IPv4"],
  ])("%s is refused", (text, rule) => {
    const e = refusal({ WEAVE_TRUSTED_SUBNETS: text });
    expect(e.field).toBe("WEAVE_TRUSTED_SUBNETS");
    expect(e.rule).toContain("Unable to parse trusted subnets");
    expect(e.rule).toContain(rule);
  });
});

describe("HOSTNAME, WEAVE_EXPOSE_IP, WEAVE_METRICS_ADDR, WEAVE_STATUS_ADDR, IPTABLES_BACKEND", () => {
  it("accepted values are recorded", () => {
    expect(
      parseWeaveConfig({
        HOSTNAME: "ip-10-0-0-1.ec2.internal",
        WEAVE_EXPOSE_IP: "10.32.0.1",
        WEAVE_METRICS_ADDR: "127.0.0.1:9100",
        WEAVE_STATUS_ADDR: "0.0.0.0:6782",
        IPTABLES_BACKEND: "nft",
      }),
    ).toMatchObject({ nickname: "ip-10-0-0-1.ec2.internal", exposeIp: "10.32.0.1", metricsAddr: "127.0.0.1:9100", statusAddr: "0.0.0.0:6782", iptablesBackend: "nft" });
  });

  it.each([
    ["HOSTNAME", "has space", "host name"],
    ["HOSTNAME", "-leading", "host name"],
    ["WEAVE_EXPOSE_IP", "10.64.0.1", "inside IPALLOC_RANGE 10.32.0.0/12"],
    ["WEAVE_EXPOSE_IP", "10.32.0.0", "network or broadcast"],
    ["WEAVE_EXPOSE_IP", "10.47.255.255", "network or broadcast"],
    ["WEAVE_EXPOSE_IP", "10.32.0.1/12", "not a CIDR"],
    ["WEAVE_EXPOSE_IP", "fd00::1", "IPv4"],
    ["WEAVE_METRICS_ADDR", "0.0.0.0", "host:port"],
    ["WEAVE_METRICS_ADDR", "0.0.0.0:0", "host:port"],
    ["WEAVE_METRICS_ADDR", "0.0.0.0:65536", "host:port"],
    ["WEAVE_STATUS_ADDR", "localhost:6782", "valid IPv4"],
    ["WEAVE_STATUS_ADDR", "[::1]:6782", "valid IPv4"],
    ["IPTABLES_BACKEND", "iptables", '"nft" or "legacy"'],
  ])("%s %s is refused", (name, value, rule) => {
    const e = refusal({ [name]: value });
    expect(e.field).toBe(name);
    expect(e.rule).toContain(rule);
  });

  it("CHECKPOINT_DISABLE and INIT_CONTAINER change nothing", () => {
    expect(parseWeaveConfig({ CHECKPOINT_DISABLE: "1", INIT_CONTAINER: "true" })).toEqual(DEFAULTS);
  });
});
