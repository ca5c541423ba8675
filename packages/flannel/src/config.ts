/**
 * flannel's net-conf.json, accepted unchanged, with flannel's defaults and flannel's validation
 * (`CheckNetworkConfig`, same order, same texts), plus what flannel gets wrong:
 *
 *  - keys are matched case-insensitively, as Go's encoding/json does (`subnetlen` = `SubnetLen`),
 *    but an unknown key is refused by name (with a suggestion) instead of silently ignored;
 *  - SubnetMin > SubnetMax is refused here, not discovered later as "out of subnets";
 *  - every error is a `ConfigError` (CNI code 7) naming the field path (`Backend.VNI`) and the rule.
 *
 * Two keys are cnikit extensions (flannel takes them as command-line flags, and ignores unknown
 * keys, so a net-conf.json carrying them still works with real flannel):
 *  - `IPMasq` (flanneld `--ip-masq`, default true as in the stock manifest);
 *  - `SubnetLeaseRenewMargin` (flanneld `--subnet-lease-renew-margin`, minutes, default 60).
 *
 * ```json
 * { "Network": "10.244.0.0/16", "Backend": { "Type": "vxlan" } }
 * ```
 */
import { ConfigError, Prefix, formatAddress, parseAddress } from "@cnikit/core";
import type { Family } from "@cnikit/core";

/** Component name at the start of every error message: `[flannel] SubnetLen: ...`. */
export const COMPONENT = "flannel";

/** The leasable range of one address family, with defaults applied. */
export interface FamilyRange {
  family: Family;
  /** The whole pod network, canonical CIDR (`Network` / `IPv6Network`). */
  network: string;
  /** Prefix length of each node subnet. */
  subnetLen: number;
  /** Network address of the lowest leasable node subnet. */
  subnetMin: string;
  /** Network address of the highest leasable node subnet (inclusive). */
  subnetMax: string;
}

/** `Backend: {"Type": "vxlan", ...}` with flannel's defaults applied. */
export interface VxlanBackendConfig {
  type: "vxlan";
  /** VXLAN network identifier (default 1); the device is `flannel.<VNI>`. */
  vni: number;
  /** UDP port (`Port` 0 or absent means the Linux default, 8472). */
  port: number;
  /** Group-based policy extension; accepted and recorded on the link. */
  gbp: boolean;
  /** Route directly (no encapsulation) to peers on this node's own underlay subnet. */
  directRouting: boolean;
  /** Let the vxlan device learn MACs (flannel default false: the FDB is programmed). */
  learning: boolean;
  /** Underlay MTU to assume instead of the interface's; pod MTU is this minus 50. */
  mtu?: number;
}

/** `Backend: {"Type": "host-gw"}`: plain routes via peers' underlay addresses (one L2 subnet). */
export interface HostGwBackendConfig {
  type: "host-gw";
}

/** The parsed `Backend` object: vxlan or host-gw. */
export type FlannelBackendConfig = VxlanBackendConfig | HostGwBackendConfig;

/** The parsed, validated net-conf.json. Plain JSON-able data. */
export interface FlannelConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  /** flannel's experimental nftables mode; recorded only (renderers choose their own tool). */
  enableNFTables: boolean;
  /** Present exactly when `enableIPv4`. */
  ipv4?: FamilyRange;
  /** Present exactly when `enableIPv6`. */
  ipv6?: FamilyRange;
  backend: FlannelBackendConfig;
  /** True when `Backend` was absent and vxlan was chosen (flannel's code would pick udp). */
  backendDefaulted: boolean;
  /** Masquerade pod traffic leaving the pod network (flanneld `--ip-masq`). */
  ipMasq: boolean;
  /** Renew the 24 h subnet lease this many minutes before it expires (1..1439). */
  subnetLeaseRenewMarginMinutes: number;
}

/** Defaults that are not derived from other fields. */
export const FLANNEL_DEFAULTS = Object.freeze({
  vni: 1,
  /** Linux kernel default VXLAN port, used by flannel when `Port` is 0 or absent. */
  vxlanPort: 8472,
  ipMasq: true,
  subnetLeaseRenewMarginMinutes: 60,
  enableIPv4: true,
  enableIPv6: false,
});

/** Pod MTU floors: the IPv4 minimum a host must accept and IPv6's minimum link MTU. */
export const MIN_POD_MTU = { 4: 576, 6: 1280 } as const;
/** Largest underlay MTU accepted (jumbo frames). */
export const MAX_MTU = 9216;
/** Largest 24-bit VNI. */
export const MAX_VNI = 16_777_215;

