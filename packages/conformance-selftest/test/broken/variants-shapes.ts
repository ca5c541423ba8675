/**
 * Broken variants on the flannel (vxlan + FDB, one subnet lease per node, host-local IPAM behind a
 * bridge) and calico (routed + BGP, block IPAM, /32 pods, NetworkPolicy) shapes (section H): the
 * bug classes of the reference variants re-expressed where the bug really lives in each shape (the
 * lease or block claim, the FDB of a newly joined VTEP, ignored lease removals and BGP withdraws,
 * the masquerade exception, the tunnel's MTU headroom, the IPAM release), plus classes of their own
 * (encapsulation skipped across subnets, node-local state lost at a restart, NetworkPolicy parser
 * mistakes). `knownGaps` holds the realistic ones the suite does not catch yet.
 */
import { fixtureConfig } from "@cnikit/core";
import type { Backend } from "@cnikit/core";
import { calico, calicoFixtures, ipPool } from "@cnikit/calico";
import { flannel, flannelFixtures } from "@cnikit/flannel";
import { bgpPeersFrozen } from "./bgp-peers-frozen.ts";
import { calicoFdbMissingNewestPeer, fdbMissingNewestPeer, hostGwRoutesFrozen } from "./fdb-missing-newest-peer.ts";
import { calicoCrossSubnetAsNever, flannelDirectRoutingAcrossSubnets } from "./encapsulation-skipped-across-subnets.ts";
import { forgetsNothingOf } from "./forgets-nothing.ts";
import { ipv6PeerRoutesMissing } from "./ipv6-peer-routes-missing.ts";
import { leakOnDelOf } from "./leak-on-del.ts";
import { leaveWithoutReleaseOf } from "./leave-without-release.ts";
import { localStateNotKeptOf } from "./local-state-not-kept.ts";
import { masqueradeNotRenderedOf } from "./masquerade-not-rendered.ts";
import { mtuWithoutEncapHeadroomOf } from "./mtu-without-encap-headroom.ts";
import { natOnlyOwnSubnetExceptedOf } from "./nat-only-own-subnet-excepted.ts";
import { nonIdempotentDelOf } from "./non-idempotent-del.ts";
import { policyForgetsEgressOf } from "./policy-forgets-egress.ts";
import { dropEndPort, dropIpBlockExcept, namedPortsDropped, policyRulesBentOf, policySpecBentOf, policyTypesBoth, protocolDropped, selectorsOred } from "./policy-ignores-fields.ts";
import { policyBlocksOwnNodeOf } from "./policy-blocks-own-node.ts";
import { policyIgnoresNamespaceSelectorOf } from "./policy-ignores-namespace-selector.ts";
import { endpointsNodeLocal } from "./endpoints-node-local.ts";
import { poolHostBitsMasked } from "./pool-host-bits-masked.ts";
import { poolMisread } from "./pool-misread.ts";
import { racyBlockClaim } from "./racy-block-claim.ts";
import { racyLeaseClaim } from "./racy-lease-claim.ts";
import { releaseNeverWritten } from "./release-never-written.ts";
import { reservedAddressOf } from "./reserved-address.ts";
import { subnetOutsideNetwork } from "./subnet-outside-network.ts";
import { tunnelAddressToPod } from "./tunnel-address-to-pod.ts";
import { unknownKeysIgnored } from "./unknown-keys-ignored.ts";
import type { BrokenVariant } from "./types.ts";
import { wrongErrorCodeOf } from "./wrong-error-code.ts";

const FLANNEL_VXLAN = fixtureConfig(flannelFixtures.configs, "vxlan");
const CALICO_BGP = fixtureConfig(calicoFixtures.configs, "bgp");
const CALICO_IPIP = fixtureConfig(calicoFixtures.configs, "ipip-always");
const CALICO_VXLAN = fixtureConfig(calicoFixtures.configs, "vxlan-crosssubnet");
const CALICO_IPIP_CROSS = fixtureConfig(calicoFixtures.configs, "ipip-crosssubnet");
const FLANNEL_DIRECT = fixtureConfig(flannelFixtures.configs, "vxlan-directrouting");
const FLANNEL_HOST_GW = fixtureConfig(flannelFixtures.configs, "host-gw");
/**
 * One /26 pool that is one block, IPIP always: every node shares the block (the first node claims
 * it, the others borrow from it), so allocations on different nodes meet in one block record.
 */
