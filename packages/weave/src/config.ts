/**
 * The weave-kube DaemonSet's own settings — the `weave` container's environment — accepted either
 * as a `{NAME: value}` object or as the container's `env:` list (`[{name, value}]`), with Weave's
 * defaults and Weave's validation texts, plus what Weave gets wrong: every mistake is a
 * `ConfigError` (CNI code 7) naming the variable and the rule, before anything starts, instead of a
 * `Log.Fatal` after the bridge was made or, worse, a silently ignored variable.
 *
 * ```ts
 * parseWeaveConfig({ IPALLOC_RANGE: "10.32.0.0/12", WEAVE_PASSWORD_FILE: "/etc/weave/pw" });
 * parseWeaveConfig([{ name: "IPALLOC_INIT", value: "consensus=3" }, { name: "WEAVE_MTU", value: "8916" }]);
 * ```
 *
 * Sources (weaveworks/weave at its last commit): prog/weave-kube/launch.sh (the variables and their
 * defaults), prog/weaver/main.go (flag defaults, `parseMode`, `createAllocator`,
 * `parseTrustedSubnets`, `determinePassword`, `determineQuorum`), ipam/allocator.go
 * (`ParseCIDRSubnet`, `MinSubnetSize` 4), vendor/github.com/weaveworks/mesh/peer_name_mac.go
 * (`PeerNameFromString`), site/kubernetes/kube-addon.md ("The list of variables you can set").
 *
 * Rules and decisions, variable by variable:
 *  - `IPALLOC_RANGE` (default `10.32.0.0/12`, launch.sh): an IPv4 CIDR (Weave Net is IPv4 only), host
 *    bits zero ("invalid subnet - bits after network prefix are not all zero"), at least 4 addresses
 *    ("invalid subnet - smaller than minimum size 4"), so /30 is the narrowest.
 *  - `IPALLOC_DEFAULT_SUBNET` (weaver `--ipalloc-default-subnet`; launch.sh passes it only through
 *    EXTRA_ARGS, here it is a variable): same rules as the range and it must lie *inside* the range —
 *    Weave only checks overlap ("IP address allocation default subnet … does not overlap with
 *    allocation range …"), which lets a subnet stick out of the range it allocates from. Default:
 *    the range.
 *  - `IPALLOC_INIT`: `consensus`, `consensus=N`, `seed=a,b,…`, `observer` (main.go `parseMode`).
 *    Weave's N is the *initial peer count*, and the quorum is N/2+1 (`determineQuorum`); both are
 *    returned. N must be an integer ≥ 1: launch.sh writes `consensus=0` for a lone first node, which
 *    in Weave means "guess from the peer list" — here that is plain `consensus` (the quorum follows
 *    cluster membership), so an explicit 0 is refused with that advice. Seed names are **Weave peer
 *    names** (48-bit, printed like a MAC; every form `PeerNameFromString` reads, `::` abbreviations
 *    included, returned canonical `aa:bb:cc:dd:ee:ff`) **or Kubernetes node names** (DNS-1123
 *    subdomains, kept as written): a MAC-style name contains `:`, a node name cannot, so the two
 *    never collide; `isWeavePeerName` tells them apart for the agent, which maps node names to the
 *    peer names its mesh uses. Duplicates and empty names are refused (Weave would accept a
 *    duplicate and seed a ring with fewer owners than names). Default (unset): consensus, quorum absent.
 *  - `WEAVE_PASSWORD` or `WEAVE_PASSWORD_FILE` (the file is read synchronously when parsing, one
 *    trailing newline — `\n` or `\r\n` — trimmed, as `kubectl create secret --from-file` files usually
 *    end): both set is refused, an empty password is refused (Weave silently runs unencrypted on an
 *    empty `WEAVE_PASSWORD`), a missing or unreadable file is a ConfigError naming
 *    `WEAVE_PASSWORD_FILE`. A `valueFrom: secretKeyRef` cannot be resolved here: mount the Secret and
 *    name the file in `WEAVE_PASSWORD_FILE`. No error message ever echoes a password.
 *  - `WEAVE_MTU` (launch.sh `--mtu`): integer 576..65535; absent = derived from the underlay by the
 *    plan (Weave's fixed 1376 is only its reference figure for a 1460-byte GCE underlay).
 *  - `CONN_LIMIT` (launch.sh default 200; main.go: "connection limit (0 for unlimited)"): integer
 *    ≥ 0, 0 = unlimited, as Weave.
 *  - `NO_MASQ_LOCAL` (launch.sh passes `--no-masq-local` unless the value is exactly `0`, so the
 *    default is on): `0`/`false` = off, `1`/`true` = on, anything else refused — in Weave `false` would
 *    have meant *on*; here it means what it says.
 *  - `WEAVE_NO_FASTDP` (launch.sh: any non-empty value adds `--no-fastdp`): any non-empty value
 *    disables the fast datapath, as Weave, except `0` and `false`, which Weave also reads as
 *    "disable" and which are refused here as a trap (remove the variable to keep fastdp). In the
 *    object form a JSON boolean means what it says.
 *  - `WEAVE_TRUSTED_SUBNETS` (weaver `--trusted-subnets`, only reachable through EXTRA_ARGS in
 *    weave-kube): comma-separated IPv4 CIDRs without spaces; host bits are cleared as Go's
 *    `net.ParseCIDR` does, returned canonical; an empty element is refused.
 *  - `EXPECT_NPC` (launch.sh: NPC expected unless exactly `0`): `0`/`false` off, `1`/`true` on.
 *  - `HOSTNAME` (the manifest sets it from `fieldRef: spec.nodeName`; launch.sh makes it the
 *    nickname): a literal value is the nickname; `valueFrom.fieldRef.fieldPath: spec.nodeName` is
 *    accepted and means the node's name, which is the nickname anyway (the agent knows it).
 *  - `WEAVE_EXPOSE_IP` (launch.sh `weave expose`): an IPv4 address inside the range, not the range's
 *    first or last address.
 *  - `WEAVE_METRICS_ADDR` (default `0.0.0.0:6782`) and `WEAVE_STATUS_ADDR` (default off):
 *    `host:port` with an IPv4 host and a port 1..65535.
 *  - `IPTABLES_BACKEND` (`nft` | `legacy`): accepted and recorded; the renderer chooses its own
 *    tool, so it changes nothing.
 *  - `CHECKPOINT_DISABLE` (any value) and `INIT_CONTAINER` (set to "true" by the manifest): accepted
 *    and ignored — there is no version check to disable and no init script to run.
 *  - `EXTRA_ARGS` is refused: weaver's flags are not passed through; each one we support has a
 *    variable. `KUBE_PEERS` is refused: peers come from cluster membership.
 *
 * An empty string is treated as unset (launch.sh's `${X:-default}` and `[ -z "$X" ]`), except for
 * `WEAVE_PASSWORD`, where it is refused (above). In the `env:` form values must be strings (the API
 * server refuses anything else), a name may appear once, and `valueFrom` is refused with the reason
 * (except `HOSTNAME` from `spec.nodeName`). In the object form numbers and booleans may also be real
 * JSON numbers and booleans.
 */
