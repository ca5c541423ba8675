/**
 * The upstream e2e model (test/e2e/network/netpol) as data any enforcer can be run against:
 * namespaces x, y, z labelled `ns: <name>`, pods a, b, c in each labelled `pod: <name>`, every pod
 * serving ports 80 and 81 over TCP, UDP and SCTP under the upstream names `serve-<port>-<proto>`;
 * and a representative set of NetworkPolicy cases over it, written as the Kubernetes objects a
 * user would apply (JSON), so they can be put into a cluster store as they are.
 *
 * The cases carry no expected matrices: whoever runs them compares the enforcer's matrix with
 * `PolicyEvaluator`'s (this package's tests hold the evaluator to hand-written tables). Addresses
 * depend on the cluster, so a case's policies are built from an `E2eEnv` (pod addresses, the pod
 * network) — that is how ipBlock cases name real addresses.
 */
import { NAMESPACE_NAME_LABEL } from "./parse.ts";
import type { ContainerPort } from "./types.ts";

/** Namespaces of the model. */
export const E2E_NAMESPACES = ["x", "y", "z"] as const;
/** Pod names of the model (in every namespace). */
export const E2E_PODS = ["a", "b", "c"] as const;
/** Pod ids `namespace/name` in matrix order: x/a x/b x/c y/a ... z/c. */
export const E2E_POD_IDS: readonly string[] = E2E_NAMESPACES.flatMap((n) => E2E_PODS.map((p) => `${n}/${p}`));

/** The container ports every model pod serves: 80 and 81 over TCP, UDP and SCTP, named `serve-<port>-<proto>`. */
export const E2E_PORTS: readonly ContainerPort[] = (["TCP", "UDP", "SCTP"] as const).flatMap((protocol) =>
  [80, 81].map((port) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol })),
);

/** The labels of a model namespace: `ns: <name>` and `kubernetes.io/metadata.name`. */
export function e2eNamespaceLabels(name: string): Record<string, string> {
  return { ns: name, [NAMESPACE_NAME_LABEL]: name };
}

/** The labels of a model pod: `pod: <name>`. */
export function e2ePodLabels(name: string): Record<string, string> {
  return { pod: name };
}

/** What a case's policies may depend on: where the pods are. */
export interface E2eEnv {
  /** The address of a model pod (`x/a`). */
  podIp(id: string): string;
  /** A CIDR holding every pod address (the pod network). */
  podNetwork: string;
}

/** One case: policies to apply, optional extra container ports, optional label change. */
export interface E2eCase {
  name: string;
  /** The NetworkPolicy rule the case is about, in a few words. */
  covers: string;
  /** networking.k8s.io/v1 NetworkPolicy objects (JSON-able). */
  policies(env: E2eEnv): NetworkPolicyObject[];
  /** Container ports some pods have besides `E2E_PORTS`, by pod id. */
  extraPorts?: Record<string, ContainerPort[]>;
  /**
   * A label change applied after the policies were checked once: namespace name -> labels added.
   * The case is then checked again with the new labels.
   */
  relabelNamespaces?: Record<string, Record<string, string>>;
}

/** The JSON shape of a NetworkPolicy as `kubectl get -o json` gives it (spec left open). */
export interface NetworkPolicyObject {
  apiVersion: "networking.k8s.io/v1";
  kind: "NetworkPolicy";
  metadata: { name: string; namespace: string };
  spec: Record<string, unknown>;
}

function np(namespace: string, name: string, spec: Record<string, unknown>): NetworkPolicyObject {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}

const POD_A = { matchLabels: { pod: "a" } };
const nsSel = (ns: string) => ({ namespaceSelector: { matchLabels: { ns } } });

/**
 * The representative cases (the conformance suite's policy.matrix runs every one). Where a case
 * has the name of a hand-written case of this package's tests, its matrices equal that case's table.
 */
