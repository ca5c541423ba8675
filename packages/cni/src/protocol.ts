/**
 * The CNI protocol (spec 1.1.0) as pure functions: environment and network-config validation in
 * the order of containernetworking/cni's `pkg/skel`, CNI_ARGS parsing, result conversion to every
 * result version from 0.1.0 to 1.1.0, prevResult parsing, and the error JSON. No I/O: the daemon
 * (`daemon.ts`) feeds it the plugin executable's environment and stdin and writes what it returns.
 *
 * Order of validation (skel's, see DESIGN.md "The CNI rules" §1):
 *  1. environment, variable by variable: a present but bad CNI_CONTAINERID / CNI_IFNAME fails at
 *     once (4); missing required ones are collected and reported together (4
 *     `required env variables [A,B] missing`);
 *  2. stdin (5 when it could not be read; VERSION does not read it);
 *  3. except for VERSION: JSON (6), then `name` (7);
 *  4. the config's `cniVersion` against the command (1, or 6 when it cannot be parsed);
 *  5. the command itself (4 `unknown CNI_COMMAND: <cmd>`).
 *
 * Required variables follow the spec (SPEC §2), not skel: CNI_PATH is required by GC only (the
 * spec lists it as GC's one parameter besides CNI_COMMAND), so GC without it fails with 4 naming
 * CNI_PATH; ADD, DEL, CHECK and STATUS accept a missing CNI_PATH (skel requires it for all but
 * VERSION; cnikit-cni delegates to nobody).
 *
 * A `prevResult` must be in the config's result version, as libcni's `ParsePrevResult` and every
 * reference plugin require: its `cniVersion` (absent = the config's) must be one the config's
 * result type covers (1.0.0/1.1.0; 0.3.0/0.3.1/0.4.0; 0.1.0/0.2.0), else `VersionError` (1) naming
 * `prevResult.cniVersion` — the runtime converts results between versions, never the plugin.
 *
 * Other choices where upstream and the spec differ (DESIGN.md has the list): VERSION answers our
 * own highest version; error JSON carries `cniVersion`; errors get specific codes instead of 999.
 */
import { CniError, ConfigError, DecodeError, EnvError, IoError, VersionError, canonicalAddress, parseAddress, parseInterfaceAddress, Prefix } from "@cnikit/core";
import type { AttachResult, CniErrorJson, PodAttachment, PodRef } from "@cnikit/core";

const COMPONENT = "cnikit-cni";

/** Every CNI version this plugin accepts, oldest first. */
export const SUPPORTED_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The version this plugin implements (answered by VERSION, used in errors when the config gives none we know). */
export const PLUGIN_VERSION: CniVersion = "1.1.0";

/** The CNI commands. */
export const CniCommand = {
  add: "ADD",
  del: "DEL",
  check: "CHECK",
  gc: "GC",
  status: "STATUS",
  version: "VERSION",
} as const;
export type CniCommand = (typeof CniCommand)[keyof typeof CniCommand];

/** The environment variables the plugin reads, in skel's order. */
export const CNI_ENV_VARS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"] as const;

/**
 * Which commands require which variable (CNI_COMMAND is required by all), as SPEC §2 lists them:
 * GC requires CNI_PATH; STATUS requires nothing else. See the module comment.
 */
const REQUIRED: Record<string, readonly string[]> = {
  CNI_CONTAINERID: ["ADD", "CHECK", "DEL"],
  CNI_NETNS: ["ADD", "CHECK"],
  CNI_IFNAME: ["ADD", "CHECK", "DEL"],
  CNI_PATH: ["GC"],
};

/** The result families a converted result can take. */
const ABOUT =
  "cnikit-cni: the cnikit CNI plugin. It forwards each call to the node's cnikitd daemon over a unix socket " +
  "(netconf key socketPath, else $CNIKITD_SOCKET, else /run/cnikit/cnikitd.sock, else the one /run/cnikit/<node>/cnikitd.sock).";

/** The text printed on stderr when the plugin runs without CNI_COMMAND (exit 0), as skel does. */
export function aboutText(): string {
  return `${ABOUT}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`;
}