import { readFileSync } from "node:fs";
import { ConfigError, Prefix, parseAddress } from "@cnikit/core";

/** Component name at the start of every error message: `[weave] WEAVE_MTU: ...`. */
export const WEAVE = "weave";

/** How the IPAM ring is first split (`IPALLOC_INIT`). */
export type WeaveInit =
  /** Paxos over gossip; `peerCount` is Weave's N, `quorum` = N/2+1; both absent = follow membership. */
  | { mode: "consensus"; quorum?: number; peerCount?: number }
  /** The ring is seeded with these peers' equal shares: peer names (canonical MAC form) or node names. */
  | { mode: "seed"; peers: string[] }
  /** Never votes; waits for a ring from others. */
  | { mode: "observer" };

/** The parsed, validated weave-kube environment. Plain JSON-able data. */
export interface WeaveConfig {
  /** `IPALLOC_RANGE`: the whole pod range, canonical IPv4 CIDR. */
  ipallocRange: string;
  /** `IPALLOC_DEFAULT_SUBNET`: where pods are allocated by default, inside the range (default: the range). */
  defaultSubnet: string;
  /** `IPALLOC_INIT`. */
  init: WeaveInit;
  /** `WEAVE_PASSWORD` or the contents of `WEAVE_PASSWORD_FILE`; absent = unencrypted. */
  password?: string;
  /** `WEAVE_MTU`; absent = derived from the underlay by the plan. */
  mtu?: number;
  /** `CONN_LIMIT`: soft limit on connections to peers; 0 = unlimited. */
  connLimit: number;
  /** `NO_MASQ_LOCAL`: keep the client address for traffic to local pods (externalTrafficPolicy=Local). */
  noMasqLocal: boolean;
  /** Not `WEAVE_NO_FASTDP`: use the kernel vxlan fast datapath when a connection allows it. */
  fastdp: boolean;
  /** `WEAVE_TRUSTED_SUBNETS`: peers in these underlay subnets are not encrypted to; canonical IPv4 CIDRs. */
  trustedSubnets: string[];
  /** `EXPECT_NPC`: NetworkPolicy is enforced (weave-npc runs). */
  expectNpc: boolean;
  /** `HOSTNAME` given literally; absent = the node's name. */
  nickname?: string;
  /** `WEAVE_EXPOSE_IP`: the bridge's address on the pod network, when fixed. */
  exposeIp?: string;
  /** `WEAVE_METRICS_ADDR`: Prometheus metrics `host:port`. */
  metricsAddr: string;
  /** `WEAVE_STATUS_ADDR`: status `host:port`; absent = off. */
  statusAddr?: string;
  /** `IPTABLES_BACKEND` as given; recorded only. */
  iptablesBackend?: "nft" | "legacy";
}

