/**
 * Section B: CNI lifecycle rules. In the simulator they run through the agent API (NodeAgent.attach /
 * detach / check / gc / status), the layer the CNI plugin executable sits on; the checks that only
 * make sense against the executable (result versions, error JSON on stdout, chaining) are reported
 * "not run" here and run with `--dataplane linux` (@cnikit/lab), which drives all of section B
 * through the executable.
 *
 * Release is observed four ways, so that a backend cannot hide a leak behind one blind spot:
 *  - trace: after DEL (or GC), within the convergence bound, no key or value of the cluster store
 *    or the node's own `ctx.local` names the deleted container id, and no entry that did not name
 *    the released address before the ADD names it now (a pod added after the deleted one moves any
 *    "last reserved" cursor away from it);
 *  - requested IP: when the backend honours `requestedIps`, the released address is handed out again;
 *  - exhaustion: when the node's share runs out within `FILL_LIMIT` ADDs (PoolExhaustedError, code
 *    100), deleting k pods of the full node lets exactly k ADDs succeed again, with exactly the
 *    released addresses. This catches leaks kept only in the agent's memory, for backends that
 *    refuse requested addresses too; a share larger than the limit (a Calico node borrows from the
 *    whole pool) is reported as not exercised by this leg, never as passed by it;
 *  - churn: one pod at a time ADDed and DELeted `CHURN_PAIRS` times (a driver may ask for fewer,
 *    never below `MIN_CHURN_PAIRS`: the kernel's) must not grow the stores, so
 *    a leak recorded under a name that is neither the container id nor the address (a quarantined
 *    block ordinal) still shows on a share too large to run out.
 */
import { Prefix, canonicalDataplane, flushAsync, parseAddress, parseInterfaceAddress } from "@cnikit/core";
import type { AttachResult, NodeDataplane, PodAttachment, PodInterface, PodRef } from "@cnikit/core";
import { SOURCES, fail, notApplicable, notRun, pass } from "../check.ts";
import type { CheckDefinition, CheckEnv, CheckIdentity } from "../check.ts";
import { describeError, errorCode, summarizeProblems, thrown } from "../harness.ts";
import { CLUSTER_STORE_LABEL, simLifecycleDriver } from "../lifecycle-driver.ts";
import type { LifecycleDriver, LifecycleDriverFactory, StoreSnapshot } from "../lifecycle-driver.ts";
import type { CheckOutcome, SubResult } from "../types.ts";

const PLUGIN_NEEDED = "runs through the CNI plugin executable: use --dataplane linux";

/**
 * How many ADDs a check spends trying to run one node's address share out: a /24 share (253 pods,
 * as reference and flannel hand out) fits; a share that is the whole pool (Calico borrows blocks
 * from a /16) does not, and is then left to the other legs (the limit keeps that
 * case to a second or two, not minutes).
 */
export const FILL_LIMIT = 300;

/** Pods deleted from a full node in one round of the exhaustion leg. */
const EXHAUSTION_VICTIMS = 4;

function ref(id: string, ifName = "eth0"): PodRef {
  return { containerId: id, ifName };
}

function key(r: PodRef): string {
  return `${r.containerId}/${r.ifName}`;
}

/**
 * A container id no other id of the check contains: `<tag>-<4 digits>-x`. Tags within one check
 * differ and none ends another, so a substring search for one id never finds another.
 */
function cid(tag: string, i: number): string {
  return `${tag}-${String(i).padStart(4, "0")}-x`;
}

function firstAddress(result: AttachResult): string | undefined {
  // A broken plugin may exit 0 with something that is no result (an error JSON): no address then.
  const ip = Array.isArray(result?.ips) ? result.ips[0] : undefined;
  return ip ? ip.address.split("/")[0] : undefined;
}

/** Whether an error means "requested addresses are not supported" (code 2, or 7 naming them). */
function requestedIpsUnsupported(err: unknown): boolean {
  const code = errorCode(err);
  return code === 2 || (code === 7 && /ip/i.test(String((err as { field?: unknown }).field ?? "")));
}

// ---------------------------------------------------------------- what the stores hold

/**
 * A snapshot taken once the stores are quiet: virtual time steps (1/20 of the bound) until two
 * snapshots in a row are equal, so writes a backend makes asynchronously (a publication queue, a
 * slow external store) have landed before a check compares against it. Gives up quietly at the
 * bound (the caller's comparison then names what kept changing).
 */
async function quietSnapshot(d: LifecycleDriver, boundMs: number, node: string): Promise<Snapshot> {
  const v0 = d.now();
  const step = Math.max(10, Math.floor(boundMs / 20));
  let last = await d.stores(node);
  for (;;) {
    const elapsed = d.now() - v0;
    if (elapsed >= boundMs) return last;
    await d.passTime(Math.min(step, boundMs - elapsed));
    const next = await d.stores(node);
    if (JSON.stringify([...next]) === JSON.stringify([...last])) return next;
    last = next;
  }
}

type Snapshot = StoreSnapshot;

/** The cluster store's part of a snapshot and the node's `ctx.local` part, each as one text (for "nothing changed"). */
function storeParts(snap: Snapshot): { cluster: string; local: string } {
  const entries = [...snap].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    cluster: JSON.stringify(entries.filter(([k]) => k.startsWith(CLUSTER_STORE_LABEL))),
    local: JSON.stringify(entries.filter(([k]) => !k.startsWith(CLUSTER_STORE_LABEL))),
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Whether `text` names `address` as an address: not as part of a longer address or number, and not
 * as the network address of a prefix (`10.244.1.0/26` names a block, not the pod 10.244.1.0).
 */
export function mentionsAddress(text: string, address: string): boolean {
  const v6 = address.includes(":");
  const before = v6 ? "(?<![0-9A-Fa-f:.])" : "(?<![0-9.])";
  const after = v6 ? "(?![0-9A-Fa-f:])" : "(?![0-9]|\\.[0-9])";
  const re = new RegExp(`${before}${escapeRegExp(address)}${after}(?:/(\\d{1,3}))?`, "g");
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const len = m[1];
    if (len === undefined) return true;
    const bits = v6 ? 128 : 32;
    const n = Number(len);
    if (n >= bits) return true;
    try {
      const { family, value } = parseAddress(address);
      if (Prefix.of(family, value, n).network !== address) return true;
    } catch {
      return true;
    }
  }
  return false;
}

/** Entries of a snapshot whose key or value names the address. */
function entriesNamingAddress(snap: Snapshot, address: string): string[] {
  return [...snap].filter(([k, v]) => mentionsAddress(k, address) || mentionsAddress(v, address)).map(([k]) => k);
}

/** Entries of a snapshot whose key or value contains the text (a container id). */
function entriesNaming(snap: Snapshot, text: string): string[] {
  return [...snap].filter(([k, v]) => k.includes(text) || v.includes(text)).map(([k]) => k);
}

/**
 * Steps virtual time (in 1/20 of the bound) until the asynchronous `problems()` comes back empty or
 * the bound passes; returns the last problems. Stops early when the cluster goes idle.
 */
async function eventually(d: LifecycleDriver, boundMs: number, problems: () => Promise<string[]>): Promise<string[]> {
  const v0 = d.now();
  const step = Math.max(10, Math.floor(boundMs / 20));
  for (;;) {
    await flushAsync();
    const p = await problems();
    const elapsed = d.now() - v0;
    if (p.length === 0 || elapsed >= boundMs) return p;
    await d.passTime(Math.min(step, boundMs - elapsed));
    if (d.now() - v0 === elapsed) {
      await flushAsync();
      return problems();
    }
  }
}

/** One released attachment, for the trace leg. */
interface Released {
  ref: PodRef;
  /** The addresses it held. */
  addresses: string[];
  /** The snapshot taken before its ADD. */
  before: Snapshot;
  /** False when another live attachment shares the container id (multi-interface): only the address is traced. */
  traceContainerId: boolean;
}

/**
 * The trace leg: within the convergence bound after `what`, no entry of the cluster store or the
 * node's local store names the released container id, and none names a released address that did
 * not name it before the ADD.
 */
async function traceProblems(d: LifecycleDriver, boundMs: number, node: string, gone: Released[], what: string): Promise<string[]> {
  return eventually(d, boundMs, async () => {
    const snap = await d.stores(node);
    const problems: string[] = [];
    for (const g of gone) {
      if (g.traceContainerId) {
        const left = entriesNaming(snap, g.ref.containerId);
        if (left.length > 0) problems.push(`after ${what} of ${key(g.ref)} on node ${node}, ${summarizeProblems(left, 2)} still name${left.length === 1 ? "s" : ""} container ${g.ref.containerId}`);
      }
      for (const address of g.addresses) {
        const was = new Set(entriesNamingAddress(g.before, address));
        const now = entriesNamingAddress(snap, address).filter((k) => !was.has(k));
        if (now.length > 0) {
          problems.push(`after ${what} of ${key(g.ref)} on node ${node}, its address ${address} is still recorded in ${summarizeProblems(now, 2)} (not there before its ADD)`);
        }
      }
    }
    return problems;
  });
}

/**
 * The requested-IP leg: the released `addresses` (one per family) are handed out again to a fresh
 * attachment `id` (then deleted). Returns "unsupported" when the backend refuses requested addresses.
 */
async function requestAgain(d: LifecycleDriver, node: string, addresses: string[], id: string, what: string): Promise<"ok" | "unsupported" | string> {
  let result: AttachResult;
  const list = addresses.join(", ");
  try {
    result = await d.attach(node, { ...d.attachment(id), requestedIps: addresses });
  } catch (err) {
    if (requestedIpsUnsupported(err)) return "unsupported";
    return `after ${what}, ${list} could not be handed out again on node ${node}: ${describeError(err)}`;
  }
  const got = addressesOf(result);
  await d.detach(node, ref(id));
  return addresses.every((a) => got.includes(a)) ? "ok" : `after ${what}, asking for ${list} on node ${node} gave ${got.join(", ") || "no address"}`;
}

/** One attachment a check holds on a node. */
interface Held {
  ref: PodRef;
  /** Its first address. */
  address: string;
  /** Every address (one per family). */
  addresses: string[];
}