/** Backend types flannel has that this package refuses, with why. */
export const UNSUPPORTED_BACKENDS: Readonly<Record<string, string>> = Object.freeze({
  udp: "udp is flannel's userspace debug backend",
  ipsec: "ipsec needs a strongSwan daemon",
  wireguard: "wireguard needs kernel wireguard devices",
  alloc: "alloc leases subnets but programs no dataplane",
  ipip: "ipip is experimental in flannel and the lab kernel lacks ipip",
  extension: "extension runs arbitrary shell hooks",
  "aws-vpc": "aws-vpc programs cloud route tables",
  gce: "gce programs cloud routes",
  "ali-vpc": "ali-vpc programs cloud route tables",
  "tencent-vpc": "tencent-vpc programs cloud route tables",
});

const SUPPORTED_BACKENDS = ["vxlan", "host-gw"] as const;

/** Top-level keys of net-conf.json we understand, in their canonical spelling. */
export const NET_CONF_KEYS = [
  "Network",
  "SubnetLen",
  "SubnetMin",
  "SubnetMax",
  "EnableIPv4",
  "EnableIPv6",
  "IPv6Network",
  "IPv6SubnetLen",
  "IPv6SubnetMin",
  "IPv6SubnetMax",
  "EnableNFTables",
  "Backend",
  "Networks",
  "IPv6Networks",
  "IPMasq",
  "SubnetLeaseRenewMargin",
] as const;
const VXLAN_KEYS = ["Type", "VNI", "Port", "GBP", "DirectRouting", "MTU", "Learning", "MacPrefix"] as const;
const HOSTGW_KEYS = ["Type"] as const;

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: COMPONENT, field, rule } : { component: COMPONENT, field, rule, value });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === "object" && !Array.isArray(x);
}

/** Edit distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

function suggest(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const n = name.toLowerCase();
    const d = k.startsWith(n) || n.startsWith(k) ? Math.min(1, distance(k, n)) : distance(k, n);
    if (d <= 3 && (!best || d < best.d)) best = { name, d };
  }
  return best?.name;
}

/**
 * Reads an object the way Go's encoding/json fills a struct: each key is matched to a field name
 * case-insensitively (an exact match first), a `null` value leaves the field unset. Unlike Go, an
 * unknown key and the same field given twice (in two spellings) are refused.
 */
function readKeys(raw: Record<string, unknown>, known: readonly string[], path: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const spelledAs = new Map<string, string>();
  for (const key of Object.keys(raw)) {
    const name = known.includes(key) ? key : known.find((k) => k.toLowerCase() === key.toLowerCase());
    const field = path === "" ? key : `${path}.${key}`;
    if (name === undefined) {
      const hint = suggest(key, known);
      const where = path === "" ? "net-conf.json" : path;
      fail(field, `unknown key ${JSON.stringify(key)} in ${where}${hint ? ` (did you mean ${hint}?)` : ""}; flannel would silently ignore it. Known keys: ${known.join(", ")}`);
    }
    const earlier = spelledAs.get(name);
    if (earlier !== undefined) {
      fail(path === "" ? name : `${path}.${name}`, `given twice, as ${JSON.stringify(earlier)} and ${JSON.stringify(key)} (keys are case-insensitive)`);
    }
    spelledAs.set(name, key);
    const value = raw[key];
    if (value !== null) out.set(name, value);
  }
  return out;
}

function readBool(keys: Map<string, unknown>, name: string, path: string, fallback: boolean): boolean {
  const v = keys.get(name);
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") fail(path, "must be true or false", v);
  return v;
}

/** A Go `uint`/`int` field: a whole JSON number in [min, max]; absent = undefined. */
function readInt(keys: Map<string, unknown>, name: string, path: string, range: { min: number; max: number; rule?: string }): number | undefined {
  const v = keys.get(name);
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) fail(path, range.rule ?? "must be a whole number", v);
  if (v < range.min || v > range.max) fail(path, range.rule ?? `must be from ${range.min} to ${range.max}`, v);
  return v;
}

