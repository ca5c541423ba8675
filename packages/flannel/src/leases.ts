/**
 * Subnet leases in the Datastore, in flannel's etcd layout:
 *
 *   /coreos.com/network/subnets/10.244.3.0-24                  (IPv4 only)
 *   /coreos.com/network/subnets/10.244.3.0-24&fd00:0:0:3::-64   (dual stack)
 *   /coreos.com/network/subnets/0.0.0.0-0&fd00:0:0:3::-64       (IPv6 only, as flannel writes it)
 *
 * value: {"PublicIP":"198.51.100.2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"},
 *         "NodeName":"node-1"}
 *
 * `NodeName` is our addition (Go readers ignore it): the lease belongs to a node *name*, so a
 * restarted agent finds its lease even when its public address changed. A lease without it (written
 * by flannel, or a hand-made reservation) is matched by PublicIP, as flannel does.
 *
 * Leases are claimed, kept alive and re-created by the agent kit's `SubnetLeaseKeeper` (CAS with
 * `ifRevision: 0` under a 24 h store lease; a lost race re-picked, then retried with jittered
 * back-off on the context clock instead of ending the agent). What is flannel's own is here: the
 * key format, the attributes, which lease is this node's, and the choice of a new subnet.
 */
import { ConfigError, PoolExhaustedError, Prefix, SubnetLeaseKeeper, parseAddress } from "@cnikit/core";
import type { Clock, Datastore, HeldClaim, KeyValue, LeaseId, Logger } from "@cnikit/core";
import type { FamilyRange, FlannelConfig } from "./config.ts";
import { COMPONENT } from "./config.ts";

/** flannel's default etcd prefix plus `/subnets/`. */
export const SUBNET_PREFIX = "/coreos.com/network/subnets/";
/** flannel's subnet lease TTL: 24 h. */
export const LEASE_TTL_SECONDS = 86_400;
/** flannel retries a failed renewal every minute. */
export const RENEW_RETRY_MS = 60_000;
/** flannel picks at random among this many free subnets, counted from SubnetMin. */
export const FREE_CANDIDATES = 100;

/** Per-family backend data: the VXLAN VNI and the node's VTEP MAC. */
export interface VxlanBackendData {
  VNI: number;
  VtepMAC: string;
}

/** The lease value (flannel's LeaseAttrs, plus NodeName). */
export interface LeaseAttrs {
  PublicIP?: string;
  PublicIPv6?: string;
  BackendType: string;
  BackendData?: VxlanBackendData;
  BackendV6Data?: VxlanBackendData;
  /** cnikit: the owning node's name (identity). */
  NodeName?: string;
}

/** One lease as read from the store. */
export interface SubnetLease {
  key: string;
  /** IPv4 node subnet, canonical CIDR; absent for an IPv6-only lease. */
  subnet?: string;
  /** IPv6 node subnet, canonical CIDR. */
  ipv6Subnet?: string;
  attrs: LeaseAttrs;
  createRevision: number;
  modRevision: number;
  /** The store lease keeping the key alive; absent for a reservation (no TTL). */
  storeLease?: LeaseId;
}

/** The node subnets of one lease. */
export interface LeaseSubnets {
  subnet?: string;
  ipv6Subnet?: string;
}

/**
 * The key of a lease: `<prefix><a.b.c.d>-<len>` and, with an IPv6 subnet, `&<ipv6>-<len>`.
 * Throws RangeError when neither subnet is given.
 */
export function subnetKey(subnets: LeaseSubnets): string {
  if (subnets.subnet === undefined && subnets.ipv6Subnet === undefined) throw new RangeError("subnetKey: no subnet given");
  const v4 = subnets.subnet === undefined ? "0.0.0.0-0" : subnets.subnet.replace("/", "-");
  return subnets.ipv6Subnet === undefined ? `${SUBNET_PREFIX}${v4}` : `${SUBNET_PREFIX}${v4}&${subnets.ipv6Subnet.replace("/", "-")}`;
}