function addressesOf(result: AttachResult): string[] {
  return result.ips.map((ip) => ip.address.split("/")[0]!);
}

/**
 * ADDs `tag` pods on `node` until PoolExhaustedError (code 100) or `limit` ADDs. Any other failure
 * is a problem (the node's share is not used up yet).
 */
async function fillNode(d: LifecycleDriver, node: string, tag: string, limit = FILL_LIMIT): Promise<{ held: Held[]; exhausted: boolean; problems: string[] }> {
  const held: Held[] = [];
  for (let i = 0; i < limit; i++) {
    const id = cid(tag, i);
    let result: AttachResult;
    try {
      result = await d.attach(node, d.attachment(id));
    } catch (err) {
      if (errorCode(err) === 100) return { held, exhausted: true, problems: [] };
      return {
        held,
        exhausted: false,
        problems: [`ADD ${id}/eth0 on node ${node}, after ${held.length} ADDs that filled the node, failed with ${describeError(err)}; expected an address or PoolExhaustedError (100)`],
      };
    }
    const address = firstAddress(result);
    if (!address) return { held, exhausted: false, problems: [`ADD ${id}/eth0 on node ${node} returned no address`] };
    held.push({ ref: ref(id), address, addresses: addressesOf(result) });
  }
  return { held, exhausted: false, problems: [] };
}

/** Up to `n` members spread over the list (first, last and between), starting at `offset`. */
function spread<T>(list: T[], n: number, offset = 0): T[] {
  if (list.length <= n) return [...list];
  const picked = new Set<number>();
  for (let i = 0; i < n; i++) picked.add((Math.floor((i * (list.length - 1)) / Math.max(1, n - 1)) + offset) % list.length);
  for (let i = 0; picked.size < n; i++) picked.add(i);
  return [...picked].map((i) => list[i]!);
}

/**
 * The exhaustion leg, on a node whose share just ran out: `release(victims)` gives back the victims
 * (DEL or GC); then exactly as many ADDs must succeed, with exactly the released addresses, and the
 * next one must fail with PoolExhaustedError. Returns the problems and the attachments now held.
 */
async function refillProblems(d: LifecycleDriver, node: string, victims: Held[], tag: string, what: string): Promise<{ problems: string[]; held: Held[] }> {
  const problems: string[] = [];
  const held: Held[] = [];
  const released = victims.map((v) => v.address);
  const releasedAll = new Set(victims.flatMap((v) => v.addresses));
  const list = released.join(", ");
  for (let i = 0; i <= victims.length; i++) {
    const id = cid(tag, i);
    let result: AttachResult;
    try {
      result = await d.attach(node, d.attachment(id));
    } catch (err) {
      if (errorCode(err) !== 100) problems.push(`after ${what} of ${victims.length} pods on the full node ${node}, ADD ${id}/eth0 failed with ${describeError(err)}`);
      break;
    }
    const address = firstAddress(result) ?? "no address";
    held.push({ ref: ref(id), address, addresses: addressesOf(result) });
  }
  if (held.length < victims.length) {
    const missing = released.filter((a) => !held.some((x) => x.addresses.includes(a)));
    problems.push(
      `after ${what} of ${victims.length} pods (${list}) on node ${node}, whose share was exhausted, only ${held.length} ADD(s) succeeded before PoolExhaustedError: ` +
        `${missing.length > 0 ? missing.join(", ") : "some address"} stayed reserved (leaked)`,
    );
  } else if (held.length > victims.length) {
    problems.push(`after ${what} of ${victims.length} pods (${list}) on node ${node}, whose share was exhausted, ${held.length} ADDs succeeded: more addresses than were released`);
  }
  // The family that ran out hands out only released addresses (another family's share may be larger).
  const stranger = held.filter((x) => !x.addresses.some((a) => releasedAll.has(a)));
  if (stranger.length > 0 && held.length <= victims.length) {
    problems.push(
      `after ${what} of ${list} on the full node ${node}, ADD handed out ${stranger.map((s) => `${s.addresses.join(" + ")} (to ${key(s.ref)})`).join(", ")}, none of which was among the released addresses`,
    );
  }
  return { problems, held };
}

/**
 * Fills `node`, then runs two rounds of the exhaustion leg with `release`. Returns the problems and
 * the sub-result that says whether the leg could run.
 */
async function exhaustionLeg(
  d: LifecycleDriver,
  node: string,
  tag: string,
  what: string,
  release: (victims: Held[], live: Held[]) => Promise<void>,
  beforeSecondRound?: () => Promise<void>,
): Promise<{ problems: string[]; sub: SubResult; live: Held[] }> {
  const label = `exhaustion: on a full node, ${what} of k pods lets exactly k ADDs succeed again`;
  const filled = await fillNode(d, node, `${tag}f`);
  if (filled.problems.length > 0) return { problems: filled.problems, sub: { label, status: "failed", reason: summarizeProblems(filled.problems) }, live: filled.held };
  if (!filled.exhausted) {
    return {
      problems: [],
      sub: { label, status: "not applicable", reason: `node ${node}'s share did not run out within ${FILL_LIMIT} ADDs (a share this large is left to the other legs)` },
      live: filled.held,
    };
  }
  const problems: string[] = [];
  let live = filled.held;
  for (let round = 0; round < 2; round++) {
    if (round === 1 && beforeSecondRound) await beforeSecondRound();
    const victims = spread(live, EXHAUSTION_VICTIMS, round * 7);
    await release(victims, live);
    live = live.filter((x) => !victims.includes(x));
    const refill = await refillProblems(d, node, victims, `${tag}r${round}`, what);
    problems.push(...refill.problems);
    live = [...live, ...refill.held];
    if (refill.problems.length > 0) break;
  }
  return {
    problems,
    sub: problems.length > 0 ? { label, status: "failed", reason: summarizeProblems(problems) } : { label, status: "passed", reason: `the share ran out after ${filled.held.length} pods` },
    live,
  };
}

/** ADD/DEL pairs of the churn leg, and the pairs after which its baseline is taken. */
const CHURN_PAIRS = 200;
const CHURN_WARMUP = 8;
/**
 * The fewest pairs a churn leg runs whatever its driver asks (`LifecycleDriver.churnPairs`): the
 * warm-up and then more pairs than a /28 node share holds, so a leak that grows the stores per
 * pair still shows after the warm-up. A leak that shows only once a backend's block of 64 runs out
 * needs the default's 200 (the simulator's).
 */
const MIN_CHURN_PAIRS = 32;

/**
 * The churn leg, for shares too large to run out: one pod at a time is ADDed and DELeted
 * `CHURN_PAIRS` times (or the driver's `churnPairs`); after the first `CHURN_WARMUP` pairs (blocks, cursors and the like exist by
 * then) the cluster store and the node's ctx.local must not gain keys. A leak that marks addresses
 * taken under some other name (a quarantined block ordinal, a reservation re-keyed) makes the
 * backend claim more and more of its share, and shows here.
 */
async function churnLeg(
  d: LifecycleDriver,
  boundMs: number,
  node: string,
  tag: string,
  what = "DEL",
  release: (r: PodRef) => Promise<void> = (r) => d.detach(node, r),
): Promise<{ problems: string[]; sub: SubResult }> {
  const pairs = Math.max(MIN_CHURN_PAIRS, d.churnPairs ?? CHURN_PAIRS);
  const label = `churn: ${pairs} ADD/${what} pairs of one pod at a time do not grow the cluster store or ctx.local`;
  const keysOf = async (): Promise<Set<string>> => new Set((await d.stores(node)).keys());
  let baseline: Set<string> | undefined;
  for (let i = 0; i < pairs; i++) {
    if (i === CHURN_WARMUP) baseline = new Set((await quietSnapshot(d, boundMs, node)).keys());
    const id = cid(tag, i);
    try {
      await d.attach(node, d.attachment(id));
    } catch (err) {
      const p = [`ADD ${id}/eth0 on node ${node}, after ${i} ADD/${what} pairs of one pod at a time, failed with ${describeError(err)}: the earlier ${what}s did not release`];
      return { problems: p, sub: subOf(label, p) };
    }
    await release(ref(id));
  }
  // Within the convergence bound: a release the backend records asynchronously has landed by then.
  const p = await eventually(d, boundMs, async () => {
    const grown = [...(await keysOf())].filter((k) => !baseline!.has(k));
    return grown.length > 0
      ? [`after ${pairs} ADD/${what} pairs of one pod at a time on node ${node}, ${grown.length} key(s) appeared that were not there after the first ${CHURN_WARMUP}: ${summarizeProblems(grown, 3)}`]
      : [];
  });
  return { problems: p, sub: subOf(label, p) };
}

// ---------------------------------------------------------------- what the dataplane holds for one pod

/** The parts of a node's dataplane that belong to one pod: its interface, and the routes, neighbours, addresses and proxy ARP that name it. */
function footprint(dp: NodeDataplane, k: string): Record<string, string> | undefined {
  const pod = dp.pods.find((p) => p.key === k);
  if (!pod) return undefined;
  const hosts = new Set(pod.addresses.map((a) => a.split("/")[0]!));
  const isHostRouteToPod = (dst: string): boolean => {
    try {
      const p = Prefix.parse(dst);
      return p.length === p.bits && hosts.has(p.network);
    } catch {
      return false;
    }
  };
  const sorted = (xs: unknown[]): string => JSON.stringify(xs.map((x) => JSON.stringify(x)).sort());
  return {
    "pod interface": JSON.stringify(canonicalDataplane({ ...dp, pods: [pod] }).pods[0]),
    "host routes": sorted(dp.routes.filter((r) => r.dev === pod.hostIf || isHostRouteToPod(r.dst))),
    neighbours: sorted(dp.neighbours.filter((n) => n.dev === pod.hostIf || hosts.has(n.ip))),
    "host-side addresses": sorted(dp.addresses.filter((a) => a.dev === pod.hostIf)),
    "proxy ARP": String((dp.sysctls.proxyArp ?? []).includes(pod.hostIf)),
  };
}

