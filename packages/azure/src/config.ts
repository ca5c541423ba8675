/**
 * The Azure-like backend's configuration: an AKS-like network profile (YAML or JSON), parsed with
 * Azure's defaults and rules. See `parseAzureConfig` below and DESIGN.md for every field, default
 * and source.
 */
import { parseAllDocuments } from "yaml";
import { ConfigError, Prefix } from "@cnikit/core";
import { AZURE_MIN_SUBNET_LENGTH, STATIC_BLOCK_SIZE, formatCount, staticBlocksPerNode, usableAddresses, usableStaticBlocks } from "./sizing.ts";

/** The backend's name (registry, store prefixes, messages). */
export const AZURE = "azure";

/** How pods get addresses, derived from `networkPluginMode` and `podIpAllocationMode`. */
export type AzureMode = "classic" | "dynamic" | "static-block" | "overlay";

/** AKS's `podIpAllocationMode` values; `classic` stands for "no pod subnet" (Node Subnet). */
export type PodIpAllocationMode = "classic" | "DynamicIndividual" | "StaticBlock";

/** The dynamic pool's scaler (NodeNetworkConfig status.scaler). */
export interface ScalerSettings {
  /** Unit of growth and shrink (Azure 16). */
  batchSize: number;
  /** Request more when free < batchSize × this / 100 (Azure 50). */
  requestThresholdPercent: number;
  /** Release a batch when free ≥ batchSize × this / 100 (Azure 150). */
  releaseThresholdPercent: number;
  /** Per-node cap on assigned addresses (Azure 250). */
  maxIPCount: number;
}

export interface AzureConfig {
  /** Always `azure`. */
  networkPlugin: "azure";
  /** `none` (pods on the VNet) or `overlay` (pods on `podCidr`, a /24 per node). */
  networkPluginMode: "none" | "overlay";
  /** For `networkPluginMode: none`: classic (no pod subnet), DynamicIndividual or StaticBlock. */
  podIpAllocationMode: PodIpAllocationMode;
  /** Derived from the two above. */
  mode: AzureMode;
  /** Pods per node, 10..250 (default 30); immutable once a node pool exists. */
  maxPods: number;
  /** The node subnet (canonical CIDR), when given: every node must sit in it. */
  vnetSubnet?: string;
  /** The pod subnet (canonical CIDR): required for dynamic and static-block. */
  podSubnet?: string;
  /** Overlay pod CIDR (canonical; default 10.244.0.0/16); a /24 per node. */
  podCidr: string;
  /** Dynamic pool scaler (defaults 16 / 50 / 150 / 250). */
  scaler: ScalerSettings;
  /** Masquerade pod traffic leaving the VNet (pod ranges and node subnets) to the node address. */
  natOutgoing: boolean;
  /** Upgrade-surge nodes the sizing keeps room for (AKS's max surge, default 1). */
  maxSurge: number;
  /** Pod interface MTU (default: the underlay's, 1500; no encapsulation). */
  mtu?: number;
  /**
   * cnikit's own (not AKS's): when the subnet runs short, the controller collapses every node's
   * scaler at once and nodes give back idle addresses down to the collapsed maxFree, so a node
   * that needs addresses gets them while the subnet has any (default true). False behaves as Azure:
   * one batch released per node per reconcile.
   */
  reclaimIdle: boolean;
  /**
   * cnikit's own: `v2` (default) sizes the request from demand in one step,
   * B × ceil(mf + U / B); `v1` is Azure's reactive monitor (one batch per round trip), kept for
   * side-by-side benchmarks.
   */
  poolMonitor: "v1" | "v2";
}

