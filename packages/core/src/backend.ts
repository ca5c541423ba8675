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
 * Contract v2 — what a gossip mesh and a cloud control plane need beside the store:
 *
 *  - Membership (`ctx.members`, `Membership`): the cluster's nodes as the cluster's node registry
 *    knows them (Kubernetes Node objects; in cnikit mirrored under `KUBE_PREFIX.nodes`), with a
 *    change subscription whose events arrive on the provider's clock. A store-less mesh dials its
 *    peers from it; a backend with a datastore may still ignore it. A crashed node stays a member
 *    (Kubernetes keeps the Node object until the node controller or an operator deletes it); a clean
 *    leave or a deletion removes it. Core's `MemoryMembership`, `scopedMembership` and
 *    `watchStoreMembership` (membership.ts) are the one implementation every provider uses.
 *  - Cluster-level controller (`Backend.createController`, optional): run once per cluster (by the
 *    simulator, the conformance harness, the lab and the `cnikit-controller` process) for control
 *    planes outside the nodes, e.g. a VNet allocator. It gets `ControllerContext`: the store,
 *    membership, and a `FabricPort` through which it programs the underlay fabric as a cloud SDN
 *    does: routes on the "VNet" (destination prefix → node) and secondary addresses on a node's
 *    underlay interface. Nodes see the secondary addresses the fabric gave them through membership
 *    (`UnderlayInterface.secondaryAddresses` of their own member record), never through a side
 *    channel; fabric routes are not visible to nodes (a VNet's route table is the cloud's).
 *  - `summarize(config, cluster)`: promises may depend on the topology (an Azure-like backend's pod
 *    ranges are the node subnets). What the suite must decide before any cluster exists (the
 *    topology to build) comes from `topologyNeeds(config)`, which depends on the config alone.
 *
 * Userspace datapaths (`Backend.userspaceDatapath`, optional): a link kind the kernel has no device
 * for (Weave's sleeve) can still be rendered on a kernel when the backend runs its forwarding in
 * userspace. The host of the renderer (cnikitd) asks the backend once for a `UserspaceDatapath`
 * and hands it to the renderer; for a desired link of one of its `kinds` the renderer calls
 * `ensure(link)` (the datapath makes a TAP named as the link, in the namespace of the process it
 * runs in) instead of `ip link add`, then sets the device's MAC, MTU, master and up itself as for
 * any owned link; it passes the link's FDB entries (the peers' underlay addresses) with `setFdb`
 * instead of `bridge fdb`, and calls `remove(name)` when the link goes. `status()` gives one line
 * per device for STATUS and logs; `stop()` (the host, when it stops) ends every device and the
 * processes behind them by PID. The datapath lives in the renderer's host process: the devices go
 * with it. Without a datapath for a kind the renderer refuses such a link ("kernel lacks ...").
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
import type { Family, FdbEntry, Link, NodeDataplane } from "./dataplane.ts";
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
  /**
   * Further addresses of the node on this interface's subnet, given by the fabric (a cloud's
   * secondary IP configurations, `FabricPort.addSecondaryAddress`). Plain addresses, canonical,
   * sorted; absent = none. The fabric delivers packets for a secondary address to the node, and the
   * node answers ARP (NDP) for it on this interface. The node takes the packet itself unless its own
   * dataplane routes the address elsewhere with a host route (`<addr>/32`, or /128, unicast with a
   * `dev`, the best of its metrics) in the main table — a pod that holds it, as Azure CNI's
   * transparent mode does with a NIC's secondary IP configurations; then the node forwards it there
   * (forwarding on; the pod's replies leave with the secondary address as source). When that route
   * goes (the pod deleted) the address is the node's own again. `address` (the primary) is always
   * local. The simulator decides this per dataplane; the lab keeps the address on the interface and
   * lets a main-table host route win over the local table for exactly that address (policy rules).
   */
  secondaryAddresses?: string[];
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
  /**
   * The cluster's nodes (this one included) and their changes: whom a store-less backend dials.
   * Complete when the agent is created (providers hand it over after their first listing).
   */
  members: Membership;
}