/** Weave's defaults (launch.sh, main.go). */
export const WEAVE_DEFAULTS = Object.freeze({
  ipallocRange: "10.32.0.0/12",
  connLimit: 200,
  noMasqLocal: true,
  fastdp: true,
  expectNpc: true,
  metricsAddr: "0.0.0.0:6782",
});

/** Weave's reference pod MTU (1460-byte GCE underlay minus VXLAN and ESP overhead); the plan derives its own. */
export const WEAVE_REFERENCE_MTU = 1376;
/** `WEAVE_MTU` bounds: the IPv4 minimum a host must accept, and the largest IP packet. */
export const WEAVE_MTU_RANGE = Object.freeze({ min: 576, max: 65_535 });
/** `ipam.MinSubnetSize`: a range or subnet needs at least 4 addresses (network and broadcast excluded). */
export const MIN_SUBNET_SIZE = 4;

/** Variables this parser knows, in the order of the docs' list, then the cnikit ones. */
export const WEAVE_ENV_NAMES = [
  "CHECKPOINT_DISABLE",
  "CONN_LIMIT",
  "IPALLOC_RANGE",
  "EXPECT_NPC",
  "IPALLOC_INIT",
  "WEAVE_EXPOSE_IP",
  "WEAVE_METRICS_ADDR",
  "WEAVE_PASSWORD",
  "WEAVE_STATUS_ADDR",
  "WEAVE_MTU",
  "NO_MASQ_LOCAL",
  "IPTABLES_BACKEND",
  "WEAVE_NO_FASTDP",
  "HOSTNAME",
  "INIT_CONTAINER",
  "IPALLOC_DEFAULT_SUBNET",
  "WEAVE_PASSWORD_FILE",
  "WEAVE_TRUSTED_SUBNETS",
] as const;
export type WeaveEnvName = (typeof WEAVE_ENV_NAMES)[number];

/** Real weave-kube variables refused here, with why. */
export const REFUSED_WEAVE_ENV: Readonly<Record<string, string>> = Object.freeze({
  EXTRA_ARGS: "weaver's command-line flags are not passed through: set the matching variable instead (IPALLOC_DEFAULT_SUBNET, WEAVE_TRUSTED_SUBNETS, CONN_LIMIT, WEAVE_MTU, ...)",
  KUBE_PEERS: "peers come from cluster membership, not from an address list: remove KUBE_PEERS",
});

const KNOWN = new Set<string>(WEAVE_ENV_NAMES);
type Raw = string | number | boolean;
/** `HOSTNAME` from `fieldRef: spec.nodeName`. */
const FROM_NODE_NAME = Symbol("spec.nodeName");