/** What changed in a pod's footprint, in words. */
function footprintProblems(before: Record<string, string> | undefined, after: Record<string, string> | undefined, who: string, what: string): string[] {
  if (!before) return [`${who} was not in the dataplane before ${what}`];
  if (!after) return [`${what} removed ${who} from the dataplane`];
  const problems: string[] = [];
  for (const part of Object.keys(before)) {
    if (before[part] !== after[part]) problems.push(`${what} changed the ${part} of ${who}: ${before[part]} -> ${after[part]}`);
  }
  return problems;
}

/** How reasons name a pod made by `addPod`: "pod default/web (10.244.1.5) on node b-1". */
function podLabel(pod: PodAttachment, addresses: string[], node: string): string {
  return `pod ${pod.namespace ?? "default"}/${pod.podName ?? pod.containerId} (${addresses.join(", ") || "no address"}) on node ${node}`;
}

/** Waits (within the convergence bound) until the pod reaches and is reached by everything; returns what is still unreachable. */
async function reachableWithin(d: LifecycleDriver, boundMs: number, node: string, pod: PodAttachment, addresses: string[]): Promise<string[]> {
  const p = await eventually(d, boundMs, () => d.reachProblems(node, pod));
  return p.length === 0 ? [] : [`${podLabel(pod, addresses, node)} is not reachable both ways within ${boundMs} ms: ${summarizeProblems(p)}`];
}

/** Entries that name the pod's container id or one of its addresses. */
function ownedEntries(snap: Snapshot, pod: { containerId: string; addresses: string[] }, traceContainerId: boolean): Set<string> {
  const out = new Set<string>();
  if (traceContainerId) for (const k of entriesNaming(snap, pod.containerId)) out.add(k);
  for (const a of pod.addresses) for (const k of entriesNamingAddress(snap, a)) out.add(k);
  return out;
}

/**
 * Whether a live pod's records survived an operation on another attachment: every entry that named
 * its container id or address before still names it after.
 */
async function keptRecordsProblems(
  d: LifecycleDriver,
  node: string,
  before: Snapshot,
  pod: { containerId: string; addresses: string[]; key: string },
  traceContainerId: boolean,
  what: string,
): Promise<string[]> {
  const after = await d.stores(node);
  const had = ownedEntries(before, pod, traceContainerId);
  const has = ownedEntries(after, pod, traceContainerId);
  const lost = [...had].filter((k) => !has.has(k));
  return lost.length > 0 ? [`${what} removed the records of the live ${pod.key} (${pod.addresses.join(", ")}): ${summarizeProblems(lost, 2)} no longer name it`] : [];
}

/** A later ADD must not get any of `addresses` while `holder` holds them: asking for one fails, and fresh ADDs do not get them. */
async function notHandedOutProblems(d: LifecycleDriver, node: string, addresses: string[], holder: string, tag: string, what: string): Promise<string[]> {
  const problems: string[] = [];
  for (const [i, address] of addresses.entries()) {
    const asked = cid(`${tag}q`, i);
    try {
      await d.attach(node, { ...d.attachment(asked), requestedIps: [address] });
      problems.push(`after ${what}, ADD ${asked}/eth0 asking for ${address} succeeded, although ${holder} holds it`);
      await d.detach(node, ref(asked));
    } catch (err) {
      void err;
    }
  }
  for (let i = 0; i < 3; i++) {
    const id = cid(`${tag}n`, i);
    let result: AttachResult;
    try {
      result = await d.attach(node, d.attachment(id));
    } catch {
      break;
    }
    const got = addressesOf(result).filter((a) => addresses.includes(a));
    if (got.length > 0) problems.push(`after ${what}, ADD ${id}/eth0 got ${got.join(", ")}, which ${holder} holds`);
  }
  return problems;
}

/** "passed" or "failed" sub-result from a list of problems. */
function subOf(label: string, problems: string[], passedReason?: string): SubResult {
  return problems.length > 0 ? { label, status: "failed", reason: summarizeProblems(problems) } : { label, status: "passed", ...(passedReason ? { reason: passedReason } : {}) };
}

function outcome(problems: string[], subResults: SubResult[] = []): CheckOutcome {
  const extra = subResults.length > 0 ? { subResults } : {};
  return problems.length > 0 ? fail(summarizeProblems(problems), extra) : pass(extra);
}

// ---------------------------------------------------------------- the node's whole dataplane

/** JSON with object keys sorted, so an entry re-created with its fields in another order is the same entry. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(obj[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

/** One entry of a node's dataplane in words, as `ip` would print it where there is an `ip` form. */
function describeEntry(part: string, entry: unknown): string {
  const e = entry as Record<string, unknown>;
  const opt = (label: string, v: unknown): string => (v === undefined ? "" : ` ${label} ${String(v)}`);
  switch (part) {
    case "links":
      return `link ${String(e.name)} (${String(e.kind)})`;
    case "addresses":
      return `address ${String(e.cidr)} dev ${String(e.dev)}`;
    case "routes":
      return `route ${String(e.dst)}${opt("via", e.via)}${opt("dev", e.dev)}${opt("table", e.table)}${opt("metric", e.metric)}`;
    case "neighbours":
      return `neighbour ${String(e.ip)} dev ${String(e.dev)} lladdr ${String(e.mac)}`;
    case "fdb":
      return `fdb ${String(e.mac)} dev ${String(e.dev)} dst ${String(e.dst)}`;
    case "nat":
      return `NAT rule ${String(e.id)} (${String(e.kind)})`;
    case "filters":
      return `${String(e.direction)} filter of ${String(e.pod)}`;
    case "pods":
      return `pod interface ${String(e.key)} (host side ${String(e.hostIf)}, ${Array.isArray(e.addresses) ? e.addresses.join(", ") : ""})`;
    case "proxy ARP":
      return `proxy ARP on ${String(entry)}`;
    default:
      return `sysctl ${part} = ${stableJson(entry)}`;
  }
}

/** A dataplane as labelled entries: each table's entries, proxy ARP per interface, and every other sysctl. */
function dataplaneEntries(dp: NodeDataplane): Map<string, string[]> {
  const c = canonicalDataplane(dp);
  const out = new Map<string, string[]>();
  const add = (part: string, entry: unknown): void => {
    out.set(part, [...(out.get(part) ?? []), stableJson(entry)]);
  };
  for (const part of ["links", "addresses", "routes", "neighbours", "fdb", "nat", "filters", "pods"] as const) {
    out.set(part, []);
    for (const entry of c[part]) add(part, entry);
  }
  out.set("proxy ARP", []);
  for (const [name, value] of Object.entries(c.sysctls)) {
    if (name === "proxyArp") for (const dev of (value as string[] | undefined) ?? []) add("proxy ARP", dev);
    else if (value !== undefined) add(name, value);
  }
  return out;
}

/** Entries of `xs` left once each entry of `ys` has cancelled one equal entry (multisets). */
function multisetMinus(xs: string[], ys: string[]): string[] {
  const rest = new Map<string, number>();
  for (const y of ys) rest.set(y, (rest.get(y) ?? 0) + 1);
  return xs.filter((x) => {
    const n = rest.get(x) ?? 0;
    if (n === 0) return true;
    rest.set(x, n - 1);
    return false;
  });
}

/** Entries present only after (`added`) and only before (`removed`), as `part` + entry JSON. */
export interface EntryChanges {
  added: { part: string; entry: string }[];
  removed: { part: string; entry: string }[];
}

export function entryChanges(before: NodeDataplane, after: NodeDataplane): EntryChanges {
  const b = dataplaneEntries(before);
  const a = dataplaneEntries(after);
  const out: EntryChanges = { added: [], removed: [] };
  for (const part of new Set([...b.keys(), ...a.keys()])) {
    const was = b.get(part) ?? [];
    const now = a.get(part) ?? [];
    for (const entry of multisetMinus(now, was)) out.added.push({ part, entry });
    for (const entry of multisetMinus(was, now)) out.removed.push({ part, entry });
  }
  return out;
}

const changeKey = (c: { part: string; entry: string }): string => `${c.part}\u0000${c.entry}`;

/**
 * Every difference between a node's dataplane before and after, in words: entries present only
 * after ("… still present") and entries present only before ("… gone"). Entries are compared whole
 * (a route whose next hop changed is one of each), as multisets (a duplicate left behind counts).
 * `excused` are changes made by something else than the operation under test (an agent restart in
 * between): an entry the restart added is not counted as left behind, one it removed not as gone.
 */
export function dataplaneDifferences(before: NodeDataplane, after: NodeDataplane, excused?: EntryChanges): { leftBehind: string[]; gone: string[] } {
  const c = entryChanges(before, after);
  const excusedAdded = new Set((excused?.added ?? []).map(changeKey));
  const excusedRemoved = new Set((excused?.removed ?? []).map(changeKey));
  return {
    leftBehind: c.added.filter((x) => !excusedAdded.has(changeKey(x))).map((x) => describeEntry(x.part, JSON.parse(x.entry))),
    gone: c.removed.filter((x) => !excusedRemoved.has(changeKey(x))).map((x) => describeEntry(x.part, JSON.parse(x.entry))),
  };
}

/** `dataplaneDifferences` as problems: "<entry> still present on node n after <what>", "<entry> … gone". */
function dataplaneRestoreProblems(before: NodeDataplane, after: NodeDataplane, node: string, what: string, excused?: EntryChanges): string[] {
  const d = dataplaneDifferences(before, after, excused);
  return [
    ...d.leftBehind.map((x) => `${x} still present on node ${node} after ${what} (not there before the ADD)`),
    ...d.gone.map((x) => `${x}, there before the ADD, gone from node ${node} after ${what}`),
  ];
}

// ---------------------------------------------------------------- ADD results