/**
 * What changed in the membership. `joined`: a node not known before; `updated`: a known node's
 * record changed (labels, annotations, underlay, secondary addresses); `left`: the node was
 * removed (a clean leave or a deletion; never a mere crash), with its last record.
 */
export type MembershipEvent = { type: "joined"; node: NodeInfo } | { type: "updated"; node: NodeInfo; previous: NodeInfo } | { type: "left"; node: NodeInfo };

/**
 * The cluster's nodes as the node registry knows them (Kubernetes Node objects). A crashed node
 * stays a member until it is deleted; liveness is the backend's own business (heartbeats, leases).
 */
export interface Membership {
  /** The current members, sorted by name. Cheap and synchronous; never throws. Do not mutate. */
  list(): NodeInfo[];
  /** One member by name, or undefined. Cheap and synchronous; never throws. */
  get(name: string): NodeInfo | undefined;
  /**
   * Calls `listener` once per change, in order, on the provider's clock (a timer of 0 ms: in the
   * simulator, in virtual time, never synchronously inside the call that made the change). By the
   * time an event arrives `list()` already reflects it (and maybe later changes too): treat events
   * as "look again at this node". A listener that throws does not stop the others. Returns an
   * unsubscribe function (idempotent).
   */
  onChange(listener: (event: MembershipEvent) => void): () => void;
}

/** A route on the fabric (the "VNet" route table): packets to `dst` are carried to `node`. */
export interface FabricRoute {
  /** Destination prefix, canonical CIDR (e.g. `10.244.3.0/24`). */
  dst: string;
  /** The node the fabric delivers `dst` to (at its underlay address of `dst`'s family). */
  node: string;
}

/** A secondary address of a node's underlay interface (a cloud's secondary IP configuration). */
export interface FabricAddress {
  node: string;
  /** Plain address inside the subnet of one of the node's underlay interfaces. */
  address: string;
}

/**
 * The underlay fabric as a cloud SDN exposes it to a cluster-level controller. Every method is
 * idempotent and may be called concurrently; writes take effect for every node's traffic at once
 * (the simulator's routers, the lab's router namespace, a cloud's route table).
 */
export interface FabricPort {
  /**
   * Routes `dst` to `node`; a route for the same `dst` to another node is replaced. Throws
   * `ConfigError` naming `dst` (not a CIDR) or `node` (not a member, or no underlay address of the
   * family), `TryAgainError` (11) when the fabric could not be reached (nothing changed).
   */
  setRoute(route: FabricRoute): Promise<void>;
  /** Removes the route for `dst` (a CIDR); absent already is fine. Throws like `setRoute`. */
  deleteRoute(dst: string): Promise<void>;
  /** The fabric's routes, sorted by `dst`. */
  routes(): Promise<FabricRoute[]>;
  /**
   * Gives `node` the secondary address: the fabric delivers packets for it to the node, which
   * answers ARP for it on that interface and sees it in its member record's
   * `UnderlayInterface.secondaryAddresses`. The node takes the packet itself unless its own
   * dataplane routes the address elsewhere with a host route (`<addr>/32`, or /128) in the main
   * table — a pod that holds it, as Azure CNI's transparent mode does with a NIC's secondary IP
   * configurations; then the node forwards it there (see `UnderlayInterface.secondaryAddresses`).
   * Throws `ConfigError` naming `address` when it lies outside every underlay subnet of the node or
   * is another node's (primary or secondary).
   */
  addSecondaryAddress(a: FabricAddress): Promise<void>;
  /** Takes a secondary address back; absent already is fine. */
  removeSecondaryAddress(a: FabricAddress): Promise<void>;
  /** The secondary addresses given out, sorted by node then address. */
  secondaryAddresses(): Promise<FabricAddress[]>;
}