/** The value to echo in an error: never a password. */
function shown(name: string, value: unknown): unknown {
  return name === "WEAVE_PASSWORD" ? undefined : value;
}

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: WEAVE, field, rule } : { component: WEAVE, field, rule, value });
}

/**
 * Parses the weave container's settings.
 * @param input a `{NAME: value}` object or a container `env:` list `[{name, value}]`
 * @throws ConfigError (code 7) naming the variable (or `env[i].name`) and the rule broken
 */
export function parseWeaveConfig(input: unknown): WeaveConfig {
  const env = Array.isArray(input) ? fromEnvList(input) : fromObject(input);
  const text = (name: WeaveEnvName): string | undefined => {
    const v = env.get(name);
    if (v === undefined || v === FROM_NODE_NAME) return undefined;
    if (typeof v !== "string") return String(v);
    return v === "" ? undefined : v;
  };

  const range = parseRange("IPALLOC_RANGE", text("IPALLOC_RANGE") ?? WEAVE_DEFAULTS.ipallocRange);
  let defaultSubnet = range;
  const subnetText = text("IPALLOC_DEFAULT_SUBNET");
  if (subnetText !== undefined) {
    defaultSubnet = parseRange("IPALLOC_DEFAULT_SUBNET", subnetText);
    if (!range.contains(defaultSubnet)) {
      fail("IPALLOC_DEFAULT_SUBNET", `IP address allocation default subnet ${defaultSubnet.toString()} must lie inside allocation range ${range.toString()} (IPALLOC_RANGE)`, subnetText);
    }
  }

  const out: WeaveConfig = {
    ipallocRange: range.toString(),
    defaultSubnet: defaultSubnet.toString(),
    init: parseInit(text("IPALLOC_INIT")),
    connLimit: parseInteger("CONN_LIMIT", env.get("CONN_LIMIT"), 0, Number.MAX_SAFE_INTEGER, "connection limit must be an integer ≥ 0 (0 = unlimited)") ?? WEAVE_DEFAULTS.connLimit,
    noMasqLocal: parseSwitch("NO_MASQ_LOCAL", env.get("NO_MASQ_LOCAL")) ?? WEAVE_DEFAULTS.noMasqLocal,
    fastdp: parseNoFastdp(env.get("WEAVE_NO_FASTDP")),
    trustedSubnets: parseTrustedSubnets(text("WEAVE_TRUSTED_SUBNETS")),
    expectNpc: parseSwitch("EXPECT_NPC", env.get("EXPECT_NPC")) ?? WEAVE_DEFAULTS.expectNpc,
    metricsAddr: parseHostPort("WEAVE_METRICS_ADDR", text("WEAVE_METRICS_ADDR")) ?? WEAVE_DEFAULTS.metricsAddr,
  };

  const password = parsePassword(env);
  if (password !== undefined) out.password = password;
  const mtu = parseInteger("WEAVE_MTU", env.get("WEAVE_MTU"), WEAVE_MTU_RANGE.min, WEAVE_MTU_RANGE.max, `MTU must be an integer from ${WEAVE_MTU_RANGE.min} to ${WEAVE_MTU_RANGE.max}`);
  if (mtu !== undefined) out.mtu = mtu;
  const nickname = text("HOSTNAME");
  if (nickname !== undefined) out.nickname = parseNickname(nickname);
  const expose = text("WEAVE_EXPOSE_IP");
  if (expose !== undefined) out.exposeIp = parseExposeIp(expose, range);
  const status = parseHostPort("WEAVE_STATUS_ADDR", text("WEAVE_STATUS_ADDR"));
  if (status !== undefined) out.statusAddr = status;
  const iptables = text("IPTABLES_BACKEND");
  if (iptables !== undefined) {
    if (iptables !== "nft" && iptables !== "legacy") fail("IPTABLES_BACKEND", 'must be "nft" or "legacy"', iptables);
    out.iptablesBackend = iptables;
  }
  return out;
}

/** Whether a seed entry is a Weave peer name (canonical MAC form) rather than a node name. */
export function isWeavePeerName(name: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(name);
}