/** Network / IPv6Network: a CIDR of the family; host bits are cleared as Go's net.ParseCIDR does. */
function readNetwork(keys: Map<string, unknown>, name: string, family: Family): Prefix | undefined {
  const v = keys.get(name);
  if (v === undefined) return undefined;
  const missing = family === 4 ? "please define a correct Network parameter in the flannel config" : "please define a correct IPv6Network parameter in the flannel config";
  const example = family === 4 ? "10.244.0.0/16" : "fd00:10:244::/56";
  let prefix: Prefix;
  try {
    prefix = Prefix.parse(v, { field: name, component: COMPONENT, allowHostBits: true });
  } catch (err) {
    const why = err instanceof ConfigError ? err.rule : "is not a CIDR";
    throw new ConfigError({ component: COMPONENT, field: name, rule: `${missing}: ${why} (e.g. ${example})`, value: v, cause: err });
  }
  if (prefix.family !== family) {
    fail(name, `${missing}: ${name} must be an IPv${family} CIDR such as ${example}${family === 4 ? "; put IPv6 ranges in IPv6Network" : ""}`, v);
  }
  return prefix;
}

function readAddress(keys: Map<string, unknown>, name: string, family: Family): bigint | undefined {
  const v = keys.get(name);
  if (v === undefined) return undefined;
  const parsed = parseAddress(v, { field: name, component: COMPONENT });
  if (parsed.family !== family) fail(name, `must be an IPv${family} address`, v);
  return parsed.value;
}

interface FamilyKeys {
  family: Family;
  network: string;
  len: string;
  min: string;
  max: string;
  /** Longest subnet an explicit length may ask for. */
  maxLen: number;
  /** Longest network prefix that can still be split by default. */
  minUseful: number;
  /** Default subnet length when the network is at most `defaultUpTo` long. */
  defaultLen: number;
  defaultUpTo: number;
  tooSmall: string;
}

const V4: FamilyKeys = {
  family: 4,
  network: "Network",
  len: "SubnetLen",
  min: "SubnetMin",
  max: "SubnetMax",
  maxLen: 30,
  minUseful: 28,
  defaultLen: 24,
  defaultUpTo: 22,
  tooSmall: "network is too small. Minimum useful network prefix is /28",
};
const V6: FamilyKeys = {
  family: 6,
  network: "IPv6Network",
  len: "IPv6SubnetLen",
  min: "IPv6SubnetMin",
  max: "IPv6SubnetMax",
  maxLen: 126,
  minUseful: 124,
  defaultLen: 64,
  defaultUpTo: 62,
  tooSmall: "IPv6Network is too small. Minimum useful network prefix is /124",
};

/** Type-checked values of one family, before the rules run. */
interface FamilyInput {
  network: Prefix | undefined;
  len: number | undefined;
  min: bigint | undefined;
  max: bigint | undefined;
}

function readFamily(keys: Map<string, unknown>, f: FamilyKeys): FamilyInput {
  const network = readNetwork(keys, f.network, f.family);
  const len = readInt(keys, f.len, f.len, { min: 0, max: Number.MAX_SAFE_INTEGER, rule: "must be a whole number ≥ 0 (a prefix length)" });
  const min = readAddress(keys, f.min, f.family);
  const max = readAddress(keys, f.max, f.family);
  // Go zero values mean "unset": SubnetLen 0, SubnetMin 0.0.0.0.
  return { network, len: len === 0 ? undefined : len, min: min === 0n ? undefined : min, max: max === 0n ? undefined : max };
}