export interface ControllerContext<C> {
  /** The parsed configuration (`Backend.parseConfig`'s output). */
  config: C;
  /** Cluster-wide shared state, the same the agents use. */
  store: Datastore;
  /** The cluster's nodes and their changes (see `Membership`). */
  members: Membership;
  /** The underlay fabric this controller programs. */
  fabric: FabricPort;
  clock: Clock;
  log: Logger;
  /** Deterministic randomness (seeded in tests and the simulator). Returns [0, 1). */
  random: () => number;
}

export interface ControllerStatus {
  /** True when the controller has reconciled at least once and keeps up. */
  ready: boolean;
  /** Why not ready, in words a person can act on. */
  reason?: string;
}

/** The cluster-level part of a backend: one per cluster, outside the nodes. */
export interface ClusterController {
  /**
   * Starts reconciling (watch membership and store, program the fabric). Resolves after the first
   * reconcile, so the nodes' agents that start afterwards find what it prepared. Not re-entrant:
   * call once. Throws `ConfigError` for a config it cannot serve, `TryAgainError` (11) when the
   * store or fabric stayed unavailable.
   */
  start(): Promise<void>;
  /**
   * Stops timers and watches. Leaves what it programmed in place (a restarted controller takes it
   * over). Idempotent; never throws for "already stopped".
   */
  stop(): Promise<void>;
  /** Cheap and synchronous; never throws. */
  status(): ControllerStatus;
}

/** An underlay subnet of the cluster. */
export interface ClusterSubnet {
  /** Canonical CIDR, e.g. `198.51.100.0/24`. */
  cidr: string;
  /** A name for reports (the simulator's subnet name, a cloud's subnet id), if any. */
  name?: string;
}

/**
 * The topology `summarize` may depend on: the underlay subnets nodes sit on and the nodes known
 * when asked. The suite asks before the first node joins (`nodes` is then empty): promises must
 * hold for every set of nodes on these subnets.
 */
export interface ClusterTopology {
  /** Subnets that host (or will host) nodes. */
  subnets: ClusterSubnet[];
  nodes: NodeInfo[];
}

/** What a config needs of the underlay before any cluster exists (decided from the config alone). */
export interface TopologyNeeds {
  /** Every node on one L2 subnet (host-gw: next hops are peers' underlay addresses). */
  singleSubnet: boolean;
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
  /**
   * Optional introspection, for agents that speak BGP (absent: the agent has no BGP sessions): one
   * entry per configured BGP peer, sorted by `peer`, as it stands now. Tools (the benchmark's
   * `bgp-session` and `graceful-restart` scenarios, status pages) read it; nothing in the contract
   * depends on it. Cheap and synchronous; never throws; empty before `start()`.
   */
  bgpSessions?(): BgpSessionStatus[];
}

/** One BGP session of a node's agent (`NodeAgent.bgpSessions`). Times are `ctx.clock` ms. */
export interface BgpSessionStatus {
  /** The peer's node name, or its address when it is no node of the cluster. */
  peer: string;
  /** The peer's address (the session's remote end). */
  address: string;
  /** RFC 4271 §8 state of the session. */
  state: "Idle" | "Connect" | "Active" | "OpenSent" | "OpenConfirm" | "Established";
  /** When the current session reached Established (absent while not Established). */
  establishedAt?: number;
  /**
   * When the peer's End-of-RIB marker (RFC 4724 §2) had arrived for every negotiated family in the
   * current session: the peer's initial table is complete (absent until then).
   */
  endOfRibReceivedAt?: number;
  /** Whether graceful restart (RFC 4724) was negotiated in the current session. */
  gracefulRestart: boolean;
  /** Routes of this peer kept as stale while it restarts gracefully (0 otherwise). */
  staleRoutes: number;
  /** Routes received from the peer (stale ones included). */
  routesReceived: number;
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
   * Whether this config encrypts pod traffic between nodes (section G). Absent means what
   * `capabilities.encryption` says; a backend that can encrypt but not in every config (Weave
   * without a password) says false for the configs that do not.
   */
  encrypted?: boolean;
}

