/**
 * Broken (flannel): SubnetMin and SubnetMax are computed from the address after Network instead of
 * Network's own address (an off-by-one-network), so every node leases a subnet outside Network
 * (10.245.x.0/24 for Network 10.244.0.0/16) and its pods get addresses outside the pod range.
 */
import { Prefix } from "@cnikit/core";
import type { Backend } from "@cnikit/core";
import { flannel } from "@cnikit/flannel";
import type { FamilyRange, FlannelConfig } from "@cnikit/flannel";
import { wrapBackend } from "./wrap.ts";

function shifted(range: FamilyRange): FamilyRange {
  const size = Prefix.parse(range.network).size;
  const move = (address: string) => Prefix.of(range.family, Prefix.host(address).base + size, range.subnetLen).network;
  return { ...range, subnetMin: move(range.subnetMin), subnetMax: move(range.subnetMax) };
}

export const subnetOutsideNetwork: Backend<FlannelConfig> = wrapBackend(flannel, "broken-flannel-subnet-outside-network", {
  parseConfig: (input) => {
    const config = flannel.parseConfig(input);
    return config.ipv4 ? { ...config, ipv4: shifted(config.ipv4) } : config;
  },
});
