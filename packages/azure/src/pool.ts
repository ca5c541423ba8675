/**
 * The dynamic pool's arithmetic (Azure CNS's pool monitor, v1 and v2, and cnikit's reclaim):
 * pure functions, no I/O, no clock. The agent calls `nodeTarget` every time its demand or its
 * NodeNetworkConfig status changes, writes `requestedIPCount` to its NNC spec and marks `release`
 * idle addresses PendingRelease (`NodeIpState.markForRelease`, which uses `releasePick`).
 *
 * Exported API:
 *  - `clampScaler(s)`        Azure v1's clamps on a scaler read from a status (cns/ipampool/monitor.go
 *                            clampScaler): maxIPCount < 1 → 250, batch in [1, maxIPCount],
 *                            requestThresholdPercent in [1, 100], release ≥ request + 100.
 *  - `minFree(s)`, `maxFree(s)` batch × percent / 100 rounded half up (monitor.go
 *                            CalculateMinFreeIPs / CalculateMaxFreeIPs: `int64(b*p/100 + .5)`,
 *                            "Half of odd batches are rounded up!"); done here in integers.
 *  - `collapsedScaler(s)`    subnet exhausted: batch 1, minFree 1, maxFree 2 (monitor.go reconcile's
 *                            exhausted override), expressed as 1 / 100 % / 200 %, maxIPCount kept.
 *  - `v1Step(...)`           one reconcile of Azure's v1 monitor (reactive, one batch per step).
 *  - `v2Target(...)`         Azure's v2 request, B × ceil(mf + U / B), capped at maxIPCount.
 *  - `releasePick(...)`      which idle addresses to give back (never one in use; deterministic).
 *  - `nodeTarget(...)`       the one call the agent makes: v1 / v2 / collapsed / reclaimIdle.
 *  - `compareAddresses(a, b)` numeric address order (ascending), for sorting.
 *
 * The request/release contract this assumes of the controller: it adds addresses only while
 * requestedIPCount exceeds what the node holds beyond ipsNotInUse, and removes only the addresses
 * ipsNotInUse lists; a request below the holding (v1 or reclaimIdle false, shrinking one batch per
 * call) therefore just means "more releases will follow".
 *
 * Decisions (DESIGN.md "Dynamic pool" has the reasoning and the sources):
 *  - Primary IPs are not modelled: our NNC status carries pod addresses only (no network-container
 *    primary IP), so requestedIPCount counts pod addresses and is a batch multiple as it stands.
 *  - "free" has two meanings in Azure v1, both kept: the increase test uses requested − inUse
 *    (addresses the node will have once the request is honoured), the decrease test uses
 *    held − inUse − pendingRelease (addresses the node has and could give back now).
 *  - Under collapse with reclaimIdle the target is demand + 1 = v2Target(collapsed): one below the
 *    collapsed maxFree (2), because Azure releases at free ≥ maxFree, so demand + 2 would not be a
 *    fixed point. Both monitors agree there.
 */
import { parseAddress } from "@cnikit/core";
import type { ScalerSettings } from "./config.ts";

/** Azure's per-node default cap (cns/ipampool DefaultMaxIPs), used when a status carries < 1. */
export const DEFAULT_MAX_IP_COUNT = 250;

/** Azure v1's clamps, applied to any scaler read from a store (our config refuses such values). */
export function clampScaler(s: ScalerSettings): ScalerSettings {
  const maxIPCount = s.maxIPCount < 1 ? DEFAULT_MAX_IP_COUNT : Math.floor(s.maxIPCount);
  const batchSize = Math.min(Math.max(Math.floor(s.batchSize), 1), maxIPCount);
  const requestThresholdPercent = Math.min(Math.max(Math.floor(s.requestThresholdPercent), 1), 100);
  const releaseThresholdPercent = Math.max(Math.floor(s.releaseThresholdPercent), requestThresholdPercent + 100);
  return { batchSize, requestThresholdPercent, releaseThresholdPercent, maxIPCount };
}

