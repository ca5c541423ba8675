/**
 * What the controller and the nodes share in the cluster store: the store half of Azure's
 * NodeNetworkConfig (NNC), one per node, split as Kubernetes splits spec and status so each key
 * has one writer, and the cluster's subnet states.
 *
 *  - `/cnikit/azure/nnc/<node>/spec` — written by the node: how many addresses it wants
 *    (`requestedIPCount`), which it gives back (`ipsNotInUse`), its demand (pods in use and ADDs
 *    waiting) and the NNC version it has programmed (`programmedVersion`).
 *  - `/cnikit/azure/nnc/<node>/status` — written by the controller: the addresses (or blocks)
 *    assigned to the node, the scaler in force (collapsed when the subnet is exhausted), the state
 *    (`Updating` / `Updated` / `Error` with a reason, e.g. the sizing refusal), and a version that
 *    grows with every change of the assignment.
 *  - `/cnikit/azure/subnets/<cidr with / as _>` — written by the controller: per subnet the usable
 *    count, what is reserved, the exact headroom, and the cluster-wide `exhausted` flag
 *    (Azure's ClusterSubnetState).
 *
 * In classic mode the assignment is also the fabric's secondary addresses of the node, which the
 * node reads from its own member record (the contract's rule: no side channel for what the fabric
 * gave); the NNC status still carries the state and the refusal text.
 *
 * Every decoder validates and returns undefined for a record it cannot read (a half-written or
 * foreign value): the reader then logs and waits for the writer's next version.
 */
import { Prefix, parseAddress } from "@cnikit/core";
import type { AzureMode, ScalerSettings } from "./config.ts";

export const AZURE_PREFIX = "/cnikit/azure/";
export const NNC_PREFIX = `${AZURE_PREFIX}nnc/`;
export const SUBNET_STATE_PREFIX = `${AZURE_PREFIX}subnets/`;

/** The node's half of its NodeNetworkConfig. */
export interface NncSpec {
  /** Addresses the node wants assigned in all (dynamic); for classic / static-block / overlay: 0. */
  requestedIPCount: number;
  /** Assigned addresses the node gives back (PendingRelease on the node; idle, never a pod's). */
  ipsNotInUse: string[];
  /** Pods using an address now plus ADDs waiting for one (the v2 monitor's U). */
  demand: number;
  /** The highest status `version` whose assignment the node has programmed into its dataplane. */
  programmedVersion: number;
}

/** The controller's state of one node's NodeNetworkConfig (Azure's status.status). */
export type NncState = "Updating" | "Updated" | "Error";

/** The controller's half of a node's NodeNetworkConfig. */
export interface NncStatus {
  mode: AzureMode;
  state: NncState;
  /** Why `Error` (e.g. "Pre-allocated IPs 310 exceeds IPs available 251: ..."), or a note. */
  reason?: string;
  /** Grows with every change of `assignedIPs` / `blocks`. */
  version: number;
  /** Individual addresses assigned to the node (classic: its secondary addresses; dynamic). Sorted. */
  assignedIPs: string[];
  /** Prefixes assigned to the node (static-block: its /28s; overlay: its /24). Sorted. */
  blocks: string[];
  /** The scaler in force for this node (collapsed to 1 / 1 / 2 when the subnet is exhausted). */
  scaler: ScalerSettings;
  /** The pod subnet (or node subnet, classic) the assignment comes from. */
  subnet: string;
  /** The subnet could not serve every request (Azure's ClusterSubnetState.exhausted). */
  subnetExhausted: boolean;
}

/** One subnet as the controller sees it (headroom reporting, Azure's ClusterSubnetState). */
export interface SubnetState {
  cidr: string;
  /** Addresses Azure lets you use: size − 5. */
  usable: number;
  /** Nodes' primary addresses and gateways inside it. */
  nodeAddresses: number;
  /** Addresses assigned to nodes for pods. */
  assigned: number;
  /** usable − nodeAddresses − assigned. */
  free: number;
  /** Classic: how many more nodes of 1 + maxPods fit (with the surge kept free); else absent. */
  nodesThatFit?: number;
  exhausted: boolean;
}

export function nncSpecKey(node: string): string {
  return `${NNC_PREFIX}${node}/spec`;
}

export function nncStatusKey(node: string): string {
  return `${NNC_PREFIX}${node}/status`;
}

