/**
 * @cnikit/calico — a Calico-like backend: Calico's projectcalico.org/v3 resources unchanged,
 * block IPAM in the Datastore, BGP between agents (bgp-utils-free over ctx.peers), IPIP / VXLAN
 * (Always or CrossSubnet), routed /32 pods with proxy ARP, natOutgoing and NetworkPolicy.
 * See DESIGN.md.
 */
export { parseCalicoConfig, parsePool, checkNoOverlap, CALICO_DEFAULTS, EncapMode } from "./config.ts";
export type { CalicoConfig, IpPool, BgpConfiguration, BgpPeer, NodeBgp, IpamConfig } from "./config.ts";
export { parseSelector } from "./selector.ts";
export type { Selector } from "./selector.ts";
export { calicoFixtures, ipPool, withRouteReflectors } from "./fixtures.ts";
export type { CalicoFixtureConfig, CalicoInvalidFixture } from "./fixtures.ts";
export {
  BlockIpam,
  checkIpam,
  gcIpam,
  releaseHandle,
  readIpam,
  putPool,
  blockKey,
  affinityKey,
  handleKey,
  blockName,
  podHandle,
  tunnelHandle,
  BLOCK_PREFIX,
  HOST_PREFIX,
  HANDLE_PREFIX,
  POOL_PREFIX,
  MAX_RETRIES,
} from "./ipam.ts";
export type { Allocation, BlockRecord, HandleRecord, BlockIpamOptions, IpamGcOptions, IpamGcReport, IpamProblem, IpamSnapshot, StoredBlock } from "./ipam.ts";
