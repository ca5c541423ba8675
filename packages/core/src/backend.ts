/**
 * The one contract every cnikit backend implements. This file is the truth; docs point here.
 *
 * A backend is a control plane. For each node its `NodeAgent` computes the node's desired
 * dataplane (`NodeDataplane`: links, addresses, routes, neighbours, FDB, NAT, filter rules, pod
 * interfaces). It never touches the kernel: renderers (the simulator, the Linux renderer) turn that
 * plain data into forwarding. Everything a node shares with other nodes goes through `ctx.store`
 * (cluster state, etcd semantics) or `ctx.peers` (framed streams and datagrams), so the same agent
 * code runs in one process (tests, sim, benchmarks) and across real hosts.
 *
 * How the four models we build map onto it:
 *
 *  - flannel-like (subnet per node): the agent leases a node subnet in `store` by compare-and-swap
 *    with a TTL lease, watches every lease, and plans a vxlan link (`flannel.<VNI>`) with a
 *    permanent neighbour + FDB entry + onlink route per peer (or a plain `via` route for host-gw and
 *    DirectRouting); pods hang off a bridge (`cni0`) with host-local IPAM kept in `ctx.local`.
 *  - Calico-like (IPPools, blocks, BGP): block affinities and allocations live in `store` (CAS per
 *    block); routes to other nodes' blocks are learned over BGP sessions carried by `peers` and
 *    planned as `via` routes (or ipip / vxlan links for CrossSubnet); pods are routed (no bridge),
 *    one /32 host route per pod, proxy ARP on the host side; NetworkPolicy → `filters`.
 *  - Weave-like (L2 mesh, no datastore): peers gossip over `peers` (topology, and the IPAM ring
 *    CRDT that splits the range among them); the plan is a bridge (`weave`) with a vxlan port
 *    ("fast datapath") or a `sleeve` link, and FDB entries (the all-zero flood entry per peer plus
 *    learned MACs); pods get addresses in the whole range with the range's netmask.
 *  - Azure-like (cloud allocator, no overlay): addresses are preallocated centrally in `store`
 *    (maxPods per node, from the node's underlay subnet); pods are routed on the underlay itself:
 *    the plan holds per-pod host routes and proxy ARP, and no encapsulation at all.
 *
 * NetworkPolicy: a backend that claims `capabilities.networkPolicy` watches the Kubernetes objects
 * the cluster mirrors into `ctx.store` under `KUBE_PREFIX` (kube.ts): namespaces
 * (`/cnikit/kube/namespaces/<name>`, with their labels) and networking.k8s.io/v1 NetworkPolicies
 * (`/cnikit/kube/networkpolicies/<namespace>/<name>`, the object as JSON). Pod labels, namespace,
 * name and named container ports come with `PodAttachment`; how a backend tells other nodes about
 * its pods is its own business. It enforces the policies in `NodeDataplane.filters`.
 */
import type { Clock } from "./clock.ts";
import type { Datastore } from "./datastore.ts";
import type { Family, NodeDataplane } from "./dataplane.ts";
import type { PeerTransport } from "./peers.ts";

/** One underlay interface of a node. */
export interface UnderlayInterface {
  /** Interface name inside the node's host namespace, e.g. `eth0`. */
  iface: string;
  /** The node's address on it. */
  address: string;
  /** Prefix length of the connected subnet (e.g. 24). */
  prefixLength: number;
  /** Default gateway on this subnet, if any (a router between underlay subnets). */
  gateway?: string;
  /** Link MTU (default 1500). */
  mtu?: number;
}