/** The node a `/cnikit/azure/nnc/<node>/(spec|status)` key belongs to, and which half. */
export function parseNncKey(key: string): { node: string; half: "spec" | "status" } | undefined {
  if (!key.startsWith(NNC_PREFIX)) return undefined;
  const rest = key.slice(NNC_PREFIX.length);
  const slash = rest.lastIndexOf("/");
  if (slash <= 0) return undefined;
  const half = rest.slice(slash + 1);
  if (half !== "spec" && half !== "status") return undefined;
  return { node: rest.slice(0, slash), half };
}

export function subnetStateKey(cidr: string): string {
  return `${SUBNET_STATE_PREFIX}${cidr.replace("/", "_")}`;
}

const isCount = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0;
function parses(parse: () => unknown): boolean {
  try {
    parse();
    return true;
  } catch {
    return false;
  }
}
const isAddress = (a: unknown): a is string => typeof a === "string" && parses(() => parseAddress(a));
const isCidr = (a: unknown): a is string => typeof a === "string" && parses(() => Prefix.parse(a));
const isAddressList = (x: unknown): x is string[] => Array.isArray(x) && x.every(isAddress);
const isPrefixList = (x: unknown): x is string[] => Array.isArray(x) && x.every(isCidr);

function isScaler(x: unknown): x is ScalerSettings {
  if (typeof x !== "object" || x === null) return false;
  const s = x as Record<string, unknown>;
  return isCount(s.batchSize) && isCount(s.requestThresholdPercent) && isCount(s.releaseThresholdPercent) && isCount(s.maxIPCount);
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function encodeNncSpec(spec: NncSpec): string {
  return JSON.stringify({ ...spec, ipsNotInUse: [...spec.ipsNotInUse].sort() });
}

export function decodeNncSpec(text: string): NncSpec | undefined {
  const o = parseObject(text);
  if (!o || !isCount(o.requestedIPCount) || !isAddressList(o.ipsNotInUse) || !isCount(o.demand) || !isCount(o.programmedVersion)) return undefined;
  return { requestedIPCount: o.requestedIPCount, ipsNotInUse: o.ipsNotInUse, demand: o.demand, programmedVersion: o.programmedVersion };
}

export function encodeNncStatus(status: NncStatus): string {
  return JSON.stringify({ ...status, assignedIPs: [...status.assignedIPs].sort(), blocks: [...status.blocks].sort() });
}

const MODES: readonly string[] = ["classic", "dynamic", "static-block", "overlay"];
const STATES: readonly string[] = ["Updating", "Updated", "Error"];

export function decodeNncStatus(text: string): NncStatus | undefined {
  const o = parseObject(text);
  if (!o) return undefined;
  if (typeof o.mode !== "string" || !MODES.includes(o.mode) || typeof o.state !== "string" || !STATES.includes(o.state)) return undefined;
  if (!isCount(o.version) || !isAddressList(o.assignedIPs) || !isPrefixList(o.blocks) || !isScaler(o.scaler)) return undefined;
  if (!isCidr(o.subnet) || typeof o.subnetExhausted !== "boolean") return undefined;
  if (o.reason !== undefined && typeof o.reason !== "string") return undefined;
  const out: NncStatus = {
    mode: o.mode as AzureMode,
    state: o.state as NncState,
    version: o.version,
    assignedIPs: o.assignedIPs,
    blocks: o.blocks,
    scaler: o.scaler,
    subnet: o.subnet,
    subnetExhausted: o.subnetExhausted,
  };
  if (typeof o.reason === "string") out.reason = o.reason;
  return out;
}

export function encodeSubnetState(state: SubnetState): string {
  return JSON.stringify(state);
}

export function decodeSubnetState(text: string): SubnetState | undefined {
  const o = parseObject(text);
  if (!o || !isCidr(o.cidr)) return undefined;
  if (!isCount(o.usable) || !isCount(o.nodeAddresses) || !isCount(o.assigned) || !isCount(o.free) || typeof o.exhausted !== "boolean") return undefined;
  if (o.nodesThatFit !== undefined && !isCount(o.nodesThatFit)) return undefined;
  const out: SubnetState = { cidr: o.cidr, usable: o.usable, nodeAddresses: o.nodeAddresses, assigned: o.assigned, free: o.free, exhausted: o.exhausted };
  if (o.nodesThatFit !== undefined) out.nodesThatFit = o.nodesThatFit as number;
  return out;
}
