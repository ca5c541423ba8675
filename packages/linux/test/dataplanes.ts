/**
 * Dataplanes the real planners produce for small clusters (node i has underlay 192.168.50.i/24 on
 * `eth0`), so the kernel tests render what flannel and calico actually ask for.
 */
import type { NodeDataplane, NodeInfo } from "@cnikit/core";
import { parseFlannelConfig } from "@cnikit/flannel";
import { deriveVtepMac, planDataplane as flannelPlan } from "@cnikit/flannel/internal";
import { ipPool, parseCalicoConfig } from "@cnikit/calico";
import { planDataplane as calicoPlan, type NodeRecord } from "@cnikit/calico/internal";

/** Underlay address of node `i` (1-based). */
export function nodeAddress(i: number): string {
  return `192.168.50.${i}`;
}

function nodeInfo(i: number): NodeInfo {
  return { name: `n${i}`, underlay: [{ iface: "eth0", address: nodeAddress(i), prefixLength: 24, gateway: "192.168.50.254" }] };
}

/** A pod of a test: its slot on the node and its netns path. */
export interface TestPod {
  id: number;
  netns: string;
}

/**
 * Node `self`'s flannel dataplane in a cluster of `nodes` nodes (leases 10.244.<i>.0/24), with
 * `pods` (pod `id` gets 10.244.<self>.<id + 1>).
 */
export function flannelDataplane(input: { backend: "vxlan" | "host-gw"; self: number; nodes: number; pods: readonly TestPod[] }): NodeDataplane {
  const config = parseFlannelConfig({ Network: "10.244.0.0/16", Backend: { Type: input.backend } });
  const leases = Array.from({ length: input.nodes }, (_, k) => {
    const i = k + 1;
    const attrs = { PublicIP: nodeAddress(i), BackendType: input.backend, NodeName: `n${i}`, ...(input.backend === "vxlan" ? { BackendData: { VNI: 1, VtepMAC: deriveVtepMac(`n${i}`, 4) } } : {}) };
    return { key: `/coreos.com/network/subnets/10.244.${i}.0-24`, subnet: `10.244.${i}.0/24`, attrs, createRevision: i, modRevision: i };
  });
  const self = input.self;
  return flannelPlan({
    config,
    node: nodeInfo(self),
    lease: { subnet: `10.244.${self}.0/24`, key: leases[self - 1]!.key },
    vtepMacs: { v4: deriveVtepMac(`n${self}`, 4) },
    peers: leases,
    pods: input.pods.map((p) => ({ containerId: `f${self}x${p.id}`, ifName: "eth0", addresses: [`10.244.${self}.${p.id + 1}`], netns: p.netns })),
  });
}

/**
 * Node `self`'s calico dataplane (pool 10.245.0.0/16, block 10.245.<self>.0/26 per node, every
 * other node's block learned via BGP), no encapsulation or VXLAN Always. Pod `id` gets
 * 10.245.<self>.<id + 2>.
 */
export function calicoDataplane(input: { mode: "none" | "vxlan"; self: number; nodes: number; pods: readonly TestPod[]; natOutgoing?: boolean }): NodeDataplane {
  const config = parseCalicoConfig([ipPool("p", { cidr: "10.245.0.0/16", natOutgoing: input.natOutgoing ?? true, ...(input.mode === "vxlan" ? { vxlanMode: "Always" } : {}) })]);
  const self = input.self;
  const records = new Map<string, NodeRecord>();
  for (let i = 1; i <= input.nodes; i++) {
    records.set(nodeAddress(i), { name: `n${i}`, address: nodeAddress(i), prefixLength: 24, labels: {}, vxlanTunnelAddr: `10.245.${i}.0`, vxlanMac: `ee:00:00:00:00:0${i}` });
  }
  const learned = [];
  for (let i = 1; i <= input.nodes; i++) if (i !== self) learned.push({ prefix: `10.245.${i}.0/26`, nextHop: nodeAddress(i) });
  return calicoPlan({
    config,
    node: nodeInfo(self),
    blocks: [`10.245.${self}.0/26`],
    learned,
    peers: [...records.values()],
    pods: input.pods.map((p) => ({ containerId: `c${self}x${p.id}`, ifName: "eth0", address: `10.245.${self}.${p.id + 2}`, handle: `h${p.id}`, netns: p.netns })),
    ...(input.mode === "vxlan" ? { vxlanTunnelAddr: `10.245.${self}.0`, vxlanMac: `ee:00:00:00:00:0${self}` } : {}),
  });
}