export const e2eCases: readonly E2eCase[] = [
  {
    name: "default-deny-ingress in x",
    covers: "deny-all ingress (empty podSelector, policyTypes [Ingress])",
    policies: () => [np("x", "deny-ingress", { podSelector: {}, policyTypes: ["Ingress"] })],
  },
  {
    name: "deny egress from all pods of x",
    covers: "deny-all egress (empty podSelector, policyTypes [Egress])",
    policies: () => [np("x", "deny-egress", { podSelector: {}, policyTypes: ["Egress"] })],
  },
  {
    name: "allow to x/a from namespace y",
    covers: "namespaceSelector alone: every pod of the selected namespaces",
    policies: () => [np("x", "from-y", { podSelector: POD_A, ingress: [{ from: [nsSel("y")] }] })],
  },
  {
    name: "allow to x/a from pods within the server namespace by podSelector",
    covers: "podSelector alone: pods of the policy's own namespace",
    policies: () => [np("x", "allow-b", { podSelector: POD_A, ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b" } } }] }] })],
  },
  {
    name: "only from a pod in a different namespace (namespaceSelector ns=y + podSelector pod=a)",
    covers: "namespaceSelector and podSelector in one peer: both must match",
    policies: () => [np("x", "ya", { podSelector: POD_A, ingress: [{ from: [{ ...nsSel("y"), podSelector: { matchLabels: { pod: "a" } } }] }] })],
  },
  {
    name: "empty namespaceSelector with podSelector: pods b of every namespace",
    covers: "empty namespaceSelector (every namespace) with a podSelector",
    policies: () => [np("x", "all-b", { podSelector: POD_A, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: "b" } } }] }] })],
  },
  {
    name: "policyTypes [Egress] with egress rules leaves ingress open",
    covers: "egress-only policy: written policyTypes [Egress] isolate egress only",
    policies: () => [np("x", "egress-only", { podSelector: POD_A, policyTypes: ["Egress"], egress: [{ to: [nsSel("y")] }] })],
  },
  {
    name: "policyTypes defaulting: egress rules without policyTypes isolate both directions",
    covers: "policyTypes defaulting: Ingress always, Egress when egress rules exist",
    policies: () => [np("x", "defaulted", { podSelector: POD_A, egress: [{ to: [nsSel("y")] }] })],
  },
  {
    name: "egress ipBlock with except (the pod network except y/b)",
    covers: "ipBlock with except, over pod addresses",
    policies: (env) => [
      np("x", "cidr-except", {
        podSelector: POD_A,
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: env.podNetwork, except: [`${env.podIp("y/b")}/${env.podIp("y/b").includes(":") ? 128 : 32}`] } }] }],
      }),
    ],
  },
  {
    name: "ingress on one named port (serve-81-tcp) into x",
    covers: "named port on ingress (resolved against the receiving pod)",
    policies: () => [np("x", "named-81", { podSelector: {}, ingress: [{ ports: [{ port: "serve-81-tcp" }] }] })],
  },
  {
    name: "named egress port resolves against each destination pod",
    covers: "named port on egress, a different number per destination (y/a web=80, y/b web=81, y/c none)",
    policies: () => [np("x", "egress-web", { podSelector: POD_A, policyTypes: ["Egress"], egress: [{ ports: [{ port: "web" }] }] })],
    extraPorts: {
      "y/a": [{ name: "web", containerPort: 80, protocol: "TCP" }],
      "y/b": [{ name: "web", containerPort: 81, protocol: "TCP" }],
    },
  },
  {
    name: "endPort: ingress on TCP 81-90 admits 81 but not 80",
    covers: "endPort ranges",
    policies: () => [np("x", "range-81", { podSelector: POD_A, ingress: [{ ports: [{ port: 81, endPort: 90 }] }] })],
  },
  {
    name: "stacked policies with overlapping podSelectors are a union (TCP 80 + TCP 81 from y)",
    covers: "several policies selecting one pod: their rules are unioned",
    policies: () => [
      np("x", "port-80", { podSelector: POD_A, ingress: [{ from: [nsSel("y")], ports: [{ port: 80 }] }] }),
      np("x", "port-81", { podSelector: POD_A, ingress: [{ from: [nsSel("y")], ports: [{ port: 81 }] }] }),
    ],
  },
  {
    name: "TCP is not allowed when a policy names only UDP",
    covers: "ports with protocol UDP",
    policies: () => [np("x", "udp-81", { podSelector: POD_A, ingress: [{ ports: [{ protocol: "UDP", port: 81 }] }] })],
  },
  {
    name: "both ends isolated: x/a may send TCP 80 to y/b, y/b accepts only x/a on TCP 80",
    covers: "both the sender's egress and the receiver's ingress must allow",
    policies: () => [
      np("x", "a-to-yb", { podSelector: POD_A, policyTypes: ["Egress"], egress: [{ to: [{ ...nsSel("y"), podSelector: { matchLabels: { pod: "b" } } }], ports: [{ port: 80 }] }] }),
      np("y", "b-from-xa", {
        podSelector: { matchLabels: { pod: "b" } },
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ ...nsSel("x"), podSelector: POD_A }], ports: [{ port: 80, protocol: "TCP" }] }],
      }),
    ],
  },
  {
    name: "namespace label update: y gets ns2=updated and then reaches x/a",
    covers: "a label change: a namespace relabelled into a namespaceSelector",
    policies: () => [np("x", "from-updated", { podSelector: POD_A, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: "updated" } } }] }] })],
    relabelNamespaces: { y: { ns2: "updated" } },
  },
];