/**
 * Forwarding the kernel lacks, run in userspace for links of `kinds` (see the header). Methods are
 * called by one renderer, one at a time.
 */
export interface UserspaceDatapath {
  /** The link kinds it builds (e.g. `["sleeve"]`). */
  readonly kinds: readonly Link["kind"][];
  /**
   * Makes the device for `link` run (a TAP named `link.name`, not yet up, no master), or keeps the
   * running one when it matches `link`. Resolves true when it (re)created the device (the renderer
   * then configures it again). Rejects with a `CniError` (e.g. `KernelLacksError` "tun", a missing
   * helper, a port in use) naming what is missing.
   */
  ensure(link: Link): Promise<boolean>;
  /** The link's FDB entries (all of them, replacing what it had): the peers to forward to. */
  setFdb(link: string, entries: readonly FdbEntry[]): void;
  /** Whether a device named `link` runs. */
  has(link: string): boolean;
  /** Stops the device of `link` (it disappears from the kernel). Idempotent. */
  remove(link: string): Promise<void>;
  /** One line per device: what it carries, its peers, drops, refusals. */
  status(): string[];
  /** Stops every device (their helpers by PID). Idempotent. */
  stop(): Promise<void>;
}

/** What `Backend.userspaceDatapath` gets: the parsed config and the node it runs on. */
export interface UserspaceDatapathContext<C> {
  config: C;
  node: NodeInfo;
  log: Logger;
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
  /**
   * What the parsed config promises (ranges, NAT, convergence bounds) on `cluster`. Pure. Callers
   * that know the cluster pass it (the suite, the lab and tools always do); absent means "any
   * cluster": a backend whose promises depend on the topology then returns what holds for every
   * cluster its config allows, or throws `ConfigError` naming `cluster`. Backends that do not
   * depend on the topology declare one parameter.
   */
  summarize(config: C, cluster?: ClusterTopology): NetworkSummary;
  /**
   * What the config needs of the underlay, from the config alone (the suite picks the topology
   * with it before any cluster exists). Pure. Absent: see `topologyNeedsOf`.
   */
  topologyNeeds?(config: C): TopologyNeeds;
  /** Creates the agent of one node. Does no I/O: `start()` does. */
  createAgent(ctx: AgentContext<C>): NodeAgent;
  /**
   * Creates the cluster-level controller (absent: the backend has none). Run once per cluster,
   * started before the nodes' agents. Does no I/O: `start()` does.
   */
  createController?(ctx: ControllerContext<C>): ClusterController;
  /**
   * The userspace datapath for link kinds the kernel lacks (absent: the backend's links are all
   * kernel devices). Does no I/O: `ensure` does. See the header.
   */
  userspaceDatapath?(ctx: UserspaceDatapathContext<C>): UserspaceDatapath;
}

/**
 * A config's topology needs: `backend.topologyNeeds(config)`, else none (a backend without
 * `topologyNeeds` works across routed subnets). Pure; throws what `topologyNeeds` throws.
 */
export function topologyNeedsOf<C>(backend: Backend<C>, config: C): TopologyNeeds {
  return backend.topologyNeeds ? backend.topologyNeeds(config) : { singleSubnet: false };
}

/** Identity helper that keeps the config type parameter: `export const x = defineBackend({...})`. */
export function defineBackend<C>(backend: Backend<C>): Backend<C> {
  if (!/^[a-z][a-z0-9-]*$/.test(backend.name)) {
    throw new TypeError(`defineBackend: name ${JSON.stringify(backend.name)} must be lowercase letters, digits and dashes`);
  }
  return Object.freeze({ ...backend });
}
