/**
 * Broken (calico): an IPPool CIDR with host bits (10.244.0.1/16) is masked silently to its network
 * instead of refused, so a pool the user mistyped is accepted as some other pool.
 */
import { Prefix } from "@cnikit/core";
import type { Backend } from "@cnikit/core";
import { calico } from "@cnikit/calico";
import type { CalicoConfig } from "@cnikit/calico";
import { wrapBackend } from "./wrap.ts";

type Resource = { kind?: unknown; spec?: { cidr?: unknown } & Record<string, unknown> } & Record<string, unknown>;

function masked(resource: unknown): unknown {
  const r = resource as Resource;
  if (r === null || typeof r !== "object" || r.kind !== "IPPool" || typeof r.spec?.cidr !== "string") return resource;
  try {
    return { ...r, spec: { ...r.spec, cidr: Prefix.parse(r.spec.cidr, { allowHostBits: true }).toString() } };
  } catch {
    return resource;
  }
}

export const poolHostBitsMasked: Backend<CalicoConfig> = wrapBackend(calico, "broken-calico-pool-host-bits-masked", {
  parseConfig: (input) => calico.parseConfig(Array.isArray(input) ? input.map(masked) : input),
});
