/**
 * Deliberately broken variants of the reference backend (conformance.md section H), each with the
 * checks that must turn red on it (`targets`) and a few unrelated checks that must stay green
 * (`controls`: the variant is broken in one place, not everywhere).
 */
import type { Backend } from "@cnikit/core";
import { duplicateAddress } from "./duplicate-address.ts";
import { leakOnDel } from "./leak-on-del.ts";
import { missingRouteAfterJoin } from "./missing-route-after-join.ts";
import { natPodToPod } from "./nat-pod-to-pod.ts";
import { nonIdempotentDel } from "./non-idempotent-del.ts";
import { outsideRange } from "./outside-range.ts";
import { staleRouteAfterLeave } from "./stale-route-after-leave.ts";
import { wrongErrorCode } from "./wrong-error-code.ts";
import { reservedAddress } from "./reserved-address.ts";
import { mtuNoHeadroom } from "./mtu-no-headroom.ts";
import { policyForgetsEgress } from "./policy-forgets-egress.ts";
import { policyIgnoresNamespaceSelector } from "./policy-ignores-namespace-selector.ts";

export interface BrokenVariant {
  label: string;
  backend: Backend<unknown>;
  targets: string[];
  controls: string[];
}

export const brokenVariants: BrokenVariant[] = [
  { label: "duplicate address", backend: duplicateAddress as Backend<unknown>, targets: ["ipam.unique", "ipam.concurrent-unique"], controls: ["ipam.in-range", "cni.status"] },
  { label: "address outside the range", backend: outsideRange as Backend<unknown>, targets: ["ipam.in-range"], controls: ["ipam.unique", "cni.del-idempotent"] },
  { label: "missing route after a join", backend: missingRouteAfterJoin as Backend<unknown>, targets: ["dyn.join"], controls: ["reach.pod-to-pod.cross-node", "dyn.restart"] },
  { label: "stale route after a leave", backend: staleRouteAfterLeave as Backend<unknown>, targets: ["dyn.leave", "dyn.crash"], controls: ["dyn.join", "reach.pod-to-pod.cross-node"] },
  { label: "NAT on pod-to-pod traffic", backend: natPodToPod as Backend<unknown>, targets: ["reach.no-nat-between-pods"], controls: ["ipam.unique", "reach.pod-to-node"] },
  { label: "address leaked on DEL", backend: leakOnDel as Backend<unknown>, targets: ["cni.del-releases"], controls: ["cni.del-idempotent", "ipam.unique"] },
  { label: "non-idempotent DEL", backend: nonIdempotentDel as Backend<unknown>, targets: ["cni.del-idempotent", "cni.del-unknown"], controls: ["cni.add-idempotent", "cni.del-releases"] },
  { label: "reserved (gateway) address", backend: reservedAddress as Backend<unknown>, targets: ["ipam.reserved"], controls: ["ipam.in-range", "cni.del-idempotent"] },
  { label: "pod MTU without room on the underlay", backend: mtuNoHeadroom as Backend<unknown>, targets: ["mtu.encap-headroom"], controls: ["reach.pod-to-pod.cross-node", "ipam.unique"] },
  { label: "policy that ignores namespaceSelector", backend: policyIgnoresNamespaceSelector as Backend<unknown>, targets: ["policy.matrix"], controls: ["reach.pod-to-pod.cross-node", "ipam.unique"] },
  { label: "policy that forgets egress", backend: policyForgetsEgress as Backend<unknown>, targets: ["policy.matrix"], controls: ["reach.pod-to-pod.same-node", "dyn.join"] },
  { label: "wrong error code", backend: wrongErrorCode as Backend<unknown>, targets: ["config.invalid-refused", "cni.error-codes"], controls: ["config.accepts-anchor-format", "cni.check-after-add"] },
];

export {
  duplicateAddress,
  leakOnDel,
  missingRouteAfterJoin,
  mtuNoHeadroom,
  natPodToPod,
  nonIdempotentDel,
  outsideRange,
  policyForgetsEgress,
  policyIgnoresNamespaceSelector,
  reservedAddress,
  staleRouteAfterLeave,
  wrongErrorCode,
};