/** The VERSION answer: `{cniVersion, supportedVersions}` (our own highest version, as upstream plugins answer). */
export function versionInfo(): { cniVersion: CniVersion; supportedVersions: CniVersion[] } {
  return { cniVersion: PLUGIN_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

// ---------------------------------------------------------------------------------------------
// Environment

/** The environment as the plugin was given it (only CNI_* variables matter). */
export type CniEnv = Readonly<Record<string, string | undefined>>;

/** Step 1 of the validation: the variables, checked for the command. */
export interface CniEnvironment {
  /** CNI_COMMAND as given (may be an unknown command: that is reported in step 5). */
  command: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** CNI_ARGS, unparsed (parsed by `parseCniArgs` once the command is known to need it). */
  args?: string;
  /** CNI_PATH split on `:` (empty entries dropped). */
  path: string[];
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Validates a container id as skel does: non-empty (else 3 `missing containerID`), and matching
 * `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (else 4 `invalid characters in containerID`, the id in details).
 */
export function validateContainerId(id: string): void {
  if (id === "") throw new CniError(3, "missing containerID");
  if (!CONTAINER_ID.test(id)) throw new EnvError("invalid characters in containerID", id);
}

/**
 * Validates an interface name as skel does (all code 4): not empty, at most 15 bytes, not `.` or
 * `..`, no `/`, `:` or whitespace.
 */
export function validateIfName(name: string): void {
  if (name === "") throw new EnvError("interface name is empty");
  if (Buffer.byteLength(name, "utf8") > 15) throw new EnvError("interface name is too long", "interface name should be less than 16 characters");
  if (name === "." || name === "..") throw new EnvError("interface name is . or ..");
  if (/[/:\s]/u.test(name)) throw new EnvError("interface name contains / or : or whitespace characters");
}

/**
 * Validates a network name (7): not empty (`missing network name`), and matching
 * `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (`invalid characters found in network name`, the name in details).
 */
export function validateNetworkName(name: string): void {
  if (name === "") throw new CniError(7, "missing network name");
  if (!NETWORK_NAME.test(name)) throw new CniError(7, "invalid characters found in network name", { details: name });
}

/**
 * Step 1: reads the CNI_* variables in skel's order. An empty variable counts as missing (a
 * CNI_PATH of only `:` too). A present CNI_CONTAINERID or CNI_IFNAME that the command needs is
 * validated at once (first bad one throws); missing required variables (`REQUIRED`: CNI_PATH for
 * GC) are collected and thrown together as `EnvError` (4) `required env variables [A,B] missing`.
 * CNI_COMMAND is always required. Pure.
 */
export function parseEnvironment(env: CniEnv): CniEnvironment {
  const command = env["CNI_COMMAND"] ?? "";
  const missing: string[] = [];
  if (command === "") missing.push("CNI_COMMAND");
  const out: CniEnvironment = { command, path: [] };
  for (const name of ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] as const) {
    const value = env[name] ?? "";
    const required = REQUIRED[name]!.includes(command);
    if (value === "") {
      if (required) missing.push(name);
      continue;
    }
    if (required && name === "CNI_CONTAINERID") validateContainerId(value);
    if (required && name === "CNI_IFNAME") validateIfName(value);
    if (name === "CNI_CONTAINERID") out.containerId = value;
    else if (name === "CNI_NETNS") out.netns = value;
    else out.ifName = value;
  }
  const args = env["CNI_ARGS"] ?? "";
  if (args !== "") out.args = args;
  const path = env["CNI_PATH"] ?? "";
  out.path = path.split(":").filter((p) => p !== "");
  if (out.path.length === 0 && REQUIRED["CNI_PATH"]!.includes(command)) missing.push("CNI_PATH");
  if (missing.length > 0) throw new EnvError(`required env variables [${missing.join(",")}] missing`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// CNI_ARGS

/** CNI_ARGS, parsed. Keys we know are typed; `raw` keeps every pair as given. */
export interface CniArgs {
  ignoreUnknown: boolean;
  /** K8S_POD_NAMESPACE */
  podNamespace?: string;
  /** K8S_POD_NAME */
  podName?: string;
  /** K8S_POD_INFRA_CONTAINER_ID */
  podInfraContainerId?: string;
  /** K8S_POD_UID */
  podUid?: string;
  /** IP (host-local's convention): requested addresses, comma separated. */
  ips?: string[];
  /** MAC (the reference plugins' convention; podman --mac-address): see `requestedMac`. */
  mac?: string;
  raw: Record<string, string>;
}

const KNOWN_ARGS = new Set(["IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IP", "MAC"]);

function parseBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new EnvError(`ARGS: ${key}=${value}: must be 1, 0, true or false`, `CNI_ARGS ${key}`);
}

/**
 * Parses CNI_ARGS (`K=V;K=V`) as libcni's `types.LoadArgs` does: every pair must have exactly one
 * `=` (`ARGS: invalid pair "<pair>"`), unknown keys fail (`ARGS: unknown args ["K=V"]`) unless
 * `IgnoreUnknown=1|true`. Known keys: IgnoreUnknown, K8S_POD_NAMESPACE, K8S_POD_NAME,
 * K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID, IP (comma-separated addresses, each validated), MAC.
 * Throws `EnvError` (4): CNI_ARGS is an environment variable. Pure.
 */
export function parseCniArgs(text: string | undefined): CniArgs {
  const out: CniArgs = { ignoreUnknown: false, raw: {} };
  if (text === undefined || text === "") return out;
  const unknown: string[] = [];
  for (const pair of text.split(";")) {
    const kv = pair.split("=");
    if (kv.length !== 2) throw new EnvError(`ARGS: invalid pair ${JSON.stringify(pair)}`, "CNI_ARGS");
    const [key, value] = kv as [string, string];
    out.raw[key] = value;
    if (!KNOWN_ARGS.has(key)) {
      unknown.push(pair);
      continue;
    }
    switch (key) {
      case "IgnoreUnknown":
        out.ignoreUnknown = parseBool(key, value);
        break;
      case "K8S_POD_NAMESPACE":
        out.podNamespace = value;
        break;
      case "K8S_POD_NAME":
        out.podName = value;
        break;
      case "K8S_POD_INFRA_CONTAINER_ID":
        out.podInfraContainerId = value;
        break;
      case "K8S_POD_UID":
        out.podUid = value;
        break;
      case "MAC":
        out.mac = value;
        break;
      case "IP":
        out.ips = value.split(",").map((ip) => {
          try {
            return canonicalAddress(ip);
          } catch {
            throw new EnvError(`ARGS: IP=${value}: ${JSON.stringify(ip)} is not an IP address`, "CNI_ARGS IP");
          }
        });
        break;
    }
  }
  if (unknown.length > 0 && !out.ignoreUnknown) {
    throw new EnvError(`ARGS: unknown args [${unknown.map((u) => JSON.stringify(u)).join(" ")}]`, "CNI_ARGS; add IgnoreUnknown=1 to ignore unknown keys");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Network configuration

/** The DNS block of a result or a network configuration. */
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** The plugin's default wait for cnikitd's answer to ADD, DEL, CHECK and GC (netconf `timeoutSeconds`). */
export const DEFAULT_TIMEOUT_SECONDS = 60;
/** The plugin's default wait for cnikitd's answer to STATUS (netconf `statusTimeoutSeconds`). */
export const DEFAULT_STATUS_TIMEOUT_SECONDS = 10;
/** The largest wait the netconf may set. */
export const MAX_TIMEOUT_SECONDS = 3600;

/** The network configuration on stdin: the keys the plugin reads, plus everything as given. */
export interface NetConf {
  /** `cniVersion` as given; absent means 0.1.0. */
  cniVersion: string;
  name: string;
  type?: string;
  /** cnikit's own key: the cnikitd socket. */
  socketPath?: string;
  /** cnikit's own key: how long the plugin waits for cnikitd's answer to ADD/DEL/CHECK/GC (default 60 s). */
  timeoutSeconds?: number;
  /** cnikit's own key: how long the plugin waits for cnikitd's answer to STATUS (default 10 s). */
  statusTimeoutSeconds?: number;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  dns?: CniDns;
  prevResult?: unknown;
  /** The whole object as parsed. */
  raw: Record<string, unknown>;
}

export type StdinInput = string | Uint8Array | { error: string };

function stdinText(stdin: StdinInput): string {
  if (typeof stdin === "string") return stdin;
  if (stdin instanceof Uint8Array) return Buffer.from(stdin.buffer, stdin.byteOffset, stdin.byteLength).toString("utf8");
  throw new IoError(`error reading from stdin: ${stdin.error}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Steps 2-3: reads stdin (`IoError` 5 when the plugin could not read it) as JSON (`DecodeError` 6
 * `error unmarshall network config: ...`, also for JSON that is not an object or a `name` that is
 * not a string) and validates `name` (7). Does not look at `cniVersion` (step 4). Pure.
 */
export function parseNetConf(stdin: StdinInput): NetConf {
  const text = stdinText(stdin);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DecodeError(`error unmarshall network config: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (raw === null) raw = {};
  if (!isObject(raw)) throw new DecodeError(`error unmarshall network config: expected a JSON object, got ${Array.isArray(raw) ? "an array" : typeof raw}`);
  const name = raw["name"] ?? "";
  if (typeof name !== "string") throw new DecodeError(`error unmarshall network config: name must be a string, got ${typeof name}`);
  validateNetworkName(name);
  const out: NetConf = { cniVersion: "0.1.0", name, raw };
  const version = raw["cniVersion"];
  if (version !== undefined && version !== "") {
    if (typeof version !== "string") throw new DecodeError(`decoding version from network config: cniVersion must be a string, got ${JSON.stringify(version)}`);
    out.cniVersion = version;
  }
  if (typeof raw["type"] === "string") out.type = raw["type"];
  if (raw["socketPath"] !== undefined) {
    if (typeof raw["socketPath"] !== "string" || raw["socketPath"] === "") {
      throw new ConfigError({ component: COMPONENT, field: "socketPath", rule: "must be a non-empty path string", value: raw["socketPath"] });
    }
    out.socketPath = raw["socketPath"];
  }
  for (const key of ["timeoutSeconds", "statusTimeoutSeconds"] as const) {
    const t = raw[key];
    if (t === undefined) continue;
    if (typeof t !== "number" || !Number.isFinite(t) || t <= 0 || t > MAX_TIMEOUT_SECONDS) {
      throw new ConfigError({ component: COMPONENT, field: key, rule: `must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS} (how long cnikit-cni waits for cnikitd)`, value: t });
    }
    out[key] = t;
  }
  if (raw["runtimeConfig"] !== undefined && raw["runtimeConfig"] !== null) {
    if (!isObject(raw["runtimeConfig"])) throw new ConfigError({ component: COMPONENT, field: "runtimeConfig", rule: "must be an object", value: raw["runtimeConfig"] });
    out.runtimeConfig = raw["runtimeConfig"];
  }
  if (raw["args"] !== undefined && raw["args"] !== null) {
    if (!isObject(raw["args"])) throw new ConfigError({ component: COMPONENT, field: "args", rule: "must be an object", value: raw["args"] });
    out.args = raw["args"];
  }
  if (raw["dns"] !== undefined && raw["dns"] !== null) out.dns = parseDns(raw["dns"], "dns", (f, r, v) => new ConfigError({ component: COMPONENT, field: f, rule: r, value: v }));
  if (raw["prevResult"] !== undefined && raw["prevResult"] !== null) out.prevResult = raw["prevResult"];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Versions

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;

/** Parses `x.y.z`; throws `DecodeError` (6) for anything else. */
export function parseVersion(version: string): [number, number, number] {
  const m = SEMVER.exec(version);
  if (!m) throw new DecodeError(`decoding version from network config: ${JSON.stringify(version)} is not a version of the form x.y.z`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Compares two `x.y.z` versions (negative, 0, positive). Throws `DecodeError` (6) for unparseable ones. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** Whether `version` is one of `SUPPORTED_VERSIONS`. */
export function isSupportedVersion(version: string): version is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/** Go's `%q` of a string list: `["a" "b"]`, as upstream's "plugin supports" details print it. */
function goQuoteList(list: readonly string[]): string {
  return `[${list.map((v) => JSON.stringify(v)).join(" ")}]`;
}

/**
 * Step 4: the config's version against the command. Unparseable → `DecodeError` (6). CHECK below
 * 0.4.0, GC or STATUS below 1.1.0 → `VersionError` (1) `config version does not allow <CMD>`.
 * Any version not in `SUPPORTED_VERSIONS` → `VersionError` (1) `incompatible CNI versions`, details
 * `config is "<v>", plugin supports ["0.1.0" ...]`. Commands other than ADD/DEL/CHECK/GC/STATUS are
 * not checked here. Pure.
 */
export function checkVersion(command: string, version: string): asserts version is CniVersion {
  parseVersion(version);
  const minimum = command === "CHECK" ? "0.4.0" : command === "GC" || command === "STATUS" ? "1.1.0" : undefined;
  if (minimum !== undefined && compareVersions(version, minimum) < 0) {
    throw new VersionError(`config version does not allow ${command}`, `config is "${version}", ${command} needs ${minimum} or later`);
  }
  if (!isSupportedVersion(version)) {
    throw new VersionError("incompatible CNI versions", `config is "${version}", plugin supports ${goQuoteList(SUPPORTED_VERSIONS)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Results

/** One interface of a result (1.1.0 fields). */
export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** One address of a result: CIDR with host bits, optional gateway, optional index into `interfaces`. */
export interface CniIpConfig {
  address: string;
  gateway?: string;
  interface?: number;
}

/** One route of a result (1.1.0 fields; older versions keep dst and gw). */
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/**
 * The internal result: the 1.1.0 shape, a superset of core's `AttachResult` (so an agent's result
 * is one), with the 1.1.0 route and interface fields a prevResult from another plugin may carry.
 */
export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns?: CniDns;
}

/** A result rendered for one version: plain JSON. */
export type VersionedResult = Record<string, unknown>;

function familyOfCidr(cidr: string): 4 | 6 {
  return cidr.split("/")[0]!.includes(":") ? 6 : 4;
}

function dnsJson(dns: CniDns | undefined): CniDns | undefined {
  if (!dns) return undefined;
  const out: CniDns = {};
  if (dns.nameservers && dns.nameservers.length > 0) out.nameservers = [...dns.nameservers];
  if (dns.domain) out.domain = dns.domain;
  if (dns.search && dns.search.length > 0) out.search = [...dns.search];
  if (dns.options && dns.options.length > 0) out.options = [...dns.options];
  return Object.keys(out).length > 0 ? out : undefined;
}

function pick<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/**
 * Renders `result` in the shape of `version`:
 *  - 1.0.0 / 1.1.0: `interfaces` (name, mac, mtu, sandbox, socketPath, pciID), `ips` (address,
 *    gateway, interface), `routes` (dst, gw, mtu, advmss, priority, table, scope), `dns`;
 *  - 0.3.0 / 0.3.1 / 0.4.0: `interfaces` (name, mac, sandbox), `ips` with `version` "4"/"6",
 *    `routes` (dst, gw), `dns`;
 *  - 0.1.0 / 0.2.0: `ip4` / `ip6` (`ip`, `gateway`, `routes` of that family; the first address of
 *    each family), `dns`. No address at all → `VersionError` (1) `cannot convert: no valid IP addresses`.
 * `ips[].interface` is emitted when set (0 included) and omitted when unset; an empty `dns` and
 * empty lists are omitted (`"dns": {}` means absent). Throws `VersionError` for an unsupported
 * version. Pure.
 */
export function formatResult(result: CniResult, version: string): VersionedResult {
  if (!isSupportedVersion(version)) throw new VersionError(`cannot render a result for CNI version ${JSON.stringify(version)}`, `plugin supports ${goQuoteList(SUPPORTED_VERSIONS)}`);
  const out: VersionedResult = { cniVersion: version };
  const dns = dnsJson(result.dns);
  if (version === "0.1.0" || version === "0.2.0") {
    const byFamily: Partial<Record<4 | 6, Record<string, unknown>>> = {};
    for (const ip of result.ips) {
      const family = familyOfCidr(ip.address);
      if (byFamily[family]) continue;
      byFamily[family] = { ip: ip.address, ...(ip.gateway !== undefined ? { gateway: ip.gateway } : {}) };
    }
    if (!byFamily[4] && !byFamily[6]) throw new VersionError("cannot convert: no valid IP addresses", `a ${version} result has only ip4/ip6; this result has no address`);
    for (const route of result.routes) {
      const target = byFamily[familyOfCidr(route.dst)];
      if (!target) continue;
      const routes = (target["routes"] ??= []) as Record<string, unknown>[];
      routes.push({ dst: route.dst, ...(route.gw !== undefined ? { gw: route.gw } : {}) });
    }
    if (byFamily[4]) out["ip4"] = byFamily[4];
    if (byFamily[6]) out["ip6"] = byFamily[6];
    if (dns) out["dns"] = dns;
    return out;
  }
  const modern = version === "1.0.0" || version === "1.1.0";
  const ifaceKeys = modern ? (["name", "mac", "mtu", "sandbox", "socketPath", "pciID"] as const) : (["name", "mac", "sandbox"] as const);
  const routeKeys = modern ? (["dst", "gw", "mtu", "advmss", "priority", "table", "scope"] as const) : (["dst", "gw"] as const);
  if (result.interfaces.length > 0) out["interfaces"] = result.interfaces.map((i) => pick(i, ifaceKeys));
  if (result.ips.length > 0) {
    out["ips"] = result.ips.map((ip) => {
      const entry: Record<string, unknown> = {};
      if (!modern) entry["version"] = String(familyOfCidr(ip.address));
      if (ip.interface !== undefined) entry["interface"] = ip.interface;
      entry["address"] = ip.address;
      if (ip.gateway !== undefined) entry["gateway"] = ip.gateway;
      return entry;
    });
  }
  if (result.routes.length > 0) out["routes"] = result.routes.map((r) => pick(r, routeKeys));
  if (dns) out["dns"] = dns;
  return out;
}

type FieldError = (field: string, rule: string, value: unknown) => CniError;

const prevError: FieldError = (field, rule, value) =>
  new DecodeError(`could not parse prevResult: ${field}: ${rule}${value === undefined ? "" : ` (got ${JSON.stringify(value)})`}`, { details: `prevResult.${field}` });

function stringList(v: unknown, field: string, err: FieldError): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw err(field, "must be a list of strings", v);
  return [...(v as string[])];
}

function parseDns(v: unknown, field: string, err: FieldError): CniDns {
  if (!isObject(v)) throw err(field, "must be an object", v);
  const out: CniDns = {};
  if (v["nameservers"] !== undefined && v["nameservers"] !== null) out.nameservers = stringList(v["nameservers"], `${field}.nameservers`, err);
  if (v["domain"] !== undefined && v["domain"] !== null) {
    if (typeof v["domain"] !== "string") throw err(`${field}.domain`, "must be a string", v["domain"]);
    out.domain = v["domain"];
  }
  if (v["search"] !== undefined && v["search"] !== null) out.search = stringList(v["search"], `${field}.search`, err);
  if (v["options"] !== undefined && v["options"] !== null) out.options = stringList(v["options"], `${field}.options`, err);
  return out;
}

function optString(o: Record<string, unknown>, key: string, field: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw prevError(`${field}.${key}`, "must be a string", v);
  return v;
}

function optInt(o: Record<string, unknown>, key: string, field: string, min = 0): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw prevError(`${field}.${key}`, `must be an integer >= ${min}`, v);
  return v;
}

function checkCidr(text: unknown, field: string): string {
  try {
    parseInterfaceAddress(text);
  } catch {
    throw prevError(field, "must be an address with prefix length, e.g. 10.1.0.2/24", text);
  }
  return text as string;
}

function checkPrefix(text: unknown, field: string): string {
  try {
    Prefix.parse(text, { allowHostBits: true });
  } catch {
    throw prevError(field, "must be a prefix, e.g. 0.0.0.0/0", text);
  }
  return text as string;
}

function checkIp(text: unknown, field: string): string {
  try {
    parseAddress(text);
  } catch {
    throw prevError(field, "must be an IP address", text);
  }
  return text as string;
}

function parseRoutes(v: unknown, field: string): CniRoute[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw prevError(field, "must be a list", v);
  return v.map((r: unknown, i) => {
    const f = `${field}[${i}]`;
    if (!isObject(r)) throw prevError(f, "must be an object", r);
    const route: CniRoute = { dst: checkPrefix(r["dst"], `${f}.dst`) };
    const gw = optString(r, "gw", f);
    if (gw !== undefined) route.gw = checkIp(gw, `${f}.gw`);
    for (const key of ["mtu", "advmss", "priority", "table", "scope"] as const) {
      const n = optInt(r, key, f);
      if (n !== undefined) route[key] = n;
    }
    return route;
  });
}

/** The versions one result type covers (libcni's types020 / types040 / types100 `supportedVersions`). */
export function resultVersionsOf(version: string): readonly CniVersion[] {
  if (version === "0.1.0" || version === "0.2.0") return ["0.1.0", "0.2.0"];
  if (version === "1.0.0" || version === "1.1.0") return ["1.0.0", "1.1.0"];
  return ["0.3.0", "0.3.1", "0.4.0"];
}

/**
 * A prevResult's `cniVersion` against the config's `version` (libcni's `ParsePrevResult`, which
 * every reference plugin calls): absent or empty means the config's; not a string → `DecodeError`
 * (6); a version the config's result type does not cover → `VersionError` (1)
 * `could not parse prevResult: result type supports [...] but unmarshalled CNIVersion is "<v>"`
 * (upstream's wording), details naming `prevResult.cniVersion`. Pure.
 */
export function checkPrevResultVersion(given: unknown, version: string): void {
  if (given === undefined || given === null || given === "") return;
  if (typeof given !== "string") throw prevError("cniVersion", "must be a string", given);
  const covered = resultVersionsOf(version);
  if (!(covered as readonly string[]).includes(given)) {
    throw new VersionError(
      `could not parse prevResult: result type supports ${goQuoteList(covered)} but unmarshalled CNIVersion is ${JSON.stringify(given)}`,
      `prevResult.cniVersion: the config is ${version}; the runtime must convert the previous plugin's result to the config's version`,
    );
  }
}

/**
 * Parses a `prevResult` given in the shape of `version` (the config's version, as libcni's
 * `ParsePrevResult` does) into the internal result. A prevResult of the other result family (`ip4`
 * / `ip6` in a 0.3.0+ config, `ips` in a 0.1.0 / 0.2.0 one) is refused, and so is one labelled
 * with a version of another result type (`checkPrevResultVersion`: `VersionError` 1). Throws
 * `DecodeError` (6) naming the field for anything malformed; `version` must be supported (checked
 * earlier). Pure.
 */
export function parsePrevResult(raw: unknown, version: string): CniResult {
  if (!isObject(raw)) throw prevError("(root)", "must be an object", raw);
  checkPrevResultVersion(raw["cniVersion"], version);
  const legacy = version === "0.1.0" || version === "0.2.0";
  const out: CniResult = { interfaces: [], ips: [], routes: [] };
  if (raw["dns"] !== undefined && raw["dns"] !== null) {
    const dns = dnsJson(parseDns(raw["dns"], "dns", prevError));
    if (dns) out.dns = dns;
  }
  if (legacy) {
    if (raw["ips"] !== undefined || raw["interfaces"] !== undefined) {
      throw prevError("ips", `a ${version} result has ip4/ip6, not ips/interfaces: convert the result to the config's version`, undefined);
    }
    for (const key of ["ip4", "ip6"] as const) {
      const block = raw[key];
      if (block === undefined || block === null) continue;
      if (!isObject(block)) throw prevError(key, "must be an object", block);
      const address = checkCidr(block["ip"], `${key}.ip`);
      if (familyOfCidr(address) !== (key === "ip4" ? 4 : 6)) throw prevError(`${key}.ip`, `must be an IPv${key === "ip4" ? 4 : 6} address`, address);
      const ip: CniIpConfig = { address };
      const gw = optString(block, "gateway", key);
      if (gw !== undefined) ip.gateway = checkIp(gw, `${key}.gateway`);
      out.ips.push(ip);
      out.routes.push(...parseRoutes(block["routes"], `${key}.routes`));
    }
    return out;
  }
  if (raw["ip4"] !== undefined || raw["ip6"] !== undefined) {
    throw prevError("ip4", `a ${version} result has ips/interfaces, not ip4/ip6: convert the result to the config's version`, undefined);
  }
  const ifaces = raw["interfaces"];
  if (ifaces !== undefined && ifaces !== null) {
    if (!Array.isArray(ifaces)) throw prevError("interfaces", "must be a list", ifaces);
    out.interfaces = ifaces.map((i: unknown, n) => {
      const f = `interfaces[${n}]`;
      if (!isObject(i)) throw prevError(f, "must be an object", i);
      const name = optString(i, "name", f);
      if (name === undefined) throw prevError(`${f}.name`, "is required", i["name"]);
      const iface: CniInterface = { name };
      for (const key of ["mac", "sandbox", "socketPath", "pciID"] as const) {
        const s = optString(i, key, f);
        if (s !== undefined) iface[key] = s;
      }
      const mtu = optInt(i, "mtu", f);
      if (mtu !== undefined) iface.mtu = mtu;
      return iface;
    });
  }
  const ips = raw["ips"];
  if (ips !== undefined && ips !== null) {
    if (!Array.isArray(ips)) throw prevError("ips", "must be a list", ips);
    out.ips = ips.map((i: unknown, n) => {
      const f = `ips[${n}]`;
      if (!isObject(i)) throw prevError(f, "must be an object", i);
      const address = checkCidr(i["address"], `${f}.address`);
      const ip: CniIpConfig = { address };
      const v = i["version"];
      if (v !== undefined && v !== "" && v !== String(familyOfCidr(address))) throw prevError(`${f}.version`, `must be "${familyOfCidr(address)}" for ${address}`, v);
      const gw = optString(i, "gateway", f);
      if (gw !== undefined) ip.gateway = checkIp(gw, `${f}.gateway`);
      const index = optInt(i, "interface", f);
      if (index !== undefined) {
        if (index >= out.interfaces.length) throw prevError(`${f}.interface`, `must index one of the ${out.interfaces.length} interfaces`, index);
        ip.interface = index;
      }
      return ip;
    });
  }
  out.routes = parseRoutes(raw["routes"], "routes");
  return out;
}

/**
 * Chaining: a plugin that gets a `prevResult` on ADD re-emits it with its own changes. Appends
 * `ours` to `prev`: interfaces after prev's (our ip `interface` indexes shifted accordingly), ips
 * and routes after prev's (routes with the same dst and gw kept once), DNS from `ours` where set,
 * else prev's. Pure.
 */
export function mergeResults(prev: CniResult, ours: CniResult): CniResult {
  const shift = prev.interfaces.length;
  const routes = [...prev.routes];
  for (const r of ours.routes) if (!routes.some((p) => p.dst === r.dst && p.gw === r.gw)) routes.push({ ...r });
  const out: CniResult = {
    interfaces: [...prev.interfaces.map((i) => ({ ...i })), ...ours.interfaces.map((i) => ({ ...i }))],
    ips: [...prev.ips.map((i) => ({ ...i })), ...ours.ips.map((i) => (i.interface === undefined ? { ...i } : { ...i, interface: i.interface + shift }))],
    routes,
  };
  const dns = dnsJson(ours.dns) ?? dnsJson(prev.dns);
  if (dns) out.dns = dns;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Requests

/** A validated request for one of the commands the daemon serves (everything but VERSION). */
export interface CniRequest {
  command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS";
  cniVersion: CniVersion;
  env: CniEnvironment;
  conf: NetConf;
  args: CniArgs;
  /** Parsed `prevResult` (always for CHECK; for ADD/DEL when given and well formed). */
  prevResult?: CniResult;
  /** GC only: `cni.dev/valid-attachments`. */
  validAttachments?: PodRef[];
}

/** What one invocation asks for. */
export type CniInvocation = { command: "VERSION" } | { command: "ABOUT" } | CniRequest;

/**
 * Validates one invocation in skel's order (see the module comment) and returns what it asks for:
 * `ABOUT` when CNI_COMMAND is missing or empty (print `aboutText()` on stderr, exit 0), `VERSION`
 * (stdin unread), or a `CniRequest`. Command specifics checked here: CNI_ARGS parsed for ADD, DEL
 * and CHECK (4); CHECK needs `prevResult` (`ConfigError` 7) and it must parse (6) in the config's
 * result version (1 otherwise); ADD's prevResult likewise; DEL's prevResult is parsed when well
 * formed and ignored otherwise (DEL must succeed); GC needs CNI_PATH (4) and
 * `cni.dev/valid-attachments` (7; `null` = none valid) with `containerID` and `ifname` strings. Throws the `CniError` of the first rule broken. Pure.
 */
export function parseInvocation(env: CniEnv, stdin: StdinInput): CniInvocation {
  if ((env["CNI_COMMAND"] ?? "") === "") return { command: "ABOUT" };
  const environment = parseEnvironment(env);
  if (environment.command === "VERSION") return { command: "VERSION" };
  const conf = parseNetConf(stdin);
  const command = environment.command;
  if (command !== "ADD" && command !== "DEL" && command !== "CHECK" && command !== "GC" && command !== "STATUS") {
    throw new EnvError(`unknown CNI_COMMAND: ${command}`, `supported commands: ADD, DEL, CHECK, GC, STATUS, VERSION`);
  }
  const version = conf.cniVersion;
  checkVersion(command, version);
  const args = command === "ADD" || command === "DEL" || command === "CHECK" ? parseCniArgs(environment.args) : { ignoreUnknown: false, raw: {} };
  const request: CniRequest = { command, cniVersion: version, env: environment, conf, args };
  if ((command === "ADD" || command === "CHECK") && conf.raw["ipam"] !== undefined && conf.raw["ipam"] !== null) {
    // Addresses come from the backend's IPAM in cnikitd (the node's share of the pod network), so an
    // IPAM plugin named here would be silently unused: refuse it rather than ignore it.
    throw new ConfigError({
      component: COMPONENT,
      field: "ipam",
      rule: "is not used by cnikit-cni: addresses come from the backend's IPAM in cnikitd (the node's share of the pod network); remove ipam from this plugin's entry (ask for a given address with CNI_ARGS IP=, args.cni.ips or runtimeConfig.ips)",
      value: conf.raw["ipam"],
    });
  }
  if (command === "CHECK") {
    if (conf.prevResult === undefined) throw new ConfigError({ component: COMPONENT, field: "prevResult", rule: "is required for CHECK: pass the result of ADD" });
    request.prevResult = parsePrevResult(conf.prevResult, version);
  } else if (command === "ADD" && conf.prevResult !== undefined) {
    request.prevResult = parsePrevResult(conf.prevResult, version);
  } else if (command === "DEL" && conf.prevResult !== undefined) {
    try {
      request.prevResult = parsePrevResult(conf.prevResult, version);
    } catch {
      // DEL is best effort and must work without a usable prevResult.
    }
  } else if (command === "GC") {
    request.validAttachments = parseValidAttachments(conf.raw);
  }
  return request;
}

const MAC_TEXT = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/**
 * The MAC an ADD asks for, lower case: CNI_ARGS `MAC=` (podman --mac-address, and podman network
 * reload re-asking for the MAC the container had), else `runtimeConfig.mac` (the `mac`
 * capability). cnikitd cannot set one of its own choosing (the backend's plan picks the pod's MAC)
 * and refuses one that differs from the plan's. Throws `EnvError` (4, CNI_ARGS MAC) or
 * `ConfigError` (7, runtimeConfig.mac) for one that is not a MAC. Pure.
 */
export function requestedMac(request: Pick<CniRequest, "args" | "conf">): { mac: string; from: string } | undefined {
  const arg = request.args.mac;
  if (arg !== undefined && arg !== "") {
    if (!MAC_TEXT.test(arg)) throw new EnvError(`ARGS: MAC=${arg}: must be a MAC address like 0a:58:0a:f4:01:02`, "CNI_ARGS MAC");
    return { mac: arg.toLowerCase(), from: "CNI_ARGS MAC" };
  }
  const rc = request.conf.runtimeConfig?.["mac"];
  if (rc === undefined || rc === null || rc === "") return undefined;
  if (typeof rc !== "string" || !MAC_TEXT.test(rc)) throw new ConfigError({ component: COMPONENT, field: "runtimeConfig.mac", rule: "must be a MAC address like 0a:58:0a:f4:01:02", value: rc });
  return { mac: rc.toLowerCase(), from: "runtimeConfig.mac" };
}

const VALID_ATTACHMENTS = "cni.dev/valid-attachments";

function parseValidAttachments(raw: Record<string, unknown>): PodRef[] {
  if (!(VALID_ATTACHMENTS in raw)) {
    throw new ConfigError({
      component: COMPONENT,
      field: VALID_ATTACHMENTS,
      rule: "is required for GC (null or [] when no attachment is valid); refusing to release every attachment on a config that does not say",
    });
  }
  const list = raw[VALID_ATTACHMENTS];
  if (list === null) return [];
  if (!Array.isArray(list)) throw new ConfigError({ component: COMPONENT, field: VALID_ATTACHMENTS, rule: "must be a list of {containerID, ifname}", value: list });
  return list.map((entry: unknown, i) => {
    if (!isObject(entry) || typeof entry["containerID"] !== "string" || typeof entry["ifname"] !== "string" || entry["containerID"] === "" || entry["ifname"] === "") {
      throw new ConfigError({ component: COMPONENT, field: `${VALID_ATTACHMENTS}[${i}]`, rule: "must be {containerID: string, ifname: string}", value: entry });
    }
    return { containerId: entry["containerID"], ifName: entry["ifname"] };
  });
}

/**
 * The addresses an ADD asks for, in order and without duplicates: CNI_ARGS `IP`, then
 * `args.cni.ips`, then `runtimeConfig.ips` (prefix lengths dropped). Throws `ConfigError` (7) naming
 * the field for an entry that is not an address. Pure.
 */
export function requestedIps(request: Pick<CniRequest, "args" | "conf">): string[] {
  const out: string[] = [...(request.args.ips ?? [])];
  const fromList = (list: unknown, field: string): void => {
    if (list === undefined || list === null) return;
    if (!Array.isArray(list)) throw new ConfigError({ component: COMPONENT, field, rule: "must be a list of IP addresses", value: list });
    list.forEach((entry: unknown, i) => {
      const text = typeof entry === "string" ? entry.split("/")[0]! : entry;
      try {
        parseAddress(text);
      } catch {
        throw new ConfigError({ component: COMPONENT, field: `${field}[${i}]`, rule: "must be an IP address (optionally with a prefix length)", value: entry });
      }
      out.push(canonicalAddress(text as string));
    });
  };
  const cni = request.conf.args?.["cni"];
  if (cni !== undefined && cni !== null) {
    if (!isObject(cni)) throw new ConfigError({ component: COMPONENT, field: "args.cni", rule: "must be an object", value: cni });
    fromList(cni["ips"], "args.cni.ips");
  }
  fromList(request.conf.runtimeConfig?.["ips"], "runtimeConfig.ips");
  return [...new Set(out)];
}

function labelsOf(conf: NetConf): Record<string, string> | undefined {
  const cni = conf.args?.["cni"];
  if (!isObject(cni) || cni["labels"] === undefined || cni["labels"] === null) return undefined;
  const list = cni["labels"];
  if (!Array.isArray(list)) throw new ConfigError({ component: COMPONENT, field: "args.cni.labels", rule: "must be a list of {key, value}", value: list });
  const out: Record<string, string> = {};
  list.forEach((entry: unknown, i) => {
    if (!isObject(entry) || typeof entry["key"] !== "string" || typeof entry["value"] !== "string") {
      throw new ConfigError({ component: COMPONENT, field: `args.cni.labels[${i}]`, rule: "must be {key: string, value: string}", value: entry });
    }
    out[entry["key"]] = entry["value"];
  });
  return out;
}

/**
 * The `PodAttachment` an ADD asks the agent for: containerId, ifName and netns from the
 * environment, namespace and pod name from CNI_ARGS `K8S_POD_NAMESPACE` / `K8S_POD_NAME`, labels
 * from `args.cni.labels` (CONVENTIONS.md), requested addresses from `requestedIps`. Throws
 * `ConfigError` (7) as `requestedIps` does. Pure.
 */
export function podAttachmentOf(request: CniRequest): PodAttachment {
  const env = request.env;
  const pod: PodAttachment = { containerId: env.containerId ?? "", ifName: env.ifName ?? "", netns: env.netns ?? "" };
  if (request.args.podNamespace !== undefined) pod.namespace = request.args.podNamespace;
  if (request.args.podName !== undefined) pod.podName = request.args.podName;
  const labels = labelsOf(request.conf);
  if (labels) pod.labels = labels;
  const ips = requestedIps(request);
  if (ips.length > 0) pod.requestedIps = ips;
  return pod;
}

/**
 * DNS for an ADD result: `runtimeConfig.dns` (the `dns` capability) over the config's `dns` over
 * what the agent returned. Each source is taken whole. Pure.
 */
export function resultDns(request: Pick<CniRequest, "conf">, agentDns: CniDns | undefined): CniDns | undefined {
  const rc = request.conf.runtimeConfig?.["dns"];
  if (rc !== undefined && rc !== null) {
    const parsed = dnsJson(parseDns(rc, "runtimeConfig.dns", (f, r, v) => new ConfigError({ component: COMPONENT, field: f, rule: r, value: v })));
    if (parsed) return parsed;
  }
  return dnsJson(request.conf.dns) ?? dnsJson(agentDns);
}

/** Turns an agent's `AttachResult` into the internal result (a copy). */
export function fromAttachResult(result: AttachResult): CniResult {
  const out: CniResult = {
    interfaces: result.interfaces.map((i) => ({ ...i })),
    ips: result.ips.map((i) => ({ ...i })),
    routes: result.routes.map((r) => ({ ...r })),
  };
  const dns = dnsJson(result.dns);
  if (dns) out.dns = dns;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * The spec's error JSON for anything thrown: a `CniError` keeps its code (core's subclasses carry
 * theirs: 1 VersionError, 3 UnknownContainerError, 4 EnvError, 5 IoError, 6 DecodeError,
 * 7 ConfigError, 11 TryAgainError, 50/51 NotReadyError, 100+ cnikit's), anything else is 999.
 * `cniVersion` is included (the spec advises it). Pure.
 */
export function errorJson(err: unknown, cniVersion: string = PLUGIN_VERSION): CniErrorJson {
  return CniError.from(err).toJSON(cniVersion);
}

/**
 * The version to put in an error's JSON: the config's `cniVersion` when stdin is a config naming a
 * version we support, else `PLUGIN_VERSION`. Never throws.
 */
export function errorVersionOf(stdin: StdinInput | undefined): CniVersion {
  try {
    if (stdin === undefined || (typeof stdin === "object" && !(stdin instanceof Uint8Array))) return PLUGIN_VERSION;
    const raw: unknown = JSON.parse(stdinText(stdin));
    const v = isObject(raw) ? raw["cniVersion"] : undefined;
    if (v === undefined || v === "") return "0.1.0";
    return typeof v === "string" && isSupportedVersion(v) ? v : PLUGIN_VERSION;
  } catch {
    return PLUGIN_VERSION;
  }
}
