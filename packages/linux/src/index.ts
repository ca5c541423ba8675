/**
 * @cnikit/linux — renders a NodeDataplane into a Linux network namespace: reconciles owned links,
 * pod veths, addresses, routes, neighbours, FDB entries, sysctls and one nftables table per owner
 * with `ip -batch`, `bridge -batch` and `nft -f`; detects kernel features; small netns utilities.
 */
export const PACKAGE_NAME = "@cnikit/linux";
export { LinuxRenderer, ApplyError, ForeignObjectError, defaultRouteProtocol, type LinuxRendererOptions, type ApplyReport, type IssuedCommand, type PodResult, type PodFailure } from "./renderer.ts";
export {
  KERNEL_FEATURES,
  FEATURE_DISPLAY,
  SLEEVE_REASON,
  USERSPACE_ONLY_KINDS,
  KernelFeatureError,
  detectKernelFeatures,
  missingFeatures,
  neededFeatures,
  requireFeatures,
  type KernelFeature,
  type KernelFeatures,
  type MissingFeature,
} from "./features.ts";
export {
  CommandError,
  MissingToolError,
  NETNS_RUN_DIR,
  TOOL_PACKAGES,
  execIn,
  runIpBatch,
  runBridgeBatch,
  runNft,
  runProcess,
  netnsPath,
  inNetns,
  parseBatchFailures,
  type NetnsRef,
  type BatchOptions,
  type BatchResult,
  type BatchFailure,
  type ProcessResult,
  type SpawnCounter,
} from "./exec.ts";
export { IpChannel, PodSideChannel, NETLINK_HELPER, NETLINK_HELPER_SOURCE, buildNetlinkHelper, helperBuilt, type IpChannelOptions, type PodSideChannelOptions } from "./channel.ts";
export { createNetns, deleteNetns, listNetns, netnsExists, checkNetnsName, type CreateNetnsOptions } from "./netns.ts";
export { readSysctls, writeSysctls, sysctlDisplayName } from "./sysctl.ts";
export { renderNftTable, nftTableName, replaceTableScript, deleteTableScript, parseTableHash, NFT_FAMILY } from "./nft.ts";
export { planApply, planIsEmpty, podSideLines, routeReplaceLine, type ApplyPlan, type PlanInput, type PlannedLine, type PodSidePlan } from "./plan.ts";
export { readKernel, podProblems, parseRoute, parseLink, type KernelRead, type ReadContext } from "./read.ts";
export {
  desiredState,
  emptyState,
  podHash,
  hostVethMac,
  linkAlias,
  podAlias,
  routeKey,
  kernelMetric,
  proxyArpKey,
  OWNER_RE,
  type KernelState,
  type DesiredState,
  type LinkState,
  type PodState,
  type AddrState,
  type RouteState,
  type NeighState,
  type FdbState,
  type VxlanState,
  type StateContext,
} from "./state.ts";
export { deriveMac, parseJsonValues } from "./util.ts";
