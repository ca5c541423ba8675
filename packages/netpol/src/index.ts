/**
 * @cnikit/netpol — NetworkPolicy (networking.k8s.io/v1): parse with the API server's validation,
 * evaluate and explain connections and reachability matrices, compile one node's policies into
 * NodeDataplane filters (enforced by @cnikit/sim) and an incremental nftables ruleset.
 */
export * from "./types.ts";
export {
  NAMESPACE_NAME_LABEL,
  buildCluster,
  parseCluster,
  parseClusterBatch,
  parsePolicies,
  parsePolicyBatch,
  parsePolicyObject,
  readDocuments,
  type ClusterBatch,
  type IgnoredPod,
  type IgnoredPodReason,
  type ObjectError,
  type ParseClusterOptions,
  type ParsedCluster,
  type PolicyBatch,
} from "./parse.ts";
export { checkProbe, isEmptySelector, labelKeyProblem, labelValueProblem, portNameProblem, portNumberProblem, protocolProblem, selectorMatches, selectorText } from "./validate.ts";
export { PolicyEvaluator, explainVerdict, formatMatrix, peerText, portMatches, portText, type DirectionVerdict, type Matrix, type Probe, type RuleRef, type Verdict } from "./evaluate.ts";
export { E2E_NAMESPACES, E2E_PODS, E2E_POD_IDS, E2E_PORTS, e2eCases, e2eNamespaceLabels, e2ePodLabels, type E2eCase, type E2eEnv, type NetworkPolicyObject } from "./e2e.ts";
export { compileFilters, compileWarnings, hostIfOf, indexPolicies, localPods, podKeyOf, type CompileWarning, type NodeCompileInput, type PolicyIndex } from "./compile.ts";
export { compileNode, type NodeCompilation } from "./compile-node.ts";
export {
  NFT_FAMILY,
  NFT_TABLE,
  NftNodeCompiler,
  applyElementCommands,
  compileNft,
  deleteTableScript,
  nftStats,
  nftUpdate,
  nftUpdateFor,
  renderNft,
  replaceTableScript,
  type NftChain,
  type NftCompileInput,
  type NftElement,
  type NftRuleset,
  type NftSet,
  type NftUpdate,
} from "./nft.ts";
export { KubePolicyView } from "./view.ts";
export { compileNodeFilters, emptyPolicySnapshot, namespacesFor, planPolicy, type NodeFiltersInput, type PolicySnapshot, type SnapshotPlanPolicy } from "./policy-snapshot.ts";
export {
  containerPortsOf,
  decodeDirectoryPod,
  directoryPodOf,
  externalPodDirectory,
  podDirectoryPrefix,
  publishedPodDirectory,
  publishedPodKey,
  type DirectoryPod,
  type ExternalPodDirectory,
  type LocalPolicyPod,
  type PodDirectory,
  type PublishedPodDirectory,
} from "./pod-directory.ts";
export { POLICY_RESYNC_MS, POLICY_RETRY_MS, PolicyComponent, type PolicyComponentOptions } from "./agent-policy.ts";
