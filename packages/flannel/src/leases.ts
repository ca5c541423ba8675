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
 * Leases are created by compare-and-swap (`put` with `ifRevision: 0`) with a 24 h store lease;
 * a lost race is retried with jittered back-off on the context clock instead of ending the agent.
 */
import { ConfigError, ConflictError, LeaseConflictError, NotFoundError, PoolExhaustedError, Prefix, TryAgainError, parseAddress } from "@cnikit/core";
import type { Clock, Datastore, KeyValue, LeaseId, Logger } from "@cnikit/core";
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

/** Inverse of `subnetKey`; undefined for a key that is not a well-formed subnet key. */
export function parseSubnetKey(key: string): LeaseSubnets | undefined {
  if (!key.startsWith(SUBNET_PREFIX)) return undefined;
  const rest = key.slice(SUBNET_PREFIX.length);
  const [v4Part, v6Part, extra] = rest.split("&");
  if (v4Part === undefined || extra !== undefined) return undefined;
  const out: LeaseSubnets = {};
  try {
    if (v4Part !== "0.0.0.0-0") {
      const p = Prefix.parse(v4Part.replace(/-(\d+)$/, "/$1"));
      if (p.family !== 4) return undefined;
      out.subnet = p.toString();
    }
    if (v6Part !== undefined) {
      const p = Prefix.parse(v6Part.replace(/-(\d+)$/, "/$1"));
      if (p.family !== 6) return undefined;
      out.ipv6Subnet = p.toString();
    }
  } catch {
    return undefined;
  }
  return out.subnet === undefined && out.ipv6Subnet === undefined ? undefined : out;
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
  // Every agent in one process decodes the same KeyValue: share the (immutable) result.
  const memoKey = `${kv.key}\u0000${kv.createRevision}\u0000${kv.modRevision}\u0000${kv.lease ?? ""}\u0000${kv.value}`;
  const hit = DECODE_MEMO.get(memoKey);
  if (hit !== undefined) return hit ?? undefined;
  const lease = decodeUncached(kv);
  if (DECODE_MEMO.size >= DECODE_MEMO_LIMIT) DECODE_MEMO.clear();
  DECODE_MEMO.set(memoKey, lease ? Object.freeze(lease) : null);
  return lease;
}

const DECODE_MEMO = new Map<string, SubnetLease | null>();
const DECODE_MEMO_LIMIT = 100_000;

function decodeUncached(kv: KeyValue): SubnetLease | undefined {
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
  return (
    (node.publicIP !== undefined && lease.attrs.PublicIP === node.publicIP) ||
    (node.publicIPv6 !== undefined && lease.attrs.PublicIPv6 === node.publicIPv6)
  );
}

/** Intervals of a key per family, memoised (keys repeat across attempts and agents). */
const INTERVAL_MEMO = new Map<string, { 4?: [bigint, bigint]; 6?: [bigint, bigint] } | null>();
const INTERVAL_MEMO_LIMIT = 200_000;

function keyIntervals(key: string): { 4?: [bigint, bigint]; 6?: [bigint, bigint] } | null {
  let hit = INTERVAL_MEMO.get(key);
  if (hit === undefined) {
    const s = parseSubnetKey(key);
    hit = null;
    if (s) {
      hit = {};
      if (s.subnet !== undefined) {
        const p = Prefix.parse(s.subnet);
        hit[4] = [p.base, p.last];
      }
      if (s.ipv6Subnet !== undefined) {
        const p = Prefix.parse(s.ipv6Subnet);
        hit[6] = [p.base, p.last];
      }
    }
    if (INTERVAL_MEMO.size >= INTERVAL_MEMO_LIMIT) INTERVAL_MEMO.clear();
    INTERVAL_MEMO.set(key, hit);
  }
  return hit;
}