// ---------------------------------------------------------------------------------------------
// The parser.
//
// Input: an object, or YAML/JSON text holding exactly one document. Two shapes:
//  - flat: every field below at the top level;
//  - AKS's ARM shape: `{ networkProfile: {...}, agentPoolProfile: {...} }`, where networkProfile
//    holds the cluster-wide fields (networkPlugin, networkPluginMode, podCidr, natOutgoing, mtu)
//    and agentPoolProfile the pool's (maxPods, vnetSubnet, podSubnet, podIpAllocationMode, scaler,
//    maxSurge, reclaimIdle, poolMonitor). Subnets are CIDRs here, not ARM resource IDs. A field in
//    the wrong profile is refused naming the profile it belongs to; errors name the nested path
//    (`agentPoolProfile.maxPods`, `agentPoolProfile.scaler.batchSize`).
// Mixing the shapes, or any field not listed, is refused listing the known ones.
// ---------------------------------------------------------------------------------------------

/** Azure's defaults (AKS's docs, cited in README.md "Config") and cnikit's own for the fields Azure does not have. */
export const AZURE_DEFAULTS = Object.freeze({
  networkPlugin: "azure",
  networkPluginMode: "none",
  maxPods: 30,
  podCidr: "10.244.0.0/16",
  scaler: Object.freeze({ batchSize: 16, requestThresholdPercent: 50, releaseThresholdPercent: 150, maxIPCount: 250 }),
  natOutgoing: true,
  maxSurge: 1,
  reclaimIdle: true,
  poolMonitor: "v2",
} as const);

/** `maxPods` bounds (Azure CNI: 10..250, overlay too). */
export const MAX_PODS_RANGE = Object.freeze({ min: 10, max: 250 });
/** `mtu` bounds: the IPv4 minimum and Azure's largest (no encapsulation, so the underlay's). */
export const MTU_RANGE = Object.freeze({ min: 576, max: 9000 });
/** `maxSurge` upper bound: AKS's node limit per cluster. */
export const MAX_SURGE_LIMIT = 5000;
/** The overlay gives each node a /24 of `podCidr`. */
export const OVERLAY_NODE_PREFIX_LENGTH = 24;

/** Fields of AKS's networkProfile (cluster-wide) and cnikit's `mtu`. */
export const NETWORK_PROFILE_FIELDS = ["networkPlugin", "networkPluginMode", "podCidr", "natOutgoing", "mtu"] as const;
/** Fields of AKS's agentPoolProfile (per pool) and cnikit's `reclaimIdle` / `poolMonitor`. */
export const AGENT_POOL_PROFILE_FIELDS = ["maxPods", "vnetSubnet", "podSubnet", "podIpAllocationMode", "podIPAllocationMode", "scaler", "maxSurge", "reclaimIdle", "poolMonitor"] as const;
/** Fields of `scaler`. */
export const SCALER_FIELDS = ["batchSize", "requestThresholdPercent", "releaseThresholdPercent", "maxIPCount"] as const;

const NETWORK_PROFILE = "networkProfile";
const AGENT_POOL_PROFILE = "agentPoolProfile";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function fail(field: string, rule: string, value?: unknown): never {
  throw new ConfigError(value === undefined ? { component: AZURE, field, rule } : { component: AZURE, field, rule, value });
}

/** The one document of YAML/JSON text, or the object itself. */
function document(input: unknown): Obj {
  let value = input;
  if (typeof input === "string") {
    const docs = parseAllDocuments(input);
    const list = Array.isArray(docs) ? docs : [];
    list.forEach((d, i) => {
      if (d.errors.length > 0) fail(`(document ${i + 1})`, `is not valid YAML/JSON: ${d.errors[0]!.message}`);
    });
    if (list.length !== 1) fail("(config)", `must hold exactly one YAML/JSON document (an AKS network profile), found ${list.length}`);
    value = list[0]!.toJS();
  }
  if (!isObj(value)) fail("(config)", "must be an AKS-like network profile: an object, or YAML/JSON text of one", value);
  return value;
}

interface RawField {
  value: unknown;
  /** The path errors name: `maxPods` or `agentPoolProfile.maxPods`. */
  field: string;
}

const has = (list: readonly string[], key: string): boolean => list.includes(key);

