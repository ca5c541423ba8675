/**
 * Broken (backends that claim NetworkPolicy): the agent's policy parser gets one field wrong,
 * silently, instead of refusing or honouring it:
 *  - `ipBlock.except` dropped: a peer ipBlock allows its whole CIDR, the excepted addresses too;
 *  - `ports[].endPort` dropped: a port range allows its first port only;
 *  - a peer with both `namespaceSelector` and `podSelector` read as two peers (OR, not AND);
 *  - named ports dropped: a rule whose ports are all named allows every port;
 *  - `ports[].protocol` dropped: every port rule is TCP (the default);
 *  - `policyTypes` read as both directions whatever it says (egress isolation from an
 *    ingress-only policy).
 * The agent reads policies through a view of the store that bends them.
 */
import { KUBE_PREFIX } from "@cnikit/core";
import type { AgentContext, Backend, KeyValue } from "@cnikit/core";
import { readView, wrapBackend } from "./wrap.ts";

type Peer = { ipBlock?: { cidr?: unknown; except?: unknown } } & Record<string, unknown>;
type Port = { endPort?: unknown } & Record<string, unknown>;
type Rule = { from?: Peer[]; to?: Peer[]; ports?: Port[] } & Record<string, unknown>;
type Spec = { ingress?: Rule[]; egress?: Rule[]; policyTypes?: unknown } & Record<string, unknown>;
type Policy = { spec?: Spec } & Record<string, unknown>;

/** What a broken parser does to a policy's spec. */
export type SpecBend = (spec: Spec) => Spec;
/** What a broken parser does to one rule (of either direction). */
export type RuleBend = (rule: Rule) => Rule;

/** The spec bend that bends every rule. */
export function everyRule(bend: RuleBend): SpecBend {
  return (spec) => {
    const next = { ...spec };
    if (spec.ingress) next.ingress = spec.ingress.map(bend);
    if (spec.egress) next.egress = spec.egress.map(bend);
    return next;
  };
}

export const dropIpBlockExcept: RuleBend = (rule) => {
  const peers = (list: Peer[] | undefined) =>
    list?.map((p) => {
      if (!p.ipBlock || p.ipBlock.except === undefined) return p;
      const { except: _dropped, ...ipBlock } = p.ipBlock;
      return { ...p, ipBlock };
    });
  const out: Rule = { ...rule };
  const from = peers(rule.from);
  const to = peers(rule.to);
  if (from) out.from = from;
  if (to) out.to = to;
  return out;
};

/** A bend that reads every port of a rule without `field` (a parser that never learned it). */
function portFieldDropped(field: "endPort" | "protocol"): RuleBend {
  return (rule) => {
    if (!rule.ports) return rule;
    return {
      ...rule,
      ports: rule.ports.map((p) => {
        if (p[field] === undefined) return p;
        const { [field]: _dropped, ...rest } = p;
        return rest;
      }),
    };
  };
}

export const dropEndPort: RuleBend = portFieldDropped("endPort");

export const selectorsOred: RuleBend = (rule) => {
  const peers = (list: Peer[] | undefined) =>
    list?.flatMap((p) => {
      if (p.namespaceSelector === undefined || p.podSelector === undefined) return [p];
      const { namespaceSelector, podSelector, ...rest } = p;
      return [
        { ...rest, namespaceSelector },
        { ...rest, podSelector },
      ];
    });
  const out: Rule = { ...rule };
  const from = peers(rule.from);
  const to = peers(rule.to);
  if (from) out.from = from;
  if (to) out.to = to;
  return out;
};

export const namedPortsDropped: RuleBend = (rule) => {
  if (!rule.ports || rule.ports.length === 0) return rule;
  const ports = rule.ports.filter((p) => typeof p.port !== "string");
  if (ports.length > 0) return { ...rule, ports };
  const { ports: _all, ...rest } = rule;
  return rest;
};

export const protocolDropped: RuleBend = portFieldDropped("protocol");

export const policyTypesBoth: SpecBend = (spec) => ({ ...spec, policyTypes: ["Ingress", "Egress"] });

function bendPolicy(kv: KeyValue, bend: SpecBend): KeyValue {
  if (!kv.key.startsWith(KUBE_PREFIX.networkPolicies)) return kv;
  try {
    const policy = JSON.parse(kv.value) as Policy;
    if (!policy.spec) return kv;
    return { ...kv, value: JSON.stringify({ ...policy, spec: bend(policy.spec) }) };
  } catch {
    return kv;
  }
}

/** `base` whose agents read every NetworkPolicy through `bend`. */
export function policySpecBentOf<C>(base: Backend<C>, name: string, bend: SpecBend): Backend<C> {
  return wrapBackend(base, name, {
    context: (ctx: AgentContext<C>) => ({ ...ctx, store: readView(ctx.store, { rewrite: (kv) => bendPolicy(kv, bend) }) }),
  });
}

/** `base` whose agents read every NetworkPolicy rule through `bend`. */
export function policyRulesBentOf<C>(base: Backend<C>, name: string, bend: RuleBend): Backend<C> {
  return policySpecBentOf(base, name, everyRule(bend));
}