/** Address intervals [first, last] occupied by stored leases in one family, sorted. */
export function takenRanges(keys: readonly string[], family: 4 | 6): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (const key of keys) {
    const iv = keyIntervals(key)?.[family];
    if (iv !== undefined) out.push(iv);
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

/** How a lease was obtained. */
export type LeaseSource = "own" | "reservation" | "previous" | "new";

/** The lease `acquireLease` obtained, and how. */
export interface AcquiredLease {
  key: string;
  subnet?: string;
  ipv6Subnet?: string;
  /** The store lease keeping the key alive; absent for a reservation (TTL 0). */
  storeLease?: LeaseId;
  modRevision: number;
  source: LeaseSource;
  /** Store round trips that lost a race (CAS conflicts) before this one won. */
  conflicts: number;
  /** Attempts made (1 = first try won). */
  attempts: number;
}

/** Inputs of `acquireLease`. */
export interface AcquireLeaseOptions {
  store: Datastore;
  config: FlannelConfig;
  /** The attributes to publish; `NodeName` is the identity used to find an earlier lease. */
  attrs: LeaseAttrs & { NodeName: string };
  clock: Clock;
  random: () => number;
  log: Logger;
  /** Subnets this node held before (from node-local state, flannel's subnet.env), tried first when free. */
  previous?: LeaseSubnets;
  /** Attempts before giving up with TryAgainError (default 32). */
  maxAttempts?: number;
  /** First back-off in ms (default 50); doubles per attempt up to `maxBackoffMs` (default 2000), with jitter. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Stops waiting (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** Lost races re-picked at once (no sleep) before the jittered back-off starts. */
export const IMMEDIATE_REPICKS = 3;

/** Jittered exponential back-off: half fixed, half random ("equal jitter"). */
export function backoffDelay(attempt: number, random: () => number, base = 50, cap = 2_000): number {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 20));
  return ceiling / 2 + (ceiling / 2) * random();
}

/** Outcome of one attempt: done, or retry after back-off (counted as a conflict when `conflict`). */
type Attempt = { done: AcquiredLease } | { retry: string; conflict: boolean };

/**
 * Acquires this node's subnet lease, flannel's way with the fixes:
 *  1. list every lease; one owned by this node (`NodeName`, else PublicIP) that fits the config is
 *     taken over: its store lease kept alive (or a reservation kept without TTL) and its
 *     attributes updated by CAS; owned leases that no longer fit are deleted;
 *  2. else the node's previous subnets when still free;
 *  3. else a random pick among the first 100 free subnets from SubnetMin (per family);
 *  4. created with `put(..., {ifRevision: 0, lease})` under a 24 h store lease.
 * A lost CAS (ConflictError) is re-picked at once for the first IMMEDIATE_REPICKS attempts, then
 * after a jittered back-off on `clock`; a transient store error (TryAgainError) is retried after
 * the back-off from the start; at most `maxAttempts` attempts in all. Dual-stack leases are double-checked after
 * the write (another node may have taken the same IPv4 subnet under a different IPv6 half of the
 * key); the later writer yields and retries.
 *
 * Throws PoolExhaustedError ("out of subnets") when no subnet is free, TryAgainError (code 11)
 * when every attempt lost or the store stayed unavailable (nothing is left behind: the store
 * lease granted for the attempts is revoked). Not idempotent: each call may create a lease.
 */
