/**
 * Broken variants of the cloud-preallocation shape (a controller that reserves underlay addresses
 * through the fabric port, Azure CNI's classic mode), for the suite's `prealloc.*` checks. Each
 * bends the small test backend (`../fixtures/prealloc-backend.ts`) in one place:
 *
 *  - over-reservation: the controller counts the subnet's network and broadcast addresses as free,
 *    so under pressure it accepts a join that does not fit and routes the addresses the fabric will
 *    not attach (the network and broadcast) to the node as /32s;
 *  - a refused join that keeps half: the controller attaches half of the node's addresses before it
 *    refuses, and forgets them (they stay on the fabric under a node that never joined) — with the
 *    refusal by a failed start, and by a STATUS that stays 50 (`refuseBy: "status"`);
 *  - a leave that returns nothing: the controller keeps a departed node's reservation in its books,
 *    so the subnet stays full for it and a refused node's retry is refused again;
 *  - pod addresses the fabric never gave: the agent hands pods the addresses 100 above its secondary
 *    addresses (as if its block continued elsewhere), inside the subnet but nobody's share — on the
 *    test backend, and on @cnikit/azure's classic mode (its agent reads its own member record through
 *    a view that moves the secondary addresses: a node that misreads its NIC's ip configurations).
 */
import { azure } from "@cnikit/azure";
import { Prefix, defineBackend, withSecondaryAddresses } from "@cnikit/core";
import type { Backend, Membership, NodeInfo } from "@cnikit/core";
import { preallocTest, preallocTestBackend } from "../fixtures/prealloc-backend.ts";
import type { BrokenVariant } from "./types.ts";

/** The config every variant here (and its base run) uses: 6 secondary addresses per node. */
export const PREALLOC_SELF_CHECK_CONFIG = { perNode: 6 };

/** The same with the refusal by STATUS 50 instead of a failed start (the other way the contract allows). */
export const PREALLOC_STATUS_REFUSAL_CONFIG = { perNode: 6, refuseBy: "status" };

const onPrealloc = {
  base: preallocTest as Backend<unknown>,
  shape: "cloud preallocation",
  config: PREALLOC_SELF_CHECK_CONFIG,
  baseLabel: "prealloc-test perNode 6",
} as const;

/** The free host addresses, then the subnet's network and broadcast addresses (counted as usable). */
export const overReserving = preallocTestBackend("broken-prealloc-over-reserves", {
  controller: { candidates: (free, subnet: Prefix) => [...free, subnet.network, subnet.broadcast], routeWhatIsRefused: true },
});

export const refusalKeepsHalf = preallocTestBackend("broken-prealloc-refusal-keeps-half", { controller: { partialBeforeRefusal: true } });

export const leaveKeepsReservation = preallocTestBackend("broken-prealloc-leave-keeps-reservation", { controller: { keepsLeftNodes: true } });

/** Each secondary address moved 100 up inside its /24 (the default topology's node subnets). */
function hundredUp(address: string): string {
  const block = Prefix.parse(`${address}/24`, { allowHostBits: true });
  return block.nth(Number(block.indexOf(address)) + 100);
}

export const podAddressNotGiven = preallocTestBackend("broken-prealloc-pod-address-not-given", { agent: { podAddresses: (given) => given.map(hundredUp) } });

/** `members` as node `me` misreads it: its own secondary addresses each `hundredUp`. */
function misreadOwnRecord(members: Membership, me: string): Membership {
  const bend = (n: NodeInfo): NodeInfo => (n.name === me ? withSecondaryAddresses(n, n.underlay.flatMap((u) => u.secondaryAddresses ?? []).map(hundredUp)) : n);
  return {
    list: () => members.list().map(bend),
    get: (name) => {
      const n = members.get(name);
      return n && bend(n);
    },
    onChange: (listener) => members.onChange(listener),
  };
}

/** @cnikit/azure whose agents misread their own secondary addresses (the controller is azure's own). */
export const azurePodAddressNotGiven = defineBackend<unknown>({
  ...(azure as Backend<unknown>),
  name: "broken-azure-pod-address-not-given",
  createAgent: (ctx) => azure.createAgent({ ...(ctx as Parameters<typeof azure.createAgent>[0]), members: misreadOwnRecord(ctx.members, ctx.node.name) }),
});

/** The azure config of its variant: classic mode at AKS's default maxPods. */
export const AZURE_CLASSIC_CONFIG = { networkPlugin: "azure", maxPods: 30 };

export const preallocVariants: BrokenVariant[] = [
  {
    label: "controller over-reserves past the subnet (network and broadcast routed to a node)",
    backend: overReserving as Backend<unknown>,
    ...onPrealloc,
    targets: ["prealloc.refused-join"],
    controls: ["prealloc.within-subnet", "ipam.unique"],
  },
  {
    label: "refused join keeps half of its reservation",
    backend: refusalKeepsHalf as Backend<unknown>,
    ...onPrealloc,
    targets: ["prealloc.refused-join"],
    controls: ["prealloc.within-subnet", "ipam.unique"],
  },
  {
    label: "refused join keeps half of its reservation (refusal by STATUS 50)",
    backend: refusalKeepsHalf as Backend<unknown>,
    ...onPrealloc,
    config: PREALLOC_STATUS_REFUSAL_CONFIG,
    baseLabel: "prealloc-test perNode 6, refusal by STATUS",
    targets: ["prealloc.refused-join"],
    controls: ["prealloc.within-subnet", "ipam.unique"],
  },
  {
    label: "controller never gives back a leaving node's reservation",
    backend: leaveKeepsReservation as Backend<unknown>,
    ...onPrealloc,
    targets: ["prealloc.refused-join"],
    controls: ["prealloc.within-subnet", "ipam.unique"],
  },
  {
    label: "pod address the fabric never gave its node",
    backend: podAddressNotGiven as Backend<unknown>,
    ...onPrealloc,
    targets: ["prealloc.within-subnet"],
    controls: ["ipam.unique", "cni.del-idempotent"],
  },
  {
    label: "azure classic: pod address the fabric never gave its node",
    backend: azurePodAddressNotGiven,
    base: azure as Backend<unknown>,
    shape: "cloud preallocation",
    config: AZURE_CLASSIC_CONFIG,
    baseLabel: "azure classic maxPods 30",
    targets: ["prealloc.within-subnet"],
    controls: ["ipam.unique", "cni.del-idempotent"],
  },
];