/** The prefixes a key names, per family; undefined for a key that is not a well-formed subnet key. */
function keyPrefixes(key: string): { 4?: Prefix; 6?: Prefix } | undefined {
  if (!key.startsWith(SUBNET_PREFIX)) return undefined;
  const [v4Part, v6Part, extra] = key.slice(SUBNET_PREFIX.length).split("&");
  if (v4Part === undefined || extra !== undefined) return undefined;
  const out: { 4?: Prefix; 6?: Prefix } = {};
  try {
    if (v4Part !== "0.0.0.0-0") {
      const p = Prefix.parse(v4Part.replace(/-(\d+)$/, "/$1"));
      if (p.family !== 4) return undefined;
      out[4] = p;
    }
    if (v6Part !== undefined) {
      const p = Prefix.parse(v6Part.replace(/-(\d+)$/, "/$1"));
      if (p.family !== 6) return undefined;
      out[6] = p;
    }
  } catch {
    return undefined;
  }
  return out[4] === undefined && out[6] === undefined ? undefined : out;
}

/** Inverse of `subnetKey`; undefined for a key that is not a well-formed subnet key. */
export function parseSubnetKey(key: string): LeaseSubnets | undefined {
  const prefixes = keyPrefixes(key);
  if (!prefixes) return undefined;
  const out: LeaseSubnets = {};
  if (prefixes[4]) out.subnet = prefixes[4].toString();
  if (prefixes[6]) out.ipv6Subnet = prefixes[6].toString();
  return out;
}

function isMac(x: unknown): x is string {
  return typeof x === "string" && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(x);
}

function readBackendData(x: unknown): VxlanBackendData | undefined {
  if (x === null || typeof x !== "object") return undefined;
  const o = x as Record<string, unknown>;
  if (typeof o.VNI !== "number" || !isMac(o.VtepMAC)) return undefined;
  return { VNI: o.VNI, VtepMAC: o.VtepMAC.toLowerCase() };
}

