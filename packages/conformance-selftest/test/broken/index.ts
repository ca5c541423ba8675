/**
 * Every deliberately broken variant of the self-test (conformance.md section H), each with its base
 * backend, shape and config, the checks that must turn red on it (`targets`) and a few unrelated
 * checks that must stay green (`controls`: the variant is broken in one place, not everywhere).
 *
 *  - `referenceVariants`: the bug classes on the reference backend (bridge + lease);
 *  - `shapeVariants` (variants-shapes.ts): the same classes on flannel (vxlan + FDB) and calico
 *    (routed + BGP), bent where the bug lives in that shape;
 *  - `scenarioVariants` / `lifecycleVariants`: the bug classes of the scenario and lifecycle checks.
 *
 * The named backend exports (`nonIdempotentDel`, ...) stay for the CLI: `--backend
 * test/broken/index.ts#nonIdempotentDel`.
 */
import type { Backend } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { referenceFixtures } from "@cnikit/reference/fixtures";
import { duplicateAddress } from "./duplicate-address.ts";
import { leakOnDel } from "./leak-on-del.ts";
import { leaveWithoutReleaseOf } from "./leave-without-release.ts";
import { localStateNotKeptOf } from "./local-state-not-kept.ts";
import { masqueradeNotRenderedOf } from "./masquerade-not-rendered.ts";
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
import { dropIpBlockExcept, policyRulesBentOf, selectorsOred } from "./policy-ignores-fields.ts";
import type { BrokenVariant } from "./types.ts";
import { lifecycleVariants } from "./variants-lifecycle.ts";
import { scenarioVariants } from "./variants-scenarios.ts";
import { encryptionVariants } from "./sleeve-plaintext.ts";
import { preallocVariants } from "./variants-prealloc.ts";
import { knownGaps, shapeVariants } from "./variants-shapes.ts";

export type { BrokenVariant } from "./types.ts";
export type { KnownGap } from "./variants-shapes.ts";
export { knownGaps };

/** The config every reference variant (and its base run) uses. */
export const REFERENCE_SELF_CHECK_CONFIG = { network: "10.250.0.0/16" };

const onReference = {
  base: reference as Backend<unknown>,
  shape: "bridge+lease",
  config: REFERENCE_SELF_CHECK_CONFIG,
  baseLabel: "reference 10.250.0.0/16",
} as const;

export const referenceVariants: BrokenVariant[] = [
  { label: "duplicate address", backend: duplicateAddress as Backend<unknown>, ...onReference, targets: ["ipam.unique", "ipam.concurrent-unique"], controls: ["ipam.in-range", "cni.status"] },
  { label: "address outside the range", backend: outsideRange as Backend<unknown>, ...onReference, targets: ["ipam.in-range"], controls: ["ipam.unique", "cni.del-idempotent"] },
  { label: "missing route after a join", backend: missingRouteAfterJoin as Backend<unknown>, ...onReference, targets: ["dyn.join"], controls: ["reach.pod-to-pod.cross-node", "dyn.restart"] },
  { label: "stale route after a leave", backend: staleRouteAfterLeave as Backend<unknown>, ...onReference, targets: ["dyn.leave", "dyn.crash"], controls: ["dyn.join", "reach.pod-to-pod.cross-node"] },
  {
    label: "a clean leave keeps its node subnet claim (no release)",
    backend: leaveWithoutReleaseOf(reference as Backend<unknown>, "broken-leave-without-release"),
    ...onReference,
    targets: ["dyn.leave"],
    controls: ["dyn.crash", "dyn.join"],
  },
  { label: "NAT on pod-to-pod traffic", backend: natPodToPod as Backend<unknown>, ...onReference, targets: ["reach.no-nat-between-pods"], controls: ["ipam.unique", "reach.pod-to-node"] },
  { label: "address leaked on DEL", backend: leakOnDel as Backend<unknown>, ...onReference, targets: ["cni.del-releases"], controls: ["cni.del-idempotent", "ipam.unique"] },
  {
    label: "non-idempotent DEL",
    backend: nonIdempotentDel as Backend<unknown>,
    ...onReference,
    targets: ["cni.del-idempotent", "cni.del-unknown"],
    controls: ["cni.add-idempotent", "cni.del-releases"],
  },
  { label: "reserved (gateway) address", backend: reservedAddress as Backend<unknown>, ...onReference, targets: ["ipam.reserved"], controls: ["ipam.in-range", "cni.del-idempotent"] },
  {
    label: "pod MTU without room on the underlay",
    backend: mtuNoHeadroom as Backend<unknown>,
    ...onReference,
    targets: ["mtu.encap-headroom"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "policy that ignores namespaceSelector",
    backend: policyIgnoresNamespaceSelector as Backend<unknown>,
    ...onReference,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  { label: "policy that forgets egress", backend: policyForgetsEgress as Backend<unknown>, ...onReference, targets: ["policy.matrix"], controls: ["reach.pod-to-pod.same-node", "dyn.join"] },
  {
    label: "policy peer with namespaceSelector and podSelector read as OR",
    backend: policyRulesBentOf(reference as Backend<unknown>, "broken-policy-selectors-ored", selectorsOred),
    ...onReference,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.cross-node", "ipam.unique"],
  },
  {
    label: "policy ipBlock.except ignored",
    backend: policyRulesBentOf(reference as Backend<unknown>, "broken-policy-ignores-except", dropIpBlockExcept),
    ...onReference,
    targets: ["policy.matrix"],
    controls: ["reach.pod-to-pod.same-node", "ipam.unique"],
  },
  {
    label: "natOutgoing parsed but no masquerade rule rendered",
    backend: masqueradeNotRenderedOf(reference as Backend<unknown>, "broken-no-masquerade"),
    ...onReference,
    targets: ["nat.outgoing"],
    controls: ["reach.no-nat-between-pods", "ipam.unique"],
  },
  {
    label: "pod records lost at an agent restart",
    backend: localStateNotKeptOf(reference as Backend<unknown>, "broken-local-state-not-kept"),
    ...onReference,
    targets: ["dyn.restart"],
    controls: ["dyn.join", "cni.del-idempotent"],
  },
  {
    label: "wrong error code",
    backend: wrongErrorCode as Backend<unknown>,
    ...onReference,
    invalidConfigs: referenceFixtures.invalidConfigs,
    targets: ["config.invalid-refused", "cni.error-codes"],
    controls: ["config.accepts-anchor-format", "cni.check-after-add"],
  },
];

/** Every variant list the self-test runs. */
export const brokenVariants: BrokenVariant[] = [...referenceVariants, ...shapeVariants, ...scenarioVariants, ...lifecycleVariants, ...encryptionVariants, ...preallocVariants];

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
