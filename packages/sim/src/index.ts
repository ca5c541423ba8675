/**
 * @cnikit/sim — a virtual cluster (underlay subnets joined by routers, nodes, pods, virtual clock)
 * that runs NodeAgents and walks packets through their desired dataplanes.
 */
export { clusterTopologyOf, defaultTopology, singleSubnetTopology, withUnderlayMtu, type FabricRouteEntry, type SimTopology } from "./topology.ts";
export { SimFabricPort, type SimFabricPortHost } from "./fabric-port.ts";
export { SimFabric } from "./fabric.ts";
export type { Endpoint, Hop, PacketResult, PairOutcome, ReachabilityOptions, ReachabilityReport, SendOptions } from "./types.ts";
export { SimCluster, type AddNodeOptions, type SimClusterOptions, type NodeMetadata, type SimNode, type SimPod, type StoreFaultStatus } from "./cluster.ts";
export { COMPACTION_MARKER_KEY, SandboxClock, SandboxStore, SandboxTransport, type CompactionFault } from "./sandbox.ts";