/** Flattens either shape into field name → raw value and path; refuses unknown and misplaced fields. */
function fieldsOf(doc: Obj): Map<string, RawField> {
  const out = new Map<string, RawField>();
  const nested = NETWORK_PROFILE in doc || AGENT_POOL_PROFILE in doc;
  if (!nested) {
    const known = [...NETWORK_PROFILE_FIELDS, ...AGENT_POOL_PROFILE_FIELDS];
    for (const [key, value] of Object.entries(doc)) {
      if (!has(known, key)) fail(key, `unknown field; known: ${known.join(", ")} (or AKS's nested ${NETWORK_PROFILE} / ${AGENT_POOL_PROFILE})`);
      out.set(key, { value, field: key });
    }
    return out;
  }
  for (const key of Object.keys(doc)) {
    if (key !== NETWORK_PROFILE && key !== AGENT_POOL_PROFILE) {
      fail(
        key,
        `unknown field next to ${NETWORK_PROFILE} / ${AGENT_POOL_PROFILE}; in AKS's nested shape the top level holds only ${NETWORK_PROFILE} and ${AGENT_POOL_PROFILE} (put ${key} inside one of them, or use the flat shape)`,
      );
    }
  }
  const sections = [
    { name: NETWORK_PROFILE, fields: NETWORK_PROFILE_FIELDS as readonly string[], other: AGENT_POOL_PROFILE, otherFields: AGENT_POOL_PROFILE_FIELDS as readonly string[] },
    { name: AGENT_POOL_PROFILE, fields: AGENT_POOL_PROFILE_FIELDS as readonly string[], other: NETWORK_PROFILE, otherFields: NETWORK_PROFILE_FIELDS as readonly string[] },
  ];
  for (const s of sections) {
    const section = doc[s.name];
    if (section === undefined) continue;
    if (!isObj(section)) fail(s.name, "must be an object", section);
    for (const [key, value] of Object.entries(section)) {
      const field = `${s.name}.${key}`;
      if (has(s.otherFields, key)) fail(field, `belongs in ${s.other}, not ${s.name}`);
      if (!has(s.fields, key)) fail(field, `unknown field; known in ${s.name}: ${s.fields.join(", ")}`);
      out.set(key, { value, field });
    }
  }
  return out;
}

function int(raw: RawField | undefined, min: number, max: number, dflt: number): number;
function int(raw: RawField | undefined, min: number, max: number): number | undefined;
function int(raw: RawField | undefined, min: number, max: number, dflt?: number): number | undefined {
  if (raw === undefined) return dflt;
  const v = raw.value;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) fail(raw.field, `must be an integer from ${min} to ${max}`, v);
  return v;
}

function bool(raw: RawField | undefined, dflt: boolean): boolean {
  if (raw === undefined) return dflt;
  if (typeof raw.value !== "boolean") fail(raw.field, "must be true or false", raw.value);
  return raw.value;
}

/** An IPv4 CIDR, host bits zero, canonical. */
function ipv4Cidr(raw: RawField): Prefix {
  const p = Prefix.parse(raw.value, { component: AZURE, field: raw.field });
  if (p.family !== 4) fail(raw.field, "must be an IPv4 CIDR (Azure CNI pod and node subnets are IPv4 here)", raw.value);
  return p;
}

/** An Azure subnet: IPv4, canonical, no longer than /29 (Azure's smallest subnet). */
function azureSubnet(raw: RawField): Prefix {
  const p = ipv4Cidr(raw);
  if (p.length > AZURE_MIN_SUBNET_LENGTH)
    fail(raw.field, `must be a /${AZURE_MIN_SUBNET_LENGTH} or larger: Azure's smallest subnet is a /${AZURE_MIN_SUBNET_LENGTH} (8 addresses, 5 reserved)`, raw.value);
  return p;
}