/** Problems with the shape of an ADD result (CNI 1.x result: interfaces, ips with index, routes, dns). */
function resultShapeProblems(result: AttachResult, pod: PodAttachment, podRanges: string[]): string[] {
  const problems: string[] = [];
  const where = `ADD ${pod.containerId}/${pod.ifName}`;
  if (!Array.isArray(result.interfaces) || result.interfaces.length === 0) problems.push(`${where}: result has no interfaces`);
  if (!Array.isArray(result.ips) || result.ips.length === 0) problems.push(`${where}: result has no ips`);
  if (!Array.isArray(result.routes)) problems.push(`${where}: result.routes is not a list`);
  const interfaces = Array.isArray(result.interfaces) ? result.interfaces : [];
  interfaces.forEach((iface, i) => {
    if (typeof iface.name !== "string" || iface.name === "") problems.push(`${where}: interfaces[${i}] has no name`);
  });
  const container = interfaces.find((i) => i.name === pod.ifName && i.sandbox !== undefined && i.sandbox !== "");
  if (!container) problems.push(`${where}: no interface named ${pod.ifName} with a sandbox (the container side must carry sandbox = CNI_NETNS)`);
  else if (container.sandbox !== pod.netns) problems.push(`${where}: container interface sandbox is ${container.sandbox}, expected the netns ${pod.netns}`);
  const ranges = podRanges.map((r) => Prefix.parse(r));
  (Array.isArray(result.ips) ? result.ips : []).forEach((ip, i) => {
    let address: string;
    try {
      address = parseInterfaceAddress(ip.address).address;
    } catch {
      problems.push(`${where}: ips[${i}].address ${JSON.stringify(ip.address)} is not an address with prefix length (CIDR)`);
      return;
    }
    if (!ranges.some((r) => r.contains(address))) problems.push(`${where}: ips[${i}].address ${address} is outside the pod range(s)`);
    if (ip.interface !== undefined) {
      const target = interfaces[ip.interface];
      if (!Number.isInteger(ip.interface) || !target) problems.push(`${where}: ips[${i}].interface ${ip.interface} is not an index into interfaces`);
      else if (!target.sandbox || target.name !== pod.ifName) problems.push(`${where}: ips[${i}].interface points at ${target.name}, not at the container interface ${pod.ifName}`);
    }
    if (ip.gateway !== undefined && !isAddress(ip.gateway)) problems.push(`${where}: ips[${i}].gateway ${ip.gateway} is not an address`);
  });
  (Array.isArray(result.routes) ? result.routes : []).forEach((route, i) => {
    try {
      Prefix.parse(route.dst);
    } catch {
      problems.push(`${where}: routes[${i}].dst ${JSON.stringify(route.dst)} is not a CIDR`);
    }
    if (route.gw !== undefined && !isAddress(route.gw)) problems.push(`${where}: routes[${i}].gw ${route.gw} is not an address`);
  });
  if (result.dns !== undefined && (typeof result.dns !== "object" || result.dns === null)) problems.push(`${where}: dns is not an object`);
  return problems;
}

function isAddress(text: string): boolean {
  try {
    parseAddress(text);
    return true;
  } catch {
    return false;
  }
}

/** Canonical address text, or the input when it does not parse (the shape check names that). */
function canonAddress(text: string): string {
  try {
    const { family, value } = parseAddress(text);
    return Prefix.of(family, value, family === 4 ? 32 : 128).network;
  } catch {
    return text;
  }
}

/** Canonical interface address `a/len`, or the input when it does not parse. */
function canonIfAddress(text: string): string {
  try {
    const { address, prefix } = parseInterfaceAddress(text);
    return `${address}/${prefix.length}`;
  } catch {
    return text;
  }
}

function canonPrefix(text: string): string {
  try {
    return Prefix.parse(text, { allowHostBits: true }).toString();
  } catch {
    return text;
  }
}

function familyOf(address: string): 4 | 6 {
  return address.includes(":") ? 6 : 4;
}

function normalMac(mac: string): string {
  return mac.toLowerCase().replace(/-/g, ":");
}

/**
 * The ADD result against the node's dataplane entry for the attachment: the ips are the pod's
 * addresses (same prefix lengths); each gateway is the dataplane's gateway of that family and is
 * reachable from the pod (on its prefix, or covered by an on-link route in the pod); the routes are
 * the pod's routes (on-link helper routes may be left out); the container interface is named
 * ifName with sandbox = CNI_NETNS, its MAC and MTU (where given) are the pod interface's; the host
 * side is listed and every host-side name is one the node's dataplane knows.
 */
export function resultVsDataplaneProblems(result: AttachResult, pod: PodAttachment, dp: NodeDataplane, node: string): string[] {
  const where = `ADD ${key(pod)} on node ${node}`;
  const iface = dp.pods.find((p) => p.key === key(pod));
  if (!iface) return [`${where}: the pod is missing from the node's dataplane`];
  const problems: string[] = [];
  const ips = Array.isArray(result.ips) ? result.ips : [];
  const resultIps = ips.map((ip) => canonIfAddress(ip.address)).sort();
  const dpIps = iface.addresses.map(canonIfAddress).sort();
  if (JSON.stringify(resultIps) !== JSON.stringify(dpIps)) {
    problems.push(`${where}: result ips are ${resultIps.join(", ") || "none"}, the pod interface ${iface.hostIf} in the dataplane has ${dpIps.join(", ") || "none"}`);
  }
  const gatewayOf = new Map<4 | 6, string>();
  for (const g of iface.gateways ?? []) if (!gatewayOf.has(familyOf(g))) gatewayOf.set(familyOf(g), canonAddress(g));
  ips.forEach((ip, i) => {
    if (ip.gateway === undefined || !isAddress(ip.gateway)) return;
    const gw = canonAddress(ip.gateway);
    const dpGws = (iface.gateways ?? []).filter((g) => familyOf(g) === familyOf(gw)).map(canonAddress);
    if (!dpGws.includes(gw)) problems.push(`${where}: ips[${i}].gateway is ${gw}, the dataplane's gateway for the pod is ${dpGws.join(", ") || "none"}`);
    let prefix: Prefix | undefined;
    let own: string | undefined;
    try {
      const parsed = parseInterfaceAddress(ip.address);
      prefix = parsed.prefix;
      own = parsed.address;
    } catch {
      return;
    }
    if (gw === own) {
      problems.push(`${where}: ips[${i}].gateway ${gw} is the pod's own address`);
      return;
    }
    const onPrefix = prefix.length < prefix.bits && prefix.contains(gw);
    const onLink = iface.routes.some((r) => (r.scopeLink === true || r.via === undefined) && safeContains(r.dst, gw));
    if (!onPrefix && !onLink)
      problems.push(`${where}: gateway ${gw} is neither on the pod's prefix ${prefix.toString()} nor covered by an on-link route in the pod (routes: ${describeRoutes(iface)})`);
  });
  const routeKey = (dst: string, via: string | undefined): string => `${canonPrefix(dst)} via ${via === undefined ? "(on-link)" : canonAddress(via)}`;
  const podRoutes = new Set(iface.routes.filter((r) => r.scopeLink !== true).map((r) => routeKey(r.dst, r.via)));
  const onLinkRoutes = new Set(iface.routes.filter((r) => r.scopeLink === true).map((r) => routeKey(r.dst, r.via)));
  const resultRoutes = new Set<string>();
  for (const r of Array.isArray(result.routes) ? result.routes : []) {
    if (typeof r.dst !== "string") continue;
    // A route without gw goes through the default gateway of its family (CNI), or is on-link.
    const gw = gatewayOf.get(familyOf(r.dst));
    const candidates = r.gw !== undefined ? [routeKey(r.dst, r.gw)] : [...(gw ? [routeKey(r.dst, gw)] : []), routeKey(r.dst, undefined)];
    const hit = candidates.find((c) => podRoutes.has(c) || onLinkRoutes.has(c));
    if (hit) resultRoutes.add(hit);
    else problems.push(`${where}: result route ${candidates[0]} is not a route of the pod in the dataplane (${describeRoutes(iface)})`);
  }
  for (const r of podRoutes) if (!resultRoutes.has(r)) problems.push(`${where}: the pod's route ${r} is missing from the result`);
  const interfaces = Array.isArray(result.interfaces) ? result.interfaces : [];
  const container = interfaces.find((i) => i.name === pod.ifName && i.sandbox);
  if (iface.ifName !== pod.ifName || iface.containerId !== pod.containerId) problems.push(`${where}: the dataplane names the attachment ${iface.containerId}/${iface.ifName}`);
  if (iface.netns !== undefined && iface.netns !== pod.netns) problems.push(`${where}: the dataplane puts the pod in netns ${iface.netns}, the runtime gave ${pod.netns}`);
  if (container) {
    if (container.mac !== undefined && normalMac(container.mac) !== normalMac(iface.mac)) problems.push(`${where}: result MAC of ${pod.ifName} is ${container.mac}, the dataplane's is ${iface.mac}`);
    if (container.mtu !== undefined && container.mtu !== iface.mtu) problems.push(`${where}: result MTU of ${pod.ifName} is ${container.mtu}, the pod interface in the dataplane has ${iface.mtu}`);
  }
  const hostSide = interfaces.filter((i) => !i.sandbox);
  if (!hostSide.some((i) => i.name === iface.hostIf)) problems.push(`${where}: the result does not list the host side ${iface.hostIf} of the pod's veth`);
  const known = new Set([iface.hostIf, ...(iface.bridge ? [iface.bridge] : []), ...dp.links.map((l) => l.name)]);
  for (const i of hostSide) if (!known.has(i.name)) problems.push(`${where}: result host-side interface ${i.name} is no link of node ${node}'s dataplane`);
  return problems;
}

function safeContains(dst: string, address: string): boolean {
  try {
    return Prefix.parse(dst, { allowHostBits: true }).contains(address);
  } catch {
    return false;
  }
}

function describeRoutes(iface: PodInterface): string {
  return iface.routes.map((r) => `${r.dst}${r.via ? ` via ${r.via}` : ""}${r.scopeLink ? " scope link" : ""}`).join(", ") || "none";
}

// ---------------------------------------------------------------- the checks

/** What a section-B check knows besides its driver. */
export interface LifecycleContext {
  summary: { podRanges: string[]; convergenceMs: number };
  /** The backend (for `parseConfig`). */
  backend: { parseConfig(raw: unknown): unknown };
}