// ---- input forms ----

function checkName(name: string, field: string): void {
  if (KNOWN.has(name)) return;
  const refused = REFUSED_WEAVE_ENV[name];
  if (refused !== undefined) fail(name, refused);
  fail(field, `unknown variable ${JSON.stringify(name)}; known: ${WEAVE_ENV_NAMES.join(", ")}`);
}

function fromObject(input: unknown): Map<string, Raw | typeof FROM_NODE_NAME> {
  if (input === null || typeof input !== "object") {
    fail("env", "must be an object of {NAME: value} or a container env list [{name, value}]", input);
  }
  const out = new Map<string, Raw | typeof FROM_NODE_NAME>();
  for (const [name, value] of Object.entries(input)) {
    checkName(name, name);
    if (value === undefined || value === null) continue;
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      fail(name, "must be a string, a number or a boolean", shown(name, value));
    }
    out.set(name, value);
  }
  return out;
}

function fromEnvList(list: readonly unknown[]): Map<string, Raw | typeof FROM_NODE_NAME> {
  const out = new Map<string, Raw | typeof FROM_NODE_NAME>();
  list.forEach((item, i) => {
    const at = `env[${i}]`;
    if (item === null || typeof item !== "object" || Array.isArray(item)) fail(at, "must be an object {name, value}", item);
    const entry = item as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (key !== "name" && key !== "value" && key !== "valueFrom") fail(`${at}.${key}`, "unknown key; an env entry has name, value or valueFrom", entry[key]);
    }
    const name = entry["name"];
    if (typeof name !== "string" || name === "") fail(`${at}.name`, "must be a non-empty string", name);
    checkName(name, `${at}.name`);
    if (out.has(name)) fail(name, `appears twice in the env list (again at ${at}); give it once`);
    if (entry["valueFrom"] !== undefined) {
      if (entry["value"] !== undefined) fail(name, "has both value and valueFrom; give one");
      if (name === "HOSTNAME" && isNodeNameRef(entry["valueFrom"])) {
        out.set(name, FROM_NODE_NAME);
        return;
      }
      const why =
        name === "WEAVE_PASSWORD"
          ? "valueFrom cannot be resolved here (no API server is read): mount the Secret as a file and name it in WEAVE_PASSWORD_FILE"
          : "valueFrom cannot be resolved here (no API server is read): give the value literally" + (name === "HOSTNAME" ? " or use fieldRef spec.nodeName" : "");
      fail(name, why, entry["valueFrom"]);
    }
    const value = entry["value"];
    if (value === undefined || value === null) return;
    if (typeof value !== "string") fail(name, "env values are strings in a container spec: quote it", shown(name, value));
    out.set(name, value);
  });
  return out;
}

function isNodeNameRef(v: unknown): boolean {
  if (v === null || typeof v !== "object") return false;
  const fieldRef = (v as { fieldRef?: unknown }).fieldRef;
  if (fieldRef === null || typeof fieldRef !== "object") return false;
  return (fieldRef as { fieldPath?: unknown }).fieldPath === "spec.nodeName" && Object.keys(v).length === 1;
}

// ---- one variable each ----

/** An IPv4 CIDR with zero host bits and ≥ MIN_SUBNET_SIZE addresses (ipam.ParseCIDRSubnet). */
function parseRange(field: string, value: string): Prefix {
  const p = Prefix.parse(value, { field, component: WEAVE });
  if (p.family !== 4) fail(field, "must be an IPv4 CIDR: Weave Net allocates IPv4 only", value);
  if (p.size < BigInt(MIN_SUBNET_SIZE)) fail(field, `invalid subnet - smaller than minimum size ${MIN_SUBNET_SIZE} (at most /30)`, value);
  return p;
}