function pluginMode(raw: RawField | undefined): "none" | "overlay" {
  if (raw === undefined) return AZURE_DEFAULTS.networkPluginMode;
  if (raw.value === "none" || raw.value === "overlay") return raw.value;
  if (typeof raw.value === "string" && raw.value.toLowerCase() === "overlay") fail(raw.field, 'must be none or overlay (AKS spells it "overlay", lowercase)', raw.value);
  return fail(raw.field, "must be none (pods on the VNet) or overlay (pods on podCidr, a /24 per node)", raw.value);
}

const ALLOCATION_MODES: readonly PodIpAllocationMode[] = ["classic", "DynamicIndividual", "StaticBlock"];

function allocationMode(fields: Map<string, RawField>): RawField | undefined {
  const ours = fields.get("podIpAllocationMode");
  const aks = fields.get("podIPAllocationMode");
  if (ours !== undefined && aks !== undefined) fail(aks.field, "set either podIpAllocationMode or AKS's spelling podIPAllocationMode, not both");
  const raw = ours ?? aks;
  if (raw !== undefined && !ALLOCATION_MODES.includes(raw.value as PodIpAllocationMode)) {
    fail(raw.field, 'must be DynamicIndividual, StaticBlock or classic ("classic" = Node Subnet: no podSubnet)', raw.value);
  }
  return raw;
}

const MODE_OF: Readonly<Record<PodIpAllocationMode, AzureMode>> = { classic: "classic", DynamicIndividual: "dynamic", StaticBlock: "static-block" };

function scalerOf(raw: RawField | undefined, maxPods: number): ScalerSettings {
  const d = AZURE_DEFAULTS.scaler;
  if (raw === undefined) return { ...d };
  if (!isObj(raw.value)) fail(raw.field, `must be an object { ${SCALER_FIELDS.join(", ")} }`, raw.value);
  const sub = new Map<string, RawField>();
  for (const [key, value] of Object.entries(raw.value)) {
    if (!has(SCALER_FIELDS, key)) fail(`${raw.field}.${key}`, `unknown field; known: ${SCALER_FIELDS.join(", ")}`);
    sub.set(key, { value, field: `${raw.field}.${key}` });
  }
  const maxIPCount = int(sub.get("maxIPCount"), 1, 250, d.maxIPCount);
  if (maxIPCount < maxPods) fail(`${raw.field}.maxIPCount`, `must be at least maxPods (${maxPods}): a node capped below maxPods addresses could never run maxPods pods`, maxIPCount);
  const batchSize = int(sub.get("batchSize"), 1, maxIPCount, d.batchSize);
  const requestThresholdPercent = int(sub.get("requestThresholdPercent"), 1, 100, d.requestThresholdPercent);
  // Azure's default 150 is clamped by its monitor to request + 100; leaving it out means that value.
  const releaseDefault = Math.max(d.releaseThresholdPercent, requestThresholdPercent + 100);
  const releaseRaw = sub.get("releaseThresholdPercent");
  const releaseThresholdPercent = int(releaseRaw, 1, Number.MAX_SAFE_INTEGER, releaseDefault);
  if (releaseThresholdPercent < requestThresholdPercent + 100) {
    fail(
      `${raw.field}.releaseThresholdPercent`,
      `must be at least requestThresholdPercent + 100 (${requestThresholdPercent + 100}): one batch of hysteresis between requesting and releasing (Azure's monitor silently clamps it; here it is refused)`,
      releaseThresholdPercent,
    );
  }
  return { batchSize, requestThresholdPercent, releaseThresholdPercent, maxIPCount };
}

/** Refuses a field that only applies to `wanted` modes, naming the mode in force. */
function onlyFor(raw: RawField | undefined, mode: AzureMode, wanted: readonly AzureMode[], what: string): void {
  if (raw !== undefined && !wanted.includes(mode)) fail(raw.field, `only applies to ${what}; this config is mode ${mode}: remove it`, raw.value);
}