/** round(batch × percent / 100), halves up, in integers (Azure's float `+ .5` then truncation). */
function percentOfBatch(batch: number, percent: number): number {
  return Math.floor((batch * percent + 50) / 100);
}

/** Request more when the node's future free count falls below this. */
export function minFree(s: ScalerSettings): number {
  return percentOfBatch(s.batchSize, s.requestThresholdPercent);
}

/** Release a batch when the node's current free count reaches this (Azure tests `>=`). */
export function maxFree(s: ScalerSettings): number {
  return percentOfBatch(s.batchSize, s.releaseThresholdPercent);
}

/** The scaler in force while the subnet is exhausted: batch 1, minFree 1, maxFree 2. */
export function collapsedScaler(s: ScalerSettings): ScalerSettings {
  return { batchSize: 1, requestThresholdPercent: 100, releaseThresholdPercent: 200, maxIPCount: s.maxIPCount };
}

export interface V1StepInput {
  /** The scaler in force (clamped here). */
  scaler: ScalerSettings;
  /** The node's current spec.requestedIPCount. */
  requested: number;
  /** Addresses the status assigns to the node (every state, PendingRelease included). */
  assigned: number;
  /** Addresses assigned to pods. */
  inUse: number;
  /** Addresses already given back (in ipsNotInUse) and still in the status. Default 0. */
  pendingRelease?: number;
}

export interface PoolStep {
  /** The request to write. */
  requested: number;
  /** How many more idle addresses to mark PendingRelease now. */
  release: number;
}

/**
 * One reconcile of Azure's v1 monitor (cns/ipampool/monitor.go reconcile):
 *  - requested − inUse < minFree → raise the request to the next batch multiple
 *    (requested + batch − requested mod batch), capped at maxIPCount; nothing at the cap;
 *  - else held − inUse − pendingRelease ≥ maxFree → give back `requested mod batch` (or a whole
 *    batch when aligned) idle addresses and lower the request by as many;
 *  - else unchanged.
 */
export function v1Step(input: V1StepInput): PoolStep {
  const s = clampScaler(input.scaler);
  const { requested, inUse } = input;
  const pendingRelease = input.pendingRelease ?? 0;
  if (requested - inUse < minFree(s)) {
    const next = Math.min(s.maxIPCount, requested + s.batchSize - (requested % s.batchSize));
    return next > requested ? { requested: next, release: 0 } : { requested, release: 0 };
  }
  const idle = input.assigned - inUse - pendingRelease;
  if (idle >= maxFree(s)) {
    const decrease = requested % s.batchSize || s.batchSize;
    const release = Math.max(0, Math.min(decrease, idle, requested - inUse));
    return { requested: requested - release, release };
  }
  return { requested, release: 0 };
}

export interface V2TargetInput {
  /** The scaler in force (clamped here). */
  scaler: ScalerSettings;
  /** U: addresses pods use plus ADDs waiting for one. */
  demand: number;
}

/**
 * Azure's v2 request (cns/ipampool/v2/monitor.go calculateTargetIPCountOrMax, docs/feature/ipammath):
 * B × ceil(mf + U / B) with mf = requestThresholdPercent / 100, capped at maxIPCount. Computed
 * exactly in integers: ceil((percent × B + 100 × U) / (100 × B)).
 */
export function v2Target(input: V2TargetInput): number {
  const s = clampScaler(input.scaler);
  const b = s.batchSize;
  const num = s.requestThresholdPercent * b + 100 * Math.max(0, input.demand);
  const den = 100 * b;
  return Math.min(s.maxIPCount, b * Math.ceil(num / den));
}

export interface ReleasePickInput {
  /** Every address the node holds (the status's assignment). */
  assigned: Iterable<string>;
  /** Addresses pods hold: never picked. */
  inUse: Iterable<string>;
  /** Addresses already PendingRelease: not picked again. */
  pendingRelease: Iterable<string>;
  /** Addresses not yet programmed (PendingProgramming): picked first, nothing to undo for them. */
  unprogrammed?: Iterable<string>;
  /** How many to pick (fewer come back when fewer are idle). */
  count: number;
}