function readIp(x: unknown, family: 4 | 6): string | undefined {
  if (typeof x !== "string") return undefined;
  try {
    const parsed = parseAddress(x);
    return parsed.family === family ? Prefix.host(x).network : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decodes a stored lease; undefined when the key is not a subnet key or the value is not a JSON
 * object (such entries still occupy their subnets: see `takenRanges`). Unknown attributes are
 * ignored, as Go readers do.
 */
export function decodeLease(kv: KeyValue): SubnetLease | undefined {
  const subnets = parseSubnetKey(kv.key);
  if (!subnets) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(kv.value);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const attrs: LeaseAttrs = { BackendType: typeof o.BackendType === "string" ? o.BackendType : "" };
  const ip4 = readIp(o.PublicIP, 4);
  if (ip4) attrs.PublicIP = ip4;
  const ip6 = readIp(o.PublicIPv6, 6);
  if (ip6) attrs.PublicIPv6 = ip6;
  const bd = readBackendData(o.BackendData);
  if (bd) attrs.BackendData = bd;
  const bd6 = readBackendData(o.BackendV6Data);
  if (bd6) attrs.BackendV6Data = bd6;
  if (typeof o.NodeName === "string" && o.NodeName !== "") attrs.NodeName = o.NodeName;
  const lease: SubnetLease = { key: kv.key, attrs, createRevision: kv.createRevision, modRevision: kv.modRevision, ...subnets };
  if (kv.lease !== undefined) lease.storeLease = kv.lease;
  return lease;
}

/** Lease versions `readLease` keeps decoded before it starts over (a few MB at most). */
const READ_LEASE_LIMIT = 1 << 17;

/** The process's decoded lease versions, by key (see `readLease`). */
const readLeases = new Map<string, { kv: KeyValue; lease: SubnetLease | undefined }>();

/**
 * `decodeLease` once per stored version for the whole process: every agent of a simulated cluster
 * reads every lease, and the memory datastore hands each of them the same record, so one decode
 * serves N agents (issue 19: N joins at once cost N² lease decodes without it). A version is the
 * key with its value, revisions and store lease; the same record object hits at once. The result
 * is frozen (shared by every reader): callers must not mutate it. Bounded: after READ_LEASE_LIMIT
 * distinct keys the memo starts over.
 */
export function readLease(kv: KeyValue): SubnetLease | undefined {
  const hit = readLeases.get(kv.key);
  if (hit !== undefined) {
    const o = hit.kv;
    if (o === kv || (o.modRevision === kv.modRevision && o.createRevision === kv.createRevision && o.lease === kv.lease && o.value === kv.value)) return hit.lease;
  }
  const lease = decodeLease(kv);
  if (lease !== undefined) {
    Object.freeze(lease.attrs.BackendData);
    Object.freeze(lease.attrs.BackendV6Data);
    Object.freeze(lease.attrs);
    Object.freeze(lease);
  }
  if (hit === undefined && readLeases.size >= READ_LEASE_LIMIT) readLeases.clear();
  readLeases.set(kv.key, { kv, lease });
  return lease;
}

/** The lease value as stored (key order fixed, so equal attributes give equal text). */
export function encodeAttrs(attrs: LeaseAttrs): string {
  const o: Record<string, unknown> = {};
  if (attrs.PublicIP !== undefined) o.PublicIP = attrs.PublicIP;
  if (attrs.PublicIPv6 !== undefined) o.PublicIPv6 = attrs.PublicIPv6;
  o.BackendType = attrs.BackendType;
  if (attrs.BackendData !== undefined) o.BackendData = { VNI: attrs.BackendData.VNI, VtepMAC: attrs.BackendData.VtepMAC };
  if (attrs.BackendV6Data !== undefined) o.BackendV6Data = { VNI: attrs.BackendV6Data.VNI, VtepMAC: attrs.BackendV6Data.VtepMAC };
  if (attrs.NodeName !== undefined) o.NodeName = attrs.NodeName;
  return JSON.stringify(o);
}

/** Whether a lease's subnets match the config: the enabled families, inside [SubnetMin, SubnetMax], of SubnetLen. */
export function leaseFits(subnets: LeaseSubnets, config: FlannelConfig): boolean {
  const fits = (text: string | undefined, range: FamilyRange | undefined): boolean => {
    if (range === undefined) return text === undefined;
    if (text === undefined) return false;
    const p = Prefix.parse(text);
    return p.length === range.subnetLen && p.base >= parseAddress(range.subnetMin).value && p.base <= parseAddress(range.subnetMax).value;
  };
  return fits(subnets.subnet, config.ipv4) && fits(subnets.ipv6Subnet, config.ipv6);
}

/** Whether a lease is owned by `node`: by NodeName, or by public address when the lease has no NodeName. */
export function ownedBy(lease: SubnetLease, node: { name: string; publicIP?: string; publicIPv6?: string }): boolean {
  if (lease.attrs.NodeName !== undefined) return lease.attrs.NodeName === node.name;
  return (node.publicIP !== undefined && lease.attrs.PublicIP === node.publicIP) || (node.publicIPv6 !== undefined && lease.attrs.PublicIPv6 === node.publicIPv6);
}

const IPV4_KEY = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})-(\d{1,2})(?:&|$)/;

/**
 * `parseIpv4Interval` by key, for the whole process (every acquisition attempt of every agent reads
 * every key); bounded like `readLease`. The intervals are shared: nobody mutates them.
 */
const intervals = new Map<string, [bigint, bigint] | null>();

function ipv4Interval(key: string): [bigint, bigint] | undefined {
  let iv = intervals.get(key);
  if (iv === undefined) {
    if (intervals.size >= READ_LEASE_LIMIT) intervals.clear();
    iv = parseIpv4Interval(key) ?? null;
    intervals.set(key, iv);
  }
  return iv ?? undefined;
}

/**
 * The IPv4 interval of a key in flannel's canonical form (`a.b.c.d-len`, host bits clear), read
 * without building a Prefix. Undefined otherwise (then the key goes through `keyPrefixes`).
 */
