/**
 * Broken (backends that claim NetworkPolicy): the agent's policy parser drops a field it does not
 * implement, silently, instead of refusing or honouring it:
 *  - `ipBlock.except`: a peer ipBlock allows its whole CIDR, the excepted addresses included;
 *  - `ports[].endPort`: a port range allows its first port only.
 * The agent reads policies through a view of the store that removes the field.
 */
import { KUBE_PREFIX } from "@cnikit/core";
import type { AgentContext, Backend, KeyValue } from "@cnikit/core";
import { readView, wrapBackend } from "./wrap.ts";

type Peer = { ipBlock?: { cidr?: unknown; except?: unknown } } & Record<string, unknown>;
type Port = { endPort?: unknown } & Record<string, unknown>;
type Rule = { from?: Peer[]; to?: Peer[]; ports?: Port[] } & Record<string, unknown>;
type Policy = { spec?: { ingress?: Rule[]; egress?: Rule[] } & Record<string, unknown> } & Record<string, unknown>;

/** What a broken parser does to one rule. */
export type RuleBend = (rule: Rule) => Rule;

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

export const dropEndPort: RuleBend = (rule) => {
  if (!rule.ports) return rule;
  return {
    ...rule,
    ports: rule.ports.map((p) => {
      if (p.endPort === undefined) return p;
      const { endPort: _dropped, ...rest } = p;
      return rest;
    }),
  };
};

function bendPolicy(kv: KeyValue, bend: RuleBend): KeyValue {
  if (!kv.key.startsWith(KUBE_PREFIX.networkPolicies)) return kv;
  try {
    const policy = JSON.parse(kv.value) as Policy;
    const spec = policy.spec;
    if (!spec) return kv;
    const next = { ...spec };
    if (spec.ingress) next.ingress = spec.ingress.map(bend);
    if (spec.egress) next.egress = spec.egress.map(bend);
    return { ...kv, value: JSON.stringify({ ...policy, spec: next }) };
  } catch {
    return kv;
  }
}

/** `base` whose agents read every NetworkPolicy rule through `bend`. */
export function policyRulesBentOf<C>(base: Backend<C>, name: string, bend: RuleBend): Backend<C> {
  return wrapBackend(base, name, {
    context: (ctx: AgentContext<C>) => ({ ...ctx, store: readView(ctx.store, { rewrite: (kv) => bendPolicy(kv, bend) }) }),
  });
}