export async function acquireLease(options: AcquireLeaseOptions): Promise<AcquiredLease> {
  const { store, clock, random, log } = options;
  const maxAttempts = options.maxAttempts ?? 32;
  let storeLease: LeaseId | undefined;
  let conflicts = 0;
  let lastReason = "";
  try {
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let result: Attempt;
      try {
        result = await tryOnce(options, () => storeLease, (id) => (storeLease = id));
      } catch (err) {
        if (err instanceof ConflictError) result = { retry: err.message, conflict: true };
        else if (err instanceof TryAgainError) result = { retry: err.message, conflict: false };
        else if (err instanceof NotFoundError) {
          // Our granted lease vanished (store restarted or the lease was revoked): grant again.
          storeLease = undefined;
          result = { retry: err.message, conflict: false };
        } else throw err;
      }
      if ("done" in result) {
        const done = { ...result.done, conflicts, attempts: attempt };
        if (done.storeLease !== storeLease && storeLease !== undefined) {
          // We took over an earlier lease (or a reservation): the one granted for a new key is not needed.
          await store.revokeLease(storeLease).catch(() => undefined);
        }
        storeLease = undefined;
        return done;
      }
      if (result.conflict) conflicts++;
      lastReason = result.retry;
      // A lost race is re-picked at once a few times (a fresh listing and a new random pick among
      // the first 100 free subnets is enough under light contention); after that, and for a store
      // that is unavailable, back off with jitter on the clock.
      const immediate = result.conflict && attempt < IMMEDIATE_REPICKS;
      if (attempt < maxAttempts && !immediate) {
        const delay = backoffDelay(result.conflict ? attempt - IMMEDIATE_REPICKS : attempt - 1, random, options.backoffMs, options.maxBackoffMs);
        log.debug("subnet lease attempt lost; retrying", { attempt, delayMs: Math.round(delay), reason: result.retry });
        await clock.sleep(delay, options.signal);
      }
    }
  } catch (err) {
    if (storeLease !== undefined) await store.revokeLease(storeLease).catch(() => undefined);
    throw err;
  }
  if (storeLease !== undefined) await store.revokeLease(storeLease).catch(() => undefined);
  throw new TryAgainError(
    `[${COMPONENT}] failed to acquire a subnet lease after ${maxAttempts} attempts (${conflicts} lost compare-and-swap races); last: ${lastReason}`,
  );
}

