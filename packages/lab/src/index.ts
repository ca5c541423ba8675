/**
 * @cnikit/lab: a multi-node pod network on the real kernel, out of network namespaces — nodes on
 * two underlay subnets joined by a router, etcd, one cnikitd per node, pods made by executing the
 * cnikit-cni plugin, reachability probed with real TCP, UDP and ping. The linux dataplane driver of
 * the conformance suite, and `pnpm lab up|check|down|status`.
 */
export const PACKAGE_NAME = "@cnikit/lab";

export {
  Lab,
  LabCniError,
  chooseTopology,
  listLabs,
  openLab,
  resolveBackendMode,
  startLab,
  type ConvergeResult,
  type LabNode,
  type LabPod,
  type LabStatus,
  type MatrixOptions,
  type PluginCall,
  type PluginOutcome,
  type ResolvedBackend,
  type StartLabOptions,
} from "./lab.ts";
export { downLab, type DownReport } from "./down.ts";
export { buildMatrix, formatMatrix, judgeCell, probedPair, type EgressResult, type MatrixCell, type MatrixEndpoint, type MatrixFailure, type ReachMatrix } from "./matrix.ts";
export {
  DEFAULT_STATE_ROOT,
  ETCD_PORT,
  LAB_NAME_RE,
  PEER_PORT,
  PROBE_PORT,
  checkLabName,
  labDir,
  nsPrefix,
  planLab,
  podNamespace,
  type LabPlan,
  type PlanOptions,
  type PlannedHost,
  type PlannedNode,
  type PlannedRouter,
  type PlannedSubnet,
} from "./plan.ts";
export { PROBE_AGENT, PROBE_PROTOS, ProbeClient, type ProbeProto, type ProbeResult } from "./probe.ts";
export { readState, type LabBackendModule, type LabResource, type LabSpec, type LabState, type PodRecord } from "./state.ts";
export { LAB_TOOLS, MissingLabToolError, checkKernel, checkTools, encapFeature, kernelSupports, requireKernel } from "./kernel.ts";
export type { CommandResult } from "./system.ts";
export {
  DIFF_MODES,
  REACH_PROTOS,
  applyFault,
  cellKey,
  compareReachTables,
  describeScenario,
  downLabWithExtras,
  formatMismatches,
  formatReachTable,
  kernelReachTable,
  randomScenario,
  reachPairs,
  runDifferential,
  simReachTable,
  simulateScenario,
  tableCounts,
  type DiffFault,
  type DiffOutcome,
  type DiffPod,
  type DiffScenario,
  type DifferentialOptions,
  type KernelProber,
  type ReachEndpoint,
  type ReachMismatch,
  type ReachProto,
  type ReachTable,
  type ReachVerdict,
  type SimSide,
} from "./differential.ts";
export {
  LINUX_CHECKS,
  RESULT_VERSIONS,
  Scratch,
  labEtcd,
  resultProblems,
  runLinuxConformance,
  type LinuxCheck,
  type LinuxConformanceOptions,
  type LinuxConformanceReport,
  type LinuxContext,
} from "./conformance-linux.ts";
