/**
 * The Azure-like backend's configuration: an AKS-like network profile (YAML or JSON), parsed with
 * Azure's defaults and rules. See `parseAzureConfig` below and DESIGN.md for every field, default
 * and source.
 */

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