/**
 * Parses an AKS-like network profile into an `AzureConfig` with Azure's defaults. Pure.
 *
 * Decisions (see DESIGN.md "Config"): `networkPlugin` may be left out (it can only be azure);
 * `networkPluginMode` is exactly `none` or `overlay`; the allocation mode defaults as AKS's
 * (`DynamicIndividual` with a podSubnet, classic without; overlay has none and reports `classic`);
 * fields that do nothing in the mode in force (scaler, reclaimIdle, poolMonitor outside dynamic;
 * podCidr outside overlay; podSubnet in classic/overlay) are refused naming the mode, never
 * silently ignored; `maxSurge` is a node count (AKS's "33%" form is refused).
 *
 * @param input an object (flat or `{ networkProfile, agentPoolProfile }`) or YAML/JSON text of one document
 * @throws ConfigError (code 7, component `azure`) naming the field path and the rule, for the first problem found
 */
export function parseAzureConfig(input: unknown): AzureConfig {
  const fields = fieldsOf(document(input));
  const get = (name: string): RawField | undefined => fields.get(name);

  const plugin = get("networkPlugin");
  if (plugin !== undefined && plugin.value !== "azure") {
    fail(plugin.field, 'must be "azure" (this backend is Azure CNI; kubenet, none and other plugins are other network models)', plugin.value);
  }
  const networkPluginMode = pluginMode(get("networkPluginMode"));
  const allocRaw = allocationMode(fields);
  const podSubnetRaw = get("podSubnet");

  let podIpAllocationMode: PodIpAllocationMode;
  let mode: AzureMode;
  if (networkPluginMode === "overlay") {
    if (podSubnetRaw !== undefined) fail(podSubnetRaw.field, "must not be set with networkPluginMode overlay: overlay pods take addresses from podCidr, not a VNet pod subnet", podSubnetRaw.value);
    if (allocRaw !== undefined) fail(allocRaw.field, "must not be set with networkPluginMode overlay: overlay gives each node a /24 of podCidr, there is no VNet pod IP allocation", allocRaw.value);
    podIpAllocationMode = "classic";
    mode = "overlay";
  } else {
    podIpAllocationMode = allocRaw === undefined ? (podSubnetRaw === undefined ? "classic" : "DynamicIndividual") : (allocRaw.value as PodIpAllocationMode);
    mode = MODE_OF[podIpAllocationMode];
    if (mode === "classic" && podSubnetRaw !== undefined) {
      fail(
        podSubnetRaw.field,
        "must not be set in classic mode (Node Subnet: pods take addresses from vnetSubnet); remove it, or set podIpAllocationMode DynamicIndividual or StaticBlock",
        podSubnetRaw.value,
      );
    }
    if (mode !== "classic" && podSubnetRaw === undefined) {
      fail(
        allocRaw?.field.replace(/podI[pP]AllocationMode$/, "podSubnet") ?? "podSubnet",
        `is required with podIpAllocationMode ${podIpAllocationMode}: pods take addresses from a separate pod subnet`,
      );
    }
  }

  const maxPods = int(get("maxPods"), MAX_PODS_RANGE.min, MAX_PODS_RANGE.max, AZURE_DEFAULTS.maxPods);

  const vnetRaw = get("vnetSubnet");
  const vnet = vnetRaw === undefined ? undefined : azureSubnet(vnetRaw);

  const scalerRaw = get("scaler");
  onlyFor(scalerRaw, mode, ["dynamic"], "podIpAllocationMode DynamicIndividual (the dynamic pool's scaler)");
  const scaler = scalerOf(scalerRaw, maxPods);

  let podSubnet: Prefix | undefined;
  if (podSubnetRaw !== undefined) {
    podSubnet = azureSubnet(podSubnetRaw);
    if (vnet !== undefined && vnet.overlaps(podSubnet))
      fail(podSubnetRaw.field, `must not overlap vnetSubnet ${vnet.toString()}: the node subnet and the pod subnet are separate subnets`, podSubnetRaw.value);
    if (mode === "dynamic") {
      const usable = usableAddresses(podSubnet);
      if (usable < scaler.batchSize) {
        fail(
          podSubnetRaw.field,
          `must hold at least one batch (${scaler.batchSize} addresses) after Azure's 5 reserved; ${podSubnet.toString()} has ${formatCount(usable)} usable`,
          podSubnetRaw.value,
        );
      }
    } else {
      const need = staticBlocksPerNode(maxPods);
      const blocks = usableStaticBlocks(podSubnet);
      if (blocks < need) {
        fail(
          podSubnetRaw.field,
          `must hold at least ${need} /28 block${need === 1 ? "" : "s"} (ceil(maxPods ${maxPods} / ${STATIC_BLOCK_SIZE})) clear of Azure's 5 reserved addresses; ${podSubnet.toString()} has ${blocks}`,
          podSubnetRaw.value,
        );
      }
    }
  }

  const podCidrRaw = get("podCidr");
  onlyFor(podCidrRaw, mode, ["overlay"], "networkPluginMode overlay (pods on podCidr)");
  let podCidr: string = AZURE_DEFAULTS.podCidr;
  if (podCidrRaw !== undefined) {
    const p = ipv4Cidr(podCidrRaw);
    if (p.length > OVERLAY_NODE_PREFIX_LENGTH)
      fail(podCidrRaw.field, `prefix length must be at most /${OVERLAY_NODE_PREFIX_LENGTH}: each node takes a /${OVERLAY_NODE_PREFIX_LENGTH}`, podCidrRaw.value);
    podCidr = p.toString();
  }
  if (mode === "overlay" && vnet !== undefined && vnet.overlaps(Prefix.parse(podCidr))) {
    fail(
      podCidrRaw?.field ?? "podCidr",
      `must not overlap vnetSubnet ${vnet.toString()}: overlay pod addresses live outside the VNet${podCidrRaw === undefined ? ` (the default is ${podCidr}; set podCidr)` : ""}`,
      podCidr,
    );
  }

  const surgeRaw = get("maxSurge");
  if (surgeRaw !== undefined && typeof surgeRaw.value === "string") {
    fail(surgeRaw.field, `must be a whole number of nodes from 0 to ${MAX_SURGE_LIMIT} (AKS's percentage form such as "33%" is not accepted: give the node count)`, surgeRaw.value);
  }
  const maxSurge = int(surgeRaw, 0, MAX_SURGE_LIMIT, AZURE_DEFAULTS.maxSurge);
  const mtu = int(get("mtu"), MTU_RANGE.min, MTU_RANGE.max);

  const reclaimRaw = get("reclaimIdle");
  onlyFor(reclaimRaw, mode, ["dynamic"], "podIpAllocationMode DynamicIndividual (reclaiming idle batches of the dynamic pool)");
  const monitorRaw = get("poolMonitor");
  onlyFor(monitorRaw, mode, ["dynamic"], "podIpAllocationMode DynamicIndividual (the dynamic pool's monitor)");
  let poolMonitor: "v1" | "v2" = AZURE_DEFAULTS.poolMonitor;
  if (monitorRaw !== undefined) {
    if (monitorRaw.value !== "v1" && monitorRaw.value !== "v2") fail(monitorRaw.field, "must be v1 (Azure's reactive monitor) or v2 (demand-driven, one step)", monitorRaw.value);
    poolMonitor = monitorRaw.value;
  }

  const config: AzureConfig = {
    networkPlugin: "azure",
    networkPluginMode,
    podIpAllocationMode,
    mode,
    maxPods,
    podCidr,
    scaler,
    natOutgoing: bool(get("natOutgoing"), AZURE_DEFAULTS.natOutgoing),
    maxSurge,
    reclaimIdle: bool(reclaimRaw, AZURE_DEFAULTS.reclaimIdle),
    poolMonitor,
  };
  if (vnet !== undefined) config.vnetSubnet = vnet.toString();
  if (podSubnet !== undefined) config.podSubnet = podSubnet.toString();
  if (mtu !== undefined) config.mtu = mtu;
  return config;
}