/** flannel's CheckNetworkConfig for one family, in flannel's order, then our SubnetMin ≤ SubnetMax. */
function checkFamily(input: FamilyInput, f: FamilyKeys): FamilyRange {
  const network = input.network;
  // Go's IP4Net.Empty(): IP 0 and length 0, i.e. absent or 0.0.0.0/0.
  if (network === undefined || (network.base === 0n && network.length === 0)) {
    const missing = f.family === 4 ? "please define a correct Network parameter in the flannel config" : "please define a correct IPv6Network parameter in the flannel config";
    fail(f.network, `${missing} (${f.network} is required when ${f.family === 4 ? "EnableIPv4" : "EnableIPv6"} is true)`, input.network?.toString());
  }
  const shown = `${f.network} ${network.toString()}`;
  let subnetLen: number;
  if (input.len !== undefined) {
    if (input.len > f.maxLen) fail(f.len, `SubnetLen must be less than /${f.maxLen + 1} (${shown})`, input.len);
    if (input.len < network.length + 2) {
      fail(f.len, `network must be able to accommodate at least four subnets (${shown} needs ${f.len} of at least ${network.length + 2})`, input.len);
    }
    subnetLen = input.len;
  } else {
    if (network.length > f.minUseful) fail(f.network, f.tooSmall, network.toString());
    subnetLen = network.length <= f.defaultUpTo ? f.defaultLen : network.length + 2;
  }
  const size = 1n << BigInt(network.bits - subnetLen);
  const min = input.min ?? network.base + size;
  if (input.min !== undefined && !network.contains(min)) {
    fail(f.min, `${f.min} is not in the range of the ${f.network} (${shown})`, formatAddress(min, f.family));
  }
  const max = input.max ?? network.last + 1n - size;
  if (input.max !== undefined && !network.contains(max)) {
    fail(f.max, `${f.max} is not in the range of the ${f.network} (${shown})`, formatAddress(max, f.family));
  }
  const mask = Prefix.maskOf(f.family, subnetLen);
  if ((min & mask) !== min) {
    fail(f.min, `${f.min} is not on a SubnetLen boundary: ${formatAddress(min, f.family)} (SubnetLen /${subnetLen})`);
  }
  if ((max & mask) !== max) {
    fail(f.max, `${f.max} is not on a SubnetLen boundary: ${formatAddress(max, f.family)} (SubnetLen /${subnetLen})`);
  }
  if (min > max) {
    fail(f.min, `${f.min} ${formatAddress(min, f.family)} is above ${f.max} ${formatAddress(max, f.family)}: no subnet could ever be leased (flannel reports this only later, as "out of subnets")`);
  }
  return {
    family: f.family,
    network: network.toString(),
    subnetLen,
    subnetMin: formatAddress(min, f.family),
    subnetMax: formatAddress(max, f.family),
  };
}

function parseBackend(raw: unknown, enableIPv6: boolean): { backend: FlannelBackendConfig; defaulted: boolean } {
  if (raw === undefined) {
    return { backend: vxlanDefaults(), defaulted: true };
  }
  if (!isObject(raw)) fail("Backend", 'must be an object such as {"Type": "vxlan"}', raw);
  const typeKey = Object.keys(raw).find((k) => k === "Type") ?? Object.keys(raw).find((k) => k.toLowerCase() === "type");
  const typeValue = typeKey === undefined ? undefined : raw[typeKey];
  if (typeValue !== undefined && typeValue !== null && typeof typeValue !== "string") {
    fail("Backend.Type", 'must be a string such as "vxlan"', typeValue);
  }
  // flannel lower-cases the type before looking it up.
  const type = typeof typeValue === "string" ? typeValue.toLowerCase() : "";
  if (type in UNSUPPORTED_BACKENDS) {
    fail("Backend.Type", `backend type ${JSON.stringify(type)} is not supported (${UNSUPPORTED_BACKENDS[type]}); use "vxlan" or "host-gw"`, typeValue);
  }
  if (!(SUPPORTED_BACKENDS as readonly string[]).includes(type)) {
    fail("Backend.Type", `unknown backend type: ${type} (supported: ${SUPPORTED_BACKENDS.join(", ")})`, typeValue ?? "");
  }
  if (type === "host-gw") {
    readKeys(raw, HOSTGW_KEYS, "Backend");
    return { backend: { type: "host-gw" }, defaulted: false };
  }
  const keys = readKeys(raw, VXLAN_KEYS, "Backend");
  const backend = vxlanDefaults();
  backend.vni = readInt(keys, "VNI", "Backend.VNI", { min: 0, max: MAX_VNI }) ?? backend.vni;
  const port = readInt(keys, "Port", "Backend.Port", { min: 0, max: 65_535 });
  if (port !== undefined && port !== 0) backend.port = port;
  backend.gbp = readBool(keys, "GBP", "Backend.GBP", false);
  backend.directRouting = readBool(keys, "DirectRouting", "Backend.DirectRouting", false);
  backend.learning = readBool(keys, "Learning", "Backend.Learning", false);
  const floor = (enableIPv6 ? MIN_POD_MTU[6] : MIN_POD_MTU[4]) + 50;
  const mtu = readInt(keys, "MTU", "Backend.MTU", { min: 0, max: MAX_MTU });
  if (mtu !== undefined && mtu !== 0) {
    if (mtu < floor) {
      fail("Backend.MTU", `must be at least ${floor}: pods get MTU − 50 (vxlan overhead), and ${enableIPv6 ? "IPv6 needs 1280" : "IPv4 needs 576"}`, mtu);
    }
    backend.mtu = mtu;
  }
  const macPrefix = keys.get("MacPrefix");
  if (macPrefix !== undefined && typeof macPrefix !== "string") fail("Backend.MacPrefix", "must be a string (Windows only; ignored on Linux)", macPrefix);
  return { backend, defaulted: false };
}