/** A section-B check written once: the rule judged over any `LifecycleDriver`. */
export interface LifecycleCheck extends CheckIdentity {
  judge(d: LifecycleDriver, ctx: LifecycleContext): Promise<CheckOutcome>;
}

/** Runs `check` on a driver opened by `open` (named by the check id), closing it afterwards. */
export async function runLifecycleCheck(check: LifecycleCheck, open: LifecycleDriverFactory, ctx: LifecycleContext): Promise<CheckOutcome> {
  const d = await open(check.id);
  try {
    return await check.judge(d, ctx);
  } finally {
    await d.close();
  }
}

/** Section B's checks that any driver runs, in the suite's order (result versions and error JSON are the executable's own: see `PLUGIN_CHECKS`). */
export const LIFECYCLE_CHECKS: readonly LifecycleCheck[] = Object.freeze([
  {
    id: "cni.add-result",
    section: "B",
    rule: "ADD returns the 1.x result shape, and its ips, gateway, routes, interfaces, sandbox, MAC and MTU are what the node's dataplane holds for the attachment.",
    source: `${SOURCES.cniAdd}; ${SOURCES.contract} (NodeDataplane.pods)`,
    required: true,
    async judge(d, ctx) {
      const problems: string[] = [];
      for (const node of d.nodes) {
        const pods = [d.attachment(`add-result-${node}-a`), d.attachment(`add-result-${node}-b`), d.attachment(`add-result-${node}-b`, "net1")];
        for (const pod of pods) {
          const result = await d.attach(node, pod);
          problems.push(...resultShapeProblems(result, pod, ctx.summary.podRanges).map((p) => `${p} on node ${node}`));
          problems.push(...resultVsDataplaneProblems(result, pod, await d.dataplane(node), node));
        }
      }
      return outcome(problems);
    },
  },
  {
    id: "cni.add-idempotent",
    section: "B",
    rule: "A second ADD for the same (containerId, ifName), also concurrent, reserves nothing more: the agent returns the same address; through the plugin (a daemon) it fails, as the interface exists (CNI SPEC ADD).",
    source: `${SOURCES.contract}; CNI SPEC.md section 'ADD'`,
    required: true,
    async judge(d) {
      const node = d.nodes[0];
      const pod = d.attachment("idem");
      const first = await d.attach(node, pod);
      const second = await d.attach(node, pod).catch((e: unknown) => ({ refused: e }));
      const problems: string[] = [];
      if ("refused" in second) {
        if (!d.daemon) problems.push(`second ADD of ${key(pod)} on node ${node} failed: ${describeError(second.refused)} (the agent's attach is idempotent)`);
      } else if (d.daemon) {
        problems.push(`second ADD of ${key(pod)} on node ${node} succeeded although its interface exists (CNI SPEC ADD: the plugin must return an error)`);
      } else if (JSON.stringify(first.ips) !== JSON.stringify(second.ips)) {
        problems.push(`second ADD of ${key(pod)} on node ${node} returned ips ${JSON.stringify(second.ips)}, the first ${JSON.stringify(first.ips)}`);
      }
      const settled = await d.attachConcurrently(node, [d.attachment("idem-concurrent"), d.attachment("idem-concurrent")]);
      const ok = settled.filter((s): s is PromiseFulfilledResult<AttachResult> => s.status === "fulfilled").map((s) => s.value);
      if (ok.length === 0)
        problems.push(`two concurrent ADDs of idem-concurrent/eth0 on node ${node} both failed: ${settled.map((s) => (s.status === "rejected" ? describeError(s.reason) : "")).join(" / ")}`);
      else if (ok.length === 2 && d.daemon) problems.push(`two concurrent ADDs of idem-concurrent/eth0 on node ${node} both succeeded: the later one must fail, its interface exists`);
      else if (ok.length === 2 && firstAddress(ok[0]!) !== firstAddress(ok[1]!)) {
        problems.push(`two concurrent ADDs of idem-concurrent/eth0 on node ${node} got ${firstAddress(ok[0]!)} and ${firstAddress(ok[1]!)}`);
      }
      const keys = await d.podKeys(node);
      for (const k of ["idem/eth0", "idem-concurrent/eth0"]) {
        const n = keys.filter((x) => x === k).length;
        if (n !== 1) problems.push(`the dataplane of node ${node} has ${n} interfaces for ${k} (expected 1)`);
      }
      if (keys.length !== 2) problems.push(`node ${node} has ${keys.length} pod interfaces after ADDs of 2 attachments: ${keys.join(", ")}`);
      return outcome(problems);
    },
  },
  {
    id: "cni.del-idempotent",
    section: "B",
    rule: "DEL succeeds for an attachment that exists, and again for the same attachment (second DEL), removing it from the dataplane.",
    source: SOURCES.cniDel,
    required: true,
    async judge(d) {
      const node = d.nodes[0];
      await d.attach(node, d.attachment("del-twice"));
      const problems: string[] = [];
      const e1 = await thrown(() => d.detach(node, ref("del-twice")));
      if (e1) problems.push(`first DEL of del-twice/eth0 on node ${node} threw ${describeError(e1)}`);
      const e2 = await thrown(() => d.detach(node, ref("del-twice")));
      if (e2) problems.push(`second DEL of del-twice/eth0 on node ${node} threw ${describeError(e2)}`);
      if ((await d.podKeys(node)).includes("del-twice/eth0")) problems.push(`after DEL, del-twice/eth0 is still in the dataplane of node ${node}`);
      return outcome(problems);
    },
  },
  {
    id: "cni.del-unknown",
    section: "B",
    rule: "DEL of an attachment the node never saw succeeds and touches nothing else.",
    source: SOURCES.cniDel,
    required: true,
    async judge(d) {
      const node = d.nodes[0];
      await d.attach(node, d.attachment("keep"));
      const before = await d.dataplane(node);
      const problems: string[] = [];
      for (const r of [ref("never-seen"), ref("keep", "eth1")]) {
        const err = await thrown(() => d.detach(node, r));
        if (err) problems.push(`DEL of unknown ${key(r)} on node ${node} threw ${describeError(err)}`);
      }
      const changed = dataplaneRestoreProblems(before, await d.dataplane(node), node, "DEL of unknown attachments");
      if (changed.length > 0) problems.push(`DEL of unknown attachments changed the dataplane of node ${node} (keep/eth0 must stay): ${summarizeProblems(changed, 2)}`);
      return outcome(problems);
    },
  },
  {
    id: "cni.del-restores-dataplane",
    section: "B",
    rule: "On a node that already holds a pod, ADD of another pod and its DEL leave no trace in the node's dataplane (nor in its peer's): once the desired state has settled, links, addresses, routes, neighbours, FDB, NAT, filters, sysctls and pod interfaces are what they were before the ADD.",
    source: `${SOURCES.cniDel} (DEL removes what ADD set up for the attachment); ${SOURCES.contract} (NodeDataplane)`,
    required: true,
    async judge(d, ctx) {
      const [n1, n2] = d.nodes;
      const names = [n1, n2];
      const bound = ctx.summary.convergenceMs;
      // Both nodes hold a pod first, so first-pod effects (a claimed block, a bridge, routes to the
      // other node's pods) are part of the state before the ADD, not something the DEL must undo.
      await d.attach(n1, d.attachment(cid("resident", 0)));
      await d.attach(n2, d.attachment(cid("resident", 1)));
      const problems: string[] = [];
      const rounds: { id: string; restart: boolean }[] = [
        { id: cid("transient", 0), restart: false },
        { id: cid("transient", 1), restart: true },
      ];
      const dataplanes = async (): Promise<Map<string, NodeDataplane>> => new Map(await Promise.all(names.map(async (n) => [n, await d.dataplane(n)] as const)));
      for (const round of rounds) {
        const settledBefore = await d.settle(bound);
        if (!settledBefore.settled) return fail(`the desired state of the cluster did not settle within ${bound} ms before ADD ${round.id}/eth0 on node ${n1}: ${settledBefore.problem ?? ""}`);
        // Every node's dataplane: the pod's node above all, and peers that learnt a route to it.
        const before = await dataplanes();
        const what = `DEL of ${round.id}/eth0${round.restart ? " by an agent restarted since its ADD" : ""}`;
        const addErr = await thrown(() => d.attach(n1, d.attachment(round.id)));
        if (addErr) return fail(`ADD ${round.id}/eth0 on node ${n1} threw ${describeError(addErr)}`);
        await d.settle(bound);
        // What the restart itself changes (with the pod still there) is not the DEL's to undo: a
        // backend may re-create a device with a new MAC on start; dyn.restart judges that.
        const byRestart = new Map<string, EntryChanges>();
        if (round.restart) {
          const held = await dataplanes();
          await d.restartAgent(n1);
          await d.settle(bound);
          const now = await dataplanes();
          for (const n of names) byRestart.set(n, entryChanges(held.get(n)!, now.get(n)!));
        }
        const delErr = await thrown(() => d.detach(n1, ref(round.id)));
        if (delErr) {
          problems.push(`${what} on node ${n1} threw ${describeError(delErr)}`);
          continue;
        }
        const left = async (): Promise<string[]> => {
          const now = await dataplanes();
          return names.flatMap((n) => dataplaneRestoreProblems(before.get(n)!, now.get(n)!, n, what, byRestart.get(n)));
        };
        // Within the bound, the settled state must be the one before the ADD.
        const v0 = d.now();
        let p: string[] = [];
        for (;;) {
          const s = await d.settle(Math.max(1, bound - (d.now() - v0)));
          p = await left();
          if (p.length === 0) break;
          const elapsed = d.now() - v0;
          if (elapsed >= bound || !s.settled) {
            break;
          }
          await d.passTime(Math.min(Math.max(10, Math.floor(bound / 20)), bound - elapsed));
          if (d.now() - v0 === elapsed) break;
        }
        problems.push(...p);
      }
      return outcome(problems);
    },
  },
  {
    id: "cni.del-releases",
    section: "B",
    rule: "DEL releases the address, also after an agent restart, observed with or without requested IPs: no record of the attachment remains in the cluster or node-local store, a requested address is handed out again, a full node takes exactly as many new pods as were deleted, and ADD/DEL churn does not grow the stores.",
    source: `${SOURCES.cniDel}; host-local 'DEL frees files matching the pair'`,
    required: true,
    budgetMs: 120_000,
    async judge(d, ctx) {
      const node = d.nodes[0];
      const bound = ctx.summary.convergenceMs;
      const problems: string[] = [];
      const subs: SubResult[] = [];
      await d.attach(node, d.attachment(cid("holder", 0)));
      // Trace leg: each deleted pod is followed by a kept one, so a "last reserved" cursor moves on.
      const traced: string[] = [];
      const released: string[][] = [];
      for (let i = 0; i < 3; i++) {
        const before = await d.stores(node);
        const victim = cid("victim", i);
        const addresses = addressesOf(await d.attach(node, d.attachment(victim)));
        if (addresses.length === 0) return fail(`ADD ${victim}/eth0 on node ${node} returned no address`);
        await d.attach(node, d.attachment(cid("keeper", i)));
        // The last one is deleted by a restarted agent (its record restored from ctx.local).
        if (i === 2) await d.restartAgent(node);
        await d.detach(node, ref(victim));
        if ((await d.podKeys(node)).includes(`${victim}/eth0`)) traced.push(`after DEL, ${victim}/eth0 (${addresses.join(", ")}) is still in the dataplane of node ${node}`);
        traced.push(...(await traceProblems(d, bound, node, [{ ref: ref(victim), addresses, before, traceContainerId: true }], "DEL")));
        released.push(addresses);
      }
      subs.push(subOf("trace: no record of a deleted attachment remains in the cluster store or ctx.local", traced));
      problems.push(...traced);
      // Requested-IP leg.
      const requested: string[] = [];
      let unsupported = false;
      for (const [i, addresses] of released.entries()) {
        const r = await requestAgain(d, node, addresses, cid("again", i), `DEL of ${cid("victim", i)}/eth0`);
        if (r === "unsupported") {
          unsupported = true;
          break;
        }
        if (r !== "ok") requested.push(r);
      }
      subs.push(
        unsupported
          ? { label: "requested IP: a released address is handed out again", status: "not applicable", reason: "the backend does not honour requestedIps" }
          : subOf("requested IP: a released address is handed out again", requested),
      );
      problems.push(...requested);
      // Exhaustion leg.
      const exhaustion = await exhaustionLeg(
        d,
        node,
        "fill",
        "DEL",
        async (victims) => {
          for (const v of victims) await d.detach(node, v.ref);
        },
        () => d.restartAgent(node),
      );
      subs.push(exhaustion.sub);
      problems.push(...exhaustion.problems);
      // Churn leg, on the other node.
      const churn = await churnLeg(d, bound, d.nodes[1], "churn");
      subs.push(churn.sub);
      problems.push(...churn.problems);
      return outcome(problems, subs);
    },
  },
  {
    id: "cni.failed-add-leaks-nothing",
    section: "B",
    rule: "A failed ADD (requested address held or outside every range, node share exhausted, node cut off from the store) leaves nothing behind: cluster store, the node's ctx.local and dataplane unchanged, and a later DEL succeeds.",
    source: `${SOURCES.cniAdd}; host-local/bridge tests 'failed ADD leaves no reservation'`,
    required: true,
    budgetMs: 120_000,
    async judge(d, ctx) {
      const node = d.nodes[0];
      const held = await d.attach(node, d.attachment("holder"));
      const heldAddress = firstAddress(held);
      if (!heldAddress) return fail(`ADD holder/eth0 on node ${node} returned no address: ${JSON.stringify(held).slice(0, 160)}`);
      const problems: string[] = [];
      const subs: SubResult[] = [];
      const tryFailing = async (label: string, pod: PodAttachment, expectCode?: number): Promise<string[]> => {
        const out: string[] = [];
        await flushAsync();
        const storesBefore = storeParts(await quietSnapshot(d, ctx.summary.convergenceMs, node));
        const dpBefore = await d.dataplane(node);
        const err = await thrown(() => d.attach(node, pod));
        if (!err) return [`ADD ${key(pod)} on node ${node} ${label} succeeded; it must fail`];
        if (expectCode !== undefined && errorCode(err) !== expectCode) out.push(`ADD ${key(pod)} on node ${node} ${label} failed with ${describeError(err)}; expected code ${expectCode}`);
        await flushAsync();
        const snap = await d.stores(node);
        const storesAfter = storeParts(snap);
        if (storesAfter.cluster !== storesBefore.cluster) out.push(`failed ADD ${key(pod)} (${label}) left a change in the cluster store`);
        if (storesAfter.local !== storesBefore.local) out.push(`failed ADD ${key(pod)} (${label}) left a change in node ${node}'s local store (ctx.local)`);
        const changed = dataplaneRestoreProblems(dpBefore, await d.dataplane(node), node, `the failed ADD ${key(pod)}`);
        if (changed.length > 0) out.push(`failed ADD ${key(pod)} (${label}) changed the dataplane of node ${node}: ${summarizeProblems(changed, 2)}`);
        const left = entriesNaming(snap, pod.containerId);
        if (left.length > 0) out.push(`failed ADD ${key(pod)} (${label}) left ${summarizeProblems(left, 2)} naming it`);
        const delErr = await thrown(() => d.detach(node, ref(pod.containerId, pod.ifName)));
        if (delErr) out.push(`DEL after the failed ADD ${key(pod)} threw ${describeError(delErr)}`);
        return out;
      };
      const attempts: { label: string; pod: PodAttachment }[] = [
        { label: `asking for ${heldAddress}, held by holder/eth0`, pod: { ...d.attachment("fail-held"), requestedIps: [heldAddress] } },
        { label: "asking for 192.0.2.77, outside every pod range", pod: { ...d.attachment("fail-outside"), requestedIps: ["192.0.2.77"] } },
      ];
      for (const attempt of attempts) {
        const p = await tryFailing(attempt.label, attempt.pod);
        subs.push(subOf(`failed ADD ${attempt.label}`, p));
        problems.push(...p);
      }
      const exhaustedLabel = "failed ADD on a node whose share is exhausted (code 100)";
      const filled = await fillNode(d, node, "fill");
      if (filled.problems.length > 0) {
        subs.push(subOf(exhaustedLabel, filled.problems));
        problems.push(...filled.problems);
      } else if (!filled.exhausted) {
        subs.push({ label: exhaustedLabel, status: "not applicable", reason: `node ${node}'s share did not run out within ${FILL_LIMIT} ADDs` });
      } else {
        const p = await tryFailing("on the exhausted node", d.attachment("fail-exhausted"), 100);
        subs.push(subOf(exhaustedLabel, p, `the share ran out after ${filled.held.length + 1} pods`));
        problems.push(...p);
      }
      // A node cut off from the cluster store: ADD fails (code 11) where it needs the store; what
      // the agent does meanwhile (keep-alives, re-claims) may change the stores, so only traces of
      // the failed attachment count here.
      const cutLabel = "failed ADD while the node is cut off from the cluster store (code 11)";
      const cutPod = d.attachment("fail-cut-off");
      for (const room of filled.held.slice(0, 2)) await d.detach(node, room.ref);
      if (!d.setStoreCutOff) {
        subs.push({ label: cutLabel, status: "not applicable", reason: `the ${d.name} driver cannot cut one node off from the cluster store` });
      } else {
        await d.setStoreCutOff(node, true);
        const cutErr = await thrown(() => d.attach(node, cutPod));
        await d.setStoreCutOff(node, false);
        if (!cutErr) {
          subs.push({ label: cutLabel, status: "not applicable", reason: `ADD on node ${node} succeeded without the cluster store (its ADD path needs only node-local state)` });
          await d.detach(node, ref(cutPod.containerId));
        } else {
          const failedWith = `failed with ${describeError(cutErr)}`;
          const p = await eventually(d, ctx.summary.convergenceMs, async () => {
            const left = entriesNaming(await d.stores(node), cutPod.containerId);
            const out = left.length > 0 ? [`failed ADD ${key(cutPod)} (${describeError(cutErr)}) left ${summarizeProblems(left, 2)} naming it`] : [];
            if ((await d.podKeys(node)).includes(key(cutPod))) out.push(`failed ADD ${key(cutPod)} (${describeError(cutErr)}) left the pod in the dataplane of node ${node}`);
            return out;
          });
          const delErr = await thrown(() => d.detach(node, ref(cutPod.containerId)));
          if (delErr) p.push(`DEL after the failed ADD ${key(cutPod)} threw ${describeError(delErr)}`);
          subs.push(subOf(cutLabel, p, failedWith));
          problems.push(...p);
        }
      }
      const checkErr = await thrown(() => d.check(node, ref("holder")));
      if (checkErr) problems.push(`after the failed ADDs, CHECK of holder/eth0 on node ${node} fails: ${describeError(checkErr)}`);
      return outcome(problems, subs);
    },
  },
  {
    id: "cni.check-after-add",
    section: "B",
    rule: "CHECK right after ADD passes silently.",
    source: SOURCES.cniCheck,
    required: true,
    async judge(d) {
      const problems: string[] = [];
      for (const node of d.nodes) {
        for (const id of [`chk-${node}-a`, `chk-${node}-b`]) {
          await d.attach(node, d.attachment(id));
          const err = await thrown(() => d.check(node, ref(id)));
          if (err) problems.push(`CHECK of ${id}/eth0 right after ADD on node ${node} failed: ${describeError(err)}`);
        }
      }
      return outcome(problems);
    },
  },
  {
    id: "cni.check-detects-missing",
    section: "B",
    rule: "CHECK fails (code 3 or 106) for an attachment that was never made or whose reservation is gone.",
    source: SOURCES.cniCheck,
    required: true,
    async judge(d) {
      const node = d.nodes[0];
      const problems: string[] = [];
      const expectFailure = async (r: PodRef, why: string): Promise<void> => {
        const err = await thrown(() => d.check(node, r));
        if (!err) problems.push(`CHECK of ${key(r)} on node ${node} passed although ${why}`);
        else if (errorCode(err) !== 3 && errorCode(err) !== 106) problems.push(`CHECK of ${key(r)} (${why}) failed with ${describeError(err)}; expected code 3 or 106`);
      };
      await expectFailure(ref("never-added"), "it was never added");
      await d.attach(node, d.attachment("gone"));
      await d.detach(node, ref("gone"));
      await expectFailure(ref("gone"), "it was deleted");
      return outcome(problems);
    },
  },
  {
    id: "cni.gc",
    section: "B",
    rule: "GC releases exactly the attachments not listed as valid, on that node only, and their addresses are free again (no record left; a full node takes exactly as many new pods as GC released; ADD/GC churn does not grow the stores).",
    source: SOURCES.cniGc,
    required: true,
    budgetMs: 120_000,
    async judge(d, ctx) {
      const [n1, n2] = d.nodes;
      const problems: string[] = [];
      const subs: SubResult[] = [];
      const addr = new Map<string, string[]>();
      const beforeB = new Map<string, Snapshot>();
      for (const id of ["gc-a", "gc-b", "gc-c"]) {
        if (id === "gc-b") beforeB.set(id, await d.stores(n1));
        addr.set(id, addressesOf(await d.attach(n1, d.attachment(id))));
      }
      await d.attach(n2, d.attachment("gc-other"));
      const err = await thrown(() => d.gc(n1, [ref("gc-a"), ref("gc-c")]));
      if (err) problems.push(`GC on node ${n1} threw ${describeError(err)}`);
      const keys = await d.podKeys(n1);
      if (keys.includes("gc-b/eth0")) problems.push(`GC on node ${n1} kept gc-b/eth0, which was not listed as valid`);
      for (const id of ["gc-a", "gc-c"]) {
        if (!keys.includes(`${id}/eth0`)) problems.push(`GC on node ${n1} released ${id}/eth0, which was listed as valid`);
        const e = await thrown(() => d.check(n1, ref(id)));
        if (e) problems.push(`after GC, CHECK of the valid ${id}/eth0 fails: ${describeError(e)}`);
      }
      if (!(await d.podKeys(n2)).includes("gc-other/eth0")) problems.push(`GC on node ${n1} removed gc-other/eth0 from node ${n2}`);
      const b = addr.get("gc-b");
      const live: PodRef[] = [ref("gc-a"), ref("gc-c")];
      if (b && b.length > 0) {
        const traced = await traceProblems(d, ctx.summary.convergenceMs, n1, [{ ref: ref("gc-b"), addresses: b, before: beforeB.get("gc-b")!, traceContainerId: true }], "GC");
        subs.push(subOf("trace: no record of the collected attachment remains in the cluster store or ctx.local", traced));
        problems.push(...traced);
        try {
          const got = addressesOf(await d.attach(n1, { ...d.attachment("gc-again-b"), requestedIps: b }));
          live.push(ref("gc-again-b"));
          const p = b.every((a) => got.includes(a)) ? [] : [`after GC released gc-b/eth0, asking for ${b.join(", ")} on node ${n1} gave ${got.join(", ") || "no address"}`];
          subs.push(subOf("requested IP: the collected address is handed out again", p));
          problems.push(...p);
        } catch (e) {
          if (requestedIpsUnsupported(e)) subs.push({ label: "requested IP: the collected address is handed out again", status: "not applicable", reason: "the backend does not honour requestedIps" });
          else {
            const p = `after GC released gc-b/eth0, its address ${b.join(", ")} could not be handed out again: ${describeError(e)}`;
            subs.push(subOf("requested IP: the collected address is handed out again", [p]));
            problems.push(p);
          }
        }
      }
      const e0 = await thrown(() => d.gc(n2, []));
      if (e0) problems.push(`GC with an empty valid list on node ${n2} threw ${describeError(e0)}`);
      const leftOn2 = await d.podKeys(n2);
      if (leftOn2.length !== 0) problems.push(`GC with an empty valid list left ${leftOn2.join(", ")} on node ${n2}`);
      // Churn leg on the other node, emptied by the GC above: each pod is collected by a GC that lists nothing.
      const churn = await churnLeg(d, ctx.summary.convergenceMs, n2, "gcchurn", "GC", () => d.gc(n2, []));
      subs.push(churn.sub);
      problems.push(...churn.problems);
      const exhaustion = await exhaustionLeg(d, n1, "gcfill", "GC", async (victims, filled) => {
        const valid = [...live, ...filled.filter((x) => !victims.includes(x)).map((x) => x.ref)];
        const e = await thrown(() => d.gc(n1, valid));
        if (e) problems.push(`GC of ${victims.length} pods on the full node ${n1} threw ${describeError(e)}`);
      });
      subs.push(exhaustion.sub);
      problems.push(...exhaustion.problems);
      return outcome(problems, subs);
    },
  },
  {
    id: "cni.status",
    section: "B",
    rule: "STATUS says ready on a started agent, and not ready (50 or 51, with a reason) before start and after stop.",
    source: SOURCES.cniStatus,
    required: true,
    async judge(d) {
      const node = d.nodes[0];
      const problems: string[] = [];
      const s = await d.status(node);
      if (!s.ready) problems.push(`STATUS of the started agent on node ${node} says not ready: ${s.reason ?? "(no reason)"}`);
      for (const { what, status } of await d.statusesNotRunning(node)) {
        if (status.ready || (status.code !== 50 && status.code !== 51) || !status.reason) {
          problems.push(`STATUS of ${what} is ${JSON.stringify(status)}; expected ready false, code 50 or 51 and a reason`);
        }
      }
      const fresh = await d.status(node);
      if (!fresh.ready) problems.push(`STATUS after restart on node ${node} says not ready: ${fresh.reason ?? "(no reason)"}`);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.error-codes",
    section: "B",
    rule: "Failures are CNI errors with the right code: 50 for ADD before start (11 where the agent is a daemon the plugin cannot reach), 101 for a held requested address, 3/106 for CHECK of an unknown attachment, 7 for input that is not a config.",
    source: `${SOURCES.cniErrors}; ${SOURCES.contract}`,
    required: true,
    async judge(d, ctx) {
      const problems: string[] = [];
      const expectCode = (what: string, err: unknown, codes: number[]): void => {
        if (!err) problems.push(`${what} succeeded; expected an error with code ${codes.join(" or ")}`);
        else if (!codes.includes(errorCode(err) ?? -1)) problems.push(`${what} threw ${describeError(err)}; expected code ${codes.join(" or ")}`);
      };
      const node = d.nodes[0];
      const early = await d.attachNotRunning(d.nodes[1], d.attachment("early"));
      expectCode(early.what, early.error, d.daemon ? [50, 11] : [50]);
      for (const input of [null, 42]) expectCode(`parseConfig(${JSON.stringify(input)})`, await thrown(() => ctx.backend.parseConfig(input)), [7]);
      const held = firstAddress(await d.attach(node, d.attachment("err-holder")));
      if (held) {
        const err = await thrown(() => d.attach(node, { ...d.attachment("err-taker"), requestedIps: [held] }));
        if (!err) problems.push(`ADD asking for ${held}, held by err-holder/eth0 on node ${node}, succeeded`);
        else if (!requestedIpsUnsupported(err) && errorCode(err) !== 101) problems.push(`ADD asking for the held ${held} threw ${describeError(err)}; expected code 101`);
      }
      expectCode(`CHECK of an unknown attachment on node ${node}`, await thrown(() => d.check(node, ref("err-unknown"))), [3, 106]);
      return problems.length > 0 ? fail(summarizeProblems(problems)) : pass();
    },
  },
  {
    id: "cni.sandbox-recreate",
    section: "B",
    rule: "When a pod's sandbox is re-created (same namespace/name, new container id, ADDed before the old sandbox is DELeted), the old DEL leaves the new pod's address, interface, routes and reachability intact, and releases the old address.",
    source: `${SOURCES.cniDel} (DEL names one attachment: containerId + ifName); Kubernetes CRI (a sandbox re-created under a new container id)`,
    required: true,
    async judge(d, ctx) {
      const [n1, n2] = d.nodes;
      const bound = ctx.summary.convergenceMs;
      const problems: string[] = [];
      await d.addPod(n1, d.attachment(cid("peer-a", 0), "eth0", { podName: "peer-a" }));
      await d.addPod(n2, d.attachment(cid("peer-b", 0), "eth0", { podName: "peer-b" }));
      const before = await d.stores(n1);
      const oldPod = d.attachment(cid("sandbox-old", 0), "eth0", { namespace: "shop", podName: "web" });
      const newPod = d.attachment(cid("sandbox-new", 0), "eth0", { namespace: "shop", podName: "web" });
      const oldAddresses = await d.addPod(n1, oldPod);
      const newAddresses = await d.addPod(n1, newPod);
      if (oldAddresses.length === 0 || newAddresses.length === 0) {
        return fail(`the sandboxes of pod shop/web on node ${n1} got no address: old ${podLabel(oldPod, oldAddresses, n1)}, new ${podLabel(newPod, newAddresses, n1)}`);
      }
      const shared = newAddresses.filter((a) => oldAddresses.includes(a));
      if (shared.length > 0) problems.push(`the old and the new sandbox of pod shop/web on node ${n1} both hold ${shared.join(", ")}`);
      problems.push(...(await reachableWithin(d, bound, n1, newPod, newAddresses)));
      const printBefore = footprint(await d.dataplane(n1), key(newPod));
      const kept = await quietSnapshot(d, bound, n1);
      const what = `DEL of the old sandbox ${key(oldPod)}`;
      const err = await thrown(() => d.removePod(n1, oldPod));
      if (err) return fail(`${what} on node ${n1} threw ${describeError(err)}`);
      await d.passTime(bound);
      const newLabel = `the new sandbox ${podLabel(newPod, newAddresses, n1)}`;
      problems.push(...footprintProblems(printBefore, footprint(await d.dataplane(n1), key(newPod)), newLabel, what));
      const checkErr = await thrown(() => d.check(n1, ref(newPod.containerId)));
      if (checkErr) problems.push(`after ${what}, CHECK of the new sandbox ${key(newPod)} fails: ${describeError(checkErr)}`);
      problems.push(...(await keptRecordsProblems(d, n1, kept, { containerId: newPod.containerId, addresses: newAddresses, key: key(newPod) }, true, what)));
      problems.push(...(await reachableWithin(d, bound, n1, newPod, newAddresses)));
      if ((await d.podKeys(n1)).includes(key(oldPod))) problems.push(`after ${what}, the old sandbox is still in the dataplane of node ${n1}`);
      problems.push(...(await traceProblems(d, bound, n1, [{ ref: ref(oldPod.containerId), addresses: oldAddresses, before, traceContainerId: true }], "DEL")));
      const again = await requestAgain(d, n1, oldAddresses, cid("sandbox-again", 0), what);
      if (again !== "ok" && again !== "unsupported") problems.push(again);
      problems.push(...(await notHandedOutProblems(d, n1, newAddresses, `the new sandbox ${key(newPod)}`, "sandbox-probe", what)));
      return outcome(problems);
    },
  },
  {
    id: "cni.del-after-reuse",
    section: "B",
    rule: "A DEL repeated after the attachment's address went to another pod leaves that pod alone: it stays in the dataplane with its address, CHECK passes, its records stay, and no later ADD gets the address.",
    source: `${SOURCES.cniDel} (DEL is idempotent and names one attachment); ${SOURCES.k8sIpam}`,
    required: true,
    budgetMs: 120_000,
    async judge(d, ctx) {
      const node = d.nodes[0];
      const first = cid("reuse-first", 0);
      const address = firstAddress(await d.attach(node, d.attachment(first)));
      if (!address) return fail(`ADD ${first}/eth0 on node ${node} returned no address`);
      await d.detach(node, ref(first));
      // Hand the address to a second pod: ask for it, else fill the node until it comes back.
      let second: string | undefined;
      let how = "";
      const asked = cid("reuse-second", 0);
      try {
        const r = await d.attach(node, { ...d.attachment(asked), requestedIps: [address] });
        if (firstAddress(r) === address) {
          second = asked;
          how = "asked for as a requested IP";
        } else return fail(`after DEL of ${first}/eth0 on node ${node}, ADD ${asked}/eth0 asking for ${address} got ${firstAddress(r) ?? "no address"}`);
      } catch (err) {
        if (!requestedIpsUnsupported(err)) return fail(`after DEL of ${first}/eth0 on node ${node}, ADD ${asked}/eth0 asking for ${address} failed: ${describeError(err)}`);
      }
      if (second === undefined) {
        for (let i = 0; i < FILL_LIMIT && second === undefined; i++) {
          const id = cid("reuse-fill", i);
          let r: AttachResult;
          try {
            r = await d.attach(node, d.attachment(id));
          } catch (err) {
            if (errorCode(err) === 100) return fail(`after DEL of ${first}/eth0, node ${node} ran out of addresses after ${i} more ADDs without handing out ${address} again: it stayed reserved`);
            return fail(`ADD ${id}/eth0 on node ${node} failed with ${describeError(err)} while filling the node`);
          }
          if (firstAddress(r) === address) {
            second = id;
            how = `handed out again after ${i + 1} ADD(s) that filled the node`;
          }
        }
      }
      if (second === undefined)
        return notApplicable(`the backend refuses requestedIps and did not hand ${address} out again within ${FILL_LIMIT} ADDs on node ${node}, so no other pod could be given it`);
      const holder = `${second}/eth0`;
      const printBefore = footprint(await d.dataplane(node), holder);
      const kept = await quietSnapshot(d, ctx.summary.convergenceMs, node);
      const problems: string[] = [];
      const what = `the repeated DEL of ${first}/eth0 (its address ${address} now held by ${holder}, ${how})`;
      const err = await thrown(() => d.detach(node, ref(first)));
      if (err) problems.push(`${what} on node ${node} threw ${describeError(err)}`);
      await d.passTime(ctx.summary.convergenceMs);
      const after = await d.dataplane(node);
      problems.push(...footprintProblems(printBefore, footprint(after, holder), holder, what));
      const entry = after.pods.find((p) => p.key === holder);
      if (entry && !entry.addresses.some((a) => a.split("/")[0] === address)) problems.push(`after ${what}, ${holder} has ${entry.addresses.join(", ")} in the dataplane, not ${address}`);
      const checkErr = await thrown(() => d.check(node, ref(second)));
      if (checkErr) problems.push(`after ${what}, CHECK of ${holder} on node ${node} fails: ${describeError(checkErr)}`);
      problems.push(...(await keptRecordsProblems(d, node, kept, { containerId: second, addresses: [address], key: holder }, true, what)));
      problems.push(...(await notHandedOutProblems(d, node, [address], holder, "reuse-probe", what)));
      return outcome(problems);
    },
  },
  {
    id: "cni.multi-interface",
    section: "B",
    rule: "A container ADDed on eth0 and net1 gets one address per interface; DEL of net1 releases net1's address and leaves eth0's address, interface, routes, records and reachability intact.",
    source: `${SOURCES.cniAdd} (one attachment per containerId + ifName); ${SOURCES.cniDel}`,
    required: true,
    async judge(d, ctx) {
      const [n1, n2] = d.nodes;
      const bound = ctx.summary.convergenceMs;
      const problems: string[] = [];
      await d.addPod(n1, d.attachment(cid("peer-a", 0), "eth0", { podName: "peer-a" }));
      await d.addPod(n2, d.attachment(cid("peer-b", 0), "eth0", { podName: "peer-b" }));
      const id = cid("multi", 0);
      const eth0 = d.attachment(id, "eth0", { podName: "multi" });
      const net1 = d.attachment(id, "net1", { podName: "multi" });
      const eth0Addresses = await d.addPod(n1, eth0);
      const beforeNet1 = await d.stores(n1);
      const net1Addresses = await d.addPod(n1, net1);
      await d.addPod(n1, d.attachment(cid("after-multi", 0), "eth0", { podName: "after-multi" }));
      if (eth0Addresses.length === 0 || net1Addresses.length === 0)
        return fail(`container ${id} on node ${n1} got no address on eth0 (${eth0Addresses.join(", ")}) or net1 (${net1Addresses.join(", ")})`);
      const shared = eth0Addresses.filter((a) => net1Addresses.includes(a));
      if (shared.length > 0) problems.push(`eth0 and net1 of container ${id} on node ${n1} share ${shared.join(", ")}: each interface needs its own address`);
      const keys = await d.podKeys(n1);
      for (const p of [eth0, net1]) {
        if (!keys.includes(key(p))) problems.push(`${key(p)} is missing from the dataplane of node ${n1}`);
        const e = await thrown(() => d.check(n1, ref(id, p.ifName)));
        if (e) problems.push(`CHECK of ${key(p)} on node ${n1} after both ADDs fails: ${describeError(e)}`);
      }
      problems.push(...(await reachableWithin(d, bound, n1, eth0, eth0Addresses)));
      const printBefore = footprint(await d.dataplane(n1), key(eth0));
      const kept = await quietSnapshot(d, bound, n1);
      const what = `DEL of ${key(net1)}`;
      const err = await thrown(() => d.removePod(n1, net1));
      if (err) return fail(`${what} on node ${n1} threw ${describeError(err)}`);
      await d.passTime(bound);
      if ((await d.podKeys(n1)).includes(key(net1))) problems.push(`after ${what}, net1 is still in the dataplane of node ${n1}`);
      problems.push(...footprintProblems(printBefore, footprint(await d.dataplane(n1), key(eth0)), podLabel(eth0, eth0Addresses, n1), what));
      const checkErr = await thrown(() => d.check(n1, ref(id, "eth0")));
      if (checkErr) problems.push(`after ${what}, CHECK of ${key(eth0)} fails: ${describeError(checkErr)}`);
      problems.push(...(await keptRecordsProblems(d, n1, kept, { containerId: id, addresses: eth0Addresses, key: key(eth0) }, false, what)));
      problems.push(...(await reachableWithin(d, bound, n1, eth0, eth0Addresses)));
      problems.push(...(await traceProblems(d, bound, n1, [{ ref: ref(id, "net1"), addresses: net1Addresses, before: beforeNet1, traceContainerId: false }], "DEL")));
      const again = await requestAgain(d, n1, net1Addresses, cid("multi-again", 0), what);
      if (again !== "ok" && again !== "unsupported") problems.push(again);
      problems.push(...(await notHandedOutProblems(d, n1, eth0Addresses, key(eth0), "multi-probe", what)));
      return outcome(problems);
    },
  },
] satisfies LifecycleCheck[]);

/** The executable-only checks, as the simulator reports them: "not run". */
const pluginChecks: CheckDefinition[] = [
  {
    id: "cni.result-versions",
    section: "B",
    rule: "The plugin answers in the requested result version (0.3.0 to 1.1.0) and negotiates 1.0.0 in a conflist with the reference plugins.",
    source: SOURCES.cniVersions,
    required: true,
    gate: () => ({ status: "not run", reason: PLUGIN_NEEDED }),
    async run() {
      return notRun(PLUGIN_NEEDED);
    },
  },
  {
    id: "cni.plugin-error-json",
    section: "B",
    rule: "Errors are the spec's JSON on stdout with the right code and a non-zero exit status.",
    source: SOURCES.cniErrors,
    required: true,
    gate: () => ({ status: "not run", reason: PLUGIN_NEEDED }),
    async run() {
      return notRun(PLUGIN_NEEDED);
    },
  },
];

/** A section-B check on the simulator's driver. */
function onSimulator(c: LifecycleCheck): CheckDefinition {
  return {
    id: c.id,
    section: c.section,
    rule: c.rule,
    source: c.source,
    required: c.required,
    ...(c.budgetMs !== undefined ? { budgetMs: c.budgetMs } : {}),
    run: (env: CheckEnv) => runLifecycleCheck(c, (salt) => simLifecycleDriver(env, salt), env),
  };
}

/** Section B in the suite's order, on the simulator: cni.add-result, the executable's own checks, then the rest. */
export const lifecycleChecks: CheckDefinition[] = [onSimulator(LIFECYCLE_CHECKS[0]!), ...pluginChecks, ...LIFECYCLE_CHECKS.slice(1).map(onSimulator)];