const CALICO_ONE_BLOCK = [ipPool("one-block", { cidr: "10.244.0.0/26", blockSize: 26, ipipMode: "Always", natOutgoing: true })];

const asUnknown = <C>(b: Backend<C>) => b as Backend<unknown>;

const flannelBase = {
  base: asUnknown(flannel),
  shape: "vxlan+fdb",
  config: FLANNEL_VXLAN,
  baseLabel: "flannel vxlan",
} as const;

/** flannel dual stack over the suite's IPv4 underlay (IPv6 pods ride flannel.<VNI>). */
const FLANNEL_DUAL_STACK = fixtureConfig(flannelFixtures.configs, "vxlan-dualstack");
const flannelDualStack = { base: asUnknown(flannel), shape: "vxlan+fdb", config: FLANNEL_DUAL_STACK, baseLabel: "flannel vxlan-dualstack" } as const;

/** flannel host-gw: a bridge and one lease per node, plain routes via the peers (the bridge + lease shape). */
const flannelHostGw = { base: asUnknown(flannel), shape: "bridge+lease", config: FLANNEL_HOST_GW, baseLabel: "flannel host-gw" } as const;

const flannelDirect = { base: asUnknown(flannel), shape: "vxlan+fdb", config: FLANNEL_DIRECT, baseLabel: "flannel vxlan-directrouting" } as const;

const calicoBgp = { base: asUnknown(calico), shape: "routed+bgp", config: CALICO_BGP, baseLabel: "calico bgp" } as const;
const calicoIpip = { base: asUnknown(calico), shape: "routed+bgp", config: CALICO_IPIP, baseLabel: "calico ipip-always" } as const;
const calicoVxlan = { base: asUnknown(calico), shape: "routed+bgp", config: CALICO_VXLAN, baseLabel: "calico vxlan-crosssubnet" } as const;
const calicoIpipCross = { base: asUnknown(calico), shape: "routed+bgp", config: CALICO_IPIP_CROSS, baseLabel: "calico ipip-crosssubnet" } as const;
const calicoOneBlock = { base: asUnknown(calico), shape: "routed+bgp", config: CALICO_ONE_BLOCK, baseLabel: "calico ipip, one shared /26 block" } as const;

