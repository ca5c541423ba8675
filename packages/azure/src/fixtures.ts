/**
 * The Azure-like backend's fixtures (`@cnikit/azure/fixtures`), in the shape every backend's
 * fixtures share (`BackendFixtures` of @cnikit/core), in the AKS-like network profile format
 * (flat; the parser takes AKS's nested networkProfile / agentPoolProfile too).
 *
 * Modes: `classic` (Node Subnet: 1 + maxPods addresses of the node's own subnet per node),
 * `dynamic` (DynamicIndividual: a separate pod subnet, addresses in batches of 16 on demand),
 * `static-block` (StaticBlock: /28 blocks of the pod subnet per node), `overlay` (a /24 of podCidr
 * per node, routed by the fabric, SNAT to the node outside it).
 */
import { conformanceTables } from "@cnikit/core";
import type { BackendFixtures } from "@cnikit/core";

export type AzureProfile = Record<string, unknown>;

/** The pod subnet of the dynamic fixture (outside every underlay subnet of the simulator and the lab). */
export const FIXTURE_POD_SUBNET = "10.241.0.0/16";
export const FIXTURE_BLOCK_SUBNET = "10.242.0.0/16";
export const FIXTURE_POD_CIDR = "10.244.0.0/16";

export const azureFixtures: BackendFixtures<AzureProfile> = {
  configs: [
    { label: "classic", config: { networkPlugin: "azure", maxPods: 30 } },
    { label: "dynamic", config: { networkPlugin: "azure", podIpAllocationMode: "DynamicIndividual", podSubnet: FIXTURE_POD_SUBNET, maxPods: 30 } },
    { label: "static-block", config: { networkPlugin: "azure", podIpAllocationMode: "StaticBlock", podSubnet: FIXTURE_BLOCK_SUBNET, maxPods: 30 } },
    { label: "overlay", config: { networkPlugin: "azure", networkPluginMode: "overlay", podCidr: FIXTURE_POD_CIDR, maxPods: 30 } },
  ],
  invalidConfigs: [
    { label: "another plugin", config: { networkPlugin: "kubenet" }, field: "networkPlugin", rule: 'must be "azure"' },
    { label: "maxPods below 10", config: { maxPods: 9 }, field: "maxPods", rule: "must be an integer from 10 to 250" },
    { label: "maxPods above 250", config: { maxPods: 251 }, field: "maxPods", rule: "must be an integer from 10 to 250" },
    { label: "unknown field", config: { maxpods: 30 }, field: "maxpods", rule: "unknown field" },
    { label: "dynamic without a pod subnet", config: { podIpAllocationMode: "DynamicIndividual" }, field: "podSubnet", rule: "is required with podIpAllocationMode DynamicIndividual" },
    { label: "classic with a pod subnet", config: { podIpAllocationMode: "classic", podSubnet: FIXTURE_POD_SUBNET }, field: "podSubnet", rule: "must not be set in classic mode" },
    { label: "overlay mode misspelt", config: { networkPluginMode: "Overlay" }, field: "networkPluginMode", rule: "must be none or overlay" },
    { label: "overlay podCidr smaller than a node's /24", config: { networkPluginMode: "overlay", podCidr: "10.244.0.0/25" }, field: "podCidr", rule: "prefix length must be at most /24" },
    {
      label: "release threshold without a batch of hysteresis",
      config: { podIpAllocationMode: "DynamicIndividual", podSubnet: FIXTURE_POD_SUBNET, scaler: { releaseThresholdPercent: 120 } },
      field: "scaler.releaseThresholdPercent",
      rule: "must be at least requestThresholdPercent + 100",
    },
    {
      label: "pod subnet inside the node subnet",
      config: { vnetSubnet: "10.240.0.0/16", podIpAllocationMode: "DynamicIndividual", podSubnet: "10.240.128.0/17" },
      field: "podSubnet",
      rule: "must not overlap vnetSubnet",
    },
    { label: "scaler in classic mode", config: { scaler: { batchSize: 8 } }, field: "scaler", rule: "only applies to" },
    { label: "MTU above the suite's 1500 underlay", config: { mtu: 1501 }, field: "mtu", rule: "must not exceed the underlay MTU", refusedAt: "start" },
    { label: "nodes outside vnetSubnet", config: { vnetSubnet: "10.240.0.0/16" }, field: "vnetSubnet", rule: "must hold every node's address", refusedAt: "start" },
  ],
  anchorConfigs: [
    { label: "maxPods 10 (AKS's minimum)", config: { maxPods: 10 } },
    { label: "maxPods 250 (AKS's maximum)", config: { maxPods: 250 } },
    { label: "AKS's nested shape", config: { networkProfile: { networkPlugin: "azure" }, agentPoolProfile: { maxPods: 30 } } },
    { label: "YAML text", config: "networkPlugin: azure\nnetworkPluginMode: overlay\npodCidr: 10.244.0.0/16\n" as unknown as AzureProfile },
  ],
};

/** The section-C tables under the export name the conformance CLI looks for (`conformance`). */
export const conformance = conformanceTables(azureFixtures);