/** Numeric order of two addresses of one family (ascending), for sort. */
export function compareAddresses(a: string, b: string): number {
  const x = parseAddress(a).value;
  const y = parseAddress(b).value;
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareAddressesDesc(a: string, b: string): number {
  return compareAddresses(b, a);
}

/**
 * Which idle addresses to give back: never one in use or already pending; PendingProgramming ones
 * first (Azure's MarkIPAsPendingRelease does the same, in random map order), then the highest
 * addresses first. Deterministic from the state alone (no history, so the same after a restart),
 * and the controller hands out the lowest free addresses, so giving back the highest keeps the
 * subnet's used part compact.
 */
export function releasePick(input: ReleasePickInput): string[] {
  if (input.count <= 0) return [];
  const excluded = new Set<string>([...input.inUse, ...input.pendingRelease]);
  const unprogrammed = new Set<string>(input.unprogrammed ?? []);
  const idle = [...new Set(input.assigned)].filter((a) => !excluded.has(a));
  const first = idle.filter((a) => unprogrammed.has(a)).sort(compareAddressesDesc);
  const rest = idle.filter((a) => !unprogrammed.has(a)).sort(compareAddressesDesc);
  return [...first, ...rest].slice(0, input.count);
}

export interface NodeTargetInput {
  /** The scaler from the node's NNC status (clamped here). */
  scaler: ScalerSettings;
  /** `v2`: demand-driven, one step; `v1`: Azure's reactive monitor, one batch per call. */
  monitor: "v1" | "v2";
  /** cnikit's own: under collapse (and always with v2) give back every idle address beyond the target at once. */
  reclaimIdle: boolean;
  /** The status says the subnet is exhausted: the collapsed scaler is in force. */
  exhausted: boolean;
  /** The node's current spec.requestedIPCount (v1 steps from it; v2 does not need it). */
  requested: number;
  /** Addresses the status assigns to the node, every state. */
  assigned: number;
  /** Of those, already PendingRelease. Default 0. */
  pendingRelease?: number;
  /** Addresses pods hold. */
  inUse: number;
  /** ADDs waiting for an address. */
  waiting: number;
}

export interface NodeTarget {
  /** Write this to spec.requestedIPCount. Never above maxIPCount (when inUse fits), never below inUse. */
  requestedIPCount: number;
  /** Mark this many more idle addresses PendingRelease now (never more than are idle). */
  release: number;
}

/**
 * The node's request and release for its current state.
 *  - v1, unless collapsed with reclaimIdle: Azure's `v1Step` with the scaler in force (collapsed
 *    when exhausted); waiting ADDs are not seen (Azure v1 reacts to addresses in use only).
 *  - otherwise the target is `v2Target` over demand = inUse + waiting with the scaler in force
 *    (collapsed: demand + 1); the request is the target at once; idle addresses beyond it are
 *    released all at once with reclaimIdle, else at most one batch per call.
 */
export function nodeTarget(input: NodeTargetInput): NodeTarget {
  const clamped = clampScaler(input.scaler);
  const s = input.exhausted ? collapsedScaler(clamped) : clamped;
  const pendingRelease = input.pendingRelease ?? 0;
  const held = input.assigned - pendingRelease;
  const idle = Math.max(0, held - input.inUse);
  const floor = (n: number): number => Math.max(input.inUse, n);

  if (input.monitor === "v1" && !(input.exhausted && input.reclaimIdle)) {
    const step = v1Step({
      scaler: s,
      requested: Math.min(input.requested, s.maxIPCount),
      assigned: input.assigned,
      inUse: input.inUse,
      pendingRelease,
    });
    return { requestedIPCount: floor(step.requested), release: Math.min(step.release, idle) };
  }

  const want = floor(v2Target({ scaler: s, demand: input.inUse + input.waiting }));
  if (want >= held) return { requestedIPCount: want, release: 0 };
  const excess = Math.min(held - want, idle);
  return { requestedIPCount: want, release: input.reclaimIdle ? excess : Math.min(excess, s.batchSize) };
}