function parseInit(value: string | undefined): WeaveInit {
  if (value === undefined) return { mode: "consensus" };
  const eq = value.indexOf("=");
  const mode = eq < 0 ? value : value.slice(0, eq);
  const param = eq < 0 ? undefined : value.slice(eq + 1);
  const field = "IPALLOC_INIT";
  switch (mode) {
    case "consensus": {
      if (param === undefined) return { mode: "consensus" };
      if (!/^[1-9]\d{0,8}$/.test(param)) {
        fail(
          field,
          param === "0"
            ? 'bad consensus parameter: the peer count must be ≥ 1; write plain "consensus" to take the quorum from cluster membership (what Weave\'s consensus=0 meant)'
            : "bad consensus parameter: consensus=N takes the initial peer count N, an integer ≥ 1",
          value,
        );
      }
      const peerCount = Number(param);
      return { mode: "consensus", peerCount, quorum: Math.floor(peerCount / 2) + 1 };
    }
    case "seed": {
      if (param === undefined || param === "") fail(field, "seed mode requires peer name list (seed=name1,name2,...)", value);
      const peers: string[] = [];
      for (const raw of param.split(",")) {
        const name = parseSeedName(raw, value);
        if (peers.includes(name)) fail(field, `seed lists peer ${name} twice`, value);
        peers.push(name);
      }
      return { mode: "seed", peers };
    }
    case "observer":
      if (param !== undefined) fail(field, "observer mode takes no parameter", value);
      return { mode: "observer" };
    default:
      fail(field, `unknown mode: ${mode} (use consensus, consensus=N, seed=name1,name2 or observer)`, value);
  }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A Weave peer name in any form PeerNameFromString reads (canonicalised), or a node name. */
function parseSeedName(raw: string, whole: string): string {
  if (raw === "") fail("IPALLOC_INIT", "error parsing peer names: empty name in the seed list", whole);
  if (raw.includes(":")) {
    const name = parseMacName(raw);
    if (name === undefined) fail("IPALLOC_INIT", `error parsing peer names: invalid peer name format: ${JSON.stringify(raw)} (want aa:bb:cc:dd:ee:ff)`, whole);
    if (name === "00:00:00:00:00:00") fail("IPALLOC_INIT", "error parsing peer names: 00:00:00:00:00:00 is Weave's unknown peer name", whole);
    return name;
  }
  if (raw.length > 253 || !DNS_SUBDOMAIN.test(raw)) {
    fail("IPALLOC_INIT", `error parsing peer names: ${JSON.stringify(raw)} is neither a peer name (aa:bb:cc:dd:ee:ff) nor a node name (lower-case DNS-1123 subdomain)`, whole);
  }
  return raw;
}

/** Six hex octets, or fewer with one `::` standing for zero octets (mesh's PeerNameFromString). */
function parseMacName(text: string): string | undefined {
  const octet = /^[0-9a-fA-F]{1,2}$/;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const split = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const head = split(halves[0]!);
  const tail = halves.length === 2 ? split(halves[1]!) : [];
  if (![...head, ...tail].every((o) => octet.test(o))) return undefined;
  let octets: string[];
  if (halves.length === 1) {
    if (head.length !== 6) return undefined;
    octets = head;
  } else {
    const missing = 6 - head.length - tail.length;
    if (missing < 1) return undefined;
    octets = [...head, ...Array<string>(missing).fill("0"), ...tail];
  }
  return octets.map((o) => o.toLowerCase().padStart(2, "0")).join(":");
}

function parseInteger(field: string, raw: Raw | typeof FROM_NODE_NAME | undefined, min: number, max: number, rule: string): number | undefined {
  if (raw === undefined || raw === "") return undefined;
  let n: number;
  if (typeof raw === "number") n = raw;
  else if (typeof raw === "string" && /^(0|[1-9]\d{0,15})$/.test(raw)) n = Number(raw);
  else fail(field, rule, raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) fail(field, rule, raw);
  return n;
}

/** `0`/`false` → false, `1`/`true` → true (strings or JSON booleans/numbers). */
function parseSwitch(field: string, raw: Raw | typeof FROM_NODE_NAME | undefined): boolean | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (raw === true || raw === 1 || raw === "1" || raw === "true") return true;
  if (raw === false || raw === 0 || raw === "0" || raw === "false") return false;
  fail(field, 'must be "0", "1", "true" or "false"', raw);
}