function parseIpv4Interval(key: string): [bigint, bigint] | undefined {
  const m = IPV4_KEY.exec(key.slice(SUBNET_PREFIX.length));
  if (!m || !key.startsWith(SUBNET_PREFIX)) return undefined;
  const octets = [m[1], m[2], m[3], m[4]].map(Number);
  const len = Number(m[5]);
  if (len === 0 || len > 32 || octets.some((o) => o > 255)) return undefined;
  const base = ((octets[0]! * 256 + octets[1]!) * 256 + octets[2]!) * 256 + octets[3]!;
  const size = 2 ** (32 - len);
  if (base % size !== 0) return undefined;
  return [BigInt(base), BigInt(base + size - 1)];
}

/** Address intervals [first, last] occupied by stored leases in one family, sorted. */
export function takenRanges(keys: readonly string[], family: 4 | 6): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (const key of keys) {
    const iv = family === 4 ? ipv4Interval(key) : undefined;
    if (iv !== undefined) {
      out.push(iv);
      continue;
    }
    const p = keyPrefixes(key)?.[family];
    if (p !== undefined) out.push([p.base, p.last]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * The first `limit` subnets of the range, from SubnetMin upward, that overlap no taken interval.
 * O(taken + limit). `taken` must be sorted by start (as `takenRanges` returns it).
 */
export function firstFreeSubnets(range: FamilyRange, taken: readonly [bigint, bigint][], limit = FREE_CANDIDATES): Prefix[] {
  const bits = range.family === 4 ? 32 : 128;
  const step = 1n << BigInt(bits - range.subnetLen);
  const min = parseAddress(range.subnetMin).value;
  const max = parseAddress(range.subnetMax).value;
  const out: Prefix[] = [];
  let cur = min;
  let i = 0;
  while (cur <= max && out.length < limit) {
    const end = cur + step - 1n;
    while (i < taken.length && taken[i]![1] < cur) i++;
    const t = taken[i];
    if (t !== undefined && t[0] <= end) {
      // Skip to the first aligned subnet after this taken interval.
      const next = min + ((t[1] - min) / step + 1n) * step;
      cur = next > cur ? next : cur + step;
      continue;
    }
    out.push(Prefix.of(range.family, cur, range.subnetLen));
    cur += step;
  }
  return out;
}

/** flannel's pick: uniformly at random among the first 100 free subnets; undefined when none is free. */
export function pickSubnet(range: FamilyRange, taken: readonly [bigint, bigint][], random: () => number): Prefix | undefined {
  const free = firstFreeSubnets(range, taken);
  if (free.length === 0) return undefined;
  return free[Math.min(free.length - 1, Math.floor(random() * free.length))];
}

/** Whether a subnet overlaps none of the taken intervals. */
function isFree(text: string, taken: readonly [bigint, bigint][]): boolean {
  const p = Prefix.parse(text);
  return !taken.some(([a, b]) => a <= p.last && p.base <= b);
}

/** How a lease was obtained: taken over (`reservation`: one without TTL), the previously held subnets, or a new pick. */
export type LeaseSource = "own" | "reservation" | "previous" | "new";

/** The lease a node holds (the kit keeper's claim, read as flannel's subnets). */
export interface AcquiredLease extends LeaseSubnets {
  key: string;
  /** The store lease keeping the key alive; absent for a reservation (TTL 0). */
  storeLease?: LeaseId;
  modRevision: number;
  source: LeaseSource;
  /** Store round trips that lost a race (CAS conflicts) before the claim was won. */
  conflicts: number;
  /** Attempts made (1 = first try won). */
  attempts: number;
}

/** The keeper's claim as flannel's lease. */
export function leaseOfClaim(claim: HeldClaim): AcquiredLease {
  const source: LeaseSource = claim.source === "own" && claim.lease === undefined ? "reservation" : claim.source;
  const lease: AcquiredLease = { key: claim.key, modRevision: claim.modRevision, source, conflicts: claim.conflicts, attempts: claim.attempts, ...parseSubnetKey(claim.key) };
  if (claim.lease !== undefined) lease.storeLease = claim.lease;
  return lease;
}

/**
 * flannel's candidate choice (the keeper's `pick`): per enabled family, the subnet this node held
 * before when it is still free and fits the config, else one at random among the first 100 free
 * subnets from SubnetMin. Throws PoolExhaustedError ("out of subnets") when a family has none.
 */
export function pickLeaseKey(config: FlannelConfig, input: { listing: readonly KeyValue[]; previous: string | undefined; random: () => number }): string {
  const keys = input.listing.map((kv) => kv.key);
  const previous = input.previous === undefined ? undefined : parseSubnetKey(input.previous);
  const chosen: LeaseSubnets = {};
  for (const range of [config.ipv4, config.ipv6]) {
    if (range === undefined) continue;
    const taken = takenRanges(keys, range.family);
    const prev = range.family === 4 ? previous?.subnet : previous?.ipv6Subnet;
    const prevSubnets: LeaseSubnets = range.family === 4 ? (prev ? { subnet: prev } : {}) : prev ? { ipv6Subnet: prev } : {};
    let pick: string | undefined;
    if (prev !== undefined && fitsFamily(prevSubnets, range) && isFree(prev, taken)) pick = prev;
    pick ??= pickSubnet(range, taken, input.random)?.toString();
    if (pick === undefined) {
      throw new PoolExhaustedError(
        range.network,
        `[${COMPONENT}] out of subnets: every /${range.subnetLen} between ${range.subnetMin} and ${range.subnetMax} of ${range.network} is leased; widen ${range.family === 4 ? "Network or SubnetMin/SubnetMax" : "IPv6Network or IPv6SubnetMin/IPv6SubnetMax"}, or remove leases of nodes that are gone`,
      );
    }
    if (range.family === 4) chosen.subnet = pick;
    else chosen.ipv6Subnet = pick;
  }
  return subnetKey(chosen);
}

/** Keep-alive period: the TTL minus `SubnetLeaseRenewMargin` (23 h by default), at least a minute. */
export function renewEveryMs(config: FlannelConfig): number {
  return Math.max(60_000, LEASE_TTL_SECONDS * 1000 - config.subnetLeaseRenewMarginMinutes * 60_000);
}

/** Inputs of `flannelLeaseKeeper`. */
export interface FlannelLeaseKeeperOptions {
  store: Datastore;
  /** Node-local state: the held key is remembered at `localKey` (flannel's subnet.env). */
  local: Datastore;
  localKey: string;
  config: FlannelConfig;
  /** The attributes to publish; `NodeName` (else the public addresses) identifies this node's lease. */
  attrs: LeaseAttrs & { NodeName: string };
  clock: Clock;
  random: () => number;
  log: Logger;
  /** Attempts before giving up with TryAgainError (default 32). */
  maxAttempts?: number;
  /** The lease key was taken by another node (`holder`). */
  onLost?: (info: { key: string; holder: KeyValue | undefined }) => void;
  /** The lease was re-created under a new store lease (the old one expired). */
  onRenewedLease?: (claim: HeldClaim) => void;
}

/**
 * The kit's `SubnetLeaseKeeper` with flannel's lease: keys under SUBNET_PREFIX, values in
 * flannel's attributes, a 24 h store lease kept alive at expiry − margin and retried every minute,
 * this node's lease found by NodeName (else PublicIP) and kept when it fits the config, new ones
 * chosen by `pickLeaseKey`. Dual stack: the key CAS guards the pair, not each half, so after the
 * write a lease created earlier that shares a half wins and this one is re-picked.
 */
export function flannelLeaseKeeper(o: FlannelLeaseKeeperOptions): SubnetLeaseKeeper {
  const { config, attrs, store } = o;
  const identity: { name: string; publicIP?: string; publicIPv6?: string } = { name: attrs.NodeName };
  if (attrs.PublicIP !== undefined) identity.publicIP = attrs.PublicIP;
  if (attrs.PublicIPv6 !== undefined) identity.publicIPv6 = attrs.PublicIPv6;
  // Only values that mention our name or address can be ours: decode just those.
  const needles = [JSON.stringify(identity.name), identity.publicIP, identity.publicIPv6].filter((x): x is string => x !== undefined);
  const value = encodeAttrs(attrs);
  const noEarlierHalf = async ({ key, revision }: { key: string; revision: number }): Promise<boolean> => {
    const mine = parseSubnetKey(key);
    const rival = (await store.list(SUBNET_PREFIX)).items.find((kv) => {
      if (kv.key === key || kv.createRevision >= revision) return false;
      const s = parseSubnetKey(kv.key);
      return (s?.subnet !== undefined && s.subnet === mine?.subnet) || (s?.ipv6Subnet !== undefined && s.ipv6Subnet === mine?.ipv6Subnet);
    });
    return rival === undefined;
  };
  return new SubnetLeaseKeeper({
    store,
    local: o.local,
    localKey: o.localKey,
    clock: o.clock,
    log: o.log,
    random: o.random,
    component: COMPONENT,
    prefix: SUBNET_PREFIX,
    ttlSeconds: LEASE_TTL_SECONDS,
    renewEveryMs: renewEveryMs(config),
    retryMs: RENEW_RETRY_MS,
    value: () => value,
    isMine: (kv) => {
      if (!needles.some((n) => kv.value.includes(n))) return false;
      const lease = readLease(kv);
      return lease !== undefined && ownedBy(lease, identity);
    },
    fits: (key) => {
      const subnets = parseSubnetKey(key);
      return subnets !== undefined && leaseFits(subnets, config);
    },
    pick: (input) => pickLeaseKey(config, input),
    ...(config.ipv4 !== undefined && config.ipv6 !== undefined ? { confirm: noEarlierHalf } : {}),
    ...(o.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts } : {}),
    ...(o.onLost ? { onLost: o.onLost } : {}),
    ...(o.onRenewedLease ? { onRenewedLease: o.onRenewedLease } : {}),
  });
}

/**
 * The keeper remembers `{key}` at `localKey`; agents before it wrote the subnets held
 * (`{subnet, ipv6Subnet}`): rewrite such a record as the key, so the previous subnets are still
 * preferred after an upgrade.
 */
export async function upgradeRememberedLease(local: Datastore, localKey: string): Promise<void> {
  const kv = await local.get(localKey);
  if (!kv) return;
  let key: unknown;
  try {
    key = (JSON.parse(kv.value) as { key?: unknown }).key;
  } catch {
    return;
  }
  const subnets = key === undefined ? readPreviousSubnets(kv.value) : undefined;
  if (subnets) await local.put(localKey, JSON.stringify({ key: subnetKey(subnets) }));
}

function fitsFamily(subnets: LeaseSubnets, range: FamilyRange): boolean {
  const text = range.family === 4 ? subnets.subnet : subnets.ipv6Subnet;
  if (text === undefined) return false;
  try {
    const p = Prefix.parse(text);
    return p.family === range.family && p.length === range.subnetLen && p.base >= parseAddress(range.subnetMin).value && p.base <= parseAddress(range.subnetMax).value;
  } catch {
    return false;
  }
}

/** Re-validates a subnet pair read from node-local state; undefined when malformed. */
export function readPreviousSubnets(value: string | undefined): LeaseSubnets | undefined {
  if (value === undefined) return undefined;
  try {
    const o = JSON.parse(value) as Record<string, unknown>;
    const out: LeaseSubnets = {};
    if (typeof o.subnet === "string") out.subnet = Prefix.parse(o.subnet).toString();
    if (typeof o.ipv6Subnet === "string") out.ipv6Subnet = Prefix.parse(o.ipv6Subnet).toString();
    return out.subnet === undefined && out.ipv6Subnet === undefined ? undefined : out;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof SyntaxError) return undefined;
    throw err;
  }
}