export interface NodeInfo {
  /** Stable node name (Kubernetes node name). Identity is the name, never the address. */
  name: string;
  /** Underlay interfaces, at most one per family for now. */
  underlay: UnderlayInterface[];
  labels?: Record<string, string>;
  /**
   * The node's annotations (Kubernetes node metadata.annotations), e.g. Calico's
   * `projectcalico.org/RouteReflectorClusterID`.
   */
  annotations?: Record<string, string>;
  /** Pod CIDRs assigned by an outside allocator (Kubernetes node.spec.podCIDRs), if any. */
  podCIDRs?: string[];
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface AgentContext<C> {
  /** The parsed configuration (`Backend.parseConfig`'s output). */
  config: C;
  node: NodeInfo;
  /** Cluster-wide shared state (leases, IPAM blocks, preallocations). */
  store: Datastore;
  /**
   * Node-local persistent state (host-local IPAM reservations, VTEP MAC, ring share). Survives an
   * agent restart on the same node; lost when the node itself is replaced.
   */
  local: Datastore;
  /** Connections to other agents (BGP, gossip). */
  peers: PeerTransport;
  clock: Clock;
  log: Logger;
  /** Deterministic randomness (seeded in tests and the simulator). Returns [0, 1). */
  random: () => number;
}

/** What the runtime asks for on CNI ADD. */
export interface PodAttachment {
  containerId: string;
  ifName: string;
  /** Network namespace path (CNI_NETNS). The simulator passes a symbolic path. */
  netns: string;
  namespace?: string;
  podName?: string;
  labels?: Record<string, string>;
  /** Specific addresses asked for (CNI_ARGS IP, args.cni.ips, runtimeConfig.ips). */
  requestedIps?: string[];
  /**
   * The pod's container ports (pod.spec.containers[].ports): named ports in NetworkPolicies
   * resolve against these. Protocol defaults to TCP.
   */
  ports?: PodPort[];
}

/** One container port of a pod (core/v1 ContainerPort, the fields NetworkPolicy uses). */
export interface PodPort {
  /** IANA_SVC_NAME; unnamed ports cannot be named by a policy. */
  name?: string;
  containerPort: number;
  protocol?: "TCP" | "UDP" | "SCTP";
}

/** The identity of an attachment: what DEL, CHECK and GC are given. */
export interface PodRef {
  containerId: string;
  ifName: string;
}

/** The CNI 1.x result shape; the CNI layer converts it to older versions. */
export interface AttachResult {
  interfaces: { name: string; mac?: string; mtu?: number; sandbox?: string }[];
  ips: { address: string; gateway?: string; interface?: number }[];
  routes: { dst: string; gw?: string }[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

export interface AgentStatus {
  /** True when ADD can be serviced. */
  ready: boolean;
  /** 50: cannot ADD; 51: cannot ADD and existing pods may be impaired. Set when not ready. */
  code?: 50 | 51;
  /** Why not ready, in words a person can act on. */
  reason?: string;
}

export interface NodeAgent {
  /**
   * Joins the cluster: takes the node's share of the address space (lease, block affinity, ring
   * share, preallocation), starts watches and peer sessions. Resolves when the agent can service
   * ADD. Restart semantics: a new agent on the same node with the same `local` store keeps what the
   * previous one held (lease, blocks, pod addresses) and renders the same dataplane.
   * Not re-entrant: call once. Throws `ConfigError` for a config the node cannot use (e.g. host-gw
   * across subnets), `TryAgainError` (11) when the store stayed unavailable, `PoolExhaustedError`
   * when no share of the address space is left.
   */
  start(): Promise<void>;
  /**
   * Leaves cleanly: stops watches, timers and sessions. With `release: true` it gives back its
   * share of the address space (lease revoked, blocks released); without, the share stays for the
   * next agent on this node (a restart). Idempotent. Never throws for "already stopped".
   */
  stop(options?: { release?: boolean }): Promise<void>;
  /**
   * CNI ADD. Idempotent per (containerId, ifName): a second call returns the first result and
   * never hands out a second address. Concurrent calls for different attachments are allowed; for
   * the same attachment they are serialised. A failed ADD leaves nothing reserved. Throws
   * `PoolExhaustedError` (100), `AddressInUseError` (101) for an unavailable requested address,
   * `TryAgainError` (11) for transient store trouble, `NotReadyError` (50) before `start`.
   */
  attach(pod: PodAttachment): Promise<AttachResult>;
  /**
   * CNI DEL. Idempotent: an unknown or already-deleted attachment succeeds. Always releases the
   * address, even if other clean-up fails. Throws only `TryAgainError` (11) when the release itself
   * could not be recorded (then nothing was released and the runtime retries).
   */
  detach(pod: PodRef): Promise<void>;
  /**
   * CNI CHECK: passes silently when the attachment's reservation, interface and routes are in the
   * desired state; throws `CheckFailedError` (106) naming what is missing, or
   * `UnknownContainerError` (3) for an attachment the agent never made.
   */
  check(pod: PodRef): Promise<void>;
  /**
   * CNI GC: releases every attachment not listed in `valid`, and nothing else. Continues past
   * individual failures and reports them together at the end (`TryAgainError`).
   */
  gc(valid: PodRef[]): Promise<void>;
  /** CNI STATUS. Cheap and synchronous; never throws. */
  status(): AgentStatus;
  /** Desired state now. Pure read; the returned object must not be mutated by the caller. */
  dataplane(): NodeDataplane;
  /** Called after every change of the desired state. Returns an unsubscribe function. */
  onDataplaneChange(listener: (dataplane: NodeDataplane) => void): () => void;
}

export const Encapsulation = {
  none: "none",
  vxlan: "vxlan",
  ipip: "ipip",
  sleeve: "sleeve",
  wireguard: "wireguard",
} as const;
export type Encapsulation = (typeof Encapsulation)[keyof typeof Encapsulation];

export interface Capabilities {
  /** Enforces networking.k8s.io/v1 NetworkPolicy (section F of the suite). */
  networkPolicy: boolean;
  /** Encrypts pod traffic between nodes (section G). */
  encryption: boolean;
  /** Encapsulations the backend can use. */
  encapsulations: Encapsulation[];
  /** Address families supported. */
  families: Family[];
}

/**
 * What a configuration promises, in terms the conformance suite checks. Derived from the parsed
 * config, never from running state.
 */
export interface NetworkSummary {
  /** Every pod address must fall inside one of these (per family). */
  podRanges: string[];
  /**
   * Whether traffic from a pod to an address outside every pod range is masqueraded to the node's
   * address (flannel ipMasq, Calico natOutgoing). Pod-to-pod traffic is never NATed.
   */
  natOutgoing: boolean;
  /** Encapsulations this config uses (for MTU expectations). */
  encapsulations: Encapsulation[];
  /**
   * Virtual time within which every node routes to a newly joined node's pods, and withdraws the
   * routes of a node that left cleanly.
   */
  convergenceMs: number;
  /** Virtual time within which a crashed node (no goodbye) is detected and its routes withdrawn. */
  crashDetectionMs: number;
  /**
   * Whether the backend needs every node on one underlay L2 subnet (host-gw). The suite then
   * builds single-subnet topologies for it.
   */
  requiresSingleSubnet?: boolean;
}

export interface Backend<C = unknown> {
  /** Lowercase, stable, unique among built-in backends (e.g. `flannel`). */
  readonly name: string;
  readonly capabilities: Capabilities;
  /**
   * Parses the anchor's own config format, unchanged, applying the anchor's defaults. Pure;
   * throws `ConfigError` (code 7) naming the field path and the rule, before anything is allocated.
   */
  parseConfig(input: unknown): C;
  /** What the parsed config promises (ranges, NAT, convergence bounds). Pure. */
  summarize(config: C): NetworkSummary;
  /** Creates the agent of one node. Does no I/O: `start()` does. */
  createAgent(ctx: AgentContext<C>): NodeAgent;
}

/** Identity helper that keeps the config type parameter: `export const x = defineBackend({...})`. */
export function defineBackend<C>(backend: Backend<C>): Backend<C> {
  if (!/^[a-z][a-z0-9-]*$/.test(backend.name)) {
    throw new TypeError(`defineBackend: name ${JSON.stringify(backend.name)} must be lowercase letters, digits and dashes`);
  }
  return Object.freeze({ ...backend });
}