function parseNoFastdp(raw: Raw | typeof FROM_NODE_NAME | undefined): boolean {
  if (raw === undefined || raw === "" || raw === false) return true;
  if (raw === true) return false;
  if (raw === "0" || raw === "false" || raw === 0) {
    fail("WEAVE_NO_FASTDP", "any non-empty value disables the fast datapath in Weave, including this one: remove the variable to keep fastdp, or set it to 1 to disable it", raw);
  }
  return false;
}

function parseTrustedSubnets(value: string | undefined): string[] {
  if (value === undefined) return [];
  const field = "WEAVE_TRUSTED_SUBNETS";
  const out: string[] = [];
  for (const item of value.split(",")) {
    if (item === "") fail(field, "Unable to parse trusted subnets: empty element in the comma-separated list", value);
    let p: Prefix;
    try {
      p = Prefix.parse(item, { field, component: WEAVE, allowHostBits: true });
    } catch (err) {
      const rule = typeof err === "object" && err !== null && "rule" in err ? String((err as { rule: unknown }).rule) : "must be a CIDR";
      throw new ConfigError({ component: WEAVE, field, rule: `Unable to parse trusted subnets: ${JSON.stringify(item)} ${rule}`, value, cause: err });
    }
    if (p.family !== 4) fail(field, `Unable to parse trusted subnets: ${item} is not IPv4 (Weave Net's underlay is IPv4)`, value);
    const text = p.toString();
    if (!out.includes(text)) out.push(text);
  }
  return out;
}

function parsePassword(env: Map<string, Raw | typeof FROM_NODE_NAME>): string | undefined {
  const literal = env.get("WEAVE_PASSWORD");
  const file = env.get("WEAVE_PASSWORD_FILE");
  const fileSet = file !== undefined && file !== "";
  if (literal !== undefined && fileSet) fail("WEAVE_PASSWORD", "set WEAVE_PASSWORD or WEAVE_PASSWORD_FILE, not both");
  if (literal !== undefined) {
    if (typeof literal !== "string") fail("WEAVE_PASSWORD", "must be a string");
    if (literal === "") fail("WEAVE_PASSWORD", "must not be empty (Weave would silently run unencrypted): remove it to run without encryption");
    return literal;
  }
  if (!fileSet) return undefined;
  if (typeof file !== "string") fail("WEAVE_PASSWORD_FILE", "must be a file path string", file);
  let contents: string;
  try {
    contents = readFileSync(file, "utf8");
  } catch (err) {
    const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "error";
    throw new ConfigError({ component: WEAVE, field: "WEAVE_PASSWORD_FILE", rule: `cannot read the password file (${code}): mount the Secret there`, value: file, cause: err });
  }
  const password = contents.endsWith("\r\n") ? contents.slice(0, -2) : contents.endsWith("\n") ? contents.slice(0, -1) : contents;
  if (password === "") fail("WEAVE_PASSWORD_FILE", "the password file is empty: put the password in it, or remove the variable to run without encryption", file);
  return password;
}

function parseNickname(value: string): string {
  if (value.length > 253 || !/^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$/.test(value)) {
    fail("HOSTNAME", "must be a host name (letters, digits, '-', '.', '_'; at most 253 characters)", value);
  }
  return value;
}

function parseExposeIp(value: string, range: Prefix): string {
  const { family, value: n } = parseAddress(value, { field: "WEAVE_EXPOSE_IP", component: WEAVE });
  if (family !== 4) fail("WEAVE_EXPOSE_IP", "must be an IPv4 address", value);
  if (!range.contains(n)) fail("WEAVE_EXPOSE_IP", `must lie inside IPALLOC_RANGE ${range.toString()}`, value);
  if (n === range.base || n === range.last) fail("WEAVE_EXPOSE_IP", `must not be the network or broadcast address of ${range.toString()}`, value);
  return range.nth(n - range.base);
}

function parseHostPort(field: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const colon = value.lastIndexOf(":");
  const port = value.slice(colon + 1);
  if (colon < 0 || !/^[1-9]\d{0,4}$/.test(port) || Number(port) > 65_535) fail(field, "must be host:port with a port from 1 to 65535, e.g. 0.0.0.0:6782", value);
  const { family } = parseAddress(value.slice(0, colon), { field, component: WEAVE });
  if (family !== 4) fail(field, "host must be an IPv4 address", value);
  return value;
}