function vxlanDefaults(): VxlanBackendConfig {
  return { type: "vxlan", vni: FLANNEL_DEFAULTS.vni, port: FLANNEL_DEFAULTS.vxlanPort, gbp: false, directRouting: false, learning: false };
}

/**
 * Parses flannel's net-conf.json (an object, or its JSON text) and applies flannel's defaults.
 * Pure. Throws `ConfigError` (code 7) naming the field path and the rule: JSON that does not parse
 * or is not an object (field `net-conf.json`), an unknown key (did-you-mean included), a key given
 * twice in two spellings, a value of the wrong type, each of flannel's CheckNetworkConfig rules
 * (with flannel's text), SubnetMin above SubnetMax, an unknown or unsupported Backend type, a VNI,
 * Port or MTU out of range, neither family enabled, or `Networks` / `IPv6Networks` (not supported).
 */
export function parseFlannelConfig(input: unknown): FlannelConfig {
  let raw: unknown = input;
  if (typeof input === "string") {
    try {
      raw = JSON.parse(input);
    } catch (err) {
      throw new ConfigError({
        component: COMPONENT,
        field: "net-conf.json",
        rule: `must be valid JSON: ${(err as Error).message}`,
        cause: err,
      });
    }
  }
  if (!isObject(raw)) fail("net-conf.json", 'must be a JSON object such as {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}', raw);
  const keys = readKeys(raw, NET_CONF_KEYS, "");

  for (const name of ["Networks", "IPv6Networks"] as const) {
    if (keys.has(name)) {
      fail(name, `is not supported (multiple cluster CIDRs are a kube-mode feature); give one ${name === "Networks" ? "Network" : "IPv6Network"}`, keys.get(name));
    }
  }
  const enableIPv4 = readBool(keys, "EnableIPv4", "EnableIPv4", FLANNEL_DEFAULTS.enableIPv4);
  const enableIPv6 = readBool(keys, "EnableIPv6", "EnableIPv6", FLANNEL_DEFAULTS.enableIPv6);
  const enableNFTables = readBool(keys, "EnableNFTables", "EnableNFTables", false);
  const ipMasq = readBool(keys, "IPMasq", "IPMasq", FLANNEL_DEFAULTS.ipMasq);
  const margin = readInt(keys, "SubnetLeaseRenewMargin", "SubnetLeaseRenewMargin", {
    min: 1,
    max: 1439,
    rule: "Invalid subnet-lease-renew-margin option, out of acceptable range: whole minutes from 1 to 1439 (the lease lasts 24 h)",
  });
  const v4 = readFamily(keys, V4);
  const v6 = readFamily(keys, V6);
  if (!enableIPv4 && !enableIPv6) fail("EnableIPv4", "at least one of EnableIPv4 and EnableIPv6 must be true");

  const ipv4 = enableIPv4 ? checkFamily(v4, V4) : undefined;
  const ipv6 = enableIPv6 ? checkFamily(v6, V6) : undefined;
  const { backend, defaulted } = parseBackend(keys.get("Backend"), enableIPv6);

  const out: FlannelConfig = {
    enableIPv4,
    enableIPv6,
    enableNFTables,
    backend,
    backendDefaulted: defaulted,
    ipMasq,
    subnetLeaseRenewMarginMinutes: margin ?? FLANNEL_DEFAULTS.subnetLeaseRenewMarginMinutes,
  };
  if (ipv4) out.ipv4 = ipv4;
  if (ipv6) out.ipv6 = ipv6;
  return out;
}

/** The enabled family ranges, IPv4 first. */
export function familyRanges(config: FlannelConfig): FamilyRange[] {
  return [config.ipv4, config.ipv6].filter((r): r is FamilyRange => r !== undefined);
}

/** Number of node subnets between SubnetMin and SubnetMax (inclusive). */
export function subnetCapacity(range: FamilyRange): bigint {
  const bits = range.family === 4 ? 32 : 128;
  const step = 1n << BigInt(bits - range.subnetLen);
  return (parseAddress(range.subnetMax).value - parseAddress(range.subnetMin).value) / step + 1n;
}