async function tryOnce(options: AcquireLeaseOptions, getLease: () => LeaseId | undefined, setLease: (id: LeaseId) => void): Promise<Attempt> {
  const { store, config, attrs } = options;
  const listing = await store.list(SUBNET_PREFIX);
  const identity: { name: string; publicIP?: string; publicIPv6?: string } = { name: attrs.NodeName };
  if (attrs.PublicIP !== undefined) identity.publicIP = attrs.PublicIP;
  if (attrs.PublicIPv6 !== undefined) identity.publicIPv6 = attrs.PublicIPv6;
  // Only values that mention our name or address can be ours: decode just those.
  const needles = [JSON.stringify(identity.name), identity.publicIP, identity.publicIPv6].filter((x): x is string => x !== undefined);
  const leases: SubnetLease[] = [];
  for (const kv of listing.items) {
    if (!needles.some((n) => kv.value.includes(n))) continue;
    const lease = decodeLease(kv);
    if (lease) leases.push(lease);
  }
  const value = encodeAttrs(attrs);

  // 1. Our own lease (by name, else by public address), if it still fits.
  let own: SubnetLease | undefined;
  for (const lease of leases.filter((l) => ownedBy(l, identity))) {
    if (own === undefined && leaseFits(lease, config)) {
      own = lease;
      continue;
    }
    // Does not fit the config any more (or a second one): give it back, as flannel does.
    await store.delete(lease.key, { ifRevision: lease.modRevision }).catch((err: unknown) => {
      if (!(err instanceof ConflictError)) throw err;
    });
    options.log.info("deleted a stale subnet lease of this node", { key: lease.key });
  }
  if (own !== undefined) {
    let storeLease = own.storeLease;
    if (storeLease !== undefined) {
      try {
        await store.keepAlive(storeLease);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        // Expired between list and keep-alive: the key is gone with it; start over.
        return { retry: `own lease ${own.key} expired while being taken over`, conflict: false };
      }
    }
    let modRevision = own.modRevision;
    if (encodeAttrs(own.attrs) !== value) {
      const put = await store.put(own.key, value, storeLease === undefined ? { ifRevision: own.modRevision } : { ifRevision: own.modRevision, lease: storeLease });
      modRevision = put.revision;
    }
    const done: AcquiredLease = { key: own.key, modRevision, source: storeLease === undefined ? "reservation" : "own", conflicts: 0, attempts: 0, ...pickSubnets(own) };
    if (storeLease !== undefined) done.storeLease = storeLease;
    return { done };
  }

  // 2./3. A free subnet per family: the previous one if still free, else a random pick.
  const keys = listing.items.map((kv) => kv.key);
  const chosen: LeaseSubnets = {};
  for (const range of [config.ipv4, config.ipv6]) {
    if (range === undefined) continue;
    const taken = takenRanges(keys, range.family);
    const prev = range.family === 4 ? options.previous?.subnet : options.previous?.ipv6Subnet;
    let pick: string | undefined;
    const prevSubnets: LeaseSubnets = range.family === 4 ? (prev ? { subnet: prev } : {}) : prev ? { ipv6Subnet: prev } : {};
    if (prev !== undefined && fitsFamily(prevSubnets, range) && isFree(prev, taken)) pick = prev;
    pick ??= pickSubnet(range, taken, options.random)?.toString();
    if (pick === undefined) {
      throw new PoolExhaustedError(
        range.network,
        `[${COMPONENT}] out of subnets: every /${range.subnetLen} between ${range.subnetMin} and ${range.subnetMax} of ${range.network} is leased; widen ${range.family === 4 ? "Network or SubnetMin/SubnetMax" : "IPv6Network or IPv6SubnetMin/IPv6SubnetMax"}, or remove leases of nodes that are gone`,
      );
    }
    if (range.family === 4) chosen.subnet = pick;
    else chosen.ipv6Subnet = pick;
  }
  const source: LeaseSource =
    options.previous !== undefined && chosen.subnet === options.previous.subnet && chosen.ipv6Subnet === options.previous.ipv6Subnet ? "previous" : "new";

  // 4. Create by CAS under a 24 h store lease.
  let storeLease = getLease();
  if (storeLease === undefined) {
    storeLease = await store.grantLease(LEASE_TTL_SECONDS);
    setLease(storeLease);
  }
  const key = subnetKey(chosen);
  let put;
  try {
    put = await store.put(key, value, { ifRevision: 0, lease: storeLease });
  } catch (err) {
    if (err instanceof ConflictError) {
      throw new LeaseConflictError(key, `[${COMPONENT}] subnet ${key.slice(SUBNET_PREFIX.length)} was leased by another node first`, { cause: err });
    }
    throw err;
  }
  if (config.ipv4 !== undefined && config.ipv6 !== undefined) {
    // Dual stack: the key CAS guards the pair, not each half. The earlier writer keeps an overlapping half.
    const after = await store.list(SUBNET_PREFIX);
    const rival = after.items.find((kv) => {
      if (kv.key === key || kv.createRevision >= put.revision) return false;
      const s = parseSubnetKey(kv.key);
      return (s?.subnet !== undefined && s.subnet === chosen.subnet) || (s?.ipv6Subnet !== undefined && s.ipv6Subnet === chosen.ipv6Subnet);
    });
    if (rival !== undefined) {
      await store.delete(key, { ifRevision: put.revision }).catch(() => undefined);
      return { retry: `half of ${key} was leased earlier under ${rival.key}`, conflict: true };
    }
  }
  const done: AcquiredLease = { key, modRevision: put.revision, storeLease, source, conflicts: 0, attempts: 0, ...chosen };
  return { done };
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

function pickSubnets(lease: LeaseSubnets): LeaseSubnets {
  const out: LeaseSubnets = {};
  if (lease.subnet !== undefined) out.subnet = lease.subnet;
  if (lease.ipv6Subnet !== undefined) out.ipv6Subnet = lease.ipv6Subnet;
  return out;
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
