/**
 * What a check is: an id, the rule it enforces (one line), where the rule comes from, its section,
 * whether it is required, an optional static gate ("not claimed" / "not run"), a time budget, and
 * the run itself.
 */
import type { SimPod } from "@cnikit/sim";
import type { Harness, HarnessOptions } from "./harness.ts";
import type { CheckContext, CheckOutcome, CheckStatus, Section } from "./types.ts";

/** The shared, read-only cluster: `nodes` nodes, 3 pods per node, settled. */
export interface Fixture {
  h: Harness;
  pods: SimPod[];
}

/** What a check's `run` is given. */
export interface CheckEnv extends CheckContext {
  /** A fresh, empty cluster (the runner closes it after the check). `salt` varies the seed. */
  harness(salt?: string, options?: HarnessOptions): Harness;
  /** The shared cluster; checks must not change it. */
  fixture(): Promise<Fixture>;
}

/** What names a check and its promise, whichever driver runs it: id, section, one-line rule, source. */
export interface CheckIdentity {
  id: string;
  section: Section;
  rule: string;
  source: string;
  required: boolean;
  /** Wall-clock budget in ms (each runner has its default). */
  budgetMs?: number;
}

export interface CheckDefinition extends CheckIdentity {
  /**
   * Decides before running that the check does not apply: "not claimed" (capabilities say the
   * backend does not offer it) or "not run" (the suite cannot run it here), with the reason.
   */
  gate?(ctx: CheckContext): { status: Extract<CheckStatus, "not claimed" | "not run">; reason: string } | undefined;
  run(env: CheckEnv): Promise<CheckOutcome>;
}

/** Convenience: a passed outcome. */
export function pass(extra: Omit<CheckOutcome, "status"> = {}): CheckOutcome {
  return { status: "passed", ...extra };
}

/** Convenience: a failed outcome with the reason a person can act on. */
export function fail(reason: string, extra: Omit<CheckOutcome, "status" | "reason"> = {}): CheckOutcome {
  return { status: "failed", reason, ...extra };
}

/** Convenience: "not run" decided while running (e.g. the topology has no external host). */
export function notRun(reason: string): CheckOutcome {
  return { status: "not run", reason };
}

/** Convenience: "not applicable" decided while running (the scenario could not exercise the rule here). */
export function notApplicable(reason: string, extra: Omit<CheckOutcome, "status" | "reason"> = {}): CheckOutcome {
  return { status: "not applicable", reason, ...extra };
}

/** Sources cited by the checks. */
export const SOURCES = {
  k8sModel: "Kubernetes networking model (kubernetes.io/docs/concepts/cluster-administration/networking)",
  k8sIpam: "Kubernetes networking model; CNI SPEC.md section 'IP Allocation' (host-local semantics)",
  cniAdd: "CNI SPEC.md section 'ADD: Add container to network' and 'Success' result",
  cniDel: "CNI SPEC.md section 'DEL: Remove container from network'",
  cniCheck: "CNI SPEC.md section 'CHECK: Check container's networking is as expected'",
  cniGc: "CNI SPEC.md section 'GC: Clean up any stale resources'",
  cniStatus: "CNI SPEC.md section 'STATUS: Check plugin status'",
  cniErrors: "CNI SPEC.md section 'Error' (well-known error codes)",
  cniVersions: "CNI SPEC.md section 'Version' and the result types 0.3.x-1.1.0",
  contract: "cnikit NodeAgent contract (packages/core/src/backend.ts)",
  mtu: "Kubernetes networking model (no fragmentation); encapsulation overheads RFC 7348 (VXLAN), RFC 2003 (IPIP)",
  config: "cnikit conformance.md section C (anchor config formats, CNI code 7)",
  dynamics: "cnikit conformance.md section D; NetworkSummary.convergenceMs / crashDetectionMs",
  faults: "cnikit conformance.md section E",
  policy: "networking.k8s.io/v1 NetworkPolicy API",
  encryption: "cnikit conformance.md section G",
  linux: "cnikit conformance.md section I",
} as const;
