/**
 * Broken variants for the scenarios the suite used to never build (issue 12): a node replaced with
 * fresh local state, a join during a partition, the paths during a crash window, an underlay MTU
 * that is not 1500, one node cut off from the store, lost watch events, a compaction between list
 * and watch. Spread over the three shapes; each turns its own check red while its unbroken base
 * stays green (conformance/test/scenarios.test.ts proves it).
 */
import { fixtureConfig } from "@cnikit/core";
import type { Backend } from "@cnikit/core";
import { calico, calicoFixtures } from "@cnikit/calico";
import { flannel, flannelFixtures } from "@cnikit/flannel";
import { reference } from "@cnikit/reference";
import { hairpinViaHub } from "./hairpin-via-hub.ts";
import { leaseLossIgnored } from "./lease-loss-ignored.ts";
import { calicoNoPeriodicRelist, noPeriodicRelist } from "./no-periodic-relist.ts";
import { peerBlacklistedForever } from "./peer-blacklisted-forever.ts";
import { pinnedPodMtu } from "./pinned-pod-mtu.ts";
import { rewatchFromNowOnCompaction } from "./rewatch-from-now-on-compaction.ts";
import { staleVtepMacAfterReplace } from "./stale-vtep-mac-after-replace.ts";
import type { BrokenVariant } from "./types.ts";

const asUnknown = <C>(b: Backend<C>) => b as Backend<unknown>;

const referenceBase = { base: asUnknown(reference), shape: "bridge+lease", config: {}, baseLabel: "reference" } as const;
const flannelVxlan = { base: asUnknown(flannel), shape: "vxlan+fdb", config: fixtureConfig(flannelFixtures.configs, "vxlan"), baseLabel: "flannel vxlan" } as const;
const calicoBgp = { base: asUnknown(calico), shape: "routed+bgp", config: fixtureConfig(calicoFixtures.configs, "bgp"), baseLabel: "calico bgp" } as const;
const calicoIpip = { base: asUnknown(calico), shape: "routed+bgp", config: fixtureConfig(calicoFixtures.configs, "ipip-always"), baseLabel: "calico ipip-always" } as const;

export const scenarioVariants: BrokenVariant[] = [
  {
    label: "flannel: survivors keep a replaced node's old VTEP MAC in neighbour and FDB entries",
    backend: asUnknown(staleVtepMacAfterReplace),
    ...flannelVxlan,
    targets: ["dyn.node-replaced"],
    controls: ["dyn.join", "dyn.leave"],
  },
  {
    label: "calico: a peer once unreachable is remembered as dead (a node joining during a partition never peers across it)",
    backend: peerBlacklistedForever,
    ...calicoBgp,
    targets: ["dyn.join-during-partition"],
    controls: ["dyn.join", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "reference: routes to other nodes hairpin through a hub node (delivered, but never direct; through the dead hub during a crash window)",
    backend: hairpinViaHub,
    ...referenceBase,
    targets: ["dyn.crash-window-paths"],
    controls: ["reach.pod-to-pod.cross-node", "dyn.join"],
  },
  {
    label: "calico: pod MTU pinned to 1480 (a 1500-byte underlay minus IPIP) instead of derived from the underlay",
    backend: pinnedPodMtu,
    ...calicoIpip,
    targets: ["mtu.underlay-non-1500"],
    controls: ["mtu.encap-headroom", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "reference: a keep-alive that finds the lease gone is taken as success (a node cut off from the store never reclaims its subnet)",
    backend: leaseLossIgnored,
    ...referenceBase,
    targets: ["fault.store-cutoff"],
    controls: ["dyn.join", "fault.compaction"],
  },
  {
    label: "flannel: no periodic re-list (a watch that lost events is never repaired)",
    backend: asUnknown(noPeriodicRelist),
    ...flannelVxlan,
    targets: ["fault.lost-watch-events"],
    controls: ["dyn.join", "dyn.leave"],
  },
  {
    label: "calico: no periodic re-list (RESYNC_MS declared, never scheduled: a node watch that lost events is never repaired)",
    backend: asUnknown(calicoNoPeriodicRelist),
    ...calicoBgp,
    targets: ["fault.lost-watch-events"],
    controls: ["dyn.join", "reach.pod-to-pod.cross-node"],
  },
  {
    label: "reference: a compacted watch is re-opened from now instead of re-listing",
    backend: rewatchFromNowOnCompaction,
    ...referenceBase,
    targets: ["fault.compaction"],
    controls: ["dyn.join", "fault.lost-watch-events"],
  },
];
