/**
 * Broken variants for section B's lifecycle scenarios (conformance.md section H), spread over the
 * three shapes: release observed without requested IPs (a leak kept only in memory; an orphan block
 * ordinal), release by an agent restarted since the ADD, sandbox re-creation, DEL after the address was reused, DEL of one interface of a
 * multi-interface container, a failed ADD's record left in ctx.local, and ADD results that
 * disagree with the dataplane.
 */
import { fixtureConfig } from "@cnikit/core";
import type { Backend } from "@cnikit/core";
import { calico, calicoFixtures } from "@cnikit/calico";
import { flannel, flannelFixtures } from "@cnikit/flannel";
import { reference } from "@cnikit/reference";
import { blockOrdinalKeptOnDel, blockOrdinalQuarantinedOnDel } from "./block-ordinal-kept-on-del.ts";
import { delByPodName } from "./del-by-pod-name.ts";
import { delReleasesByRememberedIp } from "./del-releases-by-remembered-ip.ts";
import { delTearsDownContainer } from "./del-tears-down-container.ts";
import { failedAddLeavesIntent } from "./failed-add-leaves-intent.ts";
import { leakInMemoryRefusesRequestedIps } from "./leak-in-memory-refuses-requested-ips.ts";
import { resultGatewayOfNetwork } from "./result-gateway-of-network.ts";
import { restoredPodLeaksOnDel } from "./restored-pod-leaks-on-del.ts";
import { resultMtuWithoutHeadroom } from "./result-mtu-without-headroom.ts";
import type { BrokenVariant } from "./types.ts";

const asUnknown = <C>(b: Backend<C>) => b as Backend<unknown>;

const referenceBase = { base: asUnknown(reference), shape: "bridge+lease", config: { network: "10.250.0.0/16" }, baseLabel: "reference" } as const;
const flannelVxlan = { base: asUnknown(flannel), shape: "vxlan+fdb", config: fixtureConfig(flannelFixtures.configs, "vxlan"), baseLabel: "flannel vxlan" } as const;
const calicoBgp = { base: asUnknown(calico), shape: "routed+bgp", config: fixtureConfig(calicoFixtures.configs, "bgp"), baseLabel: "calico bgp" } as const;
const calicoIpip = { base: asUnknown(calico), shape: "routed+bgp", config: fixtureConfig(calicoFixtures.configs, "ipip-always"), baseLabel: "calico ipip-always" } as const;

export const lifecycleVariants: BrokenVariant[] = [
  {
    label: "flannel: every DEL and GC leaks, only in memory (no record in either store), and requestedIps are refused",
    backend: asUnknown(leakInMemoryRefusesRequestedIps),
    ...flannelVxlan,
    targets: ["cni.del-releases", "cni.gc"],
    controls: ["cni.add-result", "cni.check-after-add"],
  },
  {
    label: "calico: DEL and GC leave the block ordinal allocated (orphan), and requestedIps are refused",
    backend: asUnknown(blockOrdinalKeptOnDel),
    ...calicoBgp,
    targets: ["cni.del-releases", "cni.gc"],
    controls: ["cni.check-after-add", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "calico: DEL and GC quarantine the block ordinal under an anonymous marker, never cleared (no pod named in any store), and requestedIps are refused",
    backend: asUnknown(blockOrdinalQuarantinedOnDel),
    ...calicoBgp,
    targets: ["cni.del-releases", "cni.gc"],
    controls: ["cni.check-after-add", "cni.sandbox-recreate"],
  },
  {
    label: "reference: after an agent restart, DEL of a pod restored from ctx.local keeps its address reserved",
    backend: asUnknown(restoredPodLeaksOnDel),
    ...referenceBase,
    targets: ["cni.del-releases"],
    controls: ["cni.del-idempotent", "cni.gc"],
  },
  {
    label: "reference: the old sandbox's DEL removes the new sandbox of the same pod (DEL by pod name)",
    backend: asUnknown(delByPodName),
    ...referenceBase,
    targets: ["cni.sandbox-recreate"],
    controls: ["cni.del-releases", "cni.multi-interface"],
  },
  {
    label: "calico: a DEL repeated after reuse releases the other pod's address (DEL by remembered IP)",
    backend: asUnknown(delReleasesByRememberedIp),
    ...calicoBgp,
    targets: ["cni.del-after-reuse"],
    controls: ["cni.del-releases", "cni.sandbox-recreate"],
  },
  {
    label: "flannel: DEL of net1 tears down every interface of the container (eth0 too)",
    backend: asUnknown(delTearsDownContainer),
    ...flannelVxlan,
    targets: ["cni.multi-interface"],
    controls: ["cni.del-releases", "cni.sandbox-recreate"],
  },
  {
    label: "reference: a failed ADD leaves its in-progress record in ctx.local",
    backend: asUnknown(failedAddLeavesIntent),
    ...referenceBase,
    targets: ["cni.failed-add-leaks-nothing"],
    controls: ["cni.del-releases", "cni.add-idempotent"],
  },
  {
    label: "flannel: the ADD result's gateway and routes go through the Network's first address, not the node subnet's bridge",
    backend: asUnknown(resultGatewayOfNetwork),
    ...flannelVxlan,
    targets: ["cni.add-result"],
    controls: ["cni.check-after-add", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "calico: the ADD result reports the underlay MTU, the pod interface has the IPIP headroom taken off",
    backend: asUnknown(resultMtuWithoutHeadroom),
    ...calicoIpip,
    targets: ["cni.add-result"],
    controls: ["mtu.encap-headroom", "cni.check-after-add"],
  },
];
