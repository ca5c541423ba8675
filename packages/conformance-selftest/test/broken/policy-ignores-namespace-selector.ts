/**
 * Broken: NetworkPolicy peers lose their namespaceSelector before the agent sees them (the agent
 * reads the policies through a view of the cluster store that strips the field), so a peer with
 * both selectors matches the podSelector in the policy's own namespace only, and a peer with only
 * a namespaceSelector becomes "every pod of the policy's own namespace".
 */
import { KUBE_PREFIX } from "@cnikit/core";
import type { AgentContext, Backend, Datastore, KeyValue } from "@cnikit/core";
import { reference } from "@cnikit/reference";
import { readView, wrapBackend } from "./wrap.ts";

type Peer = { namespaceSelector?: unknown; podSelector?: unknown; ipBlock?: unknown };
type Rule = { from?: Peer[]; to?: Peer[] };

function stripPeers(peers: Peer[] | undefined): Peer[] | undefined {
  return peers?.map((p) => {
    if (p.namespaceSelector === undefined) return p;
    const { namespaceSelector: _ignored, ...rest } = p;
    return rest.podSelector === undefined && rest.ipBlock === undefined ? { ...rest, podSelector: {} } : rest;
  });
}

/** The policy object without any namespaceSelector in its peers (values it cannot read pass as they are). */
function strip(value: string): string {
  try {
    const obj = JSON.parse(value) as { spec?: { ingress?: Rule[]; egress?: Rule[] } };
    const spec = obj.spec;
    if (!spec) return value;
    const fix = (rules: Rule[] | undefined) =>
      rules?.map((r) => {
        const out: Rule = { ...r };
        const from = stripPeers(r.from);
        const to = stripPeers(r.to);
        if (from) out.from = from;
        if (to) out.to = to;
        return out;
      });
    const ingress = fix(spec.ingress);
    const egress = fix(spec.egress);
    return JSON.stringify({ ...obj, spec: { ...spec, ...(ingress ? { ingress } : {}), ...(egress ? { egress } : {}) } });
  } catch {
    return value;
  }
}

function bend(kv: KeyValue): KeyValue {
  return kv.key.startsWith(KUBE_PREFIX.networkPolicies) ? { ...kv, value: strip(kv.value) } : kv;
}

/** A view of `store` whose NetworkPolicies have no namespaceSelector (reads only; writes pass). */
export function strippingStore(store: Datastore): Datastore {
  return readView(store, { rewrite: bend });
}

/** `base` (one that claims NetworkPolicy) whose agents read NetworkPolicies without namespaceSelector. */
export function policyIgnoresNamespaceSelectorOf<C>(base: Backend<C>, name: string): Backend<C> {
  return wrapBackend(base, name, { context: (ctx: AgentContext<C>) => ({ ...ctx, store: strippingStore(ctx.store) }) });
}

export const policyIgnoresNamespaceSelector = policyIgnoresNamespaceSelectorOf(reference, "broken-policy-ignores-namespace-selector");