export const flannelVariants: BrokenVariant[] = [
  {
    label: "flannel: duplicate address from a racy subnet lease claim (create without CAS)",
    backend: asUnknown(racyLeaseClaim),
    ...flannelBase,
    targets: ["ipam.concurrent-unique", "dyn.join-concurrent"],
    controls: ["ipam.unique", "cni.status"],
  },
  {
    label: "flannel: subnets leased outside Network (SubnetMin/SubnetMax off by one network)",
    backend: asUnknown(subnetOutsideNetwork),
    ...flannelBase,
    targets: ["ipam.in-range"],
    controls: ["ipam.unique", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "flannel: no FDB entry for a VTEP that joined after the first listing",
    backend: asUnknown(fdbMissingNewestPeer),
    ...flannelBase,
    targets: ["dyn.join"],
    controls: ["reach.pod-to-pod.cross-node", "dyn.restart"],
  },
  {
    label: "flannel DirectRouting: direct routes to peers on another L2 subnet too",
    backend: asUnknown(flannelDirectRoutingAcrossSubnets),
    ...flannelDirect,
    targets: ["reach.pod-to-pod.cross-node"],
    controls: ["reach.pod-to-pod.same-node", "ipam.unique"],
  },
  {
    label: "flannel: lease-removed events ignored (neighbour, FDB entry and route of a departed VTEP stay)",
    backend: asUnknown(forgetsNothingOf(flannel, "broken-flannel-ignores-lease-removal", { routes: (r) => r.onlink === true, neighbours: true, fdb: true })),
    ...flannelBase,
    targets: ["dyn.leave", "dyn.crash"],
    controls: ["dyn.join", "reach.pod-to-pod.cross-node"],
  },
  {
    // Invisible to stale detection that only knows a departed node's underlay address (the route's
    // next hop is the departed subnet's own network address, on the vxlan device).
    label: "flannel: a departed VTEP's 'via <subnet> onlink' route stays (neighbour and FDB entry removed)",
    backend: asUnknown(forgetsNothingOf(flannel, "broken-flannel-stale-onlink-route", { routes: (r) => r.onlink === true })),
    ...flannelBase,
    targets: ["dyn.leave", "dyn.crash"],
    controls: ["dyn.join", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "flannel: a clean leave keeps its subnet lease (no release)",
    backend: asUnknown(leaveWithoutReleaseOf(flannel, "broken-flannel-leave-without-release")),
    ...flannelBase,
    targets: ["dyn.leave"],
    controls: ["dyn.crash", "dyn.join"],
  },
  {
    label: "flannel host-gw: lease-removed events ignored (the route via a departed node stays)",
    backend: asUnknown(forgetsNothingOf(flannel, "broken-flannel-host-gw-ignores-lease-removal", { routes: (r) => r.origin?.startsWith("lease:") === true })),
    ...flannelHostGw,
    targets: ["dyn.leave", "dyn.crash"],
    controls: ["dyn.join", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "flannel host-gw: no route to a node that joined after the first listing",
    backend: asUnknown(hostGwRoutesFrozen),
    ...flannelHostGw,
    targets: ["dyn.join"],
    controls: ["reach.pod-to-pod.cross-node", "dyn.restart"],
  },
  {
    label: "flannel: masquerade exception only for the node's own subnet (NAT on cross-node pod traffic)",
    backend: asUnknown(natOnlyOwnSubnetExceptedOf(flannel, "broken-flannel-nat-own-subnet-only", "bridge subnet")),
    ...flannelBase,
    targets: ["reach.no-nat-between-pods"],
    controls: ["reach.pod-to-pod.same-node", "nat.outgoing"],
  },
  {
    label: "flannel: IPMasq parsed but no masquerade rule rendered",
    backend: asUnknown(masqueradeNotRenderedOf(flannel, "broken-flannel-no-masquerade")),
    ...flannelBase,
    targets: ["nat.outgoing"],
    controls: ["reach.no-nat-between-pods", "ipam.unique"],
  },
  {
    label: "flannel: host-local reservations lost at an agent restart",
    backend: asUnknown(localStateNotKeptOf(flannel, "broken-flannel-local-state-not-kept")),
    ...flannelBase,
    targets: ["dyn.restart"],
    controls: ["dyn.join", "cni.del-idempotent"],
  },
  {
    label: "flannel: address leaked on DEL (host-local reservation kept)",
    backend: asUnknown(leakOnDelOf(flannel, "broken-flannel-leak-on-del")),
    ...flannelBase,
    targets: ["cni.del-releases"],
    controls: ["cni.del-idempotent", "ipam.unique"],
  },
  {
    label: "flannel: non-idempotent DEL",
    backend: asUnknown(nonIdempotentDelOf(flannel, "broken-flannel-non-idempotent-del")),
    ...flannelBase,
    targets: ["cni.del-idempotent", "cni.del-unknown"],
    controls: ["cni.add-idempotent", "cni.del-releases"],
  },
  {
    label: "flannel: wrong error code for an invalid net-conf.json",
    backend: asUnknown(wrongErrorCodeOf(flannel, "broken-flannel-wrong-error-code")),
    ...flannelBase,
    invalidConfigs: flannelFixtures.invalidConfigs,
    targets: ["config.invalid-refused", "cni.error-codes"],
    controls: ["config.accepts-anchor-format", "cni.check-after-add"],
  },
  {
    label: "flannel: unknown net-conf.json keys ignored silently (a typo'd key is accepted)",
    backend: asUnknown(unknownKeysIgnored),
    ...flannelBase,
    invalidConfigs: flannelFixtures.invalidConfigs,
    targets: ["config.invalid-refused"],
    controls: ["config.accepts-anchor-format", "cni.error-codes"],
  },
  {
    label: "flannel: the bridge's gateway address handed to a pod",
    backend: asUnknown(reservedAddressOf(flannel, "broken-flannel-gateway-to-pod")),
    ...flannelBase,
    targets: ["ipam.reserved"],
    controls: ["ipam.in-range", "cni.del-idempotent"],
  },
  {
    label: "flannel: pod MTU without the 50-byte vxlan headroom",
    backend: asUnknown(mtuWithoutEncapHeadroomOf(flannel, "broken-flannel-mtu-no-vxlan-headroom")),
    ...flannelBase,
    targets: ["mtu.encap-headroom"],
    controls: ["reach.pod-to-pod.same-node", "ipam.unique"],
  },
  {
    label: "flannel dual stack: no IPv6 routes to other nodes' pod subnets",
    backend: asUnknown(ipv6PeerRoutesMissing),
    ...flannelDualStack,
    targets: ["reach.pod-to-pod.cross-node"],
    controls: ["reach.pod-to-pod.same-node", "ipam.unique"],
  },
];

export const calicoVariants: BrokenVariant[] = [
  {
    label: "calico: duplicate address from block writes without CAS (racy claim of a shared block)",
    backend: asUnknown(racyBlockClaim),
    ...calicoOneBlock,
    targets: ["ipam.unique", "ipam.concurrent-unique"],
    controls: ["cni.status", "cni.del-idempotent"],
  },
  {
    label: "calico: IPPool read with the wrong prefix length (blocks outside the pool)",
    backend: asUnknown(poolMisread),
    ...calicoBgp,
    targets: ["ipam.in-range"],
    controls: ["ipam.unique", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "calico: BGP peers rendered once (no route to a node that joins later)",
    backend: asUnknown(bgpPeersFrozen),
    ...calicoBgp,
    targets: ["dyn.join"],
    controls: ["reach.pod-to-pod.cross-node", "dyn.restart"],
  },
  {
    label: "calico: no VXLAN FDB entry for a node that joined after the first listing",
    backend: asUnknown(calicoFdbMissingNewestPeer),
    ...calicoVxlan,
    targets: ["dyn.join"],
    controls: ["reach.pod-to-pod.cross-node", "dyn.restart"],
  },
  {
    label: "calico IPIP CrossSubnet: peers on another subnet routed natively through the gateway",
    backend: asUnknown(calicoCrossSubnetAsNever),
    ...calicoIpipCross,
    targets: ["reach.pod-to-pod.cross-node"],
    controls: ["reach.pod-to-pod.same-node", "ipam.unique"],
  },
  {
    label: "calico: BGP withdraws ignored (a departed node's block route stays)",
    backend: asUnknown(forgetsNothingOf(calico, "broken-calico-ignores-withdraws", { routes: (r) => r.origin?.startsWith("bgp") === true })),
    ...calicoBgp,
    targets: ["dyn.leave", "dyn.crash"],
    controls: ["dyn.join", "reach.pod-to-pod.cross-node"],
  },
  {
    // cni.del-restores-dataplane compares the node's whole settled dataplane before the ADD and
    // after the DEL, and names the /32 route to the deleted pod's cali interface left behind.
    label: "calico: DEL leaves the pod's host route (felix never removes it)",
    backend: asUnknown(forgetsNothingOf(calico, "broken-calico-stale-pod-route", { routes: (r) => r.origin?.startsWith("pod:") === true })),
    ...calicoBgp,
    targets: ["cni.del-restores-dataplane"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: natOutgoing exception only for the node's own blocks (NAT on cross-node pod traffic)",
    backend: asUnknown(natOnlyOwnSubnetExceptedOf(calico, "broken-calico-nat-own-blocks-only", "affine blocks")),
    ...calicoBgp,
    targets: ["reach.no-nat-between-pods"],
    controls: ["reach.pod-to-pod.same-node", "nat.outgoing"],
  },
  {
    label: "calico: natOutgoing parsed but no masquerade rule rendered",
    backend: asUnknown(masqueradeNotRenderedOf(calico, "broken-calico-no-masquerade")),
    ...calicoBgp,
    targets: ["nat.outgoing"],
    controls: ["reach.no-nat-between-pods", "ipam.unique"],
  },
  {
    label: "calico: pod records lost at an agent restart",
    backend: asUnknown(localStateNotKeptOf(calico, "broken-calico-local-state-not-kept")),
    ...calicoBgp,
    targets: ["dyn.restart"],
    controls: ["dyn.join", "cni.del-idempotent"],
  },
  {
    label: "calico: IPAM release never written (address leaked on DEL)",
    backend: asUnknown(releaseNeverWritten),
    ...calicoBgp,
    targets: ["cni.del-releases"],
    controls: ["cni.del-idempotent", "ipam.unique"],
  },
  {
    label: "calico: non-idempotent DEL",
    backend: asUnknown(nonIdempotentDelOf(calico, "broken-calico-non-idempotent-del")),
    ...calicoBgp,
    targets: ["cni.del-idempotent", "cni.del-unknown"],
    controls: ["cni.add-idempotent", "cni.del-releases"],
  },
  {
    label: "calico: wrong error code for invalid Calico resources",
    backend: asUnknown(wrongErrorCodeOf(calico, "broken-calico-wrong-error-code")),
    ...calicoBgp,
    invalidConfigs: calicoFixtures.invalidConfigs,
    targets: ["config.invalid-refused", "cni.error-codes"],
    controls: ["config.accepts-anchor-format", "cni.check-after-add"],
  },
  {
    label: "calico: an IPPool CIDR with host bits masked silently instead of refused",
    backend: asUnknown(poolHostBitsMasked),
    ...calicoBgp,
    invalidConfigs: calicoFixtures.invalidConfigs,
    targets: ["config.invalid-refused"],
    controls: ["config.accepts-anchor-format", "cni.error-codes"],
  },
  {
    label: "calico: the node's IPIP tunnel address handed to a pod",
    backend: asUnknown(tunnelAddressToPod),
    ...calicoIpip,
    targets: ["ipam.reserved"],
    controls: ["ipam.in-range", "cni.del-idempotent"],
  },
  {
    label: "calico: IPIP pod MTU without the 20-byte headroom",
    backend: asUnknown(mtuWithoutEncapHeadroomOf(calico, "broken-calico-mtu-no-ipip-headroom")),
    ...calicoIpip,
    targets: ["mtu.encap-headroom"],
    controls: ["reach.pod-to-pod.same-node", "ipam.unique"],
  },
  {
    label: "calico: VXLAN pod MTU without the 50-byte headroom",
    backend: asUnknown(mtuWithoutEncapHeadroomOf(calico, "broken-calico-mtu-no-vxlan-headroom")),
    ...calicoVxlan,
    targets: ["mtu.encap-headroom"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: NetworkPolicy that ignores namespaceSelector",
    backend: asUnknown(policyIgnoresNamespaceSelectorOf(calico, "broken-calico-policy-ignores-namespace-selector")),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: NetworkPolicy that forgets egress",
    backend: asUnknown(policyForgetsEgressOf(calico, "broken-calico-policy-forgets-egress")),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.same-node", "dyn.join"],
  },
  {
    label: "calico: NetworkPolicy ipBlock.except ignored",
    backend: asUnknown(policyRulesBentOf(calico, "broken-calico-policy-ignores-except", dropIpBlockExcept)),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: NetworkPolicy peer with namespaceSelector and podSelector read as OR",
    backend: asUnknown(policyRulesBentOf(calico, "broken-calico-policy-selectors-ored", selectorsOred)),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: NetworkPolicy named ports dropped (a rule of named ports allows every port)",
    backend: asUnknown(policyRulesBentOf(calico, "broken-calico-policy-named-ports-dropped", namedPortsDropped)),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: NetworkPolicy port protocol dropped (every port rule is TCP)",
    backend: asUnknown(policyRulesBentOf(calico, "broken-calico-policy-protocol-dropped", protocolDropped)),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: NetworkPolicy policyTypes read as both directions (an ingress policy isolates egress too)",
    backend: asUnknown(policySpecBentOf(calico, "broken-calico-policy-types-both", policyTypesBoth)),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: policy peers matched against this node's endpoints only",
    backend: asUnknown(endpointsNodeLocal),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "dyn.join"],
  },
  {
    label: "calico: NetworkPolicy endPort ignored (a port range allows its first port only)",
    backend: asUnknown(policyRulesBentOf(calico, "broken-calico-policy-ignores-end-port", dropEndPort)),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "calico: pod isolation also blocks the pod's own node (kubelet probes of an isolated pod fail)",
    backend: asUnknown(policyBlocksOwnNodeOf(calico, "broken-calico-policy-blocks-own-node")),
    ...calicoBgp,
    targets: ["policy.matrix"],
    controls: ["reach.node-to-pod", "ipam.unique"],
  },
  {
    label: "calico: a clean leave keeps its blocks, handles and node record (no release)",
    backend: asUnknown(leaveWithoutReleaseOf(calico, "broken-calico-leave-without-release")),
    ...calicoBgp,
    targets: ["dyn.leave"],
    controls: ["dyn.crash", "dyn.join"],
  },
];

/** Every variant on the flannel and calico shapes. */
export const shapeVariants: BrokenVariant[] = [...flannelVariants, ...calicoVariants];

/**
 * A realistic broken variant the current suite stays green on: the check that should catch it and
 * why it does not yet. Not run by the self-test (it would fail); moved into the lists above once
 * the check catches it.
 */
export interface KnownGap {
  variant: BrokenVariant;
  /** The check that should turn red on it. */
  check: string;
  why: string;
}

export const knownGaps: KnownGap[] = [];
