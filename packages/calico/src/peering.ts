/**
 * Whom a Calico node peers with over BGP (calico/node's confd): node records in the store, and the
 * pure choice of BGP peers from them.
 *
 * Every agent publishes its node record at `/calico/resources/v3/projectcalico.org/nodes/<name>`
 * (underlay address, labels, route-reflector cluster id, tunnel addresses, VXLAN MAC), as Calico
 * does in its own datastore. The contract's membership (`ctx.members`) names the cluster's nodes
 * too, but not what BGP and the tunnels need, which is why calico keeps its node records and finds
 * its peers there (real Calico does the same): the record carries the node's BGP configuration as
 * its agent resolved it (labels merged with the Node resource's, the route-reflector cluster id
 * from the resource or the annotation, checked), the tunnel addresses its agent allocated by block
 * IPAM and its VXLAN MAC; and it exists only once calico runs on the node, so nobody dials a member
 * that has no speaker yet.
 */
import { ConfigError } from "@cnikit/core";
import type { KeyValue, NodeInfo } from "@cnikit/core";
import type { PeerConfig } from "bgp-utils-free";
import type { CalicoConfig } from "./config.ts";
import type { NodeRecord } from "./plan.ts";
import { parseSelector } from "./selector.ts";

export const NODE_PREFIX = "/calico/resources/v3/projectcalico.org/nodes/";

const C = "calico";

/** The store key of a node's record. */
export function nodeKey(name: string): string {
  return `${NODE_PREFIX}${name}`;
}

/** A node record as stored (undefined for a value that is not JSON: such a key names no node). */
export function decodeNode(kv: KeyValue): NodeRecord | undefined {
  try {
    return JSON.parse(kv.value) as NodeRecord;
  } catch {
    return undefined;
  }
}

/** The labels a node has: the Node resource's in the config, then the runtime's. */
export function nodeLabels(config: CalicoConfig, name: string, runtime: Record<string, string> = {}): Record<string, string> {
  return { ...(config.nodes.find((n) => n.name === name)?.labels ?? {}), ...runtime };
}

/** Kubernetes node annotation that makes a node a route reflector (calico/node reads it too). */
export const RR_CLUSTER_ID_ANNOTATION = "projectcalico.org/RouteReflectorClusterID";

/**
 * The node's route-reflector cluster id: its Node resource's `spec.bgp.routeReflectorClusterID`,
 * else the Kubernetes node annotation `projectcalico.org/RouteReflectorClusterID`. Throws
 * `ConfigError` when the annotation is not a dotted-quad IPv4 address (Calico's rule for the field).
 */
export function routeReflectorClusterId(config: CalicoConfig, node: NodeInfo): string | undefined {
  const fromResource = config.nodes.find((n) => n.name === node.name)?.routeReflectorClusterID;
  if (fromResource !== undefined) return fromResource;
  const value = node.annotations?.[RR_CLUSTER_ID_ANNOTATION];
  if (value === undefined) return undefined;
  if (!/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(value)) {
    throw new ConfigError({ component: C, field: `node.annotations["${RR_CLUSTER_ID_ANNOTATION}"]`, rule: "must be an IPv4 address in dotted-quad form", value });
  }
  return value;
}

/**
 * The BGP peers of `self` given every known node (Calico's confd logic): the full mesh among
 * non-reflector nodes when `nodeToNodeMeshEnabled`; BGPPeer selectors in both directions
 * (reversePeering Auto); a reflector treats iBGP peers outside its cluster id as clients. Pure.
 */
export function desiredPeers(config: CalicoConfig, self: NodeRecord, nodes: readonly NodeRecord[]): PeerConfig[] {
  const rrId = (n: NodeRecord) => n.routeReflectorClusterID ?? config.nodes.find((x) => x.name === n.name)?.routeReflectorClusterID;
  const asOf = (n: string) => config.nodes.find((x) => x.name === n)?.asNumber ?? config.bgp.asNumber;
  const myRr = rrId(self);
  const out = new Map<string, PeerConfig>();
  const add = (n: NodeRecord) => {
    if (n.name === self.name || out.has(n.address)) return;
    const theirRr = rrId(n);
    const peer: PeerConfig = { address: n.address, asn: asOf(n.name), passive: self.address > n.address, description: n.name };
    if (myRr !== undefined && theirRr !== myRr) peer.routeReflectorClient = true;
    out.set(n.address, peer);
  };
  if (config.bgp.nodeToNodeMeshEnabled && myRr === undefined) for (const n of nodes) if (rrId(n) === undefined) add(n);
  for (const p of config.peers) {
    const matchesNode = (n: NodeRecord) => (p.node !== undefined ? p.node === n.name : parseSelector(p.nodeSelector ?? "all()", "nodeSelector")(n.labels));
    if (p.peerSelector !== undefined) {
      const sel = parseSelector(p.peerSelector, "peerSelector");
      if (matchesNode(self)) for (const n of nodes) if (sel(n.labels)) add(n);
      if (sel(self.labels)) for (const n of nodes) if (matchesNode(n)) add(n);
    } else if (p.peerIP !== undefined && matchesNode(self)) {
      const known = nodes.find((n) => n.address === p.peerIP);
      if (known) add(known);
      else if (!out.has(p.peerIP)) out.set(p.peerIP, { address: p.peerIP, asn: p.asNumber ?? config.bgp.asNumber, description: p.name });
    }
  }
  return [...out.values()].sort((a, b) => (a.address < b.address ? -1 : 1));
}
