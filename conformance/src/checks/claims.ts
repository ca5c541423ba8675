/**
 * Claims checked (section C): what `capabilities` claims against what the run's config uses
 * (`summarize(config, cluster)`, asked with the topology the suite builds) and what the agents actually built (the shared cluster's pods and links).
 *
 * A claim the config does not exercise is reported "not run" with the family or encapsulation
 * named, never "passed": the remedy is to run another config (a dual-stack one for IPv6), which is
 * what "not run" means ("the suite cannot run it here"); "not applicable" would say the rule does
 * not apply to the backend, and a claim always applies to the backend that makes it.
 */
import { Prefix, specialRanges } from "@cnikit/core";
import type { Encapsulation, Family, NetworkSummary, NodeDataplane } from "@cnikit/core";
import { SOURCES, fail, notRun, pass } from "../check.ts";
import type { CheckDefinition } from "../check.ts";
import { describePod, summarizeProblems } from "../harness.ts";
import type { SubResult } from "../types.ts";

const LINK_LOCAL = specialRanges("linkLocal");

/** The link kinds that carry an encapsulation, and the encapsulation they carry. */
const LINK_ENCAPSULATION: Readonly<Record<string, Encapsulation>> = Object.freeze({ vxlan: "vxlan", ipip: "ipip", sleeve: "sleeve" });

function familyOf(address: string): Family | undefined {
  try {
    return Prefix.parse(address.includes("/") ? address : `${address}/${address.includes(":") ? 128 : 32}`, { allowHostBits: true }).family;
  } catch {
    return undefined;
  }
}

/** The address families of a summary's pod ranges, in ascending order (a range that does not parse is skipped). */
export function familiesOf(summary: NetworkSummary): Family[] {
  const out = new Set<Family>();
  for (const r of summary.podRanges) {
    const f = familyOf(r);
    if (f !== undefined) out.add(f);
  }
  return [...out].sort();
}

function names(families: readonly Family[]): string {
  return families.map((f) => `IPv${f}`).join(", ") || "(none)";
}

/** The encapsulations the links of one node's dataplane carry, with the link names. */
function linkEncapsulations(dp: NodeDataplane): { encapsulation: Encapsulation; link: string }[] {
  const out: { encapsulation: Encapsulation; link: string }[] = [];
  for (const link of dp.links ?? []) {
    const e = LINK_ENCAPSULATION[link.kind];
    if (e) out.push({ encapsulation: e, link: link.name });
  }
  return out;
}

export const claimsChecks: CheckDefinition[] = [
  {
    id: "claims.families",
    section: "C",
    rule: "Every address family of the config's pod ranges is claimed in capabilities.families and every pod gets one address of each; a claimed family the config does not exercise is reported, never passed.",
    source: `${SOURCES.contract} (Capabilities.families); Kubernetes dual-stack (one pod IP per family)`,
    required: true,
    async run(env) {
      const claimed = [...new Set(env.backend.capabilities.families ?? [])].sort();
      const used = familiesOf(env.summary);
      const problems: string[] = [];
      for (const range of env.summary.podRanges) {
        const f = familyOf(range);
        if (f !== undefined && !claimed.includes(f)) {
          problems.push(`the config's pod range ${range} is IPv${f}, but capabilities.families claims only ${names(claimed)}`);
        }
      }
      // Decided from the summary alone: a config this backend cannot build must still fail here, not error.
      if (problems.length > 0) return fail(summarizeProblems(problems));
      const { pods } = await env.fixture();
      for (const pod of pods) {
        const byFamily = new Map<Family, string[]>();
        for (const a of pod.addresses) {
          const f = familyOf(a);
          // Link-local addresses (fe80::/10, 169.254.0.0/16) are an interface's, not pod IPs.
          if (f === undefined || LINK_LOCAL.some((l) => l.contains(a.split("/")[0]!))) continue;
          byFamily.set(f, [...(byFamily.get(f) ?? []), a]);
        }
        for (const f of used) {
          const held = byFamily.get(f) ?? [];
          if (held.length === 0) problems.push(`${describePod(pod)} has no IPv${f} address, though the config's pod ranges include IPv${f}`);
          else if (held.length > 1) problems.push(`${describePod(pod)} holds ${held.length} IPv${f} addresses (${held.join(", ")}); a pod gets one per family`);
        }
        for (const [f, held] of byFamily) {
          if (!claimed.includes(f)) problems.push(`${describePod(pod)} holds IPv${f} address ${held.join(", ")}, a family capabilities.families does not claim (${names(claimed)})`);
        }
      }
      const subResults: SubResult[] = claimed.map((f) =>
        used.includes(f)
          ? { label: `IPv${f} exercised`, status: "passed" }
          : { label: `IPv${f} not exercised`, status: "not run", reason: `this config's pod ranges (${env.summary.podRanges.join(", ")}) have no IPv${f} range` },
      );
      if (problems.length > 0) return fail(summarizeProblems(problems), { subResults });
      const unexercised = claimed.filter((f) => !used.includes(f));
      if (unexercised.length > 0) {
        return {
          ...notRun(
            `capabilities.families claims ${names(claimed)}; this config exercises ${names(used)} only (pod ranges ${env.summary.podRanges.join(", ")}): ${names(unexercised)} not exercised — run a config with ${unexercised.map((f) => `an IPv${f}`).join(" and ")} pod range (e.g. dual stack) to prove the claim`,
          ),
          subResults,
        };
      }
      return pass({ subResults });
    },
  },
  {
    id: "claims.encapsulations",
    section: "C",
    rule: "Every encapsulation the config's summary uses, and every tunnel link the agents build, is claimed in capabilities.encapsulations and declared by the summary; the claimed ones this config exercises are listed.",
    source: `${SOURCES.contract} (Capabilities.encapsulations, NetworkSummary.encapsulations); ${SOURCES.mtu}`,
    required: true,
    async run(env) {
      const claimed = [...new Set(env.backend.capabilities.encapsulations ?? [])];
      const declared = [...new Set(env.summary.encapsulations ?? [])];
      const problems: string[] = [];
      for (const e of declared) {
        if (!claimed.includes(e)) problems.push(`the config's summary uses encapsulation ${e}, which capabilities.encapsulations does not claim (${claimed.join(", ") || "none"})`);
      }
      if (problems.length > 0) return fail(summarizeProblems(problems));
      const { h } = await env.fixture();
      for (const node of h.cluster.nodes()) {
        if (!node.alive) continue;
        for (const { encapsulation, link } of linkEncapsulations(h.cluster.dataplane(node.name))) {
          if (!declared.includes(encapsulation)) {
            problems.push(
              `node ${node.name} (${node.info.underlay[0]?.address ?? "no underlay address"}) builds ${encapsulation} link ${link}, but the config's summary declares only ${declared.join(", ") || "none"} (pod MTU headroom is derived from the summary)`,
            );
          } else if (!claimed.includes(encapsulation)) {
            problems.push(`node ${node.name} builds ${encapsulation} link ${link}, an encapsulation capabilities.encapsulations does not claim`);
          }
        }
      }
      const subResults: SubResult[] = claimed.map((e) =>
        declared.includes(e)
          ? { label: `${e} exercised`, status: "passed" }
          : { label: `${e} not exercised`, status: "not run", reason: `this config uses ${declared.join(", ") || "no encapsulation"}; another config must exercise ${e}` },
      );
      if (problems.length > 0) return fail(summarizeProblems(problems), { subResults });
      return pass({ subResults });
    },
  },
];
