/**
 * The parsed, validated shapes of networking.k8s.io/v1 NetworkPolicy and of the cluster view the
 * evaluator and the compiler work on (namespaces and pods). Everything here is plain data: a
 * parsed policy keeps the difference between an absent and an empty list where the API gives it
 * a meaning, and records the effective policyTypes after the API server's defaulting rule.
 */

/** Protocols a NetworkPolicy port may name (the API server refuses any other). */
export const POLICY_PROTOCOLS = ["TCP", "UDP", "SCTP"] as const;
export type PolicyProtocol = (typeof POLICY_PROTOCOLS)[number];

/** The two policy types. */
export const POLICY_TYPES = ["Ingress", "Egress"] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

/** Label selector operators (metav1.LabelSelectorOperator). */
export const SELECTOR_OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"] as const;
export type SelectorOperator = (typeof SELECTOR_OPERATORS)[number];

export interface SelectorRequirement {
  key: string;
  operator: SelectorOperator;
  /** Non-empty for In/NotIn, empty for Exists/DoesNotExist. */
  values: string[];
}

/** metav1.LabelSelector; the empty selector (both lists empty) selects everything. */
export interface LabelSelector {
  matchLabels: Record<string, string>;
  matchExpressions: SelectorRequirement[];
}

export interface PolicyPort {
  /** Defaulted to TCP when absent. */
  protocol: PolicyProtocol;
  /** Absent = every port of `protocol`; a number 1..65535 or an IANA service name (a named container port). */
  port?: number | string;
  /** Last port of a range that starts at the numeric `port`. */
  endPort?: number;
}

export interface IPBlock {
  /** As written (host bits allowed, as the API server allows them). */
  cidr: string;
  /** Each a strict subset of `cidr`. */
  except: string[];
}

/**
 * One peer: either selectors (pod, namespace or both) or an ipBlock. A selector peer without a
 * namespaceSelector means the policy's own namespace; without a podSelector, every pod of the
 * selected namespaces.
 */
export interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

/** An ingress (`from`) or egress (`to`) rule. An empty `peers` or `ports` list means "all". */
export interface PolicyRule {
  peers: PolicyPeer[];
  ports: PolicyPort[];
}

export interface NetworkPolicy {
  name: string;
  namespace: string;
  podSelector: LabelSelector;
  /** Ingress rules (an absent and an empty list are the same: no ingress allowed when isolated). */
  ingress: PolicyRule[];
  egress: PolicyRule[];
  /**
   * Effective policy types: as written, or when absent the API server's default: Ingress always,
   * plus Egress when the policy has egress rules.
   */
  policyTypes: PolicyType[];
  /** Whether policyTypes was written (false = defaulted). */
  policyTypesDefaulted: boolean;
  /** Source location for messages: document index in its file, e.g. `policies.yaml#2`. */
  source?: string;
}

/** A namespace of the cluster view. `kubernetes.io/metadata.name` is always set to the name. */
export interface ClusterNamespace {
  name: string;
  labels: Record<string, string>;
}

/** A container port of a pod: named ports in policies resolve against these. */
export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: PolicyProtocol;
}

/** A pod of the cluster view. */
export interface ClusterPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Pod IPs, canonical text; the first of each family is the one connections use. */
  ips: string[];
  ports: ContainerPort[];
  /** Node the pod runs on (compilation for one node takes the pods with this name). */
  node?: string;
  /** Attachment key in the node's dataplane (`containerId/ifName`); default `namespace/name`. */
  key?: string;
  /** Host-side interface name on the node (nftables dispatch); default derived from the key. */
  hostIf?: string;
}

/** The cluster view: namespaces and pods. */
export interface Cluster {
  namespaces: ClusterNamespace[];
  pods: ClusterPod[];
}

/** Evaluator and compiler input: the cluster and the policies in force. */
export interface PolicyModel extends Cluster {
  policies: NetworkPolicy[];
}
